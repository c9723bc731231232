//! A client of Twilio's Messages API (2010-04-01), the two calls the plugin needs: send a message, and
//! list the messages sent to a number (to find out whether an attempt whose answer never came sent one).
//!
//! ```text
//!   POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json
//!   Authorization: Basic base64(AccountSid:AuthToken)
//!   To=+254712345678&From=+15005550006&Body=...
//!   ◄── 201 {"sid": "SM…", "status": "queued", ...}
//!   ◄── 4xx/5xx {"code": 21211, "message": "...", "more_info": "...", "status": 400}
//!
//!   GET {base}/2010-04-01/Accounts/{AccountSid}/Messages.json
//!       ?To=%2B254712345678&From=SURVEYS&DateSent%3E=2026-11-22&PageSize=100
//!   ◄── 200 {"messages": [{"sid", "to", "from", "body", "date_created": "Sun, 22 Nov 2026 10:00:00 +0000",
//!            "date_sent", "status", ...}, ...],   newest first
//!            "next_page_uri": "/2010-04-01/Accounts/AC…/Messages.json?...&Page=1&PageToken=PASM…" or null,
//!            "page": 0, "page_size": 100, "uri", "first_page_uri", "previous_page_uri", "start", "end"}
//! ```
//!
//! `DateSent>` (written `DateSent>=YYYY-MM-DD` in Twilio's docs: the parameter `DateSent>` with a GMT
//! date) keeps the messages sent on or after that day's midnight; [`TwilioClient::list_sent_since`]
//! follows `next_page_uri` (a path on the API's host, with Twilio's cursor) until it is null.
//!
//! The Messages API takes no idempotency key (Twilio documents `I-Twilio-Idempotency-Token` only on the
//! webhooks it sends), so a send repeated after a lost answer or a redelivery texts the respondent again.
//! Sending at most once per event needs a record of what was sent, kept by the caller.
//!
//! Twilio's messages quote phone numbers; [`SmsError`] masks every number in them.

use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use time::format_description::well_known::Rfc2822;
use time::macros::format_description;
use time::{Date, OffsetDateTime};
use url::Url;

use super::phone::redact_numbers;
use crate::installations::of_named_installation;
use crate::{Disposition, Secret, excerpt, json_error_position, retry_after, with_period};

/// Twilio's error code for "too many requests".
const TOO_MANY_REQUESTS: i64 = 20429;

/// Messages per page of a list: Twilio's default is 50, its maximum 1000. A look-up lists one
/// recipient's messages from one sender since one day, normally one or two.
const PAGE_SIZE: u32 = 100;

/// The most pages a list reads (100 messages each) before giving up.
pub const MAX_LIST_PAGES: usize = 20;

/// A failure to send a message.
#[derive(Debug, Error)]
pub enum SmsError {
    /// The API base URL is not an http(s) URL.
    #[error("The SMS API base URL {url:?} is not an http or https URL.")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
    },
    /// The event's installation has no sms-notify config.
    #[error(
        "Team {team_id:?} has no sms-notify config{}, so no message can be sent for it.",
        of_named_installation(installation)
    )]
    TeamNotConfigured {
        /// The team.
        team_id: String,
        /// The team's installation ([`crate::installations::DEFAULT_INSTALLATION`] for the default one,
        /// which the message does not name).
        installation: String,
    },
    /// The API answered with an error.
    #[error(
        "The SMS API answered HTTP {status}{}: {}",
        code.map(|c| format!(" with error {c}")).unwrap_or_default(),
        with_period(message)
    )]
    Api {
        /// The HTTP status.
        status: u16,
        /// Twilio's error code, e.g. 21211 (invalid 'To' number) or 20003 (authentication).
        code: Option<i64>,
        /// Twilio's message, phone numbers masked.
        message: String,
        /// Twilio's link to the error's documentation.
        more_info: Option<String>,
        /// The `Retry-After` the API sent.
        retry_after: Option<Duration>,
    },
    /// No answer arrived: the connection failed or timed out.
    #[error("Sending the message failed before an answer arrived: {source}.")]
    Transport {
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// A successful answer without the documented shape.
    #[error("The SMS API's answer could not be understood: {reason}.")]
    UnexpectedResponse {
        /// What was wrong with it.
        reason: String,
    },
    /// A list ran past [`MAX_LIST_PAGES`] pages.
    #[error(
        "The SMS API lists more than {pages} pages of messages to this number, too many to tell whether an \
         earlier attempt sent the message."
    )]
    ListTooLong {
        /// The pages read.
        pages: usize,
    },
}

impl SmsError {
    /// Whether retrying can help, and when: 408, 429 (or Twilio error 20429), 5xx and connection
    /// failures are retried; bad credentials, an invalid number and other 4xx are dead-lettered.
    pub fn disposition(&self) -> Disposition {
        match self {
            // Thousands of messages to one number since yesterday: an operator should look, not a retry.
            Self::InvalidBaseUrl { .. } | Self::TeamNotConfigured { .. } | Self::ListTooLong { .. } => {
                Disposition::DeadLetter
            }
            Self::Api {
                code: Some(TOO_MANY_REQUESTS),
                retry_after,
                ..
            } => Disposition::Retry { after: *retry_after },
            Self::Api {
                status, retry_after, ..
            } => Disposition::for_status(*status, *retry_after),
            Self::Transport { source } => Disposition::for_transport(source),
            Self::UnexpectedResponse { .. } => Disposition::Retry { after: None },
        }
    }
}

/// A message the API accepted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SentMessage {
    /// Its id, `SM` followed by 32 hex digits.
    pub sid: String,
    /// Its delivery status, normally `queued` or `accepted`.
    pub status: String,
}

/// A message as Twilio's list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMessage {
    /// Its id.
    pub sid: String,
    /// The recipient, as Twilio keeps it (E.164).
    pub to: String,
    /// The sender, as Twilio keeps it (empty if Twilio gives none).
    pub from: String,
    /// The text.
    pub body: String,
    /// When Twilio created it, to the second.
    pub date_created: OffsetDateTime,
    /// Its delivery status: `queued`, `sent`, `delivered`, ...
    pub status: String,
}

/// One page of Twilio's list; the other fields (`page`, `page_size`, `uri`, ...) are not needed.
#[derive(Deserialize)]
struct MessagePage {
    messages: Vec<ListedJson>,
    #[serde(default)]
    next_page_uri: Option<String>,
}

#[derive(Deserialize)]
struct ListedJson {
    sid: String,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    body: Option<String>,
    date_created: String,
    #[serde(default)]
    status: Option<String>,
}

impl ListedJson {
    fn parse(self) -> Result<ListedMessage, SmsError> {
        let date_created = OffsetDateTime::parse(&self.date_created, &Rfc2822).map_err(|_| {
            SmsError::UnexpectedResponse {
                reason: format!(
                    "message {} has a date_created that is not an RFC 2822 date",
                    self.sid
                ),
            }
        })?;
        Ok(ListedMessage {
            sid: self.sid,
            to: self.to.unwrap_or_default(),
            from: self.from.unwrap_or_default(),
            body: self.body.unwrap_or_default(),
            date_created,
            status: self.status.unwrap_or_default(),
        })
    }
}

#[derive(Deserialize)]
struct TwilioErrorBody {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    more_info: Option<String>,
}

/// A client of a Twilio-compatible Messages API.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    base: Url,
    http: reqwest::Client,
}

impl TwilioClient {
    /// The real API's base URL.
    pub const TWILIO_BASE_URL: &str = "https://api.twilio.com";

    /// A client of the API at `api_base` (a deployment setting: [`Self::TWILIO_BASE_URL`], or a fake's
    /// address), sending requests with `http`.
    ///
    /// # Errors
    ///
    /// [`SmsError::InvalidBaseUrl`] when `api_base` is not an http(s) URL.
    pub fn new(api_base: &str, http: reqwest::Client) -> Result<Self, SmsError> {
        let invalid = || SmsError::InvalidBaseUrl {
            url: api_base.to_owned(),
        };
        let base = Url::parse(api_base).map_err(|_| invalid())?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid());
        }
        Ok(Self { base, http })
    }

    /// Sends `body` from `from` to `to` (both already valid) on behalf of `account_sid`. Every call that
    /// the API accepts is a message: nothing de-duplicates a repeated call.
    ///
    /// # Errors
    ///
    /// [`SmsError`]; its `disposition()` says whether to retry.
    pub async fn send(
        &self,
        account_sid: &str,
        auth_token: &Secret,
        to: &str,
        from: &str,
        body: &str,
    ) -> Result<SentMessage, SmsError> {
        let response = self
            .http
            .post(self.messages_url(account_sid)?)
            .basic_auth(account_sid, Some(auth_token.expose()))
            .form(&[("To", to), ("From", from), ("Body", body)])
            .send()
            .await;
        let text = answer(response).await?;
        serde_json::from_str(&text).map_err(|error| SmsError::UnexpectedResponse {
            reason: format!("it is not a message resource ({})", json_error_position(&error)),
        })
    }

    /// Every message Twilio lists from `from` to `to` (both as sent) on `account_sid`, sent on or after
    /// the start of `day` (GMT), newest first, all pages read.
    ///
    /// Twilio filters by the day a message was *sent*: one it has accepted but not yet handed on (still
    /// `queued`, no `date_sent`) may be missing.
    ///
    /// # Errors
    ///
    /// [`SmsError`] as for [`Self::send`]; [`SmsError::ListTooLong`] past [`MAX_LIST_PAGES`] pages.
    pub async fn list_sent_since(
        &self,
        account_sid: &str,
        auth_token: &Secret,
        to: &str,
        from: &str,
        day: Date,
    ) -> Result<Vec<ListedMessage>, SmsError> {
        let day = day
            .format(format_description!("[year]-[month]-[day]"))
            .map_err(|_| SmsError::UnexpectedResponse {
                reason: "the day to list from cannot be written".to_owned(),
            })?;
        let mut url = self.messages_url(account_sid)?;
        url.query_pairs_mut()
            .append_pair("To", to)
            .append_pair("From", from)
            .append_pair("DateSent>", &day)
            .append_pair("PageSize", &PAGE_SIZE.to_string());
        let mut listed = Vec::new();
        for _ in 0..MAX_LIST_PAGES {
            let response = self
                .http
                .get(url)
                .basic_auth(account_sid, Some(auth_token.expose()))
                .send()
                .await;
            let text = answer(response).await?;
            let page: MessagePage =
                serde_json::from_str(&text).map_err(|error| SmsError::UnexpectedResponse {
                    reason: format!("it is not a page of messages ({})", json_error_position(&error)),
                })?;
            for message in page.messages {
                listed.push(message.parse()?);
            }
            match page.next_page_uri.filter(|uri| !uri.is_empty()) {
                None => return Ok(listed),
                Some(next) => url = self.next_page(&next)?,
            }
        }
        Err(SmsError::ListTooLong {
            pages: MAX_LIST_PAGES,
        })
    }

    /// `{base}/2010-04-01/Accounts/{account_sid}/Messages.json`.
    fn messages_url(&self, account_sid: &str) -> Result<Url, SmsError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| SmsError::InvalidBaseUrl {
                url: self.base.to_string(),
            })?
            .pop_if_empty()
            .extend(["2010-04-01", "Accounts", account_sid, "Messages.json"]);
        Ok(url)
    }

    /// The URL of a `next_page_uri`: a path (and query) on the API's host, which Twilio gives relative to
    /// `https://api.twilio.com`, so on this client's base, below its path if it has one.
    fn next_page(&self, uri: &str) -> Result<Url, SmsError> {
        let invalid = || SmsError::UnexpectedResponse {
            reason: "its next_page_uri is not a path on the API's host".to_owned(),
        };
        if !uri.starts_with('/') {
            return Err(invalid());
        }
        // Appended to the base's text, even `//elsewhere/...` stays a path on the base's host.
        Url::parse(&format!("{}{uri}", self.base.as_str().trim_end_matches('/'))).map_err(|_| invalid())
    }
}

/// The body of a successful answer, or the API's error.
async fn answer(response: Result<reqwest::Response, reqwest::Error>) -> Result<String, SmsError> {
    let response = response.map_err(|source| SmsError::Transport { source })?;
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let text = response
        .text()
        .await
        .map_err(|source| SmsError::Transport { source })?;
    if status.is_success() {
        return Ok(text);
    }
    let (code, message, more_info) = match serde_json::from_str::<TwilioErrorBody>(&text) {
        Ok(parsed) => (
            parsed.code,
            parsed
                .message
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
            parsed.more_info,
        ),
        Err(_) => (None, excerpt(&text, 200), None),
    };
    Err(SmsError::Api {
        status: status.as_u16(),
        code,
        message: redact_numbers(&message),
        more_info,
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let api = |status, code| SmsError::Api {
            status,
            code,
            message: "x".into(),
            more_info: None,
            retry_after: Some(Duration::from_secs(2)),
        };
        let after = Some(Duration::from_secs(2));
        assert_eq!(api(429, Some(20429)).disposition(), Disposition::Retry { after });
        assert_eq!(api(400, Some(20429)).disposition(), Disposition::Retry { after });
        assert_eq!(api(500, None).disposition(), Disposition::Retry { after });
        assert_eq!(api(400, Some(21211)).disposition(), Disposition::DeadLetter);
        assert_eq!(api(401, Some(20003)).disposition(), Disposition::DeadLetter);
        assert_eq!(
            api(400, Some(21211)).to_string(),
            "The SMS API answered HTTP 400 with error 21211: x."
        );
        assert_eq!(
            SmsError::ListTooLong { pages: 20 }.disposition(),
            Disposition::DeadLetter
        );
    }

    #[test]
    fn next_pages_stay_on_the_apis_host_below_its_path() {
        let client = TwilioClient::new("http://127.0.0.1:8080/twilio/", reqwest::Client::new()).unwrap();
        let next = "/2010-04-01/Accounts/AC1/Messages.json?To=%2B254712345678&Page=1&PageToken=PASM1";
        assert_eq!(
            client.next_page(next).unwrap().as_str(),
            format!("http://127.0.0.1:8080/twilio{next}")
        );
        assert!(client.next_page("https://elsewhere.example/x").is_err());
        let root = TwilioClient::new("http://127.0.0.1:8080", reqwest::Client::new()).unwrap();
        assert_eq!(
            root.next_page("//elsewhere.example/x").unwrap().host_str(),
            Some("127.0.0.1")
        );
        assert_eq!(
            root.next_page(next).unwrap().as_str(),
            format!("http://127.0.0.1:8080{next}")
        );
    }
}
