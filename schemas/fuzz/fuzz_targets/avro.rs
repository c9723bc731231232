//! `application/avro` values: the first byte picks one of the embedded schema revisions (event type and
//! fingerprint), the rest is the Avro body after `0xC3 0x01 <fingerprint>`. A second pass feeds the
//! raw input as the whole value, marker and fingerprint included.
//!
//! Invariants: validation (which builds nothing), decoding to JSON and writing JSON text agree, with the
//! same reason, and the text parses to the decoded value; a
//! decoded value re-encodes with the current schema to bytes that decode and re-encode to themselves;
//! a value that decodes into the typed event encodes again.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchyard_fuzz::{Revision, revisions};
use switchyard_schemas::avro::SINGLE_OBJECT_MARKER;
use switchyard_schemas::catalog::{EventType, catalog};
use switchyard_schemas::events::{FormCreated, FormUpdated, ResponseSubmitted, ResponseUpdated};
use switchyard_schemas::{ContentType, Reason, payload};

fn known() -> &'static [Revision] {
    static REVISIONS: OnceLock<Vec<Revision>> = OnceLock::new();
    REVISIONS.get_or_init(revisions)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let revision = known()[usize::from(selector) % known().len()];
    let mut value = Vec::with_capacity(body.len() + 10);
    value.extend_from_slice(&SINGLE_OBJECT_MARKER);
    value.extend_from_slice(&revision.fingerprint);
    value.extend_from_slice(body);
    check(revision.event_type, &value);
    // The raw input as a whole value: the header checks (marker, length, fingerprint).
    check(revision.event_type, data);
});

fn check(event_type: EventType, value: &[u8]) {
    let validated = payload::validate(event_type.as_str(), ContentType::Avro, Some(value));
    let decoded = payload::to_json(event_type, ContentType::Avro, value);
    match (&validated, &decoded) {
        (Ok(known), Ok(_)) => assert_eq!(*known, Some(event_type)),
        (Err(a), Err(b)) => {
            assert_eq!(a.reason, b.reason, "{a:?} / {b:?}");
            assert!(matches!(a.reason, Reason::InvalidPayload | Reason::UnknownSchema));
        }
        _ => panic!("validate and to_json disagree: {validated:?} / {decoded:?}"),
    }
    let mut text = Vec::new();
    match (payload::write_json(event_type, ContentType::Avro, value, &mut text), &decoded) {
        (Ok(()), Ok(json)) => assert_eq!(&serde_json::from_slice::<Value>(&text).unwrap(), json),
        (Err(a), Err(b)) => assert_eq!(a.reason, b.reason),
        (written, _) => panic!("write_json and to_json disagree: {written:?} / {decoded:?}"),
    }
    let Ok(json) = decoded else {
        return;
    };
    reencode(event_type, &json);
    typed_round_trip(event_type, value);
}

/// Re-encoding with the current schema is idempotent after one normalisation (defaults filled in,
/// unknown fields dropped, floats narrowed). It may fail only where decoding made a JSON null of a
/// NaN or an infinity, which the current schema's field may not accept.
fn reencode(event_type: EventType, json: &Value) {
    let current = catalog().get(event_type).current();
    let mut first = Vec::new();
    if current.encode_json(json, &mut first).is_err() {
        return;
    }
    let normalised = current
        .to_json(&first)
        .expect("bytes encoded with the current schema decode");
    let mut second = Vec::new();
    current
        .encode_json(&normalised, &mut second)
        .expect("a decoded value encodes");
    assert_eq!(first, second, "re-encoding is not stable for {normalised}");
}

fn typed_round_trip(event_type: EventType, value: &[u8]) {
    match event_type {
        EventType::FormCreated => typed::<FormCreated>(value),
        EventType::FormUpdated => typed::<FormUpdated>(value),
        EventType::ResponseSubmitted => typed::<ResponseSubmitted>(value),
        EventType::ResponseUpdated => typed::<ResponseUpdated>(value),
    }
}

fn typed<E>(value: &[u8])
where
    E: switchyard_schemas::events::CoreEvent + std::fmt::Debug,
{
    if let Ok(event) = payload::decode::<E>(ContentType::Avro, value) {
        for content_type in [ContentType::Avro, ContentType::Json] {
            let bytes = payload::encode(&event, content_type)
                .unwrap_or_else(|e| panic!("a decoded {event:?} does not encode: {e:?}"));
            payload::decode::<E>(content_type, &bytes).expect("an encoded event decodes");
        }
    }
}
