//! Plugin workers killed with SIGKILL during delivery: after a restart every event is delivered at least
//! once, and a duplicate carries the same `webhook-id` as the first delivery.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::Value;
use switchyard_schemas::envelope::ContentType;
use switchyard_tests::broker::{TestProducer, bootstrap, read_to_end, unique};
use switchyard_tests::records::core_event;
use switchyard_tests::routers::{Admin, free_address, workspace_binary};
use switchyard_tests::wait::wait_for;
use switchyard_tests::workers::WorkerTopics;

type Calls = Arc<Mutex<HashMap<String, Vec<String>>>>;

fn bridge(topics: &WorkerTopics, group: &str, base: &str, admin: std::net::SocketAddr) -> Child {
    let log = std::env::temp_dir()
        .join(unique("bridge-kill"))
        .with_extension("log");
    Command::new(workspace_binary(
        "switchyard-plugin-bridge",
        "SWITCHYARD_PLUGIN_BRIDGE_BIN",
    ))
    .args(["--url", base])
    .env("SWITCHYARD_PLUGIN__KAFKA__BOOTSTRAP_SERVERS", bootstrap())
    .env(
        "SWITCHYARD_PLUGIN__TOPICS__EVENTS_TEMPLATE",
        topics.events.replace("slowpoke", "{plugin}"),
    )
    .env(
        "SWITCHYARD_PLUGIN__TOPICS__DEAD_LETTER_TEMPLATE",
        topics.dead_letter.replace("slowpoke", "{plugin}"),
    )
    .env("SWITCHYARD_PLUGIN__TOPICS__RESULTS", &topics.results)
    .env("SWITCHYARD_PLUGIN__TOPICS__CONFIGS", &topics.configs)
    .env("SWITCHYARD_PLUGIN__DELIVERY__GROUP_ID", group)
    .env("SWITCHYARD_PLUGIN__DELIVERY__COMMIT_INTERVAL_MS", "300")
    .env("SWITCHYARD_PLUGIN__DELIVERY__MAX_IN_FLIGHT", "4")
    .env("SWITCHYARD_PLUGIN__HTTP__URL_PATTERNS", base)
    .env("SWITCHYARD_PLUGIN__HTTP__ALLOWED_NETWORKS", "127.0.0.1/32")
    .env("SWITCHYARD_PLUGIN__ADMIN__LISTEN", admin.to_string())
    // A killed member's partitions move on after the session timeout: keep it short in the test.
    .env("SWITCHYARD_PLUGIN__KAFKA__OPTIONS__SESSION_TIMEOUT_MS", "6000")
    .env("SWITCHYARD_PLUGIN__KAFKA__OPTIONS__HEARTBEAT_INTERVAL_MS", "1000")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(log).unwrap())
    .spawn()
    .expect("start switchyard-plugin-bridge")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_redeliver_with_the_same_webhook_id() {
    let calls: Calls = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let manifest = serde_json::json!({"id": "slowpoke", "name": "Slow", "version": "1.0.0",
                                      "events": ["response.submitted"]});
    let app = Router::new()
        .route(
            "/metadata",
            axum::routing::get(move || async move { axum::Json(manifest) }),
        )
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
    tokio::spawn(async move { axum::serve(listener, app).await });

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
        let _ = worker.wait();
        kills += 1;
    }
    let admin = free_address();
    let mut last = bridge(&topics, &group, &base, admin);
    wait_for("every event delivered", Duration::from_secs(120), || async {
        (calls.lock().unwrap().len() >= total).then_some(())
    })
    .await;
    let _ = last.kill();
    let _ = last.wait();

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
