//! The records a worker writes: dead letters on `plugin.<id>.dlq` and results on `core.plugin-results`.
//!
//! A dead letter is the routed record unchanged (key, value, headers) plus these headers:
//!
//! | header | value |
//! |---|---|
//! | `switchyard_error` | `plugin_dead_letter` (the plugin said so, or its service answered a 4xx other than 408/429), `retries_exhausted`, `config_rejected`, `invalid_event` |
//! | `switchyard_error_detail` | one sentence |
//! | `switchyard_plugin` | the plugin id |
//! | `switchyard_attempts` | calls made |
//! | `switchyard_first_failure`, `switchyard_last_failure` | RFC 3339 times (absent when no call failed) |
//! | `switchyard_source` | `<topic>/<partition>/<offset>` of the routed record (replaced if already set) |
//!
//! A result is a CloudEvent in binary mode: key = team, `ce_type` = `switchyard.plugin.<kind>`,
//! `ce_source` = `/plugins/<id>`, `ce_subject` = the result's subject or the event's, `ce_teamid`,
//! `ce_causationid` = the event's `ce_id`, `ce_id` = `<event id>:<plugin>:<n>` (stable across redeliveries,
//! so consumers can de-duplicate), JSON data. For an event of a named installation (not the default one),
//! `ce_id` = `<event id>:<plugin>/<installation>:<n>` and the extension `ce_installation` names it.

use switchyard_schemas::dead_letter::{self, ATTEMPTS, FIRST_FAILURE, LAST_FAILURE};
use switchyard_schemas::envelope as ce;

use crate::plugin::{EventMeta, PluginResult};

/// Header of a result: the `ce_id` of the event it answers.
pub const CAUSATION_ID: &str = "ce_causationid";
/// Header of a result of a named installation: the installation.
pub const INSTALLATION_EXTENSION: &str = "ce_installation";

/// Why an event was dead-lettered (the contract's plugin dead-letter codes).
pub use switchyard_schemas::dead_letter::PluginReason as DeadReason;

/// An owned record to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRecord {
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// How a dead-lettered event fared.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Why.
    pub reason: DeadReason,
    /// One sentence.
    pub detail: String,
    /// Calls made.
    pub attempts: u32,
    /// First failure, RFC 3339.
    pub first_failure: Option<String>,
    /// Last failure, RFC 3339.
    pub last_failure: Option<String>,
}

/// The dead letter of a routed record.
pub fn dead_letter(original: &OutRecord, plugin: &str, source: &str, failure: &Failure) -> OutRecord {
    let mut headers: Vec<(String, Option<Vec<u8>>)> = original
        .headers
        .iter()
        .filter(|(name, _)| !dead_letter::PLUGIN_DEAD_LETTER_HEADERS.contains(&name.as_str()))
        .cloned()
        .collect();
    let mut set = |name: &str, value: &str| headers.push((name.to_owned(), Some(value.as_bytes().to_vec())));
    set(dead_letter::ERROR, failure.reason.code());
    set(dead_letter::ERROR_DETAIL, &failure.detail);
    set(dead_letter::PLUGIN, plugin);
    set(dead_letter::SOURCE, source);
    set(ATTEMPTS, &failure.attempts.to_string());
    if let Some(first) = &failure.first_failure {
        set(FIRST_FAILURE, first);
    }
    if let Some(last) = &failure.last_failure {
        set(LAST_FAILURE, last);
    }
    OutRecord {
        key: original.key.clone(),
        value: original.value.clone(),
        headers,
    }
}

/// A result event.
pub fn result(plugin: &str, meta: &EventMeta, index: usize, result: &PluginResult, time: &str) -> OutRecord {
    let subject = result.subject.as_deref().or(meta.subject.as_deref());
    let id = if meta.is_default_installation() {
        format!("{}:{plugin}:{index}", meta.id)
    } else {
        format!("{}:{plugin}/{}:{index}", meta.id, meta.installation)
    };
    let mut headers = vec![
        (ce::SPECVERSION, ce::SPECVERSION_1_0.to_owned()),
        (ce::ID, id),
        (ce::SOURCE, format!("/plugins/{plugin}")),
        (ce::TYPE, format!("switchyard.plugin.{}", result.kind)),
        (ce::TIME, time.to_owned()),
        (ce::TEAMID, meta.team_id.clone()),
        (CAUSATION_ID, meta.id.clone()),
        (ce::CONTENT_TYPE, "application/json".to_owned()),
    ];
    if let Some(subject) = subject {
        headers.push((ce::SUBJECT, subject.to_owned()));
    }
    if !meta.is_default_installation() {
        headers.push((INSTALLATION_EXTENSION, meta.installation.clone()));
    }
    OutRecord {
        key: Some(meta.team_id.as_bytes().to_vec()),
        value: Some(serde_json::to_vec(&result.data).unwrap_or_else(|_| b"null".to_vec())),
        headers: headers
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Some(value.into_bytes())))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_keep_the_record_and_replace_our_headers() {
        let original = OutRecord {
            key: Some(b"acme".to_vec()),
            value: Some(b"{}".to_vec()),
            headers: vec![
                ("ce_id".into(), Some(b"e-1".to_vec())),
                ("switchyard_source".into(), Some(b"core.events/0/7".to_vec())),
            ],
        };
        let failure = Failure {
            reason: DeadReason::RetriesExhausted,
            detail: "the plugin answered 503 eight times".into(),
            attempts: 8,
            first_failure: Some("2026-11-22T10:00:00Z".into()),
            last_failure: Some("2026-11-22T10:10:00Z".into()),
        };
        let letter = dead_letter(&original, "sms-notify", "plugin.sms-notify.events/2/41", &failure);
        assert_eq!((letter.key, letter.value), (original.key, original.value));
        let header = |name: &str| {
            letter
                .headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8(v.clone().unwrap()).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(header("ce_id"), ["e-1"]);
        assert_eq!(header("switchyard_source"), ["plugin.sms-notify.events/2/41"]);
        assert_eq!(header("switchyard_error"), ["retries_exhausted"]);
        assert_eq!(header("switchyard_attempts"), ["8"]);
        assert_eq!(header("switchyard_last_failure"), ["2026-11-22T10:10:00Z"]);
    }

    #[test]
    fn a_result_of_a_named_installation_has_its_own_id_and_says_which() {
        let mut meta = EventMeta {
            id: "e-1".into(),
            source: "/forms".into(),
            event_type: "response.submitted".into(),
            time: None,
            subject: Some("f-1".into()),
            team_id: "acme".into(),
            installation: "default".into(),
            backfill: None,
        };
        let flagged = PluginResult {
            kind: "response.flagged".into(),
            subject: None,
            data: serde_json::json!({"rule": "r"}),
        };
        let names = |record: &OutRecord| {
            record
                .headers
                .iter()
                .map(|(name, value)| format!("{name}={}", String::from_utf8_lossy(value.as_deref().unwrap())))
                .collect::<Vec<_>>()
        };
        let default = result("rules", &meta, 0, &flagged, "2026-12-05T10:00:00Z");
        assert_eq!(
            names(&default),
            [
                "ce_specversion=1.0",
                "ce_id=e-1:rules:0",
                "ce_source=/plugins/rules",
                "ce_type=switchyard.plugin.response.flagged",
                "ce_time=2026-12-05T10:00:00Z",
                "ce_teamid=acme",
                "ce_causationid=e-1",
                "content-type=application/json",
                "ce_subject=f-1",
            ],
            "the default installation's result is as before installations existed"
        );
        meta.installation = "forms-bc".into();
        let named = names(&result("rules", &meta, 0, &flagged, "2026-12-05T10:00:00Z"));
        assert_eq!(named[1], "ce_id=e-1:rules/forms-bc:0");
        assert_eq!(named.last().unwrap(), "ce_installation=forms-bc");
    }
}
