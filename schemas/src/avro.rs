//! A schema-directed walker over Avro binary data and its bare-JSON form.
//!
//! apache-avro parses the schemas and computes fingerprints; this module reads and writes the data itself,
//! because the router's hot path needs validation that allocates nothing (decoding into
//! `apache_avro::types::Value` builds a tree per event), and the contract's JSON form (unions written as
//! the bare value, not Avro's `{"type": value}` JSON encoding) is not what apache-avro speaks.
//!
//! ```text
//!            decode(Skip)      (validation: walks the bytes, builds nothing)
//!   binary ─┼ decode(Json)  ──► serde_json::Value ──► typed structs (serde)
//!            decode(JsonText) ──► JSON text          (the plugin bridge's request bodies)
//!            decode_selected ──► sparse serde_json::Value (only the paths a filter reads: projection)
//!   serde_json::Value ── encode ──► binary          (JSON validation and Avro encoding)
//! ```
//!
//! Untrusted input never drives an allocation larger than the input: lengths are checked against the
//! remaining bytes before anything is read, block counts of zero-width items are capped, and nesting depth
//! is bounded.

use std::collections::HashMap;

use apache_avro::schema::{Name, RecordSchema, Schema, UnionSchema};
use serde_json::{Map, Number, Value};
use thiserror::Error;

use crate::projection::Selection;

/// Deepest nesting of records, arrays, maps and unions the walker follows.
const MAX_DEPTH: usize = 64;
/// Most items an array or map may hold when its items can be zero bytes wide (e.g. `null`).
const MAX_ZERO_WIDTH_ITEMS: u64 = 100_000;

/// A value that does not fit its schema, with a JSON pointer to where.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at {}: {message}", if pointer.is_empty() { "/" } else { pointer.as_str() })]
pub struct DataError {
    /// JSON pointer (RFC 6901) of the offending value, `""` for the root.
    pub pointer: String,
    /// What is wrong, as a phrase.
    pub message: String,
    /// Path segments, innermost first, while the error bubbles up.
    segments: Vec<String>,
}

impl DataError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            pointer: String::new(),
            message: message.into(),
            segments: Vec::new(),
        }
    }

    fn at(mut self, segment: impl Into<String>) -> Self {
        self.segments.push(segment.into());
        self
    }

    fn finish(mut self) -> Self {
        self.pointer = self
            .segments
            .iter()
            .rev()
            .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
            .collect();
        self.segments.clear();
        self
    }
}

/// A parsed schema together with the named types it defines, so references resolve.
#[derive(Debug, Clone)]
pub struct Compiled {
    schema: Schema,
    names: HashMap<Name, Schema>,
}

impl Compiled {
    /// Collects the named types of `schema`.
    pub fn new(schema: Schema) -> Self {
        let mut names = HashMap::new();
        collect_names(&schema, &mut names);
        Self { schema, names }
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Checks that `bytes` is exactly one datum of this schema, with nothing left over.
    pub fn validate(&self, bytes: &[u8]) -> Result<(), DataError> {
        let mut input = bytes;
        self.decode(&mut Skip, &self.schema, &mut input, 0)
            .map_err(DataError::finish)?;
        finish_input(input)
    }

    /// Decodes exactly one datum into the contract's bare-JSON form.
    pub fn to_json(&self, bytes: &[u8]) -> Result<Value, DataError> {
        let mut input = bytes;
        let value = self
            .decode(&mut Json, &self.schema, &mut input, 0)
            .map_err(DataError::finish)?;
        finish_input(input)?;
        Ok(value)
    }

    /// Decodes exactly one datum into the contract's bare-JSON form written as compact JSON text, appended
    /// to `out`: the same value as [`Compiled::to_json`] without building it (record fields in schema
    /// order, a map's entries in their encoded order). On an error `out` holds a partial text.
    pub fn write_json(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), DataError> {
        let mut input = bytes;
        self.decode(&mut JsonText(out), &self.schema, &mut input, 0)
            .map_err(DataError::finish)?;
        finish_input(input)
    }

    /// Decodes exactly one datum into the sparse bare-JSON form that keeps only the parts `selection`
    /// requests (see [`crate::projection`]); `Value::Null` when nothing is requested. The whole datum is
    /// read and checked as [`Compiled::validate`] does: what is not requested is skipped, not built.
    pub(crate) fn project(&self, bytes: &[u8], selection: Selection<'_>) -> Result<Value, DataError> {
        let mut input = bytes;
        let value = self
            .decode_selected(selection, &self.schema, &mut input, 0)
            .map_err(DataError::finish)?;
        finish_input(input)?;
        Ok(value.unwrap_or(Value::Null))
    }

    /// The projection walk: `None` when nothing at or below this datum is requested (it was skipped).
    fn decode_selected(
        &self,
        selection: Selection<'_>,
        schema: &Schema,
        input: &mut &[u8],
        depth: usize,
    ) -> Result<Option<Value>, DataError> {
        if selection.is_empty() {
            self.decode(&mut Skip, schema, input, depth)?;
            return Ok(None);
        }
        if selection.is_whole() {
            return self.decode(&mut Json, schema, input, depth).map(Some);
        }
        if depth > MAX_DEPTH {
            return Err(DataError::new("nested too deeply"));
        }
        let schema = self.resolve(schema)?;
        Ok(Some(match schema {
            // A bare union is its branch's value.
            Schema::Union(union) => {
                let index = read_long(input)?;
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(|| DataError::new(format!("union branch {index} is out of range")))?;
                return self.decode_selected(selection, branch, input, depth + 1);
            }
            Schema::Record(record) => {
                let mut fields = Map::new();
                for field in &record.fields {
                    let value = self
                        .decode_selected(selection.key(&field.name), &field.schema, input, depth + 1)
                        .map_err(|e| e.at(field.name.as_str()))?;
                    if let Some(value) = value {
                        fields.insert(field.name.clone(), value);
                    }
                }
                Value::Object(fields)
            }
            Schema::Map(map) => {
                let mut entries = Map::new();
                let mut seen = 0u64;
                while let Some(count) = read_block_count(input, false, seen)? {
                    for _ in 0..count {
                        let key = read_str(input).map_err(|e| e.at(format!("#{seen}")))?;
                        let value = self
                            .decode_selected(selection.key(key), &map.types, input, depth + 1)
                            .map_err(|e| e.at(key))?;
                        if let Some(value) = value {
                            entries.insert(key.to_owned(), value);
                        }
                        seen += 1;
                    }
                }
                Value::Object(entries)
            }
            Schema::Array(array) => {
                let zero_width = self.min_width(&array.items, 0) == 0;
                let keep = selection.array_len();
                let mut items = Vec::new();
                let mut index = 0u64;
                while let Some(count) = read_block_count(input, zero_width, index)? {
                    for _ in 0..count {
                        let value = self
                            .decode_selected(selection.index(index), &array.items, input, depth + 1)
                            .map_err(|e| e.at(index.to_string()))?;
                        if index < keep {
                            items.push(value.unwrap_or(Value::Null));
                        }
                        index += 1;
                    }
                }
                Value::Array(items)
            }
            // A path that runs into a scalar (or a null) keeps it, so that reading further fails as it
            // would on the whole value.
            scalar => self.decode(&mut Json, scalar, input, depth)?,
        }))
    }

    /// Encodes a bare-JSON value as one Avro datum, appending to `out`. Missing fields take their schema
    /// default; fields the schema does not know are ignored (a newer writer may have added them).
    pub fn encode_json(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), DataError> {
        self.encode(&self.schema, value, out, false, 0)
            .map_err(DataError::finish)
    }

    fn resolve<'s>(&'s self, schema: &'s Schema) -> Result<&'s Schema, DataError> {
        match schema {
            Schema::Ref { name } => self
                .names
                .get(name)
                .ok_or_else(|| DataError::new(format!("unknown named type {}", name.name()))),
            other => Ok(other),
        }
    }

    fn decode<B: Build>(
        &self,
        b: &mut B,
        schema: &Schema,
        input: &mut &[u8],
        depth: usize,
    ) -> Result<B::V, DataError> {
        if depth > MAX_DEPTH {
            return Err(DataError::new("nested too deeply"));
        }
        let schema = self.resolve(schema)?;
        Ok(match schema {
            Schema::Null => b.null(),
            Schema::Boolean => match take(input, 1)?[0] {
                0 => b.boolean(false),
                1 => b.boolean(true),
                other => return Err(DataError::new(format!("boolean byte is {other}, not 0 or 1"))),
            },
            Schema::Int | Schema::Date | Schema::TimeMillis => {
                let value = read_long(input)?;
                i32::try_from(value).map_err(|_| DataError::new(format!("{value} does not fit an int")))?;
                b.long(value)
            }
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => b.long(read_long(input)?),
            Schema::Float => {
                let bytes = take(input, 4)?;
                b.double(f64::from(f32::from_le_bytes([
                    bytes[0], bytes[1], bytes[2], bytes[3],
                ])))
            }
            Schema::Double => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(take(input, 8)?);
                b.double(f64::from_le_bytes(raw))
            }
            Schema::String => b.string(read_str(input)?),
            Schema::Bytes | Schema::BigDecimal => {
                let len = read_len(input)?;
                b.bytes(take(input, len)?)
            }
            Schema::Fixed(fixed) | Schema::Duration(fixed) => b.bytes(take(input, fixed.size)?),
            Schema::Decimal(_) | Schema::Uuid(_) => {
                return Err(DataError::new(
                    "decimal and uuid logical types are not used by the contract",
                ));
            }
            Schema::Enum(enumeration) => {
                let index = read_long(input)?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|i| enumeration.symbols.get(i))
                    .ok_or_else(|| DataError::new(format!("enum index {index} is out of range")))?;
                b.string(symbol)
            }
            Schema::Union(union) => {
                let index = read_long(input)?;
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(|| DataError::new(format!("union branch {index} is out of range")))?;
                self.decode(b, branch, input, depth + 1)?
            }
            Schema::Record(record) => {
                let mut fields = b.begin_record();
                for field in &record.fields {
                    b.key(&mut fields, &field.name);
                    let value = self
                        .decode(b, &field.schema, input, depth + 1)
                        .map_err(|e| e.at(field.name.as_str()))?;
                    b.field(&mut fields, &field.name, value);
                }
                b.record(fields)
            }
            Schema::Array(array) => {
                let zero_width = self.min_width(&array.items, 0) == 0;
                let mut items = b.begin_array();
                let mut index = 0u64;
                while let Some(count) = read_block_count(input, zero_width, index)? {
                    for _ in 0..count {
                        b.item(&mut items);
                        let value = self
                            .decode(b, &array.items, input, depth + 1)
                            .map_err(|e| e.at(index.to_string()))?;
                        b.push(&mut items, value);
                        index += 1;
                    }
                }
                b.array(items)
            }
            Schema::Map(map) => {
                let mut entries = b.begin_record();
                let mut seen = 0u64;
                while let Some(count) = read_block_count(input, false, seen)? {
                    for _ in 0..count {
                        let key = read_str(input).map_err(|e| e.at(format!("#{seen}")))?;
                        b.key(&mut entries, key);
                        let value = self
                            .decode(b, &map.types, input, depth + 1)
                            .map_err(|e| e.at(key))?;
                        b.field(&mut entries, key, value);
                        seen += 1;
                    }
                }
                b.record(entries)
            }
            Schema::Ref { .. } => unreachable!("resolved above"),
        })
    }

    /// The fewest bytes one datum of `schema` can take; 0 means a block count alone bounds nothing.
    fn min_width(&self, schema: &Schema, depth: usize) -> usize {
        if depth > MAX_DEPTH {
            return 0;
        }
        match self.resolve(schema) {
            Ok(Schema::Null) | Err(_) => 0,
            Ok(Schema::Record(record)) => record
                .fields
                .iter()
                .map(|f| self.min_width(&f.schema, depth + 1))
                .sum(),
            Ok(Schema::Fixed(fixed)) | Ok(Schema::Duration(fixed)) => fixed.size,
            Ok(Schema::Float) => 4,
            Ok(Schema::Double) => 8,
            Ok(_) => 1,
        }
    }

    fn encode(
        &self,
        schema: &Schema,
        value: &Value,
        out: &mut Vec<u8>,
        strict: bool,
        depth: usize,
    ) -> Result<(), DataError> {
        if depth > MAX_DEPTH {
            return Err(DataError::new("nested too deeply"));
        }
        let schema = self.resolve(schema)?;
        match schema {
            Schema::Null => match value {
                Value::Null => {}
                other => return Err(mismatch("null", other)),
            },
            Schema::Boolean => match value {
                Value::Bool(b) => out.push(u8::from(*b)),
                other => return Err(mismatch("a boolean", other)),
            },
            Schema::Int | Schema::Date | Schema::TimeMillis => {
                let n = value.as_i64().ok_or_else(|| mismatch("an integer", value))?;
                let n =
                    i32::try_from(n).map_err(|_| DataError::new(format!("{n} does not fit a 32-bit int")))?;
                write_long(out, i64::from(n));
            }
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => {
                let n = value
                    .as_i64()
                    .ok_or_else(|| mismatch("a 64-bit integer", value))?;
                write_long(out, n);
            }
            Schema::Float => {
                let n = value.as_f64().ok_or_else(|| mismatch("a number", value))?;
                out.extend_from_slice(&(n as f32).to_le_bytes());
            }
            Schema::Double => {
                let n = value.as_f64().ok_or_else(|| mismatch("a number", value))?;
                out.extend_from_slice(&n.to_le_bytes());
            }
            Schema::String => {
                let s = value.as_str().ok_or_else(|| mismatch("a string", value))?;
                write_bytes(out, s.as_bytes());
            }
            Schema::Bytes | Schema::BigDecimal => {
                let bytes = latin1(value)?;
                write_bytes(out, &bytes);
            }
            Schema::Fixed(fixed) | Schema::Duration(fixed) => {
                let bytes = latin1(value)?;
                if bytes.len() != fixed.size {
                    return Err(DataError::new(format!(
                        "needs exactly {} bytes, has {}",
                        fixed.size,
                        bytes.len()
                    )));
                }
                out.extend_from_slice(&bytes);
            }
            Schema::Decimal(_) | Schema::Uuid(_) => {
                return Err(DataError::new(
                    "decimal and uuid logical types are not used by the contract",
                ));
            }
            Schema::Enum(enumeration) => {
                let symbol = value.as_str().ok_or_else(|| mismatch("a string symbol", value))?;
                // A symbol this revision does not know takes the enum's default, as Avro's schema resolution
                // does for readers; without a default it is an error.
                let index = enumeration
                    .symbols
                    .iter()
                    .position(|s| s == symbol)
                    .or_else(|| {
                        enumeration
                            .default
                            .as_ref()
                            .and_then(|d| enumeration.symbols.iter().position(|s| s == d))
                    })
                    .ok_or_else(|| {
                        DataError::new(format!(
                            "{symbol:?} is not one of {}",
                            enumeration.symbols.join(", ")
                        ))
                    })?;
                write_long(out, index as i64);
            }
            Schema::Union(union) => self.encode_union(union, value, out, depth)?,
            Schema::Record(record) => self.encode_record(record, value, out, strict, depth)?,
            Schema::Array(array) => {
                let items = value.as_array().ok_or_else(|| mismatch("an array", value))?;
                if !items.is_empty() {
                    write_long(out, items.len() as i64);
                    for (i, item) in items.iter().enumerate() {
                        self.encode(&array.items, item, out, false, depth + 1)
                            .map_err(|e| e.at(i.to_string()))?;
                    }
                }
                out.push(0);
            }
            Schema::Map(map) => {
                let entries = value.as_object().ok_or_else(|| mismatch("an object", value))?;
                if !entries.is_empty() {
                    write_long(out, entries.len() as i64);
                    for (key, item) in entries {
                        write_bytes(out, key.as_bytes());
                        self.encode(&map.types, item, out, false, depth + 1)
                            .map_err(|e| e.at(key.as_str()))?;
                    }
                }
                out.push(0);
            }
            Schema::Ref { .. } => unreachable!("resolved above"),
        }
        Ok(())
    }

    fn encode_record(
        &self,
        record: &RecordSchema,
        value: &Value,
        out: &mut Vec<u8>,
        strict: bool,
        depth: usize,
    ) -> Result<(), DataError> {
        let object = value.as_object().ok_or_else(|| mismatch("an object", value))?;
        if strict && let Some(unknown) = object.keys().find(|k| !record.lookup.contains_key(k.as_str())) {
            return Err(DataError::new(format!(
                "{} has no field {unknown:?}",
                record.name.name()
            )));
        }
        for field in &record.fields {
            match (object.get(&field.name), &field.default) {
                (Some(item), _) => self.encode(&field.schema, item, out, false, depth + 1),
                // A union's default is a value of its first branch (Avro specification).
                (None, Some(default)) => match self.resolve(&field.schema)? {
                    Schema::Union(union) => {
                        write_long(out, 0);
                        self.encode(&union.variants()[0], default, out, false, depth + 1)
                    }
                    other => self.encode(other, default, out, false, depth + 1),
                },
                (None, None) => Err(DataError::new("is required")),
            }
            .map_err(|e| e.at(field.name.as_str()))?;
        }
        Ok(())
    }

    /// Bare unions: `null` picks the null branch; otherwise the first branch the value fits, preferring a
    /// record branch whose fields cover every key of the object (so `{"number": 3}` picks `NumberAnswer`
    /// even if an earlier branch would tolerate it).
    fn encode_union(
        &self,
        union: &UnionSchema,
        value: &Value,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), DataError> {
        let start = out.len();
        for strict in [true, false] {
            for (index, branch) in union.variants().iter().enumerate() {
                let is_null = matches!(self.resolve(branch), Ok(Schema::Null));
                if is_null != value.is_null() {
                    continue;
                }
                write_long(out, index as i64);
                if self.encode(branch, value, out, strict, depth + 1).is_ok() {
                    return Ok(());
                }
                out.truncate(start);
            }
        }
        let kinds: Vec<String> = union
            .variants()
            .iter()
            .map(|s| describe(self.resolve(s).unwrap_or(s)))
            .collect();
        Err(DataError::new(format!(
            "{} fits none of {}",
            kind_of(value),
            kinds.join(" | ")
        )))
    }
}

/// The Avro specification's Parsing Canonical Form of a schema, from its JSON text.
///
/// Written here rather than taken from apache-avro because its `canonical_form` (0.22) keeps a primitive
/// that carries a `logicalType` as `{"type":"long"}` instead of `"long"` (the [PRIMITIVES] rule), which
/// changes the fingerprint: Java's `BinaryMessageEncoder` and fastavro would not interoperate.
pub fn parsing_canonical_form(schema: &Value) -> Result<String, DataError> {
    let mut out = String::new();
    canonical(schema, None, &mut std::collections::HashSet::new(), &mut out)?;
    Ok(out)
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_owned(),
    }
}

fn canonical(
    schema: &Value,
    namespace: Option<&str>,
    defined: &mut std::collections::HashSet<String>,
    out: &mut String,
) -> Result<(), DataError> {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    match schema {
        Value::String(name) if PRIMITIVES.contains(&name.as_str()) => out.push_str(&quote(name)),
        Value::String(name) => out.push_str(&quote(&full_name(name, namespace))),
        Value::Array(branches) => {
            out.push('[');
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(branch, namespace, defined, out)?;
            }
            out.push(']');
        }
        Value::Object(object) => {
            let kind = object
                .get("type")
                .ok_or_else(|| DataError::new("a schema object has no \"type\""))?;
            let Value::String(kind) = kind else {
                // {"type": {...}} or {"type": [...]}: the attribute is itself a schema.
                return canonical(kind, namespace, defined, out);
            };
            match kind.as_str() {
                "record" | "error" | "enum" | "fixed" => {
                    let name = object
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| DataError::new("a named type has no name"))?;
                    let own_namespace = object.get("namespace").and_then(Value::as_str).or(namespace);
                    let full = full_name(name, own_namespace);
                    let inner_namespace = full.rsplit_once('.').map(|(ns, _)| ns.to_owned());
                    if !defined.insert(full.clone()) {
                        out.push_str(&quote(&full));
                        return Ok(());
                    }
                    out.push_str(&format!("{{\"name\":{},\"type\":{}", quote(&full), quote(kind)));
                    match kind.as_str() {
                        "enum" => {
                            let symbols = object.get("symbols").cloned().unwrap_or(Value::Array(Vec::new()));
                            out.push_str(&format!(",\"symbols\":{symbols}"));
                        }
                        "fixed" => {
                            let size = object
                                .get("size")
                                .and_then(Value::as_u64)
                                .ok_or_else(|| DataError::new("fixed without size"))?;
                            out.push_str(&format!(",\"size\":{size}"));
                        }
                        _ => {
                            out.push_str(",\"fields\":[");
                            let fields = object
                                .get("fields")
                                .and_then(Value::as_array)
                                .map(Vec::as_slice)
                                .unwrap_or_default();
                            for (i, field) in fields.iter().enumerate() {
                                if i > 0 {
                                    out.push(',');
                                }
                                let field_name =
                                    field.get("name").and_then(Value::as_str).unwrap_or_default();
                                out.push_str(&format!("{{\"name\":{},\"type\":", quote(field_name)));
                                let field_type = field
                                    .get("type")
                                    .ok_or_else(|| DataError::new("a field has no type"))?;
                                canonical(field_type, inner_namespace.as_deref(), defined, out)?;
                                out.push('}');
                            }
                            out.push(']');
                        }
                    }
                    out.push('}');
                }
                "array" => {
                    out.push_str("{\"type\":\"array\",\"items\":");
                    canonical(
                        object.get("items").unwrap_or(&Value::Null),
                        namespace,
                        defined,
                        out,
                    )?;
                    out.push('}');
                }
                "map" => {
                    out.push_str("{\"type\":\"map\",\"values\":");
                    canonical(
                        object.get("values").unwrap_or(&Value::Null),
                        namespace,
                        defined,
                        out,
                    )?;
                    out.push('}');
                }
                // A primitive with attributes (logicalType, ...) collapses to its name.
                primitive if PRIMITIVES.contains(&primitive) => out.push_str(&quote(primitive)),
                other => out.push_str(&quote(&full_name(other, namespace))),
            }
        }
        other => return Err(DataError::new(format!("{} is not a schema", kind_of(other)))),
    }
    Ok(())
}

/// The single-object-encoding marker that starts every `application/avro` value.
pub const SINGLE_OBJECT_MARKER: [u8; 2] = [0xC3, 0x01];

/// Splits an Avro single-object value into its 8-byte schema fingerprint (CRC-64-AVRO, little-endian)
/// and body.
pub fn split_single_object(value: &[u8]) -> Result<([u8; 8], &[u8]), DataError> {
    if value.len() < 10 || value[..2] != SINGLE_OBJECT_MARKER {
        return Err(DataError::new(
            "an application/avro value must start with 0xC3 0x01 and an 8-byte schema fingerprint",
        ));
    }
    let mut fingerprint = [0u8; 8];
    fingerprint.copy_from_slice(&value[2..10]);
    Ok((fingerprint, &value[10..]))
}

/// What the decoder builds while it walks a datum: nothing ([`Skip`]), a JSON tree ([`Json`]), or JSON text
/// ([`JsonText`]). Records and maps are both objects (`key` before each value, `field` after it); arrays
/// get `item` before each value and `push` after it.
trait Build {
    type V;
    type Rec;
    type Arr;
    fn null(&mut self) -> Self::V;
    fn boolean(&mut self, b: bool) -> Self::V;
    fn long(&mut self, n: i64) -> Self::V;
    fn double(&mut self, n: f64) -> Self::V;
    fn string(&mut self, s: &str) -> Self::V;
    fn bytes(&mut self, b: &[u8]) -> Self::V;
    fn begin_record(&mut self) -> Self::Rec;
    fn key(&mut self, rec: &mut Self::Rec, name: &str);
    fn field(&mut self, rec: &mut Self::Rec, name: &str, v: Self::V);
    fn record(&mut self, rec: Self::Rec) -> Self::V;
    fn begin_array(&mut self) -> Self::Arr;
    fn item(&mut self, arr: &mut Self::Arr);
    fn push(&mut self, arr: &mut Self::Arr, v: Self::V);
    fn array(&mut self, arr: Self::Arr) -> Self::V;
}

struct Skip;

impl Build for Skip {
    type V = ();
    type Rec = ();
    type Arr = ();
    fn null(&mut self) {}
    fn boolean(&mut self, _: bool) {}
    fn long(&mut self, _: i64) {}
    fn double(&mut self, _: f64) {}
    fn string(&mut self, _: &str) {}
    fn bytes(&mut self, _: &[u8]) {}
    fn begin_record(&mut self) {}
    fn key(&mut self, _: &mut (), _: &str) {}
    fn field(&mut self, _: &mut (), _: &str, _: ()) {}
    fn record(&mut self, _: ()) {}
    fn begin_array(&mut self) {}
    fn item(&mut self, _: &mut ()) {}
    fn push(&mut self, _: &mut (), _: ()) {}
    fn array(&mut self, _: ()) {}
}

/// Avro's JSON convention for bytes: one code point per byte.
fn latin1_text(b: &[u8]) -> String {
    b.iter().map(|&byte| char::from(byte)).collect()
}

struct Json;

impl Build for Json {
    type V = Value;
    type Rec = Map<String, Value>;
    type Arr = Vec<Value>;
    fn null(&mut self) -> Value {
        Value::Null
    }
    fn boolean(&mut self, b: bool) -> Value {
        Value::Bool(b)
    }
    fn long(&mut self, n: i64) -> Value {
        Value::Number(n.into())
    }
    fn double(&mut self, n: f64) -> Value {
        // JSON has no NaN or infinity; they become null.
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
    fn string(&mut self, s: &str) -> Value {
        Value::String(s.to_owned())
    }
    fn bytes(&mut self, b: &[u8]) -> Value {
        Value::String(latin1_text(b))
    }
    fn begin_record(&mut self) -> Self::Rec {
        Map::new()
    }
    fn key(&mut self, _: &mut Self::Rec, _: &str) {}
    fn field(&mut self, rec: &mut Self::Rec, name: &str, v: Value) {
        rec.insert(name.to_owned(), v);
    }
    fn record(&mut self, rec: Self::Rec) -> Value {
        Value::Object(rec)
    }
    fn begin_array(&mut self) -> Self::Arr {
        Vec::new()
    }
    fn item(&mut self, _: &mut Self::Arr) {}
    fn push(&mut self, arr: &mut Self::Arr, v: Value) {
        arr.push(v);
    }
    fn array(&mut self, arr: Self::Arr) -> Value {
        Value::Array(arr)
    }
}

/// Compact JSON text appended to a buffer; `Rec` and `Arr` say whether a member was written yet.
struct JsonText<'a>(&'a mut Vec<u8>);

impl JsonText<'_> {
    fn quoted(&mut self, s: &str) {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *self.0, s);
    }

    fn separator(&mut self, first: &mut bool) {
        if !std::mem::take(first) {
            self.0.push(b',');
        }
    }
}

impl Build for JsonText<'_> {
    type V = ();
    type Rec = bool;
    type Arr = bool;
    fn null(&mut self) {
        self.0.extend_from_slice(b"null");
    }
    fn boolean(&mut self, b: bool) {
        self.0.extend_from_slice(if b { b"true" } else { b"false" });
    }
    fn long(&mut self, n: i64) {
        let _ = serde_json::to_writer(&mut *self.0, &n);
    }
    fn double(&mut self, n: f64) {
        // As the tree: NaN and infinity become null.
        match Number::from_f64(n) {
            Some(number) => {
                let _ = serde_json::to_writer(&mut *self.0, &number);
            }
            None => self.null(),
        }
    }
    fn string(&mut self, s: &str) {
        self.quoted(s);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.quoted(&latin1_text(b));
    }
    fn begin_record(&mut self) -> bool {
        self.0.push(b'{');
        true
    }
    fn key(&mut self, first: &mut bool, name: &str) {
        self.separator(first);
        self.quoted(name);
        self.0.push(b':');
    }
    fn field(&mut self, _: &mut bool, _: &str, _: ()) {}
    fn record(&mut self, _: bool) {
        self.0.push(b'}');
    }
    fn begin_array(&mut self) -> bool {
        self.0.push(b'[');
        true
    }
    fn item(&mut self, first: &mut bool) {
        self.separator(first);
    }
    fn push(&mut self, _: &mut bool, _: ()) {}
    fn array(&mut self, _: bool) {
        self.0.push(b']');
    }
}

fn collect_names(schema: &Schema, names: &mut HashMap<Name, Schema>) {
    match schema {
        Schema::Record(record) => {
            names.insert(record.name.clone(), schema.clone());
            for field in &record.fields {
                collect_names(&field.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.clone(), schema.clone());
        }
        Schema::Fixed(f) => {
            names.insert(f.name.clone(), schema.clone());
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|s| collect_names(s, names)),
        _ => {}
    }
}

fn finish_input(rest: &[u8]) -> Result<(), DataError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(DataError::new(format!(
            "{} bytes follow the end of the datum",
            rest.len()
        )))
    }
}

fn take<'a>(input: &mut &'a [u8], len: usize) -> Result<&'a [u8], DataError> {
    if input.len() < len {
        return Err(DataError::new(format!(
            "truncated: needs {len} more bytes, {} left",
            input.len()
        )));
    }
    let (head, tail) = input.split_at(len);
    *input = tail;
    Ok(head)
}

fn read_long(input: &mut &[u8]) -> Result<i64, DataError> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = take(input, 1)?[0];
        if shift == 63 && byte > 1 {
            return Err(DataError::new("varint overflows 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(DataError::new("varint longer than 10 bytes"))
}

fn read_len(input: &mut &[u8]) -> Result<usize, DataError> {
    let len = read_long(input)?;
    let len = usize::try_from(len).map_err(|_| DataError::new(format!("negative length {len}")))?;
    if len > input.len() {
        return Err(DataError::new(format!(
            "truncated: length {len} but {} bytes left",
            input.len()
        )));
    }
    Ok(len)
}

fn read_str<'a>(input: &mut &'a [u8]) -> Result<&'a str, DataError> {
    let len = read_len(input)?;
    std::str::from_utf8(take(input, len)?).map_err(|_| DataError::new("string is not valid UTF-8"))
}

/// Reads the item count of the next array or map block; `None` at the terminating zero block. A negative
/// count is followed by the block's byte size, which is read and checked against the input.
fn read_block_count(input: &mut &[u8], zero_width: bool, so_far: u64) -> Result<Option<u64>, DataError> {
    let count = read_long(input)?;
    if count == 0 {
        return Ok(None);
    }
    let count = if count < 0 {
        read_len(input)?;
        count.unsigned_abs()
    } else {
        count as u64
    };
    // Non-zero-width items take at least a byte each, so the remaining input bounds the count.
    let bound = if zero_width {
        MAX_ZERO_WIDTH_ITEMS
    } else {
        input.len() as u64
    };
    if so_far.saturating_add(count) > bound {
        return Err(DataError::new(format!(
            "block of {count} items cannot fit the remaining data"
        )));
    }
    Ok(Some(count))
}

fn write_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

fn latin1(value: &Value) -> Result<Vec<u8>, DataError> {
    let s = value
        .as_str()
        .ok_or_else(|| mismatch("a string of bytes", value))?;
    s.chars()
        .map(|c| {
            u8::try_from(u32::from(c))
                .map_err(|_| DataError::new("bytes are written one code point (0-255) each"))
        })
        .collect()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn mismatch(expected: &str, found: &Value) -> DataError {
    DataError::new(format!("expected {expected}, found {}", kind_of(found)))
}

fn describe(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => r.name.name().to_owned(),
        Schema::Enum(e) => e.name.name().to_owned(),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn compiled(schema: &str) -> Compiled {
        Compiled::new(Schema::parse_str(schema).unwrap())
    }

    const ANSWERS: &str = r#"{"type":"record","name":"R","fields":[
        {"name":"n","type":"int"},
        {"name":"tags","type":{"type":"array","items":"string"},"default":[]},
        {"name":"note","type":["null","string"],"default":null},
        {"name":"a","type":{"type":"map","values":["null",
            {"type":"record","name":"T","fields":[{"name":"text","type":"string"}]},
            {"type":"record","name":"N","fields":[{"name":"number","type":"double"}]}]}},
        {"name":"kind","type":{"type":"enum","name":"K","symbols":["X","Y"]}}]}"#;

    #[test]
    fn json_round_trips_through_binary() {
        let schema = compiled(ANSWERS);
        let value = json!({"n": -7, "tags": ["a", "b"], "note": "hi", "kind": "Y",
                           "a": {"q1": {"text": "hello"}, "q2": {"number": 2.5}, "q3": null}});
        let mut bytes = Vec::new();
        schema.encode_json(&value, &mut bytes).unwrap();
        schema.validate(&bytes).unwrap();
        assert_eq!(schema.to_json(&bytes).unwrap(), value);
    }

    #[test]
    fn json_text_is_the_json_value_written() {
        let schema = compiled(ANSWERS);
        for value in [
            json!({"n": -7, "tags": ["a", "b\"\n"], "note": "hi", "kind": "Y",
                   "a": {"q1": {"text": "h\u{e9}llo"}, "q2": {"number": 2.5}, "q3": null}}),
            json!({"n": 0, "a": {}, "kind": "X"}),
        ] {
            let mut bytes = Vec::new();
            schema.encode_json(&value, &mut bytes).unwrap();
            let mut text = Vec::new();
            schema.write_json(&bytes, &mut text).unwrap();
            let written: Value = serde_json::from_slice(&text).unwrap();
            assert_eq!(written, schema.to_json(&bytes).unwrap());
            assert!(
                !text.contains(&b' '),
                "compact: {}",
                String::from_utf8_lossy(&text)
            );
        }
        let mut text = Vec::new();
        let error = schema.write_json(&[0x80], &mut text).unwrap_err();
        assert_eq!(error, schema.to_json(&[0x80]).unwrap_err());
    }

    #[test]
    fn defaults_fill_missing_fields_and_unknown_fields_are_ignored() {
        let schema = compiled(ANSWERS);
        let mut bytes = Vec::new();
        schema
            .encode_json(
                &json!({"n": 1, "a": {}, "kind": "X", "added_later": true}),
                &mut bytes,
            )
            .unwrap();
        assert_eq!(
            schema.to_json(&bytes).unwrap(),
            json!({"n": 1, "tags": [], "note": null, "a": {}, "kind": "X"})
        );
    }

    #[test]
    fn json_errors_point_at_the_value() {
        let schema = compiled(ANSWERS);
        let mut out = Vec::new();
        let error = schema
            .encode_json(&json!({"n": "seven", "a": {}, "kind": "X"}), &mut out)
            .unwrap_err();
        assert_eq!(error.pointer, "/n");
        let error = schema
            .encode_json(&json!({"n": 1, "a": {"q/1": {"date": 3}}, "kind": "X"}), &mut out)
            .unwrap_err();
        assert_eq!(error.pointer, "/a/q~11");
        assert!(error.message.contains("fits none of"), "{error}");
        let error = schema
            .encode_json(&json!({"n": 1, "a": {}, "kind": "Z"}), &mut out)
            .unwrap_err();
        assert_eq!(error.to_string(), "at /kind: \"Z\" is not one of X, Y");
        let error = schema
            .encode_json(&json!({"a": {}, "kind": "X"}), &mut out)
            .unwrap_err();
        assert_eq!(error.to_string(), "at /n: is required");
        assert!(
            schema
                .encode_json(&json!({"n": 3_000_000_000i64, "a": {}, "kind": "X"}), &mut out)
                .is_err()
        );
    }

    #[test]
    fn binary_errors() {
        let schema = compiled(ANSWERS);
        let mut bytes = Vec::new();
        schema
            .encode_json(
                &json!({"n": 1, "a": {"q": {"text": "x"}}, "kind": "X"}),
                &mut bytes,
            )
            .unwrap();
        for cut in 0..bytes.len() {
            assert!(
                schema.validate(&bytes[..cut]).is_err(),
                "truncated at {cut} must fail"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            schema
                .validate(&longer)
                .unwrap_err()
                .message
                .contains("follow the end")
        );
        // enum index out of range
        let mut bad_enum = bytes.clone();
        *bad_enum.last_mut().unwrap() = 8;
        assert!(schema.validate(&bad_enum).is_err());
    }

    #[test]
    fn hostile_lengths_and_counts_are_refused_without_allocating() {
        let schema = compiled(r#"{"type":"array","items":"null"}"#);
        let mut huge = Vec::new();
        write_long(&mut huge, i64::MAX);
        huge.push(0);
        assert!(schema.validate(&huge).is_err());
        let strings = compiled(r#"{"type":"array","items":"string"}"#);
        let mut many = Vec::new();
        write_long(&mut many, 1 << 40);
        assert!(strings.validate(&many).is_err());
        let string = compiled(r#""string""#);
        let mut long_string = Vec::new();
        write_long(&mut long_string, 1 << 50);
        assert!(string.validate(&long_string).is_err());
        assert!(
            string
                .validate(&[0x02, 0xff])
                .unwrap_err()
                .message
                .contains("UTF-8")
        );
        assert!(compiled(r#""long""#).validate(&[0xff; 11]).is_err());
    }

    #[test]
    fn negative_block_counts_carry_a_byte_size() {
        let schema = compiled(r#"{"type":"array","items":"long"}"#);
        // one block of -2 items, 2 bytes long: [1, 2], then the end
        let bytes = [0x03, 0x04, 0x02, 0x04, 0x00];
        assert_eq!(schema.to_json(&bytes).unwrap(), json!([1, 2]));
    }

    #[test]
    fn named_types_resolve_when_referenced_twice() {
        let schema = compiled(
            r#"{"type":"record","name":"P","fields":[
                {"name":"a","type":{"type":"record","name":"Pt","fields":[{"name":"x","type":"int"}]}},
                {"name":"b","type":"Pt"}]}"#,
        );
        let mut bytes = Vec::new();
        schema
            .encode_json(&json!({"a": {"x": 1}, "b": {"x": 2}}), &mut bytes)
            .unwrap();
        assert_eq!(
            schema.to_json(&bytes).unwrap(),
            json!({"a": {"x": 1}, "b": {"x": 2}})
        );
    }

    #[test]
    fn parsing_canonical_form_follows_the_specification() {
        let schema = json!({"type": "record", "name": "R", "namespace": "a.b", "doc": "dropped",
            "fields": [
                {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}, "default": 0},
                {"name": "f", "type": {"type": "fixed", "name": "F", "size": 4}},
                {"name": "g", "type": "F"},
                {"name": "u", "type": ["null", {"type": "enum", "name": "x.E", "symbols": ["A"], "default": "A"}]},
                {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": "string"}}}]});
        // The same text fastavro's to_parsing_canonical_form produces for this schema.
        assert_eq!(
            parsing_canonical_form(&schema).unwrap(),
            concat!(
                r#"{"name":"a.b.R","type":"record","fields":[{"name":"t","type":"long"},"#,
                r#"{"name":"f","type":{"name":"a.b.F","type":"fixed","size":4}},{"name":"g","type":"a.b.F"},"#,
                r#"{"name":"u","type":["null",{"name":"x.E","type":"enum","symbols":["A"]}]},"#,
                r#"{"name":"m","type":{"type":"map","values":{"type":"array","items":"string"}}}]}"#
            )
        );
        assert_eq!(
            parsing_canonical_form(&json!({"type": "int"})).unwrap(),
            r#""int""#
        );
    }

    #[test]
    fn unknown_enum_symbols_take_the_default() {
        let schema = compiled(
            r#"{"type":"record","name":"Q","fields":[{"name":"kind","type":
                {"type":"enum","name":"K","symbols":["TEXT","NUMBER"],"default":"TEXT"}}]}"#,
        );
        let mut out = Vec::new();
        schema
            .encode_json(&json!({"kind": "SIGNATURE"}), &mut out)
            .unwrap();
        assert_eq!(schema.to_json(&out).unwrap(), json!({"kind": "TEXT"}));
    }

    #[test]
    fn single_object_framing() {
        assert!(split_single_object(&[0xC3, 0x01, 1, 2, 3]).is_err());
        assert!(split_single_object(&[0xC3, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 5]).is_err());
        let (fp, body) = split_single_object(&[0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
        assert_eq!(fp, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(body, [9]);
    }
}
