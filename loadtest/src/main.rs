//! `switchyard-loadtest`: parses flags and runs a subcommand of the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
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
