//! The real `switchyard-router` binary, run the way an operator runs it: SIGKILL mid-stream, restart, and
//! every expected (event, plugin) record is there exactly once, in per-team order; SIGTERM exits 0.

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard_schemas::ContentType;
use switchyard_tests::binaries::{free_address, log_path};
use switchyard_tests::broker::{TestProducer, group_caught_up, read_to_end, unique};
use switchyard_tests::records::{core_event, enablement, manifest};
use switchyard_tests::routers::{RouterProcess, Topics};
use switchyard_tests::wait::wait_for;

const TEAMS: usize = 20;
const EVENTS: usize = 20_000;

/// Which plugins get an event of team `t` and sequence `n` (the test's own model of its enablements).
fn expected(team: usize, n: usize) -> Vec<&'static str> {
    let form = n.is_multiple_of(10); // every tenth event is form.created, the rest response.submitted
    let mut plugins = Vec::new();
    if team % 4 != 3 && !form {
        plugins.push("sheets");
    }
    if team.is_multiple_of(2) {
        plugins.push("sms"); // sms lists both types
    }
    if form && team.is_multiple_of(5) {
        plugins.push("audit");
    }
    plugins
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_delivers_every_record_exactly_once() {
    let topics = Topics::unique();
    topics.create(4, &["sheets", "sms", "audit"]).await;
    let producer = TestProducer::new();
    producer.send(&topics.plugins, &manifest("sheets", &["response.submitted"]));
    producer.send(
        &topics.plugins,
        &manifest("sms", &["response.submitted", "form.created"]),
    );
    producer.send(&topics.plugins, &manifest("audit", &["form.created"]));
    for team in 0..TEAMS {
        let id = format!("team-{team:02}");
        if team % 4 != 3 {
            producer.send(&topics.enablements, &enablement(&id, "sheets", true, None));
        }
        if team % 2 == 0 {
            producer.send(&topics.enablements, &enablement(&id, "sms", true, None));
        }
        // audit is enabled for everyone, but only for form.created and only listed by some teams' filter
        let filter: &[&str] = if team % 5 == 0 {
            &["form.created"]
        } else {
            &["x.never"]
        };
        producer.send(&topics.enablements, &enablement(&id, "audit", true, Some(filter)));
    }
    producer.flush();

    let group = unique("router");
    let admin = free_address();
    let env = topics.env(&group, &unique("txn"), admin);
    // A config file as an operator writes it; the environment names the test's topics.
    // A killed member keeps its partitions until its session times out (45 s by default): a shorter session
    // makes the restart take over sooner, as an operator tunes it through the pass-through options.
    let config = r#"
[kafka.consumer_options]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"

[delivery]
commit_interval_ms = 100
commit_max_events = 750

[log]
format = "json"
level = "info"
"#;
    let log = log_path(&group);

    let mut router = RouterProcess::start(config, &env, admin, &log);
    router.admin.wait_ready().await;
    let sender = {
        let core = topics.core.clone();
        std::thread::spawn(move || {
            let producer = TestProducer::new();
            for n in 0..EVENTS {
                let team = n % TEAMS;
                let event_type = if n % 10 == 0 {
                    "form.created"
                } else {
                    "response.submitted"
                };
                let content_type = if n % 3 == 0 {
                    ContentType::Json
                } else {
                    ContentType::Avro
                };
                producer.send(
                    &core,
                    &core_event(
                        &format!("team-{team:02}"),
                        event_type,
                        &format!("{n:06}"),
                        content_type,
                    ),
                );
                if n % 2000 == 1999 {
                    producer.flush();
                    std::thread::sleep(Duration::from_millis(100)); // keep the stream going across the kills
                }
            }
            producer.flush();
        })
    };

    let mut kills = 0;
    for progress in [3_000.0, 2_000.0] {
        wait_for("progress before the kill", Duration::from_secs(90), || async {
            (router
                .admin
                .metric(r#"switchyard_router_events_total{outcome="routed"}"#)
                .await
                >= progress)
                .then_some(())
        })
        .await;
        router.kill();
        kills += 1;
        router = RouterProcess::start(config, &env, admin, &log);
        router.admin.wait_ready().await;
    }
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
    assert!(router.running(), "the restarted router is still running");
    let status = router.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status}");

    let mut delivered: BTreeMap<(&str, String), u32> = BTreeMap::new();
    for plugin in ["sheets", "sms", "audit"] {
        let mut last_by_team: BTreeMap<String, usize> = BTreeMap::new();
        for record in read_to_end(&topics.plugin(plugin)) {
            let id = record.header("ce_id").expect("ce_id");
            let n: usize = id.parse().expect("numeric id");
            let team = String::from_utf8(record.key.clone().expect("key")).expect("utf-8 key");
            if let Some(previous) = last_by_team.insert(team.clone(), n) {
                assert!(previous < n, "{plugin}/{team}: {n} after {previous}");
            }
            *delivered.entry((plugin, id)).or_default() += 1;
        }
    }
    let mut missing = 0;
    let mut expected_total = 0;
    for n in 0..EVENTS {
        for plugin in expected(n % TEAMS, n) {
            expected_total += 1;
            match delivered.remove(&(plugin, format!("{n:06}"))) {
                Some(1) => {}
                Some(count) => panic!("event {n} reached {plugin} {count} times"),
                None => missing += 1,
            }
        }
    }
    assert_eq!(
        missing, 0,
        "{missing} of {expected_total} expected records missing after {kills} kills"
    );
    assert!(
        delivered.is_empty(),
        "unexpected records: {:?}",
        delivered.keys().take(5).collect::<Vec<_>>()
    );
    assert!(read_to_end(&topics.dead_letter).is_empty());
    assert_eq!(kills, 2);
}

#[test]
fn check_config_accepts_a_valid_file_and_names_the_bad_key_of_an_invalid_one() {
    use std::process::Command;
    let dir = std::env::temp_dir().join(unique("check-config"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[delivery]\nmode = \"at_least_once\"\n[kafka.producer_options]\n\"linger.ms\" = 10\n",
    )
    .unwrap();
    let output = Command::new(switchyard_tests::routers::router_binary())
        .arg("--config")
        .arg(&good)
        .arg("--check-config")
        .output()
        .expect("run the binary");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[delivery]\ncommit_intervall_ms = 50\n").unwrap();
    let output = Command::new(switchyard_tests::routers::router_binary())
        .arg("--config")
        .arg(&bad)
        .arg("--check-config")
        .output()
        .expect("run the binary");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("commit_intervall_ms"), "{stderr}");

    let output = Command::new(switchyard_tests::routers::router_binary())
        .arg("--check-config")
        .env("SWITCHYARD_ROUTER__KAFKA__OPTIONS__ENABLE_IDEMPOTENCE", "false")
        .output()
        .expect("run the binary");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("kafka.options.enable.idempotence"));
}
