//! Registries under test: in process (the axum router called without a socket, or served on loopback),
//! and the real `switchyard-registry` binary. Each test gets fresh topic names, so plugin topics created by
//! registration do not collide across tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchyard_service::config::Layered as _;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use switchyard_fixtures::process::Supervised;
use switchyard_registry::api::AppState;
use switchyard_registry::auth::{Claims, Role, mint_hs256};
use switchyard_registry::config::Config;
use tower::ServiceExt;

use crate::binaries::{free_address, supervise, terminate, workspace_binary};
use crate::broker::{bootstrap, unique};
use crate::in_process::InProcess;
use crate::routers::{Admin, init_logging};
use crate::wait::wait_for;

/// The HS256 secret of test registries.
pub const HS256_SECRET: &str = "switchyard-test-hs256-secret-at-least-32-chars";
/// The signing master key of test registries (base64 of 32 bytes).
pub const SIGNING_KEY: &str = "c3dpdGNoeWFyZC10ZXN0LXNpZ25pbmcta2V5LTMyYnl0ZXMhIQ==";

/// The master key that seals config secrets in test registries (`<id>:<base64 of 32 bytes>`).
pub const MASTER_KEY: &str = "test-2026-12:c3dpdGNoeWFyZC10ZXN0LW1hc3Rlci1rZXktMzJieXQ=";

/// A configs-topic record as its plugin's workers see it: the record's JSON with `config` opened (its
/// sealed fields put back) with the plugin's keys under [`MASTER_KEY`]. Panics when a secret field sits
/// in the record in clear.
pub fn opened_config_record(value: &[u8]) -> Value {
    let record: switchyard_schemas::configs::ConfigRecord =
        serde_json::from_slice(value).expect("a config record");
    let keys = switchyard_registry::secrets::ConfigSecrets::parse(&[MASTER_KEY])
        .expect("the test master key")
        .plugin_keys(&record.plugin_id);
    let mut json: Value = serde_json::from_slice(value).expect("JSON");
    json["config"] = record.opened(&keys).expect("the plugin's keys open its config");
    json
}

/// A token for `role`, valid for ten minutes.
pub fn token(role: Role, team: Option<&str>, plugin: Option<&str>) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    let claims = Claims {
        role,
        team: team.map(String::from),
        plugin: plugin.map(String::from),
        exp,
        jti: None,
        purpose: None,
    };
    mint_hs256(HS256_SECRET.as_bytes(), &claims).expect("mint")
}

/// An admin token.
pub fn admin() -> String {
    token(Role::Admin, None, None)
}

/// A team token.
pub fn team(team_id: &str) -> String {
    token(Role::Team, Some(team_id), None)
}

/// A plugin token.
pub fn plugin(plugin_id: &str) -> String {
    token(Role::Plugin, None, Some(plugin_id))
}

/// Fresh topic names for one registry deployment (and a router sharing them).
#[derive(Debug, Clone)]
pub struct RegistryTopics {
    /// Manifests.
    pub plugins: String,
    /// Enablements.
    pub enablements: String,
    /// Configs.
    pub configs: String,
    /// Instances.
    pub instances: String,
    /// Backfill requests.
    pub backfills: String,
    /// Backfill progress (the router's).
    pub backfill_progress: String,
    /// Spent console sign-in links.
    pub console_sign_ins: String,
    /// Plugins' registration history.
    pub plugin_registrations: String,
    /// The replays of plugins' dead letters.
    pub dead_letter_replays: String,
    /// The core events a backfill reads (the registry only checks their retention).
    pub core_events: String,
    /// `<prefix>.plugin.{plugin}.events`.
    pub events_template: String,
    /// `<prefix>.plugin.{plugin}.dlq`.
    pub dead_letter_template: String,
}

impl RegistryTopics {
    /// Names under a unique prefix.
    pub fn unique() -> Self {
        let prefix = unique("r");
        Self {
            plugins: format!("{prefix}.plugins"),
            enablements: format!("{prefix}.enablements"),
            configs: format!("{prefix}.configs"),
            instances: format!("{prefix}.instances"),
            backfills: format!("{prefix}.backfills"),
            // The names `routers::Topics::of_registry` gives a router sharing these topics.
            backfill_progress: format!("{prefix}.plugins.backfill-progress"),
            console_sign_ins: format!("{prefix}.console-sign-ins"),
            plugin_registrations: format!("{prefix}.plugin-registrations"),
            dead_letter_replays: format!("{prefix}.dead-letter-replays"),
            core_events: format!("{prefix}.plugins.core.events"),
            events_template: format!("{prefix}.plugin.{{plugin}}.events"),
            dead_letter_template: format!("{prefix}.plugin.{{plugin}}.dlq"),
        }
    }

    /// The events topic of `plugin`.
    pub fn events(&self, plugin: &str) -> String {
        self.events_template.replace("{plugin}", plugin)
    }

    /// The dead-letter topic of `plugin`.
    pub fn dead_letter(&self, plugin: &str) -> String {
        self.dead_letter_template.replace("{plugin}", plugin)
    }

    /// The registry's environment: these topics, the test keys, loopback allowed for the gateway, plus
    /// `overrides` (`("GATEWAY__TIMEOUT_MS", "500")`, without the prefix).
    pub fn env(&self, listen: SocketAddr, overrides: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: &str| {
            env.insert(format!("SWITCHYARD_REGISTRY__{k}"), v.to_owned());
        };
        set("KAFKA__BOOTSTRAP_SERVERS", &bootstrap());
        set("TOPICS__PLUGINS", &self.plugins);
        set("TOPICS__ENABLEMENTS", &self.enablements);
        set("TOPICS__CONFIGS", &self.configs);
        set("TOPICS__INSTANCES", &self.instances);
        set("TOPICS__BACKFILLS", &self.backfills);
        set("TOPICS__BACKFILL_PROGRESS", &self.backfill_progress);
        set("TOPICS__CONSOLE_SIGN_INS", &self.console_sign_ins);
        set("TOPICS__PLUGIN_REGISTRATIONS", &self.plugin_registrations);
        set("TOPICS__DEAD_LETTER_REPLAYS", &self.dead_letter_replays);
        set("TOPICS__CORE_EVENTS", &self.core_events);
        set("TOPICS__PLUGIN_EVENTS_TEMPLATE", &self.events_template);
        set("TOPICS__PLUGIN_DEAD_LETTER_TEMPLATE", &self.dead_letter_template);
        set("STORE__WRITE_TIMEOUT_MS", "15000");
        set("PROVISIONING__PARTITIONS", "3");
        set("HTTP__LISTEN", &listen.to_string());
        set("AUTH__HS256_SECRET", HS256_SECRET);
        set("GATEWAY__SIGNING_KEY", SIGNING_KEY);
        set("SECRETS__MASTER_KEYS", MASTER_KEY);
        set("GATEWAY__URL_PATTERNS", "http://127.0.0.1");
        set("GATEWAY__ALLOWED_NETWORKS", "127.0.0.1/32");
        for (key, value) in overrides {
            set(key, value);
        }
        env
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when empty, a string when not JSON).
    pub json: Value,
}

/// A registry in this process, called through its axum router without a socket.
pub struct InProcessRegistry {
    /// Its routes.
    pub app: axum::Router,
    /// Its state (store, topics).
    pub state: AppState,
    /// Its topics.
    pub topics: RegistryTopics,
}

impl InProcessRegistry {
    /// Builds a registry on fresh topics and waits until its store is caught up.
    pub async fn start(overrides: &[(&str, &str)]) -> Self {
        Self::start_on(RegistryTopics::unique(), overrides).await
    }

    /// As [`InProcessRegistry::start`], on given topics (a second replica).
    pub async fn start_on(topics: RegistryTopics, overrides: &[(&str, &str)]) -> Self {
        init_logging();
        let env = topics.env(free_address(), overrides);
        let config = Config::load_from(None, Some(env)).expect("test configuration");
        let registry = switchyard_registry::app::build(&config).await.expect("build");
        registry.state.store.wait_caught_up().await;
        Self {
            app: registry.router,
            state: registry.state,
            topics,
        }
    }

    /// Calls `method path` with an optional bearer token and JSON body.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
        let body = body.map(|b| b.to_string().into_bytes());
        self.call_raw(method, path, token, &[], body).await
    }

    /// Calls with extra headers and a raw body.
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let has_content_type = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if !has_content_type {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = body.map_or_else(Body::empty, Body::from);
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer {
            status,
            headers,
            json,
        }
    }
}

impl Drop for InProcessRegistry {
    fn drop(&mut self) {
        self.state.store.close();
    }
}

/// A registry served on loopback in this process (for clients that need a socket).
pub struct ServedRegistry {
    /// Its base URL.
    pub url: String,
    /// Its `/readyz` and `/metrics`.
    pub admin: Admin,
    service: InProcess<String>,
}

impl ServedRegistry {
    /// Runs `switchyard_registry::app::run` on a free port and waits until it is ready.
    pub async fn start(topics: &RegistryTopics, overrides: &[(&str, &str)]) -> Self {
        init_logging();
        let address = free_address();
        let config =
            Config::load_from(None, Some(topics.env(address, overrides))).expect("test configuration");
        let service = InProcess::spawn(|shutdown| async move {
            switchyard_registry::app::run(config, shutdown)
                .await
                .map_err(|e| e.to_string())
        });
        let admin = Admin { address };
        admin.wait_ready().await;
        Self {
            url: format!("http://{address}"),
            admin,
            service,
        }
    }

    /// Stops it as SIGTERM would.
    pub async fn stop(self) {
        self.service.stop().await.expect("registry run");
    }
}

/// The `switchyard-registry` binary.
pub fn registry_binary() -> PathBuf {
    workspace_binary("switchyard-registry", "SWITCHYARD_REGISTRY_BIN")
}

/// The `switchyardctl` binary.
pub fn ctl_binary() -> PathBuf {
    workspace_binary("switchyardctl", "SWITCHYARDCTL_BIN")
}

/// The real registry binary, configured through its environment, logging to a file; killed when dropped.
pub struct RegistryProcess {
    /// Its base URL.
    pub url: String,
    /// Its `/readyz` and `/metrics`.
    pub admin: Admin,
    process: Supervised,
}

impl RegistryProcess {
    /// Starts the binary with `env` (from [`RegistryTopics::env`]) listening on `address`, appending its
    /// output to `log`.
    pub fn start(env: &BTreeMap<String, String>, address: SocketAddr, log: &Path) -> Self {
        Self::start_binary(&registry_binary(), env, address, log)
    }

    /// As [`RegistryProcess::start`], with another executable (a wrapper that limits the registry, say).
    pub fn start_binary(
        binary: &Path,
        env: &BTreeMap<String, String>,
        address: SocketAddr,
        log: &Path,
    ) -> Self {
        Self {
            url: format!("http://{address}"),
            admin: Admin { address },
            process: supervise(Command::new(binary).envs(env), log),
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        wait_for("the registry to be ready", Duration::from_secs(60), || async {
            self.admin.ready().await.then_some(())
        })
        .await;
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        terminate(&mut self.process)
    }
}

/// An HTTP call to a served registry: (status, JSON body).
pub async fn http(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut request = client.request(method.parse().expect("method"), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("registry answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}
