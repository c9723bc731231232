//! Readiness waits for the control topics; a missing plugin topic never blocks the others.

use std::time::Duration;

use switchyard_schemas::ContentType;
use switchyard_tests::broker::{TestProducer, create_topics, read_to_end};
use switchyard_tests::records::{core_event, enablement, manifest};
use switchyard_tests::routers::{InProcessRouter, Topics};
use switchyard_tests::wait::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_and_not_consuming_until_the_control_topics_are_caught_up() {
    let topics = Topics::unique();
    // Everything but the enablements topic: the router must wait for it.
    create_topics(&[
        (&topics.core, 2, false),
        (&topics.dead_letter, 1, false),
        (&topics.plugins, 1, true),
    ])
    .await;
    create_topics(&[(&topics.plugin("sheets"), 2, false)]).await;
    let producer = TestProducer::new();
    producer.send(&topics.plugins, &manifest("sheets", &["response.submitted"]));
    // An event waiting before the router starts: it must be routed with the full table, not before it.
    producer.send(
        &topics.core,
        &core_event(
            "late-team",
            "response.submitted",
            "early-event",
            ContentType::Avro,
        ),
    );
    producer.flush();

    let router = InProcessRouter::start(&topics, &[]);
    let (status, body) = wait_for("the admin server", Duration::from_secs(30), || async {
        router.admin.get("/readyz").await
    })
    .await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: catching up on the control topics\n")
    );
    assert_eq!(
        router.admin.outcomes().await,
        (0, 0, 0),
        "nothing consumed while not ready"
    );

    create_topics(&[(&topics.enablements, 3, true)]).await;
    for n in 0..5000 {
        producer.send(
            &topics.enablements,
            &enablement(&format!("team-{n:05}"), "sheets", true, None),
        );
    }
    producer.send(
        &topics.enablements,
        &enablement("late-team", "sheets", true, None),
    );
    producer.flush();
    router.admin.wait_ready().await;
    assert_eq!(
        router.admin.metric("switchyard_router_enablements").await,
        5001.0,
        "ready only with the whole table"
    );
    assert_eq!(router.admin.wait_outcomes(1).await, (1, 0, 0));
    let routed = read_to_end(&topics.plugin("sheets"));
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].header("ce_id").as_deref(), Some("early-event"));
    router.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_plugin_topic_does_not_block_the_others() {
    let topics = Topics::unique();
    topics.create(3, &["sheets"]).await; // ghost's topic is not created
    let producer = TestProducer::new();
    for plugin in ["sheets", "ghost"] {
        producer.send(&topics.plugins, &manifest(plugin, &["response.submitted"]));
        producer.send(&topics.enablements, &enablement("acme", plugin, true, None));
    }
    producer.flush();
    let router = InProcessRouter::start(&topics, &[]);
    router.admin.wait_ready().await;
    for n in 0..200 {
        producer.send(
            &topics.core,
            &core_event(
                "acme",
                "response.submitted",
                &format!("e{n:03}"),
                ContentType::Avro,
            ),
        );
    }
    producer.flush();
    assert_eq!(
        router.admin.wait_outcomes(200).await,
        (200, 0, 0),
        "routed to sheets, so routed"
    );
    assert_eq!(read_to_end(&topics.plugin("sheets")).len(), 200);
    let dead = read_to_end(&topics.dead_letter);
    assert_eq!(dead.len(), 200);
    assert!(dead.iter().all(
        |r| r.header("switchyard_error").as_deref() == Some("plugin_topic_missing")
            && r.header("switchyard_plugin").as_deref() == Some("ghost")
    ));
    assert_eq!(
        router
            .admin
            .metric(r#"switchyard_router_transactions_total{result="aborted"}"#)
            .await,
        0.0,
        "no stall, no abort"
    );

    // Once the topic exists, the router notices within about a second.
    create_topics(&[(&topics.plugin("ghost"), 1, false)]).await;
    let mut n = 0;
    wait_for("ghost's topic to receive events", Duration::from_secs(30), || {
        n += 1;
        producer.send(
            &topics.core,
            &core_event(
                "acme",
                "response.submitted",
                &format!("after-{n}"),
                ContentType::Json,
            ),
        );
        producer.flush();
        let topic = topics.plugin("ghost");
        async move { (!read_to_end(&topic).is_empty()).then_some(()) }
    })
    .await;
    router.stop().await.expect("clean stop");
}
