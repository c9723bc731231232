//! The `chaos` subcommand: proves the routing hop's promise while routers die and the broker bounces.
//!
//! Modelled on Apache Kafka's own transactions system test: seed every input first, copy it with the
//! system under test while hard-killing copiers and bouncing the broker (with progress between faults),
//! then read the outputs back as a `read_committed` consumer and compare sets and order.
//!
//! ```text
//!  1 fresh topics (a prefix per run) ─► 2 control records ─► 3 seed N events, expectations computed
//!  ─► 4 two router processes in one group ─► 5 faults at random progress points:
//!       kill -9 a replica and restart it │ restart the broker │ add a third replica, later remove it
//!     (a replica that exits on its own is restarted too, and counted)
//!  ─► 6 wait until the group committed every input ─► 7 stop the routers (SIGTERM)
//!  ─► 8 read every plugin topic and the DLQ back, read_committed ─► 9 one-line verdict
//! ```
//!
//! Exactly-once: every expected (event, plugin) pair once, nothing unexpected, per-team order, DLQ empty.
//! At-least-once: the same, except that duplicates are counted and reported instead of failing the run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use switchyard_fixtures::net::free_address;
use switchyard_fixtures::process::Supervised;
use switchyard_schemas::topics as names;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::control_plane::apply_to_topics_named;
use crate::expect::{Expectations, RoutingTable};
use crate::generate::traffic::MEAN_GAP_MS;
use crate::generate::{SAMPLE_PLUGINS, Traffic, TrafficConfig, control_records, teams};
use crate::kafka::{Producer, TopicSpec, clients, create_topics, read_all_to_end};
use crate::measure::LagWatcher;
use crate::router_admin::RouterAdmin;
use crate::verify::{Target, TopicCheck, check};
use crate::{LoadtestError, Progress, rfc3339_seconds};

/// The router's delivery mode under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Transactions: no loss, no duplicates.
    ExactlyOnce,
    /// Offsets stored after acknowledgement: no loss, duplicates possible.
    AtLeastOnce,
}

impl Mode {
    /// The router's `delivery.mode` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ExactlyOnce => "exactly_once",
            Mode::AtLeastOnce => "at_least_once",
        }
    }
}

/// What the chaos run does.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// The `switchyard-router` binary.
    pub router_bin: PathBuf,
    /// Events seeded.
    pub events: u64,
    /// Teams that send them.
    pub teams: usize,
    /// Partitions of the core topic.
    pub partitions: i32,
    /// Seeds the traffic and the fault schedule.
    pub seed: u64,
    /// SIGKILLs of a router replica.
    pub kills: u32,
    /// Broker restarts (each runs `broker_restart_command`).
    pub broker_restarts: u32,
    /// A shell command that restarts the broker and returns once it serves again.
    pub broker_restart_command: Option<String>,
    /// Whether a third replica joins and later leaves.
    pub rebalance: bool,
    /// The router's delivery mode.
    pub mode: Mode,
    /// The longest the run may go without progress, and the limit of each wait.
    pub timeout: Duration,
    /// Where router logs go (a folder per run inside).
    pub work_dir: PathBuf,
}

/// The result of a chaos run.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    /// The run id (the topic prefix is derived from it).
    pub run_id: String,
    /// The delivery mode.
    pub mode: Mode,
    /// Events seeded.
    pub events: u64,
    /// (event, plugin) pairs the routing table prescribes.
    pub expected: u64,
    /// Records read back from the plugin topics.
    pub delivered: u64,
    /// Expected pairs not found.
    pub missing: u64,
    /// Copies beyond the first.
    pub duplicates: u64,
    /// Records of a team found before an earlier event of that team.
    pub order_violations: u64,
    /// Records that should not be anywhere, or altered copies.
    pub unexpected: u64,
    /// Records in the dead-letter topic.
    pub dead_letters: u64,
    /// SIGKILLs delivered.
    pub kills: u32,
    /// Broker restarts done.
    pub broker_restarts: u32,
    /// Replicas added and removed again (rebalances forced).
    pub rebalances: u32,
    /// Replicas that exited without being asked to, and were restarted.
    pub unplanned_exits: u32,
    /// Seconds from the first router start until every input was committed.
    pub seconds: f64,
    /// Whether the run kept the promise of its mode.
    pub ok: bool,
    /// Per-topic details.
    pub topics: Vec<TopicCheck>,
    /// Where the router logs are.
    pub logs: String,
}

impl ChaosReport {
    /// The one-line summary.
    pub fn line(&self) -> String {
        format!(
            "chaos {}: {} mode={} events={} expected={} delivered={} missing={} duplicates={} \
             order_violations={} unexpected={} dead_letters={} kills={} broker_restarts={} rebalances={} \
             unplanned_exits={} seconds={:.1}",
            if self.ok { "PASS" } else { "FAIL" },
            self.run_id,
            self.mode.as_str(),
            self.events,
            self.expected,
            self.delivered,
            self.missing,
            self.duplicates,
            self.order_violations,
            self.unexpected,
            self.dead_letters,
            self.kills,
            self.broker_restarts,
            self.rebalances,
            self.unplanned_exits,
            self.seconds,
        )
    }
}

/// The topics of one run, all under its own prefix so that runs never see each other's records.
struct RunTopics {
    core: String,
    dead_letter: String,
    plugins: String,
    enablements: String,
    template: String,
}

impl RunTopics {
    fn new(prefix: &str) -> Self {
        Self {
            core: format!("{prefix}.{}", names::CORE_EVENTS),
            dead_letter: format!("{prefix}.{}", names::CORE_EVENTS_DLQ),
            plugins: format!("{prefix}.{}", names::PLUGINS),
            enablements: format!("{prefix}.{}", names::ENABLEMENTS),
            template: format!("{prefix}.{}", names::PLUGIN_EVENTS_TEMPLATE),
        }
    }

    fn plugin(&self, plugin: &str) -> String {
        names::plugin_events_topic(&self.template, plugin)
    }
}

/// One fault of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    BrokerRestart,
    AddReplica,
    RemoveReplica,
}

/// The faults in order, each with the committed progress (a share of all inputs) it waits for. Faults
/// are spread over 5%..85% of the run with at least one slot of progress between two.
fn schedule(options: &ChaosOptions, rng: &mut Xoshiro256PlusPlus) -> Vec<(f64, Fault)> {
    let mut faults: Vec<Fault> = std::iter::repeat_n(Fault::Kill, options.kills as usize)
        .chain(std::iter::repeat_n(
            Fault::BrokerRestart,
            options.broker_restarts as usize,
        ))
        .collect();
    // Shuffle kills and restarts; the rebalance pair keeps its order.
    for i in (1..faults.len()).rev() {
        let j = rng.random_range(0..=i);
        faults.swap(i, j);
    }
    if options.rebalance {
        let at = rng.random_range(0..=faults.len());
        faults.insert(at, Fault::AddReplica);
        let later = rng.random_range(at + 1..=faults.len());
        faults.insert(later, Fault::RemoveReplica);
    }
    let slot = 0.8 / (faults.len().max(1) as f64);
    faults
        .into_iter()
        .enumerate()
        .map(|(i, fault)| (0.05 + slot * (i as f64 + rng.random_range(0.2..0.8)), fault))
        .collect()
}

/// One router replica slot: a stable transactional id and admin port across its incarnations.
struct Replica {
    slot: usize,
    admin: String,
    /// The running incarnation, if any (killed when dropped).
    process: Option<Supervised>,
    incarnation: u32,
}

/// Starts, kills and restarts router processes; dropping it kills those still running.
struct Routers<'a> {
    options: &'a ChaosOptions,
    topics: &'a RunTopics,
    group: String,
    logs: PathBuf,
    replicas: Vec<Replica>,
}

impl Routers<'_> {
    fn start(&mut self, slot: usize) -> Result<(), LoadtestError> {
        if slot == self.replicas.len() {
            self.replicas.push(Replica {
                slot,
                admin: free_address()?.to_string(),
                process: None,
                incarnation: 0,
            });
        }
        let replica = &mut self.replicas[slot];
        replica.incarnation += 1;
        let log_path = self
            .logs
            .join(format!("router-{slot}.{}.log", replica.incarnation));
        let prefix = "SWITCHYARD_ROUTER__";
        let mut command = Command::new(&self.options.router_bin);
        command
            .env(
                format!("{prefix}KAFKA__BOOTSTRAP_SERVERS"),
                &self.options.bootstrap,
            )
            .env(format!("{prefix}TOPICS__CORE_EVENTS"), &self.topics.core)
            .env(format!("{prefix}TOPICS__DEAD_LETTER"), &self.topics.dead_letter)
            .env(format!("{prefix}TOPICS__PLUGINS"), &self.topics.plugins)
            .env(format!("{prefix}TOPICS__ENABLEMENTS"), &self.topics.enablements)
            .env(
                format!("{prefix}TOPICS__PLUGIN_EVENTS_TEMPLATE"),
                &self.topics.template,
            )
            .env(format!("{prefix}DELIVERY__MODE"), self.options.mode.as_str())
            .env(format!("{prefix}DELIVERY__GROUP_ID"), &self.group)
            .env(
                format!("{prefix}DELIVERY__TRANSACTIONAL_ID"),
                format!("{}-{slot}", self.group),
            )
            // A killed member's partitions move after the session timeout: keep it at the broker's minimum
            // so that a kill costs seconds, and an abandoned transaction ends before that.
            .env(format!("{prefix}DELIVERY__TRANSACTION_TIMEOUT_MS"), "5000")
            .env(
                format!("{prefix}KAFKA__CONSUMER_OPTIONS__SESSION_TIMEOUT_MS"),
                "6000",
            )
            .env(
                format!("{prefix}KAFKA__CONSUMER_OPTIONS__HEARTBEAT_INTERVAL_MS"),
                "1000",
            )
            .env(format!("{prefix}ADMIN__LISTEN"), &replica.admin)
            .env(format!("{prefix}LOG__LEVEL"), "info");
        replica.process = Some(Supervised::spawn(&mut command, &log_path)?);
        Ok(())
    }

    /// SIGKILL, then wait for the process to be gone.
    fn kill(&mut self, slot: usize) {
        if let Some(mut process) = self.replicas[slot].process.take() {
            let _ = process.kill();
        }
    }

    /// SIGTERM, then wait for the exit (SIGKILL after the timeout). Returns whether it exited with 0.
    fn stop(&mut self, slot: usize, timeout: Duration) -> bool {
        let Some(mut process) = self.replicas[slot].process.take() else {
            return true;
        };
        process.terminate(timeout).is_ok_and(|status| status.success())
    }

    /// Replicas that exited without being asked to.
    fn exited(&mut self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for replica in &mut self.replicas {
            if let Some(status) = replica.process.as_mut().and_then(Supervised::exited) {
                out.push((replica.slot, status.to_string()));
                replica.process = None;
            }
        }
        out
    }

    fn running(&self) -> Vec<usize> {
        self.replicas
            .iter()
            .filter(|r| r.process.is_some())
            .map(|r| r.slot)
            .collect()
    }

    fn wait_ready(&self, slot: usize, timeout: Duration) -> Result<(), LoadtestError> {
        RouterAdmin::new(&self.replicas[slot].admin)?.wait_ready(timeout)
    }
}

fn io_error(path: &Path, error: std::io::Error) -> LoadtestError {
    LoadtestError::Process {
        what: format!("writing {}", path.display()),
        error,
    }
}

/// Runs the chaos verifier. `Err` means it could not run to its end (no progress within the timeout,
/// the broker unreachable, ...); a run that ends but finds loss, duplicates or disorder returns a report
/// whose `ok` is false.
pub fn run(options: &ChaosOptions) -> Result<ChaosReport, LoadtestError> {
    let progress = Progress::start();
    let run_id = Uuid::now_v7();
    let short = run_id.simple().to_string();
    let prefix = format!("chaos-{}", &short[short.len() - 8..]);
    let topics = RunTopics::new(&prefix);
    let logs = options.work_dir.join(&prefix);
    fs::create_dir_all(&logs).map_err(|error| io_error(&logs, error))?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(options.seed ^ 0x6368_616f_7300_0000);
    if options.broker_restarts > 0 && options.broker_restart_command.is_none() {
        return Err(LoadtestError::Usage(
            "broker restarts need --broker-restart-command".to_owned(),
        ));
    }

    // 1. Topics.
    let spec = |name: &str, partitions: i32, compacted: bool| TopicSpec {
        name: name.to_owned(),
        partitions,
        compacted,
    };
    let mut specs = vec![
        spec(&topics.core, options.partitions, false),
        spec(&topics.dead_letter, 1, false),
        spec(&topics.plugins, 1, true),
        spec(&topics.enablements, 3, true),
    ];
    specs.extend(SAMPLE_PLUGINS.iter().map(|p| spec(&topics.plugin(p), 3, false)));
    create_topics(&clients(&options.bootstrap), &specs)?;
    progress.say(format_args!(
        "{prefix}: {} topics created; router logs in {}",
        specs.len(),
        logs.display()
    ));

    // 2. Control records.
    let producer = Producer::new(&clients(&options.bootstrap))?;
    let now = OffsetDateTime::now_utc();
    let updated_at = rfc3339_seconds(now);
    let teams = teams(options.seed, options.teams.max(1));
    let controls = control_records(&teams, options.seed, &updated_at);
    apply_to_topics_named(
        &producer,
        &controls,
        &topics.plugins,
        &topics.enablements,
        options.timeout,
    )?;
    let table = RoutingTable::from_controls(&controls);

    // 3. Seed every input first.
    let mut traffic = Traffic::new(TrafficConfig {
        seed: options.seed,
        teams: teams.clone(),
        run_id,
        source: format!("/chaos/{run_id}"),
        start_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64
            - (options.events as f64 * MEAN_GAP_MS) as i64,
        avro_share: 0.7,
        malformed_share: 0.0,
        mix: None,
        activity_exponent: crate::generate::teams::ACTIVITY_EXPONENT,
        notes_mean_bytes: 0,
    });
    let mut expectations = Expectations::default();
    for _ in 0..options.events {
        let event = traffic.next_event()?;
        expectations.add(&table, &event);
        producer.send(&topics.core, &event.record)?;
    }
    producer.flush(options.timeout)?;
    let expected: u64 = expectations.totals.plugin_records.values().sum();
    progress.say(format_args!(
        "seeded {} events from {} teams: {expected} (event, plugin) pairs expected",
        options.events,
        teams.len()
    ));

    // 4. Two replicas.
    let faults = schedule(options, &mut rng);
    let mut routers = Routers {
        options,
        topics: &topics,
        group: format!("{prefix}-router"),
        logs: logs.clone(),
        replicas: Vec::new(),
    };
    let started = Instant::now();
    for slot in 0..2 {
        routers.start(slot)?;
    }
    for slot in 0..2 {
        routers.wait_ready(slot, options.timeout)?;
    }
    progress.say(format_args!(
        "2 router replicas ({}) are ready; {} faults scheduled",
        options.mode.as_str(),
        faults.len()
    ));

    // 5. Faults at progress points; 6. until every input is committed.
    let mut report = ChaosReport {
        run_id: prefix.clone(),
        mode: options.mode,
        events: options.events,
        expected,
        delivered: 0,
        missing: 0,
        duplicates: 0,
        order_violations: 0,
        unexpected: 0,
        dead_letters: 0,
        kills: 0,
        broker_restarts: 0,
        rebalances: 0,
        unplanned_exits: 0,
        seconds: 0.0,
        ok: false,
        topics: Vec::new(),
        logs: logs.display().to_string(),
    };
    let mut next = faults.into_iter().peekable();
    let mut last_progress = (0u64, Instant::now());
    let mut last_line = Instant::now();
    let mut progress_at_last_fault = 0;
    let watcher = LagWatcher::new(&options.bootstrap, &routers.group, &topics.core)?;
    loop {
        for (slot, status) in routers.exited() {
            report.unplanned_exits += 1;
            progress.say(format_args!(
                "replica {slot} exited on its own ({status}); restarting it"
            ));
            routers.start(slot)?;
        }
        // The broker may be down for a moment: unknown progress is no progress.
        let (committed, end) = watcher.progress().unwrap_or((last_progress.0, options.events));
        if committed > last_progress.0 {
            last_progress = (committed, Instant::now());
        } else if last_progress.1.elapsed() > options.timeout {
            return Err(LoadtestError::Timeout {
                what: "the routers to make progress",
                waited: options.timeout,
                last: format!(
                    "{committed}/{} inputs committed; see the logs in {}",
                    options.events,
                    logs.display()
                ),
            });
        }
        if committed >= options.events && next.peek().is_none() {
            break;
        }
        if last_line.elapsed() >= Duration::from_secs(2) {
            progress.say(format_args!(
                "{committed}/{end} inputs committed; replicas running: {:?}",
                routers.running()
            ));
            last_line = Instant::now();
        }
        // Progress between two faults, always: a fault never follows the previous one on the same offsets.
        let due = committed > progress_at_last_fault
            && next
                .peek()
                .is_some_and(|(at, _)| committed as f64 >= at * options.events as f64);
        // The last faults may be due after the routers finished: do them anyway, then check again.
        let finished = committed >= options.events;
        if !(due || finished) {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let Some((_, fault)) = next.next() else {
            continue;
        };
        progress_at_last_fault = committed;
        // A random moment inside the progress window, so that kills land in the middle of transactions.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
        match fault {
            Fault::Kill => {
                let victim = rng.random_range(0..2);
                routers.kill(victim);
                report.kills += 1;
                progress.say(format_args!(
                    "fault: kill -9 replica {victim} at {committed} committed; restarting it"
                ));
                routers.start(victim)?;
            }
            Fault::BrokerRestart => {
                let command = options.broker_restart_command.as_deref().unwrap_or("true");
                progress.say(format_args!(
                    "fault: restarting the broker at {committed} committed: {command}"
                ));
                let status = Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .stdin(Stdio::null())
                    .status()
                    .map_err(|error| LoadtestError::Process {
                        what: format!("running {command}"),
                        error,
                    })?;
                if !status.success() {
                    return Err(LoadtestError::Usage(format!(
                        "the broker restart command failed ({status}): {command}"
                    )));
                }
                report.broker_restarts += 1;
                progress.say(format_args!("the broker is back"));
            }
            Fault::AddReplica => {
                progress.say(format_args!(
                    "fault: a third replica joins at {committed} committed"
                ));
                routers.start(2)?;
            }
            Fault::RemoveReplica => {
                let clean = routers.stop(2, options.timeout);
                report.rebalances += 1;
                progress.say(format_args!(
                    "fault: the third replica left at {committed} committed (clean exit: {clean})"
                ));
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    progress.say(format_args!(
        "every input committed after {:.1} s",
        report.seconds
    ));

    // 7. Stop.
    for slot in routers.running() {
        if !routers.stop(slot, options.timeout) {
            progress.say(format_args!("replica {slot} did not stop cleanly"));
        }
    }

    // 8. Read back.
    let mut targets: Vec<(String, Target<'_>)> = SAMPLE_PLUGINS
        .iter()
        .map(|plugin| (topics.plugin(plugin), Target::Plugin(plugin)))
        .collect();
    targets.push((topics.dead_letter.clone(), Target::DeadLetters));
    let names: Vec<String> = targets.iter().map(|(t, _)| t.clone()).collect();
    let reads = read_all_to_end(&clients(&options.bootstrap), &names, options.timeout, &|_| true)?;
    for ((topic, target), read) in targets.iter().zip(&reads) {
        let result = check(&topics.core, topic, *target, &expectations, &read.kept);
        if *target == Target::DeadLetters {
            report.dead_letters += result.arrived;
        } else {
            report.delivered += result.arrived;
            report.missing += result.missing;
            report.duplicates += result.duplicated;
            report.order_violations += result.out_of_order;
            report.unexpected += result.unexpected + result.altered + result.wrong_reason;
        }
        report.topics.push(result);
    }

    // 9. Verdict.
    report.ok = report.missing == 0
        && report.order_violations == 0
        && report.unexpected == 0
        && report.dead_letters == 0
        && (options.mode == Mode::AtLeastOnce || report.duplicates == 0);
    for topic in report.topics.iter().filter(|t| !t.clean()) {
        for example in &topic.examples {
            progress.say(format_args!("{}: {example}", topic.topic));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(kills: u32, restarts: u32, rebalance: bool) -> ChaosOptions {
        ChaosOptions {
            bootstrap: String::new(),
            router_bin: PathBuf::new(),
            events: 1000,
            teams: 10,
            partitions: 6,
            seed: 1,
            kills,
            broker_restarts: restarts,
            broker_restart_command: None,
            rebalance,
            mode: Mode::ExactlyOnce,
            timeout: Duration::from_secs(1),
            work_dir: PathBuf::new(),
        }
    }

    #[test]
    fn the_schedule_spreads_every_fault_in_order() {
        for seed in 0..50 {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let plan = schedule(&options(3, 1, true), &mut rng);
            assert_eq!(plan.len(), 6);
            assert!(plan.windows(2).all(|w| w[0].0 < w[1].0), "{plan:?}");
            assert!(plan.iter().all(|(at, _)| (0.05..0.85).contains(at)), "{plan:?}");
            let count = |f: Fault| plan.iter().filter(|(_, g)| *g == f).count();
            assert_eq!(
                (
                    count(Fault::Kill),
                    count(Fault::BrokerRestart),
                    count(Fault::AddReplica)
                ),
                (3, 1, 1)
            );
            let add = plan.iter().position(|(_, f)| *f == Fault::AddReplica).unwrap();
            let remove = plan.iter().position(|(_, f)| *f == Fault::RemoveReplica).unwrap();
            assert!(add < remove);
        }
        assert!(schedule(&options(0, 0, false), &mut Xoshiro256PlusPlus::seed_from_u64(1)).is_empty());
    }
}
