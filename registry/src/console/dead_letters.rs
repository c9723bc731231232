//! Dead letters in the console: a team's per plugin (list, one whole, replay one, a selection or all,
//! always after a dry run that says what would be replayed), and a plugin's across every team it serves
//! (read only: replaying is the team's decision, or an admin's from the team's pages).
//!
//! Replaying writes the dead letters back to the plugin's topic (`POST .../dead-letters/replay`); the
//! plugin sees each again with the same `webhook-id`, so one that de-duplicates does not act twice.

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_schemas::ids::{check_plugin_id, check_team_id};

use super::api::{Api, Condition, OrPage};
use super::layout::{self, Section};
use super::team::Installation;
use super::{CSRF_FIELD, Caller, Console, Page, Posted};

/// A dead letter as the API lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Letter {
    /// `<partition>-<offset>`.
    pub id: String,
    /// Its team.
    #[serde(default)]
    pub team: Option<String>,
    /// `ce_id`.
    #[serde(default)]
    pub event_id: Option<String>,
    /// `ce_type`.
    #[serde(default)]
    pub event_type: Option<String>,
    /// The installation; `None` for the default one.
    #[serde(default)]
    pub installation: Option<String>,
    /// The reason code.
    #[serde(default)]
    pub reason: Option<String>,
    /// One sentence.
    #[serde(default)]
    pub detail: Option<String>,
    /// Calls made.
    #[serde(default)]
    pub attempts: Option<u64>,
    /// First failure, RFC 3339.
    #[serde(default)]
    pub first_failure: Option<String>,
    /// Last failure, RFC 3339.
    #[serde(default)]
    pub last_failure: Option<String>,
    /// When it was dead-lettered.
    #[serde(default)]
    pub dead_lettered_at: Option<String>,
    /// The record the worker consumed.
    #[serde(default)]
    pub source: Option<String>,
    /// Set on a dead-lettered replay.
    #[serde(default)]
    pub replayed_from: Option<String>,
}

/// The filter of a team's list, and of its "replay all that match": the API's `installation` and `since`.
#[derive(Debug, Default, Deserialize)]
pub struct LetterFilter {
    #[serde(default)]
    installation: Option<String>,
    #[serde(default)]
    since: Option<String>,
}

impl LetterFilter {
    /// The filters that are set, as `&name=value` pairs of a query string.
    fn query(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(self.pairs());
        let query = query.finish();
        if query.is_empty() {
            query
        } else {
            format!("&{query}")
        }
    }

    /// The filters that are set, as query or form pairs.
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [("installation", &self.installation), ("since", &self.since)]
            .into_iter()
            .filter_map(|(name, value)| {
                Some((name, value.as_deref().map(str::trim).filter(|v| !v.is_empty())?))
            })
            .collect()
    }
}

/// A dead letter whole.
#[derive(Debug, Clone, Deserialize)]
struct LetterDetail {
    #[serde(flatten)]
    letter: Letter,
    #[serde(default)]
    headers: Vec<Header>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Debug, Clone, Deserialize)]
struct Header {
    name: String,
    value: Option<String>,
    encoding: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Payload {
    encoding: String,
    value: Value,
}

fn text(value: Option<&str>) -> &str {
    value.unwrap_or("—")
}

/// The dead letters as a table; with `select` (the form's id), each row has a checkbox of that form.
pub fn letters_table(
    console: &Console,
    letters: &[Letter],
    select: Option<&str>,
    href: impl Fn(&Letter) -> String,
) -> Markup {
    let teams = letters.iter().any(|l| l.team.is_some()) && select.is_none();
    html! {
        @if letters.is_empty() {
            p #no-dead-letters { "No dead letters." }
        } @else {
            div.table-wrap { table.letters {
                caption.visually-hidden { "Dead letters, newest first" }
                thead { tr {
                    @if select.is_some() { th scope="col" { span.visually-hidden { "Select" } } }
                    th scope="col" { "Event" }
                    @if teams { th scope="col" { "Team" } }
                    th scope="col" { "Installation" } th scope="col" { "Reason" } th scope="col" { "Attempts" }
                    th scope="col" { "First failure" } th scope="col" { "Last failure" }
                } }
                tbody { @for letter in letters {
                    tr #{"letter-" (letter.id)} {
                        @if let Some(form) = select {
                            td { input type="checkbox" name="letters" value=(letter.id) form=(form)
                                id={"select-" (letter.id)} aria-label=(format!("Select dead letter {}", letter.id)); }
                        }
                        th scope="row" {
                            a href=(console.url(&href(letter))) { (text(letter.event_type.as_deref())) " " (text(letter.event_id.as_deref())) }
                            @if letter.replayed_from.is_some() { " " span.badge.degraded { "failed again after a replay" } }
                        }
                        @if teams { td { (text(letter.team.as_deref())) } }
                        td { (letter.installation.as_deref().unwrap_or("default")) }
                        td { code { (text(letter.reason.as_deref())) } @if let Some(detail) = &letter.detail { br; span.hint { (detail) } } }
                        td { @if let Some(attempts) = letter.attempts { (attempts) } @else { "—" } }
                        td { (text(letter.first_failure.as_deref())) }
                        td { (text(letter.last_failure.as_deref().or(letter.dead_lettered_at.as_deref()))) }
                    }
                } }
            } }
        }
    }
}

fn bad_ids(console: &Console, caller: &Caller, team: Option<&str>, plugin: &str) -> Result<(), Response> {
    let valid = check_plugin_id(plugin).is_ok() && team.is_none_or(|t| check_team_id(t.as_bytes()).is_ok());
    if valid {
        Ok(())
    } else {
        Err(layout::not_found(console, caller))
    }
}

/// `GET /teams/{team}/dead-letters`: the team's plugins, each a link to its dead letters.
pub async fn team_plugins(caller: Caller, State(console): State<Console>, Path(team): Path<String>) -> Page {
    if check_team_id(team.as_bytes()).is_err() {
        return Err(layout::not_found(&console, &caller));
    }
    let api = Api::new(&console.api, &caller.principal);
    let installed = api
        .get::<Vec<Installation>>(&format!("/v1/teams/{team}/installations"))
        .await
        .or_page(&console, &caller)?;
    let mut plugins: Vec<&str> = installed.iter().map(|i| i.plugin_id.as_str()).collect();
    plugins.dedup();
    let body = html! {
        p { "Events a plugin could not handle after its retries. Pick a plugin to see its dead letters and replay them once the cause is fixed." }
        @if plugins.is_empty() { p { "The team has no plugin installed." } }
        ul { @for plugin in &plugins {
            li { a href=(console.url(&format!("/teams/{team}/plugins/{plugin}/dead-letters"))) { (plugin) } }
        } }
    };
    Ok(layout::page(
        &console,
        Some(&caller),
        Section::DeadLetters,
        "Dead letters",
        body,
    )
    .into_response())
}

/// `GET /teams/{team}/plugins/{id}/dead-letters`.
pub async fn team_list(
    caller: Caller,
    State(console): State<Console>,
    Path((team, id)): Path<(String, String)>,
    Query(filter): Query<LetterFilter>,
) -> Page {
    bad_ids(&console, &caller, Some(&team), &id)?;
    let api = Api::new(&console.api, &caller.principal);
    let path = format!(
        "/v1/teams/{team}/plugins/{id}/dead-letters?limit=200{}",
        filter.query()
    );
    let letters = api.get::<Vec<Letter>>(&path).await.or_page(&console, &caller)?;
    let action = console.url(&format!("/teams/{team}/plugins/{id}/dead-letters/replay"));
    let body = html! {
        p { "Newest first (at most 200). Replaying puts an event back on " (id) "'s topic: a dry run shows what would be replayed first." }
        form.card.inline-form method="get" #letter-filter {
            label for="filter-installation" { "Installation" }
            input #filter-installation type="text" name="installation" value=(filter.installation.as_deref().unwrap_or_default()) autocomplete="off" size="12";
            label for="filter-since" { "Dead-lettered since (RFC 3339)" }
            input #filter-since type="text" name="since" value=(filter.since.as_deref().unwrap_or_default()) placeholder="2026-12-01T00:00:00Z" autocomplete="off" size="22";
            button.secondary type="submit" { "Filter" }
        }
        @if !letters.is_empty() {
            div.actions {
                form method="post" action=(action) #replay-selected {
                    input type="hidden" name=(CSRF_FIELD) value=(caller.csrf);
                    button type="submit" { "Replay selected…" }
                }
                form method="post" action=(action) #replay-all {
                    input type="hidden" name=(CSRF_FIELD) value=(caller.csrf);
                    input type="hidden" name="all" value="true";
                    @for (name, value) in filter.pairs() { input type="hidden" name=(name) value=(value); }
                    button.secondary type="submit" {
                        @if filter.pairs().is_empty() { "Replay all…" } @else { "Replay all that match…" }
                    }
                }
            }
        }
        (letters_table(&console, &letters, Some("replay-selected"), |letter| {
            format!("/teams/{team}/plugins/{id}/dead-letters/{}", letter.id)
        }))
    };
    let title = format!("Dead letters of {id}");
    Ok(layout::page(&console, Some(&caller), Section::DeadLetters, &title, body).into_response())
}

/// `GET /teams/{team}/plugins/{id}/dead-letters/{letter}`.
pub async fn team_letter(
    caller: Caller,
    State(console): State<Console>,
    Path((team, id, letter)): Path<(String, String, String)>,
) -> Page {
    bad_ids(&console, &caller, Some(&team), &id)?;
    let path = format!("/v1/teams/{team}/plugins/{id}/dead-letters/{}", encode(&letter));
    let replay = console.url(&format!("/teams/{team}/plugins/{id}/dead-letters/replay"));
    letter_page(&console, &caller, &path, Some(&replay), Section::DeadLetters).await
}

/// `GET /plugins/{id}/dead-letters/{letter}`: for an admin or the plugin itself.
pub async fn plugin_letter(
    caller: Caller,
    State(console): State<Console>,
    Path((id, letter)): Path<(String, String)>,
) -> Page {
    bad_ids(&console, &caller, None, &id)?;
    let path = format!("/v1/plugins/{id}/dead-letters/{}", encode(&letter));
    let section = if caller.principal.is_admin() {
        Section::Fleet
    } else {
        Section::Plugin
    };
    letter_page(&console, &caller, &path, None, section).await
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

async fn letter_page(
    console: &Console,
    caller: &Caller,
    path: &str,
    replay: Option<&str>,
    section: Section,
) -> Page {
    let api = Api::new(&console.api, &caller.principal);
    let detail = api.get::<LetterDetail>(path).await.or_page(console, caller)?;
    let letter = &detail.letter;
    let payload = detail
        .payload
        .as_ref()
        .map(|p| match (p.encoding.as_str(), &p.value) {
            ("json", value) => serde_json::to_string_pretty(value).unwrap_or_default(),
            (_, Value::String(base64)) => base64.clone(),
            (_, value) => value.to_string(),
        });
    let body = html! {
        dl.facts #letter {
            dt { "Event" } dd { (text(letter.event_type.as_deref())) " " code { (text(letter.event_id.as_deref())) } }
            @if let Some(team) = &letter.team { dt { "Team" } dd { (team) } }
            dt { "Installation" } dd { (letter.installation.as_deref().unwrap_or("default")) }
            dt { "Reason" } dd { code { (text(letter.reason.as_deref())) } }
            dt { "Detail" } dd { (text(letter.detail.as_deref())) }
            dt { "Attempts" } dd { @if let Some(a) = letter.attempts { (a) } @else { "—" } }
            dt { "First failure" } dd { (text(letter.first_failure.as_deref())) }
            dt { "Last failure" } dd { (text(letter.last_failure.as_deref())) }
            dt { "Dead-lettered" } dd { (text(letter.dead_lettered_at.as_deref())) }
            dt { "Source" } dd { code { (text(letter.source.as_deref())) } }
            @if let Some(from) = &letter.replayed_from { dt { "Replayed from" } dd { code { (from) } } }
        }
        @if let Some(action) = replay {
            form method="post" action=(action) #replay-one {
                input type="hidden" name=(CSRF_FIELD) value=(caller.csrf);
                input type="hidden" name="letters" value=(letter.id);
                button type="submit" { "Replay this event…" }
            }
        }
        h2 { "Payload" }
        p.hint { "Content type: " code { (text(detail.content_type.as_deref())) }
            @if detail.payload.as_ref().is_some_and(|p| p.encoding != "json") { ", shown as base64" } }
        @match &payload { Some(payload) => pre.payload tabindex="0" { code { (payload) } }, None => p { "No payload." } }
        h2 { "Headers" }
        div.table-wrap { table #headers {
            caption.visually-hidden { "Headers" }
            thead { tr { th scope="col" { "Name" } th scope="col" { "Value" } } }
            tbody { @for header in &detail.headers { tr {
                th scope="row" { code { (header.name) } }
                td { code { (header.value.as_deref().unwrap_or("null")) } @if header.encoding != "text" { " (base64)" } }
            } } }
        } }
    };
    let title = format!("Dead letter {}", letter.id);
    Ok(layout::page(console, Some(caller), section, &title, body).into_response())
}

/// `POST /teams/{team}/plugins/{id}/dead-letters/replay`: without `confirm`, a dry run and a confirmation
/// form for what it found; with it, the replay, and what was replayed.
pub async fn replay(
    State(console): State<Console>,
    Path((team, id)): Path<(String, String)>,
    posted: Posted,
) -> Page {
    let caller = &posted.caller;
    bad_ids(&console, caller, Some(&team), &id)?;
    let all = posted.get("all") == Some("true");
    let chosen: Vec<&str> = posted
        .fields
        .iter()
        .filter(|(key, _)| key == "letters")
        .map(|(_, value)| value.as_str())
        .collect();
    let back = console.url(&format!("/teams/{team}/plugins/{id}/dead-letters"));
    if !all && chosen.is_empty() {
        let body = html! {
            p.error role="alert" { "No dead letter was selected." }
            p { a href=(back) { "Back to the dead letters" } }
        };
        let page = layout::page(&console, Some(caller), Section::DeadLetters, "Replay", body);
        return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let confirm = posted.get("confirm") == Some("true");
    let request = if all {
        let mut request = json!({"all": true, "dry_run": !confirm});
        for name in ["installation", "since"] {
            if let Some(value) = posted.get(name).filter(|v| !v.trim().is_empty()) {
                request[name] = json!(value.trim());
            }
        }
        request
    } else {
        json!({"letters": chosen, "dry_run": !confirm})
    };
    let api = Api::new(&console.api, &caller.principal);
    let path = format!("/v1/teams/{team}/plugins/{id}/dead-letters/replay");
    let outcome: Value = api
        .send(Method::POST, &path, Some(&request), Condition::Always)
        .await
        .or_page(&console, caller)?;
    let count = outcome.get("count").and_then(Value::as_u64).unwrap_or(0);
    let ids: Vec<&str> = outcome
        .get("letters")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let body = html! {
        @if confirm {
            p role="status" #replayed { "Replayed " (count) " dead letter" @if count != 1 { "s" } " to " (id) "'s topic." }
        } @else {
            p #dry-run { "A dry run found " (count) " dead letter" @if count != 1 { "s" } " to replay:" }
            ul.ids { @for letter in &ids { li { code { (letter) } } } }
            @if count > 0 {
                form method="post" #confirm-replay {
                    input type="hidden" name=(CSRF_FIELD) value=(caller.csrf);
                    input type="hidden" name="confirm" value="true";
                    // What the dry run found, not "all" again: nothing that arrived since is replayed unseen.
                    @for letter in &ids { input type="hidden" name="letters" value=(letter); }
                    button type="submit" { "Replay " (count) " now" }
                }
            }
        }
        p { a href=(back) { "Back to the dead letters" } }
    };
    let title = if confirm { "Replayed" } else { "Replay: dry run" };
    Ok(layout::page(&console, Some(caller), Section::DeadLetters, title, body).into_response())
}
