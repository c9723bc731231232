//! The `chaos` subcommand: proves the routing hop's promise while routers die and brokers crash, pause
//! and bounce.
//!
//! Modelled on Apache Kafka's own transactions system test: copy known inputs with the system under test
//! while hard-killing copiers and failing brokers (with progress between faults), then read the outputs
//! back as a `read_committed` consumer and compare sets and order. The inputs are either all seeded first
//! (Kafka's way) or fed at a steady rate while the faults happen (`rate`), so that each fault meets load
//! and its recovery time can be measured ([`stalls`]).
//!
//! ```text
//!  1 fresh topics (a prefix per run) ─► 2 control records ─► 3 seed N events, expectations computed
//!    (or 3' feed them at a rate, on a thread, alongside 4-6)
//!  ─► 4 two router processes in one group ─► 5 faults at random progress points (faults.rs):
//!       kill -9 a replica and restart it │ add a third replica, later remove it │ restart the broker
//!       (a rolling restart on a cluster) │ kill -9 the node leading the most core partitions │ kill -9
//!       the node hosting a router's transaction coordinator │ SIGSTOP a node past the session timeouts
//!       │ cut the node leading the most core partitions off the network (nftables) past them
//!     each fault's window stays open until every partition that had input waiting moved on; its
//!     recovery time is the longest stall inside (a replica that exits on its own is restarted, counted)
//!  ─► 6 wait until the group committed every input ─► 7 stop the routers (SIGTERM)
//!  ─► 8 read every plugin topic and the DLQ back, read_committed ─► 9 one-line verdict
//! ```
//!
//! Exactly-once: every expected (event, plugin) pair once, nothing unexpected, per-team order, DLQ empty.
//! At-least-once: the same, except that duplicates are counted and reported instead of failing the run.
//!
//! With `effects` the chain goes on past the plugin topics (`chaos/effects/`): the four seed plugins' workers
//! consume them, with faults of their own (workers SIGKILLed, joining and leaving, every endpoint down and
//! then losing answers), against a fake Twilio and a fake Google Sheets that count what they were asked to
//! do; the run then also fails on any effect missing, repeated or not called for.

mod effects;
mod faults;
mod routers;
mod slots;
mod stalls;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::control_plane::apply_to_topics_named;
use crate::expect::{Expectations, RoutingTable};
use crate::generate::traffic::MEAN_GAP_MS;
use crate::generate::{SAMPLE_PLUGINS, Traffic, TrafficConfig, control_records, teams};
use crate::kafka::{Producer, TopicSpec, clients, create_topics, read_all_to_end};
use crate::measure::LagWatcher;
use crate::verify::{Inputs, Target, TopicCheck, check};
use crate::{LoadtestError, Progress, rfc3339_seconds};

pub use effects::{EffectFault, EffectFaultCounts, EffectsOptions, EffectsReport};
pub use faults::{Brokers, Fault, FaultCounts};
use faults::{Target as FaultTarget, schedule};
use routers::{Routers, RunTopics, SESSION_TIMEOUT};
use stalls::Stalls;

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
    /// Events per second fed while the routers run; `None` seeds every event before they start.
    pub rate: Option<f64>,
    /// The faults of each kind.
    pub faults: FaultCounts,
    /// How the broker faults are done.
    pub brokers: Brokers,
    /// The router's delivery mode.
    pub mode: Mode,
    /// The routers' `delivery.transaction_timeout_ms` (also librdkafka's cap of a record's delivery time).
    pub transaction_timeout: Duration,
    /// The longest the run may go without progress, and the limit of each wait.
    pub timeout: Duration,
    /// Where router logs go (a folder per run inside).
    pub work_dir: PathBuf,
    /// Also run the seed plugins' workers behind the routers, with faults of their own, and count every
    /// effect (needs `rate`).
    pub effects: Option<EffectsOptions>,
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
    /// Events the core topic holds more than once: the feeder's producer wrote them twice (its idempotence
    /// did not hold across a fault). Exactly once is per input record, so each record of them is due.
    pub input_repeats: u64,
    /// (input record, plugin) pairs the routing table prescribes.
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
    /// SIGKILLs of a router replica delivered.
    pub kills: u32,
    /// Broker restarts done (rolling restarts, on a cluster).
    pub broker_restarts: u32,
    /// SIGKILLs of the node leading the most core partitions.
    pub leader_kills: u32,
    /// SIGKILLs of the node hosting a router's transaction coordinator.
    pub coordinator_kills: u32,
    /// SIGSTOPs of a node past the session timeouts.
    pub broker_pauses: u32,
    /// Network partitions of a node (cut off from the others and from clients) past the session timeouts.
    pub broker_partitions: u32,
    /// Replicas added and removed again (rebalances forced).
    pub rebalances: u32,
    /// Replicas that exited without being asked to, and were restarted.
    pub unplanned_exits: u32,
    /// Seconds from the first router start until every input was committed.
    pub seconds: f64,
    /// The longest stall of a core partition outside every fault's window: routing without a fault.
    pub baseline_stall_seconds: f64,
    /// Each fault: what, where, when, and the recovery time.
    pub faults: Vec<FaultRecord>,
    /// Whether the run kept the promise of its mode.
    pub ok: bool,
    /// Per-topic details.
    pub topics: Vec<TopicCheck>,
    /// Where the router logs are.
    pub logs: String,
    /// The plugin side, in a run with `--effects`.
    pub effects: Option<EffectsReport>,
}

/// One fault of a run.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// Its kind.
    pub fault: Fault,
    /// The router replica (router kills) or Kafka node (node faults) it hit.
    pub target: Option<i32>,
    /// Inputs committed when it began.
    pub at_committed: u64,
    /// Seconds from the first router start to its beginning.
    pub began_seconds: f64,
    /// Seconds the fault itself took (a node held down and back in sync, a rolling restart).
    pub took_seconds: f64,
    /// Core partitions with input waiting when it began (0: it met no load, so it has no recovery time
    /// to speak of).
    pub partitions_waiting: usize,
    /// The longest a core partition with input waiting went without a commit, from the fault's
    /// beginning until every partition that had input waiting when it ended had moved on.
    pub recovery_seconds: f64,
}

impl ChaosReport {
    /// The longest recovery time of each kind of fault that met load.
    pub fn recovery_by_kind(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for record in self.faults.iter().filter(|f| f.partitions_waiting > 0) {
            let name = serde_json::to_value(record.fault)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let longest = out.entry(name).or_insert(0.0_f64);
            *longest = longest.max(record.recovery_seconds);
        }
        out
    }

    /// The one-line summary.
    pub fn line(&self) -> String {
        let recovery: Vec<String> = self
            .recovery_by_kind()
            .iter()
            .map(|(kind, seconds)| format!("{kind}:{seconds:.1}"))
            .collect();
        format!(
            "chaos {}: {} mode={} events={} input_repeats={} expected={} delivered={} missing={} duplicates={} \
             order_violations={} unexpected={} dead_letters={} kills={} broker_restarts={} leader_kills={} \
             coordinator_kills={} broker_pauses={} broker_partitions={} rebalances={} unplanned_exits={} seconds={:.1} \
             baseline_stall_s={:.1} recovery_max_s={}",
            if self.ok { "PASS" } else { "FAIL" },
            self.run_id,
            self.mode.as_str(),
            self.events,
            self.input_repeats,
            self.expected,
            self.delivered,
            self.missing,
            self.duplicates,
            self.order_violations,
            self.unexpected,
            self.dead_letters,
            self.kills,
            self.broker_restarts,
            self.leader_kills,
            self.coordinator_kills,
            self.broker_pauses,
            self.broker_partitions,
            self.rebalances,
            self.unplanned_exits,
            self.seconds,
            self.baseline_stall_seconds,
            if recovery.is_empty() {
                "-".to_owned()
            } else {
                recovery.join(",")
            },
        ) + &self
            .effects
            .as_ref()
            .map(|effects| format!(" {}", effects.line()))
            .unwrap_or_default()
    }
}

fn io_error(path: &Path, error: std::io::Error) -> LoadtestError {
    LoadtestError::Process {
        what: format!("writing {}", path.display()),
        error,
    }
}

/// Feeds events of `traffic` to `topic` at `rate` per second (`None`: as fast as it goes): `events` of
/// them, and more while `feeding` says [`MORE`]; none more once it says [`STOP`]. Waits until every one is
/// acknowledged; returns how many,
/// and what the routing table expects of them.
#[allow(clippy::too_many_arguments)]
fn feed(
    producer: &Producer,
    traffic: &mut Traffic,
    table: &RoutingTable,
    topic: &str,
    events: u64,
    feeding: &AtomicU8,
    rate: Option<f64>,
    timeout: Duration,
) -> Result<(u64, Expectations), LoadtestError> {
    let started = Instant::now();
    let mut expectations = Expectations::default();
    let mut index = 0;
    loop {
        let more = match feeding.load(Ordering::Relaxed) {
            STOP => false,
            MORE => true,
            _ => index < events,
        };
        if !more {
            break;
        }
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(index as f64 / rate);
            let now = Instant::now();
            if due > now + Duration::from_millis(2) {
                std::thread::sleep(due - now);
            }
        }
        let event = traffic.next_event()?;
        expectations.add(table, &event);
        producer.send(topic, &event.record)?;
        index += 1;
    }
    producer.flush(timeout)?;
    Ok((index, expectations))
}

/// The shortest window of a fault: a killed replica's restart rebalances the group once when it joins and
/// once more when the dead incarnation's session expires, which a window that closed at the first
/// progress would leave out.
const MIN_WINDOW: Duration = Duration::from_secs(SESSION_TIMEOUT.as_secs() + 4);

/// What the feeder does past its event count: feed on (faults are pending), stop there, or stop at once
/// (the run ended early, on an error).
const MORE: u8 = 1;
const AT_COUNT: u8 = 0;
const STOP: u8 = 2;

/// Stops the feeder at once when dropped: however the run's loop ends, the scope can join the feeder.
struct StopFeeding<'a>(&'a AtomicU8);

impl Drop for StopFeeding<'_> {
    fn drop(&mut self) {
        self.0.store(STOP, Ordering::Relaxed);
    }
}

/// The fault under way: begun, maybe still running on its thread, its window open.
struct Active<'scope> {
    fault: Fault,
    target: Option<i32>,
    at_committed: u64,
    began: Instant,
    began_seconds: f64,
    partitions_waiting: usize,
    /// The broker commands, while they run.
    work: Option<ScopedJoinHandle<'scope, Result<FaultTarget, LoadtestError>>>,
    took: Option<Duration>,
    /// The partitions with input waiting when the fault ended, and their committed offsets then: the
    /// window closes once each has moved on.
    marks: Option<Vec<(usize, i64)>>,
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
    options.brokers.check(&options.faults)?;
    if options.effects.is_some() && options.rate.is_none() {
        return Err(LoadtestError::Usage(
            "the plugin side (--effects) needs events fed at a --rate".to_owned(),
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
    let mut effects = match &options.effects {
        Some(effects) => {
            let started = effects::Effects::start(
                options,
                effects,
                &prefix,
                &topics.template,
                &controls,
                logs.clone(),
            )?;
            progress.say(format_args!(
                "the plugin side: a worker per plugin ready, the fake Twilio and Google Sheets and the rules \
                 service serving"
            ));
            Some(started)
        }
        None => None,
    };

    // 3. Seed every input first, unless they are fed at a rate while the routers run.
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
    let mut seeded = None;
    // Fed at a rate, events keep coming until the last fault is over, so that every fault meets load.
    let feeding = AtomicU8::new(if options.rate.is_some() { MORE } else { AT_COUNT });
    if options.rate.is_none() {
        let (_, expectations) = feed(
            &producer,
            &mut traffic,
            &table,
            &topics.core,
            options.events,
            &feeding,
            None,
            options.timeout,
        )?;
        let expected: u64 = expectations.totals.plugin_records.values().sum();
        progress.say(format_args!(
            "seeded {} events from {} teams: {expected} (event, plugin) pairs expected",
            options.events,
            teams.len()
        ));
        seeded = Some((options.events, expectations));
    }

    // 4. Two replicas.
    let faults = schedule(&options.faults, &mut rng);
    let mut routers = Routers::new(options, &topics, format!("{prefix}-router"), logs.clone());
    let started = Instant::now();
    for slot in 0..2 {
        routers.start(slot)?;
    }
    // Both own partitions: the rebalance of the second's arrival is over before the clock of stalls starts.
    for slot in 0..2 {
        routers.wait_assigned(slot, options.timeout)?;
    }
    progress.say(format_args!(
        "2 router replicas ({}) own partitions; {} faults scheduled{}",
        options.mode.as_str(),
        faults.len(),
        match options.rate {
            Some(rate) => format!("; feeding {} events at {rate}/s", options.events),
            None => String::new(),
        }
    ));

    let mut report = ChaosReport {
        run_id: prefix.clone(),
        mode: options.mode,
        events: options.events,
        expected: 0,
        delivered: 0,
        missing: 0,
        duplicates: 0,
        input_repeats: 0,
        order_violations: 0,
        unexpected: 0,
        dead_letters: 0,
        kills: 0,
        broker_restarts: 0,
        leader_kills: 0,
        coordinator_kills: 0,
        broker_pauses: 0,
        broker_partitions: 0,
        rebalances: 0,
        unplanned_exits: 0,
        seconds: 0.0,
        baseline_stall_seconds: 0.0,
        faults: Vec::new(),
        ok: false,
        topics: Vec::new(),
        logs: logs.display().to_string(),
        effects: None,
    };
    let watcher = LagWatcher::new(&options.bootstrap, &routers.group, &topics.core)?;
    let transactional_id = routers.transactional_id(0);

    // 5. Faults at progress points; 6. until every input is committed.
    let (fed, expectations) = std::thread::scope(|scope| -> Result<(u64, Expectations), LoadtestError> {
        let mut feeder = options.rate.map(|rate| {
            let (producer, traffic, table, core) = (&producer, &mut traffic, &table, &topics.core);
            let feeding = &feeding;
            scope.spawn(move || {
                let events = options.events;
                feed(
                    producer,
                    traffic,
                    table,
                    core,
                    events,
                    feeding,
                    Some(rate),
                    options.timeout,
                )
            })
        });
        // However the loop ends (an error included), the feeder stops, so that the scope can join it.
        let _stop_feeding = StopFeeding(&feeding);
        let mut next = faults.into_iter().peekable();
        let mut last_progress = (0u64, Instant::now());
        let mut last_line = Instant::now();
        let mut progress_at_last_fault = 0;
        let mut stalls = Stalls::default();
        let mut active: Option<Active<'_>> = None;
        loop {
            if let Some(effects) = &mut effects {
                effects.tick(started.elapsed(), &progress)?;
            }
            for (slot, status) in routers.exited() {
                report.unplanned_exits += 1;
                progress.say(format_args!(
                    "replica {slot} exited on its own ({status}); restarting it"
                ));
                routers.start(slot)?;
            }
            // A coordinator down or paused may not answer: unknown progress is no progress.
            let committed = match watcher.committed() {
                Some(offsets) => {
                    let ends = producer.acknowledged_ends(&topics.core);
                    stalls.observe(progress.elapsed(), &offsets, &ends);
                    offsets.iter().map(|&o| o.max(0) as u64).sum()
                }
                None => last_progress.0,
            };
            if last_progress.0 == 0 && committed > 0 {
                // The baseline starts with routing: the wait for the first assignment is no stall.
                stalls.take_longest();
            }
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
            if let Some(done) = feeder.take_if(|f| f.is_finished()) {
                seeded = Some(done.join().map_err(|_| panicked("the feeder"))??);
            }
            if next.peek().is_none() && active.is_none() {
                // Only a feeder still asked for more stops at its count; one told to stop stays stopped.
                let _ = feeding.compare_exchange(MORE, AT_COUNT, Ordering::Relaxed, Ordering::Relaxed);
            }
            let fed = seeded.as_ref().map(|(fed, _)| *fed);
            if let Some(fault) = &mut active {
                if fault.marks.is_none() && fault.work.as_ref().is_none_or(|w| w.is_finished()) {
                    if let Some(work) = fault.work.take() {
                        let target = work.join().map_err(|_| panicked("a broker fault"))??;
                        fault.target = target.node.or(fault.target);
                        progress.say(format_args!(
                            "{:?} done after {:.1} s",
                            fault.fault,
                            fault.began.elapsed().as_secs_f64()
                        ));
                    }
                    fault.took = Some(fault.began.elapsed());
                    fault.marks = Some(stalls.waiting());
                }
                if fault.began.elapsed() >= MIN_WINDOW
                    && fault
                        .marks
                        .as_deref()
                        .is_some_and(|marks| stalls.moved_past(marks))
                {
                    let longest = stalls.take_longest();
                    let recovery = longest.length;
                    progress.say(format_args!(
                        "{:?}: routing again; the longest stall was {:.1} s (partition {} from {:.1} s)",
                        fault.fault,
                        recovery.as_secs_f64(),
                        longest.partition,
                        longest.since.as_secs_f64()
                    ));
                    report.faults.push(FaultRecord {
                        fault: fault.fault,
                        target: fault.target,
                        at_committed: fault.at_committed,
                        began_seconds: fault.began_seconds,
                        took_seconds: fault.took.unwrap_or_default().as_secs_f64(),
                        partitions_waiting: fault.partitions_waiting,
                        recovery_seconds: recovery.as_secs_f64(),
                    });
                    active = None;
                }
            }
            if fed.is_some_and(|fed| committed >= fed) && next.peek().is_none() && active.is_none() {
                break;
            }
            if last_line.elapsed() >= Duration::from_secs(2) {
                progress.say(format_args!(
                    "{committed}/{} inputs committed; replicas running: {:?}",
                    options.events,
                    routers.running()
                ));
                last_line = Instant::now();
            }
            // Progress between two faults, always: a fault never follows the previous one on the same
            // offsets. The last faults may be due after the routers finished: do them anyway.
            let due = committed > progress_at_last_fault
                && next
                    .peek()
                    .is_some_and(|(at, _)| committed as f64 >= at * options.events as f64);
            let finished = fed.is_some_and(|fed| committed >= fed);
            if active.is_some() || !(due || finished) {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            let Some((_, fault)) = next.next() else {
                continue;
            };
            progress_at_last_fault = committed;
            // A random moment inside the progress window, so that kills land in the middle of
            // transactions.
            std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
            let between = stalls.take_longest();
            if between.length > Duration::from_secs(1) {
                progress.say(format_args!(
                    "a stall of {:.1} s without a fault: partition {} from {:.1} s",
                    between.length.as_secs_f64(),
                    between.partition,
                    between.since.as_secs_f64()
                ));
            }
            report.baseline_stall_seconds = report.baseline_stall_seconds.max(between.length.as_secs_f64());
            let mut begun = Active {
                fault,
                target: None,
                at_committed: committed,
                began: Instant::now(),
                began_seconds: started.elapsed().as_secs_f64(),
                partitions_waiting: stalls.waiting().len(),
                work: None,
                took: None,
                marks: None,
            };
            match fault {
                Fault::RouterKill => {
                    let victim = rng.random_range(0..2);
                    routers.kill(victim);
                    report.kills += 1;
                    progress.say(format_args!(
                        "fault: kill -9 replica {victim} at {committed} committed; restarting it"
                    ));
                    routers.start(victim)?;
                    begun.target = Some(victim as i32);
                    begun.work = Some(routers.until_assigned(scope, victim));
                }
                Fault::ReplicaJoins => {
                    progress.say(format_args!(
                        "fault: a third replica joins at {committed} committed"
                    ));
                    routers.start(2)?;
                    begun.target = Some(2);
                    begun.work = Some(routers.until_assigned(scope, 2));
                }
                Fault::ReplicaLeaves => {
                    let clean = routers.stop(2, options.timeout);
                    report.rebalances += 1;
                    progress.say(format_args!(
                        "fault: the third replica left at {committed} committed (clean exit: {clean})"
                    ));
                    begun.target = Some(2);
                }
                broker => {
                    let counter = match broker {
                        Fault::BrokerRestart => &mut report.broker_restarts,
                        Fault::LeaderKill => &mut report.leader_kills,
                        Fault::CoordinatorKill => &mut report.coordinator_kills,
                        Fault::BrokerPartition => &mut report.broker_partitions,
                        _ => &mut report.broker_pauses,
                    };
                    *counter += 1;
                    progress.say(format_args!("fault: {broker:?} at {committed} committed"));
                    let (brokers, core, id) = (&options.brokers, &topics.core, &transactional_id);
                    begun.work = Some(scope.spawn(move || brokers.inject(broker, core, id)));
                }
            }
            active = Some(begun);
        }
        seeded.take().ok_or_else(|| panicked("the feeder"))
    })?;
    report.events = fed;
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

    // 8. Read back, the core topic too: exactly once is per input record.
    let mut targets: Vec<(String, Target<'_>)> = SAMPLE_PLUGINS
        .iter()
        .map(|plugin| (topics.plugin(plugin), Target::Plugin(plugin)))
        .collect();
    targets.push((topics.dead_letter.clone(), Target::DeadLetters));
    let mut names: Vec<String> = targets.iter().map(|(t, _)| t.clone()).collect();
    names.push(topics.core.clone());
    let mut reads = read_all_to_end(&clients(&options.bootstrap), &names, options.timeout, &|_| true)?;
    let core_read = reads.pop().ok_or_else(|| panicked("the core topic's reader"))?;
    let inputs = Inputs::from_records(&topics.core, &core_read.kept);
    for (id, at) in inputs.repeated() {
        report.input_repeats += 1;
        progress.say(format_args!(
            "the feeder wrote event {id} {} times, at {}",
            at.len(),
            at.join(", ")
        ));
    }
    report.expected = 0;
    for ((topic, target), read) in targets.iter().zip(&reads) {
        let result = check(
            &topics.core,
            topic,
            *target,
            &expectations,
            Some(&inputs),
            &read.kept,
        );
        if *target == Target::DeadLetters {
            report.dead_letters += result.arrived;
        } else {
            report.expected += result.expected;
            report.delivered += result.arrived;
            report.missing += result.missing;
            report.duplicates += result.duplicated;
            report.order_violations += result.out_of_order;
            report.unexpected += result.unexpected + result.altered + result.wrong_reason;
        }
        report.topics.push(result);
    }

    // 8'. The plugin side: every effect once.
    if let Some(effects) = effects {
        let routed = targets
            .iter()
            .zip(&reads)
            .filter_map(|((_, target), read)| match target {
                Target::Plugin(plugin) => Some(((*plugin).to_owned(), read.kept.as_slice())),
                Target::DeadLetters => None,
            })
            .collect();
        let found = effects.finish(&routed, started, &progress)?;
        for (plugin, counts) in &found.plugins {
            for example in &counts.examples {
                progress.say(format_args!("{plugin}: {example}"));
            }
        }
        report.effects = Some(found);
    }

    // 9. Verdict.
    report.ok = report.effects.as_ref().is_none_or(|effects| effects.ok)
        && report.missing == 0
        && report.order_violations == 0
        && report.unexpected == 0
        && report.dead_letters == 0
        && (options.mode == Mode::AtLeastOnce || report.duplicates == 0);
    if !report.ok {
        // CI keeps only this output, and shows its end: the routers' own warnings say what they went
        // through, and the problems come after them, next to the summary line.
        for line in router_warnings(&logs, ROUTER_WARNINGS) {
            progress.say(format_args!("{line}"));
        }
    }
    for topic in report.topics.iter().filter(|t| !t.clean()) {
        for example in &topic.examples {
            progress.say(format_args!("{}: {example}", topic.topic));
        }
    }
    Ok(report)
}

/// How many of its last warnings each router log shows when a run fails.
const ROUTER_WARNINGS: usize = 12;

/// The last `per_log` warnings and errors the routers logged themselves (not librdkafka's, not the
/// control followers'), each prefixed by its log's file name, logs in name order.
fn router_warnings(logs: &Path, per_log: usize) -> Vec<String> {
    let mut files: Vec<PathBuf> = fs::read_dir(logs)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap_or_default();
        let own: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("WARN switchyard_router") || l.contains("ERROR switchyard_router"))
            .collect();
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        for line in &own[own.len().saturating_sub(per_log)..] {
            out.push(format!("{name}: {line}"));
        }
    }
    out
}

/// A thread of the run panicked: a bug of this tool.
fn panicked(what: &str) -> LoadtestError {
    LoadtestError::Usage(format!("{what} panicked"))
}
