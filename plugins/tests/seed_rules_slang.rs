//! Both plugins on events as they arrive on the wire (the contract's bare JSON), with the demo's defaults,
//! and with the configs of two installations of one team.

// Test code: `allow-unwrap-in-tests` only covers `#[test]` functions, not their helpers.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::{Value, json};
use switchyard_plugin_runtime::event;
use switchyard_plugin_runtime::http_plugin::initialize_body;
use switchyard_plugin_runtime::plugin::{Context, DEFAULT_INSTALLATION, Event, EventMeta, Outcome, Plugin};
use switchyard_plugins::in_process::SlangSearchPlugin;
use switchyard_plugins::rules::{self, RuleSet, Severity};
use switchyard_plugins::rules_service::{RulesService, router};
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

// ---------------------------------------------------------------------------------------------------
// Installations: a team that installed a plugin twice

const TEAM: &str = "kilimo-coop";

/// The attributes of the submitted response routed for the team's `installation`.
fn meta(installation: &str) -> EventMeta {
    EventMeta {
        id: "e-0001".into(),
        source: "/collect/web".into(),
        event_type: "response.submitted".into(),
        time: None,
        subject: Some("f-kilimo-coop-household-survey".into()),
        team_id: TEAM.into(),
        installation: installation.into(),
        backfill: None,
    }
}

/// The slang terms `plugin` finds in the submitted response routed for `installation`.
async fn terms_for(plugin: &SlangSearchPlugin, installation: &str) -> Vec<String> {
    let event = submitted();
    let ctx = Context {
        meta: meta(installation),
        data: serde_json::to_value(&event).unwrap(),
        data_json: None,
        attempt: 1,
        traceparent: None,
    };
    match plugin.execute(&ctx, &Event::ResponseSubmitted(event)).await {
        Outcome::Done(results) if results.is_empty() => Vec::new(),
        Outcome::Done(results) => results[0].data["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hit| hit["term"].as_str().unwrap().to_owned())
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn two_installations_of_a_team_search_with_their_own_dictionaries() {
    let plugin = SlangSearchPlugin::new().unwrap();
    assert!(plugin.manifest().delivery.installations, "the manifest opts in");
    let own = |term: &str| {
        let meaning = format!("{term}, the team's");
        json!({"use_builtin": false, "dictionaries": {"nairobi": {term: meaning}}})
    };
    plugin
        .initialize(TEAM, DEFAULT_INSTALLATION, Some(&own("ganji")))
        .await
        .unwrap();
    plugin
        .initialize(TEAM, "field-team", Some(&own("msee")))
        .await
        .unwrap();
    assert_eq!(terms_for(&plugin, DEFAULT_INSTALLATION).await, ["ganji"]);
    assert_eq!(terms_for(&plugin, "field-team").await, ["msee"]);
    let builtin = ["msee", "ako na", "ganji"];
    assert_eq!(
        terms_for(&plugin, "never-configured").await,
        builtin,
        "an installation without a config has the built-in dictionaries"
    );

    // Removing the field team's config puts it back on the built-in dictionaries, and only it.
    plugin.initialize(TEAM, "field-team", None).await.unwrap();
    assert_eq!(terms_for(&plugin, "field-team").await, builtin);
    assert_eq!(terms_for(&plugin, DEFAULT_INSTALLATION).await, ["ganji"]);
}

/// The rules service on a loopback port, unsigned; its base URL.
async fn rules_service() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let service = Arc::new(RulesService::new(&base, None).unwrap());
    tokio::spawn(async move { axum::serve(listener, router(service)).await });
    base
}

async fn post(base: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let body = answer.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The rules the submitted response breaks under `installation`'s rule set, as `/execute` answers them.
async fn broken_for(base: &str, installation: &str) -> Vec<String> {
    let data = serde_json::to_value(submitted()).unwrap();
    let body = serde_json::to_vec(&event::structured(&meta(installation), &data)).unwrap();
    let (status, answer) = post(base, "/execute", body).await;
    assert_eq!(status, 200, "{answer}");
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|result| result["data"]["violations"].as_array().unwrap())
        .map(|violation| violation["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn two_installations_of_a_team_validate_with_their_own_rules() {
    let base = rules_service().await;
    let manifest: Value = reqwest::get(format!("{base}/metadata"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(manifest["installations"], true, "the manifest opts in");
    let rule = |name: &str, expression: &str| {
        let rule = json!({"name": name, "expression": expression, "message": name});
        json!({ "rules": [rule] })
    };
    let household = rule("household_of_four_or_fewer", "answers.household_size <= 4.0");
    let savings = rule(
        "savings_under_half",
        "answers.monthly_savings <= answers.monthly_income / 2.0",
    );
    // The bodies the bridge sends: no `installation` for the default one.
    for (installation, config) in [(DEFAULT_INSTALLATION, &household), ("audit", &savings)] {
        let body = initialize_body(TEAM, installation, Some(config));
        assert_eq!(post(&base, "/initialize", body).await.0, 204);
    }
    assert_eq!(
        broken_for(&base, DEFAULT_INSTALLATION).await,
        ["household_of_four_or_fewer"]
    );
    assert_eq!(broken_for(&base, "audit").await, ["savings_under_half"]);
    assert_eq!(
        broken_for(&base, "never-configured").await,
        ["savings_within_income"],
        "an installation without a config has the default rules"
    );

    // Removing the audit's config puts it back on the default rules, and only it.
    let body = initialize_body(TEAM, "audit", None);
    assert_eq!(post(&base, "/initialize", body).await.0, 204);
    assert_eq!(broken_for(&base, "audit").await, ["savings_within_income"]);
    assert_eq!(
        broken_for(&base, DEFAULT_INSTALLATION).await,
        ["household_of_four_or_fewer"]
    );

    // An installation that is not an installation id is refused, not taken for another one.
    let bad = json!({"team_id": TEAM, "installation": "Not/An-Id", "config": savings});
    assert_eq!(
        post(&base, "/initialize", bad.to_string().into_bytes()).await.0,
        400
    );
    let data = serde_json::to_value(submitted()).unwrap();
    let mut event = event::structured(&meta(DEFAULT_INSTALLATION), &data);
    event["installation"] = json!(7);
    let (status, answer) = post(&base, "/execute", serde_json::to_vec(&event).unwrap()).await;
    assert_eq!((status, &answer["outcome"]), (200, &json!("dead_letter")));
}
