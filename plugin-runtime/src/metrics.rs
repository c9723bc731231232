//! A worker's metrics, served at `/metrics`. Labels are bounded (outcome, partition); the plugin id is a
//! constant label, so one dashboard serves every plugin.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use switchyard_service::kafka::ClientStats;

/// The metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `switchyard_plugin_events_total{outcome}`: `done`, `retried` (one per retry), `throttled` (one per
    /// "slow down" answer for the event), `dead_lettered`.
    pub events: IntCounterVec,
    /// `switchyard_plugin_execute_duration_seconds`: one call of the plugin.
    pub execute_seconds: Histogram,
    /// `switchyard_plugin_in_flight`: calls running now.
    pub in_flight: IntGauge,
    /// `switchyard_plugin_paused`: 1 during an outage.
    pub paused: IntGauge,
    /// `switchyard_plugin_buffered`: events held (waiting or executing).
    pub buffered: IntGauge,
    /// `switchyard_plugin_results_total`: result events published.
    pub results: IntCounter,
    /// `switchyard_plugin_consumer_lag_records{partition}`: records behind the end of each owned partition.
    pub lag: IntGaugeVec,
    /// `switchyard_plugin_ready`: 1 while `/readyz` answers 200.
    pub ready: IntGauge,
    /// `switchyard_plugin_librdkafka_*{client}`: librdkafka's statistics of every Kafka client.
    pub kafka: ClientStats,
}

impl Metrics {
    /// Creates and registers every metric with the constant label `plugin`.
    pub fn new(plugin: &str) -> Self {
        let registry = Registry::new_custom(
            None,
            Some([("plugin".to_owned(), plugin.to_owned())].into_iter().collect()),
        )
        .expect("a valid constant label");
        let events = IntCounterVec::new(
            Opts::new("switchyard_plugin_events_total", "Events by outcome"),
            &["outcome"],
        )
        .expect("valid metric");
        let execute_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "switchyard_plugin_execute_duration_seconds",
                "One call of the plugin",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
            ]),
        )
        .expect("valid metric");
        let in_flight =
            IntGauge::new("switchyard_plugin_in_flight", "Calls running now").expect("valid metric");
        let paused = IntGauge::new("switchyard_plugin_paused", "1 during an outage").expect("valid metric");
        let buffered = IntGauge::new("switchyard_plugin_buffered", "Events held").expect("valid metric");
        let results = IntCounter::new("switchyard_plugin_results_total", "Result events published")
            .expect("valid metric");
        let lag = IntGaugeVec::new(
            Opts::new(
                "switchyard_plugin_consumer_lag_records",
                "Records behind the end of each owned partition",
            ),
            &["partition"],
        )
        .expect("valid metric");
        let ready =
            IntGauge::new("switchyard_plugin_ready", "1 while /readyz answers 200").expect("valid metric");
        for collector in [
            Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(ready.clone()),
            Box::new(execute_seconds.clone()),
            Box::new(in_flight.clone()),
            Box::new(paused.clone()),
            Box::new(buffered.clone()),
            Box::new(results.clone()),
            Box::new(lag.clone()),
        ] {
            registry.register(collector).expect("unique metric names");
        }
        for outcome in ["done", "retried", "throttled", "dead_lettered"] {
            events.with_label_values(&[outcome]);
        }
        Self {
            kafka: ClientStats::register(&registry, "switchyard_plugin"),
            ready,
            registry,
            events,
            execute_seconds,
            in_flight,
            paused,
            buffered,
            results,
            lag,
        }
    }

    /// The registry every metric is in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        switchyard_service::admin::render(&self.registry)
    }
}
