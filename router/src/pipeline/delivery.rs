//! Making output and input position durable together, in either delivery mode.
//!
//! ```text
//!   process(record) ──► plan ──► send outputs (tagged with partition, offset, generation)
//!                                    │ delivery reports
//!   service() ◄──────────────────────┘
//!     exactly_once:  every commit_interval_ms or commit_max_events:
//!                    send_offsets_to_transaction(next offsets, group metadata) + commit_transaction
//!     at_least_once: a record's offset is stored once all its outputs are acknowledged, in partition order;
//!                    librdkafka auto-commits stored offsets
//!     any failure:   rewind = abort (exactly_once), then seek every touched partition back to its first
//!                    record that is not durable, and process again
//!     producer unusable (a fatal transaction error other than fencing): replace it, rewind
//! ```
//!
//! Invariant: an input offset becomes durable only after every output of every record before it is durable
//! too (the transaction, or the in-order store). A copy the broker refused for a reason of its own (too
//! large, no permission, topic gone) is remembered by (partition, offset, destination), so the replay after
//! the rewind sends that copy to the dead-letter topic instead and the partition moves on. Each rewind
//! starts a new generation; reports of earlier generations are ignored.
//!
//! Outcome counters move only when durable: per transaction at commit, or per record at the offset store.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use switchyard_schemas::dead_letter::{self, Reason};
use switchyard_schemas::topics::source_header;
use tracing::{debug, error, info, warn};

use crate::RouterError;
use crate::config::DeliveryMode;
use crate::kafka::{
    Failure, TransactionAction, classify_dead_letter_failure, classify_plugin_failure,
    transaction_error_action,
};
use crate::metrics::Metrics;
use crate::pipeline::lag::RouterPosition;
use crate::pipeline::plan::{Destination, Outcome, Output, Planner, Refusals};
use crate::pipeline::topics::TopicCache;
use crate::tables::routes::{PluginRoute, RouteTable};
use switchyard_service::kafka::KafkaContext;

/// What a sent record was, for its delivery report.
#[derive(Debug)]
pub struct Tag {
    generation: u64,
    partition: i32,
    offset: i64,
    destination: Destination,
    reason: Option<Reason>,
    /// A dead letter sent without its value (the topic refused it whole before).
    value_dropped: bool,
}

struct Report {
    tag: Box<Tag>,
    error: Option<KafkaError>,
}

/// The producer's context: statistics, and delivery reports queued for the pipeline thread. The producer is
/// a `ThreadedProducer`, whose own thread serves these callbacks: `abort_transaction` waits until the
/// reports of purged records have been served, which a producer polled only by the (blocked) pipeline
/// thread would never do.
pub struct ProduceContext {
    stats: KafkaContext,
    reports: Mutex<Vec<Report>>,
}

impl ProduceContext {
    /// A context that forwards statistics and errors to `stats` (the builder's context).
    pub fn new(stats: KafkaContext) -> Self {
        Self {
            stats,
            reports: Mutex::new(Vec::new()),
        }
    }

    fn push(&self, report: Report) {
        lock(&self.reports).push(report);
    }

    fn take(&self) -> Vec<Report> {
        std::mem::take(&mut *lock(&self.reports))
    }
}

impl ClientContext for ProduceContext {
    fn stats(&self, statistics: Statistics) {
        self.stats.stats(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.stats.error(error, reason);
    }
}

impl ProducerContext for ProduceContext {
    type DeliveryOpaque = Box<Tag>;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: Box<Tag>) {
        let error = result.as_ref().err().map(|(error, _)| error.clone());
        self.push(Report { tag, error });
    }
}

/// The consumer's context: statistics, and the rebalance callbacks, which must make everything read so far
/// durable (or abort it, when the assignment was lost) before partitions are revoked.
pub struct RebalanceContext {
    stats: KafkaContext,
    engine: Arc<Mutex<Engine>>,
    metrics: Metrics,
    input_topic: String,
}

impl RebalanceContext {
    /// A context sharing the engine with the pipeline loop; statistics and errors also go to `stats`.
    pub fn new(
        stats: KafkaContext,
        engine: Arc<Mutex<Engine>>,
        metrics: Metrics,
        input_topic: String,
    ) -> Self {
        Self {
            stats,
            engine,
            metrics,
            input_topic,
        }
    }
}

impl ClientContext for RebalanceContext {
    fn stats(&self, statistics: Statistics) {
        // Statistics are served inside `poll`, where the loop does not hold the engine; `try_lock` all the
        // same, so that a report arriving in any other call skips a lag update rather than deadlocking.
        if let Ok(engine) = self.engine.try_lock() {
            self.metrics
                .record_consumer_lag(&statistics, &self.input_topic, |partition| {
                    engine.position(partition)
                });
        }
        self.stats.stats(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.stats.error(error, reason);
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(revoked) => {
                let lost = consumer.assignment_lost();
                self.metrics
                    .rebalances
                    .with_label_values(&[if lost { "lost" } else { "revoke" }])
                    .inc();
                info!(partitions = revoked.count(), lost, "partitions revoked");
                lock(&self.engine).on_revoke(consumer, revoked, lost);
            }
            Rebalance::Assign(assigned) => {
                self.metrics.rebalances.with_label_values(&["assign"]).inc();
                info!(partitions = assigned.count(), "partitions assigned");
            }
            Rebalance::Error(error) => warn!(%error, "rebalance failed"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        if let Ok(assignment) = consumer.assignment() {
            self.metrics.assigned_partitions.set(assignment.count() as i64);
        }
    }
}

/// Locks a mutex, recovering from poisoning: the guarded state is only ever replaced whole.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Progress on one input partition since its last durable position.
#[derive(Debug)]
struct Progress {
    /// Where a rewind goes back to: the first record not yet durable.
    rewind_to: i64,
    /// The offset after the last processed record (what a commit stores).
    next: i64,
    /// At-least-once: processed records whose outputs are not all acknowledged, in offset order.
    in_flight: VecDeque<InFlight>,
}

#[derive(Debug)]
struct InFlight {
    offset: i64,
    remaining: usize,
    outcome: Outcome,
}

/// Outcome and output counts not yet durable (exactly-once: the open transaction).
#[derive(Debug, Default)]
struct Counts {
    outcomes: HashMap<&'static str, u64>,
    plugin_records: HashMap<Arc<str>, u64>,
    dead_letters: HashMap<&'static str, u64>,
}

impl Counts {
    fn publish(&mut self, metrics: &Metrics) {
        for (outcome, n) in self.outcomes.drain() {
            metrics.events.with_label_values(&[outcome]).inc_by(n);
        }
        for (plugin, n) in self.plugin_records.drain() {
            metrics.plugin_records.with_label_values(&[&plugin]).inc_by(n);
        }
        for (reason, n) in self.dead_letters.drain() {
            metrics.dead_letters.with_label_values(&[reason]).inc_by(n);
        }
    }

    fn clear(&mut self) {
        self.outcomes.clear();
        self.plugin_records.clear();
        self.dead_letters.clear();
    }
}

/// Makes a ready producer (transactions initialised in exactly-once mode): the first one, and each
/// replacement of one that librdkafka declared unusable.
pub type ProducerFactory = Box<dyn Fn() -> Result<ThreadedProducer<ProduceContext>, RouterError> + Send>;

/// Most producer replacements within [`REPLACEMENT_WINDOW`]; one more stops the process, so that a fault
/// that every new producer meets is not hidden behind an endless loop.
const MAX_REPLACEMENTS: usize = 5;
/// The window of [`MAX_REPLACEMENTS`].
const REPLACEMENT_WINDOW: Duration = Duration::from_secs(300);

/// The settings the engine needs.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Delivery mode.
    pub mode: DeliveryMode,
    /// The input topic.
    pub input_topic: Arc<str>,
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// Commit cadence.
    pub commit_interval: Duration,
    /// Commit after this many records.
    pub commit_max_events: usize,
    /// Bound of a commit, abort, flush or seek.
    pub drain_timeout: Duration,
    /// Validate v1 payloads.
    pub validate_payloads: bool,
}

/// The delivery state of one router replica; shared between the pipeline loop and the rebalance callback,
/// both on the pipeline thread.
pub struct Engine {
    settings: EngineSettings,
    producer: ThreadedProducer<ProduceContext>,
    new_producer: ProducerFactory,
    /// A transaction call declared the producer unusable: replace it at the rewind.
    broken: Option<(&'static str, KafkaError)>,
    /// When the producer was replaced, within [`REPLACEMENT_WINDOW`].
    replacements: VecDeque<Instant>,
    table: Arc<RouteTable>,
    topics: TopicCache,
    metrics: Metrics,
    watchdog: Arc<AtomicU64>,
    generation: u64,
    transaction_open: bool,
    progress: HashMap<i32, Progress>,
    refusals: HashMap<(i32, i64), Vec<(Destination, String)>>,
    counts: Counts,
    events_since_commit: usize,
    last_commit: Instant,
    failure: Option<Failure>,
    transient_failures: u32,
    fatal: Option<RouterError>,
    targets: Vec<Arc<PluginRoute>>,
    /// Exactly-once: the input offset each partition's last committed transaction stored, for the lag metric.
    transaction_committed: HashMap<i32, i64>,
}

struct RecordRefusals<'a>(Option<&'a Vec<(Destination, String)>>);

impl Refusals for RecordRefusals<'_> {
    fn refusal(&self, destination: &Destination) -> Option<&str> {
        self.0?
            .iter()
            .find(|(d, _)| d == destination)
            .map(|(_, detail)| detail.as_str())
    }
}

impl Engine {
    /// An engine around `producer`, made by `new_producer`, which also makes its replacements.
    /// `watchdog` holds the start of a blocking transaction call in Unix milliseconds, 0 when none runs.
    pub fn new(
        settings: EngineSettings,
        producer: ThreadedProducer<ProduceContext>,
        new_producer: ProducerFactory,
        table: Arc<RouteTable>,
        topics: TopicCache,
        metrics: Metrics,
        watchdog: Arc<AtomicU64>,
    ) -> Self {
        Self {
            settings,
            producer,
            new_producer,
            broken: None,
            replacements: VecDeque::new(),
            table,
            topics,
            metrics,
            watchdog,
            generation: 0,
            transaction_open: false,
            progress: HashMap::new(),
            refusals: HashMap::new(),
            counts: Counts::default(),
            events_since_commit: 0,
            last_commit: Instant::now(),
            failure: None,
            transient_failures: 0,
            fatal: None,
            targets: Vec::new(),
            transaction_committed: HashMap::new(),
        }
    }

    /// What this replica holds of an input partition, for the lag metric.
    pub fn position(&self, partition: i32) -> RouterPosition {
        let pending = self
            .progress
            .get(&partition)
            .is_some_and(|progress| match self.settings.mode {
                DeliveryMode::ExactlyOnce => true,
                DeliveryMode::AtLeastOnce => !progress.in_flight.is_empty(),
            });
        RouterPosition {
            transaction_committed: self.transaction_committed.get(&partition).copied(),
            pending,
            consumer_commits: self.settings.mode == DeliveryMode::AtLeastOnce,
        }
    }

    /// The error that must end the process, if one happened.
    pub fn take_fatal(&mut self) -> Option<RouterError> {
        self.fatal.take()
    }

    /// How long the loop may wait for the next record before `service` must run again.
    pub fn poll_timeout(&self) -> Duration {
        let cap = Duration::from_millis(100);
        if self.settings.mode == DeliveryMode::ExactlyOnce && self.transaction_open {
            self.settings
                .commit_interval
                .saturating_sub(self.last_commit.elapsed())
                .min(cap)
        } else {
            cap
        }
    }

    /// Routes one input record: plans it and sends its outputs.
    pub fn process(&mut self, message: &BorrowedMessage<'_>) {
        if self.fatal.is_some() {
            return; // the process stops; nothing after the last commit is durable
        }
        if self.failure.is_some() {
            self.defer(message);
            return;
        }
        if self.settings.mode == DeliveryMode::ExactlyOnce && !self.transaction_open {
            if let Err(error) = self.producer.begin_transaction() {
                if transaction_error_action(&error) == TransactionAction::ReplaceProducer {
                    self.broken = Some(("begin_transaction", error));
                    self.failure = Some(Failure::Transient);
                    self.defer(message);
                } else {
                    self.fatal = Some(RouterError::Transaction {
                        call: "begin_transaction",
                        source: error,
                    });
                }
                return;
            }
            self.transaction_open = true;
            self.last_commit = Instant::now();
        }
        let (partition, offset) = (message.partition(), message.offset());
        let headers: Vec<(&str, Option<&[u8]>)> = message
            .headers()
            .map(|h| h.iter().map(|header| (header.key, header.value)).collect())
            .unwrap_or_default();
        let refusals = RecordRefusals(self.refusals.get(&(partition, offset)));
        let planner = Planner {
            table: &self.table,
            validate_payloads: self.settings.validate_payloads,
        };
        let (topics, producer) = (&mut self.topics, &self.producer);
        let mut topic_state = |plugin: &PluginRoute| topics.state(producer.client(), &plugin.topic);
        let plan = planner.plan(
            message.key(),
            headers.iter().copied(),
            message.payload(),
            &mut topic_state,
            &refusals,
            &mut self.targets,
        );

        // Unrouted events (often most of them) write nothing: build the output headers only when needed.
        if !plan.outputs.is_empty() {
            let source = source_header(&self.settings.input_topic, partition, offset);
            let mut base = OwnedHeaders::new_with_capacity(headers.len() + 5);
            for (key, value) in &headers {
                base = base.insert(Header { key, value: *value });
            }
            base = base.insert(Header {
                key: dead_letter::SOURCE,
                value: Some(source.as_str()),
            });
            // Each record takes its own copy of the headers; the last takes the original.
            if let Some((last, others)) = plan.outputs.split_last() {
                for output in others {
                    self.send(output, message, base.clone(), partition, offset);
                }
                self.send(last, message, base, partition, offset);
            }
        }

        let progress = self.progress.entry(partition).or_insert_with(|| Progress {
            rewind_to: offset,
            next: offset,
            in_flight: VecDeque::new(),
        });
        progress.next = offset + 1;
        match self.settings.mode {
            DeliveryMode::ExactlyOnce => {
                *self.counts.outcomes.entry(plan.outcome.label()).or_default() += 1;
                for output in &plan.outputs {
                    match output {
                        Output::Plugin(plugin) => {
                            *self
                                .counts
                                .plugin_records
                                .entry(Arc::clone(&plugin.id))
                                .or_default() += 1
                        }
                        Output::DeadLetter { rejection, .. } => {
                            *self
                                .counts
                                .dead_letters
                                .entry(rejection.reason.code())
                                .or_default() += 1
                        }
                    }
                }
            }
            DeliveryMode::AtLeastOnce => {
                progress.in_flight.push_back(InFlight {
                    offset,
                    remaining: plan.outputs.len(),
                    outcome: plan.outcome,
                });
            }
        }
        self.events_since_commit += 1;
    }

    /// A rewind is pending: make sure it goes back at least to this record, even on a partition that has
    /// nothing else in flight, so the record is read again rather than skipped.
    fn defer(&mut self, message: &BorrowedMessage<'_>) {
        let offset = message.offset();
        self.progress
            .entry(message.partition())
            .and_modify(|p| p.rewind_to = p.rewind_to.min(offset))
            .or_insert_with(|| Progress {
                rewind_to: offset,
                next: offset,
                in_flight: VecDeque::new(),
            });
    }

    fn send(
        &mut self,
        output: &Output,
        message: &BorrowedMessage<'_>,
        base: OwnedHeaders,
        partition: i32,
        offset: i64,
    ) {
        let (topic, destination, reason, headers, value) = match output {
            Output::Plugin(plugin) => (
                &*plugin.topic,
                Destination::Plugin(Arc::clone(&plugin.id)),
                None,
                base,
                message.payload(),
            ),
            Output::DeadLetter {
                rejection,
                plugin,
                drop_value,
            } => {
                let mut headers = base
                    .insert(Header {
                        key: dead_letter::ERROR,
                        value: Some(rejection.reason.code()),
                    })
                    .insert(Header {
                        key: dead_letter::ERROR_DETAIL,
                        value: Some(rejection.detail.as_str()),
                    });
                if let Some(plugin) = plugin {
                    headers = headers.insert(Header {
                        key: dead_letter::PLUGIN,
                        value: Some(&**plugin),
                    });
                }
                if *drop_value {
                    headers = headers.insert(Header {
                        key: dead_letter::VALUE_DROPPED,
                        value: Some("true"),
                    });
                }
                let value = if *drop_value { None } else { message.payload() };
                (
                    self.settings.dead_letter_topic.as_str(),
                    Destination::DeadLetter(plugin.clone()),
                    Some(rejection.reason),
                    headers,
                    value,
                )
            }
        };
        let value_dropped = matches!(output, Output::DeadLetter { drop_value: true, .. });
        let tag = Box::new(Tag {
            generation: self.generation,
            partition,
            offset,
            destination,
            reason,
            value_dropped,
        });
        let mut record: BaseRecord<'_, [u8], [u8], Box<Tag>> =
            BaseRecord::with_opaque_to(topic, tag).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(value) = value {
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

    /// Handles delivery reports, rewinds after a failure, and commits when due.
    pub fn service<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        self.producer.poll(Duration::ZERO);
        self.handle_reports(consumer);
        if let Some(failure) = self.failure.take() {
            self.rewind(consumer, failure);
            return;
        }
        match self.settings.mode {
            DeliveryMode::ExactlyOnce => {
                let due = self.events_since_commit >= self.settings.commit_max_events
                    || self.last_commit.elapsed() >= self.settings.commit_interval;
                if self.transaction_open && due {
                    self.commit(consumer);
                }
            }
            DeliveryMode::AtLeastOnce => self.store_all_completed(consumer),
        }
    }

    /// At-least-once: stores the offsets of every partition whose oldest records are complete, including
    /// records with no outputs (unrouted), which complete without any delivery report.
    fn store_all_completed<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let completed: Vec<i32> = self
            .progress
            .iter()
            .filter(|(_, p)| p.in_flight.front().is_some_and(|r| r.remaining == 0))
            .map(|(&partition, _)| partition)
            .collect();
        for partition in completed {
            self.store_completed(consumer, partition);
        }
    }

    /// Drains delivery reports. A refusal is remembered whatever generation sent the copy (it is a fact about
    /// the record and destination, and its report may arrive during the abort that follows it); successes and
    /// transient failures of earlier generations are ignored, their records are being processed again.
    fn handle_reports<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        for Report { tag, error } in self.producer.context().take() {
            let current = tag.generation == self.generation;
            if let Some(error) = &error {
                debug!(%error, partition = tag.partition, offset = tag.offset, current, "delivery failed");
            }
            let Some(error) = error else {
                if current && self.settings.mode == DeliveryMode::AtLeastOnce {
                    self.acknowledge(consumer, &tag);
                }
                continue;
            };
            let class = match &tag.destination {
                Destination::Plugin(_) => classify_plugin_failure(&error),
                Destination::DeadLetter(_) => classify_dead_letter_failure(&error),
            };
            match class {
                Failure::Purged => {}
                Failure::RecordSpecific if tag.value_dropped => {
                    // The dead-letter topic refuses the record even without its value. Going on would lose it.
                    self.fatal = Some(RouterError::DeadLetterRefused {
                        topic: self.settings.dead_letter_topic.clone(),
                        detail: error.to_string(),
                    });
                    return;
                }
                Failure::RecordSpecific => {
                    let refusals = self.refusals.entry((tag.partition, tag.offset)).or_default();
                    if !refusals.iter().any(|(d, _)| *d == tag.destination) {
                        warn!(%error, partition = tag.partition, offset = tag.offset, destination = ?tag.destination,
                            "the broker refused one copy of a record; it will be dead-lettered");
                        refusals.push((tag.destination.clone(), error.to_string()));
                    }
                    if current {
                        self.failure.get_or_insert(Failure::RecordSpecific);
                    }
                }
                Failure::Transient if current => {
                    warn!(%error, partition = tag.partition, offset = tag.offset, "delivery failed; rewinding to retry");
                    self.failure = Some(Failure::Transient);
                }
                Failure::Transient => {}
            }
        }
    }

    /// At-least-once: one output of a record is acknowledged; store offsets that became durable, in order.
    fn acknowledge<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, tag: &Tag) {
        match &tag.destination {
            Destination::Plugin(plugin) => self.metrics.plugin_records.with_label_values(&[plugin]).inc(),
            Destination::DeadLetter(_) => {
                let reason = tag.reason.map_or("unknown", Reason::code);
                self.metrics.dead_letters.with_label_values(&[reason]).inc();
            }
        }
        let Some(progress) = self.progress.get_mut(&tag.partition) else {
            return;
        };
        if let Ok(i) = progress.in_flight.binary_search_by_key(&tag.offset, |r| r.offset) {
            progress.in_flight[i].remaining = progress.in_flight[i].remaining.saturating_sub(1);
        }
        self.store_completed(consumer, tag.partition);
    }

    fn store_completed<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, partition: i32) {
        let Some(progress) = self.progress.get_mut(&partition) else {
            return;
        };
        let mut stored = None;
        while progress.in_flight.front().is_some_and(|r| r.remaining == 0) {
            let record = progress.in_flight.pop_front().expect("front exists");
            self.metrics
                .events
                .with_label_values(&[record.outcome.label()])
                .inc();
            stored = Some(record.offset + 1);
        }
        if let Some(next) = stored {
            progress.rewind_to = next;
            self.refusals.retain(|&(p, o), _| p != partition || o >= next);
            // `store_offsets` takes the resume position as given; `store_offset` would add one itself.
            let mut position = TopicPartitionList::new();
            let stored = position
                .add_partition_offset(&self.settings.input_topic, partition, Offset::Offset(next))
                .and_then(|()| consumer.store_offsets(&position));
            if let Err(error) = stored {
                warn!(%error, partition, offset = next, "storing an offset failed; it will be stored with the next one");
            }
        }
    }

    /// Exactly-once: commits the open transaction with the input offsets it covers.
    fn commit<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let mut offsets = TopicPartitionList::new();
        for (&partition, progress) in &self.progress {
            if let Err(error) = offsets.add_partition_offset(
                &self.settings.input_topic,
                partition,
                Offset::Offset(progress.next),
            ) {
                warn!(%error, partition, "building the offsets of a commit failed");
            }
        }
        let Some(group) = consumer.group_metadata() else {
            self.fatal = Some(RouterError::NoGroupMetadata);
            return;
        };
        let timeout = self.settings.drain_timeout;
        let started = Instant::now();
        let deadline = Instant::now() + RIDE_OUT.max(timeout);
        let result = self
            .retry_while_retriable(deadline, "send_offsets_to_transaction", || {
                self.producer
                    .send_offsets_to_transaction(&offsets, &group, timeout)
            })
            .and_then(|()| {
                self.retry_while_retriable(deadline, "commit_transaction", || {
                    self.producer.commit_transaction(timeout)
                })
            });
        // Reports of this transaction arrive during the commit's flush; a refusal among them must be known
        // before a rewind replays the records.
        self.handle_reports(consumer);
        match result {
            Ok(()) => {
                self.metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.metrics.transactions.with_label_values(&["committed"]).inc();
                self.counts.publish(&self.metrics);
                for (&partition, progress) in &self.progress {
                    self.transaction_committed.insert(partition, progress.next);
                }
                self.topics.forget_use();
                self.progress.clear();
                self.refusals.clear();
                self.transaction_open = false;
                self.events_since_commit = 0;
                self.last_commit = Instant::now();
                self.transient_failures = 0;
                debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "transaction committed"
                );
            }
            Err((call, error)) => match transaction_error_action(&error) {
                // Still retriable at the deadline (the coordinator is away, e.g. a broker restart): give the
                // transaction up like an abortable one; if the abort fails too, that is fatal.
                TransactionAction::Abort | TransactionAction::Retry => {
                    warn!(%error, call, "the transaction must be aborted; rewinding");
                    let failure = self.failure.take().unwrap_or(Failure::Transient);
                    self.rewind(consumer, failure);
                }
                TransactionAction::ReplaceProducer => {
                    self.broken = Some((call, error));
                    let failure = self.failure.take().unwrap_or(Failure::Transient);
                    self.rewind(consumer, failure);
                }
                TransactionAction::Stop => {
                    self.fatal = Some(RouterError::Transaction { call, source: error });
                }
            },
        }
    }

    /// Replaces a producer that librdkafka declared unusable (see [`TransactionAction::ReplaceProducer`]);
    /// the new one's `init_transactions` fences the old one and aborts its open transaction. Sets the fatal
    /// error instead, and returns `false`, after [`MAX_REPLACEMENTS`] within [`REPLACEMENT_WINDOW`] or when
    /// no new producer can be made.
    fn replace_producer<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        call: &'static str,
        error: KafkaError,
    ) -> bool {
        let now = Instant::now();
        while self
            .replacements
            .front()
            .is_some_and(|at| now.duration_since(*at) > REPLACEMENT_WINDOW)
        {
            self.replacements.pop_front();
        }
        if self.replacements.len() >= MAX_REPLACEMENTS {
            error!(%error, call, replacements = self.replacements.len(),
                "the transactional producer keeps becoming unusable; stopping");
            self.fatal = Some(RouterError::Transaction { call, source: error });
            return false;
        }
        warn!(%error, call, "librdkafka declared the transactional producer unusable; replacing it and rewinding");
        // Refusals among the old producer's reports must survive it.
        self.handle_reports(consumer);
        let replacement = match (self.new_producer)() {
            Ok(producer) => producer,
            Err(error) => {
                self.fatal = Some(error);
                return false;
            }
        };
        let old = std::mem::replace(&mut self.producer, replacement);
        // Destroying a client waits for its outstanding requests: not on the pipeline thread.
        let dropped = std::thread::Builder::new()
            .name("old-producer".into())
            .spawn(move || drop(old));
        if let Err(error) = dropped {
            warn!(%error, "could not close the old producer in the background");
        }
        self.transaction_open = false;
        self.replacements.push_back(now);
        self.metrics.producer_replacements.inc();
        true
    }

    /// Goes back to the last durable position: aborts the open transaction (exactly-once) and seeks every
    /// touched partition to its first record that is not durable.
    fn rewind<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, failure: Failure) {
        self.generation += 1;
        if self.settings.mode == DeliveryMode::ExactlyOnce && self.transaction_open && self.broken.is_none() {
            let timeout = self.settings.drain_timeout;
            let deadline = Instant::now() + RIDE_OUT.max(timeout);
            let aborted = self.retry_while_retriable(deadline, "abort_transaction", || {
                self.producer.abort_transaction(timeout)
            });
            match aborted {
                Ok(()) => {
                    self.transaction_open = false;
                    self.metrics.transactions.with_label_values(&["aborted"]).inc();
                }
                Err((call, error))
                    if transaction_error_action(&error) == TransactionAction::ReplaceProducer =>
                {
                    self.broken = Some((call, error));
                }
                Err((call, error)) => {
                    self.fatal = Some(RouterError::Transaction { call, source: error });
                    return;
                }
            }
        }
        if let Some((call, error)) = self.broken.take() {
            let was_open = self.transaction_open;
            if !self.replace_producer(consumer, call, error) {
                return;
            }
            if was_open {
                self.metrics.transactions.with_label_values(&["aborted"]).inc();
            }
        }
        // A plugin topic deleted under the router fails transactions before its cached answer expires.
        self.topics.recheck_used();
        // Reports that arrived during the abort may carry the refusal that caused it; it must be known
        // before the records are read again.
        self.producer.poll(Duration::ZERO);
        self.handle_reports(consumer);
        if self.fatal.is_some() {
            return;
        }
        self.counts.clear();
        for (partition, progress) in self.progress.drain() {
            debug!(partition, offset = progress.rewind_to, "rewinding");
            let target = Offset::Offset(progress.rewind_to);
            if let Err(error) = consumer.seek(
                &self.settings.input_topic,
                partition,
                target,
                self.settings.drain_timeout,
            ) {
                // Without the seek the consumer would move past records that are not durable.
                self.fatal = Some(RouterError::Seek {
                    partition,
                    offset: progress.rewind_to,
                    source: error,
                });
                return;
            }
        }
        self.events_since_commit = 0;
        self.last_commit = Instant::now();
        self.metrics.rewinds.inc();
        if failure == Failure::Transient {
            // Back off on repeated transient failures (broker down), 100 ms doubling up to 5 s.
            self.transient_failures = self.transient_failures.saturating_add(1);
            let backoff =
                Duration::from_millis(100u64 << self.transient_failures.min(6)).min(Duration::from_secs(5));
            std::thread::sleep(backoff);
        }
    }

    /// Called before partitions are revoked: make everything read so far durable, or abort it when the
    /// assignment was lost (another member may already own the partitions).
    pub fn on_revoke<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        revoked: &TopicPartitionList,
        lost: bool,
    ) {
        let forget_revoked = |engine: &mut Self| {
            for element in revoked.elements() {
                engine.progress.remove(&element.partition());
                engine.transaction_committed.remove(&element.partition());
                engine.metrics.forget_partition_lag(element.partition());
                engine.refusals.retain(|&(p, _), _| p != element.partition());
            }
        };
        match self.settings.mode {
            DeliveryMode::ExactlyOnce => {
                self.handle_reports(consumer);
                if self.transaction_open && !lost && self.failure.is_none() {
                    self.commit(consumer);
                }
            }
            DeliveryMode::AtLeastOnce if !lost => {
                if let Err(error) = self.producer.flush(self.settings.drain_timeout) {
                    warn!(%error, "flushing before revocation did not finish; undelivered records will be read again");
                }
                self.handle_reports(consumer);
                self.store_all_completed(consumer);
                if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
                    debug!(%error, "committing stored offsets before revocation failed");
                }
            }
            DeliveryMode::AtLeastOnce => {}
        }
        // What could not be made durable is rewound, except on the revoked partitions: their next owner
        // starts from their last committed offset. Exactly-once: a transaction still open here was not
        // committed (the assignment was lost, or a copy failed). At-least-once: only a pending failure; a lost
        // assignment concerns the revoked partitions alone.
        if self.failure.is_some()
            || (self.settings.mode == DeliveryMode::ExactlyOnce && self.transaction_open)
        {
            forget_revoked(self);
            let failure = self.failure.take().unwrap_or(Failure::RecordSpecific);
            self.rewind(consumer, failure);
        }
        forget_revoked(self);
    }

    /// Shutdown: commit (exactly-once) or deliver and commit stored offsets (at-least-once), then flush.
    pub fn finish<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        match self.settings.mode {
            DeliveryMode::ExactlyOnce => {
                self.producer.poll(Duration::ZERO);
                self.handle_reports(consumer);
                if let Some(failure) = self.failure.take() {
                    self.rewind(consumer, failure);
                } else if self.transaction_open {
                    self.commit(consumer);
                }
            }
            DeliveryMode::AtLeastOnce => {
                if let Err(error) = self.producer.flush(self.settings.drain_timeout) {
                    warn!(%error, "flushing at shutdown did not finish; undelivered records will be read again");
                }
                self.handle_reports(consumer);
                if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
                    debug!(%error, "committing stored offsets at shutdown failed");
                }
            }
        }
        if let Err(error) = self.producer.flush(self.settings.drain_timeout) {
            error!(%error, "flushing the producer at shutdown failed");
        }
    }

    /// Calls a blocking transaction step (under the watchdog) again while it fails with a retriable error
    /// and `deadline` is not reached: librdkafka resumes the same operation on the next call, which is how
    /// a transaction outlives a coordinator move or a broker restart. An error names the call that failed.
    fn retry_while_retriable(
        &self,
        deadline: Instant,
        call: &'static str,
        mut step: impl FnMut() -> Result<(), KafkaError>,
    ) -> Result<(), (&'static str, KafkaError)> {
        loop {
            self.arm_watchdog();
            let result = step();
            self.watchdog.store(0, Ordering::Relaxed);
            match result {
                Err(error) if is_retriable(&error) && Instant::now() < deadline => {
                    warn!(%error, call, "a transaction call failed with a retriable error; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => return other.map_err(|error| (call, error)),
            }
        }
    }

    fn arm_watchdog(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.watchdog.store(now.as_millis() as u64, Ordering::Relaxed);
    }
}

/// How long a transaction call is retried while librdkafka calls its error retriable (the coordinator is
/// unreachable, e.g. during a broker restart). Beyond it the router stops with an error and its restart
/// fences and aborts the transaction.
const RIDE_OUT: Duration = Duration::from_secs(120);

fn is_retriable(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(e) if e.is_retriable())
}
