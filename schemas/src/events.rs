//! Typed Rust forms of the v1 events, mirroring `schemas/avro/*.avsc` field for field.
//!
//! They serialize to the contract's bare JSON (the `application/json` form); [`crate::payload`] turns that
//! into Avro. Fields added in later schema revisions carry `#[serde(default)]` so older data still decodes.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::catalog::EventType;

/// A typed v1 event.
pub trait CoreEvent: Serialize + DeserializeOwned {
    /// Its `ce_type`.
    const TYPE: EventType;
    /// The form it concerns (`ce_subject`).
    fn form_id(&self) -> &str;
}

/// How a question is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QuestionKind {
    /// A number.
    Number,
    /// One of the question's choices.
    SingleChoice,
    /// Several of the question's choices.
    MultipleChoice,
    /// A calendar date.
    Date,
    /// A phone number.
    Phone,
    /// A GPS position.
    Location,
    /// Free text. Also what a reader sees for kinds added after its revision (serde's `other` must be the
    /// last variant; the Avro symbol order is the schema's, not this one).
    #[serde(other)]
    Text,
}

/// An option of a choice question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Stored in answers; stable across form versions.
    pub value: String,
    /// Shown to the respondent.
    pub label: String,
}

/// A question of a form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// Stable across form versions; answers are keyed by it.
    pub id: String,
    /// The question text.
    pub label: String,
    /// How it is answered.
    pub kind: QuestionKind,
    /// Whether an answer is required.
    #[serde(default)]
    pub required: bool,
    /// Options of choice questions.
    #[serde(default)]
    pub choices: Vec<Choice>,
    /// Help text.
    #[serde(default)]
    pub hint: Option<String>,
}

/// A form as published at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Form {
    /// Form id.
    pub id: String,
    /// Owning team.
    pub team_id: String,
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// 1 when created, +1 on every published change.
    pub version: i32,
    /// BCP 47 language tag.
    #[serde(default = "default_locale")]
    pub default_locale: String,
    /// The questions, in order.
    pub questions: Vec<Question>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}

fn default_locale() -> String {
    "en".to_owned()
}

/// A typed answer; in JSON the bare object, e.g. `{"number": 42.0}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    /// `TextAnswer`
    Text {
        /// The text.
        text: String,
    },
    /// `NumberAnswer`
    Number {
        /// The number.
        number: f64,
    },
    /// `ChoiceAnswer`
    Choice {
        /// A `Choice::value` of the question.
        choice: String,
    },
    /// `MultiChoiceAnswer`
    MultiChoice {
        /// `Choice::value`s of the question.
        choices: Vec<String>,
    },
    /// `DateAnswer`
    Date {
        /// Days since 1970-01-01.
        date: i32,
    },
    /// `PhoneAnswer`
    Phone {
        /// As entered; E.164 when the collector normalised it.
        phone: String,
    },
    /// `LocationAnswer`
    Location {
        /// Degrees.
        latitude: f64,
        /// Degrees.
        longitude: f64,
        /// Accuracy radius in metres.
        #[serde(default)]
        accuracy_m: Option<f64>,
    },
}

/// One submission of a form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Response id.
    pub id: String,
    /// The form answered.
    pub form_id: String,
    /// The form version answered.
    pub form_version: i32,
    /// Owning team.
    pub team_id: String,
    /// The enumerator, device or web link that collected it.
    pub collector_id: String,
    /// Milliseconds since the Unix epoch.
    pub submitted_at: i64,
    /// BCP 47 language tag.
    pub locale: String,
    /// Keyed by question id; `None` = skipped.
    pub answers: BTreeMap<String, Option<Answer>>,
    /// Time from first view to submission.
    #[serde(default)]
    pub duration_ms: Option<i64>,
}

/// `form.created`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormCreated {
    /// The new form.
    pub form: Form,
    /// Who created it.
    pub created_by: String,
}

/// `form.updated`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormUpdated {
    /// The form at its new version.
    pub form: Form,
    /// The version it replaces.
    pub previous_version: i32,
    /// Who published it.
    pub updated_by: String,
}

/// `response.submitted`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseSubmitted {
    /// The response.
    pub response: Response,
}

/// `response.updated`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseUpdated {
    /// The response after the edit.
    pub response: Response,
    /// 2 for the first edit, +1 for each later one.
    pub revision: i32,
    /// Who edited it.
    pub updated_by: String,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}

macro_rules! core_event {
    ($ty:ty, $variant:ident, $field:ident) => {
        impl CoreEvent for $ty {
            const TYPE: EventType = EventType::$variant;
            fn form_id(&self) -> &str {
                core_event!(@form_id self, $field)
            }
        }
    };
    (@form_id $self:ident, form) => { &$self.form.id };
    (@form_id $self:ident, response) => { &$self.response.form_id };
}

core_event!(FormCreated, FormCreated, form);
core_event!(FormUpdated, FormUpdated, form);
core_event!(ResponseSubmitted, ResponseSubmitted, response);
core_event!(ResponseUpdated, ResponseUpdated, response);
