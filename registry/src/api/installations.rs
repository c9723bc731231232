//! A team's installations of plugins: list them (`GET /v1/teams/{team}/installations`,
//! `GET /v1/teams/{team}/plugins/{id}/installations`), read, create or replace, and remove one
//! (`GET`/`PUT`/`DELETE .../plugins/{id}/installations/{installation}`), and set or read its config
//! (`PUT`/`GET .../installations/{installation}/config`).
//!
//! An installation is one enablement of a plugin by a team, with its own config, event types, form ids and
//! filter. Its records are keyed `<team>/<plugin>` for the installation `default` (what the v1 routes of
//! [`crate::api::teams`] address) and `<team>/<plugin>/<installation>` for any other (contract section
//! 7.2). A plugin has named installations only when its manifest says `installations: true` (409
//! otherwise), and a team has at most [`MAX_INSTALLATIONS_PER_PLUGIN`] of one plugin.
//!
//! ```text
//!   PUT .../installations/{inst}  ── role (403) · team id (404) · installation id (404) · plugin (404)
//!        │                            · installations allowed (409) · body (422: event_types, form_ids,
//!        │                            filter compiled) · with a backfill: its checks (crate::api::backfills)
//!        │                            · at most 100 per plugin (409)
//!        ├─► switchyard.backfills <id>  (with a backfill only)
//!        └─► switchyard.enablements <team>/<plugin>[/<inst>]  ──► the router
//!   DELETE ... ─► tombstones on switchyard.enablements and switchyard.configs (same key)
//! ```
//!
//! Same roles as the v1 team routes: an admin or the team itself.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use switchyard_filter::Filter;
use switchyard_schemas::control::{
    Enablement, FILTER_MAX_BYTES, FORM_ID_MAX_LEN, FORM_IDS_MAX, PluginManifest, installation_key,
};
use switchyard_schemas::ids::{DEFAULT_INSTALLATION, check_installation_id, check_plugin_id};
use time::OffsetDateTime;

use crate::api::backfills::{check_body, store_installation};
use crate::api::paging::{Page, Paging};
use crate::api::teams::{
    ConfigView, EnablementView, Routes, authorize, configure, event_type_errors, plugin, read_config,
    unreadable, view,
};
use crate::api::versions::{Precondition, Tagged, changing, unchanged_since};
use crate::api::{AppState, RawBody};
use crate::auth::Principal;
use crate::backfills::BackfillBody;
use crate::problem::{FieldError, Problem};
use crate::records::now_rfc3339;
use crate::store::Expect;

/// The most installations a team may have of one plugin, the default one included.
pub const MAX_INSTALLATIONS_PER_PLUGIN: usize = 100;

/// `PUT /v1/teams/{team}/plugins/{id}/installations/{installation}`'s body: the whole installation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetInstallation {
    /// Whether events flow.
    pub enabled: bool,
    /// Only these of the plugin's types; absent, `null` or empty = all of them.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Only events whose `ce_subject` (the form id) is one of these; absent, `null` or empty = any form.
    #[serde(default)]
    pub form_ids: Option<Vec<String>>,
    /// Only events for which this CEL expression is true; absent, `null` or blank = any event.
    #[serde(default)]
    pub filter: Option<String>,
    /// A backfill to start with the installation ([`crate::api::backfills`]); absent or `null` = none (one
    /// already under way goes on).
    #[serde(default)]
    pub backfill: Option<BackfillBody>,
}

/// `{installation}` must be an installation id; one of another form never exists, so it is a 404, as an
/// unknown plugin id is.
pub(crate) fn check_installation(installation: &str) -> Result<(), Problem> {
    check_installation_id(installation)
        .map_err(|e| Problem::not_found(format!("{installation:?} is not an installation id: {e}")))
}

/// How messages name an installation: the plugin id for the default one (as the v1 messages did), else
/// `<plugin> (installation <id>)`.
pub(crate) fn describe(plugin: &str, installation: &str) -> String {
    if installation == DEFAULT_INSTALLATION {
        plugin.to_owned()
    } else {
        format!("{plugin} (installation {installation})")
    }
}

/// 409 for a named installation of a plugin whose manifest does not say `installations: true`; the
/// default installation is always allowed.
pub(crate) fn allow_installation(manifest: &PluginManifest, installation: &str) -> Result<(), Problem> {
    if installation == DEFAULT_INSTALLATION || manifest.delivery.installations {
        return Ok(());
    }
    Err(Problem::conflict(format!(
        "{} does not keep state per installation (its manifest does not say installations: true), so a \
         team may only have its default installation, not {installation:?}",
        manifest.id
    )))
}

/// The errors of a `form_ids` list against the contract's limits: at most [`FORM_IDS_MAX`] entries, each
/// 1-[`FORM_ID_MAX_LEN`] bytes without control characters.
pub(crate) fn form_id_errors(form_ids: &[String]) -> Vec<FieldError> {
    if form_ids.len() > FORM_IDS_MAX {
        return vec![FieldError {
            pointer: "/form_ids".into(),
            detail: format!(
                "lists {} form ids; at most {FORM_IDS_MAX} are allowed",
                form_ids.len()
            ),
        }];
    }
    form_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| id.is_empty() || id.len() > FORM_ID_MAX_LEN || id.chars().any(char::is_control))
        .map(|(index, _)| FieldError {
            pointer: format!("/form_ids/{index}"),
            detail: format!("is not a form id: 1-{FORM_ID_MAX_LEN} bytes, no control characters"),
        })
        .collect()
}

/// The error of a `filter` that is too long or does not compile, pointing at `/filter` and naming the
/// position (byte offset, line and column) of a compile error.
pub(crate) fn filter_error(source: &str) -> Option<FieldError> {
    let error = |detail: String| {
        Some(FieldError {
            pointer: "/filter".into(),
            detail,
        })
    };
    if source.len() > FILTER_MAX_BYTES {
        return error(format!(
            "the filter is {} bytes long; at most {FILTER_MAX_BYTES} are allowed",
            source.len()
        ));
    }
    match compile_filter(source) {
        Ok(()) => None,
        Err(detail) => error(detail),
    }
}

/// Compiles a filter as the router will; the error is a sentence naming its line, column and byte offset.
/// Blocks for the compile (tens of microseconds): call it off the async workers.
fn compile_filter(source: &str) -> Result<(), String> {
    Filter::compile(source)
        .map(drop)
        .map_err(|error| error.to_string())
}

/// The enablement a `PUT` stores, or the body's errors (every one of them). Empty `event_types`,
/// `form_ids` and a blank `filter` are stored as absent. Compiles the filter: blocks for that.
pub(crate) fn installation_record(
    manifest: &PluginManifest,
    team: &str,
    installation: &str,
    request: SetInstallation,
    updated_at: String,
) -> Result<Enablement, Vec<FieldError>> {
    let event_types = request.event_types.filter(|t| !t.is_empty());
    let form_ids = request.form_ids.filter(|ids| !ids.is_empty());
    let filter = request.filter.filter(|f| !f.trim().is_empty());
    let mut errors = Vec::new();
    if let Some(types) = &event_types {
        errors.extend(event_type_errors(manifest, types));
    }
    if let Some(ids) = &form_ids {
        errors.extend(form_id_errors(ids));
    }
    if let Some(filter) = &filter {
        errors.extend(filter_error(filter));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Enablement {
        team_id: team.to_owned(),
        plugin_id: manifest.id.clone(),
        installation: (installation != DEFAULT_INSTALLATION).then(|| installation.to_owned()),
        enabled: request.enabled,
        event_types,
        form_ids,
        filter,
        backfill: None,
        updated_at,
    })
}

/// 409 for a new installation (`exists` false) when the team already has [`MAX_INSTALLATIONS_PER_PLUGIN`]
/// of the plugin.
pub(crate) fn check_room(state: &AppState, enablement: &Enablement, exists: bool) -> Result<(), Problem> {
    if exists {
        return Ok(());
    }
    let count = state
        .records()
        .plugin_installations(&enablement.team_id, &enablement.plugin_id)
        .len();
    if count >= MAX_INSTALLATIONS_PER_PLUGIN {
        return Err(Problem::conflict(format!(
            "the team already has {count} installations of {}; at most \
             {MAX_INSTALLATIONS_PER_PLUGIN} are allowed (remove one first)",
            enablement.plugin_id
        )));
    }
    Ok(())
}

/// The installation's enablement and its version, for a change conditioned on `precondition` (412 when
/// the stored one does not meet it). A record that does not parse has a version but no enablement.
pub(crate) async fn read_installation(
    state: &AppState,
    team: &str,
    plugin: &str,
    installation: &str,
    precondition: Expect,
) -> Result<(Option<i64>, Option<Enablement>), Problem> {
    let key = installation_key(team, plugin, installation);
    let current = state
        .read_for_change(&state.topics.enablements, &key, precondition, "the installation")
        .await?;
    Ok(match current {
        Some((version, value)) => (Some(version), Enablement::parse(key.as_bytes(), &value).ok()),
        None => (None, None),
    })
}

/// Writes an enablement, after [`check_room`], if the stored one is still the one at `read` (the version
/// it was computed from; 412 otherwise): its new version.
pub(crate) async fn store_enablement(
    state: &AppState,
    enablement: &Enablement,
    read: Option<i64>,
) -> Result<Option<i64>, Problem> {
    check_room(state, enablement, read.is_some())?;
    let value = serde_json::to_vec(enablement)
        .map_err(|_| Problem::unavailable("the enablement could not be stored"))?;
    let version = state
        .write_if(
            &state.topics.enablements,
            &enablement.key(),
            Some(&value),
            unchanged_since(read),
            "the installation",
        )
        .await?;
    tracing::info!(
        team = %enablement.team_id,
        plugin = %enablement.plugin_id,
        installation = enablement.installation(),
        enabled = enablement.enabled,
        "enablement changed"
    );
    Ok(version)
}

/// Every installation of every plugin of the team, by (plugin, installation).
pub async fn list_team(
    principal: Principal,
    State(state): State<AppState>,
    Path(team): Path<String>,
    paging: Paging,
) -> Result<Page<EnablementView>, Problem> {
    authorize(&principal, &team)?;
    let now = OffsetDateTime::now_utc();
    let installations = state.records().team_installations(&team);
    let key = |e: &Enablement| (e.plugin_id.clone(), e.installation().to_owned());
    Ok(paging
        .page(installations, key)?
        .map(|e| view(&state, e, Routes::Installations, now)))
}

/// The team's installations of one plugin, by installation id; `[]` when it has none (or the plugin is
/// not registered).
pub async fn list_plugin(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id)): Path<(String, String)>,
    paging: Paging,
) -> Result<Page<EnablementView>, Problem> {
    authorize(&principal, &team)?;
    // A plugin that is not registered has no installations ([]); an id that cannot be one names nothing.
    check_plugin_id(&id).map_err(|e| Problem::not_found(format!("{id:?} is not a plugin id: {e}")))?;
    let now = OffsetDateTime::now_utc();
    let installations = state.records().plugin_installations(&team, &id);
    Ok(paging
        .page(installations, |e| e.installation().to_owned())?
        .map(|e| view(&state, e, Routes::Installations, now)))
}

/// One installation; 404 when the team has no such installation.
pub async fn show(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id, installation)): Path<(String, String, String)>,
) -> Result<Tagged<Json<EnablementView>>, Problem> {
    authorize(&principal, &team)?;
    check_installation(&installation)?;
    let key = installation_key(&team, &id, &installation);
    let (version, enablement) = state
        .store
        .get_versioned(&state.topics.enablements, &key)
        .and_then(|(version, value)| Some((version, Enablement::parse(key.as_bytes(), &value).ok()?)))
        .ok_or_else(|| no_such_installation(&id, &installation))?;
    let view = view(
        &state,
        enablement,
        Routes::Installations,
        OffsetDateTime::now_utc(),
    );
    Ok(Tagged(Some(version), Json(view)))
}

/// Creates or replaces an installation, and starts the backfill its body asks for: 200 with it as stored
/// (and the backfill's view under `backfill`).
pub async fn set(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id, installation)): Path<(String, String, String)>,
    Precondition(precondition): Precondition,
    RawBody(body): RawBody,
) -> Result<Tagged<Json<EnablementView>>, Problem> {
    authorize(&principal, &team)?;
    check_installation(&installation)?;
    let manifest = plugin(&state, &id)?;
    allow_installation(&manifest, &installation)?;
    let mut request: SetInstallation =
        serde_json::from_slice(&body).map_err(|e| unreadable("installation", &e))?;
    let backfill = request.backfill.take();
    // Compiling a filter blocks for a moment (it runs on the filter crate's compile thread).
    let (checked, owned) = (manifest.clone(), (team.clone(), installation.clone()));
    let enablement = tokio::task::spawn_blocking(move || {
        installation_record(&checked, &owned.0, &owned.1, request, now_rfc3339())
    })
    .await
    .map_err(|_| Problem::unavailable("checking the installation failed; retry"))?
    .map_err(|errors| Problem::invalid("the installation is invalid", errors))?;
    if let Some(body) = &backfill {
        check_body(&manifest, enablement.event_types.as_deref(), body, "/backfill")?;
    }
    let (state, manifest, enablement, backfill) = (&state, &manifest, &enablement, &backfill);
    let (team, id, installation) = (team.as_str(), id.as_str(), installation.as_str());
    changing(precondition, move || async move {
        let (read, previous) = read_installation(state, team, id, installation, precondition).await?;
        let (enablement, backfill, version) = store_installation(
            state,
            manifest,
            enablement.clone(),
            previous,
            read,
            backfill.clone(),
        )
        .await?;
        let mut answer = view(
            state,
            enablement,
            Routes::Installations,
            OffsetDateTime::now_utc(),
        );
        answer.backfill = backfill;
        Ok(Tagged(version, Json(answer)))
    })
    .await
}

/// Removes an installation: tombstones its enablement, then its config (so a failure half-way leaves a
/// config without routing, which the same DELETE finishes). 204; 404 when neither record exists.
pub async fn delete(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id, installation)): Path<(String, String, String)>,
    Precondition(precondition): Precondition,
) -> Result<StatusCode, Problem> {
    authorize(&principal, &team)?;
    check_installation(&installation)?;
    let key = installation_key(&team, &id, &installation);
    let exists = state.store.version(&state.topics.enablements, &key).is_some()
        || state.store.version(&state.topics.configs, &key).is_some();
    if !exists {
        return Err(no_such_installation(&id, &installation));
    }
    // The caller's precondition is on the installation (its enablement record, whose ETag GET shows).
    let enablements = &state.topics.enablements;
    if precondition == Expect::Any {
        state.write(enablements, &key, None).await?;
    } else {
        let (read, _) = read_installation(&state, &team, &id, &installation, precondition).await?;
        state
            .write_if(enablements, &key, None, unchanged_since(read), "the installation")
            .await?;
    }
    state.write(&state.topics.configs, &key, None).await?;
    tracing::info!(%team, plugin = %id, %installation, "installation removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the installation's config, as the v1 config route does for the default installation.
pub async fn set_config(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id, installation)): Path<(String, String, String)>,
    Precondition(precondition): Precondition,
    RawBody(body): RawBody,
) -> Result<Tagged<Json<ConfigView>>, Problem> {
    authorize(&principal, &team)?;
    check_installation(&installation)?;
    let Tagged(version, view) = configure(
        &state,
        &team,
        &id,
        &installation,
        &body,
        Routes::Installations,
        precondition,
    )
    .await?;
    Ok(Tagged(version, Json(view)))
}

/// The installation's config, secrets as set/unset only.
pub async fn show_config(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id, installation)): Path<(String, String, String)>,
) -> Result<Tagged<Json<ConfigView>>, Problem> {
    authorize(&principal, &team)?;
    check_installation(&installation)?;
    let Tagged(version, view) = read_config(&state, &team, &id, &installation, Routes::Installations).await?;
    Ok(Tagged(version, Json(view)))
}

/// 404 for an installation the team does not have.
pub(crate) fn no_such_installation(plugin: &str, installation: &str) -> Problem {
    Problem::not_found(format!(
        "this team has no installation {installation:?} of {plugin}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(installations: bool) -> PluginManifest {
        let json = serde_json::json!({"id": "sheets-export", "name": "Sheets", "version": "1.0.0",
            "events": ["response.submitted", "form.created"], "installations": installations});
        PluginManifest::parse("sheets-export", json.to_string().as_bytes()).unwrap()
    }

    fn body(json: serde_json::Value) -> SetInstallation {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_body_is_the_whole_installation_and_nothing_else() {
        assert_eq!(
            body(serde_json::json!({"enabled": true})),
            SetInstallation {
                enabled: true,
                event_types: None,
                form_ids: None,
                filter: None,
                backfill: None
            }
        );
        for bad in [
            serde_json::json!({"enabled": true, "installation": "x"}),
            serde_json::json!({"enabled": "yes"}),
            serde_json::json!({"form_ids": ["a"]}),
            serde_json::json!({"enabled": true, "filter": 3}),
            serde_json::json!({"enabled": true, "backfill": {"since": "2026-11-01T00:00:00Z", "x": 1}}),
        ] {
            assert!(
                serde_json::from_value::<SetInstallation>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn records_of_named_and_default_installations() {
        let named = installation_record(
            &manifest(true),
            "acme",
            "forms-a",
            body(
                serde_json::json!({"enabled": true, "event_types": [], "form_ids": ["f-1"],
                                    "filter": "true"}),
            ),
            "2026-11-22T09:55:00Z".into(),
        )
        .unwrap();
        assert_eq!(named.key(), "acme/sheets-export/forms-a");
        assert_eq!(
            serde_json::to_string(&named).unwrap(),
            r#"{"team_id":"acme","plugin_id":"sheets-export","installation":"forms-a","enabled":true,"form_ids":["f-1"],"filter":"true","updated_at":"2026-11-22T09:55:00Z"}"#
        );
        let default = installation_record(
            &manifest(false),
            "acme",
            "default",
            body(serde_json::json!({"enabled": false, "form_ids": [], "filter": "  "})),
            "2026-11-22T09:55:00Z".into(),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&default).unwrap(),
            r#"{"team_id":"acme","plugin_id":"sheets-export","enabled":false,"updated_at":"2026-11-22T09:55:00Z"}"#,
            "the default installation's record is a v1 record; empty limits are absent"
        );
    }

    #[test]
    fn every_error_of_a_body_with_its_pointer() {
        let too_many: Vec<String> = (0..=FORM_IDS_MAX).map(|i| format!("f-{i}")).collect();
        assert_eq!(form_id_errors(&too_many)[0].pointer, "/form_ids");
        assert!(form_id_errors(&too_many[..FORM_IDS_MAX]).is_empty());
        let errors = installation_record(
            &manifest(true),
            "acme",
            "forms-a",
            body(
                serde_json::json!({"enabled": true, "event_types": ["form.updated"],
                                    "form_ids": ["ok", "", "a\u{7}b", "x".repeat(FORM_ID_MAX_LEN + 1)],
                                    "filter": "a".repeat(FILTER_MAX_BYTES + 1)}),
            ),
            "2026-11-22T09:55:00Z".into(),
        )
        .unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/event_types/0",
                "/form_ids/1",
                "/form_ids/2",
                "/form_ids/3",
                "/filter"
            ]
        );
        assert!(errors[4].detail.contains("at most 1024"), "{}", errors[4].detail);
    }

    #[test]
    fn named_installations_need_the_manifests_consent() {
        assert!(allow_installation(&manifest(false), "default").is_ok());
        assert!(allow_installation(&manifest(true), "forms-a").is_ok());
        let refused = allow_installation(&manifest(false), "forms-a").unwrap_err();
        assert_eq!(refused.status, 409);
        assert!(
            refused.detail.contains("installations: true"),
            "{}",
            refused.detail
        );
    }

    #[test]
    fn installation_ids_in_paths() {
        assert!(check_installation("forms-a").is_ok());
        assert!(check_installation("default").is_ok());
        for bad in ["Forms", "", "a_b", "1a"] {
            assert_eq!(check_installation(bad).unwrap_err().status, 404, "{bad}");
        }
        assert_eq!(describe("sms", "default"), "sms");
        assert_eq!(describe("sms", "forms-a"), "sms (installation forms-a)");
    }
}
