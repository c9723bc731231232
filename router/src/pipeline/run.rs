//! The pipeline thread: one `BaseConsumer` polled in a loop, feeding the delivery engine.
//!
//! A dedicated thread rather than a tokio task, because every librdkafka transaction call blocks and the
//! rebalance callbacks run inside `poll`. The loop never holds the engine while polling, so the rebalance
//! callback (which locks it) cannot deadlock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::{BaseProducer, Producer};
use switchyard_service::lifecycle::Service;
use switchyard_service::traces::Traces;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::RouterError;
use crate::config::{Config, DeliveryMode};
use crate::metrics::Metrics;
use crate::pipeline::backfill::{BackfillSettings, Backfills};
use crate::pipeline::delivery::{
    Engine, EngineSettings, InputRecord, KafkaProducer, ProduceContext, ProducerFactory, RebalanceContext,
    Watchdog, lock,
};
use crate::pipeline::topics::{TopicCache, TopicLookup};
use crate::tables::routes::RouteTable;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// A built pipeline, ready to run.
pub struct Pipeline {
    consumer: BaseConsumer<RebalanceContext>,
    engine: Arc<Mutex<Engine<KafkaProducer>>>,
    input_topic: String,
    watchdog: Watchdog,
    watchdog_limit: Duration,
    traces: Option<Traces>,
}

impl Pipeline {
    /// Creates the clients, checks that the input and dead-letter topics exist, and initialises
    /// transactions (which fences an earlier incarnation with the same transactional id and aborts its open
    /// transaction).
    pub fn build(config: &Config, table: Arc<RouteTable>, metrics: Metrics) -> Result<Self, RouterError> {
        let producer = KafkaProducer::new(producer_factory(config, metrics.clone()))?;
        let mut input_partitions = 0;
        for (topic, role) in [
            (&config.topics.core_events, "input"),
            (&config.topics.dead_letter, "dead-letter"),
        ] {
            let partitions =
                producer
                    .partitions(topic, METADATA_TIMEOUT)
                    .map_err(|source| RouterError::Client {
                        client: "producer",
                        source,
                    })?;
            if partitions.is_empty() {
                return Err(RouterError::TopicMissing {
                    topic: topic.clone(),
                    role,
                });
            }
            if role == "input" {
                input_partitions = partitions.len() as i32;
            }
        }
        let backfills = backfills(config, input_partitions, &metrics);
        let traces = Traces::start(&config.traces, <Config as Service>::PROGRAM)?;
        let watchdog_limit =
            Duration::from_millis(config.delivery.transaction_timeout_ms + config.delivery.drain_timeout_ms);
        let settings = EngineSettings {
            mode: config.delivery.mode,
            input_topic: Arc::from(config.topics.core_events.as_str()),
            dead_letter_topic: config.topics.dead_letter.clone(),
            commit_interval: Duration::from_millis(config.delivery.commit_interval_ms),
            commit_max_events: config.delivery.commit_max_events,
            drain_timeout: Duration::from_millis(config.delivery.drain_timeout_ms),
            transaction_timeout: Duration::from_millis(config.delivery.transaction_timeout_ms),
            validate_payloads: config.delivery.validate_payloads,
            traces: traces.clone(),
        };
        let topics = TopicCache::new(
            Duration::from_millis(config.delivery.topic_refresh_ms),
            Duration::from_millis(config.delivery.missing_topic_recheck_ms),
        );
        let watchdog = Watchdog::new();
        let mut engine = Engine::new(
            settings,
            producer,
            table,
            topics,
            metrics.clone(),
            watchdog.clone(),
        );
        if let Some(backfills) = backfills {
            engine = engine.with_backfills(backfills);
        }
        let engine = Arc::new(Mutex::new(engine));
        let client = config.event_consumer(&config.clients(metrics.kafka.clone()));
        let context = RebalanceContext::new(
            client.context(),
            Arc::clone(&engine),
            metrics,
            config.topics.core_events.clone(),
        );
        let consumer: BaseConsumer<RebalanceContext> = client.create_with(context)?;
        Ok(Self {
            consumer,
            engine,
            input_topic: config.topics.core_events.clone(),
            watchdog,
            watchdog_limit,
            traces,
        })
    }

    /// Consumes until `shutdown`, then commits what was read, flushes and leaves the group.
    pub fn run(self, shutdown: &CancellationToken) -> Result<(), RouterError> {
        self.watchdog.spawn(self.watchdog_limit, shutdown.clone());
        self.consumer
            .subscribe(&[&self.input_topic])
            .map_err(|source| RouterError::Client {
                client: "consumer",
                source,
            })?;
        info!(topic = %self.input_topic, "consuming core events");
        let mut last_poll_warning: Option<Instant> = None;
        while !shutdown.is_cancelled() {
            let timeout = lock(&self.engine).poll_timeout();
            let polled = self.consumer.poll(timeout);
            let mut engine = lock(&self.engine);
            if let Some(fatal) = engine.take_fatal() {
                return Err(fatal);
            }
            match polled {
                Some(Ok(message)) => process(&mut engine, &message),
                Some(Err(error))
                    if last_poll_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) =>
                {
                    warn!(%error, "consumer error");
                    last_poll_warning = Some(Instant::now());
                }
                Some(Err(_)) | None => {}
            }
            engine.service(&self.consumer);
            engine.step_backfills(&self.consumer);
            if let Some(fatal) = engine.take_fatal() {
                return Err(fatal);
            }
        }
        info!("draining: committing what was read");
        let mut engine = lock(&self.engine);
        engine.finish(&self.consumer);
        if let Some(fatal) = engine.take_fatal() {
            return Err(fatal);
        }
        drop(engine);
        // Dropping the consumer closes it: librdkafka revokes the assignment (our callback finds nothing left
        // to commit), sends LeaveGroup so that the partitions move at once, and the drop polls until closed.
        // A bare unsubscribe without the close would leave this member in the group for a session timeout.
        let Pipeline {
            consumer,
            engine,
            traces,
            ..
        } = self;
        drop(consumer);
        drop(engine);
        if let Some(traces) = traces {
            traces.shutdown();
        }
        info!("pipeline stopped");
        Ok(())
    }
}

/// Makes the producer: created, and in exactly-once mode with its transactions initialised, which fences an
/// earlier producer with the same transactional id and aborts its open transaction.
fn producer_factory(config: &Config, metrics: Metrics) -> ProducerFactory {
    let (config, clients) = (config.clone(), config.clients(metrics.kafka.clone()));
    let exactly_once = config.delivery.mode == DeliveryMode::ExactlyOnce;
    let init_timeout = Duration::from_millis(config.delivery.drain_timeout_ms.max(30_000));
    let transactional_id = config.transactional_id();
    Box::new(move || {
        let client = config.producer(&clients);
        let context = ProduceContext::new(client.context());
        let producer: BaseProducer<ProduceContext> = client.create_with(context)?;
        if exactly_once {
            producer
                .init_transactions(init_timeout)
                .map_err(|source| RouterError::Transaction {
                    call: "init_transactions",
                    source,
                })?;
            info!(%transactional_id, "transactions initialised");
        }
        Ok(producer)
    })
}

/// Backfills, in exactly-once mode only: in at-least-once mode there is no transaction to commit their
/// progress with, and a held installation is routed live like any other.
fn backfills(config: &Config, input_partitions: i32, metrics: &Metrics) -> Option<Backfills> {
    if config.delivery.mode != DeliveryMode::ExactlyOnce {
        return None;
    }
    let settings = BackfillSettings {
        input_topic: config.topics.core_events.clone(),
        progress_topic: config.topics.backfill_progress.clone(),
        default_rate: config.backfill.default_rate,
        max_rate: config.backfill.max_rate,
        scan_per_step: config.backfill.scan_per_step,
        step_interval: Duration::from_millis(config.backfill.step_interval_ms),
        // Longer than a transaction's timeout: an earlier owner's open transaction is waited for.
        load_timeout: Duration::from_millis(config.delivery.transaction_timeout_ms * 3),
        metadata_timeout: METADATA_TIMEOUT,
    };
    Some(Backfills::new(
        settings,
        config.clients(metrics.kafka.clone()),
        input_partitions,
    ))
}

/// Hands one consumed message to the engine, as the engine's view of an input record.
fn process(engine: &mut Engine<KafkaProducer>, message: &BorrowedMessage<'_>) {
    let headers: Vec<(&str, Option<&[u8]>)> = message
        .headers()
        .map(|h| h.iter().map(|header| (header.key, header.value)).collect())
        .unwrap_or_default();
    engine.process(&InputRecord {
        partition: message.partition(),
        offset: message.offset(),
        key: message.key(),
        value: message.payload(),
        headers: &headers,
    });
}
