//! Self-contained HTML reports: inline SVG charts and tables, no scripts, no fonts, no external files (a
//! Content-Security-Policy forbids any), so a report can be attached to a ticket or opened from a CI
//! artifact as it is, and read without the command that made it.
//!
//! ```text
//!   RunReport ──► run_page: title, verdict + objective, anomalies, run (metadata), system under test,
//!                 figures, charts (percentiles, throughput, lag, p99, CPU, RSS), glossary ──► report.html
//!   SearchReport ──► capacity::search_page (the same sections for find-max) ──► find-max.html
//! ```
//!
//! Building a page is pure (unit-tested on a fixed result); [`write_run`] and [`write_files`] write.

use std::fmt::Write as _;
use std::path::Path;

use crate::LoadtestError;
use crate::metadata::{Metadata, SystemUnderTest};
use crate::objective::Verdict;
use crate::run::{RunReport, Sample, StepResult};

/// One line of a chart.
pub struct Series<'a> {
    /// Legend.
    pub name: &'a str,
    /// CSS colour of the line.
    pub colour: &'a str,
    /// Points (x, y).
    pub points: Vec<(f64, f64)>,
}

/// A line chart: two axes with ticks, titles and units, one line per series, vertical markers.
pub struct LineChart<'a> {
    /// The SVG element's id, e.g. `chart-cpu`.
    pub id: &'a str,
    /// Title above the chart.
    pub title: &'a str,
    /// What the x axis shows, e.g. "time since sending began".
    pub x_label: &'a str,
    /// Its unit, e.g. "s".
    pub x_unit: &'a str,
    /// What the y axis shows.
    pub y_label: &'a str,
    /// Its unit.
    pub y_unit: &'a str,
    /// The lines.
    pub series: Vec<Series<'a>>,
    /// Vertical dashed lines at an x, labelled (e.g. where sending ended).
    pub markers: Vec<(f64, String)>,
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Round tick values for an axis from 0 to at least `max`: 0, s, 2s, ... with the step s 1, 2 or 5 times a
/// power of ten, about `wanted` steps. At least two ticks (0 and one step) even when `max` is 0.
pub fn ticks(max: f64, wanted: usize) -> Vec<f64> {
    let step = tick_step(max, wanted);
    let steps = if max.is_finite() && max > 0.0 {
        // A hair of tolerance, so that 1000 with a step of 200 ends at 1000, not 1200.
        ((max / step) - 1e-9).ceil().max(1.0) as usize
    } else {
        1
    };
    (0..=steps).map(|i| i as f64 * step).collect()
}

fn tick_step(max: f64, wanted: usize) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let raw = max / wanted.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// A tick's label: as many decimals as the step needs, thousands as `k` and millions as `M` when the step
/// is coarse enough (`0`, `0.5`, `800`, `2.5k`, `500k`, `1.5M`).
pub fn tick_label(value: f64, step: f64) -> String {
    let (scaled, scaled_step, suffix) = if value >= 1e6 && step >= 1e5 {
        (value / 1e6, step / 1e6, "M")
    } else if value >= 1e3 && step >= 1e3 {
        (value / 1e3, step / 1e3, "k")
    } else {
        (value, step, "")
    };
    let decimals = if scaled_step >= 1.0 {
        0
    } else {
        (-scaled_step.log10().floor()) as usize
    };
    // Steps of 2.5 (1, 2, 5 scaled by k or M) need one more.
    let decimals = if (scaled_step * 10f64.powi(decimals as i32)).fract().abs() > 1e-6 {
        decimals + 1
    } else {
        decimals
    };
    if value == 0.0 {
        return "0".to_owned();
    }
    format!("{scaled:.decimals$}{suffix}")
}

/// A line chart as inline SVG, with tick labels (class `tick`) on both axes and the units in the axis
/// titles.
pub fn line_chart(chart: &LineChart<'_>) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 300.0, 72.0, 24.0, 48.0, 52.0);
    let all = || chart.series.iter().flat_map(|s| s.points.iter());
    let empty = all().next().is_none();
    let x_data = all()
        .map(|p| p.0)
        .chain(chart.markers.iter().map(|m| m.0))
        .fold(0.0_f64, f64::max);
    let y_data = all().map(|p| p.1).fold(0.0_f64, f64::max);
    let (x_ticks, y_ticks) = (ticks(x_data, 8), ticks(y_data, 5));
    let x_step = x_ticks[1] - x_ticks[0];
    let y_step = y_ticks[1] - y_ticks[0];
    let x_max = *x_ticks.last().unwrap_or(&1.0);
    let y_max = *y_ticks.last().unwrap_or(&1.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let x = |v: f64| left + v / x_max * plot_w;
    let y = |v: f64| top + plot_h - v / y_max * plot_h;
    let base = top + plot_h;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<figure><svg id="{id}" class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-labelledby="{id}-title">
<title id="{id}-title">{t}: {yl} ({yu}) over {xl} ({xu})</title>
<text x="{left}" y="18" class="chart-title">{t}</text>"##,
        id = escape(chart.id),
        t = escape(chart.title),
        yl = escape(chart.y_label),
        yu = escape(chart.y_unit),
        xl = escape(chart.x_label),
        xu = escape(chart.x_unit),
    );
    for value in &y_ticks {
        let py = y(*value);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{py:.1}" x2="{r}" y2="{py:.1}" class="grid"/><text x="{tx}" y="{ty:.1}" text-anchor="end" class="tick y">{label}</text>"##,
            r = w - right,
            tx = left - 6.0,
            ty = py + 4.0,
            label = tick_label(*value, y_step),
        );
    }
    for value in &x_ticks {
        let px = x(*value);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{base}" x2="{px:.1}" y2="{b6}" class="axis"/><text x="{px:.1}" y="{ty}" text-anchor="middle" class="tick x">{label}</text>"##,
            b6 = base + 5.0,
            ty = base + 18.0,
            label = tick_label(*value, x_step),
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{base}" x2="{r}" y2="{base}" class="axis"/><line x1="{left}" y1="{top}" x2="{left}" y2="{base}" class="axis"/>
<text x="{cx}" y="{xy}" text-anchor="middle" class="axis-title">{xl} ({xu})</text>
<text x="14" y="{cy}" text-anchor="middle" class="axis-title" transform="rotate(-90 14 {cy})">{yl} ({yu})</text>"##,
        r = w - right,
        cx = left + plot_w / 2.0,
        xy = h - 8.0,
        xl = escape(chart.x_label),
        xu = escape(chart.x_unit),
        cy = top + plot_h / 2.0,
        yl = escape(chart.y_label),
        yu = escape(chart.y_unit),
    );
    for (at, label) in &chart.markers {
        let px = x(*at);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{base}" class="marker"/><text x="{tx:.1}" y="{ty}" class="marker-label">{l}</text>"##,
            tx = px + 4.0,
            ty = top + 12.0,
            l = escape(label),
        );
    }
    if empty {
        let _ = writeln!(
            svg,
            r##"<text x="{cx}" y="{cy}" text-anchor="middle" class="no-data">no samples</text>"##,
            cx = left + plot_w / 2.0,
            cy = top + plot_h / 2.0,
        );
    }
    for (i, s) in chart.series.iter().enumerate() {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
            .collect();
        if s.points.len() == 1 {
            let (px, py) = s.points[0];
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                x(px),
                y(py),
                c = s.colour
            );
        } else if !points.is_empty() {
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{p}"/>"#,
                c = s.colour,
                p = points.join(" "),
            );
        }
        // The legend: a swatch in the line's colour, the name in the text colour (readable on white).
        let lx = w - right - 200.0;
        let ly = 16.0 + 14.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{ry}" width="14" height="4" fill="{c}"/><text x="{tx}" y="{ly}" class="legend">{n}</text>"#,
            ry = ly - 5.0,
            c = s.colour,
            tx = lx + 20.0,
            n = escape(s.name),
        );
    }
    svg.push_str("</svg></figure>\n");
    svg
}

/// A horizontal bar chart of labelled values as inline SVG, with a value axis (ticks, `unit`) below.
pub fn bar_chart(id: &str, title: &str, unit: &str, bars: &[(String, f64)]) -> String {
    let (w, row, left, right, top) = (720.0, 24.0, 120.0, 90.0, 30.0);
    let plot_w = w - left - right;
    let base = top + row * bars.len() as f64 + 4.0;
    let h = base + 44.0;
    let max = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max);
    let value_ticks = ticks(max, 6);
    let step = value_ticks[1] - value_ticks[0];
    let axis_max = *value_ticks.last().unwrap_or(&1.0);
    let x = |v: f64| left + v / axis_max * plot_w;
    let mut svg = format!(
        r##"<figure><svg id="{id}" class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-labelledby="{id}-title">
<title id="{id}-title">{t} ({u})</title>
<text x="0" y="18" class="chart-title">{t}</text>
"##,
        id = escape(id),
        t = escape(title),
        u = escape(unit),
    );
    for value in &value_ticks {
        let px = x(*value);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{b5}" class="grid"/><text x="{px:.1}" y="{ty}" text-anchor="middle" class="tick x">{label}</text>"##,
            b5 = base + 5.0,
            ty = base + 18.0,
            label = tick_label(*value, step),
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{base}" x2="{r}" y2="{base}" class="axis"/><text x="{cx}" y="{ay}" text-anchor="middle" class="axis-title">{u}</text>"##,
        r = w - right,
        cx = left + plot_w / 2.0,
        ay = h - 6.0,
        u = escape(unit),
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = top + row * i as f64;
        let len = (x(*value) - left).max(0.0);
        let _ = writeln!(
            svg,
            r##"<text x="0" y="{ty}" class="bar-label">{l}</text><rect x="{left}" y="{y}" width="{len:.1}" height="16" fill="#3a6bc0"/><text x="{vx:.1}" y="{ty}" class="bar-value">{v} {u}</text>"##,
            ty = y + 12.0,
            l = escape(label),
            vx = left + len + 6.0,
            v = compact(*value),
            u = escape(unit),
        );
    }
    svg.push_str("</svg></figure>\n");
    svg
}

/// A number in a short form: 12.3k, 4.56, 1.2M.
pub fn compact(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// The style of every page: readable type, tables, the verdict's colours (WCAG AA contrast on their
/// backgrounds), the charts' strokes.
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:62em;color:#1b1b1b}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:.2em .6em;text-align:right;\
vertical-align:top}th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}\
table.facts td{text-align:left}table.facts th{text-align:left;white-space:nowrap}\
code{overflow-wrap:anywhere}figure{margin:1em 0}svg{display:block;max-width:100%;height:auto}\
#verdict{padding:.6em 1em;border:2px solid;border-radius:4px}\
#verdict.pass{background:#e7f4ea;color:#0b5322;border-color:#0b5322}\
#verdict.fail{background:#fdecec;color:#8a1010;border-color:#8a1010}\
#verdict h2{margin:.2em 0}#anomalies li{margin:.3em 0}dt{font-weight:bold;margin-top:.5em}dd{margin-left:1.5em}\
.chart-title{font-weight:bold;font-size:15px;fill:#1b1b1b}.tick,.legend,.bar-label,.bar-value,.marker-label{font-size:12px;fill:#1b1b1b}\
.axis-title{font-size:12px;fill:#333}.axis{stroke:#555}.grid{stroke:#e2e2e2}\
.marker{stroke:#555;stroke-dasharray:4 3}.no-data{font-size:14px;fill:#555}";

/// The page around `body`: no scripts, and a Content-Security-Policy that lets the page load nothing
/// (styles inline only), so it renders the same anywhere, offline.
pub fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t}</title>
<style>{STYLE}</style>
</head><body><main>
<h1>{t}</h1>
{body}
</main></body></html>
"#,
        t = escape(title)
    )
}

/// The verdict section: PASS or FAIL in large type, the objective, each check.
pub fn verdict_section(verdict: &Verdict, objective: &str) -> String {
    let mut html = format!(
        r#"<section id="verdict" class="{class}"><h2>Verdict: {word}</h2><p><b>Objective:</b> {objective}</p><ul>"#,
        class = if verdict.passed { "pass" } else { "fail" },
        word = if verdict.passed { "PASS" } else { "FAIL" },
        objective = escape(objective),
    );
    for check in &verdict.checks {
        let _ = write!(
            html,
            "<li>{} {}</li>",
            if check.passed { "✔ holds:" } else { "✘ FAILS:" },
            escape(&check.text)
        );
    }
    html.push_str("</ul></section>\n");
    html
}

/// The anomalies section: each one, or a line saying there was none.
pub fn anomalies_section(anomalies: &[String]) -> String {
    let mut html = String::from(r#"<section id="anomalies"><h2>Anomalies</h2>"#);
    if anomalies.is_empty() {
        html.push_str(
            "<p>None found: the records read match those expected, the lag did not grow, every latency \
             sample is a record read.</p>",
        );
    } else {
        html.push_str("<ul>");
        for anomaly in anomalies {
            let _ = write!(html, "<li>{}</li>", escape(anomaly));
        }
        html.push_str("</ul>");
    }
    html.push_str("</section>\n");
    html
}

/// A two-column table of facts (`<th>` name, `<td>` value), its values escaped.
fn facts(id: &str, heading: &str, rows: &[(&str, String)]) -> String {
    let mut html = format!(r#"<section id="{id}"><h2>{heading}</h2><table class="facts">"#);
    for (name, value) in rows {
        let _ = write!(html, "<tr><th>{name}</th><td>{}</td></tr>", escape(value));
    }
    html.push_str("</table></section>\n");
    html
}

fn or_unknown(value: Option<String>) -> String {
    value.unwrap_or_else(|| "unknown".to_owned())
}

/// The run section: when, which run, which code, which scenario, which command, which machine.
pub fn metadata_section(metadata: &Metadata, scenario_description: &str) -> String {
    let m = &metadata.machine;
    let scenario = match &metadata.scenario {
        Some(name) if !scenario_description.is_empty() => format!("{name}: {scenario_description}"),
        Some(name) => name.clone(),
        None => "none".to_owned(),
    };
    facts(
        "metadata",
        "Run",
        &[
            ("Started", metadata.started_at.clone()),
            ("Finished", metadata.finished_at.clone()),
            ("Run id", or_unknown(metadata.run_id.clone())),
            (
                "Tool version",
                format!("switchyard-loadtest {}", metadata.tool_version),
            ),
            (
                "Git revision",
                metadata
                    .git_revision
                    .clone()
                    .unwrap_or_else(|| "unknown (not a git checkout; set SWITCHYARD_GIT_REVISION)".into()),
            ),
            ("Scenario", scenario),
            ("Seed", or_unknown(metadata.seed.map(|s| s.to_string()))),
            ("Command line", metadata.command_line.clone()),
            ("Host", m.host.clone()),
            (
                "CPUs",
                match &m.cpu_model {
                    Some(model) => format!("{} ({model})", m.cpus),
                    None => m.cpus.to_string(),
                },
            ),
            (
                "Memory",
                m.memory_mib.map_or_else(
                    || "unknown".into(),
                    |mib| format!("{:.1} GiB", mib as f64 / 1024.0),
                ),
            ),
            ("OS", format!("{} ({})", m.os, m.kernel)),
        ],
    )
}

/// The system-under-test section: the broker's view (group, replicas, partitions) and the router's settings.
pub fn system_section(system: &SystemUnderTest) -> String {
    let mut rows = vec![
        ("Kafka bootstrap", system.bootstrap.clone()),
        ("Consumer group", system.group.clone()),
        (
            "Replicas",
            system.replicas.map_or_else(
                || "unknown".to_owned(),
                |n| {
                    if system.replica_hosts.is_empty() {
                        n.to_string()
                    } else {
                        format!("{n} ({})", system.replica_hosts.join(", "))
                    }
                },
            ),
        ),
        ("Core topic partitions", system.core_partitions.to_string()),
        (
            "Router admin",
            system
                .router_admin
                .clone()
                .unwrap_or_else(|| "none (--router-admin none)".into()),
        ),
    ];
    match &system.router {
        Some(r) => rows.extend([
            ("Router version", r.version.clone()),
            ("Delivery mode", r.delivery_mode.clone()),
            ("Commit interval", format!("{} ms", r.commit_interval_ms)),
            ("Commit max events", r.commit_max_events.to_string()),
            ("Transaction timeout", format!("{} ms", r.transaction_timeout_ms)),
            ("Payload validation", r.validate_payloads.to_string()),
            ("Router host", r.host.clone()),
        ]),
        None => rows.push(("Router settings", "unknown (see the notes)".to_owned())),
    }
    rows.push((
        "Processes watched",
        if system.pids.is_empty() {
            "none".to_owned()
        } else {
            system
                .pids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        },
    ));
    for note in &system.notes {
        rows.push(("Note", note.clone()));
    }
    facts("system", "System under test", &rows)
}

/// The figures of a run, as a table.
fn figures_section(report: &RunReport) -> String {
    let r = &report.result;
    let l = &r.latency_ms;
    let opt = |v: Option<u64>| v.map_or_else(|| "unknown".to_owned(), |v| v.to_string());
    let mut rows = vec![
        (
            "Events sent",
            format!(
                "{} in {:.1} s: {:.0} events/s (target {})",
                r.events,
                r.send_seconds,
                r.rate_in,
                if r.target_rate == 0 {
                    "as fast as possible".to_owned()
                } else {
                    format!("{} events/s", r.target_rate)
                }
            ),
        ),
        ("Expected plugin records", r.expected_records.to_string()),
        (
            "Plugin records read",
            format!(
                "{} ({:.0} records/s over {:.1} s)",
                r.records_read, r.rate_out, r.seconds
            ),
        ),
        (
            "Latency samples",
            format!("{} (one per plugin record read)", l.count),
        ),
        (
            "End-to-end latency",
            format!(
                "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
                l.p50, l.p90, l.p99, l.p999, l.max
            ),
        ),
        (
            "Consumer lag",
            format!(
                "{} at the end of sending, {} at most{}",
                opt(r.lag_at_end),
                opt(r.lag_max),
                if r.lag_growing { ", GROWING" } else { "" }
            ),
        ),
    ];
    if report.pids.is_empty() {
        rows.push(("CPU and memory", "not measured: no process watched".to_owned()));
    } else {
        rows.push((
            "CPU",
            format!(
                "{:.1} CPU s, {:.0} events per CPU s",
                r.cpu_seconds, r.events_per_cpu_second
            ),
        ));
        rows.push(("Memory (RSS)", format!("{:.0} MiB at most", r.rss_mib_max)));
    }
    rows.push((
        "Scenario shape",
        format!(
            "{} teams, {} plugins, {} enablements, mean value {:.0} B, mean fan-out {:.2}",
            report.scenario.traffic.teams,
            report.scenario.plugins.count,
            report.enablements,
            report.mean_value_bytes,
            report.mean_fanout
        ),
    ));
    if let Some(b) = &report.backfill {
        rows.push((
            "Backfill",
            format!(
                "{} of {} historical events: {} copies in the window ({:.0}/s), {} at the end",
                b.backfill,
                b.history_events,
                b.written_at_end.saturating_sub(b.written_at_start),
                b.copies_per_second,
                b.state_at_end
            ),
        ));
    }
    for problem in &report.problems {
        rows.push(("Problem", problem.clone()));
    }
    facts("figures", "Figures", &rows)
}

/// Each figure of the reports and what it means: the glossary at the end of every page, and of
/// `docs/loadtest.md`.
pub const GLOSSARY: &[(&str, &str)] = &[
    (
        "Events sent, rate in",
        "Core events the load tool's producer got acknowledged by the broker, and that count divided by \
         the sending time (events/s). The target rate is what the run asked for; 0 means as fast as the \
         broker takes them.",
    ),
    (
        "Expected plugin records",
        "The plugin-topic records the routing rule prescribes for the events sent: the sum of each event's \
         fan-out (its enabled, matching plugins).",
    ),
    (
        "Plugin records read",
        "Records of this run read back from the plugin topics by a read_committed consumer, counted until \
         the system consumed every event and no record came for 0.5 s (at most 5 s more), so that records \
         beyond those expected are counted too. Fewer than expected: outputs missing at the timeout; more: \
         the system routed by controls the scenario does not contain, or wrote duplicates.",
    ),
    (
        "Records out /s",
        "Plugin records read divided by the seconds from the first send until the last expected record \
         was read.",
    ),
    (
        "End-to-end latency",
        "For each plugin record read: the time it was read minus the time the load tool handed its event \
         to the producer (header loadtest_sent_us), one clock. With exactly-once routing it includes the \
         router's commit interval (about half of it on average).",
    ),
    (
        "Latency samples",
        "One per plugin record read (recorded and counted together), so it equals the records read; a \
         difference is reported as an anomaly.",
    ),
    (
        "p50, p90, p99, p99.9, max",
        "Percentiles of the end-to-end latencies (HdrHistogram, 3 significant digits), ms: p99 is the \
         latency 99% of the records were read within.",
    ),
    (
        "p99 per second",
        "The p99 of the records read within each second of the run (the timeline).",
    ),
    (
        "Consumer lag",
        "Records of the core topic not yet committed by the consumer group (sum over partitions), sampled \
         every second. Growing: the mean of the last third of the sending time exceeds the mean of the \
         first third by more than half a second of traffic; the system did not keep up.",
    ),
    (
        "CPU cores",
        "CPU seconds (user + system) the watched processes used per second of wall time, from /proc: 1.0 \
         is one core busy. CPU s is the total over the run; events per CPU s is events sent divided by it.",
    ),
    (
        "RSS",
        "Resident memory of the watched processes (sum), MiB, from /proc/<pid>/status (VmRSS).",
    ),
    (
        "Replicas",
        "Members of the consumer group when the measurement began, as the broker reports them.",
    ),
    (
        "Commit interval",
        "The router's delivery.commit_interval_ms: it commits a transaction (exactly-once) or stores \
         offsets (at-least-once) at least this often while events flow; read from its \
         switchyard_router_info series.",
    ),
    (
        "Verdict",
        "PASS when every check of the objective holds: every expected record read and none more, the \
         target rate sent (at least 95%), the p99 within the objective when one was given (--p99-ms), the \
         lag not growing, latencies measured.",
    ),
];

/// The glossary as a definition list.
pub fn glossary_section(terms: &[(&str, &str)]) -> String {
    let mut html = String::from(r#"<section id="glossary"><h2>Definitions</h2><dl>"#);
    for (term, definition) in terms {
        let _ = write!(html, "<dt>{}</dt><dd>{}</dd>", escape(term), escape(definition));
    }
    html.push_str("</dl></section>\n");
    html
}

/// Charts of one step's timeline: throughput in and out, lag, latency p99 per second, CPU, RSS; each
/// marks where sending ended.
pub fn timeline_charts(timeline: &[Sample], send_seconds: f64, watched: bool) -> String {
    let points = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        timeline.iter().filter_map(|s| f(s).map(|v| (s.t, v))).collect()
    };
    let markers = || vec![(send_seconds, "sending ended".to_owned())];
    let time = "time since sending began";
    let mut html = line_chart(&LineChart {
        id: "chart-throughput",
        title: "Throughput",
        x_label: time,
        x_unit: "s",
        y_label: "rate",
        y_unit: "per second",
        series: vec![
            Series {
                name: "events in /s",
                colour: "#3a6bc0",
                points: points(&|s| Some(s.events_in as f64)),
            },
            Series {
                name: "plugin records out /s",
                colour: "#c0522a",
                points: points(&|s| Some(s.records_out as f64)),
            },
        ],
        markers: markers(),
    });
    html.push_str(&line_chart(&LineChart {
        id: "chart-lag",
        title: "Consumer lag on the core topic",
        x_label: time,
        x_unit: "s",
        y_label: "lag",
        y_unit: "events",
        series: vec![Series {
            name: "lag",
            colour: "#7a3ac0",
            points: points(&|s| s.lag.map(|l| l as f64)),
        }],
        markers: markers(),
    }));
    html.push_str(&line_chart(&LineChart {
        id: "chart-p99",
        title: "End-to-end latency p99, per second",
        x_label: time,
        x_unit: "s",
        y_label: "p99 latency",
        y_unit: "ms",
        series: vec![Series {
            name: "p99 of the second",
            colour: "#1f7a45",
            points: points(&|s| (s.p99_ms > 0.0).then_some(s.p99_ms)),
        }],
        markers: markers(),
    }));
    let watched_points = |f: &dyn Fn(&Sample) -> f64| {
        if watched {
            points(&|s| Some(f(s)))
        } else {
            Vec::new()
        }
    };
    html.push_str(&line_chart(&LineChart {
        id: "chart-cpu",
        title: "CPU of the watched processes",
        x_label: time,
        x_unit: "s",
        y_label: "CPU",
        y_unit: "cores",
        series: vec![Series {
            name: "CPU cores",
            colour: "#b5541a",
            points: watched_points(&|s| s.cpu_cores),
        }],
        markers: markers(),
    }));
    html.push_str(&line_chart(&LineChart {
        id: "chart-rss",
        title: "Memory of the watched processes",
        x_label: time,
        x_unit: "s",
        y_label: "resident memory",
        y_unit: "MiB",
        series: vec![Series {
            name: "RSS MiB",
            colour: "#2a7f8f",
            points: watched_points(&|s| s.rss_mib),
        }],
        markers: markers(),
    }));
    html
}

/// The percentiles of a step as a bar chart.
pub fn latency_chart(step: &StepResult) -> String {
    let l = &step.latency_ms;
    bar_chart(
        "chart-percentiles",
        "End-to-end latency percentiles",
        "ms",
        &[
            ("p50".into(), l.p50),
            ("p90".into(), l.p90),
            ("p99".into(), l.p99),
            ("p99.9".into(), l.p999),
            ("max".into(), l.max),
        ],
    )
}

/// The page of a run: everything a reader needs without the command that made it.
pub fn run_page(report: &RunReport) -> String {
    let r = &report.result;
    let mut body = format!(
        r#"<p class="lede">Run <code>{id}</code> of scenario <b>{scenario}</b>, started {at} on {host}.</p>
"#,
        id = escape(&report.run_id),
        scenario = escape(&report.scenario.name),
        at = escape(&report.metadata.started_at),
        host = escape(&report.metadata.machine.host),
    );
    body.push_str(&verdict_section(&report.verdict, &report.objective.text));
    body.push_str(&anomalies_section(&report.anomalies));
    body.push_str(&metadata_section(&report.metadata, &report.scenario.description));
    if let Some(system) = &report.metadata.system {
        body.push_str(&system_section(system));
    }
    body.push_str(&figures_section(report));
    body.push_str(r#"<section id="charts"><h2>Charts</h2>"#);
    body.push_str(&latency_chart(r));
    body.push_str(&timeline_charts(
        &r.timeline,
        r.send_seconds,
        !report.pids.is_empty(),
    ));
    body.push_str("</section>\n");
    body.push_str(&glossary_section(GLOSSARY));
    let _ = writeln!(
        body,
        "<details><summary>The summary as printed</summary><pre>{}</pre></details>",
        escape(&report.render())
    );
    page(&format!("Switchyard load run: {}", report.scenario.name), &body)
}

/// Writes `report.html` and `result.json` of a run into `dir`.
pub fn write_run(dir: &Path, report: &RunReport) -> Result<(), LoadtestError> {
    let json = serde_json::to_string_pretty(report).unwrap_or_default();
    write_files(dir, &[("result.json", json), ("report.html", run_page(report))])
}

/// Writes named files into `dir` (created).
pub fn write_files(dir: &Path, files: &[(&str, String)]) -> Result<(), LoadtestError> {
    std::fs::create_dir_all(dir).map_err(|error| LoadtestError::Process {
        what: format!("creating {}", dir.display()),
        error,
    })?;
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|error| LoadtestError::Process {
            what: format!("writing {}", path.display()),
            error,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leftovers::ControlRecords;
    use crate::metadata::{Machine, RouterSettings};
    use crate::objective::{self, Objective};
    use crate::run::RunTopics;
    use crate::scenario::Scenario;

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        assert_eq!(ticks(1000.0, 5), [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
        assert_eq!(ticks(7.3, 8), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        assert_eq!(ticks(0.0, 5), [0.0, 1.0]);
        assert_eq!(ticks(0.42, 5), [0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5]);
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(25_000.0, 5_000.0), "25k");
        assert_eq!(tick_label(2_500.0, 2_500.0), "2.5k");
        assert_eq!(tick_label(1_500_000.0, 500_000.0), "1.5M");
        assert_eq!(tick_label(500_000.0, 500_000.0), "500k");
        assert_eq!(tick_label(1_000.0, 200.0), "1000");
        assert_eq!(tick_label(40.0, 20.0), "40");
    }

    #[test]
    fn charts_are_self_contained_svg_with_ticks_and_units() {
        let chart = line_chart(&LineChart {
            id: "c",
            title: "T <1>",
            x_label: "time",
            x_unit: "s",
            y_label: "n",
            y_unit: "MiB",
            series: vec![Series {
                name: "a&b",
                colour: "red",
                points: vec![(0.0, 1.0), (1.0, 3.0)],
            }],
            markers: vec![(0.5, "sending ended".into())],
        });
        assert!(
            chart.starts_with("<figure><svg") && chart.contains("polyline") && chart.contains("T &lt;1&gt;")
        );
        assert!(chart.contains("a&amp;b") && chart.contains("n (MiB)") && chart.contains("time (s)"));
        assert!(chart.contains(r#"class="tick y">3</text>"#), "{chart}");
        assert!(chart.contains(r#"class="tick x">1.0</text>"#), "{chart}");
        assert!(chart.contains(r#"class="tick x">0</text>"#), "{chart}");
        assert!(chart.contains("sending ended"));
        let empty = line_chart(&LineChart {
            id: "e",
            title: "E",
            x_label: "t",
            x_unit: "s",
            y_label: "v",
            y_unit: "u",
            series: vec![],
            markers: vec![],
        });
        assert!(empty.contains("no samples"));
        let bars = bar_chart("b", "B", "ms", &[("p50".into(), 2.0), ("p99".into(), 20.0)]);
        assert_eq!(bars.matches("<rect").count(), 2);
        assert!(bars.contains(r#"class="tick x">20</text>"#), "{bars}");
        let html = page("x", &chart);
        assert!(html.starts_with("<!doctype html>") && !html.contains("<script"));
        assert!(
            html.contains("Content-Security-Policy")
                && !html.contains("http://")
                && !html.contains("https://")
        );
        assert_eq!(compact(12_345.0), "12.3k");
    }

    /// A run of 4 s at 300 events/s that read 200 records more than expected, with the lag growing, on a
    /// router that reported its settings.
    fn fixed_report() -> RunReport {
        let mut result = objective::tests::step(1800, 2000);
        result.lag_growing = true;
        for (sample, lag) in result.timeline.iter_mut().zip([5, 50, 400, 900]) {
            sample.lag = Some(lag);
        }
        let objective = Objective::new(300, Some(100.0));
        let verdict = objective::verdict(&result, &objective);
        let anomalies = objective::anomalies(&result, &objective, 1);
        let metadata = Metadata {
            subcommand: "run".into(),
            run_id: Some("0195f3a2-7c1e-7000-8000-000000000001".into()),
            started_at: "2026-11-22T09:55:00Z".into(),
            finished_at: "2026-11-22T09:55:12Z".into(),
            tool_version: "0.1.0".into(),
            git_revision: Some("5a05842abcde-dirty".into()),
            scenario: Some("smoke".into()),
            seed: Some(7),
            command_line: "switchyard-loadtest run --scenario smoke --rate 300 --p99-ms 100".into(),
            machine: Machine {
                host: "bench-1".into(),
                cpus: 8,
                cpu_model: Some("AMD EPYC 7B13".into()),
                memory_mib: Some(32_000),
                os: "Debian GNU/Linux 12 (bookworm)".into(),
                kernel: "Linux 6.1.0 x86_64".into(),
            },
            system: Some(SystemUnderTest {
                bootstrap: "127.0.0.1:9092".into(),
                group: "switchyard-router".into(),
                replicas: Some(2),
                replica_hosts: vec!["/127.0.0.1".into(), "/127.0.0.1".into()],
                core_partitions: 3,
                router_admin: Some("127.0.0.1:9100".into()),
                router: Some(RouterSettings {
                    version: "0.1.0".into(),
                    delivery_mode: "exactly_once".into(),
                    group_id: "switchyard-router".into(),
                    commit_interval_ms: 100,
                    commit_max_events: 5000,
                    transaction_timeout_ms: 10_000,
                    validate_payloads: true,
                    host: "router-0".into(),
                }),
                pids: vec![4121],
                notes: vec![],
            }),
        };
        RunReport {
            tool: "0.1.0".into(),
            started_at: metadata.started_at.clone(),
            run_id: metadata.run_id.clone().unwrap(),
            scenario: Scenario::load("smoke").unwrap(),
            topics: RunTopics::with_prefix(None),
            group: "switchyard-router".into(),
            pids: vec![4121],
            mean_value_bytes: 550.0,
            mean_fanout: 1.5,
            enablements: 240,
            leftovers_removed: ControlRecords::default(),
            result,
            backfill: None,
            problems: Vec::new(),
            metadata,
            objective,
            verdict,
            anomalies,
        }
    }

    /// Issue 22: the report of a run stands alone: metadata, system, objective and verdict, ticks, the
    /// anomalies, CPU and RSS charted, definitions.
    #[test]
    fn the_run_page_stands_alone() {
        let mut report = fixed_report();
        report.check();
        let html = run_page(&report);
        for part in [
            // Metadata.
            "2026-11-22T09:55:00Z",
            "0195f3a2-7c1e-7000-8000-000000000001",
            "5a05842abcde-dirty",
            "switchyard-loadtest run --scenario smoke --rate 300 --p99-ms 100",
            "bench-1",
            "8 (AMD EPYC 7B13)",
            "31.2 GiB",
            "Debian GNU/Linux 12 (bookworm) (Linux 6.1.0 x86_64)",
            // The system.
            "<th>Replicas</th><td>2 (/127.0.0.1, /127.0.0.1)</td>",
            "<th>Commit interval</th><td>100 ms</td>",
            "<th>Delivery mode</th><td>exactly_once</td>",
            "<th>Core topic partitions</th><td>3</td>",
            // Objective and verdict.
            r#"<section id="verdict" class="fail"><h2>Verdict: FAIL</h2>"#,
            "p99 end-to-end latency at most 100 ms; 300 events/s sent (at least 95% of it)",
            "✘ FAILS: 200 records more than the 1800 expected",
            "✘ FAILS: the lag kept growing while sending",
            "✔ holds: p99 80.0 ms &lt;= 100 ms",
            // Anomalies.
            "MORE records than expected: 2000 plugin records were read, 200 more than the 1800 expected",
            "the consumer lag GREW while sending, from a mean of 5 events in the first third to 900",
            // Figures and the latency samples explained.
            "<th>Latency samples</th><td>2000 (one per plugin record read)</td>",
            // Definitions.
            r#"<section id="glossary"><h2>Definitions</h2>"#,
            "<dt>Commit interval</dt>",
            "<dt>Latency samples</dt>",
        ] {
            assert!(html.contains(part), "{part:?} missing in\n{html}");
        }
        for chart in [
            "chart-percentiles",
            "chart-throughput",
            "chart-lag",
            "chart-p99",
            "chart-cpu",
            "chart-rss",
        ] {
            let start = html
                .find(&format!(r#"id="{chart}""#))
                .unwrap_or_else(|| panic!("{chart} missing"));
            let svg = &html[start..start + html[start..].find("</svg>").unwrap()];
            assert!(
                svg.matches(r#"class="tick"#).count() >= 4,
                "{chart} has too few ticks: {svg}"
            );
            assert!(
                svg.contains("sending ended") || chart == "chart-percentiles",
                "{svg}"
            );
        }
        // CPU (0.2 cores each second) and RSS (40 MiB) are drawn, with their units.
        let cpu = &html[html.find(r#"id="chart-cpu""#).unwrap()..];
        assert!(cpu.contains("CPU (cores)") && cpu[..cpu.find("</svg>").unwrap()].contains("polyline"));
        assert!(html.contains("resident memory (MiB)"));
        assert!(
            html.contains(r#"class="tick y">40</text>"#),
            "RSS ticks reach 40 MiB"
        );
        assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
        // result.json carries the same.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["metadata"]["git_revision"], "5a05842abcde-dirty");
        assert_eq!(json["metadata"]["system"]["router"]["commit_interval_ms"], 100);
        assert_eq!(json["metadata"]["machine"]["cpus"], 8);
        assert_eq!(json["objective"]["p99_ms"], 100.0);
        assert_eq!(json["verdict"]["passed"], false);
        assert_eq!(json["verdict"]["checks"][1]["kind"], "no_surplus");
        assert_eq!(json["anomalies"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_passing_run_without_an_objective_says_what_it_was_judged_on() {
        let mut report = fixed_report();
        report.result = objective::tests::step(1800, 1800);
        report.objective = Objective::new(300, None);
        report.verdict = objective::verdict(&report.result, &report.objective);
        report.anomalies = objective::anomalies(&report.result, &report.objective, 1);
        report.metadata.system = None;
        let html = run_page(&report);
        assert!(html.contains(r#"<section id="verdict" class="pass"><h2>Verdict: PASS</h2>"#));
        assert!(html.contains("no latency objective given (--p99-ms)"), "{html}");
        assert!(html.contains("<p>None found:"));
    }
}
