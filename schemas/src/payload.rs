//! Payload validation, decoding and encoding for both content types.
//!
//! `application/avro`: single-object encoding, `0xC3 0x01`, the writer schema's 8-byte CRC-64-AVRO
//! fingerprint (little-endian), then the Avro binary body. `application/json`: a JSON object following the
//! same schema, unions as the bare value, timestamps as epoch milliseconds, dates as epoch days.

use serde_json::Value;

use crate::avro::{SINGLE_OBJECT_MARKER, split_single_object};
use crate::catalog::{EventType, catalog};
use crate::dead_letter::{Reason, Rejection};
use crate::envelope::ContentType;
use crate::events::CoreEvent;
use crate::projection::{self, DataPath, JsonProblem, Selection};

/// Checks a value against its event type's schema. Types the contract does not define pass unchecked
/// (they are routed to plugins that list them); the result says which known type it was.
pub fn validate(
    event_type: &str,
    content_type: ContentType,
    value: Option<&[u8]>,
) -> Result<Option<EventType>, Rejection> {
    let Some(known) = EventType::from_ce_type(event_type) else {
        return Ok(None);
    };
    let value = value.ok_or_else(|| no_value(known))?;
    let schemas = catalog().get(known);
    match content_type {
        ContentType::Avro => {
            let (fingerprint, body) = split_single_object(value).map_err(|e| invalid(known, e))?;
            let revision = schemas
                .revision(&fingerprint)
                .ok_or_else(|| unknown_schema(known, &fingerprint))?;
            revision.validate(body).map_err(|e| invalid(known, e))?;
        }
        ContentType::Json => {
            let json = parse_json_object(known, value)?;
            // Encoding into a scratch buffer is the JSON validation: the same rules as the Avro form.
            let mut scratch = Vec::with_capacity(value.len());
            schemas
                .current()
                .encode_json(&json, &mut scratch)
                .map_err(|e| invalid(known, e))?;
        }
    }
    Ok(Some(known))
}

/// Decodes a value of a known type into the contract's bare-JSON form (what plugins receive as `data`).
pub fn to_json(event_type: EventType, content_type: ContentType, value: &[u8]) -> Result<Value, Rejection> {
    let schemas = catalog().get(event_type);
    match content_type {
        ContentType::Avro => {
            let (fingerprint, body) = split_single_object(value).map_err(|e| invalid(event_type, e))?;
            let revision = schemas
                .revision(&fingerprint)
                .ok_or_else(|| unknown_schema(event_type, &fingerprint))?;
            revision.to_json(body).map_err(|e| invalid(event_type, e))
        }
        ContentType::Json => {
            let json = parse_json_object(event_type, value)?;
            let mut scratch = Vec::with_capacity(value.len());
            schemas
                .current()
                .encode_json(&json, &mut scratch)
                .map_err(|e| invalid(event_type, e))?;
            Ok(json)
        }
    }
}

/// The parts of a value that `paths` name, in the bare-JSON form, as a sparse tree built in one pass (see
/// [`crate::projection`] for what is kept); `Value::Null` when `paths` is empty.
///
/// - A v1 type in Avro: the whole datum is read and checked as [`validate`] does, so a caller may call
///   this instead of `validate`; what is not requested is skipped, not built.
/// - A v1 type in JSON: the value must be a JSON object; it is not checked against the schema (validate
///   first), only parsed, keeping the requested parts.
/// - A type the contract does not define: a JSON value is projected whatever its shape, and is
///   `Value::Null` when it is absent or not JSON (nothing to read); an Avro value is `Value::Null` (there
///   is no schema to read it with).
pub fn project(
    event_type: &str,
    content_type: ContentType,
    value: Option<&[u8]>,
    paths: &[&DataPath],
) -> Result<Value, Rejection> {
    let paths = projection::sorted(paths);
    let selection = Selection::root(&paths);
    let Some(known) = EventType::from_ce_type(event_type) else {
        return Ok(match (content_type, value) {
            (ContentType::Json, Some(text)) => {
                projection::project_json(text, selection, false).unwrap_or(Value::Null)
            }
            _ => Value::Null,
        });
    };
    let value = value.ok_or_else(|| no_value(known))?;
    match content_type {
        ContentType::Avro => {
            let (fingerprint, body) = split_single_object(value).map_err(|e| invalid(known, e))?;
            let revision = catalog()
                .get(known)
                .revision(&fingerprint)
                .ok_or_else(|| unknown_schema(known, &fingerprint))?;
            revision.project(body, selection).map_err(|e| invalid(known, e))
        }
        ContentType::Json => {
            projection::project_json(value, selection, true).map_err(|problem| match problem {
                JsonProblem::Syntax(e) => Rejection::new(
                    Reason::InvalidPayload,
                    format!("the {known} value is not JSON: {e}"),
                ),
                JsonProblem::NotAnObject => Rejection::new(
                    Reason::InvalidPayload,
                    format!("the {known} value is not a JSON object"),
                ),
            })
        }
    }
}

/// Like [`to_json`], but appends the bare-JSON form to `out` as compact JSON text without building a
/// tree: an Avro value is written as it is read; a JSON value is checked as [`validate`] does and appended
/// as it came (trimmed). On an error `out` may hold a partial text.
pub fn write_json(
    event_type: EventType,
    content_type: ContentType,
    value: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Rejection> {
    match content_type {
        ContentType::Avro => {
            let (fingerprint, body) = split_single_object(value).map_err(|e| invalid(event_type, e))?;
            let revision = catalog()
                .get(event_type)
                .revision(&fingerprint)
                .ok_or_else(|| unknown_schema(event_type, &fingerprint))?;
            revision.write_json(body, out).map_err(|e| invalid(event_type, e))
        }
        ContentType::Json => {
            validate(event_type.as_str(), content_type, Some(value))?;
            out.extend_from_slice(value.trim_ascii());
            Ok(())
        }
    }
}

/// Decodes a typed event from either content type.
pub fn decode<E: CoreEvent>(content_type: ContentType, value: &[u8]) -> Result<E, Rejection> {
    let json = to_json(E::TYPE, content_type, value)?;
    serde_json::from_value(json).map_err(|e| {
        Rejection::new(
            Reason::InvalidPayload,
            format!("the {} value does not decode: {e}", E::TYPE),
        )
    })
}

/// Encodes a typed event in either content type. Fails only if the typed value breaks its schema (an
/// integer out of range, say), which is a bug in the caller.
pub fn encode<E: CoreEvent>(event: &E, content_type: ContentType) -> Result<Vec<u8>, Rejection> {
    let json = serde_json::to_value(event).map_err(|e| {
        Rejection::new(
            Reason::InvalidPayload,
            format!("the {} value does not serialize: {e}", E::TYPE),
        )
    })?;
    let schemas = catalog().get(E::TYPE);
    match content_type {
        ContentType::Json => {
            let mut scratch = Vec::new();
            schemas
                .current()
                .encode_json(&json, &mut scratch)
                .map_err(|e| invalid(E::TYPE, e))?;
            serde_json::to_vec(&json)
                .map_err(|e| Rejection::new(Reason::InvalidPayload, format!("JSON encoding failed: {e}")))
        }
        ContentType::Avro => {
            let mut out = Vec::with_capacity(512);
            out.extend_from_slice(&SINGLE_OBJECT_MARKER);
            out.extend_from_slice(&schemas.current_fingerprint());
            schemas
                .current()
                .encode_json(&json, &mut out)
                .map_err(|e| invalid(E::TYPE, e))?;
            Ok(out)
        }
    }
}

fn parse_json_object(event_type: EventType, value: &[u8]) -> Result<Value, Rejection> {
    let json: Value = serde_json::from_slice(value).map_err(|e| {
        Rejection::new(
            Reason::InvalidPayload,
            format!("the {event_type} value is not JSON: {e}"),
        )
    })?;
    if !json.is_object() {
        return Err(Rejection::new(
            Reason::InvalidPayload,
            format!("the {event_type} value is not a JSON object"),
        ));
    }
    Ok(json)
}

fn no_value(event_type: EventType) -> Rejection {
    Rejection::new(
        Reason::InvalidPayload,
        format!("the {event_type} record has no value"),
    )
}

fn invalid(event_type: EventType, error: crate::avro::DataError) -> Rejection {
    Rejection::new(
        Reason::InvalidPayload,
        format!("the {event_type} value does not match its schema {error}"),
    )
}

fn unknown_schema(event_type: EventType, fingerprint: &[u8; 8]) -> Rejection {
    let hex: String = fingerprint.iter().map(|b| format!("{b:02x}")).collect();
    Rejection::new(
        Reason::UnknownSchema,
        format!(
            "schema fingerprint {hex} is no known revision of {event_type}; upgrade consumers before producers"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::*;

    fn response() -> ResponseSubmitted {
        crate::samples::response_every_answer_kind("acme", "r-1")
    }

    #[test]
    fn typed_events_round_trip_in_both_content_types() {
        let event = response();
        for content_type in [ContentType::Avro, ContentType::Json] {
            let bytes = encode(&event, content_type).unwrap();
            assert_eq!(
                validate("response.submitted", content_type, Some(&bytes)).unwrap(),
                Some(EventType::ResponseSubmitted)
            );
            assert_eq!(decode::<ResponseSubmitted>(content_type, &bytes).unwrap(), event);
        }
    }

    #[test]
    fn written_json_is_the_decoded_json_in_both_content_types() {
        let event = response();
        for content_type in [ContentType::Avro, ContentType::Json] {
            let bytes = encode(&event, content_type).unwrap();
            let mut text = Vec::new();
            write_json(EventType::ResponseSubmitted, content_type, &bytes, &mut text).unwrap();
            assert_eq!(
                serde_json::from_slice::<Value>(&text).unwrap(),
                to_json(EventType::ResponseSubmitted, content_type, &bytes).unwrap(),
                "{content_type:?}"
            );
            let broken = &bytes[..bytes.len() - 1];
            assert_eq!(
                write_json(
                    EventType::ResponseSubmitted,
                    content_type,
                    broken,
                    &mut Vec::new()
                )
                .unwrap_err()
                .reason,
                to_json(EventType::ResponseSubmitted, content_type, broken)
                    .unwrap_err()
                    .reason
            );
        }
    }

    #[test]
    fn avro_values_carry_the_single_object_header() {
        let bytes = encode(&response(), ContentType::Avro).unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        assert_eq!(
            bytes[2..10],
            catalog().get(EventType::ResponseSubmitted).current_fingerprint()
        );
    }

    #[test]
    fn unknown_types_pass_unchecked() {
        assert_eq!(
            validate("payment.received", ContentType::Json, Some(b"not json")).unwrap(),
            None
        );
        assert_eq!(
            validate("payment.received", ContentType::Avro, None).unwrap(),
            None
        );
    }

    #[test]
    fn bad_payloads_are_named() {
        let avro = encode(&response(), ContentType::Avro).unwrap();
        let reason = |ct, v: &[u8]| validate("response.submitted", ct, Some(v)).unwrap_err().reason;
        assert_eq!(
            reason(ContentType::Avro, &avro[..avro.len() - 3]),
            Reason::InvalidPayload
        );
        assert_eq!(reason(ContentType::Avro, b"{}"), Reason::InvalidPayload);
        let mut other_fingerprint = avro.clone();
        other_fingerprint[5] ^= 0xff;
        assert_eq!(
            reason(ContentType::Avro, &other_fingerprint),
            Reason::UnknownSchema
        );
        // A form.created value under a response.submitted type: known fingerprint, wrong type.
        let form_fp = catalog().get(EventType::FormCreated).current_fingerprint();
        let mut wrong_type = avro.clone();
        wrong_type[2..10].copy_from_slice(&form_fp);
        assert_eq!(reason(ContentType::Avro, &wrong_type), Reason::UnknownSchema);
        assert_eq!(reason(ContentType::Json, b"[1,2]"), Reason::InvalidPayload);
        assert_eq!(
            reason(ContentType::Json, b"{\"response\": 1}"),
            Reason::InvalidPayload
        );
        assert_eq!(reason(ContentType::Json, &[0xff, 0xfe]), Reason::InvalidPayload);
        assert_eq!(
            validate("response.submitted", ContentType::Json, None)
                .unwrap_err()
                .reason,
            Reason::InvalidPayload
        );
        let json = encode(&response(), ContentType::Json).unwrap();
        let mut value: Value = serde_json::from_slice(&json).unwrap();
        value["response"]["form_version"] = Value::String("3".into());
        let detail = validate(
            "response.submitted",
            ContentType::Json,
            Some(&serde_json::to_vec(&value).unwrap()),
        )
        .unwrap_err()
        .detail;
        assert!(detail.contains("/response/form_version"), "{detail}");
    }

    #[test]
    fn json_from_a_newer_producer_with_extra_fields_is_accepted() {
        let json = encode(&response(), ContentType::Json).unwrap();
        let mut value: Value = serde_json::from_slice(&json).unwrap();
        value["response"]["channel"] = Value::String("sms".into());
        let bytes = serde_json::to_vec(&value).unwrap();
        assert!(validate("response.submitted", ContentType::Json, Some(&bytes)).is_ok());
        assert_eq!(
            decode::<ResponseSubmitted>(ContentType::Json, &bytes).unwrap(),
            response()
        );
    }

    #[test]
    fn unknown_question_kinds_read_as_text() {
        let kind: QuestionKind = serde_json::from_str("\"SIGNATURE\"").unwrap();
        assert_eq!(kind, QuestionKind::Text);
    }
}
