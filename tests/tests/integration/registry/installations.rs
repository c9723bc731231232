//! Installations (issue 17) over the registry's real store: named installations beside the default one,
//! their form ids and filters, their configs, removing them, the 409s and 422s; and the v1 routes, which
//! address the default installation, byte for byte as before and without losing what only the new routes
//! can set. What lands on the compacted topics is read back from Kafka.

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard_tests::broker::{Incoming, read_to_end};
use switchyard_tests::registries::{Answer, InProcessRegistry, admin, opened_config_record, team};

fn sheets_manifest() -> Value {
    json!({"id": "sheets-export", "name": "Sheets export", "version": "1.0.0",
    "url": "http://127.0.0.1:8093", "events": ["response.submitted", "form.created"], "actions": [],
    "installations": true,
    "config_schema": {
        "type": "object",
        "required": ["spreadsheet_id"],
        "additionalProperties": false,
        "properties": {
            "spreadsheet_id": {"type": "string"},
            "service_account_key": {"type": "string", "writeOnly": true}
        }
    }})
}

fn plain_manifest(id: &str) -> Value {
    json!({"id": id, "name": id, "version": "1.0.0", "url": "http://127.0.0.1:8092",
           "events": ["response.submitted", "form.created"], "actions": []})
}

async fn register(registry: &InProcessRegistry, manifest: &Value) {
    let answer = registry
        .call("POST", "/v1/plugins", Some(&admin()), Some(manifest))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
}

fn problem(answer: &Answer) -> (StatusCode, &str) {
    (answer.status, answer.json["type"].as_str().unwrap_or("(no type)"))
}

/// The last record of `key` on `topic`: `Some(None)` for a tombstone.
fn last_record(topic: &str, key: &str) -> Option<Option<Vec<u8>>> {
    read_to_end(topic)
        .into_iter()
        .rev()
        .find(|r: &Incoming| r.key.as_deref() == Some(key.as_bytes()))
        .map(|r| r.value)
}

fn installations_of(answer: &Answer) -> Vec<(String, String)> {
    answer
        .json
        .as_array()
        .unwrap_or_else(|| panic!("an array: {}", answer.json))
        .iter()
        .map(|i| {
            (
                i["plugin_id"].as_str().unwrap().to_owned(),
                i["installation"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const SHEETS: &str = "/v1/teams/acme/plugins/sheets-export";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_installations_beside_the_default_one() {
    let registry = InProcessRegistry::start(&[]).await;
    let acme = team("acme");
    register(&registry, &sheets_manifest()).await;
    register(&registry, &plain_manifest("sheets-export-2")).await;

    // The default installation through the v1 route, two named ones through the new routes.
    let v1 = registry
        .call("PUT", SHEETS, Some(&acme), Some(&json!({"enabled": true})))
        .await;
    assert_eq!(v1.status, StatusCode::OK, "{}", v1.json);
    for name in ["forms-b", "forms-a"] {
        let created = registry
            .call(
                "PUT",
                &format!("{SHEETS}/installations/{name}"),
                Some(&acme),
                Some(&json!({"enabled": true})),
            )
            .await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.json);
        assert_eq!(
            created.json,
            json!({"plugin_id": "sheets-export", "installation": name, "enabled": true,
                   "updated_at": created.json["updated_at"], "status": "down", "configured": false})
        );
    }
    let other = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export-2",
            Some(&acme),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);

    // Listing: by (plugin, installation), though `sheets-export-2` sorts between them by key.
    let all = registry
        .call("GET", "/v1/teams/acme/installations", Some(&acme), None)
        .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.json);
    let pair = |p: &str, i: &str| (p.to_owned(), i.to_owned());
    assert_eq!(
        installations_of(&all),
        [
            pair("sheets-export", "default"),
            pair("sheets-export", "forms-a"),
            pair("sheets-export", "forms-b"),
            pair("sheets-export-2", "default"),
        ]
    );
    let of_one = registry
        .call("GET", &format!("{SHEETS}/installations"), Some(&acme), None)
        .await;
    assert_eq!(
        installations_of(&of_one),
        [
            pair("sheets-export", "default"),
            pair("sheets-export", "forms-a"),
            pair("sheets-export", "forms-b"),
        ]
    );
    // An unregistered plugin has none; a path that cannot name a plugin names nothing.
    let unregistered = registry
        .call(
            "GET",
            "/v1/teams/acme/plugins/ghost/installations",
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(
        (unregistered.status, &unregistered.json),
        (StatusCode::OK, &json!([]))
    );
    let not_an_id = registry
        .call(
            "GET",
            "/v1/teams/acme/plugins/%C2%84/installations",
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(
        problem(&not_an_id),
        (StatusCode::NOT_FOUND, "/problems/not-found")
    );
    let v1_list = registry
        .call("GET", "/v1/teams/acme/plugins", Some(&acme), None)
        .await;
    let v1_plugins: Vec<&str> = v1_list
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["plugin_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        v1_plugins,
        ["sheets-export", "sheets-export-2"],
        "the v1 list has the default installations only"
    );
    assert!(v1_list.json[0].get("installation").is_none(), "{}", v1_list.json);
    let none = registry
        .call(
            "GET",
            "/v1/teams/globex/plugins/sheets-export/installations",
            Some(&admin()),
            None,
        )
        .await;
    assert_eq!((none.status, &none.json), (StatusCode::OK, &json!([])));

    // One installation; the default one under its name too.
    let shown = registry
        .call(
            "GET",
            &format!("{SHEETS}/installations/forms-a"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(shown.json["installation"], "forms-a");
    let default = registry
        .call(
            "GET",
            &format!("{SHEETS}/installations/default"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(
        default.json,
        json!({"plugin_id": "sheets-export", "installation": "default", "enabled": true,
               "updated_at": v1.json["updated_at"], "status": "down", "configured": false})
    );
    for (path, why) in [
        (format!("{SHEETS}/installations/forms-z"), "no such installation"),
        (
            format!("{SHEETS}/installations/Forms-A"),
            "not an installation id",
        ),
    ] {
        let missing = registry.call("GET", &path, Some(&acme), None).await;
        assert_eq!(
            problem(&missing),
            (StatusCode::NOT_FOUND, "/problems/not-found"),
            "{why}"
        );
    }

    // Form ids and a filter, on the record the router reads.
    let limited = registry
        .call(
            "PUT",
            &format!("{SHEETS}/installations/forms-b"),
            Some(&acme),
            Some(&json!({"enabled": true, "event_types": ["response.submitted"],
                         "form_ids": ["f-b", "f-c"], "filter": "data.score >= 3"})),
        )
        .await;
    assert_eq!(limited.status, StatusCode::OK, "{}", limited.json);
    assert_eq!(
        (&limited.json["form_ids"], &limited.json["filter"]),
        (&json!(["f-b", "f-c"]), &json!("data.score >= 3"))
    );
    let record = last_record(&registry.topics.enablements, "acme/sheets-export/forms-b")
        .flatten()
        .expect("the installation's record");
    assert_eq!(
        String::from_utf8(record).unwrap(),
        format!(
            r#"{{"team_id":"acme","plugin_id":"sheets-export","installation":"forms-b","enabled":true,"event_types":["response.submitted"],"form_ids":["f-b","f-c"],"filter":"data.score >= 3","updated_at":"{}"}}"#,
            limited.json["updated_at"].as_str().unwrap()
        )
    );

    // A filter that does not compile: 422 at /filter, naming where.
    let bad_filter = registry
        .call(
            "PUT",
            &format!("{SHEETS}/installations/forms-b"),
            Some(&acme),
            Some(&json!({"enabled": true, "filter": "data.score >= && true"})),
        )
        .await;
    assert_eq!(
        problem(&bad_filter),
        (StatusCode::UNPROCESSABLE_ENTITY, "/problems/invalid"),
        "{}",
        bad_filter.json
    );
    assert_eq!(bad_filter.json["errors"][0]["pointer"], "/filter");
    let detail = bad_filter.json["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("the filter is invalid at line 1, column 15 (byte 14): "),
        "the position of `&&`: {detail}"
    );
    // Filters that parse but exceed the cost bound (contract section 8.1): refused when written, each
    // saying why, so none ever reaches routing.
    let too_many_nodes = (0..22)
        .map(|i| format!("type != \"t{i}\""))
        .collect::<Vec<_>>()
        .join(" && ");
    for (filter, why) in [
        (r#"data.items.exists(i, i == "x")"#.to_owned(), "comprehension"),
        (r#"subject.matches("^f-")"#.to_owned(), "matches"),
        (too_many_nodes, "64"),
        ("x".repeat(1025), "1024"),
    ] {
        let refused = registry
            .call(
                "PUT",
                &format!("{SHEETS}/installations/forms-b"),
                Some(&acme),
                Some(&json!({"enabled": true, "filter": filter})),
            )
            .await;
        assert_eq!(
            problem(&refused).0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {}",
            refused.json
        );
        assert_eq!(refused.json["errors"][0]["pointer"], "/filter");
        let detail = refused.json["errors"][0]["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(why), "{why}: {detail}");
    }
    let bad_body = registry
        .call(
            "PUT",
            &format!("{SHEETS}/installations/forms-b"),
            Some(&acme),
            Some(
                &json!({"enabled": true, "event_types": ["form.updated"], "form_ids": [""],
                         "colour": "red"}),
            ),
        )
        .await;
    assert_eq!(bad_body.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_ids = registry
        .call(
            "PUT",
            &format!("{SHEETS}/installations/forms-b"),
            Some(&acme),
            Some(&json!({"enabled": true, "event_types": ["form.updated"], "form_ids": ["ok", ""]})),
        )
        .await;
    let pointers: Vec<&str> = bad_ids.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/event_types/0", "/form_ids/1"], "{}", bad_ids.json);
    let unchanged = registry
        .call(
            "GET",
            &format!("{SHEETS}/installations/forms-b"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(unchanged.json, limited.json, "refused bodies change nothing");

    // The 409s and 404s of a PUT.
    let plain = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export-2/installations/forms-a",
            Some(&acme),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(problem(&plain), (StatusCode::CONFLICT, "/problems/conflict"));
    assert!(
        plain.json["detail"]
            .as_str()
            .unwrap()
            .contains("installations: true"),
        "{}",
        plain.json
    );
    let plain_default = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export-2/installations/default",
            Some(&acme),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(plain_default.status, StatusCode::OK, "{}", plain_default.json);
    let ghost = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/ghost/installations/forms-a",
            Some(&acme),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(problem(&ghost), (StatusCode::NOT_FOUND, "/problems/not-found"));
    let bad_id = registry
        .call(
            "PUT",
            &format!("{SHEETS}/installations/forms_a"),
            Some(&acme),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(problem(&bad_id), (StatusCode::NOT_FOUND, "/problems/not-found"));

    // A named installation's config: its own key, `installation` in the record, secrets as before.
    let not_enabled = registry
        .call(
            "PUT",
            &format!("{SHEETS}/installations/forms-z/config"),
            Some(&acme),
            Some(&json!({"spreadsheet_id": "s"})),
        )
        .await;
    assert_eq!(not_enabled.status, StatusCode::CONFLICT);
    let configured = registry
        .call(
            "PUT",
            &format!("{SHEETS}/installations/forms-b/config"),
            Some(&acme),
            Some(&json!({"spreadsheet_id": "sheet-b", "service_account_key": "key-of-forms-b"})),
        )
        .await;
    assert_eq!(configured.status, StatusCode::OK, "{}", configured.json);
    assert_eq!(
        configured.json,
        json!({"plugin_id": "sheets-export", "installation": "forms-b",
               "config": {"spreadsheet_id": "sheet-b"}, "secrets": {"/service_account_key": "set"},
               "plugin_version": "1.0.0", "updated_at": configured.json["updated_at"]})
    );
    let invalid = registry
        .call(
            "PUT",
            &format!("{SHEETS}/installations/forms-b/config"),
            Some(&acme),
            Some(&json!({"sheet": 1})),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let kept = registry
        .call(
            "PUT",
            &format!("{SHEETS}/installations/forms-b/config"),
            Some(&acme),
            Some(&json!({"spreadsheet_id": "sheet-b2"})),
        )
        .await;
    assert_eq!(kept.json["secrets"], json!({"/service_account_key": "set"}));
    let config = last_record(&registry.topics.configs, "acme/sheets-export/forms-b")
        .flatten()
        .expect("the installation's config");
    let config = opened_config_record(&config);
    assert_eq!(
        (&config["installation"], &config["config"]["service_account_key"]),
        (&json!("forms-b"), &json!("key-of-forms-b")),
        "the secret left out was kept"
    );
    let read = registry
        .call(
            "GET",
            &format!("{SHEETS}/installations/forms-b/config"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(read.json["config"], json!({"spreadsheet_id": "sheet-b2"}));
    assert_eq!(read.json["installation"], "forms-b");
    let default_config = registry
        .call("GET", &format!("{SHEETS}/config"), Some(&acme), None)
        .await;
    assert_eq!(
        default_config.status,
        StatusCode::NOT_FOUND,
        "installations do not share configs"
    );
    let listed = registry
        .call(
            "GET",
            &format!("{SHEETS}/installations/forms-b"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(listed.json["configured"], true);

    // DELETE: both records go, as tombstones on both compacted topics.
    let deleted = registry
        .call(
            "DELETE",
            &format!("{SHEETS}/installations/forms-b"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(
        (deleted.status, &deleted.json),
        (StatusCode::NO_CONTENT, &Value::Null)
    );
    for topic in [&registry.topics.enablements, &registry.topics.configs] {
        assert_eq!(
            last_record(topic, "acme/sheets-export/forms-b"),
            Some(None),
            "a tombstone on {topic}"
        );
    }
    let gone = registry
        .call(
            "GET",
            &format!("{SHEETS}/installations/forms-b"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let again = registry
        .call(
            "DELETE",
            &format!("{SHEETS}/installations/forms-b"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(problem(&again), (StatusCode::NOT_FOUND, "/problems/not-found"));
    assert_eq!(
        last_record(&registry.topics.enablements, "acme/sheets-export"),
        Some(Some(
            registry
                .state
                .store
                .get(&registry.topics.enablements, "acme/sheets-export")
                .unwrap()
        )),
        "the other installations are untouched"
    );

    // Deregistering the plugin removes every installation and config, named ones included.
    let configured_a = registry
        .call(
            "PUT",
            &format!("{SHEETS}/installations/forms-a/config"),
            Some(&acme),
            Some(&json!({"spreadsheet_id": "sheet-a"})),
        )
        .await;
    assert_eq!(configured_a.status, StatusCode::OK, "{}", configured_a.json);
    let deregistered = registry
        .call("DELETE", "/v1/plugins/sheets-export", Some(&admin()), None)
        .await;
    assert_eq!(deregistered.status, StatusCode::NO_CONTENT);
    for (topic, key) in [
        (&registry.topics.enablements, "acme/sheets-export"),
        (&registry.topics.enablements, "acme/sheets-export/forms-a"),
        (&registry.topics.configs, "acme/sheets-export/forms-a"),
    ] {
        assert_eq!(last_record(topic, key), Some(None), "{key} on {topic}");
    }
    let left = registry
        .call("GET", "/v1/teams/acme/installations", Some(&acme), None)
        .await;
    assert_eq!(
        installations_of(&left),
        [pair("sheets-export-2", "default")],
        "another plugin whose id starts the same is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v1_routes_are_unchanged_and_keep_what_they_cannot_set() {
    let registry = InProcessRegistry::start(&[]).await;
    let acme = team("acme");
    register(&registry, &plain_manifest("sms-notify")).await;
    let route = "/v1/teams/acme/plugins/sms-notify";

    // A plain plugin: the answer and the record are exactly what they were before installations.
    let enabled = registry
        .call(
            "PUT",
            route,
            Some(&acme),
            Some(&json!({"enabled": true, "event_types": ["response.submitted"]})),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.json);
    let at = enabled.json["updated_at"].as_str().unwrap().to_owned();
    assert_eq!(
        enabled.json,
        json!({"plugin_id": "sms-notify", "enabled": true, "event_types": ["response.submitted"],
               "updated_at": at, "status": "down", "configured": false})
    );
    let record = last_record(&registry.topics.enablements, "acme/sms-notify")
        .flatten()
        .expect("the enablement");
    assert_eq!(
        String::from_utf8(record).unwrap(),
        format!(
            r#"{{"team_id":"acme","plugin_id":"sms-notify","enabled":true,"event_types":["response.submitted"],"updated_at":"{at}"}}"#
        ),
        "golden bytes of a v1 enablement"
    );
    let configured = registry
        .call("PUT", &format!("{route}/config"), Some(&acme), Some(&json!({})))
        .await;
    assert_eq!(configured.status, StatusCode::OK, "{}", configured.json);
    let config_at = configured.json["updated_at"].as_str().unwrap().to_owned();
    assert_eq!(
        configured.json,
        json!({"plugin_id": "sms-notify", "config": {}, "secrets": {}, "plugin_version": "1.0.0",
               "updated_at": config_at})
    );
    let config = last_record(&registry.topics.configs, "acme/sms-notify")
        .flatten()
        .expect("the config");
    assert_eq!(
        String::from_utf8(config).unwrap(),
        format!(
            r#"{{"team_id":"acme","plugin_id":"sms-notify","config":{{}},"plugin_version":"1.0.0","updated_at":"{config_at}"}}"#
        ),
        "golden bytes of a v1 config"
    );
    let listed = registry
        .call("GET", "/v1/teams/acme/plugins", Some(&acme), None)
        .await;
    assert_eq!(
        listed.json,
        json!([{"plugin_id": "sms-notify", "enabled": true, "event_types": ["response.submitted"],
                "updated_at": at, "status": "down", "configured": true}])
    );

    // A filter set on the default installation survives a v1 PUT, which cannot carry one.
    let filtered = registry
        .call(
            "PUT",
            &format!("{route}/installations/default"),
            Some(&acme),
            Some(&json!({"enabled": true, "form_ids": ["f-1"], "filter": "data.score > 3"})),
        )
        .await;
    assert_eq!(filtered.status, StatusCode::OK, "{}", filtered.json);
    let disabled = registry
        .call("PUT", route, Some(&acme), Some(&json!({"enabled": false})))
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.json);
    assert_eq!(
        disabled.json,
        json!({"plugin_id": "sms-notify", "enabled": false, "form_ids": ["f-1"],
               "filter": "data.score > 3", "updated_at": disabled.json["updated_at"],
               "status": "down", "configured": true})
    );
    let record = last_record(&registry.topics.enablements, "acme/sms-notify")
        .flatten()
        .expect("the enablement");
    let record: Value = serde_json::from_slice(&record).unwrap();
    assert_eq!(
        (&record["enabled"], &record["form_ids"], &record["filter"]),
        (&json!(false), &json!(["f-1"]), &json!("data.score > 3"))
    );
    assert!(record.get("installation").is_none(), "{record}");
    let v1_filter = registry
        .call(
            "PUT",
            route,
            Some(&acme),
            Some(&json!({"enabled": true, "filter": "true"})),
        )
        .await;
    assert_eq!(
        v1_filter.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the v1 body stays as strict as it was"
    );

    // The default installation's config through the installation route is the v1 config.
    let through_installation = registry
        .call(
            "GET",
            &format!("{route}/installations/default/config"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(
        through_installation.json,
        json!({"plugin_id": "sms-notify", "installation": "default", "config": {}, "secrets": {},
               "plugin_version": "1.0.0", "updated_at": config_at})
    );
    let removed = registry
        .call(
            "DELETE",
            &format!("{route}/installations/default"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let v1_config = registry
        .call("GET", &format!("{route}/config"), Some(&acme), None)
        .await;
    assert_eq!(v1_config.status, StatusCode::NOT_FOUND);
    let v1_list = registry
        .call("GET", "/v1/teams/acme/plugins", Some(&acme), None)
        .await;
    assert_eq!(v1_list.json, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_a_hundred_installations_of_a_plugin() {
    let registry = InProcessRegistry::start(&[]).await;
    let acme = team("acme");
    register(&registry, &sheets_manifest()).await;
    let limit = switchyard_registry::api::installations::MAX_INSTALLATIONS_PER_PLUGIN;
    assert_eq!(limit, 100);
    for i in 0..limit {
        let answer = registry
            .call(
                "PUT",
                &format!("{SHEETS}/installations/i-{i}"),
                Some(&acme),
                Some(&json!({"enabled": true})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{i}: {}", answer.json);
    }
    let one_more = registry
        .call(
            "PUT",
            &format!("{SHEETS}/installations/i-{limit}"),
            Some(&acme),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(problem(&one_more), (StatusCode::CONFLICT, "/problems/conflict"));
    let v1_default = registry
        .call("PUT", SHEETS, Some(&acme), Some(&json!({"enabled": true})))
        .await;
    assert_eq!(
        v1_default.status,
        StatusCode::CONFLICT,
        "the default installation counts too"
    );
    let replaced = registry
        .call(
            "PUT",
            &format!("{SHEETS}/installations/i-0"),
            Some(&acme),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "replacing one is no new one");
    let other_team = registry
        .call(
            "PUT",
            "/v1/teams/globex/plugins/sheets-export/installations/i-0",
            Some(&admin()),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(other_team.status, StatusCode::OK, "the limit is per team");
    let removed = registry
        .call(
            "DELETE",
            &format!("{SHEETS}/installations/i-1"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let fits = registry
        .call(
            "PUT",
            &format!("{SHEETS}/installations/i-{limit}"),
            Some(&acme),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(fits.status, StatusCode::OK, "{}", fits.json);
}
