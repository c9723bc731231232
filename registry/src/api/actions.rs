//! `POST /v1/teams/{team}/plugins/{id}/actions/{action}`: the API gateway ([`crate::gateway`]).
//!
//! Checks, in order, each answering without calling the plugin: the token may act for the team (403), the
//! team id is valid (404), the plugin is registered (404), an installation of it is enabled for the team
//! (409; actions belong to the plugin, not to one installation), declares the action
//! (404), the `Idempotency-Key` header, if any, is valid (422), the body is within the limit (413), the
//! team is within its rate (429 with `Retry-After`). The `Idempotency-Key` becomes the `webhook-id`, so a
//! caller's retry carries the same id to the plugin.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::api::teams::authorize;
use crate::auth::Principal;
use crate::gateway::{Call, CallError};
use crate::problem::{FieldError, Problem};

/// The request header whose value becomes the `webhook-id`.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Forwards the call and answers with the plugin's answer or a problem.
pub async fn call(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    authorize(&principal, &team)?;
    let records = state.records();
    let manifest = records
        .plugin(&id)
        .ok_or_else(|| Problem::not_found(format!("no plugin {id} is registered")))?;
    if !records.plugin_installations(&team, &id).iter().any(|e| e.enabled) {
        return Err(Problem::conflict(format!("{id} is not enabled for this team")));
    }
    if !manifest.actions.iter().any(|a| a == &action) {
        return Err(Problem::not_found(format!("{id} has no action {action:?}")));
    }
    let metric = |outcome: &str| {
        state
            .metrics
            .gateway_calls
            .with_label_values(&[id.as_str(), outcome])
            .inc();
    };
    let message_id = match headers.get(IDEMPOTENCY_KEY).map(|v| v.to_str()) {
        Some(Ok(key)) if !key.is_empty() && key.len() <= 128 => format!("msg_{key}"),
        Some(_) => {
            return Err(Problem::invalid(
                "the Idempotency-Key header is invalid",
                vec![FieldError {
                    pointer: String::new(),
                    detail: "Idempotency-Key must be 1-128 visible ASCII characters".into(),
                }],
            ));
        }
        None => format!("msg_{}", uuid::Uuid::now_v7().simple()),
    };
    let limit = state.gateway.max_request_bytes();
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(error) if is_over_limit(&error) => {
            metric("too_large");
            return Err(Problem::too_large(format!(
                "the body is larger than the gateway's limit of {limit} bytes"
            )));
        }
        Err(_) => {
            return Err(Problem::invalid(
                "the body could not be read",
                vec![FieldError {
                    pointer: String::new(),
                    detail: "the request body ended early or was malformed".into(),
                }],
            ));
        }
    };
    if let Err(retry_after) = state.gateway.admit(&team) {
        metric("rate_limited");
        return Err(Problem::too_many_requests(retry_after));
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let answer = state
        .gateway
        .call(Call {
            plugin_id: &id,
            url: manifest.url.as_deref(),
            team: &team,
            action: &action,
            message_id: &message_id,
            content_type,
            body,
        })
        .await;
    match answer {
        Ok(answer) => {
            metric("ok");
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = (status, answer.body).into_response();
            if let Some(value) = answer.content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            Ok(response)
        }
        Err(error) => {
            metric(error.outcome());
            tracing::warn!(%error, plugin = %id, action = %action, "a plugin action failed");
            Err(match error {
                CallError::Timeout(_) => Problem::gateway_timeout(error.to_string()),
                CallError::Refused(_) => Problem::bad_gateway(
                    "the plugin's URL is refused by the gateway's egress policy; an admin must allow it",
                ),
                _ => Problem::bad_gateway(error.to_string()),
            })
        }
    }
}

/// Whether reading the body failed because it was longer than the limit (not because the client went away).
fn is_over_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}
