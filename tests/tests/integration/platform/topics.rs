//! `switchyardctl topics` against the broker, as an operator runs it: `apply` on an empty cluster creates
//! every topic with the recommended settings, a second `apply` changes nothing, `check` passes and then
//! names a topic whose partitions or configs are off, and only `--alter-configs` changes configs. The
//! control topics of a real registry are backed up, deleted, re-created and restored, after which the
//! registry and a router see the same plugins, enablements and configs as before.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use serde_json::{Value, json};
use switchyard_schemas::envelope::ContentType;
use switchyard_service::kafka::KafkaContext;
use switchyard_tests::binaries::free_address;
use switchyard_tests::broker::{
    Outgoing, TestProducer, bootstrap, clients, delete_topics, read_to_end, set_topic_config,
    topic_partitions, unique,
};
use switchyard_tests::records::core_event;
use switchyard_tests::registries::{RegistryProcess, RegistryTopics, admin, ctl_binary, http, team};
use switchyard_tests::routers::{InProcessRouter, Topics};
use switchyard_tests::wait::wait_for;

/// What a run of the command left: exit status, stdout, stderr.
struct Run {
    code: i32,
    out: String,
    err: String,
}

/// Runs `switchyardctl topics ...` against the test broker with `env` (the registry's topic names).
fn ctl(env: &BTreeMap<String, String>, args: &[&str]) -> Run {
    let output = Command::new(ctl_binary())
        .arg("topics")
        .args(args)
        .args(["--bootstrap", &bootstrap()])
        .envs(env)
        .output()
        .expect("run switchyardctl");
    Run {
        code: output.status.code().expect("an exit status"),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The registry's store topics, as its environment names them (every `TOPICS__` name but the input topic
/// and the templates): the list `topics` must take from the registry.
fn store_topics(env: &BTreeMap<String, String>) -> BTreeSet<String> {
    env.iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix("SWITCHYARD_REGISTRY__TOPICS__")?;
            (!name.ends_with("_TEMPLATE") && name != "CORE_EVENTS").then(|| value.clone())
        })
        .collect()
}

/// A topic's configs as the broker describes them, read independently of `switchyardctl`.
async fn described(topic: &str) -> BTreeMap<String, String> {
    let admin: AdminClient<KafkaContext> = clients().admin("test-describe").create().expect("admin client");
    let resources = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("describe");
    let resource = resources.into_iter().next().expect("one").expect("described");
    resource
        .entries
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_apply_creates_every_topic_once_and_check_names_what_differs() {
    let registry = RegistryTopics::unique();
    let env = registry.env(free_address(), &[]);
    let dead_letters = unique("t.core.events.dlq");
    let results = unique("t.core.plugin-results");
    // `extra` may set another partition count of core.events than the 4 of the plan.
    let plan = |extra: &[&str]| -> Vec<String> {
        let partitions = if extra.contains(&"--core-events-partitions") {
            [].as_slice()
        } else {
            &["--core-events-partitions", "4"]
        };
        let mut args: Vec<String> = partitions.iter().map(|a| (*a).to_owned()).collect();
        args.extend(
            [
                "--replication-factor",
                "1",
                "--plugins",
                "sms-notify,rules-validate",
                "--dead-letter-topic",
                &dead_letters,
                "--results-topic",
                &results,
            ]
            .map(str::to_owned),
        );
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let run = |command: &str, extra: &[&str]| {
        let mut args = vec![command.to_owned()];
        args.extend(plan(extra));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ctl(&env, &refs)
    };
    let mut expected: BTreeSet<String> = store_topics(&env);
    expected.extend([
        registry.core_events.clone(),
        dead_letters.clone(),
        results.clone(),
        registry.events("sms-notify"),
        registry.dead_letter("sms-notify"),
        registry.events("rules-validate"),
        registry.dead_letter("rules-validate"),
    ]);

    // A dry run changes nothing.
    let dry = run("apply", &["--dry-run"]);
    assert_eq!(dry.code, 0, "{}{}", dry.out, dry.err);
    assert!(
        dry.out
            .contains(&format!("dry run: {} to create", expected.len())),
        "{}",
        dry.out
    );
    assert_eq!(topic_partitions(&registry.core_events), None);

    // On an empty cluster: every topic created, with its partitions and configs.
    let applied = run("apply", &[]);
    assert_eq!(applied.code, 0, "{}{}", applied.out, applied.err);
    let created: BTreeSet<String> = applied
        .out
        .lines()
        .filter_map(|l| l.strip_prefix("created  "))
        .map(|t| t.trim().to_owned())
        .collect();
    assert_eq!(created, expected);
    assert_eq!(topic_partitions(&registry.core_events), Some(4));
    assert_eq!(topic_partitions(&registry.plugins), Some(1));
    assert_eq!(
        topic_partitions(&registry.events("sms-notify")),
        Some(3),
        "provisioning.partitions"
    );
    let core = described(&registry.core_events).await;
    assert_eq!(core["cleanup.policy"], "delete");
    assert_eq!(core["retention.ms"], "2592000000");
    assert_eq!(core["compression.type"], "zstd");
    assert_eq!(core["max.message.bytes"], "983616");
    assert_eq!(core["min.insync.replicas"], "1");
    for topic in store_topics(&env) {
        assert_eq!(described(&topic).await["cleanup.policy"], "compact", "{topic}");
    }
    assert_eq!(
        described(&registry.events("sms-notify")).await["max.message.bytes"],
        "1048588"
    );

    // Again: nothing to do.
    let again = run("apply", &[]);
    assert_eq!(again.code, 0, "{}{}", again.out, again.err);
    assert!(
        !again.out.lines().any(|l| l.starts_with("created")),
        "{}",
        again.out
    );
    assert!(
        again.out.ends_with(&format!(
            "0 created, 0 altered, {} in place; 0 difference(s) left\n",
            expected.len()
        )),
        "{}",
        again.out
    );
    let checked = run("check", &[]);
    assert_eq!(checked.code, 0, "{}{}", checked.out, checked.err);
    assert!(
        checked
            .out
            .ends_with(&format!("{} in place, 0 missing, 0 differ\n", expected.len()))
    );

    // Configs changed by hand (Kafka's AlterConfigs, as the fixture sends it, also resets every config it
    // does not name: compression, message size, min.insync.replicas) and a partition count below the
    // plan's: check names each and fails.
    set_topic_config(
        &registry.core_events,
        &[("retention.ms", "3600000"), ("segment.ms", "600000")],
    )
    .await;
    let off = run("check", &["--core-events-partitions", "8"]);
    assert_eq!(off.code, 1, "{}{}", off.out, off.err);
    assert!(
        off.out.contains(&format!("differs  {}", registry.core_events)),
        "{}",
        off.out
    );
    assert!(
        off.out.contains("partitions is 4, want at least 8"),
        "{}",
        off.out
    );
    assert!(
        off.out
            .contains("retention.ms is 3600000, want at least 2592000000 (--alter-configs sets it)"),
        "{}",
        off.out
    );
    for reset in [
        "compression.type is producer, want zstd",
        "max.message.bytes is 1048588, want at most 983616",
    ] {
        assert!(off.out.contains(reset), "{reset}: {}", off.out);
    }
    assert!(
        off.out
            .ends_with(&format!("{} in place, 0 missing, 1 differ\n", expected.len() - 1))
    );
    // A missing topic (a plugin not created yet) fails the check too.
    let missing = run("check", &["--plugins", "slang-search"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .out
            .contains(&format!("missing  {}", registry.events("slang-search"))),
        "{}",
        missing.out
    );

    // apply reports, changes nothing without --alter-configs, and exits 1.
    let reported = run("apply", &[]);
    assert_eq!(reported.code, 1, "{}{}", reported.out, reported.err);
    assert!(
        reported
            .out
            .contains("3 difference(s) left (--alter-configs sets the configs"),
        "{}",
        reported.out
    );
    assert_eq!(described(&registry.core_events).await["retention.ms"], "3600000");
    // With it, the config is set and the topic's own other settings stay.
    let altered = run("apply", &["--alter-configs"]);
    assert_eq!(altered.code, 0, "{}{}", altered.out, altered.err);
    assert!(
        altered
            .out
            .contains(&format!("altered  {}", registry.core_events)),
        "{}",
        altered.out
    );
    let core = described(&registry.core_events).await;
    assert_eq!(core["retention.ms"], "2592000000");
    assert_eq!(core["segment.ms"], "600000");
    assert_eq!(core["compression.type"], "zstd");
    assert_eq!(core["max.message.bytes"], "983616");
    assert_eq!(run("check", &[]).code, 0);

    // Bad input: a clear error, nothing done.
    let refused = run("apply", &["--min-insync-replicas", "2"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .err
            .contains("min.insync.replicas 2 is more than the replication factor 1"),
        "{}",
        refused.err
    );

    let mut all: Vec<&str> = expected.iter().map(String::as_str).collect();
    all.sort_unstable();
    delete_topics(&all).await;
}

/// A record's value (`None`: a tombstone) and headers.
type Latest = (Option<Vec<u8>>, Vec<(String, Option<Vec<u8>>)>);

/// The latest record of each key of `topic`: value and headers, tombstones included.
fn latest(topic: &str) -> BTreeMap<Vec<u8>, Latest> {
    read_to_end(topic)
        .into_iter()
        .filter_map(|r| Some((r.key?, (r.value, r.headers))))
        .collect()
}

/// What the registry answers about its plugins, acme's installations and acme's config: the state a
/// restore must bring back (heartbeat-derived fields left out).
async fn registry_state(url: &str) -> Value {
    let admin = admin();
    let (status, plugins) = http("GET", &format!("{url}/v1/plugins"), Some(&admin), None).await;
    assert_eq!(status, 200, "{plugins}");
    let mut ids: Vec<(String, String)> = plugins
        .as_array()
        .or_else(|| plugins["plugins"].as_array())
        .expect("a list of plugins")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap_or_default().to_owned(),
                p["version"].to_string(),
            )
        })
        .collect();
    ids.sort();
    let acme = team("acme");
    let (status, installed) = http("GET", &format!("{url}/v1/teams/acme/plugins"), Some(&acme), None).await;
    assert_eq!(status, 200, "{installed}");
    let (status, config) = http(
        "GET",
        &format!("{url}/v1/teams/acme/plugins/sheets-export/config"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, 200, "{config}");
    let (gone, _) = http("GET", &format!("{url}/v1/plugins/gone"), Some(&admin), None).await;
    json!({"plugins": ids, "installed": installed, "config": config["config"], "gone": gone})
}

fn start(topics: &RegistryTopics, log: &Path) -> RegistryProcess {
    let address = free_address();
    RegistryProcess::start(&topics.env(address, &[]), address, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_topics_are_backed_up_and_restored_whole() {
    let dir = std::env::temp_dir().join(unique("switchyard-topics-backup"));
    std::fs::create_dir_all(&dir).unwrap();
    let topics = RegistryTopics::unique();
    let env = topics.env(free_address(), &[]);
    let router_topics = Topics::of_registry(&topics);
    let plan = [
        "--replication-factor",
        "1",
        "--core-events-partitions",
        "2",
        "--dead-letter-topic",
        &router_topics.dead_letter,
        "--results-topic",
        &format!("{}.results", topics.plugins),
    ];
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply"];
        args.extend(plan);
        args.extend(extra);
        let run = ctl(&env, &args);
        assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    };
    apply(&[]);

    // State written through the registry: plugins (one deregistered: a tombstone), an enablement, a
    // config with a sealed secret; and a tombstone with a header written beside them.
    let registry = start(&topics, &dir.join("registry-1.log"));
    registry.wait_ready().await;
    let admin = admin();
    for manifest in [
        json!({"id": "sms-notify", "name": "SMS", "version": "1.2.0", "events": ["response.submitted"]}),
        json!({"id": "gone", "name": "Gone", "version": "1.0.0", "events": ["response.submitted"]}),
        json!({"id": "sheets-export", "name": "Sheets", "version": "2.0.0", "events": ["response.submitted"],
               "config_schema": {"type": "object", "properties": {
                   "spreadsheet_id": {"type": "string"}, "api_key": {"type": "string", "writeOnly": true}}}}),
    ] {
        let (status, body) = http(
            "POST",
            &format!("{}/v1/plugins", registry.url),
            Some(&admin),
            Some(&manifest),
        )
        .await;
        assert!(status == 200 || status == 201, "{status} {body}");
    }
    let (status, _) = http(
        "DELETE",
        &format!("{}/v1/plugins/gone", registry.url),
        Some(&admin),
        None,
    )
    .await;
    assert!(status == 200 || status == 204, "{status}");
    let acme = team("acme");
    for plugin in ["sms-notify", "sheets-export"] {
        let (status, body) = http(
            "PUT",
            &format!("{}/v1/teams/acme/plugins/{plugin}", registry.url),
            Some(&acme),
            Some(&json!({"enabled": true})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = http(
        "PUT",
        &format!("{}/v1/teams/acme/plugins/sheets-export/config", registry.url),
        Some(&acme),
        Some(&json!({"spreadsheet_id": "sheet-9", "api_key": "sk-secret"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let producer = TestProducer::new();
    producer.send(
        &topics.enablements,
        &Outgoing {
            key: Some(b"nobody/nothing".to_vec()),
            value: None,
            headers: vec![("x-written-by".to_owned(), Some(b"the test".to_vec()))],
        },
    );
    producer.flush();
    let before = registry_state(&registry.url).await;
    assert_eq!(before["gone"], 404);
    assert!(registry.terminate().success());

    let store = store_topics(&env);
    let state: BTreeMap<String, _> = store.iter().map(|t| (t.clone(), latest(t))).collect();
    assert!(
        state[&topics.plugins].values().any(|(value, _)| value.is_none()),
        "the deregistration's tombstone"
    );

    // Backup: a manifest naming every store topic, a file per topic.
    let backup = dir.join("backup");
    let taken = ctl(&env, &["--json", "backup", backup.to_str().unwrap()]);
    assert_eq!(taken.code, 0, "{}{}", taken.out, taken.err);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(backup.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "switchyard-control-topics-backup/1");
    let backed_up: BTreeSet<String> = manifest["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(backed_up, store);
    let plugins_entry = manifest["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == topics.plugins.as_str())
        .unwrap();
    assert_eq!(plugins_entry["records"], state[&topics.plugins].len());
    assert!(plugins_entry["tombstones"].as_u64().unwrap() >= 1);
    // A second backup into the same directory is refused.
    assert_eq!(ctl(&env, &["backup", backup.to_str().unwrap()]).code, 1);

    // The control topics are lost, then created again, empty.
    let names: Vec<&str> = store.iter().map(String::as_str).collect();
    delete_topics(&names).await;
    wait_for(
        "the control topics to be gone",
        Duration::from_secs(30),
        || async { names.iter().all(|t| topic_partitions(t).is_none()).then_some(()) },
    )
    .await;
    wait_for(
        "the control topics to be created again",
        Duration::from_secs(30),
        || async {
            let mut args = vec!["apply"];
            args.extend(plan);
            (ctl(&env, &args).code == 0).then_some(())
        },
    )
    .await;
    assert!(store.iter().all(|t| latest(t).is_empty()));

    // Restore: every key's latest record, value, headers and tombstones, as before.
    let restored = ctl(&env, &["restore", backup.to_str().unwrap()]);
    assert_eq!(restored.code, 0, "{}{}", restored.out, restored.err);
    for (topic, records) in &state {
        assert_eq!(&latest(topic), records, "{topic}");
    }
    // Restoring again would lay old state over new: refused, nothing written.
    let again = ctl(&env, &["restore", backup.to_str().unwrap()]);
    assert_eq!(again.code, 1);
    assert!(
        again.err.contains("holds records") && again.err.contains("nothing was restored"),
        "{}",
        again.err
    );

    // The registry and a router on the restored topics see the same state.
    let registry = start(&topics, &dir.join("registry-2.log"));
    registry.wait_ready().await;
    assert_eq!(registry_state(&registry.url).await, before);
    let router = InProcessRouter::start(&router_topics, &[]);
    router.admin.wait_ready().await;
    producer.send(
        &router_topics.core,
        &core_event("acme", "response.submitted", "e-after-restore", ContentType::Json),
    );
    producer.flush();
    for plugin in ["sms-notify", "sheets-export"] {
        let routed = wait_for(
            "the event on the plugin topic",
            Duration::from_secs(30),
            || async {
                let records = read_to_end(&topics.events(plugin));
                (!records.is_empty()).then_some(records)
            },
        )
        .await;
        assert_eq!(
            routed[0].header("ce_id").as_deref(),
            Some("e-after-restore"),
            "{plugin}"
        );
    }

    // The registered plugins' topics, which the registry made at registration, are born with the plan's
    // settings (its store topics too: every line is `ok`, nothing to alter); the deregistered plugin is not
    // among them.
    let mut args = vec!["apply", "--registered-plugins", "--alter-configs"];
    args.extend(plan);
    let registered = ctl(&env, &args);
    assert_eq!(registered.code, 0, "{}{}", registered.out, registered.err);
    for plugin in ["sms-notify", "sheets-export"] {
        for topic in [topics.events(plugin), topics.dead_letter(plugin)] {
            assert!(
                registered.out.contains(&format!("ok       {topic}\n")),
                "{topic}: {}",
                registered.out
            );
        }
    }
    assert!(!registered.out.contains("altered  "), "{}", registered.out);
    assert!(
        !registered.out.contains(&topics.events("gone")),
        "{}",
        registered.out
    );
    assert!(registry.terminate().success());
    drop(router);
    std::fs::remove_dir_all(&dir).ok();
}
