//! Switchyard's registry: the plugin manager. Plugins register themselves, teams enable and configure
//! them, and the core calls plugin actions through it.
//!
//! Its only store is a set of compacted Kafka topics (the contract's `switchyard.plugins` and
//! `switchyard.enablements`, and its own config and instance topics), the way Confluent Schema Registry
//! keeps its state. [`store`] is that layer: every replica follows every topic, a write answers only once
//! the writer's own view includes it, and replicas converge on the log's order.
//!
//! Status (issue 3, in progress): the store ([`store`]), token verification ([`auth`]), problem details
//! ([`problem`]) and the plugin registration endpoints ([`api`]) are in place and tested; the binary, the
//! team, config, heartbeat and action endpoints, OpenAPI and the CLI are still to come.

pub mod api;
pub mod auth;
pub mod problem;
pub mod store;
