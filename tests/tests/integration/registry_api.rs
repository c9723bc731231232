//! The registry's plugin endpoints over its real store: statuses, bodies and who may do what.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use switchyard_registry::api::{AppState, router};
use switchyard_registry::auth::{Claims, KeySet, Role, mint_hs256};
use switchyard_registry::store::{Store, StoreConfig};
use switchyard_tests::broker::{bootstrap, unique};
use tower::ServiceExt;

const SECRET: &[u8] = b"registry test secret";

fn token(role: Role, team: Option<&str>, plugin: Option<&str>) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = Claims {
        role,
        team: team.map(String::from),
        plugin: plugin.map(String::from),
        exp,
    };
    mint_hs256(SECRET, &claims).unwrap()
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = app
        .clone()
        .oneshot(
            request
                .header("content-type", "application/json")
                .body(body)
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn manifest(version: &str) -> Value {
    json!({"id": "sms-notify", "name": "SMS notify", "description": "Texts respondents", "version": version,
           "url": "http://127.0.0.1:8092", "events": ["response.submitted"], "actions": []})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_registration_and_reading() {
    let topic = unique("registry.plugins");
    let store = Store::open(StoreConfig {
        bootstrap_servers: bootstrap(),
        options: BTreeMap::new(),
        topics: vec![topic.clone()],
        partitions: 1,
        replication_factor: 1,
        timeout: Duration::from_secs(15),
    })
    .await
    .expect("store");
    store.wait_caught_up().await;
    let keys = KeySet::new(Some(SECRET), &[], &[]).unwrap();
    let app = router(AppState {
        store: Arc::new(store),
        keys,
        plugins_topic: topic,
    });
    let (admin, own, other, team) = (
        token(Role::Admin, None, None),
        token(Role::Plugin, None, Some("sms-notify")),
        token(Role::Plugin, None, Some("sheets-export")),
        token(Role::Team, Some("acme"), None),
    );

    let (status, body) = call(&app, "POST", "/v1/plugins", None, Some(manifest("1.0.0"))).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("/problems/unauthorized"))
    );
    for forbidden in [&other, &team] {
        let (status, body) = call(
            &app,
            "POST",
            "/v1/plugins",
            Some(forbidden),
            Some(manifest("1.0.0")),
        )
        .await;
        assert_eq!(
            (status, body["status"].as_u64()),
            (StatusCode::FORBIDDEN, Some(403))
        );
    }

    let (status, body) = call(&app, "POST", "/v1/plugins", Some(&own), Some(manifest("1.2.0"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["version"], "1.2.0");
    assert_eq!(body.get("url"), None, "only admins see the URL");
    let (status, _) = call(&app, "POST", "/v1/plugins", Some(&own), Some(manifest("1.2.0"))).await;
    assert_eq!(status, StatusCode::OK, "idempotent upsert");
    let (status, body) = call(&app, "POST", "/v1/plugins", Some(&own), Some(manifest("1.1.0"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("lower than the registered 1.2.0"),
        "{body}"
    );
    let (status, _) = call(
        &app,
        "POST",
        "/v1/plugins?force=true",
        Some(&own),
        Some(manifest("1.1.0")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "only an admin may force");
    let (status, body) = call(
        &app,
        "POST",
        "/v1/plugins?force=true",
        Some(&admin),
        Some(manifest("1.1.0")),
    )
    .await;
    assert_eq!(
        (status, body["url"].as_str()),
        (StatusCode::OK, Some("http://127.0.0.1:8092"))
    );

    let mut bad = manifest("1.3.0");
    bad["url"] = json!("ftp://example");
    let (status, body) = call(&app, "POST", "/v1/plugins", Some(&own), Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["pointer"], "/url");

    let (status, body) = call(&app, "GET", "/v1/plugins", Some(&team), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["version"], "1.1.0");
    let (status, body) = call(&app, "GET", "/v1/plugins/sms-notify", Some(&team), None).await;
    assert_eq!(
        (status, body["id"].as_str()),
        (StatusCode::OK, Some("sms-notify"))
    );
    let (status, body) = call(&app, "GET", "/v1/plugins/ghost", Some(&team), None).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (StatusCode::NOT_FOUND, Some("/problems/not-found"))
    );
}
