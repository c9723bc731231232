//! The record of texts sent, so that a redelivered event does not text its respondent twice.
//!
//! Twilio's Messages API takes no idempotency key, and the runtime delivers at least once (a worker
//! crash, a rebalance, a lost answer). So the plugin keeps its own record: a compacted Kafka topic,
//! keyed by the event id (the `webhook-id`), whose value is what the send answered.
//!
//! ```text
//!   event E ─► ledger.hold(E)   one task per event id at a time in this process
//!           ─► ledger.sent(E)   waits until the ledger is read up to 500 ms ago ("complete as of", the
//!                │              follower the runtime uses for configs), then looks E up
//!                ├─ found:   answer the stored outcome, send nothing
//!                └─ absent:  send ─► ledger.record(E, outcome)   acks=all, awaited before E is done
//! ```
//!
//! Copies of one event can be in flight at once in one process (a producer's duplicate, under an ordering
//! that puts every event in its own lane): [`SentLedger::hold`] makes them take turns, so the second
//! finds what the first recorded.
//!
//! **The windows.** A crash after Twilio accepted the message and before the ledger record is
//! acknowledged leaves no trace: the redelivery texts again. That window is one produce round trip to
//! the ledger (milliseconds). Every replica reads the whole ledger, so whichever owns the event next
//! sees what another sent, provided it was written more than [`FRESHNESS_SLACK`] (500 ms) before the
//! look-up; two processes handling one event at the same moment (the old and the new owner during a
//! rebalance) can both send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};
use switchyard_service::follower::{Apply, FollowError, FollowOptions, Follower, Record};
use switchyard_service::kafka::{ClientError, Clients, KafkaContext};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The ledger's default topic.
pub const DEFAULT_TOPIC: &str = "plugin.sms-notify.sent";

/// How long the ledger keeps a record: 7 days, Kafka's default retention of consumer offsets, beyond which
/// a redelivery would come from a group that lost its offsets anyway. Bounds the topic and what a worker
/// holds in memory after a restart (one entry per message sent in that time, about 100 bytes each).
const RETENTION_MS: &str = "604800000";

/// How long a look-up waits for the ledger to be read far enough.
const FRESHNESS_LIMIT: Duration = Duration::from_secs(30);

/// How far behind now a look-up may read the ledger. The follower publishes "complete as of" about
/// 150 ms behind now (its in-flight allowance and round interval), so a look-up that demanded now would
/// wait that long for every message (the demo's 3,122 messages took 54.6 s instead of 5.3 s). Another
/// process's record younger than this can be missed: a partition handed over within this time of the
/// old owner's last send (a rebalance is normally slower) can text again.
const FRESHNESS_SLACK: Duration = Duration::from_millis(500);

/// What a send answered, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The message's id.
    pub sid: String,
    /// The recipient, masked.
    pub to_masked: String,
}

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

/// The texts sent, by event id: a follower of the ledger topic and a producer to it.
pub struct SentLedger {
    topic: String,
    sent: Arc<Mutex<HashMap<String, Sent>>>,
    /// One lock per event id in flight (see [`SentLedger::hold`]).
    held: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    follower: Follower,
    producer: FutureProducer<KafkaContext>,
}

/// Applies ledger records to the map.
struct Entries(Arc<Mutex<HashMap<String, Sent>>>);

impl Apply for Entries {
    fn apply(&mut self, record: Record<'_>) {
        let Some(key) = record.key.and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        let mut sent = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match record.value.map(serde_json::from_slice::<Sent>) {
            Some(Ok(entry)) => {
                sent.insert(key.to_owned(), entry);
            }
            Some(Err(error)) => warn!(%error, "an unreadable ledger record is ignored"),
            None => {
                sent.remove(key);
            }
        }
    }
}

impl SentLedger {
    /// Creates `topic` if it is missing (compacted, records kept 7 days, the broker's default partitions and
    /// replication),
    /// starts following it, and returns at once; [`SentLedger::sent`] waits for the reading.
    pub async fn start(
        clients: &Clients,
        topic: &str,
        shutdown: &CancellationToken,
    ) -> Result<Self, LedgerError> {
        create_topic(clients, topic).await?;
        let sent = Arc::new(Mutex::new(HashMap::new()));
        let options = FollowOptions {
            topic: topic.to_owned(),
            name: "sms-ledger".to_owned(),
            resync: true,
        };
        let follower = Follower::spawn(clients, options, Entries(Arc::clone(&sent)), shutdown)?;
        let producer = clients
            .producer("sms-ledger")
            .managed("enable.idempotence", "true")
            .managed("acks", "all")
            .create()?;
        Ok(Self {
            topic: topic.to_owned(),
            sent,
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

    /// What was sent for `event_id`, if anything, after reading everything written to the ledger up to
    /// [`FRESHNESS_SLACK`] before this call (and everything this process wrote).
    pub async fn sent(&self, event_id: &str) -> Result<Option<Sent>, LedgerError> {
        let as_of = SystemTime::now() - FRESHNESS_SLACK;
        if !self.follower.wait_complete(as_of, FRESHNESS_LIMIT).await {
            return Err(LedgerError::Stale(FRESHNESS_LIMIT));
        }
        let sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(sent.get(event_id).cloned())
    }

    /// Records that `event_id` was sent, and returns once the broker acknowledged it.
    pub async fn record(&self, event_id: &str, entry: &Sent) -> Result<(), LedgerError> {
        let value = serde_json::to_vec(entry).unwrap_or_default();
        let record = FutureRecord::to(&self.topic).key(event_id).payload(&value);
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(source, _)| LedgerError::Kafka {
                action: "writing to the ledger",
                source,
            })?;
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(event_id.to_owned(), entry.clone());
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
        .set("retention.ms", RETENTION_MS);
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
