//! Batches against Google's write quota: sheets-export for one team, through the real plugin runtime and a
//! real Kafka broker, to the Google Sheets fake with a 200 ms round trip and Google's default quotas (60
//! write requests per minute per user, 300 per project). Issue 15's **Batches** benchmark.
//!
//! ```sh
//! SWITCHYARD_BENCH_BOOTSTRAP=127.0.0.1:9092 cargo bench -p switchyard-plugins --bench sheets_batches
//! cargo test -p switchyard-plugins --bench sheets_batches   # checks of the pure helpers, no broker
//! ```
//!
//! Two runs side by side (at the same time, each with a fake, topics and a worker of its own):
//!
//! ```text
//!   batched:   the seed's manifest: "ordering": "response", "batch": {"max_events": 50, "max_wait_ms": 200}
//!   unbatched: the same plugin with the manifest's `batch` removed (one event per call)
//!
//!   one team's backlog of response.submitted ──► plugin.sheets-export.events
//!     ──► the plugin runtime (app::run in this process, default delivery settings)
//!     ──► SheetsExportPlugin<GoogleSheets> ──► values.append ──► FakeSheets (200 ms a call, quotas)
//!   every 100 ms: the worker's /metrics (done, dead-lettered, throttled) and the fake's call counters
//! ```
//!
//! **Quota windows.** The fake counts writes in fixed one-minute windows; a window starts with the first
//! call after the previous one ended, and that call is accepted. So a quota-bound exporter writes in bursts
//! (60 writes, about 12 s at one `values.append` per 200 ms on one tab), gets `429`s, and writes again once
//! a call comes after the refill. A cycle lasts 60 s plus however long the exporter leaves the refilled
//! quota unused. A rate over a fixed stretch of time would count one burst more or less depending on where
//! the stretch falls, so the rate is measured **between starts of quota windows**, which the samples show
//! (the first write, then each first accepted write at least 60 s after the previous start): the rows done
//! from the start of window `warm-up` to the start of window `warm-up + windows`, divided by that time.
//!
//! **Backlog and completeness.** Each run's backlog is what the quota allows in `warm-up + windows + ½`
//! windows (60 writes of `max_events` rows, or of one), so the team is still backlogged when the measured
//! windows end, whatever the runtime does: the quota, not the backlog, bounds the rate. Rows are the
//! runtime's `done` events (one response, one row). After the measured windows the run waits (bounded, from
//! the measured rate) until every event is done, so "no `429` left unanswered" is checked: every event
//! throttled on the way must end done, none dead-lettered, and the fake's sheet must hold every response.
//!
//! `batch_speedup` = batched rows/s ÷ unbatched rows/s (target ≥ 20). Results: a table on stdout,
//! `target/bench/sheets_batches.json`, and each run's samples (one per second) in
//! `target/bench/sheets_batches-series.json`.
//!
//! Environment:
//!
//! | variable | meaning | default (quick) |
//! |---|---|---|
//! | `SWITCHYARD_BENCH_BOOTSTRAP` | the broker (required) | |
//! | `SWITCHYARD_BENCH_QUICK=1` | one quota window, no warm-up: about two minutes | off |
//! | `SWITCHYARD_BENCH_SHEETS_WARMUP_WINDOWS` | quota windows not counted, from the first write | 1 (0) |
//! | `SWITCHYARD_BENCH_SHEETS_WINDOWS` | quota windows measured | 2 (1) |
//! | `SWITCHYARD_BENCH_SHEETS_LATENCY_MS` | the fake's time per Sheets API call | 200 |
//! | `SWITCHYARD_BENCH_OUT` | directory of the JSON files | `target/bench` |
//!
//! The workers take the runtime's defaults and the benchmark's environment: a `SWITCHYARD_PLUGIN__...`
//! variable (e.g. `SWITCHYARD_PLUGIN__DELIVERY__MAX_IN_FLIGHT_PER_TEAM=2`) reaches both runs' workers; the
//! topics, group, broker and admin address are the benchmark's own.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_fixtures::bench::{self, env_number, round};
use switchyard_fixtures::kafka::{self, Record, TopicSpec};
use switchyard_fixtures::metrics::Metrics;
use switchyard_fixtures::net::free_address;
use switchyard_plugin_runtime::delivery::schedule::default_per_team;
use switchyard_plugin_runtime::settings::{Layered as _, Settings};
use switchyard_plugins::fakes::server::FakeServer;
use switchyard_plugins::fakes::sheets::{
    self as fake, ApiMethod, FakeSheets, QuotaLimits, demo_service_account_json,
};
use switchyard_plugins::in_process::{SheetsExportPlugin, sheets_export_manifest};
use switchyard_plugins::sheets::{GoogleSheets, SheetsClient, SheetsConfig};
use switchyard_schemas::configs::ConfigRecord;
use switchyard_schemas::control::PluginManifest;
use switchyard_schemas::envelope as h;
use switchyard_schemas::payload::encode;
use switchyard_schemas::samples::{core_event_headers, response_24_answers};
use switchyard_schemas::{ContentType, events::ResponseSubmitted};
use switchyard_service::kafka::Clients;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

/// Issue 15: batched rows per second at least this many times the unbatched figure.
const SPEEDUP_TARGET: f64 = 20.0;
/// The one team of both runs.
const TEAM: &str = "kilimo-coop";
/// Its spreadsheet (the demo fake creates it on first use).
const SPREADSHEET: &str = "1KilimoCoopHouseholdSurvey";
/// How often the worker's metrics and the fake's counters are read.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How long a run may take from the worker's start to the fake's first write call.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// The longest wait, after the measured windows, for the rest of the backlog.
const MAX_DRAIN: Duration = Duration::from_secs(600);
/// The length of a quota window.
const MINUTE: Duration = Duration::from_secs(60);

type Error = String;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`, `cargo test --bench sheets_batches` does not: then only the pure
    // helpers are checked, without a broker (as criterion's benchmarks run in "test mode").
    if !std::env::args().any(|arg| arg == "--bench") {
        return match checks::run() {
            Ok(count) => {
                println!("sheets_batches: {count} checks of the pure helpers passed");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("sheets_batches: check failed: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let Ok(bootstrap) = std::env::var("SWITCHYARD_BENCH_BOOTSTRAP") else {
        eprintln!(
            "sheets_batches bench: SWITCHYARD_BENCH_BOOTSTRAP is not set. This benchmark needs a real Kafka \
             broker, e.g. `scripts/kafka start` then SWITCHYARD_BENCH_BOOTSTRAP=127.0.0.1:9092 cargo bench \
             -p switchyard-plugins --bench sheets_batches (SWITCHYARD_BENCH_QUICK=1 for a short run)."
        );
        return ExitCode::from(2);
    };
    let config = match BenchConfig::from_env(bootstrap) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sheets_batches bench: {error}");
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sheets_batches bench failed: {error}");
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
    warmup_windows: u32,
    windows: u32,
    latency: Duration,
    out: PathBuf,
}

impl BenchConfig {
    fn from_env(bootstrap: String) -> Result<Self, Error> {
        let quick = bench::quick();
        let pick = |full: u32, small: u32| if quick { small } else { full };
        let config = Self {
            bootstrap,
            quick,
            warmup_windows: env_number("SWITCHYARD_BENCH_SHEETS_WARMUP_WINDOWS", pick(1, 0))?,
            windows: env_number("SWITCHYARD_BENCH_SHEETS_WINDOWS", pick(2, 1))?,
            latency: Duration::from_millis(env_number("SWITCHYARD_BENCH_SHEETS_LATENCY_MS", 200)?),
            out: bench::out_dir(),
        };
        if config.windows == 0 || config.windows > 20 || config.warmup_windows > 5 {
            return Err(
                "SWITCHYARD_BENCH_SHEETS_WINDOWS must be 1 to 20 and the warm-up at most 5 windows".into(),
            );
        }
        Ok(config)
    }
}

/// The two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Batched,
    Unbatched,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Self::Batched => "batched",
            Self::Unbatched => "unbatched",
        }
    }

    /// The seed's manifest, without its `batch` for the unbatched run.
    fn manifest(self) -> PluginManifest {
        let mut manifest = sheets_export_manifest(None);
        if self == Self::Unbatched {
            manifest.delivery.batch = None;
        }
        manifest
    }
}

// ---------------------------------------------------------------------------------------------------------
// Pure helpers: the plan of a run, and its figures from the samples

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Plan {
    /// Rows one write carries: the manifest's `max_events`, or 1 without batches.
    rows_per_write: u64,
    /// What one quota window allows: its writes × rows per write.
    rows_per_window: u64,
    /// The quota's bound on the rate: a window's rows every 60 s.
    ideal_rows_per_s: f64,
    /// The backlog produced before the worker starts.
    events: u64,
    /// Quota windows not counted, then windows measured.
    warmup_windows: u32,
    windows: u32,
}

impl Plan {
    /// The quota window whose start ends the measurement (counted from 0, the first write's).
    fn last_window(&self) -> usize {
        (self.warmup_windows + self.windows) as usize
    }
}

/// A run whose backlog outlasts `warmup_windows + windows` quota windows of `writes_per_window` writes by
/// half a window's rows: when the last measured window starts, at most that many windows' rows are done,
/// so the quota and not the backlog bounds the rate.
fn plan(writes_per_window: u32, rows_per_write: u64, warmup_windows: u32, windows: u32) -> Plan {
    let rows_per_window = u64::from(writes_per_window) * rows_per_write;
    let half_windows = 2 * u64::from(warmup_windows + windows) + 1;
    Plan {
        rows_per_write,
        rows_per_window,
        ideal_rows_per_s: rows_per_window as f64 / MINUTE.as_secs_f64(),
        events: (rows_per_window * half_windows).div_ceil(2),
        warmup_windows,
        windows,
    }
}

/// One reading of the worker's counters and the fake's, `at` after the worker started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sample {
    at: Duration,
    /// Events done: rows appended.
    done: u64,
    dead_lettered: u64,
    /// "Slow down" outcomes, one per event per `429`.
    throttled: u64,
    /// Sheets API calls that reached the fake, refused ones included.
    calls: u64,
    /// Write calls (`values.append`, `values.update`, `batchUpdate`), refused ones included.
    writes: u64,
    /// `values.append` calls, refused ones included.
    appends: u64,
    /// Calls the fake refused with `429 RESOURCE_EXHAUSTED` (reads too, which stay far below their quota).
    refusals: u64,
}

impl Sample {
    fn accepted_writes(&self) -> u64 {
        self.writes.saturating_sub(self.refusals)
    }
}

/// The starts of the fake's quota windows that `samples` show, each as the index of the last sample
/// before it (whose `done` are the rows of the windows before). The first starts with the first write;
/// each later one with the first accepted write 60 s or more after the previous start (the fake's rule:
/// a window is a minute from its first call, and a call after it ends opens the next). Exact to a sample.
fn quota_window_starts(samples: &[Sample]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut due: Option<Duration> = None;
    for (index, pair) in samples.windows(2).enumerate() {
        let (before, after) = (pair[0], pair[1]);
        let starts_here = match due {
            None => after.writes > before.writes,
            Some(due) => after.at >= due && after.accepted_writes() > before.accepted_writes(),
        };
        if starts_here {
            starts.push(index);
            due = Some(before.at + MINUTE);
        }
    }
    starts
}

/// What happened between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    seconds: f64,
    rows: u64,
    rows_per_s: f64,
    calls: u64,
    appends: u64,
    refusals: u64,
    throttled: u64,
}

fn span(from: Sample, to: Sample) -> Span {
    let seconds = to.at.saturating_sub(from.at).as_secs_f64();
    let rows = to.done.saturating_sub(from.done);
    Span {
        seconds,
        rows,
        rows_per_s: if seconds > 0.0 { rows as f64 / seconds } else { 0.0 },
        calls: to.calls.saturating_sub(from.calls),
        appends: to.appends.saturating_sub(from.appends),
        refusals: to.refusals.saturating_sub(from.refusals),
        throttled: to.throttled.saturating_sub(from.throttled),
    }
}

/// Each quota window that `samples` show from its start to the next one's (the last to the last sample).
fn window_spans(samples: &[Sample], starts: &[usize]) -> Vec<(Duration, Span)> {
    let Some(last) = samples.last() else {
        return Vec::new();
    };
    let origin = starts.first().map_or(Duration::ZERO, |&i| samples[i].at);
    starts
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let end = starts.get(n + 1).map_or(*last, |&j| samples[j]);
            (samples[i].at - origin, span(samples[i], end))
        })
        .collect()
}

/// The measured span: from the start of quota window `plan.warmup_windows` to the start of window
/// `plan.last_window()`; `None` while the samples do not reach it.
fn measured_span(samples: &[Sample], starts: &[usize], plan: &Plan) -> Option<Span> {
    let from = *starts.get(plan.warmup_windows as usize)?;
    let to = *starts.get(plan.last_window())?;
    Some(span(samples[from], samples[to]))
}

/// How long to wait after the measured windows for `remaining` events at `rows_per_s`: the time that rate
/// needs, half as much again, and a quota window for the refill's timing; at most [`MAX_DRAIN`].
fn drain_allowance(remaining: u64, rows_per_s: f64) -> Duration {
    if remaining == 0 {
        return Duration::ZERO;
    }
    let needed = if rows_per_s > 0.0 {
        1.5 * remaining as f64 / rows_per_s
    } else {
        f64::INFINITY
    };
    Duration::from_secs_f64((needed + MINUTE.as_secs_f64()).min(MAX_DRAIN.as_secs_f64()))
}

// ---------------------------------------------------------------------------------------------------------
// Setting a run up: the fake, the topics, the backlog

/// Fresh topics of one run.
struct Topics {
    events_template: String,
    dead_letter_template: String,
    events: String,
    dead_letter: String,
    results: String,
    configs: String,
}

impl Topics {
    fn new(variant: Variant) -> Self {
        let prefix = format!(
            "bench-sheets-{}-{}",
            variant.name(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let events_template = format!("{prefix}.plugin.{{plugin}}.events");
        let dead_letter_template = format!("{prefix}.plugin.{{plugin}}.dlq");
        let id = sheets_export_manifest(None).id;
        Self {
            events: events_template.replace("{plugin}", &id),
            dead_letter: dead_letter_template.replace("{plugin}", &id),
            events_template,
            dead_letter_template,
            results: format!("{prefix}.core.plugin-results"),
            configs: format!("{prefix}.configs"),
        }
    }

    fn all(&self) -> [&str; 4] {
        [&self.events, &self.dead_letter, &self.results, &self.configs]
    }

    fn create(&self, clients: &Clients) -> Result<(), Error> {
        let specs = [
            TopicSpec::new(&self.events, 1),
            TopicSpec::new(&self.dead_letter, 1),
            TopicSpec::new(&self.results, 1),
            TopicSpec::compacted(&self.configs, 1),
        ];
        for created in kafka::create_topics(clients, &specs).map_err(|e| e.to_string())? {
            if let kafka::Created::Existed(topic) = created {
                return Err(format!("the topic {topic} exists already"));
            }
        }
        Ok(())
    }
}

/// A run ready to start: its fake serving, its topics holding the team's config and the backlog.
struct Prepared {
    variant: Variant,
    plan: Plan,
    fake: FakeSheets,
    server: FakeServer,
    topics: Topics,
    settings: Settings,
}

/// Google's fake for one run: the demo service account, Google's default quotas, `latency` per call.
async fn start_fake(latency: Duration) -> Result<(FakeSheets, FakeServer), Error> {
    let fake = FakeSheets::demo().map_err(|e| format!("the fake's demo key: {e}"))?;
    fake.set_latency(latency);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding the fake: {e}"))?;
    let server = fake::serve(listener, fake.clone())
        .await
        .map_err(|e| format!("serving the fake: {e}"))?;
    Ok((fake, server))
}

/// The team's sheets-export config as the registry would write it: its spreadsheet and the demo service
/// account, whose token endpoint is the fake's.
fn config_record(manifest: &PluginManifest, server: &FakeServer) -> Result<Record, Error> {
    let config = json!({
        "spreadsheet_id": SPREADSHEET,
        "service_account_key": demo_service_account_json(&format!("{}/token", server.base_url())),
    });
    SheetsConfig::from_json(&config).map_err(|e| format!("the bench's own config: {e}"))?;
    let record = ConfigRecord {
        team_id: TEAM.to_owned(),
        plugin_id: manifest.id.clone(),
        installation: None,
        config,
        sealed: None,
        plugin_version: manifest.version.to_string(),
        updated_at: "2026-12-01T08:00:00Z".to_owned(),
    };
    Ok(Record {
        key: Some(format!("{TEAM}/{}", manifest.id).into_bytes()),
        value: Some(serde_json::to_vec(&record).map_err(|e| e.to_string())?),
        headers: Vec::new(),
    })
}

/// The `n`th response of the backlog: 24 answers, its own response id (so its own lane under
/// `"ordering": "response"`), Avro, as the router writes it to the plugin's topic.
fn event_record(n: u64) -> Result<Record, Error> {
    let id = format!("r-{n:06}");
    let response: ResponseSubmitted = response_24_answers(TEAM, &id);
    let value = encode(&response, ContentType::Avro).map_err(|e| format!("encoding failed: {e}"))?;
    let mut record = Record {
        key: Some(TEAM.as_bytes().to_vec()),
        value: Some(value),
        headers: core_event_headers(
            TEAM,
            "response.submitted",
            &format!("e-{n:06}"),
            ContentType::Avro,
        )
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect(),
    };
    record.set_header(h::SUBJECT, &response.response.form_id);
    Ok(record)
}

/// The worker's settings: the defaults, the benchmark's `SWITCHYARD_PLUGIN__...` environment, then the
/// run's own topics, group, broker and admin address.
fn worker_settings(config: &BenchConfig, topics: &Topics, admin: SocketAddr) -> Result<Settings, Error> {
    let mut env: BTreeMap<String, String> = std::env::vars()
        .filter(|(key, _)| key.starts_with("SWITCHYARD_PLUGIN__"))
        .collect();
    env.entry("SWITCHYARD_PLUGIN__LOG__LEVEL".to_owned())
        .or_insert_with(|| "warn".to_owned());
    let group = format!("bench-sheets-{}", uuid::Uuid::new_v4().simple());
    for (key, value) in [
        ("KAFKA__BOOTSTRAP_SERVERS", config.bootstrap.as_str()),
        ("TOPICS__EVENTS_TEMPLATE", &topics.events_template),
        ("TOPICS__DEAD_LETTER_TEMPLATE", &topics.dead_letter_template),
        ("TOPICS__RESULTS", &topics.results),
        ("TOPICS__CONFIGS", &topics.configs),
        ("DELIVERY__GROUP_ID", &group),
        ("ADMIN__LISTEN", &admin.to_string()),
        ("REGISTRY__URL", ""),
    ] {
        env.insert(format!("SWITCHYARD_PLUGIN__{key}"), value.to_owned());
    }
    Settings::load_from(None, Some(env)).map_err(|e| format!("the worker's settings: {e}"))
}

/// Starts the run's fake, creates its topics and writes the team's config, then the backlog.
fn prepare(runtime: &Runtime, config: &BenchConfig, variant: Variant) -> Result<Prepared, Error> {
    let manifest = variant.manifest();
    let rows_per_write = manifest
        .delivery
        .batch
        .as_ref()
        .map_or(1, |batch| u64::from(batch.max_events));
    let quota = QuotaLimits::GOOGLE_DEFAULT;
    let plan = plan(
        quota.per_user.min(quota.per_project),
        rows_per_write,
        config.warmup_windows,
        config.windows,
    );
    let (fake, server) = runtime.block_on(start_fake(config.latency))?;
    let topics = Topics::new(variant);
    let clients = kafka::clients(&config.bootstrap);
    topics.create(&clients)?;
    let producer = kafka::Producer::new(&clients).map_err(|e| e.to_string())?;
    let flush = |what: &str| {
        producer
            .flush(Duration::from_secs(120))
            .map_err(|e| format!("the broker did not acknowledge {what}: {e}"))
    };
    // The config first, acknowledged, as the registry answers only after its write.
    producer
        .send(&topics.configs, &config_record(&manifest, &server)?)
        .map_err(|e| e.to_string())?;
    flush("the team's config")?;
    for n in 0..plan.events {
        producer
            .send(&topics.events, &event_record(n)?)
            .map_err(|e| e.to_string())?;
    }
    flush("the backlog")?;
    let admin = free_address().map_err(|e| e.to_string())?;
    let settings = worker_settings(config, &topics, admin)?;
    Ok(Prepared {
        variant,
        plan,
        fake,
        server,
        topics,
        settings,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Running a run

/// How a run ended, before the checks on the broker and the sheet.
struct Measured {
    samples: Vec<Sample>,
    /// Every event was done or dead-lettered before the wait for them ended.
    finished: bool,
    /// The backlog was done before the last measured quota window started (the rate is then not measured).
    backlog_ran_out: bool,
    /// The last measured quota window had not started when the wait for it ended.
    window_timed_out: bool,
    /// How the worker stopped.
    worker_stop: Result<(), String>,
}

fn write_calls(fake: &FakeSheets) -> u64 {
    [
        ApiMethod::ValuesAppend,
        ApiMethod::ValuesUpdate,
        ApiMethod::BatchUpdate,
    ]
    .into_iter()
    .map(|method| fake.method_calls(method))
    .sum()
}

/// The plugin the worker runs: sheets-export to the run's fake, with this run's manifest.
fn plugin(prepared: &Prepared) -> Result<SheetsExportPlugin<GoogleSheets>, Error> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| e.to_string())?;
    let client = SheetsClient::new(&prepared.server.base_url(), http).map_err(|e| e.to_string())?;
    Ok(SheetsExportPlugin::new(
        GoogleSheets::new(client),
        prepared.variant.manifest(),
    ))
}

/// Starts the worker and samples until the last measured quota window has started and the backlog is
/// done (or the bounded waits for them ended), then stops the worker.
async fn measure(prepared: &Prepared) -> Result<Measured, Error> {
    let metrics = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("http://{}/metrics", prepared.settings.admin.listen);
    let name = prepared.variant.name();
    let (plan, fake) = (&prepared.plan, &prepared.fake);
    // Long enough for the measured windows even if each took two minutes.
    let window_wait = MINUTE * 2 * (plan.last_window() as u32 + 1);
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let mut worker = tokio::spawn(switchyard_plugin_runtime::app::run(
        plugin(prepared)?,
        prepared.settings.clone(),
        shutdown.clone(),
    ));
    let mut samples: Vec<Sample> = Vec::new();
    let mut last = Sample::default();
    let mut drain_deadline = None;
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let ended = loop {
        ticks.tick().await;
        if worker.is_finished() {
            let how = match (&mut worker).await {
                Ok(Ok(())) => "without an error".to_owned(),
                Ok(Err(error)) => error.to_string(),
                Err(join) => join.to_string(),
            };
            break Err(format!("the {name} worker stopped by itself: {how}"));
        }
        if let Some(page) = fetch(&metrics, &url).await {
            let page = Metrics::parse(&page);
            let events =
                |outcome: &str| page.value("switchyard_plugin_events_total", &[("outcome", outcome)]) as u64;
            last.done = events("done");
            last.dead_lettered = events("dead_lettered");
            last.throttled = events("throttled");
        }
        last.at = started.elapsed();
        last.calls = fake.api_calls();
        last.writes = write_calls(fake);
        last.appends = fake.method_calls(ApiMethod::ValuesAppend);
        last.refusals = fake.quota_refusals();
        samples.push(last);
        let starts = quota_window_starts(&samples);
        let Some(&first) = starts.first() else {
            if last.at > START_TIMEOUT {
                break Err(format!(
                    "the fake saw no write within {START_TIMEOUT:?} of the {name} worker's start"
                ));
            }
            continue;
        };
        let all_ended = last.done + last.dead_lettered >= plan.events;
        let reached = starts.len() > plan.last_window();
        if !reached {
            if all_ended {
                break Ok((true, true, false));
            }
            if last.at < samples[first].at + window_wait {
                continue;
            }
        }
        if all_ended {
            break Ok((true, false, !reached));
        }
        let deadline = *drain_deadline.get_or_insert_with(|| {
            let rate = measured_span(&samples, &starts, plan)
                .unwrap_or_else(|| span(samples[first], last))
                .rows_per_s;
            last.at + drain_allowance(plan.events - last.done - last.dead_lettered, rate)
        });
        if last.at >= deadline {
            break Ok((false, false, !reached));
        }
    };
    shutdown.cancel();
    let worker_stop = match tokio::time::timeout(Duration::from_secs(30), &mut worker).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(error))) => Err(error.to_string()),
        Ok(Err(join)) => Err(join.to_string()),
        Err(_) => {
            worker.abort();
            Err("it did not stop within 30 s".to_owned())
        }
    };
    let (finished, backlog_ran_out, window_timed_out) = ended?;
    Ok(Measured {
        samples,
        finished,
        backlog_ran_out,
        window_timed_out,
        worker_stop,
    })
}

async fn fetch(client: &reqwest::Client, url: &str) -> Option<String> {
    let response = client.get(url).send().await.ok()?;
    response.text().await.ok()
}

/// A run's figures.
struct RunResult {
    variant: Variant,
    plan: Plan,
    measured: Measured,
    /// The quota windows the samples show: start (after the first write's) and what happened in each.
    windows: Vec<(Duration, Span)>,
    /// The measured windows together; `None` if the last one never started.
    window: Option<Span>,
    /// The last sample.
    last: Sample,
    /// Records on the dead-letter topic.
    dead_letter_records: usize,
    /// Data rows in the sheet (below its header), and the distinct response ids among them.
    sheet_rows: usize,
    sheet_responses: usize,
    /// The worker's `delivery.max_in_flight` and its per-team share.
    max_in_flight: usize,
    max_in_flight_per_team: usize,
}

impl RunResult {
    fn rows_per_s(&self) -> Option<f64> {
        self.window.map(|w| w.rows_per_s)
    }

    /// Events that did not end done: never finished, or dead-lettered.
    fn not_done(&self) -> u64 {
        self.plan.events.saturating_sub(self.last.done)
    }

    fn every_event_done(&self) -> bool {
        self.not_done() == 0
            && self.dead_letter_records == 0
            && self.sheet_responses as u64 == self.plan.events
    }

    /// Seconds from the first write to the last sample.
    fn seconds_after_first_write(&self) -> f64 {
        let first = quota_window_starts(&self.measured.samples)
            .first()
            .map_or(Duration::ZERO, |&i| self.measured.samples[i].at);
        self.last.at.saturating_sub(first).as_secs_f64()
    }

    fn json(&self) -> Value {
        let plan = &self.plan;
        let windows: Vec<Value> = self
            .windows
            .iter()
            .map(|(start, w)| {
                json!({"start_s": round(start.as_secs_f64(), 1), "seconds": round(w.seconds, 1), "rows": w.rows,
                       "appends": w.appends, "api_calls": w.calls, "refusals_429": w.refusals,
                       "throttled": w.throttled})
            })
            .collect();
        let batch = self.variant.manifest().delivery.batch;
        json!({
            "manifest_batch": batch.map(|b| json!({"max_events": b.max_events, "max_wait_ms": b.max_wait_ms})),
            "rows_per_write": plan.rows_per_write,
            "events": plan.events,
            "rows_per_s": self.rows_per_s().map(|r| round(r, 2)),
            "quota_bound_rows_per_s": round(plan.ideal_rows_per_s, 2),
            "of_quota_bound": self.rows_per_s().map(|r| round(r / plan.ideal_rows_per_s, 3)),
            "mean_quota_cycle_s": self.window.map(|w| round(w.seconds / f64::from(plan.windows), 1)),
            "measured": self.window.map(|w| json!({
                "from_quota_window": plan.warmup_windows,
                "to_quota_window": plan.last_window(),
                "seconds": round(w.seconds, 1),
                "rows": w.rows,
                "api_calls": w.calls,
                "appends": w.appends,
                "refusals_429": w.refusals,
                "throttled": w.throttled,
            })),
            "quota_windows": windows,
            "done": self.last.done,
            "dead_lettered": self.last.dead_lettered,
            "dead_letter_records": self.dead_letter_records,
            "throttled": self.last.throttled,
            "api_calls": self.last.calls,
            "write_calls": self.last.writes,
            "append_calls": self.last.appends,
            "fake_429s": self.last.refusals,
            "sheet_rows": self.sheet_rows,
            "sheet_distinct_responses": self.sheet_responses,
            "not_done": self.not_done(),
            "every_event_done": self.every_event_done(),
            "ended_s_after_first_write": round(self.seconds_after_first_write(), 1),
            "backlog_ran_out_before_the_window_ended": self.measured.backlog_ran_out,
            "window_timed_out": self.measured.window_timed_out,
            "worker_stopped_cleanly": self.measured.worker_stop.is_ok(),
        })
    }
}

/// Reads back what the broker and the fake hold after a run; deletes the run's topics.
fn conclude(prepared: Prepared, measured: Measured, clients: &Clients) -> Result<RunResult, Error> {
    let Prepared {
        variant,
        plan,
        fake,
        topics,
        settings,
        ..
    } = prepared;
    let dead = kafka::read_to_end(clients, &topics.dead_letter, Duration::from_secs(60), |_| true)
        .map_err(|e| e.to_string())?;
    if let Err(error) = kafka::delete_topics(clients, &topics.all()) {
        eprintln!("note: deleting the benchmark's topics failed: {error}");
    }
    let form = response_24_answers(TEAM, "r").response.form_id;
    let tab = GoogleSheets::tab_title(SheetsConfig::DEFAULT_SHEET_NAME, &form);
    let grid = fake.grid(SPREADSHEET, &tab).unwrap_or_default();
    let responses: HashSet<&Value> = grid.iter().skip(1).filter_map(|row| row.first()).collect();
    let starts = quota_window_starts(&measured.samples);
    let max_in_flight = settings.delivery.max_in_flight;
    Ok(RunResult {
        variant,
        plan,
        windows: window_spans(&measured.samples, &starts),
        window: measured_span(&measured.samples, &starts, &plan),
        last: measured.samples.last().copied().unwrap_or_default(),
        dead_letter_records: dead.kept.len(),
        sheet_rows: grid.len().saturating_sub(1),
        sheet_responses: responses.len(),
        max_in_flight,
        max_in_flight_per_team: settings
            .delivery
            .max_in_flight_per_team
            .unwrap_or_else(|| default_per_team(max_in_flight))
            .clamp(1, max_in_flight.max(1)),
        measured,
    })
}

fn run(config: &BenchConfig) -> Result<(), Error> {
    std::fs::create_dir_all(&config.out).map_err(|e| format!("creating {}: {e}", config.out.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let clients = kafka::clients(&config.bootstrap);
    let mut prepared = Vec::new();
    for variant in [Variant::Batched, Variant::Unbatched] {
        let run = prepare(&runtime, config, variant)?;
        println!(
            "{}: {} events of team {TEAM} on {}; the quota allows {:.1} rows/s",
            variant.name(),
            run.plan.events,
            run.topics.events,
            run.plan.ideal_rows_per_s
        );
        prepared.push(run);
    }
    if let Some(first) = prepared.first() {
        switchyard_plugin_runtime::telemetry::init(&first.settings.log);
    }
    println!(
        "both runs start now, side by side: {} quota windows of at least 60 s from their first write, then the \
         rest of the backlog",
        config.warmup_windows + config.windows
    );
    let measured = runtime.block_on(async {
        let (batched, unbatched) = tokio::join!(measure(&prepared[0]), measure(&prepared[1]));
        [batched, unbatched]
    });
    let mut results = Vec::new();
    for (prepared, measured) in prepared.into_iter().zip(measured) {
        results.push(conclude(prepared, measured?, &clients)?);
    }
    drop(runtime);
    let [batched, unbatched] = <[RunResult; 2]>::try_from(results).map_err(|_| "two runs expected")?;
    let summary = summary_json(config, &batched, &unbatched);
    print_table(config, &batched, &unbatched, &summary);
    let path = config.out.join("sheets_batches.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))?;
    let series_path = config.out.join("sheets_batches-series.json");
    let series = json!({
        "columns": ["seconds_after_first_write", "done", "dead_lettered", "throttled", "api_calls", "appends",
                    "refusals_429"],
        "batched": series_json(&batched.measured.samples),
        "unbatched": series_json(&unbatched.measured.samples),
    });
    std::fs::write(&series_path, series.to_string() + "\n")
        .map_err(|e| format!("writing {}: {e}", series_path.display()))?;
    println!("\nwrote {} and {}", path.display(), series_path.display());
    Ok(())
}

/// One sample per second from the first write on.
fn series_json(samples: &[Sample]) -> Value {
    let first = quota_window_starts(samples)
        .first()
        .map_or(Duration::ZERO, |&i| samples[i].at);
    let mut rows = Vec::new();
    let mut next = first;
    for sample in samples.iter().filter(|s| s.at >= first) {
        if sample.at >= next {
            rows.push(json!([
                round((sample.at - first).as_secs_f64(), 1),
                sample.done,
                sample.dead_lettered,
                sample.throttled,
                sample.calls,
                sample.appends,
                sample.refusals,
            ]));
            next = sample.at + Duration::from_secs(1);
        }
    }
    Value::Array(rows)
}

fn summary_json(config: &BenchConfig, batched: &RunResult, unbatched: &RunResult) -> Value {
    let speedup = match (batched.rows_per_s(), unbatched.rows_per_s()) {
        (Some(b), Some(u)) if u > 0.0 => Some(b / u),
        _ => None,
    };
    let dead_letters = batched.dead_letter_records + unbatched.dead_letter_records;
    let every_event_done = batched.every_event_done() && unbatched.every_event_done();
    let speedup_met = speedup.map(|s| s >= SPEEDUP_TARGET);
    json!({
        "batch_speedup": speedup.map(|s| round(s, 2)),
        "batched_rows_per_s": batched.rows_per_s().map(|r| round(r, 2)),
        "unbatched_rows_per_s": unbatched.rows_per_s().map(|r| round(r, 2)),
        "dead_letters": dead_letters,
        "fake_429s": batched.last.refusals + unbatched.last.refusals,
        "throttled": batched.last.throttled + unbatched.last.throttled,
        "api_calls": batched.last.calls + unbatched.last.calls,
        "every_event_done": every_event_done,
        "targets": {"batch_speedup": SPEEDUP_TARGET, "dead_letters": 0, "events_not_done": 0},
        "met": {
            "batch_speedup": speedup_met,
            "dead_letters": dead_letters == 0,
            "every_event_done": every_event_done,
            "all": speedup_met == Some(true) && dead_letters == 0 && every_event_done,
        },
        "batched": batched.json(),
        "unbatched": unbatched.json(),
        "settings": {
            "quick": config.quick,
            "team": TEAM,
            "latency_ms": config.latency.as_millis() as u64,
            "warmup_windows": config.warmup_windows,
            "windows": config.windows,
            "write_quota_per_minute_per_user": QuotaLimits::GOOGLE_DEFAULT.per_user,
            "write_quota_per_minute_per_project": QuotaLimits::GOOGLE_DEFAULT.per_project,
            "ordering": "response",
            "max_in_flight": batched.max_in_flight,
            "max_in_flight_per_team": batched.max_in_flight_per_team,
            "side_by_side": "both runs at once, each with its own fake, topics and worker",
        },
    })
}

fn print_table(config: &BenchConfig, batched: &RunResult, unbatched: &RunResult, summary: &Value) {
    println!();
    println!(
        "| One team, {} ms per Sheets API call, 60 writes per minute per user | Batched | Unbatched |",
        config.latency.as_millis()
    );
    println!("| --- | ---: | ---: |");
    let row = |what: &str, f: &dyn Fn(&RunResult) -> String| {
        println!("| {what} | {} | {} |", f(batched), f(unbatched));
    };
    let list = |r: &RunResult, f: &dyn Fn(&Span) -> u64| {
        r.windows
            .iter()
            .map(|(_, w)| f(w).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    row("Rows per write / backlog (events)", &|r| {
        format!("{} / {}", r.plan.rows_per_write, r.plan.events)
    });
    row("The quota's bound (a window's rows every 60 s)", &|r| {
        format!("{:.1} rows/s", r.plan.ideal_rows_per_s)
    });
    row(
        &format!(
            "**Rows/s**, quota windows {} to {} (start to start)",
            config.warmup_windows,
            config.warmup_windows + config.windows
        ),
        &|r| {
            r.window.map_or("n/a".to_owned(), |w| {
                format!("**{:.2}** ({} rows, {:.1} s)", w.rows_per_s, w.rows, w.seconds)
            })
        },
    );
    row("Of the quota's bound; mean quota cycle", &|r| {
        r.window.map_or("n/a".to_owned(), |w| {
            format!(
                "{:.2}; {:.1} s",
                w.rows_per_s / r.plan.ideal_rows_per_s,
                w.seconds / f64::from(r.plan.windows)
            )
        })
    });
    row("Quota windows: start, s after the first write", &|r| {
        r.windows
            .iter()
            .map(|(start, _)| format!("{:.0}", start.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    });
    row("Rows per quota window", &|r| list(r, &|w| w.rows));
    row("`values.append` calls per quota window", &|r| {
        list(r, &|w| w.appends)
    });
    row("429s per quota window", &|r| list(r, &|w| w.refusals));
    row("Sheets API calls / answered 429 (whole run)", &|r| {
        format!("{} / {}", r.last.calls, r.last.refusals)
    });
    row("Throttled outcomes counted by the runtime", &|r| {
        r.last.throttled.to_string()
    });
    row("Done / dead letters / not done", &|r| {
        format!("{} / {} / {}", r.last.done, r.dead_letter_records, r.not_done())
    });
    row("Rows in the sheet / distinct responses", &|r| {
        format!("{} / {}", r.sheet_rows, r.sheet_responses)
    });
    row("Last event done, s after the first write", &|r| {
        format!(
            "{:.0}{}",
            r.seconds_after_first_write(),
            if r.measured.finished { "" } else { " (gave up)" }
        )
    });
    let speedup = summary["batch_speedup"].as_f64();
    println!(
        "| **`batch_speedup`** (target ≥ {SPEEDUP_TARGET}) | **{}** | |",
        speedup.map_or("n/a".to_owned(), |s| format!(
            "{s:.1}, {}",
            if s >= SPEEDUP_TARGET { "met" } else { "MISSED" }
        ))
    );
    let clean =
        summary["met"]["every_event_done"] == json!(true) && summary["met"]["dead_letters"] == json!(true);
    println!(
        "| Every event done, none dead-lettered | {} | |",
        if clean { "yes" } else { "NO" }
    );
    for run in [batched, unbatched] {
        let name = run.variant.name();
        if run.measured.backlog_ran_out {
            println!("note: the {name} backlog was done before the last measured quota window started");
        }
        if run.measured.window_timed_out {
            println!("note: the {name} run's last measured quota window never started");
        }
        if let Err(error) = &run.measured.worker_stop {
            println!("note: the {name} worker did not stop cleanly: {error}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Checks of the pure helpers (`cargo test -p switchyard-plugins --bench sheets_batches`)

mod checks {
    use super::*;

    type Check = fn() -> Result<(), Error>;

    fn ensure(condition: bool, what: &str) -> Result<(), Error> {
        if condition { Ok(()) } else { Err(what.to_owned()) }
    }

    /// A sample at `tenths` of a second with `done` rows, `writes` write calls and `refusals` 429s.
    fn sample(tenths: u64, done: u64, writes: u64, refusals: u64) -> Sample {
        Sample {
            at: Duration::from_millis(100 * tenths),
            done,
            writes,
            refusals,
            ..Sample::default()
        }
    }

    /// Runs every check; the number that passed.
    pub(super) fn run() -> Result<usize, Error> {
        let checks: [(&str, Check); 4] = [
            ("plans", plans_outlast_the_measured_windows),
            (
                "windows",
                quota_windows_start_with_the_first_accepted_write_after_a_minute,
            ),
            ("spans", the_rate_runs_from_window_start_to_window_start),
            ("drain", the_drain_wait_is_bounded),
        ];
        for (name, check) in checks {
            check().map_err(|error| format!("{name}: {error}"))?;
        }
        Ok(checks.len())
    }

    fn plans_outlast_the_measured_windows() -> Result<(), Error> {
        let batched = plan(60, 50, 1, 2);
        ensure(
            batched.ideal_rows_per_s == 50.0,
            "60 writes of 50 rows a minute are 50 rows/s",
        )?;
        ensure(batched.events == 10_500, "3.5 windows of 3,000 rows")?;
        ensure(batched.last_window() == 3, "windows 1 to 3")?;
        let unbatched = plan(60, 1, 0, 1);
        ensure(unbatched.events == 90, "1.5 windows of 60 rows")?;
        ensure(unbatched.ideal_rows_per_s == 1.0, "one row a second")
    }

    /// Writes from 0.1 s on (window 0), then 429s; nothing accepted until 70 s (window 1, from the sample
    /// before it, 69.9 s); a write refused by 130 s (still window 1); one accepted by 131 s (window 2).
    fn timeline() -> Vec<Sample> {
        vec![
            sample(0, 0, 0, 0),
            sample(1, 0, 1, 0),
            sample(10, 50, 5, 0),
            sample(20, 50, 9, 4),
            sample(600, 50, 12, 7),
            sample(699, 50, 12, 7),
            sample(700, 100, 13, 7),
            sample(710, 150, 14, 7),
            sample(1300, 150, 16, 9),
            sample(1310, 200, 17, 9),
        ]
    }

    fn quota_windows_start_with_the_first_accepted_write_after_a_minute() -> Result<(), Error> {
        let samples = timeline();
        let starts = quota_window_starts(&samples);
        ensure(
            starts == [0, 5, 8],
            &format!("the samples before 0.1 s, 70.0 s and 131.0 s, not {starts:?}"),
        )?;
        let windows = window_spans(&samples, &starts);
        let rows: Vec<u64> = windows.iter().map(|(_, w)| w.rows).collect();
        ensure(rows == [50, 100, 50], &format!("rows per window, not {rows:?}"))?;
        ensure(
            windows[1].0 == Duration::from_millis(69_900),
            "window 1 starts 69.9 s after the sample before the first write",
        )?;
        ensure(
            quota_window_starts(&samples[..1]).is_empty(),
            "no write, no window",
        )
    }

    fn the_rate_runs_from_window_start_to_window_start() -> Result<(), Error> {
        let samples = timeline();
        let starts = quota_window_starts(&samples);
        let one = plan(60, 50, 1, 1);
        let span = measured_span(&samples, &starts, &one).ok_or("windows 1 to 2 are there")?;
        ensure(
            span.rows == 100 && span.refusals == 2,
            "rows and 429s of window 1",
        )?;
        ensure(
            (span.seconds - 60.1).abs() < 1e-9 && (span.rows_per_s - 100.0 / 60.1).abs() < 1e-9,
            "100 rows from 69.9 s to 130.0 s",
        )?;
        ensure(
            measured_span(&samples, &starts, &plan(60, 50, 1, 2)).is_none(),
            "window 3 has not started",
        )
    }

    fn the_drain_wait_is_bounded() -> Result<(), Error> {
        ensure(drain_allowance(0, 1.0).is_zero(), "nothing left, no wait")?;
        ensure(
            drain_allowance(100, 10.0) == Duration::from_secs(75),
            "15 s at 1.5 times the rate, and a quota window",
        )?;
        ensure(drain_allowance(100, 0.0) == MAX_DRAIN, "no rate: the cap")?;
        ensure(drain_allowance(1_000_000, 1.0) == MAX_DRAIN, "at most the cap")
    }
}
