//! A config form from a plugin's `config_schema`, and the config a submitted form asks for: pure, no I/O.
//!
//! Each top-level property becomes one field: a string a text input (a `select` when it has an `enum`),
//! `writeOnly` strings a password input that is never filled (the page shows whether the secret is set;
//! left empty it keeps the stored value, "clear" removes it), integers and numbers a number input, booleans
//! a checkbox, arrays of strings a text area of one item per line, anything else (nested objects, arrays of
//! objects) a JSON text area. What the form cannot check (patterns, lengths, ranges) the registry's own
//! validation reports: its 422 pointers land on the field they name ([`FieldErrors`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// How a field is edited.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A single-line string.
    Text,
    /// A string from a list.
    Choice(Vec<String>),
    /// A secret: written, never shown.
    Secret,
    /// A whole number.
    Integer,
    /// A number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// Strings, one per line.
    Lines,
    /// Any JSON value, as text.
    Json,
}

/// One field of the form.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The property's name (also the input's name).
    pub name: String,
    /// The property's `title`, else its name.
    pub label: String,
    /// Its `description`.
    pub description: Option<String>,
    /// Whether the schema requires it.
    pub required: bool,
    /// How it is edited.
    pub kind: Kind,
    /// The value to show: the stored (or just submitted) one; always empty for a secret.
    pub value: String,
    /// The schema's `default`, shown as a hint.
    pub default: Option<String>,
    /// For a secret: whether one is stored.
    pub secret_set: bool,
}

/// The fields of `schema` (an object schema; anything else gives one JSON field for the whole config),
/// filled from the stored `config` and the names of the secrets that are set.
pub fn fields(schema: &Value, config: &Value, secrets_set: &[String]) -> Vec<Field> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut fields: Vec<Field> = properties
        .iter()
        .map(|(name, property)| {
            let kind = kind(property);
            let stored = config.get(name);
            Field {
                name: name.clone(),
                label: property
                    .get("title")
                    .and_then(Value::as_str)
                    .map_or_else(|| humane(name), str::to_owned),
                description: property
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                required: required.contains(&name.as_str()),
                value: match (&kind, stored) {
                    (Kind::Secret, _) | (_, None | Some(Value::Null)) => String::new(),
                    (kind, Some(value)) => show(kind, value),
                },
                default: property.get("default").map(|d| show(&kind, d)),
                secret_set: kind == Kind::Secret && secrets_set.iter().any(|s| s == name),
                kind,
            }
        })
        .collect();
    // Required fields first, each group in the schema's (alphabetical) order.
    fields.sort_by_key(|field| !field.required);
    fields
}

/// A property name as a label: `spreadsheet_id` becomes `Spreadsheet id`.
fn humane(name: &str) -> String {
    let spaced = name.replace(['_', '-'], " ");
    let mut chars = spaced.chars();
    chars
        .next()
        .map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

fn kind(property: &Value) -> Kind {
    let types: Vec<&str> = match property.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => Vec::new(),
    };
    let choices: Option<Vec<String>> = property.get("enum").and_then(Value::as_array).and_then(|e| {
        e.iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
    });
    match types.as_slice() {
        ["string"] if property.get("writeOnly") == Some(&Value::Bool(true)) => Kind::Secret,
        ["string"] => choices.map_or(Kind::Text, Kind::Choice),
        ["integer"] => Kind::Integer,
        ["number"] => Kind::Number,
        ["boolean"] => Kind::Boolean,
        ["array"] if property.pointer("/items/type") == Some(&Value::from("string")) => Kind::Lines,
        _ => Kind::Json,
    }
}

/// A stored value as its field shows it.
fn show(kind: &Kind, value: &Value) -> String {
    match (kind, value) {
        (Kind::Lines, Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n"),
        (Kind::Json, value) => serde_json::to_string_pretty(value).unwrap_or_default(),
        (_, Value::String(s)) => s.clone(),
        (_, value) => value.to_string(),
    }
}

/// Puts what was submitted back into the fields, so that a refused form keeps what was typed; secrets
/// excepted, which are never sent back to a page.
pub fn refill(fields: &mut [Field], submitted: &[(String, String)]) {
    for field in fields {
        let value = submitted
            .iter()
            .find(|(key, _)| *key == field.name)
            .map(|(_, v)| v.as_str());
        match field.kind {
            Kind::Secret => {}
            Kind::Boolean => field.value = value.is_some().to_string(),
            _ => field.value = value.unwrap_or_default().to_owned(),
        }
    }
}

/// Messages by field name; `""` holds those of no one field.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// The config a submitted form asks for, or the errors of the fields that do not parse (a number that is
/// not one, JSON that is not JSON). `submitted` is the form's name-value pairs: an empty field is left
/// out of the config, a checkbox is `true` when present, a secret left empty keeps the stored one (left
/// out; the registry keeps it) and `<name>.clear` sets it to `null` (the registry removes it).
pub fn config(fields: &[Field], submitted: &[(String, String)]) -> Result<Value, FieldErrors> {
    let get = |name: &str| {
        submitted
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let mut config = Map::new();
    let mut errors = FieldErrors::new();
    for field in fields {
        let raw = get(&field.name).unwrap_or_default();
        let text = raw.trim();
        let value = match &field.kind {
            Kind::Boolean => Some(Ok(Value::Bool(get(&field.name).is_some()))),
            Kind::Secret if get(&format!("{}.clear", field.name)).is_some() => Some(Ok(Value::Null)),
            Kind::Secret if raw.is_empty() => None,
            Kind::Secret => Some(Ok(Value::String(raw.to_owned()))),
            _ if text.is_empty() => None,
            Kind::Text | Kind::Choice(_) => Some(Ok(Value::String(raw.to_owned()))),
            Kind::Integer => Some(
                text.parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| "enter a whole number".to_owned()),
            ),
            Kind::Number => Some(
                text.parse::<f64>()
                    .ok()
                    .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                    .ok_or_else(|| "enter a number".to_owned()),
            ),
            Kind::Lines => Some(Ok(Value::Array(
                raw.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .map(Value::from)
                    .collect(),
            ))),
            Kind::Json => Some(serde_json::from_str(text).map_err(|e| format!("this is not JSON: {e}"))),
        };
        match value {
            Some(Ok(value)) => {
                config.insert(field.name.clone(), value);
            }
            Some(Err(message)) => errors.entry(field.name.clone()).or_default().push(message),
            None => {}
        }
    }
    if errors.is_empty() {
        Ok(Value::Object(config))
    } else {
        Err(errors)
    }
}

/// The registry's 422 errors (`[{pointer, detail}]`) by the field they point into: `/a/0/b` is field
/// `a`'s; a pointer to the whole body, or to a property the form has no field for, is the form's.
pub fn field_errors(problem: &Value, fields: &[&str]) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for error in problem
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let pointer = error.get("pointer").and_then(Value::as_str).unwrap_or_default();
        let detail = error.get("detail").and_then(Value::as_str).unwrap_or_default();
        let name = pointer
            .strip_prefix('/')
            .map(|rest| rest.split('/').next().unwrap_or_default())
            .map(|token| token.replace("~1", "/").replace("~0", "~"))
            .filter(|name| fields.contains(&name.as_str()))
            .unwrap_or_default();
        errors.entry(name).or_default().push(detail.to_owned());
    }
    errors
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["spreadsheet_id"],
            "properties": {
                "spreadsheet_id": {"type": "string", "title": "Spreadsheet", "description": "The id."},
                "mode": {"type": "string", "enum": ["append", "replace"], "default": "append"},
                "key": {"type": "string", "writeOnly": true},
                "rows": {"type": "integer"},
                "ratio": {"type": ["number", "null"]},
                "dry": {"type": "boolean"},
                "cities": {"type": "array", "items": {"type": "string"}},
                "terms": {"type": "object"}
            }
        })
    }

    #[test]
    fn each_property_becomes_a_field_of_its_kind_filled_from_the_stored_config() {
        let stored = json!({"spreadsheet_id": "abc", "rows": 3, "cities": ["kisumu", "nairobi"],
                            "terms": {"poa": "cool"}, "key": "never shown"});
        let fields = fields(&schema(), &stored, &["key".to_owned()]);
        let by_name = |n: &str| fields.iter().find(|f| f.name == n).unwrap();
        let sheet = by_name("spreadsheet_id");
        assert_eq!(
            (sheet.label.as_str(), sheet.required, sheet.kind.clone()),
            ("Spreadsheet", true, Kind::Text)
        );
        assert_eq!(sheet.value, "abc");
        assert_eq!(sheet.description.as_deref(), Some("The id."));
        let mode = by_name("mode");
        assert_eq!(fields[0].name, "spreadsheet_id", "required fields come first");
        assert_eq!(by_name("rows").label, "Rows");
        assert_eq!(humane("service_account_key"), "Service account key");
        assert_eq!(mode.kind, Kind::Choice(vec!["append".into(), "replace".into()]));
        assert_eq!(
            (mode.value.as_str(), mode.default.as_deref()),
            ("", Some("append"))
        );
        let key = by_name("key");
        assert_eq!(
            (key.kind.clone(), key.value.as_str(), key.secret_set),
            (Kind::Secret, "", true)
        );
        assert_eq!(by_name("rows").value, "3");
        assert_eq!(by_name("ratio").kind, Kind::Number);
        assert_eq!(by_name("dry").kind, Kind::Boolean);
        assert_eq!(by_name("cities").value, "kisumu\nnairobi");
        assert_eq!(by_name("terms").kind, Kind::Json);
        assert!(by_name("terms").value.contains("\"poa\": \"cool\""));
        assert!(super::fields(&json!(true), &json!({}), &[]).is_empty());
    }

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_submitted_form_becomes_the_config_it_asks_for() {
        let fields = fields(&schema(), &json!({}), &[]);
        let submitted = pairs(&[
            ("spreadsheet_id", "abc"),
            ("mode", "replace"),
            ("key", ""),
            ("rows", " 12 "),
            ("ratio", ""),
            ("dry", "on"),
            ("cities", "kisumu\r\n\r\n nairobi \n"),
            ("terms", r#"{"poa": "cool"}"#),
        ]);
        assert_eq!(
            config(&fields, &submitted).unwrap(),
            json!({"spreadsheet_id": "abc", "mode": "replace", "rows": 12, "dry": true,
                   "cities": ["kisumu", "nairobi"], "terms": {"poa": "cool"}})
        );
        // A secret typed in is sent; "clear" sends null; an unchecked box is false.
        let submitted = pairs(&[("key", "s3cret "), ("key.clear", "on")]);
        assert_eq!(config(&fields, &submitted).unwrap()["key"], Value::Null);
        let submitted = pairs(&[("key", "s3cret ")]);
        let config = config(&fields, &submitted).unwrap();
        assert_eq!(
            (config["key"].clone(), config["dry"].clone()),
            (json!("s3cret "), json!(false))
        );
    }

    #[test]
    fn fields_that_do_not_parse_are_reported_at_the_field() {
        let fields = fields(&schema(), &json!({}), &[]);
        let errors = config(
            &fields,
            &pairs(&[("rows", "1.5"), ("ratio", "lots"), ("terms", "{")]),
        )
        .unwrap_err();
        assert_eq!(errors["rows"], ["enter a whole number"]);
        assert_eq!(errors["ratio"], ["enter a number"]);
        assert!(errors["terms"][0].starts_with("this is not JSON"));
    }

    #[test]
    fn a_refused_form_keeps_what_was_typed_but_no_secret() {
        let mut fields = fields(&schema(), &json!({"rows": 3}), &[]);
        refill(
            &mut fields,
            &pairs(&[("rows", "x"), ("key", "s3cret"), ("spreadsheet_id", "a b")]),
        );
        let value = |n: &str| fields.iter().find(|f| f.name == n).unwrap().value.clone();
        assert_eq!(
            (value("rows"), value("key"), value("spreadsheet_id")),
            ("x".into(), String::new(), "a b".into())
        );
        assert_eq!(value("dry"), "false");
    }

    #[test]
    fn the_registrys_pointers_land_on_their_field() {
        let fields = ["spreadsheet_id", "cities"];
        let problem = json!({"errors": [
            {"pointer": "/spreadsheet_id", "detail": "does not match the pattern"},
            {"pointer": "/cities/1", "detail": "too long"},
            {"pointer": "", "detail": "unknown_field is not allowed"},
            {"pointer": "/unknown", "detail": "not allowed"}
        ]});
        let errors = field_errors(&problem, &fields);
        assert_eq!(errors["spreadsheet_id"], ["does not match the pattern"]);
        assert_eq!(errors["cities"], ["too long"]);
        assert_eq!(errors[""], ["unknown_field is not allowed", "not allowed"]);
    }
}
