//! The at-least-once delivery mode: same routing, offsets stored after delivery in partition order.

use switchyard_schemas::ContentType;
use switchyard_tests::broker::{TestProducer, group_caught_up, read_to_end};
use switchyard_tests::records::{core_event, enablement, manifest};
use switchyard_tests::routers::{InProcessRouter, Topics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_routes_everything_and_resumes_where_it_stopped() {
    let topics = Topics::unique();
    topics.create(3, &["sheets"]).await;
    let producer = TestProducer::new();
    producer.send(&topics.plugins, &manifest("sheets", &["response.submitted"]));
    producer.send(&topics.enablements, &enablement("acme", "sheets", true, None));
    producer.flush();
    let mode = [("DELIVERY__MODE", "at_least_once")];
    let router = InProcessRouter::start(&topics, &mode);
    router.admin.wait_ready().await;
    let group = router.group.clone();
    for n in 0..300 {
        producer.send(
            &topics.core,
            &core_event(
                "acme",
                "response.submitted",
                &format!("a{n:03}"),
                ContentType::Avro,
            ),
        );
        producer.send(
            &topics.core,
            &core_event(
                "nobody",
                "response.submitted",
                &format!("u{n:03}"),
                ContentType::Avro,
            ),
        );
    }
    producer.send(
        &topics.core,
        &core_event("acme", "response.submitted", "bad", ContentType::Json).with_value(b"[]"),
    );
    producer.flush();
    assert_eq!(router.admin.wait_outcomes(601).await, (300, 300, 1));
    router.stop().await.expect("clean stop commits stored offsets");
    assert!(
        group_caught_up(&group, &topics.core),
        "offsets committed at shutdown"
    );

    // A second run in the same group starts after what the first stored: no replays in a clean restart.
    let again = InProcessRouter::start_in_group(&topics, &group, &mode);
    again.admin.wait_ready().await;
    producer.send(
        &topics.core,
        &core_event("acme", "response.submitted", "after-restart", ContentType::Json),
    );
    producer.flush();
    assert_eq!(again.admin.wait_outcomes(1).await, (1, 0, 0));
    let ids: Vec<String> = read_to_end(&topics.plugin("sheets"))
        .iter()
        .map(|r| r.header("ce_id").unwrap())
        .collect();
    assert_eq!(ids.len(), 301);
    assert_eq!(ids.iter().filter(|id| *id == "after-restart").count(), 1);
    assert_eq!(read_to_end(&topics.dead_letter).len(), 1);
    again.stop().await.expect("clean stop");
}
