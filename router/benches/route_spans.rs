//! What tracing costs the router per event: building one routed event's records with tracing off, with
//! tracing on but the event's trace not sampled, and with its `route` span recorded (attributes, the new
//! `traceparent` on the copy, the span queued for export).
//!
//! `cargo bench -p switchyard-router --bench route_spans`
//!
//! The three, and the records built without any tracing code (`untraced`: the router before traces), are
//! measured side by side in one run, on the same event (the v1 `response.submitted` headers
//! with a `traceparent`) and a plan of one plugin copy, through the code the engine runs
//! (`spans::route_span` and `records::records`). The exporter points at a closed loopback port: export
//! happens on the SDK's own thread and fails there, which this thread never waits for, as in a service
//! whose collector is down.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_router::pipeline::delivery::records::{self, InputRecord};
use switchyard_router::pipeline::delivery::spans::{self, Read};
use switchyard_router::pipeline::filters::FilterTally;
use switchyard_router::pipeline::plan::{Outcome, Output, Plan};
use switchyard_router::tables::routes::RouteTable;
use switchyard_schemas::control::{Enablement, PluginManifest};
use switchyard_schemas::envelope::ContentType;
use switchyard_schemas::samples;
use switchyard_service::traces::{TraceSpan, Traces, TracesConfig};

fn plan() -> Plan {
    let table = RouteTable::new("plugin.{plugin}.events");
    table.upsert_plugin(&PluginManifest {
        id: "sheets".to_owned(),
        name: "Sheets".to_owned(),
        description: String::new(),
        version: semver::Version::new(1, 0, 0),
        url: None,
        events: vec!["response.submitted".to_owned()],
        actions: vec![],
        config_schema: None,
        contract: None,
        signature: None,
        delivery: Default::default(),
    });
    let enablement = Enablement {
        team_id: "acme".to_owned(),
        plugin_id: "sheets".to_owned(),
        installation: None,
        form_ids: None,
        filter: None,
        backfill: None,
        enabled: true,
        event_types: None,
        updated_at: "2026-11-22T10:00:00Z".to_owned(),
    };
    table.upsert_enablement(&enablement).expect("no filter");
    let mut targets = Vec::new();
    table.route("acme", "response.submitted", None, &mut targets);
    let target = targets.pop().expect("routed");
    Plan {
        outcome: Outcome::Routed,
        outputs: vec![Output::Plugin {
            route: target.plugin,
            installation: None,
        }],
        filters: FilterTally::default(),
        held: Vec::new(),
    }
}

/// One event's records, as `Core::plan_and_send` builds them; the count of headers written.
fn route(traces: Option<&Traces>, plan: &Plan, input: &InputRecord<'_>) -> usize {
    let traced = traces.map(|traces| (traces, SystemTime::now()));
    let span = traced.map(|(traces, start)| {
        let read = Read {
            topic: "core.events",
            partition: input.partition,
            offset: input.offset,
            headers: input.headers,
            backfill: None,
        };
        spans::route_span(traces, start, &read, plan)
    });
    let traceparent = span.as_ref().and_then(TraceSpan::traceparent);
    let written = records::records(
        &plan.outputs,
        input,
        "core.events",
        "core.events.dlq",
        None,
        traceparent.as_deref(),
    )
    .fold(0, |written, record| {
        black_box(record);
        written + 1
    });
    if let Some(span) = span {
        span.end();
    }
    written
}

fn bench(c: &mut Criterion) {
    let plan = plan();
    let tracer = |sample_ratio| {
        Traces::start(
            &TracesConfig {
                otlp_endpoint: "http://127.0.0.1:9/v1/traces".to_owned(),
                sample_ratio,
            },
            "bench",
        )
        .expect("exporter")
        .expect("on")
    };
    let (recording, sampling_nothing) = (tracer(1.0), tracer(0.0));
    let mut headers = samples::core_event_headers("acme", "response.submitted", "e-1", ContentType::Avro);
    headers.retain(|(name, _)| name != "traceparent");
    let owned: Vec<(String, Option<Vec<u8>>)> = headers;
    let unsampled: Vec<(&str, Option<&[u8]>)> =
        owned.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
    let mut sampled = unsampled.clone();
    sampled.push((
        "traceparent",
        Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ));
    let input = |headers| InputRecord {
        partition: 0,
        offset: 42,
        key: Some(b"acme"),
        value: Some(b"{}"),
        headers,
    };
    let mut group = c.benchmark_group("route_spans");
    // The records alone, as before traces existed: what "off" is compared with.
    group.bench_function("untraced", |b| {
        b.iter(|| {
            let input = input(&sampled);
            records::records(
                &plan.outputs,
                &input,
                "core.events",
                "core.events.dlq",
                None,
                None,
            )
            .fold(0, |written, record| {
                black_box(record);
                written + 1
            })
        })
    });
    group.bench_function("off", |b| b.iter(|| route(None, &plan, &input(&sampled))));
    group.bench_function("on_not_sampled", |b| {
        b.iter(|| route(Some(&sampling_nothing), &plan, &input(&unsampled)))
    });
    group.bench_function("on_recorded", |b| {
        b.iter(|| route(Some(&recording), &plan, &input(&sampled)))
    });
    group.finish();
    recording.shutdown();
    sampling_nothing.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
