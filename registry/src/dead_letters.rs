//! A plugin's dead letters (`plugin.<id>.dlq`): listing them and replaying them onto the plugin's topic once
//! the cause is fixed. Used by `switchyardctl dlq list|show|replay`.
//!
//! A replayed record is the routed record as it was (key, value, the CloudEvents and `switchyard_source`
//! headers), without the dead-letter headers the worker added, plus `switchyard_replayed_from` =
//! `<dlq topic>/<partition>/<offset>`. It is a new record at the end of the plugin's topic: it runs after
//! whatever the team produced since, and its `ce_id` (the `webhook-id`) is unchanged, so a plugin that
//! de-duplicates on it will not act twice if the first delivery did go through. Replaying the same dead
//! letters twice delivers them twice; `--dry-run` shows what would be replayed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::message::{Header, Headers, OwnedHeaders};

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use serde::Serialize;
use switchyard_schemas::dead_letter::{PLUGIN_DEAD_LETTER_HEADERS, REPLAYED_FROM, SOURCE};
use switchyard_service::follower::{self, Apply, FollowError, Record};
use switchyard_service::kafka::{ClientError, Clients, DeliveryTally};
use thiserror::Error;

/// One dead letter.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// `<topic>/<partition>/<offset>` in the dead-letter topic.
    pub position: String,
    /// The team (the key).
    pub team: String,
    /// `ce_id`.
    pub event_id: String,
    /// `ce_type`.
    pub event_type: String,
    /// `switchyard_error`.
    pub reason: String,
    /// `switchyard_error_detail`.
    pub detail: String,
    /// `switchyard_attempts`.
    pub attempts: String,
    /// When it was dead-lettered, RFC 3339 (the record's timestamp).
    pub dead_lettered_at: String,
    /// Value size in bytes.
    pub bytes: usize,
    #[serde(skip)]
    key: Option<Vec<u8>>,
    #[serde(skip)]
    value: Option<Vec<u8>>,
    #[serde(skip)]
    headers: Vec<(String, Option<Vec<u8>>)>,
    #[serde(skip)]
    timestamp: SystemTime,
    #[serde(skip)]
    order: (i32, i64),
}

/// Which dead letters.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this team's.
    pub team: Option<String>,
    /// Only those dead-lettered at or after this time.
    pub since: Option<SystemTime>,
}

/// Why listing or replaying failed. Nothing is replayed after a failed read.
#[derive(Debug, Error)]
pub enum DeadLetterError {
    /// The topic could not be read to its end (it does not exist, Kafka did not answer, time ran out).
    #[error(transparent)]
    Read(#[from] FollowError),
    /// The producer could not be made.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Kafka refused a replayed record or did not acknowledge them all in time.
    #[error("replaying to {topic} failed: {source}")]
    Replay {
        /// The plugin's events topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
}

fn rfc3339(time: SystemTime) -> String {
    let nanos = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Reads every dead letter of `topic` that `filter` keeps, in partition and offset order: the whole topic
/// up to where it ended when the read began, or an error ([`FollowError::TimedOut`] after `timeout`), never
/// a part of it.
pub fn read(
    clients: &Clients,
    topic: &str,
    filter: &Filter,
    timeout: Duration,
) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let mut collector = Collector {
        topic: topic.to_owned(),
        filter: filter.clone(),
        letters: Vec::new(),
    };
    follower::read_until_caught_up(clients, topic, "switchyardctl-dlq", &mut collector, timeout)?;
    let mut letters = collector.letters;
    letters.sort_by_key(|l| l.order);
    Ok(letters)
}

/// Keeps the dead letters a filter lets through.
struct Collector {
    topic: String,
    filter: Filter,
    letters: Vec<DeadLetter>,
}

impl Apply for Collector {
    fn apply(&mut self, record: Record<'_>) {
        let headers: Vec<(String, Option<Vec<u8>>)> = record
            .headers
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        let text = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.as_deref())
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let timestamp = record
            .timestamp_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map_or(UNIX_EPOCH, |ms| UNIX_EPOCH + Duration::from_millis(ms));
        let letter = DeadLetter {
            position: format!("{}/{}/{}", self.topic, record.partition, record.offset),
            team: record
                .key
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default(),
            event_id: text("ce_id"),
            event_type: text("ce_type"),
            reason: text("switchyard_error"),
            detail: text("switchyard_error_detail"),
            attempts: text("switchyard_attempts"),
            dead_lettered_at: rfc3339(timestamp),
            bytes: record.value.map_or(0, <[u8]>::len),
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.map(<[u8]>::to_vec),
            headers,
            timestamp,
            order: (record.partition, record.offset),
        };
        let keep = self.filter.team.as_ref().is_none_or(|t| *t == letter.team)
            && self.filter.since.is_none_or(|since| letter.timestamp >= since);
        if keep {
            self.letters.push(letter);
        }
    }
}

/// Writes each dead letter back to `events_topic` as described in the module documentation, and waits
/// until all are acknowledged.
pub fn replay(
    clients: &Clients,
    letters: &[DeadLetter],
    events_topic: &str,
    timeout: Duration,
) -> Result<usize, DeadLetterError> {
    let failed = |source| DeadLetterError::Replay {
        topic: events_topic.to_owned(),
        source,
    };
    let client = clients
        .producer("switchyardctl-replay")
        .managed("enable.idempotence", "true")
        .tunable("partitioner", "murmur2_random");
    let context = DeliveryTally::new(client.context());
    let producer: ThreadedProducer<DeliveryTally> = client.create_with(context)?;
    for letter in letters {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &letter.headers {
            if key == SOURCE || !PLUGIN_DEAD_LETTER_HEADERS.contains(&key.as_str()) {
                headers = headers.insert(Header {
                    key,
                    value: value.as_deref(),
                });
            }
        }
        headers = headers.insert(Header {
            key: REPLAYED_FROM,
            value: Some(letter.position.as_bytes()),
        });
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(events_topic).headers(headers);
        if let Some(key) = &letter.key {
            record = record.key(key.as_slice());
        }
        if let Some(value) = &letter.value {
            record = record.payload(value.as_slice());
        }
        producer.send(record).map_err(|(error, _)| failed(error))?;
    }
    producer.flush(timeout).map_err(failed)?;
    // A refused record fails the replay instead of being counted as replayed.
    if let Some(error) = producer.context().first_failure() {
        return Err(failed(error));
    }
    Ok(letters.len())
}
