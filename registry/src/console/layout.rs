//! The page shell every console page shares (head, navigation for the caller's role, sign-out, main
//! landmark) and the small pieces several pages use: a status badge, a refusal of the API as a page.
//!
//! Markup is [`maud`]: every interpolated value is escaped, so a plugin's name or a problem's detail can
//! never become markup. No inline script or style anywhere (the Content-Security-Policy forbids them).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::api::Refusal;
use super::{CSRF_FIELD, Caller, Console, assets};
use crate::auth::Principal;

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// A team's plugin catalog.
    Catalog,
    /// A team's installations (and their config pages).
    Installations,
    /// A team's dead letters.
    DeadLetters,
    /// A team's backfills.
    Backfills,
    /// The admin's fleet, and the plugin pages an admin opens from it.
    Fleet,
    /// A plugin's own page.
    Plugin,
    /// Pages outside the navigation (sign-in, errors).
    None,
}

/// A whole page: `title` in the tab and as the heading, `body` in the main landmark.
pub fn page(
    console: &Console,
    caller: Option<&Caller>,
    section: Section,
    title: &str,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Switchyard" }
                link rel="stylesheet" href=(console.url(&assets::url("console.css")));
                script src=(console.url(&assets::url("console.js"))) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href=(console.url("")) { "Switchyard" }
                    @if let Some(caller) = caller {
                        (navigation(console, caller, section))
                        div.who {
                            span { (who(&caller.principal)) }
                            // Behind an authenticating proxy, signing out is the proxy's.
                            @if console.proxy.is_none() {
                                form method="post" action=(console.url("/sign-out")) {
                                    input type="hidden" name=(CSRF_FIELD) value=(caller.csrf);
                                    button.link type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn navigation(console: &Console, caller: &Caller, section: Section) -> Markup {
    let entries: Vec<(Section, String, &str)> = match &caller.principal {
        Principal::Team(team) => vec![
            (Section::Catalog, format!("/teams/{team}/catalog"), "Catalog"),
            (
                Section::Installations,
                format!("/teams/{team}/installations"),
                "Installations",
            ),
            (
                Section::Backfills,
                format!("/teams/{team}/backfills"),
                "Backfills",
            ),
            (
                Section::DeadLetters,
                format!("/teams/{team}/dead-letters"),
                "Dead letters",
            ),
        ],
        Principal::Admin => vec![(Section::Fleet, "/admin".to_owned(), "Fleet")],
        Principal::Plugin(plugin) => vec![(Section::Plugin, format!("/plugins/{plugin}"), "Plugin")],
    };
    html! {
        nav aria-label="Main" {
            ul {
                @for (entry, href, label) in &entries {
                    li {
                        @if *entry == section {
                            a href=(console.url(href)) aria-current="page" { (label) }
                        } @else {
                            a href=(console.url(href)) { (label) }
                        }
                    }
                }
            }
        }
    }
}

/// How the header names the caller.
pub fn who(principal: &Principal) -> String {
    match principal {
        Principal::Admin => "Administrator".to_owned(),
        Principal::Team(team) => format!("Team {team}"),
        Principal::Plugin(plugin) => format!("Plugin {plugin}"),
    }
}

/// A plugin's status (`up`, `degraded`, `down`) as a badge that says it in words, not only in colour.
pub fn status(status: &str) -> Markup {
    let class = match status {
        "up" => "badge up",
        "degraded" => "badge degraded",
        _ => "badge down",
    };
    html! { span class=(class) { (status) } }
}

/// A page with one message and the given status.
pub fn message(console: &Console, caller: Option<&Caller>, text: &str, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! { p.error role="alert" { (text) } };
    (status, page(console, caller, Section::None, title, body)).into_response()
}

/// The API's refusal as a page with the same status: a team that asks for another team's page sees the
/// API's 403, an unknown plugin its 404.
pub fn refusal(console: &Console, caller: &Caller, refusal: &Refusal) -> Response {
    message(console, Some(caller), &refusal.detail(), refusal.status.as_u16())
}

/// 404 for a console path that is no page.
pub fn not_found(console: &Console, caller: &Caller) -> Response {
    message(
        console,
        Some(caller),
        "There is no such page in the console.",
        404,
    )
}

/// 403 for a form posted without its CSRF token or with a wrong one.
pub fn refused_csrf(console: &Console, caller: &Caller) -> Response {
    message(
        console,
        Some(caller),
        "The form was refused: it did not carry this session's token (it may come from another site, or \
         from before you signed in again). Reload the page and try again.",
        403,
    )
}
