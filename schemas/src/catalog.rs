//! The v1 event types and their Avro schemas, embedded from `schemas/avro/`.
//!
//! Each type has a current schema (`avro/<type>.avsc`) and every released revision
//! (`avro/released/<release>/<type>.avsc`). Values written with any known revision decode; a fingerprint
//! that matches none is `unknown_schema`, so consumers (router, plugins) must be upgraded before producers
//! start writing a new revision. A test keeps every revision mutually compatible with the current one.

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::Schema;

use crate::avro::{Compiled, parsing_canonical_form};

/// The event types the contract defines schemas for. Other `ce_type`s are routed without validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// `form.created`
    FormCreated,
    /// `form.updated`
    FormUpdated,
    /// `response.submitted`
    ResponseSubmitted,
    /// `response.updated`
    ResponseUpdated,
}

impl EventType {
    /// Every v1 type.
    pub const ALL: [EventType; 4] = [
        EventType::FormCreated,
        EventType::FormUpdated,
        EventType::ResponseSubmitted,
        EventType::ResponseUpdated,
    ];

    /// The `ce_type` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::FormCreated => "form.created",
            EventType::FormUpdated => "form.updated",
            EventType::ResponseSubmitted => "response.submitted",
            EventType::ResponseUpdated => "response.updated",
        }
    }

    /// Looks a `ce_type` up; `None` for types the contract does not define.
    pub fn from_ce_type(ce_type: &str) -> Option<Self> {
        EventType::ALL.into_iter().find(|t| t.as_str() == ce_type)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The schema text of one revision.
#[derive(Debug, Clone, Copy)]
pub struct SchemaSource {
    /// `current` or the release name, e.g. `v1`.
    pub revision: &'static str,
    /// The event type.
    pub event_type: EventType,
    /// The `.avsc` text.
    pub text: &'static str,
}

/// Every embedded schema file.
pub const SOURCES: [SchemaSource; 8] = [
    SchemaSource {
        revision: "current",
        event_type: EventType::FormCreated,
        text: include_str!("../avro/form.created.avsc"),
    },
    SchemaSource {
        revision: "current",
        event_type: EventType::FormUpdated,
        text: include_str!("../avro/form.updated.avsc"),
    },
    SchemaSource {
        revision: "current",
        event_type: EventType::ResponseSubmitted,
        text: include_str!("../avro/response.submitted.avsc"),
    },
    SchemaSource {
        revision: "current",
        event_type: EventType::ResponseUpdated,
        text: include_str!("../avro/response.updated.avsc"),
    },
    SchemaSource {
        revision: "v1",
        event_type: EventType::FormCreated,
        text: include_str!("../avro/released/v1/form.created.avsc"),
    },
    SchemaSource {
        revision: "v1",
        event_type: EventType::FormUpdated,
        text: include_str!("../avro/released/v1/form.updated.avsc"),
    },
    SchemaSource {
        revision: "v1",
        event_type: EventType::ResponseSubmitted,
        text: include_str!("../avro/released/v1/response.submitted.avsc"),
    },
    SchemaSource {
        revision: "v1",
        event_type: EventType::ResponseUpdated,
        text: include_str!("../avro/released/v1/response.updated.avsc"),
    },
];

/// The schemas of one event type.
#[derive(Debug)]
pub struct TypeSchemas {
    current: Compiled,
    current_fingerprint: [u8; 8],
    by_fingerprint: HashMap<[u8; 8], Compiled>,
}

impl TypeSchemas {
    /// The schema new values are written with.
    pub fn current(&self) -> &Compiled {
        &self.current
    }

    /// CRC-64-AVRO fingerprint of the current schema, as written after `0xC3 0x01`.
    pub fn current_fingerprint(&self) -> [u8; 8] {
        self.current_fingerprint
    }

    /// The revision a single-object value was written with, if known.
    pub fn revision(&self, fingerprint: &[u8; 8]) -> Option<&Compiled> {
        self.by_fingerprint.get(fingerprint)
    }
}

/// All event types' schemas, parsed once.
#[derive(Debug)]
pub struct Catalog {
    types: Vec<TypeSchemas>,
}

impl Catalog {
    /// The schemas of `event_type`.
    pub fn get(&self, event_type: EventType) -> &TypeSchemas {
        &self.types[event_type.index()]
    }
}

/// CRC-64-AVRO (Rabin) fingerprint of a schema's Parsing Canonical Form, little-endian, as written after
/// `0xC3 0x01`. `text` is the schema's JSON.
pub fn fingerprint(text: &str) -> Result<[u8; 8], String> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let canonical = parsing_canonical_form(&json).map_err(|e| e.to_string())?;
    Ok(crc64_avro(canonical.as_bytes()).to_le_bytes())
}

/// The Avro specification's 64-bit Rabin fingerprint ("CRC-64-AVRO").
fn crc64_avro(bytes: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    static TABLE: OnceLock<[u64; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u64; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut fp = i as u64;
            for _ in 0..8 {
                fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
            }
            *entry = fp;
        }
        table
    });
    bytes.iter().fold(EMPTY, |fp, &b| {
        (fp >> 8) ^ table[((fp ^ u64::from(b)) & 0xff) as usize]
    })
}

/// The process-wide catalogue. The embedded schemas are checked by this crate's tests, so a parse failure
/// here is a build defect, not an input error.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let types = EventType::ALL
            .into_iter()
            .map(|event_type| {
                let mut current = None;
                let mut by_fingerprint = HashMap::new();
                for source in SOURCES.iter().filter(|s| s.event_type == event_type) {
                    let schema = Schema::parse_str(source.text).unwrap_or_else(|e| {
                        panic!("embedded schema {} {event_type} is invalid: {e}", source.revision)
                    });
                    let fp = fingerprint(source.text).unwrap_or_else(|e| {
                        panic!("embedded schema {} {event_type} is invalid: {e}", source.revision)
                    });
                    let compiled = Compiled::new(schema);
                    if source.revision == "current" {
                        current = Some((compiled.clone(), fp));
                    }
                    by_fingerprint.insert(fp, compiled);
                }
                let (current, current_fingerprint) = current.expect("every event type has a current schema");
                TypeSchemas {
                    current,
                    current_fingerprint,
                    by_fingerprint,
                }
            })
            .collect();
        Catalog { types }
    })
}

#[cfg(test)]
mod tests {
    use apache_avro::schema_compatibility::SchemaCompatibility;

    use super::*;

    #[test]
    fn every_embedded_schema_parses_and_is_named_after_its_type() {
        for source in SOURCES {
            let schema = Schema::parse_str(source.text).unwrap();
            let Schema::Record(record) = &schema else {
                panic!("{} is not a record", source.event_type)
            };
            assert_eq!(record.name.namespace(), Some("switchyard.v1"));
            let expected: String = source
                .event_type
                .as_str()
                .split('.')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            assert_eq!(record.name.name(), expected);
        }
        assert_eq!(catalog().types.len(), EventType::ALL.len());
    }

    #[test]
    fn every_released_revision_stays_fully_compatible_with_the_current_schema() {
        for source in SOURCES.iter().filter(|s| s.revision != "current") {
            let released = Schema::parse_str(source.text).unwrap();
            let current = catalog().get(source.event_type).current().schema();
            SchemaCompatibility::mutual_read(&released, current)
                .unwrap_or_else(|e| panic!("{} {}: {e}", source.revision, source.event_type));
        }
    }

    #[test]
    fn shared_records_are_identical_in_every_file() {
        // Form and Response are written out in full in each self-contained file; they must not drift.
        let record = |text: &str, field: &str| {
            let json: serde_json::Value = serde_json::from_str(text).unwrap();
            json["fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == field)
                .unwrap()["type"]
                .clone()
        };
        let [fc, fu, rs, ru] = [0, 1, 2, 3].map(|i| SOURCES[i].text);
        assert_eq!(record(fc, "form"), record(fu, "form"));
        assert_eq!(record(rs, "response"), record(ru, "response"));
    }

    #[test]
    fn a_later_revision_that_adds_a_defaulted_field_is_compatible_both_ways() {
        // What the next revision may do: add fields with defaults (response.submitted), add an enum symbol
        // (form.created; older readers fall back to the enum's default, TEXT).
        let evolve = |event_type: EventType, from: &str, to: &str| {
            let source = SOURCES
                .iter()
                .find(|s| s.revision == "current" && s.event_type == event_type)
                .unwrap();
            let next = source.text.replace(from, to);
            assert_ne!(next, source.text, "the edit must apply");
            assert_ne!(
                fingerprint(&next).unwrap(),
                catalog().get(event_type).current_fingerprint()
            );
            let next = Schema::parse_str(&next).unwrap();
            let current = catalog().get(event_type).current().schema();
            SchemaCompatibility::can_read(current, &next).unwrap();
            SchemaCompatibility::can_read(&next, current).unwrap();
        };
        evolve(
            EventType::ResponseSubmitted,
            r#""name": "duration_ms","#,
            r#""name": "channel", "type": "string", "default": "web"}, {"name": "duration_ms","#,
        );
        evolve(
            EventType::FormCreated,
            r#""LOCATION""#,
            r#""LOCATION", "SIGNATURE""#,
        );
    }

    #[test]
    fn fingerprints_match_other_avro_implementations() {
        // fastavro 1.x: fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"), which agrees with Java
        // Avro's SchemaNormalization.parsingFingerprint("CRC-64-AVRO", ...) byte for byte.
        let expected = [
            (EventType::FormCreated, "bb2b00f6fd6e960e"),
            (EventType::FormUpdated, "e63b4ba1d1893d61"),
            (EventType::ResponseSubmitted, "697ad49bdeac93b3"),
            (EventType::ResponseUpdated, "5fbef1b19c780f2b"),
        ];
        for (event_type, hex) in expected {
            let got: String = catalog()
                .get(event_type)
                .current_fingerprint()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(got, hex, "{event_type}");
        }
    }

    #[test]
    fn removing_a_field_without_default_is_caught() {
        let broken = SOURCES[2]
            .text
            .replace(r#""name": "collector_id""#, r#""name": "collector""#);
        let broken = Schema::parse_str(&broken).unwrap();
        let current = catalog().get(EventType::ResponseSubmitted).current().schema();
        assert!(SchemaCompatibility::mutual_read(&broken, current).is_err());
    }
}
