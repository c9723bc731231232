//! Which event runs next: per-team order, concurrency across teams, and the offsets that are safe to
//! commit. Pure bookkeeping, no I/O, so every rule is unit-tested here.
//!
//! ```text
//!  partition 0: o10(acme) o11(globex) o12(acme) o13(initech) ...
//!                 │          │          │ waits for o10 (same team)
//!                 ▼          ▼          ▼
//!  executing: acme#o10, globex#o11, initech#o13      (at most `max_in_flight` at once)
//!  commit position of partition 0 = lowest offset not yet done (o10 until it is done)
//! ```
//!
//! Events of one team (one key of one partition) run strictly one after the other. A team whose event is
//! slow or retrying holds only its own queue; other teams keep running until `max_buffered` records are
//! held, and then the consumer pauses (the caller's job) until completions make room. The commit position
//! of a partition never passes an event that is not done, so a crash redelivers it (at-least-once).

use std::collections::{BTreeSet, HashMap, VecDeque};

/// One team's queue within one partition.
type Key = (i32, String);

#[derive(Debug)]
struct TeamQueue<T> {
    waiting: VecDeque<(i64, T)>,
    running: bool,
}

#[derive(Debug, Default)]
struct Offsets {
    /// Offsets read but not done.
    outstanding: BTreeSet<i64>,
    /// The offset after the highest one read.
    next: Option<i64>,
    /// The last position handed out by [`Scheduler::commit_positions`].
    reported: Option<i64>,
}

impl Offsets {
    fn position(&self) -> Option<i64> {
        self.outstanding.first().copied().or(self.next)
    }
}

/// An event to start: its partition, offset, team and payload.
#[derive(Debug, PartialEq)]
pub struct Start<T> {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Team.
    pub team: String,
    /// The caller's record.
    pub item: T,
}

/// The scheduler.
#[derive(Debug)]
pub struct Scheduler<T> {
    max_in_flight: usize,
    max_buffered: usize,
    queues: HashMap<Key, TeamQueue<T>>,
    offsets: HashMap<i32, Offsets>,
    ready: VecDeque<Key>,
    executing: usize,
    buffered: usize,
}

impl<T> Scheduler<T> {
    /// At most `max_in_flight` events execute at once and `max_buffered` (at least `max_in_flight`) are held.
    pub fn new(max_in_flight: usize, max_buffered: usize) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Self {
            max_in_flight,
            max_buffered: max_buffered.max(max_in_flight),
            queues: HashMap::new(),
            offsets: HashMap::new(),
            ready: VecDeque::new(),
            executing: 0,
            buffered: 0,
        }
    }

    /// Adds a record read from `partition` at `offset` for `team`.
    pub fn push(&mut self, partition: i32, offset: i64, team: &str, item: T) {
        let offsets = self.offsets.entry(partition).or_default();
        offsets.outstanding.insert(offset);
        offsets.next = Some(offsets.next.map_or(offset + 1, |n| n.max(offset + 1)));
        let key = (partition, team.to_owned());
        let queue = self.queues.entry(key.clone()).or_insert_with(|| TeamQueue {
            waiting: VecDeque::new(),
            running: false,
        });
        let was_idle = !queue.running && queue.waiting.is_empty();
        queue.waiting.push_back((offset, item));
        self.buffered += 1;
        if was_idle {
            self.ready.push_back(key);
        }
    }

    /// Marks a record that needs no execution (it is done at once, e.g. a record without a valid key that
    /// was dead-lettered before scheduling) so the commit position can pass it.
    pub fn skip(&mut self, partition: i32, offset: i64) {
        let offsets = self.offsets.entry(partition).or_default();
        offsets.next = Some(offsets.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// The next event to execute, if a slot is free and some team's head is waiting.
    pub fn next_start(&mut self) -> Option<Start<T>> {
        if self.executing >= self.max_in_flight {
            return None;
        }
        while let Some(key) = self.ready.pop_front() {
            let Some(queue) = self.queues.get_mut(&key) else {
                continue;
            };
            let Some((offset, item)) = queue.waiting.pop_front() else {
                continue;
            };
            queue.running = true;
            self.executing += 1;
            return Some(Start {
                partition: key.0,
                offset,
                team: key.1,
                item,
            });
        }
        None
    }

    /// The event at `partition`/`offset` of `team` is done (delivered or dead-lettered); its team's next
    /// event becomes ready. Completions of partitions revoked meanwhile are ignored.
    pub fn complete(&mut self, partition: i32, offset: i64, team: &str) {
        let Some(offsets) = self.offsets.get_mut(&partition) else {
            return;
        };
        if !offsets.outstanding.remove(&offset) {
            return;
        }
        self.executing = self.executing.saturating_sub(1);
        self.buffered = self.buffered.saturating_sub(1);
        let key = (partition, team.to_owned());
        if let Some(queue) = self.queues.get_mut(&key) {
            queue.running = false;
            if queue.waiting.is_empty() {
                self.queues.remove(&key);
            } else {
                self.ready.push_back(key);
            }
        }
    }

    /// Partitions whose commit position moved since the last call, with that position (the offset of the
    /// next record to read after a restart).
    pub fn commit_positions(&mut self) -> Vec<(i32, i64)> {
        let mut moved = Vec::new();
        for (partition, offsets) in &mut self.offsets {
            if let Some(position) = offsets.position()
                && offsets.reported != Some(position)
            {
                offsets.reported = Some(position);
                moved.push((*partition, position));
            }
        }
        moved.sort_unstable();
        moved
    }

    /// Forgets revoked partitions: their queued records are dropped (the next owner reads them again) and
    /// completions of their running records will be ignored.
    pub fn revoke(&mut self, partitions: &[i32]) {
        for partition in partitions {
            if let Some(offsets) = self.offsets.remove(partition) {
                self.buffered = self.buffered.saturating_sub(offsets.outstanding.len());
            }
            let running = self
                .queues
                .iter()
                .filter(|((p, _), q)| p == partition && q.running)
                .count();
            self.executing = self.executing.saturating_sub(running);
            self.queues.retain(|(p, _), _| p != partition);
        }
        self.ready.retain(|(p, _)| !partitions.contains(p));
    }

    /// Whether as many records are held as allowed: stop reading until some complete.
    pub fn is_full(&self) -> bool {
        self.buffered >= self.max_buffered
    }

    /// Records held (waiting or executing).
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Records executing.
    pub fn executing(&self) -> usize {
        self.executing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(s: &mut Scheduler<&'static str>) -> Vec<(i64, String)> {
        std::iter::from_fn(|| s.next_start())
            .map(|start| (start.offset, start.team))
            .collect()
    }

    #[test]
    fn one_team_runs_in_order_and_teams_run_concurrently() {
        let mut s = Scheduler::new(10, 100);
        for (offset, team) in [(0, "acme"), (1, "globex"), (2, "acme"), (3, "initech")] {
            s.push(0, offset, team, "e");
        }
        assert_eq!(
            starts(&mut s),
            [(0, "acme".into()), (1, "globex".into()), (3, "initech".into())]
        );
        s.complete(0, 1, "globex");
        assert!(
            s.next_start().is_none(),
            "acme's second event waits for its first"
        );
        s.complete(0, 0, "acme");
        assert_eq!(starts(&mut s), [(2, "acme".into())]);
    }

    #[test]
    fn the_commit_position_never_passes_an_event_that_is_not_done() {
        let mut s = Scheduler::new(10, 100);
        for (offset, team) in [(5, "slow"), (6, "fast"), (7, "fast")] {
            s.push(0, offset, team, "e");
        }
        let _ = starts(&mut s);
        s.complete(0, 6, "fast");
        let _ = starts(&mut s);
        s.complete(0, 7, "fast");
        assert_eq!(s.commit_positions(), [(0, 5)]);
        assert_eq!(s.commit_positions(), [], "unchanged positions are not repeated");
        s.complete(0, 5, "slow");
        assert_eq!(s.commit_positions(), [(0, 8)]);
        s.skip(0, 8);
        assert_eq!(s.commit_positions(), [(0, 9)]);
    }

    #[test]
    fn in_flight_and_buffer_bounds() {
        let mut s = Scheduler::new(2, 3);
        for (offset, team) in [(0, "a"), (1, "b"), (2, "c")] {
            s.push(0, offset, team, "e");
        }
        assert_eq!(starts(&mut s).len(), 2, "two at once");
        assert!(s.is_full());
        s.complete(0, 0, "a");
        assert!(!s.is_full());
        assert_eq!(starts(&mut s), [(2, "c".into())]);
    }

    #[test]
    fn a_slow_team_does_not_hold_up_the_others() {
        let mut s = Scheduler::new(4, 1000);
        s.push(0, 0, "slow", "e");
        assert_eq!(starts(&mut s).len(), 1);
        let mut offset = 1;
        for _ in 0..50 {
            s.push(0, offset, "slow", "e");
            s.push(0, offset + 1, "busy", "e");
            offset += 2;
            let started = starts(&mut s);
            assert!(started.iter().all(|(_, team)| team == "busy"));
            for (o, team) in started {
                s.complete(0, o, &team);
            }
        }
        assert_eq!(s.executing(), 1, "only the slow team's head runs");
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut s = Scheduler::new(4, 10);
        s.push(0, 0, "a", "e");
        s.push(1, 0, "b", "e");
        s.push(1, 1, "b", "e");
        let _ = starts(&mut s);
        s.revoke(&[1]);
        assert_eq!((s.buffered(), s.executing()), (1, 1));
        s.complete(1, 0, "b");
        assert_eq!(
            (s.buffered(), s.executing()),
            (1, 1),
            "a late completion changes nothing"
        );
        assert_eq!(s.commit_positions(), [(0, 0)]);
    }
}
