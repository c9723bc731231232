//! A plugin service over HTTP behind the runtime (what `switchyard-plugin-bridge` runs), with a real
//! registry: registration and heartbeats (status up, then down after the goodbye), signed calls the
//! service verifies, the same `webhook-id` across retries, `Retry-After`, redirects not followed, a 4xx
//! dead-lettered at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use switchyard_plugin_runtime::http_plugin::{HttpPlugin, HttpPluginSettings};
use switchyard_registry::signing::MasterKey;
use switchyard_schemas::envelope::ContentType;
use switchyard_schemas::webhook::{
    DEFAULT_TOLERANCE_SECS, SigningSecret, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
};
use switchyard_tests::broker::TestProducer;
use switchyard_tests::records::core_event;
use switchyard_tests::registries::{RegistryTopics, SIGNING_KEY, ServedRegistry, admin, http, plugin};
use switchyard_tests::wait::{wait_for, wait_for_records};
use switchyard_tests::workers::{InProcessWorker, WorkerTopics};

/// One call as the service saw it: (webhook-id, `switchyard-attempt`).
type Seen = (String, String);

/// What the service saw: per event id, each call.
#[derive(Clone)]
struct Service {
    base: String,
    secret: SigningSecret,
    calls: Arc<Mutex<HashMap<String, Vec<Seen>>>>,
    redirected: Arc<Mutex<u32>>,
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn execute(State(service): State<Service>, headers: HeaderMap, body: Bytes) -> Response {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let webhook_id = header(&headers, WEBHOOK_ID);
    if service
        .secret
        .verify(
            &webhook_id,
            &header(&headers, WEBHOOK_TIMESTAMP),
            &header(&headers, WEBHOOK_SIGNATURE),
            &body,
            now,
            DEFAULT_TOLERANCE_SECS,
        )
        .is_err()
    {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["teamid"], header(&headers, "switchyard-team"));
    let id = event["id"].as_str().unwrap().to_owned();
    let seen = {
        let mut calls = service.calls.lock().unwrap();
        let list = calls.entry(id.clone()).or_default();
        list.push((webhook_id, header(&headers, "switchyard-attempt")));
        list.len()
    };
    match id.as_str() {
        "e-503" if seen == 1 => {
            (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")], "busy").into_response()
        }
        "e-302" => (
            StatusCode::FOUND,
            [("location", format!("{}/elsewhere", service.base))],
            "",
        )
            .into_response(),
        "e-422" => (StatusCode::UNPROCESSABLE_ENTITY, "no such form").into_response(),
        _ => axum::Json(json!({"results": [{"type": "echo.seen", "data": {
            "response_id": event["data"]["response"]["id"]}}]}))
        .into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_plugin_behind_the_runtime_with_a_registry() {
    let registry_topics = RegistryTopics::unique();
    let registry = ServedRegistry::start(&registry_topics, &[]).await;
    let topics = WorkerTopics::of_registry("echo-http", &registry_topics).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let secret_text = MasterKey::parse(SIGNING_KEY).unwrap().plugin_secret("echo-http");
    let service = Service {
        base: base.clone(),
        secret: SigningSecret::parse(&secret_text).unwrap(),
        calls: Arc::default(),
        redirected: Arc::default(),
    };
    let manifest = json!({"id": "echo-http", "name": "Echo over HTTP", "version": "1.0.0",
                          "events": ["response.submitted"], "actions": []});
    let app = Router::new()
        .route("/metadata", get(move || async move { axum::Json(manifest) }))
        .route("/execute", post(execute))
        .route(
            "/elsewhere/execute",
            post(|State(service): State<Service>| async move {
                *service.redirected.lock().unwrap() += 1;
                "followed"
            }),
        )
        .with_state(service.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let settings = topics.settings(&[
        ("REGISTRY__URL", &registry.url),
        ("REGISTRY__TOKEN", &plugin("echo-http")),
        ("REGISTRY__HEARTBEAT_INTERVAL_MS", "300"),
        ("REGISTRY__INSTANCE_ID", "echo-0"),
        ("HTTP__URL_PATTERNS", &base),
        ("HTTP__ALLOWED_NETWORKS", "127.0.0.1/32"),
        ("RETRY__MAX_ATTEMPTS", "3"),
    ]);
    let bridge = HttpPlugin::connect(
        &HttpPluginSettings {
            url: base.clone(),
            timeout: Duration::from_secs(5),
            max_response_bytes: 65536,
            url_patterns: vec![base.clone()],
            allowed_networks: vec!["127.0.0.1/32".into()],
        },
        None,
    )
    .await
    .expect("the service's metadata");
    let worker = InProcessWorker::start(bridge, settings);

    let admin = admin();
    let status = |expected: &'static str| {
        let (url, admin) = (format!("{}/v1/plugins/echo-http", registry.url), admin.clone());
        async move {
            wait_for(
                &format!("the plugin to be {expected}"),
                Duration::from_secs(20),
                || async {
                    let (code, body) = http("GET", &url, Some(&admin), None).await;
                    (code == 200 && body["status"] == expected).then_some(body)
                },
            )
            .await
        }
    };
    let up = status("up").await;
    assert_eq!(up["active_instances"], 1);
    assert_eq!(up["url"], base.as_str(), "registered with the service's URL");

    let producer = TestProducer::new();
    for (team, id) in [
        ("acme", "e-ok"),
        ("globex", "e-503"),
        ("initech", "e-302"),
        ("umbrella", "e-422"),
    ] {
        producer.send(
            &topics.events,
            &core_event(team, "response.submitted", id, ContentType::Avro),
        );
    }
    producer.flush();
    let letters = wait_for_records(
        "two dead letters",
        &topics.dead_letter,
        2,
        Duration::from_secs(30),
    )
    .await;
    let reasons: HashMap<String, String> = letters
        .iter()
        .map(|r| {
            (
                r.header("ce_id").unwrap_or_default(),
                r.header("switchyard_error").unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        reasons["e-422"], "plugin_dead_letter",
        "a 4xx is dead-lettered at once"
    );
    assert_eq!(
        reasons["e-302"], "retries_exhausted",
        "a redirect is a failure, never followed"
    );
    assert_eq!(*service.redirected.lock().unwrap(), 0);
    let results = wait_for_records(
        "results of e-ok and e-503",
        &topics.results,
        2,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        results
            .iter()
            .any(|r| r.header("ce_causationid").as_deref() == Some("e-ok"))
    );
    let calls = service.calls.lock().unwrap().clone();
    assert_eq!(
        calls["e-ok"],
        [("e-ok".to_owned(), "1".to_owned())],
        "signed, verified, once"
    );
    assert_eq!(
        calls["e-503"],
        [
            ("e-503".to_owned(), "1".to_owned()),
            ("e-503".to_owned(), "2".to_owned())
        ],
        "the same webhook-id across the retry"
    );
    assert_eq!(calls["e-422"].len(), 1);
    assert_eq!(calls["e-302"].len(), 3);

    worker.stop().await.expect("clean stop");
    let down = status("down").await;
    assert_eq!(
        down["instances"],
        json!([]),
        "the goodbye removed the instance at once"
    );
    registry.stop().await;
}

/// An in-process plugin serves actions on its worker's admin server: the registry's gateway forwards a
/// team's call there, signed; an unsigned call is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_of_an_in_process_plugin_through_the_gateway() {
    use switchyard_plugin_runtime::plugin::{ActionReply, Context, Event, Outcome, Plugin, PluginError};
    use switchyard_schemas::control::PluginManifest;

    struct Echo;
    impl Plugin for Echo {
        fn manifest(&self) -> PluginManifest {
            PluginManifest {
                id: "echo-actions".into(),
                name: "Echo actions".into(),
                description: String::new(),
                version: semver::Version::new(1, 0, 0),
                url: None,
                events: vec!["response.submitted".into()],
                actions: vec!["resync".into()],
                config_schema: None,
                contract: None,
                signature: None,
                delivery: Default::default(),
            }
        }
        async fn initialize(&self, _: &str, _: &str, _: Option<&Value>) -> Result<(), PluginError> {
            Ok(())
        }
        async fn execute(&self, _: &Context, _: &Event) -> Outcome {
            Outcome::done()
        }
        async fn action(&self, team: &str, name: &str, body: &[u8]) -> Result<ActionReply, PluginError> {
            Ok(ActionReply {
                status: 202,
                body: json!({"team": team, "action": name, "bytes": body.len()}),
            })
        }
    }

    let registry_topics = RegistryTopics::unique();
    let admin_address = switchyard_tests::binaries::free_address();
    let worker_url = format!("http://{admin_address}");
    let registry = ServedRegistry::start(
        &registry_topics,
        &[("GATEWAY__URL_PATTERNS", worker_url.as_str())],
    )
    .await;
    let topics = WorkerTopics::of_registry("echo-actions", &registry_topics).await;
    let settings = topics.settings(&[
        ("REGISTRY__URL", &registry.url),
        ("REGISTRY__TOKEN", &plugin("echo-actions")),
        ("ADMIN__LISTEN", &admin_address.to_string()),
        ("ADMIN__PUBLIC_URL", &worker_url),
    ]);
    let worker = InProcessWorker::start(Echo, settings);
    let admin = admin();
    wait_for("the plugin to be up", Duration::from_secs(20), || async {
        let (_, body) = http(
            "GET",
            &format!("{}/v1/plugins/echo-actions", registry.url),
            Some(&admin),
            None,
        )
        .await;
        (body["status"] == "up").then_some(())
    })
    .await;
    let (status, _) = http(
        "PUT",
        &format!("{}/v1/teams/acme/plugins/echo-actions", registry.url),
        Some(&admin),
        Some(&json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = http(
        "POST",
        &format!(
            "{}/v1/teams/acme/plugins/echo-actions/actions/resync",
            registry.url
        ),
        Some(&switchyard_tests::registries::team("acme")),
        Some(&json!({"form_id": "form-1"})),
    )
    .await;
    assert_eq!(
        (status, &body["team"], &body["action"]),
        (202, &json!("acme"), &json!("resync")),
        "{body}"
    );
    let unsigned = reqwest::Client::new()
        .post(format!("{worker_url}/actions/resync"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    worker.stop().await.expect("clean stop");
    registry.stop().await;
}

/// The SSRF guard on `/execute`: a plugin URL in the metadata range or on loopback without an allowed
/// network is never called; its events end as dead letters after their budget, nothing reaches the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_calls_to_denied_addresses_are_never_made() {
    let hits = Arc::new(Mutex::new(0u32));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let loopback = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route(
            "/execute",
            post(|State(hits): State<Arc<Mutex<u32>>>| async move {
                *hits.lock().unwrap() += 1;
                "ok"
            }),
        )
        .with_state(Arc::clone(&hits));
    tokio::spawn(async move { axum::serve(listener, app).await });

    for (id, url) in [
        ("metadata-service", "http://169.254.169.254"),
        ("loopback", loopback.as_str()),
    ] {
        let topics = WorkerTopics::create(id, 1).await;
        let manifest = json!({"id": id, "name": id, "version": "1.0.0", "events": ["response.submitted"]});
        // The pattern matches the URL; no allowed network covers the address.
        let plugin = HttpPlugin::connect(
            &HttpPluginSettings {
                url: url.to_owned(),
                timeout: Duration::from_secs(2),
                max_response_bytes: 65536,
                url_patterns: vec![url.to_owned()],
                allowed_networks: Vec::new(),
            },
            Some(manifest),
        )
        .await
        .expect("the manifest is given, nothing is fetched");
        let worker = InProcessWorker::start(plugin, topics.settings(&[("RETRY__MAX_ATTEMPTS", "2")]));
        let producer = TestProducer::new();
        producer.send(
            &topics.events,
            &core_event("acme", "response.submitted", "e-1", ContentType::Json),
        );
        producer.flush();
        let letters =
            wait_for_records("the dead letter", &topics.dead_letter, 1, Duration::from_secs(30)).await;
        assert_eq!(
            letters[0].header("switchyard_error").as_deref(),
            Some("retries_exhausted")
        );
        let detail = letters[0].header("switchyard_error_detail").unwrap_or_default();
        assert!(detail.contains("denied range"), "{id}: {detail}");
        worker.stop().await.expect("clean stop");
    }
    assert_eq!(*hits.lock().unwrap(), 0, "the loopback service was never called");
}
