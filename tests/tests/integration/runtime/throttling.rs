//! A plugin service that answers `429` for ten seconds, behind the real `switchyard-plugin-bridge`: nothing
//! is dead-lettered and no retry budget is spent (two attempts would allow one retry), the bridge slows
//! down meanwhile, and delivery recovers once the service takes calls again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use switchyard_fixtures::metrics::Metrics;
use switchyard_schemas::envelope::ContentType;
use switchyard_tests::binaries::free_address;
use switchyard_tests::broker::{TestProducer, read_to_end, unique};
use switchyard_tests::records::core_event;
use switchyard_tests::routers::Admin;
use switchyard_tests::wait::wait_for;
use switchyard_tests::workers::{WorkerTopics, bridge_command, http_plugin, serve_on_loopback, start_bridge};

const THROTTLED_FOR: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Service {
    started: Instant,
    /// (when, 429 or not) of every call.
    calls: Arc<Mutex<Vec<(Instant, bool)>>>,
    /// Event ids delivered (answered 2xx).
    delivered: Arc<Mutex<Vec<String>>>,
}

async fn execute(State(service): State<Service>, body: Bytes) -> Response {
    let throttled = service.started.elapsed() < THROTTLED_FOR;
    service.calls.lock().unwrap().push((Instant::now(), throttled));
    if throttled {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response();
    }
    let event: Value = serde_json::from_slice(&body).unwrap();
    service
        .delivered
        .lock()
        .unwrap()
        .push(event["id"].as_str().unwrap().to_owned());
    StatusCode::NO_CONTENT.into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_answering_429_is_slowed_down_without_dead_letters_or_spent_budget() {
    let topics = WorkerTopics::create("throttled", 2).await;
    let producer = TestProducer::new();
    let total = 60;
    for n in 0..total {
        let team = ["acme", "globex", "initech", "umbrella", "hooli", "wayne"][n % 6];
        producer.send(
            &topics.events,
            &core_event(team, "response.submitted", &format!("e-{n}"), ContentType::Json),
        );
    }
    producer.flush();
    let service = Service {
        started: Instant::now(),
        calls: Arc::default(),
        delivered: Arc::default(),
    };
    let app = http_plugin("throttled")
        .route("/execute", post(execute))
        .with_state(service.clone());
    let base = serve_on_loopback(app).await;
    let admin = Admin {
        address: free_address(),
    };
    let mut bridge = start_bridge(
        bridge_command(&topics, &base, &unique("throttled"), admin.address)
            // Two calls per event at most: one spent retry would dead-letter the next failure.
            .env("SWITCHYARD_PLUGIN__RETRY__MAX_ATTEMPTS", "2")
            .env("SWITCHYARD_PLUGIN__RETRY__MAX_BACKOFF_MS", "2000"),
        "bridge-throttled",
    );
    admin.wait_ready().await;
    wait_for("every event delivered", Duration::from_secs(90), || async {
        (service.delivered.lock().unwrap().len() >= total).then_some(())
    })
    .await;
    let recovered = service.started.elapsed();
    let (_, text) = admin.get("/metrics").await.expect("metrics");
    let metrics = Metrics::parse(&text);
    bridge.kill().expect("SIGKILL");

    assert!(read_to_end(&topics.dead_letter).is_empty(), "no dead letters");
    let outcome = |name: &str| {
        metrics.value(
            "switchyard_plugin_events_total",
            &[("outcome", name), ("plugin", "throttled")],
        )
    };
    assert_eq!(outcome("retried"), 0.0, "no retry budget spent");
    assert_eq!(outcome("dead_lettered"), 0.0);
    assert!(outcome("throttled") > 0.0);
    let calls = service.calls.lock().unwrap().clone();
    let throttled = calls.iter().filter(|(_, t)| *t).count();
    eprintln!(
        "{throttled} calls answered 429, {} in all; every event delivered {recovered:?} after the start",
        calls.len()
    );
    // Without slowing down, 32 calls at once would each come back every second or two: hundreds of 429s.
    // Slowed down, each team pauses for the Retry-After at half its share, and the plugin as a whole too.
    assert!(
        throttled < total * 3,
        "{throttled} calls answered 429 in {THROTTLED_FOR:?} for {total} events"
    );
    assert!(
        recovered < THROTTLED_FOR + Duration::from_secs(15),
        "delivery recovered after the 429s ended: all done {recovered:?} after the start"
    );
}
