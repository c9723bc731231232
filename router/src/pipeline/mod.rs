//! The data plane: consume core events, route each to its plugins' topics, make it durable.
//!
//! - [`plan`]: pure planning of one record (validation, lookup, topic checks).
//! - [`filters`]: the installations' filters, evaluated for one record (pure).
//! - [`topics`]: which plugin topics exist.
//! - [`backfill`]: a held installation's history, written by the owner of the team's partition.
//! - [`delivery`]: transactions or in-order offset stores, rewinds, rebalances, the watchdog.
//! - [`lag`]: consumer lag from the offsets made durable.
//! - [`run`]: the consumer loop on its own thread.

pub mod backfill;
pub mod delivery;
pub mod filters;
pub mod lag;
pub mod plan;
pub mod run;
pub mod topics;
