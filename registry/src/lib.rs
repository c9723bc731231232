//! Switchyard's registry: the plugin manager. Plugins register themselves, teams enable and configure
//! them, and the core calls plugin actions through it.
//!
//! Its only store is a set of compacted Kafka topics (the contract's `switchyard.plugins` and
//! `switchyard.enablements`, and its own config and instance topics), the way Confluent Schema Registry
//! keeps its state. [`store`] is that layer: every replica follows every topic, a write answers only once
//! the writer's own view includes it, and replicas converge on the log's order.
//!
//! Status: the store ([`store`]) and token verification ([`auth`]) are in place and tested; the HTTP API
//! and the CLI of issue 3 build on them.

pub mod api;
pub mod auth;
pub mod problem;
pub mod store;
