//! The authorization matrix: every endpoint × every kind of caller (admin, own/other team, own/other
//! plugin, and six kinds of bad token) → the expected status. `docs/registry.md` has the same table.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use switchyard_registry::auth::{Claims, Role, mint_hs256};
use switchyard_tests::broker::{Outgoing, TestProducer};
use switchyard_tests::registries::{InProcessRegistry, admin, plugin, team};

const RSA_PUBLIC: &str = include_str!("../../../../registry/src/testdata/rsa-public.pem");

#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Admin,
    OwnTeam,
    OtherTeam,
    OwnPlugin,
    OtherPlugin,
    NoToken,
    Malformed,
    Expired,
    WrongSignature,
    AlgNone,
    AlgorithmConfusion,
}

const CALLERS: [Caller; 11] = [
    Caller::OwnTeam,
    Caller::OtherTeam,
    Caller::OwnPlugin,
    Caller::OtherPlugin,
    Caller::NoToken,
    Caller::Malformed,
    Caller::Expired,
    Caller::WrongSignature,
    Caller::AlgNone,
    Caller::AlgorithmConfusion,
    // Last, so that an admin's DELETE runs after everyone else was refused.
    Caller::Admin,
];

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The token of `caller`, where the endpoint's own team is `acme` and its own plugin is `plugin_id`.
fn token_of(caller: Caller, plugin_id: &str) -> Option<String> {
    let admin_claims = |exp: u64| Claims {
        role: Role::Admin,
        team: None,
        plugin: None,
        exp,
        jti: None,
        purpose: None,
    };
    match caller {
        Caller::Admin => Some(admin()),
        Caller::OwnTeam => Some(team("acme")),
        Caller::OtherTeam => Some(team("globex")),
        Caller::OwnPlugin => Some(plugin(plugin_id)),
        Caller::OtherPlugin => Some(plugin("someone-else")),
        Caller::NoToken => None,
        Caller::Malformed => Some("not-a-jwt".to_owned()),
        Caller::Expired => Some(
            mint_hs256(
                switchyard_tests::registries::HS256_SECRET.as_bytes(),
                &admin_claims(now() - 3600),
            )
            .unwrap(),
        ),
        Caller::WrongSignature => Some(
            mint_hs256(
                b"another-secret-of-at-least-32-characters",
                &admin_claims(now() + 600),
            )
            .unwrap(),
        ),
        Caller::AlgNone => Some(unsigned(
            &json!({"alg": "none", "typ": "JWT"}),
            &json!({"role": "admin", "exp": now() + 600}),
        )),
        // The classic confusion: an HS256 token whose HMAC key is the registry's RS256 public key.
        Caller::AlgorithmConfusion => {
            Some(mint_hs256(RSA_PUBLIC.as_bytes(), &admin_claims(now() + 600)).unwrap())
        }
    }
}

/// (method, path, body, the plugin that counts as its own, rule, status when allowed).
type Endpoint<'a> = (&'a str, &'a str, Option<Value>, &'a str, Rule, StatusCode);

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Any valid token.
    Anyone,
    /// Admins and the team itself.
    TeamOrAdmin,
    /// Admins and the plugin itself.
    PluginOrAdmin,
    /// Admins only.
    AdminOnly,
    /// No token needed.
    Public,
}

fn expected(rule: Rule, caller: Caller, allowed: StatusCode) -> StatusCode {
    let bad_token = matches!(
        caller,
        Caller::NoToken
            | Caller::Malformed
            | Caller::Expired
            | Caller::WrongSignature
            | Caller::AlgNone
            | Caller::AlgorithmConfusion
    );
    match rule {
        Rule::Public => allowed,
        _ if bad_token => StatusCode::UNAUTHORIZED,
        Rule::Anyone => allowed,
        Rule::TeamOrAdmin if matches!(caller, Caller::Admin | Caller::OwnTeam) => allowed,
        Rule::PluginOrAdmin if matches!(caller, Caller::Admin | Caller::OwnPlugin) => allowed,
        Rule::AdminOnly if caller == Caller::Admin => allowed,
        _ => StatusCode::FORBIDDEN,
    }
}

/// The installation that each caller tries to remove (made again before each try).
const DOOMED_INSTALLATION: &str = "/v1/teams/acme/plugins/sms-notify/installations/doomed";
/// The backfill routes each caller starts a backfill on, with the installation that is made again (without
/// a backfill) before each try: one backfill at a time.
const FRESH_BACKFILLS: [(&str, &str); 2] = [
    (
        "/v1/teams/acme/plugins/backfilled/backfills",
        "/v1/teams/acme/plugins/backfilled/installations/default",
    ),
    (
        "/v1/teams/acme/plugins/backfilled/installations/forms-b/backfills",
        "/v1/teams/acme/plugins/backfilled/installations/forms-b",
    ),
];

/// An hour ago, RFC 3339.
fn an_hour_ago() -> String {
    switchyard_registry::backfills::request::rfc3339_ms((now() as i64 - 3600) * 1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_by_every_caller() {
    let registry = InProcessRegistry::start(&[("AUTH__RS256_PUBLIC_KEYS", RSA_PUBLIC)]).await;
    let manifest = |id: &str| {
        json!({"id": id, "name": id, "version": "1.0.0", "url": "http://127.0.0.1",
               "events": ["response.submitted"], "actions": ["resend"], "installations": true})
    };
    for id in ["sms-notify", "doomed", "backfilled"] {
        let answer = registry
            .call("POST", "/v1/plugins", Some(&admin()), Some(&manifest(id)))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED);
    }
    // Enabled and configured for acme, so that allowed callers get past the state checks.
    registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sms-notify",
            Some(&admin()),
            Some(&json!({"enabled": true})),
        )
        .await;
    registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sms-notify/config",
            Some(&admin()),
            Some(&json!({})),
        )
        .await;
    // A named installation, enabled and configured.
    for (path, body) in [
        (
            "/v1/teams/acme/plugins/sms-notify/installations/forms-a",
            json!({"enabled": true}),
        ),
        (
            "/v1/teams/acme/plugins/sms-notify/installations/forms-a/config",
            json!({}),
        ),
    ] {
        let answer = registry.call("PUT", path, Some(&admin()), Some(&body)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.json);
    }
    // A backfill of an installation of its own, for the routes that read and cancel one.
    let answer = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/backfilled/installations/forms-c",
            Some(&admin()),
            Some(&json!({"enabled": true, "backfill": {"since": an_hour_ago()}})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let backfill = format!(
        "/v1/teams/acme/backfills/{}",
        answer.json["backfill"]["id"].as_str().unwrap()
    );
    let start = json!({"since": an_hour_ago()});
    // A dead letter of acme's, for the routes that read and replay one.
    let producer = TestProducer::new();
    producer.send(
        &registry.topics.dead_letter("sms-notify"),
        &Outgoing {
            key: Some(b"acme".to_vec()),
            value: Some(b"{}".to_vec()),
            headers: vec![("ce_id".to_owned(), Some(b"e-1".to_vec()))],
        },
    );
    producer.flush();
    let letters = registry
        .call("GET", "/v1/plugins/sms-notify/dead-letters", Some(&admin()), None)
        .await;
    let letter = letters.json[0]["id"]
        .as_str()
        .expect("the dead letter")
        .to_owned();
    let team_letter = format!("/v1/teams/acme/plugins/sms-notify/dead-letters/{letter}");
    let plugin_letter = format!("/v1/plugins/sms-notify/dead-letters/{letter}");

    let endpoints: Vec<Endpoint<'_>> = vec![
        (
            "POST",
            "/v1/plugins",
            Some(manifest("sms-notify")),
            "sms-notify",
            Rule::PluginOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/plugins",
            None,
            "sms-notify",
            Rule::Anyone,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/plugins/sms-notify",
            None,
            "sms-notify",
            Rule::Anyone,
            StatusCode::OK,
        ),
        (
            "POST",
            "/v1/plugins/sms-notify/heartbeat",
            Some(json!({"instance_id": "i-0"})),
            "sms-notify",
            Rule::PluginOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/teams/acme/plugins",
            None,
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "PUT",
            "/v1/teams/acme/plugins/sms-notify",
            Some(json!({"enabled": true})),
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "PUT",
            "/v1/teams/acme/plugins/sms-notify/config",
            Some(json!({})),
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/teams/acme/plugins/sms-notify/config",
            None,
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/teams/acme/installations",
            None,
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/teams/acme/plugins/sms-notify/installations",
            None,
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/teams/acme/plugins/sms-notify/installations/forms-a",
            None,
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "PUT",
            "/v1/teams/acme/plugins/sms-notify/installations/forms-a",
            Some(json!({"enabled": true, "form_ids": ["f-1"], "filter": "true"})),
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "PUT",
            "/v1/teams/acme/plugins/sms-notify/installations/forms-a/config",
            Some(json!({})),
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/teams/acme/plugins/sms-notify/installations/forms-a/config",
            None,
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "DELETE",
            DOOMED_INSTALLATION,
            None,
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::NO_CONTENT,
        ),
        (
            "POST",
            FRESH_BACKFILLS[0].0,
            Some(start.clone()),
            "backfilled",
            Rule::TeamOrAdmin,
            StatusCode::ACCEPTED,
        ),
        (
            "POST",
            FRESH_BACKFILLS[1].0,
            Some(start.clone()),
            "backfilled",
            Rule::TeamOrAdmin,
            StatusCode::ACCEPTED,
        ),
        (
            "GET",
            FRESH_BACKFILLS[0].0,
            None,
            "backfilled",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/teams/acme/plugins/backfilled/installations/forms-c/backfills",
            None,
            "backfilled",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/teams/acme/backfills",
            None,
            "backfilled",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            &backfill,
            None,
            "backfilled",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        // Cancelling a pending backfill again is accepted again.
        (
            "DELETE",
            &backfill,
            None,
            "backfilled",
            Rule::TeamOrAdmin,
            StatusCode::ACCEPTED,
        ),
        (
            "GET",
            "/v1/teams/acme/plugins/sms-notify/dead-letters",
            None,
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            &team_letter,
            None,
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "POST",
            "/v1/teams/acme/plugins/sms-notify/dead-letters/replay",
            Some(json!({"letters": [letter], "dry_run": true})),
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/plugins/sms-notify/dead-letters",
            None,
            "sms-notify",
            Rule::PluginOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            &plugin_letter,
            None,
            "sms-notify",
            Rule::PluginOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/plugins/sms-notify/lag",
            None,
            "sms-notify",
            Rule::PluginOrAdmin,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/plugins/sms-notify/registrations",
            None,
            "sms-notify",
            Rule::PluginOrAdmin,
            StatusCode::OK,
        ),
        // Allowed callers reach the plugin, which is not listening: 502 means the gateway tried.
        (
            "POST",
            "/v1/teams/acme/plugins/sms-notify/actions/resend",
            Some(json!({})),
            "sms-notify",
            Rule::TeamOrAdmin,
            StatusCode::BAD_GATEWAY,
        ),
        (
            "GET",
            "/v1/secrets",
            None,
            "sms-notify",
            Rule::AdminOnly,
            StatusCode::OK,
        ),
        (
            "POST",
            "/v1/secrets/reseal",
            Some(json!({})),
            "sms-notify",
            Rule::AdminOnly,
            StatusCode::OK,
        ),
        (
            "DELETE",
            "/v1/plugins/doomed",
            None,
            "doomed",
            Rule::AdminOnly,
            StatusCode::NO_CONTENT,
        ),
        (
            "GET",
            "/healthz",
            None,
            "sms-notify",
            Rule::Public,
            StatusCode::OK,
        ),
        ("GET", "/readyz", None, "sms-notify", Rule::Public, StatusCode::OK),
        (
            "GET",
            "/metrics",
            None,
            "sms-notify",
            Rule::Public,
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/openapi.json",
            None,
            "sms-notify",
            Rule::Public,
            StatusCode::OK,
        ),
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for (method, path, body, own_plugin, rule, allowed) in &endpoints {
        for caller in CALLERS {
            if *path == DOOMED_INSTALLATION {
                // Both the team and an admin may remove it: each caller finds it there.
                let answer = registry
                    .call("PUT", path, Some(&admin()), Some(&json!({"enabled": true})))
                    .await;
                assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
            }
            if let Some((_, installation)) = FRESH_BACKFILLS.iter().find(|(route, _)| route == path) {
                registry.call("DELETE", installation, Some(&admin()), None).await;
                let answer = registry
                    .call(
                        "PUT",
                        installation,
                        Some(&admin()),
                        Some(&json!({"enabled": true})),
                    )
                    .await;
                assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
            }
            let token = token_of(caller, own_plugin);
            let answer = registry.call(method, path, token.as_deref(), body.as_ref()).await;
            let want = expected(*rule, caller, *allowed);
            checked += 1;
            if answer.status != want {
                failures.push(format!(
                    "{method} {path} as {caller:?}: {} (expected {want}) {}",
                    answer.status, answer.json
                ));
            }
            if want == StatusCode::UNAUTHORIZED {
                assert_eq!(answer.headers["www-authenticate"], "Bearer");
                assert_eq!(answer.json["type"], "/problems/unauthorized");
            }
        }
    }

    // The same rules for conditional requests whose precondition fails (an ETag older than the resource's,
    // or If-None-Match: * on one that exists): the role check comes first, then allowed callers get 412
    // and nothing changes. Each resource's ETag is read first.
    let etag_of = async |path: &str| {
        let answer = registry.call("GET", path, Some(&admin()), None).await;
        let etag = answer.headers["etag"]
            .to_str()
            .unwrap()
            .trim_matches('"')
            .to_owned();
        format!("\"{}\"", etag.parse::<i64>().unwrap() - 1)
    };
    let installation = "/v1/teams/acme/plugins/sms-notify/installations/forms-a";
    let config = "/v1/teams/acme/plugins/sms-notify/installations/forms-a/config";
    let v1_config = "/v1/teams/acme/plugins/sms-notify/config";
    let (stale_installation, stale_config, stale_v1_config, stale_plugin) = (
        etag_of(installation).await,
        etag_of(config).await,
        etag_of(v1_config).await,
        etag_of("/v1/plugins/sms-notify").await,
    );
    let stale_default = etag_of("/v1/teams/acme/plugins/sms-notify/installations/default").await;
    let stale_backfill = etag_of(&backfill).await;
    let conditional = [
        (
            "PUT",
            installation.to_owned(),
            Some(json!({"enabled": true})),
            "sms-notify",
            Rule::TeamOrAdmin,
            ("if-match", stale_installation.clone()),
        ),
        (
            "PUT",
            installation.to_owned(),
            Some(json!({"enabled": true})),
            "sms-notify",
            Rule::TeamOrAdmin,
            ("if-none-match", "*".to_owned()),
        ),
        (
            "DELETE",
            installation.to_owned(),
            None,
            "sms-notify",
            Rule::TeamOrAdmin,
            ("if-match", stale_installation),
        ),
        (
            "PUT",
            config.to_owned(),
            Some(json!({})),
            "sms-notify",
            Rule::TeamOrAdmin,
            ("if-match", stale_config),
        ),
        (
            "PUT",
            v1_config.to_owned(),
            Some(json!({})),
            "sms-notify",
            Rule::TeamOrAdmin,
            ("if-match", stale_v1_config),
        ),
        (
            "PUT",
            "/v1/teams/acme/plugins/sms-notify".to_owned(),
            Some(json!({"enabled": true})),
            "sms-notify",
            Rule::TeamOrAdmin,
            ("if-match", stale_default),
        ),
        (
            "DELETE",
            backfill.clone(),
            None,
            "backfilled",
            Rule::TeamOrAdmin,
            ("if-match", stale_backfill),
        ),
        (
            "DELETE",
            "/v1/plugins/sms-notify".to_owned(),
            None,
            "sms-notify",
            Rule::AdminOnly,
            ("if-match", stale_plugin),
        ),
    ];
    for (method, path, body, own_plugin, rule, (header, value)) in &conditional {
        for caller in CALLERS {
            let token = token_of(caller, own_plugin);
            let body = body.as_ref().map(|b| b.to_string().into_bytes());
            let answer = registry
                .call_raw(method, path, token.as_deref(), &[(header, value)], body)
                .await;
            let want = expected(*rule, caller, StatusCode::PRECONDITION_FAILED);
            checked += 1;
            if answer.status != want {
                failures.push(format!(
                    "{method} {path} with {header}: {value} as {caller:?}: {} (expected {want}) {}",
                    answer.status, answer.json
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, (endpoints.len() + conditional.len()) * CALLERS.len());
}
