//! `find-max` (the highest rate one system sustains within a latency objective) and `plan` (what a
//! target peak needs, from measured capacities).

use serde::{Deserialize, Serialize};

use crate::LoadtestError;
use crate::report::{bar_chart, escape, page, write_files};
use crate::run::{Session, StepResult};

/// How `find-max` searches.
#[derive(Debug, Clone, Copy)]
pub struct SearchOptions {
    /// The first rate tried, events/s.
    pub start_rate: u64,
    /// Each passing step multiplies the rate by this.
    pub factor: f64,
    /// Never try more than this.
    pub max_rate: u64,
    /// Sending time of each step, seconds.
    pub step_seconds: u64,
    /// The latency objective: p99 end-to-end at most this, ms.
    pub p99_ms: f64,
    /// Bisection steps between the last pass and the first failure.
    pub refine: u32,
}

/// One step of the search and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct SearchStep {
    /// The measurement.
    pub result: StepResult,
    /// Whether it met the objective.
    pub passed: bool,
    /// Why not.
    pub reason: Option<String>,
}

/// The result of `find-max`.
#[derive(Debug, Clone, Serialize)]
pub struct SearchReport {
    /// The highest passing rate (events/s), 0 if none passed.
    pub max_sustained_rate: u64,
    /// The latency objective.
    pub p99_objective_ms: f64,
    /// Every step in order.
    pub steps: Vec<SearchStep>,
}

/// Whether `step` meets the objective: p99 within the bound, the lag not growing, the target rate
/// actually sent (at least 95%) and every output read.
pub fn judge(step: &StepResult, p99_ms: f64) -> Option<String> {
    if !step.drained {
        return Some("not every output arrived before the timeout".into());
    }
    if step.rate_in < 0.95 * step.target_rate as f64 {
        return Some(format!(
            "only {:.0} of {} events/s could be sent",
            step.rate_in, step.target_rate
        ));
    }
    if step.latency_ms.p99 > p99_ms {
        return Some(format!("p99 {:.1} ms > {p99_ms} ms", step.latency_ms.p99));
    }
    if step.lag_growing {
        return Some("the lag kept growing".into());
    }
    None
}

/// Raises the rate until a step fails, then bisects between the last pass and the first failure.
pub fn find_max(session: &mut Session, search: &SearchOptions) -> Result<SearchReport, LoadtestError> {
    let mut steps = Vec::new();
    let mut run = |rate: u64, steps: &mut Vec<SearchStep>| -> Result<bool, LoadtestError> {
        eprintln!(
            "switchyard-loadtest: find-max: {rate} events/s for {} s",
            search.step_seconds
        );
        let result = session.step(
            rate,
            std::time::Duration::from_secs(search.step_seconds),
            u64::MAX,
        )?;
        let reason = judge(&result, search.p99_ms);
        eprintln!(
            "switchyard-loadtest: find-max: {rate} events/s: p99 {:.1} ms, lag at end {}, {}",
            result.latency_ms.p99,
            result.lag_at_end.map_or("?".into(), |l| l.to_string()),
            reason.as_deref().unwrap_or("PASS")
        );
        let passed = reason.is_none();
        steps.push(SearchStep {
            result,
            passed,
            reason,
        });
        Ok(passed)
    };
    let (mut good, mut bad) = (0u64, None);
    let mut rate = search.start_rate.max(1);
    loop {
        if run(rate, &mut steps)? {
            good = rate;
            if rate >= search.max_rate {
                break;
            }
            rate = ((rate as f64 * search.factor) as u64)
                .min(search.max_rate)
                .max(rate + 1);
        } else {
            bad = Some(rate);
            break;
        }
    }
    if let Some(mut high) = bad {
        for _ in 0..search.refine {
            let mid = (good + high) / 2;
            if mid <= good || mid >= high {
                break;
            }
            if run(mid, &mut steps)? {
                good = mid;
            } else {
                high = mid;
            }
        }
    }
    Ok(SearchReport {
        max_sustained_rate: good,
        p99_objective_ms: search.p99_ms,
        steps,
    })
}

/// Writes `find-max.json` and `find-max.html`.
pub fn write_search(dir: &std::path::Path, report: &SearchReport) -> Result<(), LoadtestError> {
    let mut body = format!(
        "<p>Highest sustained rate: <b>{} events/s</b> with p99 at most {} ms and the lag not growing.</p>\
         <table><tr><th>target /s</th><th>sent /s</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th>\
         <th>lag at end</th><th>CPU s</th><th>verdict</th></tr>",
        report.max_sustained_rate, report.p99_objective_ms
    );
    for step in &report.steps {
        let r = &step.result;
        body.push_str(&format!(
            "<tr><td>{}</td><td>{:.0}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
            r.target_rate,
            r.rate_in,
            r.latency_ms.p50,
            r.latency_ms.p99,
            r.latency_ms.p999,
            r.lag_at_end.map_or("?".into(), |l| l.to_string()),
            r.cpu_seconds,
            escape(step.reason.as_deref().unwrap_or("pass"))
        ));
    }
    body.push_str("</table>");
    body.push_str(&bar_chart(
        "p99 by target rate",
        "ms",
        &report
            .steps
            .iter()
            .map(|s| (format!("{} /s", s.result.target_rate), s.result.latency_ms.p99))
            .collect::<Vec<_>>(),
    ));
    write_files(
        dir,
        &[
            (
                "find-max.json",
                serde_json::to_string_pretty(report).unwrap_or_default(),
            ),
            ("find-max.html", page("Switchyard find-max", &body)),
        ],
    )
}

/// The inputs of a capacity plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanInputs {
    /// Target peak, core events per second.
    pub peak_rate: f64,
    /// Mean core event size, bytes (value + key + headers).
    pub event_bytes: f64,
    /// Mean plugin topics per event.
    pub fanout: f64,
    /// Latency objective, p99 ms (recorded; the capacities must have been measured under it).
    pub p99_ms: f64,
    /// Events/s one router replica sustains within the objective (from `find-max`).
    pub router_capacity: f64,
    /// Events/s one plugin worker replica handles (from the runtime benchmark or the plugin's own
    /// measurement).
    pub worker_capacity: f64,
    /// Plugins, to split the fan-out across.
    pub plugins: usize,
    /// Headroom kept on every capacity (0.3 = plan for 70% utilisation).
    pub headroom: f64,
    /// Events/s one core-topic partition should carry at most (also bounds consumer parallelism).
    pub partition_rate: f64,
}

/// A capacity plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The inputs.
    pub inputs: PlanInputs,
    /// Router replicas.
    pub router_replicas: u64,
    /// Partitions of the core topic (at least the replicas, rounded up to a multiple of them).
    pub core_partitions: u64,
    /// Plugin worker replicas per plugin at the plugin's share of the fan-out (uniform split).
    pub worker_replicas_per_plugin: u64,
    /// Partitions per plugin topic (at least its workers).
    pub plugin_partitions: u64,
    /// Broker write throughput: core events plus plugin records, MB/s (before replication).
    pub broker_write_mb_s: f64,
    /// Broker read throughput: routers plus workers, MB/s.
    pub broker_read_mb_s: f64,
    /// The assumptions, in words.
    pub assumptions: Vec<String>,
}

/// Computes a plan.
pub fn plan(inputs: PlanInputs) -> Result<Plan, LoadtestError> {
    let positive = |name: &str, v: f64| {
        if v > 0.0 && v.is_finite() {
            Ok(())
        } else {
            Err(LoadtestError::Usage(format!("{name} must be positive, not {v}")))
        }
    };
    positive("--peak-rate", inputs.peak_rate)?;
    positive("--event-bytes", inputs.event_bytes)?;
    positive("--router-capacity", inputs.router_capacity)?;
    positive("--worker-capacity", inputs.worker_capacity)?;
    positive("--partition-rate", inputs.partition_rate)?;
    if !(0.0..0.95).contains(&inputs.headroom) {
        return Err(LoadtestError::Usage("--headroom must be in [0, 0.95)".into()));
    }
    if inputs.plugins == 0 {
        return Err(LoadtestError::Usage("--plugins must be at least 1".into()));
    }
    let usable = 1.0 - inputs.headroom;
    let router_replicas = (inputs.peak_rate / (inputs.router_capacity * usable))
        .ceil()
        .max(1.0) as u64;
    let by_rate = (inputs.peak_rate / (inputs.partition_rate * usable))
        .ceil()
        .max(1.0) as u64;
    let core_partitions = by_rate.max(router_replicas).div_ceil(router_replicas) * router_replicas;
    let per_plugin_rate = inputs.peak_rate * inputs.fanout / inputs.plugins as f64;
    let worker_replicas_per_plugin = (per_plugin_rate / (inputs.worker_capacity * usable))
        .ceil()
        .max(1.0) as u64;
    let plugin_partitions = worker_replicas_per_plugin.max(
        (per_plugin_rate / (inputs.partition_rate * usable))
            .ceil()
            .max(1.0) as u64,
    );
    let mb = |events: f64| events * inputs.event_bytes / 1e6;
    let broker_write_mb_s = mb(inputs.peak_rate * (1.0 + inputs.fanout));
    let broker_read_mb_s = mb(inputs.peak_rate * (1.0 + inputs.fanout));
    let assumptions = vec![
        format!(
            "router capacity {:.0} events/s per replica was measured with find-max under a p99 of {} ms on \
             comparable hardware; it is planned at {:.0}% utilisation",
            inputs.router_capacity,
            inputs.p99_ms,
            usable * 100.0
        ),
        "load spreads evenly over partitions: team keys are many and Zipf-skewed, so check the busiest \
         team's rate stays below one partition's"
            .to_owned(),
        format!(
            "the fan-out of {:.2} plugin topics per event splits evenly over {} plugins; a busy plugin needs \
             more workers than the average shown",
            inputs.fanout, inputs.plugins
        ),
        "broker figures are before replication: multiply writes by the replication factor for disk and \
         inter-broker traffic; plugin records are the same size as core events (the router copies them)"
            .to_owned(),
        "consumer parallelism is bounded by partitions: one partition feeds one router replica and one \
         worker"
            .to_owned(),
    ];
    Ok(Plan {
        inputs,
        router_replicas,
        core_partitions,
        worker_replicas_per_plugin,
        plugin_partitions,
        broker_write_mb_s,
        broker_read_mb_s,
        assumptions,
    })
}

impl Plan {
    /// The plan for a human.
    pub fn render(&self) -> String {
        let i = &self.inputs;
        let mut out = format!(
            "capacity plan for {:.0} events/s at p99 <= {} ms ({:.0} B events, fan-out {:.2}, {} plugins, \
             {:.0}% headroom)\n\n",
            i.peak_rate,
            i.p99_ms,
            i.event_bytes,
            i.fanout,
            i.plugins,
            i.headroom * 100.0
        );
        out.push_str(&format!(
            "  core topic partitions      {}\n",
            self.core_partitions
        ));
        out.push_str(&format!(
            "  router replicas            {}\n",
            self.router_replicas
        ));
        out.push_str(&format!(
            "  plugin topic partitions    {} per plugin\n",
            self.plugin_partitions
        ));
        out.push_str(&format!(
            "  plugin worker replicas     {} per plugin ({} in all)\n",
            self.worker_replicas_per_plugin,
            self.worker_replicas_per_plugin * i.plugins as u64
        ));
        out.push_str(&format!(
            "  broker writes              {:.1} MB/s (before replication)\n",
            self.broker_write_mb_s
        ));
        out.push_str(&format!(
            "  broker reads               {:.1} MB/s\n\nassumptions:\n",
            self.broker_read_mb_s
        ));
        for a in &self.assumptions {
            out.push_str(&format!("  - {a}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> PlanInputs {
        PlanInputs {
            peak_rate: 20_000.0,
            event_bytes: 1200.0,
            fanout: 3.0,
            p99_ms: 200.0,
            router_capacity: 8_000.0,
            worker_capacity: 1_000.0,
            plugins: 20,
            headroom: 0.3,
            partition_rate: 2_000.0,
        }
    }

    #[test]
    fn the_issue_s_question() {
        let plan = plan(inputs()).unwrap();
        // 20k / (8k * 0.7) = 3.57 -> 4 replicas; 20k / (2k * 0.7) = 14.3 -> 15 -> 16 (multiple of 4).
        assert_eq!(plan.router_replicas, 4);
        assert_eq!(plan.core_partitions, 16);
        // 20k * 3 / 20 = 3k per plugin; 3k / 700 = 4.3 -> 5 workers.
        assert_eq!(plan.worker_replicas_per_plugin, 5);
        assert_eq!(plan.plugin_partitions, 5);
        assert!((plan.broker_write_mb_s - 96.0).abs() < 1e-9);
        assert!(plan.render().contains("router replicas            4"));
    }

    #[test]
    fn nonsense_inputs_are_refused() {
        let mut bad = inputs();
        bad.router_capacity = 0.0;
        assert!(plan(bad).unwrap_err().to_string().contains("--router-capacity"));
        let mut bad = inputs();
        bad.headroom = 1.0;
        assert!(plan(bad).is_err());
    }

    #[test]
    fn a_step_is_judged_by_every_rule() {
        let step = |p99: f64, rate_in: f64, growing: bool, drained: bool| StepResult {
            target_rate: 1000,
            events: 1000,
            send_seconds: 1.0,
            rate_in,
            expected_records: 10,
            records_read: 10,
            seconds: 1.0,
            rate_out: 10.0,
            drained,
            latency_ms: crate::measure::Percentiles {
                count: 10,
                p50: 1.0,
                p90: 2.0,
                p99,
                p999: p99,
                max: p99,
            },
            cpu_seconds: 1.0,
            events_per_cpu_second: 1000.0,
            rss_mib_max: 10.0,
            lag_at_end: Some(0),
            lag_max: Some(0),
            lag_growing: growing,
            timeline: Vec::new(),
        };
        assert_eq!(judge(&step(50.0, 1000.0, false, true), 200.0), None);
        assert!(
            judge(&step(250.0, 1000.0, false, true), 200.0)
                .unwrap()
                .contains("p99")
        );
        assert!(
            judge(&step(50.0, 500.0, false, true), 200.0)
                .unwrap()
                .contains("could be sent")
        );
        assert!(
            judge(&step(50.0, 1000.0, true, true), 200.0)
                .unwrap()
                .contains("lag")
        );
        assert!(
            judge(&step(50.0, 1000.0, false, false), 200.0)
                .unwrap()
                .contains("arrive")
        );
    }
}
