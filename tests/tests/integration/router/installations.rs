//! Installations and filters, end to end (issue 17): several installations of one plugin for one team,
//! `form_ids`, CEL filters on attributes and on JSON and Avro data, a disabled installation, tombstones,
//! a filter that errors at run time and one that does not compile, and live changes while events flow.

use std::collections::{BTreeMap, BTreeSet};

use switchyard_schemas::ContentType;
use switchyard_schemas::envelope as h;
use switchyard_schemas::events::{Answer, ResponseSubmitted};
use switchyard_schemas::payload::encode;
use switchyard_tests::broker::{Outgoing, TestProducer, read_to_end};
use switchyard_tests::records::{installation, manifest, response_submitted, tombstone};
use switchyard_tests::routers::{InProcessRouter, Topics};
use switchyard_tests::wait::wait_for;

const CITIES: [Option<&str>; 3] = [Some("nairobi"), Some("mombasa"), None];
const FORMS: [Option<&str>; 4] = [Some("f-a"), Some("f-b"), Some("f-z"), None];
const NAIROBI: &str = r#"data.response.answers["q-city"].choice == "nairobi""#;
const MOMBASA: &str = r#"data.response.answers["q-city"].choice == "mombasa""#;

/// A `response.submitted` of `team` whose `q-city` answer is `city` (skipped when `None`), with
/// `ce_subject` `form` (none when `None`), in `content_type`.
fn response(
    team: &str,
    id: &str,
    form: Option<&str>,
    city: Option<&str>,
    content_type: ContentType,
) -> Outgoing {
    let mut event: ResponseSubmitted = response_submitted(team, id);
    let answer = city.map(|city| Answer::Choice {
        choice: city.to_owned(),
    });
    event.response.answers.insert("q-city".to_owned(), answer);
    let mut headers =
        switchyard_schemas::samples::core_event_headers(team, "response.submitted", id, content_type);
    headers.retain(|(name, _)| name != h::SUBJECT);
    if let Some(form) = form {
        headers.push((h::SUBJECT.to_owned(), Some(form.as_bytes().to_vec())));
    }
    Outgoing {
        key: Some(team.as_bytes().to_vec()),
        value: Some(encode(&event, content_type).expect("encode")),
        headers,
    }
}

/// One event sent: its id, team, form and city.
struct Sent {
    id: String,
    team: &'static str,
    form: Option<&'static str>,
    city: Option<&'static str>,
}

fn send_events(producer: &TestProducer, topics: &Topics, phase: &str) -> Vec<Sent> {
    let mut sent = Vec::new();
    for team in ["acme", "globex"] {
        for form in FORMS {
            for city in CITIES {
                for content_type in [ContentType::Json, ContentType::Avro] {
                    let id = format!("{phase}:{team}:{form:?}:{city:?}:{content_type:?}");
                    producer.send(&topics.core, &response(team, &id, form, city, content_type));
                    sent.push(Sent { id, team, form, city });
                }
            }
        }
    }
    producer.flush();
    sent
}

/// The test's own statement of which installations an event reaches: `(plugin, installation)` pairs.
type Expected = fn(&Sent) -> BTreeSet<(String, String)>;

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(plugin, installation)| ((*plugin).to_owned(), (*installation).to_owned()))
        .collect()
}

/// acme: sheets `default` for f-a, sheets `forms-bc` for f-b and f-c, sheets `all` disabled, sms
/// `nairobi` filtered by city, sms `unsorted` filtered on attributes alone (form f-z; an event
/// without `ce_subject` reads as missing), sms
/// `broken` erroring on every event; globex: sms `default` (a v1 record).
fn before(event: &Sent) -> BTreeSet<(String, String)> {
    let mut out = Vec::new();
    if event.team == "globex" {
        out.push(("sms", "default"));
    } else {
        match event.form {
            Some("f-a") => out.push(("sheets", "default")),
            Some("f-b") => out.push(("sheets", "forms-bc")),
            _ => {}
        }
        if event.city == Some("nairobi") {
            out.push(("sms", "nairobi"));
        }
        if event.form == Some("f-z") {
            out.push(("sms", "unsorted"));
        }
    }
    pairs(&out)
}

/// After the live changes: `forms-bc` tombstoned, `all` enabled, `nairobi` now filtering for Mombasa.
fn after(event: &Sent) -> BTreeSet<(String, String)> {
    let mut out = Vec::new();
    if event.team == "globex" {
        out.push(("sms", "default"));
    } else {
        out.push(("sheets", "all"));
        if event.form == Some("f-a") {
            out.push(("sheets", "default"));
        }
        if event.city == Some("mombasa") {
            out.push(("sms", "nairobi"));
        }
        if event.form == Some("f-z") {
            out.push(("sms", "unsorted"));
        }
    }
    pairs(&out)
}

/// (event id -> the (plugin, installation) copies it reached, duplicates kept), checking each copy's
/// headers: `switchyard_installation` last and only for a named installation.
fn delivered(topics: &Topics) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for plugin in ["sheets", "sms"] {
        for record in read_to_end(&topics.plugin(plugin)) {
            let names: Vec<&str> = record.headers.iter().map(|(name, _)| name.as_str()).collect();
            let installation = match names.last() {
                Some(&"switchyard_installation") => {
                    let name = record.header("switchyard_installation").expect("a value");
                    assert_ne!(name, "default", "the default installation is never named");
                    name
                }
                _ => {
                    assert!(!names.contains(&"switchyard_installation"), "{names:?}");
                    assert_eq!(names.last(), Some(&"switchyard_source"));
                    "default".to_owned()
                }
            };
            out.entry(record.header("ce_id").expect("ce_id"))
                .or_default()
                .push((plugin.to_owned(), installation));
        }
    }
    out
}

fn check(got: &BTreeMap<String, Vec<(String, String)>>, events: &[Sent], expected: Expected) {
    for event in events {
        let copies = got.get(&event.id).cloned().unwrap_or_default();
        let unique: BTreeSet<_> = copies.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            copies.len(),
            "event {} copied twice: {copies:?}",
            event.id
        );
        assert_eq!(unique, expected(event), "event {}", event.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installations_form_ids_and_filters_route_one_copy_each_with_live_changes() {
    let topics = Topics::unique();
    topics.create(3, &["sheets", "sms"]).await;
    let producer = TestProducer::new();
    let mut control_records = 0u64;
    let mut send = |record: Outgoing| {
        producer.send(&topics.enablements, &record);
        control_records += 1;
    };
    producer.send(&topics.plugins, &manifest("sheets", &["response.submitted"]));
    producer.send(&topics.plugins, &manifest("sms", &["response.submitted"]));
    send(installation(
        "acme",
        "sheets",
        "default",
        true,
        serde_json::json!({"form_ids": ["f-a"]}),
    ));
    send(installation(
        "acme",
        "sheets",
        "forms-bc",
        true,
        serde_json::json!({"form_ids": ["f-b", "f-c"]}),
    ));
    send(installation(
        "acme",
        "sheets",
        "all",
        false,
        serde_json::json!({}),
    ));
    send(installation(
        "acme",
        "sms",
        "nairobi",
        true,
        serde_json::json!({"filter": NAIROBI}),
    ));
    send(installation(
        "acme",
        "sms",
        "unsorted",
        true,
        serde_json::json!({"filter": r#"subject == "f-z" && type == "response.submitted""#}),
    ));
    // A type error on every event: counted, routes nothing, stops nothing.
    send(installation(
        "acme",
        "sms",
        "broken",
        true,
        serde_json::json!({"filter": "data.response.id + 1 > 0"}),
    ));
    // Written around the registry: it does not compile, so the router refuses it (fails closed).
    send(installation(
        "acme",
        "sms",
        "typo",
        true,
        serde_json::json!({"filter": "data.response.("}),
    ));
    send(installation(
        "globex",
        "sms",
        "default",
        true,
        serde_json::json!({}),
    ));
    producer.flush();

    let router = InProcessRouter::start(&topics, &[]);
    router.admin.wait_ready().await;
    let phase1 = send_events(&producer, &topics, "p1");
    router.admin.wait_outcomes(phase1.len() as u64).await;

    // Live changes while events flow.
    send(tombstone("acme/sheets/forms-bc"));
    let mid = send_events(&producer, &topics, "mid");
    send(installation("acme", "sheets", "all", true, serde_json::json!({})));
    send(installation(
        "acme",
        "sms",
        "nairobi",
        true,
        serde_json::json!({"filter": MOMBASA}),
    ));
    producer.flush();
    wait_for(
        "control records read",
        std::time::Duration::from_secs(30),
        || async {
            let read = router
                .admin
                .metric(r#"switchyard_router_control_records_total{result="applied",topic="enablements"}"#)
                .await
                + router
                    .admin
                    .metric(
                        r#"switchyard_router_control_records_total{result="invalid",topic="enablements"}"#,
                    )
                    .await;
            (read >= control_records as f64).then_some(())
        },
    )
    .await;
    let phase2 = send_events(&producer, &topics, "p2");
    let total = phase1.len() + mid.len() + phase2.len();
    let (routed, unrouted, dead_lettered) = router.admin.wait_outcomes(total as u64).await;

    let got = delivered(&topics);
    check(&got, &phase1, before);
    check(&got, &phase2, after);
    for event in &mid {
        let copies = got.get(&event.id).cloned().unwrap_or_default();
        let unique: BTreeSet<_> = copies.iter().cloned().collect();
        assert_eq!(unique.len(), copies.len(), "event {} copied twice", event.id);
        let allowed: BTreeSet<_> = before(event).into_iter().chain(after(event)).collect();
        assert!(unique.is_subset(&allowed), "event {}: {unique:?}", event.id);
    }
    assert!(read_to_end(&topics.dead_letter).is_empty());
    assert_eq!(dead_lettered, 0);
    assert_eq!(routed, got.len() as u64);
    assert_eq!(routed + unrouted, total as u64);

    // Every acme event met the broken filter: each an error, none a crash or a dead letter.
    let acme_events = [&phase1, &mid, &phase2]
        .iter()
        .flat_map(|events| events.iter())
        .filter(|event| event.team == "acme")
        .count() as f64;
    let metric = |result: &'static str| {
        let admin = &router.admin;
        async move {
            admin
                .metric(&format!(
                    r#"switchyard_router_filter_evaluations_total{{result="{result}"}}"#
                ))
                .await
        }
    };
    assert_eq!(metric("error").await, acme_events);
    assert!(metric("missing").await > 0.0, "skipped cities read as missing");
    assert!(metric("match").await > 0.0 && metric("no_match").await > 0.0);
    assert_eq!(
        router
            .admin
            .metric(r#"switchyard_router_control_records_total{result="invalid",topic="enablements"}"#)
            .await,
        1.0,
        "the filter that does not compile"
    );
    router.stop().await.expect("clean stop");
}
