//! Unit tests of [`super`]: pure, with the caller's clock.

use super::*;

const PER_TEAM: usize = 2;

fn scheduler(max_calls: usize, max_buffered: usize) -> Scheduler<&'static str> {
    Scheduler::new(Limits {
        max_calls,
        max_calls_per_team: PER_TEAM.min(max_calls),
        max_buffered,
        batch: None,
        per_team_rate: None,
        plugin_rate: None,
    })
}

/// The default installation of `team`.
fn of(team: &str) -> Owner<'_> {
    Owner {
        team,
        installation: "default",
    }
}

fn key(k: &str) -> LaneId {
    LaneId::Key(k.to_owned())
}

/// Starts every call it can at `now`: (team, offsets) per call.
fn starts_at(s: &mut Scheduler<&'static str>, now: Instant) -> Vec<(String, Vec<i64>)> {
    std::iter::from_fn(|| s.next_start(now))
        .map(|start| (start.team, start.items.iter().map(|i| i.offset).collect()))
        .collect()
}

fn starts(s: &mut Scheduler<&'static str>) -> Vec<(String, Vec<i64>)> {
    starts_at(s, Instant::now())
}

fn call(team: &str, offsets: &[i64]) -> (String, Vec<i64>) {
    (team.to_owned(), offsets.to_vec())
}

/// Ends a one-event call.
fn done(s: &mut Scheduler<&'static str>, team: &str, offset: i64) {
    s.event_done(0, offset);
    s.call_done(team, true, Instant::now());
}

#[test]
fn a_lane_runs_in_order_and_lanes_of_one_team_run_concurrently() {
    let mut s = scheduler(10, 100);
    let now = Instant::now();
    for (offset, lane) in [(0, "r1"), (1, "r2"), (2, "r1")] {
        s.push(0, offset, of("acme"), key(lane), "e", now);
    }
    assert_eq!(starts(&mut s), [call("acme", &[0]), call("acme", &[1])]);
    done(&mut s, "acme", 1);
    assert!(starts(&mut s).is_empty(), "r1's second event waits for its first");
    done(&mut s, "acme", 0);
    assert_eq!(starts(&mut s), [call("acme", &[2])]);
}

#[test]
fn team_ordering_is_one_lane_and_free_events_need_no_order() {
    let mut s = scheduler(10, 100);
    let now = Instant::now();
    s.push(0, 0, of("acme"), LaneId::Team, "e", now);
    s.push(0, 1, of("acme"), LaneId::Team, "e", now);
    s.push(0, 2, of("globex"), LaneId::Free, "e", now);
    s.push(0, 3, of("globex"), LaneId::Free, "e", now);
    assert_eq!(
        starts(&mut s),
        [call("acme", &[0]), call("globex", &[2]), call("globex", &[3])]
    );
    done(&mut s, "acme", 0);
    assert_eq!(starts(&mut s), [call("acme", &[1])]);
}

#[test]
fn a_team_gets_at_most_its_share_of_the_calls() {
    let mut s = scheduler(10, 100);
    let now = Instant::now();
    for offset in 0..6 {
        s.push(0, offset, of("hot"), LaneId::Free, "e", now);
    }
    s.push(1, 0, of("cold"), LaneId::Free, "e", now);
    let started = starts(&mut s);
    let hot = started.iter().filter(|(team, _)| team == "hot").count();
    assert_eq!(hot, PER_TEAM, "the hot team is capped at its share");
    assert!(started.contains(&call("cold", &[0])));
    done(&mut s, "hot", 0);
    assert_eq!(
        starts(&mut s),
        [call("hot", &[2])],
        "a freed call goes to the next event"
    );
}

#[test]
fn teams_with_work_take_turns() {
    let mut s = Scheduler::new(Limits {
        max_calls: 1,
        max_calls_per_team: 1,
        max_buffered: 100,
        batch: None,
        per_team_rate: None,
        plugin_rate: None,
    });
    let now = Instant::now();
    for offset in 0..50 {
        s.push(0, offset, of("hot"), LaneId::Free, "e", now);
    }
    s.push(1, 0, of("small"), LaneId::Free, "e", now);
    s.push(2, 0, of("tiny"), LaneId::Free, "e", now);
    let mut order = Vec::new();
    for _ in 0..6 {
        let start = s.next_start(now).expect("work is waiting");
        order.push(start.team.clone());
        s.event_done(start.items[0].partition, start.items[0].offset);
        s.call_done(&start.team, true, now);
    }
    assert_eq!(order, ["hot", "small", "tiny", "hot", "hot", "hot"]);
}

#[test]
fn the_commit_position_never_passes_an_event_that_is_not_done() {
    let mut s = scheduler(10, 100);
    let now = Instant::now();
    for (offset, team) in [(5, "slow"), (6, "fast"), (7, "fast")] {
        s.push(0, offset, of(team), LaneId::Team, "e", now);
    }
    let _ = starts(&mut s);
    done(&mut s, "fast", 6);
    let _ = starts(&mut s);
    done(&mut s, "fast", 7);
    assert_eq!(s.commit_positions(), [(0, 5)]);
    assert_eq!(s.commit_positions(), [], "unchanged positions are not repeated");
    done(&mut s, "slow", 5);
    assert_eq!(s.commit_positions(), [(0, 8)]);
    s.skip(0, 8);
    assert_eq!(s.commit_positions(), [(0, 9)]);
}

#[test]
fn call_and_buffer_bounds() {
    let mut s = scheduler(2, 3);
    let now = Instant::now();
    for (offset, team) in [(0, "a"), (1, "b"), (2, "c")] {
        s.push(0, offset, of(team), LaneId::Team, "e", now);
    }
    assert_eq!(starts(&mut s).len(), 2, "two at once");
    assert!(s.is_full());
    done(&mut s, "a", 0);
    assert!(!s.is_full());
    assert_eq!(starts(&mut s), [call("c", &[2])]);
}

#[test]
fn a_batch_takes_one_teams_ready_lanes_in_order() {
    let mut s = Scheduler::new(Limits {
        max_calls: 4,
        max_calls_per_team: 2,
        max_buffered: 100,
        batch: Some(BatchLimits {
            max_events: 3,
            max_wait: Duration::from_millis(50),
        }),
        per_team_rate: None,
        plugin_rate: None,
    });
    let t0 = Instant::now();
    for (offset, lane) in [(0, "r1"), (1, "r2"), (2, "r1"), (3, "r3"), (4, "r2")] {
        s.push(0, offset, of("acme"), key(lane), "e", t0);
    }
    // r1's two events in order, then r2's first; r3 and r2's second wait (r2 is in the running call).
    assert_eq!(starts_at(&mut s, t0), [call("acme", &[0, 2, 1])]);
    assert!(
        starts_at(&mut s, t0).is_empty(),
        "one event ready: the batch waits for more"
    );
    assert_eq!(s.next_due(t0), Some(t0 + Duration::from_millis(50)));
    assert_eq!(
        starts_at(&mut s, t0 + Duration::from_millis(50)),
        [call("acme", &[3])],
        "due after max_wait"
    );
    // r1 done while the call retries r2: r1 has nothing left; r2's next waits for its first.
    s.event_done(0, 0);
    s.event_done(0, 2);
    assert!(starts_at(&mut s, t0 + Duration::from_secs(1)).is_empty());
    s.event_done(0, 1);
    s.call_done("acme", true, t0);
    assert_eq!(
        starts_at(&mut s, t0 + Duration::from_secs(1)),
        [call("acme", &[4])]
    );
}

#[test]
fn a_batch_holds_one_partition() {
    let mut s = Scheduler::new(Limits {
        max_calls: 4,
        max_calls_per_team: 4,
        max_buffered: 100,
        batch: Some(BatchLimits {
            max_events: 10,
            max_wait: Duration::ZERO,
        }),
        per_team_rate: None,
        plugin_rate: None,
    });
    let now = Instant::now();
    s.push(0, 0, of("acme"), key("r1"), "e", now);
    s.push(1, 0, of("acme"), key("r2"), "e", now);
    s.push(0, 1, of("acme"), key("r3"), "e", now);
    let calls: Vec<Vec<(i32, i64)>> = std::iter::from_fn(|| s.next_start(now))
        .map(|start| start.items.iter().map(|i| (i.partition, i.offset)).collect())
        .collect();
    assert_eq!(calls, [vec![(0, 0), (0, 1)], vec![(1, 0)]]);
}

#[test]
fn installations_of_a_team_are_lanes_apart_and_batch_apart_but_share_the_team_s_calls() {
    let mut s = Scheduler::new(Limits {
        max_calls: 8,
        max_calls_per_team: 2,
        max_buffered: 100,
        batch: Some(BatchLimits {
            max_events: 10,
            max_wait: Duration::ZERO,
        }),
        per_team_rate: None,
        plugin_rate: None,
    });
    let now = Instant::now();
    let named = |installation| Owner {
        team: "acme",
        installation,
    };
    // Team ordering: one lane per installation, so forms-bc does not wait for the default one.
    s.push(0, 0, of("acme"), LaneId::Team, "e", now);
    s.push(0, 1, named("forms-bc"), LaneId::Team, "e", now);
    s.push(0, 2, of("acme"), LaneId::Team, "e", now);
    s.push(0, 3, named("forms-a"), LaneId::Team, "e", now);
    let calls: Vec<(String, Vec<i64>)> = std::iter::from_fn(|| s.next_start(now))
        .map(|start| (start.installation, start.items.iter().map(|i| i.offset).collect()))
        .collect();
    assert_eq!(
        calls,
        [
            ("default".to_owned(), vec![0, 2]),
            ("forms-bc".to_owned(), vec![1])
        ],
        "a batch holds one installation's events; the team's share (2 calls) holds forms-a back"
    );
    s.event_done(0, 0);
    s.event_done(0, 2);
    s.call_done("acme", true, now);
    let next = s.next_start(now).unwrap();
    assert_eq!((next.installation.as_str(), next.items[0].offset), ("forms-a", 3));
}

#[test]
fn a_team_told_to_slow_down_pauses_with_half_its_share_then_grows_back() {
    let mut s = Scheduler::new(Limits {
        max_calls: 16,
        max_calls_per_team: 4,
        max_buffered: 100,
        batch: None,
        per_team_rate: None,
        plugin_rate: None,
    });
    let t0 = Instant::now();
    for offset in 0..20 {
        s.push(0, offset, of("hot"), LaneId::Free, "e", t0);
    }
    s.push(1, 0, of("calm"), LaneId::Free, "e", t0);
    assert_eq!(starts_at(&mut s, t0).len(), 5, "four of hot, one of calm");
    s.slow_down("hot", Some(Duration::from_secs(2)), t0);
    assert_eq!(s.team_limit("hot"), 2);
    for offset in 0..4 {
        s.event_done(0, offset);
        s.call_done("hot", false, t0);
    }
    assert!(starts_at(&mut s, t0).is_empty(), "paused");
    assert_eq!(s.next_due(t0), Some(t0 + Duration::from_secs(2)));
    let t2 = t0 + Duration::from_secs(2);
    assert_eq!(starts_at(&mut s, t2).len(), 2, "half the share after the pause");
    for offset in 4..6 {
        s.event_done(0, offset);
        s.call_done("hot", true, t2);
    }
    assert_eq!(
        s.team_limit("hot"),
        3,
        "one more after as many successes as the limit"
    );
    assert_eq!(s.plugin_limit(), 16, "one team alone does not slow the plugin");
}

#[test]
fn three_teams_told_to_slow_down_slow_the_plugin() {
    let mut s = scheduler(16, 100);
    let t0 = Instant::now();
    for team in ["a", "b", "c"] {
        s.slow_down(team, None, t0);
    }
    assert_eq!(s.plugin_limit(), 8);
    s.push(0, 0, of("d"), LaneId::Team, "e", t0);
    assert!(starts_at(&mut s, t0).is_empty(), "the plugin pauses too");
    assert!(!starts_at(&mut s, t0 + Duration::from_secs(1)).is_empty());
}

#[test]
fn a_per_team_rate_spaces_its_calls() {
    let mut s = Scheduler::new(Limits {
        max_calls: 16,
        max_calls_per_team: 16,
        max_buffered: 100,
        batch: None,
        per_team_rate: Some(2.0),
        plugin_rate: None,
    });
    let t0 = Instant::now();
    for offset in 0..10 {
        s.push(0, offset, of("acme"), LaneId::Free, "e", t0);
    }
    s.push(1, 0, of("globex"), LaneId::Free, "e", t0);
    let first = starts_at(&mut s, t0);
    assert_eq!(
        first.iter().filter(|(team, _)| team == "acme").count(),
        2,
        "one second's worth at once"
    );
    assert!(
        first.contains(&call("globex", &[0])),
        "another team has its own rate"
    );
    assert_eq!(s.next_due(t0), Some(t0 + Duration::from_millis(500)));
    assert_eq!(starts_at(&mut s, t0 + Duration::from_millis(500)).len(), 1);
}

#[test]
fn a_partition_holding_its_share_of_a_half_full_buffer_is_crowded() {
    let mut s = scheduler(4, 12);
    let now = Instant::now();
    for offset in 0..4 {
        s.push(0, offset, of("hot"), LaneId::Team, "e", now);
    }
    s.push(1, 0, of("calm"), LaneId::Team, "e", now);
    assert!(
        s.crowded_partitions(&[]).is_empty(),
        "below half of the buffer every partition reads"
    );
    for offset in 4..6 {
        s.push(0, offset, of("hot"), LaneId::Team, "e", now);
    }
    s.push(2, 0, of("calm"), LaneId::Team, "e", now);
    assert_eq!(
        s.crowded_partitions(&[]),
        [0],
        "three partitions read: a share is 4"
    );
    assert!(!s.is_full());
    // Paused, partition 0 stays so until it holds half its share (2): three of its events end.
    for offset in 1..3 {
        s.push(1, offset, of("calm"), LaneId::Team, "e", now);
    }
    for offset in 0..3 {
        assert!(starts(&mut s).contains(&call("hot", &[offset])));
        done(&mut s, "hot", offset);
    }
    assert_eq!(s.crowded_partitions(&[0]), [0], "3 held of a share of 4");
    assert!(
        s.crowded_partitions(&[]).is_empty(),
        "not paused: below its share"
    );
    s.revoke(&[0]);
    assert!(s.crowded_partitions(&[0]).is_empty());
}

#[test]
fn a_full_buffer_pauses_reading_until_half_of_it_is_done() {
    let mut s = scheduler(2, 4);
    let now = Instant::now();
    for offset in 0..4 {
        s.push(0, offset, of("acme"), key(&format!("r{offset}")), "e", now);
    }
    assert!(s.holds_too_many(false));
    let _ = starts(&mut s);
    done(&mut s, "acme", 0);
    assert!(s.holds_too_many(true), "3 of 4 held: stays paused");
    assert!(!s.holds_too_many(false));
    done(&mut s, "acme", 1);
    assert!(!s.holds_too_many(true), "half held: reading resumes");
}

#[test]
fn revoked_partitions_are_forgotten() {
    let mut s = scheduler(4, 10);
    let now = Instant::now();
    s.push(0, 0, of("a"), LaneId::Team, "e", now);
    s.push(1, 0, of("b"), LaneId::Team, "e", now);
    s.push(1, 1, of("b"), LaneId::Team, "e", now);
    let _ = starts(&mut s);
    s.revoke(&[1]);
    assert_eq!((s.buffered(), s.calls()), (1, 2), "b's call still runs");
    s.event_done(1, 0);
    assert_eq!(s.buffered(), 1, "a late end changes nothing");
    s.call_done("b", true, now);
    assert_eq!(s.calls(), 1);
    assert_eq!(s.commit_positions(), [(0, 0)]);
    assert!(starts(&mut s).is_empty());
}
