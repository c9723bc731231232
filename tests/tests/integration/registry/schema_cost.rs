//! Finding 1 of the adversarial review, against the real registry binary under a memory limit: a plugin's
//! `config_schema` whose validation doubles its work per `$defs` level (`anyOf` of two references to the
//! next). Before the fix the registration answered 201 and the first config PUT grew the process to 23.5 GB
//! (here: past the limit, and the process died). Now the registration is refused with a 422 naming the
//! bound, a schema just under it validates quickly, a config too large for its schema is refused before
//! validation, and the registry stays up and answering throughout.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_registry::config_schema::cost::{
    MAX_EVALUATIONS_PER_CONFIG, MAX_EVALUATIONS_PER_VALUE, any_of_chain,
};
use switchyard_tests::binaries::free_address;
use switchyard_tests::registries::{RegistryProcess, RegistryTopics, admin, http, registry_binary};

/// The address space the registry may use: room for its librdkafka clients and threads, far less than the
/// gigabytes the chain took before the fix.
const DATA_LIMIT_BYTES: u64 = 1 << 30;

fn manifest(id: &str, config_schema: Value) -> Value {
    json!({
        "id": id,
        "name": id,
        "version": "1.0.0",
        "events": ["response.submitted"],
        "config_schema": config_schema
    })
}

/// The registry binary behind `prlimit`, so that the kernel refuses its allocations beyond the limit.
fn limited_registry_binary() -> PathBuf {
    let dir = std::env::temp_dir().join(switchyard_tests::broker::unique("limited-registry"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let wrapper = dir.join("switchyard-registry");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec prlimit --data={DATA_LIMIT_BYTES} -- {} \"$@\"\n",
            registry_binary().display()
        ),
    )
    .expect("wrapper");
    let chmod = Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .expect("chmod");
    assert!(chmod.success());
    wrapper
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_that_multiplies_validation_work_is_refused_and_the_registry_stays_up() {
    let topics = RegistryTopics::unique();
    let address = free_address();
    let log = std::env::temp_dir().join(switchyard_tests::broker::unique("registry-schema-cost.log"));
    let registry = RegistryProcess::start_binary(
        &limited_registry_binary(),
        &topics.env(address, &[]),
        address,
        &log,
    );
    registry.wait_ready().await;
    let url = |path: &str| format!("{}{path}", registry.url);
    let admin = admin();

    // The review's 26-level chain: 201 before the fix, 422 naming the bound now.
    let (status, body) = http(
        "POST",
        &url("/v1/plugins"),
        Some(&admin),
        Some(&manifest("chain-26", any_of_chain(26))),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["pointer"], "/config_schema", "{body}");
    let detail = error["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&MAX_EVALUATIONS_PER_VALUE.to_string()),
        "the bound is named: {detail}"
    );

    // Eleven levels stay under the bound: registered, enabled, and a failing config is answered at once.
    let (status, body) = http(
        "POST",
        &url("/v1/plugins"),
        Some(&admin),
        Some(&manifest("chain-11", any_of_chain(11))),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(
        "PUT",
        &url("/v1/teams/acme/plugins/chain-11"),
        Some(&admin),
        Some(&json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let started = Instant::now();
    let (status, body) = http(
        "PUT",
        &url("/v1/teams/acme/plugins/chain-11/config"),
        Some(&admin),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // A config whose values would take more evaluations in all than the budget is refused unvalidated.
    let (status, body) = http(
        "POST",
        &url("/v1/plugins"),
        Some(&admin),
        Some(&manifest(
            "chain-list",
            json!({
                "$defs": any_of_chain(11)["$defs"],
                "type": "object",
                "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/l0"}}}
            }),
        )),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    http(
        "PUT",
        &url("/v1/teams/acme/plugins/chain-list"),
        Some(&admin),
        Some(&json!({"enabled": true})),
    )
    .await;
    let (status, body) = http(
        "PUT",
        &url("/v1/teams/acme/plugins/chain-list/config"),
        Some(&admin),
        Some(&json!({"items": vec![0; 200]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let detail = body["errors"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&MAX_EVALUATIONS_PER_CONFIG.to_string()),
        "the budget is named: {detail}"
    );

    // Just under the budget: the validation takes a while (seconds in a debug build), and the registry
    // answers other requests meanwhile, because the work runs off the request threads.
    let put = tokio::spawn({
        let (url, admin) = (url("/v1/teams/acme/plugins/chain-list/config"), admin.clone());
        async move { http("PUT", &url, Some(&admin), Some(&json!({"items": vec![0; 120]}))).await }
    });
    let mut answered_meanwhile = 0;
    while !put.is_finished() {
        let (status, _) = http("GET", &url("/healthz"), None, None).await;
        assert_eq!(status, 200);
        answered_meanwhile += 1;
    }
    let (status, body) = put.await.expect("the PUT task");
    // 422 when it finished within config_schemas.timeout_ms, 503 on a machine too slow for that.
    assert!(status == 422 || status == 503, "{status} {body}");
    assert!(
        answered_meanwhile > 0,
        "no /healthz answered while the config was validated"
    );

    // Still alive and answering.
    let (status, _) = http("GET", &url("/healthz"), None, None).await;
    assert_eq!(status, 200);
    assert!(
        registry.terminate().success(),
        "the registry exited cleanly; its log: {}",
        log.display()
    );
}
