//! `switchyardctl plugin check`: the HTTP contract, run against a plugin service, one verdict per rule
//! with the fix for each that fails.

pub mod judge;
pub mod suite;

pub use suite::{Check, Status, Target, run};
