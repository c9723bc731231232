//! What every Switchyard process shares, below the services themselves. A newcomer finds here how a
//! service is configured, started and stopped, watched and connected; the services hold only what is
//! theirs.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | layered configuration loading, its error type, [`config::LogConfig`], [`config::Secret`] |
//! | [`telemetry`] | logging set-up |
//! | [`lifecycle`] | signals, a second signal and the shutdown deadline |
//! | [`http`] | the hardened HTTP server every HTTP surface runs on |
//! | [`admin`] | the admin surface: one readiness model, `/healthz`, `/readyz`, `/metrics` |
//! | [`kafka`] | the one Kafka client builder, client statistics, the credentials check |
//! | [`follower`] | the one reader of compacted topics, and "read a topic until caught up" |
//! | [`token_bucket`] | a rate as a token bucket (pure) |
//! | [`traces`] | OpenTelemetry spans over OTLP, off by default; `traceparent` in and out |
//! | `egress` | outbound HTTP to plugin URLs behind the SSRF guard (feature `egress`) |
//! | `slow_clients` | misbehaving HTTP clients for tests (feature `slow-clients`) |

pub mod admin;
pub mod config;
#[cfg(feature = "egress")]
pub mod egress;
pub mod follower;
pub mod http;
pub mod kafka;
pub mod lifecycle;
#[cfg(any(test, feature = "slow-clients"))]
pub mod slow_clients;
pub mod telemetry;
pub mod token_bucket;
pub mod traces;
