//! `POST /v1/plugins` (register or update, idempotent), `GET /v1/plugins`, `GET /v1/plugins/{id}`.
//!
//! Who may register: an admin, or the plugin itself (a plugin token whose `plugin` claim is the manifest's
//! id). A version lower than the registered one is refused with 409 unless an admin passes `?force=true`.
//! Teams see the public fields; admins also see the URL.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchyard_schemas::control::{ControlError, PluginManifest};

use crate::api::AppState;
use crate::auth::Principal;
use crate::problem::{FieldError, Problem};

/// `?force=true`: an admin registers a lower version than the current one.
#[derive(Debug, Default, Deserialize)]
pub struct RegisterParams {
    #[serde(default)]
    force: bool,
}

/// A plugin as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginView {
    /// Plugin id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Semantic version.
    pub version: String,
    /// Event types it subscribes to.
    pub events: Vec<String>,
    /// Actions it serves.
    pub actions: Vec<String>,
    /// Its configuration's JSON Schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<serde_json::Value>,
    /// Base URL of its service; admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl PluginView {
    fn of(manifest: PluginManifest, principal: &Principal) -> Self {
        Self {
            id: manifest.id,
            name: manifest.name,
            description: manifest.description,
            version: manifest.version.to_string(),
            events: manifest.events,
            actions: manifest.actions,
            config_schema: manifest.config_schema,
            url: if principal.is_admin() { manifest.url } else { None },
        }
    }
}

/// Registers a plugin or updates its manifest: 201 when new, 200 when updated.
pub async fn register(
    principal: Principal,
    State(state): State<AppState>,
    Query(params): Query<RegisterParams>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<PluginView>), Problem> {
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        Problem::invalid(
            "the body is not JSON",
            vec![FieldError {
                pointer: String::new(),
                detail: e.to_string(),
            }],
        )
    })?;
    let id = json
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    if !principal.may_act_as_plugin(&id) {
        return Err(Problem::forbidden(
            "only an admin or the plugin itself may register it",
        ));
    }
    let manifest = PluginManifest::parse(&id, &body).map_err(invalid_manifest)?;
    let current = state
        .store
        .get(&state.plugins_topic, &id)
        .and_then(|v| PluginManifest::parse(&id, &v).ok());
    if let Some(current) = &current
        && manifest.version < current.version
        && !(params.force && principal.is_admin())
    {
        return Err(Problem::conflict(format!(
            "version {} is lower than the registered {}; an admin can force it with ?force=true",
            manifest.version, current.version
        )));
    }
    let value = serde_json::to_vec(&manifest)
        .map_err(|_| Problem::unavailable("the manifest could not be stored"))?;
    state
        .store
        .put(&state.plugins_topic, &id, Some(&value))
        .await
        .map_err(|error| {
            tracing::warn!(%error, plugin = %id, "storing a manifest failed");
            Problem::unavailable("the registry's store did not accept the write; retry")
        })?;
    let status = if current.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(PluginView::of(manifest, &principal))))
}

/// Lists registered plugins, by id.
pub async fn list(principal: Principal, State(state): State<AppState>) -> Json<Vec<PluginView>> {
    Json(
        state
            .store
            .entries(&state.plugins_topic)
            .into_iter()
            .filter_map(|(id, value)| PluginManifest::parse(&id, &value).ok())
            .map(|manifest| PluginView::of(manifest, &principal))
            .collect(),
    )
}

/// One plugin, or 404.
pub async fn show(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PluginView>, Problem> {
    state
        .store
        .get(&state.plugins_topic, &id)
        .and_then(|value| PluginManifest::parse(&id, &value).ok())
        .map(|manifest| Json(PluginView::of(manifest, &principal)))
        .ok_or_else(|| Problem::not_found(format!("no plugin {id} is registered")))
}

fn invalid_manifest(error: ControlError) -> Problem {
    let pointer = match &error {
        ControlError::Field { field, .. } => format!("/{field}"),
        ControlError::KeyMismatch { field, .. } => format!("/{field}"),
        ControlError::Id(_) | ControlError::Key { .. } => "/id".to_owned(),
        ControlError::Json { .. } => String::new(),
    };
    Problem::invalid(
        "the manifest is invalid",
        vec![FieldError {
            pointer,
            detail: error.to_string(),
        }],
    )
}
