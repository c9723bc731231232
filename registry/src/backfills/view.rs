//! A backfill as the API shows it: its record, where the router stands ([`Progress`]), the state derived
//! from both and an estimate of the time left. Pure.
//!
//! ```text
//!   progress of the backfill?  no  ─► pending (cancelled: cancel requested and the installation let go)
//!        │ yes (the lowest partition's)
//!        ├─ live_from absent  ─► running (+ eta_seconds while history remains)
//!        └─ live_from set     ─► the progress state: done · cancelled · failed
//! ```

use serde::{Deserialize, Serialize};
use switchyard_schemas::backfill::{self, Backfill, Progress};
use switchyard_schemas::times::epoch_ms;

/// Where a backfill stands, for the API and the `switchyard_registry_backfills` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillState {
    /// Requested; the router has not recorded progress yet.
    Pending,
    /// The router writes history, or the events since the hold point.
    Running,
    /// History written to its end; the installation is routed live again.
    Done,
    /// Stopped at the team's request; the installation is routed live again (or never was held).
    Cancelled,
    /// Stopped by an error (the progress says which); the installation is routed live again.
    Failed,
}

impl BackfillState {
    /// Every state, in the gauge's order.
    pub const ALL: [BackfillState; 5] = [
        BackfillState::Pending,
        BackfillState::Running,
        BackfillState::Done,
        BackfillState::Cancelled,
        BackfillState::Failed,
    ];

    /// The name in the API and the gauge's label.
    pub fn as_str(self) -> &'static str {
        match self {
            BackfillState::Pending => "pending",
            BackfillState::Running => "running",
            BackfillState::Done => "done",
            BackfillState::Cancelled => "cancelled",
            BackfillState::Failed => "failed",
        }
    }

    /// Pending or running: a cancel can still take effect.
    pub fn is_active(self) -> bool {
        matches!(self, BackfillState::Pending | BackfillState::Running)
    }
}

/// Why the answer to a request differs from the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// `since_before_retention`.
    pub code: String,
    /// The `since` stored instead of the requested one: the oldest event of the team's partition.
    pub since_adjusted_to: String,
}

impl Warning {
    /// `since` was older than retention; the backfill starts at `earliest`.
    pub fn since_before_retention(earliest: String) -> Self {
        Self {
            code: "since_before_retention".into(),
            since_adjusted_to: earliest,
        }
    }
}

/// The router's progress record without its key fields; offsets are of the `core.events` partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressView {
    /// The `core.events` partition.
    pub partition: i32,
    /// First offset of history.
    pub from: i64,
    /// End of history (exclusive).
    pub until: i64,
    /// The hold point.
    pub hold: i64,
    /// The next offset read.
    pub next: i64,
    /// Where live routing resumed; absent while the backfill writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_from: Option<i64>,
    /// Where history stopped, for `cancelled` and `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<i64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Records read, any team's.
    pub scanned: u64,
    /// Events the installation's routing rule (and the request's types) kept.
    pub matched: u64,
    /// Copies written.
    pub written: u64,
    /// Copies dead-lettered instead.
    pub dead_lettered: u64,
    /// RFC 3339 time the router started.
    pub started_at: String,
    /// RFC 3339 time of the progress record.
    pub updated_at: String,
}

impl From<&Progress> for ProgressView {
    fn from(p: &Progress) -> Self {
        Self {
            partition: p.partition,
            from: p.from,
            until: p.until,
            hold: p.hold,
            next: p.next,
            live_from: p.live_from,
            stopped_at: p.stopped_at,
            error: p.error.clone(),
            scanned: p.scanned,
            matched: p.matched,
            written: p.written,
            dead_lettered: p.dead_lettered,
            started_at: p.started_at.clone(),
            updated_at: p.updated_at.clone(),
        }
    }
}

/// One backfill as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillView {
    /// The backfill's id (a UUID v7).
    pub id: String,
    /// Team id.
    pub team_id: String,
    /// Plugin id.
    pub plugin_id: String,
    /// Installation id (`default` for the v1 enablement).
    pub installation: String,
    /// RFC 3339: history starts here (moved up to retention when the answer's `warning` says so).
    pub since: String,
    /// RFC 3339: history ends before it; absent = the hold point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Only these types; absent = the installation's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    /// Copies per second; absent = the router's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// Where it stands.
    pub state: BackfillState,
    /// RFC 3339 time of the request.
    pub requested_at: String,
    /// RFC 3339 time of the last change of the request (its cancellation).
    pub updated_at: String,
    /// The team asked to stop it.
    pub cancel_requested: bool,
    /// Only in the answer to the request that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<Warning>,
    /// The router's progress, once it has started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressView>,
    /// Estimated seconds until history is written, while it runs and its pace is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
}

/// The progress the API reports of a backfill: the lowest partition's (the router reads one partition per
/// backfill, the team's).
pub fn reported(progress: &[Progress]) -> Option<&Progress> {
    progress.iter().min_by_key(|p| p.partition)
}

/// The state of a backfill whose request is `request`, given its reported progress and whether its
/// installation's enablement still carries it (`held`).
pub fn state_of(request: &backfill::Request, progress: Option<&Progress>, held: bool) -> BackfillState {
    match progress {
        None if request.cancel_requested && !held => BackfillState::Cancelled,
        None => BackfillState::Pending,
        Some(p) if !p.is_live() => BackfillState::Running,
        Some(p) => match p.state {
            backfill::State::Running => BackfillState::Running,
            backfill::State::Done => BackfillState::Done,
            backfill::State::Cancelled => BackfillState::Cancelled,
            backfill::State::Failed => BackfillState::Failed,
        },
    }
}

/// Seconds until history is written, while it is (`live_from` absent and `next` below `until`): the
/// offsets left times the share of records that match so far (all of them before any was scanned),
/// divided by the copies written per second between `started_at` and `updated_at`. `None` when that pace
/// is not known (nothing written yet, no time elapsed).
pub fn eta_seconds(progress: &Progress) -> Option<u64> {
    if progress.is_live() || progress.next >= progress.until {
        return None;
    }
    let remaining = (progress.until - progress.next) as f64;
    let share = if progress.scanned == 0 {
        1.0
    } else {
        progress.matched as f64 / progress.scanned as f64
    };
    let elapsed_ms = epoch_ms(&progress.updated_at)? - epoch_ms(&progress.started_at)?;
    if elapsed_ms <= 0 || progress.written == 0 {
        return None;
    }
    let rate = progress.written as f64 / (elapsed_ms as f64 / 1000.0);
    Some((remaining * share / rate).ceil() as u64)
}

/// The view of a backfill: its record, its reported progress, whether its installation is still held by
/// it, and the warning of the answer that started it.
pub fn view(
    backfill: Backfill,
    progress: Option<&Progress>,
    held: bool,
    warning: Option<Warning>,
) -> BackfillView {
    let state = state_of(&backfill.request, progress, held);
    let installation = backfill.installation().to_owned();
    let request = backfill.request;
    BackfillView {
        id: request.id,
        team_id: backfill.team_id,
        plugin_id: backfill.plugin_id,
        installation,
        since: request.since,
        until: request.until,
        event_types: request.event_types,
        rate: request.rate,
        state,
        requested_at: backfill.requested_at,
        updated_at: backfill.updated_at,
        cancel_requested: request.cancel_requested,
        warning,
        progress: progress.map(ProgressView::from),
        eta_seconds: progress
            .filter(|_| state == BackfillState::Running)
            .and_then(eta_seconds),
    }
}

/// How many backfills are in each state, in [`BackfillState::ALL`]'s order.
pub fn count(states: impl IntoIterator<Item = BackfillState>) -> [(BackfillState, usize); 5] {
    let mut counts = BackfillState::ALL.map(|state| (state, 0));
    for state in states {
        if let Some((_, n)) = counts.iter_mut().find(|(s, _)| *s == state) {
            *n += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0193a8f2-7c1e-7b4a-9d2e-5f6a7b8c9d0e";

    fn record() -> Backfill {
        Backfill {
            team_id: "acme".into(),
            plugin_id: "sheets-export".into(),
            installation: Some("forms-bc".into()),
            request: backfill::Request {
                id: ID.into(),
                since: "2026-11-01T00:00:00Z".into(),
                until: None,
                event_types: None,
                rate: Some(500),
                cancel_requested: false,
            },
            requested_at: "2026-12-05T10:00:00Z".into(),
            updated_at: "2026-12-05T10:00:00Z".into(),
        }
    }

    fn progress(partition: i32) -> Progress {
        Progress {
            backfill: ID.into(),
            partition,
            from: 0,
            until: 6000,
            hold: 6000,
            next: 1000,
            live_from: None,
            state: backfill::State::Running,
            stopped_at: None,
            error: None,
            scanned: 1000,
            matched: 250,
            written: 250,
            dead_lettered: 0,
            started_at: "2026-12-05T10:00:01Z".into(),
            updated_at: "2026-12-05T10:00:11Z".into(),
        }
    }

    fn live(state: backfill::State) -> Progress {
        Progress {
            live_from: Some(6864),
            next: 6864,
            state,
            ..progress(2)
        }
    }

    #[test]
    fn states_from_the_request_the_progress_and_the_hold() {
        let mut request = record().request;
        assert_eq!(state_of(&request, None, true), BackfillState::Pending);
        assert_eq!(state_of(&request, None, false), BackfillState::Pending);
        request.cancel_requested = true;
        assert_eq!(state_of(&request, None, true), BackfillState::Pending);
        assert_eq!(state_of(&request, None, false), BackfillState::Cancelled);
        assert_eq!(
            state_of(&request, Some(&progress(2)), true),
            BackfillState::Running
        );
        for (progress_state, state) in [
            (backfill::State::Done, BackfillState::Done),
            (backfill::State::Cancelled, BackfillState::Cancelled),
            (backfill::State::Failed, BackfillState::Failed),
        ] {
            assert_eq!(state_of(&request, Some(&live(progress_state)), false), state);
            assert!(!state.is_active());
        }
        assert!(BackfillState::Pending.is_active() && BackfillState::Running.is_active());
    }

    #[test]
    fn the_lowest_partition_is_reported() {
        let several = [progress(1), progress(4)];
        assert_eq!(reported(&several).map(|p| p.partition), Some(1));
        assert_eq!(reported(&[]), None);
    }

    #[test]
    fn eta_from_the_remaining_offsets_the_match_share_and_the_pace() {
        // 5000 offsets left, a quarter match, 25 copies per second: 50 s.
        assert_eq!(eta_seconds(&progress(2)), Some(50));
        let unscanned = Progress {
            scanned: 0,
            matched: 0,
            ..progress(2)
        };
        // 5000 left, all counted, 25/s: 200 s.
        assert_eq!(eta_seconds(&unscanned), Some(200));
        for no_pace in [
            Progress {
                written: 0,
                ..progress(2)
            },
            Progress {
                updated_at: "2026-12-05T10:00:01Z".into(),
                ..progress(2)
            },
        ] {
            assert_eq!(eta_seconds(&no_pace), None);
        }
        let history_written = Progress {
            next: 6000,
            ..progress(2)
        };
        assert_eq!(eta_seconds(&history_written), None);
        assert_eq!(eta_seconds(&live(backfill::State::Done)), None);
    }

    #[test]
    fn a_view_of_each_stage() {
        let pending = view(record(), None, true, None);
        assert_eq!(
            serde_json::to_value(&pending).unwrap(),
            serde_json::json!({"id": ID, "team_id": "acme", "plugin_id": "sheets-export",
                "installation": "forms-bc", "since": "2026-11-01T00:00:00Z", "rate": 500,
                "state": "pending", "requested_at": "2026-12-05T10:00:00Z",
                "updated_at": "2026-12-05T10:00:00Z", "cancel_requested": false})
        );
        let mut default = record();
        default.installation = None;
        let warned = view(
            default,
            None,
            true,
            Some(Warning::since_before_retention("2026-11-02T00:00:00Z".into())),
        );
        assert_eq!(warned.installation, "default");
        assert_eq!(
            serde_json::to_value(&warned).unwrap()["warning"],
            serde_json::json!({"code": "since_before_retention",
                               "since_adjusted_to": "2026-11-02T00:00:00Z"})
        );
        let running = serde_json::to_value(view(record(), Some(&progress(2)), true, None)).unwrap();
        assert_eq!(running["state"], "running");
        assert_eq!(running["eta_seconds"], 50);
        assert_eq!(
            running["progress"],
            serde_json::json!({"partition": 2, "from": 0, "until": 6000, "hold": 6000, "next": 1000,
                "scanned": 1000, "matched": 250, "written": 250, "dead_lettered": 0,
                "started_at": "2026-12-05T10:00:01Z", "updated_at": "2026-12-05T10:00:11Z"})
        );
        let done =
            serde_json::to_value(view(record(), Some(&live(backfill::State::Done)), true, None)).unwrap();
        assert_eq!(
            (
                &done["state"],
                &done["progress"]["live_from"],
                done.get("eta_seconds")
            ),
            (&serde_json::json!("done"), &serde_json::json!(6864), None)
        );
    }

    #[test]
    fn counts_per_state_include_the_empty_ones() {
        let counts = count([
            BackfillState::Running,
            BackfillState::Done,
            BackfillState::Running,
        ]);
        assert_eq!(
            counts,
            [
                (BackfillState::Pending, 0),
                (BackfillState::Running, 2),
                (BackfillState::Done, 1),
                (BackfillState::Cancelled, 0),
                (BackfillState::Failed, 0)
            ]
        );
    }
}
