//! A CI-sized run of the load-test harness: `switchyard-loadtest run` against the real router binary and
//! against the `pipe` baseline, each for a few seconds. It checks that the numbers are produced and sane
//! (every expected output read, ordered percentiles, CPU and memory of the process seen, the files
//! written), not that they are fast: speed targets live in `make bench`. And that a run after another on
//! the same topics reads only what its own scenario prescribes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use switchyard_tests::binaries::{free_address, supervise, terminate, workspace_binary};
use switchyard_tests::broker::{bootstrap, unique};
use switchyard_tests::routers::RouterProcess;

pub(super) fn loadtest() -> PathBuf {
    workspace_binary("switchyard-loadtest", "SWITCHYARD_LOADTEST_BIN")
}

pub(super) fn out_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-logs")
        .join(unique(name))
}

pub(super) fn setup_topics(prefix: &str) {
    let status = Command::new(loadtest())
        .args(["setup-topics", "--bootstrap", &bootstrap(), "--scenario", "smoke"])
        .args(["--topic-prefix", prefix])
        .stdout(Stdio::null())
        .status()
        .expect("run setup-topics");
    assert!(status.success(), "setup-topics failed");
}

/// How one `run` is asked for.
pub(super) struct Run<'a> {
    /// A built-in scenario or a scenario file.
    pub(super) scenario: &'a str,
    pub(super) prefix: &'a str,
    pub(super) group: &'a str,
    /// The router's admin address, or "none".
    pub(super) admin: &'a str,
    /// The process measured.
    pub(super) pid: u32,
    pub(super) duration: &'a str,
    pub(super) warmup: &'a str,
    pub(super) out: &'a Path,
    /// More flags, e.g. `--p99-ms 5000`.
    pub(super) extra: &'a [&'a str],
}

/// Runs `run --check` at 300 events/s and returns its stdout and result.json.
pub(super) fn run_checked(run: &Run<'_>) -> (String, Value) {
    let output = Command::new(loadtest())
        .args(["run", "--bootstrap", &bootstrap(), "--scenario", run.scenario])
        .args([
            "--topic-prefix",
            run.prefix,
            "--group",
            run.group,
            "--router-admin",
            run.admin,
        ])
        .args([
            "--pid",
            &run.pid.to_string(),
            "--rate",
            "300",
            "--duration",
            run.duration,
            "--warmup",
            run.warmup,
        ])
        .args(["--pool", "1000", "--timeout", "60s", "--no-progress", "--check"])
        .args(run.extra)
        .arg("--out")
        .arg(run.out)
        .output()
        .expect("run switchyard-loadtest run");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the run failed or its sanity checks did not hold:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("latency   p50"), "{stdout}");
    let result =
        serde_json::from_str(&std::fs::read_to_string(run.out.join("result.json")).expect("result.json"))
            .expect("result.json is JSON");
    (stdout, result)
}

/// Runs `run --scenario smoke` for a few seconds and returns its result.json.
fn run(prefix: &str, group: &str, admin: &str, pid: u32, out: &Path) -> Value {
    let (_, result) = run_checked(&Run {
        scenario: "smoke",
        prefix,
        group,
        admin,
        pid,
        duration: "4s",
        warmup: "3s",
        out,
        extra: &[],
    });
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(
        html.contains("<svg") && !html.contains("<script"),
        "a self-contained report"
    );
    result
}

fn assert_sane(result: &Value, what: &str) {
    let r = &result["result"];
    let f = |key: &str| {
        r[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: {key} missing in {r}"))
    };
    assert!(f("events") >= 1000.0, "{what}: about 4 s at 300/s were sent: {r}");
    assert!(
        (200.0..=400.0).contains(&f("rate_in")),
        "{what}: the rate held: {r}"
    );
    assert_eq!(r["drained"], true, "{what}: every expected output read");
    assert_eq!(f("records_read"), f("expected_records"), "{what}");
    let l = &r["latency_ms"];
    let p = |k: &str| l[k].as_f64().unwrap();
    assert!(
        0.0 < p("p50")
            && p("p50") <= p("p90")
            && p("p90") <= p("p99")
            && p("p99") <= p("p999")
            && p("p999") <= p("max"),
        "{what}: ordered percentiles: {l}"
    );
    assert!(p("max") < 60_000.0, "{what}: latencies in a sane range: {l}");
    assert!(
        f("cpu_seconds") > 0.0 && f("rss_mib_max") > 1.0,
        "{what}: the process was watched: {r}"
    );
    assert!(
        !r["timeline"].as_array().unwrap().is_empty(),
        "{what}: a timeline"
    );
    assert!(
        (1.0..3.0).contains(&result["mean_fanout"].as_f64().unwrap()),
        "{what}"
    );
    assert!(
        result["problems"].as_array().unwrap().is_empty(),
        "{what}: {result}"
    );
}

/// The environment of a router on the topics of `prefix`, in `group`, serving its admin at `admin`.
pub(super) fn router_env(prefix: &str, group: &str, admin: std::net::SocketAddr) -> BTreeMap<String, String> {
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
        ("DELIVERY__GROUP_ID", group.to_owned()),
        ("DELIVERY__TRANSACTIONAL_ID", format!("{group}-0")),
        ("ADMIN__LISTEN", admin.to_string()),
    ] {
        env.insert(format!("SWITCHYARD_ROUTER__{key}"), value);
    }
    env
}

#[test]
fn run_against_the_router_binary_produces_sane_numbers() {
    let prefix = unique("lt");
    setup_topics(&prefix);
    let admin = free_address();
    let group = format!("{prefix}-router");
    let out = out_dir("loadtest-router");
    std::fs::create_dir_all(&out).unwrap();
    let router = RouterProcess::start(
        "",
        &router_env(&prefix, &group, admin),
        admin,
        &out.join("router.log"),
    );
    let result = run(&prefix, &group, &admin.to_string(), router.pid(), &out);
    assert_sane(&result, "router");
    assert_eq!(result["scenario"]["name"], "smoke");
    assert!(router.terminate().success());
}

/// Issue 13, finding 7: a run after another on the same topics, with other plugins and enablements,
/// reads exactly the records its own scenario prescribes: it removed what the first run left (4 plugins
/// and their enablements, and the pairs smoke does not enable), so the router routes by its controls
/// alone.
#[test]
fn a_second_run_on_the_same_topics_reads_only_its_own_records() {
    let prefix = unique("li");
    setup_topics(&prefix);
    let admin = free_address();
    let group = format!("{prefix}-router");
    let out = out_dir("loadtest-isolation");
    std::fs::create_dir_all(&out).unwrap();
    // The first run: smoke's teams with twice the plugins, nearly every pair enabled (a superset of
    // smoke's plugin ids and most of its pairs).
    let wide = out.join("wide.toml");
    let smoke = include_str!("../../../../loadtest/scenarios/smoke.toml");
    let text = smoke
        .replace("name = \"smoke\"", "name = \"wide\"")
        .replace("count = 4", "count = 8")
        .replace("enablement_ratio = 0.3", "enablement_ratio = 0.9");
    assert!(text.contains("count = 8") && text.contains("0.9"), "{text}");
    std::fs::write(&wide, text).unwrap();
    let router = RouterProcess::start(
        "",
        &router_env(&prefix, &group, admin),
        admin,
        &out.join("router.log"),
    );
    let (first_out, second_out) = (out.join("wide"), out.join("smoke"));
    let (_, first) = run_checked(&Run {
        scenario: wide.to_str().unwrap(),
        prefix: &prefix,
        group: &group,
        admin: &admin.to_string(),
        pid: router.pid(),
        duration: "2s",
        warmup: "3s",
        out: &first_out,
        extra: &[],
    });
    assert!(first["enablements"].as_u64().unwrap() > 300, "{first}");
    let (stdout, second) = run_checked(&Run {
        scenario: "smoke",
        prefix: &prefix,
        group: &group,
        admin: &admin.to_string(),
        pid: router.pid(),
        duration: "3s",
        warmup: "1s",
        out: &second_out,
        extra: &[],
    });
    let r = &second["result"];
    assert!(r["events"].as_u64().unwrap() >= 600, "{r}");
    assert_eq!(
        r["records_read"], r["expected_records"],
        "the second run read records it did not prescribe:\n{stdout}"
    );
    assert_eq!(r["drained"], true, "{r}");
    assert!(second["problems"].as_array().unwrap().is_empty(), "{second}");
    let removed = &second["leftovers_removed"];
    assert!(
        removed["plugins"] == 4 && removed["enablements"].as_u64().unwrap() > 0,
        "load-05 ... load-08 and the pairs smoke does not enable were removed: {removed}"
    );
    assert!(router.terminate().success());
}

#[test]
fn run_against_the_pipe_baseline_produces_sane_numbers() {
    let prefix = unique("lp");
    setup_topics(&prefix);
    let group = format!("{prefix}-pipe");
    let out = out_dir("loadtest-pipe");
    std::fs::create_dir_all(&out).unwrap();
    let log = out.join("pipe.log");
    let mut pipe = supervise(
        Command::new(loadtest())
            .args([
                "pipe",
                "--bootstrap",
                &bootstrap(),
                "--scenario",
                "smoke",
                "--mode",
                "at_least_once",
            ])
            .args(["--topic-prefix", &prefix, "--group", &group, "--duration", "90s"]),
        &log,
    );
    let result = run(&prefix, &group, "none", pipe.pid(), &out);
    assert_sane(&result, "pipe");
    let status = terminate(&mut pipe);
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{output}");
    assert!(
        output.contains("RUNNING") && output.contains("outputs"),
        "{output}"
    );
}
