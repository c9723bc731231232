//! OpenTelemetry traces end to end against a real Jaeger (`scripts/jaeger`): an event produced with a
//! `traceparent`, routed by the router and delivered by the bridge (the real binary) to a plugin service,
//! leaves one trace: the producer's span → the router's `route` span → the worker's `deliver` span, whose
//! context the plugin's `/execute` call carries. An event whose producer did not sample it leaves no span and
//! reaches the plugin without a new `traceparent`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::Value;
use switchyard_schemas::ContentType;
use switchyard_tests::binaries::free_address;
use switchyard_tests::broker::{TestProducer, unique};
use switchyard_tests::records::{core_event, enablement, header, manifest};
use switchyard_tests::routers::{Admin, InProcessRouter, Topics};
use switchyard_tests::traces::{Jaeger, Span};
use switchyard_tests::wait::wait_for;
use switchyard_tests::workers::{WorkerTopics, bridge_command, http_plugin, serve_on_loopback, start_bridge};

/// Per call: the event id, the `traceparent` header and the body's `traceparent` attribute.
type Calls = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

async fn execute(State(calls): State<Calls>, headers: HeaderMap, body: Bytes) -> &'static str {
    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
    let header = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    calls.lock().unwrap().push((
        event["id"].as_str().unwrap_or_default().to_owned(),
        header,
        event["traceparent"].as_str().map(str::to_owned),
    ));
    "{}"
}

/// A random W3C trace id.
fn trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_trace_runs_from_the_producer_through_the_router_to_the_plugins_call() {
    let jaeger = Jaeger::start();
    let topics = Topics::unique();
    topics.create(1, &["traced"]).await;
    let producer = TestProducer::new();
    producer.send(&topics.plugins, &manifest("traced", &["response.submitted"]));
    producer.send(&topics.enablements, &enablement("acme", "traced", true, None));
    producer.flush();
    let tracing = [("TRACES__OTLP_ENDPOINT", jaeger.otlp_endpoint.as_str())];
    let router = InProcessRouter::start(&topics, &tracing);

    let calls = Calls::default();
    let app = http_plugin("traced")
        .route("/execute", post(execute))
        .with_state(Arc::clone(&calls));
    let base = serve_on_loopback(app).await;
    let worker_topics = WorkerTopics::of_router("traced", &topics).await;
    let admin = free_address();
    let _bridge = start_bridge(
        bridge_command(&worker_topics, &base, &unique("traced"), admin)
            .env("SWITCHYARD_PLUGIN__TRACES__OTLP_ENDPOINT", &jaeger.otlp_endpoint),
        "bridge-traces",
    );
    router.admin.wait_ready().await;
    Admin { address: admin }.wait_ready().await;

    // Two events: one the producer sampled, one it did not.
    let (sampled_trace, unsampled_trace) = (trace_id(), trace_id());
    let producer_span = "00f067aa0ba902b7";
    for (id, flags, trace) in [
        ("e-sampled", "01", &sampled_trace),
        ("e-unsampled", "00", &unsampled_trace),
    ] {
        let mut event = core_event("acme", "response.submitted", id, ContentType::Json);
        event.headers.retain(|(name, _)| name != "traceparent");
        event.headers.push(header(
            "traceparent",
            &format!("00-{trace}-{producer_span}-{flags}"),
        ));
        producer.send(&topics.core, &event);
    }
    producer.flush();
    wait_for(
        "both events reach the plugin",
        Duration::from_secs(60),
        || async { (calls.lock().unwrap().len() >= 2).then_some(()) },
    )
    .await;
    let calls = calls.lock().unwrap().clone();
    let call = |id: &str| calls.iter().find(|c| c.0 == id).cloned().expect("called");

    // The sampled event's call carries the worker's span, in the header and in the body alike.
    let (_, header, attribute) = call("e-sampled");
    let header = header.expect("a traceparent header on the sampled event's call");
    assert_eq!(attribute.as_deref(), Some(header.as_str()));
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(parts.len(), 4, "{header}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", sampled_trace.as_str(), "01")
    );
    let deliver_id = parts[2].to_owned();

    // Jaeger holds route (child of the producer's span) and deliver (child of route).
    let spans: Vec<Span> = wait_for("both spans in Jaeger", Duration::from_secs(60), || async {
        let spans = jaeger.trace(&sampled_trace).await;
        (spans.len() >= 2).then_some(spans)
    })
    .await;
    let route = spans.iter().find(|s| s.name == "route").expect("a route span");
    assert_eq!(route.parent.as_deref(), Some(producer_span), "{spans:?}");
    assert_eq!(route.service, "switchyard-router");
    assert_eq!(route.tag("switchyard.outcome"), Some("routed"));
    assert_eq!(route.tag("cloudevents.event_type"), Some("response.submitted"));
    assert!(
        route
            .tag("switchyard.plugins")
            .is_some_and(|p| p.contains("traced")),
        "{route:?}"
    );
    assert_eq!(route.tag("messaging.destination.partition.id"), Some("0"));
    assert!(route.tag("messaging.kafka.offset").is_some(), "{route:?}");
    let deliver = spans
        .iter()
        .find(|s| s.name == "deliver")
        .expect("a deliver span");
    assert_eq!(deliver.span_id, deliver_id, "the call carries the deliver span");
    assert_eq!(
        deliver.parent.as_deref(),
        Some(route.span_id.as_str()),
        "{spans:?}"
    );
    assert_eq!(deliver.service, "switchyard-plugin-traced");
    assert_eq!(deliver.tag("switchyard.outcome"), Some("done"));
    assert_eq!(deliver.tag("switchyard.attempt"), Some("1"));
    assert!(
        !spans
            .iter()
            .flat_map(|s| &s.tags)
            .any(|(_, v)| v.contains("acme")),
        "no team: {spans:?}"
    );

    // The unsampled event: no span anywhere, and its call has no traceparent of the worker's.
    let (_, header, attribute) = call("e-unsampled");
    assert_eq!((header, attribute), (None, None));
    assert!(jaeger.trace(&unsampled_trace).await.is_empty());
    router.stop().await.expect("clean stop");
}
