//! Compare-and-set across two real `switchyard-registry` binaries: conflicting `If-Match` writes to one
//! config through both replicas, of which exactly one per version succeeds and the others get 412 naming
//! the winner; both replicas then show the same config at the same ETag, with the secret no write sent
//! still set. And the plugin version rule in a race: a lower version never replaces a higher one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::binaries::{free_address, log_path};
use switchyard_tests::registries::{RegistryProcess, RegistryTopics, admin, team};
use switchyard_tests::wait::wait_for;

/// Rounds of the race, and writers per replica in each: 5 × 2 × 10 = 100 conditional writes.
const ROUNDS: usize = 5;
const WRITERS_PER_REPLICA: usize = 10;

/// One answer: status, ETag, body.
struct Answer {
    status: u16,
    etag: Option<String>,
    json: Value,
}

async fn call(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    token: &str,
    if_match: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut request = client.request(method.parse().unwrap(), url).bearer_auth(token);
    if let Some(etag) = if_match {
        request = request.header("if-match", etag);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("the registry answers");
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    Answer {
        status,
        etag,
        json: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_if_match_writes_through_two_replicas_let_exactly_one_win_per_version() {
    let topics = RegistryTopics::unique();
    let (address_a, address_b) = (free_address(), free_address());
    let env: BTreeMap<String, String> = topics.env(address_a, &[]);
    let a = RegistryProcess::start(&env, address_a, &log_path("registry-cas-a"));
    let env: BTreeMap<String, String> = topics.env(address_b, &[]);
    let b = RegistryProcess::start(&env, address_b, &log_path("registry-cas-b"));
    a.wait_ready().await;
    b.wait_ready().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (admin, acme) = (admin(), team("acme"));

    let manifest = json!({
        "id": "sheets-export", "name": "Sheets", "version": "1.0.0", "events": ["response.submitted"],
        "config_schema": {"type": "object", "properties": {
            "sheet_id": {"type": "string"}, "api_token": {"type": "string", "writeOnly": true}}}});
    let registered = call(
        &client,
        "POST",
        &format!("{}/v1/plugins", a.url),
        &admin,
        None,
        Some(&manifest),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.json);
    let enable = format!("{}/v1/teams/acme/plugins/sheets-export", a.url);
    let enabled = call(
        &client,
        "PUT",
        &enable,
        &acme,
        None,
        Some(&json!({"enabled": true})),
    )
    .await;
    assert_eq!(enabled.status, 200, "{}", enabled.json);
    let config_at = |url: &str| format!("{url}/v1/teams/acme/plugins/sheets-export/config");
    let first = call(
        &client,
        "PUT",
        &config_at(&a.url),
        &acme,
        None,
        Some(&json!({"sheet_id": "initial", "api_token": "tok-never-resent"})),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.json);
    let mut etag = first.etag.expect("a config PUT answers its ETag");

    // Each round: every writer, half through each replica, names the same ETag.
    for round in 0..ROUNDS {
        // A replica that has not applied the named version yet waits for it before deciding.
        let mut writes = tokio::task::JoinSet::new();
        for writer in 0..2 * WRITERS_PER_REPLICA {
            let url = config_at(if writer % 2 == 0 { &a.url } else { &b.url });
            let (client, acme, etag) = (client.clone(), acme.clone(), etag.clone());
            writes.spawn(async move {
                let body = json!({"sheet_id": format!("round-{round}-writer-{writer}")});
                let answer = call(&client, "PUT", &url, &acme, Some(&etag), Some(&body)).await;
                (writer, answer)
            });
        }
        let answers = writes.join_all().await;
        let winners: Vec<_> = answers.iter().filter(|(_, a)| a.status == 200).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one write wins");
        let (winner, won) = winners[0];
        let new_etag = won.etag.clone().expect("the winner's ETag");
        assert_ne!(new_etag, etag);
        assert_eq!(
            won.json["config"]["sheet_id"],
            format!("round-{round}-writer-{winner}")
        );
        assert_eq!(
            won.json["secrets"]["/api_token"], "set",
            "the secret no write sent is kept"
        );
        for (writer, answer) in &answers {
            if writer == winner {
                continue;
            }
            assert_eq!(
                answer.status, 412,
                "round {round} writer {writer}: {}",
                answer.json
            );
            assert_eq!(answer.json["type"], "/problems/precondition-failed");
            assert_eq!(
                answer.json["current_etag"], new_etag,
                "the loser learns the winner's version"
            );
        }
        etag = new_etag;
    }

    // Both replicas converge on the last winner, at the same ETag.
    for replica in [&a.url, &b.url] {
        let shown = wait_for(
            "the replica to show the last write",
            Duration::from_secs(20),
            || async {
                let answer = call(&client, "GET", &config_at(replica), &acme, None, None).await;
                (answer.etag.as_deref() == Some(etag.as_str())).then_some(answer)
            },
        )
        .await;
        assert_eq!(shown.status, 200);
        assert!(
            shown.json["config"]["sheet_id"]
                .as_str()
                .unwrap()
                .starts_with(&format!("round-{}-", ROUNDS - 1))
        );
        assert_eq!(shown.json["secrets"]["/api_token"], "set");
    }

    // A stale ETag and If-None-Match on an existing config are refused; nothing changes.
    let stale = call(
        &client,
        "PUT",
        &config_at(&b.url),
        &acme,
        Some("\"0\""),
        Some(&json!({})),
    )
    .await;
    assert_eq!(stale.status, 412, "{}", stale.json);
    assert_eq!(stale.json["current_etag"], etag);

    // A body that fails its own checks is a 422 whatever its If-Match says (RFC 9110 section 13.2.1): a
    // backfill with a negative rate, under a stale ETag.
    let invalid = call(
        &client,
        "PUT",
        &format!("{}/v1/teams/acme/plugins/sheets-export", b.url),
        &acme,
        Some("\"0\""),
        Some(&json!({"enabled": true, "backfill": {"since": "2026-11-01T00:00:00Z", "rate": -40}})),
    )
    .await;
    assert_eq!(invalid.status, 422, "{}", invalid.json);
    assert_eq!(
        invalid.json["errors"][0]["pointer"], "/backfill/rate",
        "{}",
        invalid.json
    );

    // The version rule in a race: in each round a lower and a higher version register at once through
    // the two replicas; the higher one is always what both replicas end with.
    let plugins = |url: &str| format!("{url}/v1/plugins");
    for round in 1..=5u32 {
        let (low, high) = (format!("{}.0.0", 2 * round), format!("{}.0.0", 2 * round + 1));
        let with = |version: &str| {
            let mut m = manifest.clone();
            m["version"] = json!(version);
            m
        };
        let (low_manifest, high_manifest) = (with(&low), with(&high));
        let (on_a, on_b) = (plugins(&a.url), plugins(&b.url));
        let (x, y) = tokio::join!(
            call(&client, "POST", &on_a, &admin, None, Some(&low_manifest)),
            call(&client, "POST", &on_b, &admin, None, Some(&high_manifest))
        );
        assert_eq!(y.status, 200, "{}", y.json);
        assert!(x.status == 200 || x.status == 409, "{} {}", x.status, x.json);
        for replica in [&a.url, &b.url] {
            let url = format!("{}/sheets-export", plugins(replica));
            wait_for(
                "the higher version on both replicas",
                Duration::from_secs(20),
                || async {
                    let answer = call(&client, "GET", &url, &admin, None, None).await;
                    (answer.json["version"] == high.as_str()).then_some(())
                },
            )
            .await;
        }
    }
    drop((a, b));
}
