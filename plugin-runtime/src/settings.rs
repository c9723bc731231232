//! A plugin worker's settings: embedded `default.toml` < `--config FILE` < `SWITCHYARD_PLUGIN__...` env,
//! loaded like the router's and the registry's.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use switchyard_schemas::control::{Batch, DeliveryHints};
use switchyard_schemas::sealed::{PluginKey, SealError};
pub use switchyard_service::config::ConfigError;
pub use switchyard_service::config::Layered;
use switchyard_service::config::{LogConfig, Secret, invalid};
use switchyard_service::kafka::{ClientStats, Clients, KafkaSettings};
use switchyard_service::traces::TracesConfig;

use crate::delivery::breaker::BreakerPolicy;
use crate::delivery::retry::RetryPolicy;
use crate::delivery::schedule::{self, BatchLimits, Limits};

/// The embedded defaults.
pub const DEFAULTS: &str = include_str!("../default.toml");
/// Prefix of environment overrides: `SWITCHYARD_PLUGIN__DELIVERY__MAX_IN_FLIGHT=64`.
pub const ENV_PREFIX: &str = "SWITCHYARD_PLUGIN";
const LIST_KEYS: &[&str] = &[
    "http.url_patterns",
    "http.allowed_networks",
    "secrets.config_keys",
];

/// Every setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Kafka connection and librdkafka pass-through options (all clients, consumers, producers).
    pub kafka: KafkaSettings,
    /// Topic names.
    pub topics: TopicSettings,
    /// Concurrency, commits and config freshness.
    pub delivery: DeliverySettings,
    /// The retry budget of one event.
    pub retry: RetrySettings,
    /// Outage detection.
    pub outage: OutageSettings,
    /// Calls to a plugin service over HTTP.
    pub http: HttpSettings,
    /// Registration and heartbeats.
    pub registry: RegistrySettings,
    /// The worker's own HTTP server.
    pub admin: AdminSettings,
    /// Opening the sealed secret fields of configs.
    pub secrets: SecretSettings,
    /// Logging.
    pub log: LogConfig,
    /// OpenTelemetry traces (off unless `traces.otlp_endpoint` is set).
    #[serde(default)]
    pub traces: TracesConfig,
}

/// Topic names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    /// Default `plugin.{plugin}.events`.
    pub events_template: String,
    /// Default `plugin.{plugin}.dlq`.
    pub dead_letter_template: String,
    /// Default `switchyard.configs`.
    pub configs: String,
    /// Default `core.plugin-results`.
    pub results: String,
}

/// Concurrency, commits and config freshness.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Consumer group; `{plugin}` becomes the id. Default `switchyard-plugin-{plugin}`.
    pub group_id: String,
    /// Calls at once. Default 32.
    pub max_in_flight: usize,
    /// Calls at once per team. Default (absent): a quarter of `max_in_flight`, at least 1.
    #[serde(default)]
    pub max_in_flight_per_team: Option<usize>,
    /// Events held before consumption pauses. Default 2000.
    pub max_buffered: usize,
    /// Commit period, milliseconds. Default 1000.
    pub commit_interval_ms: u64,
    /// Longest wait for configs to be read up to an event's time, milliseconds. Default 5000.
    pub config_wait_ms: u64,
}

/// The retry budget.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Calls per event at most. Default 8.
    pub max_attempts: u32,
    /// No retry starts this long after the first failure, milliseconds. Default 600000.
    pub max_elapsed_ms: u64,
    /// First backoff, milliseconds. Default 500.
    pub initial_backoff_ms: u64,
    /// Longest backoff, milliseconds. Default 60000.
    pub max_backoff_ms: u64,
}

/// Outage detection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageSettings {
    /// Calls remembered. Default 20.
    pub window: usize,
    /// Distinct failing teams needed. Default 3.
    pub min_teams: usize,
    /// Share of failed calls needed. Default 0.8.
    pub threshold: f64,
    /// First wait between probes, milliseconds. Default 500.
    pub probe_initial_ms: u64,
    /// Longest wait between probes, milliseconds. Default 30000.
    pub probe_max_ms: u64,
}

/// Calls to a plugin service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Per-call timeout, milliseconds. Default 15000.
    pub timeout_ms: u64,
    /// Largest response body read, bytes. Default 1048576.
    pub max_response_bytes: usize,
    /// URLs the worker may call (SSRF guard). Default none.
    pub url_patterns: Vec<String>,
    /// Private networks reachable despite the guard, CIDR. Default none.
    pub allowed_networks: Vec<String>,
    /// The signing secret when the worker does not register. Default empty.
    pub signing_secret: Secret,
}

/// The keys that open the sealed secret fields of this plugin's configs (contract section 7.4.1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSettings {
    /// This plugin's keys, `<id>:<base64>` (`switchyardctl secrets plugin-keys`), for a worker that does not
    /// register; a registered worker gets them from its registration, after these. Default none.
    pub config_keys: Vec<Secret>,
}

impl SecretSettings {
    /// The configured keys, parsed.
    pub fn keys(&self) -> Result<Vec<PluginKey>, SealError> {
        self.config_keys
            .iter()
            .map(|key| PluginKey::parse(key.expose()))
            .collect()
    }
}

/// Registration and heartbeats.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// The registry's base URL; empty = no registration. Default empty.
    pub url: String,
    /// The plugin's token (role `plugin`). Default empty.
    pub token: String,
    /// Heartbeat period, milliseconds. Default 10000.
    pub heartbeat_interval_ms: u64,
    /// This instance's id; empty = `<hostname>-<pid>`. Default empty.
    pub instance_id: String,
}

/// The worker's HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Listen address. Default `127.0.0.1:9200`.
    pub listen: SocketAddr,
    /// The URL the registry reaches this worker at. Default empty.
    pub public_url: String,
}

impl Settings {
    /// The builder of the worker's Kafka clients; their statistics go to `stats`.
    pub fn clients(&self, stats: ClientStats) -> Clients {
        Clients::new(self.kafka.clone(), stats)
    }

    /// The delivery loop's bounds: calls in total and per team, events held, and the plugin's `batch` and
    /// `rate_limit` (from its manifest).
    pub fn limits(&self, hints: &DeliveryHints) -> Limits {
        let rate = hints.rate_limit.unwrap_or_default();
        let delivery = &self.delivery;
        Limits {
            max_calls: delivery.max_in_flight,
            max_calls_per_team: delivery
                .max_in_flight_per_team
                .unwrap_or_else(|| schedule::default_per_team(delivery.max_in_flight)),
            max_buffered: delivery.max_buffered,
            batch: hints.batch.map(|batch| BatchLimits {
                // The registry refuses larger values; a manifest given to the bridge as a file is clamped.
                max_events: batch.max_events.clamp(1, Batch::MAX_EVENTS) as usize,
                max_wait: Duration::from_millis(batch.max_wait_ms.min(Batch::MAX_WAIT_MS)),
            }),
            // The registry refuses rates that are not positive; the scheduler ignores them.
            per_team_rate: rate.per_team_per_second,
            plugin_rate: rate.per_plugin_per_second,
        }
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.retry.max_attempts,
            max_elapsed: Duration::from_millis(self.retry.max_elapsed_ms),
            initial: Duration::from_millis(self.retry.initial_backoff_ms),
            max: Duration::from_millis(self.retry.max_backoff_ms),
        }
    }

    /// The outage policy.
    pub fn breaker_policy(&self) -> BreakerPolicy {
        BreakerPolicy {
            window: self.outage.window,
            min_teams: self.outage.min_teams,
            threshold: self.outage.threshold,
            probe_initial: Duration::from_millis(self.outage.probe_initial_ms),
            probe_max: Duration::from_millis(self.outage.probe_max_ms),
        }
    }

    /// The instance id: configured, or `<hostname>-<pid>`.
    pub fn instance_id(&self) -> String {
        if !self.registry.instance_id.is_empty() {
            return self.registry.instance_id.clone();
        }
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    }
}

impl Layered for Settings {
    const DEFAULTS: &'static str = DEFAULTS;
    const ENV_PREFIX: &'static str = ENV_PREFIX;
    const LIST_KEYS: &'static [&'static str] = LIST_KEYS;

    fn check(&self) -> Result<(), ConfigError> {
        self.kafka.check()?;
        self.traces.check("traces")?;
        if let Err(error) = self.secrets.keys() {
            return Err(invalid("secrets.config_keys", error.to_string()));
        }
        if !self.topics.events_template.contains("{plugin}") {
            return Err(invalid("topics.events_template", "must contain {plugin}"));
        }
        if !self.topics.dead_letter_template.contains("{plugin}") {
            return Err(invalid("topics.dead_letter_template", "must contain {plugin}"));
        }
        if self.delivery.max_in_flight == 0 || self.delivery.max_buffered < self.delivery.max_in_flight {
            return Err(invalid(
                "delivery",
                "max_in_flight must be at least 1 and max_buffered at least max_in_flight",
            ));
        }
        if let Some(per_team) = self.delivery.max_in_flight_per_team
            && !(1..=self.delivery.max_in_flight).contains(&per_team)
        {
            return Err(invalid(
                "delivery.max_in_flight_per_team",
                "must be at least 1 and at most max_in_flight",
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(invalid("retry.max_attempts", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.outage.threshold) || self.outage.window == 0 {
            return Err(invalid(
                "outage",
                "threshold must be within 0-1 and window at least 1",
            ));
        }
        if !self.registry.url.is_empty() && !self.http.signing_secret.is_empty() {
            return Err(invalid(
                "http.signing_secret",
                "must stay empty when registry.url is set: the registration gives the secret",
            ));
        }
        if !self.registry.url.is_empty() && self.registry.token.is_empty() {
            return Err(invalid("registry.token", "is needed when registry.url is set"));
        }
        Ok(())
    }
}
