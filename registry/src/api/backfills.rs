//! A team's backfills (contract sections 7.5 and 10.5): start one for an installation
//! (`POST .../plugins/{id}/backfills` for the default installation, `POST .../plugins/{id}/installations/
//! {installation}/backfills`, or a `backfill` field in the enablement and installation `PUT`s), list them
//! (`GET` on the same paths, `GET /v1/teams/{team}/backfills`), read one and cancel it
//! (`GET`/`DELETE /v1/teams/{team}/backfills/{backfill}`).
//!
//! ```text
//!   POST ── role (403) · team id (404) · installation id (404) · plugin (404) · installation (404)
//!    │      · body (422) · one at a time (409) · fields (422) · retention (422, or since moved up; 503)
//!    ├─► switchyard.backfills    <id>            Backfill (cancel_requested later set by DELETE)
//!    └─► switchyard.enablements  <installation>  the same record with backfill = the request ──► router
//!   GET  ◄── backfills + switchyard.backfill-progress (the router's) + whether the enablement still holds it
//!   release_holds (every 500 ms, crate::app): progress live ─► the enablement without backfill
//! ```
//!
//! Same roles as the other team routes: an admin or the team itself.

use std::cmp::Reverse;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use switchyard_schemas::backfill::{Backfill, Progress, check_id};
use switchyard_schemas::control::{Enablement, PluginManifest};
use switchyard_schemas::ids::{DEFAULT_INSTALLATION, check_plugin_id};
use switchyard_schemas::times::epoch_ms;

use crate::api::installations::{
    check_installation, check_room, describe, no_such_installation, store_enablement,
};
use crate::api::paging::{Page, Paging};
use crate::api::teams::{authorize, plugin, unreadable};
use crate::api::versions::{Precondition, Tagged, changing};
use crate::api::{AppState, RawBody};
use crate::auth::Principal;
use crate::backfills::request::{self, Retained};
use crate::backfills::view::{self, BackfillView, Warning};
use crate::backfills::{BackfillBody, release};
use crate::problem::Problem;
use crate::records::{Records, now_rfc3339};
use crate::store::Expect;

/// A backfill that passed every check, not yet written: its record and the answer's warning.
pub(crate) struct Planned {
    backfill: Backfill,
    warning: Option<Warning>,
}

/// The checks every way of starting a backfill shares. `enablement` is the installation as it will be
/// stored (its event types, else its plugin's, are what the request may ask for), `previous` as it is
/// stored now (a backfill it carries is a 409: one at a time), and `at` the body's place in the request,
/// for the pointers of its field errors. Then the retention check: 422 with `earliest_available`, or
/// `since` moved up to it, or 503 when the oldest event cannot be read.
pub(crate) async fn plan(
    state: &AppState,
    manifest: &PluginManifest,
    enablement: &Enablement,
    previous: Option<&Enablement>,
    body: BackfillBody,
    at: &str,
) -> Result<Planned, Problem> {
    if let Some(running) = previous.and_then(|p| p.backfill.as_ref()) {
        return Err(Problem::conflict(format!(
            "the backfill {} of {} is not finished; wait for it or cancel it (DELETE \
             /v1/teams/{}/backfills/{}) before asking for another",
            running.id,
            describe(&enablement.plugin_id, enablement.installation()),
            enablement.team_id,
            running.id
        )));
    }
    let now = now_rfc3339();
    let subscribed = subscribed(manifest, enablement.event_types.as_deref());
    let checked = request::check(body, subscribed, epoch_ms(&now).unwrap_or(0), at)
        .map_err(|errors| Problem::invalid("the backfill is invalid", errors))?;
    let earliest = state
        .retention
        .earliest_ms(&enablement.team_id)
        .await
        .map_err(|error| {
            tracing::warn!(%error, team = %enablement.team_id, "the backfill retention check failed");
            Problem::unavailable(
                "the oldest event of the team's partition of core.events could not be read; retry",
            )
        })?;
    let retained = request::retention(&checked, earliest);
    let warning = match &retained {
        Retained::Refused(earliest) => {
            return Err(Problem::invalid(
                "the backfill reaches further back than core.events still holds events",
                vec![request::refused(&checked, earliest, at)],
            )
            .with_extension("earliest_available", earliest.as_str()));
        }
        Retained::Adjusted(earliest) => Some(Warning::since_before_retention(earliest.clone())),
        Retained::Within => None,
    };
    let id = uuid::Uuid::now_v7().to_string();
    let backfill = Backfill {
        team_id: enablement.team_id.clone(),
        plugin_id: enablement.plugin_id.clone(),
        installation: enablement.installation.clone(),
        request: request::request(id, checked, &retained),
        requested_at: now.clone(),
        updated_at: now,
    };
    Ok(Planned { backfill, warning })
}

/// The event types a backfill may ask for: the installation's `event_types`, else its plugin's.
fn subscribed<'a>(manifest: &'a PluginManifest, event_types: Option<&'a [String]>) -> &'a [String] {
    match event_types {
        Some(types) if !types.is_empty() => types,
        _ => &manifest.events,
    }
}

/// A backfill body's own checks, for an installation that will subscribe to `event_types`, before any
/// stored state or precondition is read: an invalid body is a 422 whatever its `If-Match` says (RFC 9110
/// section 13.2.1: preconditions are ignored when the request would fail without them). [`plan`] checks
/// the same again against the stored state.
pub(crate) fn check_body(
    manifest: &PluginManifest,
    event_types: Option<&[String]>,
    body: &BackfillBody,
    at: &str,
) -> Result<(), Problem> {
    let now = epoch_ms(&now_rfc3339()).unwrap_or(0);
    request::check(body.clone(), subscribed(manifest, event_types), now, at)
        .map(drop)
        .map_err(|errors| Problem::invalid("the backfill is invalid", errors))
}

/// Writes a planned backfill: its record, then `enablement` carrying its request (the record first, so
/// that the API knows of every backfill the router may run). `exists` says whether the installation is
/// stored already; a new one that would be one too many is refused before anything is written.
pub(crate) async fn commit(
    state: &AppState,
    planned: Planned,
    mut enablement: Enablement,
    read: Option<i64>,
) -> Result<(Enablement, BackfillView, Option<i64>), Problem> {
    check_room(state, &enablement, read.is_some())?;
    let Planned { backfill, warning } = planned;
    write_backfill(state, &backfill).await?;
    enablement.backfill = Some(backfill.request.clone());
    let version = match store_enablement(state, &enablement, read).await {
        Ok(version) => version,
        Err(problem) => {
            // The installation changed meanwhile (or the write failed): the request never held it, so
            // its record goes too, rather than stay pending.
            let _ = state
                .write(&state.topics.backfills, &backfill.request.id, None)
                .await;
            return Err(problem);
        }
    };
    tracing::info!(
        team = %backfill.team_id,
        plugin = %backfill.plugin_id,
        installation = backfill.installation(),
        backfill = %backfill.request.id,
        since = %backfill.request.since,
        "backfill requested"
    );
    Ok((enablement, view::view(backfill, None, true, warning), version))
}

/// Stores an installation from a `PUT`, with the backfill its body asks for, if any ([`plan`] and
/// [`commit`], pointers under `/backfill`); without one it keeps the backfill the installation carries.
pub(crate) async fn store_installation(
    state: &AppState,
    manifest: &PluginManifest,
    mut enablement: Enablement,
    previous: Option<Enablement>,
    read: Option<i64>,
    backfill: Option<BackfillBody>,
) -> Result<(Enablement, Option<BackfillView>, Option<i64>), Problem> {
    let Some(body) = backfill else {
        // A backfill in progress keeps holding the installation across a change of it.
        enablement.backfill = previous.and_then(|p| p.backfill);
        let version = store_enablement(state, &enablement, read).await?;
        return Ok((enablement, None, version));
    };
    let planned = plan(state, manifest, &enablement, previous.as_ref(), body, "/backfill").await?;
    let (enablement, view, version) = commit(state, planned, enablement, read).await?;
    Ok((enablement, Some(view), version))
}

async fn write_backfill(state: &AppState, backfill: &Backfill) -> Result<(), Problem> {
    let value =
        serde_json::to_vec(backfill).map_err(|_| Problem::unavailable("the backfill could not be stored"))?;
    state
        .write(&state.topics.backfills, &backfill.request.id, Some(&value))
        .await
}

/// The answer to a started backfill: 202, `Location` naming it, its view.
type Started = (StatusCode, [(header::HeaderName, String); 1], Json<BackfillView>);

/// Starts a backfill of the team's default installation of a plugin.
pub async fn start_default(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Started, Problem> {
    start_on(&state, &principal, &team, &id, DEFAULT_INSTALLATION, &body).await
}

/// Starts a backfill of one of the team's installations of a plugin.
pub async fn start(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id, installation)): Path<(String, String, String)>,
    RawBody(body): RawBody,
) -> Result<Started, Problem> {
    start_on(&state, &principal, &team, &id, &installation, &body).await
}

async fn start_on(
    state: &AppState,
    principal: &Principal,
    team: &str,
    id: &str,
    installation: &str,
    body: &[u8],
) -> Result<Started, Problem> {
    authorize(principal, team)?;
    check_installation(installation)?;
    let manifest = &plugin(state, id)?;
    let body: &BackfillBody = &serde_json::from_slice(body).map_err(|e| unreadable("backfill", &e))?;
    // Computed again if the installation changes before the request is written into it.
    changing(Expect::Any, move || async move {
        let (read, stored) = state
            .records()
            .enablement_versioned(team, id, installation)
            .map(|(version, stored)| (Some(version), stored))
            .ok_or_else(|| no_such_installation(id, installation))?;
        let planned = plan(state, manifest, &stored, Some(&stored), body.clone(), "").await?;
        let enablement = Enablement {
            updated_at: now_rfc3339(),
            ..stored
        };
        let (_, view, _) = commit(state, planned, enablement, read).await?;
        let location = format!("/v1/teams/{team}/backfills/{}", view.id);
        Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(view)))
    })
    .await
}

/// The team's backfills of every plugin, newest first.
pub async fn list_team(
    principal: Principal,
    State(state): State<AppState>,
    Path(team): Path<String>,
    paging: Paging,
) -> Result<Page<BackfillView>, Problem> {
    authorize(&principal, &team)?;
    views(&state, &team, &paging, |_| true)
}

/// The backfills of the team's default installation of a plugin, newest first.
pub async fn list_default(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id)): Path<(String, String)>,
    paging: Paging,
) -> Result<Page<BackfillView>, Problem> {
    list_of(&state, &principal, &team, &id, DEFAULT_INSTALLATION, &paging)
}

/// The backfills of one of the team's installations of a plugin, newest first.
pub async fn list_installation(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id, installation)): Path<(String, String, String)>,
    paging: Paging,
) -> Result<Page<BackfillView>, Problem> {
    list_of(&state, &principal, &team, &id, &installation, &paging)
}

/// An installation's backfills; `[]` for one that has none (or no longer exists).
fn list_of(
    state: &AppState,
    principal: &Principal,
    team: &str,
    id: &str,
    installation: &str,
    paging: &Paging,
) -> Result<Page<BackfillView>, Problem> {
    authorize(principal, team)?;
    check_plugin_id(id).map_err(|e| Problem::not_found(format!("{id:?} is not a plugin id: {e}")))?;
    check_installation(installation)?;
    views(state, team, paging, |b| {
        b.plugin_id == id && b.installation() == installation
    })
}

/// One of the team's backfills.
pub async fn show(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, backfill)): Path<(String, String)>,
) -> Result<Tagged<Json<BackfillView>>, Problem> {
    authorize(&principal, &team)?;
    let records = state.records();
    let record = team_backfill(&records, &team, &backfill)?;
    let version = state.store.version(&state.topics.backfills, &backfill);
    Ok(Tagged(version, Json(view_of(&records, record, None))))
}

/// Cancels one of the team's backfills while it is pending or running: `cancel_requested` in its record,
/// and in the enablement's request while the enablement carries it. 202 with the view; again while it is
/// still pending or running (a repeat writes only what is missing); 409 once it has ended. The caller's
/// precondition is on the backfill's record (the ETag its GET shows).
pub async fn cancel(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, backfill)): Path<(String, String)>,
    Precondition(precondition): Precondition,
) -> Result<impl IntoResponse, Problem> {
    authorize(&principal, &team)?;
    let (state, team, backfill) = (&state, team.as_str(), backfill.as_str());
    changing(precondition, move || async move {
        team_backfill(&state.records(), team, backfill)?;
        let (read, value) = state
            .read_for_change(&state.topics.backfills, backfill, precondition, "the backfill")
            .await?
            .ok_or_else(|| Problem::not_found(format!("this team has no backfill {backfill}")))?;
        let mut record = Backfill::parse(backfill.as_bytes(), &value)
            .map_err(|_| Problem::not_found(format!("this team has no backfill {backfill}")))?;
        let (progress, held) = observe(&state.records(), &record);
        let current = view::state_of(&record.request, progress.as_ref(), held.is_some());
        if !current.is_active() {
            return Err(Problem::conflict(format!(
                "the backfill {backfill} is {}; only a pending or running backfill can be cancelled",
                current.as_str()
            )));
        }
        let mut version = Some(read);
        if !record.request.cancel_requested {
            record.request.cancel_requested = true;
            record.updated_at = now_rfc3339();
            let value = serde_json::to_vec(&record)
                .map_err(|_| Problem::unavailable("the backfill could not be stored"))?;
            version = state
                .write_if(
                    &state.topics.backfills,
                    backfill,
                    Some(&value),
                    Expect::Version(read),
                    "the backfill",
                )
                .await?;
        }
        let held = state
            .records()
            .enablement_versioned(&record.team_id, &record.plugin_id, record.installation())
            .filter(|(_, e)| e.backfill.as_ref().is_some_and(|r| r.id == record.request.id));
        if let Some((held_version, mut enablement)) = held
            && let Some(request) = enablement.backfill.as_mut()
            && !request.cancel_requested
        {
            request.cancel_requested = true;
            enablement.updated_at = now_rfc3339();
            store_enablement(state, &enablement, Some(held_version)).await?;
        }
        tracing::info!(%team, %backfill, "backfill cancel requested");
        let records = state.records();
        Ok(Tagged(
            version,
            (StatusCode::ACCEPTED, Json(view_of(&records, record, None))),
        ))
    })
    .await
}

/// The team's backfill `id`, or 404 (also for an id that cannot be one, and for another team's).
fn team_backfill(records: &Records<'_>, team: &str, id: &str) -> Result<Backfill, Problem> {
    check_id(id).map_err(|e| Problem::not_found(format!("{id:?} is not a backfill id: {e}")))?;
    records
        .backfill(id)
        .filter(|b| b.team_id == team)
        .ok_or_else(|| Problem::not_found(format!("this team has no backfill {id}")))
}

/// What a backfill's view needs from the store besides its record: its reported progress, and its
/// installation's enablement if that still carries it.
fn observe(records: &Records<'_>, backfill: &Backfill) -> (Option<Progress>, Option<Enablement>) {
    let progress = records.progress(&backfill.request.id);
    let held = records
        .enablement(&backfill.team_id, &backfill.plugin_id, backfill.installation())
        .filter(|e| e.backfill.as_ref().is_some_and(|r| r.id == backfill.request.id));
    (view::reported(&progress).cloned(), held)
}

fn view_of(records: &Records<'_>, backfill: Backfill, warning: Option<Warning>) -> BackfillView {
    let (progress, held) = observe(records, &backfill);
    view::view(backfill, progress.as_ref(), held.is_some(), warning)
}

/// The views of the page of the team's backfills that `keep` keeps, newest first (UUID v7 ids order
/// ties).
fn views(
    state: &AppState,
    team: &str,
    paging: &Paging,
    keep: impl Fn(&Backfill) -> bool,
) -> Result<Page<BackfillView>, Problem> {
    let records = state.records();
    let mut backfills = records.team_backfills(team);
    backfills.retain(keep);
    let newest_first = |x: &Backfill| Reverse((epoch_ms(&x.requested_at), x.request.id.clone()));
    backfills.sort_by_key(newest_first);
    Ok(paging
        .page(backfills, newest_first)?
        .map(|b| view_of(&records, b, None)))
}

/// Sets `switchyard_registry_backfills{state}` from every backfill of every team.
pub(crate) fn refresh_gauge(state: &AppState) {
    let records = state.records();
    let states = records.backfills().into_iter().map(|b| {
        let (progress, held) = observe(&records, &b);
        view::state_of(&b.request, progress.as_ref(), held.is_some())
    });
    for (backfill_state, count) in view::count(states) {
        state
            .metrics
            .backfills
            .with_label_values(&[backfill_state.as_str()])
            .set(count as i64);
    }
}

/// One round of letting go: every installation whose backfill's progress has `live_from` is written again
/// without `backfill` ([`release::released`]). An installation changed since it was read is left for the
/// next round rather than overwritten with the stale copy. Idempotent: replicas doing it at once write the
/// same installation twice at worst.
pub(crate) async fn release_holds(state: &AppState) {
    let held = state.records().held_installations();
    for enablement in held {
        let Some(request) = enablement.backfill.as_ref() else {
            continue;
        };
        let progress = state.records().progress(&request.id);
        let Some(released) = release::released(&enablement, &progress, now_rfc3339()) else {
            continue;
        };
        let current = state.records().enablement_versioned(
            &enablement.team_id,
            &enablement.plugin_id,
            enablement.installation(),
        );
        let Some((version, current)) = current else {
            continue;
        };
        if current != enablement {
            continue;
        }
        let Ok(value) = serde_json::to_vec(&released) else {
            continue;
        };
        // Only over the record read: a change through any replica since then wins, and this
        // installation is looked at again next round.
        if state
            .write_if(
                &state.topics.enablements,
                &released.key(),
                Some(&value),
                Expect::Version(version),
                "the installation",
            )
            .await
            .is_ok()
        {
            let state_name = view::reported(&progress).map_or("", |p| p.state.as_str());
            tracing::info!(
                team = %released.team_id,
                plugin = %released.plugin_id,
                installation = released.installation(),
                backfill = %request.id,
                state = state_name,
                "backfill handed over to live routing: the installation is no longer held"
            );
        }
    }
}
