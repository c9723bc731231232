//! Signed, version-checked releases through the registry's API (in process, on its real store and the
//! broker): a correct publisher signature registers and is stored; a changed manifest, an unknown key, a
//! key not trusted for the plugin and, with `registration.require_signed`, a missing signature are
//! refused with a 422 naming the problem; `contract` ranges that include the registry's contract version
//! register and others are refused with both versions named. A manifest of before these fields registers
//! byte for byte as it did.

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard_schemas::publisher::{CONTRACT_VERSION, SecretKey};
use switchyard_tests::registries::{InProcessRegistry, admin};

fn manifest(id: &str) -> Value {
    json!({"id": id, "name": "Hello", "description": "Greets.", "version": "1.0.0", "contract": "^1",
           "events": ["response.submitted"], "actions": [],
           "config_schema": {"type": "object", "properties": {"greeting": {"type": "string", "default": "Hi"}}}})
}

async fn register(registry: &InProcessRegistry, body: &Value) -> (StatusCode, Value) {
    let answer = registry
        .call("POST", "/v1/plugins", Some(&admin()), Some(body))
        .await;
    (answer.status, answer.json)
}

/// The refusal's detail at `/signature` (or `/contract`).
fn detail(json: &Value, pointer: &str) -> String {
    json["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|e| e["pointer"] == pointer))
        .and_then(|e| e["detail"].as_str())
        .unwrap_or_else(|| panic!("no error at {pointer}: {json}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_checked_against_the_trusted_publisher_keys() {
    let acme = SecretKey::generate("acme-2026").unwrap();
    let trusted = acme.trust_line(&["acme-*".to_owned()]);
    let registry = InProcessRegistry::start(&[
        ("REGISTRATION__PUBLISHERS", &trusted),
        ("REGISTRATION__REQUIRE_SIGNED", "true"),
    ])
    .await;

    // Signed by a trusted key: registered, and the stored manifest keeps the signature and the range.
    let mut signed = manifest("acme-hello");
    acme.sign(&mut signed).unwrap();
    // As the bridge sends it: with the url it filled in, which the signature does not cover.
    signed["url"] = json!("http://127.0.0.1:3000");
    let (status, json) = register(&registry, &signed).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let stored = registry
        .state
        .store
        .get(&registry.topics.plugins, "acme-hello")
        .unwrap();
    let stored: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(stored["signature"], signed["signature"]);
    assert_eq!(stored["contract"], "^1");

    // The same manifest, changed after signing.
    let mut changed = signed.clone();
    changed["events"] = json!(["response.submitted", "response.updated"]);
    let (status, json) = register(&registry, &changed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert!(
        detail(&json, "/signature").contains("does not match the manifest"),
        "{json}"
    );

    // Signed by a key the registry does not know.
    let stranger = SecretKey::generate("globex-1").unwrap();
    let mut foreign = manifest("acme-other");
    stranger.sign(&mut foreign).unwrap();
    let (status, json) = register(&registry, &foreign).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert!(
        detail(&json, "/signature").contains("\"globex-1\", which this registry does not trust"),
        "{json}"
    );

    // A trusted key, for a plugin outside its prefix.
    let mut elsewhere = manifest("wordcount");
    acme.sign(&mut elsewhere).unwrap();
    let (status, json) = register(&registry, &elsewhere).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert!(
        detail(&json, "/signature").contains("trusted only for plugins acme-*"),
        "{json}"
    );

    // Unsigned, while signatures are required.
    let (status, json) = register(&registry, &manifest("acme-unsigned")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert!(
        detail(&json, "/signature").contains("registration.require_signed"),
        "{json}"
    );
    assert_eq!(json["type"], "/problems/invalid", "{json}");
    let missing = registry
        .call("GET", "/v1/plugins/acme-unsigned", Some(&admin()), None)
        .await;
    assert_eq!(
        missing.status,
        StatusCode::NOT_FOUND,
        "a refused manifest is not stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_ranges_are_checked_and_old_manifests_register_as_before() {
    // No publishers: unsigned manifests register, a signature that is present is checked all the same.
    let registry = InProcessRegistry::start(&[]).await;
    let version = CONTRACT_VERSION.to_string();
    for (n, accepted) in ["^1", ">=1.0, <2", "*", version.as_str()].into_iter().enumerate() {
        let mut body = manifest(&format!("ranged-{n}"));
        body["contract"] = json!(accepted);
        let (status, json) = register(&registry, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{accepted}: {json}");
    }
    for (n, refused) in ["^2", ">=1.99", "<1.0"].into_iter().enumerate() {
        let mut body = manifest(&format!("refused-{n}"));
        body["contract"] = json!(refused);
        let (status, json) = register(&registry, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}: {json}");
        let detail = detail(&json, "/contract");
        assert!(detail.contains(refused) && detail.contains(&version), "{detail}");
    }
    let mut nonsense = manifest("nonsense");
    nonsense["contract"] = json!("one point oh");
    let (status, json) = register(&registry, &nonsense).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert!(
        detail(&json, "/contract").contains("is not a version range"),
        "{json}"
    );

    let mut unknown = manifest("signed-unknown");
    SecretKey::generate("nobody").unwrap().sign(&mut unknown).unwrap();
    let (status, json) = register(&registry, &unknown).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");

    // A manifest from before `contract` and `signature`: registered, stored exactly as before.
    let old = json!({"id": "audit-log", "name": "Audit log", "version": "0.1.0",
                     "events": ["form.created", "form.updated", "response.submitted", "response.updated"]});
    let (status, json) = register(&registry, &old).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let stored = registry
        .state
        .store
        .get(&registry.topics.plugins, "audit-log")
        .unwrap();
    assert_eq!(
        String::from_utf8(stored.to_vec()).unwrap(),
        r#"{"id":"audit-log","name":"Audit log","description":"","version":"0.1.0","events":["form.created","form.updated","response.submitted","response.updated"],"actions":[]}"#
    );
}
