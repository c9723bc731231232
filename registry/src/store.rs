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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, NewTopic, OwnedResourceSpecifier, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use switchyard_router::kafka::{LogContext, log_client_error};
use thiserror::Error;
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

const POLL: Duration = Duration::from_millis(100);

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
    /// The follower thread of a topic could not start.
    #[error("cannot start the follower of {topic}: {source}")]
    Thread {
        /// The topic.
        topic: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn kafka(action: impl Into<String>) -> impl FnOnce(KafkaError) -> StoreError {
    let action = action.into();
    move |source| StoreError::Kafka { action, source }
}

/// How to reach Kafka and which topics to keep.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Bootstrap servers.
    pub bootstrap_servers: String,
    /// librdkafka options for every client (SASL, TLS).
    pub options: BTreeMap<String, String>,
    /// The compacted topics to follow; created if missing.
    pub topics: Vec<String>,
    /// Partitions of a topic the store creates.
    pub partitions: i32,
    /// Replication factor of a topic the store creates.
    pub replication_factor: i32,
    /// Bound of a write (acknowledgement plus being applied locally) and of admin calls.
    pub timeout: Duration,
}

impl StoreConfig {
    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in &self.options {
            config.set(key, value);
        }
        config
    }
}

/// One followed topic: its current entries and, per partition, the next offset to apply.
struct Follower {
    entries: RwLock<BTreeMap<String, Vec<u8>>>,
    applied: watch::Sender<HashMap<i32, i64>>,
    caught_up: watch::Sender<bool>,
}

type Acknowledgement = oneshot::Sender<Result<(i32, i64), KafkaError>>;

/// Hands each delivery report to the writer waiting for it.
struct Acknowledgements;

impl ClientContext for Acknowledgements {
    /// Transient client errors (a broker connection dropped) as the router logs them, not at ERROR.
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error("store-producer", &error, reason);
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
    followers: HashMap<String, Arc<Follower>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Store {
    /// Creates missing topics (compacted), refuses non-compacted ones, and starts following every topic.
    /// Returns at once; [`Store::caught_up`] tells when the initial state is loaded.
    pub async fn open(config: StoreConfig) -> Result<Self, StoreError> {
        ensure_compacted_topics(&config).await?;
        let producer: ThreadedProducer<Acknowledgements> = config
            .client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Java-compatible key hashing, as the contract asks of control-topic writers.
            .set("partitioner", "murmur2_random")
            .create_with_context(Acknowledgements)
            .map_err(kafka("creating the producer"))?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut followers = HashMap::new();
        let mut threads = Vec::new();
        for topic in &config.topics {
            let follower = Arc::new(Follower {
                entries: RwLock::new(BTreeMap::new()),
                applied: watch::Sender::new(HashMap::new()),
                caught_up: watch::Sender::new(false),
            });
            // The end of a partition is how the follower knows it is caught up: not an error to log.
            let consumer: BaseConsumer<LogContext> = config
                .client()
                .set("group.id", "switchyard-registry-follower-unused")
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "true")
                .set("fetch.wait.max.ms", "100")
                .create_with_context(LogContext::new(format!("store-{topic}")))
                .map_err(kafka(format!("creating the follower of {topic}")))?;
            let (topic_name, shared, stop) = (topic.clone(), Arc::clone(&follower), Arc::clone(&stop));
            let timeout = config.timeout;
            let thread = std::thread::Builder::new()
                .name(format!("follow-{topic}"))
                .spawn(move || follow(&consumer, &topic_name, &shared, &stop, timeout))
                .map_err(|source| StoreError::Thread {
                    topic: topic.clone(),
                    source,
                })?;
            threads.push(thread);
            followers.insert(topic.clone(), follower);
        }
        Ok(Self {
            config,
            producer,
            followers,
            stop,
            threads: Mutex::new(threads),
        })
    }

    /// Whether every topic has been read up to where it ended when the store opened.
    pub fn caught_up(&self) -> bool {
        self.followers.values().all(|f| *f.caught_up.borrow())
    }

    /// Waits until [`Store::caught_up`].
    pub async fn wait_caught_up(&self) {
        for follower in self.followers.values() {
            let mut ready = follower.caught_up.subscribe();
            let _ = ready.wait_for(|caught_up| *caught_up).await;
        }
    }

    /// Writes `value` (or removes the key with `None`) and returns once this replica's view includes the
    /// write, so a read right after it sees it (read-your-writes).
    pub async fn put(&self, topic: &str, key: &str, value: Option<&[u8]>) -> Result<(), StoreError> {
        let follower = self
            .followers
            .get(topic)
            .ok_or_else(|| StoreError::UnknownTopic(topic.to_owned()))?;
        let (acknowledged, acknowledgement) = oneshot::channel();
        let mut record: BaseRecord<'_, str, [u8], Box<Acknowledgement>> =
            BaseRecord::with_opaque_to(topic, Box::new(acknowledged)).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        let started = Instant::now();
        loop {
            match self.producer.send(record) {
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
        let (partition, offset) = match tokio::time::timeout(self.config.timeout, acknowledgement).await {
            Ok(Ok(Ok(position))) => position,
            Ok(Ok(Err(source))) => {
                return Err(StoreError::Kafka {
                    action: format!("writing to {topic}"),
                    source,
                });
            }
            Ok(Err(_)) | Err(_) => {
                return Err(StoreError::Kafka {
                    action: format!("writing to {topic}"),
                    source: KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
                });
            }
        };
        let mut applied = follower.applied.subscribe();
        let remaining = self.config.timeout.saturating_sub(started.elapsed());
        let seen = tokio::time::timeout(
            remaining,
            applied.wait_for(|next| next.get(&partition).is_some_and(|&n| n > offset)),
        );
        match seen.await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(StoreError::NotApplied {
                topic: topic.to_owned(),
                partition,
                offset,
                waited: started.elapsed(),
            }),
        }
    }

    /// The current value of `key`.
    pub fn get(&self, topic: &str, key: &str) -> Option<Vec<u8>> {
        let follower = self.followers.get(topic)?;
        let entries = follower.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(key).cloned()
    }

    /// Every current entry of `topic`, in key order.
    pub fn entries(&self, topic: &str) -> Vec<(String, Vec<u8>)> {
        let Some(follower) = self.followers.get(topic) else {
            return Vec::new();
        };
        let entries = follower.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The current entries of `topic` whose key starts with `prefix`, in key order.
    pub fn entries_with_prefix(&self, topic: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let Some(follower) = self.followers.get(topic) else {
            return Vec::new();
        };
        let entries = follower.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Stops the followers and flushes pending writes.
    pub fn close(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.producer.flush(self.config.timeout);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// How long a store topic that existed already is described again while it shows a policy other than
/// `compact`: two replicas starting together both try to create it, and the loser may describe it before
/// the broker that answers has its configuration.
const RACED_CREATION_GRACE: Duration = Duration::from_secs(5);

/// Creates the missing topics with `cleanup.policy=compact`, and checks that existing ones are compacted.
async fn ensure_compacted_topics(config: &StoreConfig) -> Result<(), StoreError> {
    let admin: AdminClient<DefaultClientContext> = config
        .client()
        .create()
        .map_err(kafka("creating the admin client"))?;
    let options = AdminOptions::new()
        .operation_timeout(Some(config.timeout))
        .request_timeout(Some(config.timeout));
    let new: Vec<NewTopic<'_>> = config
        .topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                config.partitions,
                TopicReplication::Fixed(config.replication_factor),
            )
            .set("cleanup.policy", "compact")
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
    admin: &AdminClient<DefaultClientContext>,
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

/// The follower loop of one topic: assign every partition from the beginning, apply records in order,
/// publish the next offset per partition, and report caught up at the end offsets seen at start.
fn follow(
    consumer: &BaseConsumer<LogContext>,
    topic: &str,
    follower: &Follower,
    stop: &std::sync::atomic::AtomicBool,
    timeout: Duration,
) {
    let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
    let partitions = loop {
        match consumer.fetch_metadata(Some(topic), timeout) {
            Ok(metadata) => {
                let partitions: Vec<i32> = metadata
                    .topics()
                    .iter()
                    .filter(|t| t.name() == topic)
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect();
                if !partitions.is_empty() {
                    break partitions;
                }
            }
            Err(error) => warn!(%error, topic, "reading the store topic's metadata failed; retrying"),
        }
        if stopped() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut assignment = TopicPartitionList::new();
    let mut pending: HashMap<i32, i64> = HashMap::new();
    for &partition in &partitions {
        if let Err(error) = assignment.add_partition_offset(topic, partition, Offset::Beginning) {
            warn!(%error, topic, partition, "building the follower's assignment failed");
        }
        match consumer.fetch_watermarks(topic, partition, timeout) {
            Ok((low, high)) if high > low => {
                pending.insert(partition, high);
            }
            Ok(_) => {}
            Err(error) => {
                warn!(%error, topic, partition, "reading the end offset failed; waiting for the end of the partition");
                pending.insert(partition, i64::MAX);
            }
        }
    }
    if let Err(error) = consumer.assign(&assignment) {
        warn!(%error, topic, "assigning the store topic failed");
    }
    let mark_caught_up = |pending: &HashMap<i32, i64>| {
        if pending.is_empty() && !*follower.caught_up.borrow() {
            info!(topic, "store topic caught up");
            follower.caught_up.send_replace(true);
        }
    };
    mark_caught_up(&pending);
    while !stopped() {
        match consumer.poll(POLL) {
            Some(Ok(message)) => {
                if let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) {
                    let mut entries = follower.entries.write().unwrap_or_else(|p| p.into_inner());
                    match message.payload() {
                        Some(value) => entries.insert(key.to_owned(), value.to_vec()),
                        None => entries.remove(key),
                    };
                } else {
                    warn!(
                        topic,
                        offset = message.offset(),
                        "a store record without a UTF-8 key is ignored"
                    );
                }
                let (partition, next) = (message.partition(), message.offset() + 1);
                follower.applied.send_modify(|applied| {
                    applied.insert(partition, next);
                });
                if pending.get(&partition).is_some_and(|&high| next >= high) {
                    pending.remove(&partition);
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                pending.remove(&partition);
            }
            Some(Err(error)) => warn!(%error, topic, "following the store topic failed"),
            None => {}
        }
        mark_caught_up(&pending);
    }
}
