use std::collections::HashMap;

use switchyard_schemas::ContentType;
use switchyard_schemas::envelope as h;

use super::*;
use crate::tables::test_support;

fn table() -> RouteTable {
    test_support::table(
        "acme",
        &[
            ("sheets", &["response.submitted"]),
            ("sms", &["response.submitted", "x.custom"]),
        ],
    )
}

fn headers(ce_type: &'static str, content_type: &'static str) -> Vec<(&'static str, Option<&'static [u8]>)> {
    vec![
        (h::SPECVERSION, Some(b"1.0")),
        (h::ID, Some(b"e-1")),
        (h::SOURCE, Some(b"/test")),
        (h::TYPE, Some(ce_type.as_bytes())),
        (h::CONTENT_TYPE, Some(content_type.as_bytes())),
    ]
}

struct Refused(HashMap<Destination, String>);

impl Refusals for Refused {
    fn refusal(&self, destination: &Destination) -> Option<&str> {
        self.0.get(destination).map(String::as_str)
    }
}

fn plan_with(
    validate: bool,
    key: Option<&'static [u8]>,
    headers: Vec<(&'static str, Option<&'static [u8]>)>,
    value: Option<&[u8]>,
    missing: &[&str],
    refusals: &dyn Refusals,
) -> Plan {
    let table = table();
    let planner = Planner {
        table: &table,
        validate_payloads: validate,
        selection: Selection::ALL,
    };
    let mut state = |p: &PluginRoute| {
        if missing.contains(&&*p.id) {
            TopicState::Missing
        } else {
            TopicState::Exists
        }
    };
    planner.plan(key, headers, value, &mut state, refusals, &mut Vec::new())
}

fn ids(plan: &Plan) -> Vec<String> {
    plan.outputs
        .iter()
        .map(|o| match o {
            Output::Plugin {
                route,
                installation: None,
            } => route.id.to_string(),
            Output::Plugin {
                route,
                installation: Some(name),
            } => format!("{}/{name}", route.id),
            Output::DeadLetter {
                rejection,
                plugin,
                drop_value,
            } => {
                format!(
                    "dlq:{}:{}:{drop_value}",
                    rejection.reason,
                    plugin.as_ref().map_or("-", |p| &*p.plugin)
                )
            }
        })
        .collect()
}

#[test]
fn routes_to_every_enabled_subscriber() {
    let plan = plan_with(
        false,
        Some(b"acme"),
        headers("response.submitted", "application/json"),
        Some(b"{}"),
        &[],
        &NoRefusals,
    );
    assert_eq!(plan.outcome, Outcome::Routed);
    assert_eq!(ids(&plan), ["sheets", "sms"]);
}

#[test]
fn unknown_types_skip_validation_and_unsubscribed_events_are_unrouted() {
    let plan = plan_with(
        true,
        Some(b"acme"),
        headers("x.custom", "application/avro"),
        Some(b"\xff"),
        &[],
        &NoRefusals,
    );
    assert_eq!(
        (plan.outcome, ids(&plan)),
        (Outcome::Routed, vec!["sms".to_owned()])
    );
    let plan = plan_with(
        true,
        Some(b"globex"),
        headers("x.custom", "application/json"),
        None,
        &[],
        &NoRefusals,
    );
    assert_eq!(
        plan,
        Plan {
            outcome: Outcome::Unrouted,
            outputs: vec![],
            filters: FilterTally::default(),
            held: vec![],
        }
    );
}

#[test]
fn whole_event_rejections() {
    let plan = plan_with(
        true,
        None,
        headers("x.custom", "application/json"),
        None,
        &[],
        &NoRefusals,
    );
    assert_eq!(ids(&plan), ["dlq:missing_key:-:false"]);
    assert_eq!(plan.outcome, Outcome::DeadLettered);
    let plan = plan_with(
        true,
        Some(b"acme"),
        headers("response.submitted", "application/json"),
        Some(b"{}"),
        &[],
        &NoRefusals,
    );
    assert_eq!(ids(&plan), ["dlq:invalid_payload:-:false"]);
    // with validation off the same payload is routed as-is
    let plan = plan_with(
        false,
        Some(b"acme"),
        headers("response.submitted", "application/json"),
        Some(b"{}"),
        &[],
        &NoRefusals,
    );
    assert_eq!(plan.outcome, Outcome::Routed);
}

#[test]
fn a_missing_topic_dead_letters_only_that_copy() {
    let plan = plan_with(
        false,
        Some(b"acme"),
        headers("response.submitted", "application/json"),
        None,
        &["sms"],
        &NoRefusals,
    );
    assert_eq!(plan.outcome, Outcome::Routed);
    assert_eq!(ids(&plan), ["sheets", "dlq:plugin_topic_missing:sms:false"]);
    let plan = plan_with(
        false,
        Some(b"acme"),
        headers("response.submitted", "application/json"),
        None,
        &["sms", "sheets"],
        &NoRefusals,
    );
    assert_eq!(plan.outcome, Outcome::DeadLettered);
}

#[test]
fn refusals_remembered_from_an_earlier_attempt() {
    let refused = Refused(HashMap::from([
        (
            Destination::Plugin(Recipient::default_of("sms")),
            "Broker: Message size too large".to_owned(),
        ),
        (
            Destination::DeadLetter(Some(Recipient::default_of("sms"))),
            "Broker: Message size too large".to_owned(),
        ),
    ]));
    let plan = plan_with(
        false,
        Some(b"acme"),
        headers("response.submitted", "application/json"),
        None,
        &[],
        &refused,
    );
    assert_eq!(ids(&plan), ["sheets", "dlq:plugin_topic_rejected:sms:true"]);
    let whole = Refused(HashMap::from([(
        Destination::DeadLetter(None),
        "too large".to_owned(),
    )]));
    let plan = plan_with(
        true,
        Some(b"bad key!"),
        headers("x", "application/json"),
        None,
        &[],
        &whole,
    );
    assert_eq!(ids(&plan), ["dlq:invalid_key:-:true"]);
}

#[test]
fn avro_payloads_validate_by_fingerprint() {
    let bytes = payload_avro();
    let plan = plan_with(
        true,
        Some(b"acme"),
        headers("response.submitted", "application/avro"),
        Some(&bytes),
        &[],
        &NoRefusals,
    );
    assert_eq!(plan.outcome, Outcome::Routed);
}

fn payload_avro() -> Vec<u8> {
    use switchyard_schemas::events::{Response, ResponseSubmitted};
    let event = ResponseSubmitted {
        response: Response {
            id: "r".into(),
            form_id: "f".into(),
            form_version: 1,
            team_id: "acme".into(),
            collector_id: "c".into(),
            submitted_at: 0,
            locale: "en".into(),
            answers: Default::default(),
            duration_ms: None,
        },
    };
    payload::encode(&event, ContentType::Avro).unwrap()
}

/// A table in which acme installed `sheets` three times and `sms` once, with a filter.
fn installations_table() -> RouteTable {
    use test_support::{installation, manifest};
    let table = RouteTable::new("plugin.{plugin}.events");
    table.upsert_plugin(&manifest("sheets", &["response.submitted"]));
    table.upsert_plugin(&manifest("sms", &["response.submitted"]));
    let installations = [
        installation("acme", "sheets", "default", |e| {
            e.form_ids = Some(vec!["form-1".into()]);
        }),
        installation("acme", "sheets", "forms-bc", |e| {
            e.form_ids = Some(vec!["form-b".into(), "form-c".into()]);
        }),
        installation("acme", "sheets", "wanjiru", |e| {
            e.filter = Some(r#"data.response.answers["name"].text == "Wanjiru""#.into());
        }),
        installation("acme", "sms", "default", |e| {
            e.filter = Some(r#"data.response.answers["crop"].choice == "rice""#.into());
        }),
    ];
    for installation in &installations {
        table.upsert_enablement(installation).unwrap();
    }
    table
}

fn plan_installations(content_type: ContentType, subject: &'static [u8]) -> Plan {
    let table = installations_table();
    let planner = Planner {
        table: &table,
        validate_payloads: true,
        selection: Selection::ALL,
    };
    let event = switchyard_schemas::samples::response_every_answer_kind("acme", "r-1");
    let value = payload::encode(&event, content_type).unwrap();
    let mut headers = headers("response.submitted", content_type.media_type());
    headers.push((h::SUBJECT, Some(subject)));
    let mut exists = |_: &PluginRoute| TopicState::Exists;
    planner.plan(
        Some(b"acme"),
        headers,
        Some(&value),
        &mut exists,
        &NoRefusals,
        &mut Vec::new(),
    )
}

#[test]
fn one_copy_per_matching_installation_with_form_ids_and_filters_on_json_and_avro() {
    for content_type in [ContentType::Json, ContentType::Avro] {
        let plan = plan_installations(content_type, b"form-1");
        assert_eq!(ids(&plan), ["sheets", "sheets/wanjiru"], "{content_type:?}");
        assert_eq!(
            plan.filters,
            FilterTally {
                matched: 1,
                no_match: 1,
                ..FilterTally::default()
            },
            "the sample's crop is maize, not rice"
        );
        let plan = plan_installations(content_type, b"form-c");
        assert_eq!(ids(&plan), ["sheets/forms-bc", "sheets/wanjiru"]);
    }
}

fn request(id: &str, types: Option<&[&str]>) -> Request {
    Request {
        id: id.into(),
        since: "2026-11-01T00:00:00Z".into(),
        until: None,
        event_types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
        rate: None,
        cancel_requested: false,
    }
}

/// Plans a `response.submitted` of acme against [`installations_table`] with `forms-bc` and `sms` held.
fn plan_held(selection: Selection<'_>, value: Option<&[u8]>) -> Plan {
    let table = installations_table();
    for (plugin, name, id) in [("sheets", "forms-bc", "b-1"), ("sms", "default", "b-2")] {
        let mut held = test_support::installation("acme", plugin, name, |_| {});
        if name == "forms-bc" {
            held.form_ids = Some(vec!["form-b".into(), "form-c".into()]);
        }
        held.backfill = Some(request(id, None));
        table.upsert_enablement(&held).unwrap();
    }
    let planner = Planner {
        table: &table,
        validate_payloads: true,
        selection,
    };
    let mut headers = headers("response.submitted", "application/json");
    headers.push((h::SUBJECT, Some(b"form-c")));
    let mut exists = |_: &PluginRoute| TopicState::Exists;
    planner.plan(
        Some(b"acme"),
        headers,
        value,
        &mut exists,
        &NoRefusals,
        &mut Vec::new(),
    )
}

#[test]
fn held_installations_wait_for_their_backfill_and_a_backfill_plans_its_installation_only() {
    let event = switchyard_schemas::samples::response_every_answer_kind("acme", "r-1");
    let value = payload::encode(&event, ContentType::Json).unwrap();
    let held_ids = |plan: &Plan| plan.held.iter().map(|r| r.id.clone()).collect::<Vec<_>>();

    // Live: a held installation is left out and named, until its backfill hands over.
    let none_live = |_: &Request| false;
    let plan = plan_held(
        Selection::Live {
            is_live: Some(&none_live),
        },
        Some(&value),
    );
    assert_eq!(ids(&plan), ["sheets/wanjiru"]);
    // Named before filters run: a held installation's backfill starts whatever its filter says.
    assert_eq!(held_ids(&plan), ["b-1", "b-2"]);
    let b1_live = |r: &Request| r.id == "b-1";
    let plan = plan_held(
        Selection::Live {
            is_live: Some(&b1_live),
        },
        Some(&value),
    );
    assert_eq!(ids(&plan), ["sheets/forms-bc", "sheets/wanjiru"]);
    assert_eq!(held_ids(&plan), ["b-2"]);
    // A router that runs no backfills routes held installations as any other.
    assert_eq!(
        ids(&plan_held(Selection::ALL, Some(&value))),
        ["sheets/forms-bc", "sheets/wanjiru", "sms"]
    );

    // A backfill: only its installation, only its types; an event rejected as a whole is not its to
    // dead-letter again.
    let b1 = request("b-1", None);
    let only = Selection::Backfill {
        plugin: "sheets",
        installation: "forms-bc",
        request: &b1,
    };
    let plan = plan_held(only, Some(&value));
    assert_eq!(
        (ids(&plan), plan.outcome),
        (vec!["sheets/forms-bc".to_owned()], Outcome::Routed)
    );
    let plan = plan_held(only, Some(b"{not json"));
    assert_eq!((plan.outputs.len(), plan.outcome), (0, Outcome::Unrouted));
    let other_types = request("b-1", Some(&["response.updated"]));
    let plan = plan_held(
        Selection::Backfill {
            plugin: "sheets",
            installation: "forms-bc",
            request: &other_types,
        },
        Some(&value),
    );
    assert!(plan.outputs.is_empty());
}

#[test]
fn an_event_every_filter_drops_is_unrouted_and_errors_are_counted_not_fatal() {
    use test_support::{installation, manifest};
    let table = RouteTable::new("plugin.{plugin}.events");
    table.upsert_plugin(&manifest("sms", &["response.submitted", "x.custom"]));
    for (name, filter) in [
        ("typed", r#"data.response.id + 1 > 0"#),
        ("missing", r#"data.response.answers["nope"].text == "x""#),
        ("division", r#"1 / (size(subject) - size(subject)) == 1"#),
    ] {
        let installation = installation("acme", "sms", name, |e| e.filter = Some(filter.into()));
        table.upsert_enablement(&installation).unwrap();
    }
    let planner = Planner {
        table: &table,
        validate_payloads: true,
        selection: Selection::ALL,
    };
    let event = switchyard_schemas::samples::response_every_answer_kind("acme", "r-1");
    let value = payload::encode(&event, ContentType::Json).unwrap();
    let mut headers = headers("response.submitted", "application/json");
    headers.push((h::SUBJECT, Some(b"form-1")));
    let mut exists = |_: &PluginRoute| TopicState::Exists;
    let plan = planner.plan(
        Some(b"acme"),
        headers.clone(),
        Some(&value),
        &mut exists,
        &NoRefusals,
        &mut Vec::new(),
    );
    assert_eq!(plan.outcome, Outcome::Unrouted);
    assert_eq!(plan.filters.matched, 0);
    assert_eq!(
        plan.filters.no_match + plan.filters.missing + plan.filters.error,
        3
    );
    assert!(plan.filters.missing >= 1, "{:?}", plan.filters);
    assert!(plan.filters.error >= 1, "{:?}", plan.filters);

    // Data that does not decode (validation off): a filter reading data fails, counted as an error.
    let planner = Planner {
        table: &table,
        validate_payloads: false,
        selection: Selection::ALL,
    };
    let plan = planner.plan(
        Some(b"acme"),
        headers,
        Some(b"{\"response\": 7}"),
        &mut exists,
        &NoRefusals,
        &mut Vec::new(),
    );
    assert_eq!(plan.outcome, Outcome::Unrouted);
    assert!(plan.filters.error >= 2, "{:?}", plan.filters);
}

#[test]
fn extension_attributes_and_unknown_json_types_can_be_filtered() {
    use test_support::{installation, manifest};
    let table = RouteTable::new("plugin.{plugin}.events");
    table.upsert_plugin(&manifest("crm", &["x.custom"]));
    let installation = installation("acme", "crm", "vip", |e| {
        e.filter = Some(r#"extensions.tier == "gold" && data.amount > 10"#.into());
    });
    table.upsert_enablement(&installation).unwrap();
    let planner = Planner {
        table: &table,
        validate_payloads: true,
        selection: Selection::ALL,
    };
    let mut exists = |_: &PluginRoute| TopicState::Exists;
    let mut plan_for = |tier: &'static [u8], value: &'static [u8]| {
        let mut headers = headers("x.custom", "application/json");
        headers.push(("ce_tier", Some(tier)));
        planner.plan(
            Some(b"acme"),
            headers,
            Some(value),
            &mut exists,
            &NoRefusals,
            &mut Vec::new(),
        )
    };
    assert_eq!(ids(&plan_for(b"gold", b"{\"amount\": 12}")), ["crm/vip"]);
    assert!(ids(&plan_for(b"silver", b"{\"amount\": 12}")).is_empty());
    assert!(ids(&plan_for(b"gold", b"{\"amount\": 2}")).is_empty());
}

#[test]
fn a_projection_for_filters_is_the_validation_of_an_avro_value() {
    use test_support::{installation, manifest};
    let table = RouteTable::new("plugin.{plugin}.events");
    table.upsert_plugin(&manifest("sms", &["response.submitted"]));
    let filter = r#"data.response.locale == "sw-KE""#;
    let named = installation("acme", "sms", "swahili", |e| e.filter = Some(filter.into()));
    table.upsert_enablement(&named).unwrap();
    let by_type = installation("acme", "sms", "any", |e| {
        e.filter = Some(r#"type == "response.submitted""#.into());
    });
    table.upsert_enablement(&by_type).unwrap();
    let mut exists = |_: &PluginRoute| TopicState::Exists;
    let mut plan = |validate: bool, value: &[u8]| {
        let planner = Planner {
            table: &table,
            validate_payloads: validate,
            selection: Selection::ALL,
        };
        planner.plan(
            Some(b"acme"),
            headers("response.submitted", "application/avro"),
            Some(value),
            &mut exists,
            &NoRefusals,
            &mut Vec::new(),
        )
    };
    let mut broken = payload_avro();
    broken.truncate(broken.len() - 3);
    let dead = plan(true, &broken);
    assert_eq!(ids(&dead), ["dlq:invalid_payload:-:false"], "as validation would");
    // Validation off: the filter reading data fails, the one reading attributes still runs.
    let unvalidated = plan(false, &broken);
    assert_eq!(ids(&unvalidated), ["sms/any"]);
    assert_eq!((unvalidated.filters.matched, unvalidated.filters.error), (1, 1));
    let valid = plan(true, &payload_avro());
    assert_eq!(ids(&valid), ["sms/any"], "the sample's locale is en");
}
