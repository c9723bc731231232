//! What `dev` sends and shows: sample core events of the plugin's types, and one line per call read from
//! the worker's `switchyard::call` log.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use switchyard_schemas::catalog::EventType;
use switchyard_schemas::envelope::ContentType;
use switchyard_schemas::samples;
use switchyard_service::kafka::KafkaContext;

use super::usage;
use crate::Failure;

/// The sample events' topic.
const CORE_EVENTS: &str = "core.events";

/// The sample events' producer.
pub(super) struct Sender {
    pub(super) producer: FutureProducer<KafkaContext>,
    pub(super) team: String,
    pub(super) types: Vec<EventType>,
}

impl Sender {
    /// One event of each type the plugin takes.
    pub(super) async fn round(&self) -> Result<usize, Failure> {
        for (n, ce_type) in self.types.iter().enumerate() {
            self.send(*ce_type, n).await?;
        }
        Ok(self.types.len())
    }

    /// The next type in turn.
    pub(super) async fn one(&self, sent: usize) -> Result<usize, Failure> {
        match self.types.get(sent % self.types.len().max(1)) {
            Some(ce_type) => self.send(*ce_type, sent).await.map(|()| 1),
            None => Ok(0),
        }
    }

    async fn send(&self, ce_type: EventType, n: usize) -> Result<(), Failure> {
        let id = format!("dev-{}-{n}", uuid::Uuid::now_v7());
        let headers = samples::core_event_headers(&self.team, ce_type.as_str(), &id, ContentType::Json)
            .into_iter()
            .fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header {
                    key: &key,
                    value: value.as_deref(),
                })
            });
        let value = serde_json::to_vec(&samples::data_json(ce_type, &self.team, &id)).unwrap_or_default();
        self.producer
            .send(
                FutureRecord::to(CORE_EVENTS)
                    .key(&self.team)
                    .payload(&value)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| usage(format!("producing a sample event: {e}")))?;
        Ok(())
    }
}

/// A worker's JSON log line of one call (target `switchyard::call`) as a line for people, else `None`.
pub(crate) fn call_line(line: &str) -> Option<String> {
    let json: Value = serde_json::from_str(line).ok()?;
    if json["target"] != "switchyard::call" {
        return None;
    }
    let fields = if json["fields"].is_object() {
        &json["fields"]
    } else {
        &json
    };
    let text = |name: &str| fields[name].as_str().unwrap_or_default().to_owned();
    let time = json["timestamp"]
        .as_str()
        .and_then(|t| t.get(11..23))
        .unwrap_or_default();
    let outcome = text("outcome");
    let detail = match outcome.as_str() {
        "done" => format!("{} result(s)", fields["results"].as_u64().unwrap_or(0)),
        _ => text("reason"),
    };
    let installation = text("installation");
    let team = if installation.is_empty() || installation == "default" {
        text("team")
    } else {
        format!("{}/{installation}", text("team"))
    };
    Some(format!(
        "{time} {:<18} {team} {} -> {outcome} in {} ms: {detail}",
        text("event_type"),
        text("event"),
        fields["elapsed_ms"].as_u64().unwrap_or(0)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_lines_become_one_readable_line_and_other_lines_are_skipped() {
        let line = r#"{"timestamp":"2026-12-06T00:01:02.345678Z","level":"DEBUG","fields":{"message":"call","team":"dev-team","installation":"default","event":"dev-1","event_type":"response.submitted","outcome":"done","results":1,"reason":"","elapsed_ms":4},"target":"switchyard::call"}"#;
        assert_eq!(
            call_line(line).unwrap(),
            "00:01:02.345 response.submitted dev-team dev-1 -> done in 4 ms: 1 result(s)"
        );
        let dead = line
            .replace(r#""outcome":"done""#, r#""outcome":"dead_letter""#)
            .replace(r#""reason":"""#, r#""reason":"the plugin answered 401""#);
        assert!(
            call_line(&dead)
                .unwrap()
                .ends_with("dead_letter in 4 ms: the plugin answered 401")
        );
        assert_eq!(
            call_line(r#"{"target":"switchyard_plugin_runtime::app","fields":{}}"#),
            None
        );
        assert_eq!(call_line("not json"), None);
    }
}
