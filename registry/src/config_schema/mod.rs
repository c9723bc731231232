//! Plugin config schemas: compiling them, validating team configs, and keeping secrets secret.
//!
//! A plugin's manifest may carry a `config_schema`, a JSON Schema (draft 2020-12 unless its `$schema`
//! names another draft that `jsonschema` bundles: 4, 6, 7, 2019-09). Teams PUT a config for a plugin
//! they enabled; the registry validates it, stores it whole, and the plugin receives it through Kafka.
//! Properties whose subschema says `"writeOnly": true` are secrets: no API returns them and nothing
//! logs them.
//!
//! ```text
//!   manifest.config_schema ── ConfigSchema::compile ──► ConfigSchema   (refused: SchemaError)
//!
//!   PUT body ── merge_secrets(new, stored) ── validate ──► stored config ──► Kafka
//!                                                 └──► Vec<FieldError>  (422, safe to return and log)
//!   GET       ◄── redact(stored) = config without secrets + {pointer: "set" | "unset"}
//! ```
//!
//! # Compiling
//!
//! [`ConfigSchema::compile`] refuses a schema that is not a JSON object, that names a `$schema` other
//! than a bundled draft, that its draft's meta-schema rejects (every violation is reported, each with
//! a JSON pointer into the schema), whose `oneOf`/`anyOf` branches reach more than 10,000 subschemas
//! through `allOf` and `$ref` (the compiler would take exponential time), that does not compile (e.g. a
//! `pattern` that is not a regex), that refers to a document outside itself, or whose validation could
//! evaluate more than [`cost::MAX_EVALUATIONS_PER_VALUE`] subschemas at one config value, or reach a
//! subschema from itself without descending into the config (see [`cost`]). Nothing is ever
//! fetched: the crate is built without `jsonschema`'s HTTP and file resolvers and the validator is built
//! `offline()`, so an external `$ref` fails as unresolvable and is reported as
//! [`SchemaError::ExternalReference`]. References between resources embedded in the same document
//! (`$id` + `$ref`) still work. `format` is asserted
//! (an `"email"` field must hold an email address), although draft 2020-12 makes it an annotation by
//! default: plugin authors who write a format expect it to be checked.
//!
//! # Validating
//!
//! [`ConfigSchema::validate`] first bounds the work: a config whose values would need more than
//! [`cost::MAX_EVALUATIONS_PER_CONFIG`] subschema evaluations in all is refused with one error at the root,
//! before jsonschema sees it. It then returns every violation (at most [`MAX_CONFIG_ERRORS`]) with the JSON pointer of the offending place in
//! the config (`/sheet_id`, `/recipients/2`; for a missing required property, the object that lacks
//! it, with the property named in the message). Messages never quote a value from the config: the
//! client already knows what it sent, and a value that is, or sits inside, a secret must never reach a
//! response or a log line. Errors at or under a secret field go further: their pointer is the secret
//! field itself (a secret object's keys are part of the secret) and their message names only the
//! violated keyword ("the secret value does not satisfy `minLength`").
//!
//! # Secrets
//!
//! The secret fields are found once, at compile time, by walking `properties` from the root through
//! nested objects: a property whose subschema has `"writeOnly": true` is a secret, and the walk does
//! not descend into it. A local reference (`"$ref": "#/$defs/token"`) is followed (a few hops, with
//! cycle detection), so both the property's own subschema and the one it refers to count. A recursive
//! schema is walked once: a secret below a property that refers back to an ancestor is not found.
//!
//! Secrets anywhere else are **not discovered**: under array items, `additionalProperties`,
//! `patternProperties`, `anyOf`/`oneOf`/`allOf`/`if`/`then`, `$dynamicRef`, or a reference to an
//! anchor or into an embedded resource. For such a field the registry would return the value on GET,
//! and [`ConfigSchema::merge_secrets`] would not keep it across a PUT. Validation messages stay safe
//! (they never quote values), but only discovered secrets get the keyword-only treatment. Plugin
//! authors should therefore declare every secret as a plain property (possibly of a nested object)
//! with `"writeOnly": true`.
//!
//! # Round trips without reading secrets back
//!
//! A PUT replaces the whole config, yet clients can never read secrets back, so they cannot resend
//! them. [`ConfigSchema::merge_secrets`], called before validation, keeps the stored value of every
//! secret the new config leaves out, and treats an explicit JSON `null` as "clear this secret" (even
//! if the schema would allow `null` as a value). A value given replaces the stored one.

pub mod cost;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, ReferencingError, ValidationError, Validator};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use self::cost::{Cost, MAX_EVALUATIONS_PER_CONFIG};

/// Most `$ref` hops followed from one subschema while looking for secrets.
const MAX_REF_HOPS: usize = 4;
/// Deepest nesting of `properties` walked while looking for secrets.
const MAX_SECRET_DEPTH: usize = 32;
/// Most properties visited while looking for secrets; bounds the walk through shared `$defs`.
const MAX_SECRET_VISITS: usize = 10_000;
/// Most subschemas reached through `allOf` and `$ref` from the branches of all `oneOf`s and `anyOf`s.
const MAX_BRANCH_VISITS: usize = 10_000;
/// How deep jsonschema's compiler follows `allOf` and `$ref` from a `oneOf`/`anyOf` branch (the limit
/// of its discriminator, which looks for a property that tells the branches apart).
const BRANCH_LOOKUP_DEPTH: usize = 16;
/// Most violations [`ConfigSchema::validate`] reports for one config; the rest are summarized in one more.
pub const MAX_CONFIG_ERRORS: usize = 100;
/// Most sub-errors of an `anyOf`/`oneOf` quoted in a schema problem's message.
const MAX_QUOTED_ALTERNATIVES: usize = 4;
/// Keywords whose values are data, not subschemas: a `$ref` inside them is not a reference.
const DATA_KEYWORDS: [&str; 4] = ["const", "enum", "default", "examples"];
/// Keywords that refer to another schema.
const REFERENCE_KEYWORDS: [&str; 3] = ["$ref", "$dynamicRef", "$recursiveRef"];
/// Keywords whose value maps names (not keywords) to subschemas.
const NAME_MAP_KEYWORDS: [&str; 5] = [
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// Something wrong at one place of a JSON document: a schema or a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Error)]
#[error("at {}: {detail}", if pointer.is_empty() { "/" } else { pointer.as_str() })]
pub struct FieldError {
    /// JSON pointer (RFC 6901) of the offending place, `""` for the document root.
    pub pointer: String,
    /// What is wrong, as a phrase; never quotes a value from a config.
    pub detail: String,
}

impl FieldError {
    fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }
}

/// Why a plugin's `config_schema` was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchemaError {
    /// The schema is not a JSON object (booleans are valid JSON Schemas, but not useful configs).
    #[error("the config schema must be a JSON object, not {found}")]
    NotAnObject {
        /// The JSON type that was given instead.
        found: &'static str,
    },
    /// `$schema` names a meta-schema other than the bundled drafts.
    #[error("the config schema's $schema {uri:?} is not a supported JSON Schema draft")]
    UnsupportedDraft {
        /// The `$schema` value.
        uri: String,
    },
    /// The schema violates its meta-schema or does not compile.
    #[error("the config schema is not a valid JSON Schema: {}", summary(problems))]
    Invalid {
        /// Every problem found, each with a pointer into the schema.
        problems: Vec<FieldError>,
    },
    /// The schema refers to a document outside itself, which is never fetched.
    #[error(
        "the config schema refers to an external document, which is never fetched: {}",
        summary(problems)
    )]
    ExternalReference {
        /// The references that could not be resolved within the schema.
        problems: Vec<FieldError>,
    },
    /// Compiling would follow `allOf` and `$ref` from `oneOf`/`anyOf` branches to too many subschemas:
    /// jsonschema does that without remembering where it has been, so an `allOf` that refers to its own
    /// definition a few times makes compiling take exponential time.
    #[error(
        "the config schema's oneOf/anyOf branches reach too many subschemas through allOf and $ref (at most {MAX_BRANCH_VISITS})"
    )]
    TooManyBranchReferences,
    /// Validating one config value could evaluate more subschemas than the bound (see [`cost`]).
    #[error(
        "validating a config against this schema could evaluate more than {bound} subschemas at one value (at depth {depth} of the config); the schema's anyOf/oneOf/allOf and $ref multiply the work: simplify it"
    )]
    TooCostly {
        /// The config depth (0 = the root) where the bound is first exceeded.
        depth: usize,
        /// [`cost::MAX_EVALUATIONS_PER_VALUE`].
        bound: u64,
    },
    /// A subschema reaches itself through `$ref`s and combinators without descending into the config, so
    /// validating would never end.
    #[error(
        "the config schema refers to itself without descending into the config (e.g. {{\"$ref\": \"#\"}}): validating would never end"
    )]
    SelfReferential,
    /// Finding the secret fields would walk too deep or too many properties.
    #[error("the config schema nests its properties too deeply or too often to find its secret fields")]
    TooComplex {
        /// Pointer (into configs) of the property where the walk gave up.
        pointer: String,
    },
}

impl SchemaError {
    /// Every problem as a pointer into the schema plus a message, for an API response.
    pub fn problems(&self) -> Vec<FieldError> {
        match self {
            Self::NotAnObject { .. } => vec![FieldError::new("", self.to_string())],
            Self::UnsupportedDraft { .. } => vec![FieldError::new("/$schema", self.to_string())],
            Self::Invalid { problems } | Self::ExternalReference { problems } => problems.clone(),
            Self::TooComplex { .. }
            | Self::TooManyBranchReferences
            | Self::TooCostly { .. }
            | Self::SelfReferential => {
                vec![FieldError::new("", self.to_string())]
            }
        }
    }
}

/// "the first problem" or "the first problem (and N more)".
fn summary(problems: &[FieldError]) -> String {
    match problems {
        [] => "no details".to_owned(),
        [only] => only.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// Whether a secret field holds a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretState {
    /// The config holds a value (not `null`) for the field.
    Set,
    /// The config holds no value for the field.
    Unset,
}

/// A config fit to return or log: its secrets removed and only their presence reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Redacted {
    /// The config with every (discovered) secret field removed.
    pub config: Value,
    /// Each secret field's pointer with whether the config sets it.
    pub secrets: BTreeMap<String, SecretState>,
}

/// One secret field: its pointer in configs and the property names leading to it.
#[derive(Debug, Clone)]
struct SecretField {
    pointer: String,
    segments: Vec<String>,
}

impl SecretField {
    /// Whether `pointer` is this field or lies inside it.
    fn covers(&self, pointer: &str) -> bool {
        pointer
            .strip_prefix(self.pointer.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// A compiled plugin config schema, with the secret fields it declares.
///
/// It holds only the schema, never a config; its `Debug` shows the secret pointers.
pub struct ConfigSchema {
    validator: Validator,
    secrets: Vec<SecretField>,
    cost: Cost,
}

impl fmt::Debug for ConfigSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSchema")
            .field("secret_pointers", &self.secret_pointers())
            .finish_non_exhaustive()
    }
}

impl ConfigSchema {
    /// Checks `schema` against its meta-schema, compiles it and finds its secret fields.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] when the schema is not an object, names an unsupported `$schema`, violates its
    /// meta-schema, would make jsonschema's compiler follow too many references from `oneOf`/`anyOf`
    /// branches, does not compile, refers to an external document, or is too convoluted to find its
    /// secrets in.
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        if !schema.is_object() {
            return Err(SchemaError::NotAnObject {
                found: json_type(schema),
            });
        }
        if let Some(Value::String(uri)) = schema.get("$schema")
            && !is_bundled_draft(uri)
        {
            return Err(SchemaError::UnsupportedDraft { uri: uri.clone() });
        }
        check_against_meta_schema(schema)?;
        check_branch_references(schema)?;
        let validator = jsonschema::options()
            .offline()
            .should_validate_formats(true)
            .build(schema)
            .map_err(|error| build_error(schema, &error))?;
        let cost = Cost::of(schema)?;
        let secrets = discover_secrets(schema)?;
        Ok(Self {
            validator,
            secrets,
            cost,
        })
    }

    /// Validates a config, returning every violation.
    ///
    /// Call [`ConfigSchema::merge_secrets`] first on a PUT. The errors never quote a config value, and
    /// errors inside a secret field point at the field and name only the violated keyword, so they are
    /// safe to return and to log.
    ///
    /// # Errors
    ///
    /// One [`FieldError`] per violation (duplicates merged), pointing into the config, sorted by pointer
    /// (errors at one pointer keep the order in which they were found). At most [`MAX_CONFIG_ERRORS`]
    /// of them, then one at the root saying that there are more. A config too large to validate within
    /// [`MAX_EVALUATIONS_PER_CONFIG`] gets a single error at the root.
    pub fn validate(&self, config: &Value) -> Result<(), Vec<FieldError>> {
        let evaluations = self.cost.of_config(config);
        if evaluations > MAX_EVALUATIONS_PER_CONFIG {
            return Err(vec![FieldError::new(
                "",
                format!(
                    "the config is too large to validate against this plugin's config_schema: it could take {evaluations} subschema evaluations, at most {MAX_EVALUATIONS_PER_CONFIG} are allowed"
                ),
            )]);
        }
        // A valid config costs one pass that stops at nothing and collects nothing.
        if self.validator.is_valid(config) {
            return Ok(());
        }
        let mut errors: Vec<FieldError> = Vec::new();
        let mut truncated = false;
        for error in self.validator.iter_errors(config) {
            if errors.len() == MAX_CONFIG_ERRORS {
                truncated = true;
                break;
            }
            let pointer = error.instance_path().as_str();
            let field = match self.secret_covering(pointer) {
                Some(secret) => FieldError::new(
                    secret.pointer.as_str(),
                    format!("the secret value does not satisfy `{}`", error.kind().keyword()),
                ),
                None => FieldError::new(pointer, error.masked_with("the value").to_string()),
            };
            if !errors.contains(&field) {
                errors.push(field);
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        errors.sort_by(|a, b| a.pointer.cmp(&b.pointer));
        if truncated {
            errors.push(FieldError::new(
                "",
                format!("more violations were found; only the first {MAX_CONFIG_ERRORS} are listed"),
            ));
            // The summary sits at the root, so the pointers stay sorted.
            errors.rotate_right(1);
        }
        Err(errors)
    }

    /// The most subschema evaluations validating one config value can take (see [`cost`]).
    pub fn evaluations_per_value(&self) -> u64 {
        self.cost.per_value()
    }

    /// The JSON pointers, in config terms, of every secret field found, in sorted order.
    ///
    /// See the module documentation for where secrets are looked for and where they are not.
    pub fn secret_pointers(&self) -> Vec<String> {
        self.secrets.iter().map(|secret| secret.pointer.clone()).collect()
    }

    /// The config without its secret fields, and whether each of them is set.
    ///
    /// A secret holding `null` counts as unset.
    pub fn redact(&self, config: &Value) -> Redacted {
        let mut config = config.clone();
        let mut secrets = BTreeMap::new();
        for secret in &self.secrets {
            let state = if remove_at(&mut config, &secret.segments) {
                SecretState::Set
            } else {
                SecretState::Unset
            };
            secrets.insert(secret.pointer.clone(), state);
        }
        Redacted { config, secrets }
    }

    /// Carries secrets over from the stored config into a new one that replaces it; call before
    /// [`ConfigSchema::validate`].
    ///
    /// For each secret field whose parent object exists in `new`:
    /// - absent from `new`: keeps the value from `previous`, if that has one (not `null`);
    /// - `null` in `new`: removed, clearing the secret (even where the schema allows `null`);
    /// - any other value in `new`: kept, replacing the stored one.
    ///
    /// When the parent object is absent from `new` (say the client dropped the whole `sms` section),
    /// nothing is carried over: the section is not recreated just to hold a secret.
    pub fn merge_secrets(&self, new: &mut Value, previous: Option<&Value>) {
        for secret in &self.secrets {
            let Some((name, parents)) = secret.segments.split_last() else {
                continue;
            };
            let Some(parent) = object_at_mut(new, parents) else {
                continue;
            };
            match parent.get(name) {
                Some(Value::Null) => remove_key(parent, name),
                Some(_) => {}
                None => {
                    let kept = previous
                        .and_then(|previous| value_at(previous, &secret.segments))
                        .filter(|value| !value.is_null());
                    if let Some(kept) = kept {
                        parent.insert(name.clone(), kept.clone());
                    }
                }
            }
        }
    }

    /// The secret field at or above `pointer`, if any.
    fn secret_covering(&self, pointer: &str) -> Option<&SecretField> {
        self.secrets.iter().find(|secret| secret.covers(pointer))
    }
}

/// Refuses a schema whose `oneOf`/`anyOf` branches reach more than [`MAX_BRANCH_VISITS`] subschemas through
/// `allOf` and `$ref`s, counted as jsonschema's compiler follows them (to [`BRANCH_LOOKUP_DEPTH`], without
/// remembering visited ones). Found by the `team_config` fuzz target: `{"$defs": {"d": {"allOf": [{"$ref":
/// "#/$defs/d"}, ...]}}, "oneOf": [...]}` kept the compiler busy for longer than any timeout. References
/// are followed to JSON pointers and plain-name anchors of the whole document; one relative to an
/// embedded resource's `$id` is not followed (and not counted).
fn check_branch_references(schema: &Value) -> Result<(), SchemaError> {
    let mut branches = Vec::new();
    let mut anchors = HashMap::new();
    let mut pending = vec![schema];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(object) => {
                for (keyword, child) in object {
                    if DATA_KEYWORDS.contains(&keyword.as_str()) {
                        continue;
                    }
                    match (keyword.as_str(), child) {
                        ("oneOf" | "anyOf", Value::Array(items)) => branches.extend(items),
                        ("$anchor", Value::String(name)) => {
                            anchors.insert(name.as_str(), value);
                        }
                        ("$id" | "id", Value::String(id)) if id.starts_with('#') => {
                            anchors.insert(&id[1..], value);
                        }
                        _ => {}
                    }
                    pending.push(child);
                }
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    let walk = BranchWalk {
        root: schema,
        anchors,
    };
    let mut visits = 0;
    for branch in branches {
        walk.count(branch, 0, &mut visits)?;
    }
    Ok(())
}

/// What [`check_branch_references`] needs to follow references.
struct BranchWalk<'a> {
    root: &'a Value,
    anchors: HashMap<&'a str, &'a Value>,
}

impl<'a> BranchWalk<'a> {
    fn target(&self, reference: &str) -> Option<&'a Value> {
        resolve_local(self.root, reference).or_else(|| {
            let name = reference.strip_prefix('#')?;
            self.anchors.get(name).copied()
        })
    }

    fn count(&self, schema: &'a Value, depth: usize, visits: &mut usize) -> Result<(), SchemaError> {
        let Value::Object(object) = schema else {
            return Ok(());
        };
        if depth > BRANCH_LOOKUP_DEPTH {
            return Ok(());
        }
        *visits += 1;
        if *visits > MAX_BRANCH_VISITS {
            return Err(SchemaError::TooManyBranchReferences);
        }
        if let Some(target) = object
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|reference| self.target(reference))
        {
            self.count(target, depth + 1, visits)?;
        }
        if let Some(Value::Array(all_of)) = object.get("allOf") {
            for item in all_of {
                self.count(item, depth + 1, visits)?;
            }
        }
        Ok(())
    }
}

/// Resolves `#` or `#/json/pointer` against the root; anchors and percent-encoded pointers are not
/// resolved.
fn resolve_local<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let fragment = reference.strip_prefix('#')?;
    if fragment.contains('%') || !(fragment.is_empty() || fragment.starts_with('/')) {
        return None;
    }
    root.pointer(fragment)
}

/// The JSON type of a value, as a noun phrase.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether `uri` names one of the drafts `jsonschema` bundles (so nothing needs fetching).
fn is_bundled_draft(uri: &str) -> bool {
    matches!(
        Draft::from_schema_uri(uri),
        Draft::Draft4 | Draft::Draft6 | Draft::Draft7 | Draft::Draft201909 | Draft::Draft202012
    )
}

/// Reports every violation of the schema's meta-schema.
fn check_against_meta_schema(schema: &Value) -> Result<(), SchemaError> {
    let meta = jsonschema::meta::validator_for(schema).map_err(|error| SchemaError::Invalid {
        problems: vec![FieldError::new("/$schema", error.to_string())],
    })?;
    let problems: Vec<FieldError> = meta
        .iter_errors(schema)
        .map(|error| FieldError::new(error.instance_path().as_str(), describe_schema_problem(&error)))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SchemaError::Invalid { problems })
    }
}

/// A meta-schema violation's message; for `anyOf`/`oneOf` it also says why each alternative failed,
/// since "not valid under any of the schemas" alone does not help a plugin author.
fn describe_schema_problem(error: &ValidationError<'_>) -> String {
    let alternatives = match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => context,
        _ => return error.to_string(),
    };
    let reasons: Vec<String> = alternatives
        .iter()
        .filter_map(|errors| errors.first())
        .take(MAX_QUOTED_ALTERNATIVES)
        .map(ToString::to_string)
        .collect();
    if reasons.is_empty() {
        error.to_string()
    } else {
        format!("{error} ({})", reasons.join("; "))
    }
}

/// Turns a failure to build the validator into a [`SchemaError`].
fn build_error(schema: &Value, error: &ValidationError<'_>) -> SchemaError {
    let ValidationErrorKind::Referencing(reference_error) = error.kind() else {
        return SchemaError::Invalid {
            problems: vec![FieldError::new(error.instance_path().as_str(), error.to_string())],
        };
    };
    let mut references = Vec::new();
    collect_references(schema, false, &mut String::new(), &mut references);
    match reference_error {
        ReferencingError::Unretrievable { uri, .. } => {
            let target = strip_fragment(uri);
            let matching: Vec<&(String, String)> = references
                .iter()
                .filter(|(_, reference)| !reference.starts_with('#'))
                .filter(|(_, reference)| {
                    let reference = strip_fragment(reference);
                    target == reference || target.ends_with(&format!("/{reference}"))
                })
                .collect();
            let problems = if matching.is_empty() {
                vec![FieldError::new("", external_reference_detail(uri))]
            } else {
                matching
                    .into_iter()
                    .map(|(pointer, reference)| {
                        FieldError::new(pointer.as_str(), external_reference_detail(reference))
                    })
                    .collect()
            };
            SchemaError::ExternalReference { problems }
        }
        ReferencingError::PointerToNowhere { pointer } => {
            let wanted = format!("#{pointer}");
            let mut problems: Vec<FieldError> = references
                .iter()
                .filter(|(_, reference)| *reference == wanted)
                .map(|(at, reference)| FieldError::new(at.as_str(), format!("{reference:?} points nowhere")))
                .collect();
            if problems.is_empty() {
                problems.push(FieldError::new("", reference_error.to_string()));
            }
            SchemaError::Invalid { problems }
        }
        other => SchemaError::Invalid {
            problems: vec![FieldError::new("", other.to_string())],
        },
    }
}

/// The message for a reference that leaves the schema.
fn external_reference_detail(reference: &str) -> String {
    format!("the reference {reference:?} leaves this schema; external documents are never fetched")
}

/// `uri` without its `#fragment`.
fn strip_fragment(uri: &str) -> &str {
    uri.split_once('#').map_or(uri, |(base, _)| base)
}

/// Collects `(pointer, value)` of every `$ref`, `$dynamicRef` and `$recursiveRef` in a schema, skipping
/// keywords that hold data. `keys_are_names` is set inside `properties`, `$defs` and the like, whose
/// keys are names chosen by the author rather than keywords.
fn collect_references(
    node: &Value,
    keys_are_names: bool,
    pointer: &mut String,
    out: &mut Vec<(String, String)>,
) {
    match node {
        Value::Object(map) => {
            for (key, child) in map {
                let keyword = (!keys_are_names).then_some(key.as_str());
                if keyword.is_some_and(|keyword| DATA_KEYWORDS.contains(&keyword)) {
                    continue;
                }
                let length = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape_segment(key));
                match child {
                    Value::String(reference)
                        if keyword.is_some_and(|keyword| REFERENCE_KEYWORDS.contains(&keyword)) =>
                    {
                        out.push((pointer.clone(), reference.clone()));
                    }
                    _ => {
                        let names_follow =
                            keyword.is_some_and(|keyword| NAME_MAP_KEYWORDS.contains(&keyword));
                        collect_references(child, names_follow, pointer, out);
                    }
                }
                pointer.truncate(length);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let length = pointer.len();
                pointer.push('/');
                pointer.push_str(&index.to_string());
                collect_references(child, false, pointer, out);
                pointer.truncate(length);
            }
        }
        _ => {}
    }
}

/// Escapes one JSON pointer segment (RFC 6901).
fn escape_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Finds the secret fields of a schema, sorted by pointer.
fn discover_secrets(schema: &Value) -> Result<Vec<SecretField>, SchemaError> {
    let mut walk = SecretWalk {
        root: schema,
        path: Vec::new(),
        stack: Vec::new(),
        visits: 0,
        found: BTreeMap::new(),
    };
    walk.properties_of(schema)?;
    Ok(walk
        .found
        .into_iter()
        .map(|(pointer, segments)| SecretField { pointer, segments })
        .collect())
}

/// State of the walk through `properties` looking for `writeOnly` fields.
struct SecretWalk<'a> {
    root: &'a Value,
    /// Property names from the root to the property being looked at.
    path: Vec<String>,
    /// Subschemas whose properties are being walked, to stop at cycles through `$ref`.
    stack: Vec<&'a Map<String, Value>>,
    visits: usize,
    found: BTreeMap<String, Vec<String>>,
}

impl<'a> SecretWalk<'a> {
    fn pointer(&self) -> String {
        self.path
            .iter()
            .map(|segment| format!("/{}", escape_segment(segment)))
            .collect()
    }

    /// Walks the properties declared by `schema` and by the local subschemas it refers to.
    fn properties_of(&mut self, schema: &'a Value) -> Result<(), SchemaError> {
        if self.path.len() > MAX_SECRET_DEPTH {
            return Err(SchemaError::TooComplex {
                pointer: self.pointer(),
            });
        }
        for view in self.views(schema) {
            if self.stack.iter().any(|seen| std::ptr::eq(*seen, view)) {
                continue;
            }
            let Some(properties) = view.get("properties").and_then(Value::as_object) else {
                continue;
            };
            self.stack.push(view);
            for (name, subschema) in properties {
                self.visits += 1;
                self.path.push(name.clone());
                if self.visits > MAX_SECRET_VISITS {
                    return Err(SchemaError::TooComplex {
                        pointer: self.pointer(),
                    });
                }
                if self.is_write_only(subschema) {
                    self.found.insert(self.pointer(), self.path.clone());
                } else {
                    self.properties_of(subschema)?;
                }
                self.path.pop();
            }
            self.stack.pop();
        }
        Ok(())
    }

    fn is_write_only(&self, schema: &'a Value) -> bool {
        self.views(schema)
            .iter()
            .any(|view| view.get("writeOnly") == Some(&Value::Bool(true)))
    }

    /// `schema` itself, then the subschemas its local `$ref` chain leads to.
    fn views(&self, schema: &'a Value) -> Vec<&'a Map<String, Value>> {
        let mut views = Vec::new();
        let mut current = schema;
        while let Some(object) = current.as_object() {
            views.push(object);
            if views.len() > MAX_REF_HOPS {
                break;
            }
            match object
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| self.resolve_local(r))
            {
                Some(next) => current = next,
                None => break,
            }
        }
        views
    }

    fn resolve_local(&self, reference: &str) -> Option<&'a Value> {
        resolve_local(self.root, reference)
    }
}

/// Removes the value at the property path `segments`; returns whether it was there and not `null`.
fn remove_at(value: &mut Value, segments: &[String]) -> bool {
    let Some((name, parents)) = segments.split_last() else {
        return false;
    };
    let Some(parent) = object_at_mut(value, parents) else {
        return false;
    };
    let set = parent.get(name).is_some_and(|value| !value.is_null());
    remove_key(parent, name);
    set
}

/// Removes `name` from `object`, keeping the other keys' order (`Map::remove` would swap the last key
/// into its place when serde_json's `preserve_order` is on).
fn remove_key(object: &mut Map<String, Value>, name: &str) {
    object.retain(|key, _| key != name);
}

/// The object at the property path `segments`, if it is there and an object.
fn object_at_mut<'v>(value: &'v mut Value, segments: &[String]) -> Option<&'v mut Map<String, Value>> {
    let mut current = value;
    for segment in segments {
        current = current.as_object_mut()?.get_mut(segment)?;
    }
    current.as_object_mut()
}

/// The value at the property path `segments`, if present.
fn value_at<'v>(value: &'v Value, segments: &[String]) -> Option<&'v Value> {
    segments
        .iter()
        .try_fold(value, |current, segment| current.as_object()?.get(segment))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET_KEY: &str = "LEAKY_sa_key!";
    const SECRET_TOKEN: &str = "tok with spaces";

    /// A Google-Sheets export plugin's config schema.
    fn sheets_schema() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Google Sheets export",
            "type": "object",
            "required": ["spreadsheet_id", "service_account_key"],
            "additionalProperties": false,
            "properties": {
                "spreadsheet_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{10,}$"},
                "sheet_name": {"type": "string", "default": "Events", "maxLength": 100},
                "service_account_key": {
                    "type": "string",
                    "writeOnly": true,
                    "minLength": 20,
                    "pattern": "^[a-z0-9-]+$"
                },
                "recipients": {"type": "array", "items": {"type": "string", "format": "email"}},
                "sms": {
                    "type": "object",
                    "required": ["provider"],
                    "additionalProperties": false,
                    "properties": {
                        "provider": {"enum": ["twilio", "vonage"]},
                        "api_token": {"type": "string", "writeOnly": true, "minLength": 20}
                    }
                }
            }
        })
    }

    fn sheets() -> ConfigSchema {
        ConfigSchema::compile(&sheets_schema()).expect("the sheets schema compiles")
    }

    fn valid_config() -> Value {
        json!({
            "spreadsheet_id": "1AbCdEfGhIjKlMnOp",
            "sheet_name": "Signups",
            "service_account_key": "0123456789-abcdef-0123456789",
            "recipients": ["ops@example.com"],
            "sms": {"provider": "twilio", "api_token": "abcdefghijklmnopqrstuvwxyz"}
        })
    }

    fn errors_for(config: Value) -> Vec<FieldError> {
        sheets().validate(&config).expect_err("the config is invalid")
    }

    fn pointers(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|error| error.pointer.as_str()).collect()
    }

    #[test]
    fn a_valid_config_passes() {
        assert_eq!(sheets().validate(&valid_config()), Ok(()));
    }

    #[test]
    fn a_wrong_type_points_at_the_field() {
        let mut config = valid_config();
        config["spreadsheet_id"] = json!(12);
        let errors = errors_for(config);
        assert_eq!(pointers(&errors), ["/spreadsheet_id"]);
        assert!(errors[0].detail.contains("\"string\""), "{errors:?}");
        assert!(
            !errors[0].detail.contains("12"),
            "values are never quoted: {errors:?}"
        );
    }

    #[test]
    fn a_missing_required_property_points_at_its_object_and_names_it() {
        let mut config = valid_config();
        config.as_object_mut().unwrap().remove("spreadsheet_id");
        config["sms"].as_object_mut().unwrap().remove("provider");
        let errors = errors_for(config);
        assert_eq!(errors.len(), 2, "{errors:?}");
        let root = errors
            .iter()
            .find(|e| e.pointer.is_empty())
            .expect("an error at the root");
        assert!(root.detail.contains("spreadsheet_id"), "{root:?}");
        let sms = errors
            .iter()
            .find(|e| e.pointer == "/sms")
            .expect("an error at /sms");
        assert!(sms.detail.contains("provider"), "{sms:?}");
    }

    #[test]
    fn an_unexpected_property_is_named() {
        let mut config = valid_config();
        config["sheet_title"] = json!("typo");
        config["sms"]["region"] = json!("eu");
        let errors = errors_for(config);
        assert_eq!(pointers(&errors), ["", "/sms"]);
        assert!(errors[0].detail.contains("sheet_title"), "{errors:?}");
        assert!(errors[1].detail.contains("region"), "{errors:?}");
    }

    #[test]
    fn enum_format_and_array_errors_point_at_the_nested_value() {
        let mut config = valid_config();
        config["sms"]["provider"] = json!("pigeon");
        config["recipients"] = json!(["a@example.com", "b@example.com", "not an address"]);
        let errors = errors_for(config);
        assert_eq!(pointers(&errors), ["/recipients/2", "/sms/provider"]);
        assert!(errors[1].detail.contains("\"twilio\""), "{errors:?}");
        assert!(
            !errors
                .iter()
                .any(|e| e.detail.contains("pigeon") || e.detail.contains("not an"))
        );
    }

    #[test]
    fn secret_values_never_appear_in_errors() {
        let schema = ConfigSchema::compile(&json!({
            "type": "object",
            "properties": {
                "service_account_key": {"type": "string", "writeOnly": true, "minLength": 20, "pattern": "^[a-z]+$"},
                "credentials": {
                    "type": "object",
                    "writeOnly": true,
                    "propertyNames": {"pattern": "^[a-z]+$"},
                    "additionalProperties": {"type": "integer"}
                }
            },
            "not": {"required": ["forbidden"]},
            "anyOf": [{"required": ["nothing"]}, {"minProperties": 5}]
        }))
        .unwrap();
        let config = json!({
            "service_account_key": SECRET_KEY,
            "credentials": {"LEAKY_NAME": SECRET_TOKEN},
            "forbidden": true
        });
        let errors = schema.validate(&config).expect_err("the config is invalid");
        let shown = format!(
            "{errors:?} {}",
            errors.iter().map(ToString::to_string).collect::<String>()
        );
        for secret in [SECRET_KEY, "LEAKY", SECRET_TOKEN] {
            assert!(!shown.contains(secret), "{secret:?} leaked into {shown}");
        }
        let key_errors: Vec<&str> = errors
            .iter()
            .filter(|e| e.pointer == "/service_account_key")
            .map(|e| e.detail.as_str())
            .collect();
        assert_eq!(
            key_errors,
            [
                "the secret value does not satisfy `minLength`",
                "the secret value does not satisfy `pattern`"
            ]
        );
        assert!(errors.iter().any(|e| e.pointer == "/credentials"), "{errors:?}");
        assert!(
            !errors.iter().any(|e| e.pointer.starts_with("/credentials/")),
            "{errors:?}"
        );
    }

    #[test]
    fn the_sheets_secrets_stay_out_of_errors_too() {
        let mut config = valid_config();
        config["service_account_key"] = json!(SECRET_KEY);
        config["sms"]["api_token"] = json!(SECRET_TOKEN);
        let errors = errors_for(config);
        assert_eq!(
            pointers(&errors),
            ["/service_account_key", "/service_account_key", "/sms/api_token"]
        );
        assert!(!format!("{errors:?}").contains(SECRET_KEY));
        assert!(!format!("{errors:?}").contains(SECRET_TOKEN));
    }

    #[test]
    fn secret_pointers_are_found_in_nested_objects() {
        assert_eq!(
            sheets().secret_pointers(),
            ["/service_account_key", "/sms/api_token"]
        );
    }

    #[test]
    fn secret_pointers_follow_local_references_and_escape_names() {
        let schema = ConfigSchema::compile(&json!({
            "$defs": {
                "token": {"type": "string", "writeOnly": true},
                "auth": {"type": "object", "properties": {"password": {"$ref": "#/$defs/token"}}},
                "node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}
            },
            "properties": {
                "auth": {"$ref": "#/$defs/auth"},
                "a/b~c": {"writeOnly": true},
                "tree": {"$ref": "#/$defs/node"},
                "list": {"type": "array", "items": {"type": "string", "writeOnly": true}}
            }
        }))
        .unwrap();
        assert_eq!(schema.secret_pointers(), ["/auth/password", "/a~1b~0c"]);
    }

    #[test]
    fn a_schema_too_convoluted_to_search_is_refused() {
        // 40 levels of `$defs`, each with two properties referring to the next: 2^40 paths.
        let mut defs = Map::new();
        for level in 0..40 {
            let next = json!({"$ref": format!("#/$defs/l{}", level + 1)});
            defs.insert(format!("l{level}"), json!({"properties": {"a": next, "b": next}}));
        }
        defs.insert("l40".to_owned(), json!({"type": "string"}));
        let schema = json!({"$defs": defs, "$ref": "#/$defs/l0"});
        assert!(matches!(
            ConfigSchema::compile(&schema),
            Err(SchemaError::TooComplex { .. })
        ));
    }

    #[test]
    fn redact_removes_secrets_and_reports_whether_they_are_set() {
        let mut config = valid_config();
        config["sms"].as_object_mut().unwrap().remove("api_token");
        let redacted = sheets().redact(&config);
        assert_eq!(
            redacted.config,
            json!({
                "spreadsheet_id": "1AbCdEfGhIjKlMnOp",
                "sheet_name": "Signups",
                "recipients": ["ops@example.com"],
                "sms": {"provider": "twilio"}
            })
        );
        assert_eq!(
            serde_json::to_value(&redacted).unwrap()["secrets"],
            json!({"/service_account_key": "set", "/sms/api_token": "unset"})
        );
    }

    #[test]
    fn redact_counts_null_and_missing_parents_as_unset() {
        let redacted = sheets().redact(&json!({"service_account_key": null}));
        assert_eq!(redacted.config, json!({}));
        assert!(
            redacted
                .secrets
                .values()
                .all(|state| *state == SecretState::Unset)
        );
    }

    #[test]
    fn merge_keeps_omitted_clears_null_and_replaces_given_secrets() {
        let schema = sheets();
        let previous = valid_config();

        let mut omitted = valid_config();
        omitted.as_object_mut().unwrap().remove("service_account_key");
        omitted["sms"].as_object_mut().unwrap().remove("api_token");
        schema.merge_secrets(&mut omitted, Some(&previous));
        assert_eq!(omitted, previous);

        let mut cleared = valid_config();
        cleared["sms"]["api_token"] = Value::Null;
        schema.merge_secrets(&mut cleared, Some(&previous));
        assert_eq!(cleared["sms"], json!({"provider": "twilio"}));

        let mut replaced = valid_config();
        replaced["service_account_key"] = json!("a-brand-new-key-0123456789");
        schema.merge_secrets(&mut replaced, Some(&previous));
        assert_eq!(replaced["service_account_key"], "a-brand-new-key-0123456789");
        assert_eq!(schema.validate(&replaced), Ok(()));
    }

    #[test]
    fn merge_does_not_recreate_a_dropped_section_or_invent_values() {
        let schema = sheets();
        let mut without_sms = json!({"spreadsheet_id": "1AbCdEfGhIjKlMnOp"});
        schema.merge_secrets(&mut without_sms, Some(&valid_config()));
        assert_eq!(
            without_sms,
            json!({
                "spreadsheet_id": "1AbCdEfGhIjKlMnOp",
                "service_account_key": "0123456789-abcdef-0123456789"
            })
        );

        let mut first_put = json!({"spreadsheet_id": "x", "sms": {"api_token": null}});
        schema.merge_secrets(&mut first_put, None);
        assert_eq!(first_put, json!({"spreadsheet_id": "x", "sms": {}}));

        let mut not_an_object = json!([1, 2]);
        schema.merge_secrets(&mut not_an_object, Some(&valid_config()));
        assert_eq!(not_an_object, json!([1, 2]));
    }

    fn problems_of(schema: Value) -> Vec<FieldError> {
        ConfigSchema::compile(&schema)
            .expect_err("the schema is refused")
            .problems()
    }

    #[test]
    fn invalid_schemas_are_refused_with_pointers() {
        assert_eq!(pointers(&problems_of(json!({"type": 12}))), ["/type"]);
        assert_eq!(pointers(&problems_of(json!({"minLength": -1}))), ["/minLength"]);
        assert_eq!(
            pointers(&problems_of(json!({
                "properties": {"a": {"type": "strin"}, "b": {"minLength": "x"}}
            }))),
            ["/properties/a/type", "/properties/b/minLength"]
        );
        assert_eq!(
            pointers(&problems_of(json!({"pattern": "(unclosed"}))),
            ["/pattern"]
        );
        assert_eq!(
            pointers(&problems_of(
                json!({"properties": {"a": {"$ref": "#/$defs/missing"}}})
            )),
            ["/properties/a/$ref"]
        );
        let type_problem = &problems_of(json!({"type": 12}))[0];
        assert!(
            type_problem.detail.contains("is not one of \"array\""),
            "{type_problem:?}"
        );
    }

    #[test]
    fn non_object_schemas_are_refused() {
        for schema in [json!([1]), json!(true), json!("object"), Value::Null] {
            let error = ConfigSchema::compile(&schema).expect_err("refused");
            assert!(matches!(error, SchemaError::NotAnObject { .. }));
            assert_eq!(pointers(&error.problems()), [""]);
        }
    }

    #[test]
    fn external_references_are_refused_without_fetching() {
        let error = ConfigSchema::compile(&json!({
            "properties": {"x": {"$ref": "https://evil.example/x.json"}}
        }))
        .expect_err("refused");
        assert!(matches!(error, SchemaError::ExternalReference { .. }), "{error}");
        assert_eq!(pointers(&error.problems()), ["/properties/x/$ref"]);
        assert!(error.to_string().contains("evil.example"), "{error}");

        let named_default = ConfigSchema::compile(&json!({
            "properties": {"default": {"$ref": "https://evil.example/d.json"}, "const": {"const": {"$ref": "x"}}}
        }))
        .expect_err("refused");
        assert_eq!(pointers(&named_default.problems()), ["/properties/default/$ref"]);

        let relative = ConfigSchema::compile(&json!({"$ref": "other.json#/x"})).expect_err("refused");
        assert_eq!(pointers(&relative.problems()), ["/$ref"]);

        let dynamic = ConfigSchema::compile(&json!({"$dynamicRef": "https://evil.example/y"}));
        assert!(
            matches!(dynamic, Err(SchemaError::ExternalReference { .. })),
            "{dynamic:?}"
        );
    }

    #[test]
    fn references_within_embedded_resources_compile() {
        let schema = json!({
            "$id": "https://plugins.test/sheets",
            "$defs": {"id": {"$id": "id", "type": "string"}},
            "properties": {"spreadsheet_id": {"$ref": "id"}}
        });
        let compiled = ConfigSchema::compile(&schema).unwrap();
        assert!(compiled.validate(&json!({"spreadsheet_id": "x"})).is_ok());
        assert_eq!(
            pointers(&compiled.validate(&json!({"spreadsheet_id": 1})).unwrap_err()),
            ["/spreadsheet_id"]
        );
    }

    #[test]
    fn other_drafts_are_honoured_and_unknown_ones_refused() {
        let draft7 = ConfigSchema::compile(&json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "properties": {"password": {"type": "string", "writeOnly": true}},
            "dependencies": {"a": ["b"]}
        }))
        .unwrap();
        assert_eq!(draft7.secret_pointers(), ["/password"]);
        assert_eq!(pointers(&draft7.validate(&json!({"a": 1})).unwrap_err()), [""]);

        let error = ConfigSchema::compile(&json!({"$schema": "https://evil.example/meta"})).unwrap_err();
        assert!(matches!(error, SchemaError::UnsupportedDraft { .. }));
        assert_eq!(pointers(&error.problems()), ["/$schema"]);
    }

    #[test]
    fn debug_and_display_are_readable() {
        assert_eq!(
            format!("{:?}", sheets()),
            r#"ConfigSchema { secret_pointers: ["/service_account_key", "/sms/api_token"], .. }"#
        );
        assert_eq!(FieldError::new("", "bad").to_string(), "at /: bad");
        assert_eq!(FieldError::new("/a/0", "bad").to_string(), "at /a/0: bad");
        let error = ConfigSchema::compile(&json!({"type": 12, "minimum": "x"})).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("the config schema is not a valid JSON Schema: at /"),
            "{error}"
        );
        assert!(error.to_string().ends_with("(and 1 more)"), "{error}");
    }

    #[test]
    fn a_config_schema_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ConfigSchema>();
    }

    #[test]
    fn branches_reaching_too_many_subschemas_are_refused() {
        // Found by the team_config fuzz target: jsonschema's compiler followed allOf and $ref from each
        // oneOf branch without remembering where it had been (3^16 lookups here), for minutes.
        let by_pointer = json!({
            "$defs": {"d": {"allOf": [{"$ref": "#/$defs/d"}, {"$ref": "#/$defs/d"}, {"$ref": "#/$defs/d"}]}},
            "oneOf": [{"$ref": "#/$defs/d"}, {"type": "string"}, {"type": "integer"}]
        });
        let by_anchor = json!({
            "$defs": {"d": {"$anchor": "d", "allOf": [{"$ref": "#d"}, {"$ref": "#d"}, {"$ref": "#d"}]}},
            "anyOf": [{"$ref": "#d"}, {"type": "string"}, {"type": "integer"}]
        });
        for schema in [by_pointer, by_anchor] {
            let error = ConfigSchema::compile(&schema).unwrap_err();
            assert_eq!(error, SchemaError::TooManyBranchReferences);
            assert_eq!(error.problems()[0].pointer, "");
        }
        // Shared definitions referred to from a few branches still compile.
        let shared = json!({
            "$defs": {
                "base": {"type": "object", "properties": {"kind": {"type": "string"}}},
                "named": {"allOf": [{"$ref": "#/$defs/base"}, {"required": ["name"]}]}
            },
            "oneOf": [
                {"allOf": [{"$ref": "#/$defs/named"}, {"properties": {"kind": {"const": "a"}}}]},
                {"allOf": [{"$ref": "#/$defs/named"}, {"properties": {"kind": {"const": "b"}}}]},
                {"allOf": [{"$ref": "#/$defs/base"}, {"properties": {"kind": {"const": "c"}}}]}
            ]
        });
        assert!(ConfigSchema::compile(&shared).is_ok());
    }
}
