//! A plugin's dead letters and its workers' consumer lag through the registry's API (in process, on its
//! real store and the broker). The dead letters are written as a plugin worker writes them: the runtime's
//! own `records::dead_letter` builds them in the first test, a running worker writes them in the second,
//! whose consumer group's commits are what the lag route answers.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use switchyard_plugin_runtime::delivery::records::{DeadReason, Failure, OutRecord, dead_letter};
use switchyard_plugin_runtime::plugin::Outcome;
use switchyard_plugin_runtime::settings::Settings;
use switchyard_schemas::envelope::ContentType;
use switchyard_service::config::Layered as _;
use switchyard_tests::broker::{
    Outgoing, TestProducer, delete_topics, read_to_end, topic_partitions, unique,
};
use switchyard_tests::records::core_event;
use switchyard_tests::registries::{InProcessRegistry, admin, plugin, team};
use switchyard_tests::wait::wait_for;
use switchyard_tests::workers::{InProcessWorker, ScriptedPlugin, WorkerTopics};

fn manifest(id: &str) -> Value {
    json!({"id": id, "name": id, "version": "1.0.0", "url": "http://127.0.0.1",
           "events": ["response.submitted"], "installations": true})
}

async fn register(registry: &InProcessRegistry, id: &str) {
    let answer = registry
        .call("POST", "/v1/plugins", Some(&admin()), Some(&manifest(id)))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
}

/// A dead letter as a worker writes it for the routed copy of `team`'s event `event_id` (of
/// `installation`, when not the default one), read from `plugin.<id>.events` at `source_offset`.
fn worker_dead_letter(
    plugin_id: &str,
    team_id: &str,
    event_id: &str,
    installation: Option<&str>,
    content_type: ContentType,
    failure: Failure,
) -> Outgoing {
    let event = core_event(team_id, "response.submitted", event_id, content_type);
    let mut headers = event.headers.clone();
    if let Some(installation) = installation {
        headers.push((
            "switchyard_installation".to_owned(),
            Some(installation.as_bytes().to_vec()),
        ));
    }
    let routed = OutRecord {
        key: event.key.clone(),
        value: event.value.clone(),
        headers,
    };
    let source = format!("plugin.{plugin_id}.events/0/{}", event_id.len());
    let letter = dead_letter(&routed, plugin_id, &source, &failure);
    Outgoing {
        key: letter.key,
        value: letter.value,
        headers: letter.headers,
    }
}

fn failure(reason: DeadReason, attempts: u32) -> Failure {
    Failure {
        reason,
        detail: format!("{} after {attempts} calls", reason.code()),
        attempts,
        first_failure: Some("2026-12-05T10:00:00Z".to_owned()),
        last_failure: Some("2026-12-05T10:09:00Z".to_owned()),
    }
}

fn event_ids(answer: &Value) -> Vec<String> {
    answer
        .as_array()
        .unwrap_or_else(|| panic!("a list: {answer}"))
        .iter()
        .map(|l| l["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The path of a `Link: <path>; rel="next"` header.
fn next_path(headers: &axum::http::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().unwrap();
    Some(link.trim_start_matches('<').split('>').next().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_see_and_replay_only_their_own_dead_letters() {
    let registry = InProcessRegistry::start(&[]).await;
    let id = unique("dl");
    register(&registry, &id).await;
    let dlq = registry.topics.dead_letter(&id);
    let events = registry.topics.events(&id);

    // Interleaved, as workers write them: acme's a1, a2 (installation forms-bc, Avro), a3 (a header that is
    // not UTF-8), and globex's g1, g2.
    let producer = TestProducer::new();
    let mut a3 = worker_dead_letter(
        &id,
        "acme",
        "a3",
        None,
        ContentType::Json,
        failure(DeadReason::ConfigRejected, 1),
    );
    a3.headers.push(("binary".to_owned(), Some(vec![0xc3, 0x28])));
    let written = [
        worker_dead_letter(
            &id,
            "acme",
            "a1",
            None,
            ContentType::Json,
            failure(DeadReason::RetriesExhausted, 8),
        ),
        worker_dead_letter(
            &id,
            "globex",
            "g1",
            None,
            ContentType::Json,
            failure(DeadReason::RetriesExhausted, 8),
        ),
        worker_dead_letter(
            &id,
            "acme",
            "a2",
            Some("forms-bc"),
            ContentType::Avro,
            failure(DeadReason::PluginDeadLetter, 1),
        ),
        worker_dead_letter(
            &id,
            "globex",
            "g2",
            None,
            ContentType::Json,
            failure(DeadReason::InvalidEvent, 1),
        ),
        a3,
    ];
    for letter in &written {
        producer.send(&dlq, letter);
    }
    producer.flush();
    let value_of = |event_id: &str| {
        written
            .iter()
            .find(|l| {
                l.headers
                    .iter()
                    .any(|(n, v)| n == "ce_id" && v.as_deref() == Some(event_id.as_bytes()))
            })
            .and_then(|l| l.value.clone())
            .unwrap()
    };

    // A team lists its own, newest first.
    let base = format!("/v1/teams/acme/plugins/{id}/dead-letters");
    let acme = registry.call("GET", &base, Some(&team("acme")), None).await;
    assert_eq!(acme.status, StatusCode::OK, "{}", acme.json);
    assert_eq!(event_ids(&acme.json), ["a3", "a2", "a1"]);
    let by_event: BTreeMap<String, Value> = acme
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["event_id"].as_str().unwrap().to_owned(), l.clone()))
        .collect();
    let a2 = &by_event["a2"];
    let (partition, offset) = (a2["partition"].as_i64().unwrap(), a2["offset"].as_i64().unwrap());
    assert_eq!(a2["id"], format!("{partition}-{offset}"));
    assert_eq!(a2["team"], "acme");
    assert_eq!(a2["event_type"], "response.submitted");
    assert_eq!(a2["installation"], "forms-bc");
    assert_eq!(a2["reason"], "plugin_dead_letter");
    assert_eq!(a2["detail"], "plugin_dead_letter after 1 calls");
    assert_eq!(a2["attempts"], 1, "a number");
    assert_eq!(a2["first_failure"], "2026-12-05T10:00:00Z");
    assert_eq!(a2["last_failure"], "2026-12-05T10:09:00Z");
    assert_eq!(a2["source"], format!("plugin.{id}.events/0/2"));
    assert_eq!(a2["bytes"], value_of("a2").len());
    assert!(a2.get("replayed_from").is_none(), "not a replay");
    assert!(a2["dead_lettered_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        by_event["a1"]["installation"],
        Value::Null,
        "the default installation"
    );
    assert_eq!(by_event["a1"]["attempts"], 8);
    let globex = registry
        .call(
            "GET",
            &format!("/v1/teams/globex/plugins/{id}/dead-letters"),
            Some(&team("globex")),
            None,
        )
        .await;
    assert_eq!(event_ids(&globex.json), ["g2", "g1"]);
    let g1 = globex.json[1]["id"].as_str().unwrap().to_owned();

    // Paging and the filters, which the next page's link keeps.
    let first = registry
        .call("GET", &format!("{base}?limit=2"), Some(&team("acme")), None)
        .await;
    assert_eq!(event_ids(&first.json), ["a3", "a2"]);
    let next = next_path(&first.headers).expect("a next page");
    let second = registry.call("GET", &next, Some(&team("acme")), None).await;
    assert_eq!(event_ids(&second.json), ["a1"]);
    assert!(next_path(&second.headers).is_none(), "the last page");
    let default = registry
        .call(
            "GET",
            &format!("{base}?installation=default&limit=1"),
            Some(&team("acme")),
            None,
        )
        .await;
    assert_eq!(event_ids(&default.json), ["a3"]);
    let next = next_path(&default.headers).expect("a next page");
    assert!(next.contains("installation=default"), "{next}");
    let rest = registry.call("GET", &next, Some(&team("acme")), None).await;
    assert_eq!(event_ids(&rest.json), ["a1"]);
    let named = registry
        .call(
            "GET",
            &format!("{base}?installation=forms-bc"),
            Some(&team("acme")),
            None,
        )
        .await;
    assert_eq!(event_ids(&named.json), ["a2"]);
    let future = registry
        .call(
            "GET",
            &format!("{base}?since=2999-01-01T00:00:00Z"),
            Some(&team("acme")),
            None,
        )
        .await;
    assert_eq!(event_ids(&future.json), Vec::<String>::new());
    let past = registry
        .call(
            "GET",
            &format!("{base}?since=2020-01-01T00:00:00Z"),
            Some(&team("acme")),
            None,
        )
        .await;
    assert_eq!(event_ids(&past.json), ["a3", "a2", "a1"]);
    let bad = registry
        .call(
            "GET",
            &format!("{base}?since=yesterday"),
            Some(&team("acme")),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.json);

    // One letter whole.
    let detail = registry
        .call(
            "GET",
            &format!("{base}/{}", a2["id"].as_str().unwrap()),
            Some(&team("acme")),
            None,
        )
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.json);
    for field in [
        "id",
        "partition",
        "offset",
        "team",
        "event_id",
        "reason",
        "attempts",
        "source",
        "bytes",
    ] {
        assert_eq!(detail.json[field], a2[field], "{field}");
    }
    assert_eq!(detail.json["content_type"], "application/avro");
    assert_eq!(
        detail.json["payload"],
        json!({"encoding": "base64", "value": STANDARD.encode(value_of("a2"))})
    );
    let headers = detail.json["headers"].as_array().unwrap();
    assert_eq!(headers.len(), written[2].headers.len(), "every header");
    assert!(
        headers
            .contains(&json!({"name": "switchyard_installation", "value": "forms-bc", "encoding": "text"}))
    );
    assert!(headers.contains(&json!({"name": "switchyard_attempts", "value": "1", "encoding": "text"})));
    let a1 = by_event["a1"]["id"].as_str().unwrap().to_owned();
    let a1_detail = registry
        .call("GET", &format!("{base}/{a1}"), Some(&team("acme")), None)
        .await;
    let a1_value: Value = serde_json::from_slice(&value_of("a1")).unwrap();
    assert_eq!(
        a1_detail.json["payload"],
        json!({"encoding": "json", "value": a1_value})
    );
    let a3_id = by_event["a3"]["id"].as_str().unwrap().to_owned();
    let a3_detail = registry
        .call("GET", &format!("{base}/{a3_id}"), Some(&admin()), None)
        .await;
    assert!(
        a3_detail.json["headers"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "binary", "value": "wyg=", "encoding": "base64"})),
        "{}",
        a3_detail.json
    );

    // Another team's letter does not exist for this team, whoever asks through the team's route.
    for token in [team("acme"), admin()] {
        let foreign = registry
            .call("GET", &format!("{base}/{g1}"), Some(&token), None)
            .await;
        assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.json);
        assert_eq!(
            foreign.json["detail"],
            format!("this team has no dead letter {g1} of {id}")
        );
    }
    for missing in ["0-999999", "9-0", "not-a-letter", "00-1"] {
        let answer = registry
            .call("GET", &format!("{base}/{missing}"), Some(&team("acme")), None)
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{missing}: {}", answer.json);
    }

    // The plugin itself sees every team's, each with its team.
    let all = registry
        .call(
            "GET",
            &format!("/v1/plugins/{id}/dead-letters"),
            Some(&plugin(&id)),
            None,
        )
        .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.json);
    let mut teams: Vec<(String, String)> = all
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["event_id"].as_str().unwrap().to_owned(),
                l["team"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let times: Vec<&str> = all
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["dead_lettered_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    teams.sort();
    assert_eq!(
        teams,
        [
            ("a1", "acme"),
            ("a2", "acme"),
            ("a3", "acme"),
            ("g1", "globex"),
            ("g2", "globex")
        ]
        .map(|(e, t)| (e.to_owned(), t.to_owned()))
    );
    let theirs = registry
        .call(
            "GET",
            &format!("/v1/plugins/{id}/dead-letters/{g1}"),
            Some(&plugin(&id)),
            None,
        )
        .await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.json);
    assert_eq!(theirs.json["team"], "globex");
    let unknown = registry
        .call(
            "GET",
            "/v1/teams/acme/plugins/not-registered/dead-letters",
            Some(&admin()),
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // A replay naming another team's letter, or one that does not exist, replays nothing.
    let replay = format!("{base}/replay");
    let refused = registry
        .call(
            "POST",
            &replay,
            Some(&team("acme")),
            Some(&json!({"letters": [a1, g1, "0-999999"]})),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.json
    );
    let pointers: Vec<&str> = refused.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/letters/1", "/letters/2"]);
    assert!(read_to_end(&events).is_empty(), "nothing replayed");

    // A selection: a dry run first, then written, in log order.
    let a2_id = a2["id"].as_str().unwrap().to_owned();
    let dry = registry
        .call(
            "POST",
            &replay,
            Some(&team("acme")),
            Some(&json!({"letters": [a2_id, a1], "dry_run": true})),
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.json);
    assert_eq!(
        dry.json,
        json!({"dry_run": true, "count": 2, "letters": [a1, a2_id]})
    );
    assert!(read_to_end(&events).is_empty(), "a dry run writes nothing");
    let done = registry
        .call(
            "POST",
            &replay,
            Some(&team("acme")),
            Some(&json!({"letters": [a2_id, a1]})),
        )
        .await;
    assert_eq!(
        done.json,
        json!({"dry_run": false, "count": 2, "letters": [a1, a2_id]})
    );
    let replayed = read_to_end(&events);
    assert_eq!(replayed.len(), 2);
    for (record, (event_id, letter)) in replayed.iter().zip([("a1", &a1), ("a2", &a2_id)]) {
        let (p, o) = letter.split_once('-').unwrap();
        assert_eq!(record.header("ce_id").as_deref(), Some(event_id));
        assert_eq!(
            record.header("switchyard_replayed_from"),
            Some(format!("{dlq}/{p}/{o}"))
        );
        assert_eq!(
            record.header("switchyard_error"),
            None,
            "the dead-letter headers are removed"
        );
        assert_eq!(record.header("switchyard_attempts"), None);
        assert!(record.header("switchyard_source").is_some(), "the source stays");
        assert_eq!(record.key.as_deref(), Some(b"acme".as_slice()));
        assert_eq!(record.value.as_deref(), Some(value_of(event_id).as_slice()));
    }
    assert_eq!(
        replayed[1].header("switchyard_installation").as_deref(),
        Some("forms-bc")
    );

    // All of them: every one of the team's, or those of an installation.
    let all_dry = registry
        .call(
            "POST",
            &replay,
            Some(&team("acme")),
            Some(&json!({"all": true, "dry_run": true})),
        )
        .await;
    assert_eq!(all_dry.json["count"], 3, "{}", all_dry.json);
    assert_eq!(read_to_end(&events).len(), 2);
    let defaults = registry
        .call(
            "POST",
            &replay,
            Some(&team("acme")),
            Some(&json!({"all": true, "installation": "default"})),
        )
        .await;
    assert_eq!(
        defaults.json,
        json!({"dry_run": false, "count": 2, "letters": [a1, a3_id]})
    );
    let replayed = read_to_end(&events);
    let ids: Vec<String> = replayed.iter().map(|r| r.header("ce_id").unwrap()).collect();
    assert_eq!(ids, ["a1", "a2", "a1", "a3"]);

    // Each replay is recorded, by the letter, with who asked and where the copy went: a1's twice.
    let mut records: BTreeMap<String, Value> = BTreeMap::new();
    for record in read_to_end(&registry.topics.dead_letter_replays) {
        let key = String::from_utf8(record.key.unwrap()).unwrap();
        records.insert(key, serde_json::from_slice(&record.value.unwrap()).unwrap());
    }
    let key = |letter: &str| {
        let (p, o) = letter.split_once('-').unwrap();
        format!("{dlq}/{p}/{o}")
    };
    assert_eq!(
        records.keys().cloned().collect::<Vec<_>>(),
        {
            let mut keys = vec![key(&a1), key(&a2_id), key(&a3_id)];
            keys.sort();
            keys
        },
        "{records:?}"
    );
    let to = |record: &switchyard_tests::broker::Incoming| json!({"topic": events, "partition": record.partition, "offset": record.offset});
    for (letter, copies) in [(&a1, vec![0, 2]), (&a2_id, vec![1]), (&a3_id, vec![3])] {
        let record = &records[&key(letter)];
        let (p, o) = letter.split_once('-').unwrap();
        assert_eq!(
            record["dead_letter"],
            json!({"topic": dlq, "partition": p.parse::<i32>().unwrap(), "offset": o.parse::<i64>().unwrap()})
        );
        let replays = record["replays"].as_array().unwrap();
        assert_eq!(replays.len(), copies.len(), "{record}");
        for (replay, copy) in replays.iter().zip(copies) {
            assert_eq!(replay["to"], to(&replayed[copy]), "{record}");
            assert_eq!(replay["by"], "team acme via the registry");
            assert!(
                replay["at"].as_str().is_some_and(|at| at.ends_with('Z')),
                "{record}"
            );
            assert_eq!(
                replayed[copy].header("switchyard_replayed_from"),
                Some(key(letter))
            );
        }
    }
    let globex_all = registry
        .call(
            "POST",
            &format!("/v1/teams/globex/plugins/{id}/dead-letters/replay"),
            Some(&team("globex")),
            Some(&json!({"all": true, "dry_run": true})),
        )
        .await;
    assert_eq!(globex_all.json["count"], 2, "{}", globex_all.json);

    // A plugin whose dead-letter topic does not exist (yet, or any more): nothing, at once.
    let bare = unique("dl");
    register(&registry, &bare).await;
    let bare_dlq = registry.topics.dead_letter(&bare);
    delete_topics(&[&bare_dlq]).await;
    wait_for("the dead-letter topic gone", Duration::from_secs(30), || async {
        topic_partitions(&bare_dlq).is_none().then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    let empty = registry
        .call(
            "GET",
            &format!("/v1/plugins/{bare}/dead-letters"),
            Some(&admin()),
            None,
        )
        .await;
    assert_eq!((empty.status, empty.json.clone()), (StatusCode::OK, json!([])));
    let none = registry
        .call(
            "POST",
            &format!("/v1/teams/acme/plugins/{bare}/dead-letters/replay"),
            Some(&team("acme")),
            Some(&json!({"all": true})),
        )
        .await;
    assert_eq!(none.json, json!({"dry_run": false, "count": 0, "letters": []}));
    let absent = registry
        .call(
            "GET",
            &format!("/v1/plugins/{bare}/dead-letters/0-0"),
            Some(&admin()),
            None,
        )
        .await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no wait for a topic that is not there: {:?}",
        started.elapsed()
    );
}

/// The group name of a plugin's workers by default: the runtime's own `delivery.group_id`.
fn runtime_group_template() -> String {
    Settings::load_from(None, Some(BTreeMap::new()))
        .expect("the runtime's defaults")
        .delivery
        .group_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_is_what_the_workers_group_committed() {
    let registry = InProcessRegistry::start(&[]).await;
    let id = unique("lag");
    register(&registry, &id).await;
    let lag_path = format!("/v1/plugins/{id}/lag");
    let lag = async || {
        let answer = registry.call("GET", &lag_path, Some(&plugin(&id)), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        answer.json
    };
    let group = runtime_group_template().replace("{plugin}", &id);
    let topics = WorkerTopics::of_registry(&id, &registry.topics).await;

    // Before any worker: every partition empty and nothing committed.
    let idle = lag().await;
    assert_eq!(idle["group"], group);
    assert_eq!(idle["topic"], topics.events);
    assert_eq!(
        idle["partitions"],
        json!([{"partition": 0, "committed": null, "end": 0, "lag": 0},
               {"partition": 1, "committed": null, "end": 0, "lag": 0},
               {"partition": 2, "committed": null, "end": 0, "lag": 0}])
    );
    assert_eq!(idle["total_lag"], 0);

    // Events for two teams; a worker with the runtime's group naming works through them, dead-lettering
    // the "bad" ones, and commits.
    let producer = TestProducer::new();
    for (team_id, event_id) in [
        ("acme", "ok-1"),
        ("globex", "bad-1"),
        ("acme", "bad-2"),
        ("globex", "ok-2"),
    ] {
        producer.send(
            &topics.events,
            &core_event(team_id, "response.submitted", event_id, ContentType::Json),
        );
    }
    producer.flush();
    let script = ScriptedPlugin::new(&id, |ctx| {
        let outcome = if ctx.meta.id.starts_with("bad") {
            Outcome::dead_letter("the sheet was deleted")
        } else {
            Outcome::done()
        };
        (Duration::ZERO, outcome)
    });
    let worker = InProcessWorker::start(
        script,
        topics.settings(&[("DELIVERY__GROUP_ID", &runtime_group_template())]),
    );
    let caught_up = wait_for("the workers' commits", Duration::from_secs(60), || async {
        let answer = lag().await;
        let partitions = answer["partitions"].as_array().unwrap().clone();
        let done = answer["total_lag"] == 0
            && partitions
                .iter()
                .all(|p| p["end"] == 0 || p["committed"] == p["end"]);
        done.then_some(answer)
    })
    .await;
    let ends: i64 = caught_up["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["end"].as_i64().unwrap())
        .sum();
    assert_eq!(ends, 4, "{caught_up}");

    // The worker's own dead letters, as the API lists them.
    let letters = wait_for("the worker's dead letters", Duration::from_secs(30), || async {
        let answer = registry
            .call(
                "GET",
                &format!("/v1/plugins/{id}/dead-letters"),
                Some(&plugin(&id)),
                None,
            )
            .await;
        (answer.json.as_array().map_or(0, Vec::len) == 2).then_some(answer.json)
    })
    .await;
    let mut seen: Vec<(String, String)> = letters
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["team"].as_str().unwrap().to_owned(),
                l["event_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [("acme", "bad-2"), ("globex", "bad-1")].map(|(t, e)| (t.to_owned(), e.to_owned()))
    );
    for letter in letters.as_array().unwrap() {
        assert_eq!(letter["reason"], "plugin_dead_letter");
        assert_eq!(letter["detail"], "the sheet was deleted");
        assert_eq!(letter["attempts"], 1);
        assert!(
            letter["source"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}/", topics.events)),
            "{letter}"
        );
    }
    worker.stop().await.expect("clean stop");

    // Two more events while no worker runs: the lag is theirs, the commits stay.
    for event_id in ["ok-3", "ok-4"] {
        producer.send(
            &topics.events,
            &core_event("acme", "response.submitted", event_id, ContentType::Json),
        );
    }
    producer.flush();
    let behind = lag().await;
    assert_eq!(behind["total_lag"], 2, "{behind}");
    for (before, after) in caught_up["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(behind["partitions"].as_array().unwrap())
    {
        assert_eq!(before["committed"], after["committed"], "{behind}");
        let grown = after["end"].as_i64().unwrap() - before["end"].as_i64().unwrap();
        assert_eq!(after["lag"].as_i64().unwrap(), grown, "{behind}");
    }
}
