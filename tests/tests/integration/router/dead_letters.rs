//! Every dead-letter reason code, with the exact headers, among valid events that keep flowing.

use std::collections::BTreeMap;

use switchyard_schemas::ContentType;
use switchyard_schemas::dead_letter::Reason;
use switchyard_tests::broker::{
    Incoming, Outgoing, TestProducer, create_topics, read_to_end, set_topic_config,
};
use switchyard_tests::records::{core_event, enablement, header, manifest};
use switchyard_tests::routers::{InProcessRouter, Topics};

/// A valid event of `acme`, then mutated.
fn event(id: &str, content_type: ContentType, mutate: impl FnOnce(&mut Outgoing)) -> Outgoing {
    let mut record = core_event("acme", "response.submitted", id, content_type);
    mutate(&mut record);
    record
}

fn set_header(record: &mut Outgoing, name: &str, value: &str) {
    record.headers.retain(|(k, _)| k != name);
    record.headers.push(header(name, value));
}

fn remove_header(record: &mut Outgoing, name: &str) {
    record.headers.retain(|(k, _)| k != name);
}

/// The cases: (ce_id, expected reason, expected plugin header, the record).
fn cases() -> Vec<(String, Reason, Option<&'static str>, Outgoing)> {
    let json = ContentType::Json;
    let mut cases = vec![
        (
            "missing-key",
            Reason::MissingKey,
            None,
            event("missing-key", json, |r| r.key = None),
        ),
        (
            "invalid-key",
            Reason::InvalidKey,
            None,
            event("invalid-key", json, |r| r.key = Some(b"acme/eu".to_vec())),
        ),
        (
            "missing-header",
            Reason::MissingHeader,
            None,
            event("missing-header", json, |r| remove_header(r, "ce_source")),
        ),
        (
            "invalid-header",
            Reason::InvalidHeader,
            None,
            event("invalid-header", json, |r| set_header(r, "ce_specversion", "0.3")),
        ),
        (
            "teamid-mismatch",
            Reason::TeamidMismatch,
            None,
            event("teamid-mismatch", json, |r| set_header(r, "ce_teamid", "globex")),
        ),
        (
            "unsupported-content-type",
            Reason::UnsupportedContentType,
            None,
            event("unsupported-content-type", json, |r| {
                set_header(r, "content-type", "text/csv")
            }),
        ),
        (
            "unknown-schema",
            Reason::UnknownSchema,
            None,
            event("unknown-schema", ContentType::Avro, |r| {
                r.value.as_mut().unwrap()[4] ^= 0x5a
            }),
        ),
        (
            "invalid-payload",
            Reason::InvalidPayload,
            None,
            event("invalid-payload", json, |r| {
                r.value = Some(br#"{"response": {"id": 7}}"#.to_vec())
            }),
        ),
    ]
    .into_iter()
    .map(|(id, reason, plugin, record)| (id.to_owned(), reason, plugin, record))
    .collect::<Vec<_>>();
    // Routed to ghost (no topic) and to tiny (its topic takes at most 1 KiB): those copies are dead letters.
    let mut big = core_event("initech", "x.large", "plugin-copies", json);
    big.value = Some(format!(r#"{{"blob":"{}"}}"#, "x".repeat(4096)).into_bytes());
    cases.push((
        "plugin-copies".to_owned(),
        Reason::PluginTopicMissing,
        Some("ghost"),
        big,
    ));
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reason_code_with_its_headers() {
    let topics = Topics::unique();
    topics.create(2, &["sheets"]).await;
    create_topics(&[(&topics.plugin("tiny"), 1, false)]).await;
    // The plugin topic refuses records larger than 1 KiB.
    set_topic_config(&topics.plugin("tiny"), &[("max.message.bytes", "1024")]).await;
    let producer = TestProducer::new();
    producer.send(
        &topics.plugins,
        &manifest("sheets", &["response.submitted", "x.large"]),
    );
    producer.send(&topics.plugins, &manifest("ghost", &["x.large"]));
    producer.send(&topics.plugins, &manifest("tiny", &["x.large"]));
    for plugin in ["sheets", "ghost", "tiny"] {
        producer.send(&topics.enablements, &enablement("acme", plugin, true, None));
        producer.send(&topics.enablements, &enablement("initech", plugin, true, None));
    }
    producer.flush();
    let router = InProcessRouter::start(&topics, &[]);
    router.admin.wait_ready().await;

    let cases = cases();
    for (n, (_, _, _, record)) in cases.iter().enumerate() {
        producer.send(
            &topics.core,
            &core_event(
                "acme",
                "response.submitted",
                &format!("valid-before-{n}"),
                ContentType::Avro,
            ),
        );
        producer.send(&topics.core, record);
    }
    producer.send(
        &topics.core,
        &core_event("acme", "response.submitted", "valid-last", ContentType::Json),
    );
    producer.flush();
    let total = cases.len() as u64 * 2 + 1;
    // 8 whole-event rejections; the large event reaches sheets but neither ghost nor tiny: routed.
    assert_eq!(
        router.admin.wait_outcomes(total).await,
        (cases.len() as u64 + 2, 0, cases.len() as u64 - 1)
    );

    let dead: BTreeMap<(String, Option<String>), Incoming> = read_to_end(&topics.dead_letter)
        .into_iter()
        .map(|r| {
            (
                (
                    r.header("ce_id").unwrap_or_else(|| "?".into()),
                    r.header("switchyard_plugin"),
                ),
                r,
            )
        })
        .collect();
    assert_eq!(
        dead.len(),
        cases.len() + 1,
        "one dead letter per case, two for the large event: {:?}",
        dead.keys()
    );
    for (id, reason, plugin, record) in &cases {
        let letter = &dead[&(id.clone(), plugin.map(String::from))];
        assert_dead_letter(letter, record, *reason, *plugin, &topics.core);
    }
    let large = &cases.last().unwrap().3;
    let tiny = &dead[&("plugin-copies".to_owned(), Some("tiny".to_owned()))];
    assert_dead_letter(
        tiny,
        large,
        Reason::PluginTopicRejected,
        Some("tiny"),
        &topics.core,
    );
    assert!(
        tiny.header("switchyard_error_detail")
            .unwrap()
            .contains("refused"),
        "{:?}",
        tiny.header_map()
    );

    let sheets: Vec<String> = read_to_end(&topics.plugin("sheets"))
        .iter()
        .map(|r| r.header("ce_id").unwrap())
        .collect();
    assert_eq!(sheets.len(), cases.len() + 2, "{sheets:?}");
    assert!(sheets.contains(&"valid-last".to_owned()) && sheets.contains(&"plugin-copies".to_owned()));
    let reasons = |code: &'static str| {
        let admin = router.admin.clone();
        async move {
            admin
                .metric(&format!(
                    "switchyard_router_dead_letters_total{{reason=\"{code}\"}}"
                ))
                .await
        }
    };
    for reason in Reason::ALL {
        assert_eq!(
            reasons(reason.code()).await,
            1.0,
            "one dead letter counted for {reason}"
        );
    }
    router.stop().await.expect("clean stop");
}

fn assert_dead_letter(letter: &Incoming, input: &Outgoing, reason: Reason, plugin: Option<&str>, core: &str) {
    assert_eq!(letter.key, input.key, "key unchanged");
    assert_eq!(letter.value, input.value, "value unchanged");
    let names: Vec<&str> = letter.headers.iter().map(|(k, _)| k.as_str()).collect();
    let mut expected: Vec<&str> = input.headers.iter().map(|(k, _)| k.as_str()).collect();
    expected.extend(["switchyard_source", "switchyard_error", "switchyard_error_detail"]);
    if plugin.is_some() {
        expected.push("switchyard_plugin");
    }
    assert_eq!(names, expected, "input headers unchanged and in order, then ours");
    for (name, value) in &input.headers {
        assert_eq!(
            letter.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            Some(value)
        );
    }
    assert_eq!(letter.header("switchyard_error").as_deref(), Some(reason.code()));
    assert!(!letter.header("switchyard_error_detail").unwrap().is_empty());
    assert_eq!(letter.header("switchyard_plugin").as_deref(), plugin);
    let source = letter.header("switchyard_source").unwrap();
    let parts: Vec<&str> = source.rsplitn(3, '/').collect();
    assert_eq!(parts.len(), 3, "{source}");
    assert_eq!(parts[2], core);
    assert!(
        parts[1].parse::<i32>().is_ok() && parts[0].parse::<i64>().is_ok(),
        "{source}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_the_dead_letter_topic_refuses_is_kept_without_its_value() {
    let topics = Topics::unique();
    topics.create(1, &[]).await;
    // The dead-letter topic refuses records larger than 2 KiB.
    set_topic_config(&topics.dead_letter, &[("max.message.bytes", "2048")]).await;
    let producer = TestProducer::new();
    let router = InProcessRouter::start(&topics, &[]);
    router.admin.wait_ready().await;
    let mut record = core_event(
        "acme",
        "response.submitted",
        "huge-and-invalid",
        ContentType::Json,
    );
    record.value = Some(format!(r#"{{"response": "{}"}}"#, "y".repeat(8192)).into_bytes());
    producer.send(&topics.core, &record);
    producer.send(
        &topics.core,
        &core_event("acme", "response.submitted", "fine", ContentType::Json),
    );
    producer.flush();
    assert_eq!(router.admin.wait_outcomes(2).await, (0, 1, 1));
    let dead = read_to_end(&topics.dead_letter);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].value, None,
        "the value stays in the input topic at switchyard_source"
    );
    assert_eq!(dead[0].key, record.key);
    assert_eq!(
        dead[0].header("switchyard_error").as_deref(),
        Some("invalid_payload")
    );
    assert_eq!(
        dead[0].header("switchyard_value_dropped").as_deref(),
        Some("true")
    );
    // At least the one abort that found the refusal; librdkafka may add one to bump the producer epoch.
    let aborts = router
        .admin
        .metric("switchyard_router_transactions_total{result=\"aborted\"}")
        .await;
    assert!(aborts >= 1.0, "{aborts}");
    router.stop().await.expect("clean stop");
}
