//! A client of Twilio's Messages API (2010-04-01), the one call the plugin needs.
//!
//! ```text
//!   POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json
//!   Authorization: Basic base64(AccountSid:AuthToken)
//!   To=+254712345678&From=+15005550006&Body=...
//!   ◄── 201 {"sid": "SM…", "status": "queued", ...}
//!   ◄── 4xx/5xx {"code": 21211, "message": "...", "more_info": "...", "status": 400}
//! ```
//!
//! The Messages API takes no idempotency key (Twilio documents `I-Twilio-Idempotency-Token` only on the
//! webhooks it sends), so a send repeated after a lost answer or a redelivery texts the respondent again.
//! Sending at most once per event needs a record of what was sent, kept by the caller.
//!
//! Twilio's messages quote phone numbers; [`SmsError`] masks every number in them.

use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use url::Url;

use super::phone::redact_numbers;
use crate::{Disposition, Secret, excerpt, json_error_position, retry_after, with_period};

/// Twilio's error code for "too many requests".
const TOO_MANY_REQUESTS: i64 = 20429;

/// A failure to send a message.
#[derive(Debug, Error)]
pub enum SmsError {
    /// The API base URL is not an http(s) URL.
    #[error("The SMS API base URL {url:?} is not an http or https URL.")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
    },
    /// The event's team has no sms-notify config.
    #[error("Team {team_id:?} has no sms-notify config, so no message can be sent for it.")]
    TeamNotConfigured {
        /// The team.
        team_id: String,
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
}

impl SmsError {
    /// Whether retrying can help, and when: 408, 429 (or Twilio error 20429), 5xx and connection
    /// failures are retried; bad credentials, an invalid number and other 4xx are dead-lettered.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::InvalidBaseUrl { .. } | Self::TeamNotConfigured { .. } => Disposition::DeadLetter,
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
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| SmsError::InvalidBaseUrl {
                url: self.base.to_string(),
            })?
            .pop_if_empty()
            .extend(["2010-04-01", "Accounts", account_sid, "Messages.json"]);
        let response = self
            .http
            .post(url)
            .basic_auth(account_sid, Some(auth_token.expose()))
            .form(&[("To", to), ("From", from), ("Body", body)])
            .send()
            .await
            .map_err(|source| SmsError::Transport { source })?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = response
            .text()
            .await
            .map_err(|source| SmsError::Transport { source })?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|error| SmsError::UnexpectedResponse {
                reason: format!("it is not a message resource ({})", json_error_position(&error)),
            });
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
    }
}
