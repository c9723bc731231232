//! RFC 9457 problem details: the one error body of the registry's API (`application/problem+json`).
//!
//! Handlers return `Result<_, Problem>`. A problem carries a stable `type` per kind of failure, a short
//! `title`, the HTTP `status`, one `detail` sentence for this occurrence, and, for validation failures, each
//! error with its JSON pointer; a few kinds add members of their own (RFC 9457 extension members, such as
//! `earliest_available` of a refused backfill). Nothing internal (no error chains, no keys, no tokens) goes into a body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::AuthError;

/// One validation error: where (a JSON pointer into the request body) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON pointer (RFC 6901), `""` for the whole body.
    pub pointer: String,
    /// What is wrong there.
    pub detail: String,
}

/// An API error as a problem-details response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A URI reference naming the kind of problem, stable across releases.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A short summary of the kind.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// This occurrence, in one sentence.
    pub detail: String,
    /// Validation errors, when there are any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Extension members, beside the standard ones (boxed: most problems have none, and a `Result` carries
    /// a problem by value).
    #[serde(flatten)]
    pub extensions: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    /// Seconds before retrying (429), also sent as `Retry-After`.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            extensions: None,
            retry_after: None,
        }
    }

    /// The same problem with an extension member `name` (not one of the standard members).
    pub fn with_extension(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions
            .get_or_insert_default()
            .insert(name.to_owned(), value.into());
        self
    }

    /// 401: no or an invalid token.
    pub fn unauthorized(error: &AuthError) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "/problems/unauthorized",
            "Unauthorized",
            error.to_string(),
        )
    }

    /// 403: a valid token that may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "/problems/forbidden", "Forbidden", detail)
    }

    /// 404: the resource does not exist.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "/problems/not-found", "Not found", detail)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "/problems/conflict", "Conflict", detail)
    }

    /// 400: a header of the request cannot be read (the body's problems are 422).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "/problems/bad-request",
            "Bad request",
            detail,
        )
    }

    /// 412: the resource is not at the version the request's `If-Match` or `If-None-Match` names;
    /// `current_etag` is its `ETag` now (`null`: it does not exist).
    pub fn precondition_failed(detail: impl Into<String>, current_etag: Option<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "/problems/precondition-failed",
            "Precondition failed",
            detail,
        )
        .with_extension("current_etag", current_etag)
    }

    /// 422: the body is well-formed but invalid; each error names its place.
    pub fn invalid(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/invalid",
                "Invalid request",
                detail,
            )
        }
    }

    /// 429: a rate limit; retry after the given seconds.
    pub fn too_many_requests(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "/problems/rate-limited",
                "Too many requests",
                format!("retry after {retry_after} s"),
            )
        }
    }

    /// 413: the request body is larger than the limit.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "/problems/too-large",
            "Request body too large",
            detail,
        )
    }

    /// 502: the plugin's service failed or answered something the gateway does not pass on.
    pub fn bad_gateway(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "/problems/upstream-failed",
            "Plugin service failed",
            detail,
        )
    }

    /// 504: the plugin's service did not answer in time.
    pub fn gateway_timeout(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "/problems/upstream-timeout",
            "Plugin service timed out",
            detail,
        )
    }

    /// 503: the registry cannot serve this now (its store is not caught up or not reachable).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "/problems/unavailable",
            "Service unavailable",
            detail,
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_members_sit_beside_the_standard_ones() {
        let plain = Problem::conflict("busy");
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            serde_json::json!({"type": "/problems/conflict", "title": "Conflict", "status": 409,
                               "detail": "busy"})
        );
        let extended = Problem::invalid(
            "too far back",
            vec![FieldError {
                pointer: "/since".into(),
                detail: "before retention".into(),
            }],
        )
        .with_extension("earliest_available", "2026-11-02T00:00:00Z");
        assert_eq!(
            serde_json::to_value(&extended).unwrap(),
            serde_json::json!({"type": "/problems/invalid", "title": "Invalid request", "status": 422,
                               "detail": "too far back",
                               "errors": [{"pointer": "/since", "detail": "before retention"}],
                               "earliest_available": "2026-11-02T00:00:00Z"})
        );
    }
}
