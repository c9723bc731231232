//! Which events run next: lanes (the plugin's ordering key), fair shares between teams, batches, and the
//! offsets that are safe to commit. Pure bookkeeping, no I/O and no clock of its own (the caller passes
//! `now`), so every rule is unit-tested here.
//!
//! ```text
//!  partition 0: o10(acme r1) o11(globex r7) o12(acme r2) o13(acme r1) ...
//!                 │             │             │             │ waits for o10 (same lane: acme/r1)
//!                 ▼             ▼             ▼
//!  calls: acme[o10], globex[o11], acme[o12]     (at most `max_calls`, at most `max_calls_per_team` per team)
//!  commit position of partition 0 = lowest offset not yet done (o10 until it is done)
//! ```
//!
//! - **Lanes.** Every event belongs to one lane of its team ([`LaneId`], derived from the plugin's
//!   `ordering`): the events of one lane run one after the other, in the topic's order; different lanes run
//!   concurrently. An event that is slow or retrying holds only its own lane.
//! - **Calls and fair shares.** A start is one call to the plugin: one event, or a batch of one team's events
//!   of one partition (several lanes; a lane's events in order; a lane is never in two running calls). At most `max_calls`
//!   run at once and at most `max_calls_per_team` per team. Teams with work waiting take turns, one call per
//!   turn (round robin), so a team with a large backlog does not delay a team that sends little.
//! - **Batches.** With [`BatchLimits`], a team's call waits until `max_events` of its events are ready or
//!   the oldest has waited `max_wait` ([`Scheduler::next_due`] says when).
//! - **Pace.** A team's calls, and the plugin's, also wait for their [`Pace`]: the manifest's rates, and
//!   after a "slow down" ([`Scheduler::slow_down`]) a halved concurrency and a pause. Three or more teams
//!   told to slow down within [`PLUGIN_SLOW_DOWN_WINDOW`] slow the whole plugin down.
//! - **Memory and commits.** At most `max_buffered` events are held; then the consumer pauses (the caller's
//!   job); from half of them on, a partition that holds its share pauses alone
//!   ([`Scheduler::crowded_partitions`]). The commit position of a partition never passes an event that is
//!   not done, so a crash redelivers it (at-least-once).
//!
//! An event's end ([`Scheduler::event_done`]) and its call's end ([`Scheduler::call_done`]) are separate:
//! a batch's done events free their lanes while the call still retries the others.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::delivery::pace::Pace;

/// Teams told to slow down within this window that slow the whole plugin down: [`PLUGIN_SLOW_DOWN_TEAMS`].
pub const PLUGIN_SLOW_DOWN_WINDOW: Duration = Duration::from_secs(10);
/// See [`PLUGIN_SLOW_DOWN_WINDOW`].
pub const PLUGIN_SLOW_DOWN_TEAMS: usize = 3;

/// The lane of an event within its team.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LaneId {
    /// The whole team is one lane (`ordering: "team"`).
    Team,
    /// One lane per key (a form or response id).
    Key(String),
    /// No order: the event is a lane of its own (`ordering: "none"`).
    Free,
}

/// A lane's identity: partition, team, and the key within the team (`Free` lanes by offset).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LaneRef {
    partition: i32,
    team: String,
    lane: LaneKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LaneKey {
    Team,
    Key(String),
    Offset(i64),
}

#[derive(Debug)]
struct Waiting<T> {
    offset: i64,
    item: T,
    since: Instant,
}

#[derive(Debug)]
struct Lane<T> {
    waiting: VecDeque<Waiting<T>>,
    /// Events of this lane in running calls.
    running: usize,
}

#[derive(Debug, Default)]
struct Team {
    /// Lanes with events waiting and none running, in the order they became ready.
    ready: VecDeque<LaneRef>,
    /// Calls running.
    calls: usize,
    /// In the turn queue.
    in_turn: bool,
    /// Its pace, once it has a rate or was told to slow down (else the share alone bounds it).
    pace: Option<Pace>,
}

#[derive(Debug, Default)]
struct Offsets {
    /// Offsets read but not done, with their lane.
    outstanding: BTreeMap<i64, LaneRef>,
    /// The offset after the highest one read.
    next: Option<i64>,
    /// The last position handed out by [`Scheduler::commit_positions`].
    reported: Option<i64>,
}

impl Offsets {
    fn position(&self) -> Option<i64> {
        self.outstanding.keys().next().copied().or(self.next)
    }

    fn read(&mut self, offset: i64) {
        self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }
}

/// Batching: a call carries up to `max_events` events of one team, and waits at most `max_wait` for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Events per call, at least 1.
    pub max_events: usize,
    /// Longest wait of the oldest ready event for a fuller batch.
    pub max_wait: Duration,
}

/// The scheduler's bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Calls at once.
    pub max_calls: usize,
    /// Calls at once per team.
    pub max_calls_per_team: usize,
    /// Events held (waiting or running) before the caller pauses reading; at least `max_calls`.
    pub max_buffered: usize,
    /// Batching, when the plugin takes batches.
    pub batch: Option<BatchLimits>,
    /// Calls per second of one team (the manifest's `rate_limit`).
    pub per_team_rate: Option<f64>,
    /// Calls per second in all.
    pub plugin_rate: Option<f64>,
}

/// The default per-team share of `max_calls`: a quarter, at least 1.
pub fn default_per_team(max_calls: usize) -> usize {
    (max_calls / 4).max(1)
}

/// One event of a call.
#[derive(Debug, PartialEq)]
pub struct Item<T> {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// The caller's record.
    pub item: T,
}

/// A call to start: one team's events (one, or a batch), lanes in the order they became ready and each
/// lane's events in topic order.
#[derive(Debug, PartialEq)]
pub struct Start<T> {
    /// Team.
    pub team: String,
    /// The events.
    pub items: Vec<Item<T>>,
}

/// The scheduler.
#[derive(Debug)]
pub struct Scheduler<T> {
    limits: Limits,
    lanes: HashMap<LaneRef, Lane<T>>,
    teams: HashMap<String, Team>,
    /// Teams with a ready lane and a free call, in turn.
    turn: VecDeque<String>,
    offsets: HashMap<i32, Offsets>,
    calls: usize,
    buffered: usize,
    plugin_pace: Pace,
    /// Teams told to slow down lately, oldest first.
    slowed: VecDeque<(Instant, String)>,
}

impl<T> Scheduler<T> {
    /// A scheduler within `limits` (each bound at least 1; `max_buffered` at least `max_calls`).
    pub fn new(limits: Limits) -> Self {
        let max_calls = limits.max_calls.max(1);
        Self {
            limits: Limits {
                max_calls,
                max_calls_per_team: limits.max_calls_per_team.clamp(1, max_calls),
                max_buffered: limits.max_buffered.max(max_calls),
                batch: limits.batch.map(|b| BatchLimits {
                    max_events: b.max_events.max(1),
                    max_wait: b.max_wait,
                }),
                ..limits
            },
            lanes: HashMap::new(),
            teams: HashMap::new(),
            turn: VecDeque::new(),
            offsets: HashMap::new(),
            calls: 0,
            buffered: 0,
            plugin_pace: Pace::new(max_calls, limits.plugin_rate, Instant::now()),
            slowed: VecDeque::new(),
        }
    }

    /// Adds an event read from `partition` at `offset`, of `team`, in `lane`, at `now`.
    pub fn push(&mut self, partition: i32, offset: i64, team: &str, lane: LaneId, item: T, now: Instant) {
        let lane = LaneRef {
            partition,
            team: team.to_owned(),
            lane: match lane {
                LaneId::Team => LaneKey::Team,
                LaneId::Key(key) => LaneKey::Key(key),
                LaneId::Free => LaneKey::Offset(offset),
            },
        };
        let offsets = self.offsets.entry(partition).or_default();
        offsets.outstanding.insert(offset, lane.clone());
        offsets.read(offset);
        let state = self.lanes.entry(lane.clone()).or_insert_with(|| Lane {
            waiting: VecDeque::new(),
            running: 0,
        });
        let was_idle = state.running == 0 && state.waiting.is_empty();
        state.waiting.push_back(Waiting {
            offset,
            item,
            since: now,
        });
        self.buffered += 1;
        if was_idle {
            self.make_ready(lane);
        }
    }

    /// Marks a record that needs no execution (done at once, e.g. a record without a valid key that was
    /// dead-lettered before scheduling) so the commit position can pass it.
    pub fn skip(&mut self, partition: i32, offset: i64) {
        self.offsets.entry(partition).or_default().read(offset);
    }

    /// The next call to start at `now`, if a call is free and some team has events ready (and, with
    /// batches, enough of them or waiting long enough).
    pub fn next_start(&mut self, now: Instant) -> Option<Start<T>> {
        if self.calls >= self.limits.max_calls
            || self
                .plugin_pace
                .ready_at(self.calls, now)
                .is_none_or(|at| at > now)
        {
            return None;
        }
        let limits = self.limits;
        for _ in 0..self.turn.len() {
            let name = self.turn.pop_front()?;
            let Some(team) = self.teams.get_mut(&name) else {
                continue;
            };
            if let Some(rate) = limits.per_team_rate
                && team.pace.is_none()
            {
                team.pace = Some(Pace::new(limits.max_calls_per_team, Some(rate), now));
            }
            if team.ready.is_empty() || team.calls >= cap(&limits, team) {
                team.in_turn = false;
                continue;
            }
            let paced = team
                .pace
                .as_ref()
                .and_then(|pace| pace.ready_at(team.calls, now))
                .is_some_and(|at| at > now);
            if paced
                || limits
                    .batch
                    .is_some_and(|batch| !batch_due(&self.lanes, team, batch, now))
            {
                self.turn.push_back(name);
                continue;
            }
            let max_events = self.limits.batch.map_or(1, |b| b.max_events);
            let mut items = Vec::new();
            // A call's events share one partition (one revocation cancels them together): lanes of another
            // partition of the team wait for a later call, in their place.
            let mut other_partitions = Vec::new();
            while items.len() < max_events
                && let Some(lane_ref) = team.ready.pop_front()
            {
                if items
                    .first()
                    .is_some_and(|first: &Item<T>| first.partition != lane_ref.partition)
                {
                    other_partitions.push(lane_ref);
                    continue;
                }
                let Some(lane) = self.lanes.get_mut(&lane_ref) else {
                    continue;
                };
                while items.len() < max_events
                    && let Some(waiting) = lane.waiting.pop_front()
                {
                    lane.running += 1;
                    items.push(Item {
                        partition: lane_ref.partition,
                        offset: waiting.offset,
                        item: waiting.item,
                    });
                }
            }
            for lane in other_partitions.into_iter().rev() {
                team.ready.push_front(lane);
            }
            team.calls += 1;
            self.calls += 1;
            if let Some(pace) = &mut team.pace {
                pace.start(now);
            }
            self.plugin_pace.start(now);
            if !team.ready.is_empty() && team.calls < cap(&limits, team) {
                self.turn.push_back(name.clone());
            } else {
                team.in_turn = false;
            }
            return Some(Start { team: name, items });
        }
        None
    }

    /// When a team's call that waits for its pace or for a fuller batch may start, if one waits: the
    /// caller wakes up then (completions and new records wake it anyway). `None` while every call slot is
    /// taken.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        if self.calls >= self.limits.max_calls {
            return None;
        }
        let plugin_at = self.plugin_pace.ready_at(self.calls, now)?;
        let team_at = self
            .turn
            .iter()
            .filter_map(|name| self.teams.get(name))
            .filter(|team| !team.ready.is_empty() && team.calls < cap(&self.limits, team))
            .filter_map(|team| {
                let paced = match &team.pace {
                    Some(pace) => pace.ready_at(team.calls, now)?,
                    None => now,
                };
                let batched = match self.limits.batch {
                    Some(batch) if !batch_due(&self.lanes, team, batch, now) => {
                        oldest_ready(&self.lanes, team)? + batch.max_wait
                    }
                    _ => now,
                };
                Some(paced.max(batched))
            })
            .min()?;
        Some(team_at.max(plugin_at))
    }

    /// The plugin told `team` to slow down (a `429`, or its own answer), with `after` if it said how long:
    /// the team's concurrency halves and its calls pause; when [`PLUGIN_SLOW_DOWN_TEAMS`] teams heard it
    /// within [`PLUGIN_SLOW_DOWN_WINDOW`], the whole plugin's too.
    pub fn slow_down(&mut self, team: &str, after: Option<Duration>, now: Instant) {
        let limits = self.limits;
        let state = self.teams.entry(team.to_owned()).or_default();
        state
            .pace
            .get_or_insert_with(|| Pace::new(limits.max_calls_per_team, limits.per_team_rate, now))
            .slow_down(after, now);
        while self
            .slowed
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > PLUGIN_SLOW_DOWN_WINDOW)
        {
            self.slowed.pop_front();
        }
        self.slowed.retain(|(_, name)| name != team);
        self.slowed.push_back((now, team.to_owned()));
        if self.slowed.len() >= PLUGIN_SLOW_DOWN_TEAMS {
            self.plugin_pace.slow_down(after, now);
            self.slowed.clear();
        }
    }

    /// The calls a team may run at once now: its share, or less after a slow down.
    pub fn team_limit(&self, team: &str) -> usize {
        self.teams
            .get(team)
            .map_or(self.limits.max_calls_per_team, |t| cap(&self.limits, t))
    }

    /// The calls the plugin may run at once now.
    pub fn plugin_limit(&self) -> usize {
        self.plugin_pace.limit().min(self.limits.max_calls)
    }

    /// The event at `partition`/`offset` is done (delivered or dead-lettered): the commit position may pass
    /// it, and its lane's next event becomes ready once the lane has nothing else running. Events of
    /// partitions revoked meanwhile are ignored.
    pub fn event_done(&mut self, partition: i32, offset: i64) {
        let Some(lane_ref) = self
            .offsets
            .get_mut(&partition)
            .and_then(|offsets| offsets.outstanding.remove(&offset))
        else {
            return;
        };
        self.buffered = self.buffered.saturating_sub(1);
        let Some(lane) = self.lanes.get_mut(&lane_ref) else {
            return;
        };
        lane.running = lane.running.saturating_sub(1);
        if lane.running > 0 {
            return;
        }
        if lane.waiting.is_empty() {
            self.lanes.remove(&lane_ref);
        } else {
            self.make_ready(lane_ref);
        }
    }

    /// A call of `team` ended (whatever became of its events): its slot is free. `succeeded`: it was never
    /// told to slow down and did something, which lets a slowed-down pace grow back.
    pub fn call_done(&mut self, team: &str, succeeded: bool, now: Instant) {
        self.calls = self.calls.saturating_sub(1);
        if succeeded {
            self.plugin_pace.succeeded();
        }
        let Some(state) = self.teams.get_mut(team) else {
            return;
        };
        state.calls = state.calls.saturating_sub(1);
        if let Some(pace) = state.pace.as_mut().filter(|_| succeeded) {
            pace.succeeded();
        }
        if state.pace.as_ref().is_some_and(|pace| pace.is_fresh(now)) {
            state.pace = None;
        }
        if !state.ready.is_empty() && !state.in_turn {
            state.in_turn = true;
            self.turn.push_back(team.to_owned());
        } else if state.ready.is_empty() && state.calls == 0 && !state.in_turn && state.pace.is_none() {
            self.teams.remove(team);
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

    /// Forgets revoked partitions: their waiting events are dropped (the next owner reads them again) and
    /// the ends of their running events will be ignored. Their calls still end with [`Self::call_done`].
    pub fn revoke(&mut self, partitions: &[i32]) {
        for partition in partitions {
            if let Some(offsets) = self.offsets.remove(partition) {
                self.buffered = self.buffered.saturating_sub(offsets.outstanding.len());
            }
        }
        self.lanes.retain(|lane, _| !partitions.contains(&lane.partition));
        for team in self.teams.values_mut() {
            team.ready.retain(|lane| !partitions.contains(&lane.partition));
        }
        self.teams.retain(|_, team| {
            team.calls > 0 || !team.ready.is_empty() || team.in_turn || team.pace.is_some()
        });
        let teams = &self.teams;
        self.turn.retain(|name| teams.contains_key(name));
    }

    /// Whether as many events are held as allowed: stop reading until some are done.
    pub fn is_full(&self) -> bool {
        self.buffered >= self.limits.max_buffered
    }

    /// Whether reading should stop for memory: while full; and once the consumer is `paused`, until half of
    /// `max_buffered` is done (resuming at once would pause it again within the next fetched batch, and each
    /// pause costs the events librdkafka fetched ahead).
    pub fn holds_too_many(&self, paused: bool) -> bool {
        self.is_full() || (paused && self.buffered * 2 > self.limits.max_buffered)
    }

    /// The partitions to pause so that one busy partition cannot fill the whole buffer and stop the others,
    /// in order. Only once half of `max_buffered` is held: below that every partition reads freely (a pause
    /// costs the events librdkafka fetched ahead for the partition, and a new fetch when it resumes). Then a
    /// partition holding its share (`max_buffered` split evenly among the partitions read from, at least
    /// `max_calls`) is crowded; one that is `paused` already stays so until it holds half its share.
    pub fn crowded_partitions(&self, paused: &[i32]) -> Vec<i32> {
        if self.buffered * 2 < self.limits.max_buffered {
            return Vec::new();
        }
        let share = (self.limits.max_buffered / self.offsets.len().max(1)).max(self.limits.max_calls);
        let mut crowded: Vec<i32> = self
            .offsets
            .iter()
            .filter(|(partition, offsets)| {
                let held = offsets.outstanding.len();
                held >= share || (paused.contains(partition) && held * 2 >= share)
            })
            .map(|(partition, _)| *partition)
            .collect();
        crowded.sort_unstable();
        crowded
    }

    /// Events held (waiting or running).
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Calls running.
    pub fn calls(&self) -> usize {
        self.calls
    }

    fn make_ready(&mut self, lane: LaneRef) {
        let name = lane.team.clone();
        let team = self.teams.entry(name.clone()).or_default();
        team.ready.push_back(lane);
        if !team.in_turn && team.calls < cap(&self.limits, team) {
            team.in_turn = true;
            self.turn.push_back(name);
        }
    }
}

/// The calls `team` may run at once: its share, or its pace's limit after a slow down.
fn cap(limits: &Limits, team: &Team) -> usize {
    team.pace.as_ref().map_or(limits.max_calls_per_team, |pace| {
        pace.limit().min(limits.max_calls_per_team)
    })
}

/// When the oldest ready event of `team` arrived: the head of its first ready lane (lanes become ready
/// roughly in arrival order, so that is the oldest or close to it).
fn oldest_ready<T>(lanes: &HashMap<LaneRef, Lane<T>>, team: &Team) -> Option<Instant> {
    let first = team.ready.front()?;
    lanes.get(first)?.waiting.front().map(|w| w.since)
}

/// Whether a batch of `team` should start at `now`: enough events ready, or the oldest waited long enough.
fn batch_due<T>(lanes: &HashMap<LaneRef, Lane<T>>, team: &Team, batch: BatchLimits, now: Instant) -> bool {
    let mut ready = 0;
    for lane in &team.ready {
        ready += lanes.get(lane).map_or(0, |l| l.waiting.len());
        if ready >= batch.max_events {
            return true;
        }
    }
    oldest_ready(lanes, team).is_some_and(|since| now.saturating_duration_since(since) >= batch.max_wait)
}

#[cfg(test)]
mod tests {
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
            s.push(0, offset, "acme", key(lane), "e", now);
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
        s.push(0, 0, "acme", LaneId::Team, "e", now);
        s.push(0, 1, "acme", LaneId::Team, "e", now);
        s.push(0, 2, "globex", LaneId::Free, "e", now);
        s.push(0, 3, "globex", LaneId::Free, "e", now);
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
            s.push(0, offset, "hot", LaneId::Free, "e", now);
        }
        s.push(1, 0, "cold", LaneId::Free, "e", now);
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
            s.push(0, offset, "hot", LaneId::Free, "e", now);
        }
        s.push(1, 0, "small", LaneId::Free, "e", now);
        s.push(2, 0, "tiny", LaneId::Free, "e", now);
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
            s.push(0, offset, team, LaneId::Team, "e", now);
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
            s.push(0, offset, team, LaneId::Team, "e", now);
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
            s.push(0, offset, "acme", key(lane), "e", t0);
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
        s.push(0, 0, "acme", key("r1"), "e", now);
        s.push(1, 0, "acme", key("r2"), "e", now);
        s.push(0, 1, "acme", key("r3"), "e", now);
        let calls: Vec<Vec<(i32, i64)>> = std::iter::from_fn(|| s.next_start(now))
            .map(|start| start.items.iter().map(|i| (i.partition, i.offset)).collect())
            .collect();
        assert_eq!(calls, [vec![(0, 0), (0, 1)], vec![(1, 0)]]);
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
            s.push(0, offset, "hot", LaneId::Free, "e", t0);
        }
        s.push(1, 0, "calm", LaneId::Free, "e", t0);
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
        s.push(0, 0, "d", LaneId::Team, "e", t0);
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
            s.push(0, offset, "acme", LaneId::Free, "e", t0);
        }
        s.push(1, 0, "globex", LaneId::Free, "e", t0);
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
            s.push(0, offset, "hot", LaneId::Team, "e", now);
        }
        s.push(1, 0, "calm", LaneId::Team, "e", now);
        assert!(
            s.crowded_partitions(&[]).is_empty(),
            "below half of the buffer every partition reads"
        );
        for offset in 4..6 {
            s.push(0, offset, "hot", LaneId::Team, "e", now);
        }
        s.push(2, 0, "calm", LaneId::Team, "e", now);
        assert_eq!(
            s.crowded_partitions(&[]),
            [0],
            "three partitions read: a share is 4"
        );
        assert!(!s.is_full());
        // Paused, partition 0 stays so until it holds half its share (2): three of its events end.
        for offset in 1..3 {
            s.push(1, offset, "calm", LaneId::Team, "e", now);
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
            s.push(0, offset, "acme", key(&format!("r{offset}")), "e", now);
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
        s.push(0, 0, "a", LaneId::Team, "e", now);
        s.push(1, 0, "b", LaneId::Team, "e", now);
        s.push(1, 1, "b", LaneId::Team, "e", now);
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
}
