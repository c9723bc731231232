//! A worker's life in the registry: it registers its manifest with its plugin token at start (learning its
//! Standard Webhooks signing secret), sends a heartbeat every `heartbeat_interval_ms` with its instance id
//! (`degraded` during an outage), and says goodbye at shutdown so the registry forgets it at once.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_registry::client::{Client, ClientError};
use switchyard_schemas::control::PluginManifest;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A registered plugin's connection to the registry.
pub struct Registration {
    client: std::sync::Arc<Client>,
    plugin: String,
    instance: String,
}

/// What registration returned.
#[derive(Debug)]
pub struct Registered {
    /// The signing secret (`whsec_...`) for calls between the registry, this worker and the plugin.
    pub signing_secret: String,
}

async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, ClientError> + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(call).await.unwrap_or_else(|error| {
        Err(ClientError::Transport {
            url: String::new(),
            message: error.to_string(),
        })
    })
}

impl Registration {
    /// Registers `manifest` (retrying transport failures until `shutdown`), and returns the connection.
    pub async fn register(
        url: &str,
        token: &str,
        instance: String,
        manifest: &PluginManifest,
        shutdown: &CancellationToken,
    ) -> Result<(Self, Registered), ClientError> {
        let client = std::sync::Arc::new(Client::new(url, Some(token.to_owned()))?);
        let body = serde_json::to_value(manifest).map_err(|e| ClientError::Transport {
            url: url.to_owned(),
            message: format!("the manifest does not serialize: {e}"),
        })?;
        let mut backoff = Duration::from_millis(250);
        let answer: Value = loop {
            let (client, body) = (std::sync::Arc::clone(&client), body.clone());
            match blocking(move || client.post("/v1/plugins", &body)).await {
                Ok(answer) => break answer,
                Err(error @ ClientError::Api { .. }) => return Err(error),
                Err(error) => {
                    warn!(%error, "the registry is not reachable yet; retrying registration");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Err(error),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        let signing_secret = answer["signing_secret"].as_str().unwrap_or_default().to_owned();
        info!(plugin = %manifest.id, version = %manifest.version, "registered with the registry");
        Ok((
            Self {
                client,
                plugin: manifest.id.clone(),
                instance,
            },
            Registered { signing_secret },
        ))
    }

    async fn beat(&self, state: &str) -> Result<Value, ClientError> {
        let client = std::sync::Arc::clone(&self.client);
        let path = format!("/v1/plugins/{}/heartbeat", self.plugin);
        let body = json!({"instance_id": self.instance, "state": state});
        blocking(move || client.post(&path, &body)).await
    }

    /// Sends heartbeats until `shutdown`, then the goodbye.
    pub async fn heartbeats(
        self,
        period: Duration,
        outage: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {
                    let state = if *outage.borrow() { "degraded" } else { "ok" };
                    if let Err(error) = self.beat(state).await {
                        warn!(%error, "a heartbeat failed");
                    }
                }
            }
        }
        match self.beat("stopping").await {
            Ok(_) => info!(instance = %self.instance, "said goodbye to the registry"),
            Err(error) => {
                warn!(%error, "the goodbye failed; the registry forgets this instance after its TTL")
            }
        }
    }
}
