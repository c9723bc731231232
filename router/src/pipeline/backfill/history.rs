//! The Kafka side of backfills: a reader of one `core.events` partition from an offset, the offsets of
//! times, and the committed progress of the partitions a replica was just assigned.
//!
//! A reader is a consumer of its own (no group, nothing committed, `read_committed`, end of partition
//! reported), so history never shares a fetch queue with live routing; it reads only the partition of
//! its run. `auto.offset.reset = error`: a record that retention deleted under it is an error of the run,
//! not a silent jump.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};
use switchyard_schemas::backfill::Progress;
use switchyard_service::follower::{self, Apply, FollowError, Record};
use switchyard_service::kafka::{ClientError, Clients, KafkaContext};
use tracing::warn;

/// One partition of the input topic, read from an offset.
pub struct HistoryReader {
    consumer: BaseConsumer<KafkaContext>,
    topic: String,
    partition: i32,
}

/// What a poll of a reader found.
pub enum Polled<'a> {
    /// A record.
    Record(BorrowedMessage<'a>),
    /// The end of the partition (as of now, for `read_committed`).
    End,
    /// Nothing yet.
    Nothing,
    /// The reader failed (the offset is gone, the topic is gone).
    Failed(KafkaError),
}

impl HistoryReader {
    /// A reader of `partition` of `topic`, not yet positioned ([`HistoryReader::seek`]).
    pub fn new(clients: &Clients, topic: &str, partition: i32) -> Result<Self, ClientError> {
        let consumer = clients
            .consumer("backfill")
            .tunable("client.id", "switchyard-router-backfill")
            // librdkafka requires a group id for a consumer handle even when it never joins the group.
            .managed("group.id", "switchyard-router-backfill-unused")
            .managed("enable.auto.commit", "false")
            .managed("enable.auto.offset.store", "false")
            .managed("isolation.level", "read_committed")
            .managed("enable.partition.eof", "true")
            .managed("allow.auto.create.topics", "false")
            .managed("auto.offset.reset", "error")
            .tunable("fetch.queue.backoff.ms", "10")
            // A backfill reads at its pace (thousands of records a second): small fetches and a small
            // prefetch, so that it never asks the brokers for tens of megabytes of cold history at once
            // (librdkafka's defaults: 50 MiB responses, 100,000 queued messages, 64 MiB).
            .tunable("fetch.max.bytes", "1048576")
            .tunable("max.partition.fetch.bytes", "1048576")
            .tunable("queued.min.messages", "2000")
            .tunable("queued.max.messages.kbytes", "2048")
            .create()?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            partition,
        })
    }

    /// The first offset whose record's timestamp is at or after `ms` (the end of the partition when none
    /// is), and the partition's first offset still held. Blocking, within `timeout`.
    pub fn offset_for_time(&self, ms: i64, timeout: Duration) -> Result<i64, KafkaError> {
        let mut query = TopicPartitionList::new();
        query.add_partition_offset(&self.topic, self.partition, Offset::Offset(ms))?;
        let found = self.consumer.offsets_for_times(query, timeout)?;
        let offset = found
            .find_partition(&self.topic, self.partition)
            .map(|e| e.offset());
        match offset {
            Some(Offset::Offset(offset)) => Ok(offset),
            // No record at or after the time: the end.
            _ => Ok(self.watermarks(timeout)?.1),
        }
    }

    /// The partition's low and high watermarks. Blocking.
    pub fn watermarks(&self, timeout: Duration) -> Result<(i64, i64), KafkaError> {
        self.consumer
            .fetch_watermarks(&self.topic, self.partition, timeout)
    }

    /// Reads from `offset` on.
    pub fn seek(&self, offset: i64) -> Result<(), KafkaError> {
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&self.topic, self.partition, Offset::Offset(offset))?;
        self.consumer.assign(&assignment)
    }

    /// The next record, without waiting.
    pub fn poll(&self) -> Polled<'_> {
        match self.consumer.poll(Duration::ZERO) {
            None => Polled::Nothing,
            Some(Ok(message)) => Polled::Record(message),
            Some(Err(KafkaError::PartitionEOF(_))) => Polled::End,
            Some(Err(error)) => Polled::Failed(error),
        }
    }
}

/// Reads the committed progress of backfills on `partitions` from `topic` (to its end, `read_committed`:
/// a transaction an earlier owner left open is waited for), the last record of each key. Blocking, within
/// `timeout`.
pub fn load_progress(
    clients: &Clients,
    topic: &str,
    partitions: &HashSet<i32>,
    timeout: Duration,
) -> Result<HashMap<(String, i32), Progress>, FollowError> {
    struct Collect<'a> {
        partitions: &'a HashSet<i32>,
        found: HashMap<(String, i32), Progress>,
    }
    impl Apply for Collect<'_> {
        fn apply(&mut self, record: Record<'_>) {
            let Some(key) = record.key else { return };
            let Ok((backfill, partition)) = switchyard_schemas::backfill::parse_progress_key(key) else {
                warn!(
                    offset = record.offset,
                    "a backfill progress record with a bad key; ignored"
                );
                return;
            };
            if !self.partitions.contains(&partition) {
                return;
            }
            let id = (backfill.to_owned(), partition);
            match record.value.map(|value| Progress::parse(key, value)) {
                Some(Ok(progress)) => {
                    self.found.insert(id, progress);
                }
                None => {
                    self.found.remove(&id);
                }
                Some(Err(error)) => {
                    warn!(%error, offset = record.offset, "an invalid backfill progress record; ignored");
                }
            }
        }
    }
    let mut collect = Collect {
        partitions,
        found: HashMap::new(),
    };
    follower::read_until_caught_up(clients, topic, "backfill-progress", &mut collect, timeout)?;
    Ok(collect.found)
}
