//! The plugin-token runbook of `docs/operations.md` ("Rotating keys", "Plugin tokens"), step by step: a
//! plugin's workers heartbeat with a token that expires within the warning period, so the plugin shows
//! `token.expires_soon`; a new token minted with `switchyardctl token mint` (as the runbook says) goes to the
//! rolled workers; once the old workers' heartbeats have aged out, the plugin shows the new token's expiry
//! and the warning and its metric clear.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use switchyard_registry::auth::{Claims, Role, mint_hs256};
use switchyard_tests::registries::{HS256_SECRET, RegistryTopics, ServedRegistry, admin, ctl_binary, http};
use switchyard_tests::wait::wait_for;

const DAY: u64 = 86_400;

/// A plugin token for sms-notify that expires in `seconds`.
fn expiring_in(seconds: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = Claims {
        role: Role::Plugin,
        team: None,
        plugin: Some("sms-notify".to_owned()),
        exp: now + seconds,
        jti: None,
        purpose: None,
    };
    mint_hs256(HS256_SECRET.as_bytes(), &claims).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_token_rotates_as_the_runbook_says() {
    // Heartbeats count for 3 s: the old worker's stop to weigh within seconds.
    let registry = ServedRegistry::start(&RegistryTopics::unique(), &[("HEARTBEAT__TTL_MS", "3000")]).await;
    let url = |path: &str| format!("{}{path}", registry.url);
    let manifest =
        json!({"id": "sms-notify", "name": "SMS", "version": "1.0.0", "events": ["response.submitted"]});
    let (status, body) = http("POST", &url("/v1/plugins"), Some(&admin()), Some(&manifest)).await;
    assert_eq!(status, 201, "{body}");
    let heartbeat = |token: String, instance: &'static str| {
        let url = url("/v1/plugins/sms-notify/heartbeat");
        async move {
            let (status, body) = http(
                "POST",
                &url,
                Some(&token),
                Some(&json!({"instance_id": instance})),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    let shown = || async {
        let (_, plugin) = http("GET", &url("/v1/plugins/sms-notify"), Some(&admin()), None).await;
        plugin["token"].clone()
    };

    // The workers' token expires in 3 days: within the 14-day warning.
    let old = expiring_in(3 * DAY);
    heartbeat(old.clone(), "pod-old").await;
    let token = shown().await;
    assert_eq!(token["expires_soon"], true, "{token}");
    assert!(token["expires_in_seconds"].as_i64().unwrap() <= 3 * 86_400);

    // 1. Mint a new token, as the runbook does.
    let minted = Command::new(ctl_binary())
        .args([
            "token",
            "mint",
            "--role",
            "plugin",
            "--plugin",
            "sms-notify",
            "--ttl",
            "90d",
        ])
        .env("SWITCHYARD_REGISTRY__AUTH__HS256_SECRET", HS256_SECRET)
        .output()
        .expect("run switchyardctl");
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let new = String::from_utf8(minted.stdout).unwrap().trim().to_owned();

    // 2. The rolled workers heartbeat with it; while an old one is still live (it beats during the
    //    rollout), its token is the earliest.
    heartbeat(old.clone(), "pod-old").await;
    heartbeat(new.clone(), "pod-new").await;
    assert_eq!(shown().await["expires_soon"], true);

    // 3. The old worker is gone: once its heartbeat ages out, the new token is what the plugin shows.
    let token: Value = wait_for(
        "the new token to be the plugin's",
        Duration::from_secs(30),
        || {
            let new = new.clone();
            let heartbeat = &heartbeat;
            let shown = &shown;
            async move {
                heartbeat(new, "pod-new").await;
                let token = shown().await;
                (token["expires_soon"] == false).then_some(token)
            }
        },
    )
    .await;
    assert!(
        token["expires_in_seconds"].as_i64().unwrap() > 89 * 86_400,
        "{token}"
    );
    let sample = "switchyard_registry_plugin_token_expiry_seconds{plugin=\"sms-notify\"}";
    wait_for("the expiry metric to follow", Duration::from_secs(30), || async {
        heartbeat(new.clone(), "pod-new").await;
        let (_, metrics) = http("GET", &url("/metrics"), None, None).await;
        let value = metrics
            .as_str()
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix(sample))
            .and_then(|value| value.trim().parse::<f64>().ok());
        value.filter(|&seconds| seconds > 89.0 * 86_400.0)
    })
    .await;
    // The old token is not revoked: it still authenticates until it expires.
    heartbeat(old, "pod-late").await;
    registry.stop().await;
}
