//! The filter step of routing: which of an event's routed installations its filters keep.
//!
//! Most installations have no filter, and most events meet none: then this step costs one scan of the
//! targets. When some target has a filter, the planner projects the event's data once, onto the union of
//! the paths those filters read ([`data_paths`], `switchyard_schemas::payload::project`), the attributes
//! are bound once, and each filter is evaluated on the shared bindings. A filter's verdict other than a
//! match drops that installation's copy only; it is counted by verdict, and never stops the event or the
//! pipeline (contract section 8).

use serde_json::Value;
use switchyard_filter::{Attributes, Bindings, Verdict};
use switchyard_schemas::Rejection;
use switchyard_schemas::envelope::{self, Envelope};
use switchyard_schemas::projection::DataPath;

use crate::tables::routes::Target;

/// How many of one event's filters gave each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterTally {
    /// The filter was true: the copy is written.
    pub matched: u32,
    /// The filter was false.
    pub no_match: u32,
    /// The filter read an attribute or data path the event does not have.
    pub missing: u32,
    /// The evaluation failed (a type error, say, or data that does not decode).
    pub error: u32,
}

impl FilterTally {
    /// The counts with their metric labels (`result` of `switchyard_router_filter_evaluations_total`).
    pub fn labelled(&self) -> [(&'static str, u32); 4] {
        [
            ("match", self.matched),
            ("no_match", self.no_match),
            ("missing", self.missing),
            ("error", self.error),
        ]
    }

    fn note(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Match => self.matched += 1,
            Verdict::NoMatch => self.no_match += 1,
            Verdict::Missing(_) => self.missing += 1,
            Verdict::Error(_) => self.error += 1,
        }
    }
}

/// The CloudEvents attributes a filter reads as `type`, `subject` and so on rather than in `extensions`.
const CORE_HEADERS: [&str; 8] = [
    envelope::SPECVERSION,
    envelope::ID,
    envelope::SOURCE,
    envelope::TYPE,
    envelope::TIME,
    envelope::SUBJECT,
    envelope::TEAMID,
    envelope::CONTENT_TYPE,
];

/// The distinct data paths the filters of `targets` read, sorted; empty when none reads data.
pub fn data_paths(targets: &[Target]) -> Vec<&DataPath> {
    let mut paths: Vec<&DataPath> = targets
        .iter()
        .filter_map(|target| target.filter.as_deref())
        .flat_map(|filter| filter.data_paths())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// Drops from `targets` the installations whose filter does not match the event; returns the verdicts.
/// `data` is the event's data projected onto [`data_paths`] (`None` when no filter reads data; an error
/// when it does not decode, which every filter reading it then reports as its verdict).
pub fn retain_matching<'h, H>(
    envelope: &Envelope<'_>,
    headers: H,
    data: Option<Result<Value, Rejection>>,
    targets: &mut Vec<Target>,
) -> FilterTally
where
    H: IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
{
    let mut tally = FilterTally::default();
    if targets.iter().all(|target| target.filter.is_none()) {
        return tally;
    }
    let filters = || targets.iter().filter_map(|target| target.filter.as_deref());
    let data = data.unwrap_or(Ok(Value::Null));
    let extensions: Vec<(&str, &str)> = if filters().any(|filter| filter.reads_extensions()) {
        extension_headers(headers)
    } else {
        Vec::new()
    };
    let attributes = Attributes {
        id: envelope.id,
        source: envelope.source,
        event_type: envelope.event_type,
        subject: envelope.subject,
        time: envelope.time,
        team_id: envelope.team_id,
        extensions: &extensions,
    };
    // Data that does not decode (payload validation is off, or a newer contract) fails every filter that
    // reads it: none is evaluated on data it cannot see. Filters of attributes alone still run.
    let (data, unreadable) = match data {
        Ok(data) => (data, None),
        Err(rejection) => (Value::Null, Some(rejection.detail)),
    };
    let bindings = Bindings::new(&attributes, &data);
    targets.retain(|target| {
        let Some(filter) = &target.filter else {
            return true;
        };
        let verdict = match &unreadable {
            Some(detail) if filter.reads_data() => Verdict::Error(detail.clone()),
            _ => filter.evaluate(&bindings),
        };
        tally.note(&verdict);
        if let Verdict::Error(error) = &verdict {
            tracing::debug!(%error, plugin = %target.plugin.id, installation = target.installation(), "a filter failed");
        }
        verdict == Verdict::Match
    });
    tally
}

/// Every `ce_<name>` header but the contract's core attributes, as `(name, value)`, for `extensions`.
/// Headers whose value is absent or not UTF-8 are left out.
fn extension_headers<'h>(
    headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
) -> Vec<(&'h str, &'h str)> {
    headers
        .into_iter()
        .filter(|(name, _)| !CORE_HEADERS.contains(name))
        .filter_map(|(name, value)| {
            let name = name.strip_prefix("ce_")?;
            Some((name, std::str::from_utf8(value?).ok()?))
        })
        .collect()
}
