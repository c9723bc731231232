//! What a filter's data costs per event: projecting the paths it reads against decoding the whole value
//! (`to_json`) and against validation alone, on a `response.submitted` of 24 answers.
//!
//! `cargo bench -p switchyard-schemas --bench projection`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_schemas::projection::{DataPath, Segment};
use switchyard_schemas::samples::response_24_answers;
use switchyard_schemas::{ContentType, EventType, payload};

fn bench(c: &mut Criterion) {
    let event = response_24_answers("team-000123", "0193a5b2-7c1e-7d3a-9f00-aa11bb22cc33");
    // The path of the typical filter `data.response.answers["q02"].choice == "option-b"`.
    let choice = DataPath::new([
        Segment::key("response"),
        Segment::key("answers"),
        Segment::key("q02"),
        Segment::key("choice"),
    ]);
    let form = DataPath::new([Segment::key("response"), Segment::key("form_id")]);
    let mut group = c.benchmark_group("project_response_submitted");
    for content_type in [ContentType::Avro, ContentType::Json] {
        let bytes = encode(&event, content_type);
        let media = content_type.media_type();
        group.bench_function(format!("{media}/project_1_path"), |b| {
            b.iter(|| {
                payload::project(
                    black_box("response.submitted"),
                    content_type,
                    Some(black_box(&bytes)),
                    &[&choice],
                )
                .unwrap()
            })
        });
        group.bench_function(format!("{media}/project_2_paths"), |b| {
            b.iter(|| {
                payload::project(
                    black_box("response.submitted"),
                    content_type,
                    Some(black_box(&bytes)),
                    &[&choice, &form],
                )
                .unwrap()
            })
        });
        group.bench_function(format!("{media}/to_json"), |b| {
            b.iter(|| {
                payload::to_json(EventType::ResponseSubmitted, content_type, black_box(&bytes)).unwrap()
            })
        });
        group.bench_function(format!("{media}/validate"), |b| {
            b.iter(|| {
                payload::validate(
                    black_box("response.submitted"),
                    content_type,
                    Some(black_box(&bytes)),
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

fn encode(event: &switchyard_schemas::events::ResponseSubmitted, content_type: ContentType) -> Vec<u8> {
    payload::encode(event, content_type).unwrap()
}

criterion_group!(benches, bench);
criterion_main!(benches);
