//! Several replicas share the input partitions; a rebalance commits before it revokes.

use std::collections::BTreeMap;

use switchyard_schemas::ContentType;
use switchyard_tests::broker::{TestProducer, group_caught_up, read_to_end, unique};
use switchyard_tests::records::{core_event, enablement, manifest};
use switchyard_tests::routers::{InProcessRouter, Topics};
use switchyard_tests::wait::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_joining_and_leaving_route_every_event_exactly_once() {
    let topics = Topics::unique();
    topics.create(6, &["sheets"]).await;
    let producer = TestProducer::new();
    producer.send(&topics.plugins, &manifest("sheets", &["response.submitted"]));
    for team in 0..12 {
        producer.send(
            &topics.enablements,
            &enablement(&format!("team-{team}"), "sheets", true, None),
        );
    }
    producer.flush();
    let group = unique("router");
    let first = InProcessRouter::start_in_group(&topics, &group, &[]);
    first.admin.wait_ready().await;
    let send = |from: usize, to: usize| {
        for n in from..to {
            producer.send(
                &topics.core,
                &core_event(
                    &format!("team-{}", n % 12),
                    "response.submitted",
                    &format!("{n:05}"),
                    ContentType::Avro,
                ),
            );
        }
        producer.flush();
    };
    send(0, 1500);
    let second = InProcessRouter::start_in_group(&topics, &group, &[]);
    send(1500, 3000);
    second.admin.wait_ready().await;
    wait_for(
        "the second replica to own partitions",
        std::time::Duration::from_secs(60),
        || async { (second.admin.metric("switchyard_router_assigned_partitions").await > 0.0).then_some(()) },
    )
    .await;
    send(3000, 4500);
    first.stop().await.expect("first replica stops cleanly");
    send(4500, 6000);
    wait_for(
        "the group to process everything",
        std::time::Duration::from_secs(90),
        || {
            let (group, topic) = (group.clone(), topics.core.clone());
            async move { group_caught_up(&group, &topic).then_some(()) }
        },
    )
    .await;

    let mut by_team: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for record in read_to_end(&topics.plugin("sheets")) {
        let id: u32 = record.header("ce_id").unwrap().parse().unwrap();
        by_team
            .entry(String::from_utf8(record.key.unwrap()).unwrap())
            .or_default()
            .push(id);
    }
    let total: usize = by_team.values().map(Vec::len).sum();
    assert_eq!(total, 6000, "every event exactly once");
    for (team, ids) in by_team {
        let t: u32 = team.trim_start_matches("team-").parse().unwrap();
        let expected: Vec<u32> = (0..6000).filter(|n| n % 12 == t).collect();
        assert_eq!(ids, expected, "{team} in order, no gaps or duplicates");
    }
    second.stop().await.expect("second replica stops cleanly");
}
