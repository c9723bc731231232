//! Just enough CSV (RFC 4180) for the CSV target: writing records, reading back the file it wrote, and
//! replacing some of its records.
//!
//! A field is quoted when it contains a comma, a quote, a line break, or starts or ends with a space;
//! quotes inside are doubled. Records end with `\n`; `\r\n` is accepted when reading.

use std::collections::HashMap;

/// One record read back, with the byte offset just past its line end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) fields: Vec<String>,
    pub(crate) end: usize,
}

/// `fields` as one CSV record, line end included.
pub(crate) fn record<'a>(fields: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = fields.into_iter().map(field).collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}

fn field(text: &str) -> String {
    let needs_quotes = text.contains([',', '"', '\n', '\r']) || text.starts_with(' ') || text.ends_with(' ');
    if needs_quotes {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// `text` with the records of the given 1-based numbers replaced by the given lines (each a whole
/// record, line end included), the others kept byte for byte. `None` when a number is not a record of
/// `text`.
pub(crate) fn replace_records(text: &str, replacements: &HashMap<u64, String>) -> Option<String> {
    let records = parse(text);
    if replacements
        .keys()
        .any(|&number| number == 0 || number > records.len() as u64)
    {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut start = 0;
    for (number, record) in (1..).zip(&records) {
        match replacements.get(&number) {
            Some(line) => out.push_str(line),
            None => out.push_str(&text[start..record.end]),
        }
        start = record.end;
    }
    Some(out)
}

/// Every record of `text`. Lenient: a quote in the middle of an unquoted field is taken literally, and
/// an unterminated quoted field runs to the end of the text.
pub(crate) fn parse(text: &str) -> Vec<Record> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut at_field_start = true;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if in_quotes {
            if c == '"' {
                if let Some((_, '"')) = chars.peek() {
                    current.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                current.push(c);
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                at_field_start = false;
            }
            ',' => {
                fields.push(std::mem::take(&mut current));
                at_field_start = true;
            }
            '\r' if matches!(chars.peek(), Some((_, '\n'))) => {}
            '\n' => {
                fields.push(std::mem::take(&mut current));
                records.push(Record {
                    fields: std::mem::take(&mut fields),
                    end: i + 1,
                });
                at_field_start = true;
            }
            _ => {
                current.push(c);
                at_field_start = false;
            }
        }
    }
    if !current.is_empty() || !fields.is_empty() || in_quotes {
        fields.push(current);
        records.push(Record {
            fields,
            end: text.len(),
        });
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips() {
        let fields = [
            "plain",
            "a,b",
            "say \"hi\"",
            "two\nlines",
            " padded",
            "",
            "Mambo poa, maji iko fiti",
        ];
        let line = record(fields);
        assert_eq!(
            line,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\" padded\",,\"Mambo poa, maji iko fiti\"\n"
        );
        let parsed = parse(&format!("{line}x,y\r\n"));
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].fields, fields);
        assert_eq!(parsed[0].end, line.len());
        assert_eq!(parsed[1].fields, ["x", "y"]);
    }

    #[test]
    fn records_are_replaced_in_place() {
        let text = "id,name\nr-1,\"two\nlines\"\nr-2,b\n";
        let replaced = replace_records(text, &HashMap::from([(2, record(["r-1", "one"]))]));
        assert_eq!(replaced.as_deref(), Some("id,name\nr-1,one\nr-2,b\n"));
        let both = HashMap::from([(3, record(["r-2", "c"])), (1, record(["id", "Name"]))]);
        assert_eq!(
            replace_records(text, &both).as_deref(),
            Some("id,Name\nr-1,\"two\nlines\"\nr-2,c\n")
        );
        assert_eq!(replace_records(text, &HashMap::from([(4, record(["x"]))])), None);
        assert_eq!(replace_records(text, &HashMap::from([(0, record(["x"]))])), None);
    }

    #[test]
    fn a_last_record_without_line_end_counts() {
        let parsed = parse("a,b\nc");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].fields, ["c"]);
        assert!(parse("").is_empty());
    }
}
