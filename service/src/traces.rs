//! Distributed tracing: OpenTelemetry spans exported over OTLP/HTTP to a collector, off unless an
//! endpoint is configured.
//!
//! A service keeps an `Option<Traces>`. `None` (the default) costs one branch per event: no span, no clock
//! read, no allocation, and the W3C `traceparent` headers pass through untouched. With an endpoint, each
//! span is a child of the `traceparent` it was handed (a remote parent), sampling follows that parent's
//! decision, and an event without one starts a trace sampled at `sample_ratio`. Spans are exported in
//! batches by the SDK's own thread, so the caller never waits for the collector; a collector that is down
//! loses spans, never events.
//!
//! [`traceparent_of`] and [`parent_of`] are the two ends of the propagation: a recorded span's context
//! written as a `traceparent` value, and a received value read back into the parent of the next span.

use std::time::SystemTime;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
pub use opentelemetry::trace::SpanKind;
use opentelemetry::trace::{
    Span as _, SpanContext, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
pub use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use serde::Deserialize;
use thiserror::Error;

use crate::config::{ConfigError, invalid};

/// The W3C Trace Context header (and CloudEvents distributed-tracing attribute) name.
pub const TRACEPARENT: &str = "traceparent";

/// `[traces]`: where spans go and how many are kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesConfig {
    /// The collector's OTLP/HTTP traces URL, e.g. `http://otel-collector:4318/v1/traces`. Empty (the
    /// default): tracing is off.
    #[serde(default)]
    pub otlp_endpoint: String,
    /// The share of new traces recorded, 0.0 to 1.0 (default 1.0): applies to events that arrive without a
    /// `traceparent`; an event with one follows its sampled flag.
    #[serde(default = "full_sampling")]
    pub sample_ratio: f64,
}

fn full_sampling() -> f64 {
    1.0
}

impl TracesConfig {
    /// Whether spans are recorded at all.
    pub fn is_enabled(&self) -> bool {
        !self.otlp_endpoint.trim().is_empty()
    }

    /// Range and URL checks, reported under `section` (e.g. `traces`).
    pub fn check(&self, section: &str) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(invalid(
                &format!("{section}.sample_ratio"),
                format!("{} is not between 0.0 and 1.0", self.sample_ratio),
            ));
        }
        let endpoint = self.otlp_endpoint.trim();
        if self.is_enabled() && !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(invalid(
                &format!("{section}.otlp_endpoint"),
                format!(
                    "{endpoint:?} is not an http:// or https:// URL (OTLP/HTTP, e.g. http://127.0.0.1:4318/v1/traces)"
                ),
            ));
        }
        Ok(())
    }
}

/// Tracing could not be set up.
#[derive(Debug, Error)]
#[error("traces: the OTLP exporter could not be built: {0}")]
pub struct TracesError(String);

/// A service's tracer. Cloning is cheap (one provider behind).
#[derive(Clone)]
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traces").finish_non_exhaustive()
    }
}

impl Traces {
    /// The tracer of `service` (the OpenTelemetry `service.name`), or `None` when `config` turns tracing
    /// off.
    pub fn start(config: &TracesConfig, service: &str) -> Result<Option<Self>, TracesError> {
        if !config.is_enabled() {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.otlp_endpoint.trim())
            .build()
            .map_err(|e| TracesError(e.to_string()))?;
        let resource = Resource::builder()
            .with_service_name(service.to_owned())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer(service.to_owned());
        Ok(Some(Self { provider, tracer }))
    }

    /// Starts a span at `start`, a child of the `traceparent` value `parent` (a new trace when there is
    /// none or it does not parse). `attributes` are made only when the span is recorded: a trace that is
    /// not sampled costs the sampling decision and nothing more.
    pub fn span(
        &self,
        name: &'static str,
        kind: SpanKind,
        parent: Option<&[u8]>,
        start: SystemTime,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> TraceSpan {
        let parent = parent.map_or_else(opentelemetry::Context::new, parent_of);
        let builder = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(start);
        let mut span = self.tracer.build_with_context(builder, &parent);
        if span.is_recording() {
            span.set_attributes(attributes());
        }
        TraceSpan(span)
    }

    /// Exports what is buffered and stops the exporter; spans started later are dropped.
    pub fn shutdown(&self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::debug!(%error, "the trace exporter did not shut down cleanly");
        }
    }
}

/// One span; ended (and queued for export) by [`TraceSpan::end`] or when dropped.
pub struct TraceSpan(opentelemetry_sdk::trace::Span);

impl TraceSpan {
    /// This span's context as a `traceparent` value, for the next hop; `None` when the span is not
    /// recorded (sampled out), so that the hop keeps the `traceparent` it had.
    pub fn traceparent(&self) -> Option<String> {
        self.0
            .is_recording()
            .then(|| traceparent_of(self.0.span_context()))
    }

    /// Sets (or replaces) an attribute.
    pub fn set_attribute(&mut self, attribute: KeyValue) {
        self.0.set_attribute(attribute);
    }

    /// Marks the span failed with `description`.
    pub fn set_error(&mut self, description: impl Into<String>) {
        self.0.set_status(Status::error(description.into()));
    }

    /// Ends the span now.
    pub fn end(mut self) {
        self.0.end();
    }
}

/// The `traceparent` value of `context` (`00-<trace id>-<span id>-<flags>`).
pub fn traceparent_of(context: &SpanContext) -> String {
    struct One(Option<String>);
    impl Injector for One {
        fn set(&mut self, key: &str, value: String) {
            if key == TRACEPARENT {
                self.0 = Some(value);
            }
        }
    }
    let mut one = One(None);
    let cx = opentelemetry::Context::new().with_remote_span_context(context.clone());
    TraceContextPropagator::new().inject_context(&cx, &mut one);
    one.0.unwrap_or_default()
}

/// The parent context a `traceparent` value names; an empty context (a new trace) when it is not a valid
/// W3C `traceparent`.
pub fn parent_of(traceparent: &[u8]) -> opentelemetry::Context {
    struct One<'a>(Option<&'a str>);
    impl Extractor for One<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            if key == TRACEPARENT { self.0 } else { None }
        }
        fn keys(&self) -> Vec<&str> {
            vec![TRACEPARENT]
        }
    }
    let value = std::str::from_utf8(traceparent).ok();
    TraceContextPropagator::new().extract(&One(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_reads_back_as_the_same_context() {
        let cx = parent_of(PARENT.as_bytes());
        let span = cx.span();
        let context = span.span_context();
        assert!(context.is_valid() && context.is_remote() && context.is_sampled());
        assert_eq!(traceparent_of(context), PARENT);
    }

    #[test]
    fn an_invalid_traceparent_is_no_parent() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f",
        ] {
            let cx = parent_of(bad.as_bytes());
            assert!(!cx.span().span_context().is_valid(), "{bad}");
        }
        assert!(!parent_of(&[0xff, 0xfe]).span().span_context().is_valid());
    }

    #[test]
    fn an_empty_endpoint_is_off_and_a_bad_ratio_or_url_is_refused() {
        let off = TracesConfig::default();
        assert!(!off.is_enabled());
        assert!(Traces::start(&off, "test").unwrap().is_none());
        let config = |endpoint: &str, sample_ratio| TracesConfig {
            otlp_endpoint: endpoint.to_owned(),
            sample_ratio,
        };
        assert!(
            config("http://127.0.0.1:4318/v1/traces", 0.25)
                .check("traces")
                .is_ok()
        );
        let ratio = config("", 1.5).check("traces").unwrap_err().to_string();
        assert!(ratio.contains("traces.sample_ratio"), "{ratio}");
        let url = config("127.0.0.1:4318", 1.0)
            .check("traces")
            .unwrap_err()
            .to_string();
        assert!(url.contains("traces.otlp_endpoint"), "{url}");
    }

    #[test]
    fn a_span_is_a_child_of_its_parent_and_says_so_in_its_traceparent() {
        // No collector listens: export fails quietly in the background, which is what a service sees too.
        let traces = Traces::start(
            &TracesConfig {
                otlp_endpoint: "http://127.0.0.1:9/v1/traces".to_owned(),
                sample_ratio: 0.0,
            },
            "test",
        )
        .unwrap()
        .unwrap();
        let child = traces.span(
            "route",
            SpanKind::Consumer,
            Some(PARENT.as_bytes()),
            SystemTime::now(),
            Vec::new,
        );
        let traceparent = child
            .traceparent()
            .expect("a sampled parent keeps its child sampled");
        assert!(
            traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{traceparent}"
        );
        assert!(
            !traceparent.contains("00f067aa0ba902b7"),
            "a new span id: {traceparent}"
        );
        child.end();
        // Ratio 0 and no parent: not recorded, so the next hop keeps what it had.
        let root = traces.span("route", SpanKind::Consumer, None, SystemTime::now(), Vec::new);
        assert_eq!(root.traceparent(), None);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let child = traces.span(
            "route",
            SpanKind::Consumer,
            Some(unsampled.as_bytes()),
            SystemTime::now(),
            Vec::new,
        );
        assert_eq!(child.traceparent(), None);
        traces.shutdown();
    }
}
