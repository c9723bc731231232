//! Compiling a filter: the checks of [`crate::bounds`] and of this module, in the order a source meets
//! them, then the immutable [`Filter`].
//!
//! ```text
//!   source ─► size, nesting scan ─► parse (compile thread) ─► depth ─► names, functions, data paths ─► nodes
//!                                                                                                       │
//!                                                           Filter { source, tree, data paths, extensions }
//! ```

use std::fmt;

use cel::IdedExpr;
use cel::common::ast::{CallExpr, Expr, LiteralValue, SelectExpr, SourceInfo, operators};
use cel::parser::Parser;
use switchyard_schemas::projection::{DataPath, Segment};

use crate::bounds::{
    MAX_DATA_PATHS, MAX_DEPTH, MAX_NESTING, MAX_NODES, MAX_SOURCE_BYTES, first_deeper_than, for_each_child,
    nesting_exceeds, node_offsets,
};
use crate::compile_thread;
use crate::error::{FilterError, Problem};

/// The variables a filter can read; any other identifier is refused.
pub const VARIABLES: [&str; 8] = [
    "id",
    "source",
    "type",
    "subject",
    "time",
    "teamid",
    "extensions",
    "data",
];

/// The functions a filter can call besides the operators: each costs at most time linear in its
/// arguments. `matches` is not among them: cel 0.15 compiles its regular expression on every call.
pub const FUNCTIONS: [&str; 11] = [
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "timestamp",
    "duration",
];

/// The operators a filter can use (cel's internal names): logic, comparison, arithmetic, `in`, indexing and
/// the conditional.
const OPERATORS: [&str; 18] = [
    operators::LOGICAL_AND,
    operators::LOGICAL_OR,
    operators::LOGICAL_NOT,
    operators::CONDITIONAL,
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::LESS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::GREATER_EQUALS,
    operators::IN,
    operators::ADD,
    operators::SUBSTRACT,
    operators::MULTIPLY,
    operators::DIVIDE,
    operators::MODULO,
    operators::NEGATE,
    operators::INDEX,
];

/// The macros that expand to comprehensions, should one be written with the wrong number of arguments
/// (and so stay a plain call).
const COMPREHENSION_MACROS: [&str; 6] = ["all", "exists", "exists_one", "existsOne", "map", "filter"];

/// Recursion limit handed to cel's parser, a backstop above [`MAX_NESTING`]: the parser counts one level per
/// bracket and per conditional, plus the root, as the nesting scan does, so a source the scan accepts never
/// reaches it. Measured stacks (see [`crate::compile_thread`]) are for this limit.
const PARSER_RECURSION_LIMIT: u16 = MAX_NESTING as u16 + 8;

/// A compiled filter: immutable, `Send + Sync`, cheap to share in an `Arc` (identical sources can share
/// one). See the crate docs for what it can read and what its evaluation costs.
#[derive(Clone)]
pub struct Filter {
    pub(crate) source: Box<str>,
    pub(crate) expr: IdedExpr,
    /// Distinct, in the order they first appear in the source.
    pub(crate) data_paths: Box<[DataPath]>,
    /// Extensions read by a literal name (`extensions.x`, `extensions["x"]`; not `has(extensions.x)`),
    /// distinct, in source order.
    pub(crate) extension_reads: Box<[Box<str>]>,
    /// Whether `extensions` appears at all.
    pub(crate) reads_extensions: bool,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("source", &self.source)
            .field("data_paths", &self.data_paths)
            .field("extension_reads", &self.extension_reads)
            .field("reads_extensions", &self.reads_extensions)
            .finish_non_exhaustive()
    }
}

impl Filter {
    /// Compiles `source`, refusing anything outside the bound with the position of the first problem.
    ///
    /// Parsing runs on the compile thread (see [`crate::compile_thread`]): this blocks for the compile,
    /// measured at 40-50 µs for a typical filter and about 200 µs for one of 63 nodes (on a loaded 2-core
    /// machine). Call it where that is fine: a control thread, or `spawn_blocking`.
    ///
    /// # Errors
    ///
    /// [`FilterError`], whose [`Problem`] says which rule the source breaks.
    pub fn compile(source: &str) -> Result<Filter, FilterError> {
        // Checked before the source is copied or handed to the parser: cheap refusals first.
        if source.len() > MAX_SOURCE_BYTES {
            return Err(FilterError::at(
                source,
                MAX_SOURCE_BYTES,
                Problem::TooLong,
                format!(
                    "the filter is {} bytes long, more than {MAX_SOURCE_BYTES}",
                    source.len()
                ),
            ));
        }
        if source.trim().is_empty() {
            return Err(FilterError::at(source, 0, Problem::Empty, "the filter is empty"));
        }
        if let Some(offset) = nesting_exceeds(source, MAX_NESTING) {
            return Err(FilterError::at(
                source,
                offset,
                Problem::TooNested,
                format!("brackets and conditionals nest deeper than {MAX_NESTING} levels here"),
            ));
        }
        let owned: Box<str> = source.into();
        compile_thread::run(move || compile_parsed(owned)).unwrap_or_else(|error| {
            Err(FilterError::at(
                source,
                0,
                Problem::Internal,
                format!("the filter could not be compiled: {error}"),
            ))
        })
    }

    /// The source the filter was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The distinct literal paths into `data` the filter reads (presence tests included), in the order they
    /// first appear; at most [`MAX_DATA_PATHS`]. Project the event's data on the union of the paths of the
    /// filters that will see it.
    pub fn data_paths(&self) -> &[DataPath] {
        &self.data_paths
    }

    /// Whether the filter reads `data` at all (if not, the event's value need not be read).
    pub fn reads_data(&self) -> bool {
        !self.data_paths.is_empty()
    }

    /// The extensions the filter reads by a literal name (`extensions.x`, `extensions["x"]`), distinct, in
    /// source order: the ones whose absence makes it [`Verdict::Missing`](crate::Verdict::Missing). Presence
    /// tests (`has(extensions.x)`, `"x" in extensions`) are not reads; whether the filter needs the
    /// extensions at all is [`Filter::reads_extensions`].
    pub fn extension_reads(&self) -> &[Box<str>] {
        &self.extension_reads
    }

    /// Whether the filter uses `extensions` in any way (reads, presence tests, `in`, `size`): if none of an
    /// event's filters does, its extension headers need not be collected.
    pub fn reads_extensions(&self) -> bool {
        self.reads_extensions
    }

    /// Approximate memory the filter holds: the struct and what it owns on the heap (source, expression
    /// tree, paths), without the allocator's own overhead.
    pub fn memory_bytes(&self) -> usize {
        let mut heap = self.source.len()
            + std::mem::size_of_val::<[DataPath]>(&self.data_paths)
            + self.data_paths.iter().map(DataPath::heap_bytes).sum::<usize>()
            + std::mem::size_of_val::<[Box<str>]>(&self.extension_reads)
            + self.extension_reads.iter().map(|e| e.len()).sum::<usize>();
        let mut stack = vec![&self.expr];
        while let Some(expr) = stack.pop() {
            heap += node_heap_bytes(expr);
            for_each_child(expr, |child| stack.push(child));
        }
        std::mem::size_of::<Self>() + heap
    }
}

/// What one node owns on the heap besides its children's own contents (a boxed child's inline size counts
/// here, at its parent).
fn node_heap_bytes(expr: &IdedExpr) -> usize {
    let node = std::mem::size_of::<IdedExpr>();
    match &expr.expr {
        Expr::Call(call) => {
            call.func_name.capacity() + call.target.as_ref().map_or(0, |_| node) + call.args.capacity() * node
        }
        Expr::Select(select) => node + select.field.capacity(),
        Expr::Ident(name) => name.capacity(),
        Expr::Literal(LiteralValue::String(s)) => s.inner().len(),
        Expr::Literal(LiteralValue::Bytes(b)) => b.inner().len(),
        Expr::Literal(_) | Expr::Unspecified => 0,
        Expr::List(list) => {
            list.elements.capacity() * node + list.optional_indices.capacity() * std::mem::size_of::<usize>()
        }
        Expr::Map(map) => map.entries.capacity() * std::mem::size_of::<cel::common::ast::IdedEntryExpr>(),
        Expr::Struct(s) => {
            s.type_name.capacity()
                + s.entries.capacity() * std::mem::size_of::<cel::common::ast::IdedEntryExpr>()
        }
        Expr::Comprehension(_) => std::mem::size_of::<cel::common::ast::ComprehensionExpr>(),
    }
}

/// Everything after the cheap source checks; runs on the compile thread, so that a tree too deep for a
/// small stack is built and dropped there.
fn compile_parsed(source: Box<str>) -> Result<Filter, FilterError> {
    let (expr, info) = Parser::new()
        .max_recursion_depth(PARSER_RECURSION_LIMIT)
        .parse_with_source_info(&source)
        .map_err(|errors| syntax_error(&source, errors))?;
    let offset_of = |id: u64| info.offset_for(id).map_or(0, |(start, _)| start as usize);

    if let Some(node) = first_deeper_than(&expr, MAX_DEPTH) {
        return Err(FilterError::at(
            &source,
            offset_of(node.id),
            Problem::TooDeep,
            format!("the expression nests deeper than {MAX_DEPTH} levels here (after macro expansion)"),
        ));
    }
    let mut checker = Checker {
        source: &source,
        info: &info,
        data_paths: Vec::new(),
        extension_reads: Vec::new(),
        reads_extensions: false,
    };
    checker.check(&expr)?;
    let Checker {
        data_paths,
        extension_reads,
        reads_extensions,
        ..
    } = checker;

    let (nodes, offsets) = node_offsets(&expr, |id| info.offset_for(id).map(|(start, _)| start as usize));
    if nodes > MAX_NODES {
        // Nodes cel made up (the balancing of `&&` chains) have no position: point at the first node past the
        // limit among those that do.
        let at = offsets.get(MAX_NODES).or(offsets.last()).copied().unwrap_or(0);
        return Err(FilterError::at(
            &source,
            at,
            Problem::TooManyNodes,
            format!("the expression has {nodes} nodes (after macro expansion), more than {MAX_NODES}"),
        ));
    }
    Ok(Filter {
        source,
        expr,
        data_paths: data_paths.into_iter().map(|(path, _)| path).collect(),
        extension_reads: extension_reads.into(),
        reads_extensions,
    })
}

/// The first of cel's parse errors, positioned.
fn syntax_error(source: &str, errors: cel::ParseErrors) -> FilterError {
    let Some(first) = errors.errors.first() else {
        return FilterError::at(source, 0, Problem::Syntax, "the filter does not parse");
    };
    if first.msg.starts_with("Recursion limit") {
        // cel puts the offending rule's byte range where a position would be.
        let offset = usize::try_from(first.pos.0).unwrap_or(0);
        return FilterError::at(
            source,
            offset,
            Problem::TooNested,
            format!("the expression nests deeper than {MAX_NESTING} levels"),
        );
    }
    let message = first.msg.strip_prefix("Syntax error: ").unwrap_or(&first.msg);
    FilterError::at_line_column(
        source,
        first.pos.0,
        first.pos.1,
        Problem::Syntax,
        format!("syntax error: {message}"),
    )
}

/// The names-and-calls walk. Recursive: only run on a tree [`first_deeper_than`] accepted.
struct Checker<'a> {
    source: &'a str,
    info: &'a SourceInfo,
    /// With the offset of the path's `data`, for the error when there are too many.
    data_paths: Vec<(DataPath, usize)>,
    extension_reads: Vec<Box<str>>,
    reads_extensions: bool,
}

impl Checker<'_> {
    fn offset(&self, expr: &IdedExpr) -> usize {
        self.info
            .offset_for(expr.id)
            .map_or(0, |(start, _)| start as usize)
    }

    fn error(&self, expr: &IdedExpr, problem: Problem, message: impl Into<String>) -> FilterError {
        FilterError::at(self.source, self.offset(expr), problem, message)
    }

    fn check(&mut self, expr: &IdedExpr) -> Result<(), FilterError> {
        if self.data_path(expr)? {
            return Ok(());
        }
        match &expr.expr {
            Expr::Literal(_) => Ok(()),
            Expr::Ident(name) if name == "data" => Err(self.error(
                expr,
                Problem::BareData,
                "`data` can only be read through a literal path such as `data.response.form_id` or \
                 `data.response.answers[\"q1\"]`",
            )),
            Expr::Ident(name) if VARIABLES.contains(&name.as_str()) => {
                self.reads_extensions |= name == "extensions";
                Ok(())
            }
            Expr::Ident(name) => Err(self.error(
                expr,
                Problem::UnknownVariable,
                format!(
                    "unknown variable `{name}`; a filter can read {}",
                    VARIABLES.join(", ")
                ),
            )),
            Expr::Select(select) => self.check_select(expr, select),
            Expr::Call(call) => self.check_call(expr, call),
            Expr::Comprehension(_) => Err(self.error(
                expr,
                Problem::Comprehension,
                "comprehensions (all, exists, exists_one, map, filter) are not allowed: a filter's \
                 evaluation must take a fixed number of steps",
            )),
            Expr::List(_) | Expr::Map(_) => {
                let mut children = Vec::new();
                for_each_child(expr, |child| children.push(child));
                children.into_iter().try_for_each(|child| self.check(child))
            }
            Expr::Struct(_) => Err(self.error(
                expr,
                Problem::Unsupported,
                "message construction is not supported in a filter",
            )),
            Expr::Unspecified => Err(self.error(expr, Problem::Syntax, "the expression is incomplete")),
        }
    }

    fn check_select(&mut self, expr: &IdedExpr, select: &SelectExpr) -> Result<(), FilterError> {
        match &select.operand.expr {
            Expr::Ident(root) if root == "extensions" => {
                self.reads_extensions = true;
                if !select.test {
                    self.read_extension(&select.field);
                }
                Ok(())
            }
            Expr::Ident(root) if VARIABLES.contains(&root.as_str()) => Err(self.error(
                expr,
                Problem::NotAMap,
                format!(
                    "`{root}` is a {} and has no fields",
                    if root == "time" { "timestamp" } else { "string" }
                ),
            )),
            _ => self.check(&select.operand),
        }
    }

    fn check_call(&mut self, expr: &IdedExpr, call: &CallExpr) -> Result<(), FilterError> {
        self.check_function(expr, call)?;
        if call.func_name == operators::INDEX
            && let [operand, key] = call.args.as_slice()
            && matches!(&operand.expr, Expr::Ident(root) if root == "extensions")
            && let Expr::Literal(LiteralValue::String(name)) = &key.expr
        {
            self.read_extension(name.inner());
        }
        if let Some(target) = &call.target {
            self.check(target)?;
        }
        call.args.iter().try_for_each(|arg| self.check(arg))
    }

    fn check_function(&self, expr: &IdedExpr, call: &CallExpr) -> Result<(), FilterError> {
        let name = call.func_name.as_str();
        let member = call.target.is_some();
        let arity = call.args.len();
        let allowed = match name {
            _ if OPERATORS.contains(&name) => !member,
            "size" => (!member && arity == 1) || (member && arity == 0),
            "contains" | "startsWith" | "endsWith" => member && arity == 1,
            "int" | "uint" | "double" | "string" | "bool" | "timestamp" | "duration" => !member && arity == 1,
            "matches" => {
                return Err(self.error(
                    expr,
                    Problem::FunctionNotAllowed,
                    "`matches` is not allowed: cel compiles its regular expression on every evaluation \
                     (about 15 µs); use startsWith, endsWith, contains or `in`",
                ));
            }
            _ if COMPREHENSION_MACROS.contains(&name) => {
                return Err(self.error(
                    expr,
                    Problem::Comprehension,
                    format!(
                        "`{name}` is not allowed: comprehensions (all, exists, exists_one, map, filter) \
                         would make a filter's evaluation grow with the event"
                    ),
                ));
            }
            _ => {
                return Err(self.error(
                    expr,
                    Problem::FunctionNotAllowed,
                    format!(
                        "the function `{name}` is not allowed; a filter can call {}",
                        FUNCTIONS.join(", ")
                    ),
                ));
            }
        };
        if allowed {
            Ok(())
        } else {
            let how = match name {
                "size" => "`size(x)` or `x.size()`",
                "contains" | "startsWith" | "endsWith" => "as a method with one argument, `s.contains(t)`",
                _ if OPERATORS.contains(&name) => "as an operator",
                _ => "as a function of one argument, `int(x)`",
            };
            Err(self.error(
                expr,
                Problem::FunctionNotAllowed,
                format!("`{name}` is called the wrong way: write it {how}"),
            ))
        }
    }

    /// If `expr` is a chain of field selections and literal indexes on `data`, records it as a data path
    /// (refusing a non-literal index in it) and returns `true`.
    fn data_path(&mut self, expr: &IdedExpr) -> Result<bool, FilterError> {
        let mut segments = Vec::new();
        let mut non_literal = None;
        let mut steps = 0;
        let mut node = expr;
        let root = loop {
            match &node.expr {
                // A presence test (`has(data.a.b)`) only ends a path.
                Expr::Select(select) if !select.test || std::ptr::eq(node, expr) => {
                    segments.push(Segment::key(select.field.as_str()));
                    steps += 1;
                    node = &select.operand;
                }
                Expr::Call(call)
                    if call.func_name == operators::INDEX
                        && call.target.is_none()
                        && call.args.len() == 2 =>
                {
                    let key = &call.args[1];
                    match literal_segment(key) {
                        Some(segment) => segments.push(segment),
                        None => non_literal = non_literal.or(Some(key)),
                    }
                    steps += 1;
                    node = &call.args[0];
                }
                Expr::Ident(name) if name == "data" && steps > 0 => break node,
                _ => return Ok(false),
            }
        };
        if let Some(key) = non_literal {
            return Err(self.error(
                key,
                Problem::NonLiteralDataIndex,
                "`data` can only be indexed by a string literal or a non-negative integer literal",
            ));
        }
        segments.reverse();
        let path = DataPath::new(segments);
        if !self.data_paths.iter().any(|(known, _)| *known == path) {
            if self.data_paths.len() == MAX_DATA_PATHS {
                return Err(self.error(
                    root,
                    Problem::TooManyDataPaths,
                    format!("the filter reads more than {MAX_DATA_PATHS} distinct paths of `data`; this is one more"),
                ));
            }
            let offset = self.offset(root);
            self.data_paths.push((path, offset));
        }
        Ok(true)
    }

    fn read_extension(&mut self, name: &str) {
        if !self.extension_reads.iter().any(|known| **known == *name) {
            self.extension_reads.push(name.into());
        }
    }
}

/// A literal index usable in a data path: a string (a key) or a non-negative integer (an array index).
fn literal_segment(key: &IdedExpr) -> Option<Segment> {
    match &key.expr {
        Expr::Literal(LiteralValue::String(s)) => Some(Segment::key(s.inner())),
        Expr::Literal(LiteralValue::Int(i)) => u64::try_from(*i.inner()).ok().map(Segment::Index),
        Expr::Literal(LiteralValue::UInt(u)) => Some(Segment::Index(*u.inner())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problem and the byte offset a source is refused with.
    fn refused(source: &str) -> (Problem, usize) {
        let error = Filter::compile(source).expect_err(source);
        (error.problem, error.offset)
    }

    fn paths(filter: &Filter) -> Vec<String> {
        filter.data_paths().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_typical_filter_compiles_and_lists_what_it_reads() {
        let filter = Filter::compile(
            r#"data.response.answers["q-city"].choice == "nairobi" && has(data.response.duration_ms)
               && data.items[0] == 1 && data.response.answers["q-city"].choice != ""
               && extensions.channel == "sms" && has(extensions.x) && extensions["a-b"] == "1"
               && "y" in extensions && type == "response.submitted" && subject.startsWith("form-")"#,
        )
        .unwrap();
        assert_eq!(
            paths(&filter),
            [
                r#"response.answers["q-city"].choice"#,
                "response.duration_ms",
                "items[0]"
            ]
        );
        assert!(filter.reads_data());
        let extensions: Vec<&str> = filter.extension_reads().iter().map(|e| &**e).collect();
        assert_eq!(extensions, ["channel", "a-b"]);
        assert!(filter.reads_extensions());
        for presence_only in ["has(extensions.x)", "'x' in extensions", "size(extensions) > 0"] {
            let filter = Filter::compile(presence_only).unwrap();
            assert!(
                filter.extension_reads().is_empty() && filter.reads_extensions(),
                "{presence_only}"
            );
        }
        let attributes_only =
            Filter::compile("type == 'form.created' && time > timestamp('2026-01-01T00:00:00Z')").unwrap();
        assert!(!attributes_only.reads_data() && !attributes_only.reads_extensions());
        assert_eq!(
            attributes_only.source(),
            "type == 'form.created' && time > timestamp('2026-01-01T00:00:00Z')"
        );
    }

    #[test]
    fn every_allowed_function_and_operator_compiles() {
        for source in [
            "size(type) > 1 && type.size() < 100 && size([1, 2]) == 2",
            "type.contains('x') || type.startsWith('a') || type.endsWith('z')",
            "int('1') + int(2.0) - 3 * 4 / 5 % 6 == -1 ? true : false",
            "uint(1) == 1u && double(1) == 1.0 && string(1) == '1' && bool('true')",
            "timestamp('2026-01-01T00:00:00Z') + duration('1h') < time",
            "!(type in ['a', 'b']) && {'k': 1}['k'] == 1 && [1, 2][0] <= 1 && 2 >= 1",
            "data.a.b != null",
        ] {
            assert!(
                Filter::compile(source).is_ok(),
                "{source}: {:?}",
                Filter::compile(source).err()
            );
        }
    }

    #[test]
    fn syntax_errors_are_positioned() {
        let error = Filter::compile("type ==").unwrap_err();
        assert_eq!(
            (error.problem, error.offset, error.line, error.column),
            (Problem::Syntax, 7, 1, 8)
        );
        assert!(error.message.starts_with("syntax error: "), "{}", error.message);
        // columns count characters, offsets bytes
        let error = Filter::compile("type == 'é' &&\n  'é' ==").unwrap_err();
        assert_eq!((error.offset, error.line, error.column), (25, 2, 9), "{error}");
        assert_eq!(refused("type == 'a' )"), (Problem::Syntax, 12));
        assert_eq!(refused("data.a.?b == 1"), (Problem::Syntax, 6));
    }

    #[test]
    fn unknown_variables_are_refused_where_they_are() {
        assert_eq!(refused("typo == 'x'"), (Problem::UnknownVariable, 0));
        assert_eq!(
            refused("type == 'a' && answers.x == 1"),
            (Problem::UnknownVariable, 15)
        );
        assert_eq!(refused("int == 1"), (Problem::UnknownVariable, 0));
        let error = Filter::compile("\n  foo").unwrap_err();
        assert_eq!((error.line, error.column), (2, 3));
        assert!(
            error
                .to_string()
                .contains("unknown variable `foo`; a filter can read id, source, type")
        );
    }

    #[test]
    fn functions_outside_the_allow_list_are_refused() {
        assert_eq!(
            refused("subject.matches('^form-')"),
            (Problem::FunctionNotAllowed, 15)
        );
        assert_eq!(
            refused("matches(subject, '^form-')"),
            (Problem::FunctionNotAllowed, 7)
        );
        assert!(
            Filter::compile("subject.matches('x')")
                .unwrap_err()
                .message
                .contains("every evaluation")
        );
        assert_eq!(
            refused("type.lowerAscii() == 'x'"),
            (Problem::FunctionNotAllowed, 15)
        );
        assert_eq!(refused("type(type) == string"), (Problem::FunctionNotAllowed, 4));
        // allowed names called the wrong way
        assert_eq!(refused("contains(type, 'x')"), (Problem::FunctionNotAllowed, 8));
        assert_eq!(refused("type.int()"), (Problem::FunctionNotAllowed, 8));
        assert_eq!(refused("size(type, type) == 1"), (Problem::FunctionNotAllowed, 4));
    }

    #[test]
    fn comprehensions_are_refused() {
        for (source, offset) in [
            ("data.response.answers.exists(k, k == 'q1')", 28),
            ("[1, 2].all(x, x > 0)", 10),
            ("[1, 2].exists_one(x, x > 0)", 17),
            ("[1, 2].map(x, x * 2) == [2, 4]", 10),
            ("size([1, 2].filter(x, x > 1)) == 1", 18),
            // the wrong number of arguments leaves a plain call
            ("[1].all(x) == true", 7),
        ] {
            assert_eq!(refused(source), (Problem::Comprehension, offset), "{source}");
        }
    }

    #[test]
    fn size_and_nesting_are_refused_before_parsing() {
        assert_eq!(refused(""), (Problem::Empty, 0));
        assert_eq!(refused(" \n "), (Problem::Empty, 0));
        let long = format!("type == '{}'", "x".repeat(MAX_SOURCE_BYTES));
        assert_eq!(refused(&long), (Problem::TooLong, MAX_SOURCE_BYTES));
        let nested = format!(
            "{}1{} == 1",
            "(".repeat(MAX_NESTING + 1),
            ")".repeat(MAX_NESTING + 1)
        );
        assert_eq!(refused(&nested), (Problem::TooNested, MAX_NESTING));
        let conditionals = format!("{}true", "true ? false : ".repeat(MAX_NESTING + 1));
        assert_eq!(refused(&conditionals).0, Problem::TooNested);
        // at the limit, the nesting is fine (this one is refused later, for its depth)
        let deepest = format!("{}1{} == 1", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(Filter::compile(&deepest).is_ok());
    }

    #[test]
    fn the_tree_is_bounded_in_depth_and_size() {
        // `+` chains to the left: 26 literals nest 26 deep
        let deep = format!("1{} > 0", " + 1".repeat(25));
        assert_eq!(refused(&deep).0, Problem::TooDeep);
        let deep_enough = format!("1{} > 0", " + 1".repeat(21));
        assert!(Filter::compile(&deep_enough).is_ok());
        // 10 conjuncts of 7 nodes: 79 nodes; the 65th (in source order) is in the 10th conjunct
        let conjunct = |i: usize| format!("data.response.answers['q{i:02}'] != null");
        let big = (0..10).map(conjunct).collect::<Vec<_>>().join(" && ");
        let (problem, offset) = refused(&big);
        assert_eq!(problem, Problem::TooManyNodes);
        assert!(offset > big.find("q07").unwrap(), "{offset}");
        // 8 conjuncts: 63 nodes
        let eight = (0..8).map(conjunct).collect::<Vec<_>>().join(" && ");
        assert!(Filter::compile(&eight).is_ok());
    }

    #[test]
    fn data_is_read_only_through_literal_paths() {
        assert_eq!(refused("data == null"), (Problem::BareData, 0));
        assert_eq!(refused("size(data) > 0"), (Problem::BareData, 5));
        assert_eq!(refused("'a' in data"), (Problem::BareData, 7));
        assert_eq!(
            refused("data.response.answers[type] == null"),
            (Problem::NonLiteralDataIndex, 22)
        );
        assert_eq!(refused("data[1 + 1] == null"), (Problem::NonLiteralDataIndex, 7));
        // cel positions a negative literal at its digits
        assert_eq!(
            refused("data.items[-1] == null"),
            (Problem::NonLiteralDataIndex, 12)
        );
        assert_eq!(
            refused("data.items[1.0] == null"),
            (Problem::NonLiteralDataIndex, 11)
        );
        // a literal index of another kind is a path (that a map or list will not have)
        assert!(Filter::compile("data[0] == null && data.items[2u] == 1").is_ok());
        // up to 16 distinct paths; a repeated path counts once
        let reads = |n: usize| {
            (0..n)
                .map(|i| format!("has(data.a{i})"))
                .chain(["has(data.a0)".to_owned()])
                .collect::<Vec<_>>()
                .join(" || ")
        };
        assert_eq!(
            Filter::compile(&reads(MAX_DATA_PATHS))
                .unwrap()
                .data_paths()
                .len(),
            16
        );
        let too_many = reads(MAX_DATA_PATHS + 1);
        assert_eq!(
            refused(&too_many),
            (Problem::TooManyDataPaths, too_many.find("data.a16").unwrap())
        );
    }

    #[test]
    fn attributes_other_than_extensions_have_no_fields() {
        assert_eq!(refused("type.x == 1"), (Problem::NotAMap, 4));
        assert_eq!(refused("has(subject.x)"), (Problem::NotAMap, 3));
        assert!(
            Filter::compile("time.x == 1")
                .unwrap_err()
                .message
                .contains("timestamp")
        );
        assert_eq!(refused("Foo{a: 1} == 1"), (Problem::Unsupported, 3));
    }

    #[test]
    fn hostile_sources_are_refused_without_exhausting_a_stack() {
        // The worst shapes that fit in the size limit, parsed on the compile thread; this test runs in a
        // debug build, where the parser's frames are largest.
        for source in [
            format!("data{}", ".b".repeat(510)),
            format!("1{}", "+1".repeat(511)),
            format!("1{}", "==1".repeat(340)),
            format!("data{}", "[0]".repeat(340)),
            format!("{}true", "!".repeat(1020)),
            format!("{}1 == 1", "-".repeat(1010)),
            format!("type{}", ".size()".repeat(145)),
            format!("{}1{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING)),
            format!("{}1{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING)),
            format!("{}1{}", "size(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING)),
            format!("{}1", "true ? 1 : ".repeat(MAX_NESTING - 1)),
            format!("{}1{}", "(".repeat(500), ")".repeat(500)),
        ] {
            assert!(source.len() <= MAX_SOURCE_BYTES, "{}", source.len());
            let _ = Filter::compile(&source);
        }
    }

    #[test]
    fn filters_are_send_sync_and_small() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Filter>();
        shareable::<FilterError>();
        let typical = Filter::compile(
            r#"data.response.answers["q02"].choice == "option-b" && type == "response.submitted""#,
        )
        .unwrap();
        let bytes = typical.memory_bytes();
        assert!((500..2000).contains(&bytes), "{bytes}");
    }
}
