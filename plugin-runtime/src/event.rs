//! From a record of `plugin.<id>.events` to what a plugin receives: the attributes ([`EventMeta`]), the
//! data as the contract's JSON, and the typed [`Event`]. The router validated the record already; one that
//! still does not decode (written around the router, or by a newer contract) is dead-lettered as
//! `invalid_event` rather than retried.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_schemas::catalog::EventType;
use switchyard_schemas::envelope::{self, ContentType};
use switchyard_schemas::payload;

use crate::plugin::{Event, EventMeta};

/// A decoded record.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Attributes.
    pub meta: EventMeta,
    /// The data as JSON.
    pub data: Value,
    /// The typed event.
    pub event: Event,
}

/// Decodes a record's key, headers and value.
pub fn decode<'a>(
    key: Option<&'a [u8]>,
    headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    value: Option<&[u8]>,
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
    let Some(known) = EventType::from_ce_type(envelope.event_type) else {
        let data = match envelope.content_type {
            ContentType::Json => {
                serde_json::from_slice(value).map_err(|e| format!("the value is not JSON: {e}"))?
            }
            ContentType::Avro => Value::Null,
        };
        return Ok(Decoded {
            meta,
            event: Event::Other(data.clone()),
            data,
        });
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
    Ok(Decoded { meta, data, event })
}

/// The event as CloudEvents structured JSON with the data decoded, serialized straight from the event
/// without building a JSON tree: the body of `POST {url}/execute`. Its fields are in the order of the
/// keys of [`structured`]'s object, so both serialize to the same bytes.
#[derive(Debug, Serialize)]
pub struct Structured<'a> {
    data: &'a Value,
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
    /// The body for `meta` and `data`.
    pub fn new(meta: &'a EventMeta, data: &'a Value) -> Self {
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
    use super::*;

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
