//! A plugin service in any language, called synchronously over HTTP: what `switchyard-plugin-bridge` runs.
//!
//! | call | request | answers |
//! |---|---|---|
//! | `GET {url}/metadata` | (at start, unless a manifest file is given) | 200 with the manifest JSON |
//! | `POST {url}/initialize` | `{"team_id", "config"}` (config `null` = removed), and `"installation"` for a named installation | 2xx applied; 4xx refused; else retried |
//! | `POST {url}/execute` | the event as CloudEvents structured JSON, data decoded (with the `installation` and `backfill` attributes when they apply) | see below |
//!
//! Every request carries the Standard Webhooks headers (`webhook-id` = the event's `ce_id` for `/execute`,
//! `<ce_id>/<installation>` for a named installation's copy, stable across retries; `webhook-timestamp`;
//! `webhook-signature` with the plugin's signing secret, when the worker has one from its registration or
//! `http.signing_secret`) and `switchyard-team`, and `switchyard-installation` for a named installation
//! (never for the default one, so a v1 service sees the requests it always saw); `/execute` also
//! `switchyard-attempt`, and, when the worker records traces (`[traces]`), `traceparent`: the attempt's span
//! (the body's `traceparent` attribute too; in a batch, the header is the first event's and each element
//! carries its own). Outcomes of `/execute`: 2xx = done (a JSON body
//! `{"results": [{"type", "subject"?, "data"}]}` publishes results); a body `{"outcome": "dead_letter",
//! "reason": "..."}` with any status = dead-letter now; 429, or a body `{"outcome": "slow_down"}` with any
//! status = throttled (called again later without spending the retry budget); 408, 5xx, 3xx (redirects are
//! not followed), timeouts, connection errors and refusals of the SSRF guard = retry (honouring
//! `Retry-After` seconds); any other 4xx = dead-letter now. `docs/plugin-authors.md` is the contract for service authors.
//!
//! A plugin whose manifest has `batch` gets every `/execute` as a batch: `content-type:
//! application/cloudevents-batch+json`, the body a JSON array of the structured events (one team's),
//! `webhook-id` = `batch_` and a hash of their ids (the same events give the same id), `switchyard-attempt`
//! the highest attempt among them. A bare 2xx means every event is done; a 2xx body `{"events": [{"id",
//! "outcome": "done" | "retry" | "dead_letter" | "slow_down", "reason"?, "results"?}]}` gives events their
//! own outcome (events it does not list are done); any other answer applies to every event as above.

use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_schemas::control::PluginManifest;
use switchyard_schemas::webhook::{SigningSecrets, WEBHOOK_ID, WEBHOOK_TIMESTAMP, batch_id};
use switchyard_service::egress::{EgressError, EgressPolicy, egress_error, read_capped};
use switchyard_service::traces::TRACEPARENT;
use thiserror::Error;

use crate::event::write_structured;
use crate::plugin::{
    BatchItem, Context, DEFAULT_INSTALLATION, Decoding, Event, Outcome, Owner, Plugin, PluginError,
    PluginResult,
};

/// Header: the team an `/execute` or `/initialize` call is for.
pub const TEAM_HEADER: &str = "switchyard-team";
/// Header: the team's named installation an `/execute` or `/initialize` call is for (absent for the default
/// installation).
pub const INSTALLATION_HEADER: &str = "switchyard-installation";
/// Header: 1 for the first call of an event, then 2, 3, ...
pub const ATTEMPT_HEADER: &str = "switchyard-attempt";
pub use switchyard_schemas::webhook::BATCH_CONTENT_TYPE;

/// The service could not be set up.
#[derive(Debug, Error)]
pub enum HttpPluginError {
    /// The URL, patterns or client are invalid.
    #[error("{0}")]
    Egress(#[from] EgressError),
    /// The manifest could not be read.
    #[error("cannot read the plugin's manifest: {0}")]
    Manifest(String),
    /// The signing secret is not a `whsec_` secret.
    #[error("the signing secret is invalid: {0}")]
    Secret(String),
}

/// How the bridge reaches the service.
#[derive(Debug, Clone)]
pub struct HttpPluginSettings {
    /// The service's base URL.
    pub url: String,
    /// Per-call timeout.
    pub timeout: Duration,
    /// Largest answer read.
    pub max_response_bytes: usize,
    /// The SSRF guard's URL patterns (the service's URL must match one).
    pub url_patterns: Vec<String>,
    /// Private networks allowed.
    pub allowed_networks: Vec<String>,
}

/// A plugin service behind HTTP.
pub struct HttpPlugin {
    base: String,
    manifest: PluginManifest,
    /// The manifest's JSON as the service served it (with `url` filled in): what registration sends.
    document: Value,
    policy: EgressPolicy,
    client: reqwest::Client,
    secret: RwLock<Option<SigningSecrets>>,
    max_response_bytes: usize,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    results: Vec<PluginResult>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// A 2xx answer to a batch: the outcomes of the events it lists.
#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    events: Vec<EventAnswer>,
}

/// One event's outcome in a [`BatchAnswer`].
#[derive(Deserialize)]
struct EventAnswer {
    id: String,
    outcome: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    results: Vec<PluginResult>,
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The headers of an `/execute` call beyond the signature's: `switchyard-attempt`, and `traceparent` when
/// the attempt is traced.
#[derive(Clone, Copy)]
struct Delivery<'a> {
    attempt: u32,
    traceparent: Option<&'a str>,
}

impl HttpPlugin {
    /// Connects to the service: reads its manifest from `manifest` (a file's JSON) or `GET {url}/metadata`.
    pub async fn connect(
        settings: &HttpPluginSettings,
        manifest: Option<Value>,
    ) -> Result<Self, HttpPluginError> {
        let policy = EgressPolicy::new(&settings.url_patterns, &settings.allowed_networks)?;
        let client = policy.client(settings.timeout)?;
        let base = settings.url.trim_end_matches('/').to_owned();
        let manifest = match manifest {
            Some(json) => json,
            None => {
                let url = policy.check_url(&format!("{base}/metadata"))?;
                let response = client
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| HttpPluginError::Manifest(format!("GET {base}/metadata failed: {e}")))?;
                if !response.status().is_success() {
                    return Err(HttpPluginError::Manifest(format!(
                        "GET {base}/metadata answered {}",
                        response.status()
                    )));
                }
                let body = read_capped(response, settings.max_response_bytes).await?;
                serde_json::from_slice(&body)
                    .map_err(|e| HttpPluginError::Manifest(format!("the metadata is not JSON: {e}")))?
            }
        };
        let id = manifest["id"].as_str().unwrap_or_default().to_owned();
        let bytes = serde_json::to_vec(&manifest).map_err(|e| HttpPluginError::Manifest(e.to_string()))?;
        let mut document = manifest;
        let mut manifest =
            PluginManifest::parse(&id, &bytes).map_err(|e| HttpPluginError::Manifest(e.to_string()))?;
        if manifest.url.is_none() {
            manifest.url = Some(base.clone());
            if let Some(members) = document.as_object_mut() {
                members.insert("url".into(), base.clone().into());
            }
        }
        Ok(Self {
            base,
            manifest,
            document,
            policy,
            client,
            secret: RwLock::new(None),
            max_response_bytes: settings.max_response_bytes,
        })
    }

    /// Sets the signing secret (from the registration, or configured): one `whsec_` secret, or several
    /// separated by spaces during a rotation (each request is then signed with every one).
    pub fn set_signing_secret(&self, secret: &str) -> Result<(), HttpPluginError> {
        let secret = SigningSecrets::parse(secret).map_err(|e| HttpPluginError::Secret(e.to_string()))?;
        *self.secret.write().unwrap_or_else(|p| p.into_inner()) = Some(secret);
        Ok(())
    }

    /// POSTs a signed JSON body (with the headers of `delivery` for `/execute`); returns the status, the
    /// `Retry-After`, and the body.
    async fn post(
        &self,
        path: &str,
        message_id: &str,
        owner: Owner<'_>,
        delivery: Option<Delivery<'_>>,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<(u16, Option<Duration>, Vec<u8>), String> {
        let url = self
            .policy
            .check_url(&format!("{}{path}", self.base))
            .map_err(|e| e.to_string())?;
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(TEAM_HEADER, owner.team);
        if owner.installation != DEFAULT_INSTALLATION {
            request = request.header(INSTALLATION_HEADER, owner.installation);
        }
        if let Some(delivery) = delivery {
            request = request.header(ATTEMPT_HEADER, delivery.attempt);
            if let Some(traceparent) = delivery.traceparent {
                request = request.header(TRACEPARENT, traceparent);
            }
        }
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let secret = self.secret.read().unwrap_or_else(|p| p.into_inner()).clone();
        match secret {
            Some(secret) => {
                for (name, value) in secret.headers(message_id, timestamp, &body) {
                    request = request.header(name, value);
                }
            }
            // Unsigned, but the idempotency key and the time still travel.
            None => {
                request = request
                    .header(WEBHOOK_ID, message_id)
                    .header(WEBHOOK_TIMESTAMP, timestamp);
            }
        }
        let response = request.body(body).send().await.map_err(|error| {
            if let Some(refused) = egress_error(&error) {
                format!("the SSRF guard refused the call: {refused}")
            } else if error.is_timeout() {
                "the plugin did not answer in time".to_owned()
            } else if error.is_connect() {
                "the plugin's service could not be reached".to_owned()
            } else {
                format!("the call failed: {error}")
            }
        })?;
        let status = response.status().as_u16();
        let after = retry_after(response.headers());
        let body = read_capped(response, self.max_response_bytes)
            .await
            .map_err(|e| format!("reading the answer failed: {e}"))?;
        Ok((status, after, body))
    }
}

/// The body of `POST /initialize`: `{"team_id", "config"}`, and `"installation"` between them for a named
/// installation (the default one's body is as before installations existed).
pub fn initialize_body(team: &str, installation: &str, config: Option<&Value>) -> Vec<u8> {
    let body = if installation == DEFAULT_INSTALLATION {
        json!({"team_id": team, "config": config})
    } else {
        json!({"team_id": team, "installation": installation, "config": config})
    };
    body.to_string().into_bytes()
}

/// The outcomes of a batch `/execute` answer, one per event id of `ids`, in their order.
pub fn classify_batch(status: u16, retry_after: Option<Duration>, body: &[u8], ids: &[&str]) -> Vec<Outcome> {
    let answered = (200..=299).contains(&status).then(|| {
        if body.is_empty() {
            None
        } else {
            serde_json::from_slice::<BatchAnswer>(body).ok()
        }
    });
    let Some(answer) = answered else {
        // Not a 2xx: the answer is the whole batch's.
        let outcome = classify(status, retry_after, body);
        return ids.iter().map(|_| outcome.clone()).collect();
    };
    if let Some(whole) = answer_for_all(body) {
        return ids.iter().map(|_| whole.clone()).collect();
    }
    let mut listed: std::collections::HashMap<String, EventAnswer> = answer
        .map(|a| a.events.into_iter().map(|e| (e.id.clone(), e)).collect())
        .unwrap_or_default();
    ids.iter()
        .map(|id| match listed.remove(*id) {
            None => Outcome::done(),
            Some(event) => match event.outcome.as_str() {
                "done" => Outcome::Done(event.results),
                "dead_letter" => Outcome::dead_letter(
                    event
                        .reason
                        .unwrap_or_else(|| "the plugin asked to dead-letter the event".to_owned()),
                ),
                "retry" => Outcome::Retry {
                    reason: event
                        .reason
                        .unwrap_or_else(|| "the plugin asked to retry the event".to_owned()),
                    after: retry_after,
                },
                "slow_down" => Outcome::Throttled {
                    reason: event
                        .reason
                        .unwrap_or_else(|| "the plugin asked to slow down".to_owned()),
                    after: retry_after,
                },
                other => Outcome::retry(format!(
                    "the plugin answered the unknown outcome {other:?} for this event"
                )),
            },
        })
        .collect()
}

/// A 2xx batch answer `{"outcome": "dead_letter" | "slow_down", ...}` without per-event outcomes: every
/// event's.
fn answer_for_all(body: &[u8]) -> Option<Outcome> {
    let answer: Answer = serde_json::from_slice(body).ok()?;
    matches!(answer.outcome.as_deref(), Some("dead_letter" | "slow_down")).then(|| classify(200, None, body))
}

/// The outcome of an `/execute` answer.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Outcome {
    // An empty body (the common "done") is no JSON: skip the parser's error.
    let answer: Option<Answer> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(body).ok()
    };
    if let Some(answer) = &answer
        && answer.outcome.as_deref() == Some("dead_letter")
    {
        return Outcome::dead_letter(
            answer
                .reason
                .clone()
                .unwrap_or_else(|| "the plugin asked to dead-letter the event".to_owned()),
        );
    }
    if let Some(answer) = &answer
        && answer.outcome.as_deref() == Some("slow_down")
    {
        return Outcome::Throttled {
            reason: answer
                .reason
                .clone()
                .unwrap_or_else(|| "the plugin asked to slow down".to_owned()),
            after: retry_after,
        };
    }
    match status {
        200..=299 => Outcome::Done(answer.map(|a| a.results).unwrap_or_default()),
        429 => Outcome::Throttled {
            reason: "the plugin answered 429".to_owned(),
            after: retry_after,
        },
        408 | 500..=599 => Outcome::Retry {
            reason: format!("the plugin answered {status}"),
            after: retry_after,
        },
        300..=399 => Outcome::retry(format!(
            "the plugin answered {status}; redirects are not followed"
        )),
        _ => Outcome::dead_letter(format!(
            "the plugin answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
    }
}

impl Plugin for HttpPlugin {
    fn manifest(&self) -> PluginManifest {
        self.manifest.clone()
    }

    /// The service's own JSON, so that a publisher's signature of it still holds at the registry.
    fn manifest_json(&self) -> Value {
        self.document.clone()
    }

    /// The service gets the data as JSON: the bridge writes it straight from the record.
    fn decoding(&self) -> Decoding {
        Decoding::JsonText
    }

    fn set_signing_secret(&self, secret: &str) {
        if let Err(error) = HttpPlugin::set_signing_secret(self, secret) {
            tracing::warn!(%error, "the registry's signing secret is unusable; calls go unsigned");
        }
    }

    async fn initialize(
        &self,
        team: &str,
        installation: &str,
        config: Option<&Value>,
    ) -> Result<(), PluginError> {
        let id = format!("init_{}", uuid::Uuid::now_v7().simple());
        let body = initialize_body(team, installation, config);
        let owner = Owner { team, installation };
        match self
            .post("/initialize", &id, owner, None, "application/json", body)
            .await
        {
            Ok((200..=299, _, _)) => Ok(()),
            Ok((status @ (408 | 429 | 500..=599), _, _)) => {
                Err(PluginError::transient(format!("/initialize answered {status}")))
            }
            Ok((status, _, body)) => Err(PluginError::permanent(format!(
                "/initialize answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))),
            Err(reason) => Err(PluginError::transient(reason)),
        }
    }

    async fn execute_batch(&self, items: &[BatchItem<'_>]) -> Vec<Outcome> {
        let Some(first) = items.first() else {
            return Vec::new();
        };
        let ids: Vec<&str> = items.iter().map(|item| item.ctx.meta.id.as_str()).collect();
        // The scheduler keeps a batch within one installation; a named one's copies get their own id.
        let copy_ids: Vec<_> = items.iter().map(|item| item.ctx.meta.copy_id()).collect();
        let mut body = Vec::with_capacity(items.len() * 2048);
        body.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            write_structured(item.ctx, &mut body);
        }
        body.push(b']');
        let delivery = Delivery {
            attempt: items.iter().map(|item| item.ctx.attempt).max().unwrap_or(1),
            // One header for the call: the first traced event's span (each element has its own).
            traceparent: items.iter().find_map(|item| item.ctx.traceparent.as_deref()),
        };
        let answer = self
            .post(
                "/execute",
                &batch_id(copy_ids.iter().map(|id| id.as_ref())),
                first.ctx.meta.owner(),
                Some(delivery),
                BATCH_CONTENT_TYPE,
                body,
            )
            .await;
        match answer {
            Ok((status, after, body)) => classify_batch(status, after, &body, &ids),
            Err(reason) => items.iter().map(|_| Outcome::retry(reason.clone())).collect(),
        }
    }

    async fn execute(&self, ctx: &Context, _event: &Event) -> Outcome {
        let mut body = Vec::with_capacity(2048);
        write_structured(ctx, &mut body);
        match self
            .post(
                "/execute",
                &ctx.meta.copy_id(),
                ctx.meta.owner(),
                Some(Delivery {
                    attempt: ctx.attempt,
                    traceparent: ctx.traceparent.as_deref(),
                }),
                "application/json",
                body,
            )
            .await
        {
            Ok((status, after, body)) => classify(status, after, &body),
            Err(reason) => Outcome::retry(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_bodies_name_only_a_named_installation() {
        let config = json!({"sheet_id": "1AbC"});
        assert_eq!(
            String::from_utf8(initialize_body("acme", DEFAULT_INSTALLATION, Some(&config))).unwrap(),
            r#"{"config":{"sheet_id":"1AbC"},"team_id":"acme"}"#,
            "as before installations existed"
        );
        assert_eq!(
            String::from_utf8(initialize_body("acme", "forms-bc", None)).unwrap(),
            r#"{"config":null,"installation":"forms-bc","team_id":"acme"}"#
        );
    }

    #[test]
    fn answers_map_to_outcomes() {
        assert_eq!(classify(204, None, b""), Outcome::done());
        assert_eq!(
            classify(
                200,
                None,
                br#"{"results":[{"type":"response.flagged","data":{"rule":"r"}}]}"#
            ),
            Outcome::Done(vec![PluginResult {
                kind: "response.flagged".into(),
                subject: None,
                data: json!({"rule": "r"}),
            }])
        );
        assert!(matches!(classify(422, None, b"bad"), Outcome::DeadLetter { .. }));
        assert!(matches!(
            classify(200, None, br#"{"outcome":"dead_letter","reason":"unknown form"}"#),
            Outcome::DeadLetter { reason } if reason == "unknown form"
        ));
        assert_eq!(
            classify(429, Some(Duration::from_secs(3)), b""),
            Outcome::Throttled {
                reason: "the plugin answered 429".into(),
                after: Some(Duration::from_secs(3))
            }
        );
        assert!(matches!(
            classify(200, None, br#"{"outcome":"slow_down","reason":"quota"}"#),
            Outcome::Throttled { reason, .. } if reason == "quota"
        ));
        for status in [408, 500, 503, 302] {
            assert!(
                matches!(classify(status, None, b""), Outcome::Retry { .. }),
                "{status}"
            );
        }
        assert!(matches!(classify(404, None, b""), Outcome::DeadLetter { .. }));
    }

    #[test]
    fn batch_answers_map_to_each_events_outcome() {
        let ids = ["e-1", "e-2", "e-3"];
        assert_eq!(classify_batch(204, None, b"", &ids), vec![Outcome::done(); 3]);
        let body = br#"{"events": [
            {"id": "e-2", "outcome": "dead_letter", "reason": "no such phone"},
            {"id": "e-3", "outcome": "retry", "reason": "the SaaS is busy"},
            {"id": "e-1", "outcome": "done", "results": [{"type": "sms.sent", "data": {}}]}]}"#;
        let outcomes = classify_batch(200, Some(Duration::from_secs(2)), body, &ids);
        assert!(matches!(&outcomes[0], Outcome::Done(results) if results.len() == 1));
        assert_eq!(outcomes[1], Outcome::dead_letter("no such phone"));
        assert_eq!(
            outcomes[2],
            Outcome::Retry {
                reason: "the SaaS is busy".into(),
                after: Some(Duration::from_secs(2))
            }
        );
        let unlisted = classify_batch(
            200,
            None,
            br#"{"events": [{"id": "e-1", "outcome": "retry"}]}"#,
            &ids,
        );
        assert!(matches!(unlisted[0], Outcome::Retry { .. }));
        assert_eq!(
            unlisted[1..],
            [Outcome::done(), Outcome::done()],
            "events not listed are done"
        );
        for outcome in classify_batch(429, Some(Duration::from_secs(5)), b"", &ids) {
            assert!(
                matches!(outcome, Outcome::Throttled { after: Some(_), .. }),
                "a 429 throttles the whole batch"
            );
        }
        for outcome in classify_batch(400, None, b"bad", &ids) {
            assert!(matches!(outcome, Outcome::DeadLetter { .. }));
        }
        for outcome in classify_batch(200, None, br#"{"outcome": "dead_letter", "reason": "r"}"#, &ids) {
            assert_eq!(outcome, Outcome::dead_letter("r"));
        }
    }
}
