//! What a plugin author starts from and checks against (`docs/plugin-authors.md`, "Quick start"):
//!
//! - [`templates`]: the runnable projects `switchyardctl plugin new` writes, in Python, Node, Go and Rust;
//! - [`check`]: the conformance checks `switchyardctl plugin check` runs against a plugin service.
//!
//! Signing a release (`switchyardctl plugin sign|keygen`) is part of the wire contract and lives with it
//! (`switchyard_schemas::publisher`).

pub mod check;
pub mod templates;
