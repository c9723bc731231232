//! Checks of a parsed expression, done once at compile time: how deep it nests, which variables it uses,
//! which `response` fields it reads, and which answers it reads (the keys whose absence makes the rule
//! not applicable rather than broken).

use std::collections::BTreeSet;

use cel::IdedExpr;
use cel::common::ast::{Expr, LiteralValue, operators};
use switchyard_filter::bounds::for_each_child;

use super::error::RuleProblemKind;

/// The variables a rule can use.
pub(crate) const ANSWERS: &str = "answers";
/// Date answers as days since 1970-01-01.
pub(crate) const DAYS: &str = "days";
/// The response's metadata.
pub(crate) const RESPONSE: &str = "response";

/// Fields of the `response` variable. `duration_ms` is present only when the collector measured it.
pub(crate) const RESPONSE_FIELDS: [&str; 9] = [
    "id",
    "form_id",
    "form_version",
    "team_id",
    "collector_id",
    "submitted_at",
    "submitted_day",
    "locale",
    "duration_ms",
];

/// Identifiers CEL resolves to types (`type(x) == int`), or the root of a qualified type name
/// (`google.protobuf.Timestamp`). They are not variables, so they are not reported as unknown.
const TYPE_IDENTIFIERS: [&str; 15] = [
    "bool",
    "bytes",
    "double",
    "duration",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "optional_type",
    "string",
    "timestamp",
    "type",
    "uint",
    "google",
];

/// What a rule reads, as far as the expression says so literally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reads {
    /// Question ids read as `answers.x` or `answers['x']` (a presence test, `has(answers.x)`, is not a
    /// read: it never fails).
    pub answers: BTreeSet<String>,
    /// Question ids read as `days.x` or `days['x']`.
    pub days: BTreeSet<String>,
    /// Whether `response.duration_ms`, the one optional response field, is read.
    pub duration: bool,
}

/// Checks the variables and `response` fields an expression uses, and collects the answers it reads.
///
/// Only call it on a tree whose depth [`first_deeper_than`] checked (the iterative walk installation filters
/// use too): it recurses.
///
/// [`first_deeper_than`]: switchyard_filter::bounds::first_deeper_than
pub(crate) fn analyse(root: &IdedExpr) -> Result<Reads, RuleProblemKind> {
    let mut walker = Walker {
        bound: Vec::new(),
        reads: Reads::default(),
    };
    walker.walk(root)?;
    Ok(walker.reads)
}

struct Walker<'a> {
    /// Variables bound by enclosing comprehensions (`x` in `answers.assets.exists(x, ...)`).
    bound: Vec<&'a str>,
    reads: Reads,
}

impl<'a> Walker<'a> {
    fn is_global(&self, name: &str) -> bool {
        !self.bound.contains(&name)
    }

    fn walk(&mut self, expr: &'a IdedExpr) -> Result<(), RuleProblemKind> {
        match &expr.expr {
            Expr::Ident(name) => {
                if self.is_global(name)
                    && ![ANSWERS, DAYS, RESPONSE].contains(&name.as_str())
                    && !TYPE_IDENTIFIERS.contains(&name.as_str())
                {
                    return Err(RuleProblemKind::UnknownVariable {
                        variable: name.clone(),
                    });
                }
            }
            Expr::Select(select) => {
                if let Expr::Ident(root) = &select.operand.expr
                    && self.is_global(root)
                {
                    self.read(root, &select.field, select.test)?;
                }
                self.walk(&select.operand)?;
            }
            Expr::Call(call) => {
                if call.func_name == operators::INDEX
                    && call.target.is_none()
                    && let [operand, key] = call.args.as_slice()
                    && let Expr::Ident(root) = &operand.expr
                    && self.is_global(root)
                    && let Expr::Literal(LiteralValue::String(key)) = &key.expr
                {
                    self.read(root, key.inner(), false)?;
                }
                if let Some(target) = &call.target {
                    // `math.greatest(...)`, `optional.of(...)`: a bare identifier as the target may be a
                    // namespace rather than a variable, so it is not checked.
                    if !matches!(target.expr, Expr::Ident(_)) {
                        self.walk(target)?;
                    }
                }
                for arg in &call.args {
                    self.walk(arg)?;
                }
            }
            Expr::Comprehension(c) => {
                self.walk(&c.iter_range)?;
                self.walk(&c.accu_init)?;
                let outer = self.bound.len();
                self.bound.push(&c.iter_var);
                if let Some(second) = &c.iter_var2 {
                    self.bound.push(second);
                }
                self.bound.push(&c.accu_var);
                let result = [&c.loop_cond, &c.loop_step, &c.result]
                    .into_iter()
                    .try_for_each(|child| self.walk(child));
                self.bound.truncate(outer);
                result?;
            }
            Expr::List(_) | Expr::Map(_) | Expr::Struct(_) => {
                let mut children = Vec::new();
                for_each_child(expr, |child| children.push(child));
                for child in children {
                    self.walk(child)?;
                }
            }
            Expr::Literal(_) | Expr::Unspecified => {}
        }
        Ok(())
    }

    /// `root.key` (or `root['key']`) with `root` a global variable; `test` for `has(root.key)`.
    fn read(&mut self, root: &str, key: &str, test: bool) -> Result<(), RuleProblemKind> {
        match root {
            ANSWERS if !test => {
                self.reads.answers.insert(key.to_owned());
            }
            DAYS if !test => {
                self.reads.days.insert(key.to_owned());
            }
            RESPONSE => {
                if !RESPONSE_FIELDS.contains(&key) {
                    return Err(RuleProblemKind::UnknownResponseField {
                        field: key.to_owned(),
                    });
                }
                if key == "duration_ms" && !test {
                    self.reads.duration = true;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use cel::Env;
    use switchyard_filter::bounds::first_deeper_than;

    use super::*;

    fn reads(source: &str) -> Result<Reads, RuleProblemKind> {
        let program = Env::stdlib().compile(source).unwrap();
        analyse(program.expression())
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn collects_answer_reads_but_not_presence_tests() {
        let r = reads("!has(answers.a) || answers.b < answers['c'] && days.d > 0").unwrap();
        assert_eq!(r.answers, set(&["b", "c"]));
        assert_eq!(r.days, set(&["d"]));
        assert!(!r.duration);
        assert!(reads("response.duration_ms > 60000").unwrap().duration);
        assert!(!reads("has(response.duration_ms)").unwrap().duration);
    }

    #[test]
    fn comprehension_variables_are_known_inside_only() {
        assert!(reads("answers.assets.exists(x, x == 'tv')").is_ok());
        assert_eq!(
            reads("answers.assets.exists(x, x == 'tv') && x == 'tv'"),
            Err(RuleProblemKind::UnknownVariable {
                variable: "x".to_owned()
            })
        );
        // A comprehension variable named like a global shadows it: not a read of the answers.
        assert_eq!(
            reads("[1].exists(answers, answers.q > 0)").unwrap().answers,
            set(&[])
        );
    }

    #[test]
    fn unknown_variables_and_response_fields_are_reported() {
        assert_eq!(
            reads("answer.monthly_income > 0.0"),
            Err(RuleProblemKind::UnknownVariable {
                variable: "answer".to_owned()
            })
        );
        assert_eq!(
            reads("response.team == 'x'"),
            Err(RuleProblemKind::UnknownResponseField {
                field: "team".to_owned()
            })
        );
        assert_eq!(
            reads("response['team'] == 'x'"),
            Err(RuleProblemKind::UnknownResponseField {
                field: "team".to_owned()
            })
        );
        assert!(reads("type(answers.x) == double && response.locale.startsWith('sw')").is_ok());
    }

    #[test]
    fn depth_is_measured_without_recursion() {
        let program = Env::stdlib().compile(&vec!["1"; 40].join(" + ")).unwrap();
        assert!(first_deeper_than(program.expression(), 32).is_some());
        assert!(first_deeper_than(program.expression(), 40).is_none());
        // The parser balances `||` chains.
        let program = Env::stdlib().compile(&vec!["false"; 200].join(" || ")).unwrap();
        assert!(first_deeper_than(program.expression(), 32).is_none());
    }
}
