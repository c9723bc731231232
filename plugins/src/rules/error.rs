//! Why a rules-validate config is refused.

use thiserror::Error;

use super::config::{MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH, MAX_MESSAGE_CHARS, MAX_NAME_CHARS};

/// Why a config could not be turned into a [`RuleSet`](super::RuleSet). Always a config problem: evaluation
/// itself never fails.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RulesError {
    /// The JSON is not a rules-validate config at all.
    #[error("The rules-validate config does not have the expected shape: {0}.")]
    Shape(#[source] serde_json::Error),
    /// More rules than [`MAX_RULES`](super::MAX_RULES).
    #[error("The config has {count} rules, but at most {max} are allowed.")]
    TooManyRules {
        /// Rules in the config.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// One or more rules are invalid; every invalid rule is listed, not just the first.
    #[error("{}", join_sentences(.0))]
    InvalidRules(Vec<RuleProblem>),
    /// The thread that parses the expressions could not be started (the process is out of threads or
    /// memory), or parsing panicked.
    #[error("The rules could not be compiled: {0}.")]
    Thread(#[source] switchyard_filter::compile_thread::CompileThreadError),
    /// The CEL environment could not be prepared; a bug of this crate, not of the config.
    #[error("The CEL environment for the rules could not be set up: {0}.")]
    Environment(#[source] cel::DeclarationError),
}

impl RulesError {
    /// The problems of individual rules (empty for the other kinds of error).
    pub fn problems(&self) -> &[RuleProblem] {
        match self {
            Self::InvalidRules(problems) => problems,
            _ => &[],
        }
    }
}

fn join_sentences(problems: &[RuleProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What is wrong with one rule of a config.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("The rule at /rules/{index} ({name:?}) {kind}.")]
pub struct RuleProblem {
    /// Position of the rule in the config's `rules`, from 0.
    pub index: usize,
    /// The rule's name as configured.
    pub name: String,
    /// What is wrong.
    pub kind: RuleProblemKind,
}

/// What can be wrong with one rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RuleProblemKind {
    /// The name is empty.
    #[error("has an empty name")]
    EmptyName,
    /// The name is longer than [`MAX_NAME_CHARS`].
    #[error("has a name of {chars} characters, but at most {MAX_NAME_CHARS} are allowed")]
    NameTooLong {
        /// Characters in the name.
        chars: usize,
    },
    /// Another rule, earlier in the config, has the same name.
    #[error("has the same name as the rule at /rules/{first}; names must be unique")]
    DuplicateName {
        /// Index of the earlier rule.
        first: usize,
    },
    /// The message is empty.
    #[error("has an empty message")]
    EmptyMessage,
    /// The message is longer than [`MAX_MESSAGE_CHARS`].
    #[error("has a message of {chars} characters, but at most {MAX_MESSAGE_CHARS} are allowed")]
    MessageTooLong {
        /// Characters in the message.
        chars: usize,
    },
    /// The expression is empty or blank.
    #[error("has an empty expression")]
    EmptyExpression,
    /// The expression is longer than [`MAX_EXPRESSION_CHARS`].
    #[error("has an expression of {chars} characters, but at most {MAX_EXPRESSION_CHARS} are allowed")]
    ExpressionTooLong {
        /// Characters in the expression.
        chars: usize,
    },
    /// The CEL parser rejected the expression.
    #[error("does not parse as CEL: {message}")]
    Parse {
        /// The parser's messages, with line and column.
        message: String,
    },
    /// The expression nests deeper than [`MAX_EXPRESSION_DEPTH`].
    #[error(
        "nests more than {MAX_EXPRESSION_DEPTH} levels deep; split it into several rules or use fewer \
         chained operators"
    )]
    TooDeep,
    /// The expression names a variable rules do not have.
    #[error("uses the unknown variable `{variable}`; rules can use `answers`, `days` and `response`")]
    UnknownVariable {
        /// The variable.
        variable: String,
    },
    /// The expression reads a field `response` does not have.
    #[error(
        "reads `response.{field}`, which does not exist; `response` has id, form_id, form_version, \
         team_id, collector_id, submitted_at, submitted_day, locale and duration_ms"
    )]
    UnknownResponseField {
        /// The field.
        field: String,
    },
}
