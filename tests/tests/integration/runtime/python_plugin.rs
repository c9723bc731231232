//! The language-neutral path: the standard-library Python example of `docs/plugin-authors.md` behind the
//! real `switchyard-plugin-bridge` binary, signatures verified by the Python side, results published.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use switchyard_schemas::envelope::ContentType;
use switchyard_schemas::webhook::SigningSecret;
use switchyard_tests::binaries::{free_address, supervise, workspace_binary};
use switchyard_tests::broker::{TestProducer, read_to_end, unique};
use switchyard_tests::records::core_event;
use switchyard_tests::routers::Admin;
use switchyard_tests::wait::{wait_for, wait_for_records};
use switchyard_tests::workers::WorkerTopics;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_behind_the_bridge() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugin-runtime/examples/python/wordcount_plugin.py"
    );
    let self_test = Command::new("python3")
        .args([example, "--self-test"])
        .output()
        .expect("python3");
    assert!(
        self_test.status.success(),
        "{}",
        String::from_utf8_lossy(&self_test.stdout)
    );

    let (_, secret) = SigningSecret::generate();
    let port = free_address().port();
    let service_log = std::env::temp_dir()
        .join(unique("wordcount"))
        .with_extension("log");
    let service = supervise(
        Command::new("python3")
            .args([example, "--port", &port.to_string()])
            .env("WORDCOUNT_SIGNING_SECRET", &secret),
        &service_log,
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for("the Python plugin to listen", Duration::from_secs(20), || async {
        reqwest::get(format!("{base}/metadata")).await.ok().map(|_| ())
    })
    .await;

    let topics = WorkerTopics::create("wordcount", 2).await;
    let settings = topics.settings(&[]);
    let admin = free_address();
    let mut env: Vec<(String, String)> = vec![
        (
            "SWITCHYARD_PLUGIN__KAFKA__BOOTSTRAP_SERVERS".into(),
            switchyard_tests::broker::bootstrap(),
        ),
        (
            "SWITCHYARD_PLUGIN__TOPICS__EVENTS_TEMPLATE".into(),
            topics.events.replace("wordcount", "{plugin}"),
        ),
        (
            "SWITCHYARD_PLUGIN__TOPICS__DEAD_LETTER_TEMPLATE".into(),
            topics.dead_letter.replace("wordcount", "{plugin}"),
        ),
        (
            "SWITCHYARD_PLUGIN__TOPICS__RESULTS".into(),
            topics.results.clone(),
        ),
        (
            "SWITCHYARD_PLUGIN__TOPICS__CONFIGS".into(),
            topics.configs.clone(),
        ),
        (
            "SWITCHYARD_PLUGIN__DELIVERY__GROUP_ID".into(),
            settings.delivery.group_id.clone(),
        ),
        ("SWITCHYARD_PLUGIN__HTTP__URL_PATTERNS".into(), base.clone()),
        (
            "SWITCHYARD_PLUGIN__HTTP__ALLOWED_NETWORKS".into(),
            "127.0.0.1/32".into(),
        ),
        ("SWITCHYARD_PLUGIN__HTTP__SIGNING_SECRET".into(), secret.clone()),
        ("SWITCHYARD_PLUGIN__ADMIN__LISTEN".into(), admin.to_string()),
    ];
    env.push(("SWITCHYARD_PLUGIN__LOG__LEVEL".into(), "info".into()));
    let log = std::env::temp_dir().join(unique("bridge")).with_extension("log");
    let bridge = supervise(
        Command::new(workspace_binary(
            "switchyard-plugin-bridge",
            "SWITCHYARD_PLUGIN_BRIDGE_BIN",
        ))
        .args(["--url", &base])
        .envs(env),
        &log,
    );
    Admin { address: admin }.wait_ready().await;

    let producer = TestProducer::new();
    for (team, id) in [("acme", "r-1"), ("globex", "r-2"), ("acme", "r-3")] {
        producer.send(
            &topics.events,
            &core_event(team, "response.submitted", id, ContentType::Avro),
        );
    }
    producer.flush();
    let results = wait_for_records("three word counts", &topics.results, 3, Duration::from_secs(30)).await;
    for result in &results {
        assert_eq!(
            result.header("ce_type").as_deref(),
            Some("switchyard.plugin.wordcount.counted")
        );
        let data: Value = serde_json::from_slice(result.value.as_deref().unwrap()).unwrap();
        assert_eq!(
            data["words"], 1,
            "the fixture's one text answer, 'Wanjiru': {data}"
        );
    }
    assert!(
        read_to_end(&topics.dead_letter).is_empty(),
        "every call was signed and accepted"
    );
    drop(bridge);
    drop(service);
}
