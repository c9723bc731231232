//! The `demo` subcommand: shows a running router at work on realistic traffic and proves that nothing
//! was lost.
//!
//! ```text
//!  1 create topics ─► 2 wait for /readyz ─► 3 register plugins, enable them (registry API or control records)
//!  ─► 4 wait until the router applied them ─► 5 baseline of the outcome counters
//!  ─► 6 generate + produce events (expectations computed on the way)
//!  ─► 7 wait until the counters account for every event ─► 8 read plugin topics and DLQ back
//!  ─► 9 compare ─► 10 a backfill: one team enables a plugin with this run's history, then live events
//!  ─► 11 summarise, verdict
//! ```
//!
//! It assumes a broker and a router with the contract's default topic names. Every wait is bounded by
//! the timeout. Progress goes to stderr; the summary is returned to the caller.

use std::time::{Duration, Instant};

use switchyard_schemas::{ContentType, topics as names};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::control_plane::{RegistryAccess, apply_through_registry, apply_to_topics, wait_for_registry};
use crate::demo_backfill;
use crate::expect::{Expectations, RoutingTable};
use crate::generate::traffic::MEAN_GAP_MS;
use crate::generate::{RUN_HEADER, SAMPLE_PLUGINS, Traffic, TrafficConfig, control_records, teams};
use crate::kafka::{Created, Producer, ReadRecord, clients, create_topics, read_all_to_end};
use crate::plugins::{self, PluginWorker};
use crate::router_admin::RouterAdmin;
use crate::summary::{Summary, verdict};
use crate::topics::{demo_topics, plugin_topic};
use crate::verify::{Target, check};
use crate::{LoadtestError, Progress, rfc3339_seconds};

/// Share of events encoded as Avro.
pub const AVRO_SHARE: f64 = 0.7;
/// Share of events broken on purpose.
pub const MALFORMED_SHARE: f64 = 0.01;

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// The router's admin address, `host:port`.
    pub router_admin: String,
    /// Events to send.
    pub events: u64,
    /// Teams that send them (at least 1).
    pub teams: usize,
    /// Seeds the generator.
    pub seed: u64,
    /// Events per second; 0 sends as fast as possible.
    pub rate: u64,
    /// The limit of each wait (readiness, control records applied, outcomes, reading back).
    pub timeout: Duration,
    /// Set up plugins and enablements through this registry; `None` writes the control topics.
    pub registry: Option<RegistryAccess>,
    /// The plugin workers to wait for and report on (none: the router's side only).
    pub plugin_workers: Vec<PluginWorker>,
    /// The plugins' result topic.
    pub results_topic: String,
}

/// Runs the demo and returns its summary. A run that finds missing, duplicated or unexpected records
/// returns `Ok` with a failing verdict; `Err` means it could not run to its end.
pub fn run(options: &DemoOptions) -> Result<Summary, LoadtestError> {
    let run_id = Uuid::now_v7();
    let started_at = OffsetDateTime::now_utc();
    let progress = Progress::start();
    progress.say(format_args!(
        "demo run {run_id}: {} events from {} team{}",
        options.events,
        options.teams,
        if options.teams == 1 { "" } else { "s" }
    ));

    // 1. Topics.
    let created = create_topics(&clients(&options.bootstrap), &demo_topics()?)?;
    let new: Vec<&str> = created
        .iter()
        .filter_map(|c| match c {
            Created::Created(topic) => Some(topic.as_str()),
            Created::Existed(_) => None,
        })
        .collect();
    progress.say(format_args!(
        "topics: {} in place{}",
        created.len(),
        if new.is_empty() {
            String::new()
        } else {
            format!(", created {}", new.join(", "))
        }
    ));

    // 2. The router.
    let admin = RouterAdmin::new(&options.router_admin)?;
    admin.wait_ready(options.timeout)?;
    let before_control = admin.counters()?;
    progress.say(format_args!("router at {} is ready", options.router_admin));
    if !options.plugin_workers.is_empty() {
        plugins::wait_ready(&options.plugin_workers, options.timeout)?;
        progress.say(format_args!(
            "{} plugin workers are ready",
            options.plugin_workers.len()
        ));
    }

    // 3. Plugins and enablements, through the registry or the control topics.
    let producer = Producer::new(&clients(&options.bootstrap))?;
    let teams = teams(options.seed, options.teams.max(1));
    let updated_at = rfc3339_seconds(started_at);
    let controls = control_records(&teams, options.seed, &updated_at);
    let applied = match &options.registry {
        Some(access) => {
            wait_for_registry(access, options.timeout)?;
            let applied = apply_through_registry(access, &controls)?;
            progress.say(format_args!(
                "through the registry at {}: registered {} plugins, wrote {} enablements, stored {} configs \
                 ({} with a write-only secret)",
                access.url, applied.plugins, applied.enablements, applied.configs, applied.secret_configs
            ));
            applied
        }
        None => {
            let applied = apply_to_topics(&producer, &controls, options.timeout)?;
            progress.say(format_args!(
                "registered {} plugins and wrote {} enablement records (tombstones for pairs without one) \
                 on the control topics",
                applied.plugins, applied.enablements
            ));
            applied
        }
    };
    let (plugins_sent, enablements_sent) = (applied.plugins, applied.enablements);
    let control_plane = match &options.registry {
        Some(access) => format!(
            "registry at {}: {plugins_sent} plugins, {enablements_sent} enablements, {} configs ({} with a \
             write-only secret)",
            access.url, applied.configs, applied.secret_configs
        ),
        None => format!("control topics: {plugins_sent} plugins, {enablements_sent} enablements"),
    };

    // 4. Wait until the router applied them: routing before that would use the previous table.
    admin.wait_for_counters(
        "the router to apply the control records",
        options.timeout,
        |now| {
            let delta = now.since(&before_control);
            (delta.plugins_applied < plugins_sent || delta.enablements_applied < enablements_sent).then(
                || {
                    format!(
                        "applied {}/{plugins_sent} manifests, {}/{enablements_sent} enablements",
                        delta.plugins_applied, delta.enablements_applied
                    )
                },
            )
        },
        |state| progress.say(format_args!("waiting for the router: {state}")),
    )?;
    progress.say(format_args!("the router applied them"));
    let table = RoutingTable::from_controls(&controls);

    // 5. Baseline.
    let baseline = admin.counters()?;
    let workers_before = plugins::snapshot(&options.plugin_workers)?;

    // 6. Traffic.
    let traffic = Traffic::new(TrafficConfig {
        seed: options.seed,
        teams: teams.clone(),
        run_id,
        source: format!("/demo/{run_id}"),
        // The simulated clock ends about now: the events look like the last minutes of the platform.
        start_ms: (started_at.unix_timestamp_nanos() / 1_000_000) as i64
            - (options.events as f64 * MEAN_GAP_MS) as i64,
        avro_share: AVRO_SHARE,
        malformed_share: MALFORMED_SHARE,
        mix: None,
        activity_exponent: crate::generate::teams::ACTIVITY_EXPONENT,
        notes_mean_bytes: 0,
    });
    let sent = produce(&producer, traffic, &table, options, &progress)?;

    // 7. Outcomes.
    let target = baseline.outcomes() + options.events;
    let waited = admin.wait_for_counters(
        "the router to give every event an outcome",
        options.timeout,
        |now| {
            (now.outcomes() < target).then(|| {
                format!(
                    "{}/{} events have an outcome",
                    now.outcomes().saturating_sub(baseline.outcomes()),
                    options.events
                )
            })
        },
        |state| progress.say(format_args!("waiting for the router: {state}")),
    );
    let (after, end_to_end) = match waited {
        Ok(after) => (after, Some(sent.last_send.elapsed().as_secs_f64())),
        Err(LoadtestError::Timeout { last, .. }) => {
            progress.say(format_args!(
                "the router did not account for every event in time ({last}); reading back anyway"
            ));
            (admin.counters()?, None)
        }
        Err(error) => return Err(error),
    };
    let router = after.since(&baseline);
    if let Some(seconds) = end_to_end {
        progress.say(format_args!(
            "the router gave every event an outcome {seconds:.1} s after the last send"
        ));
    }

    // 8. Read back this run's records.
    let run = run_id.to_string();
    let of_this_run = |record: &ReadRecord| record.header(RUN_HEADER).as_deref() == Some(run.as_str());
    let mut topics: Vec<(String, Target<'_>)> = SAMPLE_PLUGINS
        .iter()
        .map(|plugin| (plugin_topic(plugin), Target::Plugin(plugin)))
        .collect();
    topics.push((names::CORE_EVENTS_DLQ.to_owned(), Target::DeadLetters));
    let topic_names: Vec<String> = topics.iter().map(|(topic, _)| topic.clone()).collect();
    let reads = read_all_to_end(
        &clients(&options.bootstrap),
        &topic_names,
        options.timeout,
        &of_this_run,
    )?;
    let skipped = reads.iter().map(|read| read.skipped).sum();
    let checks: Vec<_> = topics
        .iter()
        .zip(&reads)
        .map(|((topic, target), read)| {
            check(
                names::CORE_EVENTS,
                topic,
                *target,
                &sent.expectations,
                None,
                &read.kept,
            )
        })
        .collect();
    progress.say(format_args!(
        "read back {} records of this run from {} topics",
        checks.iter().map(|c| c.arrived).sum::<u64>(),
        checks.len()
    ));

    // 9. The plugin workers: an outcome for every record routed to them, and what they did.
    let mut plugin_problem = None;
    let plugin_report = if options.plugin_workers.is_empty() {
        None
    } else {
        let outcomes = match plugins::wait_for_outcomes(
            &options.plugin_workers,
            &workers_before,
            &router.plugin_records,
            sent.first_send,
            options.timeout,
            |state| progress.say(format_args!("waiting for the plugin workers: {state}")),
        ) {
            Ok(outcomes) => outcomes,
            Err(error) => {
                plugin_problem = Some(error.to_string());
                Default::default()
            }
        };
        let run_ids: std::collections::HashSet<String> = sent.expectations.events.keys().cloned().collect();
        let dead_letter_topics: Vec<(String, String)> = options
            .plugin_workers
            .iter()
            .map(|w| (w.plugin.clone(), format!("plugin.{}.dlq", w.plugin)))
            .collect();
        let (results, dead_letters) = plugins::count(
            &options.bootstrap,
            &options.results_topic,
            &dead_letter_topics,
            &run_ids,
            options.timeout,
        )?;
        progress.say(format_args!(
            "the plugin workers gave every routed record an outcome; {} result events",
            results.values().sum::<u64>()
        ));
        Some(plugins::PluginReport {
            outcomes,
            results,
            dead_letters,
        })
    };

    // 10. A backfill: the second team, which does not use slang-search, enables it with a backfill of
    // this run, then sends a few more events.
    let backfill = match teams.get(1) {
        Some(team) => Some(demo_backfill::run(
            options,
            &producer,
            &sent.expectations,
            &team.id,
            &run,
            &updated_at,
            &progress,
        )?),
        None => None,
    };
    if let Some(b) = &backfill {
        progress.say(format_args!(
            "backfill {}: {} historical and {} live events reached {} for {}",
            b.backfill, b.history_delivered, b.live_delivered, b.plugin, b.team
        ));
    }

    // 11. Verdict.
    let expected = sent.expectations.totals.clone();
    let mut verdict = verdict(&expected, &router, end_to_end.is_some(), &checks);
    if let Some(problem) = plugin_problem {
        verdict.ok = false;
        verdict.problems.push(problem);
    }
    if let Some(b) = backfill.as_ref().filter(|b| !b.problems.is_empty()) {
        verdict.ok = false;
        verdict.records_ok = false;
        verdict.problems.extend(b.problems.iter().cloned());
    }
    Ok(Summary {
        run_id: run,
        seed: options.seed,
        teams: teams.len(),
        team_ids: teams.iter().map(|t| t.id.clone()).collect(),
        plugins: SAMPLE_PLUGINS.len(),
        events: options.events,
        avro: sent.avro,
        json: options.events - sent.avro,
        produce_seconds: sent.seconds,
        produce_rate: options.events as f64 / sent.seconds.max(1e-9),
        end_to_end_seconds: end_to_end,
        expected,
        router,
        topics: checks,
        skipped_records: skipped,
        control_plane,
        plugin_report,
        backfill,
        verdict,
    })
}

/// What producing the traffic left behind.
struct Sent {
    expectations: Expectations,
    avro: u64,
    seconds: f64,
    first_send: Instant,
    last_send: Instant,
}

/// Generates and sends `options.events` events, paced by `options.rate`, with a progress line about
/// once a second.
fn produce(
    producer: &Producer,
    mut traffic: Traffic,
    table: &RoutingTable,
    options: &DemoOptions,
    progress: &Progress,
) -> Result<Sent, LoadtestError> {
    let mut expectations = Expectations::default();
    let mut avro = 0;
    let started = Instant::now();
    let mut last_report = started;
    let mut last_send = started;
    let acknowledged_before = producer.delivered();
    for i in 0..options.events {
        if options.rate > 0 {
            let due = started + Duration::from_secs_f64(i as f64 / options.rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let event = traffic.next_event()?;
        expectations.add(table, &event);
        if event.content_type == ContentType::Avro {
            avro += 1;
        }
        producer.send(names::CORE_EVENTS, &event.record)?;
        last_send = Instant::now();
        if last_report.elapsed() >= Duration::from_secs(1) {
            let elapsed = started.elapsed().as_secs_f64();
            progress.say(format_args!(
                "sent {}/{} events, {:.0} events/s, {} acknowledged",
                i + 1,
                options.events,
                (i + 1) as f64 / elapsed,
                producer.delivered() - acknowledged_before
            ));
            last_report = Instant::now();
        }
    }
    producer.flush(options.timeout)?;
    let seconds = started.elapsed().as_secs_f64();
    progress.say(format_args!(
        "sent {} events in {seconds:.1} s ({:.0} events/s), all acknowledged",
        options.events,
        options.events as f64 / seconds.max(1e-9)
    ));
    Ok(Sent {
        expectations,
        avro,
        seconds,
        first_send: started,
        last_send,
    })
}
