//! A dead letter as `switchyardctl dlq` shows it: the API's fields with every time also in milliseconds,
//! its source as a position, and its replays ([`Entry`], a row of `list`); and whole ([`WholeEntry`],
//! `show`): every header, the payload, and the CloudEvent it carries decoded as the contract defines.
//! Pure: built from what was read.
//!
//! ```text
//!   DeadLetter + its ReplayRecord (Histories::get) ──► Entry      (times in ms, source position, replays)
//!   StoredLetter + its ReplayRecord ──────────────────► WholeEntry (+ headers, payload, cloud_event)
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::Value;
use switchyard_schemas::EventType;
use switchyard_schemas::backfill::HEADER as BACKFILL;
use switchyard_schemas::dead_letter::{INSTALLATION, Position, Replay, ReplayRecord};
use switchyard_schemas::envelope::{self as ce, ContentType};
use switchyard_schemas::ids::DEFAULT_INSTALLATION;
use switchyard_schemas::payload;
use switchyard_schemas::times::epoch_ms;

use super::{DeadLetter, HeaderView, Payload, StoredLetter};

/// One replay of a dead letter, as shown: the record's fields, and its time in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayView {
    /// When, RFC 3339.
    pub at: String,
    /// The same in milliseconds since the Unix epoch; `None` when `at` is not RFC 3339.
    pub at_ms: Option<i64>,
    /// Who asked, as the replaying tool knew them; `None` when unknown.
    pub by: Option<String>,
    /// Where the replayed copy is: the events topic, partition and offset.
    pub to: Position,
}

impl From<&Replay> for ReplayView {
    fn from(replay: &Replay) -> Self {
        Self {
            at: replay.at.clone(),
            at_ms: epoch_ms(&replay.at),
            by: replay.by.clone(),
            to: replay.to.clone(),
        }
    }
}

/// A dead letter in a list: the API's fields ([`DeadLetter`]), then its times in milliseconds, where it came
/// from as a position, and whether it was replayed. Every number is a JSON number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The API's fields.
    #[serde(flatten)]
    pub letter: DeadLetter,
    /// `dead_lettered_at` in milliseconds since the Unix epoch.
    pub dead_lettered_at_ms: Option<i64>,
    /// `first_failure` in milliseconds; `None` when absent or not RFC 3339.
    pub first_failure_ms: Option<i64>,
    /// `last_failure` in milliseconds; `None` when absent or not RFC 3339.
    pub last_failure_ms: Option<i64>,
    /// `source` as its parts: the plugin's events topic, the partition and the offset the worker read it
    /// at; `None` when the header is absent or not a position.
    pub source_position: Option<Position>,
    /// Whether the replays topic has a record of it.
    pub replayed: bool,
    /// How many replays the record lists.
    pub replay_count: usize,
    /// The latest of them.
    pub last_replay: Option<ReplayView>,
}

impl Entry {
    /// `letter` with its replay record, if it has one.
    pub fn of(letter: &DeadLetter, history: Option<&ReplayRecord>) -> Self {
        let ms = |time: &Option<String>| time.as_deref().and_then(epoch_ms);
        Self {
            letter: letter.clone(),
            dead_lettered_at_ms: letter.timestamp_ms,
            first_failure_ms: ms(&letter.first_failure),
            last_failure_ms: ms(&letter.last_failure),
            source_position: letter.source.as_deref().and_then(Position::parse),
            replayed: history.is_some(),
            replay_count: history.map_or(0, |h| h.replays.len()),
            last_replay: history.and_then(|h| h.replays.last()).map(ReplayView::from),
        }
    }
}

/// One dead letter whole (`dlq show`): the list's entry, every replay, every header, the payload, and the
/// CloudEvent it carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WholeEntry {
    /// The list's fields.
    #[serde(flatten)]
    pub entry: Entry,
    /// Every replay, oldest first.
    pub replays: Vec<ReplayView>,
    /// Every header, in the record's order.
    pub headers: Vec<HeaderView>,
    /// The `content-type` header.
    pub content_type: Option<String>,
    /// The value as the API shows it: JSON, or base64.
    pub payload: Option<Payload>,
    /// The CloudEvent ([`cloud_event`]).
    pub event: CloudEvent,
    /// Why the event's data is `data_base64` rather than decoded, or its envelope breaks the contract;
    /// `None` when neither.
    pub event_error: Option<String>,
}

impl WholeEntry {
    /// `stored` whole, with its replay record, if it has one.
    pub fn of(stored: &StoredLetter, history: Option<&ReplayRecord>) -> Self {
        let detail = stored.detail();
        let (event, event_error) =
            cloud_event(stored.key.as_deref(), &stored.headers, stored.value.as_deref());
        Self {
            entry: Entry::of(&stored.letter, history),
            replays: history
                .map(|h| h.replays.iter().map(ReplayView::from).collect())
                .unwrap_or_default(),
            headers: detail.headers,
            content_type: detail.content_type,
            payload: detail.payload,
            event,
            event_error,
        }
    }
}

/// A CloudEvent in CloudEvents' JSON format, its attributes in the specification's order; an absent
/// attribute is left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CloudEvent {
    /// `ce_specversion`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub specversion: Option<String>,
    /// `ce_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `ce_source`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `ce_type`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// `ce_time`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `ce_subject`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The key: the team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teamid: Option<String>,
    /// `switchyard_installation`, for a named installation's copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
    /// `switchyard_backfill`, for a backfill's historical copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<String>,
    /// `application/json` with `data`; the record's own content type with `data_base64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// The value decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The value as it is, standard base64, when it does not decode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
}

/// The CloudEvent a dead letter carries, as a plugin receives it (the body of `POST /execute`,
/// `docs/plugin-authors.md`): `specversion`, `id`, `source`, `type`, `time`, `subject` from the `ce_*`
/// headers, `teamid` from the key, `installation` and `backfill` when the copy has them, and `data`: the
/// value decoded as the contract defines for its type and content type (Avro of any known revision or
/// JSON, to the bare JSON form), with `datacontenttype` `application/json`. A value that does not decode
/// (an `invalid_event` letter, a type the contract does not define in Avro, a content type it does not
/// know) is `data_base64` with `datacontenttype` the record's own, and the reason is returned with it.
/// Lenient: a header that breaks the envelope's rules is still shown, and named in the reason.
pub fn cloud_event(
    key: Option<&[u8]>,
    headers: &[(String, Option<Vec<u8>>)],
    value: Option<&[u8]>,
) -> (CloudEvent, Option<String>) {
    let text = |name: &str| {
        headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let mut event = CloudEvent {
        specversion: text(ce::SPECVERSION),
        id: text(ce::ID),
        source: text(ce::SOURCE),
        event_type: text(ce::TYPE),
        time: text(ce::TIME),
        subject: text(ce::SUBJECT),
        teamid: key.map(|k| String::from_utf8_lossy(k).into_owned()),
        installation: text(INSTALLATION).filter(|i| i != DEFAULT_INSTALLATION),
        backfill: text(BACKFILL),
        ..CloudEvent::default()
    };
    let borrowed = headers.iter().map(|(n, v)| (n.as_str(), v.as_deref()));
    let envelope = ce::parse(key, borrowed).err().map(|r| r.to_string());
    let content_type = text(ce::CONTENT_TYPE);
    let data_error =
        value.and_then(
            |value| match decode(event.event_type.as_deref(), content_type.as_deref(), value) {
                Ok(data) => {
                    event.datacontenttype = Some(ContentType::Json.media_type().to_owned());
                    event.data = Some(data);
                    None
                }
                Err(why) => {
                    event.datacontenttype.clone_from(&content_type);
                    event.data_base64 = Some(STANDARD.encode(value));
                    Some(why)
                }
            },
        );
    let error = match (envelope, data_error) {
        (Some(envelope), Some(data)) => Some(format!("{envelope}; {data}")),
        (envelope, data) => envelope.or(data),
    };
    (event, error)
}

/// A value of `event_type` in `content_type`, decoded to the contract's bare JSON form, or why not.
fn decode(event_type: Option<&str>, content_type: Option<&str>, value: &[u8]) -> Result<Value, String> {
    let content_type = content_type
        .and_then(ContentType::parse)
        .ok_or_else(|| "the content type is not application/avro or application/json".to_owned())?;
    match (event_type.and_then(EventType::from_ce_type), content_type) {
        (Some(known), content_type) => {
            payload::to_json(known, content_type, value).map_err(|rejection| rejection.to_string())
        }
        (None, ContentType::Json) => {
            serde_json::from_slice(value).map_err(|e| format!("the value is not JSON: {e}"))
        }
        (None, ContentType::Avro) => Err(format!(
            "the contract defines no Avro schema for the type {:?}",
            event_type.unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use switchyard_schemas::samples;

    use super::*;
    use crate::dead_letters::{DeadLetter, HeaderRef};

    fn stored(headers: Vec<(String, Option<Vec<u8>>)>, value: Option<Vec<u8>>) -> StoredLetter {
        let refs: Vec<HeaderRef<'_>> = headers.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
        StoredLetter {
            letter: DeadLetter::of(
                2,
                7,
                Some(b"acme"),
                &refs,
                value.as_ref().map_or(0, Vec::len),
                Some(1_796_464_800_250),
            ),
            key: Some(b"acme".to_vec()),
            value,
            headers,
        }
    }

    fn worker_headers(content_type: ContentType) -> Vec<(String, Option<Vec<u8>>)> {
        let mut headers = samples::core_event_headers("acme", "response.submitted", "e-1", content_type);
        for (name, value) in [
            ("switchyard_installation", "forms-bc"),
            ("switchyard_error", "retries_exhausted"),
            ("switchyard_source", "plugin.sheets-export.events/2/41"),
            ("switchyard_attempts", "8"),
            ("switchyard_first_failure", "2026-12-05T10:00:00Z"),
            ("switchyard_last_failure", "2026-12-05T10:09:00Z"),
        ] {
            headers.push((name.to_owned(), Some(value.as_bytes().to_vec())));
        }
        headers
    }

    fn history() -> ReplayRecord {
        let replay = |offset: i64, by: Option<&str>| Replay {
            at: format!("2026-12-05T11:0{offset}:00.5Z"),
            by: by.map(str::to_owned),
            to: Position::new("plugin.sheets-export.events", 2, 1000 + offset),
        };
        ReplayRecord {
            dead_letter: Position::new("plugin.sheets-export.dlq", 2, 7),
            replays: vec![replay(1, Some("ops@host via switchyardctl")), replay(2, None)],
        }
    }

    #[test]
    fn an_entry_has_numbers_for_its_times_its_source_and_its_replays() {
        let letter = stored(worker_headers(ContentType::Json), Some(b"{}".to_vec())).letter;
        let never = serde_json::to_value(Entry::of(&letter, None)).unwrap();
        assert_eq!(never["id"], "2-7", "the API's fields");
        assert_eq!(never["attempts"], 8);
        assert_eq!(never["dead_lettered_at_ms"], 1_796_464_800_250_i64);
        assert_eq!(never["first_failure_ms"], 1_796_464_800_000_i64);
        assert_eq!(never["last_failure_ms"], 1_796_465_340_000_i64);
        assert_eq!(
            never["source_position"],
            serde_json::json!({"topic": "plugin.sheets-export.events", "partition": 2, "offset": 41})
        );
        assert_eq!(
            (&never["replayed"], &never["replay_count"], &never["last_replay"]),
            (&Value::Bool(false), &Value::from(0), &Value::Null)
        );
        let replayed = serde_json::to_value(Entry::of(&letter, Some(&history()))).unwrap();
        assert_eq!(replayed["replayed"], true);
        assert_eq!(replayed["replay_count"], 2);
        assert_eq!(
            replayed["last_replay"],
            serde_json::json!({"at": "2026-12-05T11:02:00.5Z", "at_ms": 1_796_468_520_500_i64, "by": null,
                               "to": {"topic": "plugin.sheets-export.events", "partition": 2, "offset": 1002}})
        );
        let mut bare = DeadLetter::of(
            0,
            1,
            None,
            &[("switchyard_source", Some(b"nowhere".as_slice()))],
            0,
            None,
        );
        bare.first_failure = Some("yesterday".to_owned());
        let bare = serde_json::to_value(Entry::of(&bare, None)).unwrap();
        assert!(bare["source_position"].is_null() && bare["first_failure_ms"].is_null());
        assert!(bare["dead_lettered_at_ms"].is_null());
    }

    #[test]
    fn a_whole_entry_decodes_the_event_of_either_content_type() {
        let event = samples::response_every_answer_kind("acme", "r-7");
        let data = samples::data_json(EventType::ResponseSubmitted, "acme", "r-7");
        for content_type in [ContentType::Avro, ContentType::Json] {
            let value = payload::encode(&event, content_type).unwrap();
            let whole = WholeEntry::of(
                &stored(worker_headers(content_type), Some(value)),
                Some(&history()),
            );
            assert_eq!(whole.event_error, None, "{content_type:?}");
            let event = serde_json::to_value(&whole.event).unwrap();
            assert_eq!(event["data"], data, "{content_type:?}");
            assert_eq!(event["datacontenttype"], "application/json");
            assert_eq!(event["id"], "e-1");
            assert_eq!(event["type"], "response.submitted");
            assert_eq!(event["teamid"], "acme");
            assert_eq!(event["installation"], "forms-bc");
            let keys: Vec<String> = event.as_object().unwrap().keys().cloned().collect();
            assert!(keys.contains(&"time".to_owned()) && keys.contains(&"subject".to_owned()));
            let text = serde_json::to_string(&whole.event).unwrap();
            assert!(
                text.starts_with(r#"{"specversion":"1.0","id":"e-1","source":"#),
                "the specification's order: {text}"
            );
            assert_eq!(whole.content_type.as_deref(), Some(content_type.media_type()));
            assert_eq!(whole.headers.len(), worker_headers(content_type).len());
            assert_eq!(whole.replays.len(), 2);
            assert_eq!(whole.replays[0].by.as_deref(), Some("ops@host via switchyardctl"));
            let json = serde_json::to_value(&whole).unwrap();
            assert_eq!(json["replay_count"], 2, "the entry's fields, flattened");
            assert!(json["event"].get("data_base64").is_none());
            assert!(json["event"]["data"].is_object());
        }
    }

    #[test]
    fn a_value_that_does_not_decode_is_base64_with_the_reason() {
        let broken = WholeEntry::of(
            &stored(worker_headers(ContentType::Avro), Some(vec![0xc3, 0x01, 1, 2])),
            None,
        );
        assert_eq!(
            broken.event.data_base64,
            Some(STANDARD.encode([0xc3, 0x01, 1, 2]))
        );
        assert_eq!(broken.event.datacontenttype.as_deref(), Some("application/avro"));
        assert!(broken.event.data.is_none());
        assert!(broken.event_error.is_some(), "{broken:?}");

        let mut unknown = worker_headers(ContentType::Json);
        unknown[3].1 = Some(b"survey.archived".to_vec());
        let other = WholeEntry::of(&stored(unknown, Some(br#"{"x": 1}"#.to_vec())), None);
        assert_eq!(other.event.event_type.as_deref(), Some("survey.archived"));
        assert_eq!(
            (other.event.data, other.event_error),
            (Some(serde_json::json!({"x": 1})), None),
            "a type the contract does not define, in JSON: the JSON as it is"
        );

        let missing: Vec<(String, Option<Vec<u8>>)> = worker_headers(ContentType::Json)
            .into_iter()
            .filter(|(n, _)| n != "ce_source")
            .collect();
        let (event, error) = cloud_event(Some(b"acme"), &missing, None);
        assert!(event.source.is_none() && event.data.is_none());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("ce_source")),
            "{error:?}"
        );
    }
}
