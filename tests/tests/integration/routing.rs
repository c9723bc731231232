//! The routing rule, end to end: control records in, core events in, plugin topics out.

use std::collections::BTreeMap;

use switchyard_schemas::ContentType;
use switchyard_tests::broker::{TestProducer, read_to_end};
use switchyard_tests::records::{core_event, enablement, manifest};
use switchyard_tests::routers::{InProcessRouter, Topics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_an_event_to_the_enabled_plugin_with_bytes_and_headers_unchanged() {
    let topics = Topics::unique();
    topics.create(3, &["sheets", "sms"]).await;
    let producer = TestProducer::new();
    producer.send(&topics.plugins, &manifest("sheets", &["response.submitted"]));
    producer.send(&topics.plugins, &manifest("sms", &["response.submitted"]));
    producer.send(&topics.enablements, &enablement("acme", "sheets", true, None));
    producer.flush();

    let router = InProcessRouter::start(&topics, &[]);
    router.admin.wait_ready().await;
    let event = core_event("acme", "response.submitted", "evt-1", ContentType::Avro);
    producer.send(&topics.core, &event);
    producer.flush();
    assert_eq!(router.admin.wait_outcomes(1).await, (1, 0, 0));

    let sheets = read_to_end(&topics.plugin("sheets"));
    assert_eq!(sheets.len(), 1);
    assert_eq!(sheets[0].key, event.key);
    assert_eq!(sheets[0].value, event.value);
    let mut expected: BTreeMap<String, Option<String>> = event
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
            )
        })
        .collect();
    let source = sheets[0].header("switchyard_source").expect("switchyard_source");
    assert!(source.starts_with(&format!("{}/", topics.core)), "{source}");
    expected.insert("switchyard_source".into(), Some(source));
    assert_eq!(sheets[0].header_map(), expected);
    // headers keep their order, the source is appended
    let names: Vec<&str> = sheets[0].headers.iter().map(|(k, _)| k.as_str()).collect();
    let mut expected_names: Vec<&str> = event.headers.iter().map(|(k, _)| k.as_str()).collect();
    expected_names.push("switchyard_source");
    assert_eq!(names, expected_names);
    assert!(
        read_to_end(&topics.plugin("sms")).is_empty(),
        "sms is not enabled for acme"
    );
    assert!(read_to_end(&topics.dead_letter).is_empty());
    router.stop().await.expect("clean stop");
}
