//! An installation's routing in the console: which event types and forms reach the plugin, its filter
//! expression, whether it is enabled; a new named installation of a plugin that allows several; and a
//! backfill of past events started from the same page.
//!
//! The API checks everything (unknown types, form ids, a filter that does not compile, the installation
//! limit): its 422 pointers (`/event_types/1`, `/form_ids/0`, `/filter`) land on the field they name.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use serde_json::{Value, json};
use switchyard_schemas::ids::DEFAULT_INSTALLATION;

use super::api::{Api, Condition, OrPage, Refusal, Tagged, missing_as_none};
use super::form::{self, FieldErrors};
use super::layout::{self, Section};
use super::team::{Installation, Plugin, bad_ids};
use super::{CSRF_FIELD, Caller, Console, Page, Posted};

/// The fields of the routing form, and the API's names for them.
const FIELDS: [&str; 4] = ["enabled", "event_types", "form_ids", "filter"];

/// What the form shows: the stored installation, or what was just submitted.
struct Routing {
    enabled: bool,
    event_types: Vec<String>,
    form_ids: String,
    filter: String,
}

impl Routing {
    fn of(installation: Option<&Installation>) -> Self {
        Routing {
            enabled: installation.is_none_or(|i| i.enabled),
            event_types: installation
                .and_then(|i| i.event_types.clone())
                .unwrap_or_default(),
            form_ids: installation
                .and_then(|i| i.form_ids.as_ref())
                .map(|f| f.join("\n"))
                .unwrap_or_default(),
            filter: installation.and_then(|i| i.filter.clone()).unwrap_or_default(),
        }
    }

    fn submitted(posted: &Posted) -> Self {
        let all = |name: &str| -> Vec<String> {
            posted
                .fields
                .iter()
                .filter(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .collect()
        };
        Routing {
            enabled: posted.get("enabled").is_some(),
            event_types: all("event_types"),
            form_ids: posted.get("form_ids").unwrap_or_default().to_owned(),
            filter: posted.get("filter").unwrap_or_default().to_owned(),
        }
    }

    /// The API's installation body: empty lists and a blank filter are left out (all types, all forms,
    /// no filter).
    fn body(&self) -> Value {
        let forms: Vec<&str> = self
            .form_ids
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let mut body = json!({"enabled": self.enabled});
        if !self.event_types.is_empty() {
            body["event_types"] = json!(self.event_types);
        }
        if !forms.is_empty() {
            body["form_ids"] = json!(forms);
        }
        if !self.filter.trim().is_empty() {
            body["filter"] = json!(self.filter);
        }
        body
    }
}

fn installation_path(team: &str, id: &str, installation: &str) -> String {
    format!("/teams/{team}/plugins/{id}/installations/{installation}")
}

/// `GET /teams/{team}/plugins/{id}/add?installation=...`: to the form of a new installation.
pub async fn add(
    caller: Caller,
    State(console): State<Console>,
    Path((team, id)): Path<(String, String)>,
    Query(query): Query<AddQuery>,
) -> Page {
    let installation = query.installation.trim();
    bad_ids(&console, &caller, &team, Some((&id, installation)))?;
    Ok(Redirect::to(&console.url(&installation_path(&team, &id, installation))).into_response())
}

/// The query of [`add`].
#[derive(Debug, serde::Deserialize)]
pub struct AddQuery {
    installation: String,
}

/// `GET /teams/{team}/plugins/{id}/installations/{installation}`: the routing form (an empty one for an
/// installation the team does not have yet).
pub async fn page(
    caller: Caller,
    State(console): State<Console>,
    Path((team, id, installation)): Path<(String, String, String)>,
) -> Page {
    bad_ids(&console, &caller, &team, Some((&id, &installation)))?;
    let api = Api::new(&console.api, &caller.principal);
    match read(&api, &team, &id, &installation).await {
        Ok((plugin, current)) => {
            let routing = Routing::of(current.as_ref().map(|c| &c.value));
            let etag = current.and_then(|c| c.etag);
            let form = Form {
                team: &team,
                installation: &installation,
                plugin: &plugin,
                etag: etag.as_deref(),
            };
            Ok(form
                .render(&console, &caller, &routing, &FieldErrors::new(), None)
                .into_response())
        }
        Err(refusal) => Err(layout::refusal(&console, &caller, &refusal)),
    }
}

async fn read(
    api: &Api<'_>,
    team: &str,
    id: &str,
    installation: &str,
) -> Result<(Plugin, Option<Tagged<Installation>>), Refusal> {
    let plugin = api.get::<Plugin>(&format!("/v1/plugins/{id}")).await?;
    let path = format!("/v1/teams/{team}/plugins/{id}/installations/{installation}");
    Ok((
        plugin,
        missing_as_none(api.get_tagged::<Installation>(&path).await)?,
    ))
}

/// `POST .../installations/{installation}`: saves the routing, conditional on what the form showed.
pub async fn save(
    State(console): State<Console>,
    Path((team, id, installation)): Path<(String, String, String)>,
    posted: Posted,
) -> Page {
    let caller = &posted.caller;
    bad_ids(&console, caller, &team, Some((&id, &installation)))?;
    let api = Api::new(&console.api, &caller.principal);
    let (plugin, current) = read(&api, &team, &id, &installation)
        .await
        .or_page(&console, caller)?;
    let routing = Routing::submitted(&posted);
    let shown = posted.get("etag").unwrap_or_default();
    let condition = if shown.is_empty() {
        Condition::Absent
    } else {
        Condition::Unchanged(shown)
    };
    let path = format!("/v1/teams/{team}/plugins/{id}/installations/{installation}");
    let refusal = match api
        .send::<Value>(Method::PUT, &path, Some(&routing.body()), condition)
        .await
    {
        Ok(_) => {
            let back = format!("/teams/{team}/installations");
            return Ok(Redirect::to(&console.url(&back)).into_response());
        }
        Err(refusal) => refusal,
    };
    let form = Form {
        team: &team,
        installation: &installation,
        plugin: &plugin,
        etag: Some(shown),
    };
    let (status, errors, note) = match refusal.status {
        StatusCode::UNPROCESSABLE_ENTITY => (
            refusal.status,
            form::field_errors(&refusal.problem, &FIELDS),
            None,
        ),
        StatusCode::PRECONDITION_FAILED => {
            let current = current.as_ref();
            let etag = current.and_then(|c| c.etag.as_deref());
            let form = Form { etag, ..form };
            let note = "Somebody changed this installation since you opened the page: here it is as it is now. \
                        Make your change again and save.";
            let routing = Routing::of(current.map(|c| &c.value));
            let page = form.render(&console, caller, &routing, &FieldErrors::new(), Some(note));
            return Ok((StatusCode::CONFLICT, page).into_response());
        }
        status => (
            status,
            FieldErrors::from([(String::new(), vec![refusal.detail()])]),
            None,
        ),
    };
    Ok((status, form.render(&console, caller, &routing, &errors, note)).into_response())
}

/// The routing form of one installation.
#[derive(Clone, Copy)]
struct Form<'a> {
    team: &'a str,
    installation: &'a str,
    plugin: &'a Plugin,
    etag: Option<&'a str>,
}

impl Form<'_> {
    fn render(
        &self,
        console: &Console,
        caller: &Caller,
        routing: &Routing,
        errors: &FieldErrors,
        note: Option<&str>,
    ) -> Markup {
        let (team, plugin) = (self.team, self.plugin);
        let title = if self.installation == DEFAULT_INSTALLATION {
            format!("{} for team {team}", plugin.name)
        } else {
            format!("{} for team {team} ({})", plugin.name, self.installation)
        };
        let error = |name: &str| errors.get(name).map(Vec::as_slice).unwrap_or_default();
        let described = |name: &str, hint: bool| {
            let mut ids = Vec::new();
            if hint {
                ids.push(format!("{name}-hint"));
            }
            if !error(name).is_empty() {
                ids.push(format!("{name}-error"));
            }
            (!ids.is_empty()).then(|| ids.join(" "))
        };
        let invalid = |name: &str| (!error(name).is_empty()).then_some("true");
        let backfill_action = console.url(&format!(
            "{}/backfills",
            installation_path(team, &plugin.id, self.installation)
        ));
        let body = html! {
            @if let Some(note) = note { p.notice role="status" { (note) } }
            @if !errors.is_empty() {
                div.error role="alert" #form-errors {
                    p { "The installation was not saved: the problems are shown at their fields." }
                    @for message in error("") { p { (message) } }
                }
            }
            form.card method="post" novalidate #routing-form {
                input type="hidden" name=(CSRF_FIELD) value=(caller.csrf);
                input type="hidden" name="etag" value=(self.etag.unwrap_or_default());
                div.field {
                    input #enabled type="checkbox" name="enabled" value="true" checked[routing.enabled];
                    label for="enabled" { "Enabled: route the team's events to this installation" }
                }
                fieldset.field .invalid[!error("event_types").is_empty()] aria-describedby=[described("event_types", true)] {
                    legend { "Event types" }
                    p.hint #event_types-hint { "None checked: every type the plugin handles." }
                    @for event in &plugin.events {
                        div.inline {
                            input type="checkbox" name="event_types" value=(event) id={"type-" (event)}
                                checked[routing.event_types.contains(event)];
                            label for={"type-" (event)} { code { (event) } }
                        }
                    }
                    (messages("event_types", error("event_types")))
                }
                div.field .invalid[!error("form_ids").is_empty()] {
                    label for="form_ids" { "Forms" }
                    p.hint #form_ids-hint { "One form id per line; empty: every form." }
                    textarea #form_ids name="form_ids" rows="3" aria-describedby=[described("form_ids", true)] aria-invalid=[invalid("form_ids")] { (routing.form_ids) }
                    (messages("form_ids", error("form_ids")))
                }
                div.field .invalid[!error("filter").is_empty()] {
                    label for="filter" { "Filter" }
                    p.hint #filter-hint { "An expression over the event, e.g. " code { "data.response.answers.city.choice == \"kisumu\"" } "; empty: no filter." }
                    textarea.code #filter name="filter" rows="3" spellcheck="false" aria-describedby=[described("filter", true)] aria-invalid=[invalid("filter")] { (routing.filter) }
                    (messages("filter", error("filter")))
                }
                button type="submit" { "Save" }
            }
            @if self.etag.is_some() {
                h2 { "Deliver past events" }
                form.card.inline-form method="post" action=(backfill_action) #backfill-form {
                    input type="hidden" name=(CSRF_FIELD) value=(caller.csrf);
                    label for="since" { "Since" }
                    input #since type="date" name="since" required;
                    button.secondary type="submit" { "Start a backfill" }
                }
                p.hint { "The team's events since that day (or the oldest still kept), through this installation's routing, before its live events; progress on the " a href=(console.url(&format!("/teams/{team}/backfills"))) { "backfills page" } "." }
            }
            p { a href=(console.url(&format!("/teams/{team}/installations"))) { "Back to installations" } }
        };
        layout::page(console, Some(caller), Section::Installations, &title, body)
    }
}

fn messages(name: &str, errors: &[String]) -> Markup {
    html! {
        @if !errors.is_empty() {
            p.field-error id={(name) "-error"} { @for message in errors { (message) " " } }
        }
    }
}
