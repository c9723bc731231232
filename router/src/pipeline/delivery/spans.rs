//! What the router's span of one routed event says (pure; the span itself is `service::traces`).
//!
//! One span per input record the router plans, named `route`, kind consumer, a child of the record's
//! `traceparent`. Its attributes name the event and its fate but no team: the plugin ids it was written
//! for, not the installations (a team's names). The plugin copies and dead letters carry the span's own
//! `traceparent`, so the plugin's delivery spans are its children.

use std::time::SystemTime;

use switchyard_schemas::envelope;
use switchyard_service::traces::{Array, KeyValue, SpanKind, StringValue, TraceSpan, Traces, Value};

use crate::pipeline::plan::{Output, Plan};

/// The span's name.
pub const ROUTE: &str = "route";

/// The record's first `traceparent` header, the span's parent.
pub fn traceparent<'a>(headers: &[(&str, Option<&'a [u8]>)]) -> Option<&'a [u8]> {
    header(headers, envelope::TRACEPARENT)
}

fn header<'a>(headers: &[(&str, Option<&'a [u8]>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| *value)
}

/// The span of the record `read`, started at `start` (before it was planned) with what `plan` decided; the
/// caller writes its [`TraceSpan::traceparent`] on the copies and ends it once they are sent.
pub fn route_span(traces: &Traces, start: SystemTime, read: &Read<'_>, plan: &Plan) -> TraceSpan {
    let parent = traceparent(read.headers);
    traces.span(ROUTE, SpanKind::Consumer, parent, start, || {
        route_attributes(read, plan)
    })
}

/// Where the record was read, for [`route_attributes`].
pub struct Read<'a> {
    /// The input topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its headers.
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
    /// The backfill this is a historical copy for.
    pub backfill: Option<&'a str>,
}

/// The span's attributes: OpenTelemetry's messaging and CloudEvents conventions, and `switchyard.outcome`
/// (`routed`, `unrouted`, `dead_lettered`), `switchyard.plugins` (the distinct plugin ids of the copies
/// written, sorted), `switchyard.dead_letters` (how many dead letters), `switchyard.backfill`.
pub fn route_attributes(read: &Read<'_>, plan: &Plan) -> Vec<KeyValue> {
    let text = |name| header(read.headers, name).map(|v| String::from_utf8_lossy(v).into_owned());
    let mut plugins: Vec<&str> = plan
        .outputs
        .iter()
        .filter_map(|output| match output {
            Output::Plugin { route, .. } => Some(&*route.id),
            Output::DeadLetter { .. } => None,
        })
        .collect();
    plugins.sort_unstable();
    plugins.dedup();
    let dead_letters = plan
        .outputs
        .iter()
        .filter(|output| matches!(output, Output::DeadLetter { .. }))
        .count();
    let mut attributes = vec![
        KeyValue::new("messaging.system", "kafka"),
        KeyValue::new("messaging.operation.type", "process"),
        KeyValue::new("messaging.destination.name", read.topic.to_owned()),
        KeyValue::new("messaging.destination.partition.id", read.partition.to_string()),
        KeyValue::new("messaging.kafka.offset", read.offset),
        KeyValue::new("switchyard.outcome", plan.outcome.label()),
        KeyValue::new(
            "switchyard.plugins",
            Value::Array(Array::String(
                plugins
                    .into_iter()
                    .map(|p| StringValue::from(p.to_owned()))
                    .collect(),
            )),
        ),
        KeyValue::new("switchyard.dead_letters", dead_letters as i64),
    ];
    for (name, key) in [
        (envelope::TYPE, "cloudevents.event_type"),
        (envelope::ID, "cloudevents.event_id"),
        (envelope::SOURCE, "cloudevents.event_source"),
    ] {
        if let Some(value) = text(name) {
            attributes.push(KeyValue::new(key, value));
        }
    }
    if let Some(backfill) = read.backfill {
        attributes.push(KeyValue::new("switchyard.backfill", backfill.to_owned()));
    }
    attributes
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use switchyard_schemas::Rejection;
    use switchyard_schemas::dead_letter::Reason;

    use super::*;
    use crate::pipeline::filters::FilterTally;
    use crate::pipeline::plan::Outcome;
    use crate::tables::test_support;

    fn attributes(plan: &Plan) -> HashMap<String, String> {
        let headers: &[(&str, Option<&[u8]>)] = &[
            ("ce_type", Some(b"response.submitted")),
            ("ce_id", Some(b"e-1")),
            (
                "traceparent",
                Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ),
        ];
        let read = Read {
            topic: "core.events",
            partition: 2,
            offset: 41,
            headers,
            backfill: None,
        };
        assert_eq!(
            traceparent(headers),
            Some(&b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"[..])
        );
        route_attributes(&read, plan)
            .into_iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect()
    }

    #[test]
    fn a_routed_event_names_its_plugins_once_each_and_no_installation() {
        let plan = Plan {
            outcome: Outcome::Routed,
            outputs: vec![
                test_support::plugin_output("sheets", None),
                test_support::plugin_output("sheets", Some("acme-bc")),
                test_support::plugin_output("alerts", None),
            ],
            filters: FilterTally::default(),
            held: Vec::new(),
        };
        let a = attributes(&plan);
        assert_eq!(a["switchyard.outcome"], "routed");
        assert_eq!(a["switchyard.plugins"], "[\"alerts\",\"sheets\"]");
        assert_eq!(a["switchyard.dead_letters"], "0");
        assert_eq!(a["messaging.destination.partition.id"], "2");
        assert_eq!(a["messaging.kafka.offset"], "41");
        assert_eq!(a["cloudevents.event_type"], "response.submitted");
        assert_eq!(a["cloudevents.event_id"], "e-1");
        assert!(!a.values().any(|v| v.contains("acme")), "{a:?}");
    }

    #[test]
    fn a_dead_lettered_event_counts_its_dead_letters() {
        let plan = Plan {
            outcome: Outcome::DeadLettered,
            outputs: vec![Output::DeadLetter {
                rejection: Rejection::new(Reason::MissingKey, "no key"),
                plugin: None,
                drop_value: false,
            }],
            filters: FilterTally::default(),
            held: Vec::new(),
        };
        let a = attributes(&plan);
        assert_eq!(a["switchyard.outcome"], "dead_lettered");
        assert_eq!(a["switchyard.plugins"], "[]");
        assert_eq!(a["switchyard.dead_letters"], "1");
    }
}
