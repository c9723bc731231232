//! Payload validation cost per event: what the router pays per `response.submitted` when validation is on.
//!
//! `cargo bench -p switchyard-schemas --bench payload`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchyard_schemas::ContentType;
use switchyard_schemas::payload::{encode, validate};
use switchyard_schemas::samples::response_24_answers;

fn bench(c: &mut Criterion) {
    let event = response_24_answers("team-000123", "0193a5b2-7c1e-7d3a-9f00-aa11bb22cc33");
    let mut group = c.benchmark_group("validate_response_submitted");
    for content_type in [ContentType::Avro, ContentType::Json] {
        let bytes = encode(&event, content_type).unwrap();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(content_type.media_type(), |b| {
            b.iter(|| {
                validate(
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

criterion_group!(benches, bench);
criterion_main!(benches);
