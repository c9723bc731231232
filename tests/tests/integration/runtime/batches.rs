//! Batches over HTTP, behind the real `switchyard-plugin-bridge` binary: a service whose manifest asks for
//! batches gets `application/cloudevents-batch+json` bodies signed as a whole, answers per event (one
//! dead-lettered, the rest done), and a bridge SIGKILLed mid-batch redelivers the same events with the same
//! ids, the batch's `webhook-id` always derived from them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use switchyard_fixtures::process::Supervised;
use switchyard_schemas::envelope::ContentType;
use switchyard_schemas::webhook::SigningSecret;
use switchyard_schemas::webhook::{BATCH_CONTENT_TYPE, batch_id};
use switchyard_tests::binaries::free_address;
use switchyard_tests::broker::{TestProducer, read_to_end, unique};
use switchyard_tests::records::core_event;
use switchyard_tests::routers::Admin;
use switchyard_tests::wait::{wait_for, wait_for_records};
use switchyard_tests::workers::{WorkerTopics, bridge_command, serve_on_loopback, start_bridge};

/// One batch the service received: its `webhook-id`, the ids of its events, whether its signature held.
#[derive(Debug, Clone)]
struct Received {
    webhook_id: String,
    ids: Vec<String>,
    signed: bool,
}

#[derive(Clone)]
struct Service {
    secret: Arc<SigningSecret>,
    received: Arc<Mutex<Vec<Received>>>,
    delay: Duration,
}

/// A batch service: `/metadata` asks for batches of up to 10 events, unordered; `/execute` verifies the
/// signature, records the batch and dead-letters the events whose id ends with `-poison`.
fn service(plugin: &str, secret: SigningSecret, delay: Duration) -> (axum::Router, Service) {
    let manifest = json!({"id": plugin, "name": plugin, "version": "1.0.0", "events": ["response.submitted"],
                          "ordering": "none", "batch": {"max_events": 10, "max_wait_ms": 100}});
    let state = Service {
        secret: Arc::new(secret),
        received: Arc::default(),
        delay,
    };
    let app = axum::Router::new()
        .route("/metadata", get(move || async move { axum::Json(manifest) }))
        .route("/execute", post(execute))
        .with_state(state.clone());
    (app, state)
}

async fn execute(State(service): State<Service>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("content-type"), Some(BATCH_CONTENT_TYPE));
    let signed = service.secret.verify_request(header, &body).is_ok();
    let events: Vec<Value> = serde_json::from_slice(&body).expect("a JSON array");
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    for event in &events {
        assert_eq!(event["teamid"], header("switchyard-team").unwrap_or_default());
    }
    service.received.lock().unwrap().push(Received {
        webhook_id: header("webhook-id").unwrap_or_default().to_owned(),
        ids: ids.clone(),
        signed,
    });
    tokio::time::sleep(service.delay).await;
    if !signed {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let answers: Vec<Value> = ids
        .iter()
        .filter(|id| id.ends_with("-poison"))
        .map(|id| json!({"id": id, "outcome": "dead_letter", "reason": "the phone number is invalid"}))
        .collect();
    axum::Json(json!({ "events": answers })).into_response()
}

fn bridge(topics: &WorkerTopics, base: &str, group: &str, secret: &str) -> (Supervised, Admin) {
    let admin = free_address();
    let worker = start_bridge(
        bridge_command(topics, base, group, admin)
            .env("SWITCHYARD_PLUGIN__HTTP__SIGNING_SECRET", secret)
            .env("SWITCHYARD_PLUGIN__DELIVERY__COMMIT_INTERVAL_MS", "300")
            .env("SWITCHYARD_PLUGIN__KAFKA__OPTIONS__SESSION_TIMEOUT_MS", "6000")
            .env("SWITCHYARD_PLUGIN__KAFKA__OPTIONS__HEARTBEAT_INTERVAL_MS", "1000"),
        "bridge-batches",
    );
    (worker, Admin { address: admin })
}

fn every_id(received: &[Received]) -> std::collections::BTreeSet<String> {
    received.iter().flat_map(|r| r.ids.iter().cloned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_signed_as_a_whole_and_answered_per_event() {
    let (secret, text) = SigningSecret::generate();
    let (app, state) = service("batcher", secret, Duration::from_millis(5));
    let base = serve_on_loopback(app).await;
    let topics = WorkerTopics::create("batcher", 1).await;
    let producer = TestProducer::new();
    let total = 40;
    let id = |n: usize| {
        if n % 10 == 3 {
            format!("e-{n}-poison")
        } else {
            format!("e-{n}")
        }
    };
    for n in 0..total {
        producer.send(
            &topics.events,
            &core_event("acme", "response.submitted", &id(n), ContentType::Json),
        );
    }
    producer.flush();
    let (mut worker, admin) = bridge(&topics, &base, &unique("batcher"), &text);
    admin.wait_ready().await;
    wait_for("every event received", Duration::from_secs(60), || async {
        (every_id(&state.received.lock().unwrap()).len() >= total).then_some(())
    })
    .await;
    let letters = wait_for_records(
        "the dead letters",
        &topics.dead_letter,
        4,
        Duration::from_secs(30),
    )
    .await;
    worker.kill().expect("SIGKILL");
    let received = state.received.lock().unwrap().clone();
    assert!(
        received.iter().all(|r| r.signed),
        "every batch's signature verified"
    );
    assert!(received.iter().all(|r| r.ids.len() <= 10), "max_events holds");
    assert!(
        received.len() < total,
        "{} calls for {total} events: batched",
        received.len()
    );
    for batch in &received {
        assert_eq!(batch.webhook_id, batch_id(batch.ids.iter().map(String::as_str)));
    }
    let mut dead: Vec<String> = letters
        .iter()
        .map(|l| l.header("ce_id").unwrap_or_default())
        .collect();
    dead.sort();
    assert_eq!(dead, ["e-13-poison", "e-23-poison", "e-3-poison", "e-33-poison"]);
    assert!(
        letters
            .iter()
            .all(|l| l.header("switchyard_error").as_deref() == Some("plugin_dead_letter"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_killed_mid_batch_redelivers_the_same_events() {
    let (secret, text) = SigningSecret::generate();
    let (app, state) = service("slow-batcher", secret, Duration::from_millis(300));
    let base = serve_on_loopback(app).await;
    let topics = WorkerTopics::create("slow-batcher", 2).await;
    let producer = TestProducer::new();
    let total = 200;
    for n in 0..total {
        let team = ["acme", "globex"][n % 2];
        producer.send(
            &topics.events,
            &core_event(team, "response.submitted", &format!("e-{n}"), ContentType::Json),
        );
    }
    producer.flush();
    let group = unique("slow-batcher");
    let (mut first, admin) = bridge(&topics, &base, &group, &text);
    admin.wait_ready().await;
    wait_for("some batches", Duration::from_secs(60), || async {
        (state.received.lock().unwrap().len() >= 4).then_some(())
    })
    .await;
    // Calls are in flight (300 ms each): killed mid-batch.
    first.kill().expect("SIGKILL");
    let before = state.received.lock().unwrap().len();
    let (mut second, _) = bridge(&topics, &base, &group, &text);
    wait_for("every event delivered", Duration::from_secs(120), || async {
        (every_id(&state.received.lock().unwrap()).len() >= total).then_some(())
    })
    .await;
    second.kill().expect("SIGKILL");
    let received = state.received.lock().unwrap().clone();
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    for batch in &received {
        assert!(batch.signed);
        assert_eq!(
            batch.webhook_id,
            batch_id(batch.ids.iter().map(String::as_str)),
            "the batch's webhook-id is derived from its events"
        );
        for id in &batch.ids {
            *seen.entry(id.as_str()).or_default() += 1;
        }
    }
    let redelivered = received[..before]
        .iter()
        .flat_map(|b| &b.ids)
        .filter(|id| seen[id.as_str()] > 1)
        .count();
    assert!(
        redelivered > 0,
        "the events of the batches cut by the kill came again, under their own ids"
    );
    assert_eq!(seen.len(), total, "every event, each under its ce_id");
    assert!(read_to_end(&topics.dead_letter).is_empty());
}
