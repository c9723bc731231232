//! `sms-notify`: when a response arrives, text the phone number it gives, with a per-installation template
//! filled from its answers, through a Twilio-compatible REST API.
//!
//! # Pieces
//!
//! * [`phone`]: [`e164`] normalisation, [`mask`]ing of numbers in anything returned or reported.
//! * [`template`]: the message [`Template`] language (`{{answer.<id>}}`, `{{name}}`, `{{response_id}}`,
//!   `{{form_id}}`, `{{team_id}}`), validated when a config is applied.
//! * [`twilio`]: [`TwilioClient::send`] and [`TwilioClient::list_sent_since`], with Twilio's errors
//!   classified for the delivery engine.
//! * [`notifier`]: [`SmsNotifier`], the plugin's logic per `response.submitted`.
//! * [`ledger`] and [`record`]: what the plugin keeps so that an event redelivered texts once: the
//!   ledger topic, its record forms, and [`record::decide`], what a delivery does given both and what
//!   Twilio lists.
//!
//! The in-process Twilio that tests and the demo use in place of the real API is not part of the plugin:
//! it is [`crate::fakes::twilio`].
//!
//! # Per-installation config
//!
//! Validated by the registry against [`config_schema`] and again, with the template parsed, by
//! [`SmsConfig::from_json`] when applied. The API base URL is not per team: it is a deployment
//! setting given to [`TwilioClient::new`].
//!
//! A team may install the plugin several times (the manifest says `installations: true`), each
//! installation with its own config (account, sender, template, phone question) and its own copy of the
//! team's events. [`SmsNotifier`] keeps configs per (team, installation), and the [`ledger`] keys each
//! copy by its copy id ([`ledger::key`]): the event id for the default installation, as before
//! installations existed, `<event id>/<installation>` for a named one, so each installation texts once
//! per event.
//!
//! The default template greets the respondent by `{{name}}`, which finds the name question of every
//! form the demo publishes (`respondent_name`, `farmer_name`, `patient_name`, ...); the default
//! `phone_question` is `phone`, the id those forms use (a school-enrolment team sets
//! `guardian_phone`).

pub mod ledger;
pub mod notifier;
pub mod phone;
pub mod record;
pub mod template;
pub mod twilio;

use serde_json::{Map, Value, json};
use thiserror::Error;

pub use self::notifier::{Prepared, SkipReason, SmsNotifier, SmsOutcome, Text};
pub use self::phone::{InvalidPhoneNumber, e164, mask};
pub use self::template::{DEFAULT_TEMPLATE, MAX_MESSAGE_CHARS, Template, TemplateError};
pub use self::twilio::{ListedMessage, SentMessage, SmsError, TwilioClient};
use crate::{Disposition, Secret};

/// The phone question used when a team's config names none.
pub const DEFAULT_PHONE_QUESTION: &str = "phone";

/// The longest alphanumeric sender id.
const MAX_SENDER_ID_CHARS: usize = 11;

/// The JSON Schema (draft 2020-12) of a team's sms-notify config.
pub fn config_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "sms-notify",
        "description": "Texts the phone number a response gives, with a template filled from its answers.",
        "type": "object",
        "additionalProperties": false,
        "required": ["account_sid", "auth_token", "from"],
        "properties": {
            "account_sid": {
                "type": "string",
                "description": "The Twilio account SID.",
                "pattern": "^AC[0-9a-fA-F]{32}$"
            },
            "auth_token": {
                "type": "string",
                "description": "The Twilio auth token.",
                "writeOnly": true,
                "minLength": 1
            },
            "from": {
                "type": "string",
                "description": "The sender: an E.164 number (+15005550006) or an alphanumeric sender \
                                id of at most 11 letters, digits and spaces.",
                "anyOf": [
                    { "pattern": "^\\+[1-9][0-9]{7,14}$" },
                    { "pattern": "^[A-Za-z0-9 ]*[A-Za-z][A-Za-z0-9 ]*$", "maxLength": MAX_SENDER_ID_CHARS }
                ]
            },
            "template": {
                "type": "string",
                "description": "The message: {{answer.<question_id>}}, {{name}}, {{response_id}}, \
                                {{form_id}} and {{team_id}} are replaced; at most 1600 characters are sent.",
                "default": DEFAULT_TEMPLATE,
                "minLength": 1,
                "maxLength": MAX_MESSAGE_CHARS
            },
            "phone_question": {
                "type": "string",
                "description": "The id of the question whose answer is the number to text.",
                "default": DEFAULT_PHONE_QUESTION,
                "minLength": 1
            }
        }
    })
}

/// A team's sms-notify config is unusable.
#[derive(Debug, Error)]
#[error("The sms-notify config field `{field}` is invalid: {reason}")]
pub struct ConfigError {
    /// The offending field, or `config` for the whole object.
    pub field: &'static str,
    /// What is wrong, as a sentence ending with a full stop, never quoting the auth token.
    pub reason: String,
}

impl ConfigError {
    fn new(field: &'static str, reason: &str) -> Self {
        Self {
            field,
            reason: crate::with_period(reason),
        }
    }

    /// Always [`Disposition::DeadLetter`]: a config does not fix itself.
    pub fn disposition(&self) -> Disposition {
        Disposition::DeadLetter
    }
}

/// A team's sms-notify config.
#[derive(Debug, Clone)]
pub struct SmsConfig {
    /// The Twilio account SID (`AC` + 32 hex digits).
    pub account_sid: String,
    /// The Twilio auth token.
    pub auth_token: Secret,
    /// The sender: an E.164 number (normalised) or an alphanumeric sender id.
    pub from: String,
    /// The message template, parsed.
    pub template: Template,
    /// The question whose answer is the number to text.
    pub phone_question: String,
}

impl SmsConfig {
    /// Reads a config the registry validated, checking it again and parsing its template.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a missing, mistyped or unknown field, an invalid sender, or a template with
    /// an unknown placeholder.
    pub fn from_json(config: &Value) -> Result<Self, ConfigError> {
        let object = config
            .as_object()
            .ok_or_else(|| ConfigError::new("config", "it is not a JSON object"))?;
        const KNOWN: [&str; 5] = ["account_sid", "auth_token", "from", "template", "phone_question"];
        if let Some(unknown) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ConfigError::new(
                "config",
                &format!("the field {unknown:?} is not known"),
            ));
        }
        let account_sid = string_field(object, "account_sid")?
            .ok_or_else(|| ConfigError::new("account_sid", "it is required"))?;
        let sid_ok = account_sid.len() == 34
            && account_sid.starts_with("AC")
            && account_sid[2..].chars().all(|c| c.is_ascii_hexdigit());
        if !sid_ok {
            return Err(ConfigError::new(
                "account_sid",
                "it must be 'AC' followed by 32 hexadecimal digits",
            ));
        }
        let auth_token = string_field(object, "auth_token")?
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ConfigError::new("auth_token", "it is required"))?;
        let from = string_field(object, "from")?.ok_or_else(|| ConfigError::new("from", "it is required"))?;
        let from = sender(from).ok_or_else(|| {
            ConfigError::new(
                "from",
                "it must be an E.164 number or an alphanumeric sender id of at most 11 letters, digits and \
                 spaces, with at least one letter",
            )
        })?;
        let template = match string_field(object, "template")? {
            Some(source) => {
                Template::parse(source).map_err(|error| ConfigError::new("template", &error.to_string()))?
            }
            None => Template::default(),
        };
        let phone_question = string_field(object, "phone_question")?.unwrap_or(DEFAULT_PHONE_QUESTION);
        if phone_question.trim().is_empty() {
            return Err(ConfigError::new("phone_question", "it must not be empty"));
        }
        Ok(Self {
            account_sid: account_sid.to_owned(),
            auth_token: Secret::new(auth_token),
            from,
            template,
            phone_question: phone_question.to_owned(),
        })
    }
}

/// The sender normalised: an E.164 number, or an alphanumeric sender id.
fn sender(from: &str) -> Option<String> {
    if from.trim_start().starts_with('+') {
        return e164(from).ok();
    }
    let valid = !from.is_empty()
        && from.chars().count() <= MAX_SENDER_ID_CHARS
        && from.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
        && from.chars().any(|c| c.is_ascii_alphabetic());
    valid.then(|| from.to_owned())
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ConfigError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ConfigError::new(field, "it must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    #[test]
    fn configs_are_read_with_defaults() {
        let config = SmsConfig::from_json(
            &json!({"account_sid": SID, "auth_token": "t0k3n", "from": "+1 500 555 0006"}),
        )
        .unwrap();
        assert_eq!(config.from, "+15005550006");
        assert_eq!(config.phone_question, "phone");
        assert_eq!(config.template.source(), DEFAULT_TEMPLATE);
        assert!(!format!("{config:?}").contains("t0k3n"));
        let branded =
            SmsConfig::from_json(&json!({"account_sid": SID, "auth_token": "t", "from": "Kilimo Coop"}))
                .unwrap();
        assert_eq!(branded.from, "Kilimo Coop");
    }

    #[test]
    fn bad_configs_are_refused_at_config_time() {
        let base = json!({"account_sid": SID, "auth_token": "t0k3n", "from": "KILIMO"});
        let with = |key: &str, value: Value| {
            let mut config = base.clone();
            config[key] = value;
            config
        };
        let cases = [
            (with("account_sid", json!("t0k3n")), "account_sid"),
            (with("auth_token", json!("")), "auth_token"),
            (with("from", json!("TooLongSenderId")), "from"),
            (with("from", json!("12345")), "from"),
            (with("from", json!("+0712")), "from"),
            (
                with("template", json!("Hi {{answer.name}} {{secret}}")),
                "template",
            ),
            (with("template", json!("Hi {{answer.name")), "template"),
            (with("phone_question", json!(3)), "phone_question"),
            (with("api_base", json!("http://x")), "config"),
        ];
        for (config, field) in cases {
            let error = SmsConfig::from_json(&config).unwrap_err();
            assert_eq!(error.field, field, "{config}");
            assert!(!error.to_string().contains("t0k3n"), "{error}");
            assert!(error.to_string().ends_with('.'), "{error}");
            assert_eq!(error.disposition(), Disposition::DeadLetter);
        }
    }

    #[test]
    fn the_schema_marks_the_token_write_only() {
        let schema = config_schema();
        assert_eq!(schema["properties"]["auth_token"]["writeOnly"], json!(true));
        assert_eq!(
            schema["properties"]["template"]["default"],
            json!(DEFAULT_TEMPLATE)
        );
        assert_eq!(schema["required"], json!(["account_sid", "auth_token", "from"]));
    }
}
