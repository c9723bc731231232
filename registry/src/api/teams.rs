//! A team's plugins, the v1 routes: list its enablements (`GET /v1/teams/{team}/plugins`), enable or
//! disable one (`PUT .../{id}`), and set or read its config (`PUT`/`GET .../{id}/config`). Each addresses
//! the plugin's installation `default` ([`crate::api::installations`] has the routes for every
//! installation); this module also holds what both sets of routes share: the views, the role check, the
//! event-type check and the config path.
//!
//! Admins and the team itself may call these; a team token for another team gets 403. Config is only
//! accepted while the installation is enabled (409 otherwise), is validated against the plugin's
//! `config_schema` (422 with a JSON pointer per error), and reaches the plugin through the configs topic.
//! Secret fields (`"writeOnly": true` in the schema) are never returned, only reported as set or unset,
//! and never logged: nothing in this module logs a config, and validation messages about secret fields do
//! not quote values.
//!
//! **v1 compatibility.** A v1 `PUT .../{id}` knows nothing of `form_ids` and `filter`, so it reads the
//! stored default installation and keeps those two fields ([`merge_v1`]); for a plugin without them the
//! record and the answer are byte for byte what they were before installations existed.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use switchyard_schemas::control::{Enablement, PluginManifest, installation_key};
use switchyard_schemas::ids::{DEFAULT_INSTALLATION, check_team_id};
use time::OffsetDateTime;

use crate::api::backfills::{check_body, store_installation};
use crate::api::installations::{allow_installation, describe, read_installation};
use crate::api::paging::{Page, Paging};
use crate::api::versions::{Precondition, Tagged, changing, unchanged_since};
use crate::api::{AppState, RawBody};
use crate::auth::Principal;
use crate::backfills::{BackfillBody, BackfillView};
use crate::config_schema::{ConfigSchema, SecretState};
use crate::problem::{FieldError, Problem};
use crate::records::{ConfigRecord, PluginStatus, now_rfc3339, status_of};
use crate::store::Expect;

/// One enablement (an installation) as the API shows it. The v1 routes leave `installation` out, and
/// `form_ids` and `filter` are there only when set, so a v1 view is what it was before installations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnablementView {
    /// Plugin id.
    pub plugin_id: String,
    /// Installation id; on the installation routes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
    /// Whether events flow.
    pub enabled: bool,
    /// The event types routed; absent = every type the plugin subscribes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    /// Only events of these forms (`ce_subject`); absent = any form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_ids: Option<Vec<String>>,
    /// Only events for which this CEL expression is true; absent = any event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// The plugin's status; `down` also when the plugin is no longer registered.
    pub status: PluginStatus,
    /// Whether the team has stored a config for this installation.
    pub configured: bool,
    /// The backfill this `PUT` started; only in the answer to a `PUT` whose body asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<BackfillView>,
}

/// `PUT /v1/teams/{team}/plugins/{id}`'s body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetEnablement {
    /// Whether events flow.
    pub enabled: bool,
    /// Only these of the plugin's types; absent or empty = all of them.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// A backfill to start with the enablement ([`crate::api::backfills`]); absent or `null` = none (one
    /// already under way goes on).
    #[serde(default)]
    pub backfill: Option<BackfillBody>,
}

/// A config as the API shows it: secret fields removed and reported as set or unset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigView {
    /// Plugin id.
    pub plugin_id: String,
    /// Installation id; on the installation routes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
    /// The config without its secret fields.
    pub config: serde_json::Value,
    /// Each secret field's JSON pointer, `set` or `unset`.
    pub secrets: BTreeMap<String, SecretState>,
    /// The plugin version it was validated against.
    pub plugin_version: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

/// Which routes a view is for: the v1 routes leave the installation id out of their answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routes {
    /// `.../plugins/{id}` and `.../plugins/{id}/config`.
    V1,
    /// `.../installations/...`.
    Installations,
}

/// 403 unless the principal may act for the team; then 404 when the team id is not one (admins only get
/// that far with an arbitrary string).
pub(crate) fn authorize(principal: &Principal, team: &str) -> Result<(), Problem> {
    if !principal.may_access_team(team) {
        return Err(Problem::forbidden(
            "only an admin or the team itself may use the team's plugins",
        ));
    }
    check_team_id(team.as_bytes()).map_err(|e| Problem::not_found(format!("{team:?} is not a team id: {e}")))
}

/// The registered manifest of `id`, or 404.
pub(crate) fn plugin(state: &AppState, id: &str) -> Result<PluginManifest, Problem> {
    state
        .records()
        .plugin(id)
        .ok_or_else(|| Problem::not_found(format!("no plugin {id} is registered")))
}

/// The API's view of an enablement, with its plugin's status and whether its installation is configured.
pub(crate) fn view(
    state: &AppState,
    enablement: Enablement,
    routes: Routes,
    now: OffsetDateTime,
) -> EnablementView {
    let records = state.records();
    let status = if records.plugin(&enablement.plugin_id).is_some() {
        status_of(
            &records.instances(&enablement.plugin_id),
            now,
            state.heartbeat_ttl,
        )
    } else {
        PluginStatus::Down
    };
    let configured = records
        .config(
            &enablement.team_id,
            &enablement.plugin_id,
            enablement.installation(),
        )
        .is_some();
    enablement_view(enablement, routes, status, configured)
}

/// The view of an enablement, given its plugin's status and whether it is configured.
pub(crate) fn enablement_view(
    enablement: Enablement,
    routes: Routes,
    status: PluginStatus,
    configured: bool,
) -> EnablementView {
    EnablementView {
        installation: (routes == Routes::Installations).then(|| enablement.installation().to_owned()),
        form_ids: enablement.form_ids().map(<[String]>::to_vec),
        filter: enablement.filter().map(str::to_owned),
        plugin_id: enablement.plugin_id,
        enabled: enablement.enabled,
        event_types: enablement.event_types,
        updated_at: enablement.updated_at,
        status,
        configured,
        backfill: None,
    }
}

/// The team's default installations (its v1 enablements), by plugin id, each with its plugin's status.
pub async fn list(
    principal: Principal,
    State(state): State<AppState>,
    Path(team): Path<String>,
    paging: Paging,
) -> Result<Page<EnablementView>, Problem> {
    authorize(&principal, &team)?;
    let now = OffsetDateTime::now_utc();
    let enablements = state.records().team_enablements(&team);
    Ok(paging
        .page(enablements, |e| e.plugin_id.clone())?
        .map(|e| view(&state, e, Routes::V1, now)))
}

/// The errors of an `event_types` list against the plugin's manifest, one per entry it does not list.
pub(crate) fn event_type_errors(manifest: &PluginManifest, types: &[String]) -> Vec<FieldError> {
    types
        .iter()
        .enumerate()
        .filter(|(_, t)| !manifest.events.contains(t))
        .map(|(index, t)| FieldError {
            pointer: format!("/event_types/{index}"),
            detail: format!(
                "{t:?} is not one of the plugin's event types ({})",
                manifest.events.join(", ")
            ),
        })
        .collect()
}

/// The 422 of a body that does not deserialize.
pub(crate) fn unreadable(what: &str, error: &serde_json::Error) -> Problem {
    Problem::invalid(
        format!("the {what} is invalid"),
        vec![FieldError {
            pointer: String::new(),
            detail: error.to_string(),
        }],
    )
}

/// The default installation a v1 `PUT` stores: `enabled` and `event_types` from the request (empty types
/// mean all), `form_ids` and `filter` kept from the stored record, which v1 clients do not know about.
pub fn merge_v1(
    previous: Option<&Enablement>,
    team: &str,
    plugin: &str,
    request: SetEnablement,
    updated_at: String,
) -> Enablement {
    Enablement {
        team_id: team.to_owned(),
        plugin_id: plugin.to_owned(),
        installation: None,
        enabled: request.enabled,
        event_types: request.event_types.filter(|types| !types.is_empty()),
        form_ids: previous.and_then(|p| p.form_ids().map(<[String]>::to_vec)),
        filter: previous.and_then(|p| p.filter().map(str::to_owned)),
        backfill: previous.and_then(|p| p.backfill.clone()),
        updated_at,
    }
}

/// Enables or disables a plugin for the team (its default installation), and starts the backfill the body
/// asks for: 200 with the enablement (and the backfill's view under `backfill`).
pub async fn set_enablement(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id)): Path<(String, String)>,
    Precondition(precondition): Precondition,
    RawBody(body): RawBody,
) -> Result<Tagged<Json<EnablementView>>, Problem> {
    authorize(&principal, &team)?;
    let manifest = &plugin(&state, &id)?;
    let mut request: SetEnablement =
        serde_json::from_slice(&body).map_err(|e| unreadable("enablement", &e))?;
    if let Some(types) = &request.event_types {
        let errors = event_type_errors(manifest, types);
        if !errors.is_empty() {
            return Err(Problem::invalid("the enablement is invalid", errors));
        }
    }
    let backfill = &request.backfill.take();
    if let Some(body) = backfill {
        check_body(manifest, request.event_types.as_deref(), body, "/backfill")?;
    }
    let (state, request, team, id) = (&state, &request, team.as_str(), id.as_str());
    // The merge keeps what the stored record holds: computed again if another write replaces it first.
    changing(precondition, move || async move {
        let (read, previous) = read_installation(state, team, id, DEFAULT_INSTALLATION, precondition).await?;
        let enablement = merge_v1(previous.as_ref(), team, id, request.clone(), now_rfc3339());
        let (enablement, backfill, version) =
            store_installation(state, manifest, enablement, previous, read, backfill.clone()).await?;
        let mut answer = view(state, enablement, Routes::V1, OffsetDateTime::now_utc());
        answer.backfill = backfill;
        Ok(Tagged(version, Json(answer)))
    })
    .await
}

/// Sets the team's config of a plugin's default installation: 200 with the redacted config.
pub async fn set_config(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id)): Path<(String, String)>,
    Precondition(precondition): Precondition,
    RawBody(body): RawBody,
) -> Result<Tagged<Json<ConfigView>>, Problem> {
    authorize(&principal, &team)?;
    let Tagged(version, view) = configure(
        &state,
        &team,
        &id,
        DEFAULT_INSTALLATION,
        &body,
        Routes::V1,
        precondition,
    )
    .await?;
    Ok(Tagged(version, Json(view)))
}

/// The team's config of a plugin's default installation, secrets as set/unset only.
pub async fn show_config(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id)): Path<(String, String)>,
) -> Result<Tagged<Json<ConfigView>>, Problem> {
    authorize(&principal, &team)?;
    let Tagged(version, view) = read_config(&state, &team, &id, DEFAULT_INSTALLATION, Routes::V1).await?;
    Ok(Tagged(version, Json(view)))
}

/// Sets the team's config of an installation of a plugin, after the role check: the plugin is registered
/// (404), allows the installation (409), the installation is enabled (409), the body is JSON (422) and
/// valid against the `config_schema` once stored secrets it leaves out are merged in (422). Secret fields
/// left out keep their stored value; a secret set to `null` is cleared. The stored config the secrets come
/// from is the one the write replaces ([`changing`]); `precondition` is the caller's on it (412).
pub(crate) async fn configure(
    state: &AppState,
    team: &str,
    id: &str,
    installation: &str,
    body: &[u8],
    routes: Routes,
    precondition: Expect,
) -> Result<Tagged<ConfigView>, Problem> {
    let manifest = plugin(state, id)?;
    allow_installation(&manifest, installation)?;
    let enabled = state
        .records()
        .enablement(team, id, installation)
        .is_some_and(|e| e.enabled);
    if !enabled {
        return Err(Problem::conflict(format!(
            "{} is not enabled for this team; enable it before configuring it",
            describe(id, installation)
        )));
    }
    // serde_json's messages name a position, never the text around it, so no secret leaks from here.
    let config: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        Problem::invalid(
            "the config is not JSON",
            vec![FieldError {
                pointer: String::new(),
                detail: e.to_string(),
            }],
        )
    })?;
    let key = installation_key(team, id, installation);
    let (key, configs) = (key.as_str(), &state.topics.configs);
    let (manifest, config) = (&manifest, &config);
    changing(precondition, move || async move {
        let current = state
            .read_for_change(configs, key, precondition, "the config")
            .await?;
        let read = current.as_ref().map(|(version, _)| *version);
        let stored = current.and_then(|(_, value)| serde_json::from_slice::<ConfigRecord>(&value).ok());
        // The stored secrets, opened, so that those the body leaves out are kept.
        let previous = match stored {
            Some(stored) => match state.secrets.open(&stored) {
                Ok(opened) => Some(opened),
                // Nothing to merge when the body sends every sealed field again: the unreadable ones go.
                Err(_) if resends_every_sealed_field(&stored, config) => None,
                Err(error) => {
                    tracing::warn!(%error, %team, plugin = %id, %installation, "a stored config does not open");
                    return Err(Problem::conflict(format!(
                        "the stored secrets of this config cannot be opened: {error}. Put the master key it \
                         names back in secrets.master_keys (after the sealing one), or send every secret \
                         field again"
                    )));
                }
            },
            None => None,
        };
        let (checked, mut config) = (manifest.clone(), config.clone());
        let (schema, config) = state
            .schema_work
            .run(
                "checking the config against the plugin's config_schema",
                move || {
                    let schema = compiled_schema(&checked)?;
                    schema.merge_secrets(&mut config, previous.as_ref());
                    schema.validate(&config).map_err(|errors| {
                        Problem::invalid(
                            "the config does not match the plugin's config_schema",
                            errors
                                .into_iter()
                                .map(|e| FieldError {
                                    pointer: e.pointer,
                                    detail: e.detail,
                                })
                                .collect(),
                        )
                    })?;
                    Ok::<_, Problem>((schema, config))
                },
            )
            .await??;
        let mut record = ConfigRecord {
            team_id: team.to_owned(),
            plugin_id: id.to_owned(),
            installation: (installation != DEFAULT_INSTALLATION).then(|| installation.to_owned()),
            config,
            sealed: None,
            plugin_version: manifest.version.to_string(),
            updated_at: now_rfc3339(),
        };
        let view = config_view(&schema, record.clone(), routes);
        // No secret value reaches the topic in clear (with master keys configured).
        state.secrets.seal(&mut record, &schema.secret_pointers());
        let value = serde_json::to_vec(&record)
            .map_err(|_| Problem::unavailable("the config could not be stored"))?;
        let version = state
            .write_if(configs, key, Some(&value), unchanged_since(read), "the config")
            .await?;
        tracing::info!(%team, plugin = %id, %installation, "config changed");
        Ok(Tagged(version, view))
    })
    .await
}

/// Whether `config` sets every field `stored` holds sealed (a `null` clears it, which counts).
fn resends_every_sealed_field(stored: &ConfigRecord, config: &serde_json::Value) -> bool {
    stored
        .sealed
        .iter()
        .flatten()
        .all(|(pointer, _)| config.pointer(pointer).is_some())
}

/// The team's config of an installation of a plugin, after the role check: 404 when the plugin is not
/// registered or no config is stored.
pub(crate) async fn read_config(
    state: &AppState,
    team: &str,
    id: &str,
    installation: &str,
    routes: Routes,
) -> Result<Tagged<ConfigView>, Problem> {
    let manifest = plugin(state, id)?;
    let missing = || {
        Problem::not_found(format!(
            "this team has no config for {}",
            describe(id, installation)
        ))
    };
    let (version, value) = state
        .store
        .get_versioned(&state.topics.configs, &installation_key(team, id, installation))
        .ok_or_else(missing)?;
    let record: ConfigRecord = serde_json::from_slice(&value).map_err(|_| missing())?;
    let view = state
        .schema_work
        .run("reading the plugin's config_schema", move || {
            compiled_schema(&manifest).map(|schema| config_view(&schema, record, routes))
        })
        .await??;
    Ok(Tagged(Some(version), view))
}

fn compiled_schema(manifest: &PluginManifest) -> Result<ConfigSchema, Problem> {
    let schema = manifest
        .config_schema
        .clone()
        .unwrap_or_else(|| serde_json::json!({"type": "object", "maxProperties": 0}));
    ConfigSchema::compile(&schema).map_err(|_| {
        // Registration checks the schema; a stored invalid one means the topic was written around the API.
        Problem::conflict(format!(
            "the registered config_schema of {} is invalid; re-register the plugin",
            manifest.id
        ))
    })
}

fn config_view(schema: &ConfigSchema, record: ConfigRecord, routes: Routes) -> ConfigView {
    let mut redacted = schema.redact(&record.config);
    // A sealed field is set, though it is not in `config`.
    for pointer in record.sealed.iter().flatten().map(|(pointer, _)| pointer) {
        if let Some(state) = redacted.secrets.get_mut(pointer) {
            *state = SecretState::Set;
        }
    }
    ConfigView {
        installation: (routes == Routes::Installations).then(|| record.installation().to_owned()),
        plugin_id: record.plugin_id,
        config: redacted.config,
        secrets: redacted.secrets,
        plugin_version: record.plugin_version,
        updated_at: record.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_RECORD: &str = r#"{"team_id":"acme","plugin_id":"sheets-export","enabled":true,"event_types":["response.submitted"],"updated_at":"2026-11-22T09:55:00Z"}"#;

    fn request(body: &str) -> SetEnablement {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn a_v1_put_writes_the_v1_record_byte_for_byte() {
        let merged = merge_v1(
            None,
            "acme",
            "sheets-export",
            request(r#"{"enabled": true, "event_types": ["response.submitted"]}"#),
            "2026-11-22T09:55:00Z".into(),
        );
        assert_eq!(serde_json::to_string(&merged).unwrap(), V1_RECORD);
        let all_types = merge_v1(
            None,
            "acme",
            "sheets-export",
            request(r#"{"enabled": false, "event_types": []}"#),
            "2026-11-22T09:55:00Z".into(),
        );
        assert_eq!(
            serde_json::to_string(&all_types).unwrap(),
            r#"{"team_id":"acme","plugin_id":"sheets-export","enabled":false,"updated_at":"2026-11-22T09:55:00Z"}"#,
            "empty event types are stored as absent, as before"
        );
    }

    #[test]
    fn a_v1_put_keeps_the_stored_form_ids_and_filter() {
        let stored = Enablement::parse(
            b"acme/sheets-export",
            br#"{"team_id":"acme","plugin_id":"sheets-export","enabled":true,"event_types":["form.created"],
                 "form_ids":["f-1"],"filter":"data.score > 3","updated_at":"2026-11-22T09:55:00Z"}"#,
        )
        .unwrap();
        let merged = merge_v1(
            Some(&stored),
            "acme",
            "sheets-export",
            request(r#"{"enabled": false}"#),
            "2026-11-23T00:00:00Z".into(),
        );
        assert_eq!(
            serde_json::to_string(&merged).unwrap(),
            r#"{"team_id":"acme","plugin_id":"sheets-export","enabled":false,"form_ids":["f-1"],"filter":"data.score > 3","updated_at":"2026-11-23T00:00:00Z"}"#,
            "enabled and event_types come from the request, the rest is kept"
        );
    }

    #[test]
    fn a_v1_body_refuses_the_new_fields() {
        for body in [
            r#"{"enabled": true, "filter": "true"}"#,
            r#"{"enabled": true, "form_ids": ["f"]}"#,
            r#"{"event_types": []}"#,
        ] {
            assert!(serde_json::from_str::<SetEnablement>(body).is_err(), "{body}");
        }
    }

    fn enablement(json: &str, key: &[u8]) -> Enablement {
        Enablement::parse(key, json.as_bytes()).unwrap()
    }

    #[test]
    fn v1_views_are_unchanged_and_installation_views_name_the_installation() {
        let v1 = enablement_view(
            enablement(V1_RECORD, b"acme/sheets-export"),
            Routes::V1,
            PluginStatus::Up,
            true,
        );
        assert_eq!(
            serde_json::to_string(&v1).unwrap(),
            r#"{"plugin_id":"sheets-export","enabled":true,"event_types":["response.submitted"],"updated_at":"2026-11-22T09:55:00Z","status":"up","configured":true}"#
        );
        let default = enablement_view(
            enablement(V1_RECORD, b"acme/sheets-export"),
            Routes::Installations,
            PluginStatus::Down,
            false,
        );
        assert_eq!(
            serde_json::to_string(&default).unwrap(),
            r#"{"plugin_id":"sheets-export","installation":"default","enabled":true,"event_types":["response.submitted"],"updated_at":"2026-11-22T09:55:00Z","status":"down","configured":false}"#
        );
        let named = enablement(
            r#"{"team_id":"acme","plugin_id":"sheets-export","installation":"forms-a","enabled":true,
                "form_ids":["f-1","f-2"],"filter":"data.score > 3","updated_at":"2026-11-22T09:55:00Z"}"#,
            b"acme/sheets-export/forms-a",
        );
        assert_eq!(
            serde_json::to_value(enablement_view(
                named,
                Routes::Installations,
                PluginStatus::Up,
                false
            ))
            .unwrap(),
            serde_json::json!({"plugin_id": "sheets-export", "installation": "forms-a", "enabled": true,
                               "form_ids": ["f-1", "f-2"], "filter": "data.score > 3",
                               "updated_at": "2026-11-22T09:55:00Z", "status": "up", "configured": false})
        );
        let empty = enablement(
            &V1_RECORD.replace(r#""updated_at""#, r#""form_ids":[],"filter":"","updated_at""#),
            b"acme/sheets-export",
        );
        assert_eq!(
            serde_json::to_string(&enablement_view(empty, Routes::V1, PluginStatus::Up, true)).unwrap(),
            serde_json::to_string(&v1).unwrap(),
            "empty form_ids and filter are no limit, and not shown"
        );
    }

    #[test]
    fn event_types_outside_the_manifest_are_named_by_index() {
        let manifest = PluginManifest::parse(
            "sheets-export",
            br#"{"id":"sheets-export","name":"S","version":"1.0.0","events":["response.submitted"]}"#,
        )
        .unwrap();
        let errors = event_type_errors(&manifest, &["response.submitted".into(), "form.created".into()]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pointer, "/event_types/1");
        assert!(event_type_errors(&manifest, &[]).is_empty());
    }
}
