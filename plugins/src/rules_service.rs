//! `rules-validate` as a plugin *service*: an HTTP server speaking the contract of `docs/plugin-authors.md`,
//! run behind `switchyard-plugin-bridge` to prove the any-language path with a real plugin.
//!
//! - `GET /metadata`: the manifest.
//! - `POST /initialize`: compiles the rules of the team's installation (`config: null` = back to the
//!   default rules); a bad rule is a 422 naming it, so the runtime dead-letters the installation's events
//!   until the config is fixed.
//! - `POST /execute`: evaluates the rules of the event's installation on a `response.submitted` or
//!   `response.updated`; each response with violations yields a `response.flagged` result (the core sends
//!   it back to the collector).
//!
//! Requests are verified with the plugin's Standard Webhooks secret when one is configured.
//!
//! # Installations
//!
//! A team may install the plugin several times (the manifest says `installations: true`), each
//! installation with its own rules. The service keeps a rule set per (team, installation), and an
//! installation without a config (or whose config was removed) uses the default rules, as a team without
//! one always did. Which installation a request is for, it reads from the signed body only, never from a
//! header (the Standard Webhooks signature covers the body, not the headers):
//!
//! - `/initialize`: the body's `installation` field; absent for the default installation (the bridge sends
//!   it only for a named one), so a body without it is exactly the request of before installations.
//! - `/execute`: the structured event's `installation` extension attribute, next to `teamid`, which the
//!   team is read from too; absent for the default installation. The bridge's `switchyard-installation`
//!   header says the same and is not read.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use switchyard_schemas::control::{DeliveryHints, Ordering, PluginManifest};
use switchyard_schemas::events::Response as SurveyResponse;
use switchyard_schemas::ids::check_installation_id;
use switchyard_schemas::webhook::SigningSecret;
use tracing::warn;

use crate::installations::{DEFAULT_INSTALLATION, Installations};
use crate::rules::{self, RuleSet};

/// The manifest of `rules-validate`, served at `{url}`.
pub fn manifest(url: &str) -> PluginManifest {
    PluginManifest {
        id: "rules-validate".to_owned(),
        name: "Rules validate".to_owned(),
        description: "Flags responses that break the team's consistency rules (CEL expressions over the \
                      answers), such as monthly savings above monthly income."
            .to_owned(),
        version: semver::Version::new(2, 1, 0),
        url: Some(url.to_owned()),
        events: vec!["response.submitted".to_owned(), "response.updated".to_owned()],
        actions: Vec::new(),
        config_schema: Some(rules::config_schema()),
        // Installations: a rule set per (team, installation).
        contract: None,
        signature: None,
        delivery: DeliveryHints {
            ordering: Some(Ordering::Response),
            installations: true,
            ..Default::default()
        },
    }
}

/// The service's state.
pub struct RulesService {
    manifest: PluginManifest,
    secret: Option<SigningSecret>,
    default: Arc<RuleSet>,
    installations: Installations<RuleSet>,
}

impl RulesService {
    /// A service at `url` verifying with `secret` (none: unverified), with the default rules.
    pub fn new(url: &str, secret: Option<SigningSecret>) -> Result<Self, rules::RulesError> {
        Ok(Self {
            manifest: manifest(url),
            secret,
            default: Arc::new(RuleSet::from_json(&rules::default_rules())?),
            installations: Installations::new(),
        })
    }

    fn verified(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let Some(secret) = &self.secret else {
            return true;
        };
        secret
            .verify_request(|name| headers.get(name).and_then(|v| v.to_str().ok()), body)
            .is_ok()
    }
}

/// The routes.
pub fn router(service: Arc<RulesService>) -> Router {
    Router::new()
        .route("/metadata", get(metadata))
        .route("/initialize", post(initialize))
        .route("/execute", post(execute))
        .with_state(service)
}

async fn metadata(State(service): State<Arc<RulesService>>) -> Response {
    axum::Json(service.manifest.clone()).into_response()
}

async fn initialize(State(service): State<Arc<RulesService>>, headers: HeaderMap, body: Bytes) -> Response {
    if !service.verified(&headers, &body) {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let Some(team) = request["team_id"].as_str().map(str::to_owned) else {
        return (StatusCode::BAD_REQUEST, "no team_id").into_response();
    };
    let installation = match installation_of(&request) {
        Ok(installation) => installation.to_owned(),
        Err(problem) => return (StatusCode::BAD_REQUEST, problem).into_response(),
    };
    let config = request["config"].clone();
    if config.is_null() {
        service.installations.remove(&team, &installation);
        return StatusCode::NO_CONTENT.into_response();
    }
    // Compiling runs on a thread of its own (deep expressions need a big stack): keep it off the workers.
    match tokio::task::spawn_blocking(move || RuleSet::from_json(&config)).await {
        Ok(Ok(rules)) => {
            service.installations.insert(&team, &installation, rules);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Err(error)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"error": error.to_string()})),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn execute(State(service): State<Arc<RulesService>>, headers: HeaderMap, body: Bytes) -> Response {
    if !service.verified(&headers, &body) {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return axum::Json(json!({"outcome": "dead_letter", "reason": "the body is not JSON"}))
            .into_response();
    };
    if !matches!(
        event["type"].as_str(),
        Some("response.submitted" | "response.updated")
    ) {
        return StatusCode::NO_CONTENT.into_response();
    }
    let response: SurveyResponse = match serde_json::from_value(event["data"]["response"].clone()) {
        Ok(response) => response,
        Err(error) => {
            return axum::Json(json!({"outcome": "dead_letter",
                                     "reason": format!("the response does not decode: {error}")}))
            .into_response();
        }
    };
    let team = event["teamid"].as_str().unwrap_or_default();
    let installation = match installation_of(&event) {
        Ok(installation) => installation,
        Err(problem) => {
            return axum::Json(json!({"outcome": "dead_letter", "reason": problem})).into_response();
        }
    };
    let rules = service
        .installations
        .get(team, installation)
        .unwrap_or_else(|| Arc::clone(&service.default));
    let evaluation = rules.evaluate(&response);
    for failure in &evaluation.errors {
        warn!(
            team,
            installation,
            rule = %failure.rule,
            message = %failure.message,
            "a rule failed to evaluate"
        );
    }
    if evaluation.violations.is_empty() {
        return axum::Json(json!({"results": []})).into_response();
    }
    axum::Json(json!({"results": [{
        "type": "response.flagged",
        "subject": response.id,
        "data": {
            "response_id": response.id,
            "form_id": response.form_id,
            "collector_id": response.collector_id,
            "violations": evaluation.violations,
        }
    }]}))
    .into_response()
}

/// The installation a request body names in its `installation` field (an `/initialize` body) or attribute
/// (a structured event): absent or `null` = the default installation; otherwise a valid installation id.
fn installation_of(body: &Value) -> Result<&str, &'static str> {
    match body.get("installation") {
        None | Some(Value::Null) => Ok(DEFAULT_INSTALLATION),
        Some(Value::String(installation)) if check_installation_id(installation).is_ok() => Ok(installation),
        Some(_) => Err("the installation is not a valid installation id"),
    }
}
