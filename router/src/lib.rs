//! Switchyard's router: consumes core events and writes each to the topics of the plugins its team enabled,
//! exactly once, with per-team order.
//!
//! - [`config`]: layered configuration (defaults < file < environment).
//! - [`tables`]: the routing table, materialized from the compacted control topics.
//! - [`pipeline`]: the consume-route-produce loop and its delivery guarantees.
//! - [`metrics`]: what it exports; the admin surface, logging, lifecycle and Kafka clients are the
//!   foundation's ([`switchyard_service`]).
//! - [`kafka`]: how librdkafka's transaction and delivery failures are classified.
//! - [`app`]: wires the parts together; `main.rs` only parses flags and calls [`app::run`].

pub mod app;
pub mod config;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod tables;

use std::net::SocketAddr;

use rdkafka::error::KafkaError;
use switchyard_service::follower::FollowError;
use switchyard_service::kafka::{ClientError, CredentialsError};
use switchyard_service::traces::TracesError;
use thiserror::Error;

/// Why the router stopped with an error. Per-record problems never end up here: they are dead-lettered
/// and counted.
#[derive(Debug, Error)]
pub enum RouterError {
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A Kafka client could not be made (a clash of options, a setting librdkafka refuses).
    #[error(transparent)]
    ClientConfig(#[from] ClientError),
    /// The trace exporter could not be built.
    #[error(transparent)]
    Traces(#[from] TracesError),
    /// A follower of a control topic could not start.
    #[error(transparent)]
    Follower(#[from] FollowError),
    /// A call on a Kafka client failed.
    #[error("the Kafka {client} failed: {source}")]
    Client {
        /// Which client.
        client: &'static str,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The broker refused the credentials, or the connection settings do not make a client.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// A topic the router needs does not exist.
    #[error("the {role} topic {topic} does not exist; create it before starting the router")]
    TopicMissing {
        /// The topic.
        topic: String,
        /// What the router uses it for.
        role: &'static str,
    },
    /// A transaction call failed fatally: another replica with the same transactional id took over
    /// (fenced), or the producer is in an unrecoverable state.
    #[error(
        "{call} failed fatally (fenced by another replica with the same transactional id, or the producer is unusable): {source}"
    )]
    Transaction {
        /// The librdkafka call.
        call: &'static str,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The consumer has no group metadata to commit offsets with.
    #[error("the consumer has no group metadata; offsets cannot be committed in a transaction")]
    NoGroupMetadata,
    /// Seeking back after an abort failed; going on could skip records.
    #[error("seeking partition {partition} back to offset {offset} failed: {source}")]
    Seek {
        /// Input partition.
        partition: i32,
        /// Target offset.
        offset: i64,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The dead-letter topic refused a record even without its value.
    #[error(
        "the dead-letter topic {topic} refuses records even without their value ({detail}); fix the topic and restart"
    )]
    DeadLetterRefused {
        /// The dead-letter topic.
        topic: String,
        /// The broker's error.
        detail: String,
    },
    /// The admin server could not listen.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The configured address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    /// A blocking task panicked or was cancelled.
    #[error("a worker task failed: {0}")]
    Join(tokio::task::JoinError),
}
