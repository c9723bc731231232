//! The client context every Switchyard client runs with: librdkafka statistics into Prometheus gauges,
//! client-level errors into `tracing` at the right level.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{IntGaugeVec, Opts, Registry};
use rdkafka::Statistics;
use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, ProducerContext};

/// librdkafka's statistics as gauges, labelled by client: `<prefix>_librdkafka_queue_messages{client}`,
/// `_tx_messages`, `_rx_messages`, `_tx_bytes`, `_rx_bytes` and `_broker_rtt_microseconds{client,broker}`.
#[derive(Clone)]
pub struct ClientStats {
    queue_messages: IntGaugeVec,
    tx_messages: IntGaugeVec,
    rx_messages: IntGaugeVec,
    tx_bytes: IntGaugeVec,
    rx_bytes: IntGaugeVec,
    broker_rtt_us: IntGaugeVec,
}

impl ClientStats {
    /// Registers the gauges in `registry` under `prefix` (e.g. `switchyard_router`).
    pub fn register(registry: &Registry, prefix: &str) -> Self {
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(format!("{prefix}_librdkafka_{name}"), help), labels)
                .expect("static metric definition");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric name");
            metric
        };
        Self {
            queue_messages: gauge(
                "queue_messages",
                "Messages waiting in librdkafka's queues.",
                &["client"],
            ),
            tx_messages: gauge(
                "tx_messages",
                "Messages sent to brokers since start.",
                &["client"],
            ),
            rx_messages: gauge(
                "rx_messages",
                "Messages received from brokers since start.",
                &["client"],
            ),
            tx_bytes: gauge("tx_bytes", "Bytes sent to brokers since start.", &["client"]),
            rx_bytes: gauge(
                "rx_bytes",
                "Bytes received from brokers since start.",
                &["client"],
            ),
            broker_rtt_us: gauge(
                "broker_rtt_microseconds",
                "Average request round trip per broker.",
                &["client", "broker"],
            ),
        }
    }

    /// Gauges not registered anywhere, for clients whose statistics nobody reads (one-shot tools).
    pub fn unregistered() -> Self {
        Self::register(&Registry::new(), "switchyard")
    }

    /// Copies one statistics report of `client`.
    pub fn record(&self, client: &str, stats: &Statistics) {
        self.queue_messages
            .with_label_values(&[client])
            .set(stats.msg_cnt as i64);
        self.tx_messages.with_label_values(&[client]).set(stats.txmsgs);
        self.rx_messages.with_label_values(&[client]).set(stats.rxmsgs);
        self.tx_bytes.with_label_values(&[client]).set(stats.tx_bytes);
        self.rx_bytes.with_label_values(&[client]).set(stats.rx_bytes);
        for broker in stats.brokers.values().filter(|b| b.nodeid >= 0) {
            if let Some(rtt) = &broker.rtt {
                self.broker_rtt_us
                    .with_label_values(&[client, &broker.nodeid.to_string()])
                    .set(rtt.avg);
            }
        }
    }
}

/// The context of a client made by [`crate::kafka::Clients`]: statistics into [`ClientStats`] under the
/// client's name, errors through [`log_client_error`]. A client that needs a context of its own (delivery
/// reports, rebalances) holds one of these and forwards `stats` and `error` to it.
#[derive(Clone)]
pub struct KafkaContext {
    client: String,
    stats: ClientStats,
}

impl KafkaContext {
    /// `client` names the client in the metrics and the logs.
    pub fn new(client: impl Into<String>, stats: ClientStats) -> Self {
        Self {
            client: client.into(),
            stats,
        }
    }
}

impl ClientContext for KafkaContext {
    fn stats(&self, statistics: Statistics) {
        self.stats.record(&self.client, &statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&self.client, &error, reason);
    }
}

impl ConsumerContext for KafkaContext {}

/// Delivery reports are not looked at: a producer with this context learns of failures from `flush` or
/// from a context of its own.
impl ProducerContext for KafkaContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// librdkafka's client-level errors: the end of a partition is an event the followers ask for, not an
/// error; the rest are mostly transient (a broker connection dropped) and librdkafka retries them itself.
/// rdkafka's default context logs every one of them, the end of a partition included, at ERROR.
pub fn log_client_error(client: &str, error: &KafkaError, reason: &str) {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::PartitionEOF) => {}
        _ => tracing::warn!(client, %error, reason, "Kafka client error"),
    }
}

/// A producer context that tallies delivery reports (delivered, failed, the first failure) and forwards
/// statistics and errors to the builder's context: for producers that must not count a refused record as
/// written (a replay, the load tool's input).
pub struct DeliveryTally {
    inner: KafkaContext,
    delivered: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<KafkaError>>,
}

impl DeliveryTally {
    /// A tally forwarding to `inner`.
    pub fn new(inner: KafkaContext) -> Self {
        Self {
            inner,
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_failure: Mutex::new(None),
        }
    }

    /// Records acknowledged so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Records refused so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The first refusal, if any.
    pub fn first_failure(&self) -> Option<KafkaError> {
        self.first_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ClientContext for DeliveryTally {
    fn stats(&self, statistics: Statistics) {
        self.inner.stats(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.inner.error(error, reason);
    }
}

impl ProducerContext for DeliveryTally {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(|| error.clone());
            }
        }
    }
}
