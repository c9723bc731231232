//! The engine drives backfills (`pipeline::backfill`) in its own transactions: it starts a run when live
//! routing first meets a held installation (or, on an idle partition, at its next step), moves each run
//! forward within its pace between live records, writes their progress records before each commit, and
//! tells them when a transaction committed or was aborted.
//!
//! ```text
//!   process(record) ── plan: held installation, no run yet ──► start(hold = this offset)
//!   step_backfills ── per running run, at most scan_per_step records and its tokens:
//!        record < frontier ──► plan for the installation alone ──► send (switchyard_backfill on history)
//!        record >= frontier, or the end ──► flip: live routing has the installation from the frontier
//!   before a commit ── progress records into the transaction; after it ── committed / rewound
//! ```
//!
//! The frontier of a partition is live routing's next offset there: what the open transaction has read,
//! else its last commit, else the group's committed offset. Every partition a run wrote for joins the
//! transaction's offsets (at that frontier), so the group generation fences a replica that lost it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message, OwnedHeaders};
use rdkafka::types::RDKafkaErrorCode;
use switchyard_schemas::backfill::State;
use switchyard_schemas::times::now_rfc3339;
use tracing::warn;

use crate::kafka::{Failure, TransactionAction};
use crate::pipeline::backfill::history::Polled;
use crate::pipeline::backfill::run::Step;
use crate::pipeline::backfill::{Active, Backfills};
use crate::pipeline::delivery::contexts::Tag;
use crate::pipeline::delivery::durability::Durability;
use crate::pipeline::delivery::engine::{Engine, Progress};
use crate::pipeline::delivery::io::{ConsumerIo, ProducerIo};
use crate::pipeline::delivery::records::{InputRecord, Outgoing};
use crate::pipeline::plan::{Destination, Output, Selection};
use crate::tables::routes::Hold;

/// The shortest time between two looks for held installations that have no run yet.
const START_INTERVAL: Duration = Duration::from_millis(100);
/// The longest one run's step reads for (checked every 64 records), so live records wait at most about
/// this long behind it.
const STEP_TIME_BUDGET: Duration = Duration::from_millis(1);

impl<P: ProducerIo> Engine<P> {
    /// Runs backfills of held installations from now on (exactly-once mode only: their progress commits
    /// with their copies).
    pub fn with_backfills(mut self, backfills: Backfills) -> Self {
        self.backfills = Some(backfills);
        self
    }

    /// Partitions were assigned to this replica.
    pub fn on_assign(&mut self, partitions: &[i32]) {
        if let Some(backfills) = &mut self.backfills {
            backfills.assigned(partitions);
        }
    }

    /// Before a live record of `partition` is planned: reads the partition's committed backfill progress
    /// first if a held installation may be routed there. `false` (a failure noted) if it cannot be read.
    pub(super) fn backfills_ready(&mut self, partition: i32) -> bool {
        let Some(backfills) = &mut self.backfills else {
            return true;
        };
        if self.table.held_count() == 0 || !backfills.needs_load(partition) {
            return true;
        }
        match backfills.load(&self.table) {
            Ok(()) => true,
            Err(error) => {
                warn!(%error, "reading the backfills' progress failed; rewinding to retry");
                self.core.failure = Some(Failure::Transient);
                false
            }
        }
    }

    /// Starts the runs of the held installations a live plan of `partition` at `offset` met without one.
    pub(super) fn start_held(
        &mut self,
        held: &[Arc<switchyard_schemas::backfill::Request>],
        partition: i32,
        offset: i64,
    ) {
        let Some(mut backfills) = self.backfills.take() else {
            return;
        };
        let holds = holds_by_id(&self.table.holds());
        for request in held {
            if backfills.has(&request.id, partition) {
                continue;
            }
            let Some(hold) = holds.get(request.id.as_str()) else {
                continue;
            };
            if let Err(error) = backfills.start(hold.clone(), partition, offset, &now_rfc3339()) {
                warn!(%error, backfill = %request.id, partition, "starting a backfill failed; rewinding to retry");
                self.core.failure = Some(Failure::Transient);
                break;
            }
        }
        self.backfills = Some(backfills);
    }

    /// Starts runs of held installations on idle owned partitions, and moves every running run forward
    /// within its pace. Called by the loop after each `service`.
    pub fn step_backfills<C: ConsumerIo<P::Group>>(&mut self, consumer: &C) {
        if self.core.fatal.is_some() || self.core.failure.is_some() {
            return;
        }
        let Some(mut backfills) = self.backfills.take() else {
            return;
        };
        // Called after every live record: nothing here unless a step or a look for new holds is due.
        let now = Instant::now();
        let start_due = self.table.held_count() > 0 && self.next_start.is_none_or(|at| now >= at);
        let step_due = backfills.step_due(now);
        if start_due || step_due {
            let holds = holds_by_id(&self.table.holds());
            if start_due {
                self.next_start = Some(now + START_INTERVAL);
                backfills.recheck_topic(now);
                backfills.forget_released(|id| holds.contains_key(id));
                self.start_idle(&mut backfills, consumer, &holds);
                backfills.set_gauges(&self.core.metrics);
            }
            if step_due {
                for key in backfills.reading() {
                    if self.core.failure.is_some() || self.core.fatal.is_some() {
                        break;
                    }
                    self.step_run(&mut backfills, consumer, &key, &holds);
                }
            }
        }
        self.backfills = Some(backfills);
    }

    fn start_idle<C: ConsumerIo<P::Group>>(
        &mut self,
        backfills: &mut Backfills,
        consumer: &C,
        holds: &HashMap<String, Hold>,
    ) {
        for hold in holds.values() {
            let partition = backfills.partition_of(&hold.team);
            if !backfills.owns(partition) {
                continue;
            }
            if backfills.needs_load(partition)
                && let Err(error) = backfills.load(&self.table)
            {
                warn!(%error, "reading the backfills' progress failed; trying again later");
                return;
            }
            if backfills.has(&hold.backfill.id, partition) {
                continue;
            }
            let Some(frontier) = self.frontier(backfills, consumer, partition) else {
                continue;
            };
            if !self.open_for(partition, frontier) {
                return;
            }
            if let Err(error) = backfills.start(hold.clone(), partition, frontier, &now_rfc3339()) {
                warn!(%error, backfill = %hold.backfill.id, partition, "starting a backfill failed; rewinding to retry");
                self.core.failure = Some(Failure::Transient);
                return;
            }
        }
    }

    /// Live routing's next offset on `partition` (see the module doc); `None` while unknown.
    fn frontier<C: ConsumerIo<P::Group>>(
        &self,
        backfills: &mut Backfills,
        consumer: &C,
        partition: i32,
    ) -> Option<i64> {
        if let Some(progress) = self.core.progress.get(&partition) {
            return Some(progress.next);
        }
        if let Some(committed) = self.durability.position(partition, false).transaction_committed {
            return Some(committed);
        }
        if let Some(known) = backfills.position(partition) {
            return Some(known);
        }
        let topic = &self.core.settings.input_topic;
        match consumer.committed_offset(topic, partition, backfills.settings().metadata_timeout) {
            Ok(Some(offset)) => {
                backfills.set_position(partition, offset);
                Some(offset)
            }
            // No commit yet: the first live record of the partition tells.
            Ok(None) => None,
            Err(error) => {
                warn!(%error, partition, "reading a committed offset failed");
                None
            }
        }
    }

    /// Opens a transaction if none is, and makes `partition` part of it at `frontier`, so its commit
    /// carries the partition's offset (fencing a replica that lost it). `false` when no transaction could
    /// begin (a failure or the fatal error is noted).
    fn open_for(&mut self, partition: i32, frontier: i64) -> bool {
        if let Err(error) = self.durability.begin(&self.core.producer) {
            if error.action == TransactionAction::ReplaceProducer {
                self.core.broken = Some(("begin_transaction", error.error));
                self.core.failure = Some(Failure::Transient);
            } else {
                self.core.fatal = Some(crate::RouterError::Transaction {
                    call: "begin_transaction",
                    source: error.error,
                });
            }
            return false;
        }
        self.core.progress.entry(partition).or_insert(Progress {
            rewind_to: frontier,
            next: frontier,
        });
        true
    }

    fn step_run<C: ConsumerIo<P::Group>>(
        &mut self,
        backfills: &mut Backfills,
        consumer: &C,
        key: &(Arc<str>, i32),
        holds: &HashMap<String, Hold>,
    ) {
        let partition = key.1;
        let Some(frontier) = self.frontier(backfills, consumer, partition) else {
            return;
        };
        let now = Instant::now();
        let stamp = now_rfc3339();
        let scan_per_step = backfills.settings().scan_per_step;
        let total_tokens = backfills.total().available(now);
        let Some(active) = backfills.active_mut(key) else {
            return;
        };
        // The installation's enablement decides: a cancellation, or no longer this backfill's.
        match holds.get(&*key.0) {
            None => {
                if !self.open_for(partition, frontier) {
                    return;
                }
                active.run.stop(
                    State::Cancelled,
                    Some("the installation is no longer held by this backfill".into()),
                    &stamp,
                );
                active.run.flip(frontier, &stamp);
                return;
            }
            Some(hold) if hold.backfill.cancel_requested && active.run.progress().state == State::Running => {
                if !self.open_for(partition, frontier) {
                    return;
                }
                if let Some(next) = active.run.stop(State::Cancelled, None, &stamp)
                    && let Some(reader) = &active.reader
                    && let Err(error) = reader.seek(next)
                {
                    warn!(%error, "moving a cancelled backfill's reader failed; rewinding");
                    self.core.failure = Some(Failure::Transient);
                    return;
                }
            }
            Some(_) => {}
        }
        let tokens = active.bucket.available(now).min(total_tokens);
        if tokens == 0 {
            return;
        }
        let hold = active.run.hold.clone();
        let team = hold.team.as_bytes();
        let mut counts = [0u64; 4];
        let mut opened = false;
        let Active { run, reader, bucket } = active;
        let Some(reader) = reader.as_ref() else {
            return;
        };
        let mut scanned = 0;
        // Bounded by records, by tokens, and by time: a sparse team's history is mostly other teams'
        // records, read and passed over, and live records wait while a step runs.
        while scanned < scan_per_step
            && counts[2] < tokens
            && (scanned % 64 != 0 || scanned == 0 || now.elapsed() < STEP_TIME_BUDGET)
        {
            let polled = reader.poll();
            if matches!(polled, Polled::Nothing) {
                break;
            }
            if !opened {
                if !self.open_for(partition, frontier) {
                    return;
                }
                opened = true;
            }
            let message = match polled {
                Polled::Nothing => break,
                Polled::End => {
                    run.flip(frontier, &stamp);
                    break;
                }
                Polled::Failed(error) => {
                    if is_gone(&error) {
                        warn!(%error, backfill = %key.0, partition, "the backfill's next record is gone; history stops here");
                        if let Some(next) = run.stop(State::Failed, Some(error.to_string()), &stamp)
                            && let Err(error) = reader.seek(next)
                        {
                            warn!(%error, "moving a failed backfill's reader failed; rewinding");
                            self.core.failure = Some(Failure::Transient);
                        }
                    } else {
                        warn!(%error, backfill = %key.0, partition, "reading history failed; trying again");
                    }
                    break;
                }
                Polled::Record(message) => message,
            };
            let offset = message.offset();
            match run.step(offset, frontier) {
                Step::Flip => {
                    run.flip(frontier, &stamp);
                    break;
                }
                Step::Skip => {}
                Step::Deliver { history } if message.key() == Some(team) => {
                    let headers: Vec<(&str, Option<&[u8]>)> = message
                        .headers()
                        .map(|h| h.iter().map(|header| (header.key, header.value)).collect())
                        .unwrap_or_default();
                    let input = InputRecord {
                        partition,
                        offset,
                        key: message.key(),
                        value: message.payload(),
                        headers: &headers,
                    };
                    let label = history.then_some(hold.backfill.id.as_str());
                    let (matched, written, dead_lettered) = self.send_history(&hold, &input, label);
                    run.count(matched, written, dead_lettered);
                    counts[1] += u64::from(matched);
                    counts[2] += written;
                    counts[3] += dead_lettered;
                }
                Step::Deliver { .. } => {}
            }
            run.read(offset);
            scanned += 1;
        }
        counts[0] = scanned as u64;
        bucket.take(counts[2], now);
        backfills.total().take(counts[2], now);
        backfills.tally(counts);
    }

    /// Plans one historical record for the held installation alone and sends its copies; returns whether
    /// the installation's rule kept it, and the copies written to the plugin and dead-letter topics.
    fn send_history(
        &mut self,
        hold: &Hold,
        input: &InputRecord<'_>,
        label: Option<&str>,
    ) -> (bool, u64, u64) {
        let selection = Selection::Backfill {
            plugin: &hold.plugin,
            installation: &hold.installation,
            request: &hold.backfill,
        };
        let plan = self
            .core
            .plan_and_send(&self.table, selection, input, label, &mut self.targets);
        let written = plan
            .outputs
            .iter()
            .filter(|o| matches!(o, Output::Plugin { .. }))
            .count() as u64;
        let dead_lettered = plan.outputs.len() as u64 - written;
        (!plan.outputs.is_empty(), written, dead_lettered)
    }

    /// Writes the progress records of the runs that changed into the open transaction; called right
    /// before it commits.
    pub(super) fn write_progress(&mut self) {
        let Some(backfills) = &mut self.backfills else {
            return;
        };
        if !self.durability.holds_open_transaction() {
            return;
        }
        let topic = backfills.settings().progress_topic.clone();
        for (partition, key, value) in backfills.records(&now_rfc3339()) {
            let tag = Box::new(Tag {
                generation: self.core.generation,
                partition,
                offset: -1,
                destination: Destination::Progress,
                reason: None,
                value_dropped: false,
            });
            let out = Outgoing {
                topic: &topic,
                key: Some(key.as_bytes()),
                value: Some(&value),
                headers: OwnedHeaders::new(),
            };
            self.core.producer.send(out, tag);
        }
    }

    /// A transaction committed (`committed`) or the open work was given up: tells the runs.
    pub(super) fn backfills_settled(&mut self, committed: bool) {
        if let Some(backfills) = &mut self.backfills {
            if committed {
                backfills.committed(&self.core.metrics);
            } else {
                backfills.rewound();
            }
        }
    }

    /// Partitions left this replica (after their last commit): their runs go on at the next owner.
    pub(super) fn backfills_revoked(&mut self, partitions: &[i32]) {
        if let Some(backfills) = &mut self.backfills {
            backfills.revoked(partitions);
        }
    }

    /// How long the loop may wait for a record before the backfills' next step.
    pub(super) fn backfills_poll_timeout(&self, cap: Duration) -> Duration {
        self.backfills.as_ref().map_or(cap, |b| b.poll_timeout(cap))
    }
}

/// The holds by backfill id.
fn holds_by_id(holds: &[Hold]) -> HashMap<String, Hold> {
    holds.iter().map(|h| (h.backfill.id.clone(), h.clone())).collect()
}

/// Whether a reader's error means its next record no longer exists (retention deleted it).
fn is_gone(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange)
    )
}
