//! Every metric the registry exports, in one explicit registry served at `/metrics`.
//!
//! Labels are bounded: the route template (not the path), the status code, the plugin id, an outcome, a
//! backfill state.
//! Never team ids, tokens or config values.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use switchyard_service::kafka::ClientStats;

/// The registry's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `switchyard_registry_librdkafka_*{client}`: librdkafka's statistics of every Kafka client.
    pub kafka: ClientStats,
    /// `switchyard_registry_http_requests_total{route,status}`: API requests answered.
    pub requests: IntCounterVec,
    /// `switchyard_registry_http_request_duration_seconds{route}`: time to answer.
    pub request_seconds: HistogramVec,
    /// `switchyard_registry_gateway_calls_total{plugin,outcome}`: action calls by outcome (`ok`,
    /// `upstream_error`, `timeout`, `refused`, `too_large`, `rate_limited`).
    pub gateway_calls: IntCounterVec,
    /// `switchyard_registry_store_writes_total{topic,result}`: store writes `ok`, `conflict` (a
    /// conditional write another write beat) or `failed`.
    pub store_writes: IntCounterVec,
    /// `switchyard_registry_plugins`: registered plugins.
    pub plugins: IntGauge,
    /// `switchyard_registry_live_instances{plugin}`: instances heard from within the TTL.
    pub live_instances: IntGaugeVec,
    /// `switchyard_registry_plugin_token_expiry_seconds{plugin}`: seconds until the earliest plugin token of
    /// the plugin's live instances expires (negative once expired); absent when none reported one.
    pub plugin_token_expiry: IntGaugeVec,
    /// `switchyard_registry_ready`: 1 while `/readyz` answers 200.
    pub ready: IntGauge,
    /// `switchyard_registry_backfills{state}`: backfills by state (`pending`, `running`, `done`,
    /// `cancelled`, `failed`), every team's.
    pub backfills: IntGaugeVec,
    /// `switchyard_registry_schema_jobs_total{outcome}`: config-schema compilations and config
    /// validations by outcome (`done`, `busy`, `timed_out`, `failed`).
    pub schema_jobs: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("switchyard_registry_http_requests_total", "API requests answered"),
            &["route", "status"],
        )
        .expect("valid metric");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "switchyard_registry_http_request_duration_seconds",
                "Time to answer an API request",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let gateway_calls = IntCounterVec::new(
            Opts::new(
                "switchyard_registry_gateway_calls_total",
                "Plugin action calls by outcome",
            ),
            &["plugin", "outcome"],
        )
        .expect("valid metric");
        let store_writes = IntCounterVec::new(
            Opts::new(
                "switchyard_registry_store_writes_total",
                "Writes to the store topics",
            ),
            &["topic", "result"],
        )
        .expect("valid metric");
        let plugins =
            IntGauge::new("switchyard_registry_plugins", "Registered plugins").expect("valid metric");
        let live_instances = IntGaugeVec::new(
            Opts::new(
                "switchyard_registry_live_instances",
                "Plugin instances heard from within the heartbeat TTL",
            ),
            &["plugin"],
        )
        .expect("valid metric");
        let plugin_token_expiry = IntGaugeVec::new(
            Opts::new(
                "switchyard_registry_plugin_token_expiry_seconds",
                "Seconds until the earliest plugin token of the plugin's live instances expires",
            ),
            &["plugin"],
        )
        .expect("valid metric");
        let ready = IntGauge::new("switchyard_registry_ready", "1 while the registry is ready")
            .expect("valid metric");
        let schema_jobs = IntCounterVec::new(
            Opts::new(
                "switchyard_registry_schema_jobs_total",
                "Config-schema compilations and config validations by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let backfills = IntGaugeVec::new(
            Opts::new(
                "switchyard_registry_backfills",
                "Backfills by state, every team's",
            ),
            &["state"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_seconds.clone()),
            Box::new(gateway_calls.clone()),
            Box::new(store_writes.clone()),
            Box::new(plugins.clone()),
            Box::new(live_instances.clone()),
            Box::new(plugin_token_expiry.clone()),
            Box::new(ready.clone()),
            Box::new(schema_jobs.clone()),
            Box::new(backfills.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        Self {
            kafka: ClientStats::register(&registry, "switchyard_registry"),
            registry,
            requests,
            request_seconds,
            gateway_calls,
            store_writes,
            plugins,
            live_instances,
            plugin_token_expiry,
            ready,
            schema_jobs,
            backfills,
        }
    }

    /// The registry every metric is in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        switchyard_service::admin::render(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
