//! Switchyard's registry: the plugin manager. Plugins register themselves, teams enable and configure
//! them, and the core calls plugin actions through it.
//!
//! Its only store is a set of compacted Kafka topics (the contract's `switchyard.plugins`,
//! `switchyard.enablements`, `switchyard.backfills` and the router's `switchyard.backfill-progress`, and its
//! own config and instance topics), the way Confluent Schema Registry
//! keeps its state. [`store`] is that layer: every replica follows every topic, a write answers only once
//! the writer's own view includes it, and replicas converge on the log's order.
//!
//! | module            | holds                                                                     |
//! |-------------------|---------------------------------------------------------------------------|
//! | [`app`]           | start-up ([`app::build`]), serving and shutdown ([`app::run`])            |
//! | [`config`]        | layered configuration                                                     |
//! | [`api`]           | the HTTP API v1 as an axum router                                         |
//! | [`console`]       | the web console, pages that act through the API as the signed-in caller   |
//! | [`auth`]          | bearer JWT verification, roles and tenant checks                          |
//! | [`problem`]       | RFC 9457 problem details, the one error body                              |
//! | [`store`]         | compacted topics as a key-value store with read-your-writes               |
//! | [`records`]       | the records in those topics and the plugin status derived from them       |
//! | [`backfills`]     | backfill requests, their checks, views and hand-over (contract 7.5, 10.5) |
//! | [`provision`]     | plugin topic creation                                                     |
//! | [`config_schema`] | plugin config validation against a JSON Schema, secret fields             |
//! | [`gateway`]       | the action gateway, behind the foundation's SSRF guard; [`ratelimit`] its limits |
//! | [`signing`]       | per-plugin Standard Webhooks secrets                                      |
//! | [`client`]        | the HTTP client `switchyardctl` uses                                      |
//! | [`dead_letters`]  | listing and replaying a plugin's dead letters (`switchyardctl dlq`)       |
//! | [`metrics`]       | Prometheus metrics                                                        |

pub mod api;
pub mod app;
pub mod auth;
pub mod backfills;
pub mod client;
pub mod config;
pub mod config_schema;
pub mod console;
pub mod dead_letters;
pub mod gateway;
pub mod metrics;
pub mod problem;
pub mod provision;
pub mod ratelimit;
pub mod records;
pub mod secrets;
pub mod signing;
pub mod store;
