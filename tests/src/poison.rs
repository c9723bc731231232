//! A generated corpus of malformed core events, each a valid event with exactly one defect and the reason
//! code the router must dead-letter it with: keys (missing, not UTF-8, oversized, not an id), headers
//! (each required one missing, wrong spec version, empty, not UTF-8, a bad time, repeated, `ce_teamid` of
//! another team, an unsupported content type), and values (an unknown Avro schema, truncated and corrupted
//! Avro, Avro labelled JSON, wrong JSON types, JSON that is not an object or not UTF-8, huge values).
//!
//! Every record carries a `poison_id` header (the router ignores headers it does not know and keeps them on
//! the dead letter), so a test can match each dead letter to its case.

use switchyard_schemas::ContentType;
use switchyard_schemas::envelope as h;

use crate::broker::Outgoing;
use crate::records::{core_event, header};

/// The header that numbers the corpus.
pub const POISON_ID: &str = "poison_id";

/// One malformed event.
#[derive(Debug, Clone)]
pub struct Poison {
    /// Its index in the corpus (the `poison_id` header).
    pub index: usize,
    /// What is wrong, for messages.
    pub case: &'static str,
    /// The reason code expected on its dead letter.
    pub reason: &'static str,
    /// The record.
    pub record: Outgoing,
}

fn set(record: &mut Outgoing, name: &str, value: &[u8]) {
    record.headers.retain(|(k, _)| k != name);
    record.headers.push((name.to_owned(), Some(value.to_vec())));
}

fn remove(record: &mut Outgoing, name: &str) {
    record.headers.retain(|(k, _)| k != name);
}

/// Every kind of defect: (case, reason, content type of the valid event it starts from, mutation).
type Mutation = fn(&mut Outgoing, usize);

const CASES: &[(&str, &str, ContentType, Mutation)] = &[
    ("no key", "missing_key", ContentType::Json, |r, _| r.key = None),
    ("key not UTF-8", "invalid_key", ContentType::Json, |r, _| {
        r.key = Some(vec![0xff, 0xfe, 0x41])
    }),
    ("key too long", "invalid_key", ContentType::Avro, |r, _| {
        r.key = Some(vec![b'a'; 129])
    }),
    ("key not an id", "invalid_key", ContentType::Json, |r, _| {
        r.key = Some(b"acme corp/eu".to_vec())
    }),
    (
        "no ce_specversion",
        "missing_header",
        ContentType::Json,
        |r, _| remove(r, h::SPECVERSION),
    ),
    ("no ce_id", "missing_header", ContentType::Avro, |r, _| {
        remove(r, h::ID)
    }),
    ("no ce_source", "missing_header", ContentType::Json, |r, _| {
        remove(r, h::SOURCE)
    }),
    ("no ce_type", "missing_header", ContentType::Avro, |r, _| {
        remove(r, h::TYPE)
    }),
    ("no content-type", "missing_header", ContentType::Json, |r, _| {
        remove(r, h::CONTENT_TYPE)
    }),
    ("spec version 0.3", "invalid_header", ContentType::Json, |r, _| {
        set(r, h::SPECVERSION, b"0.3")
    }),
    ("empty ce_id", "invalid_header", ContentType::Avro, |r, _| {
        set(r, h::ID, b"")
    }),
    (
        "ce_source not UTF-8",
        "invalid_header",
        ContentType::Json,
        |r, _| set(r, h::SOURCE, &[0xc3, 0x28]),
    ),
    (
        "ce_time not a time",
        "invalid_header",
        ContentType::Json,
        |r, _| set(r, h::TIME, b"yesterday"),
    ),
    ("ce_type twice", "invalid_header", ContentType::Avro, |r, _| {
        r.headers.push(header(h::TYPE, "form.created"))
    }),
    (
        "ce_teamid of another team",
        "teamid_mismatch",
        ContentType::Json,
        |r, _| set(r, h::TEAMID, b"globex"),
    ),
    (
        "content-type text/plain",
        "unsupported_content_type",
        ContentType::Json,
        |r, _| set(r, h::CONTENT_TYPE, b"text/plain"),
    ),
    (
        "unknown Avro schema",
        "unknown_schema",
        ContentType::Avro,
        |r, _| {
            // Single-object encoding: C3 01, then the 8-byte fingerprint.
            if let Some(value) = r.value.as_mut() {
                value[2..10].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x11, 0x22, 0x33]);
            }
        },
    ),
    ("truncated Avro", "invalid_payload", ContentType::Avro, |r, i| {
        if let Some(value) = r.value.as_mut() {
            let keep = 10 + (i % (value.len() - 11).max(1));
            value.truncate(keep.min(value.len() - 1));
        }
    }),
    (
        "Avro with trailing garbage",
        "invalid_payload",
        ContentType::Avro,
        |r, i| {
            if let Some(value) = r.value.as_mut() {
                value.extend_from_slice(&[0x02, (i % 250) as u8, 0x7f]);
            }
        },
    ),
    (
        "Avro labelled JSON",
        "invalid_payload",
        ContentType::Avro,
        |r, _| set(r, h::CONTENT_TYPE, b"application/json"),
    ),
    (
        "a timestamp as a string",
        "invalid_payload",
        ContentType::Json,
        |r, _| {
            let text = String::from_utf8(r.value.clone().unwrap_or_default()).unwrap_or_default();
            let broken = text.replacen(
                "\"submitted_at\":1795000000000",
                "\"submitted_at\":\"2026-11-22\"",
                1,
            );
            r.value = Some(broken.into_bytes());
        },
    ),
    ("JSON array", "invalid_payload", ContentType::Json, |r, _| {
        r.value = Some(b"[1,2,3]".to_vec())
    }),
    ("JSON not UTF-8", "invalid_payload", ContentType::Json, |r, _| {
        r.value = Some(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'])
    }),
    (
        "huge JSON of the wrong shape",
        "invalid_payload",
        ContentType::Json,
        |r, i| {
            let filler = "x".repeat(100_000 + (i % 7) * 1000);
            r.value = Some(format!(r#"{{"response":{{"id":"{filler}"}}}}"#).into_bytes());
        },
    ),
];

/// `n` malformed events of `team` (the key, unless the case changes it), cycling through every case.
pub fn corpus(n: usize, team: &str) -> Vec<Poison> {
    (0..n)
        .map(|index| {
            let (case, reason, content_type, mutate) = CASES[index % CASES.len()];
            let mut record = core_event(
                team,
                "response.submitted",
                &format!("poison-{index}"),
                content_type,
            );
            mutate(&mut record, index);
            record.headers.push(header(POISON_ID, &index.to_string()));
            Poison {
                index,
                case,
                reason,
                record,
            }
        })
        .collect()
}

/// How many kinds of defect the corpus has.
pub fn kinds() -> usize {
    CASES.len()
}
