//! The consume loop of a worker: read `plugin.<id>.events` in its consumer group, hand each record to the
//! [`Scheduler`], run deliveries as tasks, store the offsets of what is done, pause when full or during an
//! outage, and drain at shutdown.
//!
//! Deliveries of a partition that is revoked are cancelled: they stop retrying and writing (a call in
//! progress still finishes), so the partition's next owner is the only one to go on with its events.
//!
//! Offsets are stored only up to the lowest record not done (see [`super::schedule`]) and committed by
//! librdkafka's auto-commit every `commit_interval_ms` and at rebalances; at shutdown the loop stores and
//! commits synchronously. A crash therefore redelivers what was in flight: at-least-once, with the event's
//! `ce_id` (the `webhook-id`) as the idempotency key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientContext, Statistics, TopicPartitionList};
use switchyard_service::kafka::KafkaContext;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::delivery::records::OutRecord;
use crate::delivery::schedule::Scheduler;
use crate::delivery::worker::{Completion, Routed, Worker};
use crate::event;
use crate::metrics::Metrics;
use crate::plugin::Plugin;

/// Tells the loop about revoked partitions and exports librdkafka's lag statistics.
pub struct WorkerContext {
    inner: KafkaContext,
    revoked: mpsc::UnboundedSender<Vec<i32>>,
    metrics: Metrics,
    topic: String,
}

impl WorkerContext {
    /// A context sending revocations to `revoked` (unbounded: rebalances are rare control messages);
    /// statistics and errors also go to `inner` (the builder's context).
    pub fn new(
        inner: KafkaContext,
        revoked: mpsc::UnboundedSender<Vec<i32>>,
        metrics: Metrics,
        topic: String,
    ) -> Self {
        Self {
            inner,
            revoked,
            metrics,
            topic,
        }
    }
}

impl ClientContext for WorkerContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.inner.error(error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        if let Some(topic) = statistics.topics.get(&self.topic) {
            for (id, partition) in &topic.partitions {
                if *id >= 0 && partition.consumer_lag >= 0 {
                    self.metrics
                        .lag
                        .with_label_values(&[&id.to_string()])
                        .set(partition.consumer_lag);
                }
            }
        }
        self.inner.stats(statistics);
    }
}

impl ConsumerContext for WorkerContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            info!(?partitions, "partitions revoked");
            let _ = self.revoked.send(partitions);
        }
    }
}

fn routed(message: &rdkafka::message::BorrowedMessage<'_>) -> Routed {
    let headers: Vec<(String, Option<Vec<u8>>)> = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|header| (header.key.to_owned(), header.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    let record = OutRecord {
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    };
    let decoded = event::decode(
        record.key.as_deref(),
        record
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref())),
        record.value.as_deref(),
    );
    Routed {
        source: format!("{}/{}/{}", message.topic(), message.partition(), message.offset()),
        timestamp: message
            .timestamp()
            .to_millis()
            .and_then(|ms| u64::try_from(ms).ok())
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
        record,
        decoded,
    }
}

/// Limits of the loop.
#[derive(Debug, Clone, Copy)]
pub struct LoopSettings {
    /// Deliveries at once.
    pub max_in_flight: usize,
    /// Records held before pausing.
    pub max_buffered: usize,
    /// How often done offsets are stored.
    pub commit_interval: Duration,
    /// Longest wait for in-flight deliveries at shutdown.
    pub drain_timeout: Duration,
}

/// Runs until the worker's shutdown token is cancelled.
pub async fn consume<P: Plugin>(
    worker: Arc<Worker<P>>,
    consumer: StreamConsumer<WorkerContext>,
    topic: &str,
    mut revoked: mpsc::UnboundedReceiver<Vec<i32>>,
    settings: LoopSettings,
) {
    let mut scheduler: Scheduler<Box<Routed>> = Scheduler::new(settings.max_in_flight, settings.max_buffered);
    let mut tasks: JoinSet<(i32, i64, String, Completion)> = JoinSet::new();
    let mut tick = tokio::time::interval(settings.commit_interval);
    let mut outage = worker.outage.subscribe();
    let mut paused = false;
    let shutdown = worker.shutdown.clone();
    // Per partition: cancelled when it is revoked, so its deliveries stop retrying and writing.
    let mut owned: HashMap<i32, CancellationToken> = HashMap::new();
    loop {
        while let Some(start) = scheduler.next_start() {
            let worker = Arc::clone(&worker);
            let cancel = owned
                .entry(start.partition)
                .or_insert_with(|| shutdown.child_token())
                .clone();
            tasks.spawn(async move {
                let completion = worker.deliver(*start.item, &cancel).await;
                (start.partition, start.offset, start.team, completion)
            });
        }
        worker.metrics.buffered.set(scheduler.buffered() as i64);
        let should_pause = scheduler.is_full() || *outage.borrow();
        if should_pause != paused {
            set_paused(&consumer, should_pause);
            paused = should_pause;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(partitions) = revoked.recv() => {
                for partition in &partitions {
                    if let Some(cancel) = owned.remove(partition) {
                        cancel.cancel();
                    }
                }
                scheduler.revoke(&partitions);
            }
            Some(joined) = tasks.join_next() => match joined {
                Ok((partition, offset, team, Completion::Done)) => scheduler.complete(partition, offset, &team),
                Ok((_, _, _, Completion::Abandoned)) => {}
                Err(error) => warn!(%error, "a delivery task failed"),
            },
            message = consumer.recv() => match message {
                Ok(message) => {
                    let routed = routed(&message);
                    let team = routed
                        .decoded
                        .as_ref()
                        .map(|d| d.meta.team_id.clone())
                        .unwrap_or_default();
                    scheduler.push(message.partition(), message.offset(), &team, Box::new(routed));
                }
                Err(error) => warn!(%error, topic, "reading the plugin's topic failed"),
            },
            _ = outage.changed() => {}
            _ = tick.tick() => {
                store(&consumer, topic, &mut scheduler);
                if paused {
                    // Newly assigned partitions start unpaused.
                    set_paused(&consumer, true);
                }
            }
        }
    }
    // Drain: deliveries stop retrying at once; wait for calls in progress to finish.
    let deadline = tokio::time::sleep(settings.drain_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => {
                warn!(left = tasks.len(), "deliveries still running at the drain deadline; they will be redelivered");
                tasks.abort_all();
                break;
            }
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok((partition, offset, team, Completion::Done))) => scheduler.complete(partition, offset, &team),
                Some(_) => {}
            },
        }
    }
    store(&consumer, topic, &mut scheduler);
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        warn!(%error, "the final offset commit failed; the last events will be redelivered");
    }
}

fn store(consumer: &StreamConsumer<WorkerContext>, topic: &str, scheduler: &mut Scheduler<Box<Routed>>) {
    let positions = scheduler.commit_positions();
    if positions.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in positions {
        if list
            .add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))
            .is_err()
        {
            continue;
        }
    }
    if let Err(error) = consumer.store_offsets(&list) {
        // A partition revoked a moment ago cannot be stored; its next owner starts from the last commit.
        warn!(%error, "storing offsets failed");
    }
}

fn set_paused(consumer: &StreamConsumer<WorkerContext>, pause: bool) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let result = if pause {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    if let Err(error) = result {
        warn!(%error, pause, "pausing or resuming consumption failed");
    }
}
