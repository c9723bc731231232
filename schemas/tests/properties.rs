//! Properties of the contract's parsers over arbitrary input: they never panic, they accept what the
//! encoders produce, and a valid event survives a change of content type unchanged. These run with every
//! `cargo test` (a few hundred cases each); the cargo-fuzz targets in `schemas/fuzz/` (nightly, run by
//! hand: docs/fuzzing.md) drive the same parsers for minutes.

use std::collections::BTreeMap;

use proptest::prelude::*;
use switchyard_schemas::ContentType;
use switchyard_schemas::catalog::EventType;
use switchyard_schemas::control::{Enablement, PluginManifest, parse_enablement_key, parse_installation_key};
use switchyard_schemas::envelope;
use switchyard_schemas::events::{Answer, Response, ResponseSubmitted};
use switchyard_schemas::payload;

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ce_specversion".to_owned()),
        Just("ce_id".to_owned()),
        Just("ce_source".to_owned()),
        Just("ce_type".to_owned()),
        Just("ce_time".to_owned()),
        Just("ce_subject".to_owned()),
        Just("ce_teamid".to_owned()),
        Just("content-type".to_owned()),
        "[a-z_-]{1,12}",
    ]
}

fn answer() -> impl Strategy<Value = Option<Answer>> {
    prop_oneof![
        Just(None),
        ".{0,40}".prop_map(|text| Some(Answer::Text { text })),
        (-1e9f64..1e9).prop_map(|number| Some(Answer::Number { number })),
        "[a-z]{1,8}".prop_map(|choice| Some(Answer::Choice { choice })),
        prop::collection::vec("[a-z]{1,8}", 0..4).prop_map(|choices| Some(Answer::MultiChoice { choices })),
        (-20_000i32..40_000).prop_map(|date| Some(Answer::Date { date })),
        "\\+[1-9][0-9]{7,14}".prop_map(|phone| Some(Answer::Phone { phone })),
        (-90f64..90.0, -180f64..180.0).prop_map(|(latitude, longitude)| Some(Answer::Location {
            latitude,
            longitude,
            accuracy_m: None,
        })),
    ]
}

fn response_submitted() -> impl Strategy<Value = ResponseSubmitted> {
    (
        "[a-z0-9-]{1,20}",
        "[a-z][a-z0-9-]{0,20}",
        prop::collection::btree_map("[a-z_]{1,12}", answer(), 0..8),
        0i64..4_000_000_000_000,
        prop::option::of(0i64..10_000_000),
    )
        .prop_map(
            |(id, team, answers, submitted_at, duration_ms)| ResponseSubmitted {
                response: Response {
                    id,
                    form_id: "form-1".to_owned(),
                    form_version: 3,
                    team_id: team,
                    collector_id: "collector-1".to_owned(),
                    submitted_at,
                    locale: "sw-KE".to_owned(),
                    answers: answers.into_iter().collect::<BTreeMap<_, _>>(),
                    duration_ms,
                },
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_envelope_parser_never_panics(
        key in prop::option::of(prop::collection::vec(any::<u8>(), 0..160)),
        headers in prop::collection::vec(
            (header_name(), prop::option::of(prop::collection::vec(any::<u8>(), 0..40))), 0..12),
    ) {
        let _ = envelope::parse(
            key.as_deref(),
            headers.iter().map(|(name, value)| (name.as_str(), value.as_deref())),
        );
    }

    #[test]
    fn payload_decoders_never_panic_on_arbitrary_bytes(
        value in prop::collection::vec(any::<u8>(), 0..600),
        avro_prefix in any::<bool>(),
    ) {
        let mut bytes = value;
        if avro_prefix && bytes.len() >= 10 {
            // Make the single-object header plausible so the body reaches the schema walker.
            bytes[0] = 0xc3;
            bytes[1] = 0x01;
            let fingerprint = switchyard_schemas::catalog::catalog()
                .get(EventType::ResponseSubmitted)
                .current_fingerprint();
            bytes[2..10].copy_from_slice(&fingerprint);
        }
        for event_type in EventType::ALL {
            for content_type in [ContentType::Avro, ContentType::Json] {
                let _ = payload::validate(event_type.as_str(), content_type, Some(&bytes));
                let _ = payload::to_json(event_type, content_type, &bytes);
            }
        }
    }

    #[test]
    fn encoded_events_validate_and_survive_both_encodings(event in response_submitted()) {
        for content_type in [ContentType::Avro, ContentType::Json] {
            let bytes = payload::encode(&event, content_type).expect("a typed event encodes");
            prop_assert!(payload::validate("response.submitted", content_type, Some(&bytes)).is_ok());
            let back: ResponseSubmitted = payload::decode(content_type, &bytes).expect("it decodes");
            prop_assert_eq!(&back, &event);
        }
    }

    #[test]
    fn control_record_parsers_never_panic(
        key in prop::collection::vec(any::<u8>(), 0..80),
        value in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let _ = parse_enablement_key(&key);
        let _ = parse_installation_key(&key);
        let _ = Enablement::parse(&key, &value);
        let _ = PluginManifest::parse(&String::from_utf8_lossy(&key), &value);
    }
}
