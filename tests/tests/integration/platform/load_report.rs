//! The load report of a real short run, as a reader gets it: `switchyard-loadtest run` against the router
//! binary on the test broker writes `report.html`, and a real headless Chromium opens that file. The page
//! renders with no console error and loads nothing (no script, font or request: its Content-Security-Policy
//! forbids them); its verdict is shown and agrees with `result.json`; the run, the machine and the router's
//! settings (read from its admin server) are named; every chart is an SVG with tick labels, CPU and memory
//! included. And `plan` writes into `--out DIR` like the other subcommands, with `--json FILE` kept as a
//! deprecated alias.

use std::path::Path;
use std::process::Command;

use fantoccini::Locator;
use serde_json::Value;
use switchyard_tests::binaries::free_address;
use switchyard_tests::broker::unique;
use switchyard_tests::browser::{
    Browser, console_errors, screenshot, screenshot_path, text, wait_for_element,
};
use switchyard_tests::routers::RouterProcess;

use super::loadtest_smoke::{Run, loadtest, out_dir, router_env, run_checked, setup_topics};

/// The charts of a run's report, by the id of their SVG.
const CHARTS: [&str; 6] = [
    "chart-percentiles",
    "chart-throughput",
    "chart-lag",
    "chart-p99",
    "chart-cpu",
    "chart-rss",
];

/// The texts of the elements matching `css`.
async fn texts(browser: &Browser, css: &str) -> Vec<String> {
    let mut found = Vec::new();
    for element in browser
        .find_all(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("looking for `{css}` failed: {error}"))
    {
        found.push(element.text().await.unwrap_or_default());
    }
    found
}

/// Issue 22: a run's report stands alone, and renders in a browser as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_s_report_renders_in_chromium_and_stands_alone() {
    let prefix = unique("lr");
    setup_topics(&prefix);
    let admin = free_address();
    let group = format!("{prefix}-router");
    let out = out_dir("load-report");
    std::fs::create_dir_all(&out).unwrap();
    let router = RouterProcess::start(
        "",
        &router_env(&prefix, &group, admin),
        admin,
        &out.join("router.log"),
    );
    let (stdout, result) = tokio::task::block_in_place(|| {
        run_checked(&Run {
            scenario: "smoke",
            prefix: &prefix,
            group: &group,
            admin: &admin.to_string(),
            pid: router.pid(),
            duration: "2s",
            warmup: "2s",
            out: &out,
            extra: &["--p99-ms", "30000"],
        })
    });
    assert!(router.terminate().success());

    // result.json: the metadata, the system as the router and the broker describe it, objective, verdict.
    let m = &result["metadata"];
    assert_eq!(m["subcommand"], "run");
    assert_eq!(m["run_id"], result["run_id"]);
    assert_eq!(m["scenario"], "smoke");
    assert!(
        m["started_at"].as_str().unwrap() < m["finished_at"].as_str().unwrap(),
        "{m}"
    );
    assert!(
        m["command_line"].as_str().unwrap().contains("--p99-ms 30000"),
        "{m}"
    );
    assert!(
        m["git_revision"].as_str().is_some_and(|r| !r.is_empty()),
        "the tests run in a checkout: {m}"
    );
    assert!(m["machine"]["cpus"].as_u64().unwrap() >= 1, "{m}");
    let system = &m["system"];
    assert_eq!(system["replicas"], 1, "one router in the group: {system}");
    assert_eq!(system["core_partitions"], 3, "smoke's core topic: {system}");
    let router_settings = &system["router"];
    assert_eq!(router_settings["delivery_mode"], "exactly_once", "{system}");
    assert_eq!(
        router_settings["commit_interval_ms"], 100,
        "the default: {system}"
    );
    assert_eq!(router_settings["group_id"], group.as_str());
    assert_eq!(result["objective"]["p99_ms"], 30000.0);
    let verdict = &result["verdict"];
    let checks = verdict["checks"].as_array().unwrap();
    assert!(checks.iter().any(|c| c["kind"] == "p99_within"), "{verdict}");
    assert_eq!(
        verdict["passed"].as_bool().unwrap(),
        checks.iter().all(|c| c["passed"] == true),
        "{verdict}"
    );
    let r = &result["result"];
    assert_eq!(
        r["latency_ms"]["count"], r["records_read"],
        "one latency sample per record read: {r}"
    );
    assert!(stdout.contains("verdict   "), "{stdout}");

    // The page in a real browser.
    let report = out.join("report.html");
    let browser = Browser::start().await;
    let url = format!("file://{}", report.canonicalize().unwrap().display());
    browser.goto(&url).await.unwrap();
    let heading = text(&browser, "#verdict h2").await;
    let word = if verdict["passed"] == true { "PASS" } else { "FAIL" };
    assert_eq!(heading, format!("Verdict: {word}"), "{verdict}");
    let shown = wait_for_element(&browser, "#verdict").await;
    assert!(shown.is_displayed().await.unwrap(), "the verdict is visible");
    let objective = text(&browser, "#verdict").await;
    assert!(
        objective.contains("p99 end-to-end latency at most 30000 ms"),
        "{objective}"
    );
    let metadata = text(&browser, "#metadata").await;
    for part in [
        result["run_id"].as_str().unwrap(),
        m["git_revision"].as_str().unwrap(),
        m["machine"]["host"].as_str().unwrap(),
        "Command line",
    ] {
        assert!(metadata.contains(part), "{part:?} not shown in {metadata}");
    }
    let rows = texts(&browser, "#system tr").await;
    for (name, value) in [
        ("Commit interval", "100 ms"),
        ("Replicas", "1"),
        ("Delivery mode", "exactly_once"),
    ] {
        assert!(
            rows.iter()
                .any(|row| row.starts_with(name) && row.contains(value)),
            "{name} {value} not shown in {rows:?}"
        );
    }
    let anomalies = texts(&browser, "#anomalies li").await;
    assert_eq!(
        anomalies.len(),
        result["anomalies"].as_array().unwrap().len(),
        "{anomalies:?}"
    );
    for chart in CHARTS {
        let ticks = texts(&browser, &format!("svg#{chart} text.tick")).await;
        assert!(
            ticks.len() >= 4 && ticks.iter().all(|t| !t.trim().is_empty()),
            "{chart}: tick labels {ticks:?}"
        );
        let size = browser
            .execute(
                "const box = document.getElementById(arguments[0]).getBoundingClientRect(); \
                 return [box.width, box.height];",
                vec![Value::from(chart)],
            )
            .await
            .unwrap();
        assert!(
            size[0].as_f64().unwrap() > 100.0 && size[1].as_f64().unwrap() > 100.0,
            "{chart} is drawn: {size}"
        );
    }
    // The watched router's CPU and memory are lines, each second of the run.
    for chart in ["chart-cpu", "chart-rss"] {
        let lines = browser
            .find_all(Locator::Css(&format!("svg#{chart} polyline")))
            .await
            .unwrap();
        assert_eq!(lines.len(), 1, "{chart} draws the samples");
    }
    let glossary = text(&browser, "#glossary").await;
    assert!(
        glossary.contains("Latency samples") && glossary.contains("Consumer lag"),
        "{glossary}"
    );
    // Nothing was fetched and nothing went wrong.
    let fetched = browser
        .execute(
            "return performance.getEntriesByType('resource').map((entry) => entry.name);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fetched, Value::Array(vec![]), "the report loaded {fetched}");
    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    screenshot(&browser, screenshot_path("load-report")).await;
    browser.close().await;
}

/// The figures of a plan, for the `plan` runs below.
const PLAN: [&str; 7] = [
    "plan",
    "--peak-rate",
    "20000",
    "--router-capacity",
    "8000",
    "--worker-capacity",
    "1000",
];

fn plan(args: &[&str]) -> std::process::Output {
    Command::new(loadtest())
        .args(PLAN)
        .args(args)
        .output()
        .expect("run switchyard-loadtest plan")
}

fn read_plan(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("plan.json")).expect("plan.json is JSON")
}

/// Issue 22: one flag style: `plan --out DIR` as `run` and `find-max`; `--json FILE` still works, with a
/// one-line deprecation note; both at once are refused. plan.json carries the metadata.
#[test]
fn plan_writes_into_out_and_json_is_a_deprecated_alias() {
    let out = out_dir("plan-out");
    let output = plan(&["--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("deprecated"), "{stderr}");
    let written = read_plan(&out.join("plan.json"));
    assert_eq!(written["router_replicas"], 4);
    assert_eq!(written["metadata"]["subcommand"], "plan");
    assert!(
        written["metadata"]["command_line"]
            .as_str()
            .unwrap()
            .contains("--peak-rate 20000"),
        "{written}"
    );
    assert!(written["metadata"]["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert_eq!(written["metadata"]["system"], Value::Null);

    let file = out.join("old/plan-by-json.json");
    let output = plan(&["--json", file.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let notes: Vec<&str> = stderr.lines().filter(|l| l.contains("deprecated")).collect();
    assert_eq!(
        notes,
        [
            "switchyard-loadtest: --json FILE is deprecated: use --out DIR (writes DIR/plan.json), as run and \
          find-max do"
        ],
        "{stderr}"
    );
    assert_eq!(read_plan(&file)["router_replicas"], 4);

    let output = plan(&["--json", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let help = Command::new(loadtest())
        .args(["plan", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--out <DIR>") && !help.contains("--json"), "{help}");
}
