//! Routers under test: in process through the library, or the real binary as an operator runs it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;
use switchyard_service::config::Layered as _;

use switchyard_fixtures::metrics;
use switchyard_fixtures::process::Supervised;
use switchyard_router::RouterError;
use switchyard_router::config::Config;

use crate::binaries::{free_address, supervise, terminate, workspace_binary};
use crate::broker::{bootstrap, create_topics, unique};
use crate::in_process::InProcess;
use crate::wait::wait_for;

/// A fresh set of topic names for one test.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Input.
    pub core: String,
    /// Compacted manifests.
    pub plugins: String,
    /// Compacted enablements.
    pub enablements: String,
    /// Dead letters.
    pub dead_letter: String,
    /// Plugin topic template.
    pub template: String,
    /// Compacted backfill progress, written by the router.
    pub backfill_progress: String,
}

impl Topics {
    /// Names under a unique prefix.
    pub fn unique() -> Self {
        let prefix = unique("t");
        Self {
            core: format!("{prefix}.core.events"),
            plugins: format!("{prefix}.plugins"),
            enablements: format!("{prefix}.enablements"),
            dead_letter: format!("{prefix}.core.events.dlq"),
            template: format!("{prefix}.plugin.{{plugin}}.events"),
            backfill_progress: format!("{prefix}.backfill-progress"),
        }
    }

    /// A router's topics on a registry's control topics (and input and dead-letter topics named after
    /// them).
    pub fn of_registry(registry: &crate::registries::RegistryTopics) -> Self {
        Self {
            core: format!("{}.core.events", registry.plugins),
            plugins: registry.plugins.clone(),
            enablements: registry.enablements.clone(),
            dead_letter: format!("{}.core.events.dlq", registry.plugins),
            template: registry.events_template.clone(),
            backfill_progress: format!("{}.backfill-progress", registry.plugins),
        }
    }

    /// The topic of `plugin`.
    pub fn plugin(&self, plugin: &str) -> String {
        self.template.replace("{plugin}", plugin)
    }

    /// Creates the input (with `partitions`), dead-letter and control topics, and the topics of `plugins`.
    pub async fn create(&self, partitions: i32, plugins: &[&str]) {
        let mut topics: Vec<(String, i32, bool)> = vec![
            (self.core.clone(), partitions, false),
            (self.dead_letter.clone(), 2, false),
            (self.plugins.clone(), 1, true),
            (self.enablements.clone(), 2, true),
            (self.backfill_progress.clone(), 3, true),
        ];
        topics.extend(plugins.iter().map(|p| (self.plugin(p), 3, false)));
        let refs: Vec<(&str, i32, bool)> = topics.iter().map(|(n, p, c)| (n.as_str(), *p, *c)).collect();
        create_topics(&refs).await;
    }

    /// The router's environment for these topics.
    pub fn env(&self, group: &str, transactional_id: &str, admin: SocketAddr) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: &str| {
            env.insert(format!("SWITCHYARD_ROUTER__{k}"), v.to_owned());
        };
        set("KAFKA__BOOTSTRAP_SERVERS", &bootstrap());
        set("TOPICS__CORE_EVENTS", &self.core);
        set("TOPICS__PLUGINS", &self.plugins);
        set("TOPICS__ENABLEMENTS", &self.enablements);
        set("TOPICS__DEAD_LETTER", &self.dead_letter);
        set("TOPICS__PLUGIN_EVENTS_TEMPLATE", &self.template);
        set("TOPICS__BACKFILL_PROGRESS", &self.backfill_progress);
        set("DELIVERY__GROUP_ID", group);
        set("DELIVERY__TRANSACTIONAL_ID", transactional_id);
        set("ADMIN__LISTEN", &admin.to_string());
        env
    }
}

/// With `SWITCHYARD_TEST_LOG` set (a `tracing` filter such as `info`), in-process routers log to stderr;
/// run the tests with `--nocapture` to see it.
pub fn init_logging() {
    if let Ok(filter) = std::env::var("SWITCHYARD_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// The admin endpoint of a router, in or out of process.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Its address.
    pub address: SocketAddr,
}

impl Admin {
    /// GET a path; `None` if the server does not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok()?;
        let response = client
            .get(format!("http://{}{path}", self.address))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// Whether `/readyz` answers 200.
    pub async fn ready(&self) -> bool {
        matches!(self.get("/readyz").await, Some((200, _)))
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        wait_for("the router to be ready", Duration::from_secs(60), || async {
            self.ready().await.then_some(())
        })
        .await;
    }

    /// The value of one sample of `/metrics`, e.g. `switchyard_router_events_total{outcome="routed"}`;
    /// 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let Some((_, text)) = self.get("/metrics").await else {
            return 0.0;
        };
        metrics::sample(&text, series).unwrap_or(0.0)
    }

    /// Durable outcomes so far: (routed, unrouted, dead_lettered).
    pub async fn outcomes(&self) -> (u64, u64, u64) {
        let get = |o: &'static str| async move {
            self.metric(&format!("switchyard_router_events_total{{outcome=\"{o}\"}}"))
                .await as u64
        };
        (
            get("routed").await,
            get("unrouted").await,
            get("dead_lettered").await,
        )
    }

    /// Waits until `n` input events have a durable outcome.
    pub async fn wait_outcomes(&self, n: u64) -> (u64, u64, u64) {
        wait_for(
            &format!("{n} event outcomes"),
            Duration::from_secs(90),
            || async {
                let outcomes = self.outcomes().await;
                (outcomes.0 + outcomes.1 + outcomes.2 >= n).then_some(outcomes)
            },
        )
        .await
    }
}

/// A router running in this process through `switchyard_router::app::run`.
pub struct InProcessRouter {
    /// Its admin endpoint.
    pub admin: Admin,
    /// Its consumer group.
    pub group: String,
    service: InProcess<RouterError>,
}

impl InProcessRouter {
    /// Starts a router on `topics` with a fresh group; `overrides` are extra `SWITCHYARD_ROUTER__...`
    /// variables without the prefix, e.g. `("DELIVERY__MODE", "at_least_once")`.
    pub fn start(topics: &Topics, overrides: &[(&str, &str)]) -> Self {
        Self::start_in_group(topics, &unique("router"), overrides)
    }

    /// Starts a router in an existing group (a second replica).
    pub fn start_in_group(topics: &Topics, group: &str, overrides: &[(&str, &str)]) -> Self {
        init_logging();
        let address = free_address();
        let mut env = topics.env(group, &unique("txn"), address);
        for (key, value) in overrides {
            env.insert(format!("SWITCHYARD_ROUTER__{key}"), (*value).to_owned());
        }
        let config = Config::load_from(None, Some(env)).expect("test configuration");
        Self {
            admin: Admin { address },
            group: group.to_owned(),
            service: InProcess::spawn(|shutdown| switchyard_router::app::run(config, shutdown)),
        }
    }

    /// Stops it as SIGTERM would and returns how it ended.
    pub async fn stop(self) -> Result<(), RouterError> {
        self.service.stop().await
    }
}

/// The `switchyard-router` binary, built by `cargo build` before the tests run (`make test` does).
pub fn router_binary() -> PathBuf {
    workspace_binary("switchyard-router", "SWITCHYARD_ROUTER_BIN")
}

/// The real binary, started with a config file the way an operator would; killed when dropped.
pub struct RouterProcess {
    /// Its admin endpoint.
    pub admin: Admin,
    process: Supervised,
}

impl RouterProcess {
    /// Starts the binary with `config` written to a file and `env` set.
    pub fn start(config_toml: &str, env: &BTreeMap<String, String>, admin: SocketAddr, log: &Path) -> Self {
        let dir = std::env::temp_dir().join(unique("switchyard-router"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("router.toml");
        std::fs::write(&file, config_toml).expect("config file");
        let process = supervise(
            Command::new(router_binary()).arg("--config").arg(&file).envs(env),
            log,
        );
        Self {
            admin: Admin { address: admin },
            process,
        }
    }

    /// SIGKILL: no commit, no flush, no goodbye.
    pub fn kill(mut self) {
        self.process.kill().unwrap_or_else(|error| panic!("{error}"));
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        terminate(&mut self.process)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.process.running()
    }
}
