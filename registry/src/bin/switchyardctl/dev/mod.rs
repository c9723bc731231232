//! `switchyardctl dev`: everything a plugin needs on one machine, in one command, for the author's
//! inner loop (`docs/plugin-authors.md`, "Quick start").
//!
//! ```text
//!  broker (scripts/kafka) ─► topics ─► registry ─► router ─► your plugin (-- COMMAND) ─► bridge
//!       ─► the plugin registers ─► enabled for the sample team ─► sample events of every type
//!       ─► one line per call, from the worker's `switchyard::call` log ─► Ctrl-C stops it all, in reverse
//! ```
//!
//! Each service runs as a child in its own process group (a terminal's Ctrl-C reaches only this command,
//! which then stops them in order). Logs go to `--logs` (one file per process); the worker's log is read
//! line by line for the live view. The registry's signing key comes from the project's `.env`
//! (`SWITCHYARD_DEV_SIGNING_KEY`, written by `plugin new`), so the registry derives the same signing secret
//! the plugin already has; without one, a fresh key is made and the secret passed to the command.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rdkafka::producer::FutureProducer;
use serde_json::{Value, json};
use switchyard_registry::auth::{Claims, Role, mint_hs256};
use switchyard_registry::signing::MasterKey;
use switchyard_schemas::catalog::EventType;
use switchyard_service::kafka::{ClientStats, Clients, KafkaContext, KafkaSettings};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use crate::Failure;

mod events;
mod processes;

use events::{Sender, call_line};
use processes::{Running, Stack, spawn, wait_for};

#[derive(Debug, clap::Args)]
pub(crate) struct Dev {
    /// The plugin service's base URL, where the bridge calls it. Default `http://127.0.0.1:3000`.
    #[arg(long)]
    plugin_url: Option<String>,
    /// The command is an in-process worker (a Rust plugin on the runtime) rather than an HTTP service: no
    /// bridge. The default when the directory has a `Cargo.toml` and no `--plugin-url` is given.
    #[arg(long)]
    in_process: bool,
    /// A running broker to use instead of starting one with the project's `scripts/kafka`.
    #[arg(long)]
    bootstrap: Option<String>,
    /// The port of the broker this command starts.
    #[arg(long, default_value_t = 19392)]
    kafka_port: u16,
    /// The sample team the plugin is enabled for.
    #[arg(long, default_value = "dev-team")]
    team: String,
    /// Sample events per second after the first round; 0 = on demand (Enter sends a round of every type).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Stop after this many calls were answered (for scripts); 0 = until Ctrl-C.
    #[arg(long, default_value_t = 0)]
    exit_after: u64,
    /// Give up when the plugin has not answered a call within this long of starting.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    startup_timeout: Duration,
    /// The project's env file, for `SWITCHYARD_DEV_SIGNING_KEY`.
    #[arg(long, default_value = ".env")]
    env_file: PathBuf,
    /// Where the registry listens.
    #[arg(long, default_value = "127.0.0.1:18080")]
    registry_listen: SocketAddr,
    /// Where the router's admin server listens.
    #[arg(long, default_value = "127.0.0.1:18100")]
    router_admin: SocketAddr,
    /// Where the worker's (bridge's) admin server listens.
    #[arg(long, default_value = "127.0.0.1:18200")]
    worker_admin: SocketAddr,
    /// A publisher key the registry trusts (`registration.publishers`, the line `plugin keygen` prints);
    /// repeat for several. To try a signed release locally.
    #[arg(long = "publisher")]
    publishers: Vec<String>,
    /// The registry refuses unsigned manifests (`registration.require_signed`).
    #[arg(long)]
    require_signed: bool,
    /// The folder of the processes' logs. Default: `switchyard-dev` in the system's temporary folder.
    #[arg(long)]
    logs: Option<PathBuf>,
    /// The command that runs the plugin, after `--`; without one, a plugin already listening at
    /// `--plugin-url` is used.
    #[arg(last = true)]
    command: Vec<String>,
}

pub(crate) fn dev(args: &Dev) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let mut stack = Stack {
            running: Vec::new(),
            kafka: None,
        };
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| usage(format!("cannot watch SIGTERM: {e}")))?;
        let outcome = tokio::select! {
            outcome = run(args, &mut stack) => outcome,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\ndev: Ctrl-C: stopping everything this command started");
                Ok(())
            }
            _ = terminate.recv() => {
                eprintln!("dev: SIGTERM: stopping everything this command started");
                Ok(())
            }
        };
        stack.stop().await;
        outcome
    })
}

fn usage(text: impl Into<String>) -> Failure {
    Failure::Usage(text.into())
}

async fn run(args: &Dev, stack: &mut Stack) -> Result<(), Failure> {
    let bins = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .ok_or_else(|| usage("cannot find the folder of switchyardctl"))?;
    let binary = |name: &str| -> Result<PathBuf, Failure> {
        let path = bins.join(name);
        path.exists().then_some(path).ok_or_else(|| {
            usage(format!(
                "{name} is not next to switchyardctl in {}: build the workspace's binaries first \
                 (cargo build --bins, or make dev)",
                bins.display()
            ))
        })
    };
    let in_process = args.in_process || (args.plugin_url.is_none() && Path::new("Cargo.toml").exists());
    let plugin_url = args
        .plugin_url
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:3000".into())
        .trim_end_matches('/')
        .to_owned();
    if in_process && args.command.is_empty() {
        return Err(usage(
            "an in-process plugin needs its command after --, e.g. `switchyardctl dev -- cargo run`",
        ));
    }
    let logs = args
        .logs
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("switchyard-dev"));
    std::fs::create_dir_all(&logs).map_err(|e| usage(format!("cannot create {}: {e}", logs.display())))?;

    // Keys: the project's signing key if it has one (its plugin already holds the derived secret).
    let env_file = read_env_file(&args.env_file);
    let project_key = env_file
        .iter()
        .find(|(k, _)| k == "SWITCHYARD_DEV_SIGNING_KEY")
        .map(|(_, v)| v.clone());
    let signing_key = project_key.clone().unwrap_or_else(crate::random_key);
    let master = MasterKey::parse(&signing_key).map_err(|e| {
        usage(format!(
            "SWITCHYARD_DEV_SIGNING_KEY in {}: {e}",
            args.env_file.display()
        ))
    })?;
    let token_secret = crate::random_key();
    let manifest_id = std::fs::read("manifest.json")
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|m| m["id"].as_str().map(str::to_owned));

    // The broker.
    let bootstrap = match &args.bootstrap {
        Some(bootstrap) => bootstrap.clone(),
        None => {
            let script = crate::checkout()
                .map(|home| home.join("scripts/kafka"))
                .filter(|script| script.exists())
                .ok_or_else(|| {
                    usage(
                        "cannot find scripts/kafka: set SWITCHYARD_HOME to the Switchyard checkout, or pass \
                         --bootstrap",
                    )
                })?;
            let port = args.kafka_port.to_string();
            let running = Command::new(&script)
                .arg("status")
                .env("KAFKA_PORT", &port)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success());
            if !running {
                eprintln!("dev: starting a broker on 127.0.0.1:{port} (the first start downloads Kafka)");
                let started = Command::new(&script)
                    .arg("start")
                    .env("KAFKA_PORT", &port)
                    .stdout(Stdio::null())
                    .status()
                    .await
                    .map_err(|e| usage(format!("{}: {e}", script.display())))?;
                if !started.success() {
                    return Err(usage(format!("{} start failed", script.display())));
                }
                stack.kafka = Some((script, args.kafka_port));
            }
            format!("127.0.0.1:{port}")
        }
    };
    let setup = Command::new(binary("switchyard-loadtest")?)
        .args(["setup-topics", "--bootstrap", &bootstrap])
        .stdout(Stdio::null())
        .status()
        .await
        .map_err(|e| usage(format!("creating the topics: {e}")))?;
    if !setup.success() {
        return Err(usage("creating the topics failed"));
    }

    // The registry and the router.
    let registry = format!("http://{}", args.registry_listen);
    let url_patterns = format!("{plugin_url},http://{}", args.worker_admin);
    let registry_env = [
        ("SWITCHYARD_REGISTRY__KAFKA__BOOTSTRAP_SERVERS", bootstrap.clone()),
        (
            "SWITCHYARD_REGISTRY__HTTP__LISTEN",
            args.registry_listen.to_string(),
        ),
        ("SWITCHYARD_REGISTRY__AUTH__HS256_SECRET", token_secret.clone()),
        ("SWITCHYARD_REGISTRY__GATEWAY__SIGNING_KEY", signing_key.clone()),
        ("SWITCHYARD_REGISTRY__GATEWAY__URL_PATTERNS", url_patterns.clone()),
        (
            "SWITCHYARD_REGISTRY__GATEWAY__ALLOWED_NETWORKS",
            "127.0.0.1/32".into(),
        ),
        (
            "SWITCHYARD_REGISTRY__SECRETS__MASTER_KEYS",
            format!("dev:{}", crate::random_key()),
        ),
    ];
    let mut registry_command = Command::new(binary("switchyard-registry")?);
    registry_command.envs(registry_env).env(
        "SWITCHYARD_REGISTRY__REGISTRATION__REQUIRE_SIGNED",
        args.require_signed.to_string(),
    );
    if !args.publishers.is_empty() {
        registry_command.env(
            "SWITCHYARD_REGISTRY__REGISTRATION__PUBLISHERS",
            args.publishers.join(","),
        );
    }
    eprintln!("dev: starting the registry on {registry}");
    spawn(stack, "registry", &mut registry_command, &logs, false)?;
    eprintln!("dev: starting the router (admin http://{})", args.router_admin);
    let router_env = [
        ("SWITCHYARD_ROUTER__KAFKA__BOOTSTRAP_SERVERS", bootstrap.clone()),
        ("SWITCHYARD_ROUTER__ADMIN__LISTEN", args.router_admin.to_string()),
    ];
    spawn(
        stack,
        "router",
        Command::new(binary("switchyard-router")?).envs(router_env),
        &logs,
        false,
    )?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| usage(e.to_string()))?;
    wait_for(stack, "the registry", args.startup_timeout, || {
        let http = http.clone();
        let url = format!("{registry}/readyz");
        async move { http.get(url).send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await?;

    // The plugin, then the bridge in front of it.
    let token = |role: Role, plugin: Option<&str>| {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            + 12 * 3600;
        let claims = Claims {
            role,
            team: None,
            plugin: plugin.map(str::to_owned),
            exp,
            jti: None,
            purpose: None,
        };
        mint_hs256(token_secret.as_bytes(), &claims).map_err(|e| usage(e.to_string()))
    };
    let mut worker_log = None;
    if let Some(program) = args.command.first() {
        let mut command = Command::new(program);
        command.args(&args.command[1..]);
        let port = url::Url::parse(&plugin_url)
            .ok()
            .and_then(|u| u.port_or_known_default())
            .unwrap_or(3000);
        command.env("PORT", port.to_string());
        if let Some(id) = &manifest_id {
            command.env("SWITCHYARD_SIGNING_SECRET", master.plugin_secret(id));
        }
        if in_process {
            let id = manifest_id.as_deref().ok_or_else(|| {
                usage("an in-process plugin needs its manifest.json in this folder (for its id)")
            })?;
            command.envs(worker_env(
                &bootstrap,
                &registry,
                &token(Role::Plugin, Some(id))?,
                args.worker_admin,
            ));
            command.env(
                "SWITCHYARD_PLUGIN__ADMIN__PUBLIC_URL",
                format!("http://{}", args.worker_admin),
            );
            eprintln!(
                "dev: starting the plugin: {} (its worker log: {}/plugin.log)",
                args.command.join(" "),
                logs.display()
            );
            worker_log = spawn(stack, "plugin", &mut command, &logs, true)?;
        } else {
            eprintln!("dev: starting the plugin: {}", args.command.join(" "));
            command.stdin(Stdio::null()).process_group(0);
            let child = command.spawn().map_err(|e| usage(format!("{program}: {e}")))?;
            stack.running.push(Running {
                name: "plugin",
                child,
            });
        }
    }
    let id = if in_process {
        manifest_id.clone().unwrap_or_default()
    } else {
        eprintln!("dev: waiting for the plugin at {plugin_url}/metadata");
        wait_for(stack, "the plugin's /metadata", args.startup_timeout, || {
            let (http, url) = (http.clone(), format!("{plugin_url}/metadata"));
            async move { http.get(url).send().await.is_ok_and(|r| r.status().is_success()) }
        })
        .await?;
        let served: Value = http
            .get(format!("{plugin_url}/metadata"))
            .send()
            .await
            .map_err(|e| usage(e.to_string()))?
            .json()
            .await
            .map_err(|e| usage(format!("{plugin_url}/metadata is not JSON: {e}")))?;
        let id = served["id"].as_str().unwrap_or_default().to_owned();
        // The secret was handed over only to a command started here with the project's manifest.
        let handed_over = manifest_id.is_some() && !args.command.is_empty();
        if project_key.is_none() && !handed_over {
            eprintln!(
                "dev: no SWITCHYARD_DEV_SIGNING_KEY in {}: restart your plugin with \
                 SWITCHYARD_SIGNING_SECRET={} (or run dev in its folder, or pass --env-file)",
                args.env_file.display(),
                master.plugin_secret(&id)
            );
        }
        let mut bridge = Command::new(binary("switchyard-plugin-bridge")?);
        bridge
            .args(["--url", &plugin_url])
            .envs(worker_env(
                &bootstrap,
                &registry,
                &token(Role::Plugin, Some(&id))?,
                args.worker_admin,
            ))
            .env("SWITCHYARD_PLUGIN__HTTP__URL_PATTERNS", &plugin_url)
            .env("SWITCHYARD_PLUGIN__HTTP__ALLOWED_NETWORKS", "127.0.0.1/32");
        eprintln!("dev: starting the bridge for plugin {id}");
        worker_log = spawn(stack, "bridge", &mut bridge, &logs, true)?;
        id
    };

    // Registered (by its worker), then enabled for the sample team, then routed.
    let admin = token(Role::Admin, None)?;
    wait_for(stack, "the plugin's registration", args.startup_timeout, || {
        let (http, url, admin) = (http.clone(), format!("{registry}/v1/plugins/{id}"), admin.clone());
        async move {
            http.get(url)
                .bearer_auth(admin)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await?;
    let manifest: Value = http
        .get(format!("{registry}/v1/plugins/{id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .map_err(|e| usage(e.to_string()))?
        .json()
        .await
        .map_err(|e| usage(e.to_string()))?;
    let enabled = http
        .put(format!("{registry}/v1/teams/{}/plugins/{id}", args.team))
        .bearer_auth(&admin)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .map_err(|e| usage(e.to_string()))?;
    if !enabled.status().is_success() {
        return Err(usage(format!(
            "enabling {id} for {} answered {}",
            args.team,
            enabled.status()
        )));
    }
    wait_for(
        stack,
        "the router to see the enablement",
        args.startup_timeout,
        || {
            let (http, url) = (http.clone(), format!("http://{}/metrics", args.router_admin));
            async move {
                let Ok(answer) = http.get(url).send().await else {
                    return false;
                };
                let text = answer.text().await.unwrap_or_default();
                text.lines()
                    .find_map(|l| l.strip_prefix("switchyard_router_enablements "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .is_some_and(|n| n >= 1.0)
            }
        },
    )
    .await?;
    let types: Vec<EventType> = manifest["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|t| t.as_str().and_then(EventType::from_ce_type))
                .collect()
        })
        .unwrap_or_default();
    eprintln!(
        "dev: {id} is registered and enabled for team {}; registry {registry}, admin token:\n  {admin}\n\
         dev: logs in {}",
        args.team,
        logs.display()
    );

    // Sample events, and one line per call.
    let producer: FutureProducer<KafkaContext> =
        Clients::new(KafkaSettings::bootstrap(&bootstrap), ClientStats::unregistered())
            .with_statistics_interval(Duration::ZERO)
            .producer("switchyardctl-dev")
            .create()
            .map_err(|e| usage(e.to_string()))?;
    let Some((worker_log, mut log_file)) = worker_log else {
        return Err(usage("no worker was started"));
    };
    // The worker's log, copied into its file to the end (also while everything stops), its calls sent on.
    // Unbounded: one message per call of the events this command sent, a handful a second at most.
    let (calls, mut answered_calls) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(worker_log).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = writeln!(log_file, "{line}");
            if let Some(shown) = call_line(&line) {
                let _ = calls.send(shown);
            }
        }
    });
    let sender = Sender {
        producer,
        team: args.team.clone(),
        types,
    };
    let started = Instant::now();
    let mut sent = sender.round().await?;
    let interactive = std::io::stdin().is_terminal() && args.rate <= 0.0;
    if interactive {
        eprintln!("dev: sent one event of each type; press Enter to send another round, Ctrl-C to stop");
    }
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut ticker = tokio::time::interval(if args.rate > 0.0 {
        Duration::from_secs_f64(1.0 / args.rate)
    } else {
        Duration::from_secs(3600 * 24)
    });
    ticker.tick().await;
    // Until the first answer, a round every 5 s: the router may not have read the enablement yet when the
    // first one left (its gauge counts the enablements of earlier runs on this broker too).
    let mut again = tokio::time::interval(Duration::from_secs(5));
    again.tick().await;
    let give_up = tokio::time::Instant::now() + args.startup_timeout;
    let mut answered = 0_u64;
    loop {
        tokio::select! {
            shown = answered_calls.recv() => match shown {
                Some(shown) => {
                    println!("{shown}");
                    answered += 1;
                    if args.exit_after > 0 && answered >= args.exit_after {
                        eprintln!("dev: {answered} calls answered, {:.1} s after the first event", started.elapsed().as_secs_f64());
                        return Ok(());
                    }
                }
                None => return Err(usage(format!("the plugin's worker stopped; see {}", logs.display()))),
            },
            _ = ticker.tick(), if args.rate > 0.0 => sent += sender.one(sent).await?,
            _ = again.tick(), if answered == 0 => {
                eprintln!("dev: no call answered yet; sending another round");
                sent += sender.round().await?;
            }
            line = stdin.next_line(), if interactive => {
                if let Ok(Some(_)) = line { sent += sender.round().await? }
            }
            _ = tokio::time::sleep_until(give_up), if answered == 0 => {
                return Err(usage(format!(
                    "no call was answered within {}; see the logs in {}",
                    humantime::format_duration(args.startup_timeout),
                    logs.display()
                )));
            }
        }
    }
}

/// The settings of a worker (the bridge, or an in-process plugin) that this command starts.
fn worker_env(
    bootstrap: &str,
    registry: &str,
    token: &str,
    admin: SocketAddr,
) -> Vec<(&'static str, String)> {
    vec![
        (
            "SWITCHYARD_PLUGIN__KAFKA__BOOTSTRAP_SERVERS",
            bootstrap.to_owned(),
        ),
        ("SWITCHYARD_PLUGIN__REGISTRY__URL", registry.to_owned()),
        ("SWITCHYARD_PLUGIN__REGISTRY__TOKEN", token.to_owned()),
        ("SWITCHYARD_PLUGIN__ADMIN__LISTEN", admin.to_string()),
        ("SWITCHYARD_PLUGIN__LOG__FORMAT", "json".into()),
        (
            "SWITCHYARD_PLUGIN__LOG__LEVEL",
            "info,switchyard::call=debug".into(),
        ),
        // A handful of sample teams: one failing team is not an outage.
        ("SWITCHYARD_PLUGIN__OUTAGE__MIN_TEAMS", "1000".into()),
    ]
}

/// `KEY=VALUE` lines, `#` comments; a missing file is empty.
fn read_env_file(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_are_key_value_lines() {
        let dir = std::env::temp_dir().join(format!("switchyard-dev-env-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, "# comment\nSWITCHYARD_DEV_SIGNING_KEY=abc=\nOTHER=\"x\"\n").unwrap();
        assert_eq!(
            read_env_file(&dir),
            vec![
                ("SWITCHYARD_DEV_SIGNING_KEY".into(), "abc=".into()),
                ("OTHER".into(), "x".into())
            ]
        );
        std::fs::remove_file(&dir).unwrap();
        assert!(read_env_file(Path::new("/nonexistent/.env")).is_empty());
    }
}
