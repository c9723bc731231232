//! `switchyard-loadtest`: parses flags and runs a subcommand of the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use switchyard_service::config::Layered as _;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use switchyard_loadtest::capacity::{self, FindMaxFile, PlanInputs, SearchOptions, Sourced};
use switchyard_loadtest::chaos::{
    self, Brokers, ChaosOptions, EffectFaultCounts, EffectsOptions, FaultCounts,
};
use switchyard_loadtest::control_plane::RegistryAccess;
use switchyard_loadtest::demo::{self, DemoOptions};
use switchyard_loadtest::measure::Processes;
use switchyard_loadtest::metadata::Metadata;
use switchyard_loadtest::objective::{self, Objective};
use switchyard_loadtest::plugins::{PluginWorker, parse_workers};
use switchyard_loadtest::report;
use switchyard_loadtest::run::{RunReport, RunTopics, Session as Measuring, SessionOptions, Setup};
use switchyard_loadtest::scenario::Scenario;
use switchyard_loadtest::{LoadtestError, pipe, topics};

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
        /// Create a load scenario's topics (core, dead letters, control, one per plugin, sized by the
        /// scenario) instead of the demo's.
        #[arg(long)]
        scenario: Option<String>,
        /// With --scenario: the topic prefix the run will use.
        #[arg(long, requires = "scenario")]
        topic_prefix: Option<String>,
    },
    /// Register the sample plugins, enable them for demo teams, send realistic events through a running
    /// router and check that every expected record arrived exactly once. Exits 1 if not.
    Demo(Demo),
    /// Seed events, route them with two router processes while killing them (SIGKILL), restarting the
    /// broker and forcing rebalances, then check every plugin topic: each expected record exactly once
    /// (at-least-once mode: at least once), in per-team order, DLQ empty. Exits 1 if not.
    Chaos(Chaos),
    /// Send a scenario's traffic through a running system (at a rate or as fast as possible, for a
    /// duration or a count) and measure end-to-end latency, throughput, lag, CPU and memory. Writes
    /// result.json and report.html.
    Run(RunArgs),
    /// Raise the rate step by step to find the highest rate one system sustains with p99 within a bound
    /// and the lag not growing. Writes find-max.json and find-max.html.
    FindMax(FindMaxArgs),
    /// From a target peak and measured capacities, print the partitions, router replicas, plugin
    /// workers and broker throughput needed, with the assumptions. Writes plan.json (--out DIR).
    Plan(PlanArgs),
    /// The baseline: copy the core topic to the plugin topics with no lookup or validation, with the
    /// router's own client settings (SWITCHYARD_ROUTER__... and --config apply). Runs until SIGTERM.
    Pipe(PipeArgs),
}

#[derive(Debug, Args)]
struct Session {
    #[command(flatten)]
    kafka: Kafka,
    /// A built-in scenario (standard, standard-filtered, smoke) or a scenario file.
    #[arg(long, default_value = "standard")]
    scenario: String,
    /// Seed of teams, enablements and events.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Put every topic name behind this prefix (`<prefix>.core.events`, ...); default: the contract's
    /// names. The system under test must use the same names.
    #[arg(long)]
    topic_prefix: Option<String>,
    /// How plugins and enablements are put in place: topics (write the control topics), registry
    /// (through --registry), skip (already there).
    #[arg(long, default_value = "topics", value_parser = ["topics", "registry", "skip"])]
    setup: String,
    /// The registry, for --setup registry.
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
    /// An admin token for the registry.
    #[arg(long, env = "SWITCHYARD_TOKEN", hide_env_values = true)]
    registry_token: Option<String>,
    /// The consumer group whose lag on the core topic is sampled.
    #[arg(long, default_value = "switchyard-router")]
    group: String,
    /// The router's admin address, to wait for readiness and for the control records to apply;
    /// "none" for a system without one (the pipe, Kafka Streams).
    #[arg(long, default_value = "127.0.0.1:9100")]
    router_admin: String,
    /// Processes whose CPU and memory are sampled, by pid (repeatable); default: every process named
    /// --process-name.
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// The process name to look for when no --pid is given.
    #[arg(long, default_value = "switchyard-router")]
    process_name: String,
    /// Distinct events generated up front and replayed with fresh ids.
    #[arg(long, default_value_t = 20_000)]
    pool: usize,
    /// Limit of each wait (readiness, catching up after sending).
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Where result files go.
    #[arg(long, default_value = "target/loadtest")]
    out: PathBuf,
    /// No progress bar (a line every 5 s instead); the default when stderr is not a terminal.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    session: Session,
    /// Events per second; 0 sends as fast as the broker takes them.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to send.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Stop after this many events, if earlier than the duration.
    #[arg(long)]
    count: Option<u64>,
    /// Exit 1 if the sanity checks fail (no events, outputs missing, odd percentiles).
    #[arg(long)]
    check: bool,
    /// Send at a gentle rate (the target rate, at most 1000/s) this long first, unmeasured, so that the
    /// system under test has joined its group and warmed up; 0s to skip.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Before the run, this many historical events of another team, then a backfill of them that runs
    /// at the router's rate limit during the run (a router with backfills only).
    #[arg(long)]
    backfill_history: Option<u64>,
    /// The latency objective the verdict judges: p99 end-to-end at most this many ms. Without it the
    /// verdict judges completeness, the rate and the lag, and reports latency without judging it.
    #[arg(long, value_name = "MS", value_parser = parse_positive_ms)]
    p99_ms: Option<f64>,
}

#[derive(Debug, Args)]
struct FindMaxArgs {
    #[command(flatten)]
    session: Session,
    /// The first rate tried, events/s.
    #[arg(long, default_value_t = 2000)]
    start_rate: u64,
    /// Each passing step multiplies the rate by this.
    #[arg(long, default_value_t = 1.5)]
    factor: f64,
    /// Never try more than this.
    #[arg(long, default_value_t = 500_000)]
    max_rate: u64,
    /// Sending time of each step.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    step: Duration,
    /// The latency objective: p99 end-to-end at most this many ms.
    #[arg(long, default_value_t = 200.0)]
    p99_ms: f64,
    /// Bisection steps after the first failure.
    #[arg(long, default_value_t = 2)]
    refine: u32,
    /// An unmeasured warm-up at the start rate (at most 1000/s) first, so that the first step does not
    /// include the system joining its group; 0s to skip.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    warmup: Duration,
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// Target peak, core events per second.
    #[arg(long)]
    peak_rate: f64,
    /// Mean core event size, bytes.
    #[arg(long, default_value_t = 1200.0)]
    event_bytes: f64,
    /// Mean plugin topics per event.
    #[arg(long, default_value_t = 3.0)]
    fanout: f64,
    /// The latency objective of the plan, p99 ms (default: the objective of --from-find-max, else 200).
    /// A find-max capacity measured under a looser objective is refused (see --allow-unverified).
    #[arg(long)]
    p99_ms: Option<f64>,
    /// Events/s one router replica sustains within the objective, as you measured it.
    #[arg(long, conflicts_with = "from_find_max")]
    router_capacity: Option<f64>,
    /// Take the router capacity (max_sustained_rate) and the objective it was measured under from a
    /// find-max.json.
    #[arg(long, value_name = "FILE")]
    from_find_max: Option<PathBuf>,
    /// Plan even if --p99-ms is tighter than the objective find-max measured under; the plan then warns
    /// and marks every figure that rests on that capacity UNVERIFIED.
    #[arg(long)]
    allow_unverified: bool,
    /// Events/s one plugin worker replica handles.
    #[arg(long)]
    worker_capacity: f64,
    /// Plugins sharing the fan-out.
    #[arg(long, default_value_t = 20)]
    plugins: usize,
    /// Capacity kept free (0.3 = plan for 70% utilisation).
    #[arg(long, default_value_t = 0.3)]
    headroom: f64,
    /// Events/s one partition should carry at most (default 2000).
    #[arg(long)]
    partition_rate: Option<f64>,
    /// Where plan.json goes, as for `run` and `find-max`.
    #[arg(long, value_name = "DIR", default_value = "target/loadtest")]
    out: PathBuf,
    /// Deprecated: write plan.json to this file instead of `--out DIR`; kept for existing scripts.
    #[arg(long, value_name = "FILE", hide = true, conflicts_with = "out")]
    json: Option<PathBuf>,
}

/// A latency bound in ms: a positive, finite number.
fn parse_positive_ms(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ms) if ms > 0.0 && ms.is_finite() => Ok(ms),
        _ => Err(format!("{text:?} is not a positive number of milliseconds")),
    }
}

#[derive(Debug, Args)]
struct PipeArgs {
    /// A router configuration file (its client settings, mode, group and commit cadence are used).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers (overrides the configuration).
    #[arg(long)]
    bootstrap: Option<String>,
    /// exactly_once or at_least_once (overrides the configuration).
    #[arg(long, value_parser = parse_mode)]
    mode: Option<chaos::Mode>,
    /// The consumer group (default: switchyard-pipe).
    #[arg(long, default_value = "switchyard-pipe")]
    group: String,
    /// The scenario whose plugin topics receive the copies.
    #[arg(long, default_value = "standard")]
    scenario: String,
    /// The topic prefix of the run (as `run --topic-prefix`).
    #[arg(long)]
    topic_prefix: Option<String>,
    /// Stop after this long.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
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
    /// "scripts/kafka restart" (on a cluster of scripts/kafka, a rolling restart).
    #[arg(long, value_name = "COMMAND")]
    broker_restart_command: Option<String>,
    /// SIGKILLs of the node leading the most partitions of the run's core topic, each held down for
    /// --broker-down, then started again (needs --kafka-script).
    #[arg(long, default_value_t = 0)]
    leader_kills: u32,
    /// SIGKILLs of the node hosting router replica 0's transaction coordinator, held down the same way.
    #[arg(long, default_value_t = 0)]
    coordinator_kills: u32,
    /// SIGSTOPs of the node leading the most core partitions for --broker-pause, then SIGCONT.
    #[arg(long, default_value_t = 0)]
    broker_pauses: u32,
    /// Network partitions of the node leading the most core partitions: cut off from the other nodes and
    /// from clients for --broker-partition-time, then healed (needs --kafka-script, and scripts/kafka
    /// needs root for it).
    #[arg(long, default_value_t = 0)]
    broker_partitions: u32,
    /// The Kafka script of the cluster under test, with its environment, as a shell command prefix, e.g.
    /// "scripts/kafka": it answers top-leader and coordinator, and does kill, start, pause, resume,
    /// partition, heal and wait-in-sync.
    #[arg(long, value_name = "COMMAND")]
    kafka_script: Option<String>,
    /// How long a killed node stays down (past the brokers' 9 s session timeout, so that it is fenced).
    #[arg(long, default_value = "12s", value_parser = humantime::parse_duration)]
    broker_down: Duration,
    /// How long a paused node stays paused.
    #[arg(long, default_value = "12s", value_parser = humantime::parse_duration)]
    broker_pause: Duration,
    /// How long a partitioned node stays cut off: past the moment the controller fences it, which took 11 to
    /// 17 s on a cluster of scripts/kafka (9 s session timeout).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    broker_partition_time: Duration,
    /// Feed the events at this many per second while the routers run and the faults happen, instead of
    /// seeding them all first.
    #[arg(long, value_name = "EVENTS_PER_SECOND")]
    rate: Option<f64>,
    /// Do not add and remove a third replica.
    #[arg(long)]
    no_rebalance: bool,
    /// The router's delivery mode: exactly_once or at_least_once.
    #[arg(long, default_value = "exactly_once", value_parser = parse_mode)]
    mode: chaos::Mode,
    /// Seed of the traffic and of the fault schedule.
    #[arg(long, default_value_t = 11)]
    seed: u64,
    /// The routers' transaction timeout (delivery.transaction_timeout_ms), which also bounds how long
    /// librdkafka tries to deliver a record. The default, 5 s, ends a killed replica's transaction before
    /// its partitions move (after the 6 s session timeout); the router's own default is 10 s.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    transaction_timeout: Duration,
    /// The longest the routers may go without progress, and the limit of every wait.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Where the router logs go (a folder per run inside).
    #[arg(long, default_value = "target/chaos")]
    work_dir: PathBuf,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also run the seed plugins' workers behind the routers (a worker per plugin, the fake Twilio and
    /// Google Sheets, the rules service) with faults of their own, and count every plugin's effects: each
    /// once (needs --rate).
    #[arg(long)]
    effects: bool,
    /// With --effects: worker SIGKILLs, each followed by a restart, the plugins in turn.
    #[arg(long, default_value_t = 4)]
    worker_kills: u32,
    /// With --effects: endpoint outages (Twilio and Google answer 503, the rules service is killed).
    #[arg(long, default_value_t = 1)]
    endpoint_outages: u32,
    /// With --effects: how long an endpoint outage lasts.
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    outage: Duration,
    /// With --effects: no second workers joining and leaving.
    #[arg(long)]
    no_worker_rebalance: bool,
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

/// Sets up the system and the measurement for `run` and `find-max`.
fn prepare(args: Session) -> anyhow::Result<Measuring> {
    use std::io::IsTerminal as _;
    let scenario = Scenario::load(&args.scenario)?;
    let setup = match args.setup.as_str() {
        "registry" => Setup::Registry(RegistryAccess {
            url: args.registry.context("--setup registry needs --registry URL")?,
            token: args
                .registry_token
                .context("--setup registry needs --registry-token")?,
        }),
        "skip" => Setup::Skip,
        _ => Setup::Topics,
    };
    let processes = if args.pids.is_empty() {
        Processes::named(&args.process_name)
    } else {
        Processes::new(args.pids)
    };
    let session = Measuring::prepare(SessionOptions {
        bootstrap: args.kafka.bootstrap,
        scenario,
        seed: args.seed,
        topics: RunTopics::with_prefix(args.topic_prefix.as_deref()),
        setup,
        group: args.group,
        router_admin: (args.router_admin != "none").then_some(args.router_admin),
        processes,
        pool_size: args.pool.max(1),
        timeout: args.timeout,
        progress_bar: !args.no_progress && std::io::stderr().is_terminal(),
    })
    .context("preparing the run")?;
    Ok(session)
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
    let started_at = switchyard_loadtest::metadata::now();
    let command_line: Vec<String> = std::env::args().collect();
    match cli.command {
        Command::SetupTopics {
            kafka,
            scenario,
            topic_prefix,
        } => {
            let created = match scenario {
                None => topics::setup_topics(&kafka.bootstrap),
                Some(name) => {
                    let scenario = Scenario::load(&name)?;
                    let names = RunTopics::with_prefix(topic_prefix.as_deref());
                    switchyard_loadtest::kafka::create_topics(
                        &switchyard_loadtest::kafka::clients(&kafka.bootstrap),
                        &switchyard_loadtest::run::scenario_topics(&scenario, &names, true),
                    )
                    .map_err(LoadtestError::from)
                }
            };
            for topic in created.context("setting up the topics")? {
                println!("{topic}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let out = args.session.out.clone();
            let mut session = prepare(args.session)?;
            let count = args.count.unwrap_or(u64::MAX);
            let mut backfill = args
                .backfill_history
                .map(|events| session.start_backfill(events))
                .transpose()?;
            if !args.warmup.is_zero() {
                let gentle = if args.rate == 0 { 1000 } else { args.rate.min(1000) };
                eprintln!(
                    "switchyard-loadtest: warming up for {}",
                    humantime::format_duration(args.warmup)
                );
                session.step(gentle, args.warmup, u64::MAX)?;
            }
            let options = session.options().clone();
            let read_backfill = |load: &mut Option<switchyard_loadtest::backfill_load::BackfillLoad>,
                                 at_end| {
                load.as_mut()
                    .map(|load| {
                        switchyard_loadtest::backfill_load::read(
                            load,
                            &options.bootstrap,
                            &options.topics,
                            at_end,
                            options.timeout,
                        )
                    })
                    .transpose()
            };
            read_backfill(&mut backfill, false)?;
            let mut metadata = Metadata::new("run", started_at, &command_line);
            metadata.run_id = Some(session.run_id.to_string());
            metadata.scenario = Some(options.scenario.name.clone());
            metadata.seed = Some(options.seed);
            metadata.system = Some(session.describe_system());
            let result = session.step(args.rate, args.duration, count)?;
            read_backfill(&mut backfill, true)?;
            let objective = Objective::new(args.rate, args.p99_ms);
            let verdict = objective::verdict(&result, &objective);
            let anomalies = objective::anomalies(&result, &objective, options.processes.pids().len());
            metadata.finish();
            let mut report = RunReport {
                tool: env!("CARGO_PKG_VERSION").to_owned(),
                started_at: metadata.started_at.clone(),
                run_id: session.run_id.to_string(),
                scenario: options.scenario.clone(),
                topics: options.topics.clone(),
                group: options.group.clone(),
                pids: options.processes.pids().to_vec(),
                mean_value_bytes: session.mean_value_bytes,
                mean_fanout: session.mean_fanout,
                enablements: session.enablements,
                leftovers_removed: session.leftovers_removed,
                result,
                backfill,
                problems: Vec::new(),
                metadata,
                objective,
                verdict,
                anomalies,
            };
            session.finish()?;
            report.check();
            print!("{}", report.render());
            report::write_run(&out, &report)?;
            println!(
                "wrote {} and {}",
                out.join("result.json").display(),
                out.join("report.html").display()
            );
            Ok(if args.check && !report.problems.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::FindMax(args) => {
            let out = args.session.out.clone();
            let mut session = prepare(args.session)?;
            let search = SearchOptions {
                start_rate: args.start_rate,
                factor: args.factor.max(1.05),
                max_rate: args.max_rate,
                step_seconds: args.step.as_secs().max(1),
                p99_ms: args.p99_ms,
                refine: args.refine,
            };
            if !args.warmup.is_zero() {
                eprintln!(
                    "switchyard-loadtest: warming up for {}",
                    humantime::format_duration(args.warmup)
                );
                session.step(args.start_rate.clamp(1, 1000), args.warmup, u64::MAX)?;
            }
            let mut metadata = Metadata::new("find-max", started_at, &command_line);
            metadata.run_id = Some(session.run_id.to_string());
            metadata.scenario = Some(session.options().scenario.name.clone());
            metadata.seed = Some(session.options().seed);
            metadata.system = Some(session.describe_system());
            let mut found = capacity::find_max(&mut session, &search, metadata)?;
            session.finish()?;
            found.metadata.finish();
            println!(
                "max sustained rate: {} events/s (p99 <= {} ms, lag not growing)",
                found.max_sustained_rate, found.p99_objective_ms
            );
            capacity::write_search(&out, &found)?;
            println!(
                "wrote {} and {}",
                out.join("find-max.json").display(),
                out.join("find-max.html").display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan(args) => {
            let found = match &args.from_find_max {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    Some(FindMaxFile::parse(&path.display().to_string(), &text)?)
                }
                None => None,
            };
            let router_capacity = match (args.router_capacity, &found) {
                (Some(capacity), _) => Sourced::flag(capacity, "--router-capacity"),
                (None, Some(found)) => found.router_capacity(),
                (None, None) => anyhow::bail!("give --router-capacity or --from-find-max"),
            };
            let p99_ms = match (args.p99_ms, &found) {
                (Some(p99_ms), _) => Sourced::flag(p99_ms, "--p99-ms"),
                (None, Some(found)) => found.objective(),
                (None, None) => Sourced::flag_or_default(None, "--p99-ms", 200.0),
            };
            let mut plan = capacity::plan(PlanInputs {
                peak_rate: args.peak_rate,
                event_bytes: args.event_bytes,
                fanout: args.fanout,
                p99_ms,
                router_capacity,
                worker_capacity: Sourced::flag(args.worker_capacity, "--worker-capacity"),
                plugins: args.plugins,
                headroom: args.headroom,
                partition_rate: Sourced::flag_or_default(args.partition_rate, "--partition-rate", 2000.0),
                allow_unverified: args.allow_unverified,
            })?;
            for warning in &plan.warnings {
                eprintln!("switchyard-loadtest: WARNING: {warning}");
            }
            print!("{}", plan.render());
            plan.metadata = Some(Metadata::new("plan", started_at, &command_line));
            let path = match &args.json {
                Some(file) => {
                    eprintln!(
                        "switchyard-loadtest: --json FILE is deprecated: use --out DIR (writes DIR/plan.json), as \
                         run and find-max do"
                    );
                    file.clone()
                }
                None => args.out.join("plan.json"),
            };
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&path, serde_json::to_string_pretty(&plan)?)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Pipe(args) => {
            let mut config = switchyard_router::config::Config::load(args.config.as_deref())
                .context("loading the router configuration for the pipe's client settings")?;
            if let Some(bootstrap) = args.bootstrap {
                config.kafka.bootstrap_servers = bootstrap;
            }
            if let Some(mode) = args.mode {
                config.delivery.mode = match mode {
                    chaos::Mode::ExactlyOnce => switchyard_router::config::DeliveryMode::ExactlyOnce,
                    chaos::Mode::AtLeastOnce => switchyard_router::config::DeliveryMode::AtLeastOnce,
                };
            }
            config.delivery.group_id = args.group.clone();
            config.delivery.transactional_id = Some(format!("{}-0", args.group));
            let scenario = Scenario::load(&args.scenario)?;
            let topics = RunTopics::with_prefix(args.topic_prefix.as_deref());
            config.topics.core_events = topics.core.clone();
            let outputs = scenario.plugin_ids().iter().map(|p| topics.plugin(p)).collect();
            let stop = pipe::stop_on_signal()?;
            let counts = pipe::run(
                &pipe::PipeOptions {
                    config,
                    outputs,
                    duration: args.duration,
                },
                &stop,
            )?;
            println!(
                "switchyard-loadtest pipe: {} inputs, {} outputs, {} transactions, {:.1} s committing",
                counts.inputs, counts.outputs, counts.transactions, counts.commit_seconds
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Chaos(args) => {
            let router_bin = match args.router_bin {
                Some(path) => path,
                None => std::env::current_exe()
                    .context("locating this program")?
                    .with_file_name("switchyard-router"),
            };
            // The plugin binaries are built next to the router's.
            let bin_dir = router_bin.parent().map(Path::to_path_buf).unwrap_or_default();
            let options = ChaosOptions {
                bootstrap: args.kafka.bootstrap,
                router_bin,
                events: args.events,
                teams: usize::from(args.teams),
                partitions: args.partitions,
                seed: args.seed,
                rate: args.rate.filter(|rate| *rate > 0.0),
                faults: FaultCounts {
                    router_kills: args.kills,
                    broker_restarts: args.broker_restarts,
                    leader_kills: args.leader_kills,
                    coordinator_kills: args.coordinator_kills,
                    broker_pauses: args.broker_pauses,
                    broker_partitions: args.broker_partitions,
                    rebalance: !args.no_rebalance,
                },
                brokers: Brokers {
                    restart_command: args.broker_restart_command,
                    script: args.kafka_script,
                    down: args.broker_down,
                    pause: args.broker_pause,
                    partition: args.broker_partition_time,
                },
                mode: args.mode,
                transaction_timeout: args.transaction_timeout,
                timeout: args.timeout,
                work_dir: args.work_dir,
                effects: args.effects.then(|| EffectsOptions {
                    bin_dir: bin_dir.clone(),
                    faults: EffectFaultCounts {
                        worker_kills: args.worker_kills,
                        rebalance: !args.no_worker_rebalance,
                        endpoint_outages: args.endpoint_outages,
                    },
                    outage: args.outage,
                }),
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
