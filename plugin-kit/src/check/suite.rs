//! The conformance run: the calls `switchyardctl plugin check` makes to a running plugin service, in
//! order, each judged by [`super::judge`].
//!
//! ```text
//!  GET /metadata ─► manifest? ─► unsigned / wrongly signed / stale calls refused?
//!       ─► one signed event per declared type ─► a repeat ─► a batch (if declared)
//!       ─► /initialize (a valid config, then null) ─► unsigned action refused? ─► all within the timeout?
//! ```

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_schemas::catalog::EventType;
use switchyard_schemas::samples;
use switchyard_schemas::webhook::{BATCH_CONTENT_TYPE, SigningSecret, batch_id};
use time::OffsetDateTime;

use super::judge::{self, Verdict};

/// What to check, and how.
#[derive(Debug, Clone)]
pub struct Target {
    /// The service's base URL.
    pub url: String,
    /// Its signing secret (`whsec_...`); without it only the unsigned checks run.
    pub secret: Option<String>,
    /// The longest an answer may take: the bridge's `http.timeout_ms`.
    pub timeout: Duration,
    /// The team the sample calls are for.
    pub team: String,
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It holds.
    Pass,
    /// It does not.
    Fail,
    /// Not run (the reason is in the detail).
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// What was checked.
    pub check: String,
    /// How it ended.
    pub result: Status,
    /// What was seen.
    pub detail: String,
    /// What to change, for a failed check.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

impl Check {
    fn judged(check: impl Into<String>, verdict: Verdict) -> Self {
        let check = check.into();
        match verdict {
            Verdict::Pass(detail) => Check {
                check,
                result: Status::Pass,
                detail,
                fix: String::new(),
            },
            Verdict::Fail { detail, fix } => Check {
                check,
                result: Status::Fail,
                detail,
                fix,
            },
        }
    }

    fn skipped(check: impl Into<String>, why: impl Into<String>) -> Self {
        Check {
            check: check.into(),
            result: Status::Skip,
            detail: why.into(),
            fix: String::new(),
        }
    }
}

/// An answer, or why there was none.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

struct Caller {
    http: reqwest::Client,
    base: String,
    secret: Option<SigningSecret>,
    team: String,
    timeout: Duration,
    slowest: Duration,
    timed_out: Vec<String>,
}

/// How a call is signed.
#[derive(Clone, Copy)]
enum Signing {
    /// With the secret, now.
    Valid,
    /// No webhook headers at all.
    None,
    /// With another secret.
    Wrong,
    /// With the secret, ten minutes ago.
    Stale,
}

impl Caller {
    async fn post(
        &mut self,
        path: &str,
        webhook_id: &str,
        content_type: &str,
        body: &[u8],
        signing: Signing,
    ) -> Result<Answer, String> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .header("switchyard-team", &self.team)
            .body(body.to_vec());
        if path == "/execute" {
            request = request.header("switchyard-attempt", "1");
        }
        if path.starts_with("/actions/") {
            request = request.header("switchyard-action", path.trim_start_matches("/actions/"));
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let headers = match (signing, &self.secret) {
            (Signing::None, _) | (_, None) => None,
            (Signing::Valid, Some(secret)) => Some(secret.headers(webhook_id, now, body)),
            (Signing::Stale, Some(secret)) => Some(secret.headers(webhook_id, now - 600, body)),
            (Signing::Wrong, Some(_)) => Some(SigningSecret::generate().0.headers(webhook_id, now, body)),
        };
        for (name, value) in headers.into_iter().flatten() {
            request = request.header(name, value);
        }
        self.send(request, &format!("POST {path}")).await
    }

    async fn send(&mut self, request: reqwest::RequestBuilder, what: &str) -> Result<Answer, String> {
        let started = Instant::now();
        let outcome = request.send().await;
        let answer = match outcome {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.bytes().await.map(|b| b.to_vec());
                body.map(|body| Answer { status, body })
            }
            Err(error) => Err(error),
        };
        let took = started.elapsed();
        self.slowest = self.slowest.max(took);
        answer.map_err(|error| {
            if error.is_timeout() {
                self.timed_out.push(what.to_owned());
                format!("no answer within {} ms", self.timeout.as_millis())
            } else {
                format!("the call failed: {error}")
            }
        })
    }
}

/// A failed call is a failed check.
fn unanswered(check: &str, error: String) -> Check {
    Check::judged(
        check,
        Verdict::Fail {
            detail: error,
            fix: "start the service and check --url; answer every call within the timeout (guide section 3)"
                .into(),
        },
    )
}

/// A sample event of `ce_type` as the bridge sends it: CloudEvents structured JSON.
fn sample_event(ce_type: EventType, team: &str, id: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "/switchyard/plugin-check",
        "type": ce_type.as_str(),
        "teamid": team,
        "time": "2026-11-22T10:00:00Z",
        "subject": "form-1",
        "datacontenttype": "application/json",
        "data": samples::data_json(ce_type, team, id),
    })
}

/// Runs every check against `target`; `manifest_rules` is the registry's own validation of a manifest
/// (what registration would refuse), so that `/metadata` passes only what would register.
pub async fn run(target: &Target, manifest_rules: impl Fn(&Value) -> Result<(), String>) -> Vec<Check> {
    let mut report = Vec::new();
    let http = match reqwest::Client::builder()
        .timeout(target.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(error) => return vec![unanswered("client", error.to_string())],
    };
    let secret = match target.secret.as_deref().map(SigningSecret::parse).transpose() {
        Ok(secret) => secret,
        Err(error) => {
            return vec![Check::judged(
                "secret",
                Verdict::Fail {
                    detail: format!("--secret: {error}"),
                    fix: "pass the plugin's signing secret, whsec_ followed by base64".into(),
                },
            )];
        }
    };
    let signed = secret.is_some();
    let mut caller = Caller {
        http,
        base: target.url.trim_end_matches('/').to_owned(),
        secret,
        team: target.team.clone(),
        timeout: target.timeout,
        slowest: Duration::ZERO,
        timed_out: Vec::new(),
    };

    // The manifest.
    let metadata = caller
        .send(
            caller.http.get(format!("{}/metadata", caller.base)),
            "GET /metadata",
        )
        .await;
    let manifest: Option<Value> = match metadata {
        Err(error) => {
            report.push(unanswered("GET /metadata serves a valid manifest", error));
            None
        }
        Ok(answer) => {
            let json: Result<Value, String> = if (200..300).contains(&answer.status) {
                serde_json::from_slice(&answer.body).map_err(|e| format!("the body is not JSON: {e}"))
            } else {
                Err(format!("answered {}", answer.status))
            };
            // Later checks use what was served even when it would not register: one defect, one failure.
            let served = json.as_ref().ok().cloned();
            let checked = json.and_then(|json| manifest_rules(&json).map(|()| json));
            report.push(Check::judged(
                "GET /metadata serves a valid manifest",
                match &checked {
                    Ok(json) => Verdict::Pass(format!(
                        "{} {}",
                        json["id"].as_str().unwrap_or("?"),
                        json["version"]
                    )),
                    Err(problem) => Verdict::Fail {
                        detail: problem.clone(),
                        fix: "serve the manifest as JSON at GET /metadata; it must pass the registry's \
                              checks (guide section 2)"
                            .into(),
                    },
                },
            ));
            served
        }
    };
    let manifest = manifest.unwrap_or_else(|| json!({"events": ["response.submitted"]}));
    let types: Vec<EventType> = manifest["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e.as_str().and_then(EventType::from_ce_type))
                .collect()
        })
        .unwrap_or_default();
    let first_type = types.first().copied().unwrap_or(EventType::ResponseSubmitted);
    let run_id = uuid::Uuid::now_v7();
    let event = |n: usize, ce_type: EventType| {
        let id = format!("check-{run_id}-{n}");
        let body = serde_json::to_vec(&sample_event(ce_type, &target.team, &id)).unwrap_or_default();
        (id, body)
    };

    // Calls that must be refused.
    let (id, body) = event(0, first_type);
    let refusals = [
        (
            "an unsigned /execute is refused",
            "/execute",
            Signing::None,
            "an unsigned call",
        ),
        (
            "a wrongly signed /execute is refused",
            "/execute",
            Signing::Wrong,
            "a call signed with another secret",
        ),
        (
            "a stale /execute (10 minutes old) is refused",
            "/execute",
            Signing::Stale,
            "a call signed 10 minutes ago",
        ),
        (
            "an unsigned /initialize is refused",
            "/initialize",
            Signing::None,
            "an unsigned /initialize",
        ),
    ];
    for (check, path, signing, what) in refusals {
        if !signed && !matches!(signing, Signing::None) {
            report.push(Check::skipped(check, "needs --secret"));
            continue;
        }
        let body = if path == "/initialize" {
            // A config the schema allows: only the missing signature is a reason to refuse it.
            let config = judge::sample_config(manifest.get("config_schema"));
            serde_json::to_vec(&json!({"team_id": target.team, "config": config})).unwrap_or_default()
        } else {
            body.clone()
        };
        report.push(
            match caller.post(path, &id, "application/json", &body, signing).await {
                Ok(answer) => Check::judged(check, judge::refused(answer.status, what)),
                Err(error) => unanswered(check, error),
            },
        );
    }
    if let Some(action) = manifest["actions"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_str)
    {
        let check = format!("an unsigned action ({action}) is refused");
        let path = format!("/actions/{action}");
        report.push(
            match caller
                .post(&path, "msg_check", "application/json", b"{}", Signing::None)
                .await
            {
                Ok(answer) => Check::judged(check, judge::refused(answer.status, "an unsigned action call")),
                Err(error) => unanswered(&check, error),
            },
        );
    }

    if !signed {
        for check in [
            "signed events are answered",
            "a repeated webhook-id is answered the same",
            "/initialize",
        ] {
            report.push(Check::skipped(
                check,
                "needs --secret (the plugin's signing secret)",
            ));
        }
    } else {
        // One signed event of each declared type; the first is repeated.
        let batched = manifest.get("batch").is_some_and(Value::is_object);
        let mut first_answer: Option<(String, Vec<u8>, Answer)> = None;
        for (n, ce_type) in types.iter().enumerate() {
            let check = format!("a signed {} is answered", ce_type.as_str());
            let (id, body) = event(n + 1, *ce_type);
            let (content_type, sent) = if batched {
                (
                    BATCH_CONTENT_TYPE,
                    format!("[{}]", String::from_utf8_lossy(&body)).into_bytes(),
                )
            } else {
                ("application/json", body)
            };
            let webhook_id = if batched {
                batch_id([id.as_str()])
            } else {
                id.clone()
            };
            match caller
                .post("/execute", &webhook_id, content_type, &sent, Signing::Valid)
                .await
            {
                Ok(answer) => {
                    let verdict = if batched {
                        judge::batch(answer.status, &answer.body, std::slice::from_ref(&id))
                    } else {
                        judge::execute(answer.status, &answer.body)
                    };
                    report.push(Check::judged(check, verdict));
                    if first_answer.is_none() {
                        first_answer = Some((webhook_id, sent, answer));
                    }
                }
                Err(error) => report.push(unanswered(&check, error)),
            }
        }
        let check = "a repeated webhook-id is answered 2xx, the same";
        match first_answer {
            Some((webhook_id, sent, first)) => {
                let content_type = if batched {
                    BATCH_CONTENT_TYPE
                } else {
                    "application/json"
                };
                report.push(
                    match caller
                        .post("/execute", &webhook_id, content_type, &sent, Signing::Valid)
                        .await
                    {
                        Ok(again) => Check::judged(
                            check,
                            judge::repeat((first.status, &first.body), (again.status, &again.body)),
                        ),
                        Err(error) => unanswered(check, error),
                    },
                );
            }
            None => report.push(Check::skipped(check, "no signed event was answered")),
        }

        // A batch of two events, if the manifest asks for batches.
        let check = "a batch of two events is answered";
        if batched {
            let ids_bodies: Vec<(String, Vec<u8>)> = (0..2).map(|n| event(100 + n, first_type)).collect();
            let ids: Vec<String> = ids_bodies.iter().map(|(id, _)| id.clone()).collect();
            let events: Vec<String> = ids_bodies
                .iter()
                .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
                .collect();
            let body = format!("[{}]", events.join(",")).into_bytes();
            let webhook_id = batch_id(ids.iter().map(String::as_str));
            report.push(
                match caller
                    .post("/execute", &webhook_id, BATCH_CONTENT_TYPE, &body, Signing::Valid)
                    .await
                {
                    Ok(answer) => Check::judged(check, judge::batch(answer.status, &answer.body, &ids)),
                    Err(error) => unanswered(check, error),
                },
            );
        } else {
            report.push(Check::skipped(check, "the manifest declares no batch"));
        }

        // /initialize: a config the schema allows, then null.
        let config = judge::sample_config(manifest.get("config_schema"));
        for (check, config) in [
            ("/initialize accepts a config valid for config_schema", config),
            ("/initialize accepts null (the config was removed)", Value::Null),
        ] {
            let body =
                serde_json::to_vec(&json!({"team_id": target.team, "config": config})).unwrap_or_default();
            let id = format!("init_{}", uuid::Uuid::new_v4());
            report.push(
                match caller
                    .post("/initialize", &id, "application/json", &body, Signing::Valid)
                    .await
                {
                    Ok(answer) => {
                        Check::judged(check, judge::initialize(answer.status, &answer.body, &config))
                    }
                    Err(error) => unanswered(check, error),
                },
            );
        }
    }

    let check = format!("every answer within {} ms", target.timeout.as_millis());
    report.push(if caller.timed_out.is_empty() {
        Check::judged(
            check,
            Verdict::Pass(format!("slowest: {} ms", caller.slowest.as_millis())),
        )
    } else {
        Check::judged(
            check,
            Verdict::Fail {
                detail: format!("no answer in time to {}", caller.timed_out.join(", ")),
                fix:
                    "answer well within the bridge's http.timeout_ms; move slow work to a queue of your own \
                      keyed by the event id (guide section 12)"
                        .into(),
            },
        )
    });
    report
}
