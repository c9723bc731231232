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

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;
use switchyard_schemas::dead_letter::{PLUGIN_DEAD_LETTER_HEADERS, REPLAYED_FROM, SOURCE};

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
}

/// Which dead letters.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this team's.
    pub team: Option<String>,
    /// Only those dead-lettered at or after this time.
    pub since: Option<SystemTime>,
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
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

/// Reads every dead letter of `topic` that `filter` keeps, in partition and offset order.
pub fn read(
    bootstrap: &str,
    topic: &str,
    filter: &Filter,
    timeout: Duration,
) -> Result<Vec<DeadLetter>, KafkaError> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "switchyardctl-dlq-unused")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut ends = std::collections::HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        if high > low {
            ends.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    let mut letters = Vec::new();
    let started = std::time::Instant::now();
    while !ends.is_empty() && started.elapsed() < timeout {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        if ends
            .get(&message.partition())
            .is_some_and(|&end| message.offset() + 1 >= end)
        {
            ends.remove(&message.partition());
        }
        let headers: Vec<(String, Option<Vec<u8>>)> = message
            .headers()
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
        let timestamp = message
            .timestamp()
            .to_millis()
            .and_then(|ms| u64::try_from(ms).ok())
            .map_or(UNIX_EPOCH, |ms| UNIX_EPOCH + Duration::from_millis(ms));
        let letter = DeadLetter {
            position: format!("{topic}/{}/{}", message.partition(), message.offset()),
            team: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default(),
            event_id: text("ce_id"),
            event_type: text("ce_type"),
            reason: text("switchyard_error"),
            detail: text("switchyard_error_detail"),
            attempts: text("switchyard_attempts"),
            dead_lettered_at: rfc3339(timestamp),
            bytes: message.payload().map_or(0, <[u8]>::len),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp,
        };
        let keep = filter.team.as_ref().is_none_or(|t| *t == letter.team)
            && filter.since.is_none_or(|since| letter.timestamp >= since);
        if keep {
            letters.push(letter);
        }
    }
    letters.sort_by(|a, b| a.position.cmp(&b.position));
    Ok(letters)
}

/// Writes each dead letter back to `events_topic` as described in the module documentation, and waits
/// until all are acknowledged.
pub fn replay(
    bootstrap: &str,
    letters: &[DeadLetter],
    events_topic: &str,
    timeout: Duration,
) -> Result<usize, KafkaError> {
    let producer: ThreadedProducer<DefaultProducerContext> = client(bootstrap)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .create()?;
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
        producer.send(record).map_err(|(error, _)| error)?;
    }
    producer.flush(timeout)?;
    Ok(letters.len())
}
