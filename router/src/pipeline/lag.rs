//! Consumer lag of the input partitions, from the offsets the router made durable and the partitions' ends.
//!
//! librdkafka's own `consumer_lag` statistic subtracts the consumer's committed offset, which in exactly-once
//! mode never moves: the transactions commit the offsets, not the consumer. So it grew by every record read
//! since the assignment and never fell. Here the durable offset is the larger of the consumer's committed
//! offset (right in at-least-once mode, and at assignment in both) and the offset the router's last
//! committed transaction stored for the partition.
//!
//! The end is the last stable offset (what a `read_committed` reader can reach), else the high watermark.
//! When the input is written in transactions, a partition ends in a commit marker that no record stands for
//! and that the router's commits (offset after the last record) never cover; so a partition with nothing
//! pending in the router and its fetch position at the end has a lag of 0, not 1.

/// One input partition's offsets, as librdkafka's statistics report them (negative = unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The last stable offset (`ls_offset`).
    pub last_stable: i64,
    /// The high watermark (`hi_offset`).
    pub high_watermark: i64,
    /// The consumer's committed offset (`committed_offset`).
    pub committed: i64,
    /// The offset stored for the consumer's next commit (`stored_offset`, at-least-once mode).
    pub stored: i64,
    /// The next offset the consumer fetches (`next_offset`).
    pub fetch_position: i64,
}

/// What the router holds of one input partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouterPosition {
    /// Exactly-once: the resume offset the last committed transaction stored for the partition.
    pub transaction_committed: Option<i64>,
    /// Records read and not yet durable: in the open transaction, or not yet acknowledged or stored.
    pub pending: bool,
    /// The consumer commits the offsets it stores (at-least-once mode); in exactly-once mode librdkafka's
    /// stored offset means nothing.
    pub consumer_commits: bool,
}

/// Records of a partition not yet durable, or `None` when its end or its durable offset is unknown.
pub fn partition_lag(offsets: PartitionOffsets, router: RouterPosition) -> Option<i64> {
    let end = if offsets.last_stable >= 0 {
        offsets.last_stable
    } else {
        offsets.high_watermark
    };
    if end < 0 {
        return None;
    }
    let durable = offsets.committed.max(router.transaction_committed.unwrap_or(-1));
    // At-least-once: an offset stored but not yet auto-committed is not durable yet.
    let uncommitted_store =
        router.consumer_commits && offsets.stored >= 0 && offsets.stored > offsets.committed.max(0);
    if !router.pending && !uncommitted_store && offsets.fetch_position >= end {
        return Some(0);
    }
    (durable >= 0).then(|| (end - durable).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(end: i64, committed: i64, fetch_position: i64) -> PartitionOffsets {
        PartitionOffsets {
            last_stable: end,
            high_watermark: end,
            committed,
            stored: -1001,
            fetch_position,
        }
    }

    fn committed(next: i64) -> RouterPosition {
        RouterPosition {
            transaction_committed: Some(next),
            pending: false,
            consumer_commits: false,
        }
    }

    fn pending(next: Option<i64>) -> RouterPosition {
        RouterPosition {
            transaction_committed: next,
            pending: true,
            consumer_commits: next.is_none(),
        }
    }

    #[test]
    fn exactly_once_lag_falls_to_zero_once_the_transaction_committed_everything() {
        // The review's case: the consumer's committed offset stays where the assignment found it.
        let caught_up = offsets(202_540, 0, 202_540);
        assert_eq!(partition_lag(caught_up, pending(None)), Some(202_540));
        assert_eq!(partition_lag(caught_up, committed(202_540)), Some(0));
    }

    #[test]
    fn records_read_but_not_committed_count() {
        assert_eq!(
            partition_lag(offsets(1_000, 0, 1_000), pending(Some(700))),
            Some(300)
        );
        assert_eq!(partition_lag(offsets(1_000, 0, 950), committed(900)), Some(100));
    }

    #[test]
    fn at_least_once_uses_the_consumers_committed_offset() {
        assert_eq!(partition_lag(offsets(500, 480, 500), pending(None)), Some(20));
        let at_least_once = RouterPosition {
            consumer_commits: true,
            ..RouterPosition::default()
        };
        assert_eq!(partition_lag(offsets(500, 500, 500), at_least_once), Some(0));
        let stored_not_committed = PartitionOffsets {
            stored: 500,
            ..offsets(500, 480, 500)
        };
        assert_eq!(partition_lag(stored_not_committed, at_least_once), Some(20));
        // In exactly-once mode librdkafka stores offsets too, and nothing commits them.
        assert_eq!(partition_lag(stored_not_committed, committed(500)), Some(0));
    }

    #[test]
    fn a_trailing_commit_marker_is_not_lag() {
        // Input written in transactions: records up to 99, the commit marker at 100, the end at 101; the
        // router's transaction stored 100.
        assert_eq!(partition_lag(offsets(101, 0, 101), committed(100)), Some(0));
        // Until the consumer has fetched past the marker, the offset difference stands.
        assert_eq!(partition_lag(offsets(101, 0, 100), committed(100)), Some(1));
    }

    #[test]
    fn an_idle_partition_read_to_its_end_has_no_lag() {
        assert_eq!(
            partition_lag(offsets(42, -1001, 42), RouterPosition::default()),
            Some(0)
        );
    }

    #[test]
    fn the_last_stable_offset_is_the_end_for_a_read_committed_reader() {
        let open_transaction = PartitionOffsets {
            last_stable: 80,
            high_watermark: 95,
            committed: 60,
            stored: -1001,
            fetch_position: 80,
        };
        assert_eq!(partition_lag(open_transaction, pending(None)), Some(20));
        assert_eq!(partition_lag(open_transaction, committed(80)), Some(0));
    }

    #[test]
    fn unknown_offsets_give_no_figure() {
        assert_eq!(partition_lag(offsets(-1, 10, 10), committed(10)), None);
        assert_eq!(partition_lag(offsets(100, -1001, 60), pending(None)), None);
    }
}
