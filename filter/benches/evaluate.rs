//! What a filter costs: compiling it (registry and router control thread), and per event on the router's
//! hot path, binding and evaluating it, alone and end to end with the projection of the event's data.
//!
//! `cargo bench -p switchyard-filter --bench evaluate`
//!
//! The event is `samples::response_24_answers` (about 760 bytes as Avro). Before the measurements, the
//! memory each compiled filter holds is printed.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_filter::{Attributes, Bindings, DataPath, Filter};
use switchyard_schemas::samples::response_24_answers;
use switchyard_schemas::{ContentType, payload};

const TYPICAL: &str = r#"data.response.answers["q02"].choice == "option-b" && type == "response.submitted""#;
const ATTRIBUTES_ONLY: &str = r#"type == "response.submitted" && subject == "form-household-survey-2026""#;

/// 8 conjuncts of 7 nodes and the 7 `&&` between them: 63 nodes, 8 data paths, one short of the bound.
fn sixty_three_nodes() -> String {
    (0..8)
        .map(|i| format!(r#"data.response.answers["q{i:02}"] != null"#))
        .collect::<Vec<_>>()
        .join(" && ")
}

const EXTENSIONS: [(&str, &str); 1] = [("teamid", "team-000123")];

fn attributes() -> Attributes<'static> {
    Attributes {
        id: "0193a5b2-7c1e-7d3a-9f00-aa11bb22cc33",
        source: "/collect/web",
        event_type: "response.submitted",
        subject: Some("form-household-survey-2026"),
        time: Some("2026-11-22T10:00:00Z"),
        team_id: "team-000123",
        extensions: &EXTENSIONS,
    }
}

fn bench(c: &mut Criterion) {
    let sixty_three = sixty_three_nodes();
    for (name, source) in [
        ("typical", TYPICAL),
        ("attributes only", ATTRIBUTES_ONLY),
        ("63 nodes", sixty_three.as_str()),
    ] {
        let filter = Filter::compile(source).unwrap();
        println!(
            "memory of a compiled filter, {name}: {} bytes ({} source bytes, {} data paths)",
            filter.memory_bytes(),
            source.len(),
            filter.data_paths().len()
        );
    }

    let mut group = c.benchmark_group("compile");
    group.bench_function("typical", |b| {
        b.iter(|| Filter::compile(black_box(TYPICAL)).unwrap())
    });
    group.bench_function("63_nodes", |b| {
        b.iter(|| Filter::compile(black_box(&sixty_three)).unwrap())
    });
    group.finish();

    let event = response_24_answers("team-000123", "0193a5b2-7c1e-7d3a-9f00-aa11bb22cc33");
    let avro = payload::encode(&event, ContentType::Avro).unwrap();
    let json = payload::encode(&event, ContentType::Json).unwrap();
    let attributes = attributes();

    let mut group = c.benchmark_group("evaluate");
    for (name, source) in [
        ("typical", TYPICAL),
        ("attributes_only", ATTRIBUTES_ONLY),
        ("63_nodes", sixty_three.as_str()),
    ] {
        let filter = Filter::compile(source).unwrap();
        let paths: Vec<&DataPath> = filter.data_paths().iter().collect();
        let projected =
            payload::project("response.submitted", ContentType::Avro, Some(&avro), &paths).unwrap();
        assert!(
            filter
                .evaluate(&Bindings::new(&attributes, &projected))
                .is_match()
        );
        // The data already projected: what binding and evaluating add.
        group.bench_function(format!("{name}/bind_and_evaluate"), |b| {
            b.iter(|| {
                filter
                    .evaluate(&Bindings::new(black_box(&attributes), black_box(&projected)))
                    .is_match()
            })
        });
        if !filter.reads_data() {
            continue;
        }
        // From the record's value: project, bind, evaluate.
        for (content_type, value) in [(ContentType::Avro, &avro), (ContentType::Json, &json)] {
            group.bench_function(format!("{name}/end_to_end_{}", content_type.media_type()), |b| {
                b.iter(|| {
                    let data = payload::project(
                        black_box("response.submitted"),
                        content_type,
                        Some(black_box(value)),
                        &paths,
                    )
                    .unwrap();
                    filter
                        .evaluate(&Bindings::new(black_box(&attributes), &data))
                        .is_match()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
