//! The static bound on a filter, and the checks that enforce it before and after parsing.
//!
//! cel 0.15 has no cost estimator, no runtime cost limit and no way to interrupt an evaluation, so the
//! bound is on the expression's shape, checked once at compile time; an evaluation never needs a limit:
//!
//! 1. before parsing: [`MAX_SOURCE_BYTES`], and [`MAX_NESTING`] by [`nesting_exceeds`], a scan that
//!    understands string literals and comments. The ANTLR parser recurses per level of nesting, so a
//!    hostile source must not reach it deep (the parser's own recursion limit is set just above, as a
//!    backstop);
//! 2. after parsing, on the tree with the macros expanded: [`MAX_DEPTH`] by [`first_deeper_than`] and
//!    [`MAX_NODES`] by [`node_ids`], both iterative, so a deep tree cannot exhaust the stack here;
//! 3. what the nodes may be (no comprehensions, an allow-list of functions, closed variables, literal data
//!    paths, at most [`MAX_DATA_PATHS`]): see [`crate::compile`].

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr};

/// Longest filter source, in bytes (UTF-8).
pub const MAX_SOURCE_BYTES: usize = 1024;

/// Deepest nesting of brackets (`(`, `[`, `{`) and conditionals (`?:`), counted on the source before it
/// is parsed.
pub const MAX_NESTING: usize = 32;

/// Most nodes in the expression tree after macro expansion (`has(x.y)` is one node). Without
/// comprehensions each node is evaluated at most once, so this is also the most operations an evaluation
/// performs.
pub const MAX_NODES: usize = 64;

/// Deepest expression tree after macro expansion, the root at depth 1. Evaluation recurses once per level.
pub const MAX_DEPTH: usize = 24;

/// Most distinct literal paths into `data` a filter may read; they are what the router projects.
pub const MAX_DATA_PATHS: usize = 16;

/// Where the source first nests brackets and conditionals deeper than `max` (the byte offset of the
/// opening bracket or `?`), if it does.
///
/// A conditional counts until the bracket it is in closes (`a ? b : c ? d : e` nests as deep as CEL's
/// grammar makes the parser recurse). String literals (all CEL forms: quoted, triple-quoted, raw, bytes)
/// and `//` comments are skipped. Brackets need not balance: the parser reports that.
pub fn nesting_exceeds(source: &str, max: usize) -> Option<usize> {
    let bytes = source.as_bytes();
    // Per open bracket, the conditionals seen inside it so far; the bottom entry is the top level.
    let mut levels: Vec<usize> = vec![0];
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |n| i + n);
                continue;
            }
            quote @ (b'"' | b'\'') => {
                i = string_end(bytes, i, quote, is_raw_prefix(bytes, i));
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                levels.push(0);
            }
            b')' | b']' | b'}' if levels.len() > 1 => {
                depth -= 1 + levels.pop().unwrap_or(0);
            }
            b'?' => {
                depth += 1;
                if let Some(level) = levels.last_mut() {
                    *level += 1;
                }
            }
            _ => {}
        }
        if depth > max {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Whether the quote at `quote_at` starts a raw string: it follows an `r` or `R` that starts a token
/// (alone, or after a bytes prefix `b`/`B` that does).
fn is_raw_prefix(bytes: &[u8], quote_at: usize) -> bool {
    let starts_token = |at: usize| at == 0 || !is_identifier_byte(bytes[at - 1]);
    match quote_at.checked_sub(1).map(|at| (at, bytes[at])) {
        Some((r, b'r' | b'R')) => {
            starts_token(r) || (r >= 1 && matches!(bytes[r - 1], b'b' | b'B') && starts_token(r - 1))
        }
        _ => false,
    }
}

fn is_identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The index just past the string literal whose opening quote is at `start`, or the end of the source if
/// it does not close.
fn string_end(bytes: &[u8], start: usize, quote: u8, raw: bool) -> usize {
    let triple = bytes.get(start..start + 3) == Some(&[quote; 3][..]);
    let mut i = start + if triple { 3 } else { 1 };
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' && !raw {
            i += 2;
            continue;
        }
        if triple {
            if bytes.get(i..i + 3) == Some(&[quote; 3][..]) {
                return i + 3;
            }
        } else if b == quote || b == b'\n' || b == b'\r' {
            // A newline ends an unterminated single-line literal; the parser reports it.
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// Calls `visit` on each child of `expr`, in source order as far as the tree keeps it.
pub fn for_each_child<'a>(expr: &'a IdedExpr, mut visit: impl FnMut(&'a IdedExpr)) {
    match &expr.expr {
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                visit(target);
            }
            call.args.iter().for_each(visit);
        }
        Expr::Comprehension(c) => {
            for child in [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                visit(child);
            }
        }
        Expr::List(list) => list.elements.iter().for_each(visit),
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(entry) = &entry.expr {
                    visit(&entry.key);
                    visit(&entry.value);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::StructField(field) => visit(&field.value),
                    EntryExpr::MapEntry(entry) => {
                        visit(&entry.key);
                        visit(&entry.value);
                    }
                }
            }
        }
        Expr::Select(select) => visit(&select.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// The first node (depth first, root at depth 1) that lies deeper than `max`, if any. Iterative, so that
/// a hostile tree cannot exhaust the stack here; recursive walks only run on trees that passed.
pub fn first_deeper_than(root: &IdedExpr, max: usize) -> Option<&IdedExpr> {
    let mut stack = vec![(root, 1usize)];
    while let Some((expr, depth)) = stack.pop() {
        if depth > max {
            return Some(expr);
        }
        for_each_child(expr, |child| stack.push((child, depth + 1)));
    }
    None
}

/// The ids of every node of the tree, iteratively (their count is the tree's size).
pub fn node_ids(root: &IdedExpr) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut stack = vec![root];
    while let Some(expr) = stack.pop() {
        ids.push(expr.id);
        for_each_child(expr, |child| stack.push(child));
    }
    ids
}

/// The number of nodes of the tree, and the source offsets of those that have one (`offset_of` gives it),
/// sorted.
pub(crate) fn node_offsets(root: &IdedExpr, offset_of: impl Fn(u64) -> Option<usize>) -> (usize, Vec<usize>) {
    let ids = node_ids(root);
    let mut offsets: Vec<usize> = ids.iter().filter_map(|&id| offset_of(id)).collect();
    offsets.sort_unstable();
    (ids.len(), offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_counts_brackets_and_conditionals() {
        assert_eq!(nesting_exceeds("((1))", 2), None);
        assert_eq!(nesting_exceeds("((1))", 1), Some(1));
        assert_eq!(nesting_exceeds("f([{'a': 1}])", 2), Some(3));
        // conditionals chain to the right: each one nests the next
        assert_eq!(nesting_exceeds("a ? b : c ? d : e", 2), None);
        assert_eq!(nesting_exceeds("a ? b : c ? d : e ? f : g", 2), Some(18));
        // ... until the bracket they are in closes
        assert_eq!(nesting_exceeds("(a ? b : c) && (a ? b : c)", 2), None);
        assert_eq!(nesting_exceeds("(a ? (b ? c : d) : e)", 3), Some(8));
        // unbalanced closers do not go below the top level
        assert_eq!(nesting_exceeds(")))(((", 2), Some(5));
    }

    #[test]
    fn nesting_skips_strings_and_comments() {
        assert_eq!(nesting_exceeds(r#"x == "((((" && y == '[[[['"#, 1), None);
        assert_eq!(nesting_exceeds(r#"x == "\"((((""#, 1), None);
        assert_eq!(nesting_exceeds("x == '''(((\n((''' // ((((\n", 1), None);
        assert_eq!(nesting_exceeds(r#"x == """(("" ((""""#, 1), None);
        // a raw string ends at its quote even after a backslash
        assert_eq!(nesting_exceeds(r#"r"\" + ((1))"#, 1), Some(8));
        assert_eq!(nesting_exceeds(r#"br"\" + ((1))"#, 1), Some(9));
        // `var"x"` is an identifier then a quoted string, not a raw string
        assert_eq!(nesting_exceeds(r#"var"\"((" + 1"#, 1), None);
        assert_eq!(nesting_exceeds("\"unterminated ((\n((1))", 1), Some(18));
        assert_eq!(nesting_exceeds("'", 1), None);
        assert_eq!(nesting_exceeds("\"\\", 1), None);
    }
}
