//! The cost per response of the two seed plugins that do real work per event: the rules plugin's
//! evaluation of its default rule set, and the slang plugin's search of a response's text answers.
//!
//! `cargo bench -p switchyard-plugins --bench seeds`
//!
//! No broker: these are the plugins' pure parts, called as the runtime calls them once per event.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use switchyard_plugins::rules::{RuleSet, default_rules};
use switchyard_plugins::slang::SlangIndex;
use switchyard_schemas::events::{Answer, Response};

fn response(locale: &str, answers: Vec<(&str, Answer)>) -> Response {
    Response {
        id: "r-1".to_owned(),
        form_id: "f-kilimo-coop-household-survey".to_owned(),
        form_version: 3,
        team_id: "kilimo-coop".to_owned(),
        collector_id: "enum-7".to_owned(),
        // 2026-02-16 10:00 UTC
        submitted_at: 20_500 * 86_400_000 + 10 * 3_600_000,
        locale: locale.to_owned(),
        answers: answers
            .into_iter()
            .map(|(id, answer)| (id.to_owned(), Some(answer)))
            .collect::<BTreeMap<_, _>>(),
        duration_ms: None,
    }
}

fn text(t: &str) -> Answer {
    Answer::Text { text: t.to_owned() }
}

fn choice(c: &str) -> Answer {
    Answer::Choice { choice: c.to_owned() }
}

/// The default rule set on an 11-answer household survey that breaks one rule (savings above income).
fn rules_evaluation(c: &mut Criterion) {
    let set = RuleSet::from_json(&default_rules()).expect("the default rules compile");
    let survey = response(
        "sw-KE",
        vec![
            ("respondent_name", text("Wanjiru Kamau")),
            (
                "phone",
                Answer::Phone {
                    phone: "+254712345678".to_owned(),
                },
            ),
            ("city", choice("nairobi")),
            ("household_size", Answer::Number { number: 5.0 }),
            ("monthly_income", Answer::Number { number: 18_000.0 }),
            ("monthly_savings", Answer::Number { number: 27_000.0 }),
            ("water_source", choice("kiosk")),
            (
                "assets",
                Answer::MultiChoice {
                    choices: vec!["radio".to_owned(), "phone".to_owned()],
                },
            ),
            ("interview_date", Answer::Date { date: 20_499 }),
            (
                "home_location",
                Answer::Location {
                    latitude: -1.28,
                    longitude: 36.81,
                    accuracy_m: Some(8.0),
                },
            ),
            ("comments", text("Mambo poa, maji iko fiti sasa")),
        ],
    );
    assert_eq!(
        set.evaluate(&survey).violations.len(),
        1,
        "the fixture breaks one rule"
    );
    c.benchmark_group("seed_plugins")
        .bench_function("rules_evaluate", |b| {
            b.iter(|| black_box(set.evaluate(black_box(&survey))))
        });
}

/// The built-in dictionaries on a Nairobi response with three text answers and three hits.
fn slang_search(c: &mut Criterion) {
    let index = SlangIndex::from_json(&json!({})).expect("the built-in dictionaries load");
    let survey = response(
        "sw-KE",
        vec![
            ("city", choice("nairobi")),
            ("respondent_name", text("Wanjiru Kamau")),
            ("comments", text("Msee ako na ganji kidogo tu, anaomba loan")),
            ("notes", text("Household head was away; spoke with the spouse.")),
        ],
    );
    assert_eq!(index.search(&survey).len(), 3, "the fixture has three hits");
    c.benchmark_group("seed_plugins")
        .bench_function("slang_search", |b| {
            b.iter(|| black_box(index.search(black_box(&survey))))
        });
}

criterion_group!(benches, rules_evaluation, slang_search);
criterion_main!(benches);
