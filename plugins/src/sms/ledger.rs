//! The record of texts sent, so that a redelivered event does not text its respondent twice.
//!
//! Twilio's Messages API takes no idempotency key, and the runtime delivers at least once (a worker
//! crash, a rebalance, a lost answer). So the plugin keeps its own record: a compacted Kafka topic,
//! keyed by the event's copy id ([`key`]), whose value is the last thing known about the event's
//! message: an intent to send it, then what the send answered ([`crate::sms::record`] has the forms).
//!
//! **Installations.** A team that installed the plugin twice gets two copies of each event, one per
//! installation, and each texts with its own config. The key is the copy id the runtime gives
//! ([`EventMeta::copy_id`], the bridge's `webhook-id`): the event id for the default installation,
//! exactly the key sms-notify wrote before installations existed (a ledger written by an earlier version
//! keeps answering its events across the upgrade), and `<event id>/<installation>` for a named one, so one
//! installation's copy is never found "already sent" because another's was. Everything below keyed by
//! "E" is keyed by this copy id (the hold, the look-up, the intent and the sent record); Twilio's list is
//! asked on the account of the copy's own installation.
//!
//! ```text
//!   event E ─► ledger.hold(E)      one task per event id at a time in this process
//!           ─► ledger.look_up(E)   waits until the ledger is read up to 500 ms ago ("complete as of", the
//!                │                 follower the runtime uses for configs), then looks E up
//!                ├─ sent:          answer the stored outcome, send nothing
//!                ├─ intent only:   an earlier attempt was about to send and its outcome is unknown (it
//!                │                 crashed, or lost Twilio's answer): ask Twilio
//!                │                   GET Messages.json?To={to}&From={from}&DateSent>={day}   every page
//!                │                   ├─ a message to `to` from `from` with `body`, created at or after
//!                │                   │  the intent's second less 2 s: ledger.record(E, sent{its sid}),
//!                │                   │  answer it, send nothing
//!                │                   └─ none: send as below (an intent for the same text stays as it is)
//!                └─ absent:        ledger.record_intent(E, {to, from, body, now})   acks=all, awaited
//!                                  ─► POST Messages.json
//!                                  ─► ledger.record(E, sent{sid, to_masked})       acks=all, awaited
//!                                                                                   before E is done
//! ```
//!
//! [`crate::sms::record::decide`] is that tree's decision, from the ledger's entry and Twilio's list.
//! Copies of one event can be in flight at once in one process (a producer's duplicate, under an
//! ordering that puts every event in its own lane): [`SentLedger::hold`] makes them take turns, so the
//! second finds what the first recorded.
//!
//! **The cost.** One more acks=all write per message, before the send: the message leaves one ledger
//! round trip later. `make sms-ledger-window` measures both writes; 1,000 in a row on one local broker
//! took 0.3 ms p50 and 1.3 ms p99 each, with the producer's `linger.ms` at 0 (at librdkafka's default
//! of 5 ms, each took 5.6 ms p50). A delivery that finds an intent only costs one list call at Twilio
//! (one page, normally).
//!
//! **The windows that remain.**
//!
//! * *Twilio's list lags its create.* A message Twilio accepted but does not list yet is not found, and
//!   the redelivery texts again. The list filters on the day a message was *sent*: one still `queued`
//!   at Twilio (no `date_sent`; a sender over its throughput queues for minutes) is not listed, and
//!   Twilio's users report lists minutes behind. The window is Twilio's lag against how soon the
//!   redelivery looks (the runtime's backoff, 50 ms to 60 s; a restart, seconds).
//! * *Two owners at once.* Every replica reads the whole ledger, so whichever owns the event next sees
//!   what another wrote, provided it was written more than [`FRESHNESS_SLACK`] (500 ms) before the
//!   look-up. Two processes handling one event at the same moment (the old and the new owner during a
//!   rebalance) can both send: the second misses an intent younger than 500 ms, and an intent it sees
//!   only tells it to ask Twilio, which lists the first's message once Twilio created it (and as above).
//! * *A message Twilio changed, or another account.* The look-up matches the body exactly and asks the
//!   account the team is configured with now: a body Twilio rewrote (a trial account's prefix, smart
//!   encoding) or a team that moved to another Twilio account between the attempt and its redelivery
//!   is not found, and texts again. So does a worker whose clock is more than 2 s ahead of Twilio's.
//! * *A look alike.* Any message with the same body to the same number from the same sender, created
//!   from 2 s before the intent's second on, is taken as the attempt's: the event is answered with it
//!   and nothing is sent (the respondent has that very text). That includes another installation's copy
//!   of the same event, when both installations send the same text from the same sender on one account.
//! * *A list too long.* More than 2,000 listed messages to the number since the intent's day: the event
//!   is dead-lettered (an operator looks), not guessed.
//! * *The retention.* A redelivery more than 7 days after the send finds no record (see
//!   [`RETENTION_MS`]).
//!
//! What the intent closes: a crash (or a lost answer, or a `sent` write that failed five times) after
//! Twilio accepted the message and before the `sent` record was acknowledged. Without the intent (the
//! sms-notify 0.9 workers) that left no trace and the redelivery texted again; now it leaves the intent,
//! and the redelivery finds the message at Twilio. A crash before the intent is acknowledged sent
//! nothing, and one after it but before Twilio accepted finds nothing at Twilio: both send once, as
//! they should.
//!
//! **Personal data.** An intent holds the full number and the body (see [`crate::sms::record`]); the
//! topic rolls a segment a day ([`SEGMENT_MS`]) so that compaction replaces an answered intent with its
//! sent record (masked number only) within about a day rather than at the 7-day retention.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use switchyard_plugin_runtime::plugin::EventMeta;
use switchyard_service::follower::{Apply, FollowError, FollowOptions, Follower, Record};
use switchyard_service::kafka::{ClientError, Clients, KafkaContext};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The ledger's default topic.
pub const DEFAULT_TOPIC: &str = "plugin.sms-notify.sent";

pub use super::record::{Entry, Intent, Sent};

/// How long the ledger keeps a record: 7 days, Kafka's default retention of consumer offsets, beyond which
/// a redelivery would come from a group that lost its offsets anyway. Bounds the topic and what a worker
/// holds in memory after a restart (one entry per message sent in that time: about 100 bytes for a sent
/// record, up to 1.7 kB for an intent never answered).
pub const RETENTION_MS: &str = "604800000";

/// How long the ledger's active segment stays open: 1 day, so that compaction (which never touches the
/// active segment) drops an answered intent, with its number and body, within about a day.
pub const SEGMENT_MS: &str = "86400000";

/// The ledger's key of an event's copy: its copy id, the `ce_id` for the default installation (the key of
/// every ledger record written before installations existed) and `<ce_id>/<installation>` for a named one
/// (see the module's doc).
pub fn key(meta: &EventMeta) -> Cow<'_, str> {
    meta.copy_id()
}

/// How long a look-up waits for the ledger to be read far enough.
const FRESHNESS_LIMIT: Duration = Duration::from_secs(30);

/// How far behind now a look-up may read the ledger. The follower publishes "complete as of" about
/// 150 ms behind now (its in-flight allowance and round interval), so a look-up that demanded now would
/// wait that long for every message (the demo's 3,122 messages took 54.6 s instead of 5.3 s). Another
/// process's record younger than this can be missed: a partition handed over within this time of the
/// old owner's last send (a rebalance is normally slower) can text again.
pub const FRESHNESS_SLACK: Duration = Duration::from_millis(500);

/// A ledger failure: the event is retried.
#[derive(Debug, Error)]
pub enum LedgerError {
    /// A Kafka client could not be made.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The follower could not start.
    #[error(transparent)]
    Follow(#[from] FollowError),
    /// Creating the topic failed.
    #[error("creating the ledger topic {topic}: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        code: RDKafkaErrorCode,
    },
    /// A Kafka call failed.
    #[error("{action}: {source}")]
    Kafka {
        /// What was being done.
        action: &'static str,
        /// librdkafka's error.
        source: rdkafka::error::KafkaError,
    },
    /// The ledger was not read up to now in time.
    #[error("the ledger was not read up to now within {0:?}")]
    Stale(Duration),
}

/// The texts sent and about to be sent, by event copy id ([`key`]; the methods' `event_id`): a follower of
/// the ledger topic and a producer to it.
pub struct SentLedger {
    topic: String,
    entries: Arc<Mutex<Latest>>,
    /// One lock per event id in flight (see [`SentLedger::hold`]).
    held: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    follower: Follower,
    producer: FutureProducer<KafkaContext>,
}

/// The newest entry of each key with its offset: this process's own writes (as soon as they are
/// acknowledged) and the follower's reading of the topic (behind them) meet here, and an older record
/// never replaces a newer one. Without the offsets, the follower applying this process's intent after
/// its sent record had been stored made a duplicate of the event find only the intent, ask Twilio, and
/// record the send a second time.
#[derive(Default)]
struct Latest(HashMap<String, (i64, Entry)>);

impl Latest {
    /// Stores `entry` (`None`: a tombstone) for `key` unless a record after `offset` is already stored.
    /// A key's records all share one partition, so their offsets order them.
    fn put(&mut self, key: &str, offset: i64, entry: Option<Entry>) {
        if self.0.get(key).is_some_and(|(stored, _)| *stored > offset) {
            return;
        }
        match entry {
            Some(entry) => {
                self.0.insert(key.to_owned(), (offset, entry));
            }
            None => {
                self.0.remove(key);
            }
        }
    }

    fn get(&self, key: &str) -> Option<&Entry> {
        self.0.get(key).map(|(_, entry)| entry)
    }
}

/// Applies ledger records to the map.
struct Entries(Arc<Mutex<Latest>>);

impl Apply for Entries {
    fn apply(&mut self, record: Record<'_>) {
        let Some(key) = record.key.and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        let entry = match record.value.map(Entry::from_json) {
            Some(Ok(entry)) => Some(entry),
            Some(Err(error)) => {
                warn!(%error, "an unreadable ledger record is ignored");
                return;
            }
            None => None,
        };
        let mut entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        entries.put(key, record.offset, entry);
    }
}

impl SentLedger {
    /// Creates `topic` if it is missing (compacted, records kept 7 days, a segment a day, the broker's
    /// default partitions and replication), starts following it, and returns at once;
    /// [`SentLedger::look_up`] waits for the reading.
    pub async fn start(
        clients: &Clients,
        topic: &str,
        shutdown: &CancellationToken,
    ) -> Result<Self, LedgerError> {
        create_topic(clients, topic).await?;
        let entries = Arc::new(Mutex::new(Latest::default()));
        let options = FollowOptions {
            topic: topic.to_owned(),
            name: "sms-ledger".to_owned(),
            resync: true,
        };
        let follower = Follower::spawn(clients, options, Entries(Arc::clone(&entries)), shutdown)?;
        // Every write is awaited on a message's way out (the intent before the send, the outcome before the
        // event is done): lingering for a fuller batch (librdkafka's default, 5 ms) would only add to both.
        // Writes of concurrent events still share a request while one is in flight.
        let producer = clients
            .producer("sms-ledger")
            .managed("enable.idempotence", "true")
            .managed("acks", "all")
            .tunable("linger.ms", "0")
            .create()?;
        Ok(Self {
            topic: topic.to_owned(),
            entries,
            held: Arc::default(),
            follower,
            producer,
        })
    }

    /// Waits until no other task of this process holds `event_id`, and holds it until the returned guard
    /// drops: look up, send and record under it.
    pub async fn hold(&self, event_id: &str) -> Held {
        let lock = {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(held.entry(event_id.to_owned()).or_default())
        };
        Held {
            guard: Some(lock.lock_owned().await),
            event_id: event_id.to_owned(),
            held: Arc::clone(&self.held),
        }
    }

    /// What the ledger holds for `event_id`, if anything, after reading everything written to it up to
    /// [`FRESHNESS_SLACK`] before this call (and everything this process wrote).
    pub async fn look_up(&self, event_id: &str) -> Result<Option<Entry>, LedgerError> {
        let as_of = SystemTime::now() - FRESHNESS_SLACK;
        if !self.follower.wait_complete(as_of, FRESHNESS_LIMIT).await {
            return Err(LedgerError::Stale(FRESHNESS_LIMIT));
        }
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(entries.get(event_id).cloned())
    }

    /// Records that `event_id` was sent, and returns once the broker acknowledged it.
    pub async fn record(&self, event_id: &str, sent: &Sent) -> Result<(), LedgerError> {
        self.write(event_id, Entry::Sent(sent.clone())).await
    }

    /// Records that `event_id` is about to be sent, and returns once the broker acknowledged it: only
    /// then may the message go.
    pub async fn record_intent(&self, event_id: &str, intent: &Intent) -> Result<(), LedgerError> {
        self.write(event_id, Entry::Intent(intent.clone())).await
    }

    async fn write(&self, event_id: &str, entry: Entry) -> Result<(), LedgerError> {
        let value = entry.to_json();
        let record = FutureRecord::to(&self.topic).key(event_id).payload(&value);
        let delivered = self
            .producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(source, _)| LedgerError::Kafka {
                action: "writing to the ledger",
                source,
            })?;
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).put(
            event_id,
            delivered.offset,
            Some(entry),
        );
        Ok(())
    }

    /// Stops following.
    pub fn stop(&self) {
        self.follower.stop();
    }
}

/// An event id held by one task (see [`SentLedger::hold`]).
pub struct Held {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    event_id: String,
    held: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.guard.take();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        // The map's own reference only: nobody waits for this id any more.
        if held
            .get(&self.event_id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            held.remove(&self.event_id);
        }
    }
}

async fn create_topic(clients: &Clients, topic: &str) -> Result<(), LedgerError> {
    let admin: AdminClient<KafkaContext> = clients.admin("sms-ledger-admin").create()?;
    let new = NewTopic::new(topic, -1, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact,delete")
        .set("retention.ms", RETENTION_MS)
        .set("segment.ms", SEGMENT_MS);
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&[new], &options)
        .await
        .map_err(|source| LedgerError::Kafka {
            action: "creating the ledger topic",
            source,
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(LedgerError::CreateTopic {
                    topic: topic.to_owned(),
                    code,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use switchyard_plugin_runtime::plugin::DEFAULT_INSTALLATION;

    use super::*;
    use crate::sms::record::Sent;

    fn meta(id: &str, installation: &str) -> EventMeta {
        EventMeta {
            id: id.to_owned(),
            source: "/collect/web".to_owned(),
            event_type: "response.submitted".to_owned(),
            time: None,
            subject: Some("f-1".to_owned()),
            team_id: "acme".to_owned(),
            installation: installation.to_owned(),
            backfill: None,
        }
    }

    #[test]
    fn the_default_installations_key_is_the_event_id_as_before_and_a_named_ones_its_own() {
        let id = "0193a5b2-7c1e-7d3a-9f00-aa11bb22cc33";
        let default = meta(id, DEFAULT_INSTALLATION);
        // Byte for byte the key sms-notify 0.10 wrote (`ctx.meta.id`), borrowed, not rebuilt.
        assert_eq!(key(&default).as_bytes(), id.as_bytes());
        assert!(matches!(key(&default), Cow::Borrowed(_)));
        let named = meta(id, "forms-bc");
        assert_eq!(key(&named), format!("{id}/forms-bc"));
        assert_ne!(
            key(&named),
            key(&meta(id, "forms-ke")),
            "each installation its own"
        );
        // The value does not depend on the installation: a sent record reads and writes as before.
        let sent = Sent {
            sid: "SM0123456789abcdef0123456789abcdef".to_owned(),
            to_masked: "+*********678".to_owned(),
        };
        assert_eq!(
            Entry::Sent(sent).to_json(),
            br#"{"sid":"SM0123456789abcdef0123456789abcdef","to_masked":"+*********678"}"#.to_vec()
        );
    }

    #[test]
    fn a_ledger_record_under_the_default_key_answers_only_the_default_installations_copy() {
        // What `Entries` keeps: a record written under the event id (by this version for the default
        // installation, or by an earlier one) is found by the default installation's copy only.
        let entries = Arc::new(Mutex::new(Latest::default()));
        let mut apply = Entries(Arc::clone(&entries));
        let value = br#"{"sid":"SM0123456789abcdef0123456789abcdef","to_masked":"+*********678"}"#;
        apply.apply(Record {
            partition: 0,
            offset: 0,
            key: Some(b"e-1"),
            value: Some(value),
            headers: None,
            timestamp_ms: None,
        });
        let entries = entries.lock().unwrap();
        assert!(entries.get(&key(&meta("e-1", DEFAULT_INSTALLATION))).is_some());
        assert!(entries.get(&key(&meta("e-1", "forms-bc"))).is_none());
    }

    #[test]
    fn the_follower_reading_an_older_record_after_this_processs_newer_write_keeps_the_newer() {
        // This process wrote the intent (offset 7) and the sent record (offset 8), storing each on its
        // acknowledgement; the follower reads both after that.
        let intent = Entry::Intent(Intent::now("+254700000678", "SURVEYS", "Asante."));
        let sent = Entry::Sent(Sent {
            sid: "SM0123456789abcdef0123456789abcdef".to_owned(),
            to_masked: "+*********678".to_owned(),
        });
        let mut latest = Latest::default();
        latest.put("e-1", 7, Some(intent.clone()));
        latest.put("e-1", 8, Some(sent.clone()));
        latest.put("e-1", 7, Some(intent));
        assert_eq!(
            latest.get("e-1"),
            Some(&sent),
            "the older intent is not read back"
        );
        latest.put("e-1", 8, Some(sent.clone()));
        assert_eq!(latest.get("e-1"), Some(&sent));
        // A tombstone after it removes it; one before it does not.
        latest.put("e-1", 6, None);
        assert_eq!(latest.get("e-1"), Some(&sent));
        latest.put("e-1", 9, None);
        assert_eq!(latest.get("e-1"), None);
    }
}
