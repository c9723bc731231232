//! Sealed config secrets over the real store: no secret value in the configs topic's raw bytes, each
//! plugin's keys opening its own fields only, a ciphertext moved to another team's record refused, and a
//! rotation of the master key (a second replica with the new key first, `POST /v1/secrets/reseal`
//! rounds) under a steady load of config writes, losing none of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard_registry::secrets::ConfigSecrets;
use switchyard_schemas::configs::ConfigRecord;
use switchyard_schemas::sealed::{PluginKey, SealError};
use switchyard_tests::broker::read_to_end;
use switchyard_tests::registries::{InProcessRegistry, MASTER_KEY, admin, team};

const NEW_MASTER_KEY: &str = "test-2027-01:bmV3LW1hc3Rlci1rZXktb2YtdGhpcnR5LXR3by1ieXQ=";

fn manifest(id: &str, secret: &str) -> Value {
    json!({"id": id, "name": id, "version": "1.0.0", "events": ["response.submitted"],
           "config_schema": {"type": "object", "properties": {
               "label": {"type": "string"}, secret: {"type": "string", "writeOnly": true}}}})
}

/// The secret a team's config of a plugin holds: distinct, so a search of the raw bytes is meaningful.
fn secret_of(team: &str, plugin: &str) -> String {
    format!("sk-{team}-{plugin}-0f9e8d7c6b5a")
}

fn keys_of(answer: &Value) -> Vec<PluginKey> {
    answer["config_keys"]
        .as_array()
        .expect("a sealing registry hands a plugin its keys")
        .iter()
        .map(|k| PluginKey::parse(k.as_str().unwrap()).unwrap())
        .collect()
}

/// The latest record of every key of the configs topic, parsed.
fn latest_records(topic: &str) -> Vec<(String, ConfigRecord, Vec<u8>)> {
    let mut latest = std::collections::BTreeMap::new();
    for record in read_to_end(topic) {
        let key = String::from_utf8(record.key.clone().unwrap()).unwrap();
        match record.value {
            Some(value) => latest.insert(key, value),
            None => latest.remove(&key),
        };
    }
    latest
        .into_iter()
        .map(|(key, value)| (key, serde_json::from_slice(&value).unwrap(), value))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_per_plugin_and_a_rotation_under_load_loses_nothing() {
    let registry = InProcessRegistry::start(&[]).await;
    let mut plugin_keys = std::collections::HashMap::new();
    for (plugin, secret) in [("sheets-export", "api_token"), ("sms-notify", "auth_token")] {
        let registered = registry
            .call(
                "POST",
                "/v1/plugins",
                Some(&admin()),
                Some(&manifest(plugin, secret)),
            )
            .await;
        assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.json);
        plugin_keys.insert(plugin, keys_of(&registered.json));
        for team_id in ["acme", "globex"] {
            let path = format!("/v1/teams/{team_id}/plugins/{plugin}");
            let enabled = registry
                .call(
                    "PUT",
                    &path,
                    Some(&team(team_id)),
                    Some(&json!({"enabled": true})),
                )
                .await;
            assert_eq!(enabled.status, StatusCode::OK);
            let config = json!({"label": "first", secret: secret_of(team_id, plugin)});
            let set = registry
                .call(
                    "PUT",
                    &format!("{path}/config"),
                    Some(&team(team_id)),
                    Some(&config),
                )
                .await;
            assert_eq!(set.status, StatusCode::OK, "{}", set.json);
            assert_eq!(set.json["secrets"][format!("/{secret}")], "set");
        }
    }

    // A plain consumer of the topic finds no secret value in any record's bytes.
    let raw: Vec<u8> = read_to_end(&registry.topics.configs)
        .into_iter()
        .flat_map(|r| r.value.unwrap_or_default())
        .collect();
    let raw = String::from_utf8_lossy(&raw);
    for team_id in ["acme", "globex"] {
        for plugin in ["sheets-export", "sms-notify"] {
            assert!(
                !raw.contains(&secret_of(team_id, plugin)),
                "{team_id}/{plugin} in clear"
            );
        }
    }

    // Each plugin's keys open its own records; another plugin's keys are refused with a clear error.
    let records = latest_records(&registry.topics.configs);
    assert_eq!(records.len(), 4);
    for (key, record, _) in &records {
        let own = &plugin_keys[record.plugin_id.as_str()];
        let opened = record.opened(own).unwrap();
        assert!(
            opened
                .to_string()
                .contains(&secret_of(&record.team_id, &record.plugin_id)),
            "{key}"
        );
        let other = if record.plugin_id == "sms-notify" {
            "sheets-export"
        } else {
            "sms-notify"
        };
        let error = record.opened(&plugin_keys[other]).unwrap_err();
        assert!(matches!(error, SealError::Forged { .. }), "{key}: {error}");
        assert!(
            error
                .to_string()
                .contains("sealed for another plugin, team, installation or field"),
            "{error}"
        );
    }
    // acme's sealed field moved into globex's record of the same plugin does not open.
    let sheets = |team_id: &str| {
        records
            .iter()
            .find(|(_, r, _)| r.team_id == team_id && r.plugin_id == "sheets-export")
            .unwrap()
            .1
            .clone()
    };
    let mut moved = sheets("globex");
    moved.sealed = sheets("acme").sealed;
    assert!(matches!(
        moved.opened(&plugin_keys["sheets-export"]),
        Err(SealError::Forged { .. })
    ));

    // A PUT without the secret keeps it: the stored record is opened, merged and sealed again.
    let kept = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export/config",
            Some(&team("acme")),
            Some(&json!({"label": "second"})),
        )
        .await;
    assert_eq!(kept.json["secrets"]["/api_token"], "set", "{}", kept.json);
    let status = registry.call("GET", "/v1/secrets", Some(&admin()), None).await;
    assert_eq!(status.json["sealing_key"], "test-2026-12", "{}", status.json);
    assert_eq!(status.json["to_reseal"], 0);
    assert_eq!(status.json["clear"], 0);

    // The rotation, as operations.md runs it. Step 1: every replica gets the new key second: it opens
    // what the new key seals, while the old one still seals.
    let rolled = InProcessRegistry::start_on(
        registry.topics.clone(),
        &[("SECRETS__MASTER_KEYS", &format!("{MASTER_KEY},{NEW_MASTER_KEY}"))],
    )
    .await;
    // Step 3: the new key first on every replica (two here). Then reseal rounds run while each replica
    // takes a steady load of config writes, one team's through each.
    let rotation = format!("{NEW_MASTER_KEY},{MASTER_KEY}");
    let rotating = Arc::new(
        InProcessRegistry::start_on(registry.topics.clone(), &[("SECRETS__MASTER_KEYS", &rotation)]).await,
    );
    let other = Arc::new(
        InProcessRegistry::start_on(registry.topics.clone(), &[("SECRETS__MASTER_KEYS", &rotation)]).await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for (team_id, replica) in [("acme", Arc::clone(&rotating)), ("globex", Arc::clone(&other))] {
        let stop = Arc::clone(&stop);
        load.push(tokio::spawn(async move {
            // The label the last accepted write set.
            let mut accepted: std::collections::HashMap<&str, String> = Default::default();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 200 {
                let label = format!("load-{team_id}-{n}");
                let answer = replica
                    .call(
                        "PUT",
                        &format!("/v1/teams/{team_id}/plugins/sms-notify/config"),
                        Some(&team(team_id)),
                        Some(&json!({"label": label})),
                    )
                    .await;
                assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
                accepted.insert(team_id, label);
                n += 1;
            }
            (team_id, accepted, n)
        }));
    }
    let mut rounds = 0;
    loop {
        let round = rotating
            .call(
                "POST",
                "/v1/secrets/reseal?limit=2",
                Some(&admin()),
                Some(&json!({})),
            )
            .await;
        assert_eq!(round.status, StatusCode::OK, "{}", round.json);
        assert_eq!(round.json["failed"], json!([]));
        rounds += 1;
        // The load goes on between rounds.
        tokio::time::sleep(Duration::from_millis(50)).await;
        if round.json["remaining"] == 0 && rounds > 1 {
            break;
        }
        assert!(rounds < 50, "the rotation does not end: {}", round.json);
    }
    stop.store(true, Ordering::Relaxed);
    let (mut writes, mut last_labels) = (0, Vec::new());
    for writer in load {
        let (_, accepted, n) = writer.await.unwrap();
        writes += n;
        last_labels.push(accepted);
    }
    assert!(writes > 0);
    // Whatever the load wrote last, and every secret, is there, sealed with the new key only.
    let status = rotating.call("GET", "/v1/secrets", Some(&admin()), None).await;
    assert_eq!(status.json["to_reseal"], 0, "{}", status.json);
    assert_eq!(
        status.json["sealed_with"],
        json!({"test-2027-01": 4}),
        "{}",
        status.json
    );
    let new_only = ConfigSecrets::parse(&[NEW_MASTER_KEY]).unwrap();
    for (key, record, raw) in latest_records(&registry.topics.configs) {
        let opened = new_only.open(&record).unwrap_or_else(|e| panic!("{key}: {e}"));
        let secret = if record.plugin_id == "sms-notify" {
            "auth_token"
        } else {
            "api_token"
        };
        assert_eq!(
            opened[secret],
            secret_of(&record.team_id, &record.plugin_id),
            "{key}"
        );
        assert!(!String::from_utf8_lossy(&raw).contains(&secret_of(&record.team_id, &record.plugin_id)));
        // The load's configs end with their writer's last write: a reseal never put an older state back
        // over a newer write.
        if record.plugin_id == "sms-notify" {
            let label = opened["label"].as_str().unwrap().to_owned();
            let last = last_labels
                .iter()
                .find_map(|l| l.get(record.team_id.as_str()))
                .unwrap();
            assert_eq!(&label, last, "{key}");
        }
    }
    // The step-1 replica opens what the new key sealed.
    let shown = rolled
        .call(
            "GET",
            "/v1/teams/acme/plugins/sms-notify/config",
            Some(&team("acme")),
            None,
        )
        .await;
    assert_eq!(shown.json["secrets"]["/auth_token"], "set", "{}", shown.json);
    // With the old key retired, a replica still reads and changes every config.
    let retired = InProcessRegistry::start_on(
        registry.topics.clone(),
        &[("SECRETS__MASTER_KEYS", NEW_MASTER_KEY)],
    )
    .await;
    let changed = retired
        .call(
            "PUT",
            "/v1/teams/globex/plugins/sheets-export/config",
            Some(&team("globex")),
            Some(&json!({"label": "after"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.json);
    assert_eq!(changed.json["secrets"]["/api_token"], "set");
    // A replica without the key a config was sealed with: a PUT that leaves the secret out cannot keep
    // it (409, naming the key); one that sends it again replaces the config.
    let stranger = InProcessRegistry::start_on(
        registry.topics.clone(),
        &[(
            "SECRETS__MASTER_KEYS",
            "other-key:c3RyYW5nZXItbWFzdGVyLWtleS0zMi1ieXRlcy1sb24=",
        )],
    )
    .await;
    let path = "/v1/teams/globex/plugins/sheets-export/config";
    let kept = stranger
        .call("PUT", path, Some(&team("globex")), Some(&json!({"label": "x"})))
        .await;
    assert_eq!(kept.status, StatusCode::CONFLICT, "{}", kept.json);
    assert!(
        kept.json["detail"].as_str().unwrap().contains("\"test-2027-01\""),
        "{}",
        kept.json
    );
    let resent = stranger
        .call(
            "PUT",
            path,
            Some(&team("globex")),
            Some(&json!({"label": "x", "api_token": "new"})),
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.json);
}
