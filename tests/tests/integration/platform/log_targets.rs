//! Each service binary, run as an operator runs it (JSON logs on a real broker, stopped with SIGTERM), logs
//! its lifecycle ("starting", "shutdown requested", "stopped") under a log target of its own,
//! `<binary crate>::lifecycle`, not under the foundation's or another binary's; and a plugin worker that
//! starts and stops without an event logs no WARN line: its final commit, with nothing to commit, is not a
//! failure.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use switchyard_tests::binaries::{free_address, log_path, supervise, terminate, workspace_binary};
use switchyard_tests::broker::unique;
use switchyard_tests::registries::{RegistryProcess, RegistryTopics};
use switchyard_tests::routers::{Admin, RouterProcess, Topics};
use switchyard_tests::workers::{WorkerTopics, bridge_command, http_plugin, serve_on_loopback, worker_env};

/// The lifecycle's messages that every clean start and stop logs.
const LIFECYCLE: [&str; 3] = ["starting", "shutdown requested", "stopped"];

/// The worker's line when its final commit had nothing to commit (DEBUG, under this target).
const RUN_TARGET: &str = "switchyard_plugin_runtime::delivery::run";
const NOTHING_TO_COMMIT: &str = "the final offset commit had nothing to commit";

/// The log's lines (the binaries log one JSON object a line with `log.format = "json"`); a line that is
/// not JSON fails the test.
fn json_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_else(|error| panic!("{}: {error}", log.display()))
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("{}: not JSON ({error}): {line}", log.display()))
        })
        .collect()
}

/// Asserts that the lifecycle's lines are in the log once each, in order, under `target`, "starting" with
/// the workspace version; and that no lifecycle line went to another `...::lifecycle` target.
fn assert_lifecycle_under(log: &Path, target: &str) {
    let lines = json_lines(log);
    let lifecycle: Vec<&Value> = lines
        .iter()
        .filter(|line| {
            line["target"]
                .as_str()
                .is_some_and(|t| t.ends_with("::lifecycle"))
        })
        .collect();
    let seen: Vec<(&str, &str)> = lifecycle
        .iter()
        .map(|line| {
            (
                line["target"].as_str().unwrap_or_default(),
                line["message"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let expected: Vec<(&str, &str)> = LIFECYCLE.iter().map(|message| (target, *message)).collect();
    assert_eq!(seen, expected, "the lifecycle lines of {}", log.display());
    assert_eq!(
        lifecycle[0]["version"],
        env!("CARGO_PKG_VERSION"),
        "{}",
        lifecycle[0]
    );
    assert_eq!(lifecycle[1]["signal"], "SIGTERM", "{}", lifecycle[1]);
}

/// Whether a log line is at WARN or ERROR.
fn is_warning(line: &Value) -> bool {
    line["level"] == "WARN" || line["level"] == "ERROR"
}

/// A worker's environment for these tests: JSON logs, with the consume loop's DEBUG lines.
fn logging_env(command: &mut Command) {
    command.env("SWITCHYARD_PLUGIN__LOG__FORMAT", "json").env(
        "SWITCHYARD_PLUGIN__LOG__LEVEL",
        format!("info,{RUN_TARGET}=debug"),
    );
}

/// Asserts that a worker's clean stop logged no WARN or ERROR line: none at all from the shutdown request
/// on, and none of Switchyard's own before it (librdkafka may warn while a fresh broker loads its
/// coordinators, which is not the worker's doing); and that the worker reached its final commit with
/// nothing to commit, so that the missing warning is not a missing commit.
fn assert_clean_worker_stop(log: &Path) {
    let lines = json_lines(log);
    let stop = lines
        .iter()
        .position(|line| line["message"] == "shutdown requested")
        .unwrap_or_else(|| panic!("no shutdown request in {}", log.display()));
    let warnings: Vec<&Value> = lines
        .iter()
        .enumerate()
        .filter(|(at, line)| {
            is_warning(line)
                && (*at >= stop
                    || line["target"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("switchyard")))
        })
        .map(|(_, line)| line)
        .collect();
    assert!(
        warnings.is_empty(),
        "a clean start and stop logged WARN/ERROR lines ({}): {warnings:#?}",
        log.display()
    );
    let commits = lines[stop..]
        .iter()
        .filter(|line| line["target"] == RUN_TARGET && line["message"] == NOTHING_TO_COMMIT)
        .count();
    assert_eq!(
        commits,
        1,
        "the final commit, with nothing to commit ({})",
        log.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_logs_its_lifecycle_under_its_own_target() {
    let topics = RegistryTopics::unique();
    let address = free_address();
    let log = log_path(&unique("registry-lifecycle"));
    let env = topics.env(address, &[("LOG__FORMAT", "json")]);
    let registry = RegistryProcess::start(&env, address, &log);
    registry.wait_ready().await;
    assert!(registry.terminate().success(), "{}", log.display());
    assert_lifecycle_under(&log, "switchyard_registry::lifecycle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_logs_its_lifecycle_under_its_own_target() {
    let topics = Topics::unique();
    topics.create(1, &[]).await;
    let admin = free_address();
    let log = log_path(&unique("router-lifecycle"));
    let mut env = topics.env(&unique("router"), &unique("router-tx"), admin);
    env.insert("SWITCHYARD_ROUTER__LOG__FORMAT".into(), "json".into());
    let router = RouterProcess::start("", &env, admin, &log);
    router.admin.wait_ready().await;
    assert!(router.terminate().success(), "{}", log.display());
    assert_lifecycle_under(&log, "switchyard_router::lifecycle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_logs_its_lifecycle_under_its_own_target_and_stops_without_a_warning() {
    let plugin = "quiet-bridge";
    let topics = WorkerTopics::create(plugin, 2).await;
    let url = serve_on_loopback(http_plugin(plugin)).await;
    let admin = free_address();
    let log = log_path(&unique("bridge-lifecycle"));
    let mut command = bridge_command(&topics, &url, &unique("bridge"), admin);
    logging_env(&mut command);
    let mut bridge = supervise(&mut command, &log);
    Admin { address: admin }.wait_ready().await;
    assert!(terminate(&mut bridge).success(), "{}", log.display());
    assert_lifecycle_under(&log, "switchyard_plugin_bridge::lifecycle");
    assert_clean_worker_stop(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_plugin_logs_its_lifecycle_under_its_own_target_and_stops_without_a_warning() {
    let topics = WorkerTopics::create("slang-search", 2).await;
    let admin = free_address();
    let log = log_path(&unique("seed-plugin-lifecycle"));
    let mut command = Command::new(workspace_binary(
        "switchyard-seed-plugin",
        "SWITCHYARD_SEED_PLUGIN_BIN",
    ));
    command
        .arg("slang-search")
        .envs(worker_env(&topics, &unique("slang"), admin));
    logging_env(&mut command);
    let mut worker = supervise(&mut command, &log);
    Admin { address: admin }.wait_ready().await;
    assert!(terminate(&mut worker).success(), "{}", log.display());
    assert_lifecycle_under(&log, "switchyard_seed_plugin::lifecycle");
    assert_clean_worker_stop(&log);
}
