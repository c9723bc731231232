//! Replays of dead letters and their record: `switchyard.dead-letter-replays` (`topics.dead_letter_replays`,
//! `docs/contract.md` section 9.4), compacted, key = the letter's `<dead-letter topic>/<partition>/<offset>`,
//! value = its [`ReplayRecord`] (every replay: when, by whom, to which offset).
//!
//! ```text
//!   histories: switchyard.dead-letter-replays, every partition to its end ─► the records of this
//!              dead-letter topic's letters (the last of each key; a null value forgets it) ─► Histories
//!   replay(letters, histories), one transaction:
//!     begin ─► each letter's copy ─► plugin.<id>.events      (its partition and offset: delivery report)
//!           ─► each letter's record: its history + {at, by, to} ─► switchyard.dead-letter-replays
//!     commit ─► a read_committed reader (the workers, the next list) sees copies and records together;
//!     any failure ─► abort: neither
//! ```
//!
//! The history a replay appends to is the one read before it: two replays of the same letter at the same
//! moment both go through and the later record keeps one of the two entries (the copies carry
//! `switchyard_replayed_from` either way). Replays made before this record existed are not in it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::ClientContext;
use rdkafka::Statistics;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use switchyard_schemas::dead_letter::{Position, Replay, ReplayRecord};
use switchyard_service::follower::{Apply, Record};
use switchyard_service::kafka::{Clients, KafkaContext};

use super::{DeadLetterError, LetterId, StoredLetter, left, read_whole};
use crate::backfills::request::rfc3339_ms;

/// What the replays topic says of one dead-letter topic's letters: the record of each letter replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histories {
    records: BTreeMap<LetterId, ReplayRecord>,
    /// Letters whose record this version cannot read, with why. They count as replayed, with no replay
    /// listed: refusing a second replay is the safe side.
    unreadable: BTreeMap<LetterId, String>,
}

impl Histories {
    /// From the replays topic's records (key, value; `None`: a null value), in log order per key, keeping
    /// those of `dead_letter_topic`'s letters: the last record of a key wins, a null value forgets it.
    pub fn of<'a>(
        dead_letter_topic: &str,
        records: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Self {
        let mut histories = Self::default();
        for (key, value) in records {
            let Some(position) = std::str::from_utf8(key)
                .ok()
                .and_then(Position::parse)
                .filter(|p| p.topic == dead_letter_topic)
            else {
                continue;
            };
            let id = LetterId {
                partition: position.partition,
                offset: position.offset,
            };
            histories.unreadable.remove(&id);
            let Some(value) = value else {
                histories.records.remove(&id);
                continue;
            };
            let record = match serde_json::from_slice::<ReplayRecord>(value) {
                Ok(record) => record,
                Err(error) => {
                    histories.unreadable.insert(id, error.to_string());
                    ReplayRecord {
                        dead_letter: position,
                        replays: Vec::new(),
                    }
                }
            };
            histories.records.insert(id, record);
        }
        histories
    }

    /// The record of letter `id`, if it was replayed.
    pub fn get(&self, id: LetterId) -> Option<&ReplayRecord> {
        self.records.get(&id)
    }

    /// The letters whose record could not be read, with why.
    pub fn unreadable(&self) -> impl Iterator<Item = (LetterId, &str)> {
        self.unreadable.iter().map(|(id, why)| (*id, why.as_str()))
    }
}

/// Keeps the records of the replays topic whose key starts with `<dead-letter topic>/`.
struct Collector {
    prefix: Vec<u8>,
    records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Apply for Collector {
    fn apply(&mut self, record: Record<'_>) {
        if let Some(key) = record.key.filter(|k| k.starts_with(&self.prefix)) {
            self.records
                .push((key.to_vec(), record.value.map(<[u8]>::to_vec)));
        }
    }
}

/// What `replays_topic` says of `dead_letter_topic`'s letters: the whole topic, each partition up to where
/// it ended when the read began (a key's records are all in one partition, so their order holds), within
/// `timeout`; [`DeadLetterError::NoSuchTopic`] when the replays topic does not exist.
pub fn histories(
    clients: &Clients,
    name: &str,
    replays_topic: &str,
    dead_letter_topic: &str,
    timeout: Duration,
) -> Result<Histories, DeadLetterError> {
    let mut collector = Collector {
        prefix: format!("{dead_letter_topic}/").into_bytes(),
        records: Vec::new(),
    };
    read_whole(clients, name, replays_topic, &mut collector, timeout)?;
    Ok(Histories::of(
        dead_letter_topic,
        collector
            .records
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref())),
    ))
}

/// Where a replay writes, and who asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayTarget {
    /// The dead-letter topic the letters were read from.
    pub dead_letter_topic: String,
    /// The plugin's events topic the copies go to.
    pub events_topic: String,
    /// The replays topic the records go to.
    pub replays_topic: String,
    /// Who asks, as the caller knows them (the record's `by`).
    pub by: Option<String>,
    /// The start of the replay's transactional id, to which a UUID is added: no two replays fence each
    /// other, and an ACL on the prefix covers them all.
    pub transactional_prefix: String,
}

/// One letter replayed: its id and the replay recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The letter.
    pub letter: LetterId,
    /// The replay: when, by whom, where its copy is.
    pub replay: Replay,
}

/// Where a record landed (partition, offset), or why it was refused.
type Placement = Result<(i32, i64), KafkaError>;

/// Each record's delivery report, by the index the record was sent with: the copies first, then the replay
/// records. Statistics and errors go to the builder's context.
struct Placements {
    inner: KafkaContext,
    placed: Mutex<Vec<Option<Placement>>>,
}

impl Placements {
    fn new(inner: KafkaContext, records: usize) -> Self {
        Self {
            inner,
            placed: Mutex::new(vec![None; records]),
        }
    }

    /// Where record `index` landed, its refusal, or `None` without a report.
    fn of(&self, index: usize) -> Option<Placement> {
        let placed = self.placed.lock().unwrap_or_else(|p| p.into_inner());
        placed.get(index).cloned().flatten()
    }
}

impl ClientContext for Placements {
    fn stats(&self, statistics: Statistics) {
        self.inner.stats(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.inner.error(error, reason);
    }
}

impl ProducerContext for Placements {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((error, _)) => Err(error.clone()),
        };
        let mut placed = self.placed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = placed.get_mut(index) {
            *slot = Some(outcome);
        }
    }
}

/// How long aborting a failed replay's transaction may take.
const ABORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds of `transaction.timeout.ms`: librdkafka's floor, and the broker's default ceiling
/// (`transaction.max.timeout.ms`, 15 minutes).
const TRANSACTION_TIMEOUT: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(900));

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Writes each letter back to the events topic (its record without the worker's headers, plus
/// `switchyard_replayed_from`; [`StoredLetter::replay_headers`]) and its [`ReplayRecord`] (its record in
/// `histories` plus this replay) to the replays topic, in the order given, in one transaction committed
/// within `timeout`; on any failure the transaction is aborted and nothing of it is visible to a
/// `read_committed` reader. A producer of its own, named `name`, its transactional id
/// `<transactional_prefix>-<uuid>`. Makes no producer when there is nothing to replay.
pub fn replay(
    clients: &Clients,
    name: &str,
    target: &ReplayTarget,
    letters: &[StoredLetter],
    histories: &Histories,
    timeout: Duration,
) -> Result<Vec<Replayed>, DeadLetterError> {
    if letters.is_empty() {
        return Ok(Vec::new());
    }
    let deadline = Instant::now() + timeout;
    let client = clients
        .producer(name)
        .managed("enable.idempotence", "true")
        .managed(
            "transactional.id",
            format!("{}-{}", target.transactional_prefix, uuid::Uuid::new_v4()),
        )
        .managed(
            "transaction.timeout.ms",
            timeout
                .clamp(TRANSACTION_TIMEOUT.0, TRANSACTION_TIMEOUT.1)
                .as_millis()
                .to_string(),
        )
        // The contract's key hashing: the team keeps its partition, a letter's records stay in one.
        .tunable("partitioner", "murmur2_random");
    let context = Placements::new(client.context(), letters.len() * 2);
    let producer: ThreadedProducer<Placements> = client.create_with(context)?;
    let call = |call| move |source| DeadLetterError::Transaction { call, source };
    producer
        .init_transactions(left(deadline))
        .map_err(call("init_transactions"))?;
    producer.begin_transaction().map_err(call("begin_transaction"))?;
    match write(&producer, target, letters, histories, deadline) {
        Ok(replayed) => {
            producer
                .commit_transaction(left(deadline))
                .map_err(call("commit_transaction"))?;
            Ok(replayed)
        }
        Err(error) => {
            // The broker aborts it after transaction.timeout.ms anyway; this only ends it sooner.
            let _ = producer.abort_transaction(ABORT_TIMEOUT);
            Err(error)
        }
    }
}

/// The copies, then the records, of [`replay`], inside its open transaction.
fn write(
    producer: &ThreadedProducer<Placements>,
    target: &ReplayTarget,
    letters: &[StoredLetter],
    histories: &Histories,
    deadline: Instant,
) -> Result<Vec<Replayed>, DeadLetterError> {
    let failed = |topic: &str| {
        let topic = topic.to_owned();
        move |source| DeadLetterError::Replay { topic, source }
    };
    for (index, letter) in letters.iter().enumerate() {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &letter.replay_headers(&target.dead_letter_topic) {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&target.events_topic, index).headers(headers);
        if let Some(key) = &letter.key {
            record = record.key(key.as_slice());
        }
        if let Some(value) = &letter.value {
            record = record.payload(value.as_slice());
        }
        producer
            .send(record)
            .map_err(|(error, _)| failed(&target.events_topic)(error))?;
    }
    producer
        .flush(left(deadline))
        .map_err(failed(&target.events_topic))?;
    let at = rfc3339_ms(now_ms());
    let mut replayed = Vec::with_capacity(letters.len());
    for (index, letter) in letters.iter().enumerate() {
        let (partition, offset) = match producer.context().of(index) {
            Some(Ok(placed)) => placed,
            Some(Err(error)) => return Err(failed(&target.events_topic)(error)),
            None => return Err(failed(&target.events_topic)(KafkaError::Canceled)),
        };
        replayed.push(Replayed {
            letter: letter.letter.id,
            replay: Replay {
                at: at.clone(),
                by: target.by.clone(),
                to: Position::new(&target.events_topic, partition, offset),
            },
        });
    }
    for (index, (letter, done)) in letters.iter().zip(&replayed).enumerate() {
        let position = Position::new(
            &target.dead_letter_topic,
            letter.letter.partition,
            letter.letter.offset,
        );
        let record = ReplayRecord::appended(position, histories.get(letter.letter.id), done.replay.clone());
        let (key, value) = (record.key(), serde_json::to_vec(&record).unwrap_or_default());
        let record: BaseRecord<'_, str, [u8], usize> =
            BaseRecord::with_opaque_to(&target.replays_topic, letters.len() + index)
                .key(key.as_str())
                .payload(value.as_slice());
        producer
            .send(record)
            .map_err(|(error, _)| failed(&target.replays_topic)(error))?;
    }
    producer
        .flush(left(deadline))
        .map_err(failed(&target.replays_topic))?;
    for index in letters.len()..letters.len() * 2 {
        match producer.context().of(index) {
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(failed(&target.replays_topic)(error)),
            None => return Err(failed(&target.replays_topic)(KafkaError::Canceled)),
        }
    }
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(dead_letter: &str, offset: i64, to: i64) -> (Vec<u8>, Option<Vec<u8>>) {
        let value = serde_json::json!({
            "dead_letter": {"topic": dead_letter, "partition": 0, "offset": offset},
            "replays": [{"at": "2026-12-05T11:00:00Z", "by": "ops",
                         "to": {"topic": "plugin.p.events", "partition": 1, "offset": to}}]
        });
        (
            format!("{dead_letter}/0/{offset}").into_bytes(),
            Some(serde_json::to_vec(&value).unwrap()),
        )
    }

    fn of(records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Histories {
        Histories::of(
            "plugin.p.dlq",
            records.iter().map(|(k, v)| (k.as_slice(), v.as_deref())),
        )
    }

    #[test]
    fn the_last_record_of_a_letter_is_its_history_and_a_null_forgets_it() {
        let id = |offset| LetterId { partition: 0, offset };
        let histories = of(&[
            record("plugin.p.dlq", 3, 10),
            record("plugin.p.dlq", 3, 11),
            record("plugin.p.dlq", 4, 12),
            (b"plugin.p.dlq/0/4".to_vec(), None),
            record("plugin.other.dlq", 5, 13),
            record("plugin.p.dlq.old", 6, 14),
            (b"not a position".to_vec(), Some(b"{}".to_vec())),
        ]);
        assert_eq!(
            histories.get(id(3)).unwrap().replays[0].to.offset,
            11,
            "the later record"
        );
        assert_eq!(histories.get(id(4)), None, "forgotten");
        assert_eq!(histories.get(id(5)), None, "another topic's letter");
        assert_eq!(histories.get(id(6)), None, "a topic with the same start");
        assert_eq!(histories.unreadable().count(), 0);
    }

    #[test]
    fn an_unreadable_record_still_marks_its_letter_replayed() {
        let mut records = vec![(b"plugin.p.dlq/1/7".to_vec(), Some(b"{not json".to_vec()))];
        let histories = of(&records);
        let id = LetterId {
            partition: 1,
            offset: 7,
        };
        assert_eq!(histories.get(id).map(|r| r.replays.len()), Some(0));
        let unreadable: Vec<(LetterId, &str)> = histories.unreadable().collect();
        assert_eq!(unreadable.len(), 1);
        assert_eq!(unreadable[0].0, id);
        records.push((b"plugin.p.dlq/1/7".to_vec(), None));
        let forgotten = of(&records);
        assert_eq!((forgotten.get(id), forgotten.unreadable().count()), (None, 0));
    }
}
