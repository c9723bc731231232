//! How a run sets up its plugins and enablements: through the registry's API (what a platform does), or
//! by writing the control topics directly (a load test without a registry).
//!
//! Through the registry, each manifest is a `POST /v1/plugins` and each enablement a
//! `PUT /v1/teams/{team}/plugins/{plugin}` (`.../installations/default` for one with `form_ids` or a
//! `filter`, which the v1 route does not set); a pair the run leaves without an enablement is written as
//! disabled, since the API has no "remove" for one. Either way every control yields exactly one record
//! on the control topics, which is what the router's counters are compared with. Enabled pairs of plugins
//! with a config schema also get a config (`PUT .../config`), secrets included, which reaches the plugins
//! through the configs topic.
//!
//! A load run also removes what earlier runs left on the same topics ([`crate::leftovers`]): it reads the
//! load plugins' keys with [`read_load_controls`], then writes tombstones ([`remove_from_topics`]) or
//! deregisters and disables through the registry ([`remove_through_registry`]).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_registry::client::{Client, ClientError};
use switchyard_schemas::control::Enablement;
use switchyard_schemas::ids::DEFAULT_INSTALLATION;
use switchyard_schemas::topics;

use crate::LoadtestError;
use crate::generate::Control;
use crate::kafka::{Producer, ReadRecord, clients, read_all_to_end};
use crate::leftovers::{ControlRecords, Leftovers, LoadControls};
use crate::scenario::is_load_plugin;

/// The registry to set up through.
#[derive(Debug, Clone)]
pub struct RegistryAccess {
    /// Its base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// An admin bearer token.
    pub token: String,
}

/// What setting up wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Manifests.
    pub plugins: u64,
    /// Enablement records (enabled or not).
    pub enablements: u64,
    /// Configs stored through the registry.
    pub configs: u64,
    /// Of those, configs with a secret field.
    pub secret_configs: u64,
}

fn registry_error(action: String) -> impl FnOnce(ClientError) -> LoadtestError {
    move |error| LoadtestError::Registry {
        action,
        message: error.to_string(),
    }
}

/// Waits until the registry answers `/readyz` with 200.
pub fn wait_for_registry(access: &RegistryAccess, timeout: Duration) -> Result<(), LoadtestError> {
    let client = Client::new(&access.url, None).map_err(registry_error("connecting".into()))?;
    let started = Instant::now();
    loop {
        match client.get("/readyz") {
            Ok(_) => return Ok(()),
            Err(error) if started.elapsed() >= timeout => {
                return Err(LoadtestError::Timeout {
                    what: "the registry to be ready",
                    waited: started.elapsed(),
                    last: error.to_string(),
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Applies the controls through the registry's API.
pub fn apply_through_registry(
    access: &RegistryAccess,
    controls: &[Control],
) -> Result<Applied, LoadtestError> {
    let client =
        Client::new(&access.url, Some(access.token.clone())).map_err(registry_error("connecting".into()))?;
    let mut applied = Applied::default();
    for control in controls {
        match control {
            Control::Plugin(manifest) => {
                let body = serde_json::to_value(manifest).map_err(|e| LoadtestError::Registry {
                    action: format!("encoding the manifest of {}", manifest.id),
                    message: e.to_string(),
                })?;
                client
                    .post("/v1/plugins", &body)
                    .map_err(registry_error(format!("registering {}", manifest.id)))?;
                applied.plugins += 1;
            }
            Control::Enablement {
                team,
                plugin,
                enablement,
            } => {
                let (path, body) = enablement_request(team, plugin, enablement.as_ref());
                client
                    .put(&path, &body)
                    .map_err(registry_error(format!("enabling {plugin} for {team}")))?;
                applied.enablements += 1;
                if let Some(config) = enablement
                    .as_ref()
                    .filter(|e| e.enabled)
                    .and_then(|_| sample_config(team, plugin))
                {
                    client
                        .put(&format!("/v1/teams/{team}/plugins/{plugin}/config"), &config)
                        .map_err(registry_error(format!("configuring {plugin} for {team}")))?;
                    applied.configs += 1;
                    if plugin == crate::generate::control::SMS_NOTIFY {
                        applied.secret_configs += 1;
                    }
                }
            }
        }
    }
    Ok(applied)
}

/// The registry call that writes `enablement` for (team, plugin): the v1 `PUT .../plugins/{plugin}`,
/// which keeps whatever `form_ids` and `filter` the stored record has, or, for an enablement with either,
/// the installation route of the default installation, which sets the whole installation.
fn enablement_request(team: &str, plugin: &str, enablement: Option<&Enablement>) -> (String, Value) {
    let v1 = format!("/v1/teams/{team}/plugins/{plugin}");
    match enablement {
        Some(e) if e.form_ids().is_some() || e.filter().is_some() => (
            format!("{v1}/installations/{DEFAULT_INSTALLATION}"),
            json!({"enabled": e.enabled, "event_types": e.event_types, "form_ids": e.form_ids(),
                   "filter": e.filter()}),
        ),
        Some(e) => (v1, json!({"enabled": e.enabled, "event_types": e.event_types})),
        None => (v1, json!({"enabled": false})),
    }
}

/// The account of the demo's local Twilio-compatible API (`switchyard-seed-plugin fake-twilio`).
pub const DEMO_SMS_ACCOUNT: &str = "AC5e1ec7ab1e5e1ec7ab1e5e1ec7ab1e5e";
/// Its auth token: a write-only secret of the sms-notify config.
pub const DEMO_SMS_TOKEN: &str = "demo-sms-auth-token";

/// A plausible config of a sample plugin for a team, if the plugin takes one.
pub(crate) fn sample_config(team: &str, plugin: &str) -> Option<Value> {
    use crate::generate::control::{RULES_VALIDATE, SHEETS_EXPORT, SLANG_SEARCH, SMS_NOTIFY};
    match plugin {
        SHEETS_EXPORT => Some(json!({"spreadsheet_id": format!("1Bx{}", team.replace('.', "-")),
                                     "sheet_name": "Responses"})),
        SMS_NOTIFY => Some(json!({
            "account_sid": DEMO_SMS_ACCOUNT,
            // A write-only field: stored and delivered to the plugin, never shown again.
            "auth_token": DEMO_SMS_TOKEN,
            "from": "SURVEYS",
        })),
        RULES_VALIDATE => Some(switchyard_plugins::rules::default_rules()),
        SLANG_SEARCH => Some(json!({"city_question": "city"})),
        _ => None,
    }
}

/// Writes the controls to the control topics directly (default names).
pub fn apply_to_topics(
    producer: &Producer,
    controls: &[Control],
    timeout: Duration,
) -> Result<Applied, LoadtestError> {
    apply_to_topics_named(producer, controls, topics::PLUGINS, topics::ENABLEMENTS, timeout)
}

/// Writes the controls to the control topics with these names.
pub fn apply_to_topics_named(
    producer: &Producer,
    controls: &[Control],
    plugins_topic: &str,
    enablements_topic: &str,
    timeout: Duration,
) -> Result<Applied, LoadtestError> {
    let mut applied = Applied::default();
    for control in controls {
        let topic = match control {
            Control::Plugin(_) => plugins_topic,
            Control::Enablement { .. } => enablements_topic,
        };
        producer.send(topic, &control.to_record())?;
        match control {
            Control::Plugin(_) => applied.plugins += 1,
            Control::Enablement { .. } => applied.enablements += 1,
        }
    }
    producer.flush(timeout)?;
    Ok(applied)
}

/// Reads the load plugins' keys of the control topics to their ends (see [`crate::leftovers`]).
pub fn read_load_controls(
    bootstrap: &str,
    plugins_topic: &str,
    enablements_topic: &str,
    timeout: Duration,
) -> Result<LoadControls, LoadtestError> {
    // Keep only load keys: the platform's own records may be many, and are never touched.
    let keep = |record: &ReadRecord| {
        let key = record.key.as_deref().and_then(|k| std::str::from_utf8(k).ok());
        key.is_some_and(|key| is_load_plugin(key.rsplit_once('/').map_or(key, |(_, plugin)| plugin)))
    };
    let topics = [plugins_topic.to_owned(), enablements_topic.to_owned()];
    let reads = read_all_to_end(&clients(bootstrap), &topics, timeout, &keep)?;
    let mut live = LoadControls::default();
    // Records of one key share a partition, and each partition is read in offset order.
    for record in &reads[0].kept {
        live.apply_plugin(record.key.as_deref().unwrap_or_default(), record.value.as_deref());
    }
    for record in &reads[1].kept {
        live.apply_enablement(record.key.as_deref().unwrap_or_default(), record.value.as_deref());
    }
    Ok(live)
}

/// Removes leftovers with tombstones on the control topics.
pub fn remove_from_topics(
    producer: &Producer,
    leftovers: &Leftovers,
    plugins_topic: &str,
    enablements_topic: &str,
    timeout: Duration,
) -> Result<ControlRecords, LoadtestError> {
    let (plugins, enablements) = leftovers.tombstones();
    for record in &plugins {
        producer.send(plugins_topic, record)?;
    }
    for record in &enablements {
        producer.send(enablements_topic, record)?;
    }
    producer.flush(timeout)?;
    Ok(leftovers.tombstone_records())
}

/// Removes leftovers through the registry: deregisters the leftover plugins and disables the leftover
/// pairs of this run's plugins (call it after [`apply_through_registry`], so that those are registered).
pub fn remove_through_registry(
    access: &RegistryAccess,
    leftovers: &Leftovers,
    controls: &[Control],
) -> Result<ControlRecords, LoadtestError> {
    let client =
        Client::new(&access.url, Some(access.token.clone())).map_err(registry_error("connecting".into()))?;
    let (removal, records) = leftovers.through_registry(controls);
    for plugin in &removal.deregister {
        client
            .delete(&format!("/v1/plugins/{plugin}"))
            .map_err(registry_error(format!(
                "deregistering {plugin}, left by an earlier run"
            )))?;
    }
    for (team, plugin) in &removal.disable {
        client
            .put(
                &format!("/v1/teams/{team}/plugins/{plugin}"),
                &json!({"enabled": false}),
            )
            .map_err(registry_error(format!(
                "disabling {plugin} for {team}, left by an earlier run"
            )))?;
    }
    Ok(records)
}

/// Writes to `topic` the enablement of `team`'s default installation of `plugin`, held by a backfill
/// `id` of its events since `since` (RFC 3339; contract section 7.5), as a registry would.
pub fn write_backfill_enablement(
    producer: &Producer,
    topic: &str,
    team: &str,
    plugin: &str,
    id: &str,
    since: &str,
) -> Result<(), LoadtestError> {
    let enablement = Enablement {
        team_id: team.into(),
        plugin_id: plugin.into(),
        installation: None,
        enabled: true,
        event_types: None,
        form_ids: None,
        filter: None,
        backfill: Some(switchyard_schemas::backfill::Request {
            id: id.into(),
            since: since.into(),
            until: None,
            event_types: None,
            rate: None,
            cancel_requested: false,
        }),
        updated_at: switchyard_schemas::times::now_rfc3339(),
    };
    let value = serde_json::to_vec(&enablement).map_err(|e| LoadtestError::Usage(e.to_string()))?;
    producer.send(
        topic,
        &crate::kafka::Record {
            key: Some(enablement.key().into_bytes()),
            value: Some(value),
            headers: vec![],
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filtered_enablement_goes_through_the_installation_route() {
        let mut enablement = Enablement {
            team_id: "acme".into(),
            plugin_id: "load-01".into(),
            installation: None,
            form_ids: None,
            filter: None,
            backfill: None,
            enabled: true,
            event_types: None,
            updated_at: "2026-11-22T09:55:00Z".into(),
        };
        let (path, body) = enablement_request("acme", "load-01", Some(&enablement));
        assert_eq!(path, "/v1/teams/acme/plugins/load-01");
        assert_eq!(body, json!({"enabled": true, "event_types": null}));
        enablement.filter = Some("subject == \"f-1\"".into());
        let (path, body) = enablement_request("acme", "load-01", Some(&enablement));
        assert_eq!(path, "/v1/teams/acme/plugins/load-01/installations/default");
        assert_eq!(
            body,
            json!({"enabled": true, "event_types": null, "form_ids": null, "filter": "subject == \"f-1\""})
        );
        let (path, body) = enablement_request("acme", "load-01", None);
        assert_eq!(
            (path.as_str(), body),
            ("/v1/teams/acme/plugins/load-01", json!({"enabled": false}))
        );
    }
}
