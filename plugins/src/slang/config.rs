//! A team's slang-search config and its JSON Schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::SlangError;

/// Longest term, in characters.
pub const MAX_TERM_CHARS: usize = 100;
/// Longest meaning, in characters.
pub const MAX_MEANING_CHARS: usize = 200;
/// Most terms a team's own dictionaries may hold, all cities together.
pub const MAX_TEAM_TERMS: usize = 10_000;

/// The question whose answer names the respondent's city, unless the team says otherwise.
pub const DEFAULT_CITY_QUESTION: &str = "city";

/// A team's config. Every field has a default, so `{}` is a valid config: search every text answer
/// with the built-in dictionaries, using the `city` question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlangConfig {
    /// The question whose answer (a choice value, or text) names the city whose slang to look for.
    #[serde(default = "default_city_question")]
    pub city_question: String,
    /// The questions to search; `None` searches every text answer (except the city question's).
    #[serde(default)]
    pub text_questions: Option<Vec<String>>,
    /// Whether the built-in dictionaries ([`builtin`](super::builtin)) are used under the team's own.
    #[serde(default = "default_use_builtin")]
    pub use_builtin: bool,
    /// The team's own dictionaries: city → term → meaning. They are merged over the built-in ones, and
    /// the team's meaning wins for a term both have.
    #[serde(default)]
    pub dictionaries: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for SlangConfig {
    fn default() -> Self {
        Self {
            city_question: default_city_question(),
            text_questions: None,
            use_builtin: default_use_builtin(),
            dictionaries: BTreeMap::new(),
        }
    }
}

impl SlangConfig {
    /// Reads a config from JSON, as the plugin receives it from the registry.
    ///
    /// # Errors
    ///
    /// [`SlangError::Shape`] when the JSON does not have the config's shape (see [`config_schema`]).
    pub fn from_json(config: &Value) -> Result<Self, SlangError> {
        Self::deserialize(config).map_err(SlangError::Shape)
    }
}

fn default_city_question() -> String {
    DEFAULT_CITY_QUESTION.to_owned()
}

fn default_use_builtin() -> bool {
    true
}

/// The JSON Schema (draft 2020-12) the registry validates slang-search configs against.
///
/// It checks the shape and the lengths. What a schema cannot say (that two spellings of a city or a term
/// are the same once case and spacing are ignored) is left to
/// [`SlangIndex::build`](super::SlangIndex::build).
pub fn config_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "slang-search config",
        "description": "Finds local slang in a response's free-text answers, using the dictionary of the \
                        city the respondent named. Built-in dictionaries cover Sheng (Kenya, Uganda, \
                        Tanzania) and West African Pidgin (Nigeria, Ghana).",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "city_question": {
                "type": "string",
                "minLength": 1,
                "default": DEFAULT_CITY_QUESTION,
                "description": "Id of the question whose answer names the city."
            },
            "text_questions": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": true,
                "items": {"type": "string", "minLength": 1},
                "description": "Ids of the questions to search; leave out to search every text answer."
            },
            "use_builtin": {
                "type": "boolean",
                "default": true,
                "description": "Whether the built-in dictionaries are used under the team's own."
            },
            "dictionaries": {
                "type": "object",
                "description": "City (a choice value such as \"nairobi\", or its name) -> term -> meaning. \
                                Merged over the built-in dictionaries; the team's meanings win.",
                "propertyNames": {"minLength": 1},
                "additionalProperties": {
                    "type": "object",
                    "propertyNames": {"minLength": 1, "maxLength": MAX_TERM_CHARS},
                    "additionalProperties": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_MEANING_CHARS
                    }
                },
                "examples": [{"nairobi": {"poa": "cool, fine", "msee": "guy"}}]
            }
        }
    })
}
