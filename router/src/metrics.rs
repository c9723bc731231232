//! Every metric the router exports, registered in one explicit registry and served at `/metrics`.
//!
//! Labels are bounded: outcome, reason code, plugin id, client kind, partition, broker. Never team ids or
//! error text. Event outcome counters move only when the outcome is durable (the transaction committed, or
//! in at-least-once mode the offset was stored), so a replayed batch is never counted twice.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use rdkafka::Statistics;
use switchyard_service::kafka::ClientStats;

use crate::pipeline::lag::{PartitionOffsets, RouterPosition, partition_lag};

/// The router's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `switchyard_router_events_total{outcome}`: input events by final outcome
    /// (`routed`, `unrouted`, `dead_lettered`).
    pub events: IntCounterVec,
    /// `switchyard_router_dead_letters_total{reason}`: records written to the dead-letter topic.
    pub dead_letters: IntCounterVec,
    /// `switchyard_router_plugin_records_total{plugin}`: records written to each plugin's topic.
    pub plugin_records: IntCounterVec,
    /// `switchyard_router_transactions_total{result}`: `committed` or `aborted`.
    pub transactions: IntCounterVec,
    /// `switchyard_router_transaction_commit_seconds`: time to send offsets and commit one transaction.
    pub commit_seconds: Histogram,
    /// `switchyard_router_rewinds_total`: times the router went back to its last committed position.
    pub rewinds: IntCounter,
    /// `switchyard_router_producer_replacements_total`: times librdkafka declared the transactional producer
    /// unusable for a reason other than fencing and the router replaced it (see `docs/router.md`).
    pub producer_replacements: IntCounter,
    /// `switchyard_router_rebalances_total{kind}`: `assign`, `revoke` or `lost`.
    pub rebalances: IntCounterVec,
    /// `switchyard_router_assigned_partitions`: input partitions this replica owns.
    pub assigned_partitions: IntGauge,
    /// `switchyard_router_control_records_total{topic,result}`: control records `applied` or `invalid`.
    pub control_records: IntCounterVec,
    /// `switchyard_router_enablements`: enabled installations in the routing table (a team's installations
    /// of one plugin count one each).
    pub enablements: IntGauge,
    /// `switchyard_router_filtered_installations`: enabled installations with a `filter`.
    pub filtered_installations: IntGauge,
    /// `switchyard_router_filter_evaluations_total{result}`: installations' filters evaluated, by verdict:
    /// `match`, `no_match`, `missing` (it read an attribute or data path the event lacks) or `error`.
    /// Counted as events are planned, so an event planned again after a rewind counts again.
    pub filter_evaluations: IntCounterVec,
    /// `switchyard_router_plugins`: registered plugins.
    pub plugins: IntGauge,
    /// `switchyard_router_held_installations`: installations whose enablement names a backfill (held by it
    /// on the team's partition until it hands over).
    pub held_installations: IntGauge,
    /// `switchyard_router_backfills{state}`: backfill runs on this replica's partitions: `running`, or how
    /// history ended (`done`, `cancelled`, `failed`) for runs handed over whose installation is still held.
    pub backfills: IntGaugeVec,
    /// `switchyard_router_backfill_records_total{result}`: records backfills read (`scanned`), kept for
    /// their installation (`matched`), and copies they wrote (`written`, `dead_lettered`); counted at
    /// commit.
    pub backfill_records: IntCounterVec,
    /// `switchyard_router_control_catchup_lag_records{topic}`: control records still to read before ready.
    pub catchup_lag: IntGaugeVec,
    /// `switchyard_router_ready`: 1 while `/readyz` answers 200.
    pub ready: IntGauge,
    /// `switchyard_router_librdkafka_*{client}`: librdkafka's statistics of every client (see
    /// [`ClientStats`]).
    pub kafka: ClientStats,
    /// `switchyard_router_consumer_lag_records{partition}`: input records not yet durable behind the end, per
    /// owned partition (see [`crate::pipeline::lag`]).
    pub consumer_lag: IntGaugeVec,
    /// `switchyard_router_info{version,delivery_mode,...}`: constant 1, its labels this replica's version and
    /// delivery settings ([`INFO_LABELS`]), set once at start by [`Metrics::set_info`]; load reports read it.
    pub info: IntGaugeVec,
}

/// The labels of `switchyard_router_info`: one series per process, so they are bounded.
pub const INFO_LABELS: [&str; 8] = [
    "version",
    "delivery_mode",
    "group_id",
    "commit_interval_ms",
    "commit_max_events",
    "transaction_timeout_ms",
    "validate_payloads",
    "host",
];

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric name");
            metric
        };
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help).expect("static metric definition");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric name");
            metric
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric name");
            metric
        };
        let counter = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help).expect("static metric definition");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric name");
            metric
        };
        let commit_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "switchyard_router_transaction_commit_seconds",
                "Time to send offsets to and commit one transaction.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
        )
        .expect("static metric definition");
        registry
            .register(Box::new(commit_seconds.clone()))
            .expect("unique metric name");

        let metrics = Self {
            events: counter_vec(
                "switchyard_router_events_total",
                "Input events by final outcome: routed, unrouted, dead_lettered.",
                &["outcome"],
            ),
            dead_letters: counter_vec(
                "switchyard_router_dead_letters_total",
                "Records written to the dead-letter topic, by reason code.",
                &["reason"],
            ),
            plugin_records: counter_vec(
                "switchyard_router_plugin_records_total",
                "Records written to each plugin's topic.",
                &["plugin"],
            ),
            filter_evaluations: counter_vec(
                "switchyard_router_filter_evaluations_total",
                "Installation filters evaluated, by verdict: match, no_match, missing, error.",
                &["result"],
            ),
            transactions: counter_vec(
                "switchyard_router_transactions_total",
                "Transactions by result: committed or aborted.",
                &["result"],
            ),
            commit_seconds,
            producer_replacements: counter(
                "switchyard_router_producer_replacements_total",
                "Transactional producers replaced after a fatal error other than fencing.",
            ),
            rewinds: counter(
                "switchyard_router_rewinds_total",
                "Times the router rewound to its last committed position.",
            ),
            rebalances: counter_vec(
                "switchyard_router_rebalances_total",
                "Consumer group rebalance callbacks: assign, revoke, lost.",
                &["kind"],
            ),
            assigned_partitions: gauge(
                "switchyard_router_assigned_partitions",
                "Input partitions this replica owns.",
            ),
            control_records: counter_vec(
                "switchyard_router_control_records_total",
                "Control records read, by topic and result (applied or invalid).",
                &["topic", "result"],
            ),
            enablements: gauge(
                "switchyard_router_enablements",
                "Enabled installations (team, plugin, installation) in the routing table.",
            ),
            filtered_installations: gauge(
                "switchyard_router_filtered_installations",
                "Enabled installations with a filter in the routing table.",
            ),
            plugins: gauge("switchyard_router_plugins", "Registered plugins."),
            held_installations: gauge(
                "switchyard_router_held_installations",
                "Installations held by a backfill (their enablement names one).",
            ),
            backfills: gauge_vec(
                "switchyard_router_backfills",
                "Backfill runs on this replica's partitions: running, or handed over (done, cancelled, failed).",
                &["state"],
            ),
            backfill_records: counter_vec(
                "switchyard_router_backfill_records_total",
                "Records backfills read (scanned), kept (matched), and copies written (written, dead_lettered).",
                &["result"],
            ),
            catchup_lag: gauge_vec(
                "switchyard_router_control_catchup_lag_records",
                "Control records still to read before the router is ready, per control topic.",
                &["topic"],
            ),
            ready: gauge("switchyard_router_ready", "1 while /readyz answers 200."),
            kafka: ClientStats::register(&registry, "switchyard_router"),
            consumer_lag: gauge_vec(
                "switchyard_router_consumer_lag_records",
                "Input records not yet durable (committed offset or transaction) behind the partition end, per owned partition.",
                &["partition"],
            ),
            info: gauge_vec(
                "switchyard_router_info",
                "Constant 1; the labels are this replica's version and delivery settings.",
                &INFO_LABELS,
            ),
            registry,
        };
        for outcome in ["routed", "unrouted", "dead_lettered"] {
            metrics.events.with_label_values(&[outcome]);
        }
        for result in ["committed", "aborted"] {
            metrics.transactions.with_label_values(&[result]);
        }
        // Every bounded label value is present from the start, so a scrape shows 0 rather than nothing.
        for reason in switchyard_schemas::Reason::ALL {
            metrics.dead_letters.with_label_values(&[reason.code()]);
        }
        for topic in ["plugins", "enablements"] {
            for result in ["applied", "invalid"] {
                metrics.control_records.with_label_values(&[topic, result]);
            }
        }
        for kind in ["assign", "revoke", "lost"] {
            metrics.rebalances.with_label_values(&[kind]);
        }
        for state in ["running", "done", "cancelled", "failed"] {
            metrics.backfills.with_label_values(&[state]);
        }
        for result in ["scanned", "matched", "written", "dead_lettered"] {
            metrics.backfill_records.with_label_values(&[result]);
        }
        metrics
    }

    /// Sets `switchyard_router_info` from `config`: the labels of [`INFO_LABELS`], in order.
    pub fn set_info(&self, config: &crate::config::Config) {
        let delivery = &config.delivery;
        let mode = match delivery.mode {
            crate::config::DeliveryMode::ExactlyOnce => "exactly_once",
            crate::config::DeliveryMode::AtLeastOnce => "at_least_once",
        };
        let host = hostname::get().map_or_else(|_| String::new(), |h| h.to_string_lossy().into_owned());
        self.info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                mode,
                &delivery.group_id,
                &delivery.commit_interval_ms.to_string(),
                &delivery.commit_max_events.to_string(),
                &delivery.transaction_timeout_ms.to_string(),
                &delivery.validate_payloads.to_string(),
                &host,
            ])
            .set(1);
    }

    /// The registry every metric is in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        switchyard_service::admin::render(&self.registry)
    }

    /// Sets the consumer lag of each input partition in the consumer's statistics report, given what the
    /// router holds of each (see [`crate::pipeline::lag`]); a partition whose lag is unknown loses its series.
    pub fn record_consumer_lag(
        &self,
        stats: &Statistics,
        input_topic: &str,
        router: impl Fn(i32) -> RouterPosition,
    ) {
        let Some(topic) = stats.topics.get(input_topic) else {
            return;
        };
        for partition in topic.partitions.values().filter(|p| p.partition >= 0) {
            let label = partition.partition.to_string();
            let offsets = PartitionOffsets {
                last_stable: partition.ls_offset,
                high_watermark: partition.hi_offset,
                committed: partition.committed_offset,
                stored: partition.stored_offset,
                fetch_position: partition.next_offset,
            };
            match partition_lag(offsets, router(partition.partition)) {
                Some(lag) => self.consumer_lag.with_label_values(&[&label]).set(lag),
                None => {
                    let _ = self.consumer_lag.remove_label_values(&[&label]);
                }
            }
        }
    }

    /// Drops the lag series of a partition this replica no longer owns.
    pub fn forget_partition_lag(&self, partition: i32) {
        let _ = self.consumer_lag.remove_label_values(&[&partition.to_string()]);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
