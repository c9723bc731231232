//! Why a filter does not compile, and where in its source.

use thiserror::Error;

/// What is wrong with a filter. Stable names for tests and for an API's error codes; the sentence is in
/// [`FilterError::message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Problem {
    /// The source is empty or only whitespace.
    Empty,
    /// The source is longer than [`MAX_SOURCE_BYTES`](crate::MAX_SOURCE_BYTES).
    TooLong,
    /// Brackets and conditionals nest deeper than [`MAX_NESTING`](crate::MAX_NESTING).
    TooNested,
    /// The source is not a CEL expression.
    Syntax,
    /// The expression tree is deeper than [`MAX_DEPTH`](crate::MAX_DEPTH).
    TooDeep,
    /// The expression has more than [`MAX_NODES`](crate::MAX_NODES) nodes.
    TooManyNodes,
    /// A comprehension (`all`, `exists`, `exists_one`, `map`, `filter`).
    Comprehension,
    /// An identifier that is not one of the filter's variables.
    UnknownVariable,
    /// A function or operator outside the allow-list, or called the wrong way.
    FunctionNotAllowed,
    /// `data` used other than as the root of a literal path.
    BareData,
    /// `data` indexed by something other than a string literal or a non-negative integer literal.
    NonLiteralDataIndex,
    /// More than [`MAX_DATA_PATHS`](crate::MAX_DATA_PATHS) distinct data paths.
    TooManyDataPaths,
    /// A field selected on a variable that has no fields (`type.x`).
    NotAMap,
    /// Syntax CEL has but filters do not use (message construction).
    Unsupported,
    /// The compiler itself failed (its thread could not start, or it panicked): not the source's fault.
    Internal,
}

/// A filter that does not compile: where (a byte offset into the source, and the line and column it is
/// on) and why.
///
/// Lines and columns count from 1; a column counts characters (Unicode scalar values), as CEL's own
/// messages do, while `offset` counts bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the filter is invalid at line {line}, column {column} (byte {offset}): {message}")]
pub struct FilterError {
    /// Byte offset into the source of the first character at fault.
    pub offset: usize,
    /// Line of `offset`, from 1.
    pub line: usize,
    /// Column of `offset` on its line, in characters, from 1.
    pub column: usize,
    /// What is wrong.
    pub problem: Problem,
    /// What is wrong, as a sentence fragment starting in lower case (no position in it).
    pub message: String,
}

impl FilterError {
    /// An error at byte `offset` of `source` (clamped into the source, and back to a character boundary).
    pub(crate) fn at(source: &str, offset: usize, problem: Problem, message: impl Into<String>) -> Self {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &source[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            offset,
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            problem,
            message: message.into(),
        }
    }

    /// An error at a CEL parser position: a line from 1 and a column in characters from 1, as ANTLR counts
    /// them (lines end at `\n`). A position outside the source is clamped to its end.
    pub(crate) fn at_line_column(
        source: &str,
        line: isize,
        column: isize,
        problem: Problem,
        message: impl Into<String>,
    ) -> Self {
        let line = usize::try_from(line).unwrap_or(0).max(1);
        let column = usize::try_from(column).unwrap_or(0).max(1);
        let line_start = source
            .split_inclusive('\n')
            .take(line - 1)
            .map(str::len)
            .sum::<usize>();
        let offset = source[line_start..]
            .char_indices()
            .nth(column - 1)
            .map_or(source.len(), |(i, _)| line_start + i);
        Self::at(source, offset, problem, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_bytes_for_offsets_and_characters_for_columns() {
        let source = "a &&\n  \"é\" == x";
        let error = FilterError::at(source, 12, Problem::Syntax, "m");
        assert_eq!((error.offset, error.line, error.column), (12, 2, 7));
        // the `x`: line 2, column 10 (é is one character, two bytes)
        let error = FilterError::at_line_column(source, 2, 10, Problem::Syntax, "m");
        assert_eq!((error.offset, error.line, error.column), (15, 2, 10));
        assert_eq!(&source[error.offset..], "x");
        // inside a character: back to its start; past the end: the end
        assert_eq!(FilterError::at(source, 9, Problem::Syntax, "m").offset, 8);
        assert_eq!(
            FilterError::at(source, 99, Problem::Syntax, "m").offset,
            source.len()
        );
        assert_eq!(
            FilterError::at_line_column(source, 7, 7, Problem::Syntax, "m").offset,
            source.len()
        );
        assert_eq!(
            FilterError::at_line_column(source, 0, 0, Problem::Syntax, "m").offset,
            0
        );
        assert_eq!(
            FilterError::at(source, 5, Problem::Syntax, "no such thing").to_string(),
            "the filter is invalid at line 2, column 1 (byte 5): no such thing"
        );
    }
}
