//! The demo's backfill (contract section 10.5): after the run's traffic, a team that did not use
//! `slang-search` enables it with a backfill of the run, then sends a few more events. The plugin's topic
//! must then hold every event of the team's run that the plugin subscribes to, once, labelled with the
//! backfill and in order, followed by the new events, unlabelled.
//!
//! ```text
//!   config + enablement with {"backfill": {"since": <run start>, "on_retention": "earliest"}} (registry API, or the control topics)
//!   ──► wait for the backfill's progress record to say live routing resumed ──► send the live events
//!   ──► read the team's copies of this run back ──► history ids == expected, then live ids == sent
//! ```

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use switchyard_registry::client::Client;
use switchyard_schemas::backfill::{HEADER, Progress};
use switchyard_schemas::{ContentType, payload, samples, topics as names};

use crate::control_plane::{RegistryAccess, sample_config, write_backfill_enablement};
use crate::demo::DemoOptions;
use crate::expect::{Expectations, Expected};
use crate::generate::RUN_HEADER;
use crate::generate::control::SLANG_SEARCH;
use crate::kafka::{Producer, ReadRecord, Record, clients, read_to_end};
use crate::topics::plugin_topic;
use crate::{LoadtestError, Progress as Say, wait_for as wait};

/// Live events the team sends after enabling.
const LIVE_EVENTS: usize = 20;

/// What the backfill delivered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackfillDemo {
    /// The team.
    pub team: String,
    /// The plugin.
    pub plugin: String,
    /// The backfill's id.
    pub backfill: String,
    /// Its history's state at the hand-over (`done`, ...).
    pub state: String,
    /// Historical events of the run the plugin should get.
    pub history_expected: u64,
    /// Labelled copies that arrived.
    pub history_delivered: u64,
    /// Live events sent after enabling.
    pub live_sent: u64,
    /// Unlabelled copies of them that arrived.
    pub live_delivered: u64,
    /// What did not hold; empty when all did.
    pub problems: Vec<String>,
}

/// Runs the demo's backfill for `team` over the run `run_id` that started at `since` (RFC 3339).
pub fn run(
    options: &DemoOptions,
    producer: &Producer,
    expectations: &Expectations,
    team: &str,
    run_id: &str,
    since: &str,
    say: &Say,
) -> Result<BackfillDemo, LoadtestError> {
    let plugin = SLANG_SEARCH;
    let id = match &options.registry {
        Some(access) => enable_through_registry(access, team, plugin, since)?,
        None => enable_on_topics(producer, team, plugin, since, run_id, options.timeout)?,
    };
    say.say(format_args!(
        "{team} enabled {plugin} with backfill {id} of this run's events; waiting for its history"
    ));
    let progress = wait(
        options.timeout,
        "the backfill to hand over to live routing",
        || {
            let read = read_to_end(
                &clients(&options.bootstrap),
                names::BACKFILL_PROGRESS,
                options.timeout,
                |_| true,
            )?;
            Ok(read
                .kept
                .iter()
                .filter_map(|r| Progress::parse(r.key.as_deref()?, r.value.as_deref()?).ok())
                .rfind(|p| p.backfill == id)
                .filter(Progress::is_live))
        },
    )?;

    // Live events after the hand-over: they follow the history.
    let live: Vec<String> = (0..LIVE_EVENTS)
        .map(|i| format!("{run_id}-after-backfill-{i}"))
        .collect();
    for ce_id in &live {
        let event = samples::response_every_answer_kind(team, ce_id);
        let mut headers: Vec<(String, Vec<u8>)> =
            samples::core_event_headers(team, "response.submitted", ce_id, ContentType::Json)
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
        headers.push((RUN_HEADER.to_owned(), run_id.as_bytes().to_vec()));
        producer.send(
            names::CORE_EVENTS,
            &Record {
                key: Some(team.as_bytes().to_vec()),
                value: Some(payload::encode(&event, ContentType::Json)?),
                headers,
            },
        )?;
    }
    producer.flush(options.timeout)?;

    // The history the plugin should get: the team's events of this run of the types it subscribes to
    // that the router accepted, in the order they were sent.
    let of_team = |r: &ReadRecord| {
        r.key.as_deref() == Some(team.as_bytes()) && r.header(RUN_HEADER).as_deref() == Some(run_id)
    };
    let core = read_to_end(
        &clients(&options.bootstrap),
        names::CORE_EVENTS,
        options.timeout,
        of_team,
    )?;
    let live_ids: HashSet<&str> = live.iter().map(String::as_str).collect();
    let subscribed = |r: &ReadRecord| r.header("ce_type").is_some_and(|t| t.starts_with("response."));
    let accepted = |ce_id: &String| {
        !live_ids.contains(ce_id.as_str())
            && expectations
                .events
                .get(ce_id)
                .is_some_and(|e| !matches!(e.outcome, Expected::DeadLettered(_)))
    };
    let expected: Vec<String> = core
        .kept
        .iter()
        .filter(|r| subscribed(r))
        .filter_map(|r| r.header("ce_id"))
        .filter(accepted)
        .collect();

    let copies = wait(options.timeout, "the live events to reach the plugin", || {
        let read = read_to_end(
            &clients(&options.bootstrap),
            &plugin_topic(plugin),
            options.timeout,
            of_team,
        )?;
        let live_arrived = read.kept.iter().filter(|r| r.header(HEADER).is_none()).count();
        Ok((live_arrived >= LIVE_EVENTS).then_some(read.kept))
    })?;
    let labelled: Vec<String> = copies
        .iter()
        .filter(|r| r.header(HEADER).as_deref() == Some(id.as_str()))
        .filter_map(|r| r.header("ce_id"))
        .collect();
    let unlabelled: Vec<String> = copies
        .iter()
        .filter(|r| r.header(HEADER).is_none())
        .filter_map(|r| r.header("ce_id"))
        .collect();
    let mut problems = Vec::new();
    if labelled != expected {
        problems.push(format!(
            "backfill: {} historical copies arrived where {} events were expected, or not in order",
            labelled.len(),
            expected.len()
        ));
    }
    if unlabelled != live {
        problems.push(format!(
            "backfill: {} live copies arrived where {} were sent, or not in order",
            unlabelled.len(),
            live.len()
        ));
    }
    if copies.iter().position(|r| r.header(HEADER).is_none())
        < copies.iter().rposition(|r| r.header(HEADER).is_some())
    {
        problems.push("backfill: a live copy arrived before the end of the history".into());
    }
    Ok(BackfillDemo {
        team: team.to_owned(),
        plugin: plugin.to_owned(),
        backfill: id,
        state: progress.state.as_str().to_owned(),
        history_expected: expected.len() as u64,
        history_delivered: labelled.len() as u64,
        live_sent: live.len() as u64,
        live_delivered: unlabelled.len() as u64,
        problems,
    })
}

/// The enablement with its backfill, then the plugin's config, through the registry; returns the id.
fn enable_through_registry(
    access: &RegistryAccess,
    team: &str,
    plugin: &str,
    since: &str,
) -> Result<String, LoadtestError> {
    let error = |action: &str| {
        let action = action.to_owned();
        move |e: switchyard_registry::client::ClientError| LoadtestError::Registry {
            action,
            message: e.to_string(),
        }
    };
    let client = Client::new(&access.url, Some(access.token.clone())).map_err(error("connecting"))?;
    // Enabled first (a config needs an enablement), as the demo's other plugins are. On a fresh broker the
    // team's partition begins after the run's start (its first event came after it), which the registry's
    // retention check reads as history it no longer holds: start at its oldest event instead, which is then
    // the run's first.
    let answer = client
        .put(
            &format!("/v1/teams/{team}/plugins/{plugin}"),
            &json!({"enabled": true, "backfill": {"since": since, "on_retention": "earliest"}}),
        )
        .map_err(error("enabling a plugin with a backfill"))?;
    if let Some(config) = sample_config(team, plugin) {
        client
            .put(&format!("/v1/teams/{team}/plugins/{plugin}/config"), &config)
            .map_err(error("configuring the backfilled plugin"))?;
    }
    answer["backfill"]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| LoadtestError::Registry {
            action: "enabling a plugin with a backfill".into(),
            message: format!("the answer names no backfill: {answer}"),
        })
}

/// The enablement with its backfill, written to the control topic; returns the id.
fn enable_on_topics(
    producer: &Producer,
    team: &str,
    plugin: &str,
    since: &str,
    run_id: &str,
    timeout: Duration,
) -> Result<String, LoadtestError> {
    let id = format!("demo-{}", &run_id[..8]);
    write_backfill_enablement(producer, names::ENABLEMENTS, team, plugin, &id, since)?;
    producer.flush(timeout)?;
    Ok(id)
}
