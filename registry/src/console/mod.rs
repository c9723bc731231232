//! The web console: server-rendered pages under `console.path` (default `/console`) for teams, plugin
//! teams and admins, served by the registry itself (`docs/console.md` has the why and the page map).
//!
//! **Every action goes through the API.** A page reads and writes by calling the registry's own v1 router
//! in process ([`api::Api`]) as the signed-in caller ([`crate::auth::Delegated`]), so the console can do
//! nothing that caller could not do with its token and `curl`: the authorization is the API's, not a copy.
//!
//! **Sessions** ([`session`]): signing in verifies a registry token once and sets an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure` over TLS) that names the caller and its end; every form that changes
//! something carries a CSRF token bound to that cookie, checked before the handler runs ([`Caller`] and
//! [`Posted`]). Unauthenticated requests reach only the sign-in page and the static assets; any other page
//! redirects to sign-in.
//!
//! **Headers**: a strict Content-Security-Policy (no inline script or style, nothing from another origin),
//! `frame-ancestors 'none'`, `no-store`, `nosniff` and `no-referrer` on every answer ([`harden`]).
//!
//! | module        | what                                                                   |
//! |---------------|------------------------------------------------------------------------|
//! | [`session`]   | the cookie and CSRF tokens (pure)                                      |
//! | [`form`]      | a config form from a `config_schema`, and the config a form asks for (pure) |
//! | [`api`]       | calls of the v1 router in process                                      |
//! | [`layout`]    | the page shell and shared pieces                                       |
//! | [`sign_in`]   | sign-in, sign-out, the home redirect                                   |
//! | [`team`]      | a team's catalog, installations and config forms                       |
//! | [`installation`] | an installation's routing (types, forms, filter); a new installation |
//! | [`backfills`] | a team's backfills with their progress; start, cancel                  |
//! | [`dead_letters`] | a team's dead letters and their replay; a plugin's across teams     |
//! | [`plugins`]   | the admin's fleet, a plugin's own page, deregistration                 |
//! | [`proxy`]     | single sign-on: identity headers of an authenticating proxy (pure mapping) |
//! | [`assets`]    | the embedded stylesheet and script                                     |

// A page handler answers a page either way (the one asked for, or one that says why not), so its
// `Result`'s error side is as large as its success side.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod assets;
pub mod backfills;
pub mod dead_letters;
pub mod form;
pub mod installation;
pub mod layout;
pub mod plugins;
pub mod proxy;
pub mod session;
pub mod sign_in;
pub mod team;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use self::session::{Session, SessionError, SessionKey};
use crate::auth::{KeySet, Principal};
use crate::config::{ConsoleProxyConfig, SecureCookies};

/// What a page handler answers: the page asked for, or the page that says why not (a refusal of the API,
/// a 404, a sign-in redirect), so that `?` can return the latter.
pub type Page = Result<Response, Response>;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "switchyard_console";
/// The sign-in form's nonce cookie's name.
pub const SIGN_IN_COOKIE: &str = "switchyard_console_sign_in";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    /// The v1 API, called in process.
    pub api: axum::Router,
    /// Verifies the tokens people sign in with.
    pub keys: KeySet,
    /// Signs sessions and CSRF tokens.
    pub key: SessionKey,
    /// The path prefix, e.g. `/console`.
    pub path: Arc<str>,
    /// Longest a session lasts.
    pub session_ttl: Duration,
    /// When cookies carry `Secure`.
    pub secure_cookies: SecureCookies,
    /// Identity from an authenticating proxy's headers instead of sign-in, when enabled.
    pub proxy: Option<Arc<ConsoleProxyConfig>>,
    /// Where sign-in links are spent; without it (unit tests) links do not sign in.
    pub spent_links: Option<sign_in::SpentLinks>,
}

impl Console {
    /// The console's URL of `page` (which starts with `/`, or is empty for the home page).
    pub fn url(&self, page: &str) -> String {
        format!("{}{page}", self.path)
    }

    /// Whether a cookie set in answer to a request with these headers is `Secure`.
    fn secure(&self, headers: &HeaderMap) -> bool {
        self.secure_cookies == SecureCookies::Always
            || headers
                .get("x-forwarded-proto")
                .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"))
    }
}

/// Why `console.path` is not usable.
pub fn check_path(path: &str) -> Result<(), String> {
    let valid = path.starts_with('/')
        && !path.ends_with('/')
        && path[1..].split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid && !path.starts_with("/v1") {
        Ok(())
    } else {
        Err("must be /<segment>[/<segment>...] of letters, digits, '-' and '_', not under /v1".to_owned())
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The console's routes, under its path.
pub fn router(console: Console) -> Router {
    let pages = Router::new()
        .route("/", get(sign_in::home))
        .route("/sign-in", get(sign_in::page).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/assets/{name}", get(assets::serve))
        .route("/teams/{team}/catalog", get(team::catalog))
        .route("/teams/{team}/installations", get(team::installations))
        .route(
            "/teams/{team}/plugins/{id}/installations/{installation}/enabled",
            post(team::set_enabled),
        )
        .route(
            "/teams/{team}/plugins/{id}/installations/{installation}/config",
            get(team::config_page).post(team::save_config),
        )
        .route(
            "/teams/{team}/plugins/{id}/installations/{installation}",
            get(installation::page).post(installation::save),
        )
        .route("/teams/{team}/plugins/{id}/add", get(installation::add))
        .route(
            "/teams/{team}/plugins/{id}/installations/{installation}/backfills",
            post(backfills::start),
        )
        .route("/teams/{team}/backfills", get(backfills::list))
        .route(
            "/teams/{team}/backfills/{backfill}/cancel",
            post(backfills::cancel),
        )
        .route("/teams/{team}/dead-letters", get(dead_letters::team_plugins))
        .route(
            "/teams/{team}/plugins/{id}/dead-letters",
            get(dead_letters::team_list),
        )
        .route(
            "/teams/{team}/plugins/{id}/dead-letters/replay",
            post(dead_letters::replay),
        )
        .route(
            "/teams/{team}/plugins/{id}/dead-letters/{letter}",
            get(dead_letters::team_letter),
        )
        .route("/admin", get(plugins::fleet))
        .route("/teams", get(plugins::open_team))
        .route("/plugins/{id}", get(plugins::plugin))
        .route(
            "/plugins/{id}/deregister",
            get(plugins::confirm_deregister).post(plugins::deregister),
        )
        .route(
            "/plugins/{id}/dead-letters/{letter}",
            get(dead_letters::plugin_letter),
        )
        .fallback(|caller: Caller, State(console): State<Console>| async move {
            layout::not_found(&console, &caller)
        })
        .layer(middleware::from_fn(harden))
        .with_state(console.clone());
    let home = console.path.to_string();
    Router::new()
        .route(
            &format!("{home}/"),
            get(move || async move { Redirect::to(&home) }),
        )
        .nest(&console.path, pages)
}

/// Sets the console's security headers on every answer.
async fn harden(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The signed-in caller of a page. A request without a valid session is redirected to the sign-in page
/// (with the page it asked for, to come back to); behind an authenticating proxy, the caller is who its
/// headers say ([`proxy`]), and a request they do not identify is refused.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// The CSRF token its forms carry.
    pub csrf: String,
    /// What the CSRF token is bound to: the session cookie, or the proxy's identity.
    binding: String,
}

impl FromRequestParts<Console> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        // Under `nest`, `uri` lost the console's prefix; the original has it.
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |o| &o.0)
            .clone();
        if let Some(proxy) = &console.proxy {
            let page_team = uri
                .path()
                .strip_prefix(&format!("{}/teams/", console.path))
                .and_then(|rest| rest.split('/').next());
            return match proxy::identify(proxy, &parts.headers, page_team) {
                Ok((user, principal)) => {
                    let binding = session::proxy_binding(&user, &principal);
                    Ok(Caller {
                        csrf: console.key.csrf_token(&binding),
                        principal,
                        binding,
                    })
                }
                Err(error) => Err(layout::message(
                    console,
                    None,
                    &format!("Not signed in: {error}."),
                    403,
                )),
            };
        }
        let cookie = request_cookie(&parts.headers, SESSION_COOKIE);
        match cookie.map(|c| {
            let opened = console.key.open(&c, now());
            (c, opened)
        }) {
            Some((cookie, Ok(Session { principal, .. }))) => Ok(Caller {
                csrf: console.key.csrf_token(&cookie),
                principal,
                binding: cookie,
            }),
            outcome => {
                let expired = matches!(outcome, Some((_, Err(SessionError::Expired))));
                let next = uri.path_and_query().map_or("", |p| p.as_str());
                let query = sign_in::query(next, expired);
                Err(Redirect::to(&console.url(&format!("/sign-in{query}"))).into_response())
            }
        }
    }
}

/// A form posted by a signed-in caller, its CSRF token checked: 403 when it is missing or wrong.
pub struct Posted {
    /// Who posted it.
    pub caller: Caller,
    /// Its fields, in order, the CSRF token left out.
    pub fields: Vec<(String, String)>,
}

impl Posted {
    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl FromRequest<Console> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, console: &Console) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let caller = Caller::from_request_parts(&mut parts, console).await?;
        let fields = read_form(Request::from_parts(parts, body), console).await?;
        let token = fields
            .iter()
            .find(|(key, _)| key == CSRF_FIELD)
            .map_or("", |(_, value)| value.as_str());
        if !console.key.check_csrf(&caller.binding, token) {
            return Err(layout::refused_csrf(console, &caller));
        }
        let fields = fields.into_iter().filter(|(key, _)| key != CSRF_FIELD).collect();
        Ok(Posted { caller, fields })
    }
}

/// The name-value pairs of an `application/x-www-form-urlencoded` body (at most 256 KiB).
async fn read_form(request: Request, console: &Console) -> Result<Vec<(String, String)>, Response> {
    let body = axum::body::to_bytes(request.into_body(), 256 * 1024)
        .await
        .map_err(|_| layout::message(console, None, "The form is too large.", 413))?;
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn request_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| session::cookie(value, name))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A console with a fixed key, for the pure parts' tests.
    pub(super) fn console() -> Console {
        Console {
            api: Router::new(),
            keys: KeySet::new(Some(&[7; 32]), &[], &[]).expect("an HS256 key"),
            key: SessionKey::new([1; 32]),
            path: "/console".into(),
            session_ttl: Duration::from_secs(3600),
            secure_cookies: SecureCookies::Auto,
            proxy: None,
            spent_links: None,
        }
    }

    #[test]
    fn the_console_path_is_one_or_more_plain_segments_outside_the_api() {
        for good in ["/console", "/ops/console", "/a_b-c"] {
            assert_eq!(check_path(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/",
            "console",
            "/console/",
            "//x",
            "/v1",
            "/v1/console",
            "/a b",
            "/a/../b",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cookies_are_secure_when_the_proxy_says_tls_or_always() {
        let mut console = console();
        let mut headers = HeaderMap::new();
        assert!(!console.secure(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS"));
        assert!(console.secure(&headers));
        console.secure_cookies = SecureCookies::Always;
        assert!(console.secure(&HeaderMap::new()));
    }
}
