//! A team's backfills in the console: every backfill with its state and progress (the page refreshes the
//! table every two seconds while one is pending or running, when scripts run), starting one from an
//! installation's page, and cancelling one.

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_schemas::ids::check_team_id;

use super::api::{Api, Condition, OrPage};
use super::layout::{self, Section};
use super::team::bad_ids;
use super::{CSRF_FIELD, Caller, Console, Page, Posted};

/// A backfill as `GET /v1/teams/{team}/backfills` shows it.
#[derive(Debug, Clone, Deserialize)]
struct Backfill {
    id: String,
    plugin_id: String,
    installation: String,
    since: String,
    state: String,
    #[serde(default)]
    progress: Option<Progress>,
    #[serde(default)]
    eta_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Progress {
    scanned: u64,
    matched: u64,
    written: u64,
    #[serde(default)]
    error: Option<String>,
}

/// The list's query: set after starting a backfill whose `since` the API moved up to the retention start.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    since_moved_to: Option<String>,
}

fn active(state: &str) -> bool {
    matches!(state, "pending" | "running")
}

/// `GET /teams/{team}/backfills`.
pub async fn list(
    caller: Caller,
    State(console): State<Console>,
    Path(team): Path<String>,
    Query(query): Query<ListQuery>,
) -> Page {
    if check_team_id(team.as_bytes()).is_err() {
        return Err(layout::not_found(&console, &caller));
    }
    let api = Api::new(&console.api, &caller.principal);
    let backfills = api
        .get::<Vec<Backfill>>(&format!("/v1/teams/{team}/backfills"))
        .await
        .or_page(&console, &caller)?;
    let refresh = backfills.iter().any(|b| active(&b.state));
    let body = html! {
        @if let Some(moved) = &query.since_moved_to {
            p.notice role="status" #since-moved {
                "The backfill started at " (moved) ", the oldest event core.events still keeps: the date asked for is older than its retention."
            }
        }
        p { "Past events delivered to an installation, before its live ones. Start one from an installation's " em { "Routing" } " page." }
        div #backfills data-refresh=[refresh.then_some("2000")] aria-live="polite" {
            @if backfills.is_empty() {
                p { "No backfill yet." }
            } @else {
                div.table-wrap { table {
                    caption.visually-hidden { "Backfills of team " (team) }
                    thead { tr {
                        th scope="col" { "Plugin (installation)" } th scope="col" { "Since" } th scope="col" { "State" }
                        th scope="col" { "Written / matched / scanned" } th scope="col" { "Time left" } th scope="col" { "Actions" }
                    } }
                    tbody { @for backfill in &backfills {
                        tr #{"backfill-" (backfill.id)} {
                            th scope="row" { (backfill.plugin_id) " (" (backfill.installation) ")" }
                            td { (backfill.since) }
                            td.state-cell { (backfill.state)
                                @if let Some(error) = backfill.progress.as_ref().and_then(|p| p.error.as_deref()) { br; span.hint { (error) } } }
                            td { @if let Some(p) = &backfill.progress { (p.written) " / " (p.matched) " / " (p.scanned) } @else { "not started" } }
                            td { @if let Some(eta) = backfill.eta_seconds { "about " (eta) " s" } @else { "—" } }
                            td { @if active(&backfill.state) {
                                form method="post" action=(console.url(&format!("/teams/{team}/backfills/{}/cancel", backfill.id))) data-confirm="Cancel this backfill? History after the point it reached is not delivered." {
                                    input type="hidden" name=(CSRF_FIELD) value=(caller.csrf);
                                    button.secondary type="submit" aria-label=(format!("Cancel the backfill of {}", backfill.plugin_id)) { "Cancel" }
                                }
                            } }
                        }
                    } }
                } }
            }
        }
    };
    Ok(layout::page(&console, Some(&caller), Section::Backfills, "Backfills", body).into_response())
}

/// `POST /teams/{team}/plugins/{id}/installations/{installation}/backfills` (`since` = a date): starts a
/// backfill from that day (or from the oldest event still kept, with the API's warning).
pub async fn start(
    State(console): State<Console>,
    Path((team, id, installation)): Path<(String, String, String)>,
    posted: Posted,
) -> Page {
    let caller = &posted.caller;
    bad_ids(&console, caller, &team, Some((&id, &installation)))?;
    let since = posted.get("since").unwrap_or_default().trim();
    let since = if since.len() == 10 {
        format!("{since}T00:00:00Z")
    } else {
        since.to_owned()
    };
    let api = Api::new(&console.api, &caller.principal);
    let path = format!("/v1/teams/{team}/plugins/{id}/installations/{installation}/backfills");
    let body = json!({"since": since, "on_retention": "earliest"});
    let started: Value = api
        .send(Method::POST, &path, Some(&body), Condition::Always)
        .await
        .or_page(&console, caller)?;
    // When the history asked for is older than what core.events keeps, the API moved `since` up and said so.
    let moved = started
        .pointer("/warning/since_adjusted_to")
        .and_then(Value::as_str)
        .map(|to| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("since_moved_to", to);
            format!("?{}", query.finish())
        })
        .unwrap_or_default();
    Ok(Redirect::to(&console.url(&format!("/teams/{team}/backfills{moved}"))).into_response())
}

/// `POST /teams/{team}/backfills/{backfill}/cancel`.
pub async fn cancel(
    State(console): State<Console>,
    Path((team, backfill)): Path<(String, String)>,
    posted: Posted,
) -> Page {
    let caller = &posted.caller;
    if check_team_id(team.as_bytes()).is_err() || uuid::Uuid::parse_str(&backfill).is_err() {
        return Err(layout::not_found(&console, caller));
    }
    let api = Api::new(&console.api, &caller.principal);
    let path = format!("/v1/teams/{team}/backfills/{backfill}");
    match api
        .send::<Value>(Method::DELETE, &path, None, Condition::Always)
        .await
    {
        Ok(_) => Ok(Redirect::to(&console.url(&format!("/teams/{team}/backfills"))).into_response()),
        Err(refusal) => Err(layout::refusal(&console, caller, &refusal)),
    }
}
