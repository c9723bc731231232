//! Team plugin configs against a plugin's JSON Schema (`registry/src/config_schema.rs`): compiling
//! the schema (meta-schema check, offline build, secret discovery), then validating, redacting and
//! merging a config.
//!
//! Two input modes. An input starting with `{` is text: `<schema JSON>\0<config JSON>\0<previous
//! config JSON>` (missing parts are `{}` and no previous config). Any other input is read with
//! `arbitrary` as a structured schema (properties, `writeOnly`, local `$ref`s into `$defs`, combinators,
//! formats, patterns) with a config and a previous config, so the fuzzer reaches the secret walk and
//! the validator without first having to learn JSON.
//!
//! Invariants: a refused schema names at least one problem; for a compiled one the secret pointers are
//! sorted, validation errors are non-empty, sorted, free of duplicates, point at a place that exists
//! in the config and never quote a config value (a marker string `hunter2` planted in config values
//! must not show up); `redact` removes exactly the discovered secrets and says whether each was set;
//! `merge_secrets` keeps a secret the new config sets and drops one it sets to `null`.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use switchyard_fuzz::config_schema::{ConfigSchema, SecretState};
use switchyard_fuzz::split_once;

/// Planted in config values; no validation message may contain it.
const MARKER: &str = "hunter2";
/// Deepest structured schema or value built; the API's JSON parser stops at 128 levels anyway.
const MAX_DEPTH: usize = 12;

fuzz_target!(|data: &[u8]| {
    let (schema, config, previous) = if data.first() == Some(&b'{') {
        let (schema, rest) = split_once(data, 0);
        let (config, previous) = rest.map_or((&b"{}"[..], None), |rest| split_once(rest, 0));
        let Ok(schema) = serde_json::from_slice::<Value>(schema) else {
            return;
        };
        let Ok(config) = serde_json::from_slice::<Value>(config) else {
            return;
        };
        let previous = previous.and_then(|p| serde_json::from_slice::<Value>(p).ok());
        (schema, config, previous)
    } else {
        let Ok(doc) = Doc::arbitrary_take_rest(Unstructured::new(data)) else {
            return;
        };
        doc.build()
    };
    if std::env::var_os("FUZZ_PRINT").is_some() {
        // To see what a structured input stands for: FUZZ_PRINT=1 cargo +nightly fuzz run team_config <file>
        eprintln!("schema: {schema}\nconfig: {config}\nprevious: {previous:?}");
    }
    check(&schema, &config, previous.as_ref());
});

fn check(schema: &Value, config: &Value, previous: Option<&Value>) {
    let compiled = match ConfigSchema::compile(schema) {
        Ok(compiled) => compiled,
        Err(error) => {
            let problems = error.problems();
            assert!(!problems.is_empty(), "{error:?} names no problem");
            assert!(problems.iter().all(|p| !p.detail.is_empty()), "{problems:?}");
            return;
        }
    };
    let secrets = compiled.secret_pointers();
    assert!(secrets.is_sorted(), "{secrets:?}");

    if let Err(errors) = compiled.validate(config) {
        assert!(!errors.is_empty());
        assert!(errors.is_sorted_by(|a, b| a.pointer <= b.pointer), "{errors:?}");
        for (i, error) in errors.iter().enumerate() {
            assert!(!errors[..i].contains(error), "duplicate {error:?}");
            assert!(
                config.pointer(&error.pointer).is_some(),
                "{error:?} points at nothing in {config}"
            );
        }
        let schema_text = schema.to_string();
        if !schema_text.contains(MARKER) && !keys_contain_marker(config) {
            for error in &errors {
                assert!(!error.detail.contains(MARKER), "a config value leaked: {error:?}");
            }
        }
    }

    let redacted = compiled.redact(config);
    assert_eq!(
        redacted.secrets.keys().cloned().collect::<Vec<_>>(),
        {
            let mut unique = secrets.clone();
            unique.dedup();
            unique
        },
        "redact reports other fields than the secrets"
    );
    for (pointer, state) in &redacted.secrets {
        let segments = segments(pointer);
        let original = object_path(config, &segments);
        let was_set = original.is_some_and(|v| !v.is_null());
        assert_eq!(*state == SecretState::Set, was_set, "{pointer}");
        assert!(
            object_path(&redacted.config, &segments).is_none(),
            "{pointer} survived redaction"
        );
    }

    let mut merged = config.clone();
    compiled.merge_secrets(&mut merged, previous);
    for pointer in &secrets {
        let segments = segments(pointer);
        match object_path(config, &segments) {
            Some(Value::Null) => assert!(object_path(&merged, &segments).is_none(), "{pointer}"),
            Some(given) => assert_eq!(object_path(&merged, &segments), Some(given), "{pointer}"),
            None => {}
        }
    }
}

/// The property names of a JSON pointer.
fn segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// The value at a path of property names, through objects only.
fn object_path<'v>(value: &'v Value, segments: &[String]) -> Option<&'v Value> {
    segments
        .iter()
        .try_fold(value, |current, segment| current.as_object()?.get(segment))
}

fn keys_contain_marker(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains(MARKER) || keys_contain_marker(v)),
        Value::Array(items) => items.iter().any(keys_contain_marker),
        _ => false,
    }
}

/// A structured schema with a config to validate against it.
#[derive(Debug, Arbitrary)]
struct Doc {
    draft: Option<DraftUri>,
    root: Schema,
    defs: Vec<Schema>,
    config: Data,
    previous: Option<Data>,
}

#[derive(Debug, Arbitrary)]
enum DraftUri {
    D4,
    D6,
    D7,
    D201909,
    D202012,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Name {
    Token,
    Key,
    Sms,
    Nested,
    Slash,
    Tilde,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Type {
    Null,
    Boolean,
    Integer,
    Number,
    String,
    Array,
    Object,
}

#[derive(Debug, Arbitrary)]
enum Format {
    Email,
    Uri,
    Date,
    DateTime,
    Ipv4,
    Uuid,
    Regex,
    Hostname,
    Other(String),
}

#[derive(Debug, Arbitrary)]
struct Property {
    name: Name,
    schema: Schema,
    write_only: bool,
    /// Declare the property as a `$ref` to this `$defs` entry (modulo their number) instead.
    via_ref: Option<u8>,
}

#[derive(Debug, Arbitrary)]
enum Schema {
    Type(Type),
    Object {
        properties: Vec<Property>,
        required: Vec<Name>,
        additional: Option<Box<Schema>>,
    },
    Ref(u8),
    ExternalRef(String),
    Array(Box<Schema>),
    AnyOf(Vec<Schema>),
    OneOf(Vec<Schema>),
    AllOf(Vec<Schema>),
    Not(Box<Schema>),
    IfThen(Box<Schema>, Box<Schema>),
    String {
        min_length: Option<u8>,
        max_length: Option<u8>,
        pattern: Option<String>,
        format: Option<Format>,
    },
    Number {
        minimum: Option<i32>,
        maximum: Option<f64>,
        multiple_of: Option<f64>,
    },
    Enum(Vec<Data>),
    Const(Data),
    PropertyNames(Box<Schema>),
    Bool(bool),
    Keyword(String, Data),
}

#[derive(Debug, Arbitrary)]
enum Data {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Secret,
    Array(Vec<Data>),
    Object(Vec<(Name, Data)>),
}

impl Doc {
    fn build(&self) -> (Value, Value, Option<Value>) {
        let defs = self.defs.len();
        let mut schema = self.root.build(defs, 0);
        if let Value::Object(map) = &mut schema {
            if let Some(draft) = &self.draft {
                map.insert("$schema".into(), Value::String(draft.uri()));
            }
            if defs > 0 {
                let defs: Map<String, Value> = self
                    .defs
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (format!("d{i}"), d.build(defs, 1)))
                    .collect();
                map.insert("$defs".into(), Value::Object(defs));
            }
        }
        (
            schema,
            self.config.build(0),
            self.previous.as_ref().map(|p| p.build(0)),
        )
    }
}

impl DraftUri {
    fn uri(&self) -> String {
        match self {
            DraftUri::D4 => "http://json-schema.org/draft-04/schema#".into(),
            DraftUri::D6 => "http://json-schema.org/draft-06/schema#".into(),
            DraftUri::D7 => "http://json-schema.org/draft-07/schema#".into(),
            DraftUri::D201909 => "https://json-schema.org/draft/2019-09/schema".into(),
            DraftUri::D202012 => "https://json-schema.org/draft/2020-12/schema".into(),
            DraftUri::Other(uri) => uri.clone(),
        }
    }
}

impl Name {
    fn build(&self) -> String {
        match self {
            Name::Token => "token".into(),
            Name::Key => "key".into(),
            Name::Sms => "sms".into(),
            Name::Nested => "nested".into(),
            Name::Slash => "a/b".into(),
            Name::Tilde => "t~1".into(),
            Name::Other(name) => name.clone(),
        }
    }
}

fn def_ref(index: u8, defs: usize) -> Value {
    let index = usize::from(index) % defs.max(1);
    json!({ "$ref": format!("#/$defs/d{index}") })
}

impl Schema {
    fn build(&self, defs: usize, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return json!({"type": "string"});
        }
        let sub = |s: &Schema| s.build(defs, depth + 1);
        match self {
            Schema::Type(t) => json!({ "type": t.name() }),
            Schema::Object {
                properties,
                required,
                additional,
            } => {
                let mut props = Map::new();
                for p in properties {
                    let mut schema = match p.via_ref {
                        Some(index) => def_ref(index, defs),
                        None => sub(&p.schema),
                    };
                    if p.write_only
                        && let Value::Object(map) = &mut schema
                    {
                        map.insert("writeOnly".into(), Value::Bool(true));
                    }
                    props.insert(p.name.build(), schema);
                }
                let mut object = json!({
                    "type": "object",
                    "properties": props,
                    "required": required.iter().map(Name::build).collect::<Vec<_>>(),
                });
                if let Some(additional) = additional {
                    object["additionalProperties"] = sub(additional);
                }
                object
            }
            Schema::Ref(index) => def_ref(*index, defs),
            Schema::ExternalRef(uri) => json!({ "$ref": uri }),
            Schema::Array(items) => json!({"type": "array", "items": sub(items)}),
            Schema::AnyOf(all) => json!({ "anyOf": all.iter().map(sub).collect::<Vec<_>>() }),
            Schema::OneOf(all) => json!({ "oneOf": all.iter().map(sub).collect::<Vec<_>>() }),
            Schema::AllOf(all) => json!({ "allOf": all.iter().map(sub).collect::<Vec<_>>() }),
            Schema::Not(not) => json!({ "not": sub(not) }),
            Schema::IfThen(condition, then) => json!({"if": sub(condition), "then": sub(then)}),
            Schema::String {
                min_length,
                max_length,
                pattern,
                format,
            } => {
                let mut object = json!({"type": "string"});
                if let Some(n) = min_length {
                    object["minLength"] = json!(n);
                }
                if let Some(n) = max_length {
                    object["maxLength"] = json!(n);
                }
                if let Some(pattern) = pattern {
                    object["pattern"] = json!(pattern);
                }
                if let Some(format) = format {
                    object["format"] = json!(format.name());
                }
                object
            }
            Schema::Number {
                minimum,
                maximum,
                multiple_of,
            } => {
                let mut object = json!({"type": "number"});
                if let Some(n) = minimum {
                    object["minimum"] = json!(n);
                }
                if let Some(n) = maximum {
                    object["maximum"] = json!(n);
                }
                if let Some(n) = multiple_of {
                    object["multipleOf"] = json!(n);
                }
                object
            }
            Schema::Enum(values) => {
                json!({ "enum": values.iter().map(|v| v.build(depth + 1)).collect::<Vec<_>>() })
            }
            Schema::Const(value) => json!({ "const": value.build(depth + 1) }),
            Schema::PropertyNames(names) => json!({ "propertyNames": sub(names) }),
            Schema::Bool(b) => Value::Bool(*b),
            Schema::Keyword(keyword, value) => {
                let mut object = Map::new();
                object.insert(keyword.clone(), value.build(depth + 1));
                Value::Object(object)
            }
        }
    }
}

impl Type {
    fn name(&self) -> &'static str {
        match self {
            Type::Null => "null",
            Type::Boolean => "boolean",
            Type::Integer => "integer",
            Type::Number => "number",
            Type::String => "string",
            Type::Array => "array",
            Type::Object => "object",
        }
    }
}

impl Format {
    fn name(&self) -> &str {
        match self {
            Format::Email => "email",
            Format::Uri => "uri",
            Format::Date => "date",
            Format::DateTime => "date-time",
            Format::Ipv4 => "ipv4",
            Format::Uuid => "uuid",
            Format::Regex => "regex",
            Format::Hostname => "hostname",
            Format::Other(name) => name,
        }
    }
}

impl Data {
    fn build(&self, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        match self {
            Data::Null => Value::Null,
            Data::Bool(b) => Value::Bool(*b),
            Data::Int(n) => json!(n),
            Data::Float(f) => json!(f),
            Data::Str(s) => json!(s),
            Data::Secret => json!(format!("{MARKER}-secret-value")),
            Data::Array(items) => Value::Array(items.iter().map(|d| d.build(depth + 1)).collect()),
            Data::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(name, d)| (name.build(), d.build(depth + 1)))
                    .collect(),
            ),
        }
    }
}
