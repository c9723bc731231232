//! The console over HTTP, without a browser: what an attacker's client would try. Unauthenticated requests
//! reach only the sign-in page and the assets; a team's session sees and changes nothing of another team's
//! (pages and the forms they post); a form without this session's CSRF token changes nothing; the admin
//! pages refuse a team; cookies and headers are what `docs/console.md` says; single sign-on through an
//! authenticating proxy maps groups to roles and refuses what it cannot map.

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard_registry::auth::{CONSOLE_SIGN_IN, Claims, Role, mint_hs256};
use switchyard_registry::console::{SESSION_COOKIE, SIGN_IN_COOKIE};
use switchyard_tests::registries::{Answer, HS256_SECRET, InProcessRegistry, admin, plugin, team};

/// A registered plugin with a config schema, enabled and configured for `acme` and `globex`.
async fn registry_with_two_teams(overrides: &[(&str, &str)]) -> InProcessRegistry {
    let registry = InProcessRegistry::start(overrides).await;
    let manifest = json!({
        "id": "sheets-export", "name": "Sheets export", "version": "1.0.0",
        "url": "http://127.0.0.1:9", "events": ["response.submitted"], "actions": [],
        "config_schema": {"type": "object", "required": ["spreadsheet_id"],
                          "properties": {"spreadsheet_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}}}
    });
    let registered = registry
        .call(
            "POST",
            "/v1/plugins",
            Some(&plugin("sheets-export")),
            Some(&manifest),
        )
        .await;
    assert!(registered.status.is_success(), "{registered:?}");
    for team_id in ["acme", "globex"] {
        let token = team(team_id);
        let base = format!("/v1/teams/{team_id}/plugins/sheets-export");
        let enabled = registry
            .call("PUT", &base, Some(&token), Some(&json!({"enabled": true})))
            .await;
        assert_eq!(enabled.status, StatusCode::OK, "{enabled:?}");
        let config = json!({"spreadsheet_id": format!("{team_id}-sheet")});
        let configured = registry
            .call("PUT", &format!("{base}/config"), Some(&token), Some(&config))
            .await;
        assert_eq!(configured.status, StatusCode::OK, "{configured:?}");
    }
    registry
}

/// The text of an answer's body (its HTML).
fn html(answer: &Answer) -> String {
    match &answer.json {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The `value` of the first hidden input named `name` in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap_or_default().to_owned()
}

/// The value of cookie `name` set by an answer.
fn set_cookie(answer: &Answer, name: &str) -> Option<String> {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The `Max-Age` of a `Set-Cookie` value, in seconds.
fn max_age(set_cookie: &str) -> u64 {
    let value = set_cookie.split("Max-Age=").nth(1).expect("a Max-Age");
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .parse()
        .expect("seconds")
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap_or_default()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

/// A browser's session: its cookie and the CSRF token its pages carry.
struct Session<'a> {
    registry: &'a InProcessRegistry,
    cookie: String,
    csrf: String,
}

/// Posts `token` through a fresh sign-in form, as a browser would.
async fn post_sign_in(registry: &InProcessRegistry, token: &str) -> Answer {
    let form = registry
        .call_raw("GET", "/console/sign-in", None, &[], None)
        .await;
    assert_eq!(form.status, StatusCode::OK);
    let nonce = cookie_value(&set_cookie(&form, SIGN_IN_COOKIE).expect("a sign-in cookie"));
    let body = format!(
        "token={token}&csrf={}&next=%2Fconsole",
        hidden(&html(&form), "csrf")
    );
    registry
        .call_raw(
            "POST",
            "/console/sign-in",
            None,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("cookie", &format!("{SIGN_IN_COOKIE}={nonce}")),
            ],
            Some(body.into_bytes()),
        )
        .await
}

impl<'a> Session<'a> {
    /// Signs in with `token` through the sign-in form.
    async fn sign_in(registry: &'a InProcessRegistry, token: &str) -> Session<'a> {
        let signed_in = post_sign_in(registry, token).await;
        assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{signed_in:?}");
        let cookie = cookie_value(&set_cookie(&signed_in, SESSION_COOKIE).expect("a session cookie"));
        let mut session = Session {
            registry,
            cookie,
            csrf: String::new(),
        };
        let home = session.get("/console").await;
        let page = session.get(home.headers["location"].to_str().unwrap()).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        session.csrf = hidden(&html(&page), "csrf");
        session
    }

    async fn get(&self, path: &str) -> Answer {
        let cookie = format!("{SESSION_COOKIE}={}", self.cookie);
        self.registry
            .call_raw("GET", path, None, &[("cookie", &cookie)], None)
            .await
    }

    /// Posts a form; `csrf` replaces this session's token when given.
    async fn post(&self, path: &str, fields: &[(&str, &str)], csrf: Option<&str>) -> Answer {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("csrf", csrf.unwrap_or(&self.csrf));
        for (key, value) in fields {
            form.append_pair(key, value);
        }
        let cookie = format!("{SESSION_COOKIE}={}", self.cookie);
        self.registry
            .call_raw(
                "POST",
                path,
                None,
                &[
                    ("cookie", &cookie),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                Some(form.finish().into_bytes()),
            )
            .await
    }
}

/// Every page of the console, by a team's and a plugin's names (GET), and every form (POST).
fn pages(team: &str) -> Vec<String> {
    let installation = format!("/console/teams/{team}/plugins/sheets-export/installations/default");
    vec![
        "/console".to_owned(),
        "/console/admin".to_owned(),
        "/console/teams?team=acme".to_owned(),
        format!("/console/teams/{team}/catalog"),
        format!("/console/teams/{team}/installations"),
        installation.clone(),
        format!("{installation}/config"),
        format!("/console/teams/{team}/plugins/sheets-export/add?installation=second"),
        format!("/console/teams/{team}/backfills"),
        format!("/console/teams/{team}/dead-letters"),
        format!("/console/teams/{team}/plugins/sheets-export/dead-letters"),
        format!("/console/teams/{team}/plugins/sheets-export/dead-letters/0-0"),
        "/console/plugins/sheets-export".to_owned(),
        "/console/plugins/sheets-export/deregister".to_owned(),
        "/console/plugins/sheets-export/dead-letters/0-0".to_owned(),
        "/console/no-such-page".to_owned(),
    ]
}

fn forms(team: &str) -> Vec<String> {
    let installation = format!("/console/teams/{team}/plugins/sheets-export/installations/default");
    vec![
        format!("{installation}/enabled"),
        format!("{installation}/config"),
        installation.clone(),
        format!("{installation}/backfills"),
        format!("/console/teams/{team}/backfills/0190a3c4-0000-7000-8000-000000000000/cancel"),
        format!("/console/teams/{team}/plugins/sheets-export/dead-letters/replay"),
        "/console/plugins/sheets-export/deregister".to_owned(),
        "/console/sign-out".to_owned(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_only_the_sign_in_page_and_the_assets_answer() {
    let registry = registry_with_two_teams(&[]).await;
    for path in pages("acme") {
        let answer = registry.call_raw("GET", &path, None, &[], None).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "GET {path}: {answer:?}");
        let location = answer.headers["location"].to_str().unwrap();
        assert!(
            location.starts_with("/console/sign-in?next="),
            "GET {path} -> {location}"
        );
    }
    for path in forms("acme") {
        let answer = registry
            .call_raw(
                "POST",
                &path,
                None,
                &[("content-type", "application/x-www-form-urlencoded")],
                Some(b"enabled=false".to_vec()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "POST {path}: {answer:?}");
    }
    // A forged or changed session cookie is no session.
    let forged = format!("{SESSION_COOKIE}=djEKYWRtaW4KCjk5OTk5OTk5OTk.AAAA");
    let answer = registry
        .call_raw("GET", "/console/admin", None, &[("cookie", &forged)], None)
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    // The sign-in page and the assets it links.
    let sign_in = registry
        .call_raw("GET", "/console/sign-in", None, &[], None)
        .await;
    assert_eq!(sign_in.status, StatusCode::OK);
    let page = html(&sign_in);
    for asset in page
        .split("\"/console/assets/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
    {
        let answer = registry
            .call_raw("GET", &format!("/console/assets/{asset}"), None, &[], None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{asset}");
        assert!(
            answer.headers["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
    }
    let missing = registry
        .call_raw("GET", "/console/assets/other.js", None, &[], None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Signing in needs the form's own token: posting a token from elsewhere is refused.
    let answer = registry
        .call_raw(
            "POST",
            "/console/sign-in",
            None,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(format!("token={}&csrf=x", admin()).into_bytes()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&answer, SESSION_COOKIE).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_session_sees_and_changes_nothing_of_another_team() {
    let registry = registry_with_two_teams(&[]).await;
    let acme = Session::sign_in(&registry, &team("acme")).await;
    let own = acme
        .get("/console/teams/acme/plugins/sheets-export/installations/default/config")
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(html(&own).contains("acme-sheet"));
    for path in pages("globex").iter().filter(|p| p.contains("/teams/globex")) {
        let mut answer = acme.get(path).await;
        if answer.status == StatusCode::SEE_OTHER {
            // `add` only sends the browser on to the installation's page, which is the one to refuse.
            let location = answer.headers["location"].to_str().unwrap().to_owned();
            assert!(
                location.starts_with("/console/teams/globex/"),
                "GET {path} -> {location}"
            );
            answer = acme.get(&location).await;
        }
        assert!(
            answer.status == StatusCode::FORBIDDEN || answer.status == StatusCode::NOT_FOUND,
            "GET {path}: {answer:?}"
        );
        assert!(
            !html(&answer).contains("globex-sheet"),
            "GET {path} shows globex's config"
        );
    }
    let fields = [
        ("enabled", "false"),
        ("spreadsheet_id", "stolen"),
        ("letters", "0-0"),
        ("since", "2026-01-01"),
    ];
    for path in forms("globex").iter().filter(|p| p.contains("/teams/globex")) {
        let answer = acme.post(path, &fields, None).await;
        assert!(
            answer.status == StatusCode::FORBIDDEN || answer.status == StatusCode::NOT_FOUND,
            "POST {path}: {answer:?}"
        );
    }
    // Nothing of globex's changed.
    let globex = registry
        .call(
            "GET",
            "/v1/teams/globex/plugins/sheets-export/config",
            Some(&admin()),
            None,
        )
        .await;
    assert_eq!(globex.json["config"]["spreadsheet_id"], "globex-sheet");
    let enabled = registry
        .call("GET", "/v1/teams/globex/installations", Some(&admin()), None)
        .await;
    assert_eq!(enabled.json[0]["enabled"], true);
    // The admin pages refuse a team.
    for path in [
        "/console/admin",
        "/console/plugins/sheets-export",
        "/console/plugins/sheets-export/deregister",
    ] {
        assert_eq!(acme.get(path).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    let answer = acme
        .post(
            "/console/plugins/sheets-export/deregister",
            &[("confirm", "sheets-export")],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let still = registry
        .call("GET", "/v1/plugins/sheets-export", Some(&admin()), None)
        .await;
    assert_eq!(still.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_this_sessions_csrf_token_changes_nothing() {
    let registry = registry_with_two_teams(&[]).await;
    let acme = Session::sign_in(&registry, &team("acme")).await;
    let other = Session::sign_in(&registry, &team("acme")).await;
    let path = "/console/teams/acme/plugins/sheets-export/installations/default/enabled";
    for csrf in ["", "forged", other.csrf.as_str()] {
        if csrf == other.csrf && other.cookie == acme.cookie {
            continue; // Two sign-ins in the same second make the same cookie, hence the same token.
        }
        let answer = acme.post(path, &[("enabled", "false")], Some(csrf)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "csrf {csrf:?}: {answer:?}");
    }
    let listed = registry
        .call("GET", "/v1/teams/acme/installations", Some(&admin()), None)
        .await;
    assert_eq!(listed.json[0]["enabled"], true, "nothing changed");
    let answer = acme
        .post(path, &[("enabled", "false"), ("return", "installations")], None)
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{answer:?}");
    let listed = registry
        .call("GET", "/v1/teams/acme/installations", Some(&admin()), None)
        .await;
    assert_eq!(
        listed.json[0]["enabled"], false,
        "this session's token is accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_and_headers_are_the_documented_ones() {
    let registry = registry_with_two_teams(&[("CONSOLE__SESSION_TTL_MS", "120000")]).await;
    let form = registry
        .call_raw(
            "GET",
            "/console/sign-in",
            None,
            &[("x-forwarded-proto", "https")],
            None,
        )
        .await;
    let nonce = set_cookie(&form, SIGN_IN_COOKIE).unwrap();
    assert!(
        nonce.contains("; HttpOnly") && nonce.contains("; SameSite=Strict") && nonce.ends_with("; Secure"),
        "{nonce}"
    );
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(form.headers[name], value, "{name}");
    }
    let page = html(&form);
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "no inline script or style"
    );
    let body = format!(
        "token={}&csrf={}&next=%2Fconsole",
        team("acme"),
        hidden(&page, "csrf")
    );
    let signed_in = registry
        .call_raw(
            "POST",
            "/console/sign-in",
            None,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("cookie", &format!("{SIGN_IN_COOKIE}={}", cookie_value(&nonce))),
                ("x-forwarded-proto", "https"),
            ],
            Some(body.into_bytes()),
        )
        .await;
    let session = set_cookie(&signed_in, SESSION_COOKIE).unwrap();
    assert!(
        session.contains("; Path=/console;") && session.contains("; HttpOnly; SameSite=Strict; Secure"),
        "{session}"
    );
    let max_age = max_age(&session);
    assert!(
        (110..=120).contains(&max_age),
        "the session lasts console.session_ttl_ms: {session}"
    );
    // A plain-HTTP sign-in is not Secure (the cookie would not come back).
    let acme = Session::sign_in(&registry, &team("acme")).await;
    assert!(!acme.cookie.is_empty());
    // Signing out clears the cookie.
    let out = acme.post("/console/sign-out", &[], None).await;
    let cleared = set_cookie(&out, SESSION_COOKIE).unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_an_authenticating_proxy_groups_give_the_role() {
    let registry = registry_with_two_teams(&[
        ("CONSOLE__PROXY__ENABLED", "true"),
        ("CONSOLE__PROXY__ADMIN_GROUPS", "platform-admins"),
        ("CONSOLE__PROXY__SHARED_SECRET", "proxy-secret"),
    ])
    .await;
    let call = |path: &'static str, headers: Vec<(&'static str, &'static str)>| {
        let registry = &registry;
        async move { registry.call_raw("GET", path, None, &headers, None).await }
    };
    let secret = ("x-switchyard-proxy-secret", "proxy-secret");
    let user = ("x-forwarded-user", "achieng");
    let acme = ("x-forwarded-groups", "staff,switchyard-team-acme");
    // Without the proxy's secret, or without a user or a group that maps: refused.
    assert_eq!(
        call("/console/teams/acme/catalog", vec![user, acme]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call("/console/teams/acme/catalog", vec![secret, acme])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let staff = ("x-forwarded-groups", "staff");
    assert_eq!(
        call("/console/teams/acme/catalog", vec![secret, user, staff])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // A team group: its own pages, not another team's, not the admin's.
    let own = call("/console/teams/acme/catalog", vec![secret, user, acme]).await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(html(&own).contains("Team acme"));
    assert!(!html(&own).contains("Sign out"), "signing out is the proxy's");
    assert_eq!(
        call("/console/teams/globex/catalog", vec![secret, user, acme])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call("/console/admin", vec![secret, user, acme]).await.status,
        StatusCode::FORBIDDEN
    );
    // An admin group.
    let admins = ("x-forwarded-groups", "platform-admins");
    assert_eq!(
        call("/console/admin", vec![secret, user, admins]).await.status,
        StatusCode::OK
    );
    // There is no sign-in form to use.
    let sign_in = call("/console/sign-in", vec![secret, user, acme]).await;
    assert_eq!(sign_in.status, StatusCode::SEE_OTHER);
}

/// A sign-in link's token for team `team`, as `switchyardctl console login` mints it.
fn link_token(team: &str, jti: Option<&str>) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let claims = Claims {
        role: Role::Team,
        team: Some(team.to_owned()),
        plugin: None,
        exp,
        jti: jti.map(str::to_owned),
        purpose: Some(CONSOLE_SIGN_IN.to_owned()),
    };
    mint_hs256(HS256_SECRET.as_bytes(), &claims).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_link_signs_in_once_on_any_replica_and_the_api_refuses_its_token() {
    let registry = registry_with_two_teams(&[("CONSOLE__SESSION_TTL_MS", "3600000")]).await;
    let other = InProcessRegistry::start_on(registry.topics.clone(), &[]).await;
    let token = link_token("acme", Some(&uuid::Uuid::new_v4().to_string()));
    // The API refuses it: it is for the console's sign-in alone.
    let refused = registry
        .call("GET", "/v1/teams/acme/installations", Some(&token), None)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused.json["detail"]
            .as_str()
            .unwrap()
            .contains("console-sign-in"),
        "{refused:?}"
    );
    // The first use signs in, for the console's session lifetime rather than the token's five minutes.
    let first = post_sign_in(&registry, &token).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{first:?}");
    let session = set_cookie(&first, SESSION_COOKIE).unwrap();
    let max_age = max_age(&session);
    assert!(max_age > 3500, "{session}");
    // A second use, on this replica or another one, does not.
    for replica in [&registry, &other] {
        let again = post_sign_in(replica, &token).await;
        assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{again:?}");
        assert!(html(&again).contains("used already"));
        assert!(set_cookie(&again, SESSION_COOKIE).is_none());
    }
    // A link token without an id cannot be spent, so it does not sign in.
    let no_id = post_sign_in(&registry, &link_token("acme", None)).await;
    assert_eq!(no_id.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_console_has_no_route() {
    let registry = InProcessRegistry::start(&[("CONSOLE__ENABLED", "false")]).await;
    for path in [
        "/console",
        "/console/",
        "/console/sign-in",
        "/console/teams/acme/catalog",
    ] {
        let answer = registry.call_raw("GET", path, None, &[], None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
    }
}
