//! Self-contained HTML reports: inline SVG charts and tables, no scripts, no external files, so a
//! report can be attached to a ticket or opened from a CI artifact as it is.

use std::fmt::Write as _;
use std::path::Path;

use crate::LoadtestError;
use crate::run::{RunReport, Sample, StepResult};

/// One line of a chart.
pub struct Series<'a> {
    /// Legend.
    pub name: &'a str,
    /// CSS colour.
    pub colour: &'a str,
    /// Points (x, y).
    pub points: Vec<(f64, f64)>,
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart as inline SVG.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series<'_>]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 260.0, 70.0, 20.0, 30.0, 40.0);
    let all = || series.iter().flat_map(|s| s.points.iter());
    let x_max = all().map(|p| p.0).fold(0.0_f64, f64::max).max(1e-9);
    let y_max = all().map(|p| p.1).fold(0.0_f64, f64::max).max(1e-9) * 1.1;
    let x = |v: f64| left + v / x_max * (w - left - right);
    let y = |v: f64| h - bottom - v / y_max * (h - top - bottom);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{t}">
<text x="{left}" y="18" font-weight="bold">{t}</text>
<line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#888"/><line x1="{left}" y1="{top}" x2="{left}" y2="{b}" stroke="#888"/>
<text x="{r}" y="{xl}" text-anchor="end" font-size="12">{xlabel} (max {xm:.0})</text>
<text x="4" y="{top}" font-size="12">{ym}</text><text x="4" y="{b}" font-size="12">0</text>
<text x="4" y="{mid}" font-size="12" transform="rotate(-90 12 {mid})">{ylabel}</text>
"##,
        t = escape(title),
        b = h - bottom,
        r = w - right,
        xl = h - 8.0,
        xlabel = escape(x_label),
        xm = x_max,
        ym = compact(y_max / 1.1),
        mid = h / 2.0,
        ylabel = escape(y_label),
    );
    for (i, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{p}"/><text x="{lx}" y="{ly}" font-size="12" fill="{c}">{n}</text>"#,
            c = s.colour,
            p = points.join(" "),
            lx = w - right - 180.0,
            ly = top + 14.0 * (i as f64 + 1.0),
            n = escape(s.name),
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A bar chart of labelled values as inline SVG.
pub fn bar_chart(title: &str, unit: &str, bars: &[(String, f64)]) -> String {
    let (w, row) = (720.0, 24.0);
    let h = 40.0 + row * bars.len() as f64;
    let max = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max).max(1e-9);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{t}"><text x="0" y="18" font-weight="bold">{t}</text>
"#,
        t = escape(title)
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 30.0 + row * i as f64;
        let len = value / max * (w - 260.0);
        let _ = writeln!(
            svg,
            r##"<text x="0" y="{ty}" font-size="12">{l}</text><rect x="120" y="{y}" width="{len:.1}" height="16" fill="#4a7bd0"/><text x="{vx:.1}" y="{ty}" font-size="12">{v} {u}</text>"##,
            ty = y + 12.0,
            l = escape(label),
            vx = 126.0 + len,
            v = compact(*value),
            u = escape(unit),
        );
    }
    svg.push_str("</svg>\n");
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

/// The page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}th{{background:#f3f3f3}}td:first-child,th:first-child{{text-align:left}}svg{{display:block;margin:1em 0}}</style>
</head><body><h1>{t}</h1>
{body}
</body></html>
"#,
        t = escape(title)
    )
}

/// Charts of one step's timeline: throughput in and out, lag, latency p99 per second.
pub fn timeline_charts(timeline: &[Sample]) -> String {
    let points = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        timeline.iter().filter_map(|s| f(s).map(|v| (s.t, v))).collect()
    };
    let mut html = line_chart(
        "Throughput",
        "seconds",
        "per second",
        &[
            Series {
                name: "events in /s",
                colour: "#4a7bd0",
                points: points(&|s| Some(s.events_in as f64)),
            },
            Series {
                name: "plugin records out /s",
                colour: "#d0704a",
                points: points(&|s| Some(s.records_out as f64)),
            },
        ],
    );
    html.push_str(&line_chart(
        "Consumer lag on the core topic",
        "seconds",
        "events",
        &[Series {
            name: "lag",
            colour: "#8a4ad0",
            points: points(&|s| s.lag.map(|l| l as f64)),
        }],
    ));
    html.push_str(&line_chart(
        "End-to-end latency p99, per second",
        "seconds",
        "ms",
        &[Series {
            name: "p99 ms",
            colour: "#2a9d5b",
            points: points(&|s| (s.p99_ms > 0.0).then_some(s.p99_ms)),
        }],
    ));
    html
}

/// The percentiles of a step as a bar chart.
pub fn latency_chart(step: &StepResult) -> String {
    let l = &step.latency_ms;
    bar_chart(
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

/// Writes `report.html` and `result.json` of a run into `dir`.
pub fn write_run(dir: &Path, report: &RunReport) -> Result<(), LoadtestError> {
    let r = &report.result;
    let mut body = format!(
        "<p>{}</p><pre>{}</pre>",
        escape(&report.scenario.description),
        escape(&report.render())
    );
    body.push_str(&latency_chart(r));
    body.push_str(&timeline_charts(&r.timeline));
    let json = serde_json::to_string_pretty(report).unwrap_or_default();
    write_files(
        dir,
        &[
            ("result.json", json),
            (
                "report.html",
                page(&format!("Switchyard load run: {}", report.scenario.name), &body),
            ),
        ],
    )
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

    #[test]
    fn charts_are_self_contained_svg() {
        let chart = line_chart(
            "T <1>",
            "s",
            "n",
            &[Series {
                name: "a&b",
                colour: "red",
                points: vec![(0.0, 1.0), (1.0, 3.0)],
            }],
        );
        assert!(chart.starts_with("<svg") && chart.contains("polyline") && chart.contains("T &lt;1&gt;"));
        assert!(chart.contains("a&amp;b"));
        let bars = bar_chart("B", "ms", &[("p50".into(), 2.0), ("p99".into(), 20.0)]);
        assert_eq!(bars.matches("<rect").count(), 2);
        let html = page("x", &chart);
        assert!(html.starts_with("<!doctype html>") && !html.contains("<script"));
        assert_eq!(compact(12_345.0), "12.3k");
    }
}
