use std::collections::BTreeMap;

use serde_json::json;
use switchyard_schemas::events::{Answer, Response};

use super::*;

/// 2026-02-16 10:00 UTC, day 20,500.
const SUBMITTED_AT: i64 = 20_500 * 86_400_000 + 10 * 3_600_000;

fn response(answers: &[(&str, Option<Answer>)]) -> Response {
    Response {
        id: "r-1".to_owned(),
        form_id: "f-kilimo-coop-household-survey".to_owned(),
        form_version: 3,
        team_id: "kilimo-coop".to_owned(),
        collector_id: "enum-7".to_owned(),
        submitted_at: SUBMITTED_AT,
        locale: "sw-KE".to_owned(),
        answers: answers
            .iter()
            .map(|(id, a)| ((*id).to_owned(), a.clone()))
            .collect::<BTreeMap<_, _>>(),
        duration_ms: None,
    }
}

fn number(n: f64) -> Option<Answer> {
    Some(Answer::Number { number: n })
}

fn text(t: &str) -> Option<Answer> {
    Some(Answer::Text { text: t.to_owned() })
}

fn rule(name: &str, expression: &str) -> serde_json::Value {
    json!({"name": name, "expression": expression, "message": format!("{name} failed")})
}

fn rules(rules: &[serde_json::Value]) -> RuleSet {
    RuleSet::from_json(&json!({ "rules": rules })).unwrap()
}

fn single(expression: &str, answers: &[(&str, Option<Answer>)]) -> Evaluation {
    rules(&[rule("r", expression)]).evaluate(&response(answers))
}

fn passed(evaluation: &Evaluation) -> bool {
    evaluation.violations.is_empty() && evaluation.skipped.is_empty() && evaluation.errors.is_empty()
}

fn defaults() -> RuleSet {
    RuleSet::from_json(&default_rules()).unwrap()
}

#[test]
fn the_savings_rule_flags_an_over_saver_and_passes_a_normal_one() {
    let set = defaults();
    let over = set.evaluate(&response(&[
        ("monthly_income", number(18_000.0)),
        ("monthly_savings", number(27_000.0)),
    ]));
    assert_eq!(
        over.violations,
        vec![Violation {
            rule: "savings_within_income".to_owned(),
            message: "Monthly savings exceed monthly income".to_owned(),
            severity: Severity::Error,
        }]
    );
    assert!(over.errors.is_empty());
    assert!(over.has_error_violations());

    let normal = set.evaluate(&response(&[
        ("monthly_income", number(18_000.0)),
        ("monthly_savings", number(2_000.0)),
    ]));
    assert!(normal.violations.is_empty());
    assert!(normal.is_clean());
    // Equal is within income.
    let equal = single(
        "answers.monthly_savings <= answers.monthly_income",
        &[("monthly_income", number(5.0)), ("monthly_savings", number(5.0))],
    );
    assert!(passed(&equal));
}

#[test]
fn a_rule_reading_a_missing_answer_is_skipped() {
    let savings = "answers.monthly_savings <= answers.monthly_income";
    // Skipped question (null).
    let skipped = single(
        savings,
        &[("monthly_income", None), ("monthly_savings", number(5.0))],
    );
    assert_eq!(skipped.skipped, vec!["r".to_owned()]);
    assert!(skipped.violations.is_empty() && skipped.errors.is_empty());
    // Question absent from the response (another form).
    let absent = single(savings, &[("monthly_savings", number(5.0))]);
    assert_eq!(absent.skipped, vec!["r".to_owned()]);
    // Both absent, through the index syntax.
    let indexed = single("answers['monthly_savings'] > 0.0", &[]);
    assert_eq!(indexed.skipped, vec!["r".to_owned()]);
    // Missing date in `days`, and a date question answered with something else.
    assert_eq!(single("days.visit_date > 0", &[]).skipped, vec!["r".to_owned()]);
    assert_eq!(
        single("days.visit_date > 0", &[("visit_date", text("today"))]).skipped,
        vec!["r".to_owned()]
    );
    // The optional response field.
    assert_eq!(
        single("response.duration_ms > 60000", &[]).skipped,
        vec!["r".to_owned()]
    );
}

#[test]
fn has_lets_a_rule_decide_about_missing_answers() {
    let expression = "!has(answers.loan_balance) || answers.loan_balance >= 0.0";
    assert!(passed(&single(expression, &[])));
    assert!(passed(&single(expression, &[("loan_balance", None)])));
    assert_eq!(
        single(expression, &[("loan_balance", number(-1.0))])
            .violations
            .len(),
        1
    );
    // `||` absorbs the missing answer's error when the other side is true.
    let either = "answers.monthly_income > 0.0 || answers.household_size > 0";
    assert!(passed(&single(either, &[("household_size", number(3.0))])));
}

#[test]
fn a_missing_key_that_is_not_an_answer_is_an_error() {
    let location = Some(Answer::Location {
        latitude: -1.28,
        longitude: 36.8,
        accuracy_m: None,
    });
    let evaluation = single(
        "answers.home_location.accuracy_m < 20.0",
        &[("home_location", location)],
    );
    assert_eq!(evaluation.errors.len(), 1, "{evaluation:?}");
    assert!(
        evaluation.errors[0].message.contains("accuracy_m"),
        "{evaluation:?}"
    );
    assert!(evaluation.skipped.is_empty());
}

#[test]
fn multi_choice_answers_are_lists() {
    let assets = Some(Answer::MultiChoice {
        choices: vec!["radio".to_owned(), "solar".to_owned()],
    });
    let answers = [("assets", assets)];
    assert!(passed(&single("'solar' in answers.assets", &answers)));
    assert_eq!(single("'tv' in answers.assets", &answers).violations.len(), 1);
    assert!(passed(&single("size(answers.assets) == 2", &answers)));
    assert!(passed(&single(
        "answers.assets.all(a, a != 'motorbike')",
        &answers
    )));
    let empty = [("assets", Some(Answer::MultiChoice { choices: vec![] }))];
    assert_eq!(
        single("answers.assets.exists(a, a == 'tv')", &empty)
            .violations
            .len(),
        1
    );
}

#[test]
fn every_answer_kind_has_a_cel_value() {
    let answers = [
        ("comments", text("Mambo poa")),
        ("household_size", number(4.0)),
        (
            "city",
            Some(Answer::Choice {
                choice: "nairobi".to_owned(),
            }),
        ),
        ("interview_date", Some(Answer::Date { date: 20_499 })),
        (
            "phone",
            Some(Answer::Phone {
                phone: "+254712345678".to_owned(),
            }),
        ),
        (
            "home_location",
            Some(Answer::Location {
                latitude: -1.2864,
                longitude: 36.8172,
                accuracy_m: Some(12.5),
            }),
        ),
    ];
    for expression in [
        "answers.comments.lowerAscii().contains('poa')",
        "answers.household_size == 4.0 && answers.household_size > 0",
        "answers.city == 'nairobi'",
        "answers.interview_date == '2026-02-15' && days.interview_date == 20499",
        "answers.interview_date <= string(response.submitted_at).substring(0, 10)",
        "response.submitted_day - days.interview_date == 1",
        "answers.phone.matches('^\\\\+2547[0-9]{8}$')",
        "answers.home_location.latitude < 0.0 && answers.home_location.accuracy_m <= 20.0",
        "type(answers.household_size) == double",
    ] {
        let evaluation = single(expression, &answers);
        assert!(passed(&evaluation), "{expression}: {evaluation:?}");
    }
}

#[test]
fn rules_see_the_response_metadata() {
    for expression in [
        "response.id == 'r-1' && response.form_id.endsWith('household-survey')",
        "response.form_version >= 3 && response.team_id == 'kilimo-coop'",
        "response.collector_id == 'enum-7'",
        "response.locale.startsWith('sw')",
        "response.submitted_at > timestamp('2026-02-16T09:59:59Z')",
        "response.submitted_at.getHours() == 10 && response.submitted_day == 20500",
        "!has(response.duration_ms)",
    ] {
        let evaluation = single(expression, &[]);
        assert!(passed(&evaluation), "{expression}: {evaluation:?}");
    }
    let mut timed = response(&[]);
    timed.duration_ms = Some(45_000);
    let quick = rules(&[rule("too_quick", "response.duration_ms >= 60000")]).evaluate(&timed);
    assert_eq!(quick.violations.len(), 1);
}

#[test]
fn a_bad_expression_is_rejected_at_compile_time_with_the_rule_name() {
    let error = RuleSet::from_json(&json!({"rules": [
        rule("fine", "answers.a > 0.0"),
        rule("savings_typo", "answers.monthly_savings <= "),
        rule("income_typo", "answer.monthly_income > 0.0"),
    ]}))
    .unwrap_err();
    let problems = error.problems();
    assert_eq!(problems.len(), 2, "{error}");
    assert_eq!(
        (problems[0].index, problems[0].name.as_str()),
        (1, "savings_typo")
    );
    assert!(
        matches!(&problems[0].kind, RuleProblemKind::Parse { message } if message.contains("line 1, column"))
    );
    assert_eq!((problems[1].index, problems[1].name.as_str()), (2, "income_typo"));
    assert_eq!(
        problems[1].kind,
        RuleProblemKind::UnknownVariable {
            variable: "answer".to_owned()
        }
    );
    let text = error.to_string();
    assert!(
        text.starts_with("The rule at /rules/1 (\"savings_typo\") does not parse as CEL: line 1, column"),
        "{text}"
    );
    assert!(
        text.contains("The rule at /rules/2 (\"income_typo\") uses the unknown variable `answer`"),
        "{text}"
    );
}

#[test]
fn names_are_checked() {
    let long = "n".repeat(MAX_NAME_CHARS);
    assert!(RuleSet::from_json(&json!({"rules": [rule(&long, "true")]})).is_ok());
    // 64 characters, more bytes.
    assert!(RuleSet::from_json(&json!({"rules": [rule(&"é".repeat(64), "true")]})).is_ok());
    let error = RuleSet::from_json(&json!({"rules": [
        rule("a", "true"),
        rule("a", "true"),
        rule("", "true"),
        rule(&format!("{long}x"), "true"),
    ]}))
    .unwrap_err();
    let kinds: Vec<_> = error
        .problems()
        .iter()
        .map(|p| (p.index, p.kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, RuleProblemKind::DuplicateName { first: 0 }),
            (2, RuleProblemKind::EmptyName),
            (3, RuleProblemKind::NameTooLong { chars: 65 }),
        ]
    );
}

#[test]
fn other_config_problems_are_reported() {
    let cases = [
        (
            json!({"name": "m", "expression": "true", "message": " "}),
            RuleProblemKind::EmptyMessage,
        ),
        (
            json!({"name": "e", "expression": "  ", "message": "x"}),
            RuleProblemKind::EmptyExpression,
        ),
        (
            json!({"name": "f", "expression": "response.team == 'x'", "message": "x"}),
            RuleProblemKind::UnknownResponseField {
                field: "team".to_owned(),
            },
        ),
        (
            json!({"name": "l", "expression": "1".repeat(MAX_EXPRESSION_CHARS + 1), "message": "x"}),
            RuleProblemKind::ExpressionTooLong {
                chars: MAX_EXPRESSION_CHARS + 1,
            },
        ),
        (
            json!({"name": "d", "expression": vec!["1.0"; 40].join(" + ") + " > 0.0", "message": "x"}),
            RuleProblemKind::TooDeep,
        ),
    ];
    for (config, kind) in cases {
        let error = RuleSet::from_json(&json!({ "rules": [config] })).unwrap_err();
        assert_eq!(error.problems()[0].kind, kind, "{error}");
    }
    let shape = RuleSet::from_json(&json!({"rules": [{"name": "x", "expression": "true"}]})).unwrap_err();
    assert!(matches!(shape, RulesError::Shape(_)));
    assert!(
        shape
            .to_string()
            .starts_with("The rules-validate config does not have the expected shape: ")
    );
    let unknown = RuleSet::from_json(&json!({"rules": [], "extra": 1})).unwrap_err();
    assert!(matches!(unknown, RulesError::Shape(_)));
    let many = vec![rule("x", "true"); MAX_RULES + 1];
    assert!(matches!(
        RuleSet::from_json(&json!({ "rules": many })),
        Err(RulesError::TooManyRules { count: 257, max: 256 })
    ));
}

#[test]
fn hostile_expressions_are_refused_without_exhausting_the_stack() {
    // Each of these, as long as the length limit allows, would overflow a test thread's 2 MiB stack in
    // the (debug-built) parser or the interpreter; compiling refuses them without crashing.
    let n = MAX_EXPRESSION_CHARS / 2;
    for expression in [
        format!("{}1", "-".repeat(MAX_EXPRESSION_CHARS - 1)),
        format!("{}true", "!".repeat(MAX_EXPRESSION_CHARS - 4)),
        vec!["1"; n].join("+"),
        format!("answers{}", ".a".repeat(n - 4)),
        format!("{}1{}", "[".repeat(n - 1), "]".repeat(n - 1)),
        format!("{}1{}", "(".repeat(n - 1), ")".repeat(n - 1)),
        format!("{}1{}", "f(".repeat(n / 2 - 1), ")".repeat(n / 2 - 1)),
    ] {
        // Either refused, or (the parser folds `--1` and `!!true`) shallow enough to evaluate.
        match RuleSet::from_json(&json!({"rules": [rule("deep", &expression)]})) {
            Err(error) => {
                let kind = &error.problems()[0].kind;
                assert!(
                    matches!(kind, RuleProblemKind::TooDeep | RuleProblemKind::Parse { .. }),
                    "{}: {kind:?}",
                    &expression[..20]
                );
            }
            Ok(set) => {
                set.evaluate(&response(&[]));
            }
        }
    }
    // The deepest accepted expression evaluates in a test thread, also with comprehensions.
    let deepest = vec!["1.0"; MAX_EXPRESSION_DEPTH - 1].join(" + ") + " > 0.0";
    assert!(passed(&single(&deepest, &[])));
    let nested = format!(
        "[1].all(x, {}true{})",
        "[1].all(x, ".repeat(MAX_EXPRESSION_DEPTH / 4 - 2),
        ")".repeat(MAX_EXPRESSION_DEPTH / 4 - 2)
    );
    assert!(passed(&single(&nested, &[])), "{nested}");
    let lists = format!("size({}1{}) == 1", "[".repeat(29), "]".repeat(29));
    assert!(passed(&single(&lists, &[])), "{lists}");
    // Parentheses leave no trace in the tree: 90 levels are fine (the parser allows 96).
    let parens = format!("{}true{}", "(".repeat(90), ")".repeat(90));
    assert!(passed(&single(&parens, &[])));
}

#[test]
fn a_non_boolean_result_is_an_error() {
    let evaluation = single("answers.monthly_income", &[("monthly_income", number(1.0))]);
    assert_eq!(
        evaluation.errors,
        vec![RuleFailure {
            rule: "r".to_owned(),
            message: "The rule evaluated to a double instead of true or false.".to_owned(),
        }]
    );
    assert!(evaluation.violations.is_empty() && evaluation.skipped.is_empty());
    // A runtime type error: a text answer where a number was expected.
    let evaluation = single(
        "answers.monthly_income > 0.0",
        &[("monthly_income", text("a lot"))],
    );
    assert_eq!(evaluation.errors.len(), 1);
    assert!(
        evaluation.errors[0]
            .message
            .starts_with("The rule could not be evaluated: ")
    );
    assert!(!evaluation.is_clean());
}

#[test]
fn severity_defaults_to_error_and_is_reported() {
    let set = rules(&[
        json!({"name": "hard", "expression": "false", "message": "always"}),
        json!({"name": "soft", "expression": "false", "message": "maybe", "severity": "warning"}),
    ]);
    let evaluation = set.evaluate(&response(&[]));
    let severities: Vec<_> = evaluation
        .violations
        .iter()
        .map(|v| (v.rule.as_str(), v.severity))
        .collect();
    assert_eq!(
        severities,
        vec![("hard", Severity::Error), ("soft", Severity::Warning)]
    );
    let only_warning =
        rules(&[json!({"name": "soft", "expression": "false", "message": "m", "severity": "warning"})])
            .evaluate(&response(&[]));
    assert!(!only_warning.has_error_violations());
    assert!(
        RuleSet::from_json(
            &json!({"rules": [{"name": "x", "expression": "true", "message": "m", "severity": "fatal"}]})
        )
        .is_err()
    );
    assert_eq!(
        serde_json::to_value(&evaluation.violations[1]).unwrap(),
        json!({"rule": "soft", "message": "maybe", "severity": "warning"})
    );
}

#[test]
fn every_rule_lands_in_one_place_in_config_order() {
    let set = rules(&[
        rule("pass", "true"),
        rule("violated", "false"),
        rule("skipped", "answers.nothing > 0.0"),
        rule("error", "1 / 0 == 1"),
        rule("violated_too", "answers.monthly_income < 0.0"),
    ]);
    assert_eq!(set.len(), 5);
    assert_eq!(
        set.rule_names().collect::<Vec<_>>(),
        ["pass", "violated", "skipped", "error", "violated_too"]
    );
    let evaluation = set.evaluate(&response(&[("monthly_income", number(3.0))]));
    let violated: Vec<_> = evaluation.violations.iter().map(|v| v.rule.as_str()).collect();
    assert_eq!(violated, ["violated", "violated_too"]);
    assert_eq!(evaluation.skipped, ["skipped"]);
    assert_eq!(evaluation.errors.len(), 1);
    assert_eq!(evaluation.errors[0].rule, "error");
    assert!(
        RuleSet::from_json(&json!({"rules": []}))
            .unwrap()
            .evaluate(&response(&[]))
            .is_clean()
    );
}

#[test]
fn the_default_rules_fit_the_demo_data() {
    let set = defaults();
    assert_eq!(set.len(), 3);
    assert_eq!(
        set.referenced_questions().into_iter().collect::<Vec<_>>(),
        [
            "date_of_birth",
            "monthly_income",
            "monthly_savings",
            "temperature_c"
        ]
    );
    // A clinic intake: 37.3 °C, born 40 years before; nothing about savings.
    let clinic = set.evaluate(&response(&[
        (
            "date_of_birth",
            Some(Answer::Date {
                date: 20_500 - 40 * 365,
            }),
        ),
        ("temperature_c", number(37.3)),
    ]));
    assert!(clinic.is_clean(), "{clinic:?}");
    assert_eq!(clinic.skipped, ["savings_within_income"]);
    // Typos.
    let typos = set.evaluate(&response(&[
        ("date_of_birth", Some(Answer::Date { date: 20_501 })),
        ("temperature_c", number(373.0)),
    ]));
    let violated: Vec<_> = typos
        .violations
        .iter()
        .map(|v| (v.rule.as_str(), v.severity))
        .collect();
    assert_eq!(
        violated,
        [
            ("plausible_date_of_birth", Severity::Error),
            ("plausible_body_temperature", Severity::Warning)
        ]
    );
    let ancient = set.evaluate(&response(&[(
        "date_of_birth",
        Some(Answer::Date {
            date: 20_500 - 43_831,
        }),
    )]));
    assert_eq!(ancient.violations.len(), 1);
}

#[test]
fn the_schema_accepts_the_defaults_and_refuses_bad_shapes() {
    let schema = config_schema();
    assert!(jsonschema::meta::is_valid(&schema));
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&default_rules()));
    assert!(validator.is_valid(&json!({"rules": []})));
    for bad in [
        json!({}),
        json!({"rules": [{"name": "x", "expression": "true"}]}),
        json!({"rules": [{"name": "", "expression": "true", "message": "m"}]}),
        json!({"rules": [{"name": "n".repeat(65), "expression": "true", "message": "m"}]}),
        json!({"rules": [{"name": "x", "expression": "true", "message": "m", "severity": "fatal"}]}),
        json!({"rules": [{"name": "x", "expression": "true", "message": "m", "extra": 1}]}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad}");
        assert!(RuleSet::from_json(&bad).is_err(), "{bad}");
    }
}

#[test]
fn a_rule_set_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RuleSet>();
}
