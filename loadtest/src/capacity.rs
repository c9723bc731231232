//! `find-max` (the highest rate one system sustains within a latency objective) and `plan` (what a
//! target peak needs, from measured capacities).

use serde::{Deserialize, Serialize};

use crate::LoadtestError;
use crate::metadata::Metadata;
use crate::objective::{self, CheckKind, Objective};
use crate::report::{
    LineChart, Series, bar_chart, escape, glossary_section, line_chart, metadata_section, page,
    system_section, write_files,
};
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

/// The result of `find-max` (`find-max.json`).
#[derive(Debug, Clone, Serialize)]
pub struct SearchReport {
    /// The highest passing rate (events/s), 0 if none passed.
    pub max_sustained_rate: u64,
    /// The latency objective.
    pub p99_objective_ms: f64,
    /// Every step in order.
    pub steps: Vec<SearchStep>,
    /// When, how and where it ran (scenario, machine), and the system under test.
    pub metadata: Metadata,
}

/// The checks a step of the search must pass, in this order (the first that fails is its reason).
const SEARCH_CHECKS: [CheckKind; 4] = [
    CheckKind::RecordsComplete,
    CheckKind::RateSent,
    CheckKind::P99Within,
    CheckKind::LagSteady,
];

/// Whether `step` meets the objective: every output read, the target rate actually sent (at least
/// 95%), p99 within the bound and the lag not growing; the sentence of the first check that fails. The
/// checks are those of a `run`'s verdict ([`objective::checks`]).
pub fn judge(step: &StepResult, p99_ms: f64) -> Option<String> {
    let checks = objective::checks(step, &Objective::new(step.target_rate, Some(p99_ms)));
    SEARCH_CHECKS.iter().find_map(|kind| {
        checks
            .iter()
            .find(|c| c.kind == *kind && !c.passed)
            .map(|c| c.text.clone())
    })
}

/// Raises the rate until a step fails, then bisects between the last pass and the first failure;
/// `metadata` describes the search in its report.
pub fn find_max(
    session: &mut Session,
    search: &SearchOptions,
    metadata: Metadata,
) -> Result<SearchReport, LoadtestError> {
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
        metadata,
    })
}

/// What the find-max page defines, beyond the run's glossary.
const SEARCH_GLOSSARY: &[(&str, &str)] = &[
    (
        "Step",
        "A measured run at one target rate for --step of sending, judged like a run: every expected record \
         read, at least 95% of the target rate sent, the p99 within the objective, the lag not growing.",
    ),
    (
        "Max sustained rate",
        "The highest target rate whose step passed: rates rise by --factor until a step fails, then \
         --refine bisections between the last pass and the first failure. The capacity of the system \
         measured, on this machine and with these settings.",
    ),
    (
        "p50, p99, p99.9",
        "Percentiles of the end-to-end latency of the step's plugin records (producer hand-off to \
         read_committed read), ms.",
    ),
    (
        "Lag at end",
        "Records of the core topic not yet committed by the group when the step stopped sending.",
    ),
    (
        "CPU s, RSS max",
        "CPU seconds of the watched processes during the step, and their largest resident memory, MiB.",
    ),
];

/// The find-max page: the result and objective, the scenario and machine, the system, every step.
pub fn search_page(report: &SearchReport) -> String {
    let m = &report.metadata;
    let scenario = m.scenario.as_deref().unwrap_or("unknown");
    let mut body = format!(
        "<section id=\"verdict\" class=\"{class}\"><h2>Max sustained rate: {rate} events/s</h2><p><b>Objective:</b> \
         p99 end-to-end latency at most {p99} ms, at least 95% of the target rate sent, every expected plugin \
         record read, the consumer lag not growing.</p><p>Scenario <b>{scenario}</b> on {machine}.</p></section>\n",
        class = if report.max_sustained_rate > 0 {
            "pass"
        } else {
            "fail"
        },
        rate = report.max_sustained_rate,
        p99 = report.p99_objective_ms,
        scenario = escape(scenario),
        machine = escape(&m.machine.line()),
    );
    body.push_str(&metadata_section(m, ""));
    if let Some(system) = &m.system {
        body.push_str(&system_section(system));
    }
    body.push_str(
        "<section id=\"steps\"><h2>Steps</h2><table><tr><th>target /s</th><th>sent /s</th><th>p50 ms</th>\
         <th>p99 ms</th><th>p99.9 ms</th><th>lag at end</th><th>CPU s</th><th>RSS max MiB</th><th>verdict</th></tr>",
    );
    for step in &report.steps {
        let r = &step.result;
        body.push_str(&format!(
            "<tr><td>{}</td><td>{:.0}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{:.1}</td><td>{:.0}</td><td>{}</td></tr>",
            r.target_rate,
            r.rate_in,
            r.latency_ms.p50,
            r.latency_ms.p99,
            r.latency_ms.p999,
            r.lag_at_end.map_or("?".into(), |l| l.to_string()),
            r.cpu_seconds,
            r.rss_mib_max,
            escape(step.reason.as_deref().unwrap_or("pass"))
        ));
    }
    body.push_str("</table></section>\n<section id=\"charts\"><h2>Charts</h2>");
    body.push_str(&bar_chart(
        "chart-p99-by-rate",
        "p99 by target rate",
        "ms",
        &report
            .steps
            .iter()
            .map(|s| (format!("{} /s", s.result.target_rate), s.result.latency_ms.p99))
            .collect::<Vec<_>>(),
    ));
    let mut by_rate: Vec<&SearchStep> = report.steps.iter().collect();
    by_rate.sort_by_key(|s| s.result.target_rate);
    let points = |f: &dyn Fn(&StepResult) -> f64| -> Vec<(f64, f64)> {
        by_rate
            .iter()
            .map(|s| (s.result.target_rate as f64, f(&s.result)))
            .collect()
    };
    body.push_str(&line_chart(&LineChart {
        id: "chart-cpu-by-rate",
        title: "CPU by target rate",
        x_label: "target rate",
        x_unit: "events/s",
        y_label: "CPU",
        y_unit: "cores",
        series: vec![Series {
            name: "CPU cores (mean of the step)",
            colour: "#b5541a",
            points: points(&|r| r.cpu_seconds / r.seconds.max(1e-9)),
        }],
        markers: Vec::new(),
    }));
    body.push_str("</section>\n");
    body.push_str(&glossary_section(SEARCH_GLOSSARY));
    page(&format!("Switchyard find-max: {scenario}"), &body)
}

/// Writes `find-max.json` and `find-max.html`.
pub fn write_search(dir: &std::path::Path, report: &SearchReport) -> Result<(), LoadtestError> {
    write_files(
        dir,
        &[
            (
                "find-max.json",
                serde_json::to_string_pretty(report).unwrap_or_default(),
            ),
            ("find-max.html", search_page(report)),
        ],
    )
}

/// Where a figure of a plan came from. A planner reads it to know what the plan rests on: a measurement,
/// their own word, or a rule of thumb.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// Measured by `find-max`, read from its `find-max.json`.
    FindMax {
        /// The file, as given to `--from-find-max`.
        path: String,
        /// The latency objective that search ran under: p99 at most this, ms.
        p99_objective_ms: f64,
    },
    /// Given on the command line.
    Flag {
        /// The flag, e.g. `--router-capacity`.
        flag: String,
    },
    /// The tool's default, because no flag gave it.
    Default {
        /// The flag that would have given it.
        flag: String,
    },
}

/// A figure and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sourced {
    /// The figure.
    pub value: f64,
    /// Where it came from.
    pub source: Source,
}

impl Sourced {
    /// A figure given with `flag`.
    pub fn flag(value: f64, flag: &str) -> Self {
        Self {
            value,
            source: Source::Flag {
                flag: flag.to_owned(),
            },
        }
    }

    /// `value` if `flag` gave it, else `default`.
    pub fn flag_or_default(value: Option<f64>, flag: &str, default: f64) -> Self {
        match value {
            Some(value) => Self::flag(value, flag),
            None => Self {
                value: default,
                source: Source::Default {
                    flag: flag.to_owned(),
                },
            },
        }
    }

    /// Why a figure that must be positive is not, naming where it came from.
    fn check_positive(&self, what: &str) -> Result<(), LoadtestError> {
        let v = self.value;
        if v > 0.0 && v.is_finite() {
            return Ok(());
        }
        Err(LoadtestError::Usage(match &self.source {
            Source::Flag { flag } => format!("{flag} must be positive, not {v}"),
            Source::Default { flag } => format!("the default {what} must be positive, not {v}; give {flag}"),
            Source::FindMax { path, .. } => format!(
                "the {what} read from {path} is {v}: no step of that find-max passed, so it measured no \
                 capacity"
            ),
        }))
    }
}

/// What `plan` reads from a `find-max.json` (the rest of the file is the steps, for people).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FindMaxFile {
    /// The file, as given.
    #[serde(skip)]
    pub path: String,
    /// The highest passing rate, events/s.
    pub max_sustained_rate: u64,
    /// The objective the search ran under, p99 ms.
    pub p99_objective_ms: f64,
}

impl FindMaxFile {
    /// Parses the text of the `find-max.json` at `path`.
    pub fn parse(path: &str, text: &str) -> Result<Self, LoadtestError> {
        let mut file: FindMaxFile = serde_json::from_str(text).map_err(|error| {
            LoadtestError::Usage(format!(
                "{path} is not a find-max.json (max_sustained_rate and p99_objective_ms): {error}"
            ))
        })?;
        file.path = path.to_owned();
        Ok(file)
    }

    fn source(&self) -> Source {
        Source::FindMax {
            path: self.path.clone(),
            p99_objective_ms: self.p99_objective_ms,
        }
    }

    /// The capacity of one router replica it measured.
    pub fn router_capacity(&self) -> Sourced {
        Sourced {
            value: self.max_sustained_rate as f64,
            source: self.source(),
        }
    }

    /// The objective it measured under, for a plan that names none.
    pub fn objective(&self) -> Sourced {
        Sourced {
            value: self.p99_objective_ms,
            source: self.source(),
        }
    }
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
    /// The latency objective the plan is for: p99 at most this, ms.
    pub p99_ms: Sourced,
    /// Events/s one router replica sustains within the objective (from `find-max`).
    pub router_capacity: Sourced,
    /// Events/s one plugin worker replica handles (from the runtime benchmark or the plugin's own
    /// measurement).
    pub worker_capacity: Sourced,
    /// Plugins, to split the fan-out across.
    pub plugins: usize,
    /// Headroom kept on every capacity (0.3 = plan for 70% utilisation).
    pub headroom: f64,
    /// Events/s one core-topic partition should carry at most (also bounds consumer parallelism).
    pub partition_rate: Sourced,
    /// Plan even when a capacity was measured under a looser objective than `p99_ms`
    /// (`--allow-unverified`); the figures that rest on it are marked unverified.
    pub allow_unverified: bool,
}

/// How a capacity stands against the plan's objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Measured by `find-max` under exactly the plan's objective.
    Measured,
    /// Measured under a tighter objective than the plan's: it holds under the looser one (with margin).
    Holds,
    /// Given on the command line or a default: the plan takes it as holding under its objective, which
    /// the tool cannot check.
    Assumed,
    /// Measured under a looser objective than the plan's and used anyway (`--allow-unverified`): nothing
    /// shows that a replica sustains it within the plan's objective.
    Unverified,
}

/// Where one capacity came from and how it stands against the objective.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    /// The input: `router_capacity`, `worker_capacity` or `partition_rate`.
    pub figure: String,
    /// How it stands against the objective.
    pub standing: Standing,
    /// The sentence the plan prints.
    pub text: String,
}

/// A capacity plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The inputs, each capacity and the objective with its source.
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
    /// Where the objective came from, in words.
    pub objective: String,
    /// Where each capacity came from and how it stands against the objective.
    pub provenance: Vec<Provenance>,
    /// The inputs and results that rest on an unverified capacity (names of fields of this plan);
    /// empty unless `--allow-unverified` let one through.
    pub unverified: Vec<String>,
    /// What the planner must know before using the plan (printed first, and on stderr).
    pub warnings: Vec<String>,
    /// The assumptions, in words.
    pub assumptions: Vec<String>,
    /// When, how and where the plan was made (the same fields as `run`'s; `run_id`, `scenario`, `seed`
    /// and `system` are `null`). Set by the command; absent from a plan made in code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// The capacities of a plan: (input field, words, unit, the result fields that rest on it).
const CAPACITIES: [(&str, &str, &str, &[&str]); 3] = [
    (
        "router_capacity",
        "router capacity",
        "events/s per replica",
        &["router_replicas", "core_partitions"],
    ),
    (
        "worker_capacity",
        "worker capacity",
        "events/s per replica",
        &["worker_replicas_per_plugin", "plugin_partitions"],
    ),
    (
        "partition_rate",
        "partition rate",
        "events/s per partition",
        &["core_partitions", "plugin_partitions"],
    ),
];

fn describe_objective(p99: &Sourced) -> String {
    let v = p99.value;
    match &p99.source {
        Source::Flag { flag } => format!("objective p99 <= {v} ms: given with {flag}"),
        Source::Default { flag } => {
            format!("objective p99 <= {v} ms: the default (no {flag}, no --from-find-max)")
        }
        Source::FindMax { path, .. } => {
            format!("objective p99 <= {v} ms: the one find-max measured under ({path})")
        }
    }
}

/// How `capacity` stands against the objective `p99_ms`, and the sentence that says so; an error when it
/// was measured under a looser objective and `allow_unverified` is not set.
fn judge_capacity(
    words: &str,
    unit: &str,
    capacity: &Sourced,
    p99_ms: f64,
    allow_unverified: bool,
) -> Result<(Standing, String), LoadtestError> {
    let head = format!("{words} {:.0} {unit}", capacity.value);
    Ok(match &capacity.source {
        Source::Flag { flag } => (
            Standing::Assumed,
            format!(
                "{head}: given with {flag}, assumed to hold at p99 <= {p99_ms} ms (the tool cannot check \
                 this)"
            ),
        ),
        Source::Default { flag } => (
            Standing::Assumed,
            format!("{head}: the default of {flag}, a rule of thumb, not a measurement"),
        ),
        Source::FindMax {
            path,
            p99_objective_ms: measured,
        } => {
            let measured = *measured;
            let by = format!("measured by find-max ({path}) under p99 <= {measured} ms");
            if measured == p99_ms {
                (Standing::Measured, format!("{head}: {by}, this plan's objective"))
            } else if measured < p99_ms {
                (
                    Standing::Holds,
                    format!(
                        "{head}: {by}, tighter than this plan's {p99_ms} ms, so it holds (a replica may \
                         sustain more at {p99_ms} ms: the plan errs on the safe side)"
                    ),
                )
            } else if allow_unverified {
                (
                    Standing::Unverified,
                    format!(
                        "{head}: {by}, looser than this plan's {p99_ms} ms: UNVERIFIED, nothing shows a \
                         replica sustains it within {p99_ms} ms (--allow-unverified)"
                    ),
                )
            } else {
                return Err(LoadtestError::Usage(format!(
                    "the {words} ({:.0} {unit}) was {by}, which does not show that it holds for this \
                     plan's p99 <= {p99_ms} ms; run find-max with --p99-ms {p99_ms}, plan with --p99-ms \
                     {measured}, or pass --allow-unverified to plan with it anyway (its figures marked \
                     unverified)",
                    capacity.value
                )));
            }
        }
    })
}

/// Computes a plan. Refuses a capacity measured under a looser objective than the plan's unless
/// `allow_unverified`.
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
    inputs.p99_ms.check_positive("p99 objective")?;
    inputs.router_capacity.check_positive("router capacity")?;
    inputs.worker_capacity.check_positive("worker capacity")?;
    inputs.partition_rate.check_positive("partition rate")?;
    if !(0.0..0.95).contains(&inputs.headroom) {
        return Err(LoadtestError::Usage("--headroom must be in [0, 0.95)".into()));
    }
    if inputs.plugins == 0 {
        return Err(LoadtestError::Usage("--plugins must be at least 1".into()));
    }
    let p99_ms = inputs.p99_ms.value;
    let mut provenance = Vec::new();
    let mut unverified: Vec<String> = Vec::new();
    for (figure, words, unit, results) in CAPACITIES {
        let capacity = match figure {
            "router_capacity" => &inputs.router_capacity,
            "worker_capacity" => &inputs.worker_capacity,
            _ => &inputs.partition_rate,
        };
        let (standing, text) = judge_capacity(words, unit, capacity, p99_ms, inputs.allow_unverified)?;
        if standing == Standing::Unverified {
            for name in std::iter::once(figure).chain(results.iter().copied()) {
                if !unverified.iter().any(|u| u == name) {
                    unverified.push(name.to_owned());
                }
            }
        }
        provenance.push(Provenance {
            figure: figure.to_owned(),
            standing,
            text,
        });
    }
    let loose: Vec<String> = provenance
        .iter()
        .filter(|p| p.standing == Standing::Unverified)
        .map(|p| format!("the {}", p.figure.replace('_', " ")))
        .collect();
    let warnings = if loose.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "this plan is UNVERIFIED: {} {} measured under a looser objective than this plan's p99 <= \
             {p99_ms} ms and used anyway (--allow-unverified); the figures marked UNVERIFIED may not hold \
             within {p99_ms} ms",
            loose.join(" and "),
            if loose.len() == 1 { "was" } else { "were" }
        )]
    };
    let usable = 1.0 - inputs.headroom;
    let router_capacity = inputs.router_capacity.value;
    let partition_rate = inputs.partition_rate.value;
    let router_replicas = (inputs.peak_rate / (router_capacity * usable)).ceil().max(1.0) as u64;
    let by_rate = (inputs.peak_rate / (partition_rate * usable)).ceil().max(1.0) as u64;
    let core_partitions = by_rate.max(router_replicas).div_ceil(router_replicas) * router_replicas;
    let per_plugin_rate = inputs.peak_rate * inputs.fanout / inputs.plugins as f64;
    let worker_replicas_per_plugin = (per_plugin_rate / (inputs.worker_capacity.value * usable))
        .ceil()
        .max(1.0) as u64;
    let plugin_partitions =
        worker_replicas_per_plugin.max((per_plugin_rate / (partition_rate * usable)).ceil().max(1.0) as u64);
    let mb = |events: f64| events * inputs.event_bytes / 1e6;
    let broker_write_mb_s = mb(inputs.peak_rate * (1.0 + inputs.fanout));
    let broker_read_mb_s = mb(inputs.peak_rate * (1.0 + inputs.fanout));
    let assumptions = vec![
        format!(
            "every capacity is planned at {:.0}% utilisation (--headroom {}); a measured capacity holds \
             only on hardware comparable to where it was measured",
            usable * 100.0,
            inputs.headroom
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
        objective: describe_objective(&inputs.p99_ms),
        inputs,
        router_replicas,
        core_partitions,
        worker_replicas_per_plugin,
        plugin_partitions,
        broker_write_mb_s,
        broker_read_mb_s,
        provenance,
        unverified,
        warnings,
        assumptions,
        metadata: None,
    })
}

impl Plan {
    /// " (UNVERIFIED)" when the result `field` rests on an unverified capacity.
    fn mark(&self, field: &str) -> &'static str {
        if self.unverified.iter().any(|u| u == field) {
            "  (UNVERIFIED)"
        } else {
            ""
        }
    }

    /// The plan for a human.
    pub fn render(&self) -> String {
        let i = &self.inputs;
        let mut out = format!(
            "capacity plan for {:.0} events/s at p99 <= {} ms ({:.0} B events, fan-out {:.2}, {} plugins, \
             {:.0}% headroom)\n\n",
            i.peak_rate,
            i.p99_ms.value,
            i.event_bytes,
            i.fanout,
            i.plugins,
            i.headroom * 100.0
        );
        for warning in &self.warnings {
            out.push_str(&format!("WARNING: {warning}\n\n"));
        }
        out.push_str(&format!(
            "  core topic partitions      {}{}\n",
            self.core_partitions,
            self.mark("core_partitions")
        ));
        out.push_str(&format!(
            "  router replicas            {}{}\n",
            self.router_replicas,
            self.mark("router_replicas")
        ));
        out.push_str(&format!(
            "  plugin topic partitions    {} per plugin{}\n",
            self.plugin_partitions,
            self.mark("plugin_partitions")
        ));
        out.push_str(&format!(
            "  plugin worker replicas     {} per plugin ({} in all){}\n",
            self.worker_replicas_per_plugin,
            self.worker_replicas_per_plugin * i.plugins as u64,
            self.mark("worker_replicas_per_plugin")
        ));
        out.push_str(&format!(
            "  broker writes              {:.1} MB/s (before replication)\n",
            self.broker_write_mb_s
        ));
        out.push_str(&format!(
            "  broker reads               {:.1} MB/s\n\nwhere the figures come from:\n  - {}\n",
            self.broker_read_mb_s, self.objective
        ));
        for p in &self.provenance {
            out.push_str(&format!("  - {}\n", p.text));
        }
        out.push_str("\nassumptions:\n");
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
            p99_ms: Sourced::flag(200.0, "--p99-ms"),
            router_capacity: Sourced::flag(8_000.0, "--router-capacity"),
            worker_capacity: Sourced::flag(1_000.0, "--worker-capacity"),
            plugins: 20,
            headroom: 0.3,
            partition_rate: Sourced::flag_or_default(None, "--partition-rate", 2_000.0),
            allow_unverified: false,
        }
    }

    /// The inputs of the issue's report: a find-max.json measured under 1000 ms, a plan for `p99_ms`.
    fn from_find_max(p99_ms: Option<f64>, measured_ms: f64) -> PlanInputs {
        let file = FindMaxFile::parse(
            "runs/find-max.json",
            &format!(r#"{{"max_sustained_rate": 6000, "p99_objective_ms": {measured_ms}, "steps": []}}"#),
        )
        .unwrap();
        PlanInputs {
            p99_ms: p99_ms.map_or_else(|| file.objective(), |v| Sourced::flag(v, "--p99-ms")),
            router_capacity: file.router_capacity(),
            ..inputs()
        }
    }

    fn standing(plan: &Plan, figure: &str) -> Standing {
        plan.provenance
            .iter()
            .find(|p| p.figure == figure)
            .unwrap()
            .standing
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
        assert!(plan.render().contains("router replicas            4\n"));
    }

    #[test]
    fn nonsense_inputs_are_refused() {
        let mut bad = inputs();
        bad.router_capacity.value = 0.0;
        assert!(plan(bad).unwrap_err().to_string().contains("--router-capacity"));
        let mut bad = inputs();
        bad.headroom = 1.0;
        assert!(plan(bad).is_err());
        // A find-max in which no step passed measured nothing, and says which file.
        let mut bad = from_find_max(None, 200.0);
        bad.router_capacity.value = 0.0;
        let error = plan(bad).unwrap_err().to_string();
        assert!(
            error.contains("runs/find-max.json") && error.contains("no step"),
            "{error}"
        );
        let error = FindMaxFile::parse("x.json", r#"{"steps": []}"#)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("x.json") && error.contains("max_sustained_rate"),
            "{error}"
        );
    }

    /// Issue 13, finding 6: a capacity from a flag never claims to be a find-max measurement, and each
    /// capacity says where it came from, in the text and in plan.json.
    #[test]
    fn every_capacity_says_where_it_came_from() {
        let plan = plan(inputs()).unwrap();
        let text = plan.render();
        assert!(!text.contains("find-max"), "no find-max was used:\n{text}");
        for line in [
            "objective p99 <= 200 ms: given with --p99-ms",
            "router capacity 8000 events/s per replica: given with --router-capacity, assumed to hold at \
             p99 <= 200 ms",
            "worker capacity 1000 events/s per replica: given with --worker-capacity",
            "partition rate 2000 events/s per partition: the default of --partition-rate",
        ] {
            assert!(text.contains(line), "{line:?} missing in\n{text}");
        }
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(
            json["inputs"]["router_capacity"],
            serde_json::json!({"value": 8000.0, "source": {"kind": "flag", "flag": "--router-capacity"}})
        );
        assert_eq!(
            json["inputs"]["partition_rate"]["source"],
            serde_json::json!({"kind": "default", "flag": "--partition-rate"})
        );
        assert_eq!(json["provenance"][0]["figure"], "router_capacity");
        assert_eq!(json["provenance"][0]["standing"], "assumed");
        assert_eq!(json["unverified"], serde_json::json!([]));
        assert_eq!(json["warnings"], serde_json::json!([]));

        // From find-max, without --p99-ms: its objective is the plan's, and the capacity is measured.
        let plan = super::plan(from_find_max(None, 1000.0)).unwrap();
        let text = plan.render();
        assert!(
            text.contains("at p99 <= 1000 ms")
                && text.contains(
                    "objective p99 <= 1000 ms: the one find-max measured under (runs/find-max.json)"
                )
                && text.contains(
                    "router capacity 6000 events/s per replica: measured by find-max (runs/find-max.json) \
                     under p99 <= 1000 ms, this plan's objective"
                ),
            "{text}"
        );
        assert_eq!(standing(&plan, "router_capacity"), Standing::Measured);
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(
            json["inputs"]["router_capacity"]["source"],
            serde_json::json!({"kind": "find_max", "path": "runs/find-max.json", "p99_objective_ms": 1000.0})
        );
        assert_eq!(json["provenance"][0]["standing"], "measured");
    }

    /// Issue 13, finding 6: find-max measured under 1000 ms cannot vouch for a plan at 200 ms.
    #[test]
    fn a_tighter_objective_than_measured_is_refused() {
        let error = plan(from_find_max(Some(200.0), 1000.0)).unwrap_err().to_string();
        for part in [
            "runs/find-max.json",
            "p99 <= 1000 ms",
            "p99 <= 200 ms",
            "--allow-unverified",
        ] {
            assert!(error.contains(part), "{part:?} missing in {error}");
        }
    }

    /// Issue 13, finding 6: with --allow-unverified the plan is made, warns, and marks what rests on the
    /// unverified capacity in the text and the JSON.
    #[test]
    fn allowed_unverified_figures_are_marked() {
        let plan = plan(PlanInputs {
            allow_unverified: true,
            ..from_find_max(Some(200.0), 1000.0)
        })
        .unwrap();
        assert_eq!(standing(&plan, "router_capacity"), Standing::Unverified);
        assert_eq!(
            plan.unverified,
            ["router_capacity", "router_replicas", "core_partitions"]
        );
        let text = plan.render();
        assert!(
            text.starts_with("capacity plan for 20000 events/s at p99 <= 200 ms")
                && text.contains("WARNING: this plan is UNVERIFIED: the router capacity was measured")
                && text.contains("router replicas            5  (UNVERIFIED)")
                && text.contains("core topic partitions      15  (UNVERIFIED)")
                && text.contains("plugin worker replicas     5 per plugin (100 in all)\n")
                && text.contains(
                    "router capacity 6000 events/s per replica: measured by find-max (runs/find-max.json) \
                     under p99 <= 1000 ms, looser than this plan's 200 ms: UNVERIFIED"
                ),
            "{text}"
        );
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["provenance"][0]["standing"], "unverified");
        assert_eq!(
            json["unverified"],
            serde_json::json!(["router_capacity", "router_replicas", "core_partitions"])
        );
        assert!(json["warnings"][0].as_str().unwrap().contains("UNVERIFIED"));
        assert_eq!(json["inputs"]["allow_unverified"], true);
        // The flag changes nothing when the measurement holds.
        let plan = super::plan(PlanInputs {
            allow_unverified: true,
            ..from_find_max(Some(200.0), 200.0)
        })
        .unwrap();
        assert!(plan.unverified.is_empty() && plan.warnings.is_empty());
    }

    /// A looser objective than measured is fine: the measurement holds, and the plan says so.
    #[test]
    fn a_looser_objective_than_measured_holds() {
        let plan = plan(from_find_max(Some(500.0), 200.0)).unwrap();
        assert_eq!(standing(&plan, "router_capacity"), Standing::Holds);
        assert!(plan.unverified.is_empty() && plan.warnings.is_empty());
        let text = plan.render();
        assert!(
            text.contains("under p99 <= 200 ms, tighter than this plan's 500 ms, so it holds")
                && !text.contains("UNVERIFIED"),
            "{text}"
        );
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

    /// Issue 22: find-max.html names the scenario and the hardware, the system, and has axes with ticks.
    #[test]
    fn the_find_max_page_names_scenario_and_hardware() {
        let step = |rate: u64, p99: f64| {
            let mut result = crate::objective::tests::step(1800, 1800);
            result.target_rate = rate;
            result.rate_in = rate as f64;
            result.latency_ms.p99 = p99;
            let reason = judge(&result, 200.0);
            SearchStep {
                passed: reason.is_none(),
                reason,
                result,
            }
        };
        let mut metadata = Metadata::new(
            "find-max",
            "2026-11-22T09:55:00.000Z".into(),
            &["switchyard-loadtest".into(), "find-max".into()],
        );
        metadata.scenario = Some("standard".into());
        metadata.machine = crate::metadata::Machine {
            host: "bench-1".into(),
            cpus: 8,
            cpu_model: Some("AMD EPYC 7B13".into()),
            memory_mib: Some(32_768),
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "Linux 6.1.0 x86_64".into(),
        };
        metadata.system = Some(crate::metadata::SystemUnderTest {
            replicas: Some(1),
            ..Default::default()
        });
        let report = SearchReport {
            max_sustained_rate: 3000,
            p99_objective_ms: 200.0,
            steps: vec![step(2000, 120.0), step(3000, 180.0), step(4500, 450.0)],
            metadata,
        };
        let html = search_page(&report);
        for part in [
            "<title>Switchyard find-max: standard</title>",
            "Max sustained rate: 3000 events/s",
            "p99 end-to-end latency at most 200 ms",
            "Scenario <b>standard</b> on bench-1, 8 CPUs (AMD EPYC 7B13), 32.0 GiB memory, Debian GNU/Linux 12 \
             (bookworm) (Linux 6.1.0 x86_64)",
            "<th>Replicas</th><td>1</td>",
            "<td>p99 450.0 ms &gt; 200 ms</td>",
            r#"id="chart-p99-by-rate""#,
            r#"id="chart-cpu-by-rate""#,
            r#"class="tick x">5k</text>"#,
            "<dt>Max sustained rate</dt>",
        ] {
            assert!(html.contains(part), "{part:?} missing in\n{html}");
        }
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["metadata"]["scenario"], "standard");
        assert_eq!(json["metadata"]["machine"]["cpu_model"], "AMD EPYC 7B13");
    }
}
