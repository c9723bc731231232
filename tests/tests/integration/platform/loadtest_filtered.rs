//! The load-test harness with installation filters (issue 17): the `smoke` scenario with half of its
//! enablements filtered (`filtered_share`, the filters of `workload::FILTERS`), run against the real router
//! binary. `run` writes the filters to the control topics the router reads and counts each event's copies
//! by its own model of the routing rule, filters applied, so the router must write exactly as many records
//! as the model expects: one too few and the run does not drain, one too many and it is a surplus.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;
use switchyard_tests::binaries::{free_address, workspace_binary};
use switchyard_tests::broker::{bootstrap, unique};
use switchyard_tests::routers::RouterProcess;

fn loadtest() -> PathBuf {
    workspace_binary("switchyard-loadtest", "SWITCHYARD_LOADTEST_BIN")
}

#[test]
fn a_filtered_scenario_gets_exactly_the_copies_its_filters_select() {
    let prefix = unique("lf");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-logs")
        .join(unique("loadtest-filtered"));
    std::fs::create_dir_all(&out).unwrap();
    let smoke = include_str!("../../../../loadtest/scenarios/smoke.toml");
    let text = smoke
        .replace("name = \"smoke\"", "name = \"smoke-filtered\"")
        .replace(
            "enablement_ratio = 0.3",
            "enablement_ratio = 0.3\nfiltered_share = 0.5",
        );
    assert!(text.contains("filtered_share = 0.5"), "{text}");
    let scenario = out.join("smoke-filtered.toml");
    std::fs::write(&scenario, text).unwrap();
    let scenario = scenario.to_str().unwrap();

    let status = Command::new(loadtest())
        .args([
            "setup-topics",
            "--bootstrap",
            &bootstrap(),
            "--scenario",
            scenario,
        ])
        .args(["--topic-prefix", &prefix])
        .stdout(Stdio::null())
        .status()
        .expect("run setup-topics");
    assert!(status.success(), "setup-topics failed");

    let admin = free_address();
    let group = format!("{prefix}-router");
    let mut env = BTreeMap::new();
    for (key, value) in [
        ("KAFKA__BOOTSTRAP_SERVERS", bootstrap()),
        ("TOPICS__CORE_EVENTS", format!("{prefix}.core.events")),
        ("TOPICS__DEAD_LETTER", format!("{prefix}.core.events.dlq")),
        ("TOPICS__PLUGINS", format!("{prefix}.switchyard.plugins")),
        ("TOPICS__ENABLEMENTS", format!("{prefix}.switchyard.enablements")),
        (
            "TOPICS__PLUGIN_EVENTS_TEMPLATE",
            format!("{prefix}.plugin.{{plugin}}.events"),
        ),
        ("DELIVERY__GROUP_ID", group.clone()),
        ("DELIVERY__TRANSACTIONAL_ID", format!("{group}-0")),
        ("ADMIN__LISTEN", admin.to_string()),
    ] {
        env.insert(format!("SWITCHYARD_ROUTER__{key}"), value);
    }
    let router = RouterProcess::start("", &env, admin, &out.join("router.log"));

    let output = Command::new(loadtest())
        .args(["run", "--bootstrap", &bootstrap(), "--scenario", scenario])
        .args(["--topic-prefix", &prefix, "--group", &group])
        .args(["--router-admin", &admin.to_string()])
        .args(["--pid", &router.pid().to_string()])
        .args(["--rate", "300", "--duration", "4s", "--warmup", "2s"])
        .args(["--pool", "1000", "--timeout", "60s", "--no-progress", "--check"])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run switchyard-loadtest run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the run failed or its checks did not hold:\n{stdout}\n{stderr}"
    );
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).expect("result.json"))
            .expect("result.json is JSON");
    let r = &result["result"];
    assert!(r["events"].as_u64().unwrap() >= 1000, "{r}");
    assert_eq!(r["drained"], true, "every copy the filters select was read: {r}");
    assert_eq!(
        r["records_read"], r["expected_records"],
        "the router wrote exactly the copies the model's filters select:\n{stdout}"
    );
    assert!(result["problems"].as_array().unwrap().is_empty(), "{result}");
    assert_eq!(result["scenario"]["plugins"]["filtered_share"], 0.5);

    // The router evaluated the filters, with every kind of verdict the scenario's filters give: matches,
    // misses, `missing` (form events read response paths) and errors (a null duration).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for verdict in ["match", "no_match", "missing", "error"] {
        let series = format!("switchyard_router_filter_evaluations_total{{result=\"{verdict}\"}}");
        let count = runtime.block_on(router.admin.metric(&series));
        assert!(count > 0.0, "{series} is {count}");
    }
    assert!(router.terminate().success());
}
