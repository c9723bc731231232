//! A real Jaeger for the trace tests: `scripts/jaeger` builds and starts it (OTLP/HTTP in, query API out),
//! and [`Jaeger::trace`] reads a trace back as its spans.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The Jaeger of one test, stopped when dropped. Its ports: `SWITCHYARD_TEST_JAEGER_PORT` (OTLP/HTTP,
/// default 19418) and `SWITCHYARD_TEST_JAEGER_QUERY_PORT` (the query API, default 19686, and the two ports
/// after it).
pub struct Jaeger {
    /// Where services export: `http://127.0.0.1:<port>/v1/traces`.
    pub otlp_endpoint: String,
    query: String,
    env: Vec<(&'static str, String)>,
}

/// One span as Jaeger's query API gives it.
#[derive(Debug, Clone)]
pub struct Span {
    /// Its span id (16 hex digits).
    pub span_id: String,
    /// The span it is a child of, if any.
    pub parent: Option<String>,
    /// Its name (`route`, `deliver`).
    pub name: String,
    /// The service that recorded it (`service.name`).
    pub service: String,
    /// Its attributes, values as text.
    pub tags: Vec<(String, String)>,
}

impl Span {
    /// The value of attribute `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn port(variable: &str, default: u16) -> u16 {
    std::env::var(variable)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/jaeger")
}

impl Jaeger {
    /// Starts Jaeger (building it first if the cache has none: minutes) and waits until it serves.
    pub fn start() -> Self {
        let (otlp, query) = (
            port("SWITCHYARD_TEST_JAEGER_PORT", 19418),
            port("SWITCHYARD_TEST_JAEGER_QUERY_PORT", 19686),
        );
        let env = vec![
            ("JAEGER_OTLP_PORT", otlp.to_string()),
            ("JAEGER_QUERY_PORT", query.to_string()),
        ];
        let jaeger = Self {
            otlp_endpoint: format!("http://127.0.0.1:{otlp}/v1/traces"),
            query: format!("http://127.0.0.1:{query}"),
            env,
        };
        jaeger.run("start");
        jaeger
    }

    fn run(&self, command: &str) {
        let status = Command::new(script())
            .arg(command)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .status()
            .expect("scripts/jaeger runs");
        assert!(status.success(), "scripts/jaeger {command} failed: {status}");
    }

    /// The spans of trace `trace_id` (32 hex digits) Jaeger holds so far; empty while it has none.
    pub async fn trace(&self, trace_id: &str) -> Vec<Span> {
        let url = format!("{}/api/traces/{trace_id}", self.query);
        let Ok(response) = reqwest::get(&url).await else {
            return Vec::new();
        };
        if !response.status().is_success() {
            return Vec::new();
        }
        let body: Value = response.json().await.unwrap_or_default();
        spans(&body)
    }
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        self.run("stop");
    }
}

/// The spans of a `/api/traces/<id>` answer.
fn spans(body: &Value) -> Vec<Span> {
    let Some(trace) = body["data"].get(0) else {
        return Vec::new();
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    trace["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|span| Span {
            span_id: text(&span["spanID"]),
            parent: span["references"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["refType"] == "CHILD_OF")
                .map(|r| text(&r["spanID"])),
            name: text(&span["operationName"]),
            service: span["processID"]
                .as_str()
                .map(|p| text(&trace["processes"][p]["serviceName"]))
                .unwrap_or_default(),
            tags: span["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| (text(&t["key"]), text(&t["value"])))
                .collect(),
        })
        .collect()
}
