//! A fake Twilio Messages API for tests and the demo.
//!
//! Both routes check, in order:
//!
//! 1. an injected failure ([`FakeTwilio::fail_next`], counted over both routes): answered with Twilio's
//!    error shape (429 → code 20429, 5xx → 20500) and `Retry-After` when asked;
//! 2. HTTP Basic credentials against the registered (sid, token) pairs (401, code 20003), and that the
//!    URL's account is the authenticated one (404, code 20404).
//!
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` then checks the form fields: `To` (required,
//! 21604; E.164, 21211), `From` (required, 21603), `Body` (required, 21602; at most 1600 characters,
//! 21617). Accepted messages are stored ([`FakeTwilio::messages`]) and answered with 201 and Twilio's
//! JSON (`sid` = `SM` + 32 hex digits, `status` `queued`, `date_sent` null, `to`, `from`, `body`,
//! `date_created` in RFC 2822). Like Twilio's Messages API it honours no idempotency key: the same
//! request twice sends two messages. (`I-Twilio-Idempotency-Token` is a header Twilio puts on the
//! webhooks it sends, not one its REST API reads.) Two injections act after a message is stored, so
//! that the sender cannot know it went out: [`FakeTwilio::fail_after_sending`] answers an error instead
//! of 201 (an answer lost on the way), [`FakeTwilio::hold_answers_after_sending`] answers only after a
//! while (a sender that dies meanwhile).
//!
//! `GET /2010-04-01/Accounts/{AccountSid}/Messages.json` lists the account's messages the way Twilio
//! does, newest first, filtered by `To`, `From` (exact) and the day each was sent (GMT, inclusive):
//! `DateSent=YYYY-MM-DD` on that day, `DateSent>=YYYY-MM-DD` (the parameter `DateSent>`) on or after it,
//! `DateSent<=YYYY-MM-DD` (`DateSent<`) on or before it; another date form answers 400, code 20001.
//! `PageSize` (default 50, at most 1000) messages a page; `Page` and `PageToken` (`PA` + the previous
//! page's last sid, `PB` + the next page's first sid, as in Twilio's `next_page_uri` and
//! `previous_page_uri`) choose the page, so a page read after new messages arrived carries on where its
//! predecessor ended. The answer has Twilio's fields: `messages`, `page`, `page_size`, `start`, `end`,
//! `uri`, `first_page_uri`, `next_page_uri`, `previous_page_uri` (the last two null at the ends).
//! The fake hands every message to the carrier at once: listed, it is `sent`, with `date_sent` equal to
//! `date_created`. At Twilio a message not handed on yet (`queued`, as a sender over its throughput
//! leaves it for minutes) has no `date_sent`, so a `DateSent` filter may leave it out.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc2822;
use time::macros::format_description;
use time::{Date, OffsetDateTime};
use tokio::net::TcpListener;

use super::server::{FailureSwitch, FakeServer, InjectedFailure};
use crate::sms::phone::e164;
use crate::sms::template::MAX_MESSAGE_CHARS;

/// Twilio's default page size.
const DEFAULT_PAGE_SIZE: usize = 50;

/// Twilio's largest page size; a larger `PageSize` gets this many here (the fake's choice).
const MAX_PAGE_SIZE: usize = 1000;

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
    /// Twilio's JSON of the message: as the create call answers it (`queued`, not sent yet) or as the
    /// list shows it (`sent` when it was created).
    fn to_json(&self, listed: bool) -> Value {
        let (status, date_sent) = if listed {
            ("sent", Value::from(self.date_created.clone()))
        } else {
            ("queued", Value::Null)
        };
        json!({
            "sid": self.sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "from": self.from,
            "body": self.body,
            "status": status,
            "direction": "outbound-api",
            "num_segments": "1",
            "date_created": self.date_created,
            "date_updated": self.date_created,
            "date_sent": date_sent,
            "error_code": null,
            "error_message": null,
            "price": null,
            "api_version": "2010-04-01",
            "uri": format!("/2010-04-01/Accounts/{}/Messages/{}.json", self.account_sid, self.sid),
        })
    }
}

/// A stored message and when it was created.
struct Stored {
    message: FakeMessage,
    created: OffsetDateTime,
}

#[derive(Default)]
struct Inner {
    accounts: HashMap<String, String>,
    /// Oldest first, as accepted (or recorded).
    messages: Vec<Stored>,
    failures: FailureSwitch,
    failures_after_sending: FailureSwitch,
    holds: Option<(u32, Duration)>,
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

    /// Every message accepted (or recorded with [`FakeTwilio::record_sent`]), in that order.
    pub fn messages(&self) -> Vec<FakeMessage> {
        self.lock()
            .messages
            .iter()
            .map(|stored| stored.message.clone())
            .collect()
    }

    /// How many requests arrived on either route (failed and duplicate ones included).
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Makes the next `count` requests, to either route, fail with `failure`.
    pub fn fail_next(&self, count: u32, failure: InjectedFailure) {
        self.lock().failures.set(count, failure);
    }

    /// Makes the next `count` messages accepted be answered with `failure` instead of 201: the message is
    /// stored (and listed) all the same, as when Twilio's answer is lost on the way.
    pub fn fail_after_sending(&self, count: u32, failure: InjectedFailure) {
        self.lock().failures_after_sending.set(count, failure);
    }

    /// Makes the next `count` messages accepted be answered only `hold` after they were stored (and
    /// listed): a sender that stops meanwhile never learns that its message went out.
    pub fn hold_answers_after_sending(&self, count: u32, hold: Duration) {
        self.lock().holds = Some((count, hold));
    }

    /// Stores a message from `account_sid` as if it had been accepted at `created`, without a request:
    /// the history a list's date filters are tried on. Returns its sid.
    pub fn record_sent(
        &self,
        account_sid: &str,
        to: &str,
        from: &str,
        body: &str,
        created: OffsetDateTime,
    ) -> String {
        let mut inner = self.lock();
        inner.store(account_sid, to, from, body, created).sid
    }
}

impl Inner {
    fn store(
        &mut self,
        account_sid: &str,
        to: &str,
        from: &str,
        body: &str,
        created: OffsetDateTime,
    ) -> FakeMessage {
        // Twilio's dates are GMT, to the second.
        let created = created.to_offset(time::UtcOffset::UTC);
        let created = created.replace_nanosecond(0).unwrap_or(created);
        let message = FakeMessage {
            sid: message_sid(self.messages.len() + 1),
            account_sid: account_sid.to_owned(),
            to: to.to_owned(),
            from: from.to_owned(),
            body: body.to_owned(),
            date_created: created.format(&Rfc2822).unwrap_or_default(),
        };
        self.messages.push(Stored {
            message: message.clone(),
            created,
        });
        message
    }

    /// The injected failure for this request, if any (see [`FakeTwilio::fail_next`]).
    fn injected(&mut self) -> Option<Refusal> {
        self.failures.take().map(injected)
    }

    /// The account this request may act for: its Basic credentials are known and name the URL's account.
    fn authorise(&self, headers: &HeaderMap, account_sid: &str) -> Result<(), Refusal> {
        let authenticated = basic_credentials(headers)
            .filter(|(sid, token)| self.accounts.get(sid).is_some_and(|known| known == token));
        let Some((sid, _)) = authenticated else {
            return Err(twilio_error(
                StatusCode::UNAUTHORIZED,
                20003,
                "Authentication Error - invalid username",
            ));
        };
        if sid != account_sid {
            let message = format!(
                "The requested resource /2010-04-01/Accounts/{account_sid}/Messages.json was not found"
            );
            return Err(twilio_error(StatusCode::NOT_FOUND, 20404, &message));
        }
        Ok(())
    }
}

/// The fake's routes over `state`.
pub fn router(state: FakeTwilio) -> Router {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account_sid}/Messages.json",
            post(create_message).get(list_messages),
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

/// An error answer in Twilio's shape.
struct Refusal {
    status: StatusCode,
    code: i64,
    message: String,
    retry_after: Option<u64>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status.as_u16(),
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn twilio_error(status: StatusCode, code: i64, message: &str) -> Refusal {
    Refusal {
        status,
        code,
        message: message.to_owned(),
        retry_after: None,
    }
}

fn injected(failure: InjectedFailure) -> Refusal {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (code, message) = match failure.status {
        429 => (20429, "Too Many Requests"),
        401 => (20003, "Authenticate"),
        403 => (20003, "Permission Denied"),
        503 => (20503, "Service Unavailable"),
        _ => (20500, "Internal Server Error"),
    };
    Refusal {
        retry_after: failure.retry_after,
        ..twilio_error(status, code, message)
    }
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
    let (response, hold) = {
        let mut inner = state.lock();
        match accept(&mut inner, &account_sid, &headers, &form) {
            Err(refused) => (refused.into_response(), None),
            Ok(message) => {
                let hold = match &mut inner.holds {
                    Some((count, hold)) if *count > 0 => {
                        *count -= 1;
                        Some(*hold)
                    }
                    _ => None,
                };
                let response = match inner.failures_after_sending.take() {
                    Some(failure) => injected(failure).into_response(),
                    None => (StatusCode::CREATED, Json(message.to_json(false))).into_response(),
                };
                (response, hold)
            }
        }
    };
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    response
}

/// Checks a create request and stores its message, or answers why not.
fn accept(
    inner: &mut Inner,
    account_sid: &str,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<FakeMessage, Refusal> {
    inner.requests += 1;
    if let Some(injected) = inner.injected() {
        return Err(injected);
    }
    inner.authorise(headers, account_sid)?;
    let Some(to) = form.get("To").filter(|to| !to.is_empty()) else {
        return Err(twilio_error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        ));
    };
    if e164(to).as_deref() != Ok(to.as_str()) {
        let message = format!("The 'To' number {to} is not a valid phone number.");
        return Err(twilio_error(StatusCode::BAD_REQUEST, 21211, &message));
    }
    let Some(from) = form.get("From").filter(|from| !from.is_empty()) else {
        return Err(twilio_error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' phone number is required.",
        ));
    };
    let Some(body) = form.get("Body").filter(|body| !body.is_empty()) else {
        return Err(twilio_error(
            StatusCode::BAD_REQUEST,
            21602,
            "Message body is required.",
        ));
    };
    if body.chars().count() > MAX_MESSAGE_CHARS {
        return Err(twilio_error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ));
    }
    Ok(inner.store(account_sid, to, from, body, OffsetDateTime::now_utc()))
}

/// The list's filters, as given.
struct Filters {
    to: Option<String>,
    from: Option<String>,
    on: Option<Date>,
    on_or_after: Option<Date>,
    on_or_before: Option<Date>,
}

impl Filters {
    fn read(query: &HashMap<String, String>) -> Result<Self, Refusal> {
        let date = |name: &str| -> Result<Option<Date>, Refusal> {
            query
                .get(name)
                .map(|text| {
                    Date::parse(text, format_description!("[year]-[month]-[day]"))
                        .map_err(|_| twilio_error(StatusCode::BAD_REQUEST, 20001, "Invalid date value."))
                })
                .transpose()
        };
        Ok(Self {
            to: query.get("To").cloned(),
            from: query.get("From").cloned(),
            on: date("DateSent")?,
            on_or_after: date("DateSent>")?,
            on_or_before: date("DateSent<")?,
        })
    }

    fn keep(&self, stored: &Stored) -> bool {
        let day = stored.created.date();
        self.to.as_ref().is_none_or(|to| *to == stored.message.to)
            && self.from.as_ref().is_none_or(|from| *from == stored.message.from)
            && self.on.is_none_or(|on| day == on)
            && self.on_or_after.is_none_or(|after| day >= after)
            && self.on_or_before.is_none_or(|before| day <= before)
    }

    /// The filters as a query string's pairs, for the page URIs.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let date = |date: Date| {
            date.format(format_description!("[year]-[month]-[day]"))
                .unwrap_or_default()
        };
        let mut pairs = Vec::new();
        if let Some(to) = &self.to {
            pairs.push(("To", to.clone()));
        }
        if let Some(from) = &self.from {
            pairs.push(("From", from.clone()));
        }
        if let Some(on) = self.on {
            pairs.push(("DateSent", date(on)));
        }
        if let Some(after) = self.on_or_after {
            pairs.push(("DateSent>", date(after)));
        }
        if let Some(before) = self.on_or_before {
            pairs.push(("DateSent<", date(before)));
        }
        pairs
    }
}

async fn list_messages(
    State(state): State<FakeTwilio>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = state.lock();
    inner.requests += 1;
    if let Some(injected) = inner.injected() {
        return injected.into_response();
    }
    if let Err(refused) = inner.authorise(&headers, &account_sid) {
        return refused.into_response();
    }
    let filters = match Filters::read(&query) {
        Ok(filters) => filters,
        Err(refused) => return refused.into_response(),
    };
    let page_size = query
        .get("PageSize")
        .and_then(|size| size.parse::<usize>().ok())
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .clamp(1, MAX_PAGE_SIZE);
    let page = query
        .get("Page")
        .and_then(|page| page.parse::<usize>().ok())
        .unwrap_or(0);
    // Newest first: by creation time, then by the order of acceptance.
    let mut kept: Vec<&Stored> = inner
        .messages
        .iter()
        .filter(|stored| stored.message.account_sid == account_sid && filters.keep(stored))
        .collect();
    kept.reverse();
    kept.sort_by_key(|stored| std::cmp::Reverse(stored.created));
    let position = |sid: &str| kept.iter().position(|stored| stored.message.sid == sid);
    let token = query.get("PageToken").map(String::as_str);
    let after = token
        .and_then(|token| token.strip_prefix("PA"))
        .and_then(position);
    let before = token
        .and_then(|token| token.strip_prefix("PB"))
        .and_then(position);
    let (start, end) = match (after, before) {
        (Some(last), _) => (last + 1, (last + 1 + page_size).min(kept.len())),
        (None, Some(first)) => (first.saturating_sub(page_size), first),
        // No token, or one for a message this list does not hold: the page by its number.
        (None, None) => {
            let start = page.saturating_mul(page_size).min(kept.len());
            (start, (start + page_size).min(kept.len()))
        }
    };
    let shown = &kept[start..end];
    let uri = |page: usize, token: Option<String>| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in filters.pairs() {
            query.append_pair(name, &value);
        }
        query.append_pair("PageSize", &page_size.to_string());
        query.append_pair("Page", &page.to_string());
        if let Some(token) = token {
            query.append_pair("PageToken", &token);
        }
        format!(
            "/2010-04-01/Accounts/{account_sid}/Messages.json?{}",
            query.finish()
        )
    };
    let next_page_uri = match shown.last() {
        Some(last) if end < kept.len() => Value::from(uri(page + 1, Some(format!("PA{}", last.message.sid)))),
        _ => Value::Null,
    };
    let previous_page_uri = match shown.first() {
        Some(first) if start > 0 => Value::from(uri(
            page.saturating_sub(1),
            Some(format!("PB{}", first.message.sid)),
        )),
        _ => Value::Null,
    };
    let body = json!({
        "messages": shown.iter().map(|stored| stored.message.to_json(true)).collect::<Vec<_>>(),
        "page": page,
        "page_size": page_size,
        "start": start,
        "end": (start + shown.len()).saturating_sub(1),
        "uri": uri(page, token.map(str::to_owned)),
        "first_page_uri": uri(0, None),
        "next_page_uri": next_page_uri,
        "previous_page_uri": previous_page_uri,
    });
    (StatusCode::OK, Json(body)).into_response()
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
