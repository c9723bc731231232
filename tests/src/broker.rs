//! The broker under test: names, topics, producing and reading back.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use switchyard_loadtest::kafka::ReadRecord;
use switchyard_loadtest::record::Record;
use switchyard_service::kafka::Clients;

/// The broker's bootstrap address.
pub fn bootstrap() -> String {
    std::env::var("SWITCHYARD_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// A name no other test uses: `<prefix>-<8 hex digits>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// The clients of the broker under test, made as every Switchyard process makes its clients.
pub fn clients() -> Clients {
    switchyard_loadtest::kafka::clients(&bootstrap())
}

fn client_config() -> ClientConfig {
    clients()
        .admin("test")
        .config()
        .expect("plain settings make a client")
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

/// Deletes topics, failing the test if the broker refuses; a topic that does not exist is no error.
pub async fn delete_topics(topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = client_config().create().expect("admin client");
    let results = admin
        .delete_topics(
            topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("delete topics");
    for result in results {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((topic, error)) => panic!("deleting topic {topic} failed: {error}"),
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

/// A plain (non-transactional, idempotent) producer with Java-compatible partitioning, like the router's:
/// the load-test crate's producer, failing the test on any error.
pub struct TestProducer {
    producer: switchyard_loadtest::kafka::Producer,
}

impl Default for TestProducer {
    fn default() -> Self {
        Self::new()
    }
}

impl TestProducer {
    /// A producer for the test broker.
    pub fn new() -> Self {
        Self {
            producer: switchyard_loadtest::kafka::Producer::new(&bootstrap()).expect("producer"),
        }
    }

    /// Sends one record (waits while the queue is full).
    pub fn send(&self, topic: &str, record: &Outgoing) {
        let record = Record {
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().expect("tests send no null header values")))
                .collect(),
        };
        self.producer
            .send(topic, &record)
            .unwrap_or_else(|error| panic!("producing to {topic} failed: {error}"));
    }

    /// Waits until everything sent is acknowledged.
    pub fn flush(&self) {
        self.producer
            .flush(Duration::from_secs(30))
            .unwrap_or_else(|error| panic!("flush failed: {error}"));
    }
}

/// A record read back (topic, partition, offset, key, value, headers in order).
pub type Incoming = ReadRecord;

/// Reads every committed record of `topic`, from the beginning to the end of every partition, as a
/// `read_committed` consumer. A topic that does not exist reads as empty.
pub fn read_to_end(topic: &str) -> Vec<Incoming> {
    switchyard_loadtest::kafka::read_to_end(&bootstrap(), topic, Duration::from_secs(60), |_| true)
        .unwrap_or_else(|error| panic!("reading {topic} failed: {error}"))
        .kept
}

/// The partition count of `topic`, or `None` when it does not exist.
pub fn topic_partitions(topic: &str) -> Option<usize> {
    let consumer: BaseConsumer = client_config()
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .filter(|&n| n > 0)
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
