//! A plugin's dead letters (`plugin.<id>.dlq`): reading them, all or chosen ones, and replaying them onto the
//! plugin's topic once the cause is fixed, each replay recorded. Used by the registry's dead-letter routes
//! ([`crate::api::dead_letters`]) and by `switchyardctl dlq list|show|replay`.
//!
//! ```text
//!   plugin.<id>.dlq ─┬─ list / records: every partition to its end ─┐
//!                    └─ records_at: the chosen offsets only ────────┴─► DeadLetter::of (headers → fields)
//!                                                                      Filter::keeps (team, since, install.,
//!                                                                                     event)
//!   switchyard.dead-letter-replays ── histories: the records of this topic's letters ─► Histories (replays)
//!   DeadLetter/StoredLetter + its ReplayRecord ─► Entry / WholeEntry (entry: what switchyardctl shows)
//!   replay (replays): in one transaction, each letter's record without the worker's headers
//!           + switchyard_replayed_from ─► plugin.<id>.events, and its ReplayRecord (at, by, to)
//!           ─► switchyard.dead-letter-replays
//! ```
//!
//! A dead letter is the routed record as a plugin worker wrote it (the key is the team; the headers a
//! worker adds are listed in `plugin-runtime/src/delivery/records.rs`). Its id is `<partition>-<offset>` in
//! the dead-letter topic ([`LetterId`]): a record never moves, so the id is stable for as long as retention
//! keeps the record.
//!
//! A replayed record is the routed record as it was (key, value, the CloudEvents and `switchyard_source`
//! headers), without the dead-letter headers the worker added, plus `switchyard_replayed_from` =
//! `<dlq topic>/<partition>/<offset>`. It is a new record at the end of the plugin's topic: it runs after
//! whatever the team produced since, and its `ce_id` (the `webhook-id`) is unchanged, so a plugin that
//! de-duplicates on it will not act twice if the first delivery did go through. Replaying the same dead
//! letters twice delivers them twice; so each replay is recorded ([`replays`]), in the transaction that
//! writes the copy, and `switchyardctl dlq replay` refuses a letter replayed before unless asked again. A
//! dry run shows what would be replayed.
//!
//! Both reads go through the service's [`RangeReader`] (`read_committed`, no consumer group, nothing
//! committed): the end of each partition is noted first, then each partition, or each run of chosen
//! offsets, is read up to it. Records written after the read began are left for the next one. Every read
//! and the replay block; run them off async worker threads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use serde::{Serialize, Serializer};
use switchyard_schemas::dead_letter::{
    ATTEMPTS, ERROR, ERROR_DETAIL, FIRST_FAILURE, INSTALLATION, LAST_FAILURE, PLUGIN_DEAD_LETTER_HEADERS,
    REPLAYED_FROM, SOURCE,
};
use switchyard_schemas::envelope as ce;
use switchyard_schemas::ids::DEFAULT_INSTALLATION;
use switchyard_schemas::topics::plugin_events_topic;
use switchyard_service::follower::{Apply, RangeError, RangeReader, Record};
use switchyard_service::kafka::{ClientError, ClientStats, Clients};
use thiserror::Error;
use tokio::sync::Semaphore;

use crate::backfills::request::rfc3339_ms;
use crate::config::Config;

pub mod entry;
pub mod replays;

pub use self::entry::{CloudEvent, Entry, ReplayView, WholeEntry, cloud_event};
pub use self::replays::{Histories, ReplayTarget, Replayed, histories, replay};

/// A dead letter's id: its partition and offset in the dead-letter topic, written `<partition>-<offset>`.
/// Only the canonical form (decimal, no sign, no leading zero) is an id, so each letter has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LetterId {
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

impl LetterId {
    /// The id `text` names; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        fn number<T: std::str::FromStr>(digits: &str) -> Option<T> {
            let canonical = digits == "0" || (!digits.starts_with('0') && !digits.is_empty());
            (canonical && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        }
        let (partition, offset) = text.split_once('-')?;
        Some(Self {
            partition: number(partition)?,
            offset: number(offset)?,
        })
    }
}

impl fmt::Display for LetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.partition, self.offset)
    }
}

impl Serialize for LetterId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One dead letter as the API lists it: where it is, whose it is, and what its headers say. A header
/// that is absent is `None` (`null`); one that is not UTF-8 is read with U+FFFD in place of its bad bytes
/// (the detail view, [`Detail`], shows it exactly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// `<partition>-<offset>`.
    pub id: LetterId,
    /// Partition in the dead-letter topic.
    pub partition: i32,
    /// Offset in the dead-letter topic.
    pub offset: i64,
    /// The team: the record's key, when it is UTF-8.
    pub team: Option<String>,
    /// `ce_id`.
    pub event_id: Option<String>,
    /// `ce_type`.
    pub event_type: Option<String>,
    /// `switchyard_installation`; `None` for the default installation (which has no header).
    pub installation: Option<String>,
    /// `switchyard_error`: the reason code.
    pub reason: Option<String>,
    /// `switchyard_error_detail`: one sentence.
    pub detail: Option<String>,
    /// `switchyard_attempts`: the calls made; `None` when absent or not a number.
    pub attempts: Option<u64>,
    /// `switchyard_first_failure`, RFC 3339.
    pub first_failure: Option<String>,
    /// `switchyard_last_failure`, RFC 3339.
    pub last_failure: Option<String>,
    /// When it was dead-lettered: the record's timestamp, RFC 3339; `None` when it has none.
    pub dead_lettered_at: Option<String>,
    /// `switchyard_source`: `<topic>/<partition>/<offset>` of the record the worker consumed.
    pub source: Option<String>,
    /// `switchyard_replayed_from`, present only on a dead-lettered replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed_from: Option<String>,
    /// The value's size in bytes (0 without one).
    pub bytes: usize,
    /// The record's timestamp in milliseconds since the Unix epoch.
    #[serde(skip)]
    pub timestamp_ms: Option<i64>,
}

/// A header as borrowed from a record: its name and value (`None`: a null value).
pub type HeaderRef<'a> = (&'a str, Option<&'a [u8]>);

/// The last value of header `name` as text, if it is there with a value.
fn header_text(headers: &[HeaderRef<'_>], name: &str) -> Option<String> {
    headers
        .iter()
        .rev()
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| *v)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

impl DeadLetter {
    /// The dead letter at `partition`/`offset` with this key, headers, value size and timestamp.
    pub fn of(
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        headers: &[HeaderRef<'_>],
        bytes: usize,
        timestamp_ms: Option<i64>,
    ) -> Self {
        let text = |name| header_text(headers, name);
        let timestamp_ms = timestamp_ms.filter(|&ms| ms >= 0);
        Self {
            id: LetterId { partition, offset },
            partition,
            offset,
            team: key.and_then(|k| std::str::from_utf8(k).ok()).map(str::to_owned),
            event_id: text(ce::ID),
            event_type: text(ce::TYPE),
            installation: text(INSTALLATION).filter(|i| i != DEFAULT_INSTALLATION),
            reason: text(ERROR),
            detail: text(ERROR_DETAIL),
            attempts: text(ATTEMPTS).and_then(|a| a.trim().parse().ok()),
            first_failure: text(FIRST_FAILURE),
            last_failure: text(LAST_FAILURE),
            dead_lettered_at: timestamp_ms.map(rfc3339_ms),
            source: text(SOURCE),
            replayed_from: text(REPLAYED_FROM),
            bytes,
            timestamp_ms,
        }
    }

    /// The installation it was routed for (`default` without the header).
    pub fn installation(&self) -> &str {
        self.installation.as_deref().unwrap_or(DEFAULT_INSTALLATION)
    }
}

/// Which dead letters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this team's (its key); `None`: every team's.
    pub team: Option<String>,
    /// Only those of this event (`ce_id`); `None`: every event's.
    pub event_id: Option<String>,
    /// Only those dead-lettered at or after this time, in milliseconds since the Unix epoch (a letter
    /// without a timestamp is left out).
    pub since_ms: Option<i64>,
    /// Only those of this installation (`default`: those without the header).
    pub installation: Option<String>,
}

impl Filter {
    /// Whether `letter` is one of them.
    pub fn keeps(&self, letter: &DeadLetter) -> bool {
        self.team
            .as_deref()
            .is_none_or(|team| letter.team.as_deref() == Some(team))
            && self
                .event_id
                .as_deref()
                .is_none_or(|event| letter.event_id.as_deref() == Some(event))
            && self
                .since_ms
                .is_none_or(|since| letter.timestamp_ms.is_some_and(|at| at >= since))
            && self
                .installation
                .as_deref()
                .is_none_or(|installation| letter.installation() == installation)
    }
}

/// A dead letter with its record as it is in the topic: what a replay writes back and the detail view
/// shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLetter {
    /// What the headers say.
    pub letter: DeadLetter,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Option<Vec<u8>>,
    /// Every header, in order (`None`: a null value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// How a header's or payload's bytes are written in a [`Detail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// As UTF-8 text.
    Text,
    /// As standard base64, because the bytes are not UTF-8.
    Base64,
}

/// One header of a [`Detail`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderView {
    /// Its name.
    pub name: String,
    /// Its value: the text, or base64 of the bytes when they are not UTF-8; `None` for a null value.
    pub value: Option<String>,
    /// Which of the two `value` is.
    pub encoding: Encoding,
}

/// A dead letter's value, decoded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "encoding", content = "value", rename_all = "lowercase")]
pub enum Payload {
    /// A JSON value (its content type is JSON and it parses).
    Json(serde_json::Value),
    /// Anything else (Avro, a JSON content type that does not parse, none), standard base64.
    Base64(String),
}

/// One dead letter whole: the list's fields, every header, the content type and the payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detail {
    /// The list's fields.
    #[serde(flatten)]
    pub letter: DeadLetter,
    /// Every header, in the record's order.
    pub headers: Vec<HeaderView>,
    /// The `content-type` header.
    pub content_type: Option<String>,
    /// The value; `None` when the record has none.
    pub payload: Option<Payload>,
}

/// Whether a media type is JSON: `application/json` or a `+json` type, parameters aside.
fn is_json(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

impl StoredLetter {
    /// The whole view of it.
    pub fn detail(&self) -> Detail {
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| {
                let (value, encoding) = match value.as_deref().map(std::str::from_utf8) {
                    None => (None, Encoding::Text),
                    Some(Ok(text)) => (Some(text.to_owned()), Encoding::Text),
                    Some(Err(_)) => (value.as_deref().map(|v| STANDARD.encode(v)), Encoding::Base64),
                };
                HeaderView {
                    name: name.clone(),
                    value,
                    encoding,
                }
            })
            .collect();
        let content_type = self
            .headers
            .iter()
            .rev()
            .find(|(name, _)| name == ce::CONTENT_TYPE)
            .and_then(|(_, v)| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned());
        let payload = self.value.as_deref().map(|value| {
            content_type
                .as_deref()
                .filter(|ct| is_json(ct))
                .and_then(|_| serde_json::from_slice(value).ok())
                .map_or_else(|| Payload::Base64(STANDARD.encode(value)), Payload::Json)
        });
        Detail {
            letter: self.letter.clone(),
            headers,
            content_type,
            payload,
        }
    }

    /// The headers its replay carries: its own without the dead-letter headers a worker adds (but
    /// `switchyard_source`), then `switchyard_replayed_from` = `<dead_letter_topic>/<partition>/<offset>`.
    pub fn replay_headers(&self, dead_letter_topic: &str) -> Vec<(String, Option<Vec<u8>>)> {
        let mut headers: Vec<(String, Option<Vec<u8>>)> = self
            .headers
            .iter()
            .filter(|(name, _)| name == SOURCE || !PLUGIN_DEAD_LETTER_HEADERS.contains(&name.as_str()))
            .cloned()
            .collect();
        let from = format!(
            "{dead_letter_topic}/{}/{}",
            self.letter.partition, self.letter.offset
        );
        headers.push((REPLAYED_FROM.to_owned(), Some(from.into_bytes())));
        headers
    }
}

/// Why reading or replaying failed. Nothing is replayed after a failed read.
#[derive(Debug, Error)]
pub enum DeadLetterError {
    /// The dead-letter topic does not exist (a plugin whose topic was deleted, or never made).
    #[error("the topic {0} does not exist")]
    NoSuchTopic(String),
    /// The read did not finish in time; what was read is incomplete and was not used.
    #[error(
        "reading {topic} to its end did not finish within {} s; nothing was used of what was read. Check that \
         the brokers are reachable with these settings (kafka.options), or allow longer",
        timeout.as_secs()
    )]
    TimedOut {
        /// The dead-letter topic.
        topic: String,
        /// The bound.
        timeout: Duration,
    },
    /// Kafka did not answer a read. Boxed: it is large, and a `Result` carries it by value.
    #[error(transparent)]
    Read(Box<RangeError>),
    /// A client could not be made.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Kafka refused a replayed record or its replay record, or did not acknowledge them all in time; the
    /// replay's transaction was aborted.
    #[error("replaying to {topic} failed: {source}; the replay was aborted, nothing of it is visible")]
    Replay {
        /// The plugin's events topic, or the replays topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// A call of the replay's transaction failed. After a failed commit whose outcome is unknown (a
    /// timeout) the replay may have been committed: list again before replaying again.
    #[error("the replay's transaction failed at {call}: {source}")]
    Transaction {
        /// `init_transactions`, `begin_transaction` or `commit_transaction`.
        call: &'static str,
        /// librdkafka's error.
        source: KafkaError,
    },
}

impl DeadLetterError {
    /// A failed read of `topic` within `timeout`: running out of time is [`DeadLetterError::TimedOut`].
    fn read(topic: &str, timeout: Duration) -> impl Fn(RangeError) -> Self {
        move |error| match error {
            RangeError::TimedOut { .. } => DeadLetterError::TimedOut {
                topic: topic.to_owned(),
                timeout,
            },
            error => DeadLetterError::Read(Box::new(error)),
        }
    }

    /// Whether the dead-letter topic does not exist.
    pub fn is_missing_topic(&self) -> bool {
        matches!(self, DeadLetterError::NoSuchTopic(_))
    }
}

/// What is left until `deadline`.
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Keeps what a filter lets through: the letters, and their records when `records` is set.
struct Collector {
    filter: Filter,
    records: bool,
    /// Only these, when set (the letters a request names).
    only: Option<BTreeSet<LetterId>>,
    letters: Vec<StoredLetter>,
}

impl Apply for Collector {
    fn apply(&mut self, record: Record<'_>) {
        let id = LetterId {
            partition: record.partition,
            offset: record.offset,
        };
        if self.only.as_ref().is_some_and(|only| !only.contains(&id)) {
            return;
        }
        let headers: Vec<HeaderRef<'_>> = record
            .headers
            .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default();
        let letter = DeadLetter::of(
            record.partition,
            record.offset,
            record.key,
            &headers,
            record.value.map_or(0, <[u8]>::len),
            record.timestamp_ms,
        );
        if !self.filter.keeps(&letter) {
            return;
        }
        let stored = if self.records {
            StoredLetter {
                letter,
                key: record.key.map(<[u8]>::to_vec),
                value: record.value.map(<[u8]>::to_vec),
                headers: headers
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), v.map(<[u8]>::to_vec)))
                    .collect(),
            }
        } else {
            StoredLetter {
                letter,
                key: None,
                value: None,
                headers: Vec::new(),
            }
        };
        self.letters.push(stored);
    }
}

/// The end of each partition of `topic` as a `read_committed` reader sees it (its last stable offset),
/// indexed by partition: librdkafka lists a topic's partitions sorted by id, and they are `0..n`.
fn ends(
    reader: &RangeReader,
    topic: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<i64>, DeadLetterError> {
    reader
        .stable_ends(topic, left(deadline))
        .map_err(DeadLetterError::read(topic, timeout))
}

/// Applies every record of `topic`, partition by partition, each up to where it ended when the read began,
/// within `timeout`; [`DeadLetterError::NoSuchTopic`] when the topic does not exist.
fn read_whole(
    clients: &Clients,
    name: &str,
    topic: &str,
    applier: &mut impl Apply,
    timeout: Duration,
) -> Result<(), DeadLetterError> {
    let deadline = Instant::now() + timeout;
    let reader = RangeReader::new(clients, name)?;
    let ends = ends(&reader, topic, deadline, timeout)?;
    if ends.is_empty() {
        return Err(DeadLetterError::NoSuchTopic(topic.to_owned()));
    }
    for (partition, &end) in (0..).zip(&ends) {
        // From the start: below the low watermark, the reader starts at it.
        reader
            .read(topic, partition, 0, end, applier, deadline)
            .map_err(DeadLetterError::read(topic, timeout))?;
    }
    Ok(())
}

fn read_all(
    clients: &Clients,
    name: &str,
    topic: &str,
    filter: &Filter,
    records: bool,
    timeout: Duration,
) -> Result<Vec<StoredLetter>, DeadLetterError> {
    let mut collector = Collector {
        filter: filter.clone(),
        records,
        only: None,
        letters: Vec::new(),
    };
    read_whole(clients, name, topic, &mut collector, timeout)?;
    let mut letters = collector.letters;
    letters.sort_by_key(|l| l.letter.id);
    Ok(letters)
}

/// Every dead letter of `topic` that `filter` keeps, in partition and offset order: the whole topic up to
/// where each partition ended when the read began, or an error ([`DeadLetterError::TimedOut`] after
/// `timeout`, [`DeadLetterError::NoSuchTopic`]), never a part of it. A consumer of its own named `name`
/// reads it, `read_committed`; the values are not kept.
pub fn list(
    clients: &Clients,
    name: &str,
    topic: &str,
    filter: &Filter,
    timeout: Duration,
) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let letters = read_all(clients, name, topic, filter, false, timeout)?;
    Ok(letters.into_iter().map(|l| l.letter).collect())
}

/// As [`list`], with each letter's record.
pub fn records(
    clients: &Clients,
    name: &str,
    topic: &str,
    filter: &Filter,
    timeout: Duration,
) -> Result<Vec<StoredLetter>, DeadLetterError> {
    read_all(clients, name, topic, filter, true, timeout)
}

/// Offsets of one partition closer than this are read in one range rather than one by one.
const RANGE_GAP: i64 = 64;

/// The letters `ids` names that `topic` holds (a missing topic holds none), with their records, in
/// partition and offset order; a letter retention deleted, past the end of its partition or of a
/// partition the topic does not have is not there. Reads only around the chosen offsets (ranges of nearby
/// ones), not the whole topic, within `timeout` in all.
pub fn records_at(
    clients: &Clients,
    name: &str,
    topic: &str,
    ids: &BTreeSet<LetterId>,
    timeout: Duration,
) -> Result<Vec<StoredLetter>, DeadLetterError> {
    let deadline = Instant::now() + timeout;
    let reader = RangeReader::new(clients, name)?;
    let ends = ends(&reader, topic, deadline, timeout)?;
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for id in ids {
        let end = usize::try_from(id.partition).ok().and_then(|p| ends.get(p));
        if end.is_some_and(|&end| id.offset < end) {
            by_partition.entry(id.partition).or_default().push(id.offset);
        }
    }
    let mut collector = Collector {
        filter: Filter::default(),
        records: true,
        only: Some(ids.clone()),
        letters: Vec::new(),
    };
    for (partition, offsets) in by_partition {
        for (from, until) in ranges(&offsets) {
            reader
                .read(topic, partition, from, until, &mut collector, deadline)
                .map_err(DeadLetterError::read(topic, timeout))?;
        }
    }
    let mut letters = collector.letters;
    letters.sort_by_key(|l| l.letter.id);
    letters.dedup_by_key(|l| l.letter.id);
    Ok(letters)
}

/// `[from, until)` ranges covering sorted `offsets`, one per run of offsets closer than [`RANGE_GAP`].
fn ranges(offsets: &[i64]) -> Vec<(i64, i64)> {
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for &offset in offsets {
        match ranges.last_mut() {
            Some((_, until)) if offset < *until + RANGE_GAP => *until = (*until).max(offset + 1),
            _ => ranges.push((offset, offset + 1)),
        }
    }
    ranges
}

/// Reads of plugin queues (dead-letter reads, replays, lag reads) one replica runs at once; more wait
/// for a slot within their bound.
pub const MAX_CONCURRENT_READS: usize = 4;

/// Where the API reads a plugin's dead letters and its workers' progress: the Kafka clients, the name
/// templates of the plugin's topics and of its workers' consumer group, the replays topic, and the bound of
/// one read or replay (`store.write_timeout_ms`). Each read makes its own consumer and runs on a blocking thread, at
/// most [`MAX_CONCURRENT_READS`] at once ([`PluginQueues::run`]).
#[derive(Clone)]
pub struct PluginQueues {
    clients: Clients,
    events_template: String,
    dead_letter_template: String,
    group_template: String,
    replays_topic: String,
    timeout: Duration,
    permits: Arc<Semaphore>,
}

/// Why [`PluginQueues::run`] has no result.
#[derive(Debug, Error)]
pub enum RunError {
    /// No slot freed within the bound.
    #[error("every slot for reading plugin queues stayed taken for {} ms", .0.as_millis())]
    Busy(Duration),
    /// The job panicked.
    #[error("the read of a plugin queue failed unexpectedly: {0}")]
    Failed(String),
}

impl PluginQueues {
    /// From the registry's configuration; the clients report their statistics into `stats`.
    pub fn new(config: &Config, stats: ClientStats) -> Self {
        Self {
            clients: config.clients(stats),
            events_template: config.topics.plugin_events_template.clone(),
            dead_letter_template: config.topics.plugin_dead_letter_template.clone(),
            group_template: config.topics.plugin_group_template.clone(),
            replays_topic: config.topics.dead_letter_replays.clone(),
            timeout: config.write_timeout(),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_READS)),
        }
    }

    /// Runs `job` on a blocking thread once a slot is free, and answers what it returns. The job gets the
    /// clients and the time left of the bound (the wait for a slot counts); it must finish within it.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Clients, Duration) -> T + Send + 'static,
    ) -> Result<T, RunError> {
        let started = Instant::now();
        let permit = tokio::time::timeout(self.timeout, Arc::clone(&self.permits).acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(RunError::Busy(self.timeout))?;
        let (clients, left) = (
            self.clients.clone(),
            self.timeout.saturating_sub(started.elapsed()),
        );
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job(&clients, left)
        })
        .await
        .map_err(|e| RunError::Failed(e.to_string()))
    }

    /// The clients.
    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    /// The bound of one read or replay.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `plugin.<id>.events`.
    pub fn events_topic(&self, plugin: &str) -> String {
        plugin_events_topic(&self.events_template, plugin)
    }

    /// `plugin.<id>.dlq`.
    pub fn dead_letter_topic(&self, plugin: &str) -> String {
        plugin_events_topic(&self.dead_letter_template, plugin)
    }

    /// Where replays are recorded, `switchyard.dead-letter-replays` (a store topic).
    pub fn replays_topic(&self) -> &str {
        &self.replays_topic
    }

    /// The plugin workers' consumer group, `switchyard-plugin-<id>`.
    pub fn group(&self, plugin: &str) -> String {
        plugin_events_topic(&self.group_template, plugin)
    }
}

#[cfg(test)]
mod tests;
