//! The real `switchyard-registry` binary, run as an operator runs it and left idle after a few writes, logs
//! no ERROR line: its store followers reach the end of their partitions all the time (that is how they know
//! they are caught up), which is not an error, and an alert on ERROR must stay quiet.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::binaries::{free_address, log_path};
use switchyard_tests::broker::unique;
use switchyard_tests::registries::{RegistryProcess, RegistryTopics, admin, http, plugin};
use switchyard_tests::wait::wait_for;

/// How long the registry sits idle: longer than the ~10 s period at which the review saw ERROR lines.
const IDLE: Duration = Duration::from_secs(15);

/// The log's lines at level ERROR (the binary logs JSON objects, one per line).
fn error_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            serde_json::from_str::<Value>(line)
                .map_or(line.contains("ERROR"), |entry| entry["level"] == "ERROR")
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_caught_up_registry_logs_no_error() {
    let topics = RegistryTopics::unique();
    let address = free_address();
    let log = log_path(&unique("registry-idle"));
    let env = topics.env(address, &[("LOG__FORMAT", "json")]);
    let registry = RegistryProcess::start(&env, address, &log);
    registry.wait_ready().await;

    // Writes that the followers read, reaching the end of their partitions again afterwards.
    let manifest = json!({"id": "quiet", "name": "Quiet", "version": "1.0.0",
                          "events": ["response.submitted"]});
    let (status, body) = http(
        "POST",
        &format!("{}/v1/plugins", registry.url),
        Some(&plugin("quiet")),
        Some(&manifest),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let heartbeat = json!({"instance_id": "quiet-0", "state": "ok"});
    let (status, body) = http(
        "POST",
        &format!("{}/v1/plugins/quiet/heartbeat", registry.url),
        Some(&plugin("quiet")),
        Some(&heartbeat),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let idle_since = Instant::now();
    wait_for(
        "the registry to sit idle without logging an ERROR",
        IDLE + Duration::from_secs(10),
        || async {
            let errors = error_lines(&log);
            assert!(
                errors.is_empty(),
                "the registry logged ERROR lines ({}):\n{}",
                log.display(),
                errors.join("\n")
            );
            (idle_since.elapsed() >= IDLE).then_some(())
        },
    )
    .await;
    let (status, _) = http(
        "GET",
        &format!("{}/v1/plugins", registry.url),
        Some(&admin()),
        None,
    )
    .await;
    assert_eq!(status, 200, "the registry still serves after its idle period");
    assert!(registry.terminate().success());
    assert!(
        error_lines(&log).is_empty(),
        "ERROR at shutdown: {}",
        log.display()
    );
}
