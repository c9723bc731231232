//! Signing in and out, and the console's home.
//!
//! The sign-in page takes a registry token, pasted, or from a link `switchyardctl console login` prints:
//! `<console>/sign-in#token=...`, whose fragment never reaches a server or a log; the page's script moves
//! it into the form and submits it. The token is verified as the API would verify it.
//!
//! - A pasted API token gives a session of `console.session_ttl_ms` at most, never past the token's `exp`.
//! - A link's token says `"switchyard_use": "console-sign-in"` and has a `jti`: the API refuses it, and the
//!   sign-in spends it, once, by writing its `jti` to the `console_sign_ins` store topic only if no replica
//!   has ([`SpentLinks`], compare-and-set); the session then lasts `console.session_ttl_ms`. A second use
//!   of the link, on any replica, is refused. Spent records are removed once their token has expired.
//!
//! The form is bound to a nonce cookie ([`super::session`]), so another site cannot sign a browser in.

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use maud::html;
use serde::Deserialize;

use std::sync::Arc;

use super::layout::{self, Section};
use super::session::{Session, session_expiry, set_cookie};
use super::{CSRF_FIELD, Caller, Console, SESSION_COOKIE, SIGN_IN_COOKIE, now, read_form, request_cookie};
use crate::auth::{CONSOLE_SIGN_IN, Claims, Principal};
use crate::store::{Expect, Outcome, Store};

/// How long the sign-in form stays usable, in seconds.
const SIGN_IN_FORM_SECONDS: u64 = 600;

/// Longest `jti` of a sign-in link's token, in bytes.
const MAX_JTI_BYTES: usize = 128;

/// The record of spent sign-in links: a compacted store topic, keyed by the token's `jti`.
#[derive(Clone)]
pub struct SpentLinks {
    /// The registry's store.
    pub store: Arc<Store>,
    /// `topics.console_sign_ins`.
    pub topic: String,
}

/// A spent link's record.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Spent {
    /// When it was used, seconds since the epoch.
    spent_at: u64,
    /// When its token expires (after which the record may go).
    expires: u64,
}

/// Why a link's token did not sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// It was used before.
    Spent,
    /// It has no usable `jti`.
    NoId,
    /// The store did not take the record.
    Unavailable,
}

impl SpentLinks {
    /// Spends the link whose token is `claims`: written only if no replica wrote it before.
    pub async fn spend(&self, claims: &Claims) -> Result<(), LinkError> {
        let jti = claims
            .jti
            .as_deref()
            .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_BYTES && j.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or(LinkError::NoId)?;
        let record = Spent {
            spent_at: now(),
            expires: claims.exp,
        };
        let value = serde_json::to_vec(&record).map_err(|_| LinkError::Unavailable)?;
        match self
            .store
            .put_if(&self.topic, jti, Some(&value), Expect::Absent)
            .await
        {
            Ok(Outcome::Written(_)) => Ok(()),
            Ok(Outcome::Conflict(_)) => Err(LinkError::Spent),
            Err(error) => {
                tracing::warn!(%error, "recording a spent console sign-in link failed");
                Err(LinkError::Unavailable)
            }
        }
    }

    /// Removes the records of links whose token expired more than a minute before `now` (seconds): they
    /// cannot sign in again anyway. Every replica may do it; removing twice is harmless.
    pub async fn forget_expired(&self, now: u64) {
        let expired = self.store.entries_where(&self.topic, |_, value| {
            serde_json::from_slice::<Spent>(value).is_ok_and(|s| s.expires.saturating_add(60) < now)
        });
        for (jti, _) in expired {
            if let Err(error) = self.store.put(&self.topic, &jti, None).await {
                tracing::warn!(%error, "forgetting a spent console sign-in link failed");
                return;
            }
        }
    }
}

/// The sign-in page's query: where to go after, and why the caller is here.
#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    /// A console path to return to.
    #[serde(default)]
    next: Option<String>,
    /// The session had expired.
    #[serde(default)]
    expired: Option<String>,
}

/// The sign-in page's query string for a caller sent there from `next`.
pub fn query(next: &str, expired: bool) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("next", next);
    if expired {
        query.append_pair("expired", "1");
    }
    format!("?{}", query.finish())
}

/// `next` if it is a page of this console (a path under it, not another origin), else the home page.
fn return_to(console: &Console, next: Option<&str>) -> String {
    next.filter(|n| n.starts_with(&format!("{}/", console.path)) && !n.contains("//") && !n.contains('\\'))
        .map_or_else(|| console.url(""), str::to_owned)
}

/// `GET /`: the caller's first page.
pub async fn home(caller: Caller, State(console): State<Console>) -> Redirect {
    let page = match &caller.principal {
        Principal::Team(team) => format!("/teams/{team}/catalog"),
        Principal::Plugin(plugin) => format!("/plugins/{plugin}"),
        Principal::Admin => "/admin".to_owned(),
    };
    Redirect::to(&console.url(&page))
}

/// `GET /sign-in`.
pub async fn page(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(query): Query<SignInQuery>,
) -> Response {
    if console.proxy.is_some() {
        // The proxy signs people in; there is no token to paste.
        return Redirect::to(&console.url("")).into_response();
    }
    let note = query
        .expired
        .is_some()
        .then_some("Your session has ended. Sign in again.");
    form(&console, &headers, query.next.as_deref(), note, StatusCode::OK)
}

/// The sign-in form, with a fresh nonce cookie.
fn form(
    console: &Console,
    headers: &HeaderMap,
    next: Option<&str>,
    note: Option<&str>,
    status: StatusCode,
) -> Response {
    let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>());
    let cookie = set_cookie(
        SIGN_IN_COOKIE,
        &nonce,
        &console.path,
        SIGN_IN_FORM_SECONDS,
        console.secure(headers),
    );
    let body = html! {
        @if let Some(note) = note {
            p.error role="alert" #sign-in-note { (note) }
        }
        form.card method="post" action=(console.url("/sign-in")) #sign-in {
            input type="hidden" name=(CSRF_FIELD) value=(console.key.sign_in_token(&nonce));
            input type="hidden" name="next" value=(return_to(console, next));
            label for="token" { "Registry token" }
            p.hint #token-hint {
                "A team, plugin or admin token of this registry, e.g. from "
                code { "switchyardctl console login" } "."
            }
            textarea #token name="token" rows="4" required aria-describedby="token-hint"
                autocomplete="off" spellcheck="false" {}
            button type="submit" { "Sign in" }
        }
    };
    let page = layout::page(console, None, Section::None, "Sign in", body);
    (status, AppendHeaders([(header::SET_COOKIE, cookie)]), page).into_response()
}

/// `POST /sign-in`: verifies the token and starts a session.
pub async fn submit(State(console): State<Console>, request: Request) -> Response {
    if console.proxy.is_some() {
        return layout::message(
            &console,
            None,
            "Sign-in is done by the authenticating proxy here.",
            404,
        );
    }
    let headers = request.headers().clone();
    let fields = match read_form(request, &console).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    };
    let next = field("next");
    let nonce = request_cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if !console.key.check_sign_in(&nonce, field(CSRF_FIELD)) {
        let note = "The sign-in form had expired or came from another site. Sign in again.";
        return form(&console, &headers, Some(next), Some(note), StatusCode::FORBIDDEN);
    }
    let refused = |note: &str, status| form(&console, &headers, Some(next), Some(note), status);
    let (principal, claims) = match console.keys.verify_claims(field("token").trim()) {
        Ok(verified) => verified,
        Err(error) => {
            return refused(
                &format!("That token was not accepted: {error}."),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    let now = now();
    let ttl = console.session_ttl.as_secs();
    let expires = match claims.purpose.as_deref() {
        None => session_expiry(now, ttl, claims.exp),
        Some(CONSOLE_SIGN_IN) => {
            let spent = match &console.spent_links {
                Some(links) => links.spend(&claims).await,
                None => Err(LinkError::Unavailable),
            };
            match spent {
                Ok(()) => now.saturating_add(ttl),
                Err(LinkError::Spent) => {
                    let note = "This sign-in link was used already: a link signs in once. Ask for a new one.";
                    return refused(note, StatusCode::UNAUTHORIZED);
                }
                Err(LinkError::NoId) => {
                    return refused(
                        "This sign-in link's token has no usable jti.",
                        StatusCode::UNAUTHORIZED,
                    );
                }
                Err(LinkError::Unavailable) => {
                    let note =
                        "Signing in is not possible right now (the registry's store did not answer); retry.";
                    return refused(note, StatusCode::SERVICE_UNAVAILABLE);
                }
            }
        }
        Some(other) => {
            let note = format!("That token was not accepted: it is only for {other}.");
            return refused(&note, StatusCode::UNAUTHORIZED);
        }
    };
    let session = Session { principal, expires };
    let secure = console.secure(&headers);
    let cookies = [
        set_cookie(
            SESSION_COOKIE,
            &console.key.seal(&session),
            &console.path,
            session.expires.saturating_sub(now),
            secure,
        ),
        set_cookie(SIGN_IN_COOKIE, "", &console.path, 0, secure),
    ];
    (
        AppendHeaders(cookies.map(|c| (header::SET_COOKIE, c))),
        Redirect::to(&return_to(&console, Some(next))),
    )
        .into_response()
}

/// `POST /sign-out`: clears the session cookie.
pub async fn sign_out(State(console): State<Console>, headers: HeaderMap, posted: super::Posted) -> Response {
    let _ = posted;
    let cookie = set_cookie(SESSION_COOKIE, "", &console.path, 0, console.secure(&headers));
    (
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Redirect::to(&console.url("/sign-in")),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_pages_are_returned_to() {
        let console = super::super::tests::console();
        for (next, to) in [
            (Some("/console/teams/acme/catalog"), "/console/teams/acme/catalog"),
            (
                Some("/console/teams/acme/installations?x=1"),
                "/console/teams/acme/installations?x=1",
            ),
            (Some("https://evil.example/console/"), "/console"),
            (Some("/console//evil.example"), "/console"),
            (Some("/console/\\evil.example"), "/console"),
            (Some("/consolex/"), "/console"),
            (Some("/v1/plugins"), "/console"),
            (None, "/console"),
        ] {
            assert_eq!(return_to(&console, next), to, "{next:?}");
        }
        assert_eq!(
            query("/console/a?b=c", true),
            "?next=%2Fconsole%2Fa%3Fb%3Dc&expired=1"
        );
    }
}
