//! Both plugins on events as they arrive on the wire (the contract's bare JSON), with the demo's defaults.

// Test code: `allow-unwrap-in-tests` only covers `#[test]` functions, not their helpers.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use switchyard_plugins::rules::{self, RuleSet, Severity};
use switchyard_plugins::slang::SlangIndex;
use switchyard_schemas::events::{ResponseSubmitted, ResponseUpdated};

fn submitted() -> ResponseSubmitted {
    serde_json::from_value(json!({
        "response": {
            "id": "r-0001",
            "form_id": "f-kilimo-coop-household-survey",
            "form_version": 2,
            "team_id": "kilimo-coop",
            "collector_id": "enum-3",
            "submitted_at": 1_795_165_200_000_i64,
            "locale": "sw-KE",
            "answers": {
                "respondent_name": {"text": "Wanjiru Kamau"},
                "phone": {"phone": "+254712345678"},
                "city": {"choice": "nairobi"},
                "household_size": {"number": 5.0},
                "monthly_income": {"number": 18000.0},
                "monthly_savings": {"number": 27000.0},
                "water_source": {"choice": "kiosk"},
                "assets": {"choices": ["radio", "phone"]},
                "interview_date": {"date": 20_776},
                "home_location": {"latitude": -1.29, "longitude": 36.82, "accuracy_m": 8.5},
                "comments": {"text": "Msee ako na ganji kidogo tu, anaomba loan"}
            },
            "duration_ms": 412_000
        }
    }))
    .unwrap()
}

#[test]
fn an_over_saver_in_nairobi_is_flagged_and_their_sheng_found() {
    let event = submitted();
    let rules = RuleSet::from_json(&rules::default_rules()).unwrap();
    let evaluation = rules.evaluate(&event.response);
    assert_eq!(evaluation.violations.len(), 1);
    assert_eq!(evaluation.violations[0].rule, "savings_within_income");
    assert_eq!(evaluation.violations[0].severity, Severity::Error);
    // No date of birth or temperature on a household survey.
    assert_eq!(
        evaluation.skipped,
        ["plausible_date_of_birth", "plausible_body_temperature"]
    );
    assert!(evaluation.errors.is_empty());

    let slang = SlangIndex::from_json(&json!({})).unwrap();
    let hits = slang.search(&event.response);
    let found: Vec<_> = hits
        .iter()
        .map(|h| (h.term.as_str(), h.meaning.as_str()))
        .collect();
    assert_eq!(
        found,
        [("msee", "guy, person"), ("ako na", "has"), ("ganji", "money")]
    );
}

#[test]
fn a_corrected_response_passes() {
    let mut event: ResponseUpdated = serde_json::from_value(json!({
        "response": serde_json::to_value(submitted().response).unwrap(),
        "revision": 2,
        "updated_by": "supervisor-1",
        "updated_at": 1_795_165_900_000_i64
    }))
    .unwrap();
    event.response.answers.insert(
        "monthly_savings".to_owned(),
        Some(switchyard_schemas::events::Answer::Number { number: 2000.0 }),
    );
    let rules = RuleSet::from_json(&rules::default_rules()).unwrap();
    assert!(rules.evaluate(&event.response).is_clean());
    // A skipped income makes the savings rule not applicable.
    event.response.answers.insert("monthly_income".to_owned(), None);
    let evaluation = rules.evaluate(&event.response);
    assert!(evaluation.is_clean());
    assert!(evaluation.skipped.contains(&"savings_within_income".to_owned()));
}
