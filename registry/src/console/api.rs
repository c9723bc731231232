//! The registry's v1 API, called in process as the console's caller: a request through the same router,
//! middleware and handlers as one from `curl`, with the caller's identity as a [`Delegated`] extension
//! instead of a bearer token.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt as _;

use super::{Caller, Console};
use crate::auth::{Delegated, Principal};

/// Largest API answer the console reads.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// An answer other than 2xx: its status and its problem document (`{}` when it had none).
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The status.
    pub status: StatusCode,
    /// The problem details.
    pub problem: Value,
}

impl Refusal {
    /// The problem's `detail`, else its `title`, else the status's reason.
    pub fn detail(&self) -> String {
        ["detail", "title"]
            .iter()
            .find_map(|key| self.problem.get(key).and_then(Value::as_str))
            .map_or_else(
                || self.status.canonical_reason().unwrap_or("error").to_owned(),
                str::to_owned,
            )
    }

    fn internal(detail: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            problem: serde_json::json!({"detail": detail.into()}),
        }
    }
}

/// A refusal of the API as the page that shows it (the API's status and detail), for `?` in a page
/// handler ([`super::Page`]).
pub trait OrPage<T> {
    /// `Ok` as it is; a refusal as its page.
    fn or_page(self, console: &Console, caller: &Caller) -> Result<T, axum::response::Response>;
}

impl<T> OrPage<T> for Result<T, Refusal> {
    fn or_page(self, console: &Console, caller: &Caller) -> Result<T, axum::response::Response> {
        self.map_err(|refusal| super::layout::refusal(console, caller, &refusal))
    }
}

/// The API's 404 as `None`, for a page that shows what is not there yet (an installation, a config).
pub fn missing_as_none<T>(answer: Result<T, Refusal>) -> Result<Option<T>, Refusal> {
    match answer {
        Ok(value) => Ok(Some(value)),
        Err(refusal) if refusal.status == StatusCode::NOT_FOUND => Ok(None),
        Err(refusal) => Err(refusal),
    }
}

/// A precondition of a change (the API's `If-Match` / `If-None-Match`).
#[derive(Debug, Clone, Copy)]
pub enum Condition<'a> {
    /// None.
    Always,
    /// The resource is still at this ETag.
    Unchanged(&'a str),
    /// The resource does not exist yet.
    Absent,
}

/// An answer: its body and its `ETag`, if it had one.
#[derive(Debug, Clone)]
pub struct Tagged<T> {
    /// The body.
    pub value: T,
    /// The `ETag` header.
    pub etag: Option<String>,
}

/// The API as one caller.
pub struct Api<'a> {
    router: &'a axum::Router,
    principal: &'a Principal,
}

impl<'a> Api<'a> {
    /// Calls `router` as `principal`.
    pub fn new(router: &'a axum::Router, principal: &'a Principal) -> Self {
        Self { router, principal }
    }

    /// `GET path`, its JSON answer read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Refusal> {
        Ok(self.get_tagged(path).await?.value)
    }

    /// `GET path`, with the answer's `ETag`.
    pub async fn get_tagged<T: DeserializeOwned>(&self, path: &str) -> Result<Tagged<T>, Refusal> {
        self.call(Method::GET, path, None, Condition::Always).await
    }

    /// `method path` with a JSON body and a precondition; the answer read as `T` (use [`Value`] for an
    /// empty one).
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        condition: Condition<'_>,
    ) -> Result<T, Refusal> {
        Ok(self.call(method, path, body, condition).await?.value)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        condition: Condition<'_>,
    ) -> Result<Tagged<T>, Refusal> {
        let mut request = Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        request = match condition {
            Condition::Always => request,
            Condition::Unchanged(etag) => request.header(header::IF_MATCH, etag),
            Condition::Absent => request.header(header::IF_NONE_MATCH, "*"),
        };
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let mut request = request
            .body(body)
            .map_err(|e| Refusal::internal(format!("the console built a bad request: {e}")))?;
        request.extensions_mut().insert(Delegated(self.principal.clone()));
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let status = response.status();
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| Refusal::internal(format!("the API's answer could not be read: {e}")))?;
        if !status.is_success() {
            let problem = serde_json::from_slice(&bytes).unwrap_or_else(|_| serde_json::json!({}));
            return Err(Refusal { status, problem });
        }
        let bytes = if bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        let value = serde_json::from_slice(bytes).map_err(|e| {
            Refusal::internal(format!("the API's answer was not what the console expects: {e}"))
        })?;
        Ok(Tagged { value, etag })
    }
}
