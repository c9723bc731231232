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
//! - **Lanes.** Every event belongs to one lane of its team's installation ([`LaneId`], derived from the
//!   plugin's `ordering`): the events of one lane run one after the other, in the topic's order; different
//!   lanes (and installations) run concurrently. An event that is slow or retrying holds only its own lane.
//! - **Calls and fair shares.** A start is one call to the plugin: one event, or a batch of events of one
//!   team's installation (its config applies to all of them) and of one partition (several lanes; a lane's
//!   events in order; a lane is never in two running calls). At most `max_calls` run at once and at most
//!   `max_calls_per_team` per team, whatever its installations. Teams with work waiting take turns, one call per
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
pub use crate::plugin::Owner;

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

/// A lane's identity: partition, team, installation, and the key within them (`Free` lanes by offset).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LaneRef {
    partition: i32,
    team: String,
    installation: String,
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

/// A call to start: events of one team's installation (one, or a batch), lanes in the order they became
/// ready and each lane's events in topic order.
#[derive(Debug, PartialEq)]
pub struct Start<T> {
    /// Team.
    pub team: String,
    /// Installation.
    pub installation: String,
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

    /// Adds an event read from `partition` at `offset`, of `owner`, in `lane`, at `now`.
    pub fn push(
        &mut self,
        partition: i32,
        offset: i64,
        owner: Owner<'_>,
        lane: LaneId,
        item: T,
        now: Instant,
    ) {
        let lane = LaneRef {
            partition,
            team: owner.team.to_owned(),
            installation: owner.installation.to_owned(),
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
            // A call's events share one partition (one revocation cancels them together) and one installation
            // (one config): the team's lanes of another wait for a later call, in their place.
            let mut first: Option<(i32, String)> = None;
            let mut for_later = Vec::new();
            while items.len() < max_events
                && let Some(lane_ref) = team.ready.pop_front()
            {
                match &first {
                    Some((partition, installation))
                        if (*partition, installation) != (lane_ref.partition, &lane_ref.installation) =>
                    {
                        for_later.push(lane_ref);
                        continue;
                    }
                    Some(_) => {}
                    None => first = Some((lane_ref.partition, lane_ref.installation.clone())),
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
            for lane in for_later.into_iter().rev() {
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
            let installation = first.map(|(_, installation)| installation).unwrap_or_default();
            return Some(Start {
                team: name,
                installation,
                items,
            });
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
mod tests;
