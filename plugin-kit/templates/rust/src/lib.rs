//! __PLUGIN_NAME__ (`__PLUGIN_ID__`): a Switchyard plugin that runs in process on the plugin runtime.
//!
//! It answers every submitted or edited response with a `__PLUGIN_ID__.greeted` result, keeps the
//! config of each team's installation, and serves the `stats` action. The runtime
//! (`switchyard_plugin_runtime::app::run`, see `main.rs`) does the Kafka side: consuming
//! `plugin.__PLUGIN_ID__.events`, per-team order, retries, dead letters, configs, publishing the
//! results, registration and the admin server. This file is only what the plugin decides.
//!
//! The same plugin value serves every team at once, so its state sits behind a lock and is keyed by
//! (team, installation).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};
use switchyard_plugin_runtime::plugin::{
    ActionReply, Context, DEFAULT_INSTALLATION, Event, Outcome, Plugin, PluginError, PluginResult,
};
use switchyard_schemas::control::PluginManifest;
use switchyard_schemas::events::Response;

/// The manifest, compiled in. The runtime registers it, with `url` set to `admin.public_url`.
pub const MANIFEST: &str = include_str!("../manifest.json");

/// The kind of the result published for a greeted response (consumers see
/// `switchyard.plugin.__PLUGIN_ID__.greeted`).
pub const GREETED: &str = "__PLUGIN_ID__.greeted";

/// The greeting of an installation whose config has none (the schema's `default`: the registry does
/// not apply defaults, so the plugin does).
pub const DEFAULT_GREETING: &str = "Hello";

/// How many answered events are remembered, to answer a repeat the same way.
pub const REMEMBERED_ANSWERS: usize = 10_000;

/// The plugin.
pub struct __PLUGIN_TYPE__ {
    manifest: PluginManifest,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The config of each (team, installation) that has one.
    configs: HashMap<(String, String), Config>,
    /// What each event was answered with.
    answers: Answers,
    /// Counters per team, for the `stats` action.
    stats: HashMap<String, Stats>,
}

/// What the plugin keeps of a config. The config also holds the secrets (`api_key`, opened by the
/// runtime): never log it.
struct Config {
    greeting: String,
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    /// Events executed (a repeat is not executed again).
    events: u64,
    /// Responses greeted.
    greeted: u64,
}

/// The results of the last [`REMEMBERED_ANSWERS`] events answered, by delivery key, oldest
/// forgotten first.
///
/// In memory, so it is lost on a restart and not shared with the plugin's other instances (a
/// rebalance hands a partition to another one). Production needs a store that every instance
/// shares, as docs/plugin-authors.md section 5 describes (a table with a unique key on the delivery
/// key).
#[derive(Default)]
struct Answers {
    by_key: HashMap<String, Vec<PluginResult>>,
    order: VecDeque<String>,
}

impl Answers {
    fn get(&self, key: &str) -> Option<&Vec<PluginResult>> {
        self.by_key.get(key)
    }

    fn insert(&mut self, key: String, results: Vec<PluginResult>) {
        if self.by_key.insert(key.clone(), results).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > REMEMBERED_ANSWERS {
            if let Some(oldest) = self.order.pop_front() {
                self.by_key.remove(&oldest);
            }
        }
    }
}

impl __PLUGIN_TYPE__ {
    /// The plugin, with the manifest of `manifest.json`.
    pub fn new() -> Result<Self, serde_json::Error> {
        Ok(Self {
            manifest: serde_json::from_str(MANIFEST)?,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves whole values behind: go on with them.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The result for `response`: `<greeting> <response id>`, and how many questions it has answers (or
/// skips) for.
fn greet(greeting: &str, response: &Response) -> PluginResult {
    PluginResult {
        kind: GREETED.to_owned(),
        subject: Some(response.id.clone()),
        data: json!({
            "response_id": response.id,
            "form_id": response.form_id,
            "greeting": format!("{greeting} {}", response.id),
            "answers": response.answers.len(),
        }),
    }
}

impl Plugin for __PLUGIN_TYPE__ {
    fn manifest(&self) -> PluginManifest {
        self.manifest.clone()
    }

    /// The manifest exactly as `manifest.json` has it, which is what a publisher's signature covers
    /// (`switchyardctl plugin sign`): the typed manifest would write out defaults it left out.
    fn manifest_json(&self) -> Value {
        serde_json::from_str(MANIFEST).unwrap_or_default()
    }

    /// Called before an installation's next event after every change of its config, and again after
    /// each restart: applying the same config twice must be harmless. `None`: the config was
    /// removed.
    async fn initialize(
        &self,
        team: &str,
        installation: &str,
        config: Option<&Value>,
    ) -> Result<(), PluginError> {
        let key = (team.to_owned(), installation.to_owned());
        let Some(config) = config else {
            self.state().configs.remove(&key);
            return Ok(());
        };
        let greeting = match config.get("greeting") {
            None => DEFAULT_GREETING.to_owned(),
            Some(Value::String(greeting)) => greeting.clone(),
            // Permanent: calling again cannot fix this config. The runtime dead-letters the
            // installation's events (`config_rejected`) until the team stores a new config, then
            // offers that one.
            Some(_) => return Err(PluginError::permanent("greeting must be a string")),
        };
        self.state().configs.insert(key, Config { greeting });
        // Who and which installation, never the config: it holds secrets.
        tracing::info!(team, installation, "config applied");
        Ok(())
    }

    /// The runtime calls this once per event, one event of a lane after the other, and again on
    /// retries. An event it cannot decode never gets here: the runtime dead-letters it as
    /// `invalid_event`.
    async fn execute(&self, ctx: &Context, event: &Event) -> Outcome {
        let response = match event {
            Event::ResponseSubmitted(submitted) => Some(&submitted.response),
            Event::ResponseUpdated(updated) => Some(&updated.response),
            // Form events (and types this runtime has no typed form for): nothing to say.
            Event::FormCreated(_) | Event::FormUpdated(_) | Event::Other(_) => None,
        };
        // Delivery is at least once: a retry, a restart or a rebalance hands the same event again.
        // A repeat gets the answer the first delivery got, without doing the work again, so the
        // runtime publishes the same results under the same ids and consumers drop the copies. The
        // key is the event id for the default installation and `<event id>/<installation>` for a
        // named one: each installation's copy of an event is a delivery of its own.
        let key = ctx.meta.copy_id();
        // One lock for the look-up, the work and the record: two copies of one event running at
        // once (a rebalance) cannot both do the work. Work that awaits (a call to a service) must
        // not hold a `std::sync::Mutex` across the `.await`: record an intent first instead
        // (section 5 of the guide).
        let mut state = self.state();
        if let Some(results) = state.answers.get(&key) {
            return Outcome::Done(results.clone());
        }
        let results = match response {
            Some(response) => {
                let owner = (ctx.meta.team_id.clone(), ctx.meta.installation.clone());
                let greeting = state
                    .configs
                    .get(&owner)
                    .map_or(DEFAULT_GREETING, |config| config.greeting.as_str());
                vec![greet(greeting, response)]
            }
            None => Vec::new(),
        };
        let stats = state.stats.entry(ctx.meta.team_id.clone()).or_default();
        stats.events += 1;
        stats.greeted += results.len() as u64;
        state.answers.insert(key.into_owned(), results.clone());
        Outcome::Done(results)
    }

    // Batches: the runtime's default `execute_batch` calls `execute` for each event in turn. To
    // take a team's events several at a time, add `"batch": {"max_events": 50, "max_wait_ms": 200}`
    // to manifest.json and override `execute_batch` (one `Outcome` per item, in the items' order).

    /// The actions of the manifest, forwarded by the registry's gateway to the worker's admin
    /// server (`POST /actions/{name}`). The runtime verifies the call's Standard Webhooks signature
    /// before calling this (an unsigned or badly signed call gets a 401 there), so `team` is a team
    /// the registry checked the caller may act for.
    async fn action(
        &self,
        team: &str,
        name: &str,
        _body: &[u8],
    ) -> Result<ActionReply, PluginError> {
        if name != "stats" {
            return Ok(ActionReply {
                status: 404,
                body: json!({"error": format!("no action {name}")}),
            });
        }
        let state = self.state();
        let stats = state.stats.get(team).copied().unwrap_or_default();
        let default = (team.to_owned(), DEFAULT_INSTALLATION.to_owned());
        Ok(ActionReply {
            status: 200,
            body: json!({
                "team_id": team,
                "events": stats.events,
                "greeted": stats.greeted,
                "configured": state.configs.contains_key(&default),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use switchyard_plugin_runtime::plugin::EventMeta;
    use switchyard_schemas::events::ResponseUpdated;
    use switchyard_schemas::samples;

    use super::*;

    const TEAM: &str = "acme";

    fn plugin() -> __PLUGIN_TYPE__ {
        __PLUGIN_TYPE__::new().expect("manifest.json is a valid manifest")
    }

    /// What the runtime hands `execute` with an event: its attributes and its data as JSON.
    fn context(event_id: &str, event_type: &str, installation: &str, data: Value) -> Context {
        Context {
            meta: EventMeta {
                id: event_id.to_owned(),
                source: "/collect/web".to_owned(),
                event_type: event_type.to_owned(),
                time: None,
                subject: Some("form-1".to_owned()),
                team_id: TEAM.to_owned(),
                installation: installation.to_owned(),
                backfill: None,
            },
            data,
            data_json: None,
            attempt: 1,
            traceparent: None,
        }
    }

    /// A `response.submitted` of response `response_id` (8 questions, one skipped) on form
    /// `form-1`.
    fn submitted(event_id: &str, response_id: &str) -> (Context, Event) {
        let event = samples::response_every_answer_kind(TEAM, response_id);
        let data = serde_json::to_value(&event).unwrap();
        let ctx = context(event_id, "response.submitted", DEFAULT_INSTALLATION, data);
        (ctx, Event::ResponseSubmitted(event))
    }

    fn outcome_results(outcome: Outcome) -> Vec<PluginResult> {
        match outcome {
            Outcome::Done(results) => results,
            other => panic!("expected done, got {other:?}"),
        }
    }

    async fn stats(plugin: &__PLUGIN_TYPE__, team: &str) -> Value {
        let reply = plugin.action(team, "stats", b"{}").await.unwrap();
        assert_eq!(reply.status, 200);
        reply.body
    }

    #[tokio::test]
    async fn a_submitted_response_is_answered_with_the_greeting() {
        let plugin = plugin();
        let (ctx, event) = submitted("e-1", "r-1");
        let results = outcome_results(plugin.execute(&ctx, &event).await);
        assert_eq!(
            results,
            [PluginResult {
                kind: "__PLUGIN_ID__.greeted".to_owned(),
                subject: Some("r-1".to_owned()),
                data: json!({
                    "response_id": "r-1",
                    "form_id": "form-1",
                    "greeting": "Hello r-1",
                    "answers": 8,
                }),
            }]
        );
    }

    #[tokio::test]
    async fn each_installation_greets_with_its_own_config_also_an_edited_response() {
        let plugin = plugin();
        let config = json!({"greeting": "Karibu", "api_key": "k-live-123"});
        plugin
            .initialize(TEAM, DEFAULT_INSTALLATION, Some(&config))
            .await
            .unwrap();
        // Again: a config is applied once per restart and instance, so twice is harmless.
        plugin
            .initialize(TEAM, DEFAULT_INSTALLATION, Some(&config))
            .await
            .unwrap();
        let updated = ResponseUpdated {
            response: samples::response_every_answer_kind(TEAM, "r-2").response,
            revision: 2,
            updated_by: "editor-1".to_owned(),
            updated_at: 1_795_000_100_000,
        };
        let data = serde_json::to_value(&updated).unwrap();
        let event = Event::ResponseUpdated(updated);
        let ctx = context(
            "e-2",
            "response.updated",
            DEFAULT_INSTALLATION,
            data.clone(),
        );
        let results = outcome_results(plugin.execute(&ctx, &event).await);
        assert_eq!(results[0].data["greeting"], "Karibu r-2");
        // Another installation of the team has no config: the default greeting.
        let ctx = context("e-2", "response.updated", "forms-bc", data.clone());
        let results = outcome_results(plugin.execute(&ctx, &event).await);
        assert_eq!(results[0].data["greeting"], "Hello r-2");
        // The config removed: the default again.
        plugin
            .initialize(TEAM, DEFAULT_INSTALLATION, None)
            .await
            .unwrap();
        let ctx = context("e-3", "response.updated", DEFAULT_INSTALLATION, data);
        let results = outcome_results(plugin.execute(&ctx, &event).await);
        assert_eq!(results[0].data["greeting"], "Hello r-2");
    }

    #[tokio::test]
    async fn a_repeated_event_gets_the_same_answer_and_is_not_counted_again() {
        let plugin = plugin();
        let (ctx, event) = submitted("e-1", "r-1");
        let first = plugin.execute(&ctx, &event).await;
        // Even with a new greeting meanwhile, the repeat is answered as the first delivery was.
        let config = json!({"greeting": "Habari"});
        plugin
            .initialize(TEAM, DEFAULT_INSTALLATION, Some(&config))
            .await
            .unwrap();
        let again = plugin.execute(&ctx, &event).await;
        assert_eq!(again, first);
        assert_eq!(stats(&plugin, TEAM).await["events"], 1);
        // Another installation's copy of the event is a delivery of its own.
        let mut copy = ctx.clone();
        copy.meta.installation = "forms-bc".to_owned();
        let results = outcome_results(plugin.execute(&copy, &event).await);
        assert_eq!(results[0].data["greeting"], "Hello r-1");
        assert_eq!(stats(&plugin, TEAM).await["events"], 2);
    }

    #[tokio::test]
    async fn a_greeting_that_is_not_a_string_is_refused_for_good() {
        let plugin = plugin();
        let error = plugin
            .initialize(TEAM, DEFAULT_INSTALLATION, Some(&json!({"greeting": 5})))
            .await
            .unwrap_err();
        assert_eq!(error, PluginError::permanent("greeting must be a string"));
        assert_eq!(stats(&plugin, TEAM).await["configured"], false);
    }

    #[tokio::test]
    async fn the_stats_action_counts_the_teams_events_and_greetings() {
        let plugin = plugin();
        let config = json!({});
        plugin
            .initialize(TEAM, DEFAULT_INSTALLATION, Some(&config))
            .await
            .unwrap();
        let form = samples::form_created(TEAM, "1");
        let data = serde_json::to_value(&form).unwrap();
        let ctx = context("e-1", "form.created", DEFAULT_INSTALLATION, data);
        assert!(outcome_results(plugin.execute(&ctx, &Event::FormCreated(form)).await).is_empty());
        let (ctx, event) = submitted("e-2", "r-1");
        plugin.execute(&ctx, &event).await;
        assert_eq!(
            stats(&plugin, TEAM).await,
            json!({"team_id": TEAM, "events": 2, "greeted": 1, "configured": true})
        );
        assert_eq!(
            stats(&plugin, "other-team").await,
            json!({"team_id": "other-team", "events": 0, "greeted": 0, "configured": false})
        );
        let reply = plugin.action(TEAM, "resync", b"{}").await.unwrap();
        assert_eq!(reply.status, 404);
    }

    #[test]
    fn the_manifest_parses_and_lists_the_action() {
        let manifest = plugin().manifest();
        assert_eq!(manifest.id, "__PLUGIN_ID__");
        assert_eq!(manifest.name, "__PLUGIN_NAME__");
        assert_eq!(manifest.actions, ["stats"]);
        assert_eq!(
            manifest.events,
            [
                "form.created",
                "form.updated",
                "response.submitted",
                "response.updated"
            ]
        );
        assert!(manifest.config_schema.is_some());
        assert_eq!(
            manifest.url, None,
            "the runtime sets it from admin.public_url"
        );
    }
}
