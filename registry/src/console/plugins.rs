//! Pages about plugins as the people who run them see them: the admin's fleet (every plugin with its
//! version, instances, last heartbeat, topics and consumer lag), one plugin's page (for an admin or the
//! plugin's own token: instances, lag per partition, dead letters across the teams it serves, its
//! registration history), and
//! deregistration with a typed confirmation (admins).
//!
//! The fleet page refuses anyone but an admin before calling the API: a team could list plugins through
//! the API, but this page exists to show what only admins see (topics, instances, lag), and the lag calls
//! would be refused anyway.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use switchyard_schemas::ids::{check_plugin_id, check_team_id};

use super::api::{Api, Condition, OrPage, Refusal};
use super::dead_letters::{Letter, letters_table};
use super::layout::{self, Section};
use super::team::Plugin;
use super::{CSRF_FIELD, Caller, Console, Page, Posted};

/// A plugin as admins and the plugin itself see it: the catalog's fields and the operational ones.
#[derive(Debug, Clone, Deserialize)]
pub struct PluginDetail {
    /// The catalog's fields.
    #[serde(flatten)]
    pub plugin: Plugin,
    /// The service URL of an HTTP plugin.
    #[serde(default)]
    pub url: Option<String>,
    /// Its instances, newest heartbeat first.
    #[serde(default)]
    pub instances: Vec<Instance>,
    /// Its topics.
    #[serde(default)]
    pub topics: Option<Topics>,
    /// When its workers' token expires.
    #[serde(default)]
    pub token: Option<Value>,
}

/// A plugin instance and its last heartbeat.
#[derive(Debug, Clone, Deserialize)]
pub struct Instance {
    /// Its id (e.g. the pod's name).
    pub instance_id: String,
    /// `healthy`, `degraded`, ...
    pub state: String,
    /// RFC 3339 time of its last heartbeat.
    pub last_seen: String,
    /// When the token it heartbeats with expires.
    #[serde(default)]
    pub token_expires_at: Option<String>,
}

/// A plugin's topics.
#[derive(Debug, Clone, Deserialize)]
pub struct Topics {
    /// Its events topic.
    pub events: String,
    /// Its dead-letter topic.
    pub dead_letter: String,
}

/// `GET /v1/plugins/{id}/lag`.
#[derive(Debug, Clone, Deserialize)]
pub struct Lag {
    /// The workers' consumer group.
    pub group: String,
    /// Per partition.
    pub partitions: Vec<PartitionLag>,
    /// The sum.
    pub total_lag: i64,
}

/// One partition's lag.
#[derive(Debug, Clone, Deserialize)]
pub struct PartitionLag {
    /// The partition.
    pub partition: i32,
    /// The group's committed offset.
    #[serde(default)]
    pub committed: Option<i64>,
    /// The partition's end.
    pub end: i64,
    /// What is left to consume.
    pub lag: i64,
}

/// One version's registrations, from `GET /v1/plugins/{id}/registrations`.
#[derive(Debug, Clone, Deserialize)]
pub struct Registration {
    /// The version.
    pub version: String,
    /// Its first registration.
    pub first_registered_at: String,
    /// Its last registration.
    pub last_registered_at: String,
    /// SHA-256 of its manifest as stored.
    pub manifest_sha256: String,
    /// Whether it is the version registered now.
    pub current: bool,
}

/// The most recent heartbeat of any instance.
fn last_heartbeat(instances: &[Instance]) -> Option<&str> {
    instances.iter().map(|i| i.last_seen.as_str()).max()
}

/// `GET /admin`: every plugin, for admins.
pub async fn fleet(caller: Caller, State(console): State<Console>) -> Page {
    if !caller.principal.is_admin() {
        return Err(layout::message(
            &console,
            Some(&caller),
            "Only administrators may see the fleet.",
            403,
        ));
    }
    let api = Api::new(&console.api, &caller.principal);
    let plugins = api
        .get::<Vec<PluginDetail>>("/v1/plugins")
        .await
        .or_page(&console, &caller)?;
    let mut lags = Vec::with_capacity(plugins.len());
    for plugin in &plugins {
        lags.push(
            api.get::<Lag>(&format!("/v1/plugins/{}/lag", plugin.plugin.id))
                .await,
        );
    }
    let body = html! {
        form.card.inline-form method="get" action=(console.url("/teams")) {
            label for="open-team" { "Open a team's pages" }
            input #open-team type="text" name="team" required autocomplete="off";
            button type="submit" { "Open" }
        }
        h2 { "Plugins" }
        @if plugins.is_empty() {
            p { "No plugin is registered." }
        } @else {
            div.table-wrap {
                table #fleet {
                    caption.visually-hidden { "Registered plugins" }
                    thead { tr {
                        th scope="col" { "Plugin" } th scope="col" { "Version" } th scope="col" { "Status" }
                        th scope="col" { "Instances" } th scope="col" { "Last heartbeat" }
                        th scope="col" { "Topics" } th scope="col" { "Consumer lag" }
                    } }
                    tbody {
                        @for (plugin, lag) in plugins.iter().zip(&lags) {
                            tr #{"fleet-" (plugin.plugin.id)} {
                                th scope="row" { a href=(console.url(&format!("/plugins/{}", plugin.plugin.id))) { (plugin.plugin.id) } }
                                td { (plugin.plugin.version) }
                                td { (layout::status(&plugin.plugin.status)) }
                                td { (plugin.plugin.active_instances) " live of " (plugin.instances.len()) }
                                td { (last_heartbeat(&plugin.instances).unwrap_or("never")) }
                                td { @if let Some(topics) = &plugin.topics { code { (topics.events) } br; code { (topics.dead_letter) } } }
                                td { (lag_cell(lag)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&console, Some(&caller), Section::Fleet, "Fleet", body).into_response())
}

fn lag_cell(lag: &Result<Lag, Refusal>) -> Markup {
    match lag {
        Ok(lag) => html! { (lag.total_lag) " events" },
        Err(refusal) => html! { span.muted title=(refusal.detail()) { "unknown" } },
    }
}

/// `GET /teams?team=...`: an admin opens a team's pages.
#[derive(Debug, Deserialize)]
pub struct OpenTeam {
    team: String,
}

/// `GET /teams`: to the catalog of the team asked for.
pub async fn open_team(caller: Caller, State(console): State<Console>, Query(open): Query<OpenTeam>) -> Page {
    let team = open.team.trim();
    if check_team_id(team.as_bytes()).is_err() {
        return Err(layout::message(
            &console,
            Some(&caller),
            "That is not a team id.",
            422,
        ));
    }
    Ok(Redirect::to(&console.url(&format!("/teams/{team}/catalog"))).into_response())
}

/// `GET /plugins/{id}`: one plugin, for an admin or the plugin itself.
pub async fn plugin(caller: Caller, State(console): State<Console>, Path(id): Path<String>) -> Page {
    if check_plugin_id(&id).is_err() {
        return Err(layout::not_found(&console, &caller));
    }
    if !caller.principal.may_act_as_plugin(&id) {
        return Err(layout::message(
            &console,
            Some(&caller),
            "Only an admin or the plugin itself may see this page.",
            403,
        ));
    }
    let api = Api::new(&console.api, &caller.principal);
    let detail = api
        .get::<PluginDetail>(&format!("/v1/plugins/{id}"))
        .await
        .or_page(&console, &caller)?;
    let lag = api.get::<Lag>(&format!("/v1/plugins/{id}/lag")).await;
    let letters = api
        .get::<Vec<Letter>>(&format!("/v1/plugins/{id}/dead-letters?limit=50"))
        .await;
    let registrations = api
        .get::<Vec<Registration>>(&format!("/v1/plugins/{id}/registrations?limit=20"))
        .await;
    let plugin = &detail.plugin;
    let body = html! {
        p.status { (layout::status(&plugin.status)) " version " (plugin.version) }
        dl.facts {
            @if let Some(url) = &detail.url { dt { "Service" } dd { code { (url) } } }
            @if let Some(topics) = &detail.topics {
                dt { "Events topic" } dd { code { (topics.events) } }
                dt { "Dead-letter topic" } dd { code { (topics.dead_letter) } }
            }
            @if let Some(expires) = detail.token.as_ref().and_then(|t| t.get("expires_at")).and_then(Value::as_str) {
                dt { "Workers' token expires" } dd { (expires) }
            }
        }
        h2 { "Instances" }
        @if detail.instances.is_empty() {
            p { "No instance has sent a heartbeat." }
        } @else {
            div.table-wrap { table #instances {
                caption.visually-hidden { "Instances of " (plugin.id) }
                thead { tr { th scope="col" { "Instance" } th scope="col" { "State" } th scope="col" { "Last heartbeat" } th scope="col" { "Token expires" } } }
                tbody { @for instance in &detail.instances { tr {
                    th scope="row" { (instance.instance_id) } td { (instance.state) } td { (instance.last_seen) }
                    td { (instance.token_expires_at.as_deref().unwrap_or("not reported")) }
                } } }
            } }
        }
        h2 { "Consumer lag" }
        @match &lag {
            Ok(lag) => {
                p { "Group " code { (lag.group) } ": " (lag.total_lag) " events not yet consumed." }
                div.table-wrap { table #lag {
                    caption.visually-hidden { "Lag per partition" }
                    thead { tr { th scope="col" { "Partition" } th scope="col" { "Committed" } th scope="col" { "End" } th scope="col" { "Lag" } } }
                    tbody { @for p in &lag.partitions { tr {
                        th scope="row" { (p.partition) }
                        td { @if let Some(c) = p.committed { (c) } @else { "none" } }
                        td { (p.end) } td { (p.lag) }
                    } } }
                } }
            }
            Err(refusal) => p.muted { "Not available: " (refusal.detail()) }
        }
        h2 { "Dead letters, every team" }
        @match &letters {
            Ok(letters) => (letters_table(&console, letters, None, |letter| {
                format!("/plugins/{id}/dead-letters/{}", letter.id)
            })),
            Err(refusal) => p.muted { "Not available: " (refusal.detail()) }
        }
        h2 { "Registration history" }
        @match &registrations {
            Ok(registrations) if registrations.is_empty() => p { "No registration recorded yet." },
            Ok(registrations) => div.table-wrap { table #registrations {
                caption.visually-hidden { "Registrations of " (plugin.id) ", newest first" }
                thead { tr {
                    th scope="col" { "Version" } th scope="col" { "First registered" }
                    th scope="col" { "Last registered" } th scope="col" { "Manifest (SHA-256)" }
                } }
                tbody { @for r in registrations { tr {
                    th scope="row" { (r.version) @if r.current { " " span.badge.up { "current" } } }
                    td { (r.first_registered_at) } td { (r.last_registered_at) }
                    td { code title=(r.manifest_sha256) { (r.manifest_sha256.get(..12).unwrap_or(&r.manifest_sha256)) } }
                } } }
            } },
            Err(refusal) => p.muted { "Not available: " (refusal.detail()) }
        }
        @if caller.principal.is_admin() {
            h2 { "Deregister" }
            p { "Removes the plugin's registration, every team's installations and configs of it, and its instances. Its topics and their data are kept." }
            p { a.danger href=(console.url(&format!("/plugins/{id}/deregister"))) { "Deregister " (plugin.id) "…" } }
        }
    };
    let section = if caller.principal.is_admin() {
        Section::Fleet
    } else {
        Section::Plugin
    };
    Ok(layout::page(&console, Some(&caller), section, &plugin.name, body).into_response())
}

/// `GET /plugins/{id}/deregister`: the confirmation form (admins).
pub async fn confirm_deregister(
    caller: Caller,
    State(console): State<Console>,
    Path(id): Path<String>,
) -> Page {
    if check_plugin_id(&id).is_err() {
        return Err(layout::not_found(&console, &caller));
    }
    if !caller.principal.is_admin() {
        return Err(layout::message(
            &console,
            Some(&caller),
            "Only administrators may deregister a plugin.",
            403,
        ));
    }
    let api = Api::new(&console.api, &caller.principal);
    let (plugin, etag) = match api.get_tagged::<Plugin>(&format!("/v1/plugins/{id}")).await {
        Ok(tagged) => (tagged.value, tagged.etag.unwrap_or_default()),
        Err(refusal) => return Err(layout::refusal(&console, &caller, &refusal)),
    };
    deregister_form(&console, &caller, &plugin, &etag, None, StatusCode::OK)
}

fn deregister_form(
    console: &Console,
    caller: &Caller,
    plugin: &Plugin,
    etag: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Page {
    let body = html! {
        p { "This removes " strong { (plugin.name) } " (" code { (plugin.id) } ", version " (plugin.version) ") for every team: "
            "their installations and configs of it go, and the router stops routing to it. Its topics and their data stay. "
            "Registering it again does not bring the teams' installations back." }
        form.card method="post" #deregister {
            input type="hidden" name=(CSRF_FIELD) value=(caller.csrf);
            input type="hidden" name="etag" value=(etag);
            div.field .invalid[error.is_some()] {
                label for="confirm" { "Type the plugin's id, " code { (plugin.id) } ", to confirm" }
                input #confirm type="text" name="confirm" required autocomplete="off"
                    aria-describedby=[error.is_some().then_some("confirm-error")] aria-invalid=[error.is_some().then_some("true")];
                @if let Some(error) = error { p.field-error #confirm-error { (error) } }
            }
            button.danger type="submit" { "Deregister" }
        }
        p { a href=(console.url(&format!("/plugins/{}", plugin.id))) { "Cancel" } }
    };
    let title = format!("Deregister {}", plugin.name);
    Ok((
        status,
        layout::page(console, Some(caller), Section::Fleet, &title, body),
    )
        .into_response())
}

/// `POST /plugins/{id}/deregister`: deregisters once the id is typed, if the plugin is still the version
/// the confirmation showed.
pub async fn deregister(State(console): State<Console>, Path(id): Path<String>, posted: Posted) -> Page {
    let caller = &posted.caller;
    if check_plugin_id(&id).is_err() {
        return Err(layout::not_found(&console, caller));
    }
    let api = Api::new(&console.api, &caller.principal);
    let etag = posted.get("etag").unwrap_or_default();
    if posted.get("confirm").map(str::trim) != Some(id.as_str()) {
        let plugin = api
            .get::<Plugin>(&format!("/v1/plugins/{id}"))
            .await
            .or_page(&console, caller)?;
        let error = "That is not the plugin's id; nothing was removed.";
        return deregister_form(
            &console,
            caller,
            &plugin,
            etag,
            Some(error),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let condition = if etag.is_empty() {
        Condition::Always
    } else {
        Condition::Unchanged(etag)
    };
    match api
        .send::<Value>(Method::DELETE, &format!("/v1/plugins/{id}"), None, condition)
        .await
    {
        Ok(_) => Ok(Redirect::to(&console.url("/admin")).into_response()),
        Err(refusal) if refusal.status == StatusCode::PRECONDITION_FAILED => Err(layout::message(
            &console,
            Some(caller),
            "The plugin registered again since the confirmation was shown; nothing was removed. Look again \
             before deregistering it.",
            409,
        )),
        Err(refusal) => Err(layout::refusal(&console, caller, &refusal)),
    }
}
