//! From a record of `plugin.<id>.events` to what a plugin receives: the attributes ([`EventMeta`]), the
//! data as the contract's JSON, and the typed [`Event`] (or, for [`Decoding::JsonText`], the data as JSON
//! text alone). The router validated the record already; one that still does not decode (written around
//! the router, or by a newer contract) is dead-lettered as `invalid_event` rather than retried.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use switchyard_schemas::catalog::EventType;
use switchyard_schemas::envelope::{self, ContentType};
use switchyard_schemas::payload;

use crate::plugin::{Context, Decoding, Event, EventMeta};

/// A decoded record.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Attributes.
    pub meta: EventMeta,
    /// The data as JSON (`null` for [`Decoding::JsonText`]).
    pub data: Value,
    /// The data as JSON text ([`Decoding::JsonText`] only).
    pub data_json: Option<Box<RawValue>>,
    /// The typed event (`Event::Other(null)` for [`Decoding::JsonText`]).
    pub event: Event,
    /// For [`Decoding::JsonText`]: the ids lanes are keyed by, as a small tree (see [`Decoded::ids`]).
    ids: Option<Value>,
}

impl Decoded {
    /// An event decoded into its JSON tree and typed event ([`Decoding::Typed`]).
    pub fn tree(meta: EventMeta, data: Value, event: Event) -> Self {
        Self {
            meta,
            data,
            data_json: None,
            event,
            ids: None,
        }
    }

    /// The data's ids that lanes are keyed by (`/response/id`, `/response/form_id`, `/form/id`): the data
    /// itself, or for [`Decoding::JsonText`] a tree of these ids alone.
    pub fn ids(&self) -> &Value {
        self.ids.as_ref().unwrap_or(&self.data)
    }
}

/// Decodes a record's key, headers and value, as much as `decoding` asks.
pub fn decode<'a>(
    key: Option<&'a [u8]>,
    headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    value: Option<&[u8]>,
    decoding: Decoding,
) -> Result<Decoded, String> {
    let envelope = envelope::parse(key, headers).map_err(|rejection| rejection.to_string())?;
    let value = value.unwrap_or_default();
    let meta = EventMeta {
        id: envelope.id.to_owned(),
        source: envelope.source.to_owned(),
        event_type: envelope.event_type.to_owned(),
        time: envelope.time.map(str::to_owned),
        subject: envelope.subject.map(str::to_owned),
        team_id: envelope.team_id.to_owned(),
    };
    let known = EventType::from_ce_type(envelope.event_type);
    if decoding == Decoding::JsonText {
        let mut text = Vec::with_capacity(value.len() + value.len() / 2);
        match (known, envelope.content_type) {
            (Some(known), content_type) => {
                payload::write_json(known, content_type, value, &mut text).map_err(|r| r.to_string())?
            }
            (None, ContentType::Json) => text.extend_from_slice(value.trim_ascii()),
            (None, ContentType::Avro) => text.extend_from_slice(b"null"),
        }
        let text = String::from_utf8(text).map_err(|e| format!("the data is not UTF-8: {e}"))?;
        let data_json = RawValue::from_string(text).map_err(|e| format!("the value is not JSON: {e}"))?;
        let ids = serde_json::from_str::<Ids>(data_json.get())
            .map(Ids::into_tree)
            .unwrap_or(Value::Null);
        return Ok(Decoded {
            meta,
            data: Value::Null,
            data_json: Some(data_json),
            event: Event::Other(Value::Null),
            ids: Some(ids),
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

/// The data of a `/execute` body: the JSON tree, or the text as it was written.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Data<'a> {
    Tree(&'a Value),
    Text(&'a RawValue),
}

/// The event as CloudEvents structured JSON with the data decoded, serialized straight from the event
/// without building a JSON tree: the body of `POST {url}/execute`. Its fields are in the order of the
/// keys of [`structured`]'s object, so both serialize to the same bytes.
#[derive(Debug, Serialize)]
pub struct Structured<'a> {
    data: Data<'a>,
    datacontenttype: &'static str,
    id: &'a str,
    source: &'a str,
    specversion: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    teamid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<&'a str>,
    #[serde(rename = "type")]
    event_type: &'a str,
}

impl<'a> Structured<'a> {
    /// The body for an event: its attributes and its data, the text when there is one, else the tree.
    pub fn of(ctx: &'a Context) -> Self {
        let data = match &ctx.data_json {
            Some(text) => Data::Text(text),
            None => Data::Tree(&ctx.data),
        };
        Self::with(&ctx.meta, data)
    }

    /// The body for `meta` and the JSON tree `data`.
    pub fn new(meta: &'a EventMeta, data: &'a Value) -> Self {
        Self::with(meta, Data::Tree(data))
    }

    fn with(meta: &'a EventMeta, data: Data<'a>) -> Self {
        Self {
            data,
            datacontenttype: "application/json",
            id: &meta.id,
            source: &meta.source,
            specversion: "1.0",
            subject: meta.subject.as_deref(),
            teamid: &meta.team_id,
            time: meta.time.as_deref(),
            event_type: &meta.event_type,
        }
    }
}

/// The event as CloudEvents structured JSON with the data decoded, as a JSON value (see [`Structured`]).
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
            let written: Value = serde_json::from_str(text.data_json.as_ref().unwrap().get()).unwrap();
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
                };
                serde_json::from_slice::<Value>(&serde_json::to_vec(&Structured::of(&ctx)).unwrap()).unwrap()
            };
            assert_eq!(body(text), body(typed));
        }
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
        };
        for _ in 0..2 {
            assert_eq!(
                serde_json::to_vec(&Structured::new(&meta, &data)).unwrap(),
                serde_json::to_vec(&structured(&meta, &data)).unwrap()
            );
            (meta.time, meta.subject) = (None, None);
        }
    }
}
