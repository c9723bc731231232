//! Two benchmarks of the plugin runtime against a real Kafka broker, with a JSON summary.
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
//!
//! The service runs on its own runtime in this process; the bridge and wrk are processes of their own.
//! Besides the rates, each run reports the CPU time per event of the bridge, of wrk and of the service
//! (from `/proc`), which says more than a rate on a shared machine. Results: a table on stdout and
//! `target/bench/runtime.json`; next to it the bridge's logs, the wrk script and wrk's output.
//!
//! Environment:
//!
//! | variable | meaning | default (quick) |
//! |---|---|---|
//! | `SWITCHYARD_BENCH_BOOTSTRAP` | the broker (required) | |
//! | `SWITCHYARD_BENCH_QUICK=1` | small counts, well under a minute | off |
//! | `SWITCHYARD_BENCH_EVENTS` | events of the bridge run | 50000 (5000) |
//! | `SWITCHYARD_BENCH_BRIDGE_TEAMS` | teams of the bridge run | 1000 (200) |
//! | `SWITCHYARD_BENCH_TEAMS` | teams of the key-parallel run | 200 (64) |
//! | `SWITCHYARD_BENCH_EVENTS_PER_TEAM` | events per team of the key-parallel run | 20 (10) |
//! | `SWITCHYARD_BENCH_DELAY_MS` | the slow service's time per call | 50 |
//! | `SWITCHYARD_BENCH_MAX_IN_FLIGHT` | the bridge's `delivery.max_in_flight` and wrk's connections | 32 |
//! | `SWITCHYARD_BENCH_PARTITIONS` | partitions of the plugin topics | 6 |
//! | `SWITCHYARD_BENCH_WRK_THREADS` | wrk's threads | available cores (at most the connections) |
//! | `SWITCHYARD_BENCH_WRK` | the wrk program | `wrk` |
//! | `SWITCHYARD_BENCH_BRIDGE` | another `switchyard-plugin-bridge` binary (e.g. an older build) | this build's |
//! | `SWITCHYARD_BENCH_OUT` | directory of `runtime.json` | `target/bench` |
//!
//! Without wrk (`apt-get install wrk`) the bridge's rate is still measured; the ratio is `null`.

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
use switchyard_fixtures::kafka::{self, Producer, Record, TopicSpec};
use switchyard_fixtures::metrics::Metrics;
use switchyard_fixtures::net::free_address;
use switchyard_fixtures::process::Supervised;
use switchyard_schemas::ContentType;
use switchyard_schemas::envelope as h;
use switchyard_schemas::payload::encode;
use switchyard_schemas::samples::response_24_answers;
use switchyard_service::kafka::{ClientStats, Clients, KafkaSettings};
use tokio::runtime::Runtime;

/// The targets of the issue.
const BRIDGE_TARGET: f64 = 0.7;
const KEY_PARALLEL_TARGET: f64 = 0.8;

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

#[derive(Debug, Clone)]
struct BenchConfig {
    bootstrap: String,
    quick: bool,
    bridge_events: usize,
    bridge_teams: usize,
    teams: usize,
    events_per_team: usize,
    delay: Duration,
    max_in_flight: usize,
    partitions: i32,
    wrk: String,
    wrk_threads: usize,
    out: PathBuf,
    bridge_exe: PathBuf,
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, Error> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{name}={text:?} is not a valid number")),
    }
}

impl BenchConfig {
    fn from_env(bootstrap: String) -> Result<Self, Error> {
        let quick = std::env::var("SWITCHYARD_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let pick = |full: usize, small: usize| if quick { small } else { full };
        let max_in_flight: usize = env_number("SWITCHYARD_BENCH_MAX_IN_FLIGHT", 32)?;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let config = Self {
            bootstrap,
            quick,
            bridge_events: env_number("SWITCHYARD_BENCH_EVENTS", pick(50_000, 5_000))?,
            bridge_teams: env_number("SWITCHYARD_BENCH_BRIDGE_TEAMS", pick(1_000, 200))?,
            teams: env_number("SWITCHYARD_BENCH_TEAMS", pick(200, 64))?,
            events_per_team: env_number("SWITCHYARD_BENCH_EVENTS_PER_TEAM", pick(20, 10))?,
            delay: Duration::from_millis(env_number("SWITCHYARD_BENCH_DELAY_MS", 50)?),
            max_in_flight,
            partitions: env_number("SWITCHYARD_BENCH_PARTITIONS", 6)?,
            wrk: std::env::var("SWITCHYARD_BENCH_WRK").unwrap_or_else(|_| "wrk".to_owned()),
            wrk_threads: env_number("SWITCHYARD_BENCH_WRK_THREADS", cores.min(max_in_flight))?,
            out: match std::env::var_os("SWITCHYARD_BENCH_OUT") {
                Some(dir) => PathBuf::from(dir),
                None => target_dir().join("bench"),
            },
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
        if config.delay.is_zero() {
            return Err("SWITCHYARD_BENCH_DELAY_MS must be at least 1".into());
        }
        Ok(config)
    }

    fn settings_json(&self) -> Value {
        json!({
            "quick": self.quick,
            "bridge_events": self.bridge_events,
            "bridge_teams": self.bridge_teams,
            "key_parallel_teams": self.teams,
            "key_parallel_events_per_team": self.events_per_team,
            "delay_ms": self.delay.as_millis() as u64,
            "max_in_flight": self.max_in_flight,
            "partitions": self.partitions,
            "wrk_threads": self.wrk_threads,
            "cores": std::thread::available_parallelism().map_or(0, usize::from),
        })
    }
}

/// The workspace's target directory: `CARGO_TARGET_DIR` if set, else `target` next to the workspace root.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"),
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
    /// Per-team order, for the slow service only.
    order: Option<Mutex<OrderCheck>>,
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
    fn new(check_order: bool) -> Self {
        Self {
            base: Instant::now(),
            requests: AtomicU64::new(0),
            first_start: AtomicU64::new(u64::MAX),
            last_end: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            max_in_flight: AtomicI64::new(0),
            busy: AtomicU64::new(0),
            captured: OnceLock::new(),
            order: check_order.then(|| Mutex::new(OrderCheck::default())),
        }
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
    let start = served.now();
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
fn start_service(runtime: &Runtime, plugin: &str, delay: Duration) -> Result<(String, Arc<Service>), Error> {
    let service = Arc::new(Service {
        served: Served::new(!delay.is_zero()),
        delay,
        manifest: json!({"id": plugin, "name": format!("Benchmark {plugin}"), "version": "1.0.0",
                         "events": ["response.submitted"], "actions": []}),
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

/// Produces `count` events, the i-th of team `i % teams` with sequence number `i / teams` (so every team's
/// events are spread over the whole topic, as with live traffic); its `ce_id` is `<team>.<seq>`. Returns
/// the bytes of one record (value plus headers).
fn produce(bootstrap: &str, topic: &str, teams: usize, count: usize) -> Result<usize, Error> {
    let producer = Producer::new(&clients(bootstrap)).map_err(|e| e.to_string())?;
    let mut record_bytes = 0;
    for i in 0..count {
        let team = team_name(i % teams);
        let id = format!("{team}.{}", i / teams);
        let value = encode(&response_24_answers(&team, &id), ContentType::Avro)
            .map_err(|e| format!("encoding failed: {e}"))?;
        let headers = [
            (h::SPECVERSION, h::SPECVERSION_1_0),
            (h::ID, id.as_str()),
            (h::SOURCE, "/switchyard/bench"),
            (h::TYPE, "response.submitted"),
            (h::TIME, "2026-11-22T10:00:00Z"),
            (h::SUBJECT, "form-household-survey-2026"),
            (h::TEAMID, team.as_str()),
            (
                h::TRACEPARENT,
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (h::CONTENT_TYPE, ContentType::Avro.media_type()),
        ];
        if i == 0 {
            record_bytes = value.len()
                + team.len()
                + headers
                    .iter()
                    .map(|(name, value)| name.len() + value.len())
                    .sum::<usize>();
        }
        let record = Record {
            key: Some(team.clone().into_bytes()),
            value: Some(value),
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
                .collect(),
        };
        producer.send(topic, &record).map_err(|e| e.to_string())?;
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| format!("the broker did not acknowledge every event: {e}"))?;
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
        .map(|(key, value)| (format!("SWITCHYARD_PLUGIN__{key}"), value.to_owned()));
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
// The run

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10_f64.powi(digits);
    (value * scale).round() / scale
}

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
        .thread_name("plugin-service")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let wrk_found = wrk_available(&config.wrk);
    let mut wrk_error = None;
    if !wrk_found {
        wrk_error = Some(format!("`{}` was not found", config.wrk));
        eprintln!(
            "note: `{}` was not found (Debian: apt-get install wrk); the bridge is measured, the ratio is null",
            config.wrk
        );
    }

    // 1. Bridge versus wrk.
    println!(
        "bridge: filling a topic with {} events of {} teams ...",
        config.bridge_events, config.bridge_teams
    );
    let noop_topics = Topics::new("bench-noop");
    create_topics(&config.bootstrap, &noop_topics, config.partitions)?;
    let record_bytes = produce(
        &config.bootstrap,
        &noop_topics.events,
        config.bridge_teams,
        config.bridge_events,
    )?;
    let (noop_url, noop) = start_service(&services, "bench-noop", Duration::ZERO)?;
    println!("bridge: delivering to a no-op service at {noop_url} ...");
    let bridge = deliver(
        &runtime,
        config,
        &noop_topics,
        &noop_url,
        &noop,
        config.bridge_events as u64,
        Duration::from_secs(120 + config.bridge_events as u64 / 100),
    )?;
    let body_bytes = noop.served.captured.get().map_or(0, |(_, body)| body.len());
    let wrk = if wrk_found {
        let seconds = bridge.seconds.ceil().max(2.0) as u64;
        println!(
            "wrk: {} connections, {} threads, {seconds} s against the same endpoint ...",
            config.max_in_flight, config.wrk_threads
        );
        match run_wrk(config, &noop_url, &noop, seconds) {
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
    delete_topics(&config.bootstrap, &noop_topics);

    // 2. Key-parallel efficiency.
    let total = config.teams * config.events_per_team;
    println!(
        "key-parallel: filling a topic with {} teams x {} events ...",
        config.teams, config.events_per_team
    );
    let slow_topics = Topics::new("bench-slow");
    create_topics(&config.bootstrap, &slow_topics, config.partitions)?;
    produce(&config.bootstrap, &slow_topics.events, config.teams, total)?;
    let (slow_url, slow) = start_service(&services, "bench-slow", config.delay)?;
    let ideal = config.max_in_flight.min(config.teams) as f64 / config.delay.as_secs_f64();
    println!(
        "key-parallel: delivering to a service taking {} ms per call (ideal {ideal:.0} events/s) ...",
        config.delay.as_millis()
    );
    let slow_run = deliver(
        &runtime,
        config,
        &slow_topics,
        &slow_url,
        &slow,
        total as u64,
        Duration::from_secs_f64(120.0 + 4.0 * total as f64 / ideal),
    )?;
    delete_topics(&config.bootstrap, &slow_topics);
    let efficiency = slow_run.events_per_s / ideal;
    let order_violations = slow_run.served.violations + slow_run.served.overlaps;

    // 3. Report.
    let ratio = wrk.as_ref().map(|w| bridge.events_per_s / w.requests_per_s);
    print_table(config, &bridge, wrk.as_ref(), ratio, &slow_run, ideal, efficiency);
    let summary = json!({
        "bridge_vs_wrk": ratio.map(|r| round(r, 3)),
        "bridge_events_per_s": round(bridge.events_per_s, 1),
        "wrk_requests_per_s": wrk.as_ref().map(|w| round(w.requests_per_s, 1)),
        "wrk_connections": config.max_in_flight,
        "key_parallel_efficiency": round(efficiency, 3),
        "key_parallel_events_per_s": round(slow_run.events_per_s, 1),
        "key_parallel_ideal_events_per_s": round(ideal, 1),
        "max_in_flight": config.max_in_flight,
        "teams": config.teams,
        "events": total,
        "order_violations": order_violations,
        "targets": {"bridge_vs_wrk": BRIDGE_TARGET, "key_parallel_efficiency": KEY_PARALLEL_TARGET},
        "met": {
            "bridge_vs_wrk": ratio.map(|r| r >= BRIDGE_TARGET),
            "key_parallel_efficiency": efficiency >= KEY_PARALLEL_TARGET,
        },
        "bridge": {
            "events": bridge.events,
            "teams": config.bridge_teams,
            "seconds": round(bridge.seconds, 3),
            "events_per_s": round(bridge.events_per_s, 1),
            "done": bridge.outcomes.done,
            "retried": bridge.outcomes.retried,
            "dead_lettered": bridge.outcomes.dead_lettered,
            "record_bytes": record_bytes,
            "request_body_bytes": body_bytes,
            "service_requests": bridge.served.requests,
            "service_window_seconds": round(bridge.served.window.as_secs_f64(), 3),
            "mean_in_flight": round(bridge.gauges.in_flight, 2),
            "mean_buffered": round(bridge.gauges.buffered, 1),
            "cpu_us_per_event": bridge.bridge_cpu_us.map(|v| round(v, 1)),
            "service_cpu_us_per_request": bridge.service_cpu_us.map(|v| round(v, 1)),
        },
        "wrk_error": wrk_error,
        "wrk": wrk.as_ref().map(|w| json!({
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
        "key_parallel": {
            "teams": config.teams,
            "events_per_team": config.events_per_team,
            "events": total,
            "delay_ms": config.delay.as_millis() as u64,
            "seconds": round(slow_run.seconds, 3),
            "events_per_s": round(slow_run.events_per_s, 1),
            "ideal_events_per_s": round(ideal, 1),
            "efficiency": round(efficiency, 3),
            "done": slow_run.outcomes.done,
            "retried": slow_run.outcomes.retried,
            "dead_lettered": slow_run.outcomes.dead_lettered,
            "service_requests": slow_run.served.requests,
            "service_window_seconds": round(slow_run.served.window.as_secs_f64(), 3),
            "cpu_us_per_event": slow_run.bridge_cpu_us.map(|v| round(v, 1)),
            "mean_in_flight": round(slow_run.gauges.in_flight, 2),
            "mean_buffered": round(slow_run.gauges.buffered, 1),
            "service_mean_call_ms": round(slow_run.served.mean_call.as_secs_f64() * 1e3, 2),
            "service_max_concurrent": slow_run.served.max_concurrent,
            "service_mean_concurrent": round(slow_run.served.mean_concurrent, 2),
            "order_violations": slow_run.served.violations,
            "same_team_overlaps": slow_run.served.overlaps,
        },
        "settings": config.settings_json(),
    });
    let path = config.out.join("runtime.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("\nwrote {}", path.display());
    Ok(())
}

fn micros(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0} µs"))
}

fn print_table(
    config: &BenchConfig,
    bridge: &Delivery,
    wrk: Option<&Wrk>,
    ratio: Option<f64>,
    slow: &Delivery,
    ideal: f64,
    efficiency: f64,
) {
    let verdict = |value: f64, target: f64| if value >= target { "met" } else { "MISSED" };
    println!();
    println!("| Figure | Value |");
    println!("| --- | ---: |");
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
    match (wrk, ratio) {
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
                verdict(ratio, BRIDGE_TARGET)
            );
        }
        _ => println!("| wrk | not available: no ratio |"),
    }
    println!(
        "| Key-parallel: {} teams x {} events, {} ms per call, max_in_flight {} | {:.1} events/s ({:.2} s) |",
        config.teams,
        config.events_per_team,
        config.delay.as_millis(),
        config.max_in_flight,
        slow.events_per_s,
        slow.seconds
    );
    println!("| Ideal: min(max_in_flight, teams) / delay | {ideal:.1} events/s |");
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
        "| **key-parallel efficiency** (target >= {KEY_PARALLEL_TARGET}) | **{efficiency:.3}** ({}) |",
        verdict(efficiency, KEY_PARALLEL_TARGET)
    );
    println!(
        "| Outcomes (bridge run; key-parallel run): done / retried / dead-lettered | {} / {} / {}; {} / {} / {} |",
        bridge.outcomes.done,
        bridge.outcomes.retried,
        bridge.outcomes.dead_lettered,
        slow.outcomes.done,
        slow.outcomes.retried,
        slow.outcomes.dead_lettered
    );
}
