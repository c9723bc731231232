//! Per-team order in plugin topics, across input partitions and interleaved teams.

use std::collections::BTreeMap;

use switchyard_schemas::ContentType;
use switchyard_tests::broker::{TestProducer, read_to_end};
use switchyard_tests::records::{core_event, enablement, manifest};
use switchyard_tests::routers::{InProcessRouter, Topics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_team_keeps_its_order_in_every_plugin_topic() {
    const TEAMS: usize = 24;
    const PER_TEAM: usize = 150;
    let topics = Topics::unique();
    topics.create(6, &["sheets", "sms"]).await;
    let producer = TestProducer::new();
    producer.send(&topics.plugins, &manifest("sheets", &["response.submitted"]));
    producer.send(&topics.plugins, &manifest("sms", &["response.submitted"]));
    for team in 0..TEAMS {
        producer.send(
            &topics.enablements,
            &enablement(&format!("team-{team:02}"), "sheets", true, None),
        );
        if team % 2 == 0 {
            producer.send(
                &topics.enablements,
                &enablement(&format!("team-{team:02}"), "sms", true, None),
            );
        }
    }
    producer.flush();
    // A short commit interval and small transactions, so that the sequence spans many of them.
    let router = InProcessRouter::start(
        &topics,
        &[
            ("DELIVERY__COMMIT_MAX_EVENTS", "97"),
            ("DELIVERY__COMMIT_INTERVAL_MS", "20"),
        ],
    );
    router.admin.wait_ready().await;
    for n in 0..PER_TEAM {
        for team in 0..TEAMS {
            let content_type = if (n + team) % 3 == 0 {
                ContentType::Json
            } else {
                ContentType::Avro
            };
            producer.send(
                &topics.core,
                &core_event(
                    &format!("team-{team:02}"),
                    "response.submitted",
                    &format!("{n:05}"),
                    content_type,
                ),
            );
        }
    }
    producer.flush();
    router.admin.wait_outcomes((TEAMS * PER_TEAM) as u64).await;

    for (plugin, teams) in [("sheets", TEAMS), ("sms", TEAMS / 2)] {
        let mut by_team: BTreeMap<String, Vec<(i32, String)>> = BTreeMap::new();
        for record in read_to_end(&topics.plugin(plugin)) {
            let team = String::from_utf8(record.key.clone().unwrap()).unwrap();
            by_team
                .entry(team)
                .or_default()
                .push((record.partition, record.header("ce_id").unwrap()));
        }
        assert_eq!(by_team.len(), teams, "{plugin}");
        let expected: Vec<String> = (0..PER_TEAM).map(|n| format!("{n:05}")).collect();
        for (team, records) in by_team {
            let partitions: std::collections::BTreeSet<i32> = records.iter().map(|(p, _)| *p).collect();
            assert_eq!(partitions.len(), 1, "{plugin}/{team}: one key, one partition");
            let ids: Vec<String> = records.into_iter().map(|(_, id)| id).collect();
            assert_eq!(ids, expected, "{plugin}/{team}: every event once, in order");
        }
    }
    let commits = router
        .admin
        .metric(r#"switchyard_router_transactions_total{result="committed"}"#)
        .await;
    assert!(
        commits >= 10.0,
        "the sequence spans many transactions ({commits})"
    );
    router.stop().await.expect("clean stop");
}
