//! The sms-notify plugin's logic: one text message per submitted response.
//!
//! ```text
//!   ResponseSubmitted ─► team config ─► answer to `phone_question` ─e164─► template.render ─► Text
//!                          │ none              │ missing or invalid                           │
//!                          ▼                   ▼                                              ▼
//!                  TeamNotConfigured   Prepared::Skipped                  TwilioClient::send ─► SentMessage
//! ```
//!
//! [`SmsNotifier::response_submitted`] does all of it in one call. A caller that records what it sends
//! (the plugin with its ledger, [`crate::sms::ledger`]) calls the steps one by one, recording its intent
//! between [`SmsNotifier::prepare`] and [`SmsNotifier::send`], and asks [`SmsNotifier::look_up`] whether
//! an attempt whose outcome it does not know sent the message.
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
use super::record::Intent;
use super::twilio::{ListedMessage, SentMessage, SmsError, TwilioClient};
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

/// A message ready to send: the team's account, the recipient and the filled template.
#[derive(Clone)]
pub struct Text {
    config: Arc<SmsConfig>,
    to: String,
    body: String,
}

impl Text {
    /// The recipient, E.164.
    pub fn to(&self) -> &str {
        &self.to
    }

    /// The sender: the team's `from`.
    pub fn from(&self) -> &str {
        &self.config.from
    }

    /// The message.
    pub fn body(&self) -> &str {
        &self.body
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Text")
            .field("to", &mask(&self.to))
            .field("from", &self.config.from)
            .field("body_chars", &self.body.chars().count())
            .finish_non_exhaustive()
    }
}

/// What a response calls for.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// A message.
    Text(Text),
    /// None: the response gives no usable number.
    Skipped(SkipReason),
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

    /// Texts the respondent of `event`: [`Self::prepare`], then [`Self::send`]. Each call that reaches
    /// Twilio sends a message: a caller that may call twice for one event (a redelivery) must remember
    /// what it sent.
    ///
    /// # Errors
    ///
    /// [`SmsError::TeamNotConfigured`], or the API's error; `disposition()` says whether to retry.
    pub async fn response_submitted(&self, event: &ResponseSubmitted) -> Result<SmsOutcome, SmsError> {
        match self.prepare(event)? {
            Prepared::Skipped(reason) => Ok(SmsOutcome::Skipped { reason }),
            Prepared::Text(text) => {
                let sent = self.send(&text).await?;
                Ok(SmsOutcome::Sent {
                    sid: sent.sid,
                    to_masked: mask(&text.to),
                })
            }
        }
    }

    /// The message `event` calls for, if any, with its team's config as it is now. Sends nothing.
    ///
    /// # Errors
    ///
    /// [`SmsError::TeamNotConfigured`].
    pub fn prepare(&self, event: &ResponseSubmitted) -> Result<Prepared, SmsError> {
        let response = &event.response;
        let config = self.team(&response.team_id)?;
        let question = config.phone_question.clone();
        let raw = match response.answers.get(&question) {
            Some(Some(Answer::Phone { phone })) => phone,
            Some(Some(Answer::Text { text })) => text,
            Some(Some(_)) => return Ok(Prepared::Skipped(SkipReason::NotAPhoneAnswer { question })),
            Some(None) | None => return Ok(Prepared::Skipped(SkipReason::NoNumber { question })),
        };
        let Ok(to) = e164(raw) else {
            return Ok(Prepared::Skipped(SkipReason::InvalidNumber { question }));
        };
        let body = config.template.render(response);
        Ok(Prepared::Text(Text { config, to, body }))
    }

    /// Sends `text`. Every call the API accepts is a message.
    ///
    /// # Errors
    ///
    /// The API's error; `disposition()` says whether to retry.
    pub async fn send(&self, text: &Text) -> Result<SentMessage, SmsError> {
        let config = &text.config;
        self.client
            .send(
                &config.account_sid,
                &config.auth_token,
                &text.to,
                &config.from,
                &text.body,
            )
            .await
    }

    /// The messages Twilio lists to `intent`'s recipient from its sender since the day of
    /// [`Intent::earliest_created`], on the account `team_id` is configured with now: where
    /// [`crate::sms::record::decide`] looks for the message of an attempt whose outcome is unknown.
    ///
    /// # Errors
    ///
    /// [`SmsError::TeamNotConfigured`], or the API's error.
    pub async fn look_up(&self, team_id: &str, intent: &Intent) -> Result<Vec<ListedMessage>, SmsError> {
        let config = self.team(team_id)?;
        self.client
            .list_sent_since(
                &config.account_sid,
                &config.auth_token,
                &intent.to,
                &intent.from,
                intent.earliest_created().date(),
            )
            .await
    }

    fn team(&self, team_id: &str) -> Result<Arc<SmsConfig>, SmsError> {
        self.teams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(team_id)
            .cloned()
            .ok_or_else(|| SmsError::TeamNotConfigured {
                team_id: team_id.to_owned(),
            })
    }
}
