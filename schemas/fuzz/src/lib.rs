//! How the fuzz targets read their input, shared with the seed generator (`examples/seeds.rs`) so that
//! seed files and the targets agree. Every format is plain bytes that any input decodes under, so
//! libFuzzer's mutations never fall outside it, and seeds stay readable.

use switchyard_schemas::catalog::{EventType, SOURCES, fingerprint};

/// The registry's plugin-config schemas, compiled from the registry's own source file (see Cargo.toml).
#[path = "../../../registry/src/config_schema/mod.rs"]
pub mod config_schema;

/// A Kafka record as the envelope target sees it.
///
/// ```text
/// <key>\n                 a single NUL byte instead of the key means "no key"
/// <name>=<value>\n        one line per header, in record order; a line without '=' is a null value
/// \n                      an empty line ends the headers
/// <value>                 the rest of the input; without the empty line the record has no value
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The key.
    pub key: Option<Vec<u8>>,
    /// Headers in record order; names are Kafka header names, so text.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The value.
    pub value: Option<Vec<u8>>,
}

impl Record {
    /// Reads any input as a record.
    pub fn decode(data: &[u8]) -> Self {
        let (key, mut rest) = split_once(data, b'\n');
        let key = (key != b"\0").then(|| key.to_vec());
        let mut headers = Vec::new();
        let mut value = None;
        while let Some(rest_now) = rest {
            let (line, next) = split_once(rest_now, b'\n');
            if line.is_empty() && next.is_some() {
                value = next.map(<[u8]>::to_vec);
                break;
            }
            if line.is_empty() && next.is_none() {
                break;
            }
            let (name, header_value) = split_once(line, b'=');
            headers.push((
                String::from_utf8_lossy(name).into_owned(),
                header_value.map(<[u8]>::to_vec),
            ));
            rest = next;
        }
        Self { key, headers, value }
    }

    /// Writes a record so that [`Record::decode`] reads it back (keys and header fields hold no `\n`,
    /// header names no `=`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match &self.key {
            Some(key) => out.extend_from_slice(key),
            None => out.push(0),
        }
        out.push(b'\n');
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            if let Some(value) = value {
                out.push(b'=');
                out.extend_from_slice(value);
            }
            out.push(b'\n');
        }
        if let Some(value) = &self.value {
            out.push(b'\n');
            out.extend_from_slice(value);
        }
        out
    }
}

/// The bytes before the first `separator` and, if there is one, those after it.
pub fn split_once(data: &[u8], separator: u8) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|&b| b == separator) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    }
}

/// One known Avro schema revision: its event type, revision name and single-object fingerprint.
#[derive(Debug, Clone, Copy)]
pub struct Revision {
    /// The event type.
    pub event_type: EventType,
    /// `current` or a release name.
    pub revision: &'static str,
    /// CRC-64-AVRO fingerprint as written after `0xC3 0x01`.
    pub fingerprint: [u8; 8],
}

/// Every embedded schema revision, in [`SOURCES`] order. The avro target's first input byte picks one
/// (modulo their number), so the fuzzer need not guess 8-byte fingerprints hidden behind a hash map.
pub fn revisions() -> Vec<Revision> {
    SOURCES
        .iter()
        .map(|source| Revision {
            event_type: source.event_type,
            revision: source.revision,
            fingerprint: fingerprint(source.text).expect("an embedded schema has a fingerprint"),
        })
        .collect()
}

/// The json target's first input byte picks the event type (modulo 4), the rest is the JSON value.
pub fn event_type_of(selector: u8) -> EventType {
    EventType::ALL[usize::from(selector) % EventType::ALL.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_framing() {
        let record = Record {
            key: Some(b"acme".to_vec()),
            headers: vec![
                ("ce_id".into(), Some(b"evt-1".to_vec())),
                ("x".into(), None),
                ("y".into(), Some(Vec::new())),
            ],
            value: Some(b"{\n}".to_vec()),
        };
        assert_eq!(Record::decode(&record.encode()), record);
        let bare = Record::default();
        assert_eq!(Record::decode(&bare.encode()), bare);
    }
}
