//! The action gateway against a real plugin service on loopback: signed forwarding, the plugin's answers
//! passed on, and each refusal (404, 409, 413, 422, 429, 502, 504) without or after calling the plugin.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use switchyard_registry::gateway::{ACTION_HEADER, TEAM_HEADER};
use switchyard_schemas::webhook::{
    DEFAULT_TOLERANCE_SECS, SigningSecret, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
};
use switchyard_tests::registries::{InProcessRegistry, admin, team};

/// What the plugin service saw: calls that reached it.
#[derive(Clone, Default)]
struct Plugin {
    secret: Arc<Mutex<Option<SigningSecret>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn resend(State(plugin): State<Plugin>, headers: HeaderMap, body: Bytes) -> Response {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let secret = plugin.secret.lock().unwrap().clone().expect("secret known");
    let id = header(&headers, WEBHOOK_ID).to_owned();
    if let Err(error) = secret.verify(
        &id,
        header(&headers, WEBHOOK_TIMESTAMP),
        header(&headers, WEBHOOK_SIGNATURE),
        &body,
        now,
        DEFAULT_TOLERANCE_SECS,
    ) {
        return (StatusCode::UNAUTHORIZED, error.to_string()).into_response();
    }
    plugin.calls.lock().unwrap().push(id.clone());
    axum::Json(json!({
        "team": header(&headers, TEAM_HEADER),
        "action": header(&headers, ACTION_HEADER),
        "webhook_id": id,
        "body": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
    }))
    .into_response()
}

async fn plugin_service(plugin: Plugin) -> u16 {
    let app = Router::new()
        .route("/actions/resend", post(resend))
        .route(
            "/actions/fail",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/actions/moved",
            post(|| async { (StatusCode::FOUND, [("location", "http://169.254.169.254/")], "") }),
        )
        .route(
            "/actions/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/actions/reject",
            post(|| async {
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({"error": "unknown response id"})),
                )
            }),
        )
        .route("/actions/huge", post(|| async { vec![b'x'; 2 * 1024 * 1024] }))
        .with_state(plugin);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_signed_forwarded_and_bounded() {
    let plugin = Plugin::default();
    let port = plugin_service(plugin.clone()).await;
    let pattern = format!("http://127.0.0.1:{port}");
    let registry = InProcessRegistry::start(&[
        ("GATEWAY__URL_PATTERNS", &pattern),
        ("GATEWAY__TIMEOUT_MS", "700"),
        ("GATEWAY__MAX_REQUEST_BYTES", "1024"),
        ("GATEWAY__RATE_PER_SECOND", "0.1"),
        ("GATEWAY__BURST", "10"),
    ])
    .await;
    let admin = admin();
    let actions = ["resend", "fail", "moved", "slow", "reject", "huge"];
    for (id, url) in [
        ("echo", Some(pattern.clone())),
        ("elsewhere", Some("http://10.1.2.3".to_owned())),
        ("metadata", Some("http://169.254.169.254".to_owned())),
        ("kafka-only", None),
    ] {
        let mut manifest = json!({"id": id, "name": id, "version": "1.0.0",
                                  "events": ["response.submitted"], "actions": actions});
        if let Some(url) = url {
            manifest["url"] = json!(url);
        }
        let answer = registry
            .call("POST", "/v1/plugins", Some(&admin), Some(&manifest))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
        if id == "echo" {
            let secret = answer.json["signing_secret"].as_str().unwrap();
            *plugin.secret.lock().unwrap() = Some(SigningSecret::parse(secret).unwrap());
        }
        for team_id in ["acme", "globex"] {
            let enabled = registry
                .call(
                    "PUT",
                    &format!("/v1/teams/{team_id}/plugins/{id}"),
                    Some(&admin),
                    Some(&json!({"enabled": true})),
                )
                .await;
            assert_eq!(enabled.status, StatusCode::OK);
        }
    }
    let acme = team("acme");
    let call = |path: &str, headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let (registry, acme, path) = (&registry, acme.clone(), path.to_owned());
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            registry
                .call_raw("POST", &path, Some(&acme), &headers, Some(body))
                .await
        }
    };
    let body = br#"{"response_id":"r-1"}"#.to_vec();

    // Forwarded, signed, with the team: the plugin verified the signature before answering 200.
    let ok = call("/v1/teams/acme/plugins/echo/actions/resend", vec![], body.clone()).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    assert_eq!(
        (ok.json["team"].as_str(), ok.json["action"].as_str()),
        (Some("acme"), Some("resend"))
    );
    assert_eq!(ok.json["body"], json!({"response_id": "r-1"}));
    assert!(ok.json["webhook_id"].as_str().unwrap().starts_with("msg_"));
    let keyed = call(
        "/v1/teams/acme/plugins/echo/actions/resend",
        vec![("idempotency-key", "resend-r-1".into())],
        body.clone(),
    )
    .await;
    assert_eq!(keyed.json["webhook_id"], "msg_resend-r-1");

    // The plugin's own 4xx is passed on as it is.
    let rejected = call("/v1/teams/acme/plugins/echo/actions/reject", vec![], body.clone()).await;
    assert_eq!(
        (rejected.status, &rejected.json),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"error": "unknown response id"})
        )
    );
    // Upstream failures: 5xx, a redirect (not followed), an oversized answer -> 502; too slow -> 504.
    for (action, status, kind) in [
        ("fail", StatusCode::BAD_GATEWAY, "/problems/upstream-failed"),
        ("moved", StatusCode::BAD_GATEWAY, "/problems/upstream-failed"),
        ("huge", StatusCode::BAD_GATEWAY, "/problems/upstream-failed"),
        ("slow", StatusCode::GATEWAY_TIMEOUT, "/problems/upstream-timeout"),
    ] {
        let answer = call(
            &format!("/v1/teams/acme/plugins/echo/actions/{action}"),
            vec![],
            body.clone(),
        )
        .await;
        assert_eq!(
            (answer.status, answer.json["type"].as_str()),
            (status, Some(kind)),
            "{action}: {}",
            answer.json
        );
    }
    // Targets outside the allow-list or in denied ranges are never called.
    for plugin_id in ["elsewhere", "metadata", "kafka-only"] {
        let answer = call(
            &format!("/v1/teams/acme/plugins/{plugin_id}/actions/resend"),
            vec![],
            body.clone(),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_GATEWAY,
            "{plugin_id}: {}",
            answer.json
        );
        assert!(
            !answer.json.to_string().contains("10.1.2.3"),
            "internal addresses stay out of answers: {}",
            answer.json
        );
    }

    // Refusals before any call.
    let undeclared = call("/v1/teams/acme/plugins/echo/actions/purge", vec![], body.clone()).await;
    assert_eq!(undeclared.status, StatusCode::NOT_FOUND);
    let unknown = call(
        "/v1/teams/acme/plugins/ghost/actions/resend",
        vec![],
        body.clone(),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let disabled = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/echo",
            Some(&admin),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK);
    let not_enabled = call("/v1/teams/acme/plugins/echo/actions/resend", vec![], body.clone()).await;
    assert_eq!(not_enabled.status, StatusCode::CONFLICT);
    let other_team = call(
        "/v1/teams/globex/plugins/echo/actions/resend",
        vec![],
        body.clone(),
    )
    .await;
    assert_eq!(other_team.status, StatusCode::FORBIDDEN);
    let globex = team("globex");
    let too_large = registry
        .call_raw(
            "POST",
            "/v1/teams/globex/plugins/echo/actions/resend",
            Some(&globex),
            &[],
            Some(vec![b'a'; 1025]),
        )
        .await;
    assert_eq!(
        (too_large.status, too_large.json["type"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("/problems/too-large"))
    );
    let bad_key = registry
        .call_raw(
            "POST",
            "/v1/teams/globex/plugins/echo/actions/resend",
            Some(&globex),
            &[("idempotency-key", "")],
            Some(body.clone()),
        )
        .await;
    assert_eq!(bad_key.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The per-team rate: globex's burst of 10, then 429 with Retry-After; acme's bucket is its own.
    for n in 0..10 {
        let answer = registry
            .call_raw(
                "POST",
                "/v1/teams/globex/plugins/echo/actions/resend",
                Some(&globex),
                &[],
                Some(body.clone()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "call {n}: {}", answer.json);
    }
    let limited = registry
        .call_raw(
            "POST",
            "/v1/teams/globex/plugins/echo/actions/resend",
            Some(&globex),
            &[],
            Some(body.clone()),
        )
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");

    // Every call that reached the plugin's resend endpoint was signed correctly (it counted only those).
    assert_eq!(plugin.calls.lock().unwrap().len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_verifies_calls_signed_during_a_signing_key_rotation() {
    use switchyard_tests::registries::SIGNING_KEY;
    const NEW_KEY: &str = "c3dpdGNoeWFyZC1yb3RhdGVkLXNpZ25pbmcta2V5LTMyYnl0ZXMhIQ==";
    let plugin = Plugin::default();
    let port = plugin_service(plugin.clone()).await;
    let pattern = format!("http://127.0.0.1:{port}");
    let before = InProcessRegistry::start(&[("GATEWAY__URL_PATTERNS", &pattern)]).await;
    let manifest = json!({"id": "echo", "name": "echo", "version": "1.0.0", "url": pattern,
                          "events": ["response.submitted"], "actions": ["resend"]});
    let registered = before
        .call("POST", "/v1/plugins", Some(&admin()), Some(&manifest))
        .await;
    assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.json);
    let old_secret = registered.json["signing_secret"].as_str().unwrap().to_owned();
    assert_eq!(registered.json["signing_secrets"], json!([old_secret]));
    *plugin.secret.lock().unwrap() = Some(SigningSecret::parse(&old_secret).unwrap());
    let enabled = before
        .call(
            "PUT",
            "/v1/teams/acme/plugins/echo",
            Some(&admin()),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK);
    let resend = "/v1/teams/acme/plugins/echo/actions/resend";
    let body = br#"{"response_id":"r-1"}"#.to_vec();

    // Step 1 of the runbook: a replica with the new key, the old one kept as previous. A plugin that still
    // verifies with its old secret accepts its calls.
    let rotating = InProcessRegistry::start_on(
        before.topics.clone(),
        &[
            ("GATEWAY__URL_PATTERNS", &pattern),
            ("GATEWAY__SIGNING_KEY", NEW_KEY),
            ("GATEWAY__PREVIOUS_SIGNING_KEYS", SIGNING_KEY),
        ],
    )
    .await;
    let call = async |registry: &InProcessRegistry| {
        registry
            .call_raw("POST", resend, Some(&team("acme")), &[], Some(body.clone()))
            .await
    };
    let answer = call(&rotating).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // Step 2: the plugin registers again (its workers restart) and learns both secrets, the new one first;
    // it verifies with the new secret from now on.
    let again = rotating
        .call("POST", "/v1/plugins", Some(&admin()), Some(&manifest))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.json);
    let new_secret = again.json["signing_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    assert_eq!(again.json["signing_secrets"], json!([new_secret, old_secret]));
    *plugin.secret.lock().unwrap() = Some(SigningSecret::parse(&new_secret).unwrap());
    assert_eq!(call(&rotating).await.status, StatusCode::OK);

    // Step 3: the old key retired. Calls verify with the new secret; a plugin left on the old one would
    // refuse them, which is why step 2 comes first.
    let after = InProcessRegistry::start_on(
        before.topics.clone(),
        &[
            ("GATEWAY__URL_PATTERNS", &pattern),
            ("GATEWAY__SIGNING_KEY", NEW_KEY),
        ],
    )
    .await;
    assert_eq!(call(&after).await.status, StatusCode::OK);
    *plugin.secret.lock().unwrap() = Some(SigningSecret::parse(&old_secret).unwrap());
    assert_eq!(
        call(&after).await.status,
        StatusCode::UNAUTHORIZED,
        "the plugin's own 401, passed on"
    );
    assert_eq!(plugin.calls.lock().unwrap().len(), 3, "three calls verified");
}
