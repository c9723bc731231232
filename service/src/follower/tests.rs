use super::*;

#[test]
fn a_round_whose_marks_are_read_ends_at_once_and_rounds_are_spaced() {
    let mut tracker = CatchUp::new([(0, Some((0, 2)))]);
    tracker.record(0, 1);
    let (t0, wall) = (Instant::now(), SystemTime::now());
    let mut rounds = Rounds::default();
    let marks = |high: i64| move || Some(HashMap::from([(0, high)]));
    assert_eq!(
        rounds.advance(t0, wall, &tracker, marks(2)).ended,
        Some(wall - IN_FLIGHT_ALLOWANCE),
        "nothing new: the round ends where it starts"
    );
    let soon = t0 + ROUND_INTERVAL / 2;
    assert_eq!(
        rounds.advance(soon, wall, &tracker, || unreachable!()).ended,
        None,
        "not due yet"
    );
    // A record arrives: the next round waits until it is read.
    let t1 = t0 + ROUND_INTERVAL;
    let wall1 = wall + ROUND_INTERVAL;
    assert_eq!(rounds.advance(t1, wall1, &tracker, marks(3)).ended, None);
    assert_eq!(
        rounds
            .advance(t1 + ROUND_INTERVAL, wall1, &tracker, || unreachable!())
            .ended,
        None
    );
    tracker.record(0, 2);
    assert_eq!(
        rounds
            .advance(t1 + ROUND_INTERVAL, wall1, &tracker, marks(3))
            .ended,
        Some(wall1 - IN_FLIGHT_ALLOWANCE),
        "ended, and the next one (due) ended at once too: the later time of the two wins"
    );
}

#[test]
fn a_commit_marker_below_the_mark_is_confirmed_by_the_end_met_after_a_reposition() {
    // A transaction's record at offset 4 and its commit marker at 5: the last stable offset is 6, and
    // the reader, having applied 4, stays at 5.
    let mut tracker = CatchUp::new([(0, Some((0, 6)))]);
    tracker.record(0, 4);
    tracker.end_of_partition(0);
    let (t0, wall) = (Instant::now(), SystemTime::now());
    let mut rounds = Rounds::default();
    let marks = || Some(HashMap::from([(0, 6)]));
    let step = rounds.advance(t0, wall, &tracker, marks);
    assert_eq!(
        step,
        Advance {
            ended: None,
            seek: vec![0]
        },
        "met the end below the mark: reposition"
    );
    // An end met before the reposition's fetch would not count; nothing is asked twice meanwhile.
    let later = t0 + ROUND_INTERVAL;
    assert_eq!(
        rounds.advance(later, wall, &tracker, || unreachable!()),
        Advance::default()
    );
    // The end met after the reposition vouches for the mark.
    tracker.end_of_partition(0);
    rounds.end_of_partition(0);
    assert_eq!(
        rounds.advance(later, wall, &tracker, marks).ended,
        Some(wall - IN_FLIGHT_ALLOWANCE)
    );
    // A reader still below its mark without having met the end is not repositioned: it is reading.
    let mut reading = CatchUp::new([(0, Some((0, 6)))]);
    reading.record(0, 1);
    let mut rounds = Rounds::default();
    assert_eq!(rounds.advance(t0, wall, &reading, marks), Advance::default());
}

#[test]
fn caught_up_at_the_high_watermarks_seen_at_start() {
    let mut tracker = CatchUp::new([(0, Some((0, 3))), (1, Some((0, 1)))]);
    assert!(!tracker.is_caught_up());
    assert_eq!(tracker.lag(), 4);
    tracker.record(0, 0);
    tracker.record(1, 0);
    assert_eq!(tracker.lag(), 2);
    tracker.record(0, 2);
    assert!(tracker.is_caught_up());
    assert_eq!(tracker.lag(), 0);
    // Later records move the applied offsets, not the verdict.
    tracker.record(0, 7);
    assert_eq!(tracker.next_offset(0), 8);
    assert!(tracker.is_caught_up());
}

#[test]
fn empty_and_emptied_partitions_are_caught_up_at_once() {
    // Partition 0 never had records; retention removed every record of partition 1 (low = high = 40).
    let tracker = CatchUp::new([(0, Some((0, 0))), (1, Some((40, 40)))]);
    assert!(tracker.is_caught_up());
    assert_eq!(tracker.next_offset(1), 40);
}

#[test]
fn the_low_watermark_is_where_reading_starts() {
    // Compaction left offsets 100..=105 of a partition; the lag counts from the low watermark.
    let mut tracker = CatchUp::new([(0, Some((100, 106)))]);
    assert_eq!(tracker.lag(), 6);
    tracker.record(0, 103);
    assert_eq!(tracker.lag(), 2);
    tracker.record(0, 105);
    assert!(tracker.is_caught_up());
}

#[test]
fn the_end_of_a_partition_counts_below_the_mark_and_for_unknown_marks() {
    // read_committed: the commit marker at offset 4 is never returned; the end of the partition is.
    let mut tracker = CatchUp::new([(0, Some((0, 5))), (1, None)]);
    assert_eq!(tracker.lag(), 5 + 1);
    tracker.record(0, 3);
    tracker.end_of_partition(0);
    assert_eq!(tracker.lag(), 1);
    tracker.end_of_partition(1);
    assert!(tracker.is_caught_up());
}

#[test]
fn a_resync_round_is_reached_when_every_partition_passed_its_target() {
    let mut tracker = CatchUp::new([(0, Some((0, 0))), (1, Some((0, 0)))]);
    let targets = HashMap::from([(0, 2), (1, 0)]);
    assert!(!tracker.reached(&targets));
    tracker.record(0, 1);
    assert!(tracker.reached(&targets));
}
