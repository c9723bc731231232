//! A plugin's topic deleted and re-created again and again while events flow (finding 2 of the adversarial
//! review: the router exited on the transactional errors that followed `UNKNOWN_TOPIC_OR_PART`). The router
//! must keep running, keep the other plugin's copies exactly once and in order, and give every copy for the
//! victim plugin exactly one outcome: written to its topic, or dead-lettered.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use switchyard_schemas::ContentType;
use switchyard_tests::broker::{TestProducer, TopicSpec, delete_topics, read_to_end, try_create_topic};
use switchyard_tests::records::{core_event, enablement, manifest};
use switchyard_tests::routers::{InProcessRouter, Topics};
use switchyard_tests::wait::wait_for;

const TEAMS: usize = 6;
const EVENTS: usize = 3_000;
const DELETIONS: usize = 5;

/// Creates `topic` once the broker has finished deleting its previous incarnation.
async fn recreate(topic: &str) {
    wait_for(
        &format!("{topic} to be created again"),
        Duration::from_secs(60),
        || async { try_create_topic(TopicSpec::new(topic, 3)).await.then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_plugin_topic_under_traffic_dead_letters_its_copies_and_stops_nothing() {
    let topics = Topics::unique();
    topics.create(3, &["stable", "victim"]).await;
    let producer = TestProducer::new();
    producer.send(&topics.plugins, &manifest("stable", &["response.submitted"]));
    producer.send(&topics.plugins, &manifest("victim", &["response.submitted"]));
    for team in 0..TEAMS {
        for plugin in ["stable", "victim"] {
            producer.send(
                &topics.enablements,
                &enablement(&format!("team-{team}"), plugin, true, None),
            );
        }
    }
    producer.flush();
    // Missing topics are looked at again every 200 ms, so a re-created one is used again quickly.
    let router = InProcessRouter::start(&topics, &[("DELIVERY__MISSING_TOPIC_RECHECK_MS", "200")]);
    router.admin.wait_ready().await;

    // Events at about 200 per second, while the victim's topic comes and goes.
    let core = topics.core.clone();
    let sender = std::thread::spawn(move || {
        let producer = TestProducer::new();
        let started = Instant::now();
        for i in 0..EVENTS {
            let event = core_event(
                &format!("team-{}", i % TEAMS),
                "response.submitted",
                &format!("evt-{i:05}"),
                ContentType::Avro,
            );
            producer.send(&core, &event);
            let due = started + Duration::from_millis(5 * i as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        producer.flush();
    });
    let victim = topics.plugin("victim");
    for _ in 0..DELETIONS {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        delete_topics(&[&victim]).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        recreate(&victim).await;
        assert!(
            router.admin.ready().await,
            "the router stopped after the victim's topic was deleted"
        );
    }
    sender.join().expect("sender");

    let (routed, unrouted, dead_lettered) = router.admin.wait_outcomes(EVENTS as u64).await;
    assert_eq!(
        routed + unrouted + dead_lettered,
        EVENTS as u64,
        "one outcome per event"
    );
    assert_eq!(unrouted, 0);

    // The stable plugin got every event exactly once, in per-team order.
    let stable = read_to_end(&topics.plugin("stable"));
    let ids: Vec<String> = stable.iter().map(|r| r.header("ce_id").expect("ce_id")).collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        EVENTS,
        "stable copies, unique"
    );
    assert_eq!(ids.len(), EVENTS, "stable copies, no duplicates");
    let mut per_team: BTreeMap<Vec<u8>, Vec<&String>> = BTreeMap::new();
    for (record, id) in stable.iter().zip(&ids) {
        per_team
            .entry(record.key.clone().unwrap_or_default())
            .or_default()
            .push(id);
    }
    for (team, ids) in per_team {
        assert!(ids.is_sorted(), "order of {}", String::from_utf8_lossy(&team));
    }

    // Every victim copy was written (then possibly deleted with its topic) or dead-lettered, once.
    let written = router
        .admin
        .metric("switchyard_router_plugin_records_total{plugin=\"victim\"}")
        .await as usize;
    let dead_letters = read_to_end(&topics.dead_letter);
    let dead_lettered_ids: BTreeSet<String> = dead_letters
        .iter()
        .map(|r| {
            assert_eq!(
                r.header("switchyard_plugin").as_deref(),
                Some("victim"),
                "only victim copies"
            );
            r.header("ce_id").expect("ce_id")
        })
        .collect();
    assert_eq!(
        dead_lettered_ids.len(),
        dead_letters.len(),
        "no dead letter twice"
    );
    assert_eq!(
        written + dead_letters.len(),
        EVENTS,
        "victim copies: {written} written, {} dead-lettered",
        dead_letters.len()
    );
    assert!(router.admin.ready().await);
    router.stop().await.expect("the router stops cleanly");
}
