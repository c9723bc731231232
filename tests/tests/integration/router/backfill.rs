//! Backfills (contract section 10.5) through the real `switchyard-router` binary: 20,000 historical
//! events of 20 teams, then 3 teams enable a plugin with a backfill while live events keep flowing, and the
//! router is SIGKILLed three times during the backfill. Every event of those 3 teams (history and live)
//! reaches the plugin's topic exactly once, in per-team order, history (labelled) before live, and the
//! plugin (a worker of the plugin runtime) once each, in that order; no other team's; and live routing of
//! another plugin is exactly once throughout. A cancelled backfill writes no
//! history after its cut and loses no live event.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use switchyard_plugin_runtime::plugin::Outcome;
use switchyard_schemas::ContentType;
use switchyard_schemas::backfill::{HEADER, Progress, State};
use switchyard_schemas::control::Ordering;
use switchyard_tests::binaries::{free_address, log_path};
use switchyard_tests::broker::{TestProducer, group_caught_up, read_to_end, unique};
use switchyard_tests::records::{core_event, installation, manifest};
use switchyard_tests::routers::{InProcessRouter, RouterProcess, Topics};
use switchyard_tests::wait::wait_for;
use switchyard_tests::workers::{InProcessWorker, ScriptedPlugin, WorkerTopics};

const TEAMS: usize = 20;
const HISTORY: usize = 20_000;
const LIVE: usize = 3_000;
/// The teams that enable `archive` with a backfill.
const BACKFILLED: [usize; 3] = [0, 1, 2];

fn team(n: usize) -> String {
    format!("team-{:02}", n % TEAMS)
}

fn event_type(n: usize) -> &'static str {
    if n.is_multiple_of(10) {
        "form.created"
    } else {
        "response.submitted"
    }
}

fn send_events(producer: &TestProducer, core: &str, range: std::ops::Range<usize>) {
    for n in range {
        let content_type = if n % 3 == 0 {
            ContentType::Json
        } else {
            ContentType::Avro
        };
        producer.send(
            core,
            &core_event(&team(n), event_type(n), &format!("{n:06}"), content_type),
        );
    }
}

/// The last committed progress record of each (backfill, partition).
fn progress(topic: &str) -> HashMap<String, Progress> {
    let mut last = HashMap::new();
    for record in read_to_end(topic) {
        let (Some(key), Some(value)) = (record.key, record.value) else {
            continue;
        };
        let progress = Progress::parse(&key, &value).expect("a valid progress record");
        last.insert(progress.backfill.clone(), progress);
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_then_live_exactly_once_in_order_across_three_sigkills() {
    let topics = Topics::unique();
    topics.create(4, &["sheets", "archive"]).await;
    let producer = TestProducer::new();
    producer.send(&topics.plugins, &manifest("sheets", &["response.submitted"]));
    producer.send(
        &topics.plugins,
        &manifest("archive", &["response.submitted", "form.created"]),
    );
    for t in 0..TEAMS {
        let record = installation(&team(t), "sheets", "default", true, serde_json::json!({}));
        producer.send(&topics.enablements, &record);
    }
    send_events(&producer, &topics.core, 0..HISTORY);
    producer.flush();

    let group = unique("router");
    let admin = free_address();
    let env = topics.env(&group, &unique("txn"), admin);
    // A short session, so that a restart takes the killed member's partitions over soon.
    let config = r#"
[kafka.consumer_options]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"

[log]
format = "json"
level = "info"
"#;
    let log = log_path(&group);
    // The plugin itself: a worker of the runtime that records every call.
    let archive =
        ScriptedPlugin::new("archive", |_| (Duration::ZERO, Outcome::done())).with_ordering(Ordering::Team);
    let worker = InProcessWorker::start(
        archive.clone(),
        WorkerTopics::of_router("archive", &topics).await.settings(&[]),
    );
    let mut router = RouterProcess::start(config, &env, admin, &log);
    router.admin.wait_ready().await;
    wait_for("the history to be routed", Duration::from_secs(120), || {
        let (group, core) = (group.clone(), topics.core.clone());
        async move { group_caught_up(&group, &core).then_some(()) }
    })
    .await;

    // Three teams enable archive with a backfill of everything so far, paced so that it spans the kills;
    // live events keep coming meanwhile.
    for t in BACKFILLED {
        let backfill = serde_json::json!({"backfill": {
            "id": format!("bf-{t:02}"), "since": "2020-01-01T00:00:00Z", "rate": 200
        }});
        producer.send(
            &topics.enablements,
            &installation(&team(t), "archive", "default", true, backfill),
        );
    }
    producer.flush();
    let sender = {
        let core = topics.core.clone();
        std::thread::spawn(move || {
            let producer = TestProducer::new();
            for chunk in (HISTORY..HISTORY + LIVE).step_by(30) {
                send_events(&producer, &core, chunk..(chunk + 30).min(HISTORY + LIVE));
                producer.flush();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    for kill in 1..=3 {
        wait_for(
            "backfill progress before a kill",
            Duration::from_secs(90),
            || async {
                (router
                    .admin
                    .metric(r#"switchyard_router_backfill_records_total{result="written"}"#)
                    .await
                    >= 100.0)
                    .then_some(())
            },
        )
        .await;
        router.kill();
        router = RouterProcess::start(config, &env, admin, &log);
        router.admin.wait_ready().await;
        eprintln!("kill {kill} done");
    }
    wait_for("every backfill to hand over", Duration::from_secs(120), || {
        let topic = topics.backfill_progress.clone();
        async move {
            let last = progress(&topic);
            BACKFILLED
                .iter()
                .all(|t| last.get(&format!("bf-{t:02}")).is_some_and(Progress::is_live))
                .then_some(())
        }
    })
    .await;
    sender.join().expect("sender thread");
    wait_for(
        "the router to process every event",
        Duration::from_secs(120),
        || {
            let (group, core) = (group.clone(), topics.core.clone());
            async move { group_caught_up(&group, &core).then_some(()) }
        },
    )
    .await;
    let status = router.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status}");

    // archive: every event of the three teams exactly once, in order, history labelled and first.
    let mut by_team: BTreeMap<String, Vec<(usize, Option<String>)>> = BTreeMap::new();
    for record in read_to_end(&topics.plugin("archive")) {
        let key = String::from_utf8(record.key.clone().expect("key")).expect("utf-8 key");
        let n: usize = record
            .header("ce_id")
            .expect("ce_id")
            .parse()
            .expect("numeric id");
        by_team.entry(key).or_default().push((n, record.header(HEADER)));
    }
    assert_eq!(
        by_team.keys().cloned().collect::<Vec<_>>(),
        BACKFILLED.map(team).to_vec(),
        "only the backfilled teams"
    );
    for t in BACKFILLED {
        let copies = &by_team[&team(t)];
        let ids: Vec<usize> = copies.iter().map(|(n, _)| *n).collect();
        let expected: Vec<usize> = (0..HISTORY + LIVE).filter(|n| n % TEAMS == t).collect();
        assert_eq!(ids, expected, "{}: every event once, in order", team(t));
        let labelled = copies.iter().take_while(|(_, b)| b.is_some()).count();
        assert!(
            copies[labelled..].iter().all(|(_, b)| b.is_none()),
            "{}: history first, then live",
            team(t)
        );
        assert!(
            copies[..labelled]
                .iter()
                .all(|(_, b)| b.as_deref() == Some(format!("bf-{t:02}").as_str())),
            "labelled with its backfill"
        );
        assert!(
            copies[labelled..].iter().all(|(n, _)| *n >= HISTORY),
            "{}: every historical event is labelled",
            team(t)
        );
    }
    let last = progress(&topics.backfill_progress);
    for t in BACKFILLED {
        let p = &last[&format!("bf-{t:02}")];
        assert_eq!(p.state, State::Done, "{p:?}");
        assert!(
            p.matched >= (HISTORY / TEAMS) as u64 && p.dead_lettered == 0,
            "{p:?}"
        );
    }

    // At the plugin: each event executed once, per team in order, history first.
    wait_for(
        "the plugin to execute every copy",
        Duration::from_secs(120),
        || async {
            let done = BACKFILLED
                .iter()
                .all(|&t| archive.ids_of(&team(t)).len() >= by_team[&team(t)].len());
            done.then_some(())
        },
    )
    .await;
    for t in BACKFILLED {
        let executed = archive.ids_of(&team(t));
        let copied: Vec<String> = by_team[&team(t)].iter().map(|(n, _)| format!("{n:06}")).collect();
        assert_eq!(executed, copied, "{}: executed once each, in order", team(t));
    }
    worker.stop().await.expect("the worker stops cleanly");

    // sheets, routed live throughout: every response.submitted once, in per-team order.
    let mut seen: BTreeMap<usize, u32> = BTreeMap::new();
    let mut last_by_team: HashMap<Vec<u8>, usize> = HashMap::new();
    for record in read_to_end(&topics.plugin("sheets")) {
        let n: usize = record
            .header("ce_id")
            .expect("ce_id")
            .parse()
            .expect("numeric id");
        if let Some(previous) = last_by_team.insert(record.key.clone().expect("key"), n) {
            assert!(previous < n, "sheets: {n} after {previous}");
        }
        *seen.entry(n).or_default() += 1;
    }
    let expected: Vec<usize> = (0..HISTORY + LIVE)
        .filter(|n| event_type(*n) == "response.submitted")
        .collect();
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), expected);
    assert!(seen.values().all(|&c| c == 1), "sheets: exactly once");
    assert!(read_to_end(&topics.dead_letter).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_backfill_stops_its_history_and_keeps_live_events_whole() {
    const EVENTS: usize = 3_000;
    let topics = Topics::unique();
    topics.create(2, &["archive"]).await;
    let producer = TestProducer::new();
    producer.send(
        &topics.plugins,
        &manifest("archive", &["response.submitted", "form.created"]),
    );
    // One team's history (team = n % 20 = 0 for every n here).
    let history: Vec<usize> = (0..EVENTS).map(|i| i * TEAMS).collect();
    for &n in &history {
        producer.send(
            &topics.core,
            &core_event(&team(n), event_type(n), &format!("{n:06}"), ContentType::Json),
        );
    }
    producer.flush();
    let router = InProcessRouter::start(&topics, &[]);
    router.admin.wait_ready().await;
    // History is what live routing has passed when the installation is held.
    wait_for("the history to be routed", Duration::from_secs(60), || {
        let (group, core) = (router.group.clone(), topics.core.clone());
        async move { group_caught_up(&group, &core).then_some(()) }
    })
    .await;
    let backfill = |cancel: bool| {
        serde_json::json!({"backfill": {
            "id": "bf-cancel", "since": "2020-01-01T00:00:00Z", "rate": 300, "cancel_requested": cancel
        }})
    };
    producer.send(
        &topics.enablements,
        &installation(&team(0), "archive", "default", true, backfill(false)),
    );
    producer.flush();
    wait_for("some history", Duration::from_secs(60), || async {
        (router
            .admin
            .metric(r#"switchyard_router_backfill_records_total{result="written"}"#)
            .await
            >= 300.0)
            .then_some(())
    })
    .await;
    producer.send(
        &topics.enablements,
        &installation(&team(0), "archive", "default", true, backfill(true)),
    );
    // Live events after the cancellation reach the installation once each, as any live event.
    let live: Vec<usize> = (EVENTS..EVENTS + 50).map(|i| i * TEAMS).collect();
    for &n in &live {
        producer.send(
            &topics.core,
            &core_event(&team(n), event_type(n), &format!("{n:06}"), ContentType::Json),
        );
    }
    producer.flush();
    wait_for(
        "the cancelled backfill to hand over",
        Duration::from_secs(60),
        || {
            let topic = topics.backfill_progress.clone();
            async move { progress(&topic).remove("bf-cancel").filter(Progress::is_live) }
        },
    )
    .await;
    wait_for("every live event", Duration::from_secs(60), || {
        let (group, core) = (router.group.clone(), topics.core.clone());
        async move { group_caught_up(&group, &core).then_some(()) }
    })
    .await;
    router.stop().await.expect("a clean stop");

    let last = progress(&topics.backfill_progress)
        .remove("bf-cancel")
        .expect("progress");
    assert_eq!(last.state, State::Cancelled, "{last:?}");
    let stopped_at = last.stopped_at.expect("where history stopped") as usize;
    assert!(stopped_at < EVENTS, "cancelled mid-way: {last:?}");
    let copies: Vec<(usize, bool)> = read_to_end(&topics.plugin("archive"))
        .iter()
        .map(|r| {
            let n: usize = r.header("ce_id").expect("ce_id").parse().expect("numeric id");
            (n, r.header(HEADER).is_some())
        })
        .collect();
    let labelled: Vec<usize> = copies.iter().filter(|(_, l)| *l).map(|(n, _)| *n).collect();
    // The team's records are the partition's only ones: offset i holds history[i].
    assert_eq!(
        labelled,
        history[..stopped_at],
        "history up to the cut, nothing after it"
    );
    let unlabelled: Vec<usize> = copies.iter().filter(|(_, l)| !*l).map(|(n, _)| *n).collect();
    assert_eq!(unlabelled, live, "every live event once, after the history");
}
