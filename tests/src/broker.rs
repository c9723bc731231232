//! The broker under test: names, topics, producing and reading back, through the shared fixtures
//! (`switchyard_fixtures::kafka`) with the test's broker and panics instead of errors.

use std::time::Duration;

pub use switchyard_fixtures::kafka::TopicSpec;
use switchyard_fixtures::kafka::{self, Created, ReadRecord, Record};
use switchyard_service::kafka::{Clients, LagReader};

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
    kafka::clients(&bootstrap())
}

/// Runs a blocking fixture on tokio's blocking threads: the topic calls start a runtime of their own, which
/// a test's runtime thread may not.
async fn off_runtime<T: Send + 'static>(call: impl FnOnce(&Clients) -> T + Send + 'static) -> T {
    let clients = clients();
    tokio::task::spawn_blocking(move || call(&clients))
        .await
        .expect("fixture thread")
}

/// Creates topics (`compacted` ones with `cleanup.policy=compact`), failing the test if any fails or
/// exists already.
pub async fn create_topics(topics: &[(&str, i32, bool)]) {
    let specs: Vec<TopicSpec> = topics
        .iter()
        .map(|&(name, partitions, compacted)| TopicSpec {
            name: name.to_owned(),
            partitions,
            compacted,
        })
        .collect();
    let created = off_runtime(move |clients| kafka::create_topics(clients, &specs))
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    for topic in created {
        if let Created::Existed(topic) = topic {
            panic!("the topic {topic} exists already");
        }
    }
}

/// Deletes topics, failing the test if the broker refuses; a topic that does not exist is no error.
pub async fn delete_topics(topics: &[&str]) {
    let topics: Vec<String> = topics.iter().map(|&t| t.to_owned()).collect();
    off_runtime(move |clients| {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        kafka::delete_topics(clients, &names)
    })
    .await
    .unwrap_or_else(|error| panic!("{error}"));
}

/// Sets topic-level settings, e.g. `("max.message.bytes", "2048")`, failing the test if the broker refuses.
pub async fn set_topic_config(topic: &str, settings: &[(&str, &str)]) {
    let topic = topic.to_owned();
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    off_runtime(move |clients| {
        let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        kafka::set_topic_config(clients, &topic, &settings)
    })
    .await
    .unwrap_or_else(|error| panic!("{error}"));
}

/// Creates `topic` once the broker lets it (a topic being deleted still exists for a moment): whether it
/// was created now.
pub async fn try_create_topic(topic: TopicSpec) -> bool {
    let name = topic.name.clone();
    off_runtime(move |clients| kafka::create_topics(clients, &[topic]))
        .await
        .is_ok_and(|created| created == [Created::Created(name)])
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
/// the fixtures' producer, failing the test on any error.
pub struct TestProducer {
    producer: kafka::Producer,
}

impl Default for TestProducer {
    fn default() -> Self {
        Self::new()
    }
}

impl TestProducer {
    /// A producer for the test broker.
    pub fn new() -> Self {
        Self::on(&clients())
    }

    /// A producer made by other clients (another broker, a secured one).
    pub fn on(clients: &Clients) -> Self {
        Self {
            producer: kafka::Producer::new(clients).unwrap_or_else(|error| panic!("{error}")),
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
    kafka::read_to_end(&clients(), topic, Duration::from_secs(60), |_| true)
        .unwrap_or_else(|error| panic!("reading {topic} failed: {error}"))
        .kept
}

/// The partition count of `topic`, or `None` when it does not exist.
pub fn topic_partitions(topic: &str) -> Option<usize> {
    kafka::topic_partitions(&clients(), topic).unwrap_or_else(|error| panic!("{error}"))
}

/// Whether the consumer group has committed offsets at the end of every partition of `topic`: everything
/// produced so far has been processed and its outcome is durable. (Input topics in tests are written
/// without transactions, so the end offset is the offset after the last record.)
pub fn group_caught_up(group: &str, topic: &str) -> bool {
    const TIMEOUT: Duration = Duration::from_secs(10);
    let Ok(reader) = LagReader::new(&clients(), "test-group-progress", group) else {
        return false;
    };
    let lags = reader
        .partitions(topic, TIMEOUT)
        .and_then(|partitions| reader.lag(topic, &partitions, TIMEOUT));
    match lags {
        // Exactly at the end: a commit past it would be a bug (the next reader resets to the beginning).
        Ok(lags) if !lags.is_empty() => lags.iter().all(|p| match p.committed {
            Some(committed) => committed == p.end,
            None => p.end == 0,
        }),
        _ => false,
    }
}
