//! The engine's I/O seam: every producer and consumer call it makes, as two small traits, their real
//! implementations on librdkafka's clients, and the classification of transaction errors where they happen.
//!
//! ```text
//!   Engine<P: ProducerIo> ── begin / send_offsets / commit / abort, send(record, tag), take_reports,
//!                            flush, replace, topic partitions ──► KafkaProducer (BaseProducer)
//!          methods take C: ConsumerIo ── group_metadata, seek, store_offset,
//!                            commit_consumer_state ──► BaseConsumer
//! ```
//!
//! The engine is generic over both (static dispatch), so the real build calls librdkafka as directly as
//! before, and the unit tests drive it with fakes, without a broker.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use switchyard_service::kafka::metadata_partitions;
use tracing::warn;

use crate::RouterError;
use crate::kafka::{TransactionAction, transaction_error_action, transaction_error_retriable};
use crate::pipeline::delivery::contexts::{ProduceContext, Report, Tag};
use crate::pipeline::delivery::records::Outgoing;
use crate::pipeline::topics::TopicLookup;

/// How long the helper thread of an abort waits for a delivery report at a time.
const ABORT_POLL: Duration = Duration::from_millis(10);

/// A transaction call's failure, classified where it happened.
#[derive(Debug)]
pub struct TransactionError {
    /// librdkafka's error.
    pub error: KafkaError,
    /// librdkafka calls it retriable: calling again resumes the same operation.
    pub retriable: bool,
    /// What the router does once retrying is over (or at once, when it is not retriable).
    pub action: TransactionAction,
}

impl From<KafkaError> for TransactionError {
    fn from(error: KafkaError) -> Self {
        Self {
            retriable: transaction_error_retriable(&error),
            action: transaction_error_action(&error),
            error,
        }
    }
}

impl fmt::Display for TransactionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

/// The producer calls of the engine.
pub trait ProducerIo: TopicLookup {
    /// The consumer's group metadata, which `send_offsets_to_transaction` needs (see [`ConsumerIo`]).
    type Group;

    /// Opens a transaction.
    fn begin_transaction(&self) -> Result<(), TransactionError>;
    /// Adds the input positions (`(partition, next offset)` of `topic`) to the open transaction. Blocking.
    fn send_offsets_to_transaction(
        &self,
        topic: &str,
        offsets: &[(i32, i64)],
        group: &Self::Group,
        timeout: Duration,
    ) -> Result<(), TransactionError>;
    /// Commits the open transaction. Blocking.
    fn commit_transaction(&self, timeout: Duration) -> Result<(), TransactionError>;
    /// Aborts the open transaction, purging what it has not delivered. Blocking.
    fn abort_transaction(&self, timeout: Duration) -> Result<(), TransactionError>;
    /// Sends one record; its delivery report comes back with `tag` from [`Self::take_reports`]. Waits while
    /// the producer's queue is full (back-pressure); a record refused before it left the process is
    /// reported like a failed delivery.
    fn send(&self, record: Outgoing<'_>, tag: Box<Tag>);
    /// Serves what is ready of the producer's callbacks.
    fn poll(&self, timeout: Duration);
    /// Moves the delivery reports that arrived to `into`.
    fn take_reports(&self, into: &mut Vec<Report>);
    /// Waits until every sent record is delivered or failed.
    fn flush(&self, timeout: Duration) -> Result<(), KafkaError>;
    /// Replaces a producer that librdkafka declared unusable by a new one from the factory; the new one's
    /// `init_transactions` fences the old one and aborts its open transaction.
    fn replace(&mut self) -> Result<(), RouterError>;
}

/// The consumer calls of the engine; `G` is the group metadata the producer commits offsets with.
pub trait ConsumerIo<G> {
    /// The group metadata for `send_offsets_to_transaction`, if the consumer has joined.
    fn group_metadata(&self) -> Option<G>;
    /// Moves the fetch position of a partition. Blocking, bounded by `timeout`.
    fn seek(&self, topic: &str, partition: i32, offset: i64, timeout: Duration) -> Result<(), KafkaError>;
    /// Stores the resume position `next` of a partition, for the consumer's next (auto) commit.
    fn store_offset(&self, topic: &str, partition: i32, next: i64) -> Result<(), KafkaError>;
    /// Commits the stored positions now. Blocking.
    fn commit_consumer_state(&self) -> Result<(), KafkaError>;
    /// The group's committed offset of a partition (`None`: none yet). Blocking, bounded by `timeout`.
    fn committed_offset(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
    ) -> Result<Option<i64>, KafkaError>;
}

/// Makes a ready producer (transactions initialised in exactly-once mode): the first one, and each
/// replacement of one that librdkafka declared unusable.
pub type ProducerFactory = Box<dyn Fn() -> Result<BaseProducer<ProduceContext>, RouterError> + Send>;

/// The real producer: a `BaseProducer` served on the pipeline thread, and the factory that makes its
/// replacements.
pub struct KafkaProducer {
    producer: BaseProducer<ProduceContext>,
    factory: ProducerFactory,
}

impl KafkaProducer {
    /// The first producer from `factory`, which also makes its replacements.
    pub fn new(factory: ProducerFactory) -> Result<Self, RouterError> {
        Ok(Self {
            producer: factory()?,
            factory,
        })
    }
}

impl TopicLookup for KafkaProducer {
    fn partitions(&self, topic: &str, timeout: Duration) -> Result<Vec<i32>, KafkaError> {
        metadata_partitions(self.producer.client(), topic, timeout)
    }
}

impl ProducerIo for KafkaProducer {
    type Group = ConsumerGroupMetadata;

    fn begin_transaction(&self) -> Result<(), TransactionError> {
        Ok(self.producer.begin_transaction()?)
    }

    fn send_offsets_to_transaction(
        &self,
        topic: &str,
        offsets: &[(i32, i64)],
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<(), TransactionError> {
        let mut list = TopicPartitionList::new();
        for &(partition, next) in offsets {
            if let Err(error) = list.add_partition_offset(topic, partition, Offset::Offset(next)) {
                warn!(%error, partition, "building the offsets of a commit failed");
            }
        }
        Ok(self.producer.send_offsets_to_transaction(&list, group, timeout)?)
    }

    fn commit_transaction(&self, timeout: Duration) -> Result<(), TransactionError> {
        Ok(self.producer.commit_transaction(timeout)?)
    }

    fn abort_transaction(&self, timeout: Duration) -> Result<(), TransactionError> {
        // The abort waits until the purged records' delivery reports have been served, and nobody else polls
        // this producer while the pipeline thread waits here: a helper thread serves them meanwhile.
        let (done, producer) = (AtomicBool::new(false), &self.producer);
        std::thread::scope(|scope| {
            let poller = std::thread::Builder::new()
                .name("abort-poll".into())
                .spawn_scoped(scope, || {
                    while !done.load(Ordering::Acquire) {
                        producer.poll(ABORT_POLL);
                    }
                });
            if let Err(error) = poller {
                // The abort then runs into its timeout, which the engine handles like any failed abort.
                warn!(%error, "could not start the thread that serves reports during the abort");
            }
            let aborted = producer.abort_transaction(timeout);
            done.store(true, Ordering::Release);
            Ok(aborted?)
        })
    }

    fn send(&self, out: Outgoing<'_>, tag: Box<Tag>) {
        let mut record: BaseRecord<'_, [u8], [u8], Box<Tag>> =
            BaseRecord::with_opaque_to(out.topic, tag).headers(out.headers);
        if let Some(key) = out.key {
            record = record.key(key);
        }
        if let Some(value) = out.value {
            record = record.payload(value);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // Back-pressure: wait for deliveries to free the queue, never buffer more.
                    self.producer.poll(Duration::from_millis(10));
                    record = returned;
                }
                Err((error, returned)) => {
                    // Refused before it left the process (too large for the producer, say): handled like a
                    // failed delivery.
                    self.producer.context().push(Report {
                        tag: returned.delivery_opaque,
                        error: Some(error),
                    });
                    return;
                }
            }
        }
    }

    fn poll(&self, timeout: Duration) {
        self.producer.poll(timeout);
    }

    fn take_reports(&self, into: &mut Vec<Report>) {
        self.producer.context().take(into);
    }

    fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }

    fn replace(&mut self) -> Result<(), RouterError> {
        let replacement = (self.factory)()?;
        let old = std::mem::replace(&mut self.producer, replacement);
        // Destroying a client waits for its outstanding requests: not on the pipeline thread.
        let dropped = std::thread::Builder::new()
            .name("old-producer".into())
            .spawn(move || drop(old));
        if let Err(error) = dropped {
            warn!(%error, "could not close the old producer in the background");
        }
        Ok(())
    }
}

impl<X: ConsumerContext> ConsumerIo<ConsumerGroupMetadata> for BaseConsumer<X> {
    fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        Consumer::group_metadata(self)
    }

    fn seek(&self, topic: &str, partition: i32, offset: i64, timeout: Duration) -> Result<(), KafkaError> {
        Consumer::seek(self, topic, partition, Offset::Offset(offset), timeout)
    }

    fn store_offset(&self, topic: &str, partition: i32, next: i64) -> Result<(), KafkaError> {
        // `store_offsets` takes the resume position as given; `store_offset` would add one itself.
        let mut position = TopicPartitionList::new();
        position
            .add_partition_offset(topic, partition, Offset::Offset(next))
            .and_then(|()| self.store_offsets(&position))
    }

    fn commit_consumer_state(&self) -> Result<(), KafkaError> {
        Consumer::commit_consumer_state(self, CommitMode::Sync)
    }

    fn committed_offset(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
    ) -> Result<Option<i64>, KafkaError> {
        let mut query = TopicPartitionList::new();
        query.add_partition(topic, partition);
        let committed = self.committed_offsets(query, timeout)?;
        Ok(
            match committed.find_partition(topic, partition).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => Some(offset),
                _ => None,
            },
        )
    }
}
