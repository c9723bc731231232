//! Compare-and-set on the store's compacted topics, decided in log order, with no leader.
//!
//! ```text
//!   put_if(topic, key, value, expect)
//!     1. this replica's view already holds a newer version of the key than the one expected ─► conflict
//!     2. begin a transaction, produce the record ─► partition P, offset O (no read_committed reader sees it)
//!     3. wait until P's last stable offset is O: every transaction with a record before O is committed
//!        or aborted (ours, open at O, holds it there)
//!     4. read P's committed records from this replica's view's next offset up to O: the key's version
//!        just before O (the view's version when none of them is the key's)
//!     5. expect admits that version ─► commit: the key's version is now O
//!        otherwise                 ─► abort: no reader ever sees the record, compaction drops it ─► conflict
//! ```
//!
//! A key's **version** is the offset of its current record, which compaction keeps. Every writer decides
//! from the same committed records before its own, so two writers that expect the same version cannot
//! both commit: the later one in the log meets the earlier one's committed record in step 4. Readers of
//! the topics (other replicas, the router, the plugin workers) read `read_committed` and never see a
//! refused record. Writes without an expectation ([`Expect::Any`]) are plain idempotent writes, as before.
//!
//! Costs: a replica decides one conditional write at a time (one transactional producer), and a record in
//! an open transaction holds back every `read_committed` reader of its partition until it ends (a few
//! milliseconds). A replica killed between 2 and 5 holds them back until the broker aborts its
//! transaction, after the store's write timeout (`transaction.timeout.ms`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{Producer, ThreadedProducer};
use switchyard_service::follower::{Apply, RangeError, RangeReader, Record};
use switchyard_service::kafka::Clients;
use tokio::sync::Mutex;
use tracing::warn;

use super::{Acknowledgements, StoreError};

/// How long aborting the transaction of a failed write may take.
const ABORT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a write expects the key's current version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: the write happens whatever the key holds (every write before compare-and-set).
    Any,
    /// The key's current record is the one at this offset (`If-Match` with an ETag).
    Version(i64),
    /// The key holds a record (`If-Match: *`).
    Exists,
    /// The key holds none (`If-None-Match: *`).
    Absent,
}

impl Expect {
    /// Whether a key whose current version is `current` (`None`: no record) meets the expectation.
    pub fn admits(self, current: Option<i64>) -> bool {
        match self {
            Self::Any => true,
            Self::Version(version) => current == Some(version),
            Self::Exists => current.is_some(),
            Self::Absent => current.is_none(),
        }
    }

    /// Whether `current`, from a view that may be behind the log but never ahead of it, already shows
    /// that the expectation fails: versions only grow, so a record newer than the one expected means the
    /// key changed after it, whatever follows.
    pub fn refused_by(self, current: Option<i64>) -> bool {
        matches!((self, current), (Self::Version(expected), Some(current)) if current > expected)
    }
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written: the key's new version (`None` when the write removed the key).
    Written(Option<i64>),
    /// Refused: the key's version the write was decided against (`None`: no record).
    Conflict(Option<i64>),
}

/// The key's version after its records `(offset, is a removal)`, in log order, from `base`.
pub fn version_after(base: Option<i64>, records: impl IntoIterator<Item = (i64, bool)>) -> Option<i64> {
    records
        .into_iter()
        .fold(base, |_, (offset, removal)| (!removal).then_some(offset))
}

/// The records of one key met while reading a range.
struct KeyRecords<'a> {
    key: &'a str,
    met: Vec<(i64, bool)>,
}

impl Apply for KeyRecords<'_> {
    fn apply(&mut self, record: Record<'_>) {
        if record.key == Some(self.key.as_bytes()) {
            self.met.push((record.offset, record.value.is_none()));
        }
    }
}

/// A conditional write being decided: where this replica's view of the partition stands.
pub(super) struct View {
    /// The view's next offset of the partition.
    pub next_offset: i64,
    /// The key's version in the view.
    pub version: Option<i64>,
}

/// A decided write: where its record went, how it ended, and the newest committed record of the key read
/// before it (a conflict's winner, which the view may not have applied yet).
pub(super) struct Decided {
    pub partition: i32,
    pub offset: i64,
    pub outcome: Outcome,
    pub newest_met: Option<i64>,
}

/// The transactional producer and the range reader of conditional writes; one write at a time.
pub(super) struct Transactions {
    clients: Clients,
    timeout: Duration,
    producer: Mutex<Option<Arc<ThreadedProducer<Acknowledgements>>>>,
    reader: Arc<std::sync::Mutex<RangeReader>>,
}

impl Transactions {
    pub(super) fn new(clients: &Clients, timeout: Duration) -> Result<Self, StoreError> {
        let reader = RangeReader::new(clients, "store-decisions")?;
        Ok(Self {
            clients: clients.clone(),
            timeout,
            producer: Mutex::new(None),
            reader: Arc::new(std::sync::Mutex::new(reader)),
        })
    }

    /// Writes `value` (`None`: removes the key) if `expect` admits the key's version just before the
    /// record in the log; `view` says where this replica's view of the record's partition stands.
    pub(super) async fn put_if(
        &self,
        topic: &str,
        key: &str,
        value: Option<&[u8]>,
        expect: Expect,
        view: impl FnOnce(i32) -> View,
    ) -> Result<Decided, StoreError> {
        let deadline = Instant::now() + self.timeout;
        let mut held = self.producer.lock().await;
        let producer = match held.as_ref() {
            Some(producer) => Arc::clone(producer),
            None => Arc::clone(held.insert(self.start_producer().await?)),
        };
        let outcome = self
            .decide(&producer, topic, key, value, expect, view, deadline)
            .await;
        if outcome.is_err() {
            // The transaction may still be open, holding back every read_committed reader of the partition:
            // abort it now rather than leave it to the broker's timeout. Then start clean with a new producer.
            let abort = blocking(&producer, |p| p.abort_transaction(ABORT_TIMEOUT)).await;
            if let Err(error) = abort {
                warn!(%error, "aborting a failed conditional write failed; the broker aborts it after its timeout");
            }
            held.take();
        }
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &self,
        producer: &Arc<ThreadedProducer<Acknowledgements>>,
        topic: &str,
        key: &str,
        value: Option<&[u8]>,
        expect: Expect,
        view: impl FnOnce(i32) -> View,
        deadline: Instant,
    ) -> Result<Decided, StoreError> {
        let action = |what: &str| format!("{what} (a conditional write to {topic})");
        blocking(producer, |p| p.begin_transaction())
            .await
            .map_err(super::kafka(action("beginning a transaction")))?;
        let (partition, offset) = super::send(producer, topic, key, value, self.timeout).await?;
        // Where this replica's view stands, read after the record exists: the view cannot pass it.
        let View { next_offset, version } = view(partition);
        let reader = Arc::clone(&self.reader);
        let (topic_owned, key_owned) = (topic.to_owned(), key.to_owned());
        let met = tokio::task::spawn_blocking(move || -> Result<Vec<(i64, bool)>, String> {
            let reader = reader.lock().unwrap_or_else(|p| p.into_inner());
            let failed = |error: RangeError| error.to_string();
            reader
                .wait_stable(&topic_owned, partition, offset, deadline)
                .map_err(failed)?;
            let mut records = KeyRecords {
                key: &key_owned,
                met: Vec::new(),
            };
            reader
                .read(
                    &topic_owned,
                    partition,
                    next_offset,
                    offset,
                    &mut records,
                    deadline,
                )
                .map_err(failed)?;
            Ok(records.met)
        })
        .await
        .map_err(|_| StoreError::Decision("the deciding thread panicked".to_owned()))?
        .map_err(StoreError::Decision)?;
        let newest_met = met.last().map(|(offset, _)| *offset);
        let current = version_after(version, met);
        if expect.admits(current) {
            let timeout = deadline.saturating_duration_since(Instant::now());
            blocking(producer, move |p| p.commit_transaction(timeout))
                .await
                .map_err(super::kafka(action("committing")))?;
            let version = value.is_some().then_some(offset);
            Ok(Decided {
                partition,
                offset,
                outcome: Outcome::Written(version),
                newest_met,
            })
        } else {
            let timeout = deadline.saturating_duration_since(Instant::now());
            blocking(producer, move |p| p.abort_transaction(timeout))
                .await
                .map_err(super::kafka(action("aborting")))?;
            Ok(Decided {
                partition,
                offset,
                outcome: Outcome::Conflict(current),
                newest_met,
            })
        }
    }

    /// Whether a committed record at `offset` may exist in `topic`: some partition's last stable offset
    /// is past it (true when the ends cannot be read).
    pub(super) async fn may_exist(&self, topic: &str, offset: i64) -> bool {
        let (reader, topic, timeout) = (Arc::clone(&self.reader), topic.to_owned(), self.timeout);
        let ends = tokio::task::spawn_blocking(move || {
            let reader = reader.lock().unwrap_or_else(|p| p.into_inner());
            reader.stable_ends(&topic, timeout).ok()
        })
        .await;
        match ends {
            Ok(Some(ends)) => ends.iter().any(|&end| end > offset),
            _ => true,
        }
    }

    async fn start_producer(&self) -> Result<Arc<ThreadedProducer<Acknowledgements>>, StoreError> {
        let client = super::store_producer(
            &self.clients,
            "store-transactions",
            "switchyard-registry-store-transactions",
        )
        // Unique per process: a replica never fences another, and one that dies leaves a transaction
        // the broker aborts after the timeout.
        .managed(
            "transactional.id",
            format!("switchyard-registry-{}", uuid::Uuid::new_v4()),
        )
        .managed("transaction.timeout.ms", self.timeout.as_millis().to_string());
        let context = Acknowledgements(client.context());
        let producer: ThreadedProducer<Acknowledgements> = client.create_with(context)?;
        let producer = Arc::new(producer);
        let timeout = self.timeout;
        blocking(&producer, move |p| p.init_transactions(timeout))
            .await
            .map_err(super::kafka("starting the store's transactional producer"))?;
        Ok(producer)
    }
}

/// Runs a blocking producer call off the async workers.
async fn blocking<T: Send + 'static>(
    producer: &Arc<ThreadedProducer<Acknowledgements>>,
    call: impl FnOnce(&ThreadedProducer<Acknowledgements>) -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    let producer = Arc::clone(producer);
    match tokio::task::spawn_blocking(move || call(&producer)).await {
        Ok(result) => result,
        Err(error) => {
            warn!(%error, "a transactional producer call panicked");
            Err(KafkaError::Canceled)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_admit_the_versions_they_name() {
        assert!(Expect::Any.admits(None) && Expect::Any.admits(Some(4)));
        assert!(Expect::Version(4).admits(Some(4)));
        assert!(!Expect::Version(4).admits(Some(5)) && !Expect::Version(4).admits(None));
        assert!(Expect::Exists.admits(Some(0)) && !Expect::Exists.admits(None));
        assert!(Expect::Absent.admits(None) && !Expect::Absent.admits(Some(0)));
    }

    #[test]
    fn only_a_newer_version_refuses_before_the_log_decides() {
        // A view behind the log may show an older version, or none, of a key the caller saw newer.
        assert!(Expect::Version(4).refused_by(Some(7)));
        assert!(!Expect::Version(4).refused_by(Some(4)));
        assert!(!Expect::Version(4).refused_by(Some(2)));
        assert!(!Expect::Version(4).refused_by(None));
        assert!(!Expect::Absent.refused_by(Some(7)), "a later removal may follow");
        assert!(!Expect::Any.refused_by(Some(7)));
    }

    #[test]
    fn the_last_record_of_the_key_in_the_range_is_its_version() {
        assert_eq!(version_after(Some(3), []), Some(3));
        assert_eq!(version_after(Some(3), [(9, false)]), Some(9));
        assert_eq!(version_after(Some(3), [(9, false), (11, true)]), None);
        assert_eq!(version_after(None, [(11, true), (12, false)]), Some(12));
    }
}
