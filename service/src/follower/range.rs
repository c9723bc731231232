//! Reading chosen ranges of a partition, for a writer that decides on what was committed before its own
//! record (the registry's compare-and-set).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;

use super::{Apply, Record, consumer_builder};
use crate::kafka::{ClientError, Clients, KafkaContext, metadata_partitions};

/// Why a [`RangeReader`] did not finish.
#[derive(Debug, Error)]
pub enum RangeError {
    /// A Kafka call failed.
    #[error("{action} of {topic} partition {partition} failed: {source}")]
    Kafka {
        /// What the reader was doing.
        action: &'static str,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The deadline passed first.
    #[error("{action} of {topic} partition {partition} did not finish in time")]
    TimedOut {
        /// What the reader was doing.
        action: &'static str,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
}

/// Reads chosen ranges of a partition, `read_committed` like a [`Follower`], for a writer that decides
/// on what was committed before its own record: it waits until the partition's last stable offset reaches
/// that record ([`RangeReader::wait_stable`]), then reads the committed records below it
/// ([`RangeReader::read`]). One range at a time; the calls block.
pub struct RangeReader {
    consumer: BaseConsumer<KafkaContext>,
}

impl RangeReader {
    /// A reader named `name` in logs and metrics.
    pub fn new(clients: &Clients, name: &str) -> Result<Self, ClientError> {
        let consumer = consumer_builder(clients, name)
            .managed("auto.offset.reset", "earliest")
            // The end of a range is met on an empty fetch answer: keep the broker's wait for one short.
            .tunable("fetch.wait.max.ms", "5")
            .create()?;
        Ok(Self { consumer })
    }

    /// Waits until the last stable offset of the partition is at least `offset`: every transaction with
    /// a record below it is committed or aborted. A transaction that holds `offset` itself keeps the last
    /// stable offset there.
    pub fn wait_stable(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        deadline: Instant,
    ) -> Result<(), RangeError> {
        let action = "waiting for the last stable offset";
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // A read_committed client's "high watermark" is the last stable offset.
            let (_, stable) = self
                .consumer
                .fetch_watermarks(topic, partition, remaining.max(Duration::from_millis(1)))
                .map_err(|source| RangeError::Kafka {
                    action,
                    topic: topic.to_owned(),
                    partition,
                    source,
                })?;
            if stable >= offset {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RangeError::TimedOut {
                    action,
                    topic: topic.to_owned(),
                    partition,
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The last stable offset of every partition of `topic`: no committed record is at or past it.
    pub fn stable_ends(&self, topic: &str, timeout: Duration) -> Result<Vec<i64>, RangeError> {
        let kafka = |partition, source| RangeError::Kafka {
            action: "reading the end",
            topic: topic.to_owned(),
            partition,
            source,
        };
        let partitions =
            metadata_partitions(self.consumer.client(), topic, timeout).map_err(|e| kafka(-1, e))?;
        partitions
            .into_iter()
            .map(|partition| {
                self.consumer
                    .fetch_watermarks(topic, partition, timeout)
                    .map(|(_, stable)| stable)
                    .map_err(|e| kafka(partition, e))
            })
            .collect()
    }

    /// Applies the committed records of `[from, until)` of the partition, in log order, once
    /// [`RangeReader::wait_stable`] for `until` returned and while the transaction holding `until` (the
    /// caller's) stays open: the end of the partition is then `until` exactly.
    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        until: i64,
        applier: &mut impl Apply,
        deadline: Instant,
    ) -> Result<(), RangeError> {
        let action = "reading a range";
        let kafka = |source| RangeError::Kafka {
            action,
            topic: topic.to_owned(),
            partition,
            source,
        };
        if from >= until {
            return Ok(());
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(from))
            .map_err(kafka)?;
        self.consumer.assign(&assignment).map_err(kafka)?;
        let outcome = loop {
            if Instant::now() >= deadline {
                break Err(RangeError::TimedOut {
                    action,
                    topic: topic.to_owned(),
                    partition,
                });
            }
            match self.consumer.poll(Duration::from_millis(20)) {
                None => {}
                Some(Ok(message)) if message.offset() >= until => break Ok(()),
                Some(Ok(message)) => applier.apply(Record::of(&message)),
                Some(Err(KafkaError::PartitionEOF(_))) => break Ok(()),
                Some(Err(error)) => break Err(kafka(error)),
            }
        };
        let _ = self.consumer.unassign();
        outcome
    }
}
