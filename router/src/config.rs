//! The router's configuration: embedded `default.toml` < `--config FILE` < `SWITCHYARD_ROUTER__...` env.
//!
//! Every struct denies unknown keys, so a typo is an error at start-up rather than a silently ignored
//! setting. librdkafka options pass through in three maps (all clients, consumers, producers); an option the
//! router sets itself for correctness (ids, isolation, idempotence, commit handling) cannot be overridden
//! there, and trying is an error.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
pub use switchyard_service::config::ConfigError;
pub use switchyard_service::config::Layered;
use switchyard_service::config::{LogConfig, invalid};
use switchyard_service::kafka::{ClientBuilder, ClientStats, Clients, KafkaSettings};
use switchyard_service::lifecycle::{SHUTDOWN_DEADLINE, Service};
use switchyard_service::traces::TracesConfig;

/// The embedded defaults.
pub const DEFAULTS: &str = include_str!("../default.toml");
/// Prefix of environment overrides: `SWITCHYARD_ROUTER__DELIVERY__MODE=at_least_once`.
pub const ENV_PREFIX: &str = "SWITCHYARD_ROUTER";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kafka connection and librdkafka pass-through options (all clients, consumers, producers).
    pub kafka: KafkaSettings,
    /// Topic names.
    pub topics: TopicsConfig,
    /// Delivery guarantees, commit cadence and validation.
    pub delivery: DeliveryConfig,
    /// The pace of backfills.
    pub backfill: BackfillConfig,
    /// The admin HTTP server.
    pub admin: AdminConfig,
    /// Logging.
    pub log: LogConfig,
    /// OpenTelemetry traces (off unless `traces.otlp_endpoint` is set).
    #[serde(default)]
    pub traces: TracesConfig,
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
    /// Compacted progress of backfills, written in the router's transactions. Default
    /// `switchyard.backfill-progress`.
    pub backfill_progress: String,
}

/// How fast backfills go (contract section 10.5): each within its own rate, all of a replica's within one
/// more, so that live routing keeps its latency.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillConfig {
    /// Copies a backfill writes per second when its request sets no `rate`. Default 1000.
    pub default_rate: u32,
    /// Copies all backfills of this replica write per second, together; a request's `rate` above it gets
    /// this. Default 1000 (see `docs/benchmarks.md`, "Backfill and live latency").
    pub max_rate: u32,
    /// Records of the partition one backfill reads per step at most (records of other teams included).
    /// Default 2000.
    pub scan_per_step: usize,
    /// Time between two steps of the backfills, in milliseconds; live records are routed in between.
    /// Default 5.
    pub step_interval_ms: u64,
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

impl Config {
    /// The transactional id of this replica.
    pub fn transactional_id(&self) -> String {
        self.delivery.transactional_id.clone().unwrap_or_else(|| {
            let host = hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "router".into());
            format!("{}-{host}", self.delivery.group_id)
        })
    }

    /// The builder of the router's Kafka clients; their statistics go to `stats`.
    pub fn clients(&self, stats: ClientStats) -> Clients {
        Clients::new(self.kafka.clone(), stats)
            .with_statistics_interval(Duration::from_millis(self.delivery.statistics_interval_ms))
    }

    /// The consumer of core events: a group member with cooperative-sticky assignment that reads only
    /// committed input. Offsets are committed by the transaction (exactly once) or stored after delivery and
    /// auto-committed (at least once).
    pub fn event_consumer(&self, clients: &Clients) -> ClientBuilder {
        let mut client = clients
            .consumer("consumer")
            .tunable("client.id", "switchyard-router-events")
            .managed("group.id", &self.delivery.group_id)
            .managed("partition.assignment.strategy", "cooperative-sticky")
            .managed("isolation.level", "read_committed")
            .managed("enable.partition.eof", "false")
            .managed("allow.auto.create.topics", "false")
            .tunable("auto.offset.reset", "earliest")
            // The default of 1000 ms stalls a consumer that drains its queue faster than it refills.
            .tunable("fetch.queue.backoff.ms", "10")
            // Prefetch at most 8 MiB (librdkafka's default is 64 MiB and 100,000 messages per partition):
            // under a backlog the defaults held ~180 MiB more RSS and bought no throughput (docs/benchmarks.md).
            .tunable("queued.max.messages.kbytes", "8192")
            .tunable("queued.min.messages", "10000");
        if let Some(instance) = &self.delivery.group_instance_id {
            client = client.managed("group.instance.id", instance);
        }
        match self.delivery.mode {
            DeliveryMode::ExactlyOnce => client.managed("enable.auto.commit", "false"),
            DeliveryMode::AtLeastOnce => client
                .managed("enable.auto.commit", "true")
                .managed("enable.auto.offset.store", "false")
                .managed(
                    "auto.commit.interval.ms",
                    self.delivery.commit_interval_ms.to_string(),
                ),
        }
    }

    /// The producer of plugin and dead-letter records: idempotent, and transactional in exactly-once mode.
    pub fn producer(&self, clients: &Clients) -> ClientBuilder {
        let client = clients
            .producer("producer")
            .tunable("client.id", "switchyard-router-producer")
            .managed("enable.idempotence", "true")
            .managed("allow.auto.create.topics", "false")
            // Java-compatible key hashing, so plugin topics partition as a Java client would.
            .tunable("partitioner", "murmur2_random")
            // 32 MiB of queued records (librdkafka's default is 1 GiB): a full exactly-once transaction of
            // commit_max_events at ~1 KiB and fan-out 3 is ~16 MiB; past the cap, sending waits for deliveries.
            .tunable("queue.buffering.max.kbytes", "32768");
        match self.delivery.mode {
            DeliveryMode::ExactlyOnce => client
                .managed("transactional.id", self.transactional_id())
                .managed(
                    "transaction.timeout.ms",
                    self.delivery.transaction_timeout_ms.to_string(),
                ),
            DeliveryMode::AtLeastOnce => client,
        }
    }
}

impl Service for Config {
    const PROGRAM: &'static str = "switchyard-router";

    fn log(&self) -> &LogConfig {
        &self.log
    }

    /// The drain is bounded by `delivery.drain_timeout_ms`; the deadline leaves it that and more.
    fn shutdown_deadline(&self) -> Duration {
        SHUTDOWN_DEADLINE.max(Duration::from_millis(self.delivery.drain_timeout_ms) * 2)
    }
}

impl Layered for Config {
    const DEFAULTS: &'static str = DEFAULTS;
    const ENV_PREFIX: &'static str = ENV_PREFIX;

    fn check(&self) -> Result<(), ConfigError> {
        if !self.topics.plugin_events_template.contains("{plugin}") {
            return Err(invalid("topics.plugin_events_template", "must contain {plugin}"));
        }
        for (key, value) in [
            ("topics.core_events", &self.topics.core_events),
            ("topics.plugins", &self.topics.plugins),
            ("topics.enablements", &self.topics.enablements),
            ("topics.dead_letter", &self.topics.dead_letter),
            ("topics.backfill_progress", &self.topics.backfill_progress),
            ("delivery.group_id", &self.delivery.group_id),
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
        self.traces.check("traces")?;
        for (key, value) in [
            ("backfill.default_rate", u64::from(self.backfill.default_rate)),
            ("backfill.max_rate", u64::from(self.backfill.max_rate)),
            ("backfill.scan_per_step", self.backfill.scan_per_step as u64),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
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
        self.kafka.check()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    use switchyard_service::config::environment as env;

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
        let clients = config.clients(ClientStats::unregistered());
        let consumer = config.event_consumer(&clients).config().unwrap();
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(consumer.get("fetch.max.bytes"), Some("1048576"));
        assert_eq!(consumer.get("security.protocol"), Some("SASL_SSL"));
        let producer = config.producer(&clients).config().unwrap();
        assert_eq!(producer.get("transactional.id"), None);
        assert_eq!(producer.get("linger.ms"), Some("20"));
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
