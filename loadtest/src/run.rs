//! The `run` subcommand, and the measuring session that `find-max` reuses step by step.
//!
//! ```text
//!  setup: topics (scenario sizes) ─► plugins + enablements (control topics or registry)
//!     ─► what earlier runs left removed (crate::leftovers) ─► router applied them
//!  ─► event pool generated ─► latency reader at the plugin topics' ends ─► lag watcher on the router's group
//!  step(rate, duration | count):
//!     send at the rate (or as fast as the producer takes) ──► every second: in, out, p99, lag, CPU, RSS
//!     ─► drain: until every expected output was read (bounded)
//!     ─► settle: until the group consumed every event and the reader went quiet (bounded), so that a
//!        surplus is counted too ─► percentiles, totals, timeline
//! ```

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use switchyard_schemas::topics as names;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::control_plane::{
    RegistryAccess, apply_through_registry, apply_to_topics_named, read_load_controls, remove_from_topics,
    remove_through_registry, wait_for_registry,
};
use crate::expect::RoutingTable;
use crate::kafka::{Producer, TopicSpec, clients, create_topics};
use crate::leftovers::{ControlRecords, Leftovers};
use crate::measure::{LagWatcher, LatencyReader, Percentiles, Processes, now_us};
use crate::metadata::{Metadata, SystemUnderTest, describe_system, group_members};
use crate::objective::{Objective, Verdict};
use crate::router_admin::RouterAdmin;
use crate::scenario::Scenario;
use crate::workload::{EventPool, controls, scenario_teams};
use crate::{LoadtestError, rfc3339_seconds};

/// The topic names a run uses.
#[derive(Debug, Clone, Serialize)]
pub struct RunTopics {
    /// Core events.
    pub core: String,
    /// The router's dead-letter topic.
    pub dead_letter: String,
    /// Plugin manifests (compacted).
    pub plugins: String,
    /// Enablements (compacted).
    pub enablements: String,
    /// Plugin topic template, `{plugin}` replaced by the id.
    pub template: String,
    /// The router's backfill progress (compacted).
    pub backfill_progress: String,
}

impl RunTopics {
    /// The contract's default names behind an optional prefix (`<prefix>.core.events`, ...).
    pub fn with_prefix(prefix: Option<&str>) -> Self {
        let name = |base: &str| match prefix {
            Some(prefix) => format!("{prefix}.{base}"),
            None => base.to_owned(),
        };
        Self {
            core: name(names::CORE_EVENTS),
            dead_letter: name(names::CORE_EVENTS_DLQ),
            plugins: name(names::PLUGINS),
            enablements: name(names::ENABLEMENTS),
            template: name(names::PLUGIN_EVENTS_TEMPLATE),
            backfill_progress: name(names::BACKFILL_PROGRESS),
        }
    }

    /// A plugin's topic.
    pub fn plugin(&self, plugin: &str) -> String {
        names::plugin_events_topic(&self.template, plugin)
    }
}

/// The topics of a scenario under these names: core (scenario size), dead letters (3), the compacted
/// control topics, and with `with_plugins` one topic per plugin (scenario size).
pub fn scenario_topics(scenario: &Scenario, topics: &RunTopics, with_plugins: bool) -> Vec<TopicSpec> {
    let spec = |name: &str, partitions: i32, compacted: bool| TopicSpec {
        name: name.to_owned(),
        partitions,
        compacted,
    };
    let mut specs = vec![
        spec(&topics.core, scenario.topics.core_partitions, false),
        spec(&topics.dead_letter, 3, false),
        spec(&topics.plugins, 1, true),
        spec(&topics.enablements, 3, true),
        spec(&topics.backfill_progress, 3, true),
    ];
    if with_plugins {
        specs.extend(
            scenario
                .plugin_ids()
                .iter()
                .map(|p| spec(&topics.plugin(p), scenario.topics.plugin_partitions, false)),
        );
    }
    specs
}

/// How the plugins and enablements get into place.
#[derive(Debug, Clone)]
pub enum Setup {
    /// Write the control topics.
    Topics,
    /// Register and enable through the registry.
    Registry(RegistryAccess),
    /// They are in place already (a second run against the same topics, or the pipe baseline).
    Skip,
}

/// What a session measures against.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// The traffic.
    pub scenario: Scenario,
    /// Seeds teams, enablements and events.
    pub seed: u64,
    /// Topic names.
    pub topics: RunTopics,
    /// Plugins and enablements.
    pub setup: Setup,
    /// The consumer group whose lag on the core topic is sampled (the router's).
    pub group: String,
    /// The router's admin address, to wait until it is ready and applied the control records.
    pub router_admin: Option<String>,
    /// Processes whose CPU and memory are sampled (the system under test).
    pub processes: Processes,
    /// Distinct events generated up front and replayed.
    pub pool_size: usize,
    /// The longest wait for the system to catch up after sending, and for setup steps.
    pub timeout: Duration,
    /// Show a progress bar (else a line every 5 s).
    pub progress_bar: bool,
}

/// One second of a step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the step started.
    pub t: f64,
    /// Events acknowledged by the broker in this second.
    pub events_in: u64,
    /// Plugin-topic records read in this second.
    pub records_out: u64,
    /// p99 end-to-end latency of the records read in this second, ms.
    pub p99_ms: f64,
    /// Consumer lag of the group on the core topic (events), if the broker answered.
    pub lag: Option<u64>,
    /// CPU cores used by the watched processes in this second.
    pub cpu_cores: f64,
    /// Their resident memory, MiB.
    pub rss_mib: f64,
}

/// What one step measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepResult {
    /// The target rate (events/s); 0 = as fast as possible.
    pub target_rate: u64,
    /// Events sent.
    pub events: u64,
    /// Seconds spent sending.
    pub send_seconds: f64,
    /// Events per second actually sent.
    pub rate_in: f64,
    /// Plugin-topic records the routing rule prescribes for the events sent.
    pub expected_records: u64,
    /// Plugin-topic records of this step read (sent after it began), counted until the system under
    /// test consumed every event and the reader went quiet: more than `expected_records` is a surplus.
    pub records_read: u64,
    /// Seconds from the first send until the last expected record was read (or the drain gave up).
    pub seconds: f64,
    /// Records per second out, over the whole step.
    pub rate_out: f64,
    /// Whether every expected record was read before the timeout.
    pub drained: bool,
    /// End-to-end latency, core produce to read_committed read of each plugin record.
    pub latency_ms: Percentiles,
    /// CPU seconds of the watched processes during the step.
    pub cpu_seconds: f64,
    /// Events per CPU-second of the watched processes.
    pub events_per_cpu_second: f64,
    /// Largest resident memory seen, MiB.
    pub rss_mib_max: f64,
    /// Lag at the end of sending, and its largest value.
    pub lag_at_end: Option<u64>,
    /// Largest lag.
    pub lag_max: Option<u64>,
    /// Whether the lag kept growing while sending (the system did not keep up).
    pub lag_growing: bool,
    /// Per second.
    pub timeline: Vec<Sample>,
}

/// A prepared system: topics, controls, pool, readers.
pub struct Session {
    options: SessionOptions,
    producer: Producer,
    pool: EventPool,
    reader: LatencyReader,
    lag: LagWatcher,
    /// Mean value size, bytes.
    pub mean_value_bytes: f64,
    /// Mean plugin topics per event.
    pub mean_fanout: f64,
    /// Enablements written.
    pub enablements: usize,
    /// Control records written to remove what earlier runs left on the topics.
    pub leftovers_removed: ControlRecords,
    /// The run id.
    pub run_id: Uuid,
}

fn fanout_of(record: &crate::kafka::Record) -> u64 {
    record
        .header(crate::workload::FANOUT_HEADER)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

fn say(line: std::fmt::Arguments<'_>) {
    eprintln!("switchyard-loadtest: {line}");
}

impl Session {
    /// Sets everything up for `options`.
    pub fn prepare(options: SessionOptions) -> Result<Self, LoadtestError> {
        let scenario = &options.scenario;
        let topics = &options.topics;
        let plugin_ids = scenario.plugin_ids();
        // The registry provisions plugin topics itself, with its own sizes.
        let with_plugins = !matches!(options.setup, Setup::Registry(_));
        create_topics(
            &clients(&options.bootstrap),
            &scenario_topics(scenario, topics, with_plugins),
        )?;

        let run_id = Uuid::now_v7();
        let now = OffsetDateTime::now_utc();
        let updated_at = rfc3339_seconds(now);
        let teams = scenario_teams(scenario, options.seed);
        let controls = controls(scenario, &teams, options.seed, &updated_at);
        let table = RoutingTable::from_controls(&controls);
        let producer = Producer::new(&clients(&options.bootstrap))?;
        let enablements = controls.len() - plugin_ids.len();
        let admin = options
            .router_admin
            .as_deref()
            .map(RouterAdmin::new)
            .transpose()?;
        if let Some(admin) = &admin {
            admin.wait_ready(options.timeout)?;
        }
        let before = admin.as_ref().map(RouterAdmin::counters).transpose()?;
        // What earlier runs left on these topics goes, so that the router routes by this run's controls
        // alone (crate::leftovers).
        let leftovers = match options.setup {
            Setup::Skip => Leftovers::default(),
            Setup::Topics | Setup::Registry(_) => Leftovers::of(
                &read_load_controls(
                    &options.bootstrap,
                    &topics.plugins,
                    &topics.enablements,
                    options.timeout,
                )?,
                &controls,
            ),
        };
        let removed = match &options.setup {
            Setup::Topics => {
                apply_to_topics_named(
                    &producer,
                    &controls,
                    &topics.plugins,
                    &topics.enablements,
                    options.timeout,
                )?;
                say(format_args!(
                    "wrote {} plugin manifests and {enablements} enablements to {} and {}",
                    plugin_ids.len(),
                    topics.plugins,
                    topics.enablements
                ));
                remove_from_topics(
                    &producer,
                    &leftovers,
                    &topics.plugins,
                    &topics.enablements,
                    options.timeout,
                )?
            }
            Setup::Registry(access) => {
                wait_for_registry(access, options.timeout)?;
                apply_through_registry(access, &controls)?;
                say(format_args!(
                    "registered {} plugins and {enablements} enablements through {}",
                    plugin_ids.len(),
                    access.url
                ));
                remove_through_registry(access, &leftovers, &controls)?
            }
            Setup::Skip => ControlRecords::default(),
        };
        if !leftovers.is_empty() {
            say(format_args!(
                "earlier runs left {} load plugins and {} enablements ({} of them enabled) that this \
                 scenario does not contain; wrote {} manifest and {} enablement records to remove them",
                leftovers.plugins.len(),
                leftovers.enablements.len(),
                leftovers
                    .enablements
                    .iter()
                    .filter(|(_, _, enabled)| *enabled)
                    .count(),
                removed.plugins,
                removed.enablements
            ));
        }
        if let (Some(admin), Some(before), false) = (&admin, &before, matches!(options.setup, Setup::Skip)) {
            let plugins = plugin_ids.len() as u64 + removed.plugins;
            let enablements = enablements as u64 + removed.enablements;
            admin.wait_for_counters(
                "the router to apply the plugins and enablements",
                options.timeout,
                |now| {
                    let delta = now.since(before);
                    (delta.plugins_applied < plugins || delta.enablements_applied < enablements).then(|| {
                        format!(
                            "{}/{plugins} manifests, {}/{enablements} enablements applied",
                            delta.plugins_applied, delta.enablements_applied
                        )
                    })
                },
                |state| say(format_args!("waiting: {state}")),
            )?;
        }
        let pool = EventPool::generate(
            scenario,
            &teams,
            &table,
            options.seed,
            options.pool_size,
            run_id,
            (now.unix_timestamp_nanos() / 1_000_000) as i64,
        )?;
        say(format_args!(
            "{} events generated for replay: mean value {:.0} bytes, mean fan-out {:.2} plugin topics",
            options.pool_size, pool.mean_value_bytes, pool.mean_fanout
        ));
        let plugin_topics: Vec<String> = plugin_ids.iter().map(|p| topics.plugin(p)).collect();
        let reader = LatencyReader::start(&options.bootstrap, &plugin_topics)?;
        let lag = LagWatcher::new(&options.bootstrap, &options.group, &topics.core)?;
        Ok(Self {
            mean_value_bytes: pool.mean_value_bytes,
            mean_fanout: pool.mean_fanout,
            enablements,
            leftovers_removed: removed,
            run_id,
            options,
            producer,
            pool,
            reader,
            lag,
        })
    }

    /// The options.
    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// The system under test as it describes itself now: the members of the group and the partitions of
    /// the core topic (the broker), the router's settings (its admin server). Call it once the warm-up
    /// made the system join its group. Never fails: what cannot be read is a note.
    pub fn describe_system(&self) -> SystemUnderTest {
        let options = &self.options;
        let router_metrics = options
            .router_admin
            .as_deref()
            .map(|address| RouterAdmin::new(address).and_then(|admin| admin.metrics()));
        describe_system(
            SystemUnderTest {
                bootstrap: options.bootstrap.clone(),
                group: options.group.clone(),
                core_partitions: self.lag.partition_count(),
                router_admin: options.router_admin.clone(),
                pids: options.processes.pids().to_vec(),
                ..SystemUnderTest::default()
            },
            group_members(&options.bootstrap, &options.group),
            router_metrics,
        )
    }

    /// Starts a backfill of `events` historical events as background load (see
    /// [`crate::backfill_load`]); returns once it runs.
    pub fn start_backfill(&self, events: u64) -> Result<crate::backfill_load::BackfillLoad, LoadtestError> {
        crate::backfill_load::start(
            &self.options,
            &self.producer,
            &self.lag,
            events,
            &self.run_id.to_string(),
        )
    }

    /// Sends at `rate` events/s (0: as fast as possible) for `duration` or `count` events, whichever
    /// ends first, then waits until the outputs were read; measures all the while. A sampler thread
    /// takes a [`Sample`] every second, so slow broker answers never hold up the sending.
    pub fn step(&mut self, rate: u64, duration: Duration, count: u64) -> Result<StepResult, LoadtestError> {
        let Session {
            options,
            producer,
            pool,
            reader,
            lag,
            ..
        } = self;
        let bar = options.progress_bar.then(|| {
            let bar = ProgressBar::new(duration.as_secs().max(1));
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        reader.only_sent_since(now_us());
        // The count and the latencies start together (see measure::Totals).
        let read_before = reader.take_total().records;
        let _ = reader.take_window();
        let usage_before = options.processes.usage();
        let started = Instant::now();
        let sending = AtomicBool::new(true);
        let finished = AtomicBool::new(false);
        let send_end = Mutex::new(None::<f64>);
        let timeline: Mutex<Vec<Sample>> = Mutex::new(Vec::new());
        let rss_max = Mutex::new(usage_before.rss_mib);

        let outcome = std::thread::scope(|scope| -> Result<(u64, u64, f64, f64, bool), LoadtestError> {
            // The sampler.
            scope.spawn(|| {
                let mut last = (Instant::now(), producer.delivered(), read_before, usage_before);
                let mut last_line = Instant::now();
                let mut next = started + Duration::from_secs(1);
                loop {
                    let stop = finished.load(Ordering::Relaxed);
                    if !stop {
                        let wait = next.saturating_duration_since(Instant::now());
                        std::thread::sleep(wait.min(Duration::from_millis(100)));
                        if Instant::now() < next {
                            continue;
                        }
                        next += Duration::from_secs(1);
                    }
                    let now = Instant::now();
                    let seconds = now.duration_since(last.0).as_secs_f64().max(1e-3);
                    let acked = producer.delivered();
                    let read = reader.records();
                    let usage = options.processes.usage();
                    let sample = Sample {
                        t: started.elapsed().as_secs_f64(),
                        events_in: acked - last.1,
                        records_out: read - last.2,
                        p99_ms: Percentiles::of(&reader.take_window()).p99,
                        lag: lag.lag(),
                        cpu_cores: (usage.cpu_seconds - last.3.cpu_seconds) / seconds,
                        rss_mib: usage.rss_mib,
                    };
                    {
                        let mut max = rss_max.lock().unwrap_or_else(|p| p.into_inner());
                        *max = max.max(usage.rss_mib);
                    }
                    last = (now, acked, read, usage);
                    timeline.lock().unwrap_or_else(|p| p.into_inner()).push(sample);
                    let text = format!(
                        "in {:>7}/s  out {:>7}/s  p99 {:>8.1} ms  lag {:>8}  cpu {:.2}  rss {:.0} MiB{}",
                        sample.events_in,
                        sample.records_out,
                        sample.p99_ms,
                        sample.lag.map_or("?".to_owned(), |l| l.to_string()),
                        sample.cpu_cores,
                        sample.rss_mib,
                        if sending.load(Ordering::Relaxed) {
                            ""
                        } else {
                            "  (draining)"
                        }
                    );
                    match &bar {
                        Some(bar) => {
                            bar.set_position(sample.t as u64);
                            bar.set_message(text);
                        }
                        None if last_line.elapsed() >= Duration::from_secs(5) => {
                            say(format_args!("[{:>5.0} s] {text}", sample.t));
                            last_line = Instant::now();
                        }
                        None => {}
                    }
                    if stop {
                        break;
                    }
                }
            });

            // Send.
            let result = (|| {
                let (mut sent, mut expected) = (0u64, 0u64);
                while sent < count && started.elapsed() < duration {
                    let due = if rate == 0 {
                        u64::MAX
                    } else {
                        (started.elapsed().as_secs_f64() * rate as f64) as u64
                    };
                    let mut burst = 0;
                    while sent < count.min(due) && burst < 1000 {
                        let record = pool.next_record(now_us());
                        expected += fanout_of(&record);
                        producer.send(&options.topics.core, &record)?;
                        sent += 1;
                        burst += 1;
                    }
                    if burst == 0 {
                        std::thread::sleep(Duration::from_micros(500));
                    }
                }
                producer.flush(options.timeout)?;
                let send_seconds = started.elapsed().as_secs_f64();
                *send_end.lock().unwrap_or_else(|p| p.into_inner()) = Some(send_seconds);
                sending.store(false, Ordering::Relaxed);

                // Drain: every expected record read, bounded.
                let deadline = Instant::now() + options.timeout;
                let drained = loop {
                    if reader.records() - read_before >= expected {
                        break true;
                    }
                    if Instant::now() >= deadline {
                        break false;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                };
                let drain_seconds = started.elapsed().as_secs_f64();
                if drained {
                    settle(reader, lag);
                }
                Ok((sent, expected, send_seconds, drain_seconds, drained))
            })();
            finished.store(true, Ordering::Relaxed);
            result
        });
        let (sent, expected_records, send_seconds, seconds, drained) = outcome?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let timeline = timeline.into_inner().unwrap_or_else(|p| p.into_inner());
        let totals = reader.take_total();
        let latency = Percentiles::of(&totals.latencies);
        let usage_after = options.processes.usage();
        let cpu_seconds = usage_after.cpu_seconds - usage_before.cpu_seconds;
        let sending_lags: Vec<u64> = timeline
            .iter()
            .filter(|s| s.t <= send_seconds)
            .filter_map(|s| s.lag)
            .collect();
        let rate_in = sent as f64 / send_seconds.max(1e-9);
        let records_read = totals.records - read_before;
        Ok(StepResult {
            target_rate: rate,
            events: sent,
            send_seconds,
            rate_in,
            expected_records,
            records_read,
            seconds,
            rate_out: records_read as f64 / seconds.max(1e-9),
            drained,
            latency_ms: latency,
            cpu_seconds,
            events_per_cpu_second: if cpu_seconds > 0.0 {
                sent as f64 / cpu_seconds
            } else {
                0.0
            },
            rss_mib_max: rss_max.into_inner().unwrap_or_else(|p| p.into_inner()),
            lag_at_end: sending_lags.last().copied(),
            lag_max: timeline.iter().filter_map(|s| s.lag).max(),
            lag_growing: lag_growing(&sending_lags, rate.max(rate_in as u64)),
            timeline,
        })
    }

    /// Stops the reader.
    pub fn finish(self) -> Result<(), LoadtestError> {
        self.reader.stop()
    }
}

/// How long [`settle`] waits for a quiet reader once the system under test consumed every event.
const SETTLE_QUIET: Duration = Duration::from_millis(500);
/// The longest [`settle`] waits.
const SETTLE_LIMIT: Duration = Duration::from_secs(5);

/// After the drain: it stops at the expected count, but records the routing rule does not prescribe (a
/// surplus: routes left by earlier runs, duplicates) arrive along with the expected ones. Keeps reading
/// until the system under test has consumed every event sent (its lag is 0, so every output is committed)
/// and no record came for [`SETTLE_QUIET`], at most [`SETTLE_LIMIT`], so that the count read includes
/// them.
fn settle(reader: &LatencyReader, lag: &LagWatcher) {
    let started = Instant::now();
    let (mut caught_up, mut read, mut quiet_since) = (false, reader.records(), Instant::now());
    while started.elapsed() < SETTLE_LIMIT {
        if !caught_up && lag.lag() == Some(0) {
            caught_up = true;
            quiet_since = Instant::now();
        }
        let now = reader.records();
        if now != read {
            read = now;
            quiet_since = Instant::now();
        }
        if caught_up && quiet_since.elapsed() >= SETTLE_QUIET {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the lag grew while sending: the mean of the last third of the samples exceeds the mean of the
/// first third by more than half a second of traffic.
pub fn lag_growing(lags: &[u64], rate: u64) -> bool {
    if lags.len() < 3 {
        return false;
    }
    let third = lags.len() / 3;
    let mean = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len().max(1) as f64;
    mean(&lags[lags.len() - third..]) > mean(&lags[..third]) + rate as f64 * 0.5
}

/// The JSON result of `run` (`result.json`), and what `report.html` shows.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The tool's version (also `metadata.tool_version`).
    pub tool: String,
    /// When the run started (RFC 3339; also `metadata.started_at`).
    pub started_at: String,
    /// The run id.
    pub run_id: String,
    /// The scenario.
    pub scenario: Scenario,
    /// Topic names.
    pub topics: RunTopics,
    /// The group whose lag was sampled.
    pub group: String,
    /// The processes whose CPU and memory were sampled.
    pub pids: Vec<u32>,
    /// Mean value size, bytes.
    pub mean_value_bytes: f64,
    /// Mean plugin topics per event.
    pub mean_fanout: f64,
    /// Enablements in place.
    pub enablements: usize,
    /// Control records written to remove what earlier runs left on the topics.
    pub leftovers_removed: ControlRecords,
    /// The measurement.
    pub result: StepResult,
    /// The backfill that ran meanwhile (`--backfill-history`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<crate::backfill_load::BackfillLoad>,
    /// Sanity problems (nothing read, outputs missing, ...); empty when the numbers are usable.
    pub problems: Vec<String>,
    /// When, how and where it ran, and the system under test.
    pub metadata: Metadata,
    /// What the run was asked for.
    pub objective: Objective,
    /// Whether it achieved that.
    pub verdict: Verdict,
    /// What a reader should look at, one sentence each (see [`crate::objective::anomalies`]).
    pub anomalies: Vec<String>,
}

impl RunReport {
    /// The sanity checks a smoke test relies on: events went in, every expected output came out and
    /// nothing more, latencies are positive and ordered.
    pub fn check(&mut self) {
        let r = &self.result;
        let l = &r.latency_ms;
        let mut problems = Vec::new();
        if r.events == 0 {
            problems.push("no events were sent".to_owned());
        }
        if !r.drained {
            problems.push(format!(
                "only {} of {} expected plugin records were read before the timeout",
                r.records_read, r.expected_records
            ));
        } else if r.records_read > r.expected_records {
            problems.push(format!(
                "{} plugin records were read, {} more than the {} expected: the system routed by controls \
                 the scenario does not contain (with --setup skip: left by another run) or wrote duplicates, \
                 so the figures describe more work than the scenario states",
                r.records_read,
                r.records_read - r.expected_records,
                r.expected_records
            ));
        }
        if l.count == 0
            || !(l.p50 > 0.0 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max)
        {
            problems.push(format!("latency percentiles are not sane: {l:?}"));
        }
        self.problems = problems;
    }

    /// A human summary.
    pub fn render(&self) -> String {
        let r = &self.result;
        let l = &r.latency_ms;
        let mut out = String::new();
        out.push_str(&format!(
            "scenario {} ({} teams, {} plugins, {} enablements, mean value {:.0} B, mean fan-out {:.2})\n",
            self.scenario.name,
            self.scenario.traffic.teams,
            self.scenario.plugins.count,
            self.enablements,
            self.mean_value_bytes,
            self.mean_fanout
        ));
        out.push_str(&format!(
            "sent      {} events in {:.1} s: {:.0} events/s (target {})\n",
            r.events,
            r.send_seconds,
            r.rate_in,
            if r.target_rate == 0 {
                "max".to_owned()
            } else {
                r.target_rate.to_string()
            }
        ));
        out.push_str(&format!(
            "out       {} of {} expected plugin records, {:.0} records/s{}\n",
            r.records_read,
            r.expected_records,
            r.rate_out,
            if !r.drained {
                " (NOT all read)".to_owned()
            } else if r.records_read > r.expected_records {
                format!(" ({} MORE than expected)", r.records_read - r.expected_records)
            } else {
                String::new()
            }
        ));
        out.push_str(&format!(
            "latency   p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  p99.9 {:.1} ms  max {:.1} ms  ({} records)\n",
            l.p50, l.p90, l.p99, l.p999, l.max, l.count
        ));
        out.push_str(&format!(
            "lag       at end of sending {}, max {}{}\n",
            r.lag_at_end.map_or("?".into(), |v| v.to_string()),
            r.lag_max.map_or("?".into(), |v| v.to_string()),
            if r.lag_growing {
                " (growing: not keeping up)"
            } else {
                ""
            }
        ));
        if self.pids.is_empty() {
            out.push_str("process   none watched (pass --pid or run the router on this machine)\n");
        } else {
            out.push_str(&format!(
                "process   {:?}: {:.1} CPU s, {:.0} events per CPU s, RSS max {:.0} MiB\n",
                self.pids, r.cpu_seconds, r.events_per_cpu_second, r.rss_mib_max
            ));
        }
        if let Some(b) = &self.backfill {
            out.push_str(&format!(
                "backfill  {} of {} historical events: {} copies written in the window ({:.0}/s), {} at the end\n",
                b.backfill, b.history_events, b.written_at_end.saturating_sub(b.written_at_start),
                b.copies_per_second, b.state_at_end
            ));
        }
        for problem in &self.problems {
            out.push_str(&format!("PROBLEM   {problem}\n"));
        }
        for anomaly in &self.anomalies {
            out.push_str(&format!("ANOMALY   {anomaly}\n"));
        }
        out.push_str(&format!("objective {}\n", self.objective.text));
        out.push_str(&format!("verdict   {}\n", self.verdict.summary));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(expected: u64, read: u64, drained: bool) -> RunReport {
        let objective = Objective::new(300, None);
        let mut report = RunReport {
            tool: "test".into(),
            started_at: "2026-11-22T09:55:00Z".into(),
            run_id: Uuid::from_u128(1).to_string(),
            scenario: Scenario::load("smoke").unwrap(),
            topics: RunTopics::with_prefix(None),
            group: "switchyard-router".into(),
            pids: vec![1],
            mean_value_bytes: 550.0,
            mean_fanout: 1.5,
            enablements: 240,
            leftovers_removed: ControlRecords::default(),
            result: StepResult {
                target_rate: 300,
                events: 5000,
                send_seconds: 4.0,
                rate_in: 300.0,
                expected_records: expected,
                records_read: read,
                seconds: 4.5,
                rate_out: read as f64 / 4.5,
                drained,
                latency_ms: Percentiles {
                    count: read,
                    p50: 10.0,
                    p90: 20.0,
                    p99: 40.0,
                    p999: 60.0,
                    max: 80.0,
                },
                cpu_seconds: 1.0,
                events_per_cpu_second: 5000.0,
                rss_mib_max: 40.0,
                lag_at_end: Some(0),
                lag_max: Some(10),
                lag_growing: false,
                timeline: Vec::new(),
            },
            backfill: None,
            problems: Vec::new(),
            metadata: Metadata::new(
                "run",
                "2026-11-22T09:55:00Z".into(),
                &["switchyard-loadtest".into()],
            ),
            verdict: crate::objective::verdict(&StepResult::default(), &objective),
            objective,
            anomalies: Vec::new(),
        };
        report.verdict = crate::objective::verdict(&report.result, &report.objective);
        report.anomalies = crate::objective::anomalies(&report.result, &report.objective, 1);
        report
    }

    #[test]
    fn exactly_the_expected_records_pass() {
        let mut ok = report(7514, 7514, true);
        ok.check();
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert!(
            ok.render()
                .contains("out       7514 of 7514 expected plugin records")
        );
    }

    /// Issue 13, finding 7: the counts of the report, 11,327 records read of 7,514 expected, fail the
    /// check with both counts named.
    #[test]
    fn more_records_than_expected_fail_the_check() {
        let mut surplus = report(7514, 11_327, true);
        surplus.check();
        assert_eq!(surplus.problems.len(), 1, "{:?}", surplus.problems);
        let problem = &surplus.problems[0];
        assert!(
            problem.contains("11327 plugin records were read, 3813 more than the 7514 expected"),
            "{problem}"
        );
        let text = surplus.render();
        assert!(
            text.contains("11327 of 7514 expected plugin records")
                && text.contains("3813 MORE than expected"),
            "{text}"
        );
        let mut missing = report(7514, 7000, false);
        missing.check();
        assert_eq!(missing.problems.len(), 1, "{:?}", missing.problems);
        assert!(missing.problems[0].contains("only 7000 of 7514"));
    }
}
