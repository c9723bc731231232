//! A worker's life in the registry: it registers its manifest with its plugin token at start (learning its
//! Standard Webhooks signing secret), sends a heartbeat every `heartbeat_interval_ms` with its instance id
//! (`degraded` during an outage), and says goodbye at shutdown so the registry forgets it at once.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_schemas::control::PluginManifest;
use thiserror::Error;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A call to the registry failed.
#[derive(Debug, Error)]
pub enum RegistryCallError {
    /// The registry could not be reached.
    #[error("cannot reach the registry at {url}: {message}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The registry refused the call.
    #[error("the registry answered {status}: {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The problem's detail and field errors.
        detail: String,
    },
}

/// A registered plugin's connection to the registry.
pub struct Registration {
    http: reqwest::Client,
    base: String,
    token: String,
    plugin: String,
    instance: String,
}

/// What registration returned.
#[derive(Debug)]
pub struct Registered {
    /// The signing secrets (`whsec_...`) for calls between the registry, this worker and the plugin: the
    /// current one first, then any the registry still signs with during a rotation (`signing_secrets`;
    /// a registry from before rotations answers `signing_secret` alone).
    pub signing_secrets: Vec<String>,
    /// This plugin's config keys (`<id>:<base64>`, the sealing one first) that open the sealed secret
    /// fields of its configs; empty when the registry seals nothing (or is from before sealing).
    pub config_keys: Vec<String>,
}

impl Registration {
    async fn post(&self, path: &str, body: &Value) -> Result<Value, RegistryCallError> {
        let url = format!("{}{path}", self.base);
        let transport = |e: reqwest::Error| RegistryCallError::Transport {
            url: url.clone(),
            message: e.to_string(),
        };
        let response = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        let mut detail = answer["detail"].as_str().unwrap_or("no detail").to_owned();
        for error in answer["errors"].as_array().into_iter().flatten() {
            detail.push_str(&format!(
                "; {}: {}",
                error["pointer"].as_str().unwrap_or(""),
                error["detail"].as_str().unwrap_or("")
            ));
        }
        Err(RegistryCallError::Refused {
            status: status.as_u16(),
            detail,
        })
    }

    /// Registers `document`, the JSON of `manifest` (retrying transport failures until `shutdown`), and
    /// returns the connection.
    pub async fn register(
        url: &str,
        token: &str,
        instance: String,
        manifest: &PluginManifest,
        document: &Value,
        shutdown: &CancellationToken,
    ) -> Result<(Self, Registered), RegistryCallError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RegistryCallError::Transport {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
        let registration = Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            plugin: manifest.id.clone(),
            instance,
        };
        let mut backoff = Duration::from_millis(250);
        let answer = loop {
            match registration.post("/v1/plugins", document).await {
                Ok(answer) => break answer,
                Err(error @ RegistryCallError::Refused { status, .. }) if status != 503 => return Err(error),
                Err(error) => {
                    warn!(%error, "the registry is not ready yet; retrying registration");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Err(error),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        let signing_secrets = signing_secrets(&answer);
        let config_keys = answer["config_keys"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        info!(plugin = %manifest.id, version = %manifest.version, "registered with the registry");
        Ok((
            registration,
            Registered {
                signing_secrets,
                config_keys,
            },
        ))
    }

    async fn beat(&self, state: &str) -> Result<Value, RegistryCallError> {
        let path = format!("/v1/plugins/{}/heartbeat", self.plugin);
        self.post(&path, &json!({"instance_id": self.instance, "state": state}))
            .await
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

/// The signing secrets of a registration answer: `signing_secrets` (current first) when the registry sends
/// it, else `signing_secret` alone (a registry from before rotations); none when neither is there.
fn signing_secrets(answer: &Value) -> Vec<String> {
    let listed: Vec<String> = answer["signing_secrets"]
        .as_array()
        .map(|all| all.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if !listed.is_empty() {
        return listed;
    }
    answer["signing_secret"]
        .as_str()
        .map(|s| vec![s.to_owned()])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_of_old_and_new_registration_answers() {
        assert_eq!(
            signing_secrets(&json!({"signing_secret": "whsec_a"})),
            ["whsec_a"]
        );
        assert_eq!(
            signing_secrets(&json!({"signing_secret": "whsec_b", "signing_secrets": ["whsec_b", "whsec_a"]})),
            ["whsec_b", "whsec_a"]
        );
        assert!(signing_secrets(&json!({})).is_empty());
    }
}
