//! The plugin side of a demo run: waiting until every plugin worker has an outcome for every record the
//! router wrote to its topic, and counting what the plugins did (the result events on
//! `core.plugin-results` and the dead letters on `plugin.<id>.dlq`) for this run's events.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::LoadtestError;
use switchyard_fixtures::metrics::Metrics;

use crate::kafka::{ReadRecord, clients, read_all_to_end};

/// Where a plugin worker serves `/metrics`.
#[derive(Debug, Clone)]
pub struct PluginWorker {
    /// The plugin id.
    pub plugin: String,
    /// `host:port` of its admin server.
    pub admin: String,
}

/// Parses `plugin=host:port` pairs.
pub fn parse_workers(text: &str) -> Result<Vec<PluginWorker>, String> {
    text.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(plugin, admin)| PluginWorker {
                    plugin: plugin.trim().to_owned(),
                    admin: admin.trim().to_owned(),
                })
                .ok_or_else(|| format!("{pair:?} is not plugin=host:port"))
        })
        .collect()
}

/// What the plugins did with this run's events.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PluginReport {
    /// Per plugin: (records routed to it in this run, outcomes its worker counted meanwhile).
    pub outcomes: BTreeMap<String, PluginOutcomes>,
    /// Result events of this run by `ce_type` (without the `switchyard.plugin.` prefix).
    pub results: BTreeMap<String, u64>,
    /// Dead letters of this run per plugin.
    pub dead_letters: BTreeMap<String, u64>,
}

/// One worker's counts during the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PluginOutcomes {
    /// Records the router wrote to the plugin's topic in this run.
    pub routed: u64,
    /// Delivered.
    pub done: u64,
    /// Dead-lettered.
    pub dead_lettered: u64,
    /// Seconds from the run's first send until every record had an outcome, as first seen by the demo's
    /// polling (every 200 ms, once the router is done).
    pub seconds: f64,
    /// Done before the first look: `seconds` is then an upper bound.
    pub done_before_first_look: bool,
}

fn events_total(admin: &str, plugin: &str) -> Result<(u64, u64), LoadtestError> {
    let url = format!("http://{admin}/metrics");
    let text = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .and_then(|c| c.get(&url).send())
        .and_then(reqwest::blocking::Response::error_for_status)
        .and_then(reqwest::blocking::Response::text)
        .map_err(|error| LoadtestError::Http { url, error })?;
    let metrics = Metrics::parse(&text);
    let value = |outcome: &str| {
        metrics.value(
            "switchyard_plugin_events_total",
            &[("outcome", outcome), ("plugin", plugin)],
        ) as u64
    };
    Ok((value("done"), value("dead_lettered")))
}

/// Waits until every worker answers `/readyz` with 200 (it read the team configs to their end).
pub fn wait_ready(workers: &[PluginWorker], timeout: Duration) -> Result<(), LoadtestError> {
    let started = Instant::now();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|error| LoadtestError::Http {
            url: String::new(),
            error,
        })?;
    for worker in workers {
        let url = format!("http://{}/readyz", worker.admin);
        loop {
            match client.get(&url).send() {
                Ok(response) if response.status().is_success() => break,
                Ok(response) if started.elapsed() >= timeout => {
                    return Err(LoadtestError::Timeout {
                        what: "the plugin workers to be ready",
                        waited: timeout,
                        last: format!("{} answers {}", worker.plugin, response.status()),
                    });
                }
                Err(error) if started.elapsed() >= timeout => return Err(LoadtestError::Http { url, error }),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
    Ok(())
}

/// The workers' counts now.
pub fn snapshot(workers: &[PluginWorker]) -> Result<BTreeMap<String, (u64, u64)>, LoadtestError> {
    workers
        .iter()
        .map(|w| events_total(&w.admin, &w.plugin).map(|counts| (w.plugin.clone(), counts)))
        .collect()
}

/// Waits until each worker counted an outcome for as many records as were routed to it since `before`.
pub fn wait_for_outcomes(
    workers: &[PluginWorker],
    before: &BTreeMap<String, (u64, u64)>,
    routed: &BTreeMap<String, u64>,
    first_send: Instant,
    timeout: Duration,
    mut progress: impl FnMut(&str),
) -> Result<BTreeMap<String, PluginOutcomes>, LoadtestError> {
    let started = Instant::now();
    let mut last_report = Instant::now();
    // When each plugin was first seen with every record done, and whether that was the first look.
    let mut finished: BTreeMap<String, (f64, bool)> = BTreeMap::new();
    let mut first_look = true;
    loop {
        let now = snapshot(workers)?;
        let mut outcomes = BTreeMap::new();
        let mut behind = Vec::new();
        for worker in workers {
            let (done_before, dead_before) = before.get(&worker.plugin).copied().unwrap_or_default();
            let (done, dead) = now.get(&worker.plugin).copied().unwrap_or_default();
            let mut counts = PluginOutcomes {
                routed: routed.get(&worker.plugin).copied().unwrap_or_default(),
                done: done.saturating_sub(done_before),
                dead_lettered: dead.saturating_sub(dead_before),
                ..PluginOutcomes::default()
            };
            if counts.done + counts.dead_lettered >= counts.routed {
                let (seconds, before_first_look) = *finished
                    .entry(worker.plugin.clone())
                    .or_insert((first_send.elapsed().as_secs_f64(), first_look));
                counts.seconds = seconds;
                counts.done_before_first_look = before_first_look;
            } else {
                behind.push(format!(
                    "{} {}/{}",
                    worker.plugin,
                    counts.done + counts.dead_lettered,
                    counts.routed
                ));
            }
            outcomes.insert(worker.plugin.clone(), counts);
        }
        if behind.is_empty() {
            return Ok(outcomes);
        }
        first_look = false;
        let state = behind.join(", ");
        if started.elapsed() >= timeout {
            return Err(LoadtestError::Timeout {
                what: "the plugin workers to give every routed record an outcome",
                waited: timeout,
                last: state,
            });
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            progress(&state);
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn header(record: &ReadRecord, name: &str) -> Option<String> {
    record.header(name)
}

/// Counts by name.
pub type Counts = BTreeMap<String, u64>;

/// Counts the result events and dead letters of this run's events (by `ce_causationid` / `ce_id`).
pub fn count(
    bootstrap: &str,
    results_topic: &str,
    dead_letter_topics: &[(String, String)],
    run_ids: &HashSet<String>,
    timeout: Duration,
) -> Result<(Counts, Counts), LoadtestError> {
    let mut topics = vec![results_topic.to_owned()];
    topics.extend(dead_letter_topics.iter().map(|(_, topic)| topic.clone()));
    let reads = read_all_to_end(&clients(bootstrap), &topics, timeout, &|_| true)?;
    let mut results = BTreeMap::new();
    for record in &reads[0].kept {
        if header(record, "ce_causationid").is_some_and(|id| run_ids.contains(&id)) {
            let kind = header(record, "ce_type").unwrap_or_default();
            let kind = kind
                .strip_prefix("switchyard.plugin.")
                .unwrap_or(&kind)
                .to_owned();
            *results.entry(kind).or_default() += 1;
        }
    }
    let mut dead_letters = BTreeMap::new();
    for ((plugin, _), read) in dead_letter_topics.iter().zip(&reads[1..]) {
        let n = read
            .kept
            .iter()
            .filter(|r| header(r, "ce_id").is_some_and(|id| run_ids.contains(&id)))
            .count() as u64;
        dead_letters.insert(plugin.clone(), n);
    }
    Ok((results, dead_letters))
}
