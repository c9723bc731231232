//! The Kafka client builder.
//!
//! ```text
//!   managed options (bootstrap, ids, isolation, ...)   Switchyard's; a user option naming one is an error
//!   < tunable defaults (client.id, prefetch, linger)    Switchyard's choice; the user may override
//!   < kafka.options < kafka.{consumer,producer}_options  the user's, as configured
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::KafkaError;
use serde::Deserialize;
use thiserror::Error;

use super::context::{ClientStats, KafkaContext};
use crate::config::{ConfigError, invalid, options_map};

/// librdkafka options that Switchyard sets itself for correctness in some client; setting one in a
/// pass-through map is an error at configuration load. A client's builder may manage more
/// ([`ClientBuilder::managed`]); those clash when that client is made.
pub const MANAGED_OPTIONS: &[&str] = &[
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

/// The `[kafka]` section of every service's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list. Default `127.0.0.1:9092`.
    pub bootstrap_servers: String,
    /// librdkafka options for every client (e.g. `security.protocol`, `sasl.mechanisms`). Keys may use `_`
    /// for `.` so that they can be set from the environment. Default empty.
    #[serde(default, deserialize_with = "options_map")]
    pub options: BTreeMap<String, String>,
    /// librdkafka options for the consumers only (e.g. `fetch.max.bytes`), applied after `options`.
    #[serde(default, deserialize_with = "options_map")]
    pub consumer_options: BTreeMap<String, String>,
    /// librdkafka options for the producers only (e.g. `linger.ms`), applied last.
    #[serde(default, deserialize_with = "options_map")]
    pub producer_options: BTreeMap<String, String>,
}

impl KafkaSettings {
    /// Settings for `bootstrap_servers` with no pass-through options (tools and tests).
    pub fn bootstrap(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            ..Self::default()
        }
    }

    /// Refuses an empty bootstrap list and pass-through options that name a [`MANAGED_OPTIONS`] entry.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(invalid("kafka.bootstrap_servers", "must not be empty"));
        }
        for (section, map) in self
            .sections(Role::Consumer)
            .into_iter()
            .chain([("kafka.producer_options", &self.producer_options)])
        {
            if let Some(key) = map.keys().find(|k| MANAGED_OPTIONS.contains(&k.as_str())) {
                return Err(invalid(
                    &format!("{section}.{key}"),
                    "is set by Switchyard itself; use its typed setting (see default.toml) instead",
                ));
            }
        }
        Ok(())
    }

    /// The pass-through maps a client of `role` gets, in the order they apply.
    fn sections(&self, role: Role) -> Vec<(&'static str, &BTreeMap<String, String>)> {
        let mut sections = vec![("kafka.options", &self.options)];
        match role {
            Role::Consumer => sections.push(("kafka.consumer_options", &self.consumer_options)),
            Role::Producer => sections.push(("kafka.producer_options", &self.producer_options)),
            Role::Other => {}
        }
        sections
    }
}

/// Which pass-through maps a client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `options`, then `consumer_options`.
    Consumer,
    /// `options`, then `producer_options`.
    Producer,
    /// `options` only (admin clients, the credentials probe).
    Other,
}

/// A client that could not be made.
#[derive(Debug, Error)]
pub enum ClientError {
    /// A pass-through option names an option this client manages.
    #[error(
        "configuration: {section}.{key}: is set by Switchyard itself for its {client} client; use its typed setting instead"
    )]
    Clash {
        /// The map it was set in, e.g. `kafka.producer_options`.
        section: &'static str,
        /// The option.
        key: String,
        /// The client's name.
        client: String,
    },
    /// librdkafka refused the configuration.
    #[error("creating the Kafka client {client} failed: {source}")]
    Create {
        /// The client's name.
        client: String,
        /// librdkafka's error.
        source: KafkaError,
    },
}

/// Makes every Kafka client of a process from its [`KafkaSettings`].
#[derive(Clone)]
pub struct Clients {
    settings: KafkaSettings,
    stats: ClientStats,
    statistics_interval: Duration,
}

impl Clients {
    /// Clients that report statistics into `stats` every 5 s.
    pub fn new(settings: KafkaSettings, stats: ClientStats) -> Self {
        Self {
            settings,
            stats,
            statistics_interval: Duration::from_secs(5),
        }
    }

    /// Changes the statistics period; zero turns statistics off.
    pub fn with_statistics_interval(mut self, interval: Duration) -> Self {
        self.statistics_interval = interval;
        self
    }

    /// The settings.
    pub fn settings(&self) -> &KafkaSettings {
        &self.settings
    }

    /// A consumer named `name` (its `client.id` and its metrics label).
    pub fn consumer(&self, name: &str) -> ClientBuilder {
        self.client(Role::Consumer, name)
    }

    /// A producer named `name`.
    pub fn producer(&self, name: &str) -> ClientBuilder {
        self.client(Role::Producer, name)
    }

    /// An admin client (or another client that only needs `options`) named `name`.
    pub fn admin(&self, name: &str) -> ClientBuilder {
        self.client(Role::Other, name)
    }

    fn client(&self, role: Role, name: &str) -> ClientBuilder {
        ClientBuilder {
            name: name.to_owned(),
            role,
            config: ClientConfig::new(),
            managed: BTreeSet::new(),
            settings: self.settings.clone(),
            context: KafkaContext::new(name, self.stats.clone()),
        }
        .managed("bootstrap.servers", &self.settings.bootstrap_servers)
        .managed(
            "statistics.interval.ms",
            self.statistics_interval.as_millis().to_string(),
        )
        .tunable("client.id", name)
    }
}

/// One client being made; see the module's layering.
pub struct ClientBuilder {
    name: String,
    role: Role,
    config: ClientConfig,
    managed: BTreeSet<String>,
    settings: KafkaSettings,
    context: KafkaContext,
}

impl ClientBuilder {
    /// Sets an option Switchyard needs for correctness: a pass-through option of the same key is an error.
    pub fn managed(mut self, key: &str, value: impl Into<String>) -> Self {
        self.config.set(key, value);
        self.managed.insert(key.to_owned());
        self
    }

    /// Sets a default the user's pass-through options may override.
    pub fn tunable(mut self, key: &str, value: impl Into<String>) -> Self {
        self.config.set(key, value);
        self
    }

    /// The context this client's statistics and errors go to; a custom context forwards to it.
    pub fn context(&self) -> KafkaContext {
        self.context.clone()
    }

    /// The finished configuration: the user's options applied over the defaults, or the first clash.
    pub fn config(mut self) -> Result<ClientConfig, ClientError> {
        for (section, map) in self.settings.sections(self.role) {
            for (key, value) in map {
                if self.managed.contains(key) {
                    return Err(ClientError::Clash {
                        section,
                        key: key.clone(),
                        client: self.name,
                    });
                }
                self.config.set(key, value);
            }
        }
        Ok(self.config)
    }

    /// Creates the client with its [`KafkaContext`].
    pub fn create<T: FromClientConfigAndContext<KafkaContext>>(self) -> Result<T, ClientError> {
        let context = self.context();
        self.create_with(context)
    }

    /// Creates the client with a context of the caller's.
    pub fn create_with<C: ClientContext, T: FromClientConfigAndContext<C>>(
        self,
        context: C,
    ) -> Result<T, ClientError> {
        let name = self.name.clone();
        self.config()?
            .create_with_context(context)
            .map_err(|source| ClientError::Create { client: name, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> KafkaSettings {
        KafkaSettings {
            bootstrap_servers: "127.0.0.1:9092".into(),
            options: BTreeMap::from([("security.protocol".into(), "SASL_SSL".into())]),
            consumer_options: BTreeMap::from([("fetch.max.bytes".into(), "1024".into())]),
            producer_options: BTreeMap::from([("linger.ms".into(), "20".into())]),
        }
    }

    fn clients(settings: KafkaSettings) -> Clients {
        Clients::new(settings, ClientStats::unregistered())
    }

    #[test]
    fn every_client_gets_the_options_of_its_role_over_the_tunable_defaults() {
        let clients = clients(settings());
        let consumer = clients
            .consumer("c")
            .tunable("linger.ms", "1")
            .tunable("fetch.max.bytes", "9")
            .config()
            .unwrap();
        assert_eq!(consumer.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert_eq!(consumer.get("client.id"), Some("c"));
        assert_eq!(consumer.get("statistics.interval.ms"), Some("5000"));
        assert_eq!(consumer.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(consumer.get("fetch.max.bytes"), Some("1024"));
        // Producer options are not a consumer's.
        assert_eq!(consumer.get("linger.ms"), Some("1"));
        let producer = clients.producer("p").config().unwrap();
        assert_eq!(producer.get("linger.ms"), Some("20"));
        assert_eq!(producer.get("fetch.max.bytes"), None);
        let admin = clients.admin("a").config().unwrap();
        assert_eq!(admin.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(
            (admin.get("linger.ms"), admin.get("fetch.max.bytes")),
            (None, None)
        );
        let quiet = clients
            .clone()
            .with_statistics_interval(Duration::ZERO)
            .admin("a")
            .config()
            .unwrap();
        assert_eq!(quiet.get("statistics.interval.ms"), Some("0"));
    }

    #[test]
    fn a_pass_through_option_that_names_a_managed_one_is_an_error() {
        let mut clashing = settings();
        clashing.producer_options.insert("acks".into(), "1".into());
        let error = clients(clashing.clone())
            .producer("store")
            .managed("acks", "all")
            .config()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "configuration: kafka.producer_options.acks: is set by Switchyard itself for its store client; use its typed setting instead"
        );
        // A consumer does not get producer options, so it does not clash.
        assert!(
            clients(clashing)
                .consumer("c")
                .managed("acks", "all")
                .config()
                .is_ok()
        );

        let mut global = settings();
        global.options.insert("group.id".into(), "x".into());
        let error = global.check().unwrap_err();
        assert!(error.to_string().contains("kafka.options.group.id"), "{error}");
        assert!(settings().check().is_ok());
        assert!(KafkaSettings::bootstrap(" ").check().is_err());
    }
}
