//! What the router needs from librdkafka beyond the client types: a context that exports statistics,
//! topic metadata checks, and the classification of delivery failures.

use std::time::Duration;

use rdkafka::Statistics;
use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;

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
