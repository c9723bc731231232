//! The plugin runtime against the real broker, with a scripted in-process plugin: per-team order under
//! concurrency, a slow team not holding up the others, retries, dead letters with their headers, an outage
//! paused without dead letters, and configs applied before a team's next event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use switchyard_plugin_runtime::plugin::{Outcome, PluginResult};
use switchyard_schemas::envelope::ContentType;
use switchyard_tests::broker::{Outgoing, TestProducer, create_topics, group_caught_up, read_to_end, unique};
use switchyard_tests::records::{core_event, response_submitted};
use switchyard_tests::wait::{wait_for, wait_for_records};
use switchyard_tests::workers::{InProcessWorker, ScriptedPlugin, WorkerTopics};

fn event(team: &str, id: &str) -> Outgoing {
    core_event(team, "response.submitted", id, ContentType::Json)
}

fn header(record: &switchyard_tests::broker::Incoming, name: &str) -> String {
    record.header(name).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_team_order_under_concurrency_and_a_slow_team_does_not_hold_up_others() {
    let topics = WorkerTopics::create("ordered", 3).await;
    let plugin = ScriptedPlugin::new("ordered", |ctx| {
        let delay = if ctx.meta.team_id == "slow" { 150 } else { 5 };
        (Duration::from_millis(delay), Outcome::done())
    });
    let settings = topics.settings(&[("DELIVERY__MAX_IN_FLIGHT", "8")]);
    let group = settings.delivery.group_id.clone();
    let worker = InProcessWorker::start(plugin.clone(), settings);
    let producer = TestProducer::new();
    let teams = ["slow", "acme", "globex", "initech", "umbrella", "hooli"];
    let per_team = 20;
    for n in 0..per_team {
        for team in teams {
            producer.send(&topics.events, &event(team, &format!("{team}-{n:02}")));
        }
    }
    producer.flush();
    wait_for("every event executed", Duration::from_secs(60), || async {
        (plugin.calls().len() >= teams.len() * per_team).then_some(())
    })
    .await;
    let calls = plugin.calls();
    assert_eq!(calls.len(), teams.len() * per_team, "each event once");
    for team in teams {
        let expected: Vec<String> = (0..per_team).map(|n| format!("{team}-{n:02}")).collect();
        assert_eq!(plugin.ids_of(team), expected, "{team} in order");
        let mine: Vec<_> = calls.iter().filter(|c| c.team == team).collect();
        for pair in mine.windows(2) {
            assert!(pair[0].ended <= pair[1].started, "{team}: one event at a time");
        }
    }
    // The fast teams finished long before the slow one (20 x 150 ms = 3 s).
    let slow_end = calls
        .iter()
        .filter(|c| c.team == "slow")
        .map(|c| c.ended)
        .max()
        .unwrap();
    let fast_end = calls
        .iter()
        .filter(|c| c.team != "slow")
        .map(|c| c.ended)
        .max()
        .unwrap();
    assert!(
        slow_end.duration_since(fast_end) > Duration::from_secs(1),
        "the fast teams waited for the slow one"
    );
    let concurrent = calls.iter().filter(|c| c.team != "slow").any(|fast| {
        calls
            .iter()
            .any(|other| other.team != fast.team && other.started < fast.ended && fast.started < other.ended)
    });
    assert!(concurrent, "teams ran concurrently");
    wait_for("offsets committed", Duration::from_secs(20), || async {
        group_caught_up(&group, &topics.events).then_some(())
    })
    .await;
    worker.stop().await.expect("clean stop");
    assert!(read_to_end(&topics.dead_letter).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_dead_letters_and_results() {
    let topics = WorkerTopics::create("scripted", 1).await;
    let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let plugin = ScriptedPlugin::new("scripted", {
        let attempts = Arc::clone(&attempts);
        move |ctx| {
            let mut attempts = attempts.lock().unwrap();
            let n = attempts.entry(ctx.meta.id.clone()).or_default();
            *n += 1;
            let outcome = match ctx.meta.id.as_str() {
                "flaky" if *n < 3 => Outcome::Retry {
                    reason: "the SaaS answered 503".into(),
                    after: None,
                },
                "poison" => Outcome::dead_letter("unknown form version"),
                "hopeless" => Outcome::retry("the SaaS answered 500"),
                id => Outcome::Done(vec![PluginResult {
                    kind: "response.flagged".into(),
                    subject: None,
                    data: json!({"event": id}),
                }]),
            };
            (Duration::from_millis(2), outcome)
        }
    });
    let worker = InProcessWorker::start(plugin.clone(), topics.settings(&[("RETRY__MAX_ATTEMPTS", "3")]));
    let producer = TestProducer::new();
    for (team, id) in [
        ("acme", "flaky"),
        ("acme", "after-flaky"),
        ("globex", "poison"),
        ("globex", "after-poison"),
        ("initech", "hopeless"),
        ("initech", "after-hopeless"),
        ("umbrella", "fine-1"),
        ("umbrella", "fine-2"),
    ] {
        producer.send(&topics.events, &event(team, id));
    }
    producer.flush();
    let letters = wait_for_records(
        "two dead letters",
        &topics.dead_letter,
        2,
        Duration::from_secs(30),
    )
    .await;
    wait_for(
        "the events after the failures",
        Duration::from_secs(30),
        || async {
            // Both retried teams: acme's third call and initech's may come in either order.
            let done = |team: &str, id: &str| plugin.ids_of(team).contains(&id.to_owned());
            (done("initech", "after-hopeless") && done("acme", "after-flaky")).then_some(())
        },
    )
    .await;
    let by_id: HashMap<String, _> = letters.iter().map(|r| (header(r, "ce_id"), r)).collect();
    let poison = by_id["poison"];
    assert_eq!(header(poison, "switchyard_error"), "plugin_dead_letter");
    assert_eq!(header(poison, "switchyard_error_detail"), "unknown form version");
    assert_eq!(header(poison, "switchyard_attempts"), "1");
    assert_eq!(header(poison, "switchyard_plugin"), "scripted");
    assert!(header(poison, "switchyard_source").starts_with(&format!("{}/0/", topics.events)));
    assert_eq!(
        poison.key.as_deref(),
        Some(&b"globex"[..]),
        "the record is kept as it was"
    );
    let hopeless = by_id["hopeless"];
    assert_eq!(header(hopeless, "switchyard_error"), "retries_exhausted");
    assert_eq!(header(hopeless, "switchyard_attempts"), "3");
    assert!(!header(hopeless, "switchyard_first_failure").is_empty());
    assert!(!header(hopeless, "switchyard_last_failure").is_empty());
    assert_eq!(attempts.lock().unwrap()["flaky"], 3, "retried twice, then done");
    assert_eq!(plugin.ids_of("acme"), ["flaky", "flaky", "flaky", "after-flaky"]);
    assert_eq!(
        plugin.ids_of("globex"),
        ["poison", "after-poison"],
        "later events go on after a dead letter"
    );
    let results = wait_for_records("results", &topics.results, 5, Duration::from_secs(20)).await;
    let flagged: Vec<String> = results.iter().map(|r| header(r, "ce_causationid")).collect();
    for id in ["flaky", "after-flaky", "after-poison", "after-hopeless", "fine-1"] {
        assert!(flagged.contains(&id.to_owned()), "{id}: {flagged:?}");
    }
    let first = &results[0];
    assert_eq!(header(first, "ce_type"), "switchyard.plugin.response.flagged");
    assert_eq!(header(first, "ce_source"), "/plugins/scripted");
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_pauses_without_dead_letters_and_catches_up() {
    let topics = WorkerTopics::create("fragile", 2).await;
    let down = Arc::new(AtomicBool::new(true));
    let plugin = ScriptedPlugin::new("fragile", {
        let down = Arc::clone(&down);
        move |_| {
            if down.load(Ordering::SeqCst) {
                (Duration::from_millis(5), Outcome::retry("connection refused"))
            } else {
                (Duration::from_millis(2), Outcome::done())
            }
        }
    });
    // Two attempts per event: without outage detection, everything would be dead-lettered at once.
    let worker = InProcessWorker::start(plugin.clone(), topics.settings(&[("RETRY__MAX_ATTEMPTS", "2")]));
    let producer = TestProducer::new();
    let teams = ["a", "b", "c", "d", "e"];
    for n in 0..10 {
        for team in teams {
            producer.send(&topics.events, &event(team, &format!("{team}-{n}")));
        }
    }
    producer.flush();
    wait_for("the outage to be declared", Duration::from_secs(20), || async {
        (worker
            .admin
            .metric("switchyard_plugin_paused{plugin=\"fragile\"}")
            .await
            == 1.0)
            .then_some(())
    })
    .await;
    // Probes go on past the budget of 2 calls per event: the outage is charged to nobody.
    wait_for(
        "an event probed beyond its retry budget",
        Duration::from_secs(30),
        || async {
            let mut per_event: HashMap<String, usize> = HashMap::new();
            for call in plugin.calls() {
                *per_event.entry(call.id).or_default() += 1;
            }
            per_event.values().any(|&n| n >= 4).then_some(())
        },
    )
    .await;
    assert!(
        read_to_end(&topics.dead_letter).is_empty(),
        "nothing dead-lettered during the outage"
    );
    down.store(false, Ordering::SeqCst);
    wait_for(
        "every event delivered after the outage",
        Duration::from_secs(60),
        || async {
            let done = teams.iter().all(|team| {
                let ids = plugin.ids_of(team);
                (0..10).all(|n| ids.contains(&format!("{team}-{n}")))
            });
            done.then_some(())
        },
    )
    .await;
    assert_eq!(
        worker
            .admin
            .metric("switchyard_plugin_paused{plugin=\"fragile\"}")
            .await,
        0.0
    );
    assert!(read_to_end(&topics.dead_letter).is_empty());
    for team in teams {
        let mut seen = Vec::new();
        for id in plugin.ids_of(team) {
            if seen.last() != Some(&id) {
                seen.push(id);
            }
        }
        let expected: Vec<String> = (0..10).map(|n| format!("{team}-{n}")).collect();
        assert_eq!(seen, expected, "{team}: in order, retries of the same event only");
    }
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_taken_away_during_an_outage_is_read_again_when_it_comes_back() {
    // librdkafka keeps a partition's pause across a rebalance: paused for the outage, taken by a second
    // worker, given back after the outage ended, it stayed paused for good (found by the effects chaos run).
    let topics = WorkerTopics::create("fickle", 2).await;
    let down = Arc::new(AtomicBool::new(true));
    let plugin = || {
        let down = Arc::clone(&down);
        ScriptedPlugin::new("fickle", move |_| {
            if down.load(Ordering::SeqCst) {
                (Duration::from_millis(5), Outcome::retry("connection refused"))
            } else {
                (Duration::from_millis(2), Outcome::done())
            }
        })
    };
    let (first_plugin, second_plugin) = (plugin(), plugin());
    let settings = topics.settings(&[("RETRY__MAX_ATTEMPTS", "2")]);
    let first = InProcessWorker::start(first_plugin.clone(), settings.clone());
    let producer = TestProducer::new();
    // Enough teams that both partitions have some.
    let teams = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];
    let send = |round: &str| {
        for team in teams {
            producer.send(&topics.events, &event(team, &format!("{team}-{round}")));
        }
        producer.flush();
    };
    send("0");
    let paused = "switchyard_plugin_paused{plugin=\"fickle\"}";
    wait_for("the outage to be declared", Duration::from_secs(20), || async {
        (first.admin.metric(paused).await == 1.0).then_some(())
    })
    .await;
    // A second worker of the group takes one of the two partitions (and tries its events) while the first
    // is paused.
    let mut second_settings = topics.settings(&[("RETRY__MAX_ATTEMPTS", "2")]);
    second_settings.delivery.group_id = settings.delivery.group_id.clone();
    let second = InProcessWorker::start(second_plugin.clone(), second_settings);
    wait_for(
        "the second worker to take a partition",
        Duration::from_secs(30),
        || async { (!second_plugin.calls().is_empty()).then_some(()) },
    )
    .await;
    // The outage ends and the first worker resumes what it holds; then the second leaves, and its
    // partition goes back to the first.
    down.store(false, Ordering::SeqCst);
    wait_for("the first worker to resume", Duration::from_secs(30), || async {
        (first.admin.metric(paused).await == 0.0).then_some(())
    })
    .await;
    second.stop().await.expect("clean stop");
    send("1");
    wait_for(
        "every team's next event delivered, on both partitions",
        Duration::from_secs(45),
        || async {
            let missing: Vec<&str> = teams
                .iter()
                .copied()
                .filter(|team| !first_plugin.ids_of(team).contains(&format!("{team}-1")))
                .collect();
            missing.is_empty().then_some(())
        },
    )
    .await;
    assert!(read_to_end(&topics.dead_letter).is_empty());
    first.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_reaches_the_plugin_before_the_teams_next_event() {
    let topics = WorkerTopics::create("configured", 1).await;
    let plugin = ScriptedPlugin::new("configured", |_| (Duration::ZERO, Outcome::done()));
    let worker = InProcessWorker::start(plugin.clone(), topics.settings(&[]));
    worker.admin.wait_ready().await;
    let producer = TestProducer::new();
    let config = |version: u32| Outgoing {
        key: Some(b"acme/configured".to_vec()),
        value: Some(
            json!({"team_id": "acme", "plugin_id": "configured", "config": {"version": version},
                   "plugin_version": "1.0.0", "updated_at": "2026-11-22T10:00:00Z"})
            .to_string()
            .into_bytes(),
        ),
        headers: Vec::new(),
    };
    for version in 1..=3 {
        // The config, then at once an event: the event must run with this config.
        producer.send(&topics.configs, &config(version));
        producer.flush();
        producer.send(&topics.events, &event("acme", &format!("e-{version}")));
        producer.flush();
        wait_for("the event", Duration::from_secs(20), || async {
            plugin
                .ids_of("acme")
                .contains(&format!("e-{version}"))
                .then_some(())
        })
        .await;
        let initialized = plugin.initialized.lock().unwrap().clone();
        let call = plugin
            .calls()
            .into_iter()
            .find(|c| c.id == format!("e-{version}"))
            .unwrap();
        let (_, applied, at) = initialized.last().expect("initialized").clone();
        assert_eq!(applied, Some(json!({"version": version})), "version {version}");
        assert!(at <= call.started);
    }
    assert_eq!(plugin.initialized.lock().unwrap().len(), 3, "once per change");
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_shown_and_replayed_once_the_cause_is_fixed() {
    let topics = WorkerTopics::create("replayable", 1).await;
    // The registry creates the replay records' topic at start; without a registry here, the test does.
    let replays = unique("dead-letter-replays");
    create_topics(&[(&replays, 1, true)]).await;
    let broken = Arc::new(AtomicBool::new(true));
    let plugin = ScriptedPlugin::new("replayable", {
        let broken = Arc::clone(&broken);
        move |ctx| {
            let outcome = if ctx.meta.id.starts_with("bad") && broken.load(Ordering::SeqCst) {
                Outcome::dead_letter("the sheet was deleted")
            } else {
                Outcome::done()
            };
            (Duration::ZERO, outcome)
        }
    });
    let worker = InProcessWorker::start(plugin.clone(), topics.settings(&[]));
    let producer = TestProducer::new();
    producer.send(&topics.events, &event("acme", "bad-1"));
    // One in Avro: `show` decodes either content type to the contract's JSON form.
    producer.send(
        &topics.events,
        &core_event("globex", "response.submitted", "bad-2", ContentType::Avro),
    );
    producer.send(&topics.events, &event("acme", "good-1"));
    producer.flush();
    wait_for("two dead letters", Duration::from_secs(30), || async {
        (read_to_end(&topics.dead_letter).len() == 2).then_some(())
    })
    .await;
    let ctl_output = |args: &[&str]| {
        let templates = [
            "--bootstrap".to_owned(),
            switchyard_tests::broker::bootstrap(),
            "--events-template".to_owned(),
            topics.events.replace("replayable", "{plugin}"),
            "--dead-letter-template".to_owned(),
            topics.dead_letter.replace("replayable", "{plugin}"),
            "--replays-topic".to_owned(),
            replays.clone(),
        ];
        std::process::Command::new(switchyard_tests::registries::ctl_binary())
            .args(args)
            .args(["--plugin", "replayable"])
            .args(&templates)
            .output()
            .expect("switchyardctl")
    };
    let ctl = |args: &[&str]| {
        let output = ctl_output(args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let ctl_json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&ctl(&all)).unwrap()
    };
    let letters = read_to_end(&topics.dead_letter);
    let listed = ctl(&["dlq", "list"]);
    assert!(listed.contains("bad-1") && listed.contains("bad-2"), "{listed}");
    assert!(listed.contains("plugin_dead_letter") && listed.contains("the sheet was deleted"));
    assert!(listed.lines().next().unwrap().contains("REPLAYED"), "{listed}");
    let json = ctl_json(&["dlq", "list", "--team", "acme"]);
    assert_eq!(json.as_array().unwrap().len(), 1);
    let bad_1 = json[0].clone();
    assert_eq!(bad_1["event_id"], "bad-1");
    let letter_id = bad_1["id"].as_str().unwrap().to_owned();
    let bad_1_record = letters
        .iter()
        .find(|l| l.header("ce_id").as_deref() == Some("bad-1"))
        .unwrap();
    // Numbers are numbers, times are RFC 3339 and milliseconds, the source is a position.
    assert_eq!(bad_1["partition"], bad_1_record.partition);
    assert_eq!(bad_1["offset"], bad_1_record.offset);
    assert_eq!(bad_1["attempts"], 1);
    assert!(bad_1["bytes"].as_u64().is_some_and(|b| b > 0), "{bad_1}");
    assert!(bad_1["dead_lettered_at"].is_string(), "{bad_1}");
    assert!(
        bad_1["dead_lettered_at_ms"]
            .as_i64()
            .is_some_and(|ms| ms > 1_700_000_000_000)
    );
    let source = &bad_1["source_position"];
    assert_eq!(source["topic"], topics.events.as_str(), "{bad_1}");
    assert_eq!(
        bad_1["source"],
        format!("{}/{}/{}", topics.events, source["partition"], source["offset"])
    );
    assert_eq!(
        (&bad_1["replayed"], &bad_1["replay_count"], &bad_1["last_replay"]),
        (&json!(false), &json!(0), &serde_json::Value::Null)
    );

    // `show` prints one letter whole: its fields and times, its source, every header, the event decoded.
    let shown = ctl(&["dlq", "show", &letter_id]);
    for line in [
        format!("dead letter {letter_id} of {}", topics.dead_letter),
        "event id       bad-1".to_owned(),
        "reason         plugin_dead_letter".to_owned(),
        "detail         the sheet was deleted".to_owned(),
        format!("dead-lettered  {}", bad_1["dead_lettered_at"].as_str().unwrap()),
        format!(
            "source         {} partition {} offset {}",
            topics.events, source["partition"], source["offset"]
        ),
        "replays        none".to_owned(),
        format!("headers ({})", bad_1_record.headers.len()),
        "event (CloudEvents JSON; the value was application/json)".to_owned(),
        "  \"id\": \"bad-1\",".to_owned(),
        "  \"data\": {".to_owned(),
    ] {
        assert!(shown.contains(&line), "{line:?} in\n{shown}");
    }
    for (name, value) in &bad_1_record.headers {
        let value = String::from_utf8_lossy(value.as_deref().unwrap_or_default());
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with(&format!("  {name} ")) && l.ends_with(&*value)),
            "{name} in\n{shown}"
        );
    }
    // By event id, as JSON: the Avro one, its data decoded, its payload as it is.
    let whole = ctl_json(&["dlq", "show", "bad-2"]);
    assert_eq!(whole.as_array().unwrap().len(), 1, "{whole}");
    let whole = &whole[0];
    assert_eq!(whole["team"], "globex");
    assert_eq!(whole["content_type"], "application/avro");
    assert_eq!(whole["payload"]["encoding"], "base64");
    assert_eq!(whole["event_error"], serde_json::Value::Null, "{whole}");
    assert_eq!(whole["event"]["type"], "response.submitted");
    assert_eq!(whole["event"]["teamid"], "globex");
    assert_eq!(whole["event"]["datacontenttype"], "application/json");
    assert_eq!(
        whole["event"]["data"],
        serde_json::to_value(response_submitted("globex", "bad-2")).unwrap()
    );
    assert!(
        whole["headers"].as_array().unwrap().contains(
            &json!({"name": "switchyard_error", "value": "plugin_dead_letter", "encoding": "text"})
        )
    );
    assert!(
        whole["dead_lettered_at_ms"].is_i64() && whole["attempts"].is_u64(),
        "{whole}"
    );
    assert_eq!(whole["replays"], json!([]));
    let missing = ctl_output(&["dlq", "show", "no-such-event"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("has no dead letter no-such-event"),
        "{missing:?}"
    );

    let dry = ctl(&["dlq", "replay", "--team", "acme", "--dry-run"]);
    assert!(dry.contains("1 would be replayed"), "{dry}");
    assert_eq!(
        plugin.ids_of("acme"),
        ["bad-1", "good-1"],
        "a dry run replays nothing"
    );

    // A read that cannot finish (here the broker holds every fetch for 10 s: it waits for 100 MB) fails
    // at its timeout and replays nothing, rather than replaying the part it read.
    let events_before = read_to_end(&topics.events).len();
    let slow = ctl_output(&[
        "dlq",
        "replay",
        "--team",
        "acme",
        "--timeout",
        "3s",
        "-X",
        "fetch.min.bytes=100000000",
        "-X",
        "fetch.wait.max.ms=10000",
    ]);
    let stderr = String::from_utf8_lossy(&slow.stderr);
    assert!(!slow.status.success(), "a timed-out read fails: {stderr}");
    assert!(stderr.contains("did not finish within 3 s"), "{stderr}");
    assert!(!String::from_utf8_lossy(&slow.stdout).contains("replayed"));
    assert_eq!(
        read_to_end(&topics.events).len(),
        events_before,
        "nothing replayed"
    );

    broken.store(false, Ordering::SeqCst);
    let replayed = ctl(&["dlq", "replay", "--team", "acme", "--since", "10m"]);
    assert!(replayed.contains("replayed 1 dead letter to"), "{replayed}");
    wait_for("the replayed event", Duration::from_secs(20), || async {
        (plugin.ids_of("acme").len() == 3).then_some(())
    })
    .await;
    assert_eq!(
        plugin.ids_of("acme"),
        ["bad-1", "good-1", "bad-1"],
        "after the team's later events"
    );
    assert_eq!(
        plugin.ids_of("globex"),
        ["bad-2"],
        "another team's dead letter stays"
    );
    let events = read_to_end(&topics.events);
    let replay = events.last().unwrap();
    assert!(header(replay, "switchyard_replayed_from").starts_with(&topics.dead_letter));
    assert_eq!(
        header(replay, "switchyard_error"),
        "",
        "dead-letter headers are removed"
    );
    assert_eq!(header(replay, "ce_id"), "bad-1", "the same idempotency key");

    // The replay is recorded, keyed by the letter, with where its copy went.
    let key = format!(
        "{}/{}/{}",
        topics.dead_letter, bad_1_record.partition, bad_1_record.offset
    );
    assert_eq!(header(replay, "switchyard_replayed_from"), key);
    let records = read_to_end(&replays);
    assert_eq!(records.len(), 1, "one record, written with the copy");
    assert_eq!(records[0].key.as_deref(), Some(key.as_bytes()));
    let record: serde_json::Value = serde_json::from_slice(records[0].value.as_deref().unwrap()).unwrap();
    let to = json!({"topic": topics.events, "partition": replay.partition, "offset": replay.offset});
    assert_eq!(
        record["dead_letter"],
        json!({"topic": topics.dead_letter, "partition": bad_1_record.partition,
               "offset": bad_1_record.offset})
    );
    assert_eq!(record["replays"].as_array().unwrap().len(), 1, "{record}");
    assert_eq!(record["replays"][0]["to"], to);
    assert!(
        record["replays"][0]["by"]
            .as_str()
            .is_some_and(|by| by.ends_with("switchyardctl")),
        "{record}"
    );

    // The list marks it, and `show` lists the replay.
    let json = ctl_json(&["dlq", "list"]);
    let by_event = |event: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|l| l["event_id"] == event)
            .unwrap()
            .clone()
    };
    let (marked, unmarked) = (by_event("bad-1"), by_event("bad-2"));
    assert_eq!(
        (&marked["replayed"], &marked["replay_count"]),
        (&json!(true), &json!(1))
    );
    assert_eq!(marked["last_replay"]["to"], to);
    assert_eq!(marked["last_replay"]["at"], record["replays"][0]["at"]);
    assert!(marked["last_replay"]["at_ms"].is_i64(), "{marked}");
    assert_eq!(unmarked["replayed"], false);
    let table = ctl(&["dlq", "list"]);
    let row = |event: &str| table.lines().find(|l| l.contains(event)).unwrap().to_owned();
    let at = record["replays"][0]["at"].as_str().unwrap();
    assert!(row("bad-1").contains(at), "{table}");
    assert!(!row("bad-2").contains(at), "{table}");
    let shown = ctl(&["dlq", "show", &letter_id]);
    assert!(shown.contains("replays        1"), "{shown}");
    assert!(
        shown.contains(&format!(
            "to {} partition {} offset {}",
            topics.events, replay.partition, replay.offset
        )),
        "{shown}"
    );

    // A second replay is refused, saying why, and writes nothing.
    let again = ctl_output(&["dlq", "replay", "--team", "acme"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{letter_id} (event bad-1, team acme): replayed once"))
            && stderr.contains("--again replays them again"),
        "{stderr}"
    );
    let dry = ctl_json(&["dlq", "replay", "--team", "acme", "--dry-run"]);
    assert_eq!(
        (&dry["replayed"], &dry["refused"][0]["id"]),
        (&json!(0), &json!(letter_id))
    );
    assert_eq!(read_to_end(&topics.events).len(), events.len(), "nothing more");
    assert_eq!(read_to_end(&replays).len(), 1);

    // With --again it goes, and the record keeps both replays.
    let forced = ctl_json(&["dlq", "replay", "--team", "acme", "--again", "--by", "ops-test"]);
    assert_eq!(forced["replayed"], 1, "{forced}");
    assert_eq!(forced["dry_run"], false);
    assert_eq!(forced["letters"][0]["replay_count"], 2, "{forced}");
    assert_eq!(forced["letters"][0]["last_replay"]["by"], "ops-test");
    let second = read_to_end(&topics.events).last().unwrap().clone();
    assert_eq!(forced["letters"][0]["last_replay"]["to"]["offset"], second.offset);
    wait_for("the second replay", Duration::from_secs(20), || async {
        (plugin.ids_of("acme").len() == 4).then_some(())
    })
    .await;
    let whole = ctl_json(&["dlq", "show", &letter_id]);
    let history: Vec<&str> = whole[0]["replays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["by"].as_str().unwrap())
        .collect();
    assert_eq!(history.len(), 2, "{whole}");
    assert_eq!(history[1], "ops-test", "oldest first");
    worker.stop().await.expect("clean stop");
}
