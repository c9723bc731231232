//! How far back a team's backfill can reach: the timestamp of the oldest record of the team's partition of
//! `core.events` that a `read_committed` reader sees, once retention (or a deletion of records) has removed
//! any. A partition whose low watermark is still 0 has lost nothing: it holds the team's whole history, so
//! no `since` reaches further back than it (a fresh cluster, where the first event came after the time a
//! backfill asks for, is not a loss of history).
//!
//! ```text
//!   team ─► partition_for_key(team, partitions of core.events) ─► low watermark (0: None) ─► assign
//!           there, poll one record ─► its timestamp (None: topic missing, partition empty, nothing
//!           committed)
//! ```
//!
//! librdkafka's calls block, so each check runs on tokio's blocking threads with a consumer of its own
//! (no group, nothing committed), bounded by one timeout. Backfill requests are rare; a consumer per check
//! keeps no connection open in between.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use switchyard_schemas::topics::partition_for_key;
use switchyard_service::kafka::{ClientError, Clients, KafkaContext, metadata_partitions};
use thiserror::Error;

/// Why the oldest record could not be read.
#[derive(Debug, Error)]
pub enum RetentionError {
    /// The consumer could not be made.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A Kafka call failed.
    #[error("{action} of {topic} partition {partition} failed: {source}")]
    Kafka {
        /// What was being done.
        action: &'static str,
        /// The topic.
        topic: String,
        /// The partition (-1 before it is known).
        partition: i32,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// No record arrived in time although the partition holds some.
    #[error("reading the oldest record of {topic} partition {partition} took longer than {waited:?}")]
    TimedOut {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// How long it waited.
        waited: Duration,
    },
    /// The blocking task did not finish.
    #[error("the retention check did not finish: {0}")]
    Task(String),
}

/// Reads the oldest timestamp of a team's partition of `core.events`.
#[derive(Clone)]
pub struct Retention {
    clients: Clients,
    topic: String,
    timeout: Duration,
}

impl Retention {
    /// Checks `topic` (the router's input) with consumers made by `clients`, each check within `timeout`.
    pub fn new(clients: Clients, topic: String, timeout: Duration) -> Self {
        Self {
            clients,
            topic,
            timeout,
        }
    }

    /// The timestamp, in milliseconds since the Unix epoch, of the oldest record of `team`'s partition;
    /// `None` when the topic does not exist, the partition holds no committed record, or nothing was ever
    /// removed from it (its low watermark is 0).
    pub async fn earliest_ms(&self, team: &str) -> Result<Option<i64>, RetentionError> {
        let this = self.clone();
        let team = team.to_owned();
        tokio::task::spawn_blocking(move || this.earliest_ms_blocking(&team))
            .await
            .map_err(|e| RetentionError::Task(e.to_string()))?
    }

    fn earliest_ms_blocking(&self, team: &str) -> Result<Option<i64>, RetentionError> {
        let started = Instant::now();
        let topic = self.topic.as_str();
        let kafka = |action: &'static str, partition: i32| {
            move |source| RetentionError::Kafka {
                action,
                topic: topic.to_owned(),
                partition,
                source,
            }
        };
        let consumer: BaseConsumer<KafkaContext> = self
            .clients
            .consumer("backfill-retention")
            // librdkafka wants a group id even for a consumer that never joins its group.
            .managed("group.id", "switchyard-registry-retention-unused")
            .managed("enable.auto.commit", "false")
            .managed("enable.auto.offset.store", "false")
            .managed("isolation.level", "read_committed")
            .managed("enable.partition.eof", "true")
            .managed("allow.auto.create.topics", "false")
            // Retention may delete the low watermark's segment between the two calls below.
            .tunable("auto.offset.reset", "earliest")
            .tunable("fetch.wait.max.ms", "100")
            .create()?;
        let partitions = metadata_partitions(consumer.client(), topic, self.timeout)
            .map_err(kafka("reading the metadata", -1))?;
        if partitions.is_empty() {
            return Ok(None);
        }
        let partition = partition_for_key(team.as_bytes(), partitions.len() as i32);
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, self.remaining(started))
            .map_err(kafka("reading the watermarks", partition))?;
        if low == 0 || low >= high {
            return Ok(None);
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(low))
            .map_err(kafka("assigning", partition))?;
        consumer
            .assign(&assignment)
            .map_err(kafka("assigning", partition))?;
        loop {
            let remaining = self.remaining(started);
            if remaining.is_zero() {
                return Err(RetentionError::TimedOut {
                    topic: topic.to_owned(),
                    partition,
                    waited: started.elapsed(),
                });
            }
            match consumer.poll(remaining.min(Duration::from_millis(100))) {
                None => {}
                Some(Ok(message)) => return Ok(message.timestamp().to_millis()),
                // Only aborted records and transaction markers: nothing a backfill could read.
                Some(Err(KafkaError::PartitionEOF(_))) => return Ok(None),
                Some(Err(error)) if is_transient(&error) => {}
                Some(Err(error)) => return Err(kafka("reading the oldest record", partition)(error)),
            }
        }
    }

    fn remaining(&self, started: Instant) -> Duration {
        self.timeout.saturating_sub(started.elapsed())
    }
}

/// Errors a consumer reports and recovers from by itself.
fn is_transient(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::OffsetOutOfRange
        )
    )
}
