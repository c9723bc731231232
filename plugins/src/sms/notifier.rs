//! The sms-notify plugin's logic: one text message per submitted response.
//!
//! ```text
//!   ResponseSubmitted ─► team config ─► answer to `phone_question` ─e164─► template.render
//!                          │ none              │ missing or invalid              │
//!                          ▼                   ▼                                 ▼
//!                  TeamNotConfigured   SmsOutcome::Skipped      TwilioClient::send(key = event id)
//!                                                                   ─► SmsOutcome::Sent
//! ```
//!
//! Only `response.submitted` sends: an edited response (`response.updated`) is the same respondent's
//! same submission, and a second "thank you" would be noise. A response without a usable number is
//! not an error (the respondent gave none, or a malformed one) but an outcome the runtime can count.
//! Outcomes and errors show phone numbers masked to their last three digits.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;
use serde_json::Value;
use switchyard_schemas::events::{Answer, ResponseSubmitted};

use super::phone::{e164, mask};
use super::twilio::{SmsError, TwilioClient};
use super::{ConfigError, SmsConfig};

/// Why no message was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SkipReason {
    /// The response has no answer to the phone question (skipped, or not on this form).
    NoNumber {
        /// The configured phone question.
        question: String,
    },
    /// The answer is not text or a phone number.
    NotAPhoneAnswer {
        /// The configured phone question.
        question: String,
    },
    /// The answer is not an E.164 number.
    InvalidNumber {
        /// The configured phone question.
        question: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoNumber { question } => write!(f, "the response has no answer to {question:?}"),
            Self::NotAPhoneAnswer { question } => {
                write!(f, "the answer to {question:?} is not a phone number or text")
            }
            Self::InvalidNumber { question } => {
                write!(f, "the answer to {question:?} is not an E.164 phone number")
            }
        }
    }
}

/// What the notifier did with a response, for the runtime's result event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SmsOutcome {
    /// The API accepted the message.
    Sent {
        /// The message's id.
        sid: String,
        /// The recipient, all but the last three digits masked.
        to_masked: String,
    },
    /// No message was sent, and none will be.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
}

/// The sms-notify plugin's logic. Safe to share between tasks.
#[derive(Debug)]
pub struct SmsNotifier {
    client: TwilioClient,
    teams: RwLock<HashMap<String, Arc<SmsConfig>>>,
}

impl SmsNotifier {
    /// A notifier sending through `client`, with no team configured yet.
    pub fn new(client: TwilioClient) -> Self {
        Self {
            client,
            teams: RwLock::new(HashMap::new()),
        }
    }

    /// Applies a team's config as the registry sent it (on initialize or on change), validating it
    /// and its template first; the team's previous config stays in force if it is refused.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the offending field (never quoting the auth token).
    pub fn configure_team(&self, team_id: &str, config: &Value) -> Result<(), ConfigError> {
        let config = SmsConfig::from_json(config)?;
        self.set_team_config(team_id, config);
        Ok(())
    }

    /// Applies an already parsed config.
    pub fn set_team_config(&self, team_id: &str, config: SmsConfig) {
        self.teams
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(team_id.to_owned(), Arc::new(config));
    }

    /// Forgets a team's config. Returns whether it had one.
    pub fn remove_team(&self, team_id: &str) -> bool {
        self.teams
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(team_id)
            .is_some()
    }

    /// Texts the respondent of `event`. Each call that reaches Twilio sends a message: a caller that may
    /// call twice for one event (a redelivery) must remember what it sent.
    ///
    /// # Errors
    ///
    /// [`SmsError::TeamNotConfigured`], or the API's error; `disposition()` says whether to retry.
    pub async fn response_submitted(&self, event: &ResponseSubmitted) -> Result<SmsOutcome, SmsError> {
        let response = &event.response;
        let config = self
            .teams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&response.team_id)
            .cloned()
            .ok_or_else(|| SmsError::TeamNotConfigured {
                team_id: response.team_id.clone(),
            })?;
        let question = config.phone_question.clone();
        let raw = match response.answers.get(&question) {
            Some(Some(Answer::Phone { phone })) => phone,
            Some(Some(Answer::Text { text })) => text,
            Some(Some(_)) => {
                return Ok(SmsOutcome::Skipped {
                    reason: SkipReason::NotAPhoneAnswer { question },
                });
            }
            Some(None) | None => {
                return Ok(SmsOutcome::Skipped {
                    reason: SkipReason::NoNumber { question },
                });
            }
        };
        let Ok(to) = e164(raw) else {
            return Ok(SmsOutcome::Skipped {
                reason: SkipReason::InvalidNumber { question },
            });
        };
        let body = config.template.render(response);
        let sent = self
            .client
            .send(&config.account_sid, &config.auth_token, &to, &config.from, &body)
            .await?;
        Ok(SmsOutcome::Sent {
            sid: sent.sid,
            to_masked: mask(&to),
        })
    }
}
