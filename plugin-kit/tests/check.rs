//! `plugin check` against plugin services on loopback: a conforming one passes every check, and each
//! deliberately broken one fails the check for its defect, and only that one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use switchyard_plugin_kit::check::{self, Check, Status, Target};
use switchyard_schemas::webhook::{SigningSecret, WEBHOOK_ID};

/// What a test service gets wrong.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Defect {
    None,
    AcceptsUnsigned,
    IgnoresTimestamp,
    RefusesRepeats,
    UntypedResults,
    BadRequestOnExecute,
    Slow,
    RefusesConfigs,
    InvalidManifest,
    BrokenBatches,
}

struct Service {
    defect: Defect,
    secret: SigningSecret,
    answers: Mutex<HashMap<String, Value>>,
}

fn manifest(defect: Defect) -> Value {
    let mut manifest = json!({"id": "checked", "name": "Checked", "version": "1.0.0", "contract": "^1",
        "events": ["response.submitted", "form.created"], "actions": ["stats"],
        "config_schema": {"type": "object", "properties": {"sheet": {"type": "string", "minLength": 2}},
                          "required": ["sheet"]}});
    if defect == Defect::InvalidManifest {
        manifest["version"] = json!("1.0");
    }
    if defect == Defect::BrokenBatches {
        manifest["batch"] = json!({"max_events": 10, "max_wait_ms": 100});
    }
    manifest
}

async fn metadata(State(service): State<Arc<Service>>) -> axum::Json<Value> {
    axum::Json(manifest(service.defect))
}

/// Signature first, as the contract asks; the defects weaken it.
fn verified(service: &Service, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match service.secret.verify_request(header, body) {
        Ok(()) => true,
        Err(_) if service.defect == Defect::AcceptsUnsigned => true,
        Err(switchyard_schemas::webhook::WebhookError::TooOld { .. })
            if service.defect == Defect::IgnoresTimestamp =>
        {
            true
        }
        Err(_) => false,
    }
}

async fn execute(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    if !verified(&service, &headers, &body) {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"error": "bad signature"}).to_string(),
        );
    }
    if service.defect == Defect::Slow {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    if service.defect == Defect::BadRequestOnExecute {
        return (StatusCode::BAD_REQUEST, "cannot parse".into());
    }
    let id = headers
        .get(WEBHOOK_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let events: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Value::Array(events) = &events {
        let answer = if service.defect == Defect::BrokenBatches {
            json!({"events": [{"id": "not-in-the-batch", "outcome": "done"}]})
        } else {
            json!({"events": events.iter().map(|e| json!({"id": e["id"], "outcome": "done"})).collect::<Vec<_>>()})
        };
        return (StatusCode::OK, answer.to_string());
    }
    let mut answers = service.answers.lock().unwrap();
    if let Some(stored) = answers.get(&id) {
        if service.defect == Defect::RefusesRepeats {
            return (StatusCode::CONFLICT, "duplicate".into());
        }
        return (StatusCode::OK, stored.to_string());
    }
    let result = if service.defect == Defect::UntypedResults {
        json!({"data": {"seen": events["id"]}})
    } else {
        json!({"type": "checked.seen", "data": {"seen": events["id"]}})
    };
    let answer = json!({"results": [result]});
    answers.insert(id, answer.clone());
    (StatusCode::OK, answer.to_string())
}

async fn initialize(State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !verified(&service, &headers, &body) {
        return StatusCode::UNAUTHORIZED;
    }
    let config: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let sheet_ok =
        config["config"].is_null() || config["config"]["sheet"].as_str().is_some_and(|s| s.len() >= 2);
    if service.defect == Defect::RefusesConfigs || !sheet_ok {
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    StatusCode::OK
}

async fn action(
    State(service): State<Arc<Service>>,
    Path(_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if verified(&service, &headers, &body) {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// Serves a test service with `defect` on loopback: its URL and its signing secret.
async fn serve(defect: Defect) -> (String, String) {
    let (secret, text) = SigningSecret::generate();
    let service = Arc::new(Service {
        defect,
        secret,
        answers: Mutex::new(HashMap::new()),
    });
    let app = Router::new()
        .route("/metadata", get(metadata))
        .route("/execute", post(execute))
        .route("/initialize", post(initialize))
        .route("/actions/{name}", post(action))
        .with_state(service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, text)
}

/// Runs the checks against a service with `defect`; the registry's manifest rules stand in as the
/// contract's parse (this crate sits below the registry).
async fn checked(defect: Defect) -> Vec<Check> {
    let (url, text) = serve(defect).await;
    let target = Target {
        url,
        secret: Some(text),
        timeout: Duration::from_millis(800),
        team: "acme".into(),
    };
    check::run(&target, |json| {
        let id = json["id"].as_str().unwrap_or_default();
        switchyard_schemas::control::PluginManifest::parse(id, json.to_string().as_bytes())
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
}

fn failed(report: &[Check]) -> Vec<&str> {
    report
        .iter()
        .filter(|c| c.result == Status::Fail)
        .map(|c| c.check.as_str())
        .collect()
}

#[tokio::test]
async fn a_conforming_service_passes_every_check() {
    let report = checked(Defect::None).await;
    assert_eq!(failed(&report), Vec::<&str>::new(), "{report:#?}");
    let passed = report.iter().filter(|c| c.result == Status::Pass).count();
    assert_eq!(
        passed,
        report.len() - 1,
        "only the batch check is skipped: {report:#?}"
    );
}

#[tokio::test]
async fn each_broken_service_fails_the_check_for_its_defect() {
    let cases: [(Defect, &[&str]); 9] = [
        (
            Defect::AcceptsUnsigned,
            &[
                "an unsigned /execute is refused",
                "a wrongly signed /execute is refused",
                "a stale /execute (10 minutes old) is refused",
                "an unsigned /initialize is refused",
                "an unsigned action (stats) is refused",
            ],
        ),
        (
            Defect::IgnoresTimestamp,
            &["a stale /execute (10 minutes old) is refused"],
        ),
        (
            Defect::RefusesRepeats,
            &["a repeated webhook-id is answered 2xx, the same"],
        ),
        (
            Defect::UntypedResults,
            &[
                "a signed response.submitted is answered",
                "a signed form.created is answered",
            ],
        ),
        (
            Defect::BadRequestOnExecute,
            &[
                "a signed response.submitted is answered",
                "a signed form.created is answered",
                "a repeated webhook-id is answered 2xx, the same",
            ],
        ),
        (
            Defect::Slow,
            &[
                "a signed response.submitted is answered",
                "a signed form.created is answered",
                "every answer within 800 ms",
            ],
        ),
        (
            Defect::RefusesConfigs,
            &[
                "/initialize accepts a config valid for config_schema",
                "/initialize accepts null (the config was removed)",
            ],
        ),
        (
            Defect::InvalidManifest,
            &["GET /metadata serves a valid manifest"],
        ),
        (
            Defect::BrokenBatches,
            &[
                "a signed response.submitted is answered",
                "a signed form.created is answered",
                "a batch of two events is answered",
            ],
        ),
    ];
    for (defect, expected) in cases {
        let report = checked(defect).await;
        let mut failed = failed(&report);
        failed.sort();
        let mut expected = expected.to_vec();
        expected.sort();
        assert_eq!(failed, expected, "{defect:?}: {report:#?}");
        for check in report.iter().filter(|c| c.result == Status::Fail) {
            assert!(!check.fix.is_empty(), "{defect:?}: {} has no fix", check.check);
        }
    }
}

#[tokio::test]
async fn without_the_secret_only_the_unsigned_checks_run() {
    let (url, _) = serve(Defect::None).await;
    let target = Target {
        url,
        secret: None,
        timeout: Duration::from_secs(5),
        team: "acme".into(),
    };
    let report = check::run(&target, |_| Ok(())).await;
    assert!(failed(&report).is_empty(), "{report:#?}");
    assert!(
        report
            .iter()
            .any(|c| c.result == Status::Skip && c.detail.contains("--secret"))
    );
    assert!(
        report
            .iter()
            .any(|c| c.check == "an unsigned /execute is refused" && c.result == Status::Pass)
    );
}
