//! A team's pages: the plugin catalog (enable in one click), its installations (enable, disable), and the
//! config form of an installation generated from the plugin's `config_schema` ([`super::form`]).
//!
//! Each page reads and writes through the API as the caller ([`super::api`]): a team that opens another
//! team's page gets the API's 403, whatever the URL says. Changes are conditional on what the page showed
//! (`If-Match` with the ETag it read, `If-None-Match: *` for a new installation), so two people editing at
//! once do not overwrite each other silently: the second is told and shown the current values.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_schemas::ids::{DEFAULT_INSTALLATION, check_installation_id, check_plugin_id, check_team_id};

use super::api::{Api, Condition, OrPage, Refusal, Tagged, missing_as_none};
use super::form::{self, Field, FieldErrors, Kind};
use super::layout::{self, Section};
use super::{CSRF_FIELD, Caller, Console, Page, Posted};

/// A plugin, as the catalog shows it (the fields of `GET /v1/plugins` it reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Plugin {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Version.
    pub version: String,
    /// Event types it handles.
    #[serde(default)]
    pub events: Vec<String>,
    /// Its actions.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Its config schema.
    #[serde(default)]
    pub config_schema: Option<Value>,
    /// Ordering key.
    #[serde(default)]
    pub ordering: String,
    /// Batch settings.
    #[serde(default)]
    pub batch: Option<Value>,
    /// Whether a team may install it more than once.
    #[serde(default)]
    pub installations: bool,
    /// `up`, `degraded` or `down`.
    pub status: String,
    /// Live instances.
    #[serde(default)]
    pub active_instances: usize,
}

/// An installation, as `GET /v1/teams/{team}/installations` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Installation {
    /// Plugin id.
    pub plugin_id: String,
    /// Installation id.
    #[serde(default)]
    pub installation: Option<String>,
    /// Whether events are routed to it.
    pub enabled: bool,
    /// Only these types; absent = all of the plugin's.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Only these forms.
    #[serde(default)]
    pub form_ids: Option<Vec<String>>,
    /// A filter expression.
    #[serde(default)]
    pub filter: Option<String>,
    /// The plugin's status.
    pub status: String,
    /// Whether a config is stored.
    #[serde(default)]
    pub configured: bool,
}

impl Installation {
    fn id(&self) -> &str {
        self.installation.as_deref().unwrap_or(DEFAULT_INSTALLATION)
    }
}

/// A config as the API shows it.
#[derive(Debug, Clone, Deserialize)]
struct ConfigView {
    config: Value,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

/// A 404 page unless the path's ids are ids (the API would refuse them too; checked here so that no path
/// the console builds can be bent by them).
pub(super) fn bad_ids(
    console: &Console,
    caller: &Caller,
    team: &str,
    plugin: Option<(&str, &str)>,
) -> Result<(), Response> {
    let valid = check_team_id(team.as_bytes()).is_ok()
        && plugin.is_none_or(|(id, installation)| {
            check_plugin_id(id).is_ok() && check_installation_id(installation).is_ok()
        });
    if valid {
        Ok(())
    } else {
        Err(layout::not_found(console, caller))
    }
}

/// `GET /teams/{team}/catalog`: every plugin, with what the team has of each.
pub async fn catalog(caller: Caller, State(console): State<Console>, Path(team): Path<String>) -> Page {
    bad_ids(&console, &caller, &team, None)?;
    let api = Api::new(&console.api, &caller.principal);
    let installed = api
        .get::<Vec<Installation>>(&format!("/v1/teams/{team}/installations"))
        .await
        .or_page(&console, &caller)?;
    let plugins = api
        .get::<Vec<Plugin>>("/v1/plugins")
        .await
        .or_page(&console, &caller)?;
    let body = html! {
        p { "Plugins registered with this Switchyard. Enable one to have your team's events delivered to it." }
        ul.cards {
            @for plugin in &plugins {
                @let default = installed.iter().find(|i| i.plugin_id == plugin.id && i.id() == DEFAULT_INSTALLATION);
                @let others = installed.iter().filter(|i| i.plugin_id == plugin.id && i.id() != DEFAULT_INSTALLATION).count();
                li.card #{"plugin-" (plugin.id)} {
                    h2 { (plugin.name) " " span.version { "v" (plugin.version) } }
                    p.status {
                        (layout::status(&plugin.status)) " "
                        (instances(plugin.active_instances))
                    }
                    @if !plugin.description.is_empty() { p { (plugin.description) } }
                    (facts(plugin))
                    div.actions {
                        @match default {
                            Some(installation) if installation.enabled => {
                                span.state { "Enabled" }
                                (enabled_button(&console, &caller, &team, installation, false, "catalog"))
                                a href=(console.url(&config_url(&team, &plugin.id, DEFAULT_INSTALLATION))) { "Configure" }
                            }
                            _ => {
                                form method="post" action=(console.url(&format!("/teams/{team}/plugins/{}/installations/{DEFAULT_INSTALLATION}/enabled", plugin.id))) {
                                    input type="hidden" name=(CSRF_FIELD) value=(caller.csrf);
                                    input type="hidden" name="enabled" value="true";
                                    input type="hidden" name="return" value="catalog";
                                    button type="submit" aria-label=(format!("Enable {}", plugin.name)) { "Enable" }
                                }
                            }
                        }
                        @if plugin.installations {
                            form.inline-form method="get" action=(console.url(&format!("/teams/{team}/plugins/{}/add", plugin.id))) {
                                label for={"add-" (plugin.id)} { "Another installation, named" }
                                input id={"add-" (plugin.id)} type="text" name="installation" required autocomplete="off"
                                    pattern="[a-z][a-z0-9-]*" size="12";
                                button.secondary type="submit" { "Add" }
                            }
                        }
                        @if others > 0 {
                            a href=(console.url(&format!("/teams/{team}/installations"))) {
                                (others) " more installation" @if others > 1 { "s" }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&console, Some(&caller), Section::Catalog, "Plugin catalog", body).into_response())
}

fn instances(count: usize) -> String {
    match count {
        1 => "1 instance".to_owned(),
        n => format!("{n} instances"),
    }
}

/// Events, actions, ordering and batching of a plugin, as a description list.
fn facts(plugin: &Plugin) -> Markup {
    let list = |items: &[String]| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let batch = plugin
        .batch
        .as_ref()
        .and_then(|b| b.get("max_events"))
        .and_then(Value::as_u64);
    html! {
        dl.facts {
            dt { "Events" } dd { (list(&plugin.events)) }
            dt { "Actions" } dd { (list(&plugin.actions)) }
            @if !plugin.ordering.is_empty() { dt { "Order kept per" } dd { (plugin.ordering) } }
            @if let Some(max) = batch { dt { "Batches of up to" } dd { (max) " events" } }
            @if plugin.installations { dt { "Installations" } dd { "several per team" } }
        }
    }
}

fn config_url(team: &str, plugin: &str, installation: &str) -> String {
    format!("/teams/{team}/plugins/{plugin}/installations/{installation}/config")
}

/// An Enable or Disable button for an installation.
fn enabled_button(
    console: &Console,
    caller: &Caller,
    team: &str,
    installation: &Installation,
    enable: bool,
    back: &str,
) -> Markup {
    let action = format!(
        "/teams/{team}/plugins/{}/installations/{}/enabled",
        installation.plugin_id,
        installation.id()
    );
    let verb = if enable { "Enable" } else { "Disable" };
    html! {
        form method="post" action=(console.url(&action)) {
            input type="hidden" name=(CSRF_FIELD) value=(caller.csrf);
            input type="hidden" name="enabled" value=(enable);
            input type="hidden" name="return" value=(back);
            button.secondary type="submit" aria-label=(format!("{verb} {} ({})", installation.plugin_id, installation.id())) { (verb) }
        }
    }
}

/// `GET /teams/{team}/installations`.
pub async fn installations(caller: Caller, State(console): State<Console>, Path(team): Path<String>) -> Page {
    bad_ids(&console, &caller, &team, None)?;
    let api = Api::new(&console.api, &caller.principal);
    let installed = api
        .get::<Vec<Installation>>(&format!("/v1/teams/{team}/installations"))
        .await
        .or_page(&console, &caller)?;
    let all = |items: &Option<Vec<String>>| items.as_ref().map_or_else(|| "all".to_owned(), |i| i.join(", "));
    let body = html! {
        @if installed.is_empty() {
            p { "No plugin is installed yet. " a href=(console.url(&format!("/teams/{team}/catalog"))) { "Open the catalog" } " to enable one." }
        } @else {
            div.table-wrap {
                table {
                    caption.visually-hidden { "Installations of team " (team) }
                    thead { tr {
                        th scope="col" { "Plugin" } th scope="col" { "Installation" } th scope="col" { "State" }
                        th scope="col" { "Events" } th scope="col" { "Forms" } th scope="col" { "Filter" }
                        th scope="col" { "Plugin status" } th scope="col" { "Config" } th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for installation in &installed {
                            tr #{"installation-" (installation.plugin_id) "-" (installation.id())} {
                                th scope="row" { (installation.plugin_id) }
                                td { (installation.id()) }
                                td { @if installation.enabled { "enabled" } @else { "disabled" } }
                                td { (all(&installation.event_types)) }
                                td { (all(&installation.form_ids)) }
                                td { @if let Some(filter) = &installation.filter { code { (filter) } } @else { "none" } }
                                td { (layout::status(&installation.status)) }
                                td { @if installation.configured { "set" } @else { "not set" } }
                                td.actions {
                                    (enabled_button(&console, &caller, &team, installation, !installation.enabled, "installations"))
                                    a href=(console.url(&config_url(&team, &installation.plugin_id, installation.id()))) {
                                        "Configure" span.visually-hidden { " " (installation.plugin_id) " (" (installation.id()) ")" }
                                    }
                                    a href=(console.url(&format!("/teams/{team}/plugins/{}/installations/{}", installation.plugin_id, installation.id()))) {
                                        "Routing" span.visually-hidden { " of " (installation.plugin_id) " (" (installation.id()) ")" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &console,
        Some(&caller),
        Section::Installations,
        "Installations",
        body,
    )
    .into_response())
}

/// `POST .../installations/{installation}/enabled` (`enabled=true|false`): enables or disables an
/// installation, creating it when enabling one the team does not have; then back to the page it came from,
/// or to the config form of a plugin that has a config schema and no config yet.
pub async fn set_enabled(
    State(console): State<Console>,
    Path((team, id, installation)): Path<(String, String, String)>,
    posted: Posted,
) -> Page {
    let caller = &posted.caller;
    bad_ids(&console, caller, &team, Some((&id, &installation)))?;
    let enabled = posted.get("enabled") == Some("true");
    let api = Api::new(&console.api, &caller.principal);
    let path = format!("/v1/teams/{team}/plugins/{id}/installations/{installation}");
    let current = api.get_tagged::<Installation>(&path).await;
    let (body, condition) = match &current {
        Ok(Tagged { value, etag }) => (
            json!({"enabled": enabled, "event_types": value.event_types, "form_ids": value.form_ids,
                   "filter": value.filter}),
            etag.as_deref().map_or(Condition::Always, Condition::Unchanged),
        ),
        Err(refusal) if refusal.status == StatusCode::NOT_FOUND && enabled => {
            (json!({"enabled": true}), Condition::Absent)
        }
        Err(refusal) => return Err(layout::refusal(&console, caller, refusal)),
    };
    let stored: Installation = match api.send(Method::PUT, &path, Some(&body), condition).await {
        Ok(stored) => stored,
        Err(refusal) => return Err(changed_or_refused(&console, caller, &refusal)),
    };
    let back = match posted.get("return") {
        _ if stored.enabled && !stored.configured && has_config(&api, &id).await => {
            config_url(&team, &id, &installation)
        }
        Some("installations") => format!("/teams/{team}/installations"),
        _ => format!("/teams/{team}/catalog"),
    };
    Ok(Redirect::to(&console.url(&back)).into_response())
}

async fn has_config(api: &Api<'_>, plugin: &str) -> bool {
    api.get::<Plugin>(&format!("/v1/plugins/{plugin}"))
        .await
        .is_ok_and(|p| p.config_schema.is_some())
}

/// A 412 as "changed meanwhile", other refusals as they are.
fn changed_or_refused(console: &Console, caller: &Caller, refusal: &Refusal) -> Response {
    if refusal.status == StatusCode::PRECONDITION_FAILED {
        layout::message(
            console,
            Some(caller),
            "Somebody changed this installation since the page was loaded. Go back, reload and try again.",
            409,
        )
    } else {
        layout::refusal(console, caller, refusal)
    }
}

/// The config page's query.
#[derive(Debug, Default, Deserialize)]
pub struct ConfigQuery {
    /// Set after a successful save.
    #[serde(default)]
    saved: Option<String>,
}

/// What the config form needs: the plugin, the installation (if any), the stored config and its ETag.
struct ConfigState {
    team: String,
    installation_id: String,
    plugin: Plugin,
    installation: Option<Installation>,
    stored: Option<Tagged<ConfigView>>,
}

async fn config_state(
    api: &Api<'_>,
    team: &str,
    id: &str,
    installation: &str,
) -> Result<ConfigState, Refusal> {
    let plugin = api.get::<Plugin>(&format!("/v1/plugins/{id}")).await?;
    let base = format!("/v1/teams/{team}/plugins/{id}/installations/{installation}");
    Ok(ConfigState {
        team: team.to_owned(),
        installation_id: installation.to_owned(),
        plugin,
        installation: missing_as_none(api.get::<Installation>(&base).await)?,
        stored: missing_as_none(api.get_tagged::<ConfigView>(&format!("{base}/config")).await)?,
    })
}

impl ConfigState {
    fn fields(&self) -> Vec<Field> {
        let schema = self.plugin.config_schema.clone().unwrap_or(Value::Null);
        let (config, secrets) = self.stored.as_ref().map_or((Value::Null, Vec::new()), |s| {
            // Secrets are named by JSON pointer; the form's fields are the top-level properties.
            let set = s.value.secrets.iter().filter(|(_, state)| *state == "set");
            let names = set.filter_map(|(pointer, _)| pointer.strip_prefix('/').map(str::to_owned));
            (s.value.config.clone(), names.collect())
        });
        form::fields(&schema, &config, &secrets)
    }
}

/// `GET .../installations/{installation}/config`.
pub async fn config_page(
    caller: Caller,
    State(console): State<Console>,
    Path((team, id, installation)): Path<(String, String, String)>,
    Query(query): Query<ConfigQuery>,
) -> Page {
    bad_ids(&console, &caller, &team, Some((&id, &installation)))?;
    let api = Api::new(&console.api, &caller.principal);
    let state = config_state(&api, &team, &id, &installation)
        .await
        .or_page(&console, &caller)?;
    let note = query.saved.is_some().then_some("Saved.");
    let page = config_form(
        &console,
        &caller,
        &state,
        &state.fields(),
        &FieldErrors::new(),
        note,
    );
    Ok(page.into_response())
}

/// `POST .../installations/{installation}/config`: saves the form through the API; its 422 errors are
/// shown at their fields, with what was typed kept (secrets excepted).
pub async fn save_config(
    State(console): State<Console>,
    Path((team, id, installation)): Path<(String, String, String)>,
    posted: Posted,
) -> Page {
    let caller = &posted.caller;
    bad_ids(&console, caller, &team, Some((&id, &installation)))?;
    let api = Api::new(&console.api, &caller.principal);
    let state = config_state(&api, &team, &id, &installation)
        .await
        .or_page(&console, caller)?;
    let mut fields = state.fields();
    let shown = posted.get("etag").unwrap_or_default();
    let (status, errors) = match form::config(&fields, &posted.fields) {
        Err(errors) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
        Ok(config) => {
            let condition = if shown.is_empty() {
                Condition::Absent
            } else {
                Condition::Unchanged(shown)
            };
            let path = format!("/v1/teams/{team}/plugins/{id}/installations/{installation}/config");
            match api
                .send::<Value>(Method::PUT, &path, Some(&config), condition)
                .await
            {
                Ok(_) => {
                    let page = format!("{}?saved=1", config_url(&team, &id, &installation));
                    return Ok(Redirect::to(&console.url(&page)).into_response());
                }
                Err(refusal) if refusal.status == StatusCode::UNPROCESSABLE_ENTITY => {
                    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                    (refusal.status, form::field_errors(&refusal.problem, &names))
                }
                Err(refusal) if refusal.status == StatusCode::PRECONDITION_FAILED => {
                    // Shown with the values stored now, so that nothing is overwritten unseen.
                    let note = "Somebody changed this config since you opened the page: here it is as it is \
                                now. Make your change again and save.";
                    let page =
                        config_form(&console, caller, &state, &fields, &FieldErrors::new(), Some(note));
                    return Ok((StatusCode::CONFLICT, page).into_response());
                }
                Err(refusal) => (
                    refusal.status,
                    FieldErrors::from([(String::new(), vec![refusal.detail()])]),
                ),
            }
        }
    };
    form::refill(&mut fields, &posted.fields);
    let page = config_form(&console, caller, &state, &fields, &errors, None);
    Ok((status, page).into_response())
}

fn config_form(
    console: &Console,
    caller: &Caller,
    state: &ConfigState,
    fields: &[Field],
    errors: &FieldErrors,
    note: Option<&str>,
) -> Markup {
    let (team, installation) = (state.team.as_str(), state.installation_id.as_str());
    let plugin = &state.plugin;
    let title = if installation == DEFAULT_INSTALLATION {
        format!("Configure {}", plugin.name)
    } else {
        format!("Configure {} ({installation})", plugin.name)
    };
    let enabled = state.installation.as_ref().is_some_and(|i| i.enabled);
    let etag = state
        .stored
        .as_ref()
        .and_then(|s| s.etag.clone())
        .unwrap_or_default();
    let general = errors.get("").map(Vec::as_slice).unwrap_or_default();
    let body = html! {
        @if let Some(note) = note {
            p.notice role="status" #form-note { (note) }
        }
        @if !errors.is_empty() {
            div.error role="alert" #form-errors {
                p { "The config was not saved: " (errors.values().map(Vec::len).sum::<usize>()) " problem(s), shown at their fields." }
                @for message in general { p { (message) } }
            }
        }
        @if !enabled {
            p.notice #not-enabled {
                (plugin.name) " is not enabled for this installation; enable it before configuring it."
            }
            @if let Some(current) = &state.installation {
                (enabled_button(console, caller, team, current, true, "installations"))
            }
        }
        @if fields.is_empty() {
            p { (plugin.name) " has no settings." }
        } @else {
            form.card method="post" novalidate #config-form {
                input type="hidden" name=(CSRF_FIELD) value=(caller.csrf);
                input type="hidden" name="etag" value=(etag);
                @for field in fields {
                    (field_markup(field, errors.get(&field.name).map(Vec::as_slice).unwrap_or_default()))
                }
                button type="submit" disabled[!enabled] { "Save" }
            }
        }
        p { a href=(console.url(&format!("/teams/{team}/installations"))) { "Back to installations" } }
    };
    layout::page(console, Some(caller), Section::Installations, &title, body)
}

fn field_markup(field: &Field, errors: &[String]) -> Markup {
    let id = format!("field-{}", field.name);
    let hint = format!("{id}-hint");
    let error_id = format!("{id}-error");
    let mut described = Vec::new();
    if field.description.is_some() || field.default.is_some() || field.kind == Kind::Secret {
        described.push(hint.clone());
    }
    if !errors.is_empty() {
        described.push(error_id.clone());
    }
    let described = described.join(" ");
    let invalid = (!errors.is_empty()).then_some("true");
    html! {
        div.field .invalid[!errors.is_empty()] {
            @if field.kind == Kind::Boolean {
                input type="checkbox" id=(id) name=(field.name) value="true"
                    checked[field.value == "true" || (field.value.is_empty() && field.default.as_deref() == Some("true"))]
                    aria-describedby=[(!described.is_empty()).then_some(&described)] aria-invalid=[invalid];
                label for=(id) { (field.label) }
            } @else {
                label for=(id) {
                    (field.label)
                    @if field.required { " " span.required { "(required)" } }
                }
            }
            @if field.description.is_some() || field.default.is_some() || field.kind == Kind::Secret {
                p.hint id=(hint) {
                    @if let Some(description) = &field.description { (description) " " }
                    @if let Some(default) = &field.default { "Default: " code { (default) } ". " }
                    @if field.kind == Kind::Secret {
                        @if field.secret_set { "A value is set; it is never shown. Leave empty to keep it." }
                        @else { "Not set." }
                    }
                }
            }
            @match &field.kind {
                Kind::Boolean => {}
                Kind::Choice(choices) => {
                    select id=(id) name=(field.name) required[field.required]
                        aria-describedby=[(!described.is_empty()).then_some(&described)] aria-invalid=[invalid] {
                        @if !field.required { option value="" selected[field.value.is_empty()] { "(not set)" } }
                        @for choice in choices {
                            option value=(choice) selected[*choice == field.value] { (choice) }
                        }
                    }
                }
                Kind::Secret => {
                    input type="password" id=(id) name=(field.name) autocomplete="new-password"
                        aria-describedby=[(!described.is_empty()).then_some(&described)] aria-invalid=[invalid];
                    @if field.secret_set {
                        div.inline {
                            input type="checkbox" id=(format!("{id}-clear")) name=(format!("{}.clear", field.name)) value="true";
                            label for=(format!("{id}-clear")) { "Remove the stored value" }
                        }
                    }
                }
                Kind::Lines | Kind::Json => {
                    textarea id=(id) name=(field.name) rows="4" required[field.required]
                        aria-describedby=[(!described.is_empty()).then_some(&described)] aria-invalid=[invalid] { (field.value) }
                }
                Kind::Integer | Kind::Number => {
                    input type="text" inputmode=(if field.kind == Kind::Integer { "numeric" } else { "decimal" })
                        id=(id) name=(field.name) value=(field.value) required[field.required]
                        aria-describedby=[(!described.is_empty()).then_some(&described)] aria-invalid=[invalid];
                }
                Kind::Text => {
                    input type="text" id=(id) name=(field.name) value=(field.value) required[field.required]
                        aria-describedby=[(!described.is_empty()).then_some(&described)] aria-invalid=[invalid];
                }
            }
            @if !errors.is_empty() {
                p.field-error id=(error_id) {
                    @for message in errors { (message) " " }
                }
            }
        }
    }
}
