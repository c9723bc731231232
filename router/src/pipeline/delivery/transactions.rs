//! Exactly-once: one transaction holds the outputs of a batch of input records and their input offsets.
//!
//! ```text
//!   begin_transaction ──► process records (outputs in the transaction, outcomes counted here)
//!     every commit_interval or commit_max_events:
//!       send_offsets_to_transaction(next offsets, group metadata) + commit_transaction
//!         ok:    publish the counts, every touched partition is durable
//!         error: retriable: call again (up to RIDE_OUT); abortable: rewind; unusable: replace, rewind;
//!                fenced: stop, unless the transaction outlived its timeout (its coordinator aborted it
//!                during a failover: replace, rewind); other: stop
//! ```
//!
//! Each blocking call runs under the [`Watchdog`](super::Watchdog).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::RouterError;
use crate::kafka::{Failure, TransactionAction, transaction_action_at_age};
use crate::metrics::Metrics;
use crate::pipeline::delivery::durability::Durability;
use crate::pipeline::delivery::engine::Core;
use crate::pipeline::delivery::io::{ConsumerIo, ProducerIo, TransactionError};
use crate::pipeline::lag::RouterPosition;
use crate::pipeline::plan::{Output, Plan};

/// How long a transaction call is retried while librdkafka calls its error retriable (the coordinator is
/// unreachable, e.g. during a broker restart). Beyond it the router stops with an error and its restart
/// fences and aborts the transaction.
const RIDE_OUT: Duration = Duration::from_secs(120);

/// Outcome and output counts of the open transaction, published when it commits.
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

/// The exactly-once state: the open transaction, what it holds, and the commit cadence.
#[derive(Debug)]
pub(super) struct Transactions {
    commit_interval: Duration,
    commit_max_events: usize,
    open: bool,
    counts: Counts,
    events_since_commit: usize,
    /// When the open transaction began (when the last one committed, while none is open).
    last_commit: Instant,
    /// The input offset each partition's last committed transaction stored, for the lag metric.
    committed: HashMap<i32, i64>,
}

impl Transactions {
    /// No transaction open yet.
    pub(super) fn new(commit_interval: Duration, commit_max_events: usize) -> Self {
        Self {
            commit_interval,
            commit_max_events,
            open: false,
            counts: Counts::default(),
            events_since_commit: 0,
            last_commit: Instant::now(),
            committed: HashMap::new(),
        }
    }

    /// `error`'s action revised by the open transaction's age: a fence of a transaction its coordinator may
    /// have aborted for its timeout replaces the producer instead of stopping.
    fn judged<P: ProducerIo>(&self, core: &Core<P>, mut error: TransactionError) -> TransactionError {
        let age = self.last_commit.elapsed();
        error.action =
            transaction_action_at_age(error.action, &error.error, age, core.settings.transaction_timeout);
        error
    }

    /// Commits the open transaction with the input offsets it covers.
    fn commit<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
    ) -> Option<Failure> {
        let offsets: Vec<(i32, i64)> = core
            .progress
            .iter()
            .map(|(&partition, progress)| (partition, progress.next))
            .collect();
        let Some(group) = consumer.group_metadata() else {
            core.fatal = Some(RouterError::NoGroupMetadata);
            return None;
        };
        let timeout = core.settings.drain_timeout;
        let started = Instant::now();
        let deadline = Instant::now() + RIDE_OUT.max(timeout);
        let result = retry_while_retriable(core, deadline, "send_offsets_to_transaction", || {
            core.producer
                .send_offsets_to_transaction(&core.settings.input_topic, &offsets, &group, timeout)
        })
        .and_then(|()| {
            retry_while_retriable(core, deadline, "commit_transaction", || {
                core.producer.commit_transaction(timeout)
            })
        });
        // Reports of this transaction arrive during the commit's flush; a refusal among them must be known
        // before a rewind replays the records.
        core.handle_reports();
        match result.map_err(|(call, error)| (call, self.judged(core, error))) {
            Ok(()) => {
                core.metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                core.metrics.transactions.with_label_values(&["committed"]).inc();
                self.counts.publish(&core.metrics);
                self.committed.extend(offsets);
                core.all_durable();
                self.open = false;
                self.events_since_commit = 0;
                self.last_commit = Instant::now();
                debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "transaction committed"
                );
                None
            }
            Err((call, error)) => match error.action {
                // Still retriable at the deadline (the coordinator is away, e.g. a broker restart): give the
                // transaction up like an abortable one; if the abort fails too, that is fatal.
                TransactionAction::Abort | TransactionAction::Retry => {
                    warn!(%error, call, "the transaction must be aborted; rewinding");
                    Some(core.failure.take().unwrap_or(Failure::Transient))
                }
                TransactionAction::ReplaceProducer => {
                    core.broken = Some((call, error.error));
                    Some(core.failure.take().unwrap_or(Failure::Transient))
                }
                TransactionAction::Stop => {
                    core.fatal = Some(RouterError::Transaction {
                        call,
                        source: error.error,
                    });
                    None
                }
            },
        }
    }
}

impl Durability for Transactions {
    fn begin<P: ProducerIo>(&mut self, producer: &P) -> Result<(), TransactionError> {
        if !self.open {
            producer.begin_transaction()?;
            self.open = true;
            self.last_commit = Instant::now();
        }
        Ok(())
    }

    fn processed(&mut self, _: i32, _: i64, plan: &Plan) {
        *self.counts.outcomes.entry(plan.outcome.label()).or_default() += 1;
        for output in &plan.outputs {
            match output {
                Output::Plugin { route, .. } => {
                    *self
                        .counts
                        .plugin_records
                        .entry(Arc::clone(&route.id))
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
        self.events_since_commit += 1;
    }

    /// An acknowledged output is durable only with its transaction: single acknowledgements tell nothing.
    fn collects_acknowledgements(&self) -> bool {
        false
    }

    fn acknowledged<P: ProducerIo, C: ConsumerIo<P::Group>>(&mut self, _: &mut Core<P>, _: &C) {}

    fn make_durable<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
    ) -> Option<Failure> {
        if self.commit_due() {
            self.commit(core, consumer)
        } else {
            None
        }
    }

    fn poll_timeout(&self, cap: Duration) -> Duration {
        if self.open {
            self.commit_interval
                .saturating_sub(self.last_commit.elapsed())
                .min(cap)
        } else {
            cap
        }
    }

    fn position(&self, partition: i32, touched: bool) -> RouterPosition {
        RouterPosition {
            transaction_committed: self.committed.get(&partition).copied(),
            pending: touched,
            consumer_commits: false,
        }
    }

    fn abort<P: ProducerIo>(&mut self, core: &Core<P>) -> Result<(), (&'static str, TransactionError)> {
        if !self.open {
            return Ok(());
        }
        let timeout = core.settings.drain_timeout;
        let deadline = Instant::now() + RIDE_OUT.max(timeout);
        retry_while_retriable(core, deadline, "abort_transaction", || {
            core.producer.abort_transaction(timeout)
        })
        .map_err(|(call, error)| (call, self.judged(core, error)))?;
        self.open = false;
        core.metrics.transactions.with_label_values(&["aborted"]).inc();
        Ok(())
    }

    fn producer_replaced(&mut self, metrics: &Metrics) {
        // The new producer's `init_transactions` aborted what the old one left open.
        if std::mem::take(&mut self.open) {
            metrics.transactions.with_label_values(&["aborted"]).inc();
        }
    }

    fn rewound(&mut self) {
        self.counts.clear();
        self.events_since_commit = 0;
        self.last_commit = Instant::now();
    }

    fn before_revoke<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
        lost: bool,
    ) -> Option<Failure> {
        core.handle_reports();
        if self.open && !lost && core.failure.is_none() {
            self.commit(core, consumer)
        } else {
            None
        }
    }

    fn holds_open_transaction(&self) -> bool {
        self.open
    }

    fn commit_due(&self) -> bool {
        self.open
            && (self.events_since_commit >= self.commit_max_events
                || self.last_commit.elapsed() >= self.commit_interval)
    }

    fn forget(&mut self, partition: i32) {
        self.committed.remove(&partition);
    }

    fn finish<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
    ) -> Option<Failure> {
        core.producer.poll(Duration::ZERO);
        core.handle_reports();
        if let Some(failure) = core.failure.take() {
            Some(failure)
        } else if self.open {
            self.commit(core, consumer)
        } else {
            None
        }
    }
}

/// Calls a blocking transaction step (under the watchdog) again while it fails with a retriable error
/// and `deadline` is not reached: librdkafka resumes the same operation on the next call, which is how
/// a transaction outlives a coordinator move or a broker restart. An error names the call that failed.
fn retry_while_retriable<P>(
    core: &Core<P>,
    deadline: Instant,
    call: &'static str,
    mut step: impl FnMut() -> Result<(), TransactionError>,
) -> Result<(), (&'static str, TransactionError)> {
    loop {
        let armed = core.watchdog.arm(call);
        let result = step();
        drop(armed);
        match result {
            Err(error) if error.retriable && Instant::now() < deadline => {
                warn!(%error, call, "a transaction call failed with a retriable error; retrying");
                (core.pause)(Duration::from_millis(200));
            }
            other => return other.map_err(|error| (call, error)),
        }
    }
}
