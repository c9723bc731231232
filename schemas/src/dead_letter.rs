//! Dead-letter reason codes and the headers the router adds to records it cannot route.
//!
//! A dead-lettered record keeps the input's key, value and headers unchanged and gains
//! [`ERROR`], [`ERROR_DETAIL`], [`SOURCE`] and, when the failure concerns one plugin, [`PLUGIN`].
//! The codes are part of the public contract: never rename one, only add.
//!
//! A plugin's dead letter that is replayed onto the plugin's topic gets a [`ReplayRecord`] in the compacted
//! topic [`crate::topics::DEAD_LETTER_REPLAYS`], keyed by the letter's [`Position`], written in the same
//! transaction as the replayed copy (which carries [`REPLAYED_FROM`] = that key): a `read_committed` reader
//! sees both or neither.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Header holding the stable reason code, e.g. `invalid_payload`.
pub const ERROR: &str = "switchyard_error";
/// Header holding one human sentence about the failure.
pub const ERROR_DETAIL: &str = "switchyard_error_detail";
/// Header holding `<topic>/<partition>/<offset>` of the input record (also set on routed copies).
pub const SOURCE: &str = "switchyard_source";
/// Header on a routed copy (and on its dead letters) naming the installation it was routed for; absent for
/// the default installation, so a v1 copy keeps its headers byte for byte.
pub const INSTALLATION: &str = "switchyard_installation";
/// Header holding the plugin id, when the failure concerns one plugin's copy only.
pub const PLUGIN: &str = "switchyard_plugin";
/// Header set to `true` on a dead letter written without its value, because the dead-letter topic refused
/// the full record (too large, say). The value stays readable in the input topic at [`SOURCE`].
pub const VALUE_DROPPED: &str = "switchyard_value_dropped";
/// Header of a plugin worker's dead letter: the calls made.
pub const ATTEMPTS: &str = "switchyard_attempts";
/// Header of a plugin worker's dead letter: the first failure, RFC 3339.
pub const FIRST_FAILURE: &str = "switchyard_first_failure";
/// Header of a plugin worker's dead letter: the last failure, RFC 3339.
pub const LAST_FAILURE: &str = "switchyard_last_failure";
/// Header of a dead letter replayed onto the plugin's topic: `<dlq topic>/<partition>/<offset>`.
pub const REPLAYED_FROM: &str = "switchyard_replayed_from";
/// The headers a plugin worker adds to a dead letter (and replaces when it dead-letters a replay); a replay
/// removes all but [`SOURCE`] and sets [`REPLAYED_FROM`].
pub const PLUGIN_DEAD_LETTER_HEADERS: [&str; 8] = [
    ERROR,
    ERROR_DETAIL,
    PLUGIN,
    SOURCE,
    ATTEMPTS,
    FIRST_FAILURE,
    LAST_FAILURE,
    REPLAYED_FROM,
];

/// A record's place in Kafka, written `<topic>/<partition>/<offset>` by the [`SOURCE`] and [`REPLAYED_FROM`]
/// headers and by the key of a [`ReplayRecord`]; in a replay record's JSON, its three fields.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

impl Position {
    /// The record at `offset` of `topic`'s `partition`.
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        Self {
            topic: topic.into(),
            partition,
            offset,
        }
    }

    /// The position `text` writes: a topic (not empty), then `/`, a partition and `/` and an offset, both
    /// decimal and not negative. A Kafka topic name has no `/`, so the last two `/` split it. `None` for
    /// anything else.
    pub fn parse(text: &str) -> Option<Self> {
        fn number<T: std::str::FromStr>(digits: &str) -> Option<T> {
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        }
        let mut parts = text.rsplitn(3, '/');
        let (offset, partition, topic) = (parts.next()?, parts.next()?, parts.next()?);
        (!topic.is_empty()).then_some(())?;
        Some(Self::new(topic, number(partition)?, number(offset)?))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// The most replays a [`ReplayRecord`] keeps: the latest ones.
pub const MAX_REPLAYS_KEPT: usize = 100;

/// The value of a record of [`crate::topics::DEAD_LETTER_REPLAYS`] (`docs/contract.md`, section 9.4): every
/// replay of one dead letter, keyed by the letter's [`Position`] in its dead-letter topic. A letter without
/// a record (or whose record is null) was never replayed, as far as the topic knows. Readers ignore fields
/// they do not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRecord {
    /// The dead letter: the key's parts.
    pub dead_letter: Position,
    /// Its replays, oldest first; the latest [`MAX_REPLAYS_KEPT`].
    #[serde(default)]
    pub replays: Vec<Replay>,
}

/// One replay of a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    /// When it was written, RFC 3339 in UTC.
    pub at: String,
    /// Who asked for it, as the replaying tool knows them (free text, not to be parsed); absent when
    /// unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Where the replayed copy is: the plugin's events topic, its partition and offset.
    pub to: Position,
}

impl ReplayRecord {
    /// The record's key: the dead letter's position, written as [`REPLAYED_FROM`] writes it.
    pub fn key(&self) -> String {
        self.dead_letter.to_string()
    }

    /// The letter's record once `replay` is added to `previous` (its current record, if any): the replays
    /// oldest first, the oldest dropped beyond [`MAX_REPLAYS_KEPT`].
    pub fn appended(dead_letter: Position, previous: Option<&ReplayRecord>, replay: Replay) -> Self {
        let mut replays: Vec<Replay> = previous.map(|p| p.replays.clone()).unwrap_or_default();
        replays.push(replay);
        let excess = replays.len().saturating_sub(MAX_REPLAYS_KEPT);
        replays.drain(..excess);
        Self { dead_letter, replays }
    }
}

/// Why a plugin worker dead-lettered an event, on `plugin.<id>.dlq` (the [`ERROR`] header's code there).
/// The codes are part of the public contract: never rename one, only add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginReason {
    /// The plugin asked for it (explicitly, or its service answered a 4xx other than 408/429).
    PluginDeadLetter,
    /// The retry budget ran out.
    RetriesExhausted,
    /// The team's config could not be applied.
    ConfigRejected,
    /// The record does not decode.
    InvalidEvent,
}

impl PluginReason {
    /// Every code, in the order of the contract's table.
    pub const ALL: [PluginReason; 4] = [
        PluginReason::PluginDeadLetter,
        PluginReason::RetriesExhausted,
        PluginReason::ConfigRejected,
        PluginReason::InvalidEvent,
    ];

    /// The [`ERROR`] header's value.
    pub fn code(self) -> &'static str {
        match self {
            PluginReason::PluginDeadLetter => "plugin_dead_letter",
            PluginReason::RetriesExhausted => "retries_exhausted",
            PluginReason::ConfigRejected => "config_rejected",
            PluginReason::InvalidEvent => "invalid_event",
        }
    }

    /// The reason of a code; `None` for a code this version does not know.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.code() == code)
    }
}

/// Why a record went to the dead-letter topic. Checks run in the order listed; the first that fails names
/// the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The record has no key (the key must be the team id).
    MissingKey,
    /// The key is not a valid team id (empty, too long, a character outside `[A-Za-z0-9._-]`, not UTF-8).
    InvalidKey,
    /// A required header is absent: `ce_specversion`, `ce_id`, `ce_source`, `ce_type` or `content-type`.
    MissingHeader,
    /// A header is present but malformed: not UTF-8, empty, repeated, `ce_specversion` other than `1.0`,
    /// or `ce_time` not RFC 3339.
    InvalidHeader,
    /// `ce_teamid` is present and differs from the key.
    TeamidMismatch,
    /// `content-type` is neither `application/avro` nor `application/json`.
    UnsupportedContentType,
    /// An Avro value whose schema fingerprint belongs to no known revision of the event type's schema.
    UnknownSchema,
    /// The value does not decode against the event type's schema.
    InvalidPayload,
    /// The plugin's topic does not exist (this copy only; other plugins still receive theirs).
    PluginTopicMissing,
    /// The plugin's topic refused the record for a reason specific to it, e.g. a smaller
    /// `max.message.bytes` or a missing write permission (this copy only).
    PluginTopicRejected,
}

impl Reason {
    /// Every reason, in check order.
    pub const ALL: [Reason; 10] = [
        Reason::MissingKey,
        Reason::InvalidKey,
        Reason::MissingHeader,
        Reason::InvalidHeader,
        Reason::TeamidMismatch,
        Reason::UnsupportedContentType,
        Reason::UnknownSchema,
        Reason::InvalidPayload,
        Reason::PluginTopicMissing,
        Reason::PluginTopicRejected,
    ];

    /// The stable code written to the [`ERROR`] header and used as a metric label.
    pub const fn code(self) -> &'static str {
        match self {
            Reason::MissingKey => "missing_key",
            Reason::InvalidKey => "invalid_key",
            Reason::MissingHeader => "missing_header",
            Reason::InvalidHeader => "invalid_header",
            Reason::TeamidMismatch => "teamid_mismatch",
            Reason::UnsupportedContentType => "unsupported_content_type",
            Reason::UnknownSchema => "unknown_schema",
            Reason::InvalidPayload => "invalid_payload",
            Reason::PluginTopicMissing => "plugin_topic_missing",
            Reason::PluginTopicRejected => "plugin_topic_rejected",
        }
    }

    /// Looks a code up.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|reason| reason.code() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A reason with its one-sentence detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The stable code.
    pub reason: Reason,
    /// One human sentence, written to [`ERROR_DETAIL`].
    pub detail: String,
}

impl Rejection {
    /// A rejection with its detail sentence.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            assert!(seen.insert(reason.code()), "duplicate code {}", reason.code());
            assert_eq!(Reason::from_code(reason.code()), Some(reason));
        }
        assert_eq!(Reason::from_code("nope"), None);
    }

    #[test]
    fn positions_are_topic_partition_offset() {
        let position = Position::parse("plugin.sheets-export.events/2/1077").unwrap();
        assert_eq!(position, Position::new("plugin.sheets-export.events", 2, 1077));
        assert_eq!(position.to_string(), "plugin.sheets-export.events/2/1077");
        assert_eq!(
            Position::parse("a/b/0/1"),
            Some(Position::new("a/b", 0, 1)),
            "the last two slashes split"
        );
        for bad in [
            "",
            "t",
            "t/1",
            "/1/2",
            "t/-1/2",
            "t/1/+2",
            "t/1/x",
            "t/1/",
            "t//2",
            "t/2147483648/0",
        ] {
            assert_eq!(Position::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_replay_record_keeps_the_latest_replays_oldest_first() {
        let letter = Position::new("plugin.p.dlq", 0, 3);
        let replay = |offset| Replay {
            at: "2026-12-05T11:00:00Z".to_owned(),
            by: None,
            to: Position::new("plugin.p.events", 1, offset),
        };
        let first = ReplayRecord::appended(letter.clone(), None, replay(10));
        assert_eq!(first.key(), "plugin.p.dlq/0/3");
        let json = serde_json::to_value(&first).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "dead_letter": {"topic": "plugin.p.dlq", "partition": 0, "offset": 3},
                "replays": [{"at": "2026-12-05T11:00:00Z",
                             "to": {"topic": "plugin.p.events", "partition": 1, "offset": 10}}]
            }),
            "no `by` when unknown"
        );
        let mut record = first;
        for offset in 11..(11 + MAX_REPLAYS_KEPT as i64) {
            record = ReplayRecord::appended(letter.clone(), Some(&record), replay(offset));
        }
        assert_eq!(record.replays.len(), MAX_REPLAYS_KEPT);
        assert_eq!(record.replays[0].to.offset, 11, "the oldest dropped");
        assert_eq!(
            record.replays.last().unwrap().to.offset,
            10 + MAX_REPLAYS_KEPT as i64
        );
        let newer: ReplayRecord = serde_json::from_value(serde_json::json!({
            "dead_letter": {"topic": "plugin.p.dlq", "partition": 0, "offset": 3, "cluster": "eu"},
            "replays": [{"at": "2026-12-05T11:00:00Z", "by": "ops", "reason": "fixed",
                         "to": {"topic": "plugin.p.events", "partition": 1, "offset": 10}}],
            "note": "fields a later version adds are ignored"
        }))
        .unwrap();
        assert_eq!(newer.replays[0].by.as_deref(), Some("ops"));
    }
}
