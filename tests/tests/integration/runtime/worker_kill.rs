//! Plugin workers killed with SIGKILL during delivery: after a restart every event is delivered at least
//! once, and a duplicate carries the same `webhook-id` as the first delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::Value;
use switchyard_fixtures::process::Supervised;
use switchyard_schemas::envelope::ContentType;
use switchyard_tests::binaries::free_address;
use switchyard_tests::broker::{TestProducer, read_to_end, unique};
use switchyard_tests::records::core_event;
use switchyard_tests::routers::Admin;
use switchyard_tests::wait::wait_for;
use switchyard_tests::workers::{WorkerTopics, bridge_command, http_plugin, serve_on_loopback, start_bridge};

type Calls = Arc<Mutex<HashMap<String, Vec<String>>>>;

fn bridge(topics: &WorkerTopics, group: &str, base: &str, admin: std::net::SocketAddr) -> Supervised {
    start_bridge(
        bridge_command(topics, base, group, admin)
            .env("SWITCHYARD_PLUGIN__DELIVERY__COMMIT_INTERVAL_MS", "300")
            .env("SWITCHYARD_PLUGIN__DELIVERY__MAX_IN_FLIGHT", "4")
            // A killed member's partitions move on after the session timeout: keep it short in the test.
            .env("SWITCHYARD_PLUGIN__KAFKA__OPTIONS__SESSION_TIMEOUT_MS", "6000")
            .env("SWITCHYARD_PLUGIN__KAFKA__OPTIONS__HEARTBEAT_INTERVAL_MS", "1000"),
        "bridge-kill",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_redeliver_with_the_same_webhook_id() {
    let calls: Calls = Arc::default();
    let app = http_plugin("slowpoke")
        .route(
            "/execute",
            post(
                |State(calls): State<Calls>, headers: HeaderMap, body: Bytes| async move {
                    let event: Value = serde_json::from_slice(&body).unwrap();
                    let webhook_id = headers["webhook-id"].to_str().unwrap().to_owned();
                    calls
                        .lock()
                        .unwrap()
                        .entry(event["id"].as_str().unwrap().to_owned())
                        .or_default()
                        .push(webhook_id);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    "{}"
                },
            ),
        )
        .with_state(Arc::clone(&calls));
    let base = serve_on_loopback(app).await;

    let topics = WorkerTopics::create("slowpoke", 2).await;
    let group = unique("slowpoke");
    let producer = TestProducer::new();
    let total = 600;
    for n in 0..total {
        let team = ["acme", "globex", "initech", "umbrella"][n % 4];
        producer.send(
            &topics.events,
            &core_event(team, "response.submitted", &format!("e-{n}"), ContentType::Json),
        );
    }
    producer.flush();

    let mut kills = 0;
    for round in 0..3 {
        let admin = free_address();
        let mut worker = bridge(&topics, &group, &base, admin);
        Admin { address: admin }.wait_ready().await;
        let target = (round + 1) * total / 4;
        wait_for("progress before the kill", Duration::from_secs(60), || async {
            (calls.lock().unwrap().len() >= target).then_some(())
        })
        .await;
        worker.kill().expect("SIGKILL");
        kills += 1;
    }
    let admin = free_address();
    let mut last = bridge(&topics, &group, &base, admin);
    wait_for("every event delivered", Duration::from_secs(120), || async {
        (calls.lock().unwrap().len() >= total).then_some(())
    })
    .await;
    last.kill().expect("SIGKILL");

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), total, "every event at least once");
    let duplicated = calls.values().filter(|ids| ids.len() > 1).count();
    for (event, ids) in &calls {
        assert!(
            ids.iter().all(|id| id == event),
            "{event}: every delivery carries webhook-id = ce_id: {ids:?}"
        );
    }
    assert!(read_to_end(&topics.dead_letter).is_empty());
    eprintln!("{kills} kills, {duplicated} events delivered more than once");
}
