//! The Kafka side: creating topics, producing records with back-pressure, and reading topics back to
//! their end as a `read_committed` consumer.
//!
//! Everything here blocks the calling thread; the tool has no async code. The admin client's futures run
//! on a small current-thread runtime that lives only for the call.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use switchyard_service::follower::{self, Apply, FollowError, Record as FollowedRecord};
use switchyard_service::kafka::{ClientStats, Clients, DeliveryTally, KafkaContext, KafkaSettings};

use crate::LoadtestError;
use crate::record::Record;

/// How long one metadata or admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The tool's clients: the broker at `bootstrap`, no pass-through options, no statistics.
pub fn clients(bootstrap: &str) -> Clients {
    Clients::new(KafkaSettings::bootstrap(bootstrap), ClientStats::unregistered())
        .with_statistics_interval(Duration::ZERO)
}

fn kafka_error(action: impl Into<String>) -> impl FnOnce(KafkaError) -> LoadtestError {
    let action = action.into();
    move |error| LoadtestError::Kafka { action, error }
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Its name.
    pub name: String,
    /// Its partition count.
    pub partitions: i32,
    /// Whether it gets `cleanup.policy=compact`.
    pub compacted: bool,
}

/// What [`create_topics`] did with one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// It was created.
    Created(String),
    /// It existed already (left as it is).
    Existed(String),
}

impl std::fmt::Display for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Created::Created(topic) => write!(f, "created  {topic}"),
            Created::Existed(topic) => write!(f, "exists   {topic}"),
        }
    }
}

/// Creates `topics` with replication factor 1; topics that exist already are left alone.
pub fn create_topics(bootstrap: &str, topics: &[TopicSpec]) -> Result<Vec<Created>, LoadtestError> {
    let admin: AdminClient<KafkaContext> = clients(bootstrap).admin("loadtest-admin").create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|topic| {
            let new = NewTopic::new(&topic.name, topic.partitions, TopicReplication::Fixed(1));
            if topic.compacted {
                new.set("cleanup.policy", "compact")
            } else {
                new
            }
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(REQUEST_TIMEOUT))
        .request_timeout(Some(REQUEST_TIMEOUT));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(LoadtestError::Runtime)?;
    let results = runtime
        .block_on(admin.create_topics(&new, &options))
        .map_err(kafka_error("creating topics"))?;
    results
        .into_iter()
        .map(|result| match result {
            Ok(topic) => Ok(Created::Created(topic)),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => Ok(Created::Existed(topic)),
            Err((topic, code)) => Err(LoadtestError::CreateTopic {
                topic,
                message: code.to_string(),
            }),
        })
        .collect()
}

/// An idempotent producer with the murmur2 partitioner (the same key placement as Java clients and the
/// router). A full local queue means wait, never drop.
pub struct Producer {
    inner: BaseProducer<DeliveryTally>,
}

impl Producer {
    /// A producer for the broker at `bootstrap`.
    pub fn new(bootstrap: &str) -> Result<Self, LoadtestError> {
        let client = clients(bootstrap)
            .producer("loadtest-producer")
            .managed("enable.idempotence", "true")
            .tunable("partitioner", "murmur2_random")
            .tunable("linger.ms", "5")
            .tunable("compression.type", "zstd");
        let tally = DeliveryTally::new(client.context());
        let inner = client.create_with(tally)?;
        Ok(Self { inner })
    }

    /// Hands one record for `topic` to librdkafka, waiting while its queue is full.
    pub fn send(&self, topic: &str, record: &Record) -> Result<(), LoadtestError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_slice()),
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
            match self.inner.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // Serving delivery reports frees queue space.
                    self.inner.poll(Duration::from_millis(10));
                    base = back;
                }
                Err((error, _)) => {
                    return Err(LoadtestError::Kafka {
                        action: format!("producing to {topic}"),
                        error,
                    });
                }
            }
        }
        self.inner.poll(Duration::ZERO);
        Ok(())
    }

    /// Records acknowledged so far.
    pub fn delivered(&self) -> u64 {
        self.inner.context().delivered()
    }

    /// Waits until every record is acknowledged; fails if any was not.
    pub fn flush(&self, timeout: Duration) -> Result<(), LoadtestError> {
        self.inner
            .flush(timeout)
            .map_err(kafka_error("waiting for the broker to acknowledge every record"))?;
        let tally = self.inner.context();
        if tally.failed() > 0 {
            let first = tally.first_failure().map(|e| e.to_string()).unwrap_or_default();
            return Err(LoadtestError::Delivery {
                failed: tally.failed(),
                first,
            });
        }
        Ok(())
    }
}

/// A record read back, with the headers a check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Option<Vec<u8>>,
    /// Headers in order (`None` = a null header value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ReadRecord {
    /// The headers as name -> value (UTF-8, lossy; a repeated name keeps its last value), for comparisons.
    pub fn header_map(&self) -> std::collections::BTreeMap<String, Option<String>> {
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

    /// The first header named `name`, as UTF-8 (lossy).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_ref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// What [`read_to_end`] found.
#[derive(Debug, Clone, Default)]
pub struct Read {
    /// The records `keep` accepted, in partition and offset order per partition.
    pub kept: Vec<ReadRecord>,
    /// Records `keep` rejected (earlier runs, other producers).
    pub skipped: u64,
}

/// Reads several topics with [`read_to_end`] at once, one consumer thread per topic; results in the order
/// of `topics`.
pub fn read_all_to_end(
    bootstrap: &str,
    topics: &[String],
    timeout: Duration,
    keep: &(dyn Fn(&ReadRecord) -> bool + Sync),
) -> Result<Vec<Read>, LoadtestError> {
    std::thread::scope(|scope| {
        let readers: Vec<_> = topics
            .iter()
            .map(|topic| scope.spawn(move || read_to_end(bootstrap, topic, timeout, keep)))
            .collect();
        readers
            .into_iter()
            .map(|reader| {
                reader
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Reads every committed record of `topic` from the beginning up to where each partition ended when the
/// read began (the foundation's follower, until caught up), and keeps those `keep` accepts. A missing topic
/// reads as empty; not finishing within `timeout` is an error, never a partial read.
pub fn read_to_end(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    keep: impl Fn(&ReadRecord) -> bool,
) -> Result<Read, LoadtestError> {
    let mut collector = Collector {
        topic,
        keep,
        read: Read::default(),
    };
    match follower::read_until_caught_up(
        &clients(bootstrap),
        topic,
        "loadtest-reader",
        &mut collector,
        timeout,
    ) {
        Ok(()) => Ok(collector.read),
        Err(FollowError::NoSuchTopic(_)) => Ok(Read::default()),
        Err(FollowError::TimedOut { lag, .. }) => Err(LoadtestError::Timeout {
            what: "a topic to be read to its end",
            waited: timeout,
            last: format!("{topic}: {lag} records not read yet"),
        }),
        Err(error) => Err(LoadtestError::Read(error)),
    }
}

/// Keeps the records a `keep` function accepts.
struct Collector<'a, F> {
    topic: &'a str,
    keep: F,
    read: Read,
}

impl<F: Fn(&ReadRecord) -> bool> Apply for Collector<'_, F> {
    fn apply(&mut self, record: FollowedRecord<'_>) {
        let record = ReadRecord {
            topic: self.topic.to_owned(),
            partition: record.partition,
            offset: record.offset,
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.map(<[u8]>::to_vec),
            headers: record
                .headers
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        if (self.keep)(&record) {
            self.read.kept.push(record);
        } else {
            self.read.skipped += 1;
        }
    }
}
