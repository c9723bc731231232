//! A plugin's registration history through the registry's API (in process, on its real store and the
//! broker): every successful registration lands in `topics.plugin_registrations`, deregistration keeps
//! it, a second replica reads the same history, and only the plugin itself or an admin may read it.

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard_registry::api::registrations::sha256_hex;
use switchyard_schemas::times::epoch_ms;
use switchyard_tests::broker::read_to_end;
use switchyard_tests::registries::{InProcessRegistry, admin, plugin, team};

const PLUGIN: &str = "sms-notify";
const HISTORY: &str = "/v1/plugins/sms-notify/registrations";

fn manifest(version: &str, description: &str) -> Value {
    json!({"id": PLUGIN, "name": "SMS notify", "description": description, "version": version,
           "url": "http://127.0.0.1:8092", "events": ["response.submitted"]})
}

async fn register(registry: &InProcessRegistry, version: &str, description: &str, status: StatusCode) {
    let answer = registry
        .call(
            "POST",
            "/v1/plugins",
            Some(&plugin(PLUGIN)),
            Some(&manifest(version, description)),
        )
        .await;
    assert_eq!(answer.status, status, "{version}: {}", answer.json);
}

/// The history as the plugin itself reads it.
async fn history(registry: &InProcessRegistry) -> Vec<Value> {
    let answer = registry.call("GET", HISTORY, Some(&plugin(PLUGIN)), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    answer.json.as_array().expect("an array").clone()
}

/// The SHA-256 of the manifest record now in the plugins topic, as this replica holds it.
fn stored_hash(registry: &InProcessRegistry) -> String {
    let stored = registry
        .state
        .store
        .get(&registry.topics.plugins, PLUGIN)
        .expect("a registered manifest");
    sha256_hex(&stored)
}

fn ms(time: &Value) -> i64 {
    epoch_ms(time.as_str().expect("a time")).expect("an RFC 3339 time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_keeps_every_version_across_deregistration_and_replicas() {
    let registry = InProcessRegistry::start(&[]).await;
    let unknown = registry.call("GET", HISTORY, Some(&admin()), None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.json);
    assert_eq!(unknown.json["type"], "/problems/not-found");

    // 1.0.0, then 1.0.0 again: one entry whose first time stays and whose last time moves.
    register(&registry, "1.0.0", "Texts respondents", StatusCode::CREATED).await;
    let hash_1_0 = stored_hash(&registry);
    let once = history(&registry).await;
    assert_eq!(once.len(), 1, "{once:?}");
    assert_eq!(once[0]["version"], "1.0.0");
    assert_eq!(once[0]["name"], "SMS notify");
    assert_eq!(once[0]["current"], true);
    assert_eq!(once[0]["manifest_sha256"], hash_1_0.as_str());
    assert_eq!(once[0]["first_registered_at"], once[0]["last_registered_at"]);
    register(&registry, "1.0.0", "Texts respondents", StatusCode::OK).await;
    let twice = history(&registry).await;
    assert_eq!(twice.len(), 1, "{twice:?}");
    assert_eq!(twice[0]["first_registered_at"], once[0]["first_registered_at"]);
    assert_ne!(twice[0]["last_registered_at"], once[0]["last_registered_at"]);
    assert!(ms(&twice[0]["last_registered_at"]) >= ms(&once[0]["last_registered_at"]));
    assert_eq!(
        twice[0]["manifest_sha256"], once[0]["manifest_sha256"],
        "the same manifest"
    );

    // 1.1.0 with another manifest; then deregistration keeps the history, with nothing current.
    register(
        &registry,
        "1.1.0",
        "Texts respondents, in their language",
        StatusCode::OK,
    )
    .await;
    let hash_1_1 = stored_hash(&registry);
    let removed = registry
        .call("DELETE", "/v1/plugins/sms-notify", Some(&admin()), None)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.json);
    let deregistered = registry.call("GET", HISTORY, Some(&admin()), None).await;
    assert_eq!(deregistered.status, StatusCode::OK, "{}", deregistered.json);
    let versions = |entries: &[Value]| -> Vec<(String, bool)> {
        entries
            .iter()
            .map(|e| {
                (
                    e["version"].as_str().unwrap().to_owned(),
                    e["current"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        versions(deregistered.json.as_array().unwrap()),
        [("1.1.0".to_owned(), false), ("1.0.0".to_owned(), false)]
    );

    // Registered again: the history continues, newest first, with only 1.2.0 current.
    register(
        &registry,
        "1.2.0",
        "Texts respondents, in their language",
        StatusCode::CREATED,
    )
    .await;
    let hash_1_2 = stored_hash(&registry);
    let all = history(&registry).await;
    assert_eq!(
        versions(&all),
        [
            ("1.2.0".to_owned(), true),
            ("1.1.0".to_owned(), false),
            ("1.0.0".to_owned(), false)
        ]
    );
    let hashes: Vec<&str> = all
        .iter()
        .map(|e| e["manifest_sha256"].as_str().unwrap())
        .collect();
    assert_eq!(hashes, [hash_1_2.as_str(), hash_1_1.as_str(), hash_1_0.as_str()]);
    assert!(
        hashes[0] != hashes[1] && hashes[1] != hashes[2] && hashes[0] != hashes[2],
        "{hashes:?}"
    );
    assert_eq!(all[2]["first_registered_at"], once[0]["first_registered_at"]);
    assert_eq!(all[2]["last_registered_at"], twice[0]["last_registered_at"]);
    assert!(ms(&all[0]["last_registered_at"]) >= ms(&all[1]["last_registered_at"]));
    assert!(ms(&all[1]["last_registered_at"]) >= ms(&all[2]["last_registered_at"]));
    for entry in &all {
        let mut fields: Vec<&str> = entry.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "current",
                "first_registered_at",
                "last_registered_at",
                "manifest_sha256",
                "name",
                "version"
            ]
        );
    }

    // The records in the topic: one per version, keyed <plugin>/<version>, each registration a write.
    let records = read_to_end(&registry.topics.plugin_registrations);
    let keys: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap()).into_owned())
        .collect();
    assert_eq!(
        keys,
        [
            "sms-notify/1.0.0",
            "sms-notify/1.0.0",
            "sms-notify/1.1.0",
            "sms-notify/1.2.0"
        ]
    );
    let last: Value = serde_json::from_slice(records[3].value.as_deref().unwrap()).unwrap();
    assert_eq!(last["plugin_id"], PLUGIN);
    assert_eq!(last["version"], "1.2.0");
    assert_eq!(last["manifest_sha256"], hash_1_2.as_str());

    // Pages, newest first.
    let first_page = registry
        .call("GET", &format!("{HISTORY}?limit=2"), Some(&admin()), None)
        .await;
    assert_eq!(first_page.status, StatusCode::OK);
    assert_eq!(first_page.json.as_array().unwrap()[..], all[..2]);
    let link = first_page.headers["link"].to_str().unwrap();
    let next = link.strip_prefix('<').unwrap().split('>').next().unwrap();
    assert!(next.starts_with(&format!("{HISTORY}?limit=2&cursor=")), "{link}");
    let second_page = registry.call("GET", next, Some(&admin()), None).await;
    assert_eq!(second_page.json.as_array().unwrap()[..], all[2..]);
    assert!(second_page.headers.get("link").is_none());

    // Who may read it.
    for (token, status) in [
        (team("acme"), StatusCode::FORBIDDEN),
        (plugin("someone-else"), StatusCode::FORBIDDEN),
        (admin(), StatusCode::OK),
    ] {
        let answer = registry.call("GET", HISTORY, Some(&token), None).await;
        assert_eq!(answer.status, status, "{}", answer.json);
    }
    let refused = registry.call("GET", HISTORY, Some(&team("acme")), None).await;
    assert_eq!(refused.json["type"], "/problems/forbidden");

    // A second replica on the same topics reads the same history.
    let replica = InProcessRegistry::start_on(registry.topics.clone(), &[]).await;
    assert_eq!(history(&replica).await, all);
}
