//! From a record of `plugin.<id>.events` to what a plugin receives: the attributes ([`EventMeta`]), the
//! data as the contract's JSON, and the typed [`Event`] (or, for [`Decoding::JsonText`], the data as JSON
//! text alone). The router validated the record already; one that still does not decode (written around
//! the router, or by a newer contract) is dead-lettered as `invalid_event` rather than retried.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use switchyard_schemas::backfill;
use switchyard_schemas::catalog::EventType;
use switchyard_schemas::dead_letter::INSTALLATION;
use switchyard_schemas::envelope::{self, ContentType};
use switchyard_schemas::ids::{DEFAULT_INSTALLATION, check_installation_id};
use switchyard_schemas::payload;

use crate::plugin::{Context, Decoding, Event, EventMeta};

/// A decoded record.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Attributes.
    pub meta: EventMeta,
    /// The data as JSON (`null` for [`Decoding::JsonText`]).
    pub data: Value,
    /// The data as compact JSON text ([`Decoding::JsonText`] only).
    pub data_json: Option<String>,
    /// The typed event (`Event::Other(null)` for [`Decoding::JsonText`]).
    pub event: Event,
}

impl Decoded {
    /// An event decoded into its JSON tree and typed event ([`Decoding::Typed`]).
    pub fn tree(meta: EventMeta, data: Value, event: Event) -> Self {
        Self {
            meta,
            data,
            data_json: None,
            event,
        }
    }

    /// The data's ids that lanes are keyed by (`/response/id`, `/response/form_id`, `/form/id`): the data
    /// itself, or for [`Decoding::JsonText`] a tree of these ids alone, parsed from the text.
    pub fn ids(&self) -> Cow<'_, Value> {
        match &self.data_json {
            None => Cow::Borrowed(&self.data),
            Some(text) => Cow::Owned(
                serde_json::from_str::<Ids>(text)
                    .map(Ids::into_tree)
                    .unwrap_or(Value::Null),
            ),
        }
    }
}

/// Decodes a record's key, headers and value, as much as `decoding` asks.
pub fn decode<'a>(
    key: Option<&'a [u8]>,
    headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    value: Option<&[u8]>,
    decoding: Decoding,
) -> Result<Decoded, String> {
    let (mut installation, mut backfill) = (None, None);
    let headers = headers.into_iter().inspect(|&(name, value)| {
        if name == INSTALLATION {
            installation = Some(value);
        } else if name == backfill::HEADER {
            backfill = Some(value);
        }
    });
    let envelope = envelope::parse(key, headers).map_err(|rejection| rejection.to_string())?;
    let installation = installation_of(installation)?;
    let backfill = match backfill {
        None => None,
        Some(value) => Some(
            value
                .and_then(|v| std::str::from_utf8(v).ok())
                .filter(|id| switchyard_schemas::backfill::check_id(id).is_ok())
                .ok_or_else(|| format!("the {} header is not a backfill id", backfill::HEADER))?
                .to_owned(),
        ),
    };
    let value = value.unwrap_or_default();
    let meta = EventMeta {
        id: envelope.id.to_owned(),
        source: envelope.source.to_owned(),
        event_type: envelope.event_type.to_owned(),
        time: envelope.time.map(str::to_owned),
        subject: envelope.subject.map(str::to_owned),
        team_id: envelope.team_id.to_owned(),
        installation,
        backfill,
    };
    let known = EventType::from_ce_type(envelope.event_type);
    if decoding == Decoding::JsonText {
        let mut text = Vec::with_capacity(value.len() + value.len() / 2);
        match (known, envelope.content_type) {
            (Some(known), content_type) => {
                payload::write_json(known, content_type, value, &mut text).map_err(|r| r.to_string())?
            }
            (None, ContentType::Json) => {
                serde_json::from_slice::<IgnoredAny>(value)
                    .map_err(|e| format!("the value is not JSON: {e}"))?;
                text.extend_from_slice(value.trim_ascii());
            }
            (None, ContentType::Avro) => text.extend_from_slice(b"null"),
        }
        let text = String::from_utf8(text).map_err(|e| format!("the data is not UTF-8: {e}"))?;
        return Ok(Decoded {
            meta,
            data: Value::Null,
            data_json: Some(text),
            event: Event::Other(Value::Null),
        });
    }
    let Some(known) = known else {
        let data = match envelope.content_type {
            ContentType::Json => {
                serde_json::from_slice(value).map_err(|e| format!("the value is not JSON: {e}"))?
            }
            ContentType::Avro => Value::Null,
        };
        return Ok(Decoded::tree(meta, data.clone(), Event::Other(data)));
    };
    let data = payload::to_json(known, envelope.content_type, value).map_err(|r| r.to_string())?;
    // Deserialize from the borrowed tree: the JSON form is kept for the plugin as well.
    let fail = |e: serde_json::Error| format!("the {known} data does not decode: {e}");
    let event = match known {
        EventType::FormCreated => Event::FormCreated(Deserialize::deserialize(&data).map_err(fail)?),
        EventType::FormUpdated => Event::FormUpdated(Deserialize::deserialize(&data).map_err(fail)?),
        EventType::ResponseSubmitted => {
            Event::ResponseSubmitted(Deserialize::deserialize(&data).map_err(fail)?)
        }
        EventType::ResponseUpdated => Event::ResponseUpdated(Deserialize::deserialize(&data).map_err(fail)?),
    };
    Ok(Decoded::tree(meta, data, event))
}

/// The installation a `switchyard_installation` header value names (the last one, if several); no header =
/// the default installation.
fn installation_of(header: Option<Option<&[u8]>>) -> Result<String, String> {
    let Some(value) = header else {
        return Ok(DEFAULT_INSTALLATION.to_owned());
    };
    let text = value
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .ok_or_else(|| format!("the {INSTALLATION} header is empty or not UTF-8"))?;
    check_installation_id(text).map_err(|e| format!("the {INSTALLATION} header is invalid: {e}"))?;
    Ok(text.to_owned())
}

/// The ids of a data object that lanes read, parsed from its text (everything else is skipped).
#[derive(Deserialize)]
struct Ids {
    #[serde(default)]
    response: Option<IdFields>,
    #[serde(default)]
    form: Option<IdFields>,
}

#[derive(Deserialize)]
struct IdFields {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    form_id: Option<String>,
}

impl Ids {
    fn into_tree(self) -> Value {
        let fields = |f: IdFields| serde_json::json!({"id": f.id, "form_id": f.form_id});
        serde_json::json!({
            "response": self.response.map(fields),
            "form": self.form.map(fields),
        })
    }
}

/// Appends the event as CloudEvents structured JSON with the data decoded (the body of `POST
/// {url}/execute`) to `out`, compact, the attributes in the order of [`structured`]'s sorted keys. The data
/// is copied as text when the context has it ([`Decoding::JsonText`]), else serialized from the tree.
pub fn write_structured(ctx: &Context, out: &mut Vec<u8>) {
    let meta = &ctx.meta;
    // Writing into a Vec cannot fail.
    let string = |out: &mut Vec<u8>, name: &str, value: &str| {
        out.extend_from_slice(name.as_bytes());
        let _ = serde_json::to_writer(&mut *out, value);
    };
    out.push(b'{');
    if let Some(backfill) = &meta.backfill {
        string(out, "\"backfill\":", backfill);
        out.push(b',');
    }
    out.extend_from_slice(b"\"data\":");
    match &ctx.data_json {
        Some(text) => out.extend_from_slice(text.as_bytes()),
        None => {
            let _ = serde_json::to_writer(&mut *out, &ctx.data);
        }
    }
    out.extend_from_slice(b",\"datacontenttype\":\"application/json\"");
    string(out, ",\"id\":", &meta.id);
    if !meta.is_default_installation() {
        string(out, ",\"installation\":", &meta.installation);
    }
    string(out, ",\"source\":", &meta.source);
    out.extend_from_slice(b",\"specversion\":\"1.0\"");
    if let Some(subject) = &meta.subject {
        string(out, ",\"subject\":", subject);
    }
    string(out, ",\"teamid\":", &meta.team_id);
    if let Some(time) = &meta.time {
        string(out, ",\"time\":", time);
    }
    if let Some(traceparent) = &ctx.traceparent {
        string(out, ",\"traceparent\":", traceparent);
    }
    string(out, ",\"type\":", &meta.event_type);
    out.push(b'}');
}

/// The event as CloudEvents structured JSON with the data decoded, as a JSON value (see
/// [`write_structured`]).
pub fn structured(meta: &EventMeta, data: &Value) -> Value {
    let mut event = serde_json::json!({
        "specversion": "1.0",
        "id": meta.id,
        "source": meta.source,
        "type": meta.event_type,
        "teamid": meta.team_id,
        "datacontenttype": "application/json",
        "data": data,
    });
    if let Some(time) = &meta.time {
        event["time"] = Value::String(time.clone());
    }
    if let Some(subject) = &meta.subject {
        event["subject"] = Value::String(subject.clone());
    }
    if !meta.is_default_installation() {
        event["installation"] = Value::String(meta.installation.clone());
    }
    if let Some(backfill) = &meta.backfill {
        event["backfill"] = Value::String(backfill.clone());
    }
    event
}

#[cfg(test)]
mod tests {
    use switchyard_schemas::samples;

    use super::*;

    #[test]
    fn json_text_decoding_gives_the_same_body_and_lane_ids_without_a_tree() {
        let event = samples::response_every_answer_kind("acme", "r-7");
        for content_type in [ContentType::Avro, ContentType::Json] {
            let value = payload::encode(&event, content_type).unwrap();
            let headers = samples::core_event_headers("acme", "response.submitted", "e-1", content_type);
            let decode_as = |decoding| {
                let headers = headers.iter().map(|(n, v)| (n.as_str(), v.as_deref()));
                decode(Some(b"acme".as_slice()), headers, Some(&value), decoding).unwrap()
            };
            let (typed, text) = (decode_as(Decoding::Typed), decode_as(Decoding::JsonText));
            assert_eq!(text.data, Value::Null);
            assert_eq!(text.event, Event::Other(Value::Null));
            let written: Value = serde_json::from_str(text.data_json.as_deref().unwrap()).unwrap();
            assert_eq!(written, typed.data, "{content_type:?}");
            for pointer in ["/response/id", "/response/form_id"] {
                assert_eq!(text.ids().pointer(pointer), typed.ids().pointer(pointer));
            }
            let body = |decoded: Decoded| {
                let ctx = Context {
                    meta: decoded.meta,
                    data: decoded.data,
                    data_json: decoded.data_json,
                    attempt: 1,
                    traceparent: None,
                };
                let mut body = Vec::new();
                write_structured(&ctx, &mut body);
                serde_json::from_slice::<Value>(&body).unwrap()
            };
            assert_eq!(body(text), body(typed));
        }
    }

    #[test]
    fn the_installation_header_names_the_installation_and_its_absence_the_default_one() {
        let event = samples::response_every_answer_kind("acme", "r-7");
        let value = payload::encode(&event, ContentType::Json).unwrap();
        let decode_with = |installation: Option<&[u8]>| {
            let mut headers =
                samples::core_event_headers("acme", "response.submitted", "e-1", ContentType::Json);
            if let Some(installation) = installation {
                headers.push((INSTALLATION.to_owned(), Some(installation.to_vec())));
            }
            let headers = headers.iter().map(|(n, v)| (n.as_str(), v.as_deref()));
            decode(Some(b"acme".as_slice()), headers, Some(&value), Decoding::Typed)
        };
        let default = decode_with(None).unwrap().meta;
        assert_eq!(default.installation, DEFAULT_INSTALLATION);
        assert_eq!(default.copy_id(), "e-1");
        let named = decode_with(Some(b"forms-bc")).unwrap().meta;
        assert_eq!(named.installation, "forms-bc");
        assert_eq!(named.copy_id(), "e-1/forms-bc");
        for bad in [&b"Forms"[..], b"", b"forms/bc"] {
            let error = decode_with(Some(bad)).unwrap_err();
            assert!(error.contains(INSTALLATION), "{error}");
        }
    }

    #[test]
    fn a_named_installation_is_an_extension_attribute_of_the_structured_event() {
        let data = serde_json::json!({"response": {"id": "r-1"}});
        let mut meta = EventMeta {
            id: "e-1".into(),
            source: "/forms".into(),
            event_type: "response.submitted".into(),
            time: None,
            subject: None,
            team_id: "acme".into(),
            installation: "default".into(),
            backfill: None,
        };
        let body = |meta: &EventMeta| {
            let ctx = Context {
                meta: meta.clone(),
                data: data.clone(),
                data_json: None,
                attempt: 1,
                traceparent: None,
            };
            let mut out = Vec::new();
            write_structured(&ctx, &mut out);
            assert_eq!(out, serde_json::to_vec(&structured(meta, &data)).unwrap());
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            body(&meta),
            r#"{"data":{"response":{"id":"r-1"}},"datacontenttype":"application/json","id":"e-1","source":"/forms","specversion":"1.0","teamid":"acme","type":"response.submitted"}"#,
            "the default installation's body is as before installations existed"
        );
        meta.installation = "forms-bc".into();
        assert!(body(&meta).contains(r#""id":"e-1","installation":"forms-bc","source""#));
        meta.backfill = Some("bf-1".into());
        assert!(
            body(&meta).starts_with(r#"{"backfill":"bf-1","data":{"#),
            "a historical copy says which backfill, first of the sorted attributes"
        );
    }

    #[test]
    fn the_backfill_header_marks_a_historical_copy() {
        let event = samples::response_every_answer_kind("acme", "r-7");
        let value = payload::encode(&event, ContentType::Json).unwrap();
        let decode_with = |backfill: Option<&[u8]>| {
            let mut headers =
                samples::core_event_headers("acme", "response.submitted", "e-1", ContentType::Json);
            if let Some(backfill) = backfill {
                headers.push((backfill::HEADER.to_owned(), Some(backfill.to_vec())));
            }
            let headers = headers.iter().map(|(n, v)| (n.as_str(), v.as_deref()));
            decode(Some(b"acme".as_slice()), headers, Some(&value), Decoding::Typed)
        };
        assert_eq!(decode_with(None).unwrap().meta.backfill, None, "a live copy");
        assert_eq!(
            decode_with(Some(b"bf-1")).unwrap().meta.backfill.as_deref(),
            Some("bf-1")
        );
        assert!(decode_with(Some(b"Not An Id")).is_err());
    }

    #[test]
    fn a_value_that_breaks_its_schema_fails_json_text_decoding_too() {
        let headers = samples::core_event_headers("acme", "response.submitted", "e-1", ContentType::Json);
        let headers = headers.iter().map(|(n, v)| (n.as_str(), v.as_deref()));
        let error = decode(
            Some(b"acme".as_slice()),
            headers,
            Some(br#"{"response": {"id": 7}}"#),
            Decoding::JsonText,
        )
        .unwrap_err();
        assert!(error.contains("response"), "{error}");
    }

    #[test]
    fn the_serialized_body_is_the_structured_value() {
        let data = serde_json::json!({"response": {"id": "r-1", "answers": {"q": {"text": "\"hi\""}}}});
        let mut meta = EventMeta {
            id: "e-1".into(),
            source: "/switchyard/tests".into(),
            event_type: "response.submitted".into(),
            time: Some("2026-11-22T10:00:00Z".into()),
            subject: Some("form-1".into()),
            team_id: "acme".into(),
            installation: "default".into(),
            backfill: None,
        };
        for _ in 0..2 {
            let expected = serde_json::to_vec(&structured(&meta, &data)).unwrap();
            let mut ctx = Context {
                meta: meta.clone(),
                data: data.clone(),
                data_json: None,
                attempt: 1,
                traceparent: None,
            };
            let mut written = Vec::new();
            write_structured(&ctx, &mut written);
            assert_eq!(
                String::from_utf8_lossy(&written),
                String::from_utf8_lossy(&expected)
            );
            // The same bytes from the data's text.
            (ctx.data, ctx.data_json) = (Value::Null, Some(serde_json::to_string(&data).unwrap()));
            written.clear();
            write_structured(&ctx, &mut written);
            assert_eq!(
                String::from_utf8_lossy(&written),
                String::from_utf8_lossy(&expected)
            );
            (meta.time, meta.subject) = (None, None);
        }
    }
}
