//! The `pipe` baseline: the least work any router must do on this broker, to measure the router against.
//!
//! It consumes the core topic and writes each input to as many plugin topics as the routing rule would
//! (the generator stamps that number on each event, [`FANOUT_HEADER`]), with no table lookup, no header
//! checks and no payload validation. Its Kafka clients are built by the router's own configuration code
//! (`switchyard_router::config::Config`, the same defaults and `SWITCHYARD_ROUTER__...` overrides), so
//! the comparison differs only in the router's work, not in client settings.
//!
//! - exactly-once: one transaction per `commit_interval_ms` or `commit_max_events`, input offsets sent to
//!   the transaction, as the router does.
//! - at-least-once: an input's offset is stored once every output of it was acknowledged, in partition
//!   order, and auto-committed every `commit_interval_ms`, as the router does.
//!
//! It is a single instance: it does not handle rebalances beyond the first assignment (run one copy).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use switchyard_router::config::{Config, DeliveryMode};
use switchyard_service::kafka::{ClientStats, KafkaContext};
use tokio_util::sync::CancellationToken;

use crate::LoadtestError;
use crate::workload::FANOUT_HEADER;

/// What the pipe copies where.
#[derive(Debug, Clone)]
pub struct PipeOptions {
    /// The router configuration whose client settings the pipe uses (bootstrap, options, mode, group,
    /// commit cadence, topic names).
    pub config: Config,
    /// The plugin topics, in order; an input with fan-out k goes to k of them, rotating.
    pub outputs: Vec<String>,
    /// Stop after this long (none: until SIGINT or SIGTERM).
    pub duration: Option<Duration>,
}

/// Counts of a pipe run.
#[derive(Debug, Clone, Copy, Default)]
pub struct PipeCounts {
    /// Inputs consumed.
    pub inputs: u64,
    /// Outputs produced.
    pub outputs: u64,
    /// Transactions committed (exactly-once).
    pub transactions: u64,
    /// Time spent in `send_offsets_to_transaction` plus `commit_transaction` (exactly-once): the figure to
    /// hold against the router's `switchyard_router_transaction_commit_seconds`.
    pub commit_seconds: f64,
}

type Pending = Mutex<HashMap<(i32, i64), u32>>;

/// Acknowledgements, for the at-least-once offset store.
#[derive(Default)]
struct Acks {
    remaining: Pending,
    failed: AtomicU64,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<(i32, i64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, source: Self::DeliveryOpaque) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut remaining = self.remaining.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(left) = remaining.get_mut(&source) {
            *left = left.saturating_sub(1);
        }
    }
}

fn kafka(action: &str) -> impl FnOnce(KafkaError) -> LoadtestError {
    LoadtestError::kafka(action)
}

/// Runs the pipe until `stop` is set or the duration passed.
pub fn run(options: &PipeOptions, stop: &CancellationToken) -> Result<PipeCounts, LoadtestError> {
    let config = &options.config;
    let exactly_once = config.delivery.mode == DeliveryMode::ExactlyOnce;
    // The router's own client settings, so that the comparison is of the code, not of the tuning.
    let clients = config.clients(ClientStats::unregistered());
    let consumer: BaseConsumer<KafkaContext> = config.event_consumer(&clients).create()?;
    let producer: BaseProducer<Acks> = config.producer(&clients).create_with(Acks::default())?;
    consumer
        .subscribe(&[config.topics.core_events.as_str()])
        .map_err(kafka("subscribing to the core topic"))?;
    let timeout = Duration::from_millis(config.delivery.drain_timeout_ms.max(30_000));
    if exactly_once {
        producer
            .init_transactions(timeout)
            .map_err(kafka("initialising transactions"))?;
        producer
            .begin_transaction()
            .map_err(kafka("beginning a transaction"))?;
    }
    let commit_every = Duration::from_millis(config.delivery.commit_interval_ms);
    let commit_max = config.delivery.commit_max_events;
    let started = Instant::now();
    let mut counts = PipeCounts::default();
    let mut rotation = 0usize;
    let mut next_offsets: HashMap<i32, i64> = HashMap::new();
    let mut order: HashMap<i32, VecDeque<i64>> = HashMap::new();
    let mut since_commit = 0usize;
    let mut last_commit = Instant::now();
    let mut announced = false;
    let input = config.topics.core_events.clone();
    while !stop.is_cancelled() && options.duration.is_none_or(|d| started.elapsed() < d) {
        if !announced && consumer.assignment().is_ok_and(|a| a.count() > 0) {
            println!("switchyard-loadtest pipe: RUNNING");
            announced = true;
        }
        if let Some(message) = consumer.poll(Duration::from_millis(if since_commit > 0 { 5 } else { 100 })) {
            let message = match message {
                Ok(message) => message,
                // librdkafka reports these and recovers by itself (e.g. a topic created a moment ago
                // whose metadata has not reached the broker's cache yet).
                Err(KafkaError::MessageConsumption(code)) => {
                    eprintln!("switchyard-loadtest pipe: consuming: {code} (retrying)");
                    continue;
                }
                Err(error) => return Err(kafka("consuming the core topic")(error)),
            };
            let fanout = message
                .headers()
                .and_then(|headers| headers.iter().find(|h| h.key == FANOUT_HEADER))
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
                .min(options.outputs.len());
            let source = (message.partition(), message.offset());
            if !exactly_once {
                producer
                    .context()
                    .remaining
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(source, fanout as u32);
                order.entry(source.0).or_default().push_back(source.1);
            }
            for i in 0..fanout {
                let topic = &options.outputs[(rotation + i) % options.outputs.len()];
                let mut record = BaseRecord::with_opaque_to(topic, Box::new(source));
                if let Some(key) = message.key() {
                    record = record.key(key);
                }
                if let Some(payload) = message.payload() {
                    record = record.payload(payload);
                }
                if let Some(headers) = message.headers() {
                    record = record.headers(headers.detach());
                }
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            producer.poll(Duration::from_millis(5));
                            record = back;
                        }
                        Err((error, _)) => return Err(kafka("producing")(error)),
                    }
                }
                counts.outputs += 1;
            }
            rotation = rotation.wrapping_add(1);
            counts.inputs += 1;
            since_commit += 1;
            next_offsets.insert(source.0, source.1 + 1);
        }
        producer.poll(Duration::ZERO);
        if producer.context().failed.load(Ordering::Relaxed) > 0 {
            return Err(LoadtestError::Usage(
                "the pipe's producer failed to deliver a record".into(),
            ));
        }
        if exactly_once {
            if since_commit > 0 && (last_commit.elapsed() >= commit_every || since_commit >= commit_max) {
                let mut offsets = TopicPartitionList::new();
                for (partition, next) in &next_offsets {
                    offsets
                        .add_partition_offset(&input, *partition, Offset::Offset(*next))
                        .map_err(kafka("building offsets"))?;
                }
                let commit_started = Instant::now();
                let group = consumer.group_metadata().ok_or_else(|| {
                    LoadtestError::Usage("the pipe's consumer has no group metadata".into())
                })?;
                // Retriable failures (a busy coordinator) are retried as the router does.
                retry_retriable(|| producer.send_offsets_to_transaction(&offsets, &group, timeout))
                    .map_err(kafka("sending offsets to the transaction"))?;
                retry_retriable(|| producer.commit_transaction(timeout))
                    .map_err(kafka("committing the transaction"))?;
                producer
                    .begin_transaction()
                    .map_err(kafka("beginning a transaction"))?;
                counts.transactions += 1;
                counts.commit_seconds += commit_started.elapsed().as_secs_f64();
                since_commit = 0;
                last_commit = Instant::now();
            }
        } else {
            store_acknowledged(&consumer, &input, producer.context(), &mut order)?;
            since_commit = 0;
        }
    }
    if exactly_once && since_commit > 0 {
        let _ = producer.abort_transaction(timeout);
    }
    if !exactly_once {
        let _ = producer.flush(timeout);
        producer.poll(Duration::ZERO);
        store_acknowledged(&consumer, &input, producer.context(), &mut order)?;
        let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    }
    Ok(counts)
}

/// Calls a transaction step again while librdkafka calls its failure retriable, for up to a minute.
fn retry_retriable(mut step: impl FnMut() -> Result<(), KafkaError>) -> Result<(), KafkaError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match step() {
            Err(KafkaError::Transaction(error)) if error.is_retriable() && Instant::now() < deadline => {
                eprintln!("switchyard-loadtest pipe: {error} (retriable, retrying)");
                std::thread::sleep(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// Stores, per partition and in order, the offsets of inputs whose outputs were all acknowledged.
fn store_acknowledged(
    consumer: &BaseConsumer<KafkaContext>,
    input: &str,
    acks: &Acks,
    order: &mut HashMap<i32, VecDeque<i64>>,
) -> Result<(), LoadtestError> {
    let mut remaining = acks.remaining.lock().unwrap_or_else(|p| p.into_inner());
    for (partition, offsets) in order.iter_mut() {
        let mut last_done = None;
        while let Some(offset) = offsets.front() {
            if remaining.get(&(*partition, *offset)).copied().unwrap_or(0) > 0 {
                break;
            }
            remaining.remove(&(*partition, *offset));
            last_done = Some(*offset);
            offsets.pop_front();
        }
        if let Some(offset) = last_done {
            consumer
                .store_offset(input, *partition, offset + 1)
                .map_err(kafka("storing an offset"))?;
        }
    }
    Ok(())
}

/// A token cancelled by SIGINT or SIGTERM (the router's own signal handling), watched by a small runtime
/// on its own thread.
pub fn stop_on_signal() -> Result<CancellationToken, LoadtestError> {
    let token = CancellationToken::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(LoadtestError::Runtime)?;
    let cancel = token.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || runtime.block_on(switchyard_service::lifecycle::cancel_on_signal(cancel)))
        .map_err(|error| LoadtestError::Process {
            what: "starting the signal watcher".into(),
            error,
        })?;
    Ok(token)
}
