//! A1 notation: `'Sheet name'!A1:H5`, `'Responses'!1:1`, `Sheet1!A:C`.
//!
//! A sheet title is quoted with single quotes, a quote inside it doubled (`'It''s'`). Columns are
//! letters (`A` = 1, `Z` = 26, `AA` = 27), rows are numbers from 1; either part of a corner may be
//! left out to mean "unbounded" (`1:1` is the whole first row, `A:C` three whole columns).

/// `title` quoted for A1 notation: `Responses` → `'Responses'`, `It's` → `'It''s'`.
pub fn quote_sheet_title(title: &str) -> String {
    format!("'{}'", title.replace('\'', "''"))
}

/// The letters of the 1-based column `index`: 1 → `A`, 26 → `Z`, 27 → `AA`; 0 gives `A`.
pub fn column_letters(index: usize) -> String {
    let mut n = index.max(1);
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        // `rem` < 26, so the sum stays within ASCII upper-case letters.
        letters.push(char::from(b'A' + rem as u8));
        n = (n - 1) / 26;
    }
    letters.iter().rev().collect()
}

/// The first row number of a range such as `'Responses'!A5:H5` (→ 5), if it has one.
pub fn first_row(range: &str) -> Option<u64> {
    let (_, cells) = split_sheet(range)?;
    parse_area(cells?)?.start_row.map(|row| row as u64)
}

/// The range of each row of a block written in one call, from the block's range: `'R'!A5:K7` and 3 rows →
/// `('R'!A5:K5, 5)`, `('R'!A6:K6, 6)`, `('R'!A7:K7, 7)`. `None` when the range does not name exactly
/// `rows` rows.
pub fn row_ranges(range: &str, rows: usize) -> Option<Vec<(String, u64)>> {
    let (_, cells) = split_sheet(range)?;
    let cells = cells?;
    let area = parse_area(cells)?;
    let first = area.start_row?;
    let last = area.end_row?;
    if last < first || last - first + 1 != rows {
        return None;
    }
    let sheet = &range[..range.len() - cells.len()];
    let columns = (
        area.start_col.map(column_letters),
        area.end_col.map(column_letters),
    );
    Some(
        (first..=last)
            .map(|row| {
                let cells = match &columns {
                    (Some(start), Some(end)) if start == end => format!("{start}{row}"),
                    (Some(start), Some(end)) => format!("{start}{row}:{end}{row}"),
                    _ => format!("{row}:{row}"),
                };
                (format!("{sheet}{cells}"), row as u64)
            })
            .collect(),
    )
}

/// A rectangle of cells; each bound is 1-based and `None` means unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Area {
    pub(crate) start_row: Option<usize>,
    pub(crate) start_col: Option<usize>,
    pub(crate) end_row: Option<usize>,
    pub(crate) end_col: Option<usize>,
}

/// A range split into its sheet part and its cells part, before deciding what a bare word means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SheetPart {
    /// A quoted title, or an unquoted one followed by `!`.
    Title(String),
    /// An unquoted word without `!`: a sheet title or a cell reference, depending on the spreadsheet.
    Bare(String),
}

/// Splits `range` into its sheet part and the cells after `!` (if any). `None` if a quoted title is
/// not closed or is followed by something other than `!`.
pub(crate) fn split_sheet(range: &str) -> Option<(SheetPart, Option<&str>)> {
    if let Some(rest) = range.strip_prefix('\'') {
        let mut title = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '\'' {
                title.push(c);
                continue;
            }
            if let Some((_, '\'')) = chars.peek() {
                title.push('\'');
                chars.next();
                continue;
            }
            let after = &rest[i + 1..];
            return match after.strip_prefix('!') {
                Some(cells) => Some((SheetPart::Title(title), Some(cells))),
                None if after.is_empty() => Some((SheetPart::Title(title), None)),
                None => None,
            };
        }
        return None;
    }
    match range.split_once('!') {
        Some((title, cells)) => Some((SheetPart::Title(title.to_owned()), Some(cells))),
        None => Some((SheetPart::Bare(range.to_owned()), None)),
    }
}

/// Parses the cells part: `A1`, `A1:H5`, `1:1`, `A:C`, `A5:H`.
pub(crate) fn parse_area(cells: &str) -> Option<Area> {
    let (start, end) = match cells.split_once(':') {
        Some((start, end)) => (parse_corner(start)?, parse_corner(end)?),
        None => {
            let corner = parse_corner(cells)?;
            (corner, corner)
        }
    };
    Some(Area {
        start_row: start.1,
        start_col: start.0,
        end_row: end.1,
        end_col: end.0,
    })
}

/// `(column, row)` of `AB12`, `AB` or `12`.
fn parse_corner(corner: &str) -> Option<(Option<usize>, Option<usize>)> {
    let split = corner
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(corner.len());
    let (letters, digits) = corner.split_at(split);
    if letters.is_empty() && digits.is_empty() {
        return None;
    }
    let column = if letters.is_empty() {
        None
    } else {
        let mut n: usize = 0;
        for c in letters.chars() {
            let value = usize::from(c.to_ascii_uppercase() as u8 - b'A') + 1;
            n = n.checked_mul(26)?.checked_add(value)?;
        }
        Some(n)
    };
    let row = if digits.is_empty() {
        None
    } else {
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let row: usize = digits.parse().ok()?;
        if row == 0 {
            return None;
        }
        Some(row)
    };
    Some((column, row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_columns() {
        assert_eq!(quote_sheet_title("Responses"), "'Responses'");
        assert_eq!(quote_sheet_title("It's"), "'It''s'");
        assert_eq!(column_letters(1), "A");
        assert_eq!(column_letters(26), "Z");
        assert_eq!(column_letters(27), "AA");
        assert_eq!(column_letters(702), "ZZ");
        assert_eq!(column_letters(703), "AAA");
    }

    #[test]
    fn ranges() {
        assert_eq!(first_row("'Responses'!A5:H5"), Some(5));
        assert_eq!(first_row("'It''s here'!B12"), Some(12));
        assert_eq!(first_row("Sheet1!A:C"), None);
        assert_eq!(
            split_sheet("'a!b'!1:1"),
            Some((SheetPart::Title("a!b".into()), Some("1:1")))
        );
        assert_eq!(
            split_sheet("Sheet1"),
            Some((SheetPart::Bare("Sheet1".into()), None))
        );
        assert_eq!(split_sheet("'open"), None);
        assert_eq!(
            parse_area("1:1"),
            Some(Area {
                start_row: Some(1),
                start_col: None,
                end_row: Some(1),
                end_col: None
            })
        );
        assert_eq!(
            parse_area("aa3:ab"),
            Some(Area {
                start_row: Some(3),
                start_col: Some(27),
                end_row: None,
                end_col: Some(28)
            })
        );
        assert_eq!(
            row_ranges("'It''s'!B5:K6", 2),
            Some(vec![
                ("'It''s'!B5:K5".to_owned(), 5),
                ("'It''s'!B6:K6".to_owned(), 6)
            ])
        );
        assert_eq!(row_ranges("'R'!A7", 1), Some(vec![("'R'!A7".to_owned(), 7)]));
        assert_eq!(row_ranges("'R'!A5:K6", 3), None);
        assert_eq!(row_ranges("'R'!A:K", 1), None);
        assert_eq!(parse_area("A0"), None);
        assert_eq!(parse_area("A1B"), None);
        assert_eq!(parse_area(""), None);
    }
}
