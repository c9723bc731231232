//! A consumer group's lag on a topic: the offsets the group committed against each partition's end. The
//! one reader of it: the registry's `GET /v1/plugins/{id}/lag` and the load test's progress watcher.
//!
//! ```text
//!   metadata ─► partitions ─┬─► OffsetFetch (the group's coordinator) ─► committed offset per partition
//!                           └─► ListOffsets (each partition's leader)  ─► low watermark, end
//!   lag = end − committed, where committed is clamped to [low, end] and no commit counts as low
//! ```
//!
//! The reader's consumer carries the group's id but never joins the group: it only asks for the offsets the
//! members committed, and nothing it does moves them. It reads `read_committed`, as the plugin workers and
//! the router do, so a partition's end is its last stable offset (its high watermark when no transaction is
//! open). A topic written in transactions ends each transaction with a commit marker that takes an offset
//! of its own and that no record stands for; a group that stores the offset after its last record (the
//! plugin workers) never commits past that marker, so a partition it has finished can show a lag of 1.
//!
//! No commit, or a commit below the low watermark (retention deleted what it pointed at), counts from the
//! low watermark: a member starting then begins at the earliest record (`auto.offset.reset=earliest`, the
//! workers' setting), so everything still held is ahead of the group.
//!
//! The calls block; keep them off async worker threads.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;

use super::clients::{ClientError, Clients};
use super::context::KafkaContext;
use super::metadata_partitions;

/// One partition's position of a consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: i32,
    /// The offset the group committed (the next record it will read); `None` when it committed none.
    pub committed: Option<i64>,
    /// The partition's low watermark: its first offset still held.
    pub low: i64,
    /// The partition's end: its last stable offset, as a `read_committed` reader sees it.
    pub end: i64,
    /// Records between the group's position and the end ([`partition_lag`]).
    pub lag: i64,
}

/// The records of a partition ahead of a group whose commit is `committed`: from the commit (clamped to
/// `[low, end]`; the low watermark without one) to `end`. Never negative.
pub fn partition_lag(committed: Option<i64>, low: i64, end: i64) -> i64 {
    let end = end.max(low);
    let from = committed.map_or(low, |at| at.clamp(low, end));
    end - from
}

/// Why a group's offsets could not be read.
#[derive(Debug, Error)]
pub enum LagError {
    /// The consumer could not be made.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A Kafka call failed or did not answer in time.
    #[error("{action} of {topic} for the consumer group {group} failed: {source}")]
    Kafka {
        /// What was being read.
        action: &'static str,
        /// The topic.
        topic: String,
        /// The group.
        group: String,
        /// librdkafka's error (boxed: it is large, and a `Result` carries it by value).
        source: Box<KafkaError>,
    },
}

/// Reads one consumer group's committed offsets and the ends of the partitions of a topic. It keeps one
/// consumer, so a watcher that asks often keeps its connections open.
pub struct LagReader {
    consumer: BaseConsumer<KafkaContext>,
    group: String,
}

impl LagReader {
    /// A reader of `group`'s offsets, its client named `name` (its `client.id` and metrics label).
    pub fn new(clients: &Clients, name: &str, group: &str) -> Result<Self, ClientError> {
        let consumer = clients
            .consumer(name)
            // The group whose commits are read; this consumer never subscribes, so it never joins it.
            .managed("group.id", group)
            .managed("enable.auto.commit", "false")
            .managed("enable.auto.offset.store", "false")
            .managed("isolation.level", "read_committed")
            .managed("allow.auto.create.topics", "false")
            .create()?;
        Ok(Self {
            consumer,
            group: group.to_owned(),
        })
    }

    /// The group this reader reads.
    pub fn group(&self) -> &str {
        &self.group
    }

    fn failed(&self, action: &'static str, topic: &str) -> impl FnOnce(KafkaError) -> LagError {
        let (topic, group) = (topic.to_owned(), self.group.clone());
        move |source| LagError::Kafka {
            action,
            topic,
            group,
            source: Box::new(source),
        }
    }

    /// The partitions of `topic`, in order; none when it does not exist.
    pub fn partitions(&self, topic: &str, timeout: Duration) -> Result<Vec<i32>, LagError> {
        let mut partitions = metadata_partitions(self.consumer.client(), topic, timeout)
            .map_err(self.failed("reading the metadata", topic))?;
        partitions.sort_unstable();
        Ok(partitions)
    }

    /// The group's committed offset of each of `partitions` (`None`: none committed), in their order. Asks
    /// the group's coordinator only, not the partitions' leaders: it answers while a leader is down.
    pub fn committed(
        &self,
        topic: &str,
        partitions: &[i32],
        timeout: Duration,
    ) -> Result<Vec<(i32, Option<i64>)>, LagError> {
        let mut list = TopicPartitionList::new();
        for &partition in partitions {
            list.add_partition(topic, partition);
        }
        let committed = self
            .consumer
            .committed_offsets(list, timeout)
            .map_err(self.failed("reading the committed offsets", topic))?;
        Ok(partitions
            .iter()
            .map(|&partition| {
                let at = committed
                    .find_partition(topic, partition)
                    .and_then(|entry| match entry.offset() {
                        Offset::Offset(at) => Some(at),
                        _ => None,
                    });
                (partition, at)
            })
            .collect())
    }

    /// The group's lag on each of `partitions` of `topic`, within `timeout` in all.
    pub fn lag(
        &self,
        topic: &str,
        partitions: &[i32],
        timeout: Duration,
    ) -> Result<Vec<PartitionLag>, LagError> {
        let deadline = Instant::now() + timeout;
        let committed = self.committed(topic, partitions, remaining(deadline))?;
        committed
            .into_iter()
            .map(|(partition, committed)| {
                let (low, end) = self
                    .consumer
                    .fetch_watermarks(topic, partition, remaining(deadline))
                    .map_err(self.failed("reading the watermarks", topic))?;
                Ok(PartitionLag {
                    partition,
                    committed,
                    low,
                    end,
                    lag: partition_lag(committed, low, end),
                })
            })
            .collect()
    }
}

/// What is left until `deadline`, at least a millisecond (librdkafka reads zero as "do not wait at all").
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// `group`'s lag on every partition of `topic` (none when the topic does not exist), read once with a
/// consumer of its own named `name`, within `timeout` in all. Blocks the calling thread.
pub fn group_lag(
    clients: &Clients,
    name: &str,
    group: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<PartitionLag>, LagError> {
    let deadline = Instant::now() + timeout;
    let reader = LagReader::new(clients, name, group)?;
    let partitions = reader.partitions(topic, remaining(deadline))?;
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    reader.lag(topic, &partitions, remaining(deadline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_commit_within_the_partitions_bounds() {
        assert_eq!(partition_lag(Some(7), 0, 10), 3);
        assert_eq!(partition_lag(Some(10), 0, 10), 0, "caught up");
        assert_eq!(partition_lag(None, 4, 10), 6, "no commit: everything still held");
        assert_eq!(
            partition_lag(Some(2), 4, 10),
            6,
            "a commit retention passed counts from the low mark"
        );
        assert_eq!(
            partition_lag(Some(12), 0, 10),
            0,
            "a commit past the end is no negative lag"
        );
        assert_eq!(partition_lag(None, 0, 0), 0, "an empty partition");
        assert_eq!(
            partition_lag(Some(3), 5, 4),
            0,
            "watermarks read while retention moved"
        );
    }
}
