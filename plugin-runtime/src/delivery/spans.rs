//! What the worker's span of one delivery attempt says (pure; the span itself is `service::traces`).
//!
//! One span per event per call to the plugin, named `deliver`, kind client, a child of the `traceparent`
//! the router wrote on the plugin's record (the router's `route` span). The plugin hears of it as
//! [`Context::traceparent`](crate::plugin::Context::traceparent), and the HTTP bridge sends it as the
//! `traceparent` header and CloudEvents attribute of `/execute`. A retried event gets one span per attempt.

use switchyard_schemas::envelope;
use switchyard_service::traces::KeyValue;

use crate::delivery::records::OutRecord;
use crate::plugin::{EventMeta, Outcome};

/// The span's name.
pub const DELIVER: &str = "deliver";

/// The record's first `traceparent` header, the span's parent.
pub fn traceparent(record: &OutRecord) -> Option<&[u8]> {
    record
        .headers
        .iter()
        .find(|(key, _)| key == envelope::TRACEPARENT)
        .and_then(|(_, value)| value.as_deref())
}

/// One attempt, for [`attempt_attributes`].
pub struct Attempt<'a> {
    /// The plugin id.
    pub plugin: &'a str,
    /// The event.
    pub meta: &'a EventMeta,
    /// The plugin's topic, and where in it the event was read.
    pub topic: &'a str,
    /// Partition and offset.
    pub at: (i32, i64),
    /// 1 for the first call of the event, then 2, 3, ...
    pub attempt: u32,
    /// Events in the call (1 unless the plugin takes batches).
    pub batch: usize,
}

/// The span's attributes at its start: OpenTelemetry's messaging and CloudEvents conventions, and
/// `switchyard.plugin`, `switchyard.attempt`, `switchyard.batch_size`. No team.
pub fn attempt_attributes(attempt: &Attempt<'_>) -> Vec<KeyValue> {
    vec![
        KeyValue::new("switchyard.plugin", attempt.plugin.to_owned()),
        KeyValue::new("switchyard.attempt", i64::from(attempt.attempt)),
        KeyValue::new("switchyard.batch_size", attempt.batch as i64),
        KeyValue::new("messaging.system", "kafka"),
        KeyValue::new("messaging.operation.type", "process"),
        KeyValue::new("messaging.destination.name", attempt.topic.to_owned()),
        KeyValue::new("messaging.destination.partition.id", attempt.at.0.to_string()),
        KeyValue::new("messaging.kafka.offset", attempt.at.1),
        KeyValue::new("cloudevents.event_id", attempt.meta.id.clone()),
        KeyValue::new("cloudevents.event_type", attempt.meta.event_type.clone()),
    ]
}

/// The attempt's outcome as the span's `switchyard.outcome` (`done`, `retry`, `throttled`,
/// `dead_letter`), and the error description when it failed.
pub fn outcome(outcome: &Outcome) -> (&'static str, Option<&str>) {
    match outcome {
        Outcome::Done(_) => ("done", None),
        Outcome::Retry { reason, .. } => ("retry", Some(reason)),
        Outcome::Throttled { .. } => ("throttled", None),
        Outcome::DeadLetter { reason } => ("dead_letter", Some(reason)),
    }
}

/// The `<topic>` of a `<topic>/<partition>/<offset>` source.
pub fn topic_of(source: &str) -> &str {
    source.rsplitn(3, '/').nth(2).unwrap_or(source)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_attempt_names_the_plugin_the_event_and_where_it_was_read_but_no_team() {
        let meta = EventMeta {
            id: "e-1".into(),
            source: "/collect".into(),
            event_type: "response.submitted".into(),
            time: None,
            subject: None,
            team_id: "acme".into(),
            installation: "acme-bc".into(),
            backfill: None,
        };
        let attributes: Vec<(String, String)> = attempt_attributes(&Attempt {
            plugin: "sheets",
            meta: &meta,
            topic: topic_of("plugin.sheets.events/2/41"),
            at: (2, 41),
            attempt: 3,
            batch: 1,
        })
        .into_iter()
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect();
        let get = |key: &str| attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("switchyard.plugin"), Some("sheets"));
        assert_eq!(get("switchyard.attempt"), Some("3"));
        assert_eq!(get("messaging.destination.name"), Some("plugin.sheets.events"));
        assert_eq!(get("messaging.kafka.offset"), Some("41"));
        assert_eq!(get("cloudevents.event_id"), Some("e-1"));
        assert!(
            !attributes.iter().any(|(_, v)| v.contains("acme")),
            "{attributes:?}"
        );
    }

    #[test]
    fn outcomes_are_labelled_and_failures_described() {
        assert_eq!(outcome(&Outcome::done()), ("done", None));
        let retry = Outcome::Retry {
            reason: "503".into(),
            after: Some(Duration::from_secs(1)),
        };
        assert_eq!(outcome(&retry), ("retry", Some("503")));
        assert_eq!(
            outcome(&Outcome::dead_letter("bad")),
            ("dead_letter", Some("bad"))
        );
        assert_eq!(topic_of("a.b/0/1"), "a.b");
        assert_eq!(topic_of("odd"), "odd");
    }
}
