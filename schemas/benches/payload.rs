//! Payload validation cost per event: what the router pays per `response.submitted` when validation is on.
//!
//! `cargo bench -p switchyard-schemas --bench payload`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchyard_schemas::ContentType;
use switchyard_schemas::events::{Answer, Response, ResponseSubmitted};
use switchyard_schemas::payload::{encode, validate};

fn sample() -> ResponseSubmitted {
    let mut answers = BTreeMap::new();
    for i in 0..24 {
        let answer = match i % 4 {
            0 => Answer::Text {
                text: "Mama mboga sells sukuma wiki at the corner every morning".into(),
            },
            1 => Answer::Number {
                number: f64::from(i) * 1250.5,
            },
            2 => Answer::Choice {
                choice: "option-b".into(),
            },
            _ => Answer::Phone {
                phone: "+254712345678".into(),
            },
        };
        answers.insert(format!("q{i:02}"), Some(answer));
    }
    ResponseSubmitted {
        response: Response {
            id: "0193a5b2-7c1e-7d3a-9f00-aa11bb22cc33".into(),
            form_id: "form-household-survey-2026".into(),
            form_version: 7,
            team_id: "team-000123".into(),
            collector_id: "enumerator-42".into(),
            submitted_at: 1_795_000_000_000,
            locale: "sw-KE".into(),
            answers,
            duration_ms: Some(240_000),
        },
    }
}

fn bench(c: &mut Criterion) {
    let event = sample();
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
