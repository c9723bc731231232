//! Four benchmarks of the plugin runtime against a real Kafka broker, with a JSON summary.
//!
//! ```sh
//! SWITCHYARD_BENCH_BOOTSTRAP=127.0.0.1:9092 cargo bench -p switchyard-plugin-runtime --bench delivery
//! ```
//!
//! 1. **Bridge versus wrk.** A no-op HTTP plugin service (axum, `200` with an empty body) on 127.0.0.1; a
//!    plugin topic pre-filled with `response.submitted` events of many teams (Avro, about 1 KiB per
//!    record); the real `switchyard-plugin-bridge` binary delivers them from the start of the topic. Its
//!    rate (first call at the service until its `done` counter reaches the count) is compared with `wrk`
//!    sending the bridge's own request (method, body and headers captured at the service) to the same
//!    endpoint with as many connections as the bridge's `max_in_flight`.
//! 2. **Key-parallel efficiency.** The same with a service that takes 50 ms per call, `teams` x
//!    `events_per_team` events: the ideal rate is `min(max_in_flight, teams) / 50 ms`. The service also
//!    counts how many calls it serves at once (max and mean) and checks each team's order: its calls must
//!    arrive one at a time and in the order produced.
//! 3. **Hot team.** One team's events (each its own response) to a service that takes 100 ms per call and
//!    whose manifest says `"ordering": "response"`: the team's lanes run concurrently, up to the per-team
//!    share of the calls (`delivery.max_in_flight_per_team`, by default a quarter of `max_in_flight`).
//!    Efficiency = rate / (per-team share / 100 ms). For the record, the same team with `"ordering":
//!    "team"` (fewer events: it runs one call at a time, ideally 10 events/s).
//! 4. **Fairness.** A topic holding the hot team's backlog, then 50 small teams sending one event per
//!    second each for a fixed window while the bridge works through the backlog (100 ms per call,
//!    `"ordering": "response"`). The service notes when each event (`webhook-id`) first arrives, the
//!    producer when it sent it: the small teams' latency, send to arrival, and its p99. A second run, side
//!    by side, has the same small teams without the backlog; the figure is p99 with / p99 without. Both
//!    runs start their window once the service saw a first call (a probe event is sent first), stop
//!    waiting for the small teams' last events after `max(window, 10 s)` (an event still missing then
//!    counts with the time it had waited: the percentile is then a lower bound), and do not drain the
//!    backlog: the bridge is stopped and the topics deleted. The small teams on the hot team's partition
//!    (the producer's murmur2 placement) are also reported apart, since Kafka gives them to the bridge
//!    only behind the backlog.
//!
//! The service runs on its own runtime in this process; the bridge and wrk are processes of their own.
//! Besides the rates, each run reports the CPU time per event of the bridge, of wrk and of the service
//! (from `/proc`), which says more than a rate on a shared machine. Results: a table on stdout and
//! `target/bench/runtime.json`; next to it the bridges' logs, the wrk script and wrk's output.
//!
//! Environment:
//!
//! | variable | meaning | default (quick) |
//! |---|---|---|
//! | `SWITCHYARD_BENCH_BOOTSTRAP` | the broker (required) | |
//! | `SWITCHYARD_BENCH_QUICK=1` | small counts, about two minutes | off |
//! | `SWITCHYARD_BENCH_SCENARIOS` | which to run, comma-separated: `bridge`, `key-parallel`, `hot-team`, `fairness` | all four |
//! | `SWITCHYARD_BENCH_EVENTS` | events of the bridge run | 50000 (5000) |
//! | `SWITCHYARD_BENCH_BRIDGE_TEAMS` | teams of the bridge run | 1000 (200) |
//! | `SWITCHYARD_BENCH_TEAMS` | teams of the key-parallel run | 200 (64) |
//! | `SWITCHYARD_BENCH_EVENTS_PER_TEAM` | events per team of the key-parallel run | 20 (10) |
//! | `SWITCHYARD_BENCH_DELAY_MS` | the key-parallel service's time per call | 50 |
//! | `SWITCHYARD_BENCH_LANE_DELAY_MS` | the hot-team and fairness services' time per call | 100 |
//! | `SWITCHYARD_BENCH_HOT_EVENTS` | events of the hot team, `"ordering": "response"` | 5000 (1000) |
//! | `SWITCHYARD_BENCH_HOT_TEAM_ORDER_EVENTS` | events of the hot team, `"ordering": "team"` | 500 (100) |
//! | `SWITCHYARD_BENCH_FAIR_BACKLOG` | the hot team's backlog in the fairness run | 50000 (5000) |
//! | `SWITCHYARD_BENCH_FAIR_TEAMS` | small teams, one event per second each | 50 |
//! | `SWITCHYARD_BENCH_FAIR_SECONDS` | the small teams' window, seconds | 30 (10) |
//! | `SWITCHYARD_BENCH_MAX_IN_FLIGHT` | the bridge's `delivery.max_in_flight` and wrk's connections | 32 |
//! | `SWITCHYARD_BENCH_MAX_IN_FLIGHT_PER_TEAM` | the bridge's `delivery.max_in_flight_per_team` | the bridge's default |
//! | `SWITCHYARD_BENCH_PARTITIONS` | partitions of the plugin topics | 6 |
//! | `SWITCHYARD_BENCH_WRK_THREADS` | wrk's threads | available cores (at most the connections) |
//! | `SWITCHYARD_BENCH_WRK` | the wrk program | `wrk` |
//! | `SWITCHYARD_BENCH_BRIDGE` | another `switchyard-plugin-bridge` binary (e.g. an older build) | this build's |
//! | `SWITCHYARD_BENCH_OUT` | directory of `runtime.json` | `target/bench` |
//!
//! Without wrk (`apt-get install wrk`) the bridge's rate is still measured; the ratio is `null`. A scenario
//! left out has `null` figures in `runtime.json`.

// The summary is one `json!` literal, deeper than the macro's default recursion allows.
#![recursion_limit = "256"]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use switchyard_fixtures::bench::{self, env_number, round};
use switchyard_fixtures::kafka::{self, Producer, Record, TopicSpec};
use switchyard_fixtures::metrics::Metrics;
use switchyard_fixtures::net::free_address;
use switchyard_fixtures::process::Supervised;
use switchyard_plugin_runtime::delivery::schedule::default_per_team;
use switchyard_schemas::ContentType;
use switchyard_schemas::envelope as h;
use switchyard_schemas::payload::encode;
use switchyard_schemas::samples::response_24_answers;
use switchyard_schemas::topics::partition_for_key;
use switchyard_service::kafka::{ClientStats, Clients, KafkaSettings};
use tokio::runtime::Runtime;

/// The targets of the issue: at least, except [`FAIRNESS_TARGET`] (at most).
const BRIDGE_TARGET: f64 = 0.7;
const KEY_PARALLEL_TARGET: f64 = 0.8;
const HOT_TEAM_TARGET: f64 = 0.8;
const FAIRNESS_TARGET: f64 = 1.5;
/// At most: the bridge's CPU microseconds per event, unbatched (issue 15).
const BRIDGE_CPU_TARGET: f64 = 40.0;
/// At least: bridge events/s in batches of [`BRIDGE_BATCH_EVENTS`] ÷ wrk requests/s (issue 15).
const BRIDGE_BATCHED_TARGET: f64 = 1.0;

type Error = String;

fn main() -> ExitCode {
    let Ok(bootstrap) = std::env::var("SWITCHYARD_BENCH_BOOTSTRAP") else {
        eprintln!(
            "delivery bench: SWITCHYARD_BENCH_BOOTSTRAP is not set. This benchmark needs a real Kafka broker, \
             e.g. `scripts/kafka start` then SWITCHYARD_BENCH_BOOTSTRAP=127.0.0.1:9092 cargo bench \
             -p switchyard-plugin-runtime --bench delivery (SWITCHYARD_BENCH_QUICK=1 for a short run)."
        );
        return ExitCode::from(2);
    };
    let config = match BenchConfig::from_env(bootstrap) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("delivery bench: {error}");
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("delivery bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Settings

/// The scenarios, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Bridge,
    KeyParallel,
    HotTeam,
    Fairness,
}

impl Scenario {
    const ALL: [Self; 4] = [Self::Bridge, Self::KeyParallel, Self::HotTeam, Self::Fairness];

    fn name(self) -> &'static str {
        match self {
            Self::Bridge => "bridge",
            Self::KeyParallel => "key-parallel",
            Self::HotTeam => "hot-team",
            Self::Fairness => "fairness",
        }
    }

    /// The scenarios of `SWITCHYARD_BENCH_SCENARIOS` (comma-separated names), all if it is not set.
    fn from_env() -> Result<Vec<Self>, Error> {
        let Ok(text) = std::env::var("SWITCHYARD_BENCH_SCENARIOS") else {
            return Ok(Self::ALL.to_vec());
        };
        let mut chosen = Vec::new();
        for name in text.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            let scenario = Self::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "SWITCHYARD_BENCH_SCENARIOS: no scenario {name:?} (known: {})",
                    known.join(", ")
                )
            })?;
            chosen.push(scenario);
        }
        if chosen.is_empty() {
            return Err("SWITCHYARD_BENCH_SCENARIOS names no scenario".into());
        }
        Ok(chosen)
    }
}

#[derive(Debug, Clone)]
struct BenchConfig {
    bootstrap: String,
    quick: bool,
    scenarios: Vec<Scenario>,
    bridge_events: usize,
    bridge_teams: usize,
    teams: usize,
    events_per_team: usize,
    delay: Duration,
    /// Time per call of the hot-team and fairness services.
    lane_delay: Duration,
    hot_events: usize,
    /// Events of the hot team's run with `"ordering": "team"`.
    hot_team_order_events: usize,
    fair_backlog: usize,
    fair_teams: usize,
    fair_window: Duration,
    max_in_flight: usize,
    /// `delivery.max_in_flight_per_team` given to the bridge; `None`: its default.
    max_in_flight_per_team: Option<usize>,
    partitions: i32,
    wrk: String,
    wrk_threads: usize,
    out: PathBuf,
    bridge_exe: PathBuf,
}

impl BenchConfig {
    fn from_env(bootstrap: String) -> Result<Self, Error> {
        let quick = bench::quick();
        let pick = |full: usize, small: usize| if quick { small } else { full };
        let max_in_flight: usize = env_number("SWITCHYARD_BENCH_MAX_IN_FLIGHT", 32)?;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let per_team = "SWITCHYARD_BENCH_MAX_IN_FLIGHT_PER_TEAM";
        let config = Self {
            bootstrap,
            quick,
            scenarios: Scenario::from_env()?,
            bridge_events: env_number("SWITCHYARD_BENCH_EVENTS", pick(50_000, 5_000))?,
            bridge_teams: env_number("SWITCHYARD_BENCH_BRIDGE_TEAMS", pick(1_000, 200))?,
            teams: env_number("SWITCHYARD_BENCH_TEAMS", pick(200, 64))?,
            events_per_team: env_number("SWITCHYARD_BENCH_EVENTS_PER_TEAM", pick(20, 10))?,
            delay: Duration::from_millis(env_number("SWITCHYARD_BENCH_DELAY_MS", 50)?),
            lane_delay: Duration::from_millis(env_number("SWITCHYARD_BENCH_LANE_DELAY_MS", 100)?),
            hot_events: env_number("SWITCHYARD_BENCH_HOT_EVENTS", pick(5_000, 1_000))?,
            hot_team_order_events: env_number("SWITCHYARD_BENCH_HOT_TEAM_ORDER_EVENTS", pick(500, 100))?,
            fair_backlog: env_number("SWITCHYARD_BENCH_FAIR_BACKLOG", pick(50_000, 5_000))?,
            fair_teams: env_number("SWITCHYARD_BENCH_FAIR_TEAMS", 50)?,
            fair_window: Duration::from_secs(env_number(
                "SWITCHYARD_BENCH_FAIR_SECONDS",
                pick(30, 10) as u64,
            )?),
            max_in_flight,
            max_in_flight_per_team: match std::env::var(per_team) {
                Err(_) => None,
                Ok(_) => Some(env_number(per_team, 0)?),
            },
            partitions: env_number("SWITCHYARD_BENCH_PARTITIONS", 6)?,
            wrk: std::env::var("SWITCHYARD_BENCH_WRK").unwrap_or_else(|_| "wrk".to_owned()),
            wrk_threads: env_number("SWITCHYARD_BENCH_WRK_THREADS", cores.min(max_in_flight))?,
            out: bench::out_dir(),
            bridge_exe: std::env::var_os("SWITCHYARD_BENCH_BRIDGE").map_or_else(
                || PathBuf::from(env!("CARGO_BIN_EXE_switchyard-plugin-bridge")),
                PathBuf::from,
            ),
        };
        if config.bridge_events == 0 || config.bridge_teams == 0 || config.teams == 0 {
            return Err("the event and team counts must be at least 1".into());
        }
        if config.events_per_team == 0 || config.max_in_flight == 0 || config.partitions < 1 {
            return Err("events per team, max_in_flight and partitions must be at least 1".into());
        }
        if config.delay.is_zero() || config.lane_delay.is_zero() {
            return Err(
                "SWITCHYARD_BENCH_DELAY_MS and SWITCHYARD_BENCH_LANE_DELAY_MS must be at least 1".into(),
            );
        }
        if config.hot_events == 0 || config.hot_team_order_events == 0 || config.fair_backlog == 0 {
            return Err("the hot team's event counts must be at least 1".into());
        }
        if config.fair_teams == 0 || config.fair_teams > 1_000 || config.fair_window.is_zero() {
            return Err("the fairness run needs 1 to 1000 small teams and a window of at least 1 s".into());
        }
        if config.max_in_flight_per_team == Some(0) {
            return Err("SWITCHYARD_BENCH_MAX_IN_FLIGHT_PER_TEAM must be at least 1".into());
        }
        Ok(config)
    }

    fn runs(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }

    /// One team's share of the calls, as the bridge's scheduler bounds it.
    fn per_team(&self) -> usize {
        self.max_in_flight_per_team
            .unwrap_or_else(|| default_per_team(self.max_in_flight))
            .clamp(1, self.max_in_flight)
    }

    fn settings_json(&self) -> Value {
        json!({
            "quick": self.quick,
            "bridge_events": self.bridge_events,
            "bridge_teams": self.bridge_teams,
            "key_parallel_teams": self.teams,
            "key_parallel_events_per_team": self.events_per_team,
            "delay_ms": self.delay.as_millis() as u64,
            "lane_delay_ms": self.lane_delay.as_millis() as u64,
            "hot_events": self.hot_events,
            "hot_team_order_events": self.hot_team_order_events,
            "fair_backlog": self.fair_backlog,
            "fair_teams": self.fair_teams,
            "fair_window_seconds": self.fair_window.as_secs(),
            "scenarios": self.scenarios.iter().map(|s| s.name()).collect::<Vec<_>>(),
            "max_in_flight": self.max_in_flight,
            "max_in_flight_per_team": self.per_team(),
            "partitions": self.partitions,
            "wrk_threads": self.wrk_threads,
            "cores": std::thread::available_parallelism().map_or(0, usize::from),
        })
    }
}

// ---------------------------------------------------------------------------------------------------------
// The plugin service

/// What the service saw.
struct Served {
    base: Instant,
    requests: AtomicU64,
    /// Nanoseconds since `base` of the first call's start (`u64::MAX`: none yet).
    first_start: AtomicU64,
    /// Nanoseconds since `base` of the last call's end.
    last_end: AtomicU64,
    in_flight: AtomicI64,
    max_in_flight: AtomicI64,
    /// Sum of the calls' durations, nanoseconds: divided by the window, the mean concurrency.
    busy: AtomicU64,
    /// The first `/execute` request: headers and body.
    captured: OnceLock<(Vec<(String, String)>, Bytes)>,
    /// Per-team order, if the service checks it.
    order: Option<Mutex<OrderCheck>>,
    /// When each event (`webhook-id`) first arrived, if the service keeps that.
    arrivals: Option<Mutex<HashMap<String, Instant>>>,
}

#[derive(Default)]
struct OrderCheck {
    /// Per team, the sequence number expected next.
    next: HashMap<String, u64>,
    /// Teams with a call in progress.
    running: HashSet<String>,
    /// Calls not in the produced order (or repeated, or not parseable).
    violations: u64,
    /// Calls that started while another call of the same team was in progress.
    overlaps: u64,
}

/// A snapshot of [`Served`].
#[derive(Debug, Clone, Copy, Default)]
struct ServedStats {
    requests: u64,
    window: Duration,
    max_concurrent: i64,
    mean_concurrent: f64,
    /// Mean time of one call inside the service's handler.
    mean_call: Duration,
    violations: u64,
    overlaps: u64,
}

impl Served {
    fn new(kind: ServiceKind) -> Self {
        Self {
            base: Instant::now(),
            requests: AtomicU64::new(0),
            first_start: AtomicU64::new(u64::MAX),
            last_end: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            max_in_flight: AtomicI64::new(0),
            busy: AtomicU64::new(0),
            captured: OnceLock::new(),
            order: kind.check_order.then(|| Mutex::new(OrderCheck::default())),
            arrivals: kind.arrivals.then(|| Mutex::new(HashMap::new())),
        }
    }

    /// When each of `ids` first arrived (`None`: not yet, or arrivals are not kept).
    fn arrived<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<Option<Instant>> {
        let Some(arrivals) = &self.arrivals else {
            return ids.into_iter().map(|_| None).collect();
        };
        let arrivals = arrivals.lock().unwrap_or_else(|p| p.into_inner());
        ids.into_iter().map(|id| arrivals.get(id).copied()).collect()
    }

    /// How many events whose id starts with `prefix` arrived, in all and within `from..=to`.
    fn arrived_with_prefix(&self, prefix: &str, from: Instant, to: Instant) -> (usize, usize) {
        let Some(arrivals) = &self.arrivals else {
            return (0, 0);
        };
        let arrivals = arrivals.lock().unwrap_or_else(|p| p.into_inner());
        arrivals
            .iter()
            .filter(|(id, _)| id.starts_with(prefix))
            .fold((0, 0), |(all, within), (_, at)| {
                (all + 1, within + usize::from((from..=to).contains(at)))
            })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Forgets the counts (call while idle).
    fn reset(&self) {
        self.requests.store(0, Ordering::SeqCst);
        self.first_start.store(u64::MAX, Ordering::SeqCst);
        self.last_end.store(0, Ordering::SeqCst);
        self.max_in_flight.store(0, Ordering::SeqCst);
        self.busy.store(0, Ordering::SeqCst);
    }

    /// When the first call started.
    fn first_start(&self) -> Option<Instant> {
        match self.first_start.load(Ordering::SeqCst) {
            u64::MAX => None,
            nanos => Some(self.base + Duration::from_nanos(nanos)),
        }
    }

    fn stats(&self) -> ServedStats {
        let first = self.first_start.load(Ordering::SeqCst);
        let last = self.last_end.load(Ordering::SeqCst);
        let window = Duration::from_nanos(last.saturating_sub(first));
        let busy_nanos = self.busy.load(Ordering::SeqCst);
        let busy = busy_nanos as f64 / 1e9;
        let requests = self.requests.load(Ordering::SeqCst);
        let (violations, overlaps) = self.order.as_ref().map_or((0, 0), |order| {
            let order = order.lock().unwrap_or_else(|p| p.into_inner());
            (order.violations, order.overlaps)
        });
        ServedStats {
            requests,
            window,
            mean_call: Duration::from_nanos(busy_nanos / requests.max(1)),
            max_concurrent: self.max_in_flight.load(Ordering::SeqCst),
            mean_concurrent: if window.is_zero() {
                0.0
            } else {
                busy / window.as_secs_f64()
            },
            violations,
            overlaps,
        }
    }
}

impl OrderCheck {
    fn begin(&mut self, team: &str, id: &str) {
        if !self.running.insert(team.to_owned()) {
            self.overlaps += 1;
        }
        let seq = id
            .rsplit_once('.')
            .filter(|(prefix, _)| *prefix == team)
            .and_then(|(_, seq)| seq.parse::<u64>().ok());
        let expected = self.next.entry(team.to_owned()).or_insert(0);
        match seq {
            Some(seq) if seq == *expected => *expected += 1,
            Some(seq) => {
                self.violations += 1;
                *expected = seq + 1;
            }
            None => self.violations += 1,
        }
    }

    fn end(&mut self, team: &str) {
        self.running.remove(team);
    }
}

/// How a plugin service behaves.
#[derive(Debug, Clone, Copy)]
struct ServiceKind {
    /// Time per call.
    delay: Duration,
    /// The manifest's `ordering`; `None` leaves it out (the default, `"team"`).
    ordering: Option<&'static str>,
    /// Check that each team's calls arrive one at a time and in the produced order (which only `"team"`
    /// ordering promises).
    check_order: bool,
    /// Keep when each event first arrived (for latencies).
    arrivals: bool,
    /// The manifest's `batch.max_events` (`max_wait_ms` 20); `None` leaves `batch` out.
    batch: Option<u32>,
}

impl ServiceKind {
    /// Answers at once; checks and keeps nothing.
    const NO_OP: Self = Self {
        delay: Duration::ZERO,
        ordering: None,
        check_order: false,
        arrivals: false,
        batch: None,
    };
}

/// `max_events` of the batched bridge run.
const BRIDGE_BATCH_EVENTS: u32 = 50;
/// Teams of the batched bridge run: a batch holds one team's events of one partition, so with the
/// unbatched run's 1,000 teams (50 events each, interleaved) calls held 2.6 events on average.
const BRIDGE_BATCH_TEAMS: usize = 10;

struct Service {
    served: Served,
    delay: Duration,
    manifest: Value,
}

fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn execute(State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let served = &service.served;
    let received = Instant::now();
    let start = served.now();
    if let Some(arrivals) = &served.arrivals {
        arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(header_text(&headers, "webhook-id"))
            .or_insert(received);
    }
    served.first_start.fetch_min(start, Ordering::SeqCst);
    let now = served.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    served.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if served.captured.get().is_none() {
        let copied = headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let _ = served.captured.set((copied, body.clone()));
    }
    let team = served.order.as_ref().map(|order| {
        let team = header_text(&headers, "switchyard-team");
        let id = header_text(&headers, "webhook-id");
        order.lock().unwrap_or_else(|p| p.into_inner()).begin(&team, &id);
        team
    });
    if !service.delay.is_zero() {
        tokio::time::sleep(service.delay).await;
    }
    if let (Some(order), Some(team)) = (&served.order, team) {
        order.lock().unwrap_or_else(|p| p.into_inner()).end(&team);
    }
    served.in_flight.fetch_sub(1, Ordering::SeqCst);
    let end = served.now();
    served.busy.fetch_add(end.saturating_sub(start), Ordering::SeqCst);
    served.last_end.fetch_max(end, Ordering::SeqCst);
    served.requests.fetch_add(1, Ordering::SeqCst);
    drop(body);
    StatusCode::OK
}

/// Starts a plugin service for `plugin` on the service runtime; returns its base URL and state.
fn start_service(
    runtime: &Runtime,
    plugin: &str,
    kind: ServiceKind,
) -> Result<(String, Arc<Service>), Error> {
    let mut manifest = json!({"id": plugin, "name": format!("Benchmark {plugin}"), "version": "1.0.0",
                              "events": ["response.submitted"], "actions": []});
    if let Some(ordering) = kind.ordering {
        manifest["ordering"] = json!(ordering);
    }
    if let Some(max_events) = kind.batch {
        manifest["batch"] = json!({"max_events": max_events, "max_wait_ms": 20});
    }
    let service = Arc::new(Service {
        served: Served::new(kind),
        delay: kind.delay,
        manifest,
    });
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| format!("binding the plugin service failed: {e}"))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("the service's address: {e}"))?;
    let app = Router::new()
        .route(
            "/metadata",
            get(|State(service): State<Arc<Service>>| async move { axum::Json(service.manifest.clone()) }),
        )
        .route("/execute", post(execute))
        .with_state(Arc::clone(&service));
    runtime.spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{address}"), service))
}

// ---------------------------------------------------------------------------------------------------------
// Kafka: topics and events

/// The topics of one plugin deployment.
struct Topics {
    plugin: String,
    events_template: String,
    dead_letter_template: String,
    events: String,
    dead_letter: String,
    results: String,
    configs: String,
}

impl Topics {
    fn new(plugin: &str) -> Self {
        let prefix = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let events_template = format!("{prefix}.plugin.{{plugin}}.events");
        let dead_letter_template = format!("{prefix}.plugin.{{plugin}}.dlq");
        Self {
            plugin: plugin.to_owned(),
            events: events_template.replace("{plugin}", plugin),
            dead_letter: dead_letter_template.replace("{plugin}", plugin),
            events_template,
            dead_letter_template,
            results: format!("{prefix}.core.plugin-results"),
            configs: format!("{prefix}.configs"),
        }
    }

    fn all(&self) -> [&str; 4] {
        [&self.events, &self.dead_letter, &self.results, &self.configs]
    }
}

/// The benchmark's clients of the broker at `bootstrap`. Its producer sends uncompressed records (the
/// fixtures' producer compresses with zstd by default), so that the bridge's figures include no
/// decompression and stay comparable across runs.
fn clients(bootstrap: &str) -> Clients {
    let settings = KafkaSettings {
        producer_options: BTreeMap::from([("compression.type".to_owned(), "none".to_owned())]),
        ..KafkaSettings::bootstrap(bootstrap)
    };
    Clients::new(settings, ClientStats::unregistered()).with_statistics_interval(Duration::ZERO)
}

fn create_topics(bootstrap: &str, topics: &Topics, partitions: i32) -> Result<(), Error> {
    let specs = [
        TopicSpec::new(&topics.events, partitions),
        TopicSpec::new(&topics.dead_letter, 1),
        TopicSpec::new(&topics.results, 1),
        TopicSpec::compacted(&topics.configs, 1),
    ];
    for created in kafka::create_topics(&clients(bootstrap), &specs).map_err(|e| e.to_string())? {
        if let kafka::Created::Existed(topic) = created {
            return Err(format!("the topic {topic} exists already"));
        }
    }
    Ok(())
}

fn delete_topics(bootstrap: &str, topics: &Topics) {
    if let Err(error) = kafka::delete_topics(&clients(bootstrap), &topics.all()) {
        eprintln!("note: deleting the benchmark's topics failed: {error}");
    }
}

fn team_name(index: usize) -> String {
    format!("team-{index:05}")
}

/// The benchmark's event `id` of `team`: a `response.submitted` with 24 answers (Avro) whose `ce_id` and
/// response id are both `id`, keyed by the team. Returns the record and its bytes (value, key and headers).
fn event_record(team: &str, id: &str) -> Result<(Record, usize), Error> {
    let value = encode(&response_24_answers(team, id), ContentType::Avro)
        .map_err(|e| format!("encoding failed: {e}"))?;
    let headers = [
        (h::SPECVERSION, h::SPECVERSION_1_0),
        (h::ID, id),
        (h::SOURCE, "/switchyard/bench"),
        (h::TYPE, "response.submitted"),
        (h::TIME, "2026-11-22T10:00:00Z"),
        (h::SUBJECT, "form-household-survey-2026"),
        (h::TEAMID, team),
        (
            h::TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        (h::CONTENT_TYPE, ContentType::Avro.media_type()),
    ];
    let bytes = value.len()
        + team.len()
        + headers
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum::<usize>();
    let record = Record {
        key: Some(team.as_bytes().to_vec()),
        value: Some(value),
        headers: headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
            .collect(),
    };
    Ok((record, bytes))
}

fn producer(bootstrap: &str) -> Result<Producer, Error> {
    Producer::new(&clients(bootstrap)).map_err(|e| e.to_string())
}

fn send(producer: &Producer, topic: &str, record: &Record) -> Result<(), Error> {
    producer.send(topic, record).map_err(|e| e.to_string())
}

fn flush(producer: &Producer) -> Result<(), Error> {
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| format!("the broker did not acknowledge every event: {e}"))
}

/// Produces `count` events, the i-th of team `i % teams` with sequence number `i / teams` (so every team's
/// events are spread over the whole topic, as with live traffic); its `ce_id` is `<team>.<seq>`. Returns
/// the bytes of one record (value plus headers).
fn produce(bootstrap: &str, topic: &str, teams: usize, count: usize) -> Result<usize, Error> {
    let producer = producer(bootstrap)?;
    let mut record_bytes = 0;
    for i in 0..count {
        let team = team_name(i % teams);
        let (record, bytes) = event_record(&team, &format!("{team}.{}", i / teams))?;
        if i == 0 {
            record_bytes = bytes;
        }
        send(&producer, topic, &record)?;
    }
    flush(&producer)?;
    Ok(record_bytes)
}

// ---------------------------------------------------------------------------------------------------------
// CPU time, from /proc (Linux; `None` elsewhere)

/// Clock ticks per second of the times in `/proc/*/stat`.
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The fields of a `/proc/.../stat` line after the command name, which may hold spaces.
fn stat_fields(path: &Path) -> Option<(String, Vec<u64>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text[open + 1..close].to_owned();
    // Field 3 (state) is not a number; the list starts at field 4 so field n is at index n - 4.
    let numbers = text[close + 1..]
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse::<i64>().map_or(0, |n| n.max(0) as u64))
        .collect();
    Some((name, numbers))
}

fn ticks_to_seconds(ticks: u64) -> f64 {
    ticks as f64 / clock_ticks()
}

/// User plus system CPU seconds of process `pid`.
fn process_cpu(pid: u32) -> Option<f64> {
    let (_, fields) = stat_fields(&PathBuf::from(format!("/proc/{pid}/stat")))?;
    Some(ticks_to_seconds(fields.get(10)? + fields.get(11)?))
}

/// User plus system CPU seconds of this process's waited-for children.
fn children_cpu() -> Option<f64> {
    let (_, fields) = stat_fields(Path::new("/proc/self/stat"))?;
    Some(ticks_to_seconds(fields.get(12)? + fields.get(13)?))
}

/// User plus system CPU seconds of this process's threads named `name` (the plugin services' runtime).
fn threads_cpu(name: &str) -> Option<f64> {
    let mut ticks = 0;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        if let Some((comm, fields)) = stat_fields(&entry.path().join("stat"))
            && comm == name
        {
            ticks += fields.get(10)? + fields.get(11)?;
        }
    }
    Some(ticks_to_seconds(ticks))
}

/// Microseconds of CPU per item, if both readings exist.
fn per_item_us(before: Option<f64>, after: Option<f64>, items: u64) -> Option<f64> {
    let (before, after) = (before?, after?);
    (items > 0).then(|| (after - before) * 1e6 / items as f64)
}

const SERVICE_THREADS: &str = "plugin-service";

// ---------------------------------------------------------------------------------------------------------
// The bridge process

/// A `switchyard-plugin-bridge` process, killed when dropped.
struct Bridge {
    process: Supervised,
    admin: SocketAddr,
}

impl Bridge {
    /// Starts `switchyard-plugin-bridge` for `service_url` on `topics`; its output goes to `log` (a fresh
    /// file per run).
    fn start(config: &BenchConfig, topics: &Topics, service_url: &str, log: PathBuf) -> Result<Self, Error> {
        let admin = free_address().map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&log);
        let group = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let settings = [
            ("KAFKA__BOOTSTRAP_SERVERS", config.bootstrap.as_str()),
            ("TOPICS__EVENTS_TEMPLATE", &topics.events_template),
            ("TOPICS__DEAD_LETTER_TEMPLATE", &topics.dead_letter_template),
            ("TOPICS__RESULTS", &topics.results),
            ("TOPICS__CONFIGS", &topics.configs),
            ("DELIVERY__GROUP_ID", &group),
            ("DELIVERY__MAX_IN_FLIGHT", &config.max_in_flight.to_string()),
            ("ADMIN__LISTEN", &admin.to_string()),
            ("HTTP__URL_PATTERNS", service_url),
            ("HTTP__ALLOWED_NETWORKS", "127.0.0.1/32"),
            ("LOG__LEVEL", "warn"),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .into_iter()
        .chain(
            config
                .max_in_flight_per_team
                .map(|n| ("DELIVERY__MAX_IN_FLIGHT_PER_TEAM".to_owned(), n.to_string())),
        )
        .map(|(key, value)| (format!("SWITCHYARD_PLUGIN__{key}"), value));
        let process = Supervised::spawn(
            Command::new(&config.bridge_exe)
                .arg("--url")
                .arg(service_url)
                .envs(settings),
            &log,
        )
        .map_err(|e| e.to_string())?;
        Ok(Self { process, admin })
    }

    /// Fails if the process has exited.
    fn check_running(&mut self) -> Result<(), Error> {
        match self.process.exited() {
            None => Ok(()),
            Some(status) => Err(format!(
                "the bridge exited ({status}); its log: {}",
                self.process.log().display()
            )),
        }
    }

    /// Waits until the service saw its first call, failing if the bridge exits or `timeout` passes.
    fn wait_first_call(&mut self, served: &Served, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        while served.first_start().is_none() {
            self.check_running()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "the service saw no call within {timeout:?}; the bridge's log: {}",
                    self.process.log().display()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Stops it as SIGTERM would, killing it if it does not stop within 15 s.
    fn stop(mut self) {
        if let Err(error) = self.process.terminate(Duration::from_secs(15)) {
            eprintln!("note: {error}");
        }
    }
}

/// The bridge's outcome counters.
#[derive(Debug, Clone, Copy, Default)]
struct Outcomes {
    done: u64,
    retried: u64,
    dead_lettered: u64,
    /// `switchyard_plugin_in_flight` and `switchyard_plugin_buffered` at the last poll.
    in_flight: f64,
    buffered: f64,
}

fn parse_outcomes(text: &str) -> Outcomes {
    let metrics = Metrics::parse(text);
    let events =
        |outcome: &str| metrics.value("switchyard_plugin_events_total", &[("outcome", outcome)]) as u64;
    Outcomes {
        done: events("done"),
        retried: events("retried"),
        dead_lettered: events("dead_lettered"),
        in_flight: metrics.value("switchyard_plugin_in_flight", &[]),
        buffered: metrics.value("switchyard_plugin_buffered", &[]),
    }
}

/// Samples of the bridge's gauges while it delivers: the means of its calls in flight and events held.
#[derive(Debug, Clone, Copy, Default)]
struct Gauges {
    samples: u64,
    in_flight: f64,
    buffered: f64,
    /// CPU seconds of the bridge and of the service threads when the first call was seen, and at the end.
    bridge_cpu: (Option<f64>, Option<f64>),
    service_cpu: (Option<f64>, Option<f64>),
}

/// Polls the bridge's `/metrics` until `total` events are done or dead-lettered; returns when that was
/// seen (within the 10 ms polling period), the counters, and the gauges' means from the service's first
/// call on.
fn wait_done(
    runtime: &Runtime,
    bridge: &mut Bridge,
    served: &Served,
    total: u64,
    timeout: Duration,
) -> Result<(Instant, Outcomes, Gauges), Error> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("http://{}/metrics", bridge.admin);
    let deadline = Instant::now() + timeout;
    let mut last = Outcomes::default();
    let mut gauges = Gauges::default();
    let mut next_check = Instant::now();
    loop {
        let seen = runtime.block_on(async {
            let response = client.get(&url).send().await.ok()?;
            response.text().await.ok()
        });
        let at = Instant::now();
        if let Some(text) = seen {
            last = parse_outcomes(&text);
            if last.done + last.dead_lettered >= total {
                gauges.bridge_cpu.1 = process_cpu(bridge.process.pid());
                gauges.service_cpu.1 = threads_cpu(SERVICE_THREADS);
                if gauges.samples > 0 {
                    gauges.in_flight /= gauges.samples as f64;
                    gauges.buffered /= gauges.samples as f64;
                }
                return Ok((at, last, gauges));
            }
            if served.first_start().is_some() {
                if gauges.samples == 0 {
                    gauges.bridge_cpu.0 = process_cpu(bridge.process.pid());
                    gauges.service_cpu.0 = threads_cpu(SERVICE_THREADS);
                }
                gauges.samples += 1;
                gauges.in_flight += last.in_flight;
                gauges.buffered += last.buffered;
            }
        }
        if at > deadline {
            return Err(format!(
                "not done within {timeout:?}: {} done, {} dead-lettered of {total}; the bridge's log: {}",
                last.done,
                last.dead_lettered,
                bridge.process.log().display()
            ));
        }
        if at >= next_check {
            bridge.check_running()?;
            next_check = at + Duration::from_millis(500);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One delivery run of the bridge over a pre-filled topic.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    events: u64,
    seconds: f64,
    events_per_s: f64,
    outcomes: Outcomes,
    gauges: Gauges,
    served: ServedStats,
    /// CPU microseconds per event of the bridge process and of the service, from the first call on (the
    /// events done before the first CPU reading, within one 10 ms poll, are few).
    bridge_cpu_us: Option<f64>,
    service_cpu_us: Option<f64>,
}

/// Starts the bridge on `topics` (already filled with `total` events) and measures from the service's
/// first call until the bridge counts every event done.
fn deliver(
    runtime: &Runtime,
    config: &BenchConfig,
    topics: &Topics,
    url: &str,
    service: &Service,
    total: u64,
    timeout: Duration,
) -> Result<Delivery, Error> {
    service.served.reset();
    let log = config.out.join(format!("bridge-{}.log", topics.plugin));
    let mut bridge = Bridge::start(config, topics, url, log)?;
    let (done_at, outcomes, gauges) = wait_done(runtime, &mut bridge, &service.served, total, timeout)?;
    let served = service.served.stats();
    bridge.stop();
    let first = service.served.first_start().ok_or("the service saw no call")?;
    let seconds = done_at.duration_since(first).as_secs_f64();
    Ok(Delivery {
        events: total,
        seconds,
        events_per_s: total as f64 / seconds,
        outcomes,
        gauges,
        served,
        bridge_cpu_us: per_item_us(gauges.bridge_cpu.0, gauges.bridge_cpu.1, total),
        service_cpu_us: per_item_us(gauges.service_cpu.0, gauges.service_cpu.1, served.requests),
    })
}

// ---------------------------------------------------------------------------------------------------------
// wrk

#[derive(Debug, Clone)]
struct Wrk {
    requests_per_s: f64,
    requests: u64,
    seconds: u64,
    non_2xx: u64,
    socket_errors: String,
    served: ServedStats,
    /// CPU microseconds per request of wrk and of the service.
    wrk_cpu_us: Option<f64>,
    service_cpu_us: Option<f64>,
}

/// A Lua long string holding `text` verbatim.
fn lua_long_string(text: &str) -> String {
    let mut level = 0;
    while text.contains(&format!("]{}]", "=".repeat(level))) {
        level += 1;
    }
    let eq = "=".repeat(level);
    format!("[{eq}[{text}]{eq}]")
}

/// A wrk script sending the captured request: POST, the same body and headers (wrk sets Host and
/// Content-Length itself).
fn wrk_script(headers: &[(String, String)], body: &[u8]) -> String {
    let mut script =
        String::from("-- Written by the delivery benchmark: the bridge's own /execute request.\n");
    script.push_str("wrk.method = \"POST\"\n");
    let _ = writeln!(
        script,
        "wrk.body = {}",
        lua_long_string(&String::from_utf8_lossy(body))
    );
    for (name, value) in headers {
        if name == "host" || name == "content-length" {
            continue;
        }
        let _ = writeln!(
            script,
            "wrk.headers[ {} ] = {}",
            lua_long_string(name),
            lua_long_string(value)
        );
    }
    script
}

fn wrk_available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn number_after<T: std::str::FromStr>(output: &str, label: &str) -> Option<T> {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn run_wrk(config: &BenchConfig, url: &str, service: &Service, seconds: u64) -> Result<Wrk, Error> {
    let (headers, body) = service
        .served
        .captured
        .get()
        .ok_or("no request of the bridge was captured")?;
    let script = config.out.join("wrk-execute.lua");
    std::fs::write(&script, wrk_script(headers, body))
        .map_err(|e| format!("writing {}: {e}", script.display()))?;
    service.served.reset();
    let (wrk_before, service_before) = (children_cpu(), threads_cpu(SERVICE_THREADS));
    let output = Command::new(&config.wrk)
        .arg(format!("-t{}", config.wrk_threads))
        .arg(format!("-c{}", config.max_in_flight))
        .arg(format!("-d{seconds}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(&script)
        .arg(format!("{url}/execute"))
        .output()
        .map_err(|e| format!("running {} failed: {e}", config.wrk))?;
    let (wrk_after, service_after) = (children_cpu(), threads_cpu(SERVICE_THREADS));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let _ = std::fs::write(config.out.join("wrk.txt"), &text);
    if !output.status.success() {
        return Err(format!(
            "wrk failed ({}): {}{}",
            output.status,
            text,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let non_2xx: u64 = number_after(&text, "Non-2xx or 3xx responses:").unwrap_or(0);
    if non_2xx > 0 {
        return Err(format!(
            "the service refused {non_2xx} of wrk's requests, so its rate is no comparison:\n{text}"
        ));
    }
    let requests_per_s = number_after::<f64>(&text, "Requests/sec:")
        .ok_or_else(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let requests = text
        .lines()
        .find(|line| line.contains(" requests in "))
        .and_then(|line| line.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(Wrk {
        requests_per_s,
        requests,
        seconds,
        non_2xx,
        wrk_cpu_us: per_item_us(wrk_before, wrk_after, requests),
        service_cpu_us: per_item_us(service_before, service_after, service.served.stats().requests),
        socket_errors: text
            .lines()
            .find_map(|line| line.trim().strip_prefix("Socket errors:"))
            .unwrap_or("none")
            .trim()
            .to_owned(),
        served: service.served.stats(),
    })
}

// ---------------------------------------------------------------------------------------------------------
// The scenarios

/// Scenario 1: the bridge to a no-op service, then wrk sending the bridge's request.
struct BridgeRun {
    delivery: Delivery,
    /// The same events to the same no-op service with `batch.max_events` [`BRIDGE_BATCH_EVENTS`].
    batched: Delivery,
    wrk: Option<Wrk>,
    /// Why there is no wrk figure.
    wrk_error: Option<String>,
    /// Bridge events/s / wrk requests/s.
    ratio: Option<f64>,
    record_bytes: usize,
    body_bytes: usize,
}

fn run_bridge(runtime: &Runtime, services: &Runtime, config: &BenchConfig) -> Result<BridgeRun, Error> {
    let wrk_found = wrk_available(&config.wrk);
    let mut wrk_error = None;
    if !wrk_found {
        wrk_error = Some(format!("`{}` was not found", config.wrk));
        eprintln!(
            "note: `{}` was not found (Debian: apt-get install wrk); the bridge is measured, the ratio is null",
            config.wrk
        );
    }
    println!(
        "bridge: filling a topic with {} events of {} teams ...",
        config.bridge_events, config.bridge_teams
    );
    let topics = Topics::new("bench-noop");
    create_topics(&config.bootstrap, &topics, config.partitions)?;
    let record_bytes = produce(
        &config.bootstrap,
        &topics.events,
        config.bridge_teams,
        config.bridge_events,
    )?;
    let (url, noop) = start_service(services, "bench-noop", ServiceKind::NO_OP)?;
    println!("bridge: delivering to a no-op service at {url} ...");
    let delivery = deliver(
        runtime,
        config,
        &topics,
        &url,
        &noop,
        config.bridge_events as u64,
        Duration::from_secs(120 + config.bridge_events as u64 / 100),
    )?;
    let body_bytes = noop.served.captured.get().map_or(0, |(_, body)| body.len());
    let wrk = if wrk_found {
        let seconds = delivery.seconds.ceil().max(2.0) as u64;
        println!(
            "wrk: {} connections, {} threads, {seconds} s against the same endpoint ...",
            config.max_in_flight, config.wrk_threads
        );
        match run_wrk(config, &url, &noop, seconds) {
            Ok(wrk) => Some(wrk),
            Err(error) => {
                eprintln!("note: {error}; no ratio");
                wrk_error = Some(error);
                None
            }
        }
    } else {
        None
    };
    delete_topics(&config.bootstrap, &topics);
    println!(
        "bridge: {} events of {BRIDGE_BATCH_TEAMS} teams in batches of {BRIDGE_BATCH_EVENTS} ...",
        config.bridge_events
    );
    let topics = Topics::new("bench-noop-batch");
    create_topics(&config.bootstrap, &topics, config.partitions)?;
    produce(
        &config.bootstrap,
        &topics.events,
        BRIDGE_BATCH_TEAMS,
        config.bridge_events,
    )?;
    let kind = ServiceKind {
        batch: Some(BRIDGE_BATCH_EVENTS),
        ..ServiceKind::NO_OP
    };
    let (url, noop) = start_service(services, "bench-noop-batch", kind)?;
    let batched = deliver(
        runtime,
        config,
        &topics,
        &url,
        &noop,
        config.bridge_events as u64,
        Duration::from_secs(120 + config.bridge_events as u64 / 100),
    )?;
    delete_topics(&config.bootstrap, &topics);
    Ok(BridgeRun {
        ratio: wrk.as_ref().map(|w| delivery.events_per_s / w.requests_per_s),
        delivery,
        batched,
        wrk,
        wrk_error,
        record_bytes,
        body_bytes,
    })
}

impl BridgeRun {
    /// Batched bridge events/s ÷ wrk requests/s.
    fn batched_ratio(&self) -> Option<f64> {
        self.wrk
            .as_ref()
            .map(|w| self.batched.events_per_s / w.requests_per_s)
    }
}

/// Scenario 2: many teams, one call at a time each, to a slow service.
struct KeyParallel {
    run: Delivery,
    events: usize,
    /// `min(max_in_flight, teams) / delay`, events/s.
    ideal: f64,
    efficiency: f64,
}

fn run_key_parallel(
    runtime: &Runtime,
    services: &Runtime,
    config: &BenchConfig,
) -> Result<KeyParallel, Error> {
    let events = config.teams * config.events_per_team;
    println!(
        "key-parallel: filling a topic with {} teams x {} events ...",
        config.teams, config.events_per_team
    );
    let topics = Topics::new("bench-slow");
    create_topics(&config.bootstrap, &topics, config.partitions)?;
    produce(&config.bootstrap, &topics.events, config.teams, events)?;
    let kind = ServiceKind {
        delay: config.delay,
        check_order: true,
        ..ServiceKind::NO_OP
    };
    let (url, slow) = start_service(services, "bench-slow", kind)?;
    let ideal = config.max_in_flight.min(config.teams) as f64 / config.delay.as_secs_f64();
    println!(
        "key-parallel: delivering to a service taking {} ms per call (ideal {ideal:.0} events/s) ...",
        config.delay.as_millis()
    );
    let run = deliver(
        runtime,
        config,
        &topics,
        &url,
        &slow,
        events as u64,
        Duration::from_secs_f64(120.0 + 4.0 * events as f64 / ideal),
    )?;
    delete_topics(&config.bootstrap, &topics);
    Ok(KeyParallel {
        efficiency: run.events_per_s / ideal,
        run,
        events,
        ideal,
    })
}

/// Scenario 3: one team's events, each its own response, with `"ordering": "response"` and, for the
/// record, `"ordering": "team"`.
struct HotTeam {
    /// The team's share of the calls.
    per_team: usize,
    /// `per_team / lane_delay`, events/s.
    ideal: f64,
    efficiency: f64,
    /// With `"ordering": "response"`.
    response: Delivery,
    /// With `"ordering": "team"`: one call at a time, ideally `1 / lane_delay`.
    team: Delivery,
}

fn run_hot_team(runtime: &Runtime, services: &Runtime, config: &BenchConfig) -> Result<HotTeam, Error> {
    let per_team = config.per_team();
    let ideal = per_team as f64 / config.lane_delay.as_secs_f64();
    println!(
        "hot team: {} events of one team, {} ms per call, \"ordering\": \"response\", {per_team} calls per \
         team (ideal {ideal:.0} events/s) ...",
        config.hot_events,
        config.lane_delay.as_millis()
    );
    let response = hot_team_delivery(runtime, services, config, "response", config.hot_events, ideal)?;
    let serial = 1.0 / config.lane_delay.as_secs_f64();
    println!(
        "hot team: {} events, \"ordering\": \"team\" (ideal {serial:.0} events/s) ...",
        config.hot_team_order_events
    );
    let team = hot_team_delivery(
        runtime,
        services,
        config,
        "team",
        config.hot_team_order_events,
        serial,
    )?;
    Ok(HotTeam {
        per_team,
        ideal,
        efficiency: response.events_per_s / ideal,
        response,
        team,
    })
}

/// Delivers `events` of one team, each its own response, to a service whose manifest has `ordering`;
/// `ideal` (events/s) sets the timeout.
fn hot_team_delivery(
    runtime: &Runtime,
    services: &Runtime,
    config: &BenchConfig,
    ordering: &'static str,
    events: usize,
    ideal: f64,
) -> Result<Delivery, Error> {
    let topics = Topics::new(&format!("bench-hot-{ordering}"));
    create_topics(&config.bootstrap, &topics, config.partitions)?;
    produce(&config.bootstrap, &topics.events, 1, events)?;
    let kind = ServiceKind {
        delay: config.lane_delay,
        ordering: Some(ordering),
        // Only one lane per team promises one call at a time in the produced order.
        check_order: ordering == "team",
        arrivals: false,
        batch: None,
    };
    let (url, service) = start_service(services, &topics.plugin, kind)?;
    let run = deliver(
        runtime,
        config,
        &topics,
        &url,
        &service,
        events as u64,
        Duration::from_secs_f64(120.0 + 4.0 * events as f64 / ideal),
    )?;
    delete_topics(&config.bootstrap, &topics);
    Ok(run)
}

/// Latency percentiles in milliseconds (nearest rank).
#[derive(Debug, Clone, Copy, Default)]
struct Latencies {
    count: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    /// The p99 may be too low: an event at or below its rank had not arrived when the wait ended, and
    /// counts with the time it had waited by then.
    p99_lower_bound: bool,
}

impl Latencies {
    /// Of `(latency, arrived)` samples.
    fn of(mut samples: Vec<(Duration, bool)>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let rank = |q: f64| ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        let ms = |index: usize| samples[index].0.as_secs_f64() * 1e3;
        let p99 = rank(0.99);
        Self {
            count: n,
            p50: ms(rank(0.5)),
            p90: ms(rank(0.9)),
            p99: ms(p99),
            max: ms(n - 1),
            p99_lower_bound: samples[..=p99].iter().any(|(_, arrived)| !arrived),
        }
    }

    fn json(&self) -> Value {
        json!({
            "events": self.count,
            "p50": round(self.p50, 1),
            "p90": round(self.p90, 1),
            "p99": round(self.p99, 1),
            "max": round(self.max, 1),
            "p99_lower_bound": self.p99_lower_bound,
        })
    }

    fn text(&self) -> String {
        let bound = if self.p99_lower_bound {
            " (p99 at least)"
        } else {
            ""
        };
        format!(
            "{:.0} / {:.0} / {:.0} / {:.0} ms{bound}",
            self.p50, self.p90, self.p99, self.max
        )
    }
}

/// One run of scenario 4: the small teams' window, with or without the hot team's backlog.
struct FairRun {
    backlog: usize,
    /// The small teams' events sent in the window, and how many arrived before the wait ended.
    sent: usize,
    arrived: usize,
    window: Duration,
    /// Send to arrival at the service, of every small team's event.
    latency: Latencies,
    /// The same, of the small teams on the hot team's partition and of the others.
    on_hot_partition: Latencies,
    elsewhere: Latencies,
    /// The hot team's events that arrived during the window, per second.
    hot_events_per_s: f64,
    /// Whether the hot team still had events not delivered when the window ended.
    hot_backlogged: bool,
    served: ServedStats,
}

impl FairRun {
    fn json(&self) -> Value {
        json!({
            "backlog": self.backlog,
            "small_events_sent": self.sent,
            "small_events_arrived": self.arrived,
            "window_seconds": round(self.window.as_secs_f64(), 3),
            "latency_ms": self.latency.json(),
            "on_hot_partition_latency_ms": self.on_hot_partition.json(),
            "other_partitions_latency_ms": self.elsewhere.json(),
            "hot_events_per_s": round(self.hot_events_per_s, 1),
            "hot_backlogged_at_window_end": self.hot_backlogged,
            "service_requests": self.served.requests,
            "service_max_concurrent": self.served.max_concurrent,
            "service_mean_call_ms": round(self.served.mean_call.as_secs_f64() * 1e3, 2),
        })
    }
}

/// Scenario 4: the small teams' latency with and without the hot team's backlog.
struct Fairness {
    with: FairRun,
    without: FairRun,
    hot_partition: i32,
    teams_on_hot_partition: usize,
    /// p99 with / p99 without.
    ratio: Option<f64>,
}

/// The small teams of the fairness scenario.
fn small_team(index: usize) -> String {
    format!("small-{index:03}")
}

fn run_fairness(services: &Runtime, config: &BenchConfig) -> Result<Fairness, Error> {
    let hot_partition = partition_for_key(team_name(0).as_bytes(), config.partitions);
    let teams_on_hot_partition = (0..config.fair_teams)
        .filter(|i| partition_for_key(small_team(*i).as_bytes(), config.partitions) == hot_partition)
        .count();
    println!(
        "fairness: the hot team's backlog of {} events, then {} small teams x 1 event/s for {} s, {} ms per \
         call, \"ordering\": \"response\" ({teams_on_hot_partition} small teams share the hot team's \
         partition) ...",
        config.fair_backlog,
        config.fair_teams,
        config.fair_window.as_secs(),
        config.lane_delay.as_millis()
    );
    let with = fairness_run(services, config, config.fair_backlog)?;
    println!("fairness: the same small teams without the hot team ...");
    let without = fairness_run(services, config, 0)?;
    Ok(Fairness {
        ratio: (without.latency.p99 > 0.0).then(|| with.latency.p99 / without.latency.p99),
        with,
        without,
        hot_partition,
        teams_on_hot_partition,
    })
}

/// One fairness run on topics of its own: `backlog` events of the hot team first (none: no hot team).
fn fairness_run(services: &Runtime, config: &BenchConfig, backlog: usize) -> Result<FairRun, Error> {
    let topics = Topics::new(if backlog > 0 {
        "bench-fair-hot"
    } else {
        "bench-fair-alone"
    });
    create_topics(&config.bootstrap, &topics, config.partitions)?;
    let run = fairness_window(services, config, &topics, backlog);
    delete_topics(&config.bootstrap, &topics);
    run
}

fn fairness_window(
    services: &Runtime,
    config: &BenchConfig,
    topics: &Topics,
    backlog: usize,
) -> Result<FairRun, Error> {
    if backlog > 0 {
        produce(&config.bootstrap, &topics.events, 1, backlog)?;
    }
    let kind = ServiceKind {
        delay: config.lane_delay,
        ordering: Some("response"),
        check_order: false,
        arrivals: true,
        batch: None,
    };
    let (url, service) = start_service(services, &topics.plugin, kind)?;
    let producer = producer(&config.bootstrap)?;
    // A probe, so that both runs start the window once the bridge has its partitions and calls (with a
    // backlog, the hot team's first call may come before the probe's).
    send(&producer, &topics.events, &event_record("probe", "probe.0")?.0)?;
    flush(&producer)?;
    let log = config.out.join(format!("bridge-{}.log", topics.plugin));
    let mut bridge = Bridge::start(config, topics, &url, log)?;
    let run = small_teams_window(config, topics, &mut bridge, &service.served, &producer, backlog);
    bridge.stop();
    run
}

/// Sends the small teams' events, one per team per second and evenly spread, for the window; waits for
/// them at the service (at most `max(window, 10 s)` after the window); measures.
fn small_teams_window(
    config: &BenchConfig,
    topics: &Topics,
    bridge: &mut Bridge,
    served: &Served,
    producer: &Producer,
    backlog: usize,
) -> Result<FairRun, Error> {
    bridge.wait_first_call(served, Duration::from_secs(60))?;
    let teams = config.fair_teams;
    let hot_partition = partition_for_key(team_name(0).as_bytes(), config.partitions);
    let on_hot_partition: Vec<bool> = (0..teams)
        .map(|i| partition_for_key(small_team(i).as_bytes(), config.partitions) == hot_partition)
        .collect();
    let total = teams * config.fair_window.as_secs() as usize;
    let spacing = Duration::from_secs(1).div_f64(teams as f64);
    // (event id, small team, when it was handed to the producer)
    let mut sent: Vec<(String, usize, Instant)> = Vec::with_capacity(total);
    let start = Instant::now();
    for k in 0..total {
        let (team, seq) = (k % teams, k / teams);
        let name = small_team(team);
        let id = format!("{name}.{seq}");
        let (record, _) = event_record(&name, &id)?;
        // Pacing the load: the k-th event is due k spacings after the start.
        if let Some(wait) = (start + spacing.mul_f64(k as f64)).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let at = Instant::now();
        send(producer, &topics.events, &record)?;
        sent.push((id, team, at));
        if team == 0 {
            bridge.check_running()?;
        }
    }
    let window_end = Instant::now();
    let (hot_arrived, hot_in_window) =
        served.arrived_with_prefix(&format!("{}.", team_name(0)), start, window_end);
    flush(producer)?;
    let deadline = window_end + config.fair_window.max(Duration::from_secs(10));
    let arrivals = loop {
        let arrivals = served.arrived(sent.iter().map(|(id, ..)| id.as_str()));
        if arrivals.iter().all(Option::is_some) || Instant::now() >= deadline {
            break arrivals;
        }
        bridge.check_running()?;
        std::thread::sleep(Duration::from_millis(50));
    };
    let gave_up = Instant::now();
    let samples: Vec<(usize, Duration, bool)> = sent
        .iter()
        .zip(&arrivals)
        .map(|((_, team, at), arrived)| {
            let latency = arrived.unwrap_or(gave_up).saturating_duration_since(*at);
            (*team, latency, arrived.is_some())
        })
        .collect();
    let latencies = |keep: &dyn Fn(usize) -> bool| {
        Latencies::of(
            samples
                .iter()
                .filter(|(team, ..)| keep(*team))
                .map(|(_, latency, arrived)| (*latency, *arrived))
                .collect(),
        )
    };
    let window = window_end.duration_since(start);
    Ok(FairRun {
        backlog,
        sent: sent.len(),
        arrived: arrivals.iter().filter(|a| a.is_some()).count(),
        window,
        latency: latencies(&|_| true),
        on_hot_partition: latencies(&|team| on_hot_partition[team]),
        elsewhere: latencies(&|team| !on_hot_partition[team]),
        hot_events_per_s: hot_in_window as f64 / window.as_secs_f64(),
        hot_backlogged: backlog > 0 && hot_arrived < backlog,
        served: served.stats(),
    })
}

// ---------------------------------------------------------------------------------------------------------
// The run and its report

fn run(config: &BenchConfig) -> Result<(), Error> {
    std::fs::create_dir_all(&config.out).map_err(|e| format!("creating {}: {e}", config.out.display()))?;
    let config = &BenchConfig {
        out: config.out.canonicalize().unwrap_or_else(|_| config.out.clone()),
        ..config.clone()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // The plugin services get a runtime of their own, the same for the bridge and for wrk.
    let services = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVICE_THREADS)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let bridge = config
        .runs(Scenario::Bridge)
        .then(|| run_bridge(&runtime, &services, config))
        .transpose()?;
    let key_parallel = config
        .runs(Scenario::KeyParallel)
        .then(|| run_key_parallel(&runtime, &services, config))
        .transpose()?;
    let hot_team = config
        .runs(Scenario::HotTeam)
        .then(|| run_hot_team(&runtime, &services, config))
        .transpose()?;
    let fairness = config
        .runs(Scenario::Fairness)
        .then(|| run_fairness(&services, config))
        .transpose()?;

    println!();
    println!("| Figure | Value |");
    println!("| --- | ---: |");
    if let Some(bridge) = &bridge {
        print_bridge(config, bridge);
    }
    if let Some(key_parallel) = &key_parallel {
        print_key_parallel(config, key_parallel);
    }
    if let Some(hot_team) = &hot_team {
        print_hot_team(config, hot_team);
    }
    if let Some(fairness) = &fairness {
        print_fairness(config, fairness);
    }
    let summary = summary_json(
        config,
        bridge.as_ref(),
        key_parallel.as_ref(),
        hot_team.as_ref(),
        fairness.as_ref(),
    );
    let path = config.out.join("runtime.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("\nwrote {}", path.display());
    Ok(())
}

/// The figures every delivery run has.
fn delivery_json(run: &Delivery) -> Value {
    json!({
        "events": run.events,
        "seconds": round(run.seconds, 3),
        "events_per_s": round(run.events_per_s, 1),
        "done": run.outcomes.done,
        "retried": run.outcomes.retried,
        "dead_lettered": run.outcomes.dead_lettered,
        "service_requests": run.served.requests,
        "service_window_seconds": round(run.served.window.as_secs_f64(), 3),
        "mean_in_flight": round(run.gauges.in_flight, 2),
        "mean_buffered": round(run.gauges.buffered, 1),
        "cpu_us_per_event": run.bridge_cpu_us.map(|v| round(v, 1)),
        "service_cpu_us_per_request": run.service_cpu_us.map(|v| round(v, 1)),
        "service_mean_call_ms": round(run.served.mean_call.as_secs_f64() * 1e3, 2),
        "service_max_concurrent": run.served.max_concurrent,
        "service_mean_concurrent": round(run.served.mean_concurrent, 2),
    })
}

/// `base` (an object) with the keys of `more` (an object) added.
fn extended(mut base: Value, more: Value) -> Value {
    if let (Some(base), Value::Object(more)) = (base.as_object_mut(), more) {
        base.extend(more);
    }
    base
}

fn summary_json(
    config: &BenchConfig,
    bridge: Option<&BridgeRun>,
    key_parallel: Option<&KeyParallel>,
    hot_team: Option<&HotTeam>,
    fairness: Option<&Fairness>,
) -> Value {
    let ratio = bridge.and_then(|b| b.ratio);
    let wrk = bridge.and_then(|b| b.wrk.as_ref());
    let fairness_ratio = fairness.and_then(|f| f.ratio);
    let cpu = bridge.and_then(|b| b.delivery.bridge_cpu_us);
    let batched_ratio = bridge.and_then(BridgeRun::batched_ratio);
    json!({
        "bridge_vs_wrk": ratio.map(|r| round(r, 3)),
        "bridge_events_per_s": bridge.map(|b| round(b.delivery.events_per_s, 1)),
        "bridge_cpu_us_per_event": cpu.map(|v| round(v, 1)),
        "bridge_batched_vs_wrk": batched_ratio.map(|r| round(r, 3)),
        "bridge_batched_events_per_s": bridge.map(|b| round(b.batched.events_per_s, 1)),
        "wrk_requests_per_s": wrk.map(|w| round(w.requests_per_s, 1)),
        "wrk_connections": config.max_in_flight,
        "key_parallel_efficiency": key_parallel.map(|k| round(k.efficiency, 3)),
        "key_parallel_events_per_s": key_parallel.map(|k| round(k.run.events_per_s, 1)),
        "key_parallel_ideal_events_per_s": key_parallel.map(|k| round(k.ideal, 1)),
        "hot_team_efficiency": hot_team.map(|h| round(h.efficiency, 3)),
        "hot_team_events_per_s": hot_team.map(|h| round(h.response.events_per_s, 1)),
        "hot_team_ideal_events_per_s": hot_team.map(|h| round(h.ideal, 1)),
        "hot_team_team_ordering_events_per_s": hot_team.map(|h| round(h.team.events_per_s, 1)),
        "fairness_p99_ratio": fairness_ratio.map(|r| round(r, 3)),
        "fairness_p99_ratio_lower_bound": fairness.map(|f| f.with.latency.p99_lower_bound),
        "fairness_p99_ms_with_hot_team": fairness.map(|f| round(f.with.latency.p99, 1)),
        "fairness_p99_ms_without_hot_team": fairness.map(|f| round(f.without.latency.p99, 1)),
        "max_in_flight": config.max_in_flight,
        "max_in_flight_per_team": config.per_team(),
        "teams": key_parallel.map(|_| config.teams),
        "events": key_parallel.map(|k| k.events),
        "order_violations": key_parallel.map(|k| k.run.served.violations + k.run.served.overlaps),
        "targets": {
            "bridge_vs_wrk": BRIDGE_TARGET,
            "bridge_cpu_us_per_event": BRIDGE_CPU_TARGET,
            "bridge_batched_vs_wrk": BRIDGE_BATCHED_TARGET,
            "key_parallel_efficiency": KEY_PARALLEL_TARGET,
            "hot_team_efficiency": HOT_TEAM_TARGET,
            "fairness_p99_ratio": FAIRNESS_TARGET,
        },
        "met": {
            "bridge_vs_wrk": ratio.map(|r| r >= BRIDGE_TARGET),
            "bridge_cpu_us_per_event": cpu.map(|v| v <= BRIDGE_CPU_TARGET),
            "bridge_batched_vs_wrk": batched_ratio.map(|r| r >= BRIDGE_BATCHED_TARGET),
            "key_parallel_efficiency": key_parallel.map(|k| k.efficiency >= KEY_PARALLEL_TARGET),
            "hot_team_efficiency": hot_team.map(|h| h.efficiency >= HOT_TEAM_TARGET),
            "fairness_p99_ratio": fairness_ratio.map(|r| r <= FAIRNESS_TARGET),
        },
        "bridge": bridge.map(|b| extended(delivery_json(&b.delivery), json!({
            "teams": config.bridge_teams,
            "record_bytes": b.record_bytes,
            "request_body_bytes": b.body_bytes,
            "batched": extended(delivery_json(&b.batched), json!({
                "max_events": BRIDGE_BATCH_EVENTS,
                "teams": BRIDGE_BATCH_TEAMS,
            })),
        }))),
        "wrk_error": bridge.and_then(|b| b.wrk_error.clone()),
        "wrk": wrk.map(|w| json!({
            "requests_per_s": round(w.requests_per_s, 1),
            "requests": w.requests,
            "service_requests": w.served.requests,
            "seconds": w.seconds,
            "connections": config.max_in_flight,
            "threads": config.wrk_threads,
            "non_2xx": w.non_2xx,
            "socket_errors": w.socket_errors,
            "cpu_us_per_request": w.wrk_cpu_us.map(|v| round(v, 1)),
            "service_cpu_us_per_request": w.service_cpu_us.map(|v| round(v, 1)),
        })),
        "key_parallel": key_parallel.map(|k| extended(delivery_json(&k.run), json!({
            "teams": config.teams,
            "events_per_team": config.events_per_team,
            "delay_ms": config.delay.as_millis() as u64,
            "ideal_events_per_s": round(k.ideal, 1),
            "efficiency": round(k.efficiency, 3),
            "order_violations": k.run.served.violations,
            "same_team_overlaps": k.run.served.overlaps,
        }))),
        "hot_team": hot_team.map(|h| extended(delivery_json(&h.response), json!({
            "ordering": "response",
            "delay_ms": config.lane_delay.as_millis() as u64,
            "max_in_flight_per_team": h.per_team,
            "ideal_events_per_s": round(h.ideal, 1),
            "efficiency": round(h.efficiency, 3),
            "team_ordering": extended(delivery_json(&h.team), json!({
                "ordering": "team",
                "ideal_events_per_s": round(1.0 / config.lane_delay.as_secs_f64(), 1),
                "order_violations": h.team.served.violations,
                "same_team_overlaps": h.team.served.overlaps,
            })),
        }))),
        "fairness": fairness.map(|f| json!({
            "ordering": "response",
            "delay_ms": config.lane_delay.as_millis() as u64,
            "small_teams": config.fair_teams,
            "small_team_events_per_s": 1,
            "window_seconds": config.fair_window.as_secs(),
            "wait_after_window_seconds": config.fair_window.max(Duration::from_secs(10)).as_secs(),
            "hot_partition": f.hot_partition,
            "small_teams_on_hot_partition": f.teams_on_hot_partition,
            "p99_ratio": f.ratio.map(|r| round(r, 3)),
            "with_hot_team": f.with.json(),
            "without_hot_team": f.without.json(),
        })),
        "settings": config.settings_json(),
    })
}

fn micros(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0} µs"))
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn outcomes_row(what: &str, run: &Delivery) {
    println!(
        "| {what}: done / retried / dead-lettered | {} / {} / {} |",
        run.outcomes.done, run.outcomes.retried, run.outcomes.dead_lettered
    );
}

fn print_bridge(config: &BenchConfig, run: &BridgeRun) {
    let bridge = &run.delivery;
    println!(
        "| Bridge to a no-op service: {} events of {} teams, max_in_flight {} | {:.0} events/s ({:.2} s) |",
        bridge.events, config.bridge_teams, config.max_in_flight, bridge.events_per_s, bridge.seconds
    );
    println!(
        "| Bridge: mean calls in flight / mean events held (its gauges) | {:.1} / {:.0} |",
        bridge.gauges.in_flight, bridge.gauges.buffered
    );
    println!(
        "| Bridge run, CPU per event: bridge / service | {} / {} |",
        micros(bridge.bridge_cpu_us),
        micros(bridge.service_cpu_us)
    );
    match (&run.wrk, run.ratio) {
        (Some(wrk), Some(ratio)) => {
            println!(
                "| wrk, same request: {} connections, {} threads, {} s | {:.0} requests/s ({} non-2xx) |",
                config.max_in_flight, config.wrk_threads, wrk.seconds, wrk.requests_per_s, wrk.non_2xx
            );
            println!(
                "| wrk run, CPU per request: wrk / service | {} / {} |",
                micros(wrk.wrk_cpu_us),
                micros(wrk.service_cpu_us)
            );
            println!(
                "| **bridge / wrk** (target >= {BRIDGE_TARGET}) | **{ratio:.3}** ({}) |",
                verdict(ratio >= BRIDGE_TARGET)
            );
        }
        _ => println!("| wrk | not available: no ratio |"),
    }
    outcomes_row("Bridge run", bridge);
    if let Some(cpu) = bridge.bridge_cpu_us {
        println!(
            "| **bridge CPU per event** (target <= {BRIDGE_CPU_TARGET} µs) | **{cpu:.1} µs** ({}) |",
            verdict(cpu <= BRIDGE_CPU_TARGET)
        );
    }
    let batched = &run.batched;
    println!(
        "| Bridge, batches of {BRIDGE_BATCH_EVENTS} (max_wait_ms 20): {} events of {BRIDGE_BATCH_TEAMS} teams | {:.0} events/s ({:.2} s), {} calls |",
        batched.events, batched.events_per_s, batched.seconds, batched.served.requests
    );
    println!(
        "| Batched run, CPU per event: bridge / service (per event) | {} / {} |",
        micros(batched.bridge_cpu_us),
        micros(
            batched
                .service_cpu_us
                .map(|us| us * batched.served.requests as f64 / batched.events as f64)
        )
    );
    if let Some(ratio) = run.batched_ratio() {
        println!(
            "| **batched bridge events/s / wrk requests/s** (target >= {BRIDGE_BATCHED_TARGET}) | **{ratio:.3}** ({}) |",
            verdict(ratio >= BRIDGE_BATCHED_TARGET)
        );
    }
    outcomes_row("Batched run", batched);
}

fn print_key_parallel(config: &BenchConfig, run: &KeyParallel) {
    let slow = &run.run;
    println!(
        "| Key-parallel: {} teams x {} events, {} ms per call, max_in_flight {} | {:.1} events/s ({:.2} s) |",
        config.teams,
        config.events_per_team,
        config.delay.as_millis(),
        config.max_in_flight,
        slow.events_per_s,
        slow.seconds
    );
    println!(
        "| Ideal: min(max_in_flight, teams) / delay | {:.1} events/s |",
        run.ideal
    );
    println!(
        "| Key-parallel: calls at the service at once, max / mean; mean time of a call there | {} / {:.1}; {:.1} ms |",
        slow.served.max_concurrent,
        slow.served.mean_concurrent,
        slow.served.mean_call.as_secs_f64() * 1e3
    );
    println!(
        "| Per-team order violations / same-team overlaps | {} / {} |",
        slow.served.violations, slow.served.overlaps
    );
    println!(
        "| **key-parallel efficiency** (target >= {KEY_PARALLEL_TARGET}) | **{:.3}** ({}) |",
        run.efficiency,
        verdict(run.efficiency >= KEY_PARALLEL_TARGET)
    );
    outcomes_row("Key-parallel run", slow);
}

fn print_hot_team(config: &BenchConfig, run: &HotTeam) {
    let (response, team) = (&run.response, &run.team);
    println!(
        "| Hot team, \"ordering\": \"response\": {} events of one team, {} ms per call, {} calls per team | {:.1} events/s ({:.2} s) |",
        response.events,
        config.lane_delay.as_millis(),
        run.per_team,
        response.events_per_s,
        response.seconds
    );
    println!(
        "| Ideal: max_in_flight_per_team / delay | {:.1} events/s |",
        run.ideal
    );
    println!(
        "| Hot team: calls at the service at once, max / mean; mean time of a call there | {} / {:.1}; {:.1} ms |",
        response.served.max_concurrent,
        response.served.mean_concurrent,
        response.served.mean_call.as_secs_f64() * 1e3
    );
    println!(
        "| **hot-team efficiency** (target >= {HOT_TEAM_TARGET}) | **{:.3}** ({}) |",
        run.efficiency,
        verdict(run.efficiency >= HOT_TEAM_TARGET)
    );
    outcomes_row("Hot-team run", response);
    println!(
        "| Hot team, \"ordering\": \"team\": {} events (ideal {:.0} events/s) | {:.1} events/s ({:.2} s); at once max {}; order violations / overlaps {} / {} |",
        team.events,
        1.0 / config.lane_delay.as_secs_f64(),
        team.events_per_s,
        team.seconds,
        team.served.max_concurrent,
        team.served.violations,
        team.served.overlaps
    );
}

fn print_fairness(config: &BenchConfig, run: &Fairness) {
    let (with, without) = (&run.with, &run.without);
    println!(
        "| Fairness: {} small teams x 1 event/s for {} s, {} ms per call, \"ordering\": \"response\"; sent / arrived, with / without the hot team | {} / {}; {} / {} |",
        config.fair_teams,
        config.fair_window.as_secs(),
        config.lane_delay.as_millis(),
        with.sent,
        with.arrived,
        without.sent,
        without.arrived
    );
    println!(
        "| Small teams' latency, send to service, p50 / p90 / p99 / max, with the hot team's backlog of {} | {} |",
        with.backlog,
        with.latency.text()
    );
    println!("| The same without the hot team | {} |", without.latency.text());
    println!(
        "| With the hot team: the {} small teams on its partition {} / the others | {}; {} |",
        run.teams_on_hot_partition,
        run.hot_partition,
        with.on_hot_partition.text(),
        with.elsewhere.text()
    );
    println!(
        "| Hot team during the window; still backlogged at its end | {:.1} events/s; {} |",
        with.hot_events_per_s,
        if with.hot_backlogged { "yes" } else { "NO" }
    );
    match run.ratio {
        Some(ratio) => println!(
            "| **fairness p99 ratio** (target <= {FAIRNESS_TARGET}) | **{ratio:.3}**{} ({}) |",
            if with.latency.p99_lower_bound {
                " (at least)"
            } else {
                ""
            },
            verdict(ratio <= FAIRNESS_TARGET)
        ),
        None => println!("| fairness p99 ratio | no latency without the hot team: no ratio |"),
    }
}
