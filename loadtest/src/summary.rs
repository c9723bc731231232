//! The figures of a run, its verdict, and how they are shown: a table for people, JSON for scripts.
//!
//! Two independent witnesses are compared with the expectation: the router's own counters (deltas over
//! the run) and the records actually read back from the topics. The run passes only if both agree with
//! what the contract prescribes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::LoadtestError;
use crate::expect::ExpectedTotals;
use crate::router_admin::RouterCounters;
use crate::verify::TopicCheck;

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The run id (`demo_run` header, `ce_source` suffix).
    pub run_id: String,
    /// The generator's seed.
    pub seed: u64,
    /// Teams that sent events.
    pub teams: usize,
    /// Their ids, in the generator's order.
    pub team_ids: Vec<String>,
    /// Sample plugins registered.
    pub plugins: usize,
    /// Events sent.
    pub events: u64,
    /// Events encoded as `application/avro`.
    pub avro: u64,
    /// Events encoded as `application/json`.
    pub json: u64,
    /// From the first send to the last acknowledgement, seconds.
    pub produce_seconds: f64,
    /// Events per second over `produce_seconds`.
    pub produce_rate: f64,
    /// From the last send until the router's counters showed every outcome, seconds; `None` if they
    /// never did within the timeout.
    pub end_to_end_seconds: Option<f64>,
    /// What the contract prescribes.
    pub expected: ExpectedTotals,
    /// What the router's counters grew by during the run.
    pub router: RouterCounters,
    /// The checks of the plugin topics, then the dead-letter topic.
    pub topics: Vec<TopicCheck>,
    /// Records of other runs (or other producers) passed over while reading the topics.
    pub skipped_records: u64,
    /// What the plugin workers did with this run's events, when the demo ran them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_report: Option<crate::plugins::PluginReport>,
    /// What the demo's backfill delivered (contract section 10.5), when it ran one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<crate::demo_backfill::BackfillDemo>,
    /// How the plugins and enablements were set up, e.g. "registry at http://127.0.0.1:8080: 4 plugins,
    /// 32 enablements, 12 configs (5 with a write-only secret)".
    pub control_plane: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// Whether the run shows that nothing was lost, duplicated or invented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Both of the below.
    pub ok: bool,
    /// The topics hold every expected record once, unchanged and in per-team order, and nothing else.
    pub records_ok: bool,
    /// The router's counters grew by exactly the expected amounts.
    pub metrics_ok: bool,
    /// What is wrong, one sentence each.
    pub problems: Vec<String>,
}

/// Judges a run from its expectation, the router's counter deltas and the topic checks.
pub fn verdict(
    expected: &ExpectedTotals,
    router: &RouterCounters,
    router_complete: bool,
    topics: &[TopicCheck],
) -> Verdict {
    let mut problems: Vec<String> = topics
        .iter()
        .filter(|c| !c.clean())
        .map(|check| {
            let parts: Vec<String> = [
                (check.missing, "missing"),
                (check.duplicated, "duplicated"),
                (check.unexpected, "unexpected"),
                (check.altered, "altered"),
                (check.wrong_reason, "with the wrong reason"),
                (check.out_of_order, "out of order"),
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
            format!("{}: {}", check.topic, parts.join(", "))
        })
        .collect();
    let records_ok = problems.is_empty();

    let mut metric_problems = Vec::new();
    if !router_complete {
        metric_problems.push(format!(
            "the router's counters showed an outcome for only {} of {} events within the timeout",
            router.outcomes(),
            expected.events
        ));
    }
    let mut compare = |what: &str, found: u64, wanted: u64| {
        if found != wanted {
            metric_problems.push(format!("the router counted {found} {what}, expected {wanted}"));
        }
    };
    compare("routed events", router.routed, expected.routed);
    compare("unrouted events", router.unrouted, expected.unrouted);
    compare(
        "dead-lettered events",
        router.dead_lettered,
        expected.dead_lettered,
    );
    for reason in union_of_keys(&router.dead_letters, &expected.dead_letters) {
        compare(
            &format!("{reason} dead letters"),
            router.dead_letters.get(reason).copied().unwrap_or(0),
            expected.dead_letters.get(reason).copied().unwrap_or(0),
        );
    }
    for plugin in union_of_keys(&router.plugin_records, &expected.plugin_records) {
        compare(
            &format!("records for {plugin}"),
            router.plugin_records.get(plugin).copied().unwrap_or(0),
            expected.plugin_records.get(plugin).copied().unwrap_or(0),
        );
    }
    let metrics_ok = metric_problems.is_empty();
    problems.extend(metric_problems);
    Verdict {
        ok: records_ok && metrics_ok,
        records_ok,
        metrics_ok,
        problems,
    }
}

fn union_of_keys<'a>(a: &'a BTreeMap<String, u64>, b: &'a BTreeMap<String, u64>) -> BTreeSet<&'a str> {
    a.keys().chain(b.keys()).map(String::as_str).collect()
}

impl Summary {
    /// Writes the summary as pretty-printed JSON to `path`.
    pub fn write_json(&self, path: &Path) -> Result<(), LoadtestError> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| LoadtestError::WriteJson {
            path: path.to_owned(),
            error: e.into(),
        })?;
        json.push(b'\n');
        std::fs::write(path, json).map_err(|error| LoadtestError::WriteJson {
            path: path.to_owned(),
            error,
        })
    }

    /// The human-readable report, ending with the verdict line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let e2e = self.end_to_end_seconds.map_or_else(
            || "the router did not finish within the timeout".to_owned(),
            |s| format!("end-to-end {s:.1} s after the last send"),
        );
        let _ = writeln!(
            out,
            "Switchyard demo  run {}  {} teams, {} plugins, {} events in {:.1} s ({:.0} events/s produced, {e2e})",
            self.run_id, self.teams, self.plugins, self.events, self.produce_seconds, self.produce_rate
        );
        let _ = writeln!(out, "  set up through the {}", self.control_plane);
        let dlq = self.topics.iter().find(|c| !c.topic.starts_with("plugin."));
        let _ = writeln!(out, "  {:<26}{:>9}{:>9}{:>9}", "", "expected", "router", "topics");
        let _ = writeln!(
            out,
            "  {:<26}{:>9}{:>9}{:>9}   (Avro {}, JSON {})",
            "events in",
            self.events,
            self.router.outcomes(),
            "",
            self.avro,
            self.json
        );
        let _ = writeln!(
            out,
            "  {:<26}{:>9}{:>9}{:>9}",
            "routed", self.expected.routed, self.router.routed, ""
        );
        let _ = writeln!(
            out,
            "  {:<26}{:>9}{:>9}{:>9}   (teams with no matching plugin)",
            "unrouted", self.expected.unrouted, self.router.unrouted, ""
        );
        let reasons: Vec<String> = self
            .expected
            .dead_letters
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "  {:<26}{:>9}{:>9}{:>9}   {}",
            "dead-lettered",
            self.expected.dead_lettered,
            self.router.dead_lettered,
            dlq.map_or(0, |c| c.arrived),
            reasons.join(", ")
        );
        let _ = writeln!(
            out,
            "  {:<26}{:>9}{:>9}{:>9}",
            "per plugin", "expected", "router", "records"
        );
        for check in self.topics.iter().filter(|c| c.topic.starts_with("plugin.")) {
            let plugin = check
                .topic
                .strip_prefix("plugin.")
                .and_then(|t| t.strip_suffix(".events"))
                .unwrap_or(&check.topic);
            let _ = writeln!(
                out,
                "    {:<24}{:>9}{:>9}{:>9}",
                plugin,
                check.expected,
                self.router.plugin_records.get(plugin).copied().unwrap_or(0),
                check.arrived
            );
        }
        if self.skipped_records > 0 {
            let _ = writeln!(
                out,
                "  records of other runs passed over while reading back: {}",
                self.skipped_records
            );
        }
        for check in &self.topics {
            for example in &check.examples {
                let _ = writeln!(out, "  {}: {example}", check.topic);
            }
        }
        if let Some(report) = &self.plugin_report {
            let _ = writeln!(
                out,
                "  {:<26}{:>9}{:>9}{:>9}  all done, after the first send",
                "plugin workers", "routed", "done", "dead"
            );
            for (plugin, counts) in &report.outcomes {
                let took = if counts.done_before_first_look {
                    format!("within {:.1} s (done when first looked at)", counts.seconds)
                } else {
                    format!("{:.1} s", counts.seconds)
                };
                let _ = writeln!(
                    out,
                    "    {:<24}{:>9}{:>9}{:>9}  {took}",
                    plugin, counts.routed, counts.done, counts.dead_lettered
                );
            }
            let result = |kind: &str| report.results.get(kind).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "  what the plugins did: {} sheet rows written, {} SMS requests made ({} skipped: no valid \
                 number), {} responses flagged, slang found in {} responses",
                result("sheets.row_appended"),
                result("sms.sent"),
                result("sms.skipped"),
                result("response.flagged"),
                result("slang.found")
            );
        }
        if let Some(b) = &self.backfill {
            let _ = writeln!(
                out,
                "  backfill: {} enabled {} with backfill {} of this run ({}): history {} of {} events, \
                 labelled, then {} of {} live events, in order",
                b.team,
                b.plugin,
                b.backfill,
                b.state,
                b.history_delivered,
                b.history_expected,
                b.live_delivered,
                b.live_sent
            );
        }
        for problem in &self.verdict.problems {
            let _ = writeln!(out, "  problem: {problem}");
        }
        let line = if self.verdict.ok {
            "nothing lost: every expected record arrived once, unchanged and in per-team order, none \
             unexpected; the router's counters agree"
                .to_owned()
        } else if self.verdict.records_ok {
            "FAILED: the topics hold exactly the expected records, but the router's counters disagree"
                .to_owned()
        } else {
            "FAILED: records are missing, duplicated, unexpected or altered (see the problems above)"
                .to_owned()
        };
        let _ = writeln!(out, "  {line}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> ExpectedTotals {
        ExpectedTotals {
            events: 100,
            routed: 80,
            unrouted: 15,
            dead_lettered: 5,
            dead_letters: BTreeMap::from([
                ("missing_header".to_owned(), 2),
                ("teamid_mismatch".to_owned(), 3),
            ]),
            plugin_records: BTreeMap::from([("sheets-export".to_owned(), 70), ("sms-notify".to_owned(), 20)]),
        }
    }

    fn router() -> RouterCounters {
        RouterCounters {
            routed: 80,
            unrouted: 15,
            dead_lettered: 5,
            dead_letters: expected().dead_letters,
            plugin_records: expected().plugin_records,
            ..RouterCounters::default()
        }
    }

    fn clean(topic: &str, n: u64) -> TopicCheck {
        TopicCheck {
            topic: topic.to_owned(),
            expected: n,
            arrived: n,
            ..TopicCheck::default()
        }
    }

    fn topics() -> Vec<TopicCheck> {
        vec![
            clean("plugin.sheets-export.events", 70),
            clean("plugin.sms-notify.events", 20),
            clean("core.events.dlq", 5),
        ]
    }

    #[test]
    fn all_agree() {
        let v = verdict(&expected(), &router(), true, &topics());
        assert_eq!(
            v,
            Verdict {
                ok: true,
                records_ok: true,
                metrics_ok: true,
                problems: vec![]
            }
        );
    }

    #[test]
    fn a_missing_record_fails() {
        let mut topics = topics();
        topics[1].missing = 1;
        topics[1].arrived = 19;
        let v = verdict(&expected(), &router(), true, &topics);
        assert!(!v.ok && !v.records_ok && v.metrics_ok, "{v:?}");
        assert_eq!(v.problems, ["plugin.sms-notify.events: 1 missing"]);
    }

    #[test]
    fn duplicates_and_unexpected_fail() {
        let mut topics = topics();
        topics[0].duplicated = 2;
        topics[2].unexpected = 1;
        let v = verdict(&expected(), &router(), true, &topics);
        assert!(!v.ok && !v.records_ok);
        assert_eq!(v.problems.len(), 2);
    }

    #[test]
    fn disagreeing_metrics_fail() {
        let mut router = router();
        router.unrouted = 14;
        router.plugin_records.insert("audit-log".to_owned(), 3);
        let v = verdict(&expected(), &router, false, &topics());
        assert!(!v.ok && v.records_ok && !v.metrics_ok, "{v:?}");
        assert_eq!(v.problems.len(), 3, "{:?}", v.problems);
        assert!(v.problems.iter().any(|p| p.contains("audit-log")));
    }

    #[test]
    fn renders_the_table_and_verdict() {
        let summary = Summary {
            run_id: "0193".into(),
            seed: 7,
            teams: 8,
            team_ids: vec!["acme".into()],
            plugins: 4,
            events: 100,
            avro: 70,
            json: 30,
            produce_seconds: 0.5,
            produce_rate: 200.0,
            end_to_end_seconds: Some(0.4),
            expected: expected(),
            router: router(),
            topics: topics(),
            skipped_records: 0,
            plugin_report: None,
            backfill: None,
            control_plane: "control topics: 4 plugins, 32 enablements".into(),
            verdict: verdict(&expected(), &router(), true, &topics()),
        };
        let text = summary.render();
        assert!(
            text.contains(
                "100 events in 0.5 s (200 events/s produced, end-to-end 0.4 s after the last send)"
            )
        );
        assert!(text.contains("sheets-export"), "{text}");
        assert!(text.trim_end().ends_with("the router's counters agree"), "{text}");
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["verdict"]["ok"], true);
        assert_eq!(json["expected"]["plugin_records"]["sms-notify"], 20);
    }
}
