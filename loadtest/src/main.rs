//! `switchyard-loadtest`: parses flags and runs a subcommand of the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use switchyard_loadtest::chaos::{self, ChaosOptions};
use switchyard_loadtest::control_plane::RegistryAccess;
use switchyard_loadtest::demo::{self, DemoOptions};
use switchyard_loadtest::plugins::{PluginWorker, parse_workers};
use switchyard_loadtest::topics;

/// Realistic traffic for Switchyard, and a check of what the router made of it.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the topics of a local Switchyard (default names) if they are missing. Run it before the
    /// router starts: the router refuses to start without core.events and core.events.dlq.
    SetupTopics {
        #[command(flatten)]
        kafka: Kafka,
    },
    /// Register the sample plugins, enable them for demo teams, send realistic events through a running
    /// router and check that every expected record arrived exactly once. Exits 1 if not.
    Demo(Demo),
    /// Seed events, route them with two router processes while killing them (SIGKILL), restarting the
    /// broker and forcing rebalances, then check every plugin topic: each expected record exactly once
    /// (at-least-once mode: at least once), in per-team order, DLQ empty. Exits 1 if not.
    Chaos(Chaos),
}

#[derive(Debug, Args)]
struct Chaos {
    #[command(flatten)]
    kafka: Kafka,
    /// The router binary (default: switchyard-router next to this program).
    #[arg(long, value_name = "FILE")]
    router_bin: Option<PathBuf>,
    /// Events to seed.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Teams that send them.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(1..=10000))]
    teams: u16,
    /// Partitions of the run's core topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// SIGKILLs of a router replica, each followed by its restart.
    #[arg(long, default_value_t = 3)]
    kills: u32,
    /// Broker restarts; each runs --broker-restart-command.
    #[arg(long, default_value_t = 0)]
    broker_restarts: u32,
    /// A shell command that restarts the broker and returns once it serves again, e.g.
    /// "scripts/kafka restart".
    #[arg(long, value_name = "COMMAND")]
    broker_restart_command: Option<String>,
    /// Do not add and remove a third replica.
    #[arg(long)]
    no_rebalance: bool,
    /// The router's delivery mode: exactly_once or at_least_once.
    #[arg(long, default_value = "exactly_once", value_parser = parse_mode)]
    mode: chaos::Mode,
    /// Seed of the traffic and of the fault schedule.
    #[arg(long, default_value_t = 11)]
    seed: u64,
    /// The longest the routers may go without progress, and the limit of every wait.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Where the router logs go (a folder per run inside).
    #[arg(long, default_value = "target/chaos")]
    work_dir: PathBuf,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn parse_mode(text: &str) -> Result<chaos::Mode, String> {
    match text {
        "exactly_once" => Ok(chaos::Mode::ExactlyOnce),
        "at_least_once" => Ok(chaos::Mode::AtLeastOnce),
        other => Err(format!("{other:?} is not exactly_once or at_least_once")),
    }
}

#[derive(Debug, Args)]
struct Kafka {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092", env = "SWITCHYARD_LOADTEST_BOOTSTRAP")]
    bootstrap: String,
}

#[derive(Debug, Args)]
struct Demo {
    #[command(flatten)]
    kafka: Kafka,
    /// The router's admin server (host:port), for /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:9100")]
    router_admin: String,
    /// Events to send.
    #[arg(long, default_value_t = 5000)]
    events: u64,
    /// Teams that send them.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1000))]
    teams: u16,
    /// Seed of the generator: the same seed gives the same teams, forms and events.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Events per second; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// The limit of each wait (router readiness, control records applied, every outcome, reading back),
    /// e.g. 120s or 2m.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Register the plugins and enable them through the registry at this URL (e.g.
    /// http://127.0.0.1:8080) instead of writing the control topics.
    #[arg(long, value_name = "URL", requires = "registry_token")]
    registry: Option<String>,
    /// Plugin workers to wait for and report on: `plugin=host:port` of their admin servers, comma-separated.
    #[arg(long, value_name = "LIST", default_value = "", value_parser = parse_workers)]
    plugin_workers: std::vec::Vec<PluginWorker>,
    /// The plugins' result topic.
    #[arg(long, default_value = "core.plugin-results")]
    results_topic: String,
    /// An admin token for the registry (`switchyardctl token mint --role admin`).
    #[arg(long, env = "SWITCHYARD_TOKEN", hide_env_values = true)]
    registry_token: Option<String>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("switchyard-loadtest: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::SetupTopics { kafka } => {
            for topic in topics::setup_topics(&kafka.bootstrap).context("setting up the topics")? {
                println!("{topic}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Chaos(args) => {
            let router_bin = match args.router_bin {
                Some(path) => path,
                None => std::env::current_exe()
                    .context("locating this program")?
                    .with_file_name("switchyard-router"),
            };
            let options = ChaosOptions {
                bootstrap: args.kafka.bootstrap,
                router_bin,
                events: args.events,
                teams: usize::from(args.teams),
                partitions: args.partitions,
                seed: args.seed,
                kills: args.kills,
                broker_restarts: args.broker_restarts,
                broker_restart_command: args.broker_restart_command,
                rebalance: !args.no_rebalance,
                mode: args.mode,
                timeout: args.timeout,
                work_dir: args.work_dir,
            };
            let report = chaos::run(&options).context("the chaos run could not finish")?;
            println!("{}", report.line());
            if let Some(path) = &args.json {
                let text = serde_json::to_string_pretty(&report).context("encoding the report")?;
                std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Demo(args) => {
            let options = DemoOptions {
                bootstrap: args.kafka.bootstrap,
                router_admin: args.router_admin,
                events: args.events,
                teams: usize::from(args.teams),
                seed: args.seed,
                rate: args.rate,
                timeout: args.timeout,
                plugin_workers: args.plugin_workers,
                results_topic: args.results_topic,
                registry: args.registry.map(|url| RegistryAccess {
                    url,
                    token: args.registry_token.unwrap_or_default(),
                }),
            };
            let summary = demo::run(&options).context("the demo could not finish")?;
            print!("{}", summary.render());
            if let Some(path) = &args.json {
                summary.write_json(path)?;
            }
            Ok(if summary.verdict.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
