//! How long routing stopped: the recovery time of a fault, from samples of the group's committed offsets
//! and the core partitions' ends.
//!
//! A partition *stalls* while it has input waiting (its committed offset is below its end) and the
//! committed offset does not move. A stall starts at the later of the partition's last advance and the
//! moment input began to wait, and ends at the first sample that sees the committed offset move. The
//! recovery time of a fault is the longest stall of any partition inside the fault's window; stalls outside
//! every window are the baseline, what routing looks like without a fault (the commit interval and the
//! sampling period).
//!
//! Pure: the caller passes the time of each sample, so the tests feed made-up timelines.

use std::time::Duration;

/// One partition's state between samples.
#[derive(Debug, Clone, Copy, Default)]
struct Partition {
    committed: i64,
    /// When the current stall began: the sample that last saw the partition advance, or the one that
    /// first saw input waiting. `None` while nothing waits.
    since: Option<Duration>,
}

/// The stall meter of one topic's partitions.
#[derive(Debug, Clone, Default)]
pub struct Stalls {
    partitions: Vec<Partition>,
    /// The longest stall seen since the last [`Stalls::take_longest`], ended or still going.
    longest: Stall,
}

/// One stall: how long, which partition, since when.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stall {
    /// How long the partition went without a commit while input waited.
    pub length: Duration,
    /// The partition.
    pub partition: usize,
    /// When it began (the time of the sample).
    pub since: Duration,
}

impl Stalls {
    /// Feeds one sample taken at `now`: per partition (by index) the committed offset and the end.
    /// A partition missing from `ends` has nothing waiting.
    pub fn observe(&mut self, now: Duration, committed: &[i64], ends: &[i64]) {
        if self.partitions.len() < committed.len() {
            self.partitions.resize(committed.len(), Partition::default());
        }
        for (index, state) in self.partitions.iter_mut().enumerate() {
            let at = committed.get(index).copied().unwrap_or(state.committed);
            let end = ends.get(index).copied().unwrap_or(0);
            if let Some(since) = state.since {
                let length = now.saturating_sub(since);
                if length > self.longest.length {
                    self.longest = Stall {
                        length,
                        partition: index,
                        since,
                    };
                }
            }
            let advanced = at > state.committed;
            state.committed = state.committed.max(at);
            state.since = if state.committed >= end {
                None
            } else if advanced {
                Some(now)
            } else {
                state.since.or(Some(now))
            };
        }
    }

    /// The partitions with input waiting, and their committed offsets: a fault's window stays open until
    /// each of them has moved on ([`Stalls::moved_past`]).
    pub fn waiting(&self) -> Vec<(usize, i64)> {
        self.partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.since.is_some())
            .map(|(index, p)| (index, p.committed))
            .collect()
    }

    /// Whether every partition of `marks` (from [`Stalls::waiting`]) has committed past its mark or has
    /// nothing waiting any more.
    pub fn moved_past(&self, marks: &[(usize, i64)]) -> bool {
        marks.iter().all(|&(index, mark)| {
            self.partitions
                .get(index)
                .is_none_or(|p| p.committed > mark || p.since.is_none())
        })
    }

    /// The longest stall seen since the last call, and starts afresh. A stall still going counts up to the
    /// last sample, and whole (from its start) again in the next call's answer.
    pub fn take_longest(&mut self) -> Stall {
        std::mem::take(&mut self.longest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn steady_routing_stalls_for_no_longer_than_a_sample() {
        let mut stalls = Stalls::default();
        for step in 0..20 {
            let committed = [step * 10, step * 10];
            let ends = [step * 10 + 5, step * 10 + 5];
            stalls.observe(ms(step as u64 * 100), &committed, &ends);
        }
        assert_eq!(stalls.take_longest().length, ms(100));
    }

    #[test]
    fn a_partition_that_stops_while_input_waits_stalls_until_it_moves() {
        let mut stalls = Stalls::default();
        stalls.observe(ms(0), &[10, 10], &[20, 20]);
        stalls.observe(ms(100), &[12, 12], &[20, 20]);
        // Partition 1 stops at 12 for 3 s; partition 0 goes on.
        stalls.observe(ms(1_100), &[14, 12], &[30, 30]);
        stalls.observe(ms(3_100), &[16, 12], &[30, 30]);
        assert_eq!(
            stalls.take_longest(),
            Stall {
                length: ms(3_000),
                partition: 1,
                since: ms(100)
            },
            "a stall still going counts"
        );
        stalls.observe(ms(3_300), &[18, 13], &[30, 30]);
        assert_eq!(
            stalls.take_longest().length,
            ms(3_200),
            "counted whole, from its start"
        );
    }

    #[test]
    fn an_idle_partition_is_not_stalled() {
        let mut stalls = Stalls::default();
        stalls.observe(ms(0), &[10], &[10]);
        stalls.observe(ms(5_000), &[10], &[10]);
        assert_eq!(stalls.take_longest(), Stall::default());
        // Input arrives at 5 s; the stall counts from when it was first seen waiting.
        stalls.observe(ms(6_000), &[10], &[11]);
        stalls.observe(ms(6_500), &[11], &[11]);
        assert_eq!(stalls.take_longest().length, ms(500));
        assert!(stalls.waiting().is_empty());
    }

    #[test]
    fn a_window_stays_open_until_every_waiting_partition_moved() {
        let mut stalls = Stalls::default();
        stalls.observe(ms(0), &[10, 10, 5], &[20, 20, 5]);
        let marks = stalls.waiting();
        assert_eq!(marks, vec![(0, 10), (1, 10)]);
        stalls.observe(ms(100), &[11, 10, 5], &[20, 20, 8]);
        assert!(!stalls.moved_past(&marks), "partition 1 has not moved");
        stalls.observe(ms(200), &[11, 11, 5], &[20, 20, 8]);
        assert!(
            stalls.moved_past(&marks),
            "partition 2 was not waiting at the mark"
        );
    }

    #[test]
    fn a_sample_that_misses_a_partition_keeps_what_was_known() {
        let mut stalls = Stalls::default();
        stalls.observe(ms(0), &[10, 10], &[20, 20]);
        stalls.observe(ms(100), &[11], &[20, 20]);
        assert_eq!(stalls.waiting(), vec![(0, 11), (1, 10)]);
    }
}
