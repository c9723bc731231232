//! The registry's endpoints over its real store: each success and error path, with exact statuses and
//! bodies. The authorization matrix is in `registry::authz`.

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard_registry::auth::Role;
use switchyard_tests::broker::{read_to_end, topic_partitions};
use switchyard_tests::registries::{InProcessRegistry, admin, opened_config_record, plugin, team, token};

fn manifest(id: &str, version: &str) -> Value {
    json!({"id": id, "name": "SMS notify", "description": "Texts respondents", "version": version,
           "url": "http://127.0.0.1:8092", "events": ["response.submitted", "form.created"],
           "actions": ["resend"]})
}

fn sheets_manifest() -> Value {
    json!({"id": "sheets-export", "name": "Sheets export", "version": "1.0.0",
    "url": "http://127.0.0.1:8093", "events": ["response.submitted"], "actions": [],
    "config_schema": {
        "type": "object",
        "required": ["spreadsheet_id"],
        "additionalProperties": false,
        "properties": {
            "spreadsheet_id": {"type": "string", "minLength": 5},
            "sheet_name": {"type": "string"},
            "service_account_key": {"type": "string", "writeOnly": true, "minLength": 20}
        }
    }})
}

fn problem(answer: &switchyard_tests::registries::Answer) -> (StatusCode, &str) {
    (answer.status, answer.json["type"].as_str().unwrap_or("(no type)"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_register_read_heartbeat_and_deregister() {
    let registry = InProcessRegistry::start(&[]).await;
    let (own, admin) = (plugin("sms-notify"), admin());
    let acme = team("acme");

    // Registration: created, topics provisioned, the signing secret returned once.
    let created = registry
        .call(
            "POST",
            "/v1/plugins",
            Some(&own),
            Some(&manifest("sms-notify", "1.2.0")),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    assert_eq!(created.json["version"], "1.2.0");
    assert_eq!(created.json["status"], "down", "no heartbeat yet");
    assert_eq!(created.json.get("url"), None, "only admins see the URL");
    assert!(
        created.json["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert_eq!(topic_partitions(&registry.topics.events("sms-notify")), Some(3));
    assert_eq!(
        topic_partitions(&registry.topics.dead_letter("sms-notify")),
        Some(3)
    );
    let again = registry
        .call(
            "POST",
            "/v1/plugins",
            Some(&own),
            Some(&manifest("sms-notify", "1.2.0")),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "idempotent upsert");
    assert_eq!(
        again.json["ordering"], "team",
        "a manifest without ordering shows the default"
    );
    assert_eq!(again.json["signing_secret"], created.json["signing_secret"]);

    // The version rule.
    let lower = registry
        .call(
            "POST",
            "/v1/plugins",
            Some(&own),
            Some(&manifest("sms-notify", "1.1.0")),
        )
        .await;
    assert_eq!(problem(&lower), (StatusCode::CONFLICT, "/problems/conflict"));
    assert!(
        lower.json["detail"]
            .as_str()
            .unwrap()
            .contains("lower than the registered 1.2.0")
    );
    let forced_by_plugin = registry
        .call(
            "POST",
            "/v1/plugins?force=true",
            Some(&own),
            Some(&manifest("sms-notify", "1.1.0")),
        )
        .await;
    assert_eq!(
        forced_by_plugin.status,
        StatusCode::CONFLICT,
        "only an admin may force"
    );
    let forced = registry
        .call(
            "POST",
            "/v1/plugins?force=true",
            Some(&admin),
            Some(&manifest("sms-notify", "1.1.0")),
        )
        .await;
    assert_eq!(forced.status, StatusCode::OK);
    assert_eq!(forced.json["url"], "http://127.0.0.1:8092", "admins see the URL");
    let mut by_response = manifest("sms-notify", "1.1.0");
    by_response["ordering"] = json!("response");
    let ordered = registry
        .call("POST", "/v1/plugins", Some(&own), Some(&by_response))
        .await;
    assert_eq!(ordered.status, StatusCode::OK);
    assert_eq!(
        ordered.json["ordering"], "response",
        "the manifest's ordering is kept"
    );
    let bad_query = registry
        .call(
            "POST",
            "/v1/plugins?force=maybe",
            Some(&admin),
            Some(&manifest("sms-notify", "1.1.0")),
        )
        .await;
    assert_eq!(bad_query.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Manifest validation, each error with its pointer.
    for (change, pointer) in [
        (json!({"url": "ftp://example"}), "/url"),
        (json!({"events": ["survey.archived"]}), "/events/0"),
        (json!({"events": []}), "/events"),
        (json!({"actions": ["Re Send"]}), "/actions/0"),
        (json!({"ordering": "per-question"}), "/ordering"),
        (json!({"batch": {"max_events": 0}}), "/batch/max_events"),
        (
            json!({"batch": {"max_events": 10, "max_wait_ms": 600000}}),
            "/batch/max_wait_ms",
        ),
        (
            json!({"rate_limit": {"per_team_per_second": 0}}),
            "/rate_limit/per_team_per_second",
        ),
        (json!({"config_schema": {"type": 12}}), "/config_schema/type"),
        (
            json!({"config_schema": {"$ref": "https://schemas.example/x.json"}}),
            "/config_schema/$ref",
        ),
        (json!({"version": "1.3"}), ""),
    ] {
        let mut body = manifest("sms-notify", "1.3.0");
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let answer = registry
            .call("POST", "/v1/plugins", Some(&own), Some(&body))
            .await;
        assert_eq!(
            problem(&answer),
            (StatusCode::UNPROCESSABLE_ENTITY, "/problems/invalid"),
            "{change}: {}",
            answer.json
        );
        let pointers: Vec<&str> = answer.json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert!(pointers.contains(&pointer), "{change}: {}", answer.json);
    }
    let not_json = registry
        .call_raw("POST", "/v1/plugins", Some(&own), &[], Some(b"{nope".to_vec()))
        .await;
    assert_eq!(not_json.status, StatusCode::UNPROCESSABLE_ENTITY);
    let too_big = registry
        .call_raw(
            "POST",
            "/v1/plugins",
            Some(&own),
            &[],
            Some(vec![b' '; 2 * 1024 * 1024]),
        )
        .await;
    assert_eq!(
        problem(&too_big),
        (StatusCode::PAYLOAD_TOO_LARGE, "/problems/too-large")
    );

    // Reading.
    let listed = registry.call("GET", "/v1/plugins", Some(&acme), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json.as_array().unwrap().len(), 1);
    assert_eq!(listed.json[0]["version"], "1.1.0");
    assert_eq!(listed.json[0].get("instances"), None);
    let shown = registry
        .call("GET", "/v1/plugins/sms-notify", Some(&admin), None)
        .await;
    assert_eq!(
        shown.json["topics"]["events"],
        registry.topics.events("sms-notify")
    );
    assert_eq!(shown.json["instances"], json!([]));
    let ghost = registry.call("GET", "/v1/plugins/ghost", Some(&acme), None).await;
    assert_eq!(problem(&ghost), (StatusCode::NOT_FOUND, "/problems/not-found"));

    // Heartbeats drive the status.
    let beat = registry
        .call(
            "POST",
            "/v1/plugins/sms-notify/heartbeat",
            Some(&own),
            Some(&json!({"instance_id": "sms-0"})),
        )
        .await;
    assert_eq!(beat.status, StatusCode::OK, "{}", beat.json);
    assert_eq!(
        (beat.json["status"].as_str(), beat.json["ttl_seconds"].as_u64()),
        (Some("up"), Some(30))
    );
    registry
        .call(
            "POST",
            "/v1/plugins/sms-notify/heartbeat",
            Some(&own),
            Some(&json!({"instance_id": "sms-1", "state": "degraded"})),
        )
        .await;
    let shown = registry
        .call("GET", "/v1/plugins/sms-notify", Some(&acme), None)
        .await;
    assert_eq!(
        (
            shown.json["status"].as_str(),
            shown.json["active_instances"].as_u64()
        ),
        (Some("degraded"), Some(2))
    );
    let goodbye = registry
        .call(
            "POST",
            "/v1/plugins/sms-notify/heartbeat",
            Some(&own),
            Some(&json!({"instance_id": "sms-1", "state": "stopping"})),
        )
        .await;
    assert_eq!(
        (goodbye.status, goodbye.json["status"].as_str()),
        (StatusCode::OK, Some("up")),
        "the degraded instance left: {}",
        goodbye.json
    );
    assert_eq!(registry.state.records().instances("sms-notify").len(), 1);
    for (body, expected) in [
        (json!({"instance_id": "a/b"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"instance_id": ""}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"instance_id": "x", "state": "sleepy"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"instance": "x"}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let answer = registry
            .call(
                "POST",
                "/v1/plugins/sms-notify/heartbeat",
                Some(&own),
                Some(&body),
            )
            .await;
        assert_eq!(answer.status, expected, "{body}");
    }
    let unknown = registry
        .call(
            "POST",
            "/v1/plugins/ghost/heartbeat",
            Some(&admin),
            Some(&json!({"instance_id": "g"})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // Deregistration removes the enablements, configs and instances, keeps the topics.
    let enabled = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sms-notify",
            Some(&acme),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK);
    let by_team = registry
        .call("DELETE", "/v1/plugins/sms-notify", Some(&acme), None)
        .await;
    assert_eq!(by_team.status, StatusCode::FORBIDDEN);
    let by_itself = registry
        .call("DELETE", "/v1/plugins/sms-notify", Some(&own), None)
        .await;
    assert_eq!(by_itself.status, StatusCode::FORBIDDEN);
    let deleted = registry
        .call("DELETE", "/v1/plugins/sms-notify", Some(&admin), None)
        .await;
    assert_eq!(
        (deleted.status, &deleted.json),
        (StatusCode::NO_CONTENT, &Value::Null)
    );
    let gone = registry
        .call("GET", "/v1/plugins/sms-notify", Some(&admin), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let team_view = registry
        .call("GET", "/v1/teams/acme/plugins", Some(&acme), None)
        .await;
    assert_eq!(team_view.json, json!([]), "the enablement went with the plugin");
    assert!(registry.state.records().instances("sms-notify").is_empty());
    assert!(topic_partitions(&registry.topics.events("sms-notify")).is_some());
    let twice = registry
        .call("DELETE", "/v1/plugins/sms-notify", Some(&admin), None)
        .await;
    assert_eq!(twice.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_enablements_and_configs_with_secrets() {
    let registry = InProcessRegistry::start(&[]).await;
    let acme = team("acme");
    let registered = registry
        .call("POST", "/v1/plugins", Some(&admin()), Some(&sheets_manifest()))
        .await;
    assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.json);

    // Enablement.
    let unknown = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/ghost",
            Some(&acme),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(problem(&unknown), (StatusCode::NOT_FOUND, "/problems/not-found"));
    let wrong_types = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export",
            Some(&acme),
            Some(&json!({"enabled": true, "event_types": ["response.submitted", "form.created"]})),
        )
        .await;
    assert_eq!(wrong_types.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong_types.json["errors"][0]["pointer"], "/event_types/1");
    let bad_body = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export",
            Some(&acme),
            Some(&json!({"enabled": "yes"})),
        )
        .await;
    assert_eq!(bad_body.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_team = registry
        .call(
            "PUT",
            "/v1/teams/bad%20team/plugins/sheets-export",
            Some(&admin()),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(bad_team.status, StatusCode::NOT_FOUND);

    // Config needs the plugin enabled.
    let config = json!({"spreadsheet_id": "sheet-123", "sheet_name": "Responses",
                        "service_account_key": "very-secret-key-material-0001"});
    let disabled = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export/config",
            Some(&acme),
            Some(&config),
        )
        .await;
    assert_eq!(problem(&disabled), (StatusCode::CONFLICT, "/problems/conflict"));
    let enabled = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export",
            Some(&acme),
            Some(&json!({"enabled": true, "event_types": ["response.submitted"]})),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.json);
    assert_eq!(
        (
            enabled.json["enabled"].as_bool(),
            enabled.json["configured"].as_bool()
        ),
        (Some(true), Some(false))
    );

    // Validation: every error with its pointer, and never the secret's value.
    let invalid = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export/config",
            Some(&acme),
            Some(&json!({"spreadsheet_id": 7, "colour": "red", "service_account_key": "short-secret"})),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let pointers: Vec<&str> = invalid.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert!(pointers.contains(&"/spreadsheet_id"), "{}", invalid.json);
    assert!(pointers.contains(&"/service_account_key"), "{}", invalid.json);
    assert!(
        pointers.contains(&""),
        "additionalProperties at the root: {}",
        invalid.json
    );
    assert!(!invalid.json.to_string().contains("short-secret"));

    // Accepted: the secret is stored and delivered, never returned.
    let stored = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export/config",
            Some(&acme),
            Some(&config),
        )
        .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.json);
    assert_eq!(
        stored.json["config"],
        json!({"spreadsheet_id": "sheet-123", "sheet_name": "Responses"})
    );
    assert_eq!(stored.json["secrets"], json!({"/service_account_key": "set"}));
    let shown = registry
        .call(
            "GET",
            "/v1/teams/acme/plugins/sheets-export/config",
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(shown.json["config"], stored.json["config"]);
    assert!(!shown.json.to_string().contains("very-secret-key-material"));
    let delivered = read_to_end(&registry.topics.configs);
    let record = delivered.last().expect("a config record");
    assert_eq!(record.key.as_deref(), Some(&b"acme/sheets-export"[..]));
    let raw = record.value.as_deref().unwrap();
    assert!(
        !String::from_utf8_lossy(raw).contains("very-secret-key-material"),
        "the secret is sealed in the topic"
    );
    let value = opened_config_record(raw);
    assert_eq!(
        value["config"]["service_account_key"], "very-secret-key-material-0001",
        "plugins receive the secret through the configs topic, opened with their keys"
    );
    assert_eq!(value["plugin_version"], "1.0.0");

    // An update without the secret keeps it; null clears it.
    let kept = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export/config",
            Some(&acme),
            Some(&json!({"spreadsheet_id": "sheet-456"})),
        )
        .await;
    assert_eq!(kept.json["secrets"], json!({"/service_account_key": "set"}));
    let cleared = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export/config",
            Some(&acme),
            Some(&json!({"spreadsheet_id": "sheet-456", "service_account_key": null})),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.json);
    assert_eq!(cleared.json["secrets"], json!({"/service_account_key": "unset"}));

    // Listing, and another team's config.
    let listed = registry
        .call("GET", "/v1/teams/acme/plugins", Some(&acme), None)
        .await;
    assert_eq!(listed.json.as_array().unwrap().len(), 1);
    assert_eq!(
        (
            listed.json[0]["plugin_id"].as_str(),
            listed.json[0]["configured"].as_bool()
        ),
        (Some("sheets-export"), Some(true))
    );
    let none = registry
        .call(
            "GET",
            "/v1/teams/globex/plugins/sheets-export/config",
            Some(&admin()),
            None,
        )
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);

    // Disabling keeps the record and stops config changes.
    let disabled = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export",
            Some(&acme),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(disabled.json["enabled"], false);
    let refused = registry
        .call(
            "PUT",
            "/v1/teams/acme/plugins/sheets-export/config",
            Some(&acme),
            Some(&config),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_metrics_openapi_and_unknown_routes() {
    let registry = InProcessRegistry::start(&[]).await;
    let ready = registry.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    let health = registry.call("GET", "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    let openapi = registry.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(openapi.json["openapi"], "3.1.0");
    let missing = registry.call("GET", "/v2/nothing", None, None).await;
    assert_eq!(problem(&missing), (StatusCode::NOT_FOUND, "/problems/not-found"));
    registry
        .call("GET", "/v1/plugins", Some(&token(Role::Admin, None, None)), None)
        .await;
    let metrics = registry.call("GET", "/metrics", None, None).await;
    let text = metrics.json.as_str().unwrap();
    assert!(text.contains("switchyard_registry_ready 1"), "{text}");
    assert!(
        text.contains(r#"switchyard_registry_http_requests_total{route="/v1/plugins",status="200"} 1"#),
        "{text}"
    );
}

/// The OpenAPI document and the router agree: the paths are read from the route table's source, the methods
/// from the router itself (405 = not routed), and both sets must equal the document's operations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_routes() {
    let registry = InProcessRegistry::start(&[]).await;
    let sources = [
        include_str!("../../../../registry/src/api/mod.rs"),
        include_str!("../../../../registry/src/api/ops.rs"),
        include_str!("../../../../service/src/admin.rs"),
    ];
    let mut paths: Vec<String> = Vec::new();
    for source in sources {
        for chunk in source.split(".route(").skip(1) {
            let path = chunk
                .trim_start()
                .strip_prefix('"')
                .and_then(|rest| rest.split('"').next())
                .expect("a route path literal");
            paths.push(path.to_owned());
        }
    }
    assert!(paths.len() >= 14, "{paths:?}");
    for expected_route in [
        "/v1/teams/{team}/installations",
        "/v1/teams/{team}/plugins/{id}/installations",
        "/v1/teams/{team}/plugins/{id}/installations/{installation}",
        "/v1/teams/{team}/plugins/{id}/installations/{installation}/config",
        "/v1/teams/{team}/plugins/{id}/backfills",
        "/v1/teams/{team}/plugins/{id}/installations/{installation}/backfills",
        "/v1/teams/{team}/backfills",
        "/v1/teams/{team}/backfills/{backfill}",
    ] {
        assert!(
            paths.iter().any(|p| p == expected_route),
            "{expected_route} is read from the route table: {paths:?}"
        );
    }
    let mut routed = std::collections::BTreeSet::new();
    for path in &paths {
        let concrete = path
            .replace("{team}", "acme")
            .replace("{id}", "probe")
            .replace("{installation}", "probe")
            .replace("{backfill}", "probe")
            .replace("{action}", "probe");
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let answer = registry.call(method, &concrete, None, None).await;
            if answer.status != StatusCode::METHOD_NOT_ALLOWED {
                assert_ne!(answer.json["detail"], "no such route; see /v1/openapi.json");
                routed.insert((method.to_lowercase(), path.clone()));
            }
        }
    }
    let document: Value = serde_json::from_str(switchyard_registry::api::ops::OPENAPI).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    assert_eq!(
        routed, documented,
        "routes (left) and OpenAPI operations (right) differ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_in_a_stable_order_with_next_links() {
    let registry = InProcessRegistry::start(&[]).await;
    for n in 0..5 {
        let answer = registry
            .call(
                "POST",
                "/v1/plugins",
                Some(&admin()),
                Some(&manifest(&format!("plug-{n}"), "1.0.0")),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    }
    let ids = |answer: &Value| -> Vec<String> {
        answer
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Without limit: everything, no Link, as before paging existed.
    let all = registry.call("GET", "/v1/plugins", Some(&admin()), None).await;
    assert_eq!(ids(&all.json), ["plug-0", "plug-1", "plug-2", "plug-3", "plug-4"]);
    assert!(all.headers.get("link").is_none());

    // Pages of two, following each Link; a plugin removed between calls does not shift the next page.
    let first = registry
        .call("GET", "/v1/plugins?limit=2", Some(&admin()), None)
        .await;
    assert_eq!(ids(&first.json), ["plug-0", "plug-1"]);
    let link = first.headers["link"].to_str().unwrap().to_owned();
    let next = link
        .strip_prefix('<')
        .unwrap()
        .split(">; rel=\"next\"")
        .next()
        .unwrap()
        .to_owned();
    assert!(next.starts_with("/v1/plugins?limit=2&cursor="), "{link}");
    let removed = registry
        .call("DELETE", "/v1/plugins/plug-1", Some(&admin()), None)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let second = registry.call("GET", &next, Some(&admin()), None).await;
    assert_eq!(ids(&second.json), ["plug-2", "plug-3"]);
    let link = second.headers["link"].to_str().unwrap();
    let last = link.strip_prefix('<').unwrap().split('>').next().unwrap();
    let third = registry.call("GET", last, Some(&admin()), None).await;
    assert_eq!(ids(&third.json), ["plug-4"]);
    assert!(
        third.headers.get("link").is_none(),
        "the last page names no next one"
    );

    // A team's installations page the same way; a bad limit or cursor is a 422.
    for n in 0..3 {
        let path = format!("/v1/teams/acme/plugins/plug-{}", 2 * n);
        let answer = registry
            .call("PUT", &path, Some(&team("acme")), Some(&json!({"enabled": true})))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }
    let page = registry
        .call(
            "GET",
            "/v1/teams/acme/installations?limit=2",
            Some(&team("acme")),
            None,
        )
        .await;
    assert_eq!(page.json.as_array().unwrap().len(), 2);
    assert!(page.headers.get("link").is_some());
    for query in ["limit=0", "limit=5000", "cursor=zz"] {
        let answer = registry
            .call(
                "GET",
                &format!("/v1/teams/acme/plugins?{query}"),
                Some(&team("acme")),
                None,
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            answer.json
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_token_near_expiry_shows_in_the_plugin_and_its_metric() {
    use switchyard_tests::registries::{RegistryTopics, ServedRegistry, http};
    // Heartbeat TTL 5 s: housekeeping (which sets the gauge) runs every 5 s.
    let registry = ServedRegistry::start(&RegistryTopics::unique(), &[("HEARTBEAT__TTL_MS", "5000")]).await;
    let url = |path: &str| format!("{}{path}", registry.url);
    let manifest = manifest("sms-notify", "1.0.0");
    let (status, _) = http("POST", &url("/v1/plugins"), Some(&admin()), Some(&manifest)).await;
    assert_eq!(status, 201);
    // An admin's heartbeat says nothing about the workers' token.
    let beat = json!({"instance_id": "pod-a"});
    let heartbeat = url("/v1/plugins/sms-notify/heartbeat");
    let (status, _) = http("POST", &heartbeat, Some(&admin()), Some(&beat)).await;
    assert_eq!(status, 200);
    let (_, shown) = http("GET", &url("/v1/plugins/sms-notify"), Some(&admin()), None).await;
    assert!(shown.get("token").is_none(), "{shown}");

    // The plugin's own token (ten minutes, well within the 14-day warning) is recorded and shown.
    let (status, ack) = http("POST", &heartbeat, Some(&plugin("sms-notify")), Some(&beat)).await;
    assert_eq!(status, 200);
    assert!(ack["instance"]["token_expires_at"].is_string(), "{ack}");
    let (_, shown) = http("GET", &url("/v1/plugins/sms-notify"), Some(&team("acme")), None).await;
    let left = shown["token"]["expires_in_seconds"].as_i64().unwrap();
    assert!((500..=600).contains(&left), "{shown}");
    assert_eq!(shown["token"]["expires_soon"], true);
    let sample = "switchyard_registry_plugin_token_expiry_seconds{plugin=\"sms-notify\"}";
    let value =
        switchyard_tests::wait::wait_for("the metric", std::time::Duration::from_secs(20), || async {
            let (_, metrics) = http("GET", &url("/metrics"), None, None).await;
            let text = metrics.as_str().unwrap_or_default().to_owned();
            text.lines()
                .find_map(|line| line.strip_prefix(sample))
                .and_then(|value| value.trim().parse::<f64>().ok())
        })
        .await;
    assert!((0.0..=600.0).contains(&value), "{value}");
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_keys_rotate_by_kid_as_the_runbook_says() {
    use base64::Engine as _;
    use switchyard_registry::auth::{Claims, mint_hs256_with};
    let (old, new) = (
        b"the old token secret, 32 bytes or more".as_slice(),
        b"the new token secret, 32 bytes or more!".as_slice(),
    );
    let jwk = |kid: &str, secret: &[u8]| json!({"kid": kid, "kty": "oct", "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)});
    let admin_with = |secret: &[u8], kid: &str| {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let claims = Claims {
            role: Role::Admin,
            team: None,
            plugin: None,
            exp,
            jti: None,
            purpose: None,
        };
        mint_hs256_with(secret, &claims, None, Some(kid)).unwrap()
    };
    let (old_token, new_token) = (admin_with(old, "2026-11"), admin_with(new, "2026-12"));
    let status = async |registry: &InProcessRegistry, token: &str| {
        registry.call("GET", "/v1/plugins", Some(token), None).await
    };
    // Before: the old key alone.
    let set = |keys: Vec<Value>| json!({"keys": keys}).to_string();
    // Keys with ids only (no auth.hs256_secret, which would be tried for an unknown kid).
    let before = InProcessRegistry::start(&[
        ("AUTH__HS256_SECRET", ""),
        ("AUTH__JWKS", &set(vec![jwk("2026-11", old)])),
    ])
    .await;
    assert_eq!(status(&before, &old_token).await.status, StatusCode::OK);
    // Step 1: both keys; tokens of either verify.
    let both = InProcessRegistry::start_on(
        before.topics.clone(),
        &[
            ("AUTH__HS256_SECRET", ""),
            ("AUTH__JWKS", &set(vec![jwk("2026-11", old), jwk("2026-12", new)])),
        ],
    )
    .await;
    assert_eq!(status(&both, &old_token).await.status, StatusCode::OK);
    assert_eq!(status(&both, &new_token).await.status, StatusCode::OK);
    // Step 4: the old key removed; its tokens are refused with a 401 that names their kid.
    let after = InProcessRegistry::start_on(
        before.topics.clone(),
        &[
            ("AUTH__HS256_SECRET", ""),
            ("AUTH__JWKS", &set(vec![jwk("2026-12", new)])),
        ],
    )
    .await;
    assert_eq!(status(&after, &new_token).await.status, StatusCode::OK);
    let refused = status(&after, &old_token).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused.json["detail"]
            .as_str()
            .unwrap()
            .contains("kid \"2026-11\" names no key"),
        "{}",
        refused.json
    );
}
