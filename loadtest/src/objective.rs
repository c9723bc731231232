//! What a measured step was asked to achieve, whether it did (the verdict), and what a reader should look
//! at even when it did (the anomalies). `run` and `find-max` judge by the same checks.
//!
//! ```text
//!   Objective (target rate, p99 bound or none) ─┐
//!   StepResult ─────────────────────────────────┴─► checks ─► Verdict (pass: every check holds)
//!   StepResult + what the run saw ──────────────────────────► anomalies (sentences)
//! ```

use serde::Serialize;

use crate::run::StepResult;

/// The share of the target rate a step must actually send: below it the load tool or the broker was the
/// limit, not the system under test.
pub const RATE_SHARE: f64 = 0.95;

/// What a step was asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Objective {
    /// Events per second asked for; 0: as fast as the broker takes them (nothing to hold).
    pub target_rate: u64,
    /// The latency objective, p99 end-to-end at most this many ms; `null` when none was given.
    pub p99_ms: Option<f64>,
    /// The objective in words, including what the run is judged on when no latency objective was given.
    pub text: String,
}

impl Objective {
    /// The objective of a step at `target_rate` (0: as fast as possible) with an optional p99 bound.
    pub fn new(target_rate: u64, p99_ms: Option<f64>) -> Self {
        let rate = if target_rate == 0 {
            "events sent as fast as the broker takes them (no target rate)".to_owned()
        } else {
            format!(
                "{target_rate} events/s sent (at least {:.0}% of it)",
                RATE_SHARE * 100.0
            )
        };
        let latency = match p99_ms {
            Some(p99) => format!("p99 end-to-end latency at most {p99} ms"),
            None => "no latency objective given (--p99-ms), so latency is reported, not judged".to_owned(),
        };
        let text = format!(
            "{latency}; {rate}; every expected plugin record read, none more; the consumer lag not growing"
        );
        Self {
            target_rate,
            p99_ms,
            text,
        }
    }
}

/// What a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Every expected plugin record was read before the timeout.
    RecordsComplete,
    /// No more records than expected were read.
    NoSurplus,
    /// The target rate was sent.
    RateSent,
    /// The p99 is within the objective.
    P99Within,
    /// The consumer lag did not keep growing while sending.
    LagSteady,
    /// Events were sent and latencies measured, the percentiles ordered.
    Measured,
}

/// One check of a step against its objective.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What it checks.
    pub kind: CheckKind,
    /// Whether it holds.
    pub passed: bool,
    /// What was found, one sentence.
    pub text: String,
}

/// The verdict of a step: it passes when every check holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Every check holds.
    pub passed: bool,
    /// `PASS` or `FAIL`, then the failed checks, in one line.
    pub summary: String,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

/// The checks of `step` against `objective`: records complete, no surplus, the rate sent (with a target),
/// the p99 within its bound (with one), the lag steady, the measurement usable.
pub fn checks(step: &StepResult, objective: &Objective) -> Vec<Check> {
    let check = |kind, passed, text: String| Check { kind, passed, text };
    let l = &step.latency_ms;
    let mut checks = vec![check(
        CheckKind::RecordsComplete,
        step.drained,
        if step.drained {
            format!(
                "every expected plugin record arrived: {} of {} read",
                step.records_read.min(step.expected_records),
                step.expected_records
            )
        } else {
            format!(
                "not every output arrived before the timeout: {} of {} expected plugin records read",
                step.records_read, step.expected_records
            )
        },
    )];
    let surplus = step.records_read.saturating_sub(step.expected_records);
    checks.push(check(
        CheckKind::NoSurplus,
        surplus == 0,
        if surplus == 0 {
            "no records beyond those expected".to_owned()
        } else {
            format!(
                "{surplus} records more than the {} expected",
                step.expected_records
            )
        },
    ));
    if objective.target_rate > 0 {
        let held = step.rate_in >= RATE_SHARE * objective.target_rate as f64;
        checks.push(check(
            CheckKind::RateSent,
            held,
            if held {
                format!("{:.0} of {} events/s sent", step.rate_in, objective.target_rate)
            } else {
                format!(
                    "only {:.0} of {} events/s could be sent",
                    step.rate_in, objective.target_rate
                )
            },
        ));
    }
    if let Some(bound) = objective.p99_ms {
        let within = l.count > 0 && l.p99 <= bound;
        checks.push(check(
            CheckKind::P99Within,
            within,
            format!(
                "p99 {:.1} ms {} {bound} ms",
                l.p99,
                if within { "<=" } else { ">" }
            ),
        ));
    }
    checks.push(check(
        CheckKind::LagSteady,
        !step.lag_growing,
        if step.lag_growing {
            "the lag kept growing while sending: the system did not keep up".to_owned()
        } else {
            "the consumer lag did not keep growing".to_owned()
        },
    ));
    let ordered =
        l.count > 0 && l.p50 > 0.0 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max;
    let measured = step.events > 0 && ordered;
    checks.push(check(
        CheckKind::Measured,
        measured,
        if measured {
            format!("{} events sent, {} latencies measured", step.events, l.count)
        } else if step.events == 0 {
            "no events were sent".to_owned()
        } else {
            format!("latency percentiles are not sane: {l:?}")
        },
    ));
    checks
}

/// The verdict of `step` against `objective`.
pub fn verdict(step: &StepResult, objective: &Objective) -> Verdict {
    let checks = checks(step, objective);
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.text.as_str())
        .collect();
    Verdict {
        passed: failed.is_empty(),
        summary: if failed.is_empty() {
            "PASS: every check of the objective holds".to_owned()
        } else {
            format!("FAIL: {}", failed.join("; "))
        },
        checks,
    }
}

/// What a reader of a run should look at, one sentence each: records missing or beyond those expected, a
/// growing lag, a rate not reached, latency samples that differ from the records read, a watched process
/// gone, watched processes that did no work, nothing watched.
pub fn anomalies(step: &StepResult, objective: &Objective, watched: usize) -> Vec<String> {
    let mut found = Vec::new();
    if !step.drained {
        found.push(format!(
            "FEWER records than expected: {} of {} expected plugin records were read before the timeout \
             ({} missing); raise --timeout if the system was only slow, else records were lost",
            step.records_read,
            step.expected_records,
            step.expected_records.saturating_sub(step.records_read)
        ));
    }
    if step.records_read > step.expected_records {
        found.push(format!(
            "MORE records than expected: {} plugin records were read, {} more than the {} expected: the \
             system routed by controls the scenario does not contain (with --setup skip: left by another \
             run) or wrote duplicates, so the figures describe more work than the scenario states",
            step.records_read,
            step.records_read - step.expected_records,
            step.expected_records
        ));
    }
    if step.lag_growing {
        let lags: Vec<u64> = step
            .timeline
            .iter()
            .filter(|s| s.t <= step.send_seconds)
            .filter_map(|s| s.lag)
            .collect();
        let third = (lags.len() / 3).max(1);
        let mean = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len().max(1) as f64;
        found.push(format!(
            "the consumer lag GREW while sending, from a mean of {:.0} events in the first third to {:.0} in \
             the last: the system did not keep up with {:.0} events/s",
            mean(&lags[..third.min(lags.len())]),
            mean(&lags[lags.len().saturating_sub(third)..]),
            step.rate_in
        ));
    }
    if objective.target_rate > 0 && step.rate_in < RATE_SHARE * objective.target_rate as f64 {
        found.push(format!(
            "the target rate was NOT reached: {:.0} of {} events/s sent; the load tool or the broker was the \
             limit, not the system under test",
            step.rate_in, objective.target_rate
        ));
    }
    if step.latency_ms.count != step.records_read {
        found.push(format!(
            "{} latency samples for {} records read: they should be equal (one latency per record read)",
            step.latency_ms.count, step.records_read
        ));
    }
    if watched > 0
        && let Some(gone) = step.timeline.iter().find(|s| s.rss_mib <= 0.0)
    {
        found.push(format!(
            "the watched processes had no memory at {:.0} s: a process ended during the run, so CPU and \
             memory undercount from then on",
            gone.t
        ));
    }
    if watched > 0 && step.events > 0 && step.cpu_seconds <= 0.0 {
        found.push(format!(
            "the watched processes used no CPU while {} events went through: --pid names something other \
             than the system under test (a wrapper, a shell), so CPU and memory describe that",
            step.events
        ));
    }
    if watched == 0 {
        found.push(
            "no process was watched (--pid, --process-name): CPU and memory were not measured".to_owned(),
        );
    }
    found
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::measure::Percentiles;
    use crate::run::Sample;

    pub(crate) fn step(expected: u64, read: u64) -> StepResult {
        StepResult {
            target_rate: 300,
            events: 1200,
            send_seconds: 4.0,
            rate_in: 299.5,
            expected_records: expected,
            records_read: read,
            seconds: 4.4,
            rate_out: read as f64 / 4.4,
            drained: read >= expected,
            latency_ms: Percentiles {
                count: read,
                p50: 12.0,
                p90: 30.0,
                p99: 80.0,
                p999: 95.0,
                max: 120.0,
            },
            cpu_seconds: 0.8,
            events_per_cpu_second: 1500.0,
            rss_mib_max: 40.0,
            lag_at_end: Some(3),
            lag_max: Some(40),
            lag_growing: false,
            timeline: (1..=4)
                .map(|t| Sample {
                    t: f64::from(t),
                    events_in: 300,
                    records_out: 450,
                    p99_ms: 70.0,
                    lag: Some(10),
                    cpu_cores: 0.2,
                    rss_mib: 40.0,
                })
                .collect(),
        }
    }

    #[test]
    fn a_clean_step_passes_and_says_what_it_was_judged_on() {
        let objective = Objective::new(300, None);
        assert!(
            objective.text.contains("no latency objective given (--p99-ms)"),
            "{}",
            objective.text
        );
        let verdict = verdict(&step(1800, 1800), &objective);
        assert!(verdict.passed, "{verdict:?}");
        assert!(!verdict.checks.iter().any(|c| c.kind == CheckKind::P99Within));
        assert!(anomalies(&step(1800, 1800), &objective, 1).is_empty());
    }

    #[test]
    fn every_objective_fails_on_its_own() {
        let tight = Objective::new(300, Some(50.0));
        let v = verdict(&step(1800, 1800), &tight);
        assert!(!v.passed && v.summary == "FAIL: p99 80.0 ms > 50 ms", "{v:?}");
        let mut slow = step(1800, 1800);
        slow.rate_in = 200.0;
        slow.lag_growing = true;
        let v = verdict(&slow, &Objective::new(300, Some(100.0)));
        assert!(
            v.summary.contains("only 200 of 300 events/s could be sent")
                && v.summary.contains("lag kept growing"),
            "{v:?}"
        );
        // As fast as possible: no rate to hold.
        assert!(
            verdict(&slow, &Objective::new(0, None))
                .checks
                .iter()
                .all(|c| c.kind != CheckKind::RateSent)
        );
    }

    #[test]
    fn anomalies_name_the_counts() {
        let objective = Objective::new(300, None);
        let surplus = anomalies(&step(1800, 2000), &objective, 1);
        assert_eq!(surplus.len(), 1, "{surplus:?}");
        assert!(
            surplus[0].starts_with("MORE records than expected: 2000 plugin records were read, 200 more")
        );
        let missing = anomalies(&step(1800, 1700), &objective, 1);
        assert!(
            missing[0].starts_with("FEWER records than expected: 1700 of 1800"),
            "{missing:?}"
        );
        let mut odd = step(1800, 1800);
        odd.latency_ms.count = 1790;
        odd.lag_growing = true;
        odd.timeline[0].lag = Some(0);
        odd.timeline[3].lag = Some(900);
        odd.timeline[2].rss_mib = 0.0;
        let found = anomalies(&odd, &objective, 1);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].contains("from a mean of 0 events in the first third to 900"),
            "{found:?}"
        );
        assert!(found[1].contains("1790 latency samples for 1800 records read"));
        assert!(found[2].contains("at 3 s"));
        assert!(anomalies(&step(1800, 1800), &objective, 0)[0].contains("no process was watched"));
        let mut idle = step(1800, 1800);
        idle.cpu_seconds = 0.0;
        let found = anomalies(&idle, &objective, 1);
        assert!(
            found.len() == 1 && found[0].contains("no CPU while 1200 events went through"),
            "{found:?}"
        );
    }
}
