//! The delivery engine: the bookkeeping both delivery modes share, and the steps that use it.
//!
//! ```text
//!   process(record) ──► plan ──► records ──► ProducerIo::send(tag: partition, offset, generation)
//!                                                 │ delivery reports
//!   service() ◄───────────────────────────────────┘  refusals remembered, failures noted
//!     failure?  ──► rewind: Durability::abort, replace a broken producer, seek back, new generation
//!     else      ──► Durability::make_durable (commit the transaction, or store offsets in order)
//! ```
//!
//! What differs between the modes (the open transaction, or the in-order queue of records in flight) is the
//! `Durability`'s; the engine keeps what each partition read since its durable position, the refusals, the
//! generation, and the producer.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::error::KafkaError;
use switchyard_schemas::backfill::Request;
use switchyard_service::traces::{TraceSpan, Traces};
use tracing::{debug, error, warn};

use crate::RouterError;
use crate::config::DeliveryMode;
use crate::kafka::{Failure, TransactionAction, classify_dead_letter_failure, classify_plugin_failure};
use crate::metrics::Metrics;
use crate::pipeline::backfill::Backfills;
use crate::pipeline::delivery::contexts::{Report, Tag};
use crate::pipeline::delivery::durability::{Durability, Guarantee};
use crate::pipeline::delivery::io::{ConsumerIo, ProducerIo};
use crate::pipeline::delivery::records::{self, InputRecord, Record};
use crate::pipeline::delivery::spans;
use crate::pipeline::delivery::watchdog::Watchdog;
use crate::pipeline::lag::RouterPosition;
use crate::pipeline::plan::{Destination, Plan, Planner, Refusals, Selection};
use crate::pipeline::topics::TopicCache;
use crate::tables::routes::{PluginRoute, RouteTable, Target};

/// Most producer replacements within [`REPLACEMENT_WINDOW`]; one more stops the process, so that a fault
/// that every new producer meets is not hidden behind an endless loop.
const MAX_REPLACEMENTS: usize = 5;
/// The window of [`MAX_REPLACEMENTS`].
const REPLACEMENT_WINDOW: Duration = Duration::from_secs(300);
/// The longest the loop waits for a record before the engine must be serviced again.
const POLL_CAP: Duration = Duration::from_millis(100);

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
    /// The producer's `transaction.timeout.ms`: a transaction older than this may have been aborted by
    /// its coordinator (see [`crate::kafka::transaction_action_at_age`]).
    pub transaction_timeout: Duration,
    /// Validate v1 payloads.
    pub validate_payloads: bool,
    /// Where a span per routed event goes; `None`: tracing is off.
    pub traces: Option<Traces>,
}

/// Progress on one input partition since its last durable position.
#[derive(Debug)]
pub(crate) struct Progress {
    /// Where a rewind goes back to: the first record not yet durable.
    pub(super) rewind_to: i64,
    /// The offset after the last processed record (what a commit stores).
    pub(super) next: i64,
}

/// Copies the broker refused, by input record: a fact about the record and the destination, kept until the
/// record is durable, so that every replay dead-letters that copy.
type RefusalMemory = HashMap<(i32, i64), Vec<(Destination, String)>>;

/// The state both delivery modes share, which the [`Durability`] reads and updates.
pub(super) struct Core<P> {
    pub(super) settings: EngineSettings,
    pub(super) producer: P,
    pub(super) metrics: Metrics,
    pub(super) topics: TopicCache,
    pub(super) watchdog: Watchdog,
    /// Sleeps between retries and after transient failures (`std::thread::sleep`; nothing in unit tests).
    pub(super) pause: fn(Duration),
    /// Bumped by each rewind; reports of records sent before it are of an earlier generation.
    pub(super) generation: u64,
    /// Touched partitions since their durable position.
    pub(super) progress: HashMap<i32, Progress>,
    pub(super) refusals: RefusalMemory,
    /// A delivery failed: rewind at the next service.
    pub(super) failure: Option<Failure>,
    /// The error that must end the process.
    pub(super) fatal: Option<RouterError>,
    /// A transaction call declared the producer unusable: replace it at the rewind.
    pub(super) broken: Option<(&'static str, KafkaError)>,
    /// Transient failures since the last transaction commit, for the rewind's backoff (at-least-once never
    /// resets it, as before the split).
    pub(super) transient_failures: u32,
    /// Outputs of the current generation acknowledged since the durability last took them; collected only
    /// when the mode looks at them (at least once).
    pub(super) acknowledged: Vec<Tag>,
    collect_acknowledged: bool,
    /// Reports taken from the producer, reused.
    reports: Vec<Report>,
}

impl<P: ProducerIo> Core<P> {
    /// Drains delivery reports. A refusal is remembered whatever generation sent the copy (it is a fact about
    /// the record and destination, and its report may arrive during the abort that follows it); successes and
    /// transient failures of earlier generations are ignored, their records are being processed again.
    /// Successes of the current generation go to [`Self::acknowledged`].
    pub(super) fn handle_reports(&mut self) {
        let mut reports = std::mem::take(&mut self.reports);
        self.producer.take_reports(&mut reports);
        for Report { tag, error } in reports.drain(..) {
            let current = tag.generation == self.generation;
            if let Some(error) = &error {
                debug!(%error, partition = tag.partition, offset = tag.offset, current, "delivery failed");
            }
            let Some(error) = error else {
                if current && self.collect_acknowledged {
                    self.acknowledged.push(*tag);
                }
                continue;
            };
            let class = match &tag.destination {
                Destination::Plugin(_) => classify_plugin_failure(&error),
                Destination::DeadLetter(_) => classify_dead_letter_failure(&error),
                Destination::Progress => match classify_plugin_failure(&error) {
                    Failure::Purged => Failure::Purged,
                    _ => Failure::Transient,
                },
            };
            match class {
                Failure::Purged => {}
                Failure::RecordSpecific if tag.value_dropped => {
                    // The dead-letter topic refuses the record even without its value. Going on would lose it.
                    self.fatal = Some(RouterError::DeadLetterRefused {
                        topic: self.settings.dead_letter_topic.clone(),
                        detail: error.to_string(),
                    });
                    break;
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
        // The reports after a fatal one are dropped with it: the process stops.
        reports.clear();
        self.reports = reports;
    }

    /// Everything read is durable (a transaction committed): nothing is left to rewind to or to remember.
    pub(super) fn all_durable(&mut self) {
        self.topics.forget_use();
        self.progress.clear();
        self.refusals.clear();
        self.transient_failures = 0;
    }

    /// A partition is durable up to `next`: a rewind goes back no further, and refusals before it are moot.
    pub(super) fn durable_up_to(&mut self, partition: i32, next: i64) {
        if let Some(progress) = self.progress.get_mut(&partition) {
            progress.rewind_to = next;
        }
        // Progress: the next transient failure backs off from the start again.
        self.transient_failures = 0;
        self.refusals.retain(|&(p, o), _| p != partition || o >= next);
    }

    /// Plans `input` for the installations of `selection` (with what the broker refused of it before) and
    /// sends its records, the backfill's id on them when `backfill` is given; returns the plan.
    pub(super) fn plan_and_send(
        &mut self,
        table: &RouteTable,
        selection: Selection<'_>,
        input: &InputRecord<'_>,
        backfill: Option<&str>,
        targets: &mut Vec<Target>,
    ) -> Plan {
        let refusals = RecordRefusals(self.refusals.get(&(input.partition, input.offset)));
        let planner = Planner {
            table,
            validate_payloads: self.settings.validate_payloads,
            selection,
        };
        let (topics, producer) = (&mut self.topics, &self.producer);
        let traced = self
            .settings
            .traces
            .as_ref()
            .map(|traces| (traces, SystemTime::now()));
        // One clock read for the record's outputs.
        let now = Instant::now();
        let mut topic_state = |plugin: &PluginRoute| topics.state(producer, &plugin.topic, now);
        let plan = planner.plan(
            input.key,
            input.headers.iter().copied(),
            input.value,
            &mut topic_state,
            &refusals,
            targets,
        );
        let settings = &self.settings;
        let span = traced.map(|(traces, start)| {
            let read = spans::Read {
                topic: &settings.input_topic,
                partition: input.partition,
                offset: input.offset,
                headers: input.headers,
                backfill,
            };
            spans::route_span(traces, start, &read, &plan)
        });
        let traceparent = span.as_ref().and_then(TraceSpan::traceparent);
        for record in records::records(
            &plan.outputs,
            input,
            &settings.input_topic,
            &settings.dead_letter_topic,
            backfill,
            traceparent.as_deref(),
        ) {
            self.send(record, input.partition, input.offset);
        }
        if let Some(span) = span {
            span.end();
        }
        plan
    }

    fn send(&self, record: Record<'_>, partition: i32, offset: i64) {
        let tag = Box::new(Tag {
            generation: self.generation,
            partition,
            offset,
            destination: record.destination,
            reason: record.reason,
            value_dropped: record.value_dropped,
        });
        self.producer.send(record.out, tag);
    }

    /// Seeks every touched partition back to its first record that is not durable, and forgets them; `false`
    /// (and the fatal error set) when a seek failed.
    fn seek_back<C: ConsumerIo<P::Group>>(&mut self, consumer: &C) -> bool {
        for (partition, progress) in self.progress.drain() {
            debug!(partition, offset = progress.rewind_to, "rewinding");
            if let Err(error) = consumer.seek(
                &self.settings.input_topic,
                partition,
                progress.rewind_to,
                self.settings.drain_timeout,
            ) {
                // Without the seek the consumer would move past records that are not durable.
                self.fatal = Some(RouterError::Seek {
                    partition,
                    offset: progress.rewind_to,
                    source: error,
                });
                return false;
            }
        }
        true
    }
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

/// The delivery state of one router replica; shared between the pipeline loop and the rebalance callback,
/// both on the pipeline thread. Generic over its producer (the real one is
/// [`KafkaProducer`](super::KafkaProducer)); its methods are generic over the consumer.
pub struct Engine<P: ProducerIo> {
    pub(super) core: Core<P>,
    pub(super) durability: Guarantee,
    /// When the producer was replaced, within [`REPLACEMENT_WINDOW`].
    replacements: VecDeque<Instant>,
    pub(super) table: Arc<RouteTable>,
    pub(super) targets: Vec<Target>,
    /// The backfills of held installations (exactly-once mode), see `backfills`.
    pub(super) backfills: Option<Backfills>,
    /// When to look again for held installations without a run.
    pub(super) next_start: Option<Instant>,
}

impl<P: ProducerIo> Engine<P> {
    /// An engine around `producer`, which also makes its replacements. `watchdog` watches its blocking
    /// transaction calls.
    pub fn new(
        settings: EngineSettings,
        producer: P,
        table: Arc<RouteTable>,
        topics: TopicCache,
        metrics: Metrics,
        watchdog: Watchdog,
    ) -> Self {
        let durability = Guarantee::new(&settings);
        Self {
            core: Core {
                collect_acknowledged: durability.collects_acknowledgements(),
                settings,
                producer,
                metrics,
                topics,
                watchdog,
                pause: std::thread::sleep,
                generation: 0,
                progress: HashMap::new(),
                refusals: HashMap::new(),
                failure: None,
                fatal: None,
                broken: None,
                transient_failures: 0,
                acknowledged: Vec::new(),
                reports: Vec::new(),
            },
            durability,
            replacements: VecDeque::new(),
            table,
            targets: Vec::new(),
            backfills: None,
            next_start: None,
        }
    }

    /// What this replica holds of an input partition, for the lag metric.
    pub fn position(&self, partition: i32) -> RouterPosition {
        let touched = self.core.progress.contains_key(&partition);
        self.durability.position(partition, touched)
    }

    /// The error that must end the process, if one happened.
    pub fn take_fatal(&mut self) -> Option<RouterError> {
        self.core.fatal.take()
    }

    /// How long the loop may wait for the next record before `service` must run again.
    pub fn poll_timeout(&self) -> Duration {
        self.backfills_poll_timeout(self.durability.poll_timeout(POLL_CAP))
    }

    /// Routes one input record: plans it and sends its outputs.
    pub fn process(&mut self, input: &InputRecord<'_>) {
        if self.core.fatal.is_some() {
            return; // the process stops; nothing after the last commit is durable
        }
        if self.core.failure.is_some() {
            self.defer(input);
            return;
        }
        if let Err(error) = self.durability.begin(&self.core.producer) {
            if error.action == TransactionAction::ReplaceProducer {
                self.core.broken = Some(("begin_transaction", error.error));
                self.core.failure = Some(Failure::Transient);
                self.defer(input);
            } else {
                self.core.fatal = Some(RouterError::Transaction {
                    call: "begin_transaction",
                    source: error.error,
                });
            }
            return;
        }
        let (partition, offset) = (input.partition, input.offset);
        if !self.backfills_ready(partition) {
            self.defer(input);
            return;
        }
        let backfills = self.backfills.as_ref();
        let is_live = |request: &Request| backfills.is_some_and(|b| b.is_live(request, partition));
        let selection = match backfills {
            Some(_) => Selection::Live {
                is_live: Some(&is_live),
            },
            None => Selection::ALL,
        };
        let plan = self
            .core
            .plan_and_send(&self.table, selection, input, None, &mut self.targets);
        for (result, count) in plan.filters.labelled() {
            if count > 0 {
                self.core
                    .metrics
                    .filter_evaluations
                    .with_label_values(&[result])
                    .inc_by(u64::from(count));
            }
        }
        let progress = self.core.progress.entry(partition).or_insert(Progress {
            rewind_to: offset,
            next: offset,
        });
        progress.next = offset + 1;
        self.durability.processed(partition, offset, &plan);
        if !plan.held.is_empty() {
            self.start_held(&plan.held, partition, offset);
        }
    }

    /// A rewind is pending: make sure it goes back at least to this record, even on a partition that has
    /// nothing else in flight, so the record is read again rather than skipped.
    fn defer(&mut self, input: &InputRecord<'_>) {
        let offset = input.offset;
        self.core
            .progress
            .entry(input.partition)
            .and_modify(|p| p.rewind_to = p.rewind_to.min(offset))
            .or_insert(Progress {
                rewind_to: offset,
                next: offset,
            });
    }

    /// Handles delivery reports, rewinds after a failure, and makes durable what is due.
    pub fn service<C: ConsumerIo<P::Group>>(&mut self, consumer: &C) {
        self.core.producer.poll(Duration::ZERO);
        self.handle_reports(consumer);
        if let Some(failure) = self.core.failure.take() {
            self.rewind(consumer, failure);
            return;
        }
        // Decided once: a transaction that commits carries the backfills' progress of everything in it.
        let open = self.durability.holds_open_transaction();
        let due = self.durability.commit_due();
        if due {
            self.write_progress();
        }
        if due || !open {
            let failure = self.durability.make_durable(&mut self.core, consumer);
            self.settle(open, failure, consumer);
        }
    }

    /// After a step that may have committed the transaction that was `open`: tells the backfills, or
    /// rewinds after `failure`.
    fn settle<C: ConsumerIo<P::Group>>(&mut self, open: bool, failure: Option<Failure>, consumer: &C) {
        match failure {
            Some(failure) => self.rewind(consumer, failure),
            None if open && !self.durability.holds_open_transaction() && self.core.fatal.is_none() => {
                self.backfills_settled(true);
            }
            None => {}
        }
    }

    /// Drains delivery reports (see [`Core::handle_reports`]) and hands the acknowledgements to the
    /// durability.
    fn handle_reports<C: ConsumerIo<P::Group>>(&mut self, consumer: &C) {
        self.core.handle_reports();
        self.durability.acknowledged(&mut self.core, consumer);
    }

    /// Goes back to the last durable position: gives up the open work (aborts the transaction), replaces a
    /// broken producer, and seeks every touched partition to its first record that is not durable. Starts a
    /// new generation.
    fn rewind<C: ConsumerIo<P::Group>>(&mut self, consumer: &C, failure: Failure) {
        self.core.generation += 1;
        if self.core.broken.is_none()
            && let Err((call, error)) = self.durability.abort(&self.core)
        {
            if error.action == TransactionAction::ReplaceProducer {
                self.core.broken = Some((call, error.error));
            } else {
                self.core.fatal = Some(RouterError::Transaction {
                    call,
                    source: error.error,
                });
                return;
            }
        }
        if let Some((call, error)) = self.core.broken.take() {
            if !self.replace_producer(consumer, call, error) {
                return;
            }
            self.durability.producer_replaced(&self.core.metrics);
        }
        // A plugin topic deleted under the router fails transactions before its cached answer expires.
        self.core.topics.recheck_used();
        // Reports that arrived during the abort may carry the refusal that caused it; it must be known
        // before the records are read again.
        self.core.producer.poll(Duration::ZERO);
        self.handle_reports(consumer);
        if self.core.fatal.is_some() {
            return;
        }
        self.durability.rewound();
        self.backfills_settled(false);
        if !self.core.seek_back(consumer) {
            return;
        }
        self.core.metrics.rewinds.inc();
        if failure == Failure::Transient {
            // Back off on repeated transient failures (broker down), 100 ms doubling up to 5 s.
            let core = &mut self.core;
            core.transient_failures = core.transient_failures.saturating_add(1);
            let backoff =
                Duration::from_millis(100u64 << core.transient_failures.min(6)).min(Duration::from_secs(5));
            (core.pause)(backoff);
        }
    }

    /// Replaces a producer that librdkafka declared unusable (see [`TransactionAction::ReplaceProducer`]);
    /// the new one's `init_transactions` fences the old one and aborts its open transaction. Sets the fatal
    /// error instead, and returns `false`, after [`MAX_REPLACEMENTS`] within [`REPLACEMENT_WINDOW`] or when
    /// no new producer can be made.
    fn replace_producer<C: ConsumerIo<P::Group>>(
        &mut self,
        consumer: &C,
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
            self.core.fatal = Some(RouterError::Transaction { call, source: error });
            return false;
        }
        warn!(%error, call, "librdkafka declared the transactional producer unusable; replacing it and rewinding");
        // Refusals among the old producer's reports must survive it.
        self.handle_reports(consumer);
        if let Err(error) = self.core.producer.replace() {
            self.core.fatal = Some(error);
            return false;
        }
        self.replacements.push_back(now);
        self.core.metrics.producer_replacements.inc();
        true
    }

    /// Called before partitions are revoked: make everything read so far durable, or abort it when the
    /// assignment was lost (another member may already own the partitions).
    pub fn on_revoke<C: ConsumerIo<P::Group>>(&mut self, consumer: &C, revoked: &[i32], lost: bool) {
        if !lost {
            self.write_progress();
        }
        let open = self.durability.holds_open_transaction();
        let failure = self.durability.before_revoke(&mut self.core, consumer, lost);
        self.settle(open, failure, consumer);
        // What could not be made durable is rewound, except on the revoked partitions: their next owner
        // starts from their last committed offset. Exactly-once: a transaction still open here was not
        // committed (the assignment was lost, or a copy failed). At-least-once: only a pending failure; a lost
        // assignment concerns the revoked partitions alone.
        if self.core.failure.is_some() || self.durability.holds_open_transaction() {
            self.forget(revoked);
            let failure = self.core.failure.take().unwrap_or(Failure::RecordSpecific);
            self.rewind(consumer, failure);
        }
        self.forget(revoked);
    }

    fn forget(&mut self, revoked: &[i32]) {
        for &partition in revoked {
            self.core.progress.remove(&partition);
            self.durability.forget(partition);
            self.core.metrics.forget_partition_lag(partition);
            self.core.refusals.retain(|&(p, _), _| p != partition);
        }
        self.backfills_revoked(revoked);
    }

    /// Shutdown: make what was read durable (see `Durability::finish`), then flush.
    pub fn finish<C: ConsumerIo<P::Group>>(&mut self, consumer: &C) {
        self.write_progress();
        let open = self.durability.holds_open_transaction();
        let failure = self.durability.finish(&mut self.core, consumer);
        self.settle(open, failure, consumer);
        if let Err(error) = self.core.producer.flush(self.core.settings.drain_timeout) {
            error!(%error, "flushing the producer at shutdown failed");
        }
    }
}
