//! The start-up check of the Kafka credentials.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use thiserror::Error;

use super::clients::{ClientError, Clients};

/// How long [`check_credentials`] waits for the broker to either answer or refuse the credentials.
pub const CREDENTIALS_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why [`check_credentials`] failed.
#[derive(Debug, Error)]
pub enum CredentialsError {
    /// The settings do not make a client (an unknown or invalid librdkafka option, a clash).
    #[error("{0}")]
    Client(ClientError),
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

/// Connects once with the clients' settings and fails if the broker refuses the credentials.
/// librdkafka retries a failed SASL handshake forever and only reports it to the error callback, so
/// without this check a wrong password looks like a missing topic or a timeout. Returns `Ok` as soon as
/// the broker answers a metadata request, and also when it neither answers nor refuses within `timeout`
/// (an unreachable broker is waited for by the clients as before). The blocking librdkafka calls run off
/// the async workers.
pub async fn check_credentials(clients: &Clients, timeout: Duration) -> Result<(), CredentialsError> {
    let clients = clients.clone();
    tokio::task::spawn_blocking(move || check_credentials_blocking(&clients, timeout))
        .await
        .map_err(CredentialsError::Interrupted)?
}

/// [`check_credentials`] on the calling thread, for tools without an async runtime.
pub fn check_credentials_blocking(clients: &Clients, timeout: Duration) -> Result<(), CredentialsError> {
    let probe: BaseProducer<CredentialsContext> = clients
        .admin("switchyard-credentials-check")
        .create_with(CredentialsContext::default())
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
                bootstrap_servers: clients.settings().bootstrap_servers.clone(),
                reason,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::{ClientStats, KafkaSettings};

    #[tokio::test]
    async fn an_unreachable_broker_is_left_to_the_clients_and_a_bad_option_is_an_error() {
        let started = Instant::now();
        let clients = Clients::new(
            KafkaSettings::bootstrap("127.0.0.1:1"),
            ClientStats::unregistered(),
        );
        check_credentials(&clients, Duration::from_millis(800))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        let mut settings = KafkaSettings::bootstrap("127.0.0.1:1");
        settings
            .options
            .insert("no.such.option".to_owned(), "1".to_owned());
        let clients = Clients::new(settings, ClientStats::unregistered());
        let error = check_credentials(&clients, Duration::from_millis(800))
            .await
            .unwrap_err();
        assert!(matches!(error, CredentialsError::Client(_)), "{error}");
    }
}
