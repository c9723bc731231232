//! The registry's configuration: embedded `default.toml` < `--config FILE` < `SWITCHYARD_REGISTRY__...` env.
//!
//! Loaded the same way as the router's (unknown keys are errors; librdkafka options pass through with `_`
//! for `.`). Two values are secrets, the HS256 token secret and the signing key: they are wrapped in
//! [`Secret`], whose `Debug` prints nothing of them, so that logging the configuration cannot leak them.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use switchyard_schemas::publisher::PublisherKey;
pub use switchyard_service::config::Layered;
pub use switchyard_service::config::{ConfigError, Secret};
use switchyard_service::config::{LogConfig, invalid};
use switchyard_service::http::Limits;
use switchyard_service::kafka::{ClientStats, Clients, KafkaSettings};
use switchyard_service::lifecycle::{SHUTDOWN_DEADLINE, Service};

/// The embedded defaults.
pub const DEFAULTS: &str = include_str!("../default.toml");
/// Prefix of environment overrides: `SWITCHYARD_REGISTRY__HTTP__LISTEN=0.0.0.0:8080`.
pub const ENV_PREFIX: &str = "SWITCHYARD_REGISTRY";
/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "auth.rs256_public_keys",
    "auth.eddsa_public_keys",
    "gateway.url_patterns",
    "gateway.previous_signing_keys",
    "secrets.master_keys",
    "gateway.allowed_networks",
    "console.proxy.admin_groups",
    "registration.publishers",
];

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kafka connection and librdkafka pass-through options (all clients, consumers, producers).
    pub kafka: KafkaSettings,
    /// Topic names.
    pub topics: TopicsConfig,
    /// The compacted topics that hold the registry's state.
    pub store: StoreSettings,
    /// Topics created for each registered plugin.
    pub provisioning: ProvisioningConfig,
    /// The HTTP API server.
    pub http: HttpConfig,
    /// Token verification keys.
    pub auth: AuthConfig,
    /// Plugin instance liveness.
    pub heartbeat: HeartbeatConfig,
    /// The action gateway.
    pub gateway: GatewayConfig,
    /// Compiling plugins' config schemas and validating teams' configs.
    pub config_schemas: ConfigSchemasConfig,
    /// Sealing the secret fields of team configs.
    pub secrets: SecretsConfig,
    /// What a manifest must carry to register: a publisher's signature, a contract range.
    pub registration: RegistrationConfig,
    /// The web console.
    pub console: ConsoleConfig,
    /// Logging (the router's format and filter syntax).
    pub log: LogConfig,
}

/// Topic names; see `docs/contract.md` and `docs/registry.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    /// Compacted plugin manifests. Default `switchyard.plugins`.
    pub plugins: String,
    /// Compacted enablements. Default `switchyard.enablements`.
    pub enablements: String,
    /// Compacted per-team plugin configs, read by plugin workers. Default `switchyard.configs`.
    pub configs: String,
    /// Compacted plugin instance heartbeats. Default `switchyard.instances`.
    pub instances: String,
    /// Compacted backfill requests, the registry's record of each backfill. Default `switchyard.backfills`.
    pub backfills: String,
    /// Compacted backfill progress, written by the router and followed by the registry. Default
    /// `switchyard.backfill-progress`.
    pub backfill_progress: String,
    /// Compacted record of each console sign-in link's token spent, so that a link signs in once on any
    /// replica. Default `switchyard.console-sign-ins`.
    pub console_sign_ins: String,
    /// Compacted registration history: one record per version a plugin registered, kept after
    /// deregistration. Default `switchyard.plugin-registrations`.
    pub plugin_registrations: String,
    /// Compacted replays of plugins' dead letters, keyed by the letter (`<dead-letter topic>/<partition>/
    /// <offset>`), written with each replayed copy by the replay route and `switchyardctl dlq replay`.
    /// Default `switchyard.dead-letter-replays`.
    pub dead_letter_replays: String,
    /// The router's input topic, only read to learn how far back a team's partition reaches (the backfill
    /// retention check). Default `core.events`.
    pub core_events: String,
    /// A plugin's event topic; `{plugin}` becomes the id. Default `plugin.{plugin}.events`.
    pub plugin_events_template: String,
    /// A plugin's dead-letter topic. Default `plugin.{plugin}.dlq`.
    pub plugin_dead_letter_template: String,
    /// A plugin's workers' consumer group, whose lag `GET /v1/plugins/{id}/lag` reads; `{plugin}` becomes
    /// the id. Must match the workers' `delivery.group_id`. Default `switchyard-plugin-{plugin}`.
    pub plugin_group_template: String,
}

/// The registry's own compacted topics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Partitions of a store topic the registry creates. Default 1.
    pub partitions: i32,
    /// Replication factor of a store topic the registry creates. Default 1 (use 3 in production).
    pub replication_factor: i32,
    /// Bound of one write, acknowledged and applied locally, in milliseconds; also of a backfill request's
    /// read of the oldest event of the team's `core.events` partition. Default 10000.
    pub write_timeout_ms: u64,
}

/// Topics created for a plugin when it registers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningConfig {
    /// Partitions of each plugin topic. Default 6.
    pub partitions: i32,
    /// Replication factor of each plugin topic. Default 1 (use 3 in production).
    pub replication_factor: i32,
}

/// The HTTP API server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Largest request body outside the gateway, in bytes. Default 1048576.
    pub body_limit_bytes: usize,
    /// Bound of one request, in milliseconds; also how long in-flight requests have to finish at shutdown.
    /// Default 30000.
    pub request_timeout_ms: u64,
    /// How long a client has to send a request's head (request line and headers), in milliseconds, counted
    /// from the accept or, on a kept-alive connection, from the end of the previous response; so it is also
    /// how long an idle kept-alive connection stays open. Default 20000.
    pub header_read_timeout_ms: u64,
    /// Connections open at once; at the cap, new connections wait in the listen backlog until one closes.
    /// Keep it below the process's open-file limit. Default 1024.
    pub max_connections: usize,
    /// Requests served on one kept-alive connection; the last response carries `Connection: close`.
    /// Default 1000.
    pub max_requests_per_connection: u64,
    /// How long a closing connection keeps reading and discarding what the client still sends (the rest of
    /// a body answered early with a 401 or 413), in milliseconds. Default 5000.
    pub linger_timeout_ms: u64,
    /// The most bytes a closing connection discards before it closes anyway. Default 4194304.
    pub linger_max_bytes: u64,
}

impl HttpConfig {
    /// The server's limits. The registry bounds each request itself (with a problem-details 503), so the
    /// server adds no request timeout of its own; the shutdown drain is `request_timeout_ms`, the longest
    /// an in-flight request can take.
    pub fn limits(&self) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            request_timeout: None,
            max_connections: self.max_connections,
            max_requests_per_connection: self.max_requests_per_connection,
            drain_timeout: Duration::from_millis(self.request_timeout_ms),
            linger_timeout: Duration::from_millis(self.linger_timeout_ms),
            linger_max_bytes: self.linger_max_bytes,
        }
    }
}

/// Bearer token verification keys; at least one family must be set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 shared secret; also mints development tokens. Default unset.
    pub hs256_secret: Secret,
    /// RS256 public keys, PEM. Default none.
    pub rs256_public_keys: Vec<String>,
    /// EdDSA (Ed25519) public keys, PEM. Default none.
    pub eddsa_public_keys: Vec<String>,
    /// A JSON Web Key Set of keys with ids (`kid`): `RSA`, `OKP` Ed25519 and `oct` (HS256) keys. A token
    /// whose header names a `kid` is verified with that key only. Default empty.
    pub jwks: Secret,
    /// The `aud` tokens must carry; empty = not checked. Default empty.
    pub audience: String,
    /// Longest an admin or team token may still be valid (`exp` minus now), in milliseconds; a token valid
    /// for longer is refused. Default 86400000 (24 hours).
    pub max_token_lifetime_ms: u64,
    /// The same for plugin tokens, which plugin workers keep in a Secret for a rotation period, in
    /// milliseconds. Default 7776000000 (90 days).
    pub max_plugin_token_lifetime_ms: u64,
    /// A plugin whose live instances' earliest token expires within this many milliseconds shows
    /// `token.expires_soon`. Default 1209600000 (14 days).
    pub plugin_token_warning_ms: u64,
}

impl AuthConfig {
    /// `max_token_lifetime_ms` and `max_plugin_token_lifetime_ms`.
    pub fn max_lifetimes(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.max_token_lifetime_ms),
            Duration::from_millis(self.max_plugin_token_lifetime_ms),
        )
    }
}

/// Sealing the secret fields of team configs (`docs/registry.md`, "Sealed secrets").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// Master keys, `<id>:<base64 of 32 bytes>`; the first seals, the others only open (a rotation).
    /// Empty: secret fields are stored in clear, as before sealing. Default none.
    pub master_keys: Vec<Secret>,
}

/// Signed releases (`docs/registry.md`, "Signed manifests").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Refuse manifests without a valid publisher signature (422). Default false: unsigned manifests
    /// register, and a signature that is present is checked all the same.
    pub require_signed: bool,
    /// Trusted publisher keys, each `<key id> <base64 Ed25519 public key> <plugin pattern>...` (a pattern is
    /// a plugin id, a prefix ending in `*`, or `*`): the line `switchyardctl plugin keygen` prints. Default
    /// none.
    pub publishers: Vec<String>,
}

impl RegistrationConfig {
    /// The trusted keys, parsed; an error names the entry.
    pub fn publisher_keys(&self) -> Result<Vec<PublisherKey>, String> {
        let mut keys: Vec<PublisherKey> = Vec::new();
        for (index, line) in self.publishers.iter().enumerate() {
            let key = PublisherKey::parse(line).map_err(|e| format!("entry {index}: {e}"))?;
            if keys.iter().any(|k| k.key_id() == key.key_id()) {
                return Err(format!(
                    "entry {index}: key id {:?} is listed twice",
                    key.key_id()
                ));
            }
            keys.push(key);
        }
        Ok(keys)
    }
}

/// The web console (`docs/console.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Whether the registry serves it. Default true.
    pub enabled: bool,
    /// Where: a path prefix of one or more segments, without a trailing slash. Default `/console`.
    pub path: String,
    /// Longest a sign-in lasts, in milliseconds; never past the token's own `exp`. Default 28800000 (8 h).
    pub session_ttl_ms: u64,
    /// Base64 of at least 32 bytes that signs session cookies and CSRF tokens; empty = derived from
    /// `gateway.signing_key` (so rotating that key signs everybody out). Default empty.
    pub session_secret: Secret,
    /// `auto`: cookies are `Secure` when the request came over TLS (`X-Forwarded-Proto: https` from the
    /// proxy in front); `always`: always. Default `auto`.
    pub secure_cookies: SecureCookies,
    /// Single sign-on through an authenticating reverse proxy.
    pub proxy: ConsoleProxyConfig,
}

/// Identity headers from an authenticating reverse proxy (`docs/console.md`, "Single sign-on").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleProxyConfig {
    /// Trust the headers instead of a sign-in. Default false.
    pub enabled: bool,
    /// The user's name. Default `X-Forwarded-User`.
    pub user_header: String,
    /// The user's groups, comma-separated. Default `X-Forwarded-Groups`.
    pub groups_header: String,
    /// Groups that make an admin. Default none.
    pub admin_groups: Vec<String>,
    /// `<prefix><team>` makes the user that team. Default `switchyard-team-`.
    pub team_group_prefix: String,
    /// `<prefix><plugin>` makes the user that plugin. Default `switchyard-plugin-`.
    pub plugin_group_prefix: String,
    /// A header the proxy sets to `shared_secret`. Default `X-Switchyard-Proxy-Secret`.
    pub shared_secret_header: String,
    /// When set, requests without it in `shared_secret_header` are refused. Default empty.
    pub shared_secret: Secret,
}

/// When the console's cookies carry `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookies {
    /// When the request came over TLS.
    Auto,
    /// Always.
    Always,
}

/// Plugin instance liveness.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// An instance counts as live this long after its last heartbeat, in milliseconds. Default 30000.
    pub ttl_ms: u64,
    /// A silent instance is removed after this long, in milliseconds. Default 3600000.
    pub forget_after_ms: u64,
}

/// Compiling plugins' config schemas (at registration and for each config request) and validating teams'
/// configs: CPU work that runs off the request threads, a few jobs at a time, within a deadline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSchemasConfig {
    /// Most compilations and validations running at once; more wait for a slot. Default 2.
    pub max_concurrent: usize,
    /// A request whose compilation or validation has not finished (slot wait included) after this many
    /// milliseconds gets 503. Default 5000.
    pub timeout_ms: u64,
}

/// The action gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Base64 key from which each plugin's signing secret is derived. Required.
    pub signing_key: Secret,
    /// Keys being retired after a rotation of `signing_key`: their plugin secrets still sign every call.
    /// Default none.
    pub previous_signing_keys: Vec<Secret>,
    /// Plugin URLs the gateway may call. Default none.
    pub url_patterns: Vec<String>,
    /// Private networks reachable despite the SSRF guard, CIDR. Default none.
    pub allowed_networks: Vec<String>,
    /// Upstream timeout, in milliseconds. Default 10000.
    pub timeout_ms: u64,
    /// Largest action request body, in bytes. Default 262144.
    pub max_request_bytes: usize,
    /// Largest upstream response body, in bytes. Default 1048576.
    pub max_response_bytes: usize,
    /// Sustained actions per second per team. Default 10.
    pub rate_per_second: f64,
    /// Burst of actions per team. Default 20.
    pub burst: u32,
}

impl Config {
    /// The builder of the registry's Kafka clients; their statistics go to `stats`.
    pub fn clients(&self, stats: ClientStats) -> Clients {
        Clients::new(self.kafka.clone(), stats)
    }

    /// The bound of one store write.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.store.write_timeout_ms)
    }
}

impl Service for Config {
    const PROGRAM: &'static str = "switchyard-registry";

    fn log(&self) -> &LogConfig {
        &self.log
    }

    /// In-flight requests get `http.request_timeout_ms` to finish; the deadline leaves them that and more.
    fn shutdown_deadline(&self) -> Duration {
        SHUTDOWN_DEADLINE.max(Duration::from_millis(self.http.request_timeout_ms) * 2)
    }

    /// The token keys and the gateway's settings.
    fn check_offline(&self) -> Result<(), String> {
        crate::app::check_offline(self)
            .map(|_| ())
            .map_err(|error| error.to_string())
    }
}

impl Layered for Config {
    const DEFAULTS: &'static str = DEFAULTS;
    const ENV_PREFIX: &'static str = ENV_PREFIX;
    const LIST_KEYS: &'static [&'static str] = LIST_KEYS;

    fn check(&self) -> Result<(), ConfigError> {
        self.kafka.check()?;
        for (key, template) in [
            (
                "topics.plugin_events_template",
                &self.topics.plugin_events_template,
            ),
            (
                "topics.plugin_dead_letter_template",
                &self.topics.plugin_dead_letter_template,
            ),
            ("topics.plugin_group_template", &self.topics.plugin_group_template),
        ] {
            if !template.contains("{plugin}") {
                return Err(invalid(key, "must contain {plugin}"));
            }
        }
        for (key, value) in [
            ("topics.plugins", &self.topics.plugins),
            ("topics.enablements", &self.topics.enablements),
            ("topics.configs", &self.topics.configs),
            ("topics.instances", &self.topics.instances),
            ("topics.backfills", &self.topics.backfills),
            ("topics.backfill_progress", &self.topics.backfill_progress),
            ("topics.console_sign_ins", &self.topics.console_sign_ins),
            ("topics.plugin_registrations", &self.topics.plugin_registrations),
            ("topics.core_events", &self.topics.core_events),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(key, "must not be empty"));
            }
        }
        for (key, value) in [
            ("store.partitions", self.store.partitions),
            ("store.replication_factor", self.store.replication_factor),
            ("provisioning.partitions", self.provisioning.partitions),
            (
                "provisioning.replication_factor",
                self.provisioning.replication_factor,
            ),
        ] {
            if value < 1 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.config_schemas.max_concurrent < 1 || self.config_schemas.timeout_ms < 1 {
            return Err(invalid(
                "config_schemas",
                "max_concurrent and timeout_ms must be at least 1",
            ));
        }
        if self.auth.hs256_secret.is_empty()
            && self.auth.rs256_public_keys.is_empty()
            && self.auth.eddsa_public_keys.is_empty()
            && self.auth.jwks.is_empty()
        {
            return Err(invalid(
                "auth",
                "no token key is configured: set auth.hs256_secret (SWITCHYARD_REGISTRY__AUTH__HS256_SECRET) \
                 or RS256/EdDSA public keys",
            ));
        }
        for (key, value) in [
            ("http.request_timeout_ms", self.http.request_timeout_ms),
            ("http.header_read_timeout_ms", self.http.header_read_timeout_ms),
            ("http.max_connections", self.http.max_connections as u64),
            (
                "http.max_requests_per_connection",
                self.http.max_requests_per_connection,
            ),
            ("auth.max_token_lifetime_ms", self.auth.max_token_lifetime_ms),
            (
                "auth.max_plugin_token_lifetime_ms",
                self.auth.max_plugin_token_lifetime_ms,
            ),
        ] {
            if value < 1 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if !self.auth.hs256_secret.is_empty() && self.auth.hs256_secret.expose().len() < 32 {
            return Err(invalid("auth.hs256_secret", "must be at least 32 characters"));
        }
        if crate::signing::MasterKey::parse(self.gateway.signing_key.expose()).is_err() {
            return Err(invalid(
                "gateway.signing_key",
                "must be set to base64 of at least 32 random bytes (SWITCHYARD_REGISTRY__GATEWAY__SIGNING_KEY)",
            ));
        }
        let master_keys: Vec<&str> = self.secrets.master_keys.iter().map(Secret::expose).collect();
        if let Err(error) = crate::secrets::ConfigSecrets::parse(&master_keys) {
            return Err(invalid("secrets.master_keys", error.to_string()));
        }
        self.registration
            .publisher_keys()
            .map_err(|e| invalid("registration.publishers", e))?;
        if self.registration.require_signed && self.registration.publishers.is_empty() {
            return Err(invalid(
                "registration.require_signed",
                "requires at least one key in registration.publishers, or no plugin could register",
            ));
        }
        for (index, key) in self.gateway.previous_signing_keys.iter().enumerate() {
            if crate::signing::MasterKey::parse(key.expose()).is_err() {
                return Err(invalid(
                    "gateway.previous_signing_keys",
                    format!("entry {index} is not base64 of at least 32 bytes"),
                ));
            }
        }
        if self.console.enabled {
            crate::console::check_path(&self.console.path).map_err(|e| invalid("console.path", e))?;
            let proxy = &self.console.proxy;
            if proxy.enabled {
                for (key, header) in [
                    ("console.proxy.user_header", &proxy.user_header),
                    ("console.proxy.groups_header", &proxy.groups_header),
                    ("console.proxy.shared_secret_header", &proxy.shared_secret_header),
                ] {
                    if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                        return Err(invalid(key, "must be a header name"));
                    }
                }
            }
            if self.console.session_ttl_ms < 60_000 {
                return Err(invalid(
                    "console.session_ttl_ms",
                    "must be at least 60000 (a minute)",
                ));
            }
            if !self.console.session_secret.is_empty()
                && crate::signing::MasterKey::parse(self.console.session_secret.expose()).is_err()
            {
                return Err(invalid(
                    "console.session_secret",
                    "must be empty or base64 of at least 32 random bytes",
                ));
            }
        }
        if self.heartbeat.ttl_ms == 0 || self.heartbeat.forget_after_ms < self.heartbeat.ttl_ms {
            return Err(invalid(
                "heartbeat",
                "ttl_ms must be positive and forget_after_ms at least ttl_ms",
            ));
        }
        if !self.gateway.rate_per_second.is_finite()
            || self.gateway.rate_per_second <= 0.0
            || self.gateway.burst == 0
        {
            return Err(invalid("gateway", "rate_per_second and burst must be positive"));
        }
        Ok(())
    }
}

/// The sections of a registry configuration that name and size its topics: what `switchyardctl topics`
/// plans, checks and backs up, and the load test's demo creates. Loaded like the registry's own
/// configuration (embedded defaults < `file` < `SWITCHYARD_REGISTRY__TOPICS__...`), so it names the topics
/// the registry it stands beside uses; the other sections are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct TopicLayout {
    /// Topic names.
    pub topics: TopicsConfig,
    /// The store topics' partitions and replication.
    pub store: StoreSettings,
    /// The plugin topics' partitions and replication.
    pub provisioning: ProvisioningConfig,
}

impl TopicLayout {
    /// The layout of the registry's defaults, `file` and the environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        Ok(switchyard_service::config::load_layers(
            DEFAULTS, ENV_PREFIX, LIST_KEYS, file, None,
        )?)
    }

    /// The layout of the registry's embedded defaults alone.
    pub fn defaults() -> Result<Self, ConfigError> {
        Ok(switchyard_service::config::load_layers(
            DEFAULTS,
            ENV_PREFIX,
            LIST_KEYS,
            None,
            Some(Default::default()),
        )?)
    }

    /// Every compacted topic of the registry's store, in its order (the router's backfill progress among
    /// them).
    pub fn store_topics(&self) -> Vec<String> {
        crate::records::Topics::from_config(&self.topics).all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "c3dpdGNoeWFyZC10ZXN0LXNpZ25pbmcta2V5LTMyYnl0ZXMhIQ==";

    use switchyard_service::config::environment as env;

    fn required() -> Vec<(&'static str, &'static str)> {
        vec![
            (
                "SWITCHYARD_REGISTRY__AUTH__HS256_SECRET",
                "a-development-secret-of-at-least-32-chars",
            ),
            ("SWITCHYARD_REGISTRY__GATEWAY__SIGNING_KEY", KEY),
        ]
    }

    #[test]
    fn defaults_need_a_token_key_and_a_signing_key() {
        let error = Config::load_from(None, env(&[])).unwrap_err().to_string();
        assert!(error.contains("no token key is configured"), "{error}");
        let config = Config::load_from(None, env(&required())).unwrap();
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.heartbeat.ttl_ms, 30_000);
        assert_eq!(config.topics.configs, "switchyard.configs");
        assert_eq!(
            config.topics.dead_letter_replays,
            switchyard_schemas::topics::DEAD_LETTER_REPLAYS
        );
        assert_eq!(
            (
                config.topics.backfills.as_str(),
                config.topics.backfill_progress.as_str(),
                config.topics.core_events.as_str()
            ),
            (
                switchyard_schemas::topics::BACKFILLS,
                switchyard_schemas::topics::BACKFILL_PROGRESS,
                switchyard_schemas::topics::CORE_EVENTS
            )
        );
    }

    #[test]
    fn default_token_lifetimes_are_the_ones_auth_and_switchyardctl_assume() {
        let config = Config::load_from(None, env(&required())).unwrap();
        assert_eq!(
            config.auth.max_lifetimes(),
            (
                crate::auth::DEFAULT_MAX_TOKEN_LIFETIME,
                crate::auth::DEFAULT_MAX_PLUGIN_TOKEN_LIFETIME
            )
        );
        let mut vars = required();
        vars.push(("SWITCHYARD_REGISTRY__AUTH__MAX_TOKEN_LIFETIME_MS", "0"));
        let error = Config::load_from(None, env(&vars)).unwrap_err().to_string();
        assert!(error.contains("auth.max_token_lifetime_ms"), "{error}");
    }

    #[test]
    fn publisher_keys_are_checked_at_load_and_required_signatures_need_one() {
        let key = switchyard_schemas::publisher::SecretKey::generate("acme-2026").unwrap();
        let (one, two) = (key.trust_line(&["acme-*".into()]), key.trust_line(&["*".into()]));
        let mut vars: Vec<(&str, &str)> = required();
        let both = format!("{one},{two}");
        vars.push(("SWITCHYARD_REGISTRY__REGISTRATION__PUBLISHERS", &both));
        let error = Config::load_from(None, env(&vars)).unwrap_err().to_string();
        assert!(
            error.contains("registration.publishers") && error.contains("listed twice"),
            "{error}"
        );
        vars.pop();
        vars.push((
            "SWITCHYARD_REGISTRY__REGISTRATION__PUBLISHERS",
            "acme-2026 not-a-key acme-*",
        ));
        let error = Config::load_from(None, env(&vars)).unwrap_err().to_string();
        assert!(
            error.contains("registration.publishers") && error.contains("32 bytes"),
            "{error}"
        );
        vars.pop();
        vars.push(("SWITCHYARD_REGISTRY__REGISTRATION__REQUIRE_SIGNED", "true"));
        let error = Config::load_from(None, env(&vars)).unwrap_err().to_string();
        assert!(error.contains("registration.require_signed"), "{error}");
        vars.push(("SWITCHYARD_REGISTRY__REGISTRATION__PUBLISHERS", &one));
        let config = Config::load_from(None, env(&vars)).unwrap();
        assert_eq!(config.registration.publisher_keys().unwrap().len(), 1);
    }

    #[test]
    fn http_limits_come_from_the_http_section() {
        let mut vars = required();
        vars.push(("SWITCHYARD_REGISTRY__HTTP__HEADER_READ_TIMEOUT_MS", "1000"));
        vars.push(("SWITCHYARD_REGISTRY__HTTP__MAX_CONNECTIONS", "8"));
        let limits = Config::load_from(None, env(&vars)).unwrap().http.limits();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(1));
        assert_eq!(limits.max_connections, 8);
        assert_eq!(limits.max_requests_per_connection, 1000);
        assert_eq!(limits.drain_timeout, Duration::from_secs(30));
        assert_eq!(limits.request_timeout, None);
        assert_eq!(
            (limits.linger_timeout, limits.linger_max_bytes),
            (Duration::from_secs(5), 4 * 1024 * 1024)
        );
        let mut vars = required();
        vars.push(("SWITCHYARD_REGISTRY__HTTP__MAX_CONNECTIONS", "0"));
        let error = Config::load_from(None, env(&vars)).unwrap_err().to_string();
        assert!(error.contains("http.max_connections"), "{error}");
    }

    #[test]
    fn environment_overrides_and_lists() {
        let mut vars = required();
        vars.push(("SWITCHYARD_REGISTRY__HTTP__LISTEN", "127.0.0.1:18080"));
        vars.push((
            "SWITCHYARD_REGISTRY__GATEWAY__URL_PATTERNS",
            "http://127.0.0.1:9000,https://*.plugins.example",
        ));
        vars.push(("SWITCHYARD_REGISTRY__KAFKA__OPTIONS__SECURITY_PROTOCOL", "SSL"));
        let config = Config::load_from(None, env(&vars)).unwrap();
        assert_eq!(config.http.listen.port(), 18080);
        assert_eq!(
            config.gateway.url_patterns,
            ["http://127.0.0.1:9000", "https://*.plugins.example"]
        );
        assert_eq!(config.kafka.options["security.protocol"], "SSL");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let mut vars = required();
        vars.push(("SWITCHYARD_REGISTRY__HTTP__LISTN", "x"));
        let error = Config::load_from(None, env(&vars)).unwrap_err().to_string();
        assert!(error.contains("listn"), "{error}");
        let mut vars = required();
        vars.push(("SWITCHYARD_REGISTRY__TOPICS__PLUGIN_EVENTS_TEMPLATE", "plugins"));
        let error = Config::load_from(None, env(&vars)).unwrap_err().to_string();
        assert!(error.contains("plugin_events_template"), "{error}");
    }

    #[test]
    fn the_plugin_group_template_is_the_workers_default_and_names_the_plugin() {
        let config = Config::load_from(None, env(&required())).unwrap();
        assert_eq!(config.topics.plugin_group_template, "switchyard-plugin-{plugin}");
        let mut vars = required();
        vars.push(("SWITCHYARD_REGISTRY__TOPICS__PLUGIN_GROUP_TEMPLATE", "workers"));
        let error = Config::load_from(None, env(&vars)).unwrap_err().to_string();
        assert!(error.contains("plugin_group_template"), "{error}");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let config = Config::load_from(None, env(&required())).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("a-development-secret"), "{debug}");
        assert!(!debug.contains(KEY), "{debug}");
        assert!(debug.contains("Secret(set)"));
    }
}
