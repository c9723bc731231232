//! The sms-notify plugin's logic: one text message per submitted response.
//!
//! ```text
//!   ResponseSubmitted ─► installation's config ─► answer to `phone_question` ─e164─► template.render ─► Text
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
//! Configs are kept per (team, installation): a team that installed the plugin twice has two configs
//! (two templates, senders, accounts), and each installation's copy of an event is prepared, sent and
//! looked up with its own. The methods without an installation are the default installation's.
//!
//! Only `response.submitted` sends: an edited response (`response.updated`) is the same respondent's
//! same submission, and a second "thank you" would be noise. A response without a usable number is
//! not an error (the respondent gave none, or a malformed one) but an outcome the runtime can count.
//! Outcomes and errors show phone numbers masked to their last three digits.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use switchyard_schemas::events::{Answer, ResponseSubmitted};

use super::phone::{e164, mask};
use super::record::Intent;
use super::twilio::{ListedMessage, SentMessage, SmsError, TwilioClient};
use super::{ConfigError, SmsConfig};
use crate::installations::{DEFAULT_INSTALLATION, Installations};

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
    installations: Installations<SmsConfig>,
}

impl SmsNotifier {
    /// A notifier sending through `client`, with no team configured yet.
    pub fn new(client: TwilioClient) -> Self {
        Self {
            client,
            installations: Installations::new(),
        }
    }

    /// Applies the config of a team's default installation: [`Self::configure_installation`].
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the offending field (never quoting the auth token).
    pub fn configure_team(&self, team_id: &str, config: &Value) -> Result<(), ConfigError> {
        self.configure_installation(team_id, DEFAULT_INSTALLATION, config)
    }

    /// Applies the config of a team's installation as the registry sent it (on initialize or on change),
    /// validating it and its template first; the installation's previous config stays in force if it is
    /// refused, and the team's other installations keep theirs either way.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the offending field (never quoting the auth token).
    pub fn configure_installation(
        &self,
        team_id: &str,
        installation: &str,
        config: &Value,
    ) -> Result<(), ConfigError> {
        let config = SmsConfig::from_json(config)?;
        self.installations.insert(team_id, installation, config);
        Ok(())
    }

    /// Applies an already parsed config to the team's default installation.
    pub fn set_team_config(&self, team_id: &str, config: SmsConfig) {
        self.installations.insert(team_id, DEFAULT_INSTALLATION, config);
    }

    /// Forgets the config of a team's default installation. Returns whether it had one.
    pub fn remove_team(&self, team_id: &str) -> bool {
        self.remove_installation(team_id, DEFAULT_INSTALLATION)
    }

    /// Forgets the config of a team's installation, leaving its other installations alone. Returns
    /// whether it had one.
    pub fn remove_installation(&self, team_id: &str, installation: &str) -> bool {
        self.installations.remove(team_id, installation)
    }

    /// Texts the respondent of `event` for the team's default installation:
    /// [`Self::response_submitted_for`].
    ///
    /// # Errors
    ///
    /// [`SmsError::TeamNotConfigured`], or the API's error; `disposition()` says whether to retry.
    pub async fn response_submitted(&self, event: &ResponseSubmitted) -> Result<SmsOutcome, SmsError> {
        self.response_submitted_for(DEFAULT_INSTALLATION, event).await
    }

    /// Texts the respondent of `event` with the config of the team's `installation`:
    /// [`Self::prepare_for`], then [`Self::send`]. Each call that reaches Twilio sends a message: a caller
    /// that may call twice for one event (a redelivery) must remember what it sent.
    ///
    /// # Errors
    ///
    /// [`SmsError::TeamNotConfigured`], or the API's error; `disposition()` says whether to retry.
    pub async fn response_submitted_for(
        &self,
        installation: &str,
        event: &ResponseSubmitted,
    ) -> Result<SmsOutcome, SmsError> {
        match self.prepare_for(installation, event)? {
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

    /// The message `event` calls for, if any, with the config of its team's default installation:
    /// [`Self::prepare_for`].
    ///
    /// # Errors
    ///
    /// [`SmsError::TeamNotConfigured`].
    pub fn prepare(&self, event: &ResponseSubmitted) -> Result<Prepared, SmsError> {
        self.prepare_for(DEFAULT_INSTALLATION, event)
    }

    /// The message `event` calls for, if any, with the config of its team's `installation` as it is now.
    /// Sends nothing.
    ///
    /// # Errors
    ///
    /// [`SmsError::TeamNotConfigured`].
    pub fn prepare_for(&self, installation: &str, event: &ResponseSubmitted) -> Result<Prepared, SmsError> {
        let response = &event.response;
        let config = self.config(&response.team_id, installation)?;
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

    /// The messages Twilio lists for `intent` on the account of `team_id`'s default installation:
    /// [`Self::look_up_for`].
    ///
    /// # Errors
    ///
    /// [`SmsError::TeamNotConfigured`], or the API's error.
    pub async fn look_up(&self, team_id: &str, intent: &Intent) -> Result<Vec<ListedMessage>, SmsError> {
        self.look_up_for(team_id, DEFAULT_INSTALLATION, intent).await
    }

    /// The messages Twilio lists to `intent`'s recipient from its sender since the day of
    /// [`Intent::earliest_created`], on the account `team_id`'s `installation` is configured with now:
    /// where [`crate::sms::record::decide`] looks for the message of an attempt whose outcome is unknown.
    ///
    /// # Errors
    ///
    /// [`SmsError::TeamNotConfigured`], or the API's error.
    pub async fn look_up_for(
        &self,
        team_id: &str,
        installation: &str,
        intent: &Intent,
    ) -> Result<Vec<ListedMessage>, SmsError> {
        let config = self.config(team_id, installation)?;
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

    fn config(&self, team_id: &str, installation: &str) -> Result<Arc<SmsConfig>, SmsError> {
        self.installations
            .get(team_id, installation)
            .ok_or_else(|| SmsError::TeamNotConfigured {
                team_id: team_id.to_owned(),
                installation: installation.to_owned(),
            })
    }
}
