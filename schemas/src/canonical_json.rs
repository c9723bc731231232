//! The JSON Canonicalization Scheme (RFC 8785): one byte sequence for one JSON value, whatever the
//! whitespace, member order and number spelling it was written with. Publisher signatures of plugin
//! manifests ([`crate::publisher`]) sign this form, so any language with a JCS library can sign and check
//! them.
//!
//! The rules, as RFC 8785 states them: no whitespace; object members sorted by their names' UTF-16 code
//! units; strings with only `"`, `\` and the control characters below U+0020 escaped (`\b \t \n \f \r`,
//! else `\u00xx` in lowercase hex), everything else as UTF-8; numbers as ECMAScript's
//! `Number.prototype.toString` writes the IEEE 754 double (`4.50` is `4.5`, `1e30` is `1e+30`, `-0` is
//! `0`).

use std::fmt::Write as _;

use serde_json::Value;

/// The canonical form of `value`.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = String::new();
    write_value(&mut out, value);
    out.into_bytes()
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (index, (name, member)) in sorted.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(out, name);
                out.push(':');
                write_value(out, member);
            }
            out.push('}');
        }
    }
}

/// Every JSON number is read as a double, as ECMAScript reads it; `serde_json` never holds a non-finite
/// one.
fn write_number(out: &mut String, number: &serde_json::Number) {
    let double = number.as_f64().unwrap_or_default();
    if double == 0.0 {
        out.push('0'); // also -0, which ECMAScript writes as 0
        return;
    }
    out.push_str(ryu_js::Buffer::new().format_finite(double));
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canonical(text: &str) -> String {
        String::from_utf8(to_vec(&serde_json::from_str(text).unwrap())).unwrap()
    }

    #[test]
    fn numbers_are_written_as_ecmascript_writes_doubles() {
        // RFC 8785, appendix B, and section 3.2.2.3's example.
        let cases = [
            ("0", "0"),
            ("-0", "0"),
            ("4.50", "4.5"),
            ("2e-3", "0.002"),
            ("1e30", "1e+30"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
            ("333333333.33333329", "333333333.3333333"),
            ("-1.5", "-1.5"),
            ("9007199254740993", "9007199254740992"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ];
        for (input, expected) in cases {
            assert_eq!(canonical(input), expected, "{input}");
        }
    }

    #[test]
    fn members_are_sorted_by_utf16_code_units_and_strings_minimally_escaped() {
        // RFC 8785 section 3.2.3's sorting example: U+1F600 (a surrogate pair, 0xD83D...) sorts before
        // U+FB33 although its UTF-8 bytes sort after.
        let value = json!({"\u{20ac}": "Euro Sign", "\r": "Carriage Return", "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
                           "1": "One", "\u{1f600}": "Emoji: Grinning Face", "\u{80}": "Control", "\u{f6}": "Latin Small Letter O With Diaeresis"});
        let text = String::from_utf8(to_vec(&value)).unwrap();
        let names: Vec<&str> = [
            "\\r",
            "1",
            "\u{80}",
            "\u{f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ]
        .to_vec();
        let mut position = 0;
        for name in names {
            let found = text[position..]
                .find(&format!("\"{name}\":"))
                .map(|p| p + position);
            position = found.unwrap_or_else(|| panic!("{name:?} out of order in {text}"));
        }
        assert_eq!(
            canonical(r#"{"b": [1, "a\u0001/\u2028", true, null], "a": {"y": 1, "x": "\""}}"#),
            "{\"a\":{\"x\":\"\\\"\",\"y\":1},\"b\":[1,\"a\\u0001/\u{2028}\",true,null]}"
        );
    }

    #[test]
    fn whitespace_and_member_order_do_not_change_the_form() {
        let a = canonical("{\n  \"id\": \"x\", \"version\": \"1.0.0\", \"n\": 1.0\n}");
        let b = canonical(r#"{"version":"1.0.0","n":1,"id":"x"}"#);
        assert_eq!(a, b);
        assert_eq!(a, r#"{"id":"x","n":1,"version":"1.0.0"}"#);
    }
}
