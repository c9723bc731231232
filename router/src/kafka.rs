//! What the router needs from librdkafka beyond the client types: a context that exports statistics,
//! a context that only logs (the registry's store followers use it), topic metadata checks, the start-up
//! check of the credentials (the registry and the plugin runtime use it too), and the classification of
//! delivery failures.

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
}

impl StatsContext {
    /// `client` labels the statistics.
    pub fn new(metrics: Metrics, client: impl Into<String>) -> Self {
        Self {
            metrics,
            client: client.into(),
        }
    }
}

impl ClientContext for StatsContext {
    fn stats(&self, statistics: Statistics) {
        self.metrics.record_statistics(&self.client, &statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&self.client, &error, reason);
    }
}

/// librdkafka's client-level errors: the end of a partition is an event the control readers ask for, not an
/// error; the rest are mostly transient (a broker connection dropped) and librdkafka retries them itself.
/// rdkafka's default context logs every one of them, the end of a partition included, at ERROR.
pub fn log_client_error(client: &str, error: &KafkaError, reason: &str) {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::PartitionEOF) => {}
        _ => tracing::warn!(client, %error, reason, "Kafka client error"),
    }
}

impl ConsumerContext for StatsContext {}

/// A client context that logs client-level errors through [`log_client_error`] instead of rdkafka's
/// default context, for clients without statistics: a consumer with `enable.partition.eof=true` reaches
/// the end of its partitions all the time, which is not an error.
pub struct LogContext {
    client: String,
}

impl LogContext {
    /// `client` names the client in the log lines.
    pub fn new(client: impl Into<String>) -> Self {
        Self {
            client: client.into(),
        }
    }
}

impl ClientContext for LogContext {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&self.client, &error, reason);
    }
}

impl ConsumerContext for LogContext {}

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

/// What the router does after a transaction call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionAction {
    /// Call it again (librdkafka resumes the same operation), within the ride-out deadline.
    Retry,
    /// Abort the transaction, rewind and process again.
    Abort,
    /// librdkafka declared the producer unusable, for a reason that another producer with the same
    /// transactional id does not inherit (e.g. the broker answering `INVALID_TXN_STATE` to the abort of a
    /// transaction none of whose partitions could be added, librdkafka issue 4849, which a deleted plugin
    /// topic causes): replace the producer, whose `init_transactions` aborts what the old one left open,
    /// then rewind.
    ReplaceProducer,
    /// Stop the process: another instance took the transactional id over (fenced), the credentials may
    /// not use it, or the error is not a transaction error at all.
    Stop,
}

/// Classifies a transaction call's error from librdkafka's flags and code.
pub fn transaction_action(
    code: RDKafkaErrorCode,
    fatal: bool,
    retriable: bool,
    abortable: bool,
) -> TransactionAction {
    use RDKafkaErrorCode as C;
    if fatal {
        match code {
            C::Fenced
            | C::ProducerFenced
            | C::InvalidProducerEpoch
            | C::TransactionalIdAuthorizationFailed
            | C::ClusterAuthorizationFailed => TransactionAction::Stop,
            _ => TransactionAction::ReplaceProducer,
        }
    } else if abortable {
        TransactionAction::Abort
    } else if retriable {
        TransactionAction::Retry
    } else {
        TransactionAction::Stop
    }
}

/// [`transaction_action`] of a transaction call's error; errors of other kinds stop the process.
pub fn transaction_error_action(error: &KafkaError) -> TransactionAction {
    match error {
        KafkaError::Transaction(error) => transaction_action(
            error.code(),
            error.is_fatal(),
            error.is_retriable(),
            error.txn_requires_abort(),
        ),
        _ => TransactionAction::Stop,
    }
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
    fn transaction_errors_are_retried_aborted_survived_by_a_new_producer_or_fatal() {
        use RDKafkaErrorCode as C;
        use TransactionAction as A;
        assert_eq!(
            transaction_action(C::CoordinatorLoadInProgress, false, true, false),
            A::Retry
        );
        assert_eq!(
            transaction_action(C::UnknownTopicOrPartition, false, false, true),
            A::Abort
        );
        // Abortable wins over retriable: the transaction is already lost.
        assert_eq!(
            transaction_action(C::MessageTimedOut, false, true, true),
            A::Abort
        );
        // librdkafka issue 4849: the abort after a deleted topic's AddPartitionsToTxn failure.
        assert_eq!(
            transaction_action(C::InvalidTransactionalState, true, false, false),
            A::ReplaceProducer
        );
        assert_eq!(
            transaction_action(C::InvalidTransactionalState, false, false, false),
            A::Stop
        );
        for fenced in [C::Fenced, C::ProducerFenced, C::InvalidProducerEpoch] {
            assert_eq!(
                transaction_action(fenced, true, false, false),
                A::Stop,
                "{fenced:?}"
            );
        }
        assert_eq!(
            transaction_action(C::TransactionalIdAuthorizationFailed, true, false, false),
            A::Stop
        );
        assert_eq!(
            transaction_error_action(&KafkaError::MessageProduction(C::InvalidTransactionalState)),
            A::Stop
        );
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
