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
//!
//! - [`engine`]: the [`Engine`]: processing, delivery reports, refusals, generations, rewinds, producer
//!   replacement.
//! - `durability`: what differs between the modes, answered by `transactions` (exactly once) and
//!   `offset_stores` (at least once).
//! - [`records`]: pure building of the records to write (topic, headers, value).
//! - [`spans`]: what the span of a routed event says (OpenTelemetry, off by default).
//! - [`io`]: the producer and consumer calls, as traits, and their librdkafka implementations.
//! - [`contexts`]: the librdkafka contexts that feed delivery reports and rebalances in.
//! - [`watchdog`]: ends the process when a transaction call hangs.

mod backfills;
pub mod contexts;
mod durability;
pub mod engine;
pub mod io;
mod offset_stores;
pub mod records;
pub mod spans;
mod transactions;
pub mod watchdog;

#[cfg(test)]
mod tests;

pub use contexts::{ProduceContext, RebalanceContext, lock};
pub use engine::{Engine, EngineSettings};
pub use io::{ConsumerIo, KafkaProducer, ProducerFactory, ProducerIo};
pub use records::InputRecord;
pub use watchdog::Watchdog;
