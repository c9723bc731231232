//! A backfill request as the API takes it: the body, its checks against the installation and the clock,
//! and the retention decision. Pure: the caller brings the installation's event types, the time and the
//! oldest timestamp the team's partition holds.
//!
//! ```text
//!   BackfillBody ─► check (every field error, pointers under the body's place) ─► Checked
//!   Checked + oldest record's timestamp + on_retention ─► retention ─► within · adjusted · refused
//!   Checked + id (+ adjusted since) ─► Request (the contract's, as the enablement carries it)
//! ```

use serde::{Deserialize, Serialize};
use switchyard_schemas::backfill::{MAX_RATE, Request};
use switchyard_schemas::times::epoch_ms;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::problem::FieldError;

/// What to do with a `since` older than the oldest event the team's partition of `core.events` still
/// holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRetention {
    /// Refuse the request (422), naming the earliest time available.
    #[default]
    Refuse,
    /// Start at the oldest event held instead, and say so in the answer's `warning`.
    Earliest,
}

/// The body of `POST .../backfills`, and the `backfill` field of the enablement and installation `PUT`s.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillBody {
    /// RFC 3339; not in the future.
    pub since: String,
    /// RFC 3339, after `since`; absent or `null` = the hold point.
    #[serde(default)]
    pub until: Option<String>,
    /// Only these of the installation's types; absent, `null` or empty = all of them.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Copies per second, 1-[`MAX_RATE`]; absent or `null` = the router's default. Signed and wide so that
    /// an out-of-range number is a field error rather than an unreadable body.
    #[serde(default)]
    pub rate: Option<i64>,
    /// Default [`OnRetention::Refuse`].
    #[serde(default)]
    pub on_retention: Option<OnRetention>,
}

/// A body whose fields passed [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// `since` in milliseconds since the Unix epoch.
    pub since_ms: i64,
    /// The retention policy.
    pub on_retention: OnRetention,
    body: BackfillBody,
}

/// Checks a body against the event types the installation subscribes to (its own `event_types`, or else
/// its plugin's) and the current time. Every error is returned, its pointer under `at` (`""` for a body
/// of its own, `"/backfill"` inside an installation's).
pub fn check(
    body: BackfillBody,
    subscribed: &[String],
    now_ms: i64,
    at: &str,
) -> Result<Checked, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut error = |field: String, detail: String| {
        errors.push(FieldError {
            pointer: format!("{at}/{field}"),
            detail,
        })
    };
    let since_ms = epoch_ms(&body.since);
    match since_ms {
        None => error("since".into(), not_rfc3339(&body.since)),
        Some(since) if since > now_ms => error(
            "since".into(),
            format!("{} is in the future; a backfill reads past events", body.since),
        ),
        Some(_) => {}
    }
    if let Some(until) = &body.until {
        match (epoch_ms(until), since_ms) {
            (None, _) => error("until".into(), not_rfc3339(until)),
            (Some(until_ms), Some(since)) if until_ms <= since => error(
                "until".into(),
                format!("{until} is not after since ({})", body.since),
            ),
            _ => {}
        }
    }
    for (index, event_type) in body.event_types.iter().flatten().enumerate() {
        if !subscribed.contains(event_type) {
            error(
                format!("event_types/{index}"),
                format!(
                    "{event_type:?} is not one of the installation's event types ({})",
                    subscribed.join(", ")
                ),
            );
        }
    }
    if let Some(rate) = body.rate
        && !(1..=i64::from(MAX_RATE)).contains(&rate)
    {
        error(
            "rate".into(),
            format!("{rate} is outside 1-{MAX_RATE} events per second"),
        );
    }
    match since_ms {
        Some(since_ms) if errors.is_empty() => Ok(Checked {
            since_ms,
            on_retention: body.on_retention.unwrap_or_default(),
            body,
        }),
        _ => Err(errors),
    }
}

fn not_rfc3339(value: &str) -> String {
    format!("{value:?} is not an RFC 3339 time (e.g. 2026-11-01T00:00:00Z)")
}

/// How a request's `since` stands against the oldest event the team's partition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retained {
    /// The partition is empty, or holds events from `since` on: the request stands.
    Within,
    /// `since` is older and the request asked for [`OnRetention::Earliest`]: it starts at this time instead.
    Adjusted(String),
    /// `since` is older and the request asked for [`OnRetention::Refuse`]: the earliest time available.
    Refused(String),
}

/// The retention decision, given the timestamp of the oldest record of the team's partition (`None`
/// when it holds none).
pub fn retention(checked: &Checked, earliest_ms: Option<i64>) -> Retained {
    match earliest_ms {
        Some(earliest) if checked.since_ms < earliest => {
            let earliest = rfc3339_ms(earliest);
            match checked.on_retention {
                OnRetention::Refuse => Retained::Refused(earliest),
                OnRetention::Earliest => Retained::Adjusted(earliest),
            }
        }
        _ => Retained::Within,
    }
}

/// The field error of a refused `since`.
pub fn refused(checked: &Checked, earliest: &str, at: &str) -> FieldError {
    FieldError {
        pointer: format!("{at}/since"),
        detail: format!(
            "{} is before the earliest event core.events still holds for the team ({earliest}); ask \
             for a later since, or for on_retention: earliest to start there",
            checked.body.since
        ),
    }
}

/// The contract's request: the body's fields, the new `id`, `since` moved up when retention said so, and
/// empty `event_types` left out.
pub fn request(id: String, checked: Checked, retained: &Retained) -> Request {
    let BackfillBody {
        since,
        until,
        event_types,
        rate,
        ..
    } = checked.body;
    Request {
        id,
        since: match retained {
            Retained::Adjusted(earliest) => earliest.clone(),
            Retained::Within | Retained::Refused(_) => since,
        },
        until,
        event_types: event_types.filter(|types| !types.is_empty()),
        // Checked to be within 1..=MAX_RATE.
        rate: rate.and_then(|rate| u32::try_from(rate).ok()),
        cancel_requested: false,
    }
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC.
pub fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z

    fn body(json: serde_json::Value) -> BackfillBody {
        serde_json::from_value(json).unwrap()
    }

    fn types() -> Vec<String> {
        vec!["response.submitted".into(), "response.updated".into()]
    }

    fn pointers(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.pointer.as_str()).collect()
    }

    #[test]
    fn the_body_refuses_unknown_fields_and_wrong_types() {
        assert_eq!(
            body(serde_json::json!({"since": "2026-11-01T00:00:00Z", "until": null, "rate": null})),
            BackfillBody {
                since: "2026-11-01T00:00:00Z".into(),
                until: None,
                event_types: None,
                rate: None,
                on_retention: None
            }
        );
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"since": "2026-11-01T00:00:00Z", "id": "x"}),
            serde_json::json!({"since": "2026-11-01T00:00:00Z", "cancel_requested": true}),
            serde_json::json!({"since": "2026-11-01T00:00:00Z", "rate": 1.5}),
            serde_json::json!({"since": "2026-11-01T00:00:00Z", "on_retention": "latest"}),
            serde_json::json!({"since": 3}),
        ] {
            assert!(
                serde_json::from_value::<BackfillBody>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_error_with_its_pointer() {
        let errors = check(
            body(serde_json::json!({"since": "last week", "until": "never",
                                    "event_types": ["response.submitted", "form.created"], "rate": 0})),
            &types(),
            NOW,
            "",
        )
        .unwrap_err();
        assert_eq!(pointers(&errors), ["/since", "/until", "/event_types/1", "/rate"]);
        let errors = check(
            body(serde_json::json!({"since": "2026-12-02T00:00:00Z", "rate": 1_000_001})),
            &types(),
            NOW,
            "/backfill",
        )
        .unwrap_err();
        assert_eq!(pointers(&errors), ["/backfill/since", "/backfill/rate"]);
        assert!(errors[0].detail.contains("in the future"), "{}", errors[0].detail);
        let errors = check(
            body(serde_json::json!({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00+00:00"})),
            &types(),
            NOW,
            "",
        )
        .unwrap_err();
        assert_eq!(pointers(&errors), ["/until"]);
        let errors = check(
            body(serde_json::json!({"since": "2026-11-02T00:00:00Z", "until": "2026-11-02T00:00:00Z"})),
            &types(),
            NOW,
            "",
        )
        .unwrap_err();
        assert_eq!(pointers(&errors), ["/until"], "until must be after since");
    }

    #[test]
    fn a_good_body_makes_the_contracts_request() {
        let checked = check(
            body(
                serde_json::json!({"since": "2026-11-01T00:00:00Z", "until": "2026-11-15T00:00:00Z",
                                    "event_types": [], "rate": 500}),
            ),
            &types(),
            NOW,
            "",
        )
        .unwrap();
        assert_eq!(checked.since_ms, 1_793_491_200_000);
        assert_eq!(checked.on_retention, OnRetention::Refuse);
        let request = request("b-1".into(), checked, &Retained::Within);
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"id": "b-1", "since": "2026-11-01T00:00:00Z",
                               "until": "2026-11-15T00:00:00Z", "rate": 500}),
            "empty event types are all of them, left out"
        );
        // A since of exactly now is not in the future.
        assert!(
            check(
                body(serde_json::json!({"since": rfc3339_ms(NOW)})),
                &types(),
                NOW,
                ""
            )
            .is_ok()
        );
    }

    #[test]
    fn retention_refuses_or_moves_since_up_to_the_oldest_event() {
        let checked = |policy: &str| {
            check(
                body(serde_json::json!({"since": "2026-11-01T00:00:00Z", "on_retention": policy})),
                &types(),
                NOW,
                "",
            )
            .unwrap()
        };
        let earliest = 1_793_577_600_500; // 2026-11-02T00:00:00.5Z
        assert_eq!(retention(&checked("refuse"), None), Retained::Within);
        assert_eq!(
            retention(&checked("refuse"), Some(1_793_491_200_000)),
            Retained::Within,
            "the oldest event at since exactly"
        );
        assert_eq!(
            retention(&checked("refuse"), Some(earliest)),
            Retained::Refused("2026-11-02T00:00:00.5Z".into())
        );
        let adjusted = retention(&checked("earliest"), Some(earliest));
        assert_eq!(adjusted, Retained::Adjusted("2026-11-02T00:00:00.5Z".into()));
        assert_eq!(
            request("b-1".into(), checked("earliest"), &adjusted).since,
            "2026-11-02T00:00:00.5Z"
        );
        let refusal = refused(&checked("refuse"), "2026-11-02T00:00:00.5Z", "");
        assert_eq!(refusal.pointer, "/since");
        assert!(
            refusal.detail.contains("2026-11-02T00:00:00.5Z"),
            "{}",
            refusal.detail
        );
    }
}
