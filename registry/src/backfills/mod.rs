//! Backfills: a team asks for its past events to be delivered to one installation of a plugin (contract
//! sections 7.5 and 10.5). The registry takes the request, keeps its record, holds the installation and
//! lets go of it once the router has handed it back to live routing.
//!
//! ```text
//!   POST .../backfills ─► request::check (422) ─► retention::Retention (the team's core.events partition,
//!        │                                          its oldest record: 422, or since moved up to it)
//!        ├─► switchyard.backfills     <id> = Backfill            (the registry's record, for the API)
//!        └─► switchyard.enablements   <installation>.backfill = Request   ──► router: hold, history,
//!                                                                              hand-over
//!   switchyard.backfill-progress <id>/<partition> = Progress  ◄── router, in its transactions
//!        │
//!        ├─► view: the API's state (pending, running, done, cancelled, failed) and ETA
//!        └─► release (every 500 ms): live_from set ─► the enablement again, without `backfill`
//! ```
//!
//! [`request`], [`view`] and [`release`] are pure; [`retention`] reads Kafka. The HTTP routes are in
//! [`crate::api::backfills`], the release loop in [`crate::app`].

pub mod release;
pub mod request;
pub mod retention;
pub mod view;

pub use request::{BackfillBody, OnRetention};
pub use retention::{Retention, RetentionError};
pub use view::{BackfillState, BackfillView, Warning};
