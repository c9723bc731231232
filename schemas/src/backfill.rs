//! Backfills: a team's past events delivered to one installation of a plugin (`docs/contract.md`,
//! section 7.5).
//!
//! ```text
//!   registry ──► switchyard.backfills (Backfill, key = id) ──► registry (the API's list and states)
//!   registry ──► switchyard.enablements (Enablement.backfill = its Request: hold the installation) ──► router
//!   router   ──► switchyard.backfill-progress (Progress, key = <id>/<partition>), in its transactions
//! ```
//!
//! The registry writes the request, then the installation's enablement carrying it, which holds live routing
//! of the installation (the router reads the request from the enablement alone, so both arrive at once). The
//! router owner of the team's `core.events` partition writes the history (copies carrying [`HEADER`]), then
//! the events that arrived meanwhile, then routes the installation live again; its [`Progress`] record
//! commits in the same transaction as those copies and its input offsets.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::control::check_event_types;
use crate::ids::DEFAULT_INSTALLATION;
use crate::times::epoch_ms;

/// The header on a copy of a historical event: the backfill's id. Live copies, including those a backfill
/// writes after the installation's hold point, have none.
pub const HEADER: &str = "switchyard_backfill";
/// Longest backfill id.
pub const ID_MAX_LEN: usize = 64;
/// Highest `rate` a request may ask for, in events per second.
pub const MAX_RATE: u32 = 1_000_000;

/// What a backfill delivers: the `backfill` field of the installation's enablement while it runs, and part
/// of its `switchyard.backfills` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The backfill's id (a UUID; [`check_id`]).
    pub id: String,
    /// RFC 3339: history starts at the first record of the team's partition whose timestamp is at or after
    /// it (Kafka's `offsetsForTimes`).
    pub since: String,
    /// RFC 3339: history ends before the first record at or after it; absent = where the router held the
    /// installation (its activation point for a new installation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Only these event types (each also subscribed by the installation); absent = the installation's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    /// Most copies written per second by this backfill; absent = the router's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// The team asked to stop: history stops where it is, live routing resumes without a gap.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cancel_requested: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl Request {
    /// Checks the fields' bounds: the id, the times (`until` after `since`), the types and the rate.
    pub fn check(&self) -> Result<(), BackfillError> {
        check_id(&self.id).map_err(|message| BackfillError::Field { field: "id", message })?;
        let since = parse_time("since", &self.since)?;
        if let Some(until) = &self.until
            && parse_time("until", until)? <= since
        {
            return Err(BackfillError::Field {
                field: "until",
                message: "must be after since".into(),
            });
        }
        if let Some(types) = &self.event_types {
            check_event_types("event_types", types).map_err(|e| BackfillError::Field {
                field: "event_types",
                message: e.to_string(),
            })?;
        }
        if let Some(rate) = self.rate
            && !(1..=MAX_RATE).contains(&rate)
        {
            return Err(BackfillError::Field {
                field: "rate",
                message: format!("{rate} is outside 1-{MAX_RATE} events per second"),
            });
        }
        Ok(())
    }

    /// `since` in milliseconds since the Unix epoch (0 if it does not parse: [`Request::check`] checks it).
    pub fn since_ms(&self) -> i64 {
        epoch_ms(&self.since).unwrap_or(0)
    }

    /// `until` in milliseconds since the Unix epoch, if set.
    pub fn until_ms(&self) -> Option<i64> {
        self.until.as_deref().and_then(epoch_ms)
    }

    /// Whether the request keeps events of `event_type` (its `event_types`, when set).
    pub fn keeps_type(&self, event_type: &str) -> bool {
        match self.event_types.as_deref() {
            Some(types) if !types.is_empty() => types.iter().any(|t| t == event_type),
            _ => true,
        }
    }
}

/// A backfill as the registry keeps it: the value of a `switchyard.backfills` record keyed by its id.
/// Written by the registry only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    /// Team id.
    pub team_id: String,
    /// Plugin id.
    pub plugin_id: String,
    /// Installation id; absent = [`DEFAULT_INSTALLATION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
    /// The request.
    #[serde(flatten)]
    pub request: Request,
    /// RFC 3339 time of the request.
    pub requested_at: String,
    /// RFC 3339 time of the last change (the request or its cancellation).
    pub updated_at: String,
}

impl Backfill {
    /// Parses and checks a `switchyard.backfills` value against its key.
    pub fn parse(key: &[u8], value: &[u8]) -> Result<Self, BackfillError> {
        let key = std::str::from_utf8(key).map_err(|_| BackfillError::Key("is not UTF-8".into()))?;
        check_id(key).map_err(BackfillError::Key)?;
        let backfill: Backfill =
            serde_json::from_slice(value).map_err(|e| BackfillError::Json(e.to_string()))?;
        if backfill.request.id != key {
            return Err(BackfillError::Field {
                field: "id",
                message: format!("{:?} differs from the key {key:?}", backfill.request.id),
            });
        }
        backfill.request.check()?;
        parse_time("requested_at", &backfill.requested_at)?;
        parse_time("updated_at", &backfill.updated_at)?;
        Ok(backfill)
    }

    /// The installation id: the field, or [`DEFAULT_INSTALLATION`] when absent.
    pub fn installation(&self) -> &str {
        self.installation.as_deref().unwrap_or(DEFAULT_INSTALLATION)
    }
}

/// Where a backfill stands on one partition of `core.events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Writing history, or the events that arrived since the hold point.
    Running,
    /// History written to `until`.
    Done,
    /// Stopped by the team at `stopped_at`; the events since the hold point are still written.
    Cancelled,
    /// Stopped by an error at `stopped_at` (for example, retention deleted the next record); the events
    /// since the hold point are still written.
    Failed,
}

impl State {
    /// The name in records and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Done => "done",
            State::Cancelled => "cancelled",
            State::Failed => "failed",
        }
    }
}

/// A backfill's progress on one partition of `core.events`: the value of a `switchyard.backfill-progress`
/// record keyed by [`progress_key`]. Written by the router in the transaction that writes the copies it
/// counts, so a committed record and the committed copies always agree.
///
/// Offsets are of that `core.events` partition: the backfill reads `[from, until)` (copies carry
/// [`HEADER`]), skips `[until, hold)` if `until` is below `hold` (those events reached the installation
/// live), and reads `[hold, live_from)` without the header; from `live_from` on the router routes the
/// installation live again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The backfill's id.
    pub backfill: String,
    /// The `core.events` partition.
    pub partition: i32,
    /// First offset of history.
    pub from: i64,
    /// End of history (exclusive).
    pub until: i64,
    /// Where the router stopped routing the installation live.
    pub hold: i64,
    /// The next offset the backfill reads.
    pub next: i64,
    /// Where live routing of the installation resumed; absent while the backfill still writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_from: Option<i64>,
    /// The history's state.
    pub state: State,
    /// Where history stopped, for `cancelled` and `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<i64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Records of the partition read (any team).
    pub scanned: u64,
    /// Events the installation's routing rule kept (and the request's `event_types`).
    pub matched: u64,
    /// Copies written to the plugin's topic.
    pub written: u64,
    /// Copies written to the dead-letter topic instead (the plugin's topic is missing or refused them).
    pub dead_lettered: u64,
    /// RFC 3339 time the router started it.
    pub started_at: String,
    /// RFC 3339 time of this record.
    pub updated_at: String,
}

impl Progress {
    /// Parses and checks a `switchyard.backfill-progress` value against its key.
    pub fn parse(key: &[u8], value: &[u8]) -> Result<Self, BackfillError> {
        let (backfill, partition) = parse_progress_key(key)?;
        let progress: Progress =
            serde_json::from_slice(value).map_err(|e| BackfillError::Json(e.to_string()))?;
        if progress.backfill != backfill || progress.partition != partition {
            return Err(BackfillError::Field {
                field: "backfill",
                message: format!(
                    "{}/{} differs from the key {backfill}/{partition}",
                    progress.backfill, progress.partition
                ),
            });
        }
        Ok(progress)
    }

    /// Whether the router routes the installation live again on this partition.
    pub fn is_live(&self) -> bool {
        self.live_from.is_some()
    }
}

/// The key of a progress record: `<backfill id>/<partition>`.
pub fn progress_key(backfill: &str, partition: i32) -> String {
    format!("{backfill}/{partition}")
}

/// Parses a progress key into the backfill id and the partition.
pub fn parse_progress_key(key: &[u8]) -> Result<(&str, i32), BackfillError> {
    let bad = |message: &str| BackfillError::Key(message.to_owned());
    let key = std::str::from_utf8(key).map_err(|_| bad("is not UTF-8"))?;
    let (id, partition) = key
        .rsplit_once('/')
        .ok_or_else(|| bad("is not <backfill>/<partition>"))?;
    check_id(id).map_err(BackfillError::Key)?;
    let partition: i32 = partition
        .parse()
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(|| bad("has no partition number"))?;
    Ok((id, partition))
}

/// Checks a backfill id: 1-64 chars of `[a-z0-9-]` (the registry writes UUIDs).
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > ID_MAX_LEN {
        return Err(format!("the backfill id must be 1-{ID_MAX_LEN} bytes long"));
    }
    match id
        .bytes()
        .position(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        Some(position) => Err(format!(
            "the backfill id has a character outside [a-z0-9-] at byte {position}"
        )),
        None => Ok(()),
    }
}

/// Why a backfill or progress record is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BackfillError {
    /// The key is not of the expected shape.
    #[error("bad key: {0}")]
    Key(String),
    /// The value is not the expected JSON.
    #[error("bad JSON: {0}")]
    Json(String),
    /// A field is out of its bounds.
    #[error("{field}: {message}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn parse_time(field: &'static str, value: &str) -> Result<OffsetDateTime, BackfillError> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|e| BackfillError::Field {
        field,
        message: format!("{value:?} is not RFC 3339: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0193a8f2-7c1e-7b4a-9d2e-5f6a7b8c9d0e";

    fn request() -> Backfill {
        Backfill {
            team_id: "acme".into(),
            plugin_id: "sheets-export".into(),
            installation: None,
            request: Request {
                id: ID.into(),
                since: "2026-11-01T00:00:00Z".into(),
                until: None,
                event_types: None,
                rate: None,
                cancel_requested: false,
            },
            requested_at: "2026-12-05T10:00:00Z".into(),
            updated_at: "2026-12-05T10:00:00Z".into(),
        }
    }

    #[test]
    fn a_request_writes_only_the_fields_it_sets_and_reads_back() {
        let json = serde_json::to_string(&request()).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"team_id":"acme","plugin_id":"sheets-export","id":"{ID}","since":"2026-11-01T00:00:00Z","requested_at":"2026-12-05T10:00:00Z","updated_at":"2026-12-05T10:00:00Z"}}"#
            )
        );
        let parsed = Backfill::parse(ID.as_bytes(), json.as_bytes()).unwrap();
        assert_eq!(parsed, request());
        assert_eq!(parsed.installation(), "default");
        assert_eq!(parsed.request.since_ms(), 1_793_491_200_000);
        assert!(parsed.request.keeps_type("response.updated"));

        let mut full = request();
        full.installation = Some("forms-bc".into());
        full.request.until = Some("2026-12-01T00:00:00Z".into());
        full.request.event_types = Some(vec!["response.submitted".into()]);
        full.request.rate = Some(500);
        full.request.cancel_requested = true;
        let json = serde_json::to_vec(&full).unwrap();
        let parsed = Backfill::parse(ID.as_bytes(), &json).unwrap();
        assert_eq!(parsed, full);
        assert!(!parsed.request.keeps_type("response.updated"));
        assert_eq!(parsed.request.until_ms(), Some(1_796_083_200_000));
    }

    #[test]
    fn bad_requests_name_their_field() {
        let field = |edit: fn(&mut Backfill)| {
            let mut b = request();
            edit(&mut b);
            match Backfill::parse(b.request.id.clone().as_bytes(), &serde_json::to_vec(&b).unwrap()) {
                Err(BackfillError::Field { field, .. }) => field,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(field(|b| b.request.since = "yesterday".into()), "since");
        assert_eq!(
            field(|b| b.request.until = Some("2026-10-01T00:00:00Z".into())),
            "until"
        );
        assert_eq!(field(|b| b.request.rate = Some(0)), "rate");
        assert_eq!(
            field(|b| b.request.event_types = Some(vec!["a b".into()])),
            "event_types"
        );
        let json = serde_json::to_vec(&request()).unwrap();
        assert!(matches!(
            Backfill::parse(b"other-id", &json),
            Err(BackfillError::Field { field: "id", .. })
        ));
        assert!(matches!(
            Backfill::parse(b"Bad_Id", &json),
            Err(BackfillError::Key(_))
        ));
        assert!(matches!(
            Backfill::parse(ID.as_bytes(), b"{}"),
            Err(BackfillError::Json(_))
        ));
    }

    #[test]
    fn progress_keys_and_records() {
        assert_eq!(progress_key(ID, 3), format!("{ID}/3"));
        assert_eq!(parse_progress_key(format!("{ID}/3").as_bytes()), Ok((ID, 3)));
        for bad in ["", ID, "x/-1", "x/y", "X/1"] {
            assert!(parse_progress_key(bad.as_bytes()).is_err(), "{bad}");
        }
        let progress = Progress {
            backfill: ID.into(),
            partition: 3,
            from: 10,
            until: 500,
            hold: 500,
            next: 120,
            live_from: None,
            state: State::Running,
            stopped_at: None,
            error: None,
            scanned: 110,
            matched: 40,
            written: 39,
            dead_lettered: 1,
            started_at: "2026-12-05T10:00:01Z".into(),
            updated_at: "2026-12-05T10:00:02Z".into(),
        };
        let json = serde_json::to_string(&progress).unwrap();
        assert!(json.contains(r#""state":"running""#) && !json.contains("live_from"));
        let key = progress_key(ID, 3);
        assert_eq!(
            Progress::parse(key.as_bytes(), json.as_bytes()).unwrap(),
            progress
        );
        assert!(Progress::parse(progress_key(ID, 4).as_bytes(), json.as_bytes()).is_err());
        assert!(!progress.is_live());
    }
}
