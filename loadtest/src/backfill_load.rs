//! A backfill as background load (`switchyard-loadtest run --backfill-history N`): what live routing's
//! latency is while the router writes a large history at its rate limit (issue 18's benchmark).
//!
//! ```text
//!   N events of team `bench-history` ──► core topic ──► the router passes them (no installation yet)
//!   manifest `bench-archive` + its topic; enablement of it for `bench-history` with a backfill since 2020
//!   ──► the router holds it and writes history at its pace ... while the measured run sends live traffic
//!   before and after the run: the backfill's committed progress (copies written, state)
//! ```
//!
//! The history goes to a plugin topic of its own, so the run's latency reader never sees it: the run
//! measures the live events alone, with the backfill competing for the router.

use std::time::{Duration, Instant};

use serde::Serialize;
use switchyard_schemas::backfill::Progress;
use switchyard_schemas::control::PluginManifest;
use switchyard_schemas::{ContentType, EventType, payload, samples};

use crate::control_plane::write_backfill_enablement;
use crate::kafka::{Producer, Record, TopicSpec, clients, create_topics};
use crate::measure::LagWatcher;
use crate::run::{RunTopics, SessionOptions};
use crate::{LoadtestError, wait_for as wait};

/// The team whose history is backfilled.
pub const TEAM: &str = "bench-history";
/// The plugin it is backfilled to.
pub const PLUGIN: &str = "bench-archive";

/// What the backfill did during a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackfillLoad {
    /// Historical events of the team.
    pub history_events: u64,
    /// The backfill's id.
    pub backfill: String,
    /// Copies it had written (committed) when the measured part began, and when it ended.
    pub written_at_start: u64,
    /// See `written_at_start`.
    pub written_at_end: u64,
    /// Seconds between those two readings.
    pub window_seconds: f64,
    /// Copies per second over the window.
    pub copies_per_second: f64,
    /// Its state at the end (`running` while it still writes history).
    pub state_at_end: String,
}

/// Seeds `events` historical events, waits until the router (group `lag`) passed them, then enables the
/// backfill and waits until it wrote its first progress record. The plugin's topic is sized like the
/// scenario's.
pub fn start(
    options: &SessionOptions,
    producer: &Producer,
    lag: &LagWatcher,
    events: u64,
    run_id: &str,
) -> Result<BackfillLoad, LoadtestError> {
    let (bootstrap, topics, timeout) = (&options.bootstrap, &options.topics, options.timeout);
    let plugin_partitions = options.scenario.topics.plugin_partitions;
    let plugin_topic = topics.plugin(PLUGIN);
    create_topics(
        &clients(bootstrap),
        &[TopicSpec {
            name: plugin_topic,
            partitions: plugin_partitions,
            compacted: false,
        }],
    )?;
    let started = Instant::now();
    let event = samples::response_every_answer_kind(TEAM, "r-history");
    let value = payload::encode(&event, ContentType::Avro)?;
    for n in 0..events {
        let headers = samples::core_event_headers(
            TEAM,
            EventType::ResponseSubmitted.as_str(),
            &format!("history-{n}"),
            ContentType::Avro,
        );
        let record = Record {
            key: Some(TEAM.as_bytes().to_vec()),
            value: Some(value.clone()),
            headers: headers
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
        };
        producer.send(&topics.core, &record)?;
    }
    producer.flush(timeout)?;
    eprintln!(
        "switchyard-loadtest: {events} historical events of {TEAM} sent in {:.1} s; waiting for the router to pass them",
        started.elapsed().as_secs_f64()
    );
    wait(timeout, "the router to pass the history", || {
        Ok(lag.lag().filter(|&l| l == 0))
    })?;

    let manifest = PluginManifest {
        id: PLUGIN.into(),
        name: "Bench archive".into(),
        description: "the history of the backfill benchmark".into(),
        version: semver::Version::new(1, 0, 0),
        url: None,
        events: EventType::ALL.iter().map(|t| t.as_str().to_owned()).collect(),
        actions: vec![],
        config_schema: None,
        contract: None,
        signature: None,
        delivery: Default::default(),
    };
    let id = format!("bench-{}", &run_id[..8]);
    let manifest = serde_json::to_vec(&manifest).map_err(|e| LoadtestError::Usage(e.to_string()))?;
    producer.send(
        &topics.plugins,
        &Record {
            key: Some(PLUGIN.as_bytes().to_vec()),
            value: Some(manifest),
            headers: vec![],
        },
    )?;
    write_backfill_enablement(
        producer,
        &topics.enablements,
        TEAM,
        PLUGIN,
        &id,
        "2020-01-01T00:00:00Z",
    )?;
    producer.flush(timeout)?;
    let progress = wait(timeout, "the backfill to start", || {
        read_progress(bootstrap, &topics.backfill_progress, &id, timeout)
    })?;
    eprintln!(
        "switchyard-loadtest: backfill {id} running ({} copies written so far)",
        progress.written
    );
    Ok(BackfillLoad {
        history_events: events,
        backfill: id,
        ..BackfillLoad::default()
    })
}

/// Reads the backfill's committed progress now (the start or the end of the measured window).
pub fn read(
    load: &mut BackfillLoad,
    bootstrap: &str,
    topics: &RunTopics,
    at_end: bool,
    timeout: Duration,
) -> Result<(), LoadtestError> {
    let Some(progress) = read_progress(bootstrap, &topics.backfill_progress, &load.backfill, timeout)? else {
        return Ok(());
    };
    let at = switchyard_schemas::times::epoch_ms(&progress.updated_at).unwrap_or(0);
    if at_end {
        load.written_at_end = progress.written;
        load.window_seconds = (at as f64 / 1000.0) - load.window_seconds;
        load.copies_per_second =
            load.written_at_end.saturating_sub(load.written_at_start) as f64 / load.window_seconds.max(1e-9);
        load.state_at_end = if progress.is_live() {
            progress.state.as_str().to_owned()
        } else {
            "running".to_owned()
        };
    } else {
        load.written_at_start = progress.written;
        // The start's timestamp, until the end replaces it with the window's length.
        load.window_seconds = at as f64 / 1000.0;
    }
    Ok(())
}

fn read_progress(
    bootstrap: &str,
    topic: &str,
    id: &str,
    timeout: Duration,
) -> Result<Option<Progress>, LoadtestError> {
    let read = crate::kafka::read_to_end(&clients(bootstrap), topic, timeout, |_| true)?;
    Ok(read
        .kept
        .iter()
        .filter_map(|r| Progress::parse(r.key.as_deref()?, r.value.as_deref()?).ok())
        .rfind(|p| p.backfill == id))
}
