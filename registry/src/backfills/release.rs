//! Letting go of an installation once its backfill is handed over. Pure; the loop that applies it every
//! 500 ms is in [`crate::app`].
//!
//! ```text
//!   enablement carrying backfill B ──┐
//!   progress of B (reported) ────────┴─► live_from set? ─► the enablement without `backfill`, new updated_at
//! ```
//!
//! Until the registry clears it, the enablement keeps its `backfill` field: no new backfill can be
//! requested, and the router keeps the backfill's state. Clearing it is idempotent, so every replica may do
//! it.

use switchyard_schemas::backfill::Progress;
use switchyard_schemas::control::Enablement;

use super::view::reported;

/// The enablement to write instead of `enablement`, if it carries a backfill whose reported progress (of
/// `progress`, that backfill's records) has `live_from`: the same installation without `backfill`, changed
/// at `updated_at`.
pub fn released(enablement: &Enablement, progress: &[Progress], updated_at: String) -> Option<Enablement> {
    let request = enablement.backfill.as_ref()?;
    let handed_over = reported(progress).is_some_and(|p| p.backfill == request.id && p.is_live());
    handed_over.then(|| Enablement {
        backfill: None,
        updated_at,
        ..enablement.clone()
    })
}

#[cfg(test)]
mod tests {
    use switchyard_schemas::backfill::{Request, State};

    use super::*;

    const ID: &str = "0193a8f2-7c1e-7b4a-9d2e-5f6a7b8c9d0e";

    fn held() -> Enablement {
        Enablement::parse(
            b"acme/sheets-export/forms-bc",
            format!(
                r#"{{"team_id":"acme","plugin_id":"sheets-export","installation":"forms-bc","enabled":true,
                    "form_ids":["f-b"],"filter":"true","backfill":{{"id":"{ID}","since":"2026-11-01T00:00:00Z"}},
                    "updated_at":"2026-12-05T10:00:00Z"}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn progress(backfill: &str, live_from: Option<i64>) -> Progress {
        Progress {
            backfill: backfill.into(),
            partition: 2,
            from: 0,
            until: 10,
            hold: 10,
            next: 12,
            live_from,
            state: if live_from.is_some() {
                State::Done
            } else {
                State::Running
            },
            stopped_at: None,
            error: None,
            scanned: 12,
            matched: 3,
            written: 3,
            dead_lettered: 0,
            started_at: "2026-12-05T10:00:01Z".into(),
            updated_at: "2026-12-05T10:00:02Z".into(),
        }
    }

    #[test]
    fn an_installation_is_let_go_once_its_backfill_is_live_and_not_before() {
        let let_go = released(&held(), &[progress(ID, Some(12))], "2026-12-05T10:00:03Z".into()).unwrap();
        assert_eq!(
            serde_json::to_string(&let_go).unwrap(),
            r#"{"team_id":"acme","plugin_id":"sheets-export","installation":"forms-bc","enabled":true,"form_ids":["f-b"],"filter":"true","updated_at":"2026-12-05T10:00:03Z"}"#,
            "every other field kept"
        );
        let now = || "2026-12-05T10:00:03Z".to_owned();
        assert_eq!(released(&held(), &[progress(ID, None)], now()), None);
        assert_eq!(released(&held(), &[], now()), None);
        assert_eq!(
            released(&held(), &[progress("another-backfill", Some(12))], now()),
            None
        );
        let mut idle = held();
        idle.backfill = None;
        assert_eq!(released(&idle, &[progress(ID, Some(12))], now()), None);
        // A cancelled one is let go the same way.
        let mut cancelled = held();
        cancelled.backfill = Some(Request {
            cancel_requested: true,
            ..cancelled.backfill.unwrap()
        });
        assert!(released(&cancelled, &[progress(ID, Some(5))], now()).is_some());
    }
}
