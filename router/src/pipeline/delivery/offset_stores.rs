//! At-least-once: an input offset is stored once every output of it and of every record before it is
//! acknowledged; librdkafka auto-commits stored offsets.
//!
//! ```text
//!   processed(record) ──► in_flight[partition].push_back(offset, outputs pending)
//!   acknowledged(output) ──► pending -= 1 ──► pop the completed front records, in order
//!                                               └─► store_offset(last popped + 1), count their outcomes
//! ```
//!
//! A record whose output failed never completes, so no offset after it is stored until the rewind replays it.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use switchyard_schemas::dead_letter::Reason;
use tracing::{debug, warn};

use crate::kafka::Failure;
use crate::metrics::Metrics;
use crate::pipeline::delivery::contexts::Tag;
use crate::pipeline::delivery::durability::Durability;
use crate::pipeline::delivery::engine::Core;
use crate::pipeline::delivery::io::{ConsumerIo, ProducerIo, TransactionError};
use crate::pipeline::lag::RouterPosition;
use crate::pipeline::plan::{Destination, Outcome, Plan};

/// A processed record whose outputs are not all acknowledged.
#[derive(Debug)]
struct InFlight {
    offset: i64,
    remaining: usize,
    outcome: Outcome,
}

/// The at-least-once state: per partition, the processed records not yet stored, in offset order.
#[derive(Debug, Default)]
pub(super) struct OffsetStores {
    in_flight: HashMap<i32, VecDeque<InFlight>>,
}

impl OffsetStores {
    /// One output of a record is acknowledged; store offsets that became durable, in order.
    fn acknowledge<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
        tag: &Tag,
    ) {
        match &tag.destination {
            Destination::Plugin(recipient) => core
                .metrics
                .plugin_records
                .with_label_values(&[&recipient.plugin])
                .inc(),
            Destination::DeadLetter(_) => {
                let reason = tag.reason.map_or("unknown", Reason::code);
                core.metrics.dead_letters.with_label_values(&[reason]).inc();
            }
            // Backfills run in exactly-once mode only.
            Destination::Progress => {}
        }
        let Some(records) = self.in_flight.get_mut(&tag.partition) else {
            return;
        };
        if let Ok(i) = records.binary_search_by_key(&tag.offset, |r| r.offset) {
            records[i].remaining = records[i].remaining.saturating_sub(1);
        }
        self.store_completed(core, consumer, tag.partition);
    }

    /// Stores the offset after the partition's leading completed records, and counts their outcomes.
    fn store_completed<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
        partition: i32,
    ) {
        let Some(records) = self.in_flight.get_mut(&partition) else {
            return;
        };
        let mut stored = None;
        while let Some(record) = records.pop_front_if(|r| r.remaining == 0) {
            core.metrics
                .events
                .with_label_values(&[record.outcome.label()])
                .inc();
            stored = Some(record.offset + 1);
        }
        if let Some(next) = stored {
            core.durable_up_to(partition, next);
            if let Err(error) = consumer.store_offset(&core.settings.input_topic, partition, next) {
                warn!(%error, partition, offset = next, "storing an offset failed; it will be stored with the next one");
            }
        }
    }

    /// Waits for the deliveries in flight (bounded), stores what they completed and commits the stored
    /// offsets; `when` names the moment in the log lines. Undelivered records will be read again.
    fn deliver_and_commit<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
        when: &str,
    ) {
        if let Err(error) = core.producer.flush(core.settings.drain_timeout) {
            warn!(%error, when, "flushing did not finish; undelivered records will be read again");
        }
        core.handle_reports();
        self.acknowledged(core, consumer);
        self.store_all_completed(core, consumer);
        if let Err(error) = consumer.commit_consumer_state() {
            debug!(%error, when, "committing stored offsets failed");
        }
    }

    /// Stores the offsets of every partition whose oldest records are complete, including records with no
    /// outputs (unrouted), which complete without any delivery report.
    fn store_all_completed<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
    ) {
        let completed: Vec<i32> = self
            .in_flight
            .iter()
            .filter(|(_, records)| records.front().is_some_and(|r| r.remaining == 0))
            .map(|(&partition, _)| partition)
            .collect();
        for partition in completed {
            self.store_completed(core, consumer, partition);
        }
    }
}

impl Durability for OffsetStores {
    fn begin<P: ProducerIo>(&mut self, _: &P) -> Result<(), TransactionError> {
        Ok(())
    }

    fn processed(&mut self, partition: i32, offset: i64, plan: &Plan) {
        self.in_flight.entry(partition).or_default().push_back(InFlight {
            offset,
            remaining: plan.outputs.len(),
            outcome: plan.outcome,
        });
    }

    fn collects_acknowledgements(&self) -> bool {
        true
    }

    fn acknowledged<P: ProducerIo, C: ConsumerIo<P::Group>>(&mut self, core: &mut Core<P>, consumer: &C) {
        let mut tags = std::mem::take(&mut core.acknowledged);
        for tag in tags.drain(..) {
            self.acknowledge(core, consumer, &tag);
        }
        core.acknowledged = tags;
    }

    fn make_durable<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
    ) -> Option<Failure> {
        self.store_all_completed(core, consumer);
        None
    }

    fn poll_timeout(&self, cap: Duration) -> Duration {
        cap
    }

    fn position(&self, partition: i32, touched: bool) -> RouterPosition {
        let in_flight = self.in_flight.get(&partition).is_some_and(|r| !r.is_empty());
        RouterPosition {
            transaction_committed: None,
            pending: touched && in_flight,
            consumer_commits: true,
        }
    }

    fn abort<P: ProducerIo>(&mut self, _: &Core<P>) -> Result<(), (&'static str, TransactionError)> {
        Ok(())
    }

    fn producer_replaced(&mut self, _: &Metrics) {}

    fn rewound(&mut self) {
        self.in_flight.clear();
    }

    fn before_revoke<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
        lost: bool,
    ) -> Option<Failure> {
        if !lost {
            self.deliver_and_commit(core, consumer, "before revocation");
        }
        None
    }

    fn holds_open_transaction(&self) -> bool {
        false
    }

    fn commit_due(&self) -> bool {
        false
    }

    fn forget(&mut self, partition: i32) {
        self.in_flight.remove(&partition);
    }

    fn finish<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
    ) -> Option<Failure> {
        self.deliver_and_commit(core, consumer, "at shutdown");
        None
    }
}
