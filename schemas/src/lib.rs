//! Switchyard's v1 wire contract, shared by every component and documented in `docs/contract.md`.
//!
//! - [`topics`]: the topic names and the `switchyard_source` header.
//! - [`ids`]: team and plugin identifiers.
//! - [`envelope`]: the CloudEvents binary-mode headers of a core event, checked without reading the value.
//! - [`catalog`], [`payload`], [`events`]: the Avro schemas of the v1 event types, validation and typed
//!   encode/decode for `application/avro` (single-object encoding) and `application/json`.
//! - [`control`]: plugin manifests and enablements, the records of the two compacted control topics.
//! - [`publisher`]: publisher signatures of manifests ([`canonical_json`], RFC 8785) and the contract
//!   version a manifest's `contract` range must include.
//! - [`backfill`]: backfill requests and their progress, and the header of a historical copy.
//! - [`configs`]: the records of `switchyard.configs`, a team's config of a plugin.
//! - [`times`]: the RFC 3339 times of records.
//! - [`dead_letter`]: the stable reason codes and headers of dead-lettered records (router and plugin
//!   workers).

pub mod avro;
pub mod backfill;
pub mod canonical_json;
pub mod catalog;
pub mod configs;
pub mod control;
pub mod dead_letter;
pub mod envelope;
pub mod events;
pub mod ids;
pub mod payload;
pub mod projection;
pub mod publisher;
pub mod samples;
pub mod sealed;
pub mod times;
pub mod topics;
pub mod webhook;

pub use catalog::EventType;
pub use dead_letter::{Reason, Rejection};
pub use envelope::{ContentType, Envelope};
