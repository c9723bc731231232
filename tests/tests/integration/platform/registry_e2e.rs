//! End to end through the real binaries: two `switchyard-registry` replicas, `switchyardctl`, and a router.
//! A plugin registered and enabled through the API routes events; disabled, it does not. A write on one
//! replica is read on the other; a restarted replica rebuilds its state from the topics; a secret config
//! field reaches the configs topic but no answer, no CLI output and no log line (at debug level).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_registry::secrets::ConfigSecrets;
use switchyard_schemas::configs::ConfigRecord;
use switchyard_schemas::envelope::ContentType;
use switchyard_tests::binaries::free_address;
use switchyard_tests::broker::{TestProducer, create_topics, read_to_end, unique};
use switchyard_tests::records::core_event;
use switchyard_tests::registries::{
    HS256_SECRET, MASTER_KEY, RegistryProcess, RegistryTopics, ctl_binary, http, team,
};
use switchyard_tests::routers::{InProcessRouter, Topics};
use switchyard_tests::wait::wait_for;

const SECRET_VALUE: &str = "sk-live-5f1c9a7e-never-log-me";

/// Runs `switchyardctl` against `url` with `token`; returns stdout, failing the test on a non-zero exit.
fn ctl(url: &str, token: &str, args: &[&str]) -> String {
    let output = Command::new(ctl_binary())
        .args(args)
        .env("SWITCHYARD_REGISTRY_URL", url)
        .env("SWITCHYARD_TOKEN", token)
        .env("SWITCHYARD_REGISTRY__AUTH__HS256_SECRET", HS256_SECRET)
        .output()
        .expect("run switchyardctl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "switchyardctl {args:?} failed: {stderr}{stdout}"
    );
    assert!(!stdout.contains(SECRET_VALUE) && !stderr.contains(SECRET_VALUE));
    stdout
}

fn start(topics: &RegistryTopics, address: std::net::SocketAddr, log: &Path) -> RegistryProcess {
    let env: BTreeMap<String, String> = topics.env(address, &[("LOG__LEVEL", "debug")]);
    RegistryProcess::start(&env, address, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_replicas_cli_and_router_end_to_end() {
    let dir = std::env::temp_dir().join(unique("switchyard-registry-e2e"));
    std::fs::create_dir_all(&dir).unwrap();
    let (log_a, log_b) = (dir.join("registry-a.log"), dir.join("registry-b.log"));
    let topics = RegistryTopics::unique();
    let (address_a, address_b) = (free_address(), free_address());
    let a = start(&topics, address_a, &log_a);
    let b = start(&topics, address_b, &log_b);
    a.wait_ready().await;
    b.wait_ready().await;

    // A router on the registry's control topics.
    let router_topics = Topics::of_registry(&topics);
    create_topics(&[
        (&router_topics.core, 2, false),
        (&router_topics.dead_letter, 1, false),
    ])
    .await;
    let router = InProcessRouter::start(&router_topics, &[]);
    router.admin.wait_ready().await;

    // Register through the CLI on replica A; replica B sees it.
    let admin = ctl(&a.url, "", &["token", "mint", "--role", "admin", "--ttl", "10m"])
        .trim()
        .to_owned();
    let manifest = dir.join("sms-notify.json");
    std::fs::write(
        &manifest,
        json!({"id": "sms-notify", "name": "SMS notify", "version": "1.0.0", "url": "http://127.0.0.1:9",
               "events": ["response.submitted"], "actions": []})
        .to_string(),
    )
    .unwrap();
    let registered = ctl(
        &a.url,
        &admin,
        &["plugins", "register", manifest.to_str().unwrap()],
    );
    assert!(registered.contains("sms-notify"), "{registered}");
    assert!(
        !registered.contains("whsec_"),
        "the table hides the signing secret: {registered}"
    );
    let on_b = wait_for("replica B to see the plugin", Duration::from_secs(20), || async {
        let (status, body) = http(
            "GET",
            &format!("{}/v1/plugins/sms-notify", b.url),
            Some(&admin),
            None,
        )
        .await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(on_b["version"], "1.0.0");
    let listed = ctl(&b.url, &admin, &["plugins", "list"]);
    assert!(
        listed.starts_with("ID") && listed.contains("sms-notify") && listed.contains("down"),
        "{listed}"
    );

    // Enable for acme through replica B, with a team token minted by the CLI.
    let acme = ctl(&b.url, "", &["token", "mint", "--role", "team", "--team", "acme"])
        .trim()
        .to_owned();
    let enabled = ctl(
        &b.url,
        &acme,
        &["--json", "enable", "--team", "acme", "sms-notify"],
    );
    let enabled: Value = serde_json::from_str(&enabled).unwrap();
    assert_eq!(enabled["enabled"], true);

    // An event of acme is routed to the plugin's topic.
    let producer = TestProducer::new();
    producer.send(
        &router_topics.core,
        &core_event("acme", "response.submitted", "e-1", ContentType::Json),
    );
    producer.flush();
    let plugin_topic = topics.events("sms-notify");
    let routed = wait_for(
        "the event on the plugin topic",
        Duration::from_secs(30),
        || async {
            let records = read_to_end(&plugin_topic);
            (!records.is_empty()).then_some(records)
        },
    )
    .await;
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].header("ce_id").as_deref(), Some("e-1"));

    // Disabled through replica A: once the router applied it, the next event is not routed.
    ctl(&a.url, &admin, &["disable", "--team", "acme", "sms-notify"]);
    wait_for(
        "the router to apply the disable",
        Duration::from_secs(20),
        || async { (router.admin.metric("switchyard_router_enablements").await == 0.0).then_some(()) },
    )
    .await;
    producer.send(
        &router_topics.core,
        &core_event("acme", "response.submitted", "e-2", ContentType::Json),
    );
    producer.flush();
    router.admin.wait_outcomes(2).await;
    assert_eq!(
        read_to_end(&plugin_topic).len(),
        1,
        "the disabled plugin got nothing more"
    );

    // A config with a secret field.
    let sheets = dir.join("sheets-export.json");
    std::fs::write(
        &sheets,
        json!({"id": "sheets-export", "name": "Sheets export", "version": "2.0.0",
               "events": ["response.submitted"],
               "config_schema": {"type": "object", "required": ["spreadsheet_id"], "properties": {
                   "spreadsheet_id": {"type": "string"},
                   "api_key": {"type": "string", "writeOnly": true}}}})
        .to_string(),
    )
    .unwrap();
    ctl(&a.url, &admin, &["plugins", "register", sheets.to_str().unwrap()]);
    ctl(&a.url, &acme, &["enable", "--team", "acme", "sheets-export"]);
    let set = ctl(
        &a.url,
        &acme,
        &[
            "config",
            "set",
            "--team",
            "acme",
            "sheets-export",
            &json!({"spreadsheet_id": "sheet-9", "api_key": SECRET_VALUE}).to_string(),
        ],
    );
    assert!(set.contains("/api_key") && set.contains("(secret, set)"), "{set}");
    let shown = ctl(
        &b.url,
        &acme,
        &["--json", "config", "show", "--team", "acme", "sheets-export"],
    );
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["config"], json!({"spreadsheet_id": "sheet-9"}));
    assert_eq!(shown["secrets"], json!({"/api_key": "set"}));
    // The configs topic holds the secret sealed, never in clear; the plugin's own keys open it.
    let delivered = read_to_end(&topics.configs);
    assert!(
        !delivered.iter().any(|r| r
            .value
            .as_deref()
            .is_some_and(|v| String::from_utf8_lossy(v).contains(SECRET_VALUE))),
        "no clear secret in the configs topic"
    );
    let sealed: ConfigRecord =
        serde_json::from_slice(delivered.last().unwrap().value.as_deref().unwrap()).unwrap();
    let keys = ConfigSecrets::parse(&[MASTER_KEY])
        .unwrap()
        .plugin_keys("sheets-export");
    assert_eq!(
        sealed.opened(&keys).unwrap()["api_key"],
        SECRET_VALUE,
        "the plugin's keys open it"
    );
    // A bad config that quotes the secret in the request: the answer does not repeat it.
    let (status, body) = http(
        "PUT",
        &format!("{}/v1/teams/acme/plugins/sheets-export/config", a.url),
        Some(&team("acme")),
        Some(&json!({"spreadsheet_id": 5, "api_key": 7, "note": SECRET_VALUE})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(!body.to_string().contains(SECRET_VALUE), "{body}");

    // The CLI's view of the sealing, and a rotation with nothing left to do.
    let status = ctl(&b.url, &admin, &["secrets", "status"]);
    assert!(
        status.contains("sealing key: test-2026-12") && status.contains("to reseal:   0"),
        "{status}"
    );
    let rotated = ctl(&b.url, &admin, &["secrets", "rotate"]);
    assert!(
        rotated.contains("every config is sealed with the sealing key"),
        "{rotated}"
    );
    let keys = ctl(
        &b.url,
        "",
        &[
            "secrets",
            "plugin-keys",
            "--plugin",
            "sheets-export",
            "--master-keys",
            MASTER_KEY,
        ],
    );
    assert!(keys.starts_with("test-2026-12:"), "{keys}");

    // Replica A restarts and rebuilds everything from the topics.
    assert!(a.terminate().success(), "SIGTERM exits 0");
    let a = start(&topics, address_a, &log_a);
    a.wait_ready().await;
    let (status, plugins) = http("GET", &format!("{}/v1/plugins", a.url), Some(&admin), None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["sheets-export", "sms-notify"]);
    let (_, enablements) = http(
        "GET",
        &format!("{}/v1/teams/acme/plugins", a.url),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        enablements
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["plugin_id"].as_str().unwrap(), e["enabled"].as_bool().unwrap()))
            .collect::<Vec<_>>(),
        [("sheets-export", true), ("sms-notify", false)]
    );
    let (_, config) = http(
        "GET",
        &format!("{}/v1/teams/acme/plugins/sheets-export/config", a.url),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(config["secrets"], json!({"/api_key": "set"}));

    drop(a);
    drop(b);
    router.stop().await.expect("router stops cleanly");
    for log in [&log_a, &log_b] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            text.contains("plugin registered") || text.contains("registry listening"),
            "{text}"
        );
        assert!(!text.contains(SECRET_VALUE), "{} logs the secret", log.display());
        assert!(
            !text.contains(HS256_SECRET),
            "{} logs the token secret",
            log.display()
        );
    }
}

#[test]
fn check_config_reports_what_would_stop_the_start() {
    let topics = RegistryTopics::unique();
    let run = |overrides: &[(&str, &str)]| {
        Command::new(switchyard_tests::registries::registry_binary())
            .arg("--check-config")
            .env_clear()
            .envs(topics.env(free_address(), overrides))
            .output()
            .expect("run switchyard-registry --check-config")
    };
    let valid = run(&[]);
    assert!(
        valid.status.success(),
        "{}",
        String::from_utf8_lossy(&valid.stderr)
    );
    for (key, value, mentions) in [
        ("GATEWAY__URL_PATTERNS", "gopher://x", "gopher"),
        ("GATEWAY__ALLOWED_NETWORKS", "10.0.0.0/99", "10.0.0.0/99"),
        ("AUTH__RS256_PUBLIC_KEYS", "not a pem", "RS256"),
        ("GATEWAY__SIGNING_KEY", "short", "signing_key"),
        ("HTTP__LISTN", "127.0.0.1:1", "listn"),
    ] {
        let output = run(&[(key, value)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{key}: {stderr}");
        assert!(stderr.contains(mentions), "{key}: {stderr}");
        assert!(!stderr.contains(HS256_SECRET), "{stderr}");
    }
}
