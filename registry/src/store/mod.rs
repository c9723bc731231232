//! Compacted Kafka topics as a key-value store with read-your-writes.
//!
//! ```text
//!   put(topic, key, value) ──► producer (idempotent, acks=all) ──► topic partition P, offset O
//!        │                                                              │
//!        └── waits until this replica's follower has applied P up to O ◄┘ follower thread per topic
//!                                                                          (every partition, from the
//!   get / entries ◄── in-memory map per topic ◄────────────────────────────  beginning, no group)
//! ```
//!
//! Every replica follows every partition of every topic from the beginning and applies records in log
//! order (a null value removes the key), so two replicas that write the same key converge on whichever
//! write the log ordered last. `open` creates missing topics with `cleanup.policy=compact` and refuses an
//! existing topic that is not compacted: a deleting cleanup policy would silently lose state.
//!
//! A key's **version** is the offset of its current record. [`Store::put_if`] writes only if the key's
//! version is the one expected, decided in log order by the writer ([`conditional`]).

mod conditional;

pub use self::conditional::{Expect, Outcome};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::Statistics;
use rdkafka::admin::{
    AdminClient, AdminOptions, NewTopic, OwnedResourceSpecifier, ResourceSpecifier, TopicReplication,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use switchyard_service::follower::{Apply, FollowError, FollowOptions, Follower, Record};
use switchyard_service::kafka::topic_plan::{TopicKind, created_configs};
use switchyard_service::kafka::{ClientBuilder, ClientError, Clients, KafkaContext};
use thiserror::Error;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Why the store cannot open or a write did not complete.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A Kafka call failed.
    #[error("{action} failed: {source}")]
    Kafka {
        /// What the store was doing.
        action: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// An existing topic would delete state.
    #[error(
        "the topic {topic} has cleanup.policy={policy}; the registry keeps its state there and needs \
         cleanup.policy=compact alone (alter the topic or point the registry at another one)"
    )]
    NotCompacted {
        /// The topic.
        topic: String,
        /// Its cleanup policy.
        policy: String,
    },
    /// A topic is not one the store was opened with.
    #[error("the store does not follow the topic {0}")]
    UnknownTopic(String),
    /// A write was acknowledged but this replica did not see it in time.
    #[error(
        "the write to {topic} at partition {partition} offset {offset} was not applied within {waited:?}"
    )]
    NotApplied {
        /// The topic.
        topic: String,
        /// Partition written.
        partition: i32,
        /// Offset written.
        offset: i64,
        /// How long the store waited.
        waited: Duration,
    },
    /// A conditional write could not read what was committed before it.
    #[error("deciding a conditional write failed: {0}")]
    Decision(String),
    /// A client could not be made (a clash of options, a setting librdkafka refuses).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The follower of a topic could not start.
    #[error(transparent)]
    Follower(#[from] FollowError),
}

/// A producer of store records (plain, or transactional once the caller adds its id): idempotent,
/// `acks=all`, not lingering, with the contract's key hashing.
fn store_producer(clients: &Clients, name: &str, client_id: &str) -> ClientBuilder {
    clients
        .producer(name)
        .tunable("client.id", client_id)
        .managed("enable.idempotence", "true")
        .managed("acks", "all")
        // Every write is awaited by the request that made it: lingering for a fuller batch (librdkafka's
        // default, 5 ms) only added 5 ms to each (docs/benchmarks.md, "Registry writes"). Writes of
        // concurrent requests still share a request while one is in flight.
        .tunable("linger.ms", "0")
        // Java-compatible key hashing, as the contract asks of control-topic writers.
        .tunable("partitioner", "murmur2_random")
}

fn kafka(action: impl Into<String>) -> impl FnOnce(KafkaError) -> StoreError {
    let action = action.into();
    move |source| StoreError::Kafka { action, source }
}

/// How to reach Kafka and which topics to keep.
#[derive(Clone)]
pub struct StoreConfig {
    /// Makes the store's Kafka clients.
    pub clients: Clients,
    /// The compacted topics to follow; created if missing.
    pub topics: Vec<String>,
    /// Partitions of a topic the store creates.
    pub partitions: i32,
    /// Replication factor of a topic the store creates.
    pub replication_factor: i32,
    /// Bound of a write (acknowledgement plus being applied locally) and of admin calls.
    pub timeout: Duration,
}

/// One followed topic's current entries with their versions (offsets), filled by its follower.
#[derive(Clone, Default)]
struct Entries(Arc<RwLock<BTreeMap<String, Versioned>>>);

/// A value and its version.
type Versioned = (i64, Vec<u8>);

impl Apply for Entries {
    fn apply(&mut self, record: Record<'_>) {
        let Some(key) = record.key.and_then(|k| std::str::from_utf8(k).ok()) else {
            warn!(
                offset = record.offset,
                "a store record without a UTF-8 key is ignored"
            );
            return;
        };
        let mut entries = self.0.write().unwrap_or_else(|p| p.into_inner());
        match record.value {
            Some(value) => entries.insert(key.to_owned(), (record.offset, value.to_vec())),
            None => entries.remove(key),
        };
    }
}

impl Entries {
    fn version(&self, key: &str) -> Option<i64> {
        let entries = self.0.read().unwrap_or_else(|p| p.into_inner());
        entries.get(key).map(|(version, _)| *version)
    }
}

type Acknowledgement = oneshot::Sender<Result<(i32, i64), KafkaError>>;

/// Hands each delivery report to the writer waiting for it; statistics and errors go to the builder's
/// context.
struct Acknowledgements(KafkaContext);

impl ClientContext for Acknowledgements {
    fn stats(&self, statistics: Statistics) {
        self.0.stats(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(error, reason);
    }
}

impl ProducerContext for Acknowledgements {
    type DeliveryOpaque = Box<Acknowledgement>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiter: Box<Acknowledgement>) {
        let outcome = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((error, _)) => Err(error.clone()),
        };
        // The writer may have given up waiting; nothing to do then.
        let _ = waiter.send(outcome);
    }
}

/// The store. Cheap to share behind an `Arc`; `close` stops the followers.
pub struct Store {
    config: StoreConfig,
    producer: ThreadedProducer<Acknowledgements>,
    followers: HashMap<String, (Entries, Follower)>,
    transactions: conditional::Transactions,
}

impl Store {
    /// Creates missing topics (compacted), refuses non-compacted ones, and starts following every topic.
    /// Returns at once; [`Store::caught_up`] tells when the initial state is loaded.
    pub async fn open(config: StoreConfig) -> Result<Self, StoreError> {
        ensure_compacted_topics(&config).await?;
        let client = store_producer(&config.clients, "store-producer", "switchyard-registry-store");
        let context = Acknowledgements(client.context());
        let producer: ThreadedProducer<Acknowledgements> = client.create_with(context)?;
        // The followers stop when the store closes (dropping a follower stops it too).
        let shutdown = CancellationToken::new();
        let mut followers = HashMap::new();
        for topic in &config.topics {
            let entries = Entries::default();
            let options = FollowOptions {
                topic: topic.clone(),
                name: format!("store-{topic}"),
                resync: false,
            };
            let follower = Follower::spawn(&config.clients, options, entries.clone(), &shutdown)?;
            followers.insert(topic.clone(), (entries, follower));
        }
        let transactions = conditional::Transactions::new(&config.clients, config.timeout)?;
        Ok(Self {
            config,
            producer,
            followers,
            transactions,
        })
    }

    /// Whether every topic has been read up to where it ended when the store opened.
    pub fn caught_up(&self) -> bool {
        self.followers.values().all(|(_, f)| f.caught_up())
    }

    /// Waits until [`Store::caught_up`].
    pub async fn wait_caught_up(&self) {
        for (_, follower) in self.followers.values() {
            follower.wait_caught_up().await;
        }
    }

    /// Writes `value` (or removes the key with `None`) if the key's version meets `expect`, and returns
    /// once this replica's view includes the write (read-your-writes). [`Expect::Any`] is [`Store::put`].
    pub async fn put_if(
        &self,
        topic: &str,
        key: &str,
        value: Option<&[u8]>,
        expect: Expect,
    ) -> Result<Outcome, StoreError> {
        if expect == Expect::Any {
            return self.put(topic, key, value).await.map(Outcome::Written);
        }
        let (entries, follower) = self
            .followers
            .get(topic)
            .ok_or_else(|| StoreError::UnknownTopic(topic.to_owned()))?;
        let seen = self.version(topic, key);
        if expect.refused_by(seen) {
            return Ok(Outcome::Conflict(seen));
        }
        let started = Instant::now();
        let view = |partition| {
            // The offset first: records the view applies after it are read again by the decision.
            let next_offset = follower.next_offset(partition);
            let version = entries.version(key);
            conditional::View { next_offset, version }
        };
        let decided = self.transactions.put_if(topic, key, value, expect, view).await?;
        // A write waits for itself; a refused one for the record that won, so that a read right after the
        // conflict shows the winner (a change is computed again from it).
        let awaited = match decided.outcome {
            Outcome::Written(_) => Some(decided.offset),
            Outcome::Conflict(_) => decided.newest_met,
        };
        if let Some(offset) = awaited {
            let remaining = self.config.timeout.saturating_sub(started.elapsed());
            if !follower.wait_applied(decided.partition, offset, remaining).await {
                return Err(StoreError::NotApplied {
                    topic: topic.to_owned(),
                    partition: decided.partition,
                    offset,
                    waited: started.elapsed(),
                });
            }
        }
        let outcome = decided.outcome;
        Ok(outcome)
    }

    /// Writes `value` (or removes the key with `None`) and returns once this replica's view includes the
    /// write, so a read right after it sees it (read-your-writes); answers the key's new version (`None`
    /// for a removal).
    pub async fn put(&self, topic: &str, key: &str, value: Option<&[u8]>) -> Result<Option<i64>, StoreError> {
        let (_, follower) = self
            .followers
            .get(topic)
            .ok_or_else(|| StoreError::UnknownTopic(topic.to_owned()))?;
        let started = Instant::now();
        let (partition, offset) = send(&self.producer, topic, key, value, self.config.timeout).await?;
        let remaining = self.config.timeout.saturating_sub(started.elapsed());
        if follower.wait_applied(partition, offset, remaining).await {
            Ok(value.is_some().then_some(offset))
        } else {
            Err(StoreError::NotApplied {
                topic: topic.to_owned(),
                partition,
                offset,
                waited: started.elapsed(),
            })
        }
    }

    /// The current value of `key`.
    pub fn get(&self, topic: &str, key: &str) -> Option<Vec<u8>> {
        self.get_versioned(topic, key).map(|(_, value)| value)
    }

    /// The current version (offset) and value of `key`.
    pub fn get_versioned(&self, topic: &str, key: &str) -> Option<(i64, Vec<u8>)> {
        let (entries, _) = self.followers.get(topic)?;
        let entries = entries.0.read().unwrap_or_else(|p| p.into_inner());
        entries.get(key).cloned()
    }

    /// Whether a record at `version` may exist in `topic`, that this replica has not applied yet: false
    /// for a version past the end of every partition (no write ever had it).
    pub async fn may_exist(&self, topic: &str, version: i64) -> bool {
        self.transactions.may_exist(topic, version).await
    }

    /// The current version (offset) of `key`, if it holds a record.
    pub fn version(&self, topic: &str, key: &str) -> Option<i64> {
        self.followers.get(topic)?.0.version(key)
    }

    /// Every current entry of `topic`, in key order.
    pub fn entries(&self, topic: &str) -> Vec<(String, Vec<u8>)> {
        let Some((entries, _)) = self.followers.get(topic) else {
            return Vec::new();
        };
        let entries = entries.0.read().unwrap_or_else(|p| p.into_inner());
        entries.iter().map(|(k, (_, v))| (k.clone(), v.clone())).collect()
    }

    /// The current entries of `topic` that `keep` keeps, in key order; only those are copied.
    pub fn entries_where(&self, topic: &str, keep: impl Fn(&str, &[u8]) -> bool) -> Vec<(String, Vec<u8>)> {
        let Some((entries, _)) = self.followers.get(topic) else {
            return Vec::new();
        };
        let entries = entries.0.read().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .filter(|(key, (_, value))| keep(key, value))
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect()
    }

    /// The current entries of `topic` whose key starts with `prefix`, in key order.
    pub fn entries_with_prefix(&self, topic: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let Some((entries, _)) = self.followers.get(topic) else {
            return Vec::new();
        };
        let entries = entries.0.read().unwrap_or_else(|p| p.into_inner());
        entries
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect()
    }

    /// Stops the followers and flushes pending writes.
    pub fn close(&self) {
        let _ = self.producer.flush(self.config.timeout);
        for (_, follower) in self.followers.values() {
            follower.stop();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// Produces one record and waits for the broker's acknowledgement: its partition and offset.
async fn send(
    producer: &ThreadedProducer<Acknowledgements>,
    topic: &str,
    key: &str,
    value: Option<&[u8]>,
    timeout: Duration,
) -> Result<(i32, i64), StoreError> {
    let (acknowledged, acknowledgement) = oneshot::channel();
    let mut record: BaseRecord<'_, str, [u8], Box<Acknowledgement>> =
        BaseRecord::with_opaque_to(topic, Box::new(acknowledged)).key(key);
    if let Some(value) = value {
        record = record.payload(value);
    }
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                record = back;
            }
            Err((source, _)) => {
                return Err(StoreError::Kafka {
                    action: format!("writing to {topic}"),
                    source,
                });
            }
        }
    }
    let source = match tokio::time::timeout(timeout, acknowledgement).await {
        Ok(Ok(Ok(position))) => return Ok(position),
        Ok(Ok(Err(source))) => source,
        Ok(Err(_)) | Err(_) => KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
    };
    Err(StoreError::Kafka {
        action: format!("writing to {topic}"),
        source,
    })
}

/// How long a store topic that existed already is described again while it shows a policy other than
/// `compact`: two replicas starting together both try to create it, and the loser may describe it before
/// the broker that answers has its configuration.
const RACED_CREATION_GRACE: Duration = Duration::from_secs(5);

/// Creates the missing topics with `cleanup.policy=compact`, and checks that existing ones are compacted.
async fn ensure_compacted_topics(config: &StoreConfig) -> Result<(), StoreError> {
    let admin: AdminClient<KafkaContext> = config
        .clients
        .admin("store-admin")
        .tunable("client.id", "switchyard-registry-store-admin")
        .create()?;
    let options = AdminOptions::new()
        .operation_timeout(Some(config.timeout))
        .request_timeout(Some(config.timeout));
    // Compacted, and the other settings `switchyardctl topics apply` recommends for a control topic.
    let settings = created_configs(TopicKind::Control, config.replication_factor);
    let new: Vec<NewTopic<'_>> = config
        .topics
        .iter()
        .map(|t| {
            let topic = NewTopic::new(
                t,
                config.partitions,
                TopicReplication::Fixed(config.replication_factor),
            )
            .set("cleanup.policy", "compact");
            settings
                .iter()
                .filter(|(key, _)| *key != "cleanup.policy")
                .fold(topic, |topic, (key, value)| topic.set(key, value))
        })
        .collect();
    let mut created = Vec::new();
    for result in admin
        .create_topics(&new, &options)
        .await
        .map_err(kafka("creating the store's topics"))?
    {
        match result {
            Ok(topic) => {
                info!(%topic, "created a compacted store topic");
                created.push(topic);
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(StoreError::Kafka {
                    action: format!("creating the topic {topic}"),
                    source: KafkaError::AdminOp(code),
                });
            }
        }
    }
    // A topic created a moment ago may still describe with the broker defaults on the broker that answers;
    // look again for a short while before calling it not compacted. That holds for a topic that another
    // replica starting at the same moment created too (we saw "already exists"), so those get a shorter
    // grace: such a topic may also be an old one with the wrong policy.
    let started = Instant::now();
    let grace_for_existing = config.timeout.min(RACED_CREATION_GRACE);
    loop {
        let Some((topic, policy)) = not_compacted(&admin, config, &options).await? else {
            return Ok(());
        };
        let grace = if created.contains(&topic) {
            config.timeout
        } else {
            grace_for_existing
        };
        if started.elapsed() >= grace {
            return Err(StoreError::NotCompacted { topic, policy });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The first store topic whose cleanup policy is not exactly `compact`, with that policy.
async fn not_compacted(
    admin: &AdminClient<KafkaContext>,
    config: &StoreConfig,
    options: &AdminOptions,
) -> Result<Option<(String, String)>, StoreError> {
    let specifiers: Vec<ResourceSpecifier<'_>> = config
        .topics
        .iter()
        .map(|t| ResourceSpecifier::Topic(t))
        .collect();
    let described = admin
        .describe_configs(&specifiers, options)
        .await
        .map_err(kafka("describing the store's topics"))?;
    for resource in described {
        let resource = resource.map_err(|code| StoreError::Kafka {
            action: "describing the store's topics".to_owned(),
            source: KafkaError::AdminOp(code),
        })?;
        let OwnedResourceSpecifier::Topic(topic) = &resource.specifier else {
            continue;
        };
        let policy = resource
            .get("cleanup.policy")
            .and_then(|e| e.value.clone())
            .unwrap_or_else(|| "delete".to_owned());
        // `compact,delete` also deletes old segments after the retention time: state would be lost.
        let policies: Vec<&str> = policy.split(',').map(str::trim).collect();
        if policies != ["compact"] {
            return Ok(Some((topic.clone(), policy)));
        }
    }
    Ok(None)
}
