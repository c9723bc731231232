//! The simulated data-collection platform and its traffic, deterministic for a seed.
//!
//! - [`places`]: countries, cities, phone numbering, names.
//! - [`teams`]: the organisations and how busy each one is.
//! - [`control`]: the sample plugins and the teams' enablements (the control records).
//! - [`forms`]: form templates with typed questions, and their revisions.
//! - [`answers`]: answers consistent with the questions, slang and odd savings included.
//! - [`traffic`]: the core-event stream, with a few events broken on purpose.

pub mod answers;
pub mod control;
pub mod forms;
pub mod places;
pub mod teams;
pub mod traffic;

pub use control::{Control, SAMPLE_PLUGINS, control_records, sample_plugins};
pub use teams::{Team, teams};
pub use traffic::{Defect, Event, EventMix, RUN_HEADER, Traffic, TrafficConfig};
