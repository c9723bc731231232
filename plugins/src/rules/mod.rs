//! **rules-validate**: per-installation business rules over a response's answers, written in
//! [CEL](https://github.com/google/cel-spec) (the Common Expression Language).
//!
//! ```text
//!  config (JSON) ── RulesConfig::from_json ── RuleSet::compile ──► RuleSet    (once per config)
//!                                                 └──► RulesError            (a config error)
//!  Response ── RuleSet::evaluate ──► Evaluation { violations, skipped, errors } (per response)
//! ```
//!
//! A config is a list of named rules, e.g.
//! `{"name": "savings_within_income", "expression": "answers.monthly_savings <= answers.monthly_income",
//! "message": "Monthly savings exceed monthly income", "severity": "error"}`; [`config_schema`] is the
//! JSON Schema the registry checks configs against, [`default_rules`] the demo's rules.
//!
//! # Why CEL, and which implementation
//!
//! CEL is made for exactly this: small, side-effect-free, always-terminating predicates written by
//! users and evaluated by a server. The interpreter is [`cel`] (the `cel-rust` project). Its older name on
//! crates.io, `cel-interpreter` (last release 0.10), is superseded by `cel`, which the same project
//! publishes and keeps current (0.15, 2026), with the parser built in.
//!
//! # Compiling
//!
//! [`RuleSet::compile`] parses every expression once, when the team's config arrives, and checks it
//! beyond the grammar: unknown variables (`answer.x` instead of `answers.x`) and unknown `response` fields
//! are refused, and so are expressions longer than [`MAX_EXPRESSION_CHARS`] or nested deeper than
//! [`MAX_EXPRESSION_DEPTH`] (the interpreter recurses over the tree; this bound keeps a hostile rule from
//! exhausting a worker thread's stack). The parser itself recurses deeply for each level of brackets (up
//! to its own limit of 96), which a debug build cannot fit into a normal thread's stack, so parsing runs
//! on the filter crate's compile thread (`switchyard_filter::compile_thread`, a 64 MiB stack, reserved
//! not committed), the one the router's and the registry's filters compile on. Every invalid rule is reported
//! with its index and name. A bad rule is therefore always a config error, never a per-event failure.
//!
//! # What a rule sees
//!
//! - `answers`, a `map(string, dyn)`: question id → answer, for answered questions only.
//! - `days`, a `map(string, int)`: question id → days since 1970-01-01, for date answers only.
//! - `response`, a `map(string, dyn)`: `id`, `form_id`, `team_id`, `collector_id`, `locale` (strings),
//!   `form_version` (int), `submitted_at` (timestamp, UTC), `submitted_day` (int, days since
//!   1970-01-01, UTC) and, only when the collector measured it, `duration_ms` (int).
//!
//! Answers map by kind: text, choice and phone → `string`; number → `double`; multiple choice →
//! `list(string)` (so `'tv' in answers.assets`); date → `string` `YYYY-MM-DD`, which compares correctly
//! as text (`answers.visit_date >= '2026-01-01'`), with the same date as an `int` in `days` for arithmetic
//! (`response.submitted_day - days.date_of_birth <= 43830`); location → `map` with `latitude`,
//! `longitude` (doubles) and `accuracy_m` when given. Numbers are doubles: comparisons with int literals
//! work (`answers.household_size > 0`), arithmetic needs double literals (`answers.monthly_income * 0.5`).
//! The standard library plus CEL's string extension (`lowerAscii`, `split`, ...) and `matches` (RE2
//! syntax) are available.
//!
//! # Unanswered questions make a rule not applicable
//!
//! A skipped question (`null` in the response) and a question the form does not have are the same to a
//! rule: the key is absent from `answers` (and `days`). A rule that reads an absent answer is **skipped**,
//! not violated and not an error: `answers.monthly_savings <= answers.monthly_income` says nothing about
//! a respondent who left the income empty. Concretely, when evaluation fails with CEL's "no such key"
//! error for a key that the expression reads by name (`answers.x`, `answers['x']`, `days.x`, or the
//! optional `response.duration_ms`) and that this response lacks, the rule lands in
//! [`Evaluation::skipped`]. Any other failure is an error of the rule on that response.
//!
//! CEL's own semantics apply first, so a rule decides for itself when it wants to: `has(answers.x)` tests
//! presence (`!has(answers.loan_balance) || answers.loan_balance >= 0.0` passes when the question was
//! skipped), and `||`/`&&` absorb an error when the other side decides the result. A rule that names a
//! question no form has (a typo) is skipped on every response; [`RuleSet::referenced_questions`] lets the
//! caller compare the rules with the team's forms.
//!
//! # Results
//!
//! `true` passes, `false` is a [`Violation`] with the rule's message and [`Severity`], anything else (a
//! number, a string, a runtime error such as comparing a text answer with a number) is a [`RuleFailure`].
//!
//! # Cost
//!
//! The response is bound to the three variables once per evaluation and shared by all rules: the maps
//! and value boxes are allocated, strings are borrowed from the response, not copied (only date answers
//! are formatted). Each rule then walks its pre-parsed tree. The cost per response of the default rules
//! on an 11-answer household survey is measured by `cargo bench -p switchyard-plugins --bench seeds`
//! (part of `make bench`; the figure is in `docs/benchmarks.md`).

mod analysis;
mod config;
mod context;
mod error;
mod ruleset;

pub use config::{
    MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_RULES, RuleConfig,
    RulesConfig, Severity, config_schema, default_rules,
};
pub use error::{RuleProblem, RuleProblemKind, RulesError};
pub use ruleset::{Evaluation, RuleFailure, RuleSet, Violation};

#[cfg(test)]
mod tests;
