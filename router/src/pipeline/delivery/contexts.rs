//! The librdkafka client contexts: where delivery reports and rebalance callbacks enter the engine.
//!
//! ```text
//!   producer poll   ── delivery(result, Tag) ──► ProduceContext.reports ──► Engine (take_reports)
//!   consumer poll   ── pre_rebalance(Revoke) ──► RebalanceContext ──► Engine::on_revoke
//! ```
//!
//! Every sent record carries a [`Tag`] (which input record, which generation, which destination), which its
//! delivery report gives back: that is how a failure is tied to the input record it must rewind to.

use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::{ClientContext, Statistics};
use switchyard_schemas::dead_letter::Reason;
use switchyard_service::kafka::KafkaContext;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::pipeline::delivery::engine::Engine;
use crate::pipeline::delivery::io::KafkaProducer;
use crate::pipeline::plan::Destination;

/// What a sent record was, for its delivery report.
#[derive(Debug)]
pub struct Tag {
    /// The engine's generation when the record was sent; a rewind starts a new one.
    pub(super) generation: u64,
    /// The input partition of the record it is an output of.
    pub(super) partition: i32,
    /// The input offset of the record it is an output of.
    pub(super) offset: i64,
    /// Where the copy went.
    pub(super) destination: Destination,
    /// A dead letter's reason.
    pub(super) reason: Option<Reason>,
    /// A dead letter sent without its value (the topic refused it whole before).
    pub(super) value_dropped: bool,
}

/// One delivery report: the record's tag, and the error if it was not delivered.
#[derive(Debug)]
pub struct Report {
    pub(super) tag: Box<Tag>,
    pub(super) error: Option<KafkaError>,
}

/// The producer's context: statistics, and delivery reports queued for the engine. The pipeline thread
/// serves them (the engine polls at each service, `send` while the queue is full, `flush` and the commit
/// while they wait); during `abort_transaction`, which waits until the reports of purged records have been
/// served, a helper thread does (see `KafkaProducer`).
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

    pub(super) fn push(&self, report: Report) {
        lock(&self.reports).push(report);
    }

    /// Moves the queued reports to `into`; both vectors keep their capacity.
    pub(super) fn take(&self, into: &mut Vec<Report>) {
        into.append(&mut lock(&self.reports));
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
    engine: Arc<Mutex<Engine<KafkaProducer>>>,
    metrics: Metrics,
    input_topic: String,
}

impl RebalanceContext {
    /// A context sharing the engine with the pipeline loop; statistics and errors also go to `stats`.
    pub fn new(
        stats: KafkaContext,
        engine: Arc<Mutex<Engine<KafkaProducer>>>,
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
                let partitions: Vec<i32> = revoked.elements().iter().map(|e| e.partition()).collect();
                lock(&self.engine).on_revoke(consumer, &partitions, lost);
            }
            Rebalance::Assign(assigned) => {
                self.metrics.rebalances.with_label_values(&["assign"]).inc();
                info!(partitions = assigned.count(), "partitions assigned");
                let partitions: Vec<i32> = assigned.elements().iter().map(|e| e.partition()).collect();
                lock(&self.engine).on_assign(&partitions);
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
