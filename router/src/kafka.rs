//! What the router needs from librdkafka beyond the client types: a context that exports statistics,
//! topic metadata checks, the start-up check of the credentials (the registry and the plugin runtime use
//! it too), and the classification of delivery failures.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, Statistics};
use thiserror::Error;

use crate::metrics::Metrics;

/// A client context that copies librdkafka statistics into the metrics and logs through `tracing`.
pub struct StatsContext {
    metrics: Metrics,
    client: String,
    input_topic: Option<String>,
}

impl StatsContext {
    /// `client` labels the statistics; `input_topic` selects partitions whose consumer lag is exported.
    pub fn new(metrics: Metrics, client: impl Into<String>, input_topic: Option<String>) -> Self {
        Self {
            metrics,
            client: client.into(),
            input_topic,
        }
    }
}

impl ClientContext for StatsContext {
    fn stats(&self, statistics: Statistics) {
        self.metrics
            .record_statistics(&self.client, &statistics, self.input_topic.as_deref());
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&self.client, &error, reason);
    }
}

/// librdkafka's client-level errors: the end of a partition is an event the control readers ask for, not an
/// error; the rest are mostly transient (a broker connection dropped) and librdkafka retries them itself.
fn log_client_error(client: &str, error: &KafkaError, reason: &str) {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::PartitionEOF) => {}
        _ => tracing::warn!(client, %error, reason, "Kafka client error"),
    }
}

impl ConsumerContext for StatsContext {}

/// The partitions of `topic`, or an empty list if it does not exist.
pub fn metadata_partitions<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(Vec::new());
    };
    match entry.error() {
        None => Ok(entry.partitions().iter().map(|p| p.id()).collect()),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => Ok(Vec::new()),
        Some(code) => Err(KafkaError::MetadataFetch(RDKafkaErrorCode::from(code))),
    }
}

/// How long [`check_credentials`] waits for the broker to either answer or refuse the credentials.
pub const CREDENTIALS_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why [`check_credentials`] failed.
#[derive(Debug, Error)]
pub enum CredentialsError {
    /// The settings do not make a client (an unknown or invalid librdkafka option).
    #[error("creating a Kafka client failed: {0}")]
    Client(KafkaError),
    /// The broker refused the SASL credentials.
    #[error(
        "Kafka authentication failed at {bootstrap_servers}: {reason}; check the SASL settings in kafka.options (sasl.username, sasl.password, sasl.mechanisms)"
    )]
    Authentication {
        /// The configured bootstrap servers.
        bootstrap_servers: String,
        /// librdkafka's reason, e.g. `SASL authentication error: Authentication failed during
        /// authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512`.
        reason: String,
    },
    /// The check's thread panicked or the runtime shut down under it.
    #[error("the Kafka credentials check did not finish: {0}")]
    Interrupted(tokio::task::JoinError),
}

/// Remembers the first authentication failure librdkafka reports.
#[derive(Default)]
struct CredentialsContext {
    refused: Mutex<Option<String>>,
}

impl ClientContext for CredentialsContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Authentication) {
            self.refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| reason.to_owned());
        }
    }
}

impl ProducerContext for CredentialsContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// Connects once with `bootstrap_servers` and the pass-through `options` and fails if the broker refuses
/// the credentials. librdkafka retries a failed SASL handshake forever and only reports it to the error
/// callback, so without this check a wrong password looks like a missing topic or a timeout. Returns `Ok`
/// as soon as the broker answers a metadata request, and also when it neither answers nor refuses within
/// `timeout` (an unreachable broker is waited for by the clients as before). The blocking librdkafka calls
/// run off the async workers.
pub async fn check_credentials(
    bootstrap_servers: &str,
    options: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<(), CredentialsError> {
    let (bootstrap_servers, options) = (bootstrap_servers.to_owned(), options.clone());
    tokio::task::spawn_blocking(move || probe_credentials(&bootstrap_servers, &options, timeout))
        .await
        .map_err(CredentialsError::Interrupted)?
}

fn probe_credentials(
    bootstrap_servers: &str,
    options: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<(), CredentialsError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap_servers)
        .set("client.id", "switchyard-credentials-check");
    for (key, value) in options {
        config.set(key, value);
    }
    let probe: BaseProducer<CredentialsContext> = config
        .create_with_context(CredentialsContext::default())
        .map_err(CredentialsError::Client)?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if probe
            .client()
            .fetch_metadata(None, Duration::from_millis(500))
            .is_ok()
        {
            return Ok(());
        }
        // Serves the error events, which is where an authentication failure shows.
        probe.poll(Duration::from_millis(100));
        let refused = probe
            .context()
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(reason) = refused {
            return Err(CredentialsError::Authentication {
                bootstrap_servers: bootstrap_servers.to_owned(),
                reason,
            });
        }
    }
    Ok(())
}

/// How a failed delivery is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The destination refuses this record for a reason of its own (size, permission, missing topic): replay
    /// sends this copy to the dead-letter topic instead.
    RecordSpecific,
    /// Anything else (timeouts, leadership changes, broker down): replay sends it again.
    Transient,
    /// The record was purged by an abort or a rewind; nothing to do.
    Purged,
}

/// Classifies a delivery failure to a plugin topic.
pub fn classify_plugin_failure(error: &KafkaError) -> Failure {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(C::PurgeQueue | C::PurgeInflight) => Failure::Purged,
        Some(
            C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidRecord
            | C::PolicyViolation
            | C::TopicAuthorizationFailed
            | C::UnknownTopicOrPartition
            | C::UnknownTopic
            | C::InvalidTopic,
        ) => Failure::RecordSpecific,
        _ => Failure::Transient,
    }
}

/// Classifies a delivery failure to the dead-letter topic. Only a failure tied to the record's content
/// (its size, a policy) is record-specific there; a missing or forbidden dead-letter topic is an outage of
/// the router's own infrastructure and is retried.
pub fn classify_dead_letter_failure(error: &KafkaError) -> Failure {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(C::PurgeQueue | C::PurgeInflight) => Failure::Purged,
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize | C::InvalidRecord | C::PolicyViolation) => {
            Failure::RecordSpecific
        }
        _ => Failure::Transient,
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::RDKafkaErrorCode;

    use super::*;

    fn production(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_left_to_the_clients_and_a_bad_option_is_an_error() {
        let started = Instant::now();
        check_credentials("127.0.0.1:1", &BTreeMap::new(), Duration::from_millis(800))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        let options = BTreeMap::from([("no.such.option".to_owned(), "1".to_owned())]);
        let error = check_credentials("127.0.0.1:1", &options, Duration::from_millis(800))
            .await
            .unwrap_err();
        assert!(matches!(error, CredentialsError::Client(_)), "{error}");
    }

    #[test]
    fn failure_classes() {
        assert_eq!(
            classify_plugin_failure(&production(RDKafkaErrorCode::MessageSizeTooLarge)),
            Failure::RecordSpecific
        );
        assert_eq!(
            classify_plugin_failure(&production(RDKafkaErrorCode::UnknownTopicOrPartition)),
            Failure::RecordSpecific
        );
        assert_eq!(
            classify_plugin_failure(&production(RDKafkaErrorCode::MessageTimedOut)),
            Failure::Transient
        );
        assert_eq!(
            classify_plugin_failure(&production(RDKafkaErrorCode::PurgeQueue)),
            Failure::Purged
        );
        assert_eq!(
            classify_dead_letter_failure(&production(RDKafkaErrorCode::MessageSizeTooLarge)),
            Failure::RecordSpecific
        );
        assert_eq!(
            classify_dead_letter_failure(&production(RDKafkaErrorCode::UnknownTopicOrPartition)),
            Failure::Transient
        );
        assert_eq!(
            classify_dead_letter_failure(&production(RDKafkaErrorCode::TopicAuthorizationFailed)),
            Failure::Transient
        );
    }
}
