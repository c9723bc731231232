//! `application/json` values: the first byte picks the event type (modulo 4), the rest is the value.
//!
//! Invariants: validation and decoding agree; an accepted value encodes as Avro with the current
//! schema into a single-object value that validates, whose JSON form re-encodes to the same bytes; a
//! value that decodes into the typed event encodes again in both content types.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_fuzz::event_type_of;
use switchyard_schemas::avro::SINGLE_OBJECT_MARKER;
use switchyard_schemas::catalog::{EventType, catalog};
use switchyard_schemas::events::{CoreEvent, FormCreated, FormUpdated, ResponseSubmitted, ResponseUpdated};
use switchyard_schemas::{ContentType, Reason, payload};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, value)) = data.split_first() else {
        return;
    };
    let event_type = event_type_of(selector);
    let validated = payload::validate(event_type.as_str(), ContentType::Json, Some(value));
    let decoded = payload::to_json(event_type, ContentType::Json, value);
    let json = match (validated, decoded) {
        (Ok(known), Ok(json)) => {
            assert_eq!(known, Some(event_type));
            json
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            assert_eq!(a.reason, Reason::InvalidPayload);
            return;
        }
        (validated, decoded) => panic!("validate and to_json disagree: {validated:?} / {decoded:?}"),
    };

    // The same value as Avro.
    let schemas = catalog().get(event_type);
    let mut avro = Vec::new();
    avro.extend_from_slice(&SINGLE_OBJECT_MARKER);
    avro.extend_from_slice(&schemas.current_fingerprint());
    schemas
        .current()
        .encode_json(&json, &mut avro)
        .expect("a validated JSON value encodes as Avro");
    payload::validate(event_type.as_str(), ContentType::Avro, Some(&avro)).expect("its Avro form validates");
    let normalised = payload::to_json(event_type, ContentType::Avro, &avro).expect("and decodes");
    let mut again = Vec::new();
    again.extend_from_slice(&avro[..10]);
    schemas
        .current()
        .encode_json(&normalised, &mut again)
        .expect("the decoded form encodes");
    assert_eq!(avro, again, "re-encoding is not stable for {normalised}");

    match event_type {
        EventType::FormCreated => typed::<FormCreated>(value),
        EventType::FormUpdated => typed::<FormUpdated>(value),
        EventType::ResponseSubmitted => typed::<ResponseSubmitted>(value),
        EventType::ResponseUpdated => typed::<ResponseUpdated>(value),
    }
});

fn typed<E: CoreEvent + std::fmt::Debug>(value: &[u8]) {
    if let Ok(event) = payload::decode::<E>(ContentType::Json, value) {
        for content_type in [ContentType::Avro, ContentType::Json] {
            let bytes = payload::encode(&event, content_type)
                .unwrap_or_else(|e| panic!("a decoded {event:?} does not encode: {e:?}"));
            payload::decode::<E>(content_type, &bytes).expect("an encoded event decodes");
        }
    }
}
