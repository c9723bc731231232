//! Plugin workers under test: fresh topics, a scripted in-process plugin that records every call, and a
//! worker running `switchyard_plugin_runtime::app::run` in this process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_service::config::Layered as _;

use serde_json::Value;
use switchyard_fixtures::process::Supervised;
use switchyard_plugin_runtime::plugin::{Context, Event, Outcome, Plugin, PluginError};
use switchyard_plugin_runtime::settings::Settings;
use switchyard_schemas::control::{DeliveryHints, Ordering, PluginManifest};

use crate::binaries::{free_address, supervise, workspace_binary};
use crate::broker::{bootstrap, create_topics, unique};
use crate::in_process::InProcess;
use crate::routers::{Admin, init_logging};

/// Fresh topics of one plugin deployment.
#[derive(Debug, Clone)]
pub struct WorkerTopics {
    /// The plugin id.
    pub plugin: String,
    /// `plugin.<id>.events`.
    pub events: String,
    /// `plugin.<id>.dlq`.
    pub dead_letter: String,
    /// Results.
    pub results: String,
    /// Configs (compacted).
    pub configs: String,
    /// The events topic template (`{plugin}` in place of the id).
    pub events_template: String,
    /// The dead-letter topic template.
    pub dead_letter_template: String,
}

impl WorkerTopics {
    /// Creates the topics (`partitions` for the events topic).
    pub async fn create(plugin: &str, partitions: i32) -> Self {
        let prefix = unique("w");
        let topics = Self::named(
            plugin,
            &format!("{prefix}.plugin.{{plugin}}.events"),
            &format!("{prefix}.plugin.{{plugin}}.dlq"),
            &format!("{prefix}.configs"),
            &format!("{prefix}.core.plugin-results"),
        );
        create_topics(&[
            (&topics.events, partitions, false),
            (&topics.dead_letter, 1, false),
            (&topics.results, 1, false),
            (&topics.configs, 1, true),
        ])
        .await;
        topics
    }

    /// The topics of a registry deployment (the registry creates the plugin's and the configs topics);
    /// creates the results topic the plugins share, unless it exists.
    pub async fn of_registry(plugin: &str, registry: &crate::registries::RegistryTopics) -> Self {
        let topics = Self::named(
            plugin,
            &registry.events_template,
            &registry.dead_letter_template,
            &registry.configs,
            &format!("{}.core.plugin-results", registry.plugins),
        );
        if crate::broker::topic_partitions(&topics.results).is_none() {
            create_topics(&[(&topics.results, 1, false)]).await;
        }
        topics
    }

    /// The topics of a plugin behind a router on `router` (its events topic under the router's template),
    /// with fresh dead-letter, results and configs topics.
    pub async fn of_router(plugin: &str, router: &crate::routers::Topics) -> Self {
        let prefix = unique("w");
        let topics = Self::named(
            plugin,
            &router.template,
            &format!("{prefix}.plugin.{{plugin}}.dlq"),
            &format!("{prefix}.configs"),
            &format!("{prefix}.core.plugin-results"),
        );
        create_topics(&[
            (&topics.dead_letter, 1, false),
            (&topics.results, 1, false),
            (&topics.configs, 1, true),
        ])
        .await;
        topics
    }

    fn named(plugin: &str, events: &str, dead_letter: &str, configs: &str, results: &str) -> Self {
        Self {
            plugin: plugin.to_owned(),
            events: events.replace("{plugin}", plugin),
            dead_letter: dead_letter.replace("{plugin}", plugin),
            results: results.to_owned(),
            configs: configs.to_owned(),
            events_template: events.to_owned(),
            dead_letter_template: dead_letter.to_owned(),
        }
    }

    /// A worker's settings for these topics; `overrides` are `SWITCHYARD_PLUGIN__` variables without the
    /// prefix, e.g. `("RETRY__MAX_ATTEMPTS", "3")`.
    pub fn settings(&self, overrides: &[(&str, &str)]) -> Settings {
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: &str| {
            env.insert(format!("SWITCHYARD_PLUGIN__{k}"), v.to_owned());
        };
        set("KAFKA__BOOTSTRAP_SERVERS", &bootstrap());
        set("TOPICS__EVENTS_TEMPLATE", &self.events_template);
        set("TOPICS__DEAD_LETTER_TEMPLATE", &self.dead_letter_template);
        set("TOPICS__RESULTS", &self.results);
        set("TOPICS__CONFIGS", &self.configs);
        set("DELIVERY__GROUP_ID", &unique("worker"));
        set("DELIVERY__COMMIT_INTERVAL_MS", "200");
        set("RETRY__INITIAL_BACKOFF_MS", "50");
        set("RETRY__MAX_BACKOFF_MS", "400");
        set("OUTAGE__PROBE_INITIAL_MS", "100");
        set("OUTAGE__PROBE_MAX_MS", "400");
        set("ADMIN__LISTEN", &free_address().to_string());
        for (key, value) in overrides {
            set(key, value);
        }
        Settings::load_from(None, Some(env)).expect("worker settings")
    }
}

/// One call the plugin received.
#[derive(Debug, Clone)]
pub struct Call {
    /// `ce_id`.
    pub id: String,
    /// Team.
    pub team: String,
    /// 1, 2, ...
    pub attempt: u32,
    /// The response id of its data (`response.id`), if any.
    pub response: Option<String>,
    /// When it started.
    pub started: Instant,
    /// When it ended.
    pub ended: Instant,
}

/// One `initialize`: team, config, when.
pub type Initialized = (String, Option<Value>, Instant);

/// What the scripted plugin does with a call: wait, then answer.
pub type Script = dyn Fn(&Context) -> (Duration, Outcome) + Send + Sync;

/// A plugin whose answers come from a script, recording every call and every `initialize`.
#[derive(Clone)]
pub struct ScriptedPlugin {
    id: String,
    ordering: Option<Ordering>,
    script: Arc<Script>,
    /// Every `execute` call, in the order they ended.
    pub calls: Arc<Mutex<Vec<Call>>>,
    /// Every `initialize`: (team, config, when).
    pub initialized: Arc<Mutex<Vec<Initialized>>>,
}

impl ScriptedPlugin {
    /// A plugin `id` answering with `script`.
    pub fn new(id: &str, script: impl Fn(&Context) -> (Duration, Outcome) + Send + Sync + 'static) -> Self {
        Self {
            id: id.to_owned(),
            ordering: None,
            script: Arc::new(script),
            calls: Arc::default(),
            initialized: Arc::default(),
        }
    }

    /// The same plugin with `ordering` in its manifest.
    pub fn with_ordering(mut self, ordering: Ordering) -> Self {
        self.ordering = Some(ordering);
        self
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    /// Event ids that ended with a call, per team, in order.
    pub fn ids_of(&self, team: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.team == team)
            .map(|c| c.id)
            .collect()
    }
}

impl Plugin for ScriptedPlugin {
    fn manifest(&self) -> PluginManifest {
        PluginManifest {
            id: self.id.clone(),
            name: format!("Scripted {}", self.id),
            description: "A test plugin.".to_owned(),
            version: semver_1(),
            url: None,
            events: vec!["response.submitted".to_owned(), "form.created".to_owned()],
            actions: Vec::new(),
            config_schema: None,
            contract: None,
            signature: None,
            delivery: DeliveryHints {
                ordering: self.ordering.clone(),
                ..Default::default()
            },
        }
    }

    async fn initialize(
        &self,
        team: &str,
        _installation: &str,
        config: Option<&Value>,
    ) -> Result<(), PluginError> {
        self.initialized.lock().expect("initialized").push((
            team.to_owned(),
            config.cloned(),
            Instant::now(),
        ));
        Ok(())
    }

    async fn execute(&self, ctx: &Context, _event: &Event) -> Outcome {
        let started = Instant::now();
        let (delay, outcome) = (self.script)(ctx);
        tokio::time::sleep(delay).await;
        self.calls.lock().expect("calls").push(Call {
            id: ctx.meta.id.clone(),
            team: ctx.meta.team_id.clone(),
            attempt: ctx.attempt,
            response: ctx
                .data
                .pointer("/response/id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            started,
            ended: Instant::now(),
        });
        outcome
    }
}

fn semver_1() -> semver::Version {
    semver::Version::new(1, 0, 0)
}

/// A worker running in this process.
pub struct InProcessWorker {
    /// Its admin server.
    pub admin: Admin,
    service: InProcess<String>,
}

impl InProcessWorker {
    /// Starts `plugin` with `settings`.
    pub fn start<P: Plugin>(plugin: P, settings: Settings) -> Self {
        init_logging();
        let admin = Admin {
            address: settings.admin.listen,
        };
        let service = InProcess::spawn(|shutdown| async move {
            switchyard_plugin_runtime::app::run(plugin, settings, shutdown)
                .await
                .map_err(|e| e.to_string())
        });
        Self { admin, service }
    }

    /// Stops it as SIGTERM would and returns how it ended.
    pub async fn stop(self) -> Result<(), String> {
        self.service.stop().await
    }
}

/// An HTTP plugin service for `plugin` (subscribed to `response.submitted`) with its `/metadata`; the test
/// adds `/execute` and its state, then serves it with [`serve_on_loopback`].
pub fn http_plugin<S: Clone + Send + Sync + 'static>(plugin: &str) -> axum::Router<S> {
    let manifest = serde_json::json!({"id": plugin, "name": plugin, "version": "1.0.0",
                                      "events": ["response.submitted"]});
    axum::Router::new().route(
        "/metadata",
        axum::routing::get(move || async move { axum::Json(manifest) }),
    )
}

/// Serves `app` on a free port of 127.0.0.1 in the background; returns its base URL.
pub async fn serve_on_loopback(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// The environment of a worker binary (the bridge, the seed plugins) on `topics`, in consumer group
/// `group`, its admin on `admin`.
pub fn worker_env(
    topics: &WorkerTopics,
    group: &str,
    admin: std::net::SocketAddr,
) -> BTreeMap<String, String> {
    [
        ("KAFKA__BOOTSTRAP_SERVERS", bootstrap()),
        ("TOPICS__EVENTS_TEMPLATE", topics.events_template.clone()),
        (
            "TOPICS__DEAD_LETTER_TEMPLATE",
            topics.dead_letter_template.clone(),
        ),
        ("TOPICS__RESULTS", topics.results.clone()),
        ("TOPICS__CONFIGS", topics.configs.clone()),
        ("DELIVERY__GROUP_ID", group.to_owned()),
        ("ADMIN__LISTEN", admin.to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (format!("SWITCHYARD_PLUGIN__{key}"), value))
    .collect()
}

/// A `switchyard-plugin-bridge` command for the plugin service at `url` on `topics`, in consumer group
/// `group`, its admin on `admin`. The caller adds settings of its own and starts it with [`start_bridge`].
pub fn bridge_command(
    topics: &WorkerTopics,
    url: &str,
    group: &str,
    admin: std::net::SocketAddr,
) -> std::process::Command {
    let mut command = std::process::Command::new(workspace_binary(
        "switchyard-plugin-bridge",
        "SWITCHYARD_PLUGIN_BRIDGE_BIN",
    ));
    command
        .args(["--url", url])
        .envs(worker_env(topics, group, admin))
        .env("SWITCHYARD_PLUGIN__HTTP__URL_PATTERNS", url)
        .env("SWITCHYARD_PLUGIN__HTTP__ALLOWED_NETWORKS", "127.0.0.1/32");
    command
}

/// Starts a bridge `command` (from [`bridge_command`]) under supervision, its output in a temporary file
/// named after `log_name`; it is killed when dropped.
pub fn start_bridge(command: &mut std::process::Command, log_name: &str) -> Supervised {
    let log = std::env::temp_dir().join(unique(log_name)).with_extension("log");
    supervise(command, &log)
}
