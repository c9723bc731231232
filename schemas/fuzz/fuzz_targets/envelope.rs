//! A core event record (key, headers, value; framing in `Record`) through the router's checks: the
//! envelope, then the payload of the type and content type it names.
//!
//! Invariants: an accepted envelope borrows exactly the header values it was given, and headers
//! rebuilt from it parse to the same envelope; a rejected one carries a reason code that reads back;
//! the payload check of an accepted envelope either passes or is `invalid_payload`/`unknown_schema`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_fuzz::Record;
use switchyard_schemas::envelope::{self, CONTENT_TYPE, ID, SOURCE, SPECVERSION, SUBJECT, TIME, TYPE};
use switchyard_schemas::{Reason, payload};

fuzz_target!(|data: &[u8]| {
    let record = Record::decode(data);
    let headers = || {
        record
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref()))
    };
    let envelope = match envelope::parse(record.key.as_deref(), headers()) {
        Ok(envelope) => envelope,
        Err(rejection) => {
            assert_eq!(Reason::from_code(rejection.reason.code()), Some(rejection.reason));
            assert!(!rejection.detail.is_empty());
            assert!(
                !matches!(
                    rejection.reason,
                    Reason::UnknownSchema
                        | Reason::InvalidPayload
                        | Reason::PluginTopicMissing
                        | Reason::PluginTopicRejected
                ),
                "the envelope check rejected with a payload or delivery reason: {rejection:?}"
            );
            return;
        }
    };

    // What was accepted is what the record says.
    assert_eq!(Some(envelope.team_id.as_bytes()), record.key.as_deref());
    let header = |name: &str| {
        record
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, value)| value.as_deref())
            .map(|value| std::str::from_utf8(value).expect("an accepted header is UTF-8"))
    };
    assert_eq!(header(SPECVERSION), Some("1.0"));
    assert_eq!(header(ID), Some(envelope.id));
    assert_eq!(header(SOURCE), Some(envelope.source));
    assert_eq!(header(TYPE), Some(envelope.event_type));
    assert_eq!(header(SUBJECT), envelope.subject);
    assert_eq!(header(TIME), envelope.time);
    let content_type = header(CONTENT_TYPE).expect("content-type was accepted");
    assert_eq!(
        envelope::ContentType::parse(content_type),
        Some(envelope.content_type)
    );

    // Rebuilt from the envelope alone, the headers parse to the same envelope.
    let media_type = envelope.content_type.media_type().as_bytes();
    let mut rebuilt: Vec<(&str, Option<&[u8]>)> = vec![
        (SPECVERSION, Some(b"1.0")),
        (ID, Some(envelope.id.as_bytes())),
        (SOURCE, Some(envelope.source.as_bytes())),
        (TYPE, Some(envelope.event_type.as_bytes())),
        (CONTENT_TYPE, Some(media_type)),
        (envelope::TEAMID, Some(envelope.team_id.as_bytes())),
    ];
    if let Some(subject) = envelope.subject {
        rebuilt.push((SUBJECT, Some(subject.as_bytes())));
    }
    if let Some(time) = envelope.time {
        rebuilt.push((TIME, Some(time.as_bytes())));
    }
    let again = envelope::parse(Some(envelope.team_id.as_bytes()), rebuilt)
        .expect("headers rebuilt from an accepted envelope are accepted");
    assert_eq!(again, envelope);

    // The router's next step: the payload of a known type.
    match payload::validate(
        envelope.event_type,
        envelope.content_type,
        record.value.as_deref(),
    ) {
        Ok(Some(known)) => assert_eq!(known.as_str(), envelope.event_type),
        Ok(None) => assert!(switchyard_schemas::EventType::from_ce_type(envelope.event_type).is_none()),
        Err(rejection) => assert!(
            matches!(rejection.reason, Reason::InvalidPayload | Reason::UnknownSchema),
            "{rejection:?}"
        ),
    }
});
