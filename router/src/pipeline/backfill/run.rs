//! One backfill on one partition of `core.events`, as pure state: what it does with the next record it
//! reads, and what its progress record says. No Kafka here.
//!
//! ```text
//!   offsets:  from ········ until ·········· hold ··········· frontier ········
//!             │ history (copies carry the     │ the tail: live   │ live routing
//!             │ backfill's id)  [until, hold) │ events, written  │ of the
//!             │                 skipped: they │ late, no header  │ installation
//!             │                 went live     │                  │ resumes here
//! ```
//!
//! `hold` is where live routing stopped writing the installation's copies; `frontier` is the next offset
//! live routing will process on the partition. The backfill reads in order and hands over ("flips") when
//! the next record it reads is at or past the frontier, or it met the end of the partition: then every
//! record before the frontier was either written live (before `hold`) or by the backfill, and live
//! routing writes the installation's copies from the frontier on. Both write the same plugin partition
//! (key = team) from one producer, so per key, history precedes live.
//!
//! The state changes only inside the router's open transaction; [`Run::committed`] and
//! [`Run::rewound`] follow the transaction's fate.

use std::sync::Arc;

use switchyard_schemas::backfill::{Progress, Request, State};

use crate::tables::routes::Hold;

/// What the backfill does with the next record it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Hand the installation back to live routing from the frontier; the record is not the backfill's.
    Flip,
    /// Read past it: live routing wrote its copy before the hold (or history was cut short).
    Skip,
    /// Plan the installation's copy; `history`: it carries the backfill's id.
    Deliver {
        /// A historical copy (before `until`).
        history: bool,
    },
}

/// One backfill on one partition.
#[derive(Debug, Clone)]
pub struct Run {
    /// The held installation.
    pub hold: Hold,
    progress: Progress,
    /// The progress as of the last committed transaction; `None` before the first.
    committed: Option<Progress>,
    /// Changed since the last progress record was written.
    changed: bool,
}

impl Run {
    /// A new run of `hold` on `partition`, holding from offset `at`: history `[from, until)`, where `until`
    /// is taken no later than the hold point and `from` no later than `until`.
    pub fn start(hold: Hold, partition: i32, from: i64, until: i64, at: i64, now: &str) -> Self {
        let until = until.min(at);
        let from = from.min(until);
        let progress = Progress {
            backfill: hold.backfill.id.clone(),
            partition,
            from,
            until,
            hold: at,
            next: if from < until { from } else { at },
            live_from: None,
            state: State::Running,
            stopped_at: None,
            error: None,
            scanned: 0,
            matched: 0,
            written: 0,
            dead_lettered: 0,
            started_at: now.to_owned(),
            updated_at: now.to_owned(),
        };
        Self {
            hold,
            progress,
            committed: None,
            changed: true,
        }
    }

    /// A run as its last committed progress record left it.
    pub fn resume(hold: Hold, progress: Progress) -> Self {
        Self {
            hold,
            committed: Some(progress.clone()),
            progress,
            changed: false,
        }
    }

    /// Where it stands.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The request.
    pub fn request(&self) -> &Arc<Request> {
        &self.hold.backfill
    }

    /// The next offset to read.
    pub fn next(&self) -> i64 {
        self.progress.next
    }

    /// Whether live routing has the installation back.
    pub fn is_live(&self) -> bool {
        self.progress.live_from.is_some()
    }

    /// What to do with the record read at `offset`, when live routing's next offset is `frontier`.
    pub fn step(&self, offset: i64, frontier: i64) -> Step {
        let p = &self.progress;
        if offset >= frontier {
            Step::Flip
        } else if offset < p.until && p.state == State::Running {
            Step::Deliver { history: true }
        } else if offset < p.hold {
            Step::Skip
        } else {
            Step::Deliver { history: false }
        }
    }

    /// The record at `offset` was read (and planned, when it was the backfill's).
    pub fn read(&mut self, offset: i64) {
        self.progress.scanned += 1;
        self.progress.next = offset + 1;
        self.changed = true;
    }

    /// The copies a read record's plan wrote: whether the installation's rule kept it, and how many copies
    /// went to the plugin's topic and to the dead-letter topic.
    pub fn count(&mut self, matched: bool, written: u64, dead_lettered: u64) {
        self.progress.matched += u64::from(matched);
        self.progress.written += written;
        self.progress.dead_lettered += dead_lettered;
        self.changed |= matched;
    }

    /// Hands the installation back to live routing from `frontier`; history is done unless it was cut.
    pub fn flip(&mut self, frontier: i64, now: &str) {
        let p = &mut self.progress;
        p.live_from = Some(frontier);
        p.next = p.next.max(frontier);
        if p.state == State::Running {
            p.state = State::Done;
        }
        p.updated_at = now.to_owned();
        self.changed = true;
    }

    /// Cuts history short (`Cancelled` by the team, or `Failed` with `error`): nothing more of it is
    /// written; the tail from the hold point still is. Returns the offset to read next when it moves.
    pub fn stop(&mut self, state: State, error: Option<String>, now: &str) -> Option<i64> {
        let p = &mut self.progress;
        if p.state != State::Running || p.live_from.is_some() {
            return None;
        }
        p.state = state;
        p.stopped_at = Some(p.next.min(p.until));
        p.error = error;
        p.updated_at = now.to_owned();
        self.changed = true;
        (p.next < p.hold).then(|| {
            p.next = p.hold;
            p.hold
        })
    }

    /// The progress record to write into the open transaction, if anything changed since the last one
    /// (stamped `now`).
    pub fn take_record(&mut self, now: &str) -> Option<&Progress> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        self.progress.updated_at = now.to_owned();
        Some(&self.progress)
    }

    /// The transaction holding its last progress record committed.
    pub fn committed(&mut self) {
        if self.committed.as_ref() != Some(&self.progress) {
            self.committed = Some(self.progress.clone());
        }
    }

    /// The transaction was aborted: back to the last committed progress. `false`: the run never
    /// committed, and is gone (it starts again when live routing meets the hold again).
    pub fn rewound(&mut self) -> bool {
        match &self.committed {
            Some(committed) => {
                self.progress = committed.clone();
                self.changed = false;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold() -> Hold {
        Hold {
            team: Arc::from("acme"),
            plugin: Arc::from("sheets"),
            installation: Arc::from("default"),
            backfill: Arc::new(Request {
                id: "b-1".into(),
                since: "2026-11-01T00:00:00Z".into(),
                until: None,
                event_types: None,
                rate: None,
                cancel_requested: false,
            }),
        }
    }

    const NOW: &str = "2026-12-05T10:00:00Z";

    #[test]
    fn history_then_the_tail_then_live_routing() {
        // History [10, 50) by default up to the hold point 50.
        let mut run = Run::start(hold(), 3, 10, i64::MAX, 50, NOW);
        assert_eq!((run.next(), run.progress().until), (10, 50));
        assert_eq!(run.step(10, 60), Step::Deliver { history: true });
        assert_eq!(run.step(49, 60), Step::Deliver { history: true });
        assert_eq!(run.step(50, 60), Step::Deliver { history: false }, "the tail");
        assert_eq!(run.step(60, 60), Step::Flip, "live routing's next record");
        assert_eq!(run.step(70, 60), Step::Flip);
        run.read(10);
        run.count(true, 1, 0);
        run.read(11);
        run.count(false, 0, 0);
        assert_eq!(
            (
                run.progress().scanned,
                run.progress().matched,
                run.progress().written
            ),
            (2, 1, 1)
        );
        run.flip(60, NOW);
        assert!(run.is_live());
        assert_eq!(
            (run.progress().state, run.progress().live_from),
            (State::Done, Some(60))
        );
    }

    #[test]
    fn an_explicit_until_skips_what_went_live_and_bounds_are_clamped() {
        let run = Run::start(hold(), 0, 10, 30, 50, NOW);
        assert_eq!(run.step(29, 99), Step::Deliver { history: true });
        assert_eq!(run.step(30, 99), Step::Skip, "reached the installation live");
        assert_eq!(run.step(50, 99), Step::Deliver { history: false });
        // until after the hold point is taken as the hold point; since after until leaves no history.
        let run = Run::start(hold(), 0, 10, 80, 50, NOW);
        assert_eq!(run.progress().until, 50);
        let run = Run::start(hold(), 0, 70, 80, 50, NOW);
        assert_eq!(
            (run.progress().from, run.progress().until, run.next()),
            (50, 50, 50)
        );
    }

    #[test]
    fn a_cut_stops_history_where_it_is_and_keeps_the_tail() {
        let mut run = Run::start(hold(), 0, 10, i64::MAX, 50, NOW);
        run.read(10);
        run.read(11);
        assert_eq!(
            run.stop(State::Cancelled, None, NOW),
            Some(50),
            "jump to the tail"
        );
        let p = run.progress();
        assert_eq!((p.state, p.stopped_at, p.next), (State::Cancelled, Some(12), 50));
        assert_eq!(run.step(50, 99), Step::Deliver { history: false });
        assert_eq!(
            run.step(20, 99),
            Step::Skip,
            "history after the cut is never written"
        );
        assert_eq!(run.stop(State::Failed, Some("x".into()), NOW), None, "cut once");
        run.flip(99, NOW);
        assert_eq!(
            run.progress().state,
            State::Cancelled,
            "a flip keeps the cut's state"
        );
        // A cut in the tail moves nothing.
        let mut run = Run::start(hold(), 0, 10, i64::MAX, 50, NOW);
        run.read(55);
        assert_eq!(run.stop(State::Failed, Some("gone".into()), NOW), None);
        assert_eq!(run.progress().stopped_at, Some(50));
    }

    #[test]
    fn state_follows_the_transaction() {
        let mut run = Run::start(hold(), 0, 10, i64::MAX, 50, NOW);
        assert!(run.take_record(NOW).is_some(), "a new run writes its record");
        assert!(run.take_record(NOW).is_none(), "nothing changed since");
        assert!(!run.clone().rewound(), "never committed: gone with the abort");
        run.committed();
        run.read(10);
        run.count(true, 1, 0);
        assert_eq!(run.take_record(NOW).map(|p| p.next), Some(11));
        assert!(run.rewound());
        assert_eq!(
            (run.next(), run.progress().written),
            (10, 0),
            "back to the committed record"
        );
        let resumed = Run::resume(hold(), run.progress().clone());
        assert_eq!(resumed.next(), 10);
    }
}
