//! A team's compiled rules, and their evaluation on a response.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use cel::{Context, Env, ExecutionError, Program, Value};
use serde::{Deserialize, Serialize};
use switchyard_filter::bounds::first_deeper_than;
use switchyard_filter::compile_thread;
use switchyard_schemas::events::{Answer, Response};

use super::analysis::{Reads, analyse};
use super::config::{
    MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_RULES, RuleConfig,
    RulesConfig, Severity,
};
use super::context;
use super::error::{RuleProblem, RuleProblemKind, RulesError};

/// A team's rules, compiled once and evaluated on every response. Cheap to share between threads.
pub struct RuleSet {
    env: Arc<Env>,
    rules: Vec<Rule>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Rule {
    name: String,
    message: String,
    severity: Severity,
    program: Program,
    reads: Reads,
}

/// What a response's evaluation found. Every rule of the set lands in exactly one place: it passed (and
/// is not listed), or it is in `violations`, `skipped` or `errors`; each list keeps the config's order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Rules that evaluated to `false`.
    pub violations: Vec<Violation>,
    /// Names of the rules that were not applicable: they read an answer the response does not have.
    pub skipped: Vec<String>,
    /// Rules that could not be evaluated on this response, or did not evaluate to a bool.
    pub errors: Vec<RuleFailure>,
}

impl Evaluation {
    /// Whether no rule was violated and none failed (skipped rules do not count).
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty() && self.errors.is_empty()
    }

    /// Whether a violation of severity [`Severity::Error`] was found.
    pub fn has_error_violations(&self) -> bool {
        self.violations.iter().any(|v| v.severity == Severity::Error)
    }
}

/// A rule the response violates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The rule's name.
    pub rule: String,
    /// The rule's message.
    pub message: String,
    /// The rule's severity.
    pub severity: Severity,
}

/// A rule that could not be evaluated on a response: a runtime error of the expression (e.g. comparing a
/// text answer with a number) or a result that is not a bool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFailure {
    /// The rule's name.
    pub rule: String,
    /// What went wrong.
    pub message: String,
}

/// How one rule came out.
enum Outcome {
    Pass,
    Violated,
    Skipped,
    Failed(String),
}

impl RuleSet {
    /// Compiles every rule of `config`. Every problem of every rule is reported, each with the rule's
    /// position and name, so one round trip fixes a config.
    ///
    /// Parsing runs on the compile thread of `switchyard_filter` (see the module docs) and blocks the
    /// caller until it is done: call it where blocking for a millisecond or so is fine, e.g. with
    /// `spawn_blocking` from async code.
    ///
    /// # Errors
    ///
    /// [`RulesError::TooManyRules`] or [`RulesError::InvalidRules`]: an empty, too long or duplicate
    /// name, an empty or too long message or expression, an expression that does not parse, nests deeper
    /// than [`MAX_EXPRESSION_DEPTH`], uses an unknown variable or reads an unknown `response` field.
    pub fn compile(config: &RulesConfig) -> Result<Self, RulesError> {
        // The CEL parser recurses deeply per level of bracket nesting (up to its own limit of 96 levels):
        // about 1 MiB in a release build, over 16 MiB in a debug build. Parsing on the filter crate's
        // compile thread, whose stack is generous, keeps a hostile config from aborting the worker.
        let config = config.clone();
        compile_thread::run(move || Self::compile_here(&config)).map_err(RulesError::Thread)?
    }

    fn compile_here(config: &RulesConfig) -> Result<Self, RulesError> {
        if config.rules.len() > MAX_RULES {
            return Err(RulesError::TooManyRules {
                count: config.rules.len(),
                max: MAX_RULES,
            });
        }
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::strings)
            .map_err(RulesError::Environment)?;
        let env = Arc::new(env);

        let mut problems = Vec::new();
        let mut rules = Vec::with_capacity(config.rules.len());
        let mut first_index: HashMap<&str, usize> = HashMap::new();
        for (index, rule) in config.rules.iter().enumerate() {
            let mut problem = |kind| {
                problems.push(RuleProblem {
                    index,
                    name: rule.name.clone(),
                    kind,
                });
            };
            let name_chars = rule.name.chars().count();
            if name_chars == 0 {
                problem(RuleProblemKind::EmptyName);
            } else if name_chars > MAX_NAME_CHARS {
                problem(RuleProblemKind::NameTooLong { chars: name_chars });
            } else if let Some(&first) = first_index.get(rule.name.as_str()) {
                problem(RuleProblemKind::DuplicateName { first });
            } else {
                first_index.insert(&rule.name, index);
            }
            let message_chars = rule.message.chars().count();
            if rule.message.trim().is_empty() {
                problem(RuleProblemKind::EmptyMessage);
            } else if message_chars > MAX_MESSAGE_CHARS {
                problem(RuleProblemKind::MessageTooLong { chars: message_chars });
            }
            match compile_expression(&env, rule) {
                Ok((program, reads)) => rules.push(Rule {
                    name: rule.name.clone(),
                    message: rule.message.clone(),
                    severity: rule.severity,
                    program,
                    reads,
                }),
                Err(kind) => problem(kind),
            }
        }
        if problems.is_empty() {
            Ok(Self { env, rules })
        } else {
            Err(RulesError::InvalidRules(problems))
        }
    }

    /// Reads a config from JSON and compiles it.
    ///
    /// # Errors
    ///
    /// [`RulesError::Shape`] when the JSON is not a config, otherwise as [`RuleSet::compile`].
    pub fn from_json(config: &serde_json::Value) -> Result<Self, RulesError> {
        Self::compile(&RulesConfig::from_json(config)?)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the set has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules' names, in config order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// Question ids the rules read by name (`answers.x`, `answers['x']`, `days.x`). Lets a caller warn
    /// about rules that read a question no form of the team has (a typo would otherwise make the rule be
    /// skipped on every response).
    pub fn referenced_questions(&self) -> BTreeSet<&str> {
        self.rules
            .iter()
            .flat_map(|r| r.reads.answers.iter().chain(&r.reads.days))
            .map(String::as_str)
            .collect()
    }

    /// Evaluates every rule on `response`. Never fails: problems of individual rules are reported in the
    /// result.
    pub fn evaluate(&self, response: &Response) -> Evaluation {
        let mut evaluation = Evaluation::default();
        if self.rules.is_empty() {
            return evaluation;
        }
        let mut context = Context::with_env(Arc::clone(&self.env));
        context::bind(&mut context, response);
        for rule in &self.rules {
            match rule.run(&context, response) {
                Outcome::Pass => {}
                Outcome::Violated => evaluation.violations.push(Violation {
                    rule: rule.name.clone(),
                    message: rule.message.clone(),
                    severity: rule.severity,
                }),
                Outcome::Skipped => evaluation.skipped.push(rule.name.clone()),
                Outcome::Failed(message) => evaluation.errors.push(RuleFailure {
                    rule: rule.name.clone(),
                    message,
                }),
            }
        }
        evaluation
    }
}

impl Rule {
    fn run(&self, context: &Context<'_, '_>, response: &Response) -> Outcome {
        match self.program.execute(context) {
            Ok(Value::Bool(true)) => Outcome::Pass,
            Ok(Value::Bool(false)) => Outcome::Violated,
            Ok(other) => Outcome::Failed(format!(
                "The rule evaluated to a {} instead of true or false.",
                kind_of(&other)
            )),
            Err(ExecutionError::NoSuchKey(key)) if self.reads_missing(&key, response) => Outcome::Skipped,
            Err(error) => Outcome::Failed(format!("The rule could not be evaluated: {error}.")),
        }
    }

    /// Whether `key`, the key evaluation found missing, is an answer (or the optional response field) the
    /// rule reads by name and the response lacks. Only then is the rule not applicable; a missing key
    /// anywhere else (a location's `accuracy_m`, a key computed at run time) is an error of the rule.
    fn reads_missing(&self, key: &str, response: &Response) -> bool {
        let answer = response.answers.get(key).and_then(Option::as_ref);
        (self.reads.answers.contains(key) && answer.is_none())
            || (self.reads.days.contains(key) && !matches!(answer, Some(Answer::Date { .. })))
            || (self.reads.duration && key == "duration_ms" && response.duration_ms.is_none())
    }
}

fn compile_expression(env: &Env, rule: &RuleConfig) -> Result<(Program, Reads), RuleProblemKind> {
    let source = &rule.expression;
    if source.trim().is_empty() {
        return Err(RuleProblemKind::EmptyExpression);
    }
    let chars = source.chars().count();
    if chars > MAX_EXPRESSION_CHARS {
        return Err(RuleProblemKind::ExpressionTooLong { chars });
    }
    let program = env.compile(source).map_err(|errors| RuleProblemKind::Parse {
        message: errors
            .errors
            .iter()
            .map(|e| format!("line {}, column {}: {}", e.pos.0, e.pos.1, e.msg))
            .collect::<Vec<_>>()
            .join("; "),
    })?;
    if first_deeper_than(program.expression(), MAX_EXPRESSION_DEPTH).is_some() {
        return Err(RuleProblemKind::TooDeep);
    }
    let reads = analyse(program.expression())?;
    Ok((program, reads))
}

/// The CEL type name of a value, for messages.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::List(_) => "list",
        Value::Map(_) => "map",
        Value::Function(..) => "function",
        Value::Int(_) => "int",
        Value::UInt(_) => "uint",
        Value::Float(_) => "double",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "bool",
        Value::Duration(_) => "duration",
        Value::Timestamp(_) => "timestamp",
        Value::Opaque(_) => "opaque value",
        Value::Struct(_) => "struct",
        Value::Null => "null",
    }
}
