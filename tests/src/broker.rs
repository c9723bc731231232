//! The broker under test: names, topics, producing and reading back.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The broker's bootstrap address.
pub fn bootstrap() -> String {
    std::env::var("SWITCHYARD_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// A name no other test uses: `<prefix>-<8 hex digits>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap());
    config
}

/// Creates topics (`compacted` ones with `cleanup.policy=compact`), failing the test if any fails.
pub async fn create_topics(topics: &[(&str, i32, bool)]) {
    let admin: AdminClient<DefaultClientContext> = client_config().create().expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions, compacted)| {
            let topic = NewTopic::new(name, *partitions, TopicReplication::Fixed(1));
            if *compacted {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create topics");
    for result in results {
        if let Err((topic, error)) = result {
            panic!("creating topic {topic} failed: {error}");
        }
    }
}

/// A record to produce: key, value and headers (`None` = a null value or header value).
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value.
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Outgoing {
    /// The same record with another value.
    pub fn with_value(mut self, value: &[u8]) -> Self {
        self.value = Some(value.to_vec());
        self
    }
}

/// A plain (non-transactional, idempotent) producer.
pub struct TestProducer {
    producer: BaseProducer,
}

impl Default for TestProducer {
    fn default() -> Self {
        Self::new()
    }
}

impl TestProducer {
    /// A producer with Java-compatible partitioning, like the router's.
    pub fn new() -> Self {
        let producer = client_config()
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        Self { producer }
    }

    /// Sends one record (waits while the queue is full).
    pub fn send(&self, topic: &str, record: &Outgoing) {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let mut base: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(headers);
        if let Some(key) = &record.key {
            base = base.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            base = base.payload(value.as_slice());
        }
        loop {
            match self.producer.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                    self.producer.poll(Duration::from_millis(10));
                    base = back;
                }
                Err((error, _)) => panic!("producing to {topic} failed: {error}"),
            }
        }
        self.producer.poll(Duration::ZERO);
    }

    /// Waits until everything sent is acknowledged.
    pub fn flush(&self) {
        self.producer.flush(Duration::from_secs(30)).expect("flush");
    }
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Incoming {
    /// The first header named `name`, as UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()))
    }

    /// The headers as name -> value (UTF-8, lossy), for comparisons.
    pub fn header_map(&self) -> BTreeMap<String, Option<String>> {
        self.headers
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect()
    }
}

/// Reads every committed record of `topic`, from the beginning to the end of every partition, as a
/// `read_committed` consumer. A topic that does not exist reads as empty.
pub fn read_to_end(topic: &str) -> Vec<Incoming> {
    let consumer: BaseConsumer = client_config()
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let Some(entry) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
    else {
        return Vec::new();
    };
    let mut assignment = TopicPartitionList::new();
    let mut open: HashSet<i32> = HashSet::new();
    for partition in entry.partitions() {
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Beginning)
            .expect("assignment");
        open.insert(partition.id());
    }
    consumer.assign(&assignment).expect("assign");
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !open.is_empty() {
        assert!(
            Instant::now() < deadline,
            "reading {topic} to its end took over 60 s"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => records.push(Incoming {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers: message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                open.remove(&partition);
            }
            Some(Err(error)) => panic!("reading {topic} failed: {error}"),
            None => {}
        }
    }
    records
}

/// Whether the consumer group has committed offsets at the end of every partition of `topic`: everything
/// produced so far has been processed and its outcome is durable. (Input topics in tests are written
/// without transactions, so the end offset is the offset after the last record.)
pub fn group_caught_up(group: &str, topic: &str) -> bool {
    let consumer: BaseConsumer = client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) else {
        return false;
    };
    let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return false;
    };
    let mut list = TopicPartitionList::new();
    for partition in entry.partitions() {
        list.add_partition(topic, partition.id());
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(10)) else {
        return false;
    };
    committed.elements().iter().all(|element| {
        let Ok((_, high)) = consumer.fetch_watermarks(topic, element.partition(), Duration::from_secs(10))
        else {
            return false;
        };
        match element.offset() {
            // Past the end would be a bug (the next reader resets to the beginning): not caught up.
            Offset::Offset(committed) => committed == high,
            _ => high == 0,
        }
    })
}
