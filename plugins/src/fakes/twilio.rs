//! A fake Twilio Messages API for tests and the demo.
//!
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` checks, in order:
//!
//! 1. an injected failure ([`FakeTwilio::fail_next`]): answered with Twilio's error shape (429 → code
//!    20429, 5xx → 20500) and `Retry-After` when asked;
//! 2. HTTP Basic credentials against the registered (sid, token) pairs (401, code 20003), and that the
//!    URL's account is the authenticated one (404, code 20404);
//! 3. the form fields: `To` (required, 21604; E.164, 21211), `From` (required, 21603), `Body`
//!    (required, 21602; at most 1600 characters, 21617);
//!
//! Like Twilio's Messages API it honours no idempotency key: the same request twice sends two messages.
//! (`I-Twilio-Idempotency-Token` is a header Twilio puts on the webhooks it sends, not one its REST API
//! reads.)
//!
//! Accepted messages are stored ([`FakeTwilio::messages`]) and answered with 201 and Twilio's JSON
//! (`sid` = `SM` + 32 hex digits, `status` `queued`, `to`, `from`, `body`, `date_created` in RFC 2822).

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use tokio::net::TcpListener;

use super::server::{FailureSwitch, FakeServer, InjectedFailure};
use crate::sms::phone::e164;
use crate::sms::template::MAX_MESSAGE_CHARS;

/// A message the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMessage {
    /// Its sid.
    pub sid: String,
    /// The account that sent it.
    pub account_sid: String,
    /// The recipient, as sent.
    pub to: String,
    /// The sender, as sent.
    pub from: String,
    /// The text.
    pub body: String,
    /// When it was accepted, RFC 2822.
    pub date_created: String,
}

impl FakeMessage {
    fn to_json(&self) -> Value {
        json!({
            "sid": self.sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "from": self.from,
            "body": self.body,
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": "1",
            "date_created": self.date_created,
            "date_updated": self.date_created,
            "date_sent": null,
            "error_code": null,
            "error_message": null,
            "price": null,
            "uri": format!("/2010-04-01/Accounts/{}/Messages/{}.json", self.account_sid, self.sid),
        })
    }
}

#[derive(Default)]
struct Inner {
    accounts: HashMap<String, String>,
    messages: Vec<FakeMessage>,
    failures: FailureSwitch,
    requests: u64,
}

/// The fake's state, shared by the server and the test that drives it; clones share it.
#[derive(Clone, Default)]
pub struct FakeTwilio {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for FakeTwilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTwilio").finish_non_exhaustive()
    }
}

impl FakeTwilio {
    /// A fake with no account.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accepts requests authenticated as (`account_sid`, `auth_token`).
    pub fn add_account(&self, account_sid: &str, auth_token: &str) {
        self.lock()
            .accounts
            .insert(account_sid.to_owned(), auth_token.to_owned());
    }

    /// Every message accepted, oldest first (a de-duplicated retry adds none).
    pub fn messages(&self) -> Vec<FakeMessage> {
        self.lock().messages.clone()
    }

    /// How many requests arrived (failed and duplicate ones included).
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Makes the next `count` requests fail with `failure`.
    pub fn fail_next(&self, count: u32, failure: InjectedFailure) {
        self.lock().failures.set(count, failure);
    }
}

/// The fake's routes over `state`.
pub fn router(state: FakeTwilio) -> Router {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account_sid}/Messages.json",
            post(create_message),
        )
        .with_state(state)
}

/// Serves the fake on `listener`.
///
/// # Errors
///
/// When the listener's address cannot be read.
pub async fn serve(listener: TcpListener, state: FakeTwilio) -> io::Result<FakeServer> {
    FakeServer::start(listener, router(state)).await
}

fn twilio_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, Json(body)).into_response()
}

/// The (sid, token) of a Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (sid, token) = decoded.split_once(':')?;
    Some((sid.to_owned(), token.to_owned()))
}

fn message_sid(sequence: usize) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    // 128 bits: the sequence number in the high half keeps sids unique, the clock varies the rest.
    let bits = ((sequence as u128) << 64) ^ (nanos & u128::from(u64::MAX));
    format!("SM{bits:032x}")
}

async fn create_message(
    State(state): State<FakeTwilio>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut inner = state.lock();
    inner.requests += 1;
    if let Some(failure) = inner.failures.take() {
        let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (code, message) = match failure.status {
            429 => (20429, "Too Many Requests"),
            401 => (20003, "Authenticate"),
            403 => (20003, "Permission Denied"),
            503 => (20503, "Service Unavailable"),
            _ => (20500, "Internal Server Error"),
        };
        let mut response = twilio_error(status, code, message);
        if let Some(seconds) = failure.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        return response;
    }
    let authenticated = basic_credentials(&headers)
        .filter(|(sid, token)| inner.accounts.get(sid).is_some_and(|known| known == token));
    let Some((sid, _)) = authenticated else {
        return twilio_error(
            StatusCode::UNAUTHORIZED,
            20003,
            "Authentication Error - invalid username",
        );
    };
    if sid != account_sid {
        let message =
            format!("The requested resource /2010-04-01/Accounts/{account_sid}/Messages.json was not found");
        return twilio_error(StatusCode::NOT_FOUND, 20404, &message);
    }
    let Some(to) = form.get("To").filter(|to| !to.is_empty()) else {
        return twilio_error(StatusCode::BAD_REQUEST, 21604, "A 'To' phone number is required.");
    };
    if e164(to).as_deref() != Ok(to.as_str()) {
        let message = format!("The 'To' number {to} is not a valid phone number.");
        return twilio_error(StatusCode::BAD_REQUEST, 21211, &message);
    }
    let Some(from) = form.get("From").filter(|from| !from.is_empty()) else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' phone number is required.",
        );
    };
    let Some(body) = form.get("Body").filter(|body| !body.is_empty()) else {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    };
    if body.chars().count() > MAX_MESSAGE_CHARS {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    let date_created = OffsetDateTime::now_utc().format(&Rfc2822).unwrap_or_default();
    let message = FakeMessage {
        sid: message_sid(inner.messages.len() + 1),
        account_sid: sid.clone(),
        to: to.clone(),
        from: from.clone(),
        body: body.clone(),
        date_created,
    };
    let answer = message.to_json();
    inner.messages.push(message);
    (StatusCode::CREATED, Json(answer)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_look_like_twilio_sids() {
        let sid = message_sid(1);
        assert_eq!(sid.len(), 34);
        assert!(sid.starts_with("SM"));
        assert!(sid[2..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(message_sid(1), message_sid(2));
    }
}
