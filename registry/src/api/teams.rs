//! A team's plugins: list its enablements (`GET /v1/teams/{team}/plugins`), enable or disable one
//! (`PUT .../{id}`), and set or read its config (`PUT`/`GET .../{id}/config`).
//!
//! Admins and the team itself may call these; a team token for another team gets 403. Config is only
//! accepted while the plugin is enabled (409 otherwise), is validated against the plugin's `config_schema`
//! (422 with a JSON pointer per error), and reaches the plugin through the configs topic. Secret fields
//! (`"writeOnly": true` in the schema) are never returned, only reported as set or unset, and never logged:
//! nothing in this module logs a config, and validation messages about secret fields do not quote values.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use switchyard_schemas::control::{Enablement, PluginManifest};
use switchyard_schemas::ids::check_team_id;
use time::OffsetDateTime;

use crate::api::{AppState, RawBody};
use crate::auth::Principal;
use crate::config_schema::{ConfigSchema, SecretState};
use crate::problem::{FieldError, Problem};
use crate::records::{ConfigRecord, PluginStatus, now_rfc3339, status_of};

/// One enablement as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnablementView {
    /// Plugin id.
    pub plugin_id: String,
    /// Whether events flow.
    pub enabled: bool,
    /// The event types routed; absent = every type the plugin subscribes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// The plugin's status; `down` also when the plugin is no longer registered.
    pub status: PluginStatus,
    /// Whether the team has stored a config for it.
    pub configured: bool,
}

/// `PUT /v1/teams/{team}/plugins/{id}`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetEnablement {
    /// Whether events flow.
    pub enabled: bool,
    /// Only these of the plugin's types; absent or empty = all of them.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
}

/// A config as the API shows it: secret fields removed and reported as set or unset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigView {
    /// Plugin id.
    pub plugin_id: String,
    /// The config without its secret fields.
    pub config: serde_json::Value,
    /// Each secret field's JSON pointer, `set` or `unset`.
    pub secrets: BTreeMap<String, SecretState>,
    /// The plugin version it was validated against.
    pub plugin_version: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
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

fn plugin(state: &AppState, id: &str) -> Result<PluginManifest, Problem> {
    state
        .records()
        .plugin(id)
        .ok_or_else(|| Problem::not_found(format!("no plugin {id} is registered")))
}

fn view(state: &AppState, enablement: Enablement, now: OffsetDateTime) -> EnablementView {
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
    EnablementView {
        configured: records
            .config(&enablement.team_id, &enablement.plugin_id)
            .is_some(),
        plugin_id: enablement.plugin_id,
        enabled: enablement.enabled,
        event_types: enablement.event_types,
        updated_at: enablement.updated_at,
        status,
    }
}

/// The team's enablements, by plugin id, each with its plugin's status.
pub async fn list(
    principal: Principal,
    State(state): State<AppState>,
    Path(team): Path<String>,
) -> Result<Json<Vec<EnablementView>>, Problem> {
    authorize(&principal, &team)?;
    let now = OffsetDateTime::now_utc();
    let enablements = state.records().team_enablements(&team);
    Ok(Json(
        enablements.into_iter().map(|e| view(&state, e, now)).collect(),
    ))
}

/// Enables or disables a plugin for the team: 200 with the enablement.
pub async fn set_enablement(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Json<EnablementView>, Problem> {
    authorize(&principal, &team)?;
    let manifest = plugin(&state, &id)?;
    let request: SetEnablement = serde_json::from_slice(&body).map_err(|e| {
        Problem::invalid(
            "the enablement is invalid",
            vec![FieldError {
                pointer: String::new(),
                detail: e.to_string(),
            }],
        )
    })?;
    let event_types = request.event_types.filter(|types| !types.is_empty());
    if let Some(types) = &event_types {
        let errors: Vec<FieldError> = types
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
            .collect();
        if !errors.is_empty() {
            return Err(Problem::invalid("the enablement is invalid", errors));
        }
    }
    let enablement = Enablement {
        team_id: team.clone(),
        plugin_id: id.clone(),
        installation: None,
        form_ids: None,
        filter: None,
        enabled: request.enabled,
        event_types,
        updated_at: now_rfc3339(),
    };
    let value = serde_json::to_vec(&enablement)
        .map_err(|_| Problem::unavailable("the enablement could not be stored"))?;
    state
        .write(&state.topics.enablements, &enablement.key(), Some(&value))
        .await?;
    tracing::info!(%team, plugin = %id, enabled = enablement.enabled, "enablement changed");
    Ok(Json(view(&state, enablement, OffsetDateTime::now_utc())))
}

/// Sets the team's config of a plugin: 200 with the redacted config. Secret fields left out keep their
/// stored value; a secret set to `null` is cleared.
pub async fn set_config(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Json<ConfigView>, Problem> {
    authorize(&principal, &team)?;
    let manifest = plugin(&state, &id)?;
    if !state.records().enablement(&team, &id).is_some_and(|e| e.enabled) {
        return Err(Problem::conflict(format!(
            "{id} is not enabled for this team; enable it before configuring it"
        )));
    }
    // serde_json's messages name a position, never the text around it, so no secret leaks from here.
    let mut config: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        Problem::invalid(
            "the config is not JSON",
            vec![FieldError {
                pointer: String::new(),
                detail: e.to_string(),
            }],
        )
    })?;
    let previous = state.records().config(&team, &id).map(|p| p.config);
    let plugin_version = manifest.version.to_string();
    let (schema, config) = state
        .schema_work
        .run(
            "checking the config against the plugin's config_schema",
            move || {
                let schema = compiled_schema(&manifest)?;
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
    let record = ConfigRecord {
        team_id: team.clone(),
        plugin_id: id.clone(),
        installation: None,
        config,
        plugin_version,
        updated_at: now_rfc3339(),
    };
    let value =
        serde_json::to_vec(&record).map_err(|_| Problem::unavailable("the config could not be stored"))?;
    state
        .write(&state.topics.configs, &format!("{team}/{id}"), Some(&value))
        .await?;
    tracing::info!(%team, plugin = %id, "config changed");
    Ok(Json(config_view(&schema, record)))
}

/// The team's config of a plugin, secrets as set/unset only; 404 when none is stored.
pub async fn show_config(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id)): Path<(String, String)>,
) -> Result<Json<ConfigView>, Problem> {
    authorize(&principal, &team)?;
    let manifest = plugin(&state, &id)?;
    let record = state
        .records()
        .config(&team, &id)
        .ok_or_else(|| Problem::not_found(format!("this team has no config for {id}")))?;
    state
        .schema_work
        .run("reading the plugin's config_schema", move || {
            compiled_schema(&manifest).map(|schema| Json(config_view(&schema, record)))
        })
        .await?
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

fn config_view(schema: &ConfigSchema, record: ConfigRecord) -> ConfigView {
    let redacted = schema.redact(&record.config);
    ConfigView {
        plugin_id: record.plugin_id,
        config: redacted.config,
        secrets: redacted.secrets,
        plugin_version: record.plugin_version,
        updated_at: record.updated_at,
    }
}
