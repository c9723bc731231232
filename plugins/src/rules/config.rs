//! A team's rules-validate config, its JSON Schema, and the demo's default rules.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Most rules one team config may hold; every rule runs on every response.
pub const MAX_RULES: usize = 256;
/// Longest rule name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest expression, in characters. Bounds the parser's work and, with [`MAX_EXPRESSION_DEPTH`], the
/// stack the parser and the interpreter need (both recurse over the expression tree).
pub const MAX_EXPRESSION_CHARS: usize = 1024;
/// Deepest nesting of an expression's syntax tree. `a + b + c` nests by one per operand (the parser
/// balances `&&` and `||` chains, so those barely count); realistic rules stay under 15.
pub const MAX_EXPRESSION_DEPTH: usize = 32;
/// Longest violation message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 512;

/// A team's config: its rules, evaluated in order on every response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// The rules; names are unique within the config.
    pub rules: Vec<RuleConfig>,
}

impl RulesConfig {
    /// Reads a config from JSON, as the plugin receives it from the registry.
    ///
    /// # Errors
    ///
    /// Fails when the JSON does not have the config's shape (see [`config_schema`]); the rules themselves
    /// are checked by [`RuleSet::compile`](super::RuleSet::compile).
    pub fn from_json(config: &Value) -> Result<Self, super::RulesError> {
        Self::deserialize(config).map_err(super::RulesError::Shape)
    }
}

/// One rule: a CEL expression that must hold for a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique within the config, 1 to [`MAX_NAME_CHARS`] characters; reported with every result.
    pub name: String,
    /// A CEL expression that evaluates to `true` when the response satisfies the rule.
    pub expression: String,
    /// Shown to whoever reviews a violating response.
    pub message: String,
    /// How serious a violation is.
    #[serde(default)]
    pub severity: Severity,
}

/// How serious a violation is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The response is wrong (the default).
    #[default]
    Error,
    /// The response is suspicious and deserves a look.
    Warning,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// The JSON Schema (draft 2020-12) the registry validates rules-validate configs against.
///
/// It checks the shape and the lengths. What a schema cannot say is left to
/// [`RuleSet::compile`](super::RuleSet::compile): that names are unique and that every expression is
/// valid CEL over the variables rules can see.
pub fn config_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "rules-validate config",
        "description": "Business rules checked on every response of the team. Each rule is a CEL expression \
                        over `answers` (question id -> answer), `days` (date question id -> days since \
                        1970-01-01) and `response` (id, form_id, form_version, team_id, collector_id, \
                        submitted_at, submitted_day, locale, duration_ms). A rule that evaluates to true \
                        passes, false is a violation; a rule that reads an unanswered question is skipped.",
        "type": "object",
        "additionalProperties": false,
        "required": ["rules"],
        "properties": {
            "rules": {
                "type": "array",
                "maxItems": MAX_RULES,
                "description": "Rule names must be unique.",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "expression", "message"],
                    "properties": {
                        "name": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_NAME_CHARS,
                            "description": "Unique within the config; reported with every result."
                        },
                        "expression": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_EXPRESSION_CHARS,
                            "description": "CEL; true when the response satisfies the rule.",
                            "examples": ["answers.monthly_savings <= answers.monthly_income"]
                        },
                        "message": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_MESSAGE_CHARS,
                            "description": "Shown with a violation."
                        },
                        "severity": {
                            "enum": ["error", "warning"],
                            "default": "error"
                        }
                    }
                }
            }
        }
    })
}

/// Rules that fit the demo's generated forms (see the load generator's form templates):
///
/// - `savings_within_income` (error): monthly savings may not exceed monthly income (household survey,
///   farmer registration, savings-group check-in). The generator makes about 7% of respondents report
///   more savings than income; this rule flags exactly those.
/// - `plausible_date_of_birth` (error): a birth date is not after the submission day and at most 120
///   years (43,830 days) before it (farmer registration, clinic intake, school enrolment).
/// - `plausible_body_temperature` (warning): a temperature between 30 and 45 °C (clinic intake); values
///   outside are typos or a wrong unit.
pub fn default_rules() -> Value {
    json!({
        "rules": [
            {
                "name": "savings_within_income",
                "expression": "answers.monthly_savings <= answers.monthly_income",
                "message": "Monthly savings exceed monthly income",
                "severity": "error"
            },
            {
                "name": "plausible_date_of_birth",
                "expression": "days.date_of_birth <= response.submitted_day \
                               && response.submitted_day - days.date_of_birth <= 43830",
                "message": "Date of birth is in the future or more than 120 years ago",
                "severity": "error"
            },
            {
                "name": "plausible_body_temperature",
                "expression": "answers.temperature_c >= 30.0 && answers.temperature_c <= 45.0",
                "message": "Body temperature is outside 30-45 °C; check the reading and the unit",
                "severity": "warning"
            }
        ]
    })
}
