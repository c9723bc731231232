//! The one reader of Switchyard's compacted topics (the control topics, the registry's store, the teams'
//! configs) and the one "read a topic until caught up" of the tools.
//!
//! ```text
//!   topic (every partition, from the beginning, read_committed, no group, nothing committed)
//!     │  at start: the low and high watermark of each partition ──► CatchUp (pure)
//!     ▼
//!   Apply::apply(record) in log order ──► Progress: applied up to (next offset per partition),
//!                                                   caught up, complete as of (a wall-clock time)
//! ```
//!
//! **Caught up** means every partition has been read up to the high watermark it had at start, or to its
//! end: a `read_committed` reader may meet the end below the high watermark (a transaction's commit
//! marker is the last offset), and a partition whose records retention or compaction removed has its low
//! watermark at its high one and nothing to read. **Applied up to** lets a writer wait until its own write
//! is applied here (read-your-writes). With `resync`, the follower also keeps publishing **complete as
//! of**: it notes the time, reads the current high watermarks, and once it has read up to them, every
//! record created before that time, less [`IN_FLIGHT_ALLOWANCE`], is applied (a record's timestamp is its
//! producer's, taken before the record reached the broker). On a topic written in transactions (the
//! registry's conditional writes), the last offsets below a mark may be commit markers or aborted records
//! that a `read_committed` reader is never given; a round then repositions the reader at its next offset
//! and counts the end of the partition met after that (see `Rounds`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::kafka::{ClientBuilder, ClientError, Clients, KafkaContext, metadata_partitions};

mod range;

pub use self::range::{RangeError, RangeReader};

const POLL: Duration = Duration::from_millis(100);
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a record may take from its producer's timestamp to the broker's log, for "complete as of".
pub const IN_FLIGHT_ALLOWANCE: Duration = Duration::from_millis(100);
/// The shortest time between the starts of two "complete as of" rounds.
const ROUND_INTERVAL: Duration = Duration::from_millis(50);

/// One record of the followed topic.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key, if any.
    pub key: Option<&'a [u8]>,
    /// Value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    /// Headers, if any.
    pub headers: Option<&'a BorrowedHeaders>,
    /// The record's timestamp in milliseconds since the Unix epoch, if it has one.
    pub timestamp_ms: Option<i64>,
}

impl<'a> Record<'a> {
    /// A consumed message as a record.
    fn of(message: &'a BorrowedMessage<'_>) -> Self {
        Self {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            value: message.payload(),
            headers: message.headers(),
            timestamp_ms: message.timestamp().to_millis(),
        }
    }
}

/// What a follower does with the records; runs on the follower's thread (or the reading thread of
/// [`read_until_caught_up`]).
pub trait Apply {
    /// Applies one record, in log order per partition.
    fn apply(&mut self, record: Record<'_>);

    /// The topic was read up to where it ended at start, `elapsed` after the follower began.
    fn caught_up(&mut self, elapsed: Duration) {
        let _ = elapsed;
    }

    /// Records still to read before caught up (reported until it is).
    fn lag(&mut self, records: i64) {
        let _ = records;
    }
}

/// Where a follower stands, for the tracker's owner to decide when reading is done. Pure: no Kafka.
#[derive(Debug, Clone, Default)]
pub struct CatchUp {
    /// Partition -> offset to reach; removed once reached.
    pending: HashMap<i32, i64>,
    /// Partition -> next offset to apply.
    next: HashMap<i32, i64>,
    /// Partitions whose end the reader met after the last record it applied of them.
    at_end: HashSet<i32>,
}

/// A partition's watermarks at start, or `None` when they could not be read (then only the end of the
/// partition tells that it was read).
pub type Marks = Option<(i64, i64)>;

impl CatchUp {
    /// A tracker for the partitions and their watermarks at start.
    pub fn new(partitions: impl IntoIterator<Item = (i32, Marks)>) -> Self {
        let mut tracker = Self::default();
        for (partition, marks) in partitions {
            match marks {
                Some((low, high)) => {
                    tracker.next.insert(partition, low);
                    if high > low {
                        tracker.pending.insert(partition, high);
                    }
                }
                None => {
                    tracker.pending.insert(partition, i64::MAX);
                }
            }
        }
        tracker
    }

    /// A record at `offset` of `partition` was applied.
    pub fn record(&mut self, partition: i32, offset: i64) {
        self.at_end.remove(&partition);
        let next = offset + 1;
        self.next.insert(partition, next);
        if self.pending.get(&partition).is_some_and(|&target| next >= target) {
            self.pending.remove(&partition);
        }
    }

    /// The reader met the end of `partition`.
    pub fn end_of_partition(&mut self, partition: i32) {
        self.pending.remove(&partition);
        self.at_end.insert(partition);
    }

    /// Whether the reader met the end of `partition` after the last record it applied of it.
    pub fn at_end(&self, partition: i32) -> bool {
        self.at_end.contains(&partition)
    }

    /// Whether every partition is read up to its mark.
    pub fn is_caught_up(&self) -> bool {
        self.pending.is_empty()
    }

    /// Records still to read (a partition whose mark is unknown counts one).
    pub fn lag(&self) -> i64 {
        self.pending
            .iter()
            .map(|(partition, &target)| {
                if target == i64::MAX {
                    1
                } else {
                    (target - self.next_offset(*partition)).max(0)
                }
            })
            .sum()
    }

    /// The next offset to apply of `partition` (0 before anything was read).
    pub fn next_offset(&self, partition: i32) -> i64 {
        self.next.get(&partition).copied().unwrap_or(0)
    }

    /// Whether every partition's next offset has reached its offset in `targets` (a resync round's high
    /// watermarks).
    pub fn reached(&self, targets: &HashMap<i32, i64>) -> bool {
        targets
            .iter()
            .all(|(&partition, &high)| self.next_offset(partition) >= high)
    }

    /// Partition -> next offset to apply.
    pub fn applied(&self) -> &HashMap<i32, i64> {
        &self.next
    }
}

/// Rounds of "complete as of": note the time, read the high watermarks, and once every partition is read
/// up to them, publish that time less [`IN_FLIGHT_ALLOWANCE`]. A round starts at most every
/// [`ROUND_INTERVAL`] (each reads the marks from the broker), right after the previous one ends; a round
/// whose marks are already read ends at once. Pure: the caller passes the clocks and the mark reader.
///
/// **Transaction markers.** A `read_committed` reader's mark is the last stable offset, and the last
/// offsets below it may hold no record it is given: a commit marker, an aborted transaction. Its next
/// offset then stays below the mark although it has read everything. So a partition the reader has met
/// the end of, below its mark, is repositioned at its next offset ([`Advance::seek`]): the seek starts a
/// new fetch, whose end of partition, met after the marks were read, vouches for the mark
/// ([`Rounds::end_of_partition`]).
#[derive(Debug, Default)]
struct Rounds {
    current: Option<Round>,
    last_start: Option<Instant>,
}

/// The running round.
#[derive(Debug)]
struct Round {
    /// The time it vouches for.
    as_of: SystemTime,
    /// The marks to reach.
    targets: HashMap<i32, i64>,
    /// Partitions repositioned in this round, whose end the reader has not met since.
    seeking: HashSet<i32>,
    /// Partitions whose end the reader met after being repositioned in this round.
    confirmed: HashSet<i32>,
}

/// What a step of the rounds asks of the reader.
#[derive(Debug, Default, PartialEq, Eq)]
struct Advance {
    /// The time to publish, when a round ended.
    ended: Option<SystemTime>,
    /// Partitions to reposition at their next offset.
    seek: Vec<i32>,
}

impl Round {
    fn reached(&self, catch_up: &CatchUp) -> bool {
        self.targets.iter().all(|(&partition, &mark)| {
            catch_up.next_offset(partition) >= mark || self.confirmed.contains(&partition)
        })
    }

    /// The partitions below their mark whose end the reader met: to reposition, once per round.
    fn take_seeks(&mut self, catch_up: &CatchUp) -> Vec<i32> {
        let mut seek: Vec<i32> = self
            .targets
            .iter()
            .filter(|(partition, mark)| {
                catch_up.next_offset(**partition) < **mark
                    && catch_up.at_end(**partition)
                    && !self.seeking.contains(*partition)
                    && !self.confirmed.contains(*partition)
            })
            .map(|(partition, _)| *partition)
            .collect();
        seek.sort_unstable();
        self.seeking.extend(&seek);
        seek
    }
}

impl Rounds {
    /// Ends the running round if `catch_up` reached its marks, and starts the next one when due; returns
    /// the time to publish, if a round ended.
    fn advance(
        &mut self,
        now: Instant,
        wall: SystemTime,
        catch_up: &CatchUp,
        marks: impl FnOnce() -> Option<HashMap<i32, i64>>,
    ) -> Advance {
        let mut ended = None;
        if let Some(round) = &self.current
            && round.reached(catch_up)
        {
            ended = Some(round.as_of);
            self.current = None;
        }
        if self.current.is_none() && self.last_start.is_none_or(|at| now - at >= ROUND_INTERVAL) {
            self.last_start = Some(now);
            // The time first: a record written after it may be missed by the marks read next. And a record's
            // timestamp is its producer's, taken before it reached the broker: one created just before the
            // marks were read may still be on its way, so the round vouches only for what was created
            // IN_FLIGHT_ALLOWANCE before.
            let as_of = wall - IN_FLIGHT_ALLOWANCE;
            if let Some(targets) = marks() {
                if catch_up.reached(&targets) {
                    ended = Some(as_of);
                } else {
                    self.current = Some(Round {
                        as_of,
                        targets,
                        seeking: HashSet::new(),
                        confirmed: HashSet::new(),
                    });
                }
            }
        }
        let seek = self
            .current
            .as_mut()
            .map(|round| round.take_seeks(catch_up))
            .unwrap_or_default();
        Advance { ended, seek }
    }

    /// The reader met the end of `partition`: after a reposition of this round, the mark is reached.
    fn end_of_partition(&mut self, partition: i32) {
        if let Some(round) = &mut self.current
            && round.seeking.remove(&partition)
        {
            round.confirmed.insert(partition);
        }
    }
}

/// What a follower publishes to waiters.
struct Progress {
    caught_up: watch::Sender<bool>,
    applied: watch::Sender<HashMap<i32, i64>>,
    complete_as_of: watch::Sender<SystemTime>,
}

impl Progress {
    fn new() -> Self {
        Self {
            caught_up: watch::Sender::new(false),
            applied: watch::Sender::new(HashMap::new()),
            complete_as_of: watch::Sender::new(SystemTime::UNIX_EPOCH),
        }
    }
}

/// Why a follower could not start or a read did not finish.
#[derive(Debug, Error)]
pub enum FollowError {
    /// The consumer could not be made.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The follower's thread could not start.
    #[error("cannot start the follower of {topic}: {source}")]
    Thread {
        /// The topic.
        topic: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The topic does not exist.
    #[error("the topic {0} does not exist")]
    NoSuchTopic(String),
    /// Kafka did not answer a metadata request.
    #[error("reading the metadata of {topic} failed: {source}")]
    Metadata {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The topic was not read to its end in time; what was read is incomplete and must not be used.
    #[error(
        "reading {topic} to its end did not finish within {} s ({lag} records still unread); nothing was \
         used of what was read. Check that the brokers are reachable with these settings (kafka.options), \
         or allow longer",
        timeout.as_secs()
    )]
    TimedOut {
        /// The topic.
        topic: String,
        /// The limit.
        timeout: Duration,
        /// Records still unread (see [`CatchUp::lag`]).
        lag: i64,
    },
}

/// Options of a follower.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// The topic.
    pub topic: String,
    /// Names the client, its thread and its log lines.
    pub name: String,
    /// Keep publishing "complete as of" after catching up.
    pub resync: bool,
}

/// A follower thread and what it publishes. Stops with its token, or with [`Follower::stop`].
pub struct Follower {
    progress: Arc<Progress>,
    stop: CancellationToken,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Follower {
    /// Starts following; returns at once. `shutdown` stops it (a child token, so [`Follower::stop`] does
    /// not cancel the caller's).
    pub fn spawn(
        clients: &Clients,
        options: FollowOptions,
        mut applier: impl Apply + Send + 'static,
        shutdown: &CancellationToken,
    ) -> Result<Self, FollowError> {
        let consumer = consumer(clients, &options.name)?;
        let progress = Arc::new(Progress::new());
        let stop = shutdown.child_token();
        let (shared, token, topic) = (Arc::clone(&progress), stop.clone(), options.topic.clone());
        let thread = std::thread::Builder::new()
            .name(format!("follow-{}", options.name))
            .spawn(move || {
                let Some(partitions) = wait_for_topic(&consumer, &topic, &token) else {
                    return;
                };
                let mut reader = Reader::start(&consumer, &topic, &partitions);
                reader.run(&mut applier, &shared, &token, options.resync, None);
            })
            .map_err(|source| FollowError::Thread {
                topic: options.topic,
                source,
            })?;
        Ok(Self {
            progress,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Whether the topic has been read up to where it ended at start.
    pub fn caught_up(&self) -> bool {
        *self.progress.caught_up.borrow()
    }

    /// Waits until [`Follower::caught_up`] (forever if the follower stops first).
    pub async fn wait_caught_up(&self) {
        let mut caught_up = self.progress.caught_up.subscribe();
        let _ = caught_up.wait_for(|&done| done).await;
    }

    /// The next offset of `partition` to apply: one past the last record applied (0 before any). Records
    /// a `read_committed` reader skips (aborted ones, transaction markers) do not move it.
    pub fn next_offset(&self, partition: i32) -> i64 {
        self.progress
            .applied
            .borrow()
            .get(&partition)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until the record at `offset` of `partition` is applied, at most `limit`; whether it is.
    pub async fn wait_applied(&self, partition: i32, offset: i64, limit: Duration) -> bool {
        let mut applied = self.progress.applied.subscribe();
        let seen = applied.wait_for(|next| next.get(&partition).is_some_and(|&n| n > offset));
        tokio::time::timeout(limit, seen).await.is_ok_and(|r| r.is_ok())
    }

    /// Waits until everything written before `time` is applied, at most `limit` (`Duration::MAX`: no
    /// limit); whether it is. Needs `resync` to move past the initial catch-up.
    pub async fn wait_complete(&self, time: SystemTime, limit: Duration) -> bool {
        let mut complete = self.progress.complete_as_of.subscribe();
        let done = complete.wait_for(|as_of| *as_of >= time);
        if limit == Duration::MAX {
            return done.await.is_ok();
        }
        tokio::time::timeout(limit, done).await.is_ok_and(|r| r.is_ok())
    }

    /// Stops the thread and waits for it.
    pub fn stop(&self) {
        self.stop.cancel();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads `topic` from the beginning until caught up (as a [`Follower`] would), applying every record,
/// within `timeout`. A topic that does not exist is an error; so is running out of time, and then the
/// caller must not use what was applied: it is part of the topic only. Blocks the calling thread.
pub fn read_until_caught_up(
    clients: &Clients,
    topic: &str,
    name: &str,
    applier: &mut impl Apply,
    timeout: Duration,
) -> Result<(), FollowError> {
    let deadline = Instant::now() + timeout;
    let consumer = consumer(clients, name)?;
    let partitions =
        metadata_partitions(consumer.client(), topic, timeout.min(METADATA_TIMEOUT)).map_err(|source| {
            FollowError::Metadata {
                topic: topic.to_owned(),
                source,
            }
        })?;
    if partitions.is_empty() {
        return Err(FollowError::NoSuchTopic(topic.to_owned()));
    }
    let mut reader = Reader::start(&consumer, topic, &partitions);
    let progress = Progress::new();
    reader.run(
        applier,
        &progress,
        &CancellationToken::new(),
        false,
        Some(deadline),
    );
    if reader.catch_up.is_caught_up() {
        Ok(())
    } else {
        Err(FollowError::TimedOut {
            topic: topic.to_owned(),
            timeout,
            lag: reader.catch_up.lag(),
        })
    }
}

fn consumer(clients: &Clients, name: &str) -> Result<BaseConsumer<KafkaContext>, ClientError> {
    consumer_builder(clients, name).create()
}

fn consumer_builder(clients: &Clients, name: &str) -> ClientBuilder {
    clients
        .consumer(name)
        // librdkafka requires a group id for a consumer handle even when it never joins the group.
        .managed("group.id", format!("switchyard-follower-{name}-unused"))
        .managed("enable.auto.commit", "false")
        .managed("enable.auto.offset.store", "false")
        .managed("isolation.level", "read_committed")
        .managed("enable.partition.eof", "true")
        .managed("allow.auto.create.topics", "false")
        .tunable("fetch.wait.max.ms", "100")
}

/// Waits until the topic exists and returns its partitions; `None` if stopped first.
fn wait_for_topic(
    consumer: &BaseConsumer<KafkaContext>,
    topic: &str,
    stop: &CancellationToken,
) -> Option<Vec<i32>> {
    let mut last_warning: Option<Instant> = None;
    while !stop.is_cancelled() {
        match metadata_partitions(consumer.client(), topic, METADATA_TIMEOUT) {
            Ok(partitions) if !partitions.is_empty() => return Some(partitions),
            outcome => {
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    let reason = match outcome {
                        Err(error) => error.to_string(),
                        Ok(_) => "it does not exist".to_owned(),
                    };
                    warn!(topic, %reason, "waiting for the compacted topic; create it with cleanup.policy=compact");
                    last_warning = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    None
}

/// One assigned consumer and its tracker.
struct Reader<'a> {
    consumer: &'a BaseConsumer<KafkaContext>,
    topic: &'a str,
    partitions: Vec<i32>,
    catch_up: CatchUp,
    started: Instant,
    started_at: SystemTime,
}

impl<'a> Reader<'a> {
    /// Notes the watermarks and assigns every partition from the beginning.
    fn start(consumer: &'a BaseConsumer<KafkaContext>, topic: &'a str, partitions: &[i32]) -> Self {
        let (started, started_at) = (Instant::now(), SystemTime::now());
        let mut assignment = TopicPartitionList::new();
        let mut marks = Vec::new();
        for &partition in partitions {
            let mark = match consumer.fetch_watermarks(topic, partition, METADATA_TIMEOUT) {
                Ok(mark) => Some(mark),
                Err(error) => {
                    warn!(%error, topic, partition, "reading the watermarks failed; waiting for the end of the partition");
                    None
                }
            };
            marks.push((partition, mark));
            if let Err(error) = assignment.add_partition_offset(topic, partition, Offset::Beginning) {
                warn!(%error, topic, partition, "building the assignment failed");
            }
        }
        if let Err(error) = consumer.assign(&assignment) {
            warn!(%error, topic, "assigning the topic failed");
        }
        Self {
            consumer,
            topic,
            partitions: partitions.to_vec(),
            catch_up: CatchUp::new(marks),
            started,
            started_at,
        }
    }

    /// Reads until stopped, or until caught up when `deadline` is set (or the deadline passes).
    fn run(
        &mut self,
        applier: &mut impl Apply,
        progress: &Progress,
        stop: &CancellationToken,
        resync: bool,
        deadline: Option<Instant>,
    ) {
        let mut rounds = Rounds::default();
        while !stop.is_cancelled() && deadline.is_none_or(|d| Instant::now() < d) {
            match self.consumer.poll(POLL) {
                None => {}
                Some(Ok(message)) => {
                    applier.apply(Record::of(&message));
                    self.catch_up.record(message.partition(), message.offset());
                    let (partition, next) = (message.partition(), message.offset() + 1);
                    progress.applied.send_modify(|applied| {
                        applied.insert(partition, next);
                    });
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    self.catch_up.end_of_partition(partition);
                    rounds.end_of_partition(partition);
                }
                Some(Err(error)) => warn!(%error, topic = self.topic, "reading the topic failed"),
            }
            if !*progress.caught_up.borrow() {
                applier.lag(self.catch_up.lag());
                if self.catch_up.is_caught_up() {
                    let elapsed = self.started.elapsed();
                    info!(
                        topic = self.topic,
                        elapsed_ms = elapsed.as_millis() as u64,
                        "caught up"
                    );
                    applier.caught_up(elapsed);
                    progress
                        .complete_as_of
                        .send_replace(self.started_at - IN_FLIGHT_ALLOWANCE);
                    progress.caught_up.send_replace(true);
                    if deadline.is_some() {
                        return;
                    }
                }
                continue;
            }
            if !resync {
                continue;
            }
            let (now, wall) = (Instant::now(), SystemTime::now());
            let step = rounds.advance(now, wall, &self.catch_up, || self.high_watermarks());
            if let Some(as_of) = step.ended {
                progress.complete_as_of.send_replace(as_of);
            }
            for partition in step.seek {
                let next = Offset::Offset(self.catch_up.next_offset(partition));
                if let Err(error) = self.consumer.seek(self.topic, partition, next, METADATA_TIMEOUT) {
                    warn!(%error, topic = self.topic, partition, "repositioning the reader failed");
                }
            }
        }
    }

    /// Every partition's high watermark now; `None` if one could not be read.
    fn high_watermarks(&self) -> Option<HashMap<i32, i64>> {
        let mut targets = HashMap::new();
        for &partition in &self.partitions {
            match self
                .consumer
                .fetch_watermarks(self.topic, partition, METADATA_TIMEOUT)
            {
                Ok((_, high)) => {
                    targets.insert(partition, high);
                }
                Err(error) => {
                    warn!(%error, topic = self.topic, partition, "reading the high watermark failed");
                    return None;
                }
            }
        }
        Some(targets)
    }
}

#[cfg(test)]
mod tests;
