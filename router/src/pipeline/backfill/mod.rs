//! Backfills: a held installation's past events, written by the router owner of the team's partition
//! inside its own transactions, then live routing of the installation resumes where history ends.
//!
//! ```text
//!   enablement carries backfill B ──► live routing leaves the installation out on that partition (held)
//!        │                             from the first record it meets: the hold point
//!        ▼
//!   run(B, partition): a reader of its own over [from, until) + [hold, frontier) of core.events,
//!        │             planned for the installation alone, paced, copies in the open transaction
//!        │             with the run's progress record and the input offsets
//!        ▼
//!   the reader reaches live routing's next offset (or the end): the run flips, live routing takes the
//!   installation from there, in the same transaction
//! ```
//!
//! One writer per offset: the backfill below the flip, live routing from it, each recorded in the same
//! transaction as its copies, and both writing the team's plugin partition from one producer, so per key
//! history precedes live. A partition's new owner reads the committed progress of its partitions before it
//! routes a held installation there ([`Backfills::needs_load`]). The pure state of one run is in [`run`];
//! the Kafka side in [`history`]; the engine drives both (`delivery::backfills`).

pub mod history;
pub mod run;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use switchyard_schemas::backfill::{Progress, Request, State};
use switchyard_schemas::topics::partition_for_key;
use switchyard_service::follower::FollowError;
use switchyard_service::kafka::Clients;
use switchyard_service::token_bucket::TokenBucket;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::pipeline::backfill::history::HistoryReader;
use crate::pipeline::backfill::run::Run;
use crate::tables::routes::{Hold, RouteTable};

/// The settings of backfills.
#[derive(Debug, Clone)]
pub struct BackfillSettings {
    /// The input topic.
    pub input_topic: String,
    /// Where progress records go.
    pub progress_topic: String,
    /// Copies per second of a backfill whose request sets no rate.
    pub default_rate: u32,
    /// Copies per second of all backfills of this replica.
    pub max_rate: u32,
    /// Records one run reads per step at most.
    pub scan_per_step: usize,
    /// Time between steps.
    pub step_interval: Duration,
    /// Bound of reading the committed progress at assignment (longer than a transaction's timeout: an
    /// earlier owner's open transaction is waited for).
    pub load_timeout: Duration,
    /// Bound of the reader's metadata calls.
    pub metadata_timeout: Duration,
}

/// A run and what drives it.
pub struct Active {
    /// The state.
    pub run: Run,
    /// Its reader; `None` once live routing has the installation back (and that is committed).
    pub reader: Option<HistoryReader>,
    /// Its own pace.
    pub bucket: TokenBucket,
}

/// The backfills of one replica: a run per (backfill, partition) it owns.
pub struct Backfills {
    settings: BackfillSettings,
    clients: Clients,
    /// The input topic's partition count, for a team's partition.
    partitions: i32,
    runs: HashMap<(Arc<str>, i32), Active>,
    owned: HashSet<i32>,
    /// Owned partitions whose committed progress is not read yet.
    unloaded: HashSet<i32>,
    /// The committed offset of owned partitions this replica has not processed since assignment.
    positions: HashMap<i32, i64>,
    total: TokenBucket,
    next_step: Instant,
    /// Records read, matched, written and dead-lettered in the open transaction, published at commit.
    pending: [u64; 4],
    /// The progress topic was missing: no run starts, held installations stay held, until this time,
    /// when it is looked for again.
    topic_missing_until: Option<Instant>,
}

/// How long a missing progress topic is not looked for again.
const MISSING_TOPIC_RECHECK: Duration = Duration::from_secs(10);

impl Backfills {
    /// No runs yet; `partitions` of the input topic.
    pub fn new(settings: BackfillSettings, clients: Clients, partitions: i32) -> Self {
        let now = Instant::now();
        Self {
            total: TokenBucket::new(f64::from(settings.max_rate), now),
            settings,
            clients,
            partitions,
            runs: HashMap::new(),
            owned: HashSet::new(),
            unloaded: HashSet::new(),
            positions: HashMap::new(),
            next_step: now,
            pending: [0; 4],
            topic_missing_until: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &BackfillSettings {
        &self.settings
    }

    /// The input partition of `team`'s events (contract section 2).
    pub fn partition_of(&self, team: &str) -> i32 {
        partition_for_key(team.as_bytes(), self.partitions)
    }

    /// Partitions were assigned: their committed progress must be read before a held installation is
    /// routed there.
    pub fn assigned(&mut self, partitions: &[i32]) {
        for &p in partitions {
            self.owned.insert(p);
            self.unloaded.insert(p);
            self.positions.remove(&p);
        }
    }

    /// Partitions were revoked (after their last commit): their runs stop here and go on at the next owner.
    pub fn revoked(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.owned.remove(p);
            self.unloaded.remove(p);
            self.positions.remove(p);
        }
        self.runs.retain(|(_, p), _| !partitions.contains(p));
    }

    /// Whether this replica owns `partition`.
    pub fn owns(&self, partition: i32) -> bool {
        self.owned.contains(&partition)
    }

    /// Whether `partition`'s committed progress must be read first.
    pub fn needs_load(&self, partition: i32) -> bool {
        self.unloaded.contains(&partition)
    }

    /// Reads the committed progress of every owned partition not read yet, and resumes its runs (those
    /// whose installation `table` still holds for the same backfill). Blocking.
    /// Without the progress topic no run can record its progress: none starts, and held installations stay
    /// held (their live events wait in the input topic) until it exists; a WARN line says so, and it is
    /// looked for again every [`MISSING_TOPIC_RECHECK`].
    pub fn load(&mut self, table: &RouteTable) -> Result<(), FollowError> {
        if self.unloaded.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let found = match history::load_progress(
            &self.clients,
            &self.settings.progress_topic,
            &self.unloaded,
            self.settings.load_timeout,
        ) {
            Err(FollowError::NoSuchTopic(topic)) => {
                warn!(%topic, held = table.held_count(), "the backfill progress topic does not exist: no \
                    backfill runs, and installations held by one stay held until it exists");
                self.topic_missing_until = Some(Instant::now() + MISSING_TOPIC_RECHECK);
                self.unloaded.clear();
                return Ok(());
            }
            other => other?,
        };
        self.topic_missing_until = None;
        let holds: HashMap<String, Hold> = table
            .holds()
            .into_iter()
            .map(|h| (h.backfill.id.clone(), h))
            .collect();
        let loaded = found.len();
        for ((id, partition), progress) in found {
            let Some(hold) = holds.get(&id) else {
                if !progress.is_live() {
                    warn!(backfill = %id, partition, "a backfill's installation is no longer held; its run ends here");
                }
                continue;
            };
            if let Err(error) = self.resume(hold.clone(), progress) {
                warn!(%error, backfill = %id, partition, "cannot resume a backfill's reader");
            }
        }
        info!(
            partitions = self.unloaded.len(),
            runs = loaded,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "backfill progress read"
        );
        self.unloaded.clear();
        Ok(())
    }

    fn resume(&mut self, hold: Hold, progress: Progress) -> Result<(), KafkaError> {
        let partition = progress.partition;
        let reader = if progress.is_live() {
            None
        } else {
            let reader = self.reader(partition)?;
            reader.seek(progress.next)?;
            Some(reader)
        };
        let bucket = self.bucket(hold.backfill.rate);
        let key = (Arc::from(progress.backfill.as_str()), partition);
        self.runs.insert(
            key,
            Active {
                run: Run::resume(hold, progress),
                reader,
                bucket,
            },
        );
        Ok(())
    }

    fn reader(&self, partition: i32) -> Result<HistoryReader, KafkaError> {
        HistoryReader::new(&self.clients, &self.settings.input_topic, partition).map_err(
            |error| match error {
                switchyard_service::kafka::ClientError::Create { source, .. } => source,
                other => KafkaError::ClientCreation(other.to_string()),
            },
        )
    }

    fn bucket(&self, rate: Option<u32>) -> TokenBucket {
        let rate = rate
            .unwrap_or(self.settings.default_rate)
            .min(self.settings.max_rate);
        TokenBucket::new(f64::from(rate), Instant::now())
    }

    /// Whether the backfill `request` handed its installation back to live routing on `partition`.
    pub fn is_live(&self, request: &Request, partition: i32) -> bool {
        self.runs
            .get(&(Arc::from(request.id.as_str()), partition))
            .is_some_and(|a| a.run.is_live())
    }

    /// Whether backfill `id` has a run on `partition`.
    pub fn has(&self, id: &str, partition: i32) -> bool {
        self.runs.contains_key(&(Arc::from(id), partition))
    }

    /// Starts a run of `hold` on `partition`, holding from offset `at` (live routing's next offset there):
    /// finds where history starts and ends and positions a reader. Blocking (two offset look-ups).
    pub fn start(&mut self, hold: Hold, partition: i32, at: i64, now: &str) -> Result<(), KafkaError> {
        if self.topic_missing_until.is_some() {
            return Ok(()); // stays held: see `load`
        }
        let reader = self.reader(partition)?;
        let timeout = self.settings.metadata_timeout;
        let request = Arc::clone(&hold.backfill);
        let from = reader.offset_for_time(request.since_ms(), timeout)?;
        let until = match request.until_ms() {
            Some(ms) => reader.offset_for_time(ms, timeout)?,
            None => at,
        };
        let run = Run::start(hold, partition, from, until, at, now);
        reader.seek(run.next())?;
        let p = run.progress();
        info!(backfill = %p.backfill, team = %run.hold.team, plugin = %run.hold.plugin,
            installation = %run.hold.installation, partition, from = p.from, until = p.until, hold = at,
            "backfill started");
        let bucket = self.bucket(request.rate);
        self.runs.insert(
            (Arc::from(request.id.as_str()), partition),
            Active {
                run,
                reader: Some(reader),
                bucket,
            },
        );
        Ok(())
    }

    /// Forgets the runs that handed over (committed) whose installation is no longer held by them: the
    /// registry released it.
    pub fn forget_released(&mut self, held: impl Fn(&str) -> bool) {
        self.runs
            .retain(|(id, _), a| !(a.run.is_live() && a.reader.is_none()) || held(id));
    }

    /// Looks for a missing progress topic again when due: every owned partition's progress is read
    /// again at the next occasion.
    pub fn recheck_topic(&mut self, now: Instant) {
        if self.topic_missing_until.is_some_and(|until| now >= until) {
            self.topic_missing_until = None;
            self.unloaded.extend(self.owned.iter().copied());
        }
    }

    /// Whether a step is due now (and then the next one is due a step interval later).
    pub fn step_due(&mut self, now: Instant) -> bool {
        if now < self.next_step || !self.runs.values().any(|a| a.reader.is_some()) {
            return false;
        }
        self.next_step = now + self.settings.step_interval;
        true
    }

    /// How long the loop may wait for a live record before the next step.
    pub fn poll_timeout(&self, cap: Duration) -> Duration {
        if self.runs.values().any(|a| a.reader.is_some()) {
            cap.min(self.settings.step_interval)
        } else {
            cap
        }
    }

    /// The runs still reading, by key.
    pub fn reading(&self) -> Vec<(Arc<str>, i32)> {
        self.runs
            .iter()
            .filter(|(_, a)| a.reader.is_some() && !a.run.is_live())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// One run, to drive.
    pub fn active_mut(&mut self, key: &(Arc<str>, i32)) -> Option<&mut Active> {
        self.runs.get_mut(key)
    }

    /// The shared pace of all runs.
    pub fn total(&mut self) -> &mut TokenBucket {
        &mut self.total
    }

    /// The committed offset of an owned partition untouched since assignment, once asked.
    pub fn position(&self, partition: i32) -> Option<i64> {
        self.positions.get(&partition).copied()
    }

    /// Remembers the committed offset of an owned partition untouched since assignment.
    pub fn set_position(&mut self, partition: i32, offset: i64) {
        self.positions.insert(partition, offset);
    }

    /// Counts what a step did, for the metrics at commit: records read, matched, written, dead-lettered.
    pub fn tally(&mut self, counts: [u64; 4]) {
        for (total, n) in self.pending.iter_mut().zip(counts) {
            *total += n;
        }
    }

    /// The progress records the open transaction must carry: `(partition, key, value)`.
    pub fn records(&mut self, now: &str) -> Vec<(i32, String, Vec<u8>)> {
        let mut out = Vec::new();
        for ((id, partition), active) in &mut self.runs {
            if let Some(progress) = active.run.take_record(now) {
                match serde_json::to_vec(progress) {
                    Ok(value) => out.push((
                        *partition,
                        switchyard_schemas::backfill::progress_key(id, *partition),
                        value,
                    )),
                    Err(error) => warn!(%error, "a progress record could not be serialized"),
                }
            }
        }
        out
    }

    /// The transaction committed: every run's state is durable; readers of runs that handed over close.
    pub fn committed(&mut self, metrics: &Metrics) {
        for (label, n) in ["scanned", "matched", "written", "dead_lettered"]
            .into_iter()
            .zip(std::mem::take(&mut self.pending))
        {
            if n > 0 {
                metrics.backfill_records.with_label_values(&[label]).inc_by(n);
            }
        }
        for active in self.runs.values_mut() {
            active.run.committed();
            if active.run.is_live() && active.reader.take().is_some() {
                let p = active.run.progress();
                info!(backfill = %p.backfill, partition = p.partition, state = p.state.as_str(),
                    live_from = p.live_from, scanned = p.scanned, matched = p.matched, written = p.written,
                    dead_lettered = p.dead_lettered, "backfill handed over to live routing");
            }
        }
        self.set_gauges(metrics);
    }

    /// The transaction was aborted: runs go back to their committed state (runs that never committed
    /// are gone), and readers to their committed position.
    pub fn rewound(&mut self) {
        self.pending = [0; 4];
        let mut gone = Vec::new();
        let mut broken = Vec::new();
        for (key, active) in &mut self.runs {
            if !active.run.rewound() {
                gone.push(key.clone());
                continue;
            }
            if active.run.is_live() {
                active.reader = None;
                continue;
            }
            let next = active.run.next();
            if let Some(reader) = &active.reader
                && let Err(error) = reader.seek(next)
            {
                warn!(%error, backfill = %key.0, partition = key.1, "rewinding a backfill's reader failed");
                broken.push(key.clone());
            }
        }
        for key in gone {
            self.runs.remove(&key);
        }
        for key in broken {
            // Made again at the next load: forget the run, and read its partition's progress again.
            self.runs.remove(&key);
            self.unloaded.insert(key.1);
        }
    }

    /// Sets the runs gauge.
    pub fn set_gauges(&self, metrics: &Metrics) {
        let mut counts: HashMap<&str, i64> = HashMap::new();
        for active in self.runs.values() {
            let p = active.run.progress();
            let state = if p.live_from.is_none() && p.state == State::Running {
                "running"
            } else {
                p.state.as_str()
            };
            *counts.entry(state).or_default() += 1;
        }
        for state in ["running", "done", "cancelled", "failed"] {
            metrics
                .backfills
                .with_label_values(&[state])
                .set(counts.get(state).copied().unwrap_or(0));
        }
    }
}
