//! Backfills through a registry served on loopback (`app::run`, so its release loop runs), over its real
//! store, without a router: the progress records a router would write are produced by hand. What the
//! registry writes to its topics (the backfill record, the enablement holding the installation, then
//! letting go of it) is read back from Kafka.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use switchyard_registry::backfills::request::rfc3339_ms;
use switchyard_schemas::backfill::{Progress, State, progress_key};
use switchyard_schemas::topics::partition_for_key;
use switchyard_service::kafka::KafkaContext;
use switchyard_tests::broker::{Incoming, Outgoing, TestProducer, clients, create_topics, read_to_end};
use switchyard_tests::registries::{RegistryTopics, ServedRegistry, admin, http, team};
use switchyard_tests::wait::wait_for;

const PARTITIONS: i32 = 3;
const DAY_MS: i64 = 86_400_000;
const SHEETS: &str = "/v1/teams/acme/plugins/sheets-export";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The value of the last record of `key` on `topic`, as JSON (`Null` for a tombstone or none).
fn last_value(topic: &str, key: &str) -> Value {
    read_to_end(topic)
        .into_iter()
        .rev()
        .find(|r: &Incoming| r.key.as_deref() == Some(key.as_bytes()))
        .and_then(|r| r.value)
        .map_or(Value::Null, |v| serde_json::from_slice(&v).unwrap())
}

/// Events of `core.events` with the timestamps the producers gave them: `(partition, timestamp)`.
fn produce_history(topic: &str, events: &[(i32, i64)]) {
    let producer: BaseProducer<KafkaContext> =
        clients().producer("backfill-history").create().expect("producer");
    for &(partition, timestamp) in events {
        producer
            .send(
                BaseRecord::to(topic)
                    .partition(partition)
                    .key("acme")
                    .payload(r#"{"history": true}"#)
                    .timestamp(timestamp),
            )
            .map_err(|(error, _)| error)
            .expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Removes the records of `partition` before `offset`, as retention would.
async fn delete_before(topic: &str, partition: i32, offset: i64) {
    let admin: AdminClient<KafkaContext> = clients()
        .admin("backfill-retention-test")
        .create()
        .expect("admin");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(offset))
        .expect("offset");
    let deleted = admin
        .delete_records(&list, &AdminOptions::new())
        .await
        .expect("delete records");
    assert_eq!(
        deleted.elements()[0].offset(),
        Offset::Offset(offset),
        "the new low watermark"
    );
}

/// A progress record as the router writes it.
fn progress(backfill: &str, partition: i32, live_from: Option<i64>, state: State) -> Progress {
    let now = now_ms();
    Progress {
        backfill: backfill.into(),
        partition,
        from: 0,
        until: 3,
        hold: 3,
        next: if live_from.is_some() { 3 } else { 1 },
        live_from,
        state,
        stopped_at: (state == State::Cancelled).then_some(1),
        error: None,
        scanned: 1,
        matched: 1,
        written: 1,
        dead_lettered: 0,
        started_at: rfc3339_ms(now - 2000),
        updated_at: rfc3339_ms(now),
    }
}

fn write_progress(topic: &str, progress: &Progress) {
    let producer = TestProducer::new();
    producer.send(
        topic,
        &Outgoing {
            key: Some(progress_key(&progress.backfill, progress.partition).into_bytes()),
            value: Some(serde_json::to_vec(progress).unwrap()),
            headers: Vec::new(),
        },
    );
    producer.flush();
}

/// `POST` returning the `Location` header too.
async fn post(url: &str, token: &str, body: &Value) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("registry answers");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (status, location, response.json().await.expect("JSON"))
}

fn pointers(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("errors: {problem}"))
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfills_hold_an_installation_until_the_router_hands_it_over() {
    let topics = RegistryTopics::unique();
    create_topics(&[(&topics.core_events, PARTITIONS, false)]).await;
    // The team's partition holds events from two days ago on, an older one having been removed (as
    // retention would); another partition holds older ones, which a backfill of this team cannot read and
    // so do not count.
    let own = partition_for_key(b"acme", PARTITIONS);
    let other = (own + 1) % PARTITIONS;
    let earliest = now_ms() - 2 * DAY_MS;
    produce_history(
        &topics.core_events,
        &[
            (other, now_ms() - 10 * DAY_MS),
            (own, now_ms() - 5 * DAY_MS),
            (own, earliest),
            (own, now_ms() - DAY_MS),
        ],
    );
    delete_before(&topics.core_events, own, 1).await;
    // Gauges refreshed every second.
    let registry = ServedRegistry::start(&topics, &[("HEARTBEAT__TTL_MS", "1000")]).await;
    let url = |path: &str| format!("{}{path}", registry.url);
    let acme = team("acme");
    let manifest = json!({"id": "sheets-export", "name": "Sheets", "version": "1.0.0",
        "url": "http://127.0.0.1:9", "events": ["response.submitted", "form.created"], "actions": [],
        "installations": true});
    let (status, body) = http("POST", &url("/v1/plugins"), Some(&admin()), Some(&manifest)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(
        "PUT",
        &url(SHEETS),
        Some(&acme),
        Some(&json!({"enabled": true, "event_types": ["response.submitted"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Refused bodies: every field error named.
    let backfills = url(&format!("{SHEETS}/backfills"));
    let day_ago = rfc3339_ms(now_ms() - DAY_MS);
    for (body, expected) in [
        (json!({"since": "yesterday"}), vec!["/since"]),
        (json!({"since": rfc3339_ms(now_ms() + DAY_MS)}), vec!["/since"]),
        (
            json!({"since": day_ago, "until": rfc3339_ms(now_ms() - 2 * DAY_MS)}),
            vec!["/until"],
        ),
        (
            json!({"since": day_ago, "event_types": ["response.submitted", "form.created"]}),
            vec!["/event_types/1"],
        ),
        (json!({"since": day_ago, "rate": 0}), vec!["/rate"]),
        (json!({"since": day_ago, "rate": 1_000_001}), vec!["/rate"]),
        (json!({"since": day_ago, "cancel_requested": true}), vec![""]),
    ] {
        let (status, problem) = http("POST", &backfills, Some(&acme), Some(&body)).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(pointers(&problem), expected, "{body}: {problem}");
    }
    let (status, _) = http(
        "POST",
        &url(&format!("{SHEETS}/installations/nope/backfills")),
        Some(&acme),
        Some(&json!({"since": day_ago})),
    )
    .await;
    assert_eq!(status, 404, "no such installation");

    // Further back than the team's partition reaches: refused, or moved up to its oldest event.
    let three_days_ago = rfc3339_ms(now_ms() - 3 * DAY_MS);
    let (status, problem) = http(
        "POST",
        &backfills,
        Some(&acme),
        Some(&json!({"since": three_days_ago})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(pointers(&problem), ["/since"]);
    assert_eq!(problem["earliest_available"], rfc3339_ms(earliest), "{problem}");
    let (status, location, started) = post(
        &backfills,
        &acme,
        &json!({"since": three_days_ago, "on_retention": "earliest", "rate": 100}),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let first = started["id"].as_str().unwrap().to_owned();
    assert_eq!(
        location.as_deref(),
        Some(format!("/v1/teams/acme/backfills/{first}").as_str())
    );
    assert_eq!(
        started,
        json!({"id": first, "team_id": "acme", "plugin_id": "sheets-export", "installation": "default",
               "since": rfc3339_ms(earliest), "rate": 100, "state": "pending",
               "requested_at": started["requested_at"], "updated_at": started["updated_at"],
               "cancel_requested": false,
               "warning": {"code": "since_before_retention", "since_adjusted_to": rfc3339_ms(earliest)}})
    );
    // The registry's record, then the enablement holding the installation, everything else kept.
    let record = last_value(&topics.backfills, &first);
    assert_eq!(
        (&record["team_id"], &record["since"], &record["rate"]),
        (&json!("acme"), &json!(rfc3339_ms(earliest)), &json!(100))
    );
    let enablement = last_value(&topics.enablements, "acme/sheets-export");
    assert_eq!(
        (
            &enablement["enabled"],
            &enablement["event_types"],
            &enablement["backfill"]
        ),
        (
            &json!(true),
            &json!(["response.submitted"]),
            &json!({"id": first, "since": rfc3339_ms(earliest), "rate": 100})
        )
    );
    let (status, conflict) = http("POST", &backfills, Some(&acme), Some(&json!({"since": day_ago}))).await;
    assert_eq!(status, 409, "one at a time: {conflict}");

    // Reading it: by installation, by team, alone; not as another team, not under another team.
    let (status, listed) = http("GET", &backfills, Some(&acme), None).await;
    assert_eq!((status, listed[0]["id"].as_str()), (200, Some(first.as_str())));
    let one = url(&format!("/v1/teams/acme/backfills/{first}"));
    let (status, shown) = http("GET", &one, Some(&acme), None).await;
    assert_eq!((status, &shown["state"]), (200, &json!("pending")));
    assert!(
        shown.get("warning").is_none(),
        "only the answer that started it warns"
    );
    let (status, _) = http("GET", &one, Some(&team("globex")), None).await;
    assert_eq!(status, 403);
    let (status, _) = http(
        "GET",
        &url(&format!("/v1/teams/globex/backfills/{first}")),
        Some(&admin()),
        None,
    )
    .await;
    assert_eq!(status, 404, "another team's backfill is not found");

    // Cancel: in the record and in the enablement's request; again while it has not ended.
    for _ in 0..2 {
        let (status, cancelled) = http("DELETE", &one, Some(&acme), None).await;
        assert_eq!(status, 202, "{cancelled}");
        assert_eq!(
            (&cancelled["state"], &cancelled["cancel_requested"]),
            (&json!("pending"), &json!(true))
        );
    }
    assert_eq!(last_value(&topics.backfills, &first)["cancel_requested"], true);
    assert_eq!(
        last_value(&topics.enablements, "acme/sheets-export")["backfill"]["cancel_requested"],
        true
    );

    // The router hands the installation back: the registry lets go of it, keeping everything else.
    write_progress(
        &topics.backfill_progress,
        &progress(&first, own, Some(3), State::Cancelled),
    );
    let released = wait_for(
        "the registry to let go of the installation",
        Duration::from_secs(10),
        || async {
            let enablement = last_value(&topics.enablements, "acme/sheets-export");
            enablement.get("backfill").is_none().then_some(enablement)
        },
    )
    .await;
    assert_eq!(
        (&released["enabled"], &released["event_types"]),
        (&json!(true), &json!(["response.submitted"]))
    );
    let (_, shown) = http("GET", &one, Some(&acme), None).await;
    assert_eq!(
        (&shown["state"], &shown["progress"]["live_from"]),
        (&json!("cancelled"), &json!(3))
    );
    let (status, _) = http("DELETE", &one, Some(&acme), None).await;
    assert_eq!(status, 409, "it has ended");

    // With a new installation, in its PUT; the running one shows its progress and ETA and stays held.
    let forms_bc = url(&format!("{SHEETS}/installations/forms-bc"));
    let (status, installed) = http(
        "PUT",
        &forms_bc,
        Some(&acme),
        Some(&json!({"enabled": true, "form_ids": ["f-b"], "backfill": {"since": day_ago}})),
    )
    .await;
    assert_eq!(status, 200, "{installed}");
    assert_eq!(
        (
            &installed["installation"],
            &installed["backfill"]["installation"],
            &installed["backfill"]["state"]
        ),
        (&json!("forms-bc"), &json!("forms-bc"), &json!("pending"))
    );
    assert!(installed["backfill"].get("warning").is_none(), "{installed}");
    let second = installed["backfill"]["id"].as_str().unwrap().to_owned();
    let (status, conflict) = http(
        "PUT",
        &forms_bc,
        Some(&acme),
        Some(&json!({"enabled": true, "backfill": {"since": day_ago}})),
    )
    .await;
    assert_eq!(status, 409, "{conflict}");
    let (status, changed) = http(
        "PUT",
        &forms_bc,
        Some(&acme),
        Some(&json!({"enabled": true, "form_ids": ["f-b", "f-c"]})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert!(changed.get("backfill").is_none(), "{changed}");
    assert_eq!(
        last_value(&topics.enablements, "acme/sheets-export/forms-bc")["backfill"]["id"],
        second,
        "a change of the installation keeps it held"
    );
    write_progress(
        &topics.backfill_progress,
        &progress(&second, own, None, State::Running),
    );
    let running = wait_for("the progress to show", Duration::from_secs(10), || async {
        let (_, shown) = http(
            "GET",
            &url(&format!("/v1/teams/acme/backfills/{second}")),
            Some(&acme),
            None,
        )
        .await;
        (shown["state"] == "running").then_some(shown)
    })
    .await;
    // Two offsets of history left, every record matches, one copy in two seconds: four seconds.
    assert_eq!(running["eta_seconds"], 4, "{running}");

    // And the default installation, free again, in the v1 PUT.
    let (status, enabled) = http(
        "PUT",
        &url(SHEETS),
        Some(&acme),
        Some(&json!({"enabled": true, "backfill": {"since": day_ago, "until": rfc3339_ms(now_ms())}})),
    )
    .await;
    assert_eq!(status, 200, "{enabled}");
    let third = enabled["backfill"]["id"].as_str().unwrap().to_owned();
    let (_, all) = http("GET", &url("/v1/teams/acme/backfills"), Some(&acme), None).await;
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [&third, &second, &first], "newest first");
    let (_, of_forms_bc) = http(
        "GET",
        &url(&format!("{SHEETS}/installations/forms-bc/backfills")),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(of_forms_bc.as_array().map(Vec::len), Some(1), "{of_forms_bc}");

    wait_for("the backfill gauge", Duration::from_secs(10), || async {
        let pending = registry
            .admin
            .metric(r#"switchyard_registry_backfills{state="pending"}"#)
            .await;
        let running = registry
            .admin
            .metric(r#"switchyard_registry_backfills{state="running"}"#)
            .await;
        let cancelled = registry
            .admin
            .metric(r#"switchyard_registry_backfills{state="cancelled"}"#)
            .await;
        (pending == 1.0 && running == 1.0 && cancelled == 1.0).then_some(())
    })
    .await;
    assert_eq!(
        last_value(&topics.enablements, "acme/sheets-export/forms-bc")["backfill"]["id"],
        second,
        "a running backfill keeps its installation held"
    );
    registry.stop().await;
}
