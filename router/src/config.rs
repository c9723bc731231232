//! The router's configuration: embedded `default.toml` < `--config FILE` < `SWITCHYARD_ROUTER__...` env.
//!
//! Every struct denies unknown keys, so a typo is an error at start-up rather than a silently ignored
//! setting. librdkafka options pass through in three maps (all clients, consumers, producers); an option the
//! router sets itself for correctness (ids, isolation, idempotence, commit handling) cannot be overridden
//! there, and trying is an error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use config::{Environment, File, FileFormat};
use rdkafka::ClientConfig;
use serde::{Deserialize, Deserializer};
use thiserror::Error;

/// The embedded defaults.
pub const DEFAULTS: &str = include_str!("../default.toml");
/// Prefix of environment overrides: `SWITCHYARD_ROUTER__DELIVERY__MODE=at_least_once`.
pub const ENV_PREFIX: &str = "SWITCHYARD_ROUTER";

/// librdkafka options the router sets itself; setting them in a pass-through map is an error.
const MANAGED_OPTIONS: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "group.instance.id",
    "transactional.id",
    "transaction.timeout.ms",
    "enable.idempotence",
    "isolation.level",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.commit.interval.ms",
    "partition.assignment.strategy",
    "enable.partition.eof",
    "statistics.interval.ms",
    "allow.auto.create.topics",
];

/// A configuration that cannot be loaded or is inconsistent (of any Switchyard binary).
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A layer failed to load or the result does not fit the schema (unknown key, wrong type).
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is out of range or inconsistent with another.
    #[error("configuration: {key}: {message}")]
    Invalid {
        /// Dotted path of the key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A [`ConfigError::Invalid`] for `key` (the registry and the plugin runtime use it too).
pub fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kafka connection and librdkafka pass-through options.
    pub kafka: KafkaConfig,
    /// Topic names.
    pub topics: TopicsConfig,
    /// Delivery guarantees, commit cadence and validation.
    pub delivery: DeliveryConfig,
    /// The admin HTTP server.
    pub admin: AdminConfig,
    /// Logging.
    pub log: LogConfig,
}

/// Kafka connection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list. Default `127.0.0.1:9092`.
    pub bootstrap_servers: String,
    /// librdkafka options for every client (e.g. `security.protocol`, `sasl.mechanisms`). Keys may use `_`
    /// for `.` so that they can be set from the environment. Default empty.
    #[serde(deserialize_with = "options_map")]
    pub options: BTreeMap<String, String>,
    /// librdkafka options for the consumers only (e.g. `fetch.max.bytes`), applied after `options`.
    #[serde(deserialize_with = "options_map")]
    pub consumer_options: BTreeMap<String, String>,
    /// librdkafka options for the producer only (e.g. `linger.ms`, `compression.codec`), applied last.
    #[serde(deserialize_with = "options_map")]
    pub producer_options: BTreeMap<String, String>,
}

/// Topic names; see `docs/contract.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    /// Input topic of core events. Default `core.events`.
    pub core_events: String,
    /// Compacted plugin manifests. Default `switchyard.plugins`.
    pub plugins: String,
    /// Compacted enablements. Default `switchyard.enablements`.
    pub enablements: String,
    /// Dead letters. Default `core.events.dlq`.
    pub dead_letter: String,
    /// A plugin's topic; `{plugin}` becomes the plugin id. Default `plugin.{plugin}.events`.
    pub plugin_events_template: String,
}

/// How offsets and output are made durable together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// Transactions: output and input offsets commit atomically. Readers use `read_committed`.
    ExactlyOnce,
    /// Idempotent producer; an input offset is stored only after all its output is acknowledged, in
    /// partition order. A crash can duplicate, never lose.
    AtLeastOnce,
}

/// Delivery settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// `exactly_once` (default) or `at_least_once`.
    pub mode: DeliveryMode,
    /// Consumer group of the router replicas. Default `switchyard-router`.
    pub group_id: String,
    /// Transactional id of this replica; unique per replica and stable across its restarts, so that a
    /// restart fences its previous incarnation at once. Default `<group_id>-<hostname>`.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// Static group membership (KIP-345): this replica's member id, stable across its restarts (a
    /// StatefulSet pod's name). A replica that restarts within the consumer's `session.timeout.ms` (45 s)
    /// gets its partitions back at once, without a rebalance and without the others waiting for its session
    /// to expire; a replica that does not come back holds its partitions until then, and one that stops
    /// does not leave the group. Unique per replica. Default unset: dynamic membership.
    #[serde(default)]
    pub group_instance_id: Option<String>,
    /// Commit at least this often while events flow, in milliseconds. Default 100.
    pub commit_interval_ms: u64,
    /// Commit after this many input events even if the interval has not passed. Default 5000.
    pub commit_max_events: usize,
    /// Broker-side limit of an open transaction, in milliseconds; keep it below the consumer's
    /// `session.timeout.ms` (45 s). Default 10000.
    pub transaction_timeout_ms: u64,
    /// Validate the payloads of the v1 event types against their schemas. Default true.
    pub validate_payloads: bool,
    /// How often a plugin topic known to exist is checked again, in milliseconds. Default 10000.
    pub topic_refresh_ms: u64,
    /// How often a plugin topic known to be missing is checked again, in milliseconds. Default 1000.
    pub missing_topic_recheck_ms: u64,
    /// Longest wait for the final commit and flush at shutdown or revocation, in milliseconds. Default 10000.
    pub drain_timeout_ms: u64,
    /// librdkafka statistics period, exported as metrics, in milliseconds; 0 turns them off. Default 5000.
    pub statistics_interval_ms: u64,
}

/// The admin HTTP server: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen address. Default `127.0.0.1:9100`.
    pub listen: SocketAddr,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `switchyard_router=debug,rdkafka=warn`. Default `info`.
    pub level: String,
}

impl Config {
    /// Loads the layers: defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, None)
    }

    /// As [`Config::load`], with an explicit environment instead of the process's (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: Option<BTreeMap<String, String>>,
    ) -> Result<Self, ConfigError> {
        let config: Config = load_layers(DEFAULTS, ENV_PREFIX, &[], file, env)?;
        config.check()?;
        Ok(config)
    }

    /// Checks values the types cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        if !self.topics.plugin_events_template.contains("{plugin}") {
            return Err(invalid("topics.plugin_events_template", "must contain {plugin}"));
        }
        for (key, value) in [
            ("topics.core_events", &self.topics.core_events),
            ("topics.plugins", &self.topics.plugins),
            ("topics.enablements", &self.topics.enablements),
            ("topics.dead_letter", &self.topics.dead_letter),
            ("delivery.group_id", &self.delivery.group_id),
            ("kafka.bootstrap_servers", &self.kafka.bootstrap_servers),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(key, "must not be empty"));
            }
        }
        if self
            .delivery
            .group_instance_id
            .as_ref()
            .is_some_and(|id| id.trim().is_empty())
        {
            return Err(invalid(
                "delivery.group_instance_id",
                "must not be empty when set",
            ));
        }
        if self.delivery.commit_interval_ms == 0 {
            return Err(invalid("delivery.commit_interval_ms", "must be at least 1"));
        }
        if self.delivery.commit_max_events == 0 {
            return Err(invalid("delivery.commit_max_events", "must be at least 1"));
        }
        if self.delivery.transaction_timeout_ms <= self.delivery.commit_interval_ms {
            return Err(invalid(
                "delivery.transaction_timeout_ms",
                "must be longer than delivery.commit_interval_ms",
            ));
        }
        for (section, map) in [
            ("kafka.options", &self.kafka.options),
            ("kafka.consumer_options", &self.kafka.consumer_options),
            ("kafka.producer_options", &self.kafka.producer_options),
        ] {
            if let Some(key) = map.keys().find(|k| MANAGED_OPTIONS.contains(&k.as_str())) {
                return Err(invalid(
                    &format!("{section}.{key}"),
                    "is set by the router itself; use its typed setting (see default.toml) instead",
                ));
            }
        }
        Ok(())
    }

    /// The transactional id of this replica.
    pub fn transactional_id(&self) -> String {
        self.delivery.transactional_id.clone().unwrap_or_else(|| {
            let host = hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "router".into());
            format!("{}-{host}", self.delivery.group_id)
        })
    }

    fn base(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.kafka.bootstrap_servers)
            .set("client.id", client_id)
            .set(
                "statistics.interval.ms",
                self.delivery.statistics_interval_ms.to_string(),
            );
        for (key, value) in &self.kafka.options {
            config.set(key, value);
        }
        config
    }

    /// The consumer of core events: a group member with cooperative-sticky assignment that reads only
    /// committed input. Offsets are committed by the transaction (exactly once) or stored after delivery and
    /// auto-committed (at least once).
    pub fn event_consumer(&self) -> ClientConfig {
        let mut config = self.base("switchyard-router-events");
        config
            .set("group.id", &self.delivery.group_id)
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("allow.auto.create.topics", "false")
            // The default of 1000 ms stalls a consumer that drains its queue faster than it refills.
            .set("fetch.queue.backoff.ms", "10")
            // Prefetch at most 8 MiB (librdkafka's default is 64 MiB and 100,000 messages per partition):
            // under a backlog the defaults held ~180 MiB more RSS and bought no throughput (docs/benchmarks.md).
            .set("queued.max.messages.kbytes", "8192")
            .set("queued.min.messages", "10000");
        if let Some(instance) = &self.delivery.group_instance_id {
            config.set("group.instance.id", instance);
        }
        match self.delivery.mode {
            DeliveryMode::ExactlyOnce => {
                config.set("enable.auto.commit", "false");
            }
            DeliveryMode::AtLeastOnce => {
                config
                    .set("enable.auto.commit", "true")
                    .set("enable.auto.offset.store", "false")
                    .set(
                        "auto.commit.interval.ms",
                        self.delivery.commit_interval_ms.to_string(),
                    );
            }
        }
        for (key, value) in &self.kafka.consumer_options {
            config.set(key, value);
        }
        config
    }

    /// The consumer that materializes the control topics: no group, every partition from the beginning.
    pub fn control_consumer(&self) -> ClientConfig {
        let mut config = self.base("switchyard-router-control");
        config
            // librdkafka requires a group id for a consumer handle even when it never joins the group.
            .set("group.id", format!("{}-control-unused", self.delivery.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .set("allow.auto.create.topics", "false");
        for (key, value) in &self.kafka.consumer_options {
            config.set(key, value);
        }
        config
    }

    /// The producer of plugin and dead-letter records: idempotent, and transactional in exactly-once mode.
    pub fn producer(&self) -> ClientConfig {
        let mut config = self.base("switchyard-router-producer");
        config
            .set("enable.idempotence", "true")
            // Java-compatible key hashing, so plugin topics partition as a Java client would.
            .set("partitioner", "murmur2_random")
            .set("allow.auto.create.topics", "false")
            // 32 MiB of queued records (librdkafka's default is 1 GiB): a full exactly-once transaction of
            // commit_max_events at ~1 KiB and fan-out 3 is ~16 MiB; past the cap, sending waits for deliveries.
            .set("queue.buffering.max.kbytes", "32768");
        if self.delivery.mode == DeliveryMode::ExactlyOnce {
            config.set("transactional.id", self.transactional_id()).set(
                "transaction.timeout.ms",
                self.delivery.transaction_timeout_ms.to_string(),
            );
        }
        for (key, value) in &self.kafka.producer_options {
            config.set(key, value);
        }
        config
    }
}

/// The layered load every Switchyard component uses: `defaults` (TOML) < `file` < the environment variables
/// `<prefix>__SECTION__KEY` (`env` instead of the process's, for tests). `list_keys` are dotted keys whose
/// environment value is a comma-separated list. Unknown keys fail if the target denies them.
pub fn load_layers<T: serde::de::DeserializeOwned>(
    defaults: &str,
    prefix: &str,
    list_keys: &[&str],
    file: Option<&Path>,
    env: Option<BTreeMap<String, String>>,
) -> Result<T, config::ConfigError> {
    let mut builder = config::Config::builder().add_source(File::from_str(defaults, FileFormat::Toml));
    if let Some(path) = file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    let mut environment = Environment::with_prefix(prefix)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true);
    if !list_keys.is_empty() {
        environment = environment.list_separator(",");
        for key in list_keys {
            environment = environment.with_list_parse_key(key);
        }
    }
    let environment = match env {
        Some(vars) => environment.source(Some(vars.into_iter().collect())),
        None => environment,
    };
    builder.add_source(environment).build()?.try_deserialize()
}

/// Accepts strings, numbers and booleans as option values (the environment layer parses `5` as a number)
/// and lets keys use `_` for `.`, because environment variable names cannot contain dots. The registry and
/// the plugin runtime configure their librdkafka options the same way.
pub fn options_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
    Ok(raw
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                Scalar::Text(s) => s,
                Scalar::Int(n) => n.to_string(),
                Scalar::Float(n) => n.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (key.replace('_', "."), value)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_load_with_no_file_and_no_environment() {
        let config = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(config.kafka.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(config.delivery.mode, DeliveryMode::ExactlyOnce);
        assert_eq!(config.delivery.commit_interval_ms, 100);
        assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9100");
        assert!(config.transactional_id().starts_with("switchyard-router-"));
    }

    #[test]
    fn file_then_environment_override_the_defaults() {
        let mut file = tempfile();
        writeln!(file.1, "[delivery]\nmode = \"at_least_once\"\ncommit_interval_ms = 250\n[kafka.producer_options]\n\"linger.ms\" = 20").unwrap();
        let config = Config::load_from(
            Some(&file.0),
            env(&[
                ("SWITCHYARD_ROUTER__DELIVERY__COMMIT_INTERVAL_MS", "500"),
                ("SWITCHYARD_ROUTER__KAFKA__OPTIONS__SECURITY_PROTOCOL", "SASL_SSL"),
                (
                    "SWITCHYARD_ROUTER__KAFKA__CONSUMER_OPTIONS__FETCH_MAX_BYTES",
                    "1048576",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(config.delivery.mode, DeliveryMode::AtLeastOnce);
        assert_eq!(config.delivery.commit_interval_ms, 500);
        assert_eq!(config.kafka.options["security.protocol"], "SASL_SSL");
        assert_eq!(config.kafka.consumer_options["fetch.max.bytes"], "1048576");
        assert_eq!(config.kafka.producer_options["linger.ms"], "20");
        assert_eq!(
            config.event_consumer().get("enable.auto.offset.store"),
            Some("false")
        );
        assert_eq!(config.producer().get("transactional.id"), None);
        std::fs::remove_file(&file.0).unwrap();
    }

    #[test]
    fn unknown_keys_are_errors() {
        let error = Config::load_from(
            None,
            env(&[("SWITCHYARD_ROUTER__DELIVERY__COMMIT_INTERVAL", "5")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("commit_interval"), "{error}");
        let mut file = tempfile();
        writeln!(file.1, "[topicz]\ncore_events = \"x\"").unwrap();
        assert!(Config::load_from(Some(&file.0), env(&[])).is_err());
        std::fs::remove_file(&file.0).unwrap();
    }

    #[test]
    fn managed_librdkafka_options_cannot_be_overridden() {
        let error = Config::load_from(
            None,
            env(&[(
                "SWITCHYARD_ROUTER__KAFKA__PRODUCER_OPTIONS__TRANSACTIONAL_ID",
                "x",
            )]),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("kafka.producer_options.transactional.id"),
            "{error}"
        );
    }

    #[test]
    fn inconsistent_values_are_errors() {
        let error = Config::load_from(
            None,
            env(&[("SWITCHYARD_ROUTER__TOPICS__PLUGIN_EVENTS_TEMPLATE", "plugins")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("{plugin}"), "{error}");
        assert!(
            Config::load_from(
                None,
                env(&[("SWITCHYARD_ROUTER__DELIVERY__COMMIT_INTERVAL_MS", "0")])
            )
            .is_err()
        );
        assert!(
            Config::load_from(None, env(&[("SWITCHYARD_ROUTER__DELIVERY__MODE", "maybe_once")])).is_err()
        );
    }

    fn tempfile() -> (std::path::PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!(
            "switchyard-router-test-{}.toml",
            std::process::id() as u64 * 1000 + rand_suffix()
        ));
        let file = std::fs::File::create(&path).unwrap();
        (path, file)
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
}
