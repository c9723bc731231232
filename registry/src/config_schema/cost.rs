//! How much work validating a config against a schema can take, bounded before any validation runs.
//!
//! jsonschema evaluates every branch of an `anyOf`/`oneOf`/`allOf` and follows every `$ref` without
//! remembering what it has evaluated, so a schema of a few dozen subschemas can make it evaluate
//! millions: `$defs` levels of `anyOf: [{"$ref": next}, {"$ref": next}]` double the work per level, and
//! the errors it collects on the way grow as fast (a 1.5 KB schema of 26 such levels took the registry
//! past 23 GB). Counting distinct subschemas cannot see that; counting the *paths* an evaluation can
//! take can.
//!
//! [`Cost::of`] walks the schema as the validator would and computes, for each depth `k` of a config,
//! an upper bound on the number of subschemas evaluated at any one value at depth `k`:
//!
//! ```text
//!   M(s, k) = [k = 0]                                      s itself
//!           + Σ M(c, k)       over c applied to the same value (allOf, anyOf, oneOf, not, if/then/else,
//!                             dependentSchemas, $ref and the targets a $dynamicRef/$recursiveRef may
//!                             take), counted again once per unevaluatedProperties/unevaluatedItems
//!                             (they evaluate those again to learn what was evaluated)
//!           + Σ M(a, k - 1)   over the applicators to child values (additionalProperties, items, ...);
//!                             for `properties` and `prefixItems` the largest of their subschemas, since
//!                             one child value meets only one of them
//! ```
//!
//! A schema whose largest `M(root, k)` exceeds [`MAX_EVALUATIONS_PER_VALUE`] is refused at registration;
//! a config is checked before validation against [`MAX_EVALUATIONS_PER_CONFIG`] with the sum over its
//! values, `Σ M(root, depth(v))`. A subschema that reaches itself without descending into the config
//! (`{"$ref": "#"}`, or `allOf` through a `$ref` back to itself) would never finish and is refused too.
//!
//! The bound over-counts (both branches of an `if`, `anyOf` past its first success), never under-counts,
//! so a refused schema may in fact be cheaper than reported; the bounds leave legitimate schemas (the seed
//! plugins' use tens of evaluations per value) orders of magnitude of room.

use std::collections::HashMap;

use jsonschema::{Draft, Registry};
use referencing::{Resolver, uri};
use serde_json::Value;

use super::SchemaError;

/// Most subschema evaluations allowed at one config value; a schema that may need more is refused.
pub const MAX_EVALUATIONS_PER_VALUE: u64 = 10_000;
/// Most subschema evaluations allowed for one whole config; a bigger config is refused before validating.
pub const MAX_EVALUATIONS_PER_CONFIG: u64 = 1_000_000;
/// The deepest config value considered: serde_json refuses to parse deeper documents.
const MAX_CONFIG_DEPTH: usize = 128;
/// Most (subschema, depth) pairs the walk computes; beyond it the schema is too large to bound.
const MAX_WALK_ENTRIES: usize = 1_000_000;
/// Deepest recursion of the walk (subschemas inside subschemas, references followed).
const MAX_WALK_DEPTH: usize = 512;
/// The base URI jsonschema gives a schema without `$id`.
const DEFAULT_BASE_URI: &str = "json-schema:///";

/// Keywords whose subschema applies to the same value.
const IN_PLACE_ONE: [&str; 4] = ["not", "if", "then", "else"];
/// Keywords whose array of subschemas apply to the same value.
const IN_PLACE_ALL: [&str; 3] = ["allOf", "anyOf", "oneOf"];
/// Keywords whose map of subschemas apply to the same value (`dependencies` only where an entry is a
/// schema rather than a list of names).
const IN_PLACE_MAP: [&str; 2] = ["dependentSchemas", "dependencies"];
/// Keywords whose subschema applies to child values (or, for `propertyNames`, to the keys).
const CHILD_ONE: [&str; 7] = [
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
    "additionalItems",
    "unevaluatedItems",
    "contains",
    "contentSchema",
];
/// Keywords that make the validator evaluate the same value's in-place subschemas again.
const RE_EVALUATING: [&str; 2] = ["unevaluatedProperties", "unevaluatedItems"];

/// The bound of one schema: the most subschemas evaluated at one config value, by the value's depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cost {
    /// `per_depth[k]`: at most this many evaluations at any one value at depth `k` (the root is 0); no
    /// value deeper than the last entry is evaluated at all.
    per_depth: Vec<u64>,
}

impl Cost {
    /// Bounds the evaluations of `schema` (already compiled by jsonschema, so its references resolve).
    ///
    /// # Errors
    ///
    /// [`SchemaError::TooCostly`] above [`MAX_EVALUATIONS_PER_VALUE`], [`SchemaError::SelfReferential`]
    /// for an evaluation that would never end, [`SchemaError::TooComplex`] when the walk itself would be
    /// too large, [`SchemaError::Invalid`] for a reference that does not resolve.
    pub fn of(schema: &Value) -> Result<Self, SchemaError> {
        let draft = Draft::default().detect(schema);
        let base = draft.create_resource_ref(schema).id().map_or_else(
            || DEFAULT_BASE_URI.to_owned(),
            |id| id.trim_end_matches('#').to_owned(),
        );
        let registry = Registry::new()
            .draft(draft)
            .retrieve_known_draft_meta_schemas(false)
            .add(&base, schema)
            .and_then(|builder| builder.prepare())
            .map_err(|error| unresolvable(&error))?;
        let root = registry.resolver(uri::from_str(&base).map_err(|error| unresolvable(&error))?);
        let mut walk = Walk {
            draft,
            dynamic_targets: Vec::new(),
            memo: HashMap::new(),
            depth: 0,
        };
        walk.find_dynamic_targets(schema, &root);
        let mut per_depth = Vec::new();
        for k in 0..=MAX_CONFIG_DEPTH {
            let evaluations = walk.evaluations(schema, &root, k)?;
            if evaluations == 0 {
                // Nothing reaches depth k, so nothing reaches any deeper value either.
                break;
            }
            if evaluations > MAX_EVALUATIONS_PER_VALUE {
                return Err(SchemaError::TooCostly {
                    depth: k,
                    bound: MAX_EVALUATIONS_PER_VALUE,
                });
            }
            per_depth.push(evaluations);
        }
        Ok(Self { per_depth })
    }

    /// The most evaluations at any one value.
    pub fn per_value(&self) -> u64 {
        self.per_depth.iter().copied().max().unwrap_or(0)
    }

    /// An upper bound on the evaluations validating `config` takes, saturating at `u64::MAX`.
    pub fn of_config(&self, config: &Value) -> u64 {
        let mut total = 0u64;
        let mut level = vec![config];
        for &per_value in &self.per_depth {
            if level.is_empty() {
                break;
            }
            total = total.saturating_add(per_value.saturating_mul(level.len() as u64));
            level = level
                .into_iter()
                .flat_map(|value| -> Box<dyn Iterator<Item = &Value>> {
                    match value {
                        Value::Object(map) => Box::new(map.values()),
                        Value::Array(items) => Box::new(items.iter()),
                        _ => Box::new(std::iter::empty()),
                    }
                })
                .collect();
        }
        total
    }
}

/// The adversarial review's schema: `levels` `$defs`, each `anyOf: [{"$ref": next}, {"$ref": next}]`, the
/// last one failing for any config that is not a string of three characters or more. About 45 distinct
/// subschemas at 22 levels, yet jsonschema evaluates 2^levels of them. The unit tests, the integration
/// test and the fuzz seeds build it here, so that they test the same shape.
pub fn any_of_chain(levels: usize) -> Value {
    let mut defs = serde_json::Map::new();
    for level in 0..levels {
        let next = serde_json::json!({"$ref": format!("#/$defs/l{}", level + 1)});
        defs.insert(format!("l{level}"), serde_json::json!({"anyOf": [next, next]}));
    }
    defs.insert(
        format!("l{levels}"),
        serde_json::json!({"type": "string", "minLength": 3}),
    );
    serde_json::json!({"$defs": defs, "$ref": "#/$defs/l0"})
}

fn unresolvable(error: &referencing::Error) -> SchemaError {
    SchemaError::Invalid {
        problems: vec![super::FieldError::new(
            "",
            format!("a reference could not be followed: {error}"),
        )],
    }
}

/// A memo entry: computed, or being computed (seeing it again means a cycle at the same depth).
#[derive(Debug, Clone, Copy)]
enum Entry {
    InProgress,
    Done(u64),
}

/// The state of [`Cost::of`]'s walk.
struct Walk<'r> {
    draft: Draft,
    /// Every subschema with a `$dynamicAnchor` or `$recursiveAnchor: true`, with a resolver at its base: a
    /// `$dynamicRef`/`$recursiveRef` may land on any of them, depending on how the validator got there.
    dynamic_targets: Vec<(&'r Value, Resolver<'r>)>,
    memo: HashMap<(*const Value, usize), Entry>,
    depth: usize,
}

impl<'r> Walk<'r> {
    /// Collects [`Walk::dynamic_targets`] from every subschema of the document.
    fn find_dynamic_targets(&mut self, schema: &'r Value, resolver: &Resolver<'r>) {
        let mut pending = vec![(schema, resolver.clone())];
        while let Some((node, resolver)) = pending.pop() {
            if let Value::Object(object) = node
                && (object.contains_key("$dynamicAnchor")
                    || object.get("$recursiveAnchor") == Some(&Value::Bool(true)))
            {
                self.dynamic_targets.push((node, resolver.clone()));
            }
            for child in self.draft.subresources_of(node) {
                let child_resolver = self.enter(child, &resolver);
                pending.push((child, child_resolver));
            }
        }
    }

    /// The resolver for a subschema met inside the one `resolver` is based at (a new base at an `$id`).
    fn enter(&self, child: &'r Value, resolver: &Resolver<'r>) -> Resolver<'r> {
        resolver
            .in_subresource(self.draft.create_resource_ref(child))
            .unwrap_or_else(|_| resolver.clone())
    }

    /// `M(node, k)` of the module documentation, saturating just above [`MAX_EVALUATIONS_PER_VALUE`].
    fn evaluations(
        &mut self,
        node: &'r Value,
        resolver: &Resolver<'r>,
        k: usize,
    ) -> Result<u64, SchemaError> {
        let Value::Object(object) = node else {
            // `true` and `false` are evaluated, and apply nothing further.
            return Ok(u64::from(k == 0));
        };
        let key = (std::ptr::from_ref(node), k);
        match self.memo.get(&key) {
            Some(Entry::Done(evaluations)) => return Ok(*evaluations),
            Some(Entry::InProgress) => return Err(SchemaError::SelfReferential),
            None => {}
        }
        if self.memo.len() >= MAX_WALK_ENTRIES || self.depth >= MAX_WALK_DEPTH {
            return Err(SchemaError::TooComplex {
                pointer: String::new(),
            });
        }
        self.memo.insert(key, Entry::InProgress);
        self.depth += 1;
        let result = self.evaluate_object(object, resolver, k);
        self.depth -= 1;
        let evaluations = result?;
        self.memo.insert(key, Entry::Done(evaluations));
        Ok(evaluations)
    }

    fn evaluate_object(
        &mut self,
        object: &'r serde_json::Map<String, Value>,
        resolver: &Resolver<'r>,
        k: usize,
    ) -> Result<u64, SchemaError> {
        let mut in_place = 0u64;
        for (keyword, value) in object {
            let keyword = keyword.as_str();
            let evaluations = if IN_PLACE_ONE.contains(&keyword) {
                self.sub(value, resolver, k)?
            } else if IN_PLACE_ALL.contains(&keyword) {
                self.sum(as_items(value), resolver, k)?
            } else if IN_PLACE_MAP.contains(&keyword) {
                let schemas = as_entries(value).filter(|schema| schema.is_object() || schema.is_boolean());
                self.sum(schemas, resolver, k)?
            } else if keyword == "$ref" {
                self.reference(value, resolver, k)?
            } else if keyword == "$dynamicRef" || keyword == "$recursiveRef" {
                let mut total = self.reference(value, resolver, k)?;
                for index in 0..self.dynamic_targets.len() {
                    let (target, target_resolver) = self.dynamic_targets[index].clone();
                    total = saturate(total.saturating_add(self.evaluations(target, &target_resolver, k)?));
                }
                total
            } else {
                0
            };
            in_place = saturate(in_place.saturating_add(evaluations));
        }
        let passes = 1 + object
            .keys()
            .filter(|keyword| RE_EVALUATING.contains(&keyword.as_str()))
            .count() as u64;
        let mut total = saturate(in_place.saturating_mul(passes));
        if k == 0 {
            return Ok(saturate(total.saturating_add(1)));
        }
        for (keyword, value) in object {
            let keyword = keyword.as_str();
            let evaluations = if CHILD_ONE.contains(&keyword) {
                self.sub(value, resolver, k - 1)?
            } else if keyword == "items" && value.is_array() || keyword == "prefixItems" {
                self.max(as_items(value), resolver, k - 1)?
            } else if keyword == "items" {
                self.sub(value, resolver, k - 1)?
            } else if keyword == "properties" {
                self.max(as_entries(value), resolver, k - 1)?
            } else if keyword == "patternProperties" {
                // Several patterns may match one name.
                self.sum(as_entries(value), resolver, k - 1)?
            } else {
                0
            };
            total = saturate(total.saturating_add(evaluations));
        }
        Ok(total)
    }

    /// A subschema nested in the current one.
    fn sub(&mut self, child: &'r Value, resolver: &Resolver<'r>, k: usize) -> Result<u64, SchemaError> {
        let resolver = self.enter(child, resolver);
        self.evaluations(child, &resolver, k)
    }

    fn sum(
        &mut self,
        children: impl Iterator<Item = &'r Value>,
        resolver: &Resolver<'r>,
        k: usize,
    ) -> Result<u64, SchemaError> {
        let mut total = 0u64;
        for child in children {
            total = saturate(total.saturating_add(self.sub(child, resolver, k)?));
        }
        Ok(total)
    }

    fn max(
        &mut self,
        children: impl Iterator<Item = &'r Value>,
        resolver: &Resolver<'r>,
        k: usize,
    ) -> Result<u64, SchemaError> {
        let mut most = 0u64;
        for child in children {
            most = most.max(self.sub(child, resolver, k)?);
        }
        Ok(most)
    }

    /// The target of a `$ref` (or the static target of a `$dynamicRef`/`$recursiveRef`).
    fn reference(&mut self, value: &'r Value, resolver: &Resolver<'r>, k: usize) -> Result<u64, SchemaError> {
        let Value::String(reference) = value else {
            return Ok(0);
        };
        let resolved = resolver.lookup(reference).map_err(|error| unresolvable(&error))?;
        let (target, target_resolver, _) = resolved.into_inner();
        self.evaluations(target, &target_resolver, k)
    }
}

/// Caps a count just above [`MAX_EVALUATIONS_PER_VALUE`]: past it, only "too many" matters.
fn saturate(count: u64) -> u64 {
    count.min(MAX_EVALUATIONS_PER_VALUE + 1)
}

/// The items of an array (a lone schema counts as one).
fn as_items(value: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match value {
        Value::Array(items) => Box::new(items.iter()),
        other => Box::new(std::iter::once(other)),
    }
}

/// The values of an object.
fn as_entries(value: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match value {
        Value::Object(map) => Box::new(map.values()),
        _ => Box::new(std::iter::empty()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    fn cost(schema: Value) -> Cost {
        Cost::of(&schema).unwrap()
    }

    #[test]
    fn a_flat_schema_costs_one_evaluation_per_subschema_reached() {
        let schema = cost(json!({
            "type": "object",
            "properties": {
                "a": {"type": "string"},
                "b": {"type": "array", "items": {"type": "integer"}}
            },
            "additionalProperties": false
        }));
        // Depth 1: the largest property (1) + additionalProperties (1); depth 2: the items.
        assert_eq!(schema.per_depth, [1, 2, 1]);
        let config = json!({"a": "x", "b": [1, 2, 3]});
        assert_eq!(schema.of_config(&config), 1 + 2 * 2 + 3);
    }

    #[test]
    fn branches_and_references_add_up() {
        let schema = cost(json!({
            "$defs": {"s": {"type": "string"}},
            "anyOf": [{"$ref": "#/$defs/s"}, {"type": "integer"}],
            "not": {"const": 1}
        }));
        // The root, the two branches, the target of the reference, the `not`.
        assert_eq!(schema.per_depth, [5]);
    }

    #[test]
    fn the_doubling_chain_is_counted_as_it_doubles() {
        // Each level is itself plus two reference wrappers of the next: M(l) = 1 + 2 (1 + M(l + 1)), and
        // the root adds itself to M(l0).
        let expected = |levels: usize| (0..levels).fold(1u64, |next, _| 1 + 2 * (1 + next)) + 1;
        assert_eq!(cost(any_of_chain(5)).per_depth, [expected(5)]);
        assert_eq!(cost(any_of_chain(11)).per_depth, [expected(11)]);
        assert!(expected(11) <= MAX_EVALUATIONS_PER_VALUE && expected(12) > MAX_EVALUATIONS_PER_VALUE);
        for levels in [12, 20, 26, 40] {
            assert_eq!(
                Cost::of(&any_of_chain(levels)),
                Err(SchemaError::TooCostly {
                    depth: 0,
                    bound: MAX_EVALUATIONS_PER_VALUE
                }),
                "{levels} levels"
            );
        }
    }

    #[test]
    fn doubling_through_properties_is_counted_at_depth() {
        // Each level applies both branches to the same child value: 2^k evaluations at depth k.
        let mut defs = Map::new();
        for level in 0..20 {
            let next = json!({"properties": {"x": {"$ref": format!("#/$defs/l{}", level + 1)}}});
            defs.insert(format!("l{level}"), json!({"oneOf": [next, next]}));
        }
        defs.insert("l20".to_owned(), json!({"type": "string"}));
        let error = Cost::of(&json!({"$defs": defs, "$ref": "#/$defs/l0"})).unwrap_err();
        assert!(
            matches!(error, SchemaError::TooCostly { depth, .. } if depth > 5),
            "{error:?}"
        );
    }

    #[test]
    fn distinct_properties_do_not_multiply() {
        // 40 levels of two properties referring to the next: a config value meets one of them only.
        let mut defs = Map::new();
        for level in 0..40 {
            let next = json!({"$ref": format!("#/$defs/l{}", level + 1)});
            defs.insert(format!("l{level}"), json!({"properties": {"a": next, "b": next}}));
        }
        defs.insert("l40".to_owned(), json!({"type": "string"}));
        let schema = cost(json!({"$defs": defs, "$ref": "#/$defs/l0"}));
        assert_eq!(schema.per_value(), 2);
        assert_eq!(schema.per_depth.len(), 41);
    }

    #[test]
    fn recursion_through_child_values_is_bounded_by_the_config_depth() {
        let schema = cost(json!({
            "type": "object",
            "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}
        }));
        assert_eq!(schema.per_depth.len(), MAX_CONFIG_DEPTH + 1);
        assert_eq!(schema.per_value(), 2);
    }

    #[test]
    fn a_schema_reaching_itself_in_place_is_refused() {
        for schema in [
            json!({"$ref": "#"}),
            json!({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}),
        ] {
            assert_eq!(Cost::of(&schema), Err(SchemaError::SelfReferential), "{schema}");
        }
    }

    #[test]
    fn references_resolve_against_embedded_resources() {
        // The chain hidden behind relative `$id`s is still seen.
        let mut defs = Map::new();
        for level in 0..20 {
            let next = json!({"$ref": format!("l{}", level + 1)});
            defs.insert(
                format!("l{level}"),
                json!({"$id": format!("l{level}"), "anyOf": [next, next]}),
            );
        }
        defs.insert("l20".to_owned(), json!({"$id": "l20", "type": "string"}));
        let schema = json!({"$id": "https://plugins.test/chain", "$defs": defs, "$ref": "l0"});
        assert!(matches!(Cost::of(&schema), Err(SchemaError::TooCostly { .. })));
    }

    #[test]
    fn dynamic_references_count_every_anchor_they_may_reach() {
        let schema = cost(json!({
            "$dynamicAnchor": "node",
            "type": "object",
            "properties": {"next": {"$dynamicRef": "#node"}},
            "$defs": {"other": {"$dynamicAnchor": "node", "type": "string"}}
        }));
        // Depth 1: the `$dynamicRef` wrapper, its static target (the root) and both anchors.
        assert_eq!(schema.per_depth[1], 1 + 1 + 2);
    }

    #[test]
    fn unevaluated_keywords_count_the_in_place_subschemas_again() {
        let schema = cost(json!({
            "allOf": [{"properties": {"a": true}}],
            "unevaluatedProperties": false
        }));
        // The root, and its one `allOf` branch counted twice.
        let (root, branch) = (1, 1);
        assert_eq!(schema.per_depth[0], root + 2 * branch);
    }

    #[test]
    fn a_large_config_is_counted_value_by_value() {
        let schema = cost(json!({"type": "array", "items": {"type": "integer"}}));
        let config = Value::Array(vec![json!(1); 2_000_000]);
        assert_eq!(schema.of_config(&config), 2_000_001);
    }
}
