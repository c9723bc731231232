//! Example events, one definition for every place that needs a plausible one: unit tests, benchmarks and
//! the fuzzing seeds. Their values carry no meaning beyond being valid against the contract.

use std::collections::BTreeMap;

use crate::envelope::{self as h, ContentType};
use crate::events::{Answer, Form, FormCreated, Question, QuestionKind, Response, ResponseSubmitted};

/// The CloudEvents headers of a valid core event `id` of type `ce_type` for `team`, as `(name, value)`
/// pairs in the order a producer would write them.
pub fn core_event_headers(
    team: &str,
    ce_type: &str,
    id: &str,
    content_type: ContentType,
) -> Vec<(String, Option<Vec<u8>>)> {
    let header = |name: &str, value: &str| (name.to_owned(), Some(value.as_bytes().to_vec()));
    vec![
        header(h::SPECVERSION, "1.0"),
        header(h::ID, id),
        header(h::SOURCE, "/switchyard/tests"),
        header(h::TYPE, ce_type),
        header(h::TIME, "2026-11-22T10:00:00Z"),
        header(h::SUBJECT, "form-1"),
        header(h::TEAMID, team),
        header(
            h::TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        header(h::CONTENT_TYPE, content_type.media_type()),
    ]
}

/// A `response.submitted` with one answer of every kind and one skipped question.
pub fn response_every_answer_kind(team: &str, id: &str) -> ResponseSubmitted {
    let answers = [
        (
            "name",
            Some(Answer::Text {
                text: "Wanjiru".to_owned(),
            }),
        ),
        ("income", Some(Answer::Number { number: 4200.5 })),
        (
            "crop",
            Some(Answer::Choice {
                choice: "maize".to_owned(),
            }),
        ),
        (
            "assets",
            Some(Answer::MultiChoice {
                choices: vec!["radio".into(), "bike".into()],
            }),
        ),
        ("born", Some(Answer::Date { date: 7300 })),
        (
            "phone",
            Some(Answer::Phone {
                phone: "+254712345678".to_owned(),
            }),
        ),
        (
            "farm",
            Some(Answer::Location {
                latitude: -1.29,
                longitude: 36.82,
                accuracy_m: Some(4.5),
            }),
        ),
        ("skipped", None),
    ];
    response(
        team,
        id,
        "form-1",
        answers.into_iter().map(|(q, a)| (q.to_owned(), a)).collect(),
    )
}

/// A `response.submitted` with 24 answers (text, number, choice and phone in turn): about 760 bytes as
/// Avro, the size the benchmarks use.
pub fn response_24_answers(team: &str, id: &str) -> ResponseSubmitted {
    let answers = (0..24_u32)
        .map(|i| {
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
            (format!("q{i:02}"), Some(answer))
        })
        .collect();
    response(team, id, "form-household-survey-2026", answers)
}

fn response(
    team: &str,
    id: &str,
    form_id: &str,
    answers: BTreeMap<String, Option<Answer>>,
) -> ResponseSubmitted {
    ResponseSubmitted {
        response: Response {
            id: id.to_owned(),
            form_id: form_id.to_owned(),
            form_version: 7,
            team_id: team.to_owned(),
            collector_id: "enumerator-42".to_owned(),
            submitted_at: 1_795_000_000_000,
            locale: "sw-KE".to_owned(),
            answers,
            duration_ms: Some(240_000),
        },
    }
}

/// A `form.created` of a one-question form `form-<id>`.
pub fn form_created(team: &str, id: &str) -> FormCreated {
    FormCreated {
        form: Form {
            id: format!("form-{id}"),
            team_id: team.to_owned(),
            title: "Household survey".to_owned(),
            description: None,
            version: 1,
            default_locale: "en".to_owned(),
            questions: vec![Question {
                id: "name".to_owned(),
                label: "Your name".to_owned(),
                kind: QuestionKind::Text,
                required: true,
                choices: vec![],
                hint: None,
            }],
            created_at: 1_795_000_000_000,
            updated_at: 1_795_000_000_000,
        },
        created_by: "user-1".to_owned(),
    }
}

/// The data of a valid event of each v1 type, in the contract's `application/json` form: what a plugin
/// receives. `id` names the response (`r-<id>`) or form (`form-<id>`).
pub fn data_json(ce_type: crate::catalog::EventType, team: &str, id: &str) -> serde_json::Value {
    use crate::catalog::EventType;
    use crate::events::{FormUpdated, ResponseUpdated};
    let value = match ce_type {
        EventType::FormCreated => serde_json::to_value(form_created(team, id)),
        EventType::FormUpdated => {
            let mut form = form_created(team, id).form;
            form.version = 2;
            form.updated_at += 60_000;
            serde_json::to_value(FormUpdated {
                form,
                previous_version: 1,
                updated_by: "user-1".to_owned(),
            })
        }
        EventType::ResponseSubmitted => serde_json::to_value(response_every_answer_kind(team, id)),
        EventType::ResponseUpdated => serde_json::to_value(ResponseUpdated {
            response: response_every_answer_kind(team, id).response,
            revision: 2,
            updated_by: "user-1".to_owned(),
            updated_at: 1_795_341_660_000,
        }),
    };
    value.expect("the sample events serialize")
}
