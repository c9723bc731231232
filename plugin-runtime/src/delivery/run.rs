//! The consume loop of a worker: read `plugin.<id>.events` in its consumer group, hand each record to the
//! [`Scheduler`] in its lane (the plugin's `ordering`, see [`super::lanes`]), run the calls it starts as
//! tasks, store the offsets of what is done, pause when full or during an outage, and drain at shutdown.
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
use std::time::{Duration, Instant, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientContext, Statistics, TopicPartitionList};
use switchyard_schemas::control::Ordering;
use switchyard_service::kafka::KafkaContext;
use tokio::sync::mpsc;
use tokio::task::{self, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::delivery::lanes;
use crate::delivery::records::OutRecord;
use crate::delivery::schedule::{Item, LaneId, Limits, Owner, Scheduler, Start};
use crate::delivery::worker::{CallForm, Completion, Routed, Signal, Worker};
use crate::event;
use crate::metrics::Metrics;
use crate::plugin::{Decoding, Plugin};

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
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            info!(?partitions, "partitions revoked");
            // librdkafka keeps a partition's pause across a rebalance: one revoked while paused (an outage,
            // a crowded partition) would come back paused, and the loop, which pauses and resumes only what
            // it owns, would never read it again. It leaves unpaused; the loop pauses it again if it must.
            if let Err(error) = consumer.resume(list) {
                warn!(%error, ?partitions, "resuming revoked partitions failed");
            }
            let _ = self.revoked.send(partitions);
        }
    }
}

fn routed(message: &rdkafka::message::BorrowedMessage<'_>, decoding: Decoding) -> Routed {
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
        decoding,
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

/// How long the buffer may stay full before the consumer is paused. Until then the loop only stops reading:
/// librdkafka keeps what it fetched ahead (a pause would drop it, and a resume fetch it again, which cost a
/// plugin's bridge two thirds of its rate in docs/benchmarks-runtime.md), and rebalances wait for the next
/// read. After it, the paused consumer is read again so that rebalances and the group's liveness are served.
const FULL_BEFORE_PAUSE: Duration = Duration::from_secs(5);

/// Limits of the loop.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// Calls at once, in total and per team, and records held before pausing.
    pub limits: Limits,
    /// Which events run one after the other (the plugin's manifest).
    pub ordering: Ordering,
    /// One event per call, or batches (the plugin's manifest; `limits.batch` bounds them).
    pub form: CallForm,
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
    let mut scheduler: Scheduler<Box<Routed>> = Scheduler::new(settings.limits);
    let decoding = worker.plugin.decoding();
    let mut tasks: JoinSet<Ended> = JoinSet::new();
    // What calls say while they run: a batch's events done while it retries others (their lanes go on), and
    // "slow down" answers (the team's pace changes at once).
    let (signal_tx, mut signals) = mpsc::unbounded_channel::<(String, Signal)>();
    // The team of each running call, for a task that panicked.
    let mut calls: HashMap<task::Id, String> = HashMap::new();
    let mut tick = tokio::time::interval(settings.commit_interval);
    let mut outage = worker.outage.subscribe();
    // Every partition paused (an outage, or a buffer full for long), or these alone (each holding its share).
    let mut paused = false;
    // Since when the buffer is full: reading stops at once, but the consumer pauses only after
    // FULL_BEFORE_PAUSE.
    let mut full_since: Option<Instant> = None;
    let mut crowded: Vec<i32> = Vec::new();
    let shutdown = worker.shutdown.clone();
    // Per partition: cancelled when it is revoked, so its deliveries stop retrying and writing.
    let mut owned: HashMap<i32, CancellationToken> = HashMap::new();
    loop {
        while let Some(Start { team, items, .. }) = scheduler.next_start(Instant::now()) {
            // The scheduler keeps a call's events in one partition.
            let Some(partition) = items.first().map(|item| item.partition) else {
                scheduler.call_done(&team, false, Instant::now());
                continue;
            };
            let cancel = owned
                .entry(partition)
                .or_insert_with(|| shutdown.child_token())
                .clone();
            let events: Vec<_> = items
                .into_iter()
                .map(
                    |Item {
                         partition,
                         offset,
                         item,
                     }| ((partition, offset), *item),
                )
                .collect();
            let (worker, signal_tx, form) = (Arc::clone(&worker), signal_tx.clone(), settings.form);
            let call_team = team.clone();
            let handle = tasks.spawn(async move {
                let batched = events.len() > 1;
                let mut slowed = false;
                let events = worker
                    .deliver_call(events, form, &cancel, |signal| {
                        match signal {
                            Signal::SlowDown(_) => slowed = true,
                            // A single event's end comes with the call's.
                            Signal::Done(_) if !batched => return,
                            Signal::Done(_) => {}
                        }
                        let _ = signal_tx.send((call_team.clone(), signal));
                    })
                    .await;
                Ended {
                    team: call_team,
                    events,
                    slowed,
                }
            });
            calls.insert(handle.id(), team);
        }
        // Not before a millisecond from now: a due time in the past must not spin the loop.
        let due = scheduler
            .next_due(Instant::now())
            .map(|due| due.max(Instant::now() + Duration::from_millis(1)));
        worker.metrics.buffered.set(scheduler.buffered() as i64);
        let now = Instant::now();
        // Reading stops while the buffer is full and goes on as soon as it is not; once paused, the consumer
        // stays paused until half of the buffer is done.
        let full = scheduler.holds_too_many(paused);
        full_since = if full { full_since.or(Some(now)) } else { None };
        let should_pause = should_pause(
            *outage.borrow(),
            scheduler.buffered(),
            full_since.map(|since| now - since),
        );
        if should_pause != paused {
            set_paused(&consumer, should_pause);
            paused = should_pause;
            if !paused {
                // Resumed whole: the crowded ones are paused again below.
                crowded.clear();
            }
        }
        if !paused {
            let now_crowded = scheduler.crowded_partitions(&crowded);
            if now_crowded != crowded {
                pause_partitions(&consumer, topic, &now_crowded, &crowded);
                crowded = now_crowded;
            }
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
                crowded.retain(|p| !partitions.contains(p));
            }
            Some(joined) = tasks.join_next_with_id() => ended(&mut scheduler, &mut calls, joined),
            Some((team, signal)) = signals.recv() => match signal {
                Signal::Done((partition, offset)) => scheduler.event_done(partition, offset),
                Signal::SlowDown(after) => scheduler.slow_down(&team, after, Instant::now()),
            },
            // A full buffer stops reading; paused, reading goes on (it serves rebalances and returns nothing).
            message = consumer.recv(), if paused || !full => match message {
                Ok(message) => {
                    let routed = routed(&message, decoding);
                    let ((team, installation), lane) = match &routed.decoded {
                        Ok(decoded) => (
                            (decoded.meta.team_id.clone(), decoded.meta.installation.clone()),
                            lanes::lane(&settings.ordering, &decoded.meta, || decoded.ids()),
                        ),
                        // It does not decode: dead-lettered at once, without a team.
                        Err(_) => (Default::default(), LaneId::Team),
                    };
                    let (partition, offset) = (message.partition(), message.offset());
                    let owner = Owner {
                        team: &team,
                        installation: &installation,
                    };
                    scheduler.push(partition, offset, owner, lane, Box::new(routed), Instant::now());
                }
                Err(error) => warn!(%error, topic, "reading the plugin's topic failed"),
            },
            // A batch that waited for more events is due.
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {}
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
            joined = tasks.join_next_with_id() => match joined {
                None => break,
                Some(joined) => ended(&mut scheduler, &mut calls, joined),
            },
        }
    }
    store(&consumer, topic, &mut scheduler);
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(error) if nothing_to_commit(&error) => debug!("the final offset commit had nothing to commit"),
        Err(error) => warn!(%error, "the final offset commit failed; the last events will be redelivered"),
    }
}

/// Whether a commit failed only because no offset was stored since the last commit (librdkafka's
/// `NoOffset`, "Local: No offset stored"): a worker stopped before it read anything, or after the
/// auto-commit took everything, has nothing to commit and stops cleanly.
fn nothing_to_commit(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset)
}

/// What a call task hands back: its team, and each event's place and completion.
struct Ended {
    team: String,
    events: Vec<((i32, i64), Completion)>,
    /// The plugin said "slow down" during the call.
    slowed: bool,
}

/// A call task ended: its done events and its call slot are released. A task that panicked leaves its
/// events not done (the commit position stays before them; a restart redelivers them).
fn ended(
    scheduler: &mut Scheduler<Box<Routed>>,
    calls: &mut HashMap<task::Id, String>,
    joined: Result<(task::Id, Ended), task::JoinError>,
) {
    match joined {
        Ok((id, Ended { team, events, slowed })) => {
            calls.remove(&id);
            let succeeded = !slowed && events.iter().any(|(_, c)| *c == Completion::Done);
            // Ends already heard over the channel are ignored the second time.
            for ((partition, offset), completion) in events {
                if completion == Completion::Done {
                    scheduler.event_done(partition, offset);
                }
            }
            scheduler.call_done(&team, succeeded, Instant::now());
        }
        Err(error) => {
            warn!(%error, "a delivery task failed");
            if let Some(team) = calls.remove(&error.id()) {
                scheduler.call_done(&team, false, Instant::now());
            }
        }
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

/// Pauses the partitions of `now` that were not paused (`before`), and resumes those of `before` that are
/// no longer in `now`.
fn pause_partitions(consumer: &StreamConsumer<WorkerContext>, topic: &str, now: &[i32], before: &[i32]) {
    let list = |partitions: &[i32], except: &[i32]| {
        let mut list = TopicPartitionList::new();
        for partition in partitions.iter().filter(|p| !except.contains(p)) {
            list.add_partition(topic, *partition);
        }
        list
    };
    let (pause, resume) = (list(now, before), list(before, now));
    if pause.count() > 0
        && let Err(error) = consumer.pause(&pause)
    {
        warn!(%error, "pausing a crowded partition failed");
    }
    if resume.count() > 0
        && let Err(error) = consumer.resume(&resume)
    {
        warn!(%error, "resuming a partition no longer crowded failed");
    }
}

/// Whether the consumer should be paused: during an outage, or once the buffer has been full for
/// [`FULL_BEFORE_PAUSE`]. An outage ends with a probe's success, and a probe needs an event: a worker that
/// holds none during an outage (the partitions with its events moved to another worker, the ones it kept
/// had nothing waiting) reads on until it holds one, or it would never read again.
fn should_pause(outage: bool, buffered: usize, full_for: Option<Duration>) -> bool {
    (outage && buffered > 0) || full_for.is_some_and(|full| full >= FULL_BEFORE_PAUSE)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_pauses_only_while_the_worker_holds_an_event_to_probe_with() {
        assert!(should_pause(true, 3, None));
        assert!(
            !should_pause(true, 0, None),
            "with nothing to probe with, the outage would never end"
        );
        assert!(!should_pause(false, 3, None));
    }

    #[test]
    fn a_commit_with_no_offset_stored_had_nothing_to_commit() {
        assert!(nothing_to_commit(&KafkaError::ConsumerCommit(
            RDKafkaErrorCode::NoOffset
        )));
        for failure in [
            KafkaError::ConsumerCommit(RDKafkaErrorCode::RequestTimedOut),
            KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress),
            KafkaError::ConsumerCommit(RDKafkaErrorCode::IllegalGeneration),
            KafkaError::Canceled,
        ] {
            assert!(!nothing_to_commit(&failure), "{failure} is a failure");
        }
    }

    #[test]
    fn a_full_buffer_pauses_after_a_while() {
        assert!(!should_pause(false, 2000, Some(Duration::from_secs(1))));
        assert!(should_pause(false, 2000, Some(FULL_BEFORE_PAUSE)));
    }
}
