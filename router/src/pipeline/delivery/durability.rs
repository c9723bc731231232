//! How output and input position become durable together: the questions the engine asks, and the two
//! answers, one per delivery mode.
//!
//! ```text
//!                       exactly_once (Transactions)            at_least_once (OffsetStores)
//!   begin               open a transaction if none is          -
//!   processed           count the outcome for the commit       queue the record, its outputs pending
//!   acknowledged        -                                      count down; store offsets in order
//!   make_durable        commit when due (interval, count)      store what completed (unrouted records)
//!   abort (rewind)      abort the open transaction             -
//!   rewound             forget the uncounted outcomes          forget the queue
//!   before_revoke       commit, unless lost or failed          flush, store, commit the stored offsets
//!   finish              commit, or rewind after a failure      flush, commit the stored offsets
//!   position (lag)      last committed offsets                 the consumer's own commits
//! ```
//!
//! Invariant: an input offset becomes durable only after every output of every record before it is durable
//! too, in the transaction or by the in-order store. Outcome counters move only when durable: per transaction
//! at commit, or per record at the offset store.
//!
//! The engine holds a [`Guarantee`], the one type that knows which mode runs; its dispatch is the only place
//! that tells the modes apart.

use std::time::Duration;

use crate::config::DeliveryMode;
use crate::kafka::Failure;
use crate::metrics::Metrics;
use crate::pipeline::delivery::engine::{Core, EngineSettings};
use crate::pipeline::delivery::io::{ConsumerIo, ProducerIo, TransactionError};
use crate::pipeline::delivery::offset_stores::OffsetStores;
use crate::pipeline::delivery::transactions::Transactions;
use crate::pipeline::lag::RouterPosition;
use crate::pipeline::plan::Plan;

/// The questions the engine asks of a delivery mode. A returned `Some(failure)` asks the engine to rewind.
pub(super) trait Durability {
    /// Before a record is processed.
    fn begin<P: ProducerIo>(&mut self, producer: &P) -> Result<(), TransactionError>;

    /// A record was processed and its outputs sent.
    fn processed(&mut self, partition: i32, offset: i64, plan: &Plan);

    /// Whether the mode looks at single acknowledged outputs; when not, the engine does not collect them.
    fn collects_acknowledgements(&self) -> bool;

    /// Takes the outputs of the current generation acknowledged since the last call (`core.acknowledged`).
    fn acknowledged<P: ProducerIo, C: ConsumerIo<P::Group>>(&mut self, core: &mut Core<P>, consumer: &C);

    /// Makes durable what is due; called after every record or poll timeout, with no failure pending.
    #[must_use]
    fn make_durable<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
    ) -> Option<Failure>;

    /// How long the loop may wait for a record before [`Self::make_durable`] is due, at most `cap`.
    fn poll_timeout(&self, cap: Duration) -> Duration;

    /// What this replica holds of a partition, for the lag metric; `touched`: it read records of it that
    /// are not durable (or deferred one).
    fn position(&self, partition: i32, touched: bool) -> RouterPosition;

    /// A rewind starts: give up the open work. An error names the call that failed.
    fn abort<P: ProducerIo>(&mut self, core: &Core<P>) -> Result<(), (&'static str, TransactionError)>;

    /// The producer was replaced; what it had open is gone with it.
    fn producer_replaced(&mut self, metrics: &Metrics);

    /// The rewind is going back to the last durable position: forget what was not durable.
    fn rewound(&mut self);

    /// Partitions are about to be revoked; `lost`: another member may own them already.
    #[must_use]
    fn before_revoke<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
        lost: bool,
    ) -> Option<Failure>;

    /// Work is open that only a rewind can give up (a transaction).
    fn holds_open_transaction(&self) -> bool;

    /// Whether [`Self::make_durable`] would commit a transaction now.
    fn commit_due(&self) -> bool;

    /// This replica no longer owns `partition`.
    fn forget(&mut self, partition: i32);

    /// Shutdown: make what was read durable.
    #[must_use]
    fn finish<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
    ) -> Option<Failure>;
}

/// The delivery mode of a running engine.
pub(super) enum Guarantee {
    /// Transactions: output and input offsets commit atomically.
    ExactlyOnce(Transactions),
    /// In-order offset stores after acknowledgement.
    AtLeastOnce(OffsetStores),
}

impl Guarantee {
    /// The mode `settings` name.
    pub(super) fn new(settings: &EngineSettings) -> Self {
        match settings.mode {
            DeliveryMode::ExactlyOnce => Self::ExactlyOnce(Transactions::new(
                settings.commit_interval,
                settings.commit_max_events,
            )),
            DeliveryMode::AtLeastOnce => Self::AtLeastOnce(OffsetStores::default()),
        }
    }
}

/// The one dispatch on the mode: `$mode` is the running mode's state, of either type.
macro_rules! dispatch {
    ($guarantee:expr, $mode:ident => $call:expr) => {
        match $guarantee {
            Guarantee::ExactlyOnce($mode) => $call,
            Guarantee::AtLeastOnce($mode) => $call,
        }
    };
}

impl Durability for Guarantee {
    fn begin<P: ProducerIo>(&mut self, producer: &P) -> Result<(), TransactionError> {
        dispatch!(self, mode => mode.begin(producer))
    }

    fn processed(&mut self, partition: i32, offset: i64, plan: &Plan) {
        dispatch!(self, mode => mode.processed(partition, offset, plan))
    }

    fn collects_acknowledgements(&self) -> bool {
        dispatch!(self, mode => mode.collects_acknowledgements())
    }

    fn acknowledged<P: ProducerIo, C: ConsumerIo<P::Group>>(&mut self, core: &mut Core<P>, consumer: &C) {
        dispatch!(self, mode => mode.acknowledged(core, consumer))
    }

    fn make_durable<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
    ) -> Option<Failure> {
        dispatch!(self, mode => mode.make_durable(core, consumer))
    }

    fn poll_timeout(&self, cap: Duration) -> Duration {
        dispatch!(self, mode => mode.poll_timeout(cap))
    }

    fn position(&self, partition: i32, touched: bool) -> RouterPosition {
        dispatch!(self, mode => mode.position(partition, touched))
    }

    fn abort<P: ProducerIo>(&mut self, core: &Core<P>) -> Result<(), (&'static str, TransactionError)> {
        dispatch!(self, mode => mode.abort(core))
    }

    fn producer_replaced(&mut self, metrics: &Metrics) {
        dispatch!(self, mode => mode.producer_replaced(metrics))
    }

    fn rewound(&mut self) {
        dispatch!(self, mode => mode.rewound())
    }

    fn before_revoke<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
        lost: bool,
    ) -> Option<Failure> {
        dispatch!(self, mode => mode.before_revoke(core, consumer, lost))
    }

    fn holds_open_transaction(&self) -> bool {
        dispatch!(self, mode => mode.holds_open_transaction())
    }

    fn commit_due(&self) -> bool {
        dispatch!(self, mode => mode.commit_due())
    }

    fn forget(&mut self, partition: i32) {
        dispatch!(self, mode => mode.forget(partition))
    }

    fn finish<P: ProducerIo, C: ConsumerIo<P::Group>>(
        &mut self,
        core: &mut Core<P>,
        consumer: &C,
    ) -> Option<Failure> {
        dispatch!(self, mode => mode.finish(core, consumer))
    }
}
