//! Projection: the parts of an event's data that a filter reads, decoded without decoding the rest.
//!
//! A [`DataPath`] is a literal path into the contract's bare-JSON form of an event's data, such as
//! `response.answers["q-city"].choice`. [`payload::project`](crate::payload::project) walks a value once
//! and builds a *sparse* `serde_json::Value` that holds only the requested paths, each with everything
//! below its end:
//!
//! ```text
//!   paths  response.answers["q02"].choice, response.form_id
//!   data   {"response": {"id": .., "form_id": "f-1", "answers": {"q01": .., "q02": {"choice": "b"}, ..}, ..}}
//!   sparse {"response": {"form_id": "f-1", "answers": {"q02": {"choice": "b"}}}}
//! ```
//!
//! The sparse value agrees with the whole data on every requested path, so an expression that reads only
//! those paths evaluates the same on both:
//! - a path that is absent in the data is absent in the projection (no key; an array only as long as the
//!   data's, up to the highest requested index);
//! - where a path runs into a scalar or a null before its end (a skipped answer), that value is kept, so
//!   reading further fails as it would on the whole data;
//! - array elements that no path names are `null` placeholders, only there to keep the requested indexes
//!   in place.
//!
//! The Avro walk is in [`crate::avro`] (it skips what is not requested the way validation does); the JSON
//! walk is here: a `serde` visitor that materializes the requested parts and skips the rest with
//! `IgnoredAny`, without building a tree of the whole value.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer as _};
use serde_json::{Map, Number, Value};

/// The entry point, [`payload::project`](crate::payload::project), also reachable from here.
pub use crate::payload::project;

/// One step of a [`DataPath`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    /// A member of an object: a record field or a map key.
    Key(Box<str>),
    /// An element of an array.
    Index(u64),
}

impl Segment {
    /// A [`Segment::Key`].
    pub fn key(name: impl Into<Box<str>>) -> Self {
        Segment::Key(name.into())
    }
}

/// A literal path into the bare-JSON form of an event's data: object keys and array indexes from the root.
/// The empty path is the whole data.
///
/// Displayed the way a CEL expression reads it below `data`: `response.answers["q-city"].choice`, `items[0]`
/// (a key that is not an identifier, or is a CEL keyword, is written as a quoted index).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DataPath {
    segments: Box<[Segment]>,
}

impl DataPath {
    /// A path of `segments`, root first.
    pub fn new(segments: impl IntoIterator<Item = Segment>) -> Self {
        Self {
            segments: segments.into_iter().collect(),
        }
    }

    /// The segments, root first.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Bytes this path holds on the heap (its segments and their keys), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val::<[Segment]>(&self.segments)
            + self
                .segments
                .iter()
                .map(|s| match s {
                    Segment::Key(k) => k.len(),
                    Segment::Index(_) => 0,
                })
                .sum::<usize>()
    }

    /// The segment at `depth`, if the path is that long.
    fn at(&self, depth: usize) -> Option<&Segment> {
        self.segments.get(depth)
    }
}

impl FromIterator<Segment> for DataPath {
    fn from_iter<I: IntoIterator<Item = Segment>>(iter: I) -> Self {
        Self::new(iter)
    }
}

impl fmt::Display for DataPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Key(key) if is_cel_identifier(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                // A JSON string literal is also a valid CEL string literal.
                Segment::Key(key) => write!(f, "[{}]", Value::String(key.to_string()))?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Whether `key` can be written as a field selection (`.key`) in CEL.
fn is_cel_identifier(key: &str) -> bool {
    const RESERVED: [&str; 21] = [
        "as",
        "break",
        "const",
        "continue",
        "else",
        "false",
        "for",
        "function",
        "if",
        "import",
        "in",
        "let",
        "loop",
        "namespace",
        "null",
        "package",
        "return",
        "true",
        "var",
        "void",
        "while",
    ];
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&key)
}

/// The requested paths below one point of a value: a range of sorted, distinct paths that share their first
/// `depth` segments. Copy and allocation-free, so the walks can hand one to every child.
///
/// Sorted means a path sorts before its extensions, so when the range holds a path that ends here it is the
/// first one ([`Selection::is_whole`]); among the rest, keys sort before indexes and each group is ordered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Selection<'p> {
    paths: &'p [&'p DataPath],
    depth: usize,
}

impl<'p> Selection<'p> {
    /// The selection of `paths` at the root. `paths` must be sorted and free of duplicates.
    pub(crate) fn root(paths: &'p [&'p DataPath]) -> Self {
        debug_assert!(paths.windows(2).all(|w| w[0] < w[1]));
        Self { paths, depth: 0 }
    }

    /// Nothing is requested here: skip the value.
    pub(crate) fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// A path ends here: keep the whole value.
    pub(crate) fn is_whole(&self) -> bool {
        self.paths.first().is_some_and(|p| p.segments.len() <= self.depth)
    }

    /// The paths that continue into the member `name` of an object.
    pub(crate) fn key(&self, name: &str) -> Self {
        self.child(|segment| match segment {
            None => Ordering::Less,
            Some(Segment::Key(key)) => (**key).cmp(name),
            Some(Segment::Index(_)) => Ordering::Greater,
        })
    }

    /// The paths that continue into element `index` of an array.
    pub(crate) fn index(&self, index: u64) -> Self {
        self.child(|segment| match segment {
            None | Some(Segment::Key(_)) => Ordering::Less,
            Some(Segment::Index(i)) => i.cmp(&index),
        })
    }

    /// How many elements of an array are kept: one past the highest requested index (indexes sort last).
    pub(crate) fn array_len(&self) -> u64 {
        match self.paths.last().and_then(|p| p.at(self.depth)) {
            Some(Segment::Index(i)) => i.saturating_add(1),
            _ => 0,
        }
    }

    /// The sub-range whose segment at `depth` compares `Equal` under `order` (which must agree with the
    /// paths' sort order), one level deeper.
    fn child(&self, order: impl Fn(Option<&Segment>) -> Ordering) -> Self {
        let start = self
            .paths
            .partition_point(|p| order(p.at(self.depth)) == Ordering::Less);
        let len = self.paths[start..].partition_point(|p| order(p.at(self.depth)) == Ordering::Equal);
        Self {
            paths: &self.paths[start..start + len],
            depth: self.depth + 1,
        }
    }
}

/// `paths` sorted and deduplicated for [`Selection::root`]; borrowed when they already are (one path, or a
/// caller that keeps them sorted), so the common case allocates nothing.
pub(crate) fn sorted<'a, 'p>(paths: &'a [&'p DataPath]) -> Cow<'a, [&'p DataPath]> {
    if paths.windows(2).all(|w| w[0] < w[1]) {
        return Cow::Borrowed(paths);
    }
    let mut sorted = paths.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    Cow::Owned(sorted)
}

/// Why a JSON value could not be projected.
#[derive(Debug)]
pub(crate) enum JsonProblem {
    /// The text is not one JSON value.
    Syntax(serde_json::Error),
    /// The value is not an object (the v1 types' data always is).
    NotAnObject,
}

/// Projects a JSON text; `Value::Null` when nothing is requested. With `object_only`, a value other than
/// an object is refused.
pub(crate) fn project_json(
    text: &[u8],
    selection: Selection<'_>,
    object_only: bool,
) -> Result<Value, JsonProblem> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let select = Select { selection };
    let value = if object_only {
        deserializer.deserialize_map(select).map_err(|e| {
            if e.is_data() {
                JsonProblem::NotAnObject
            } else {
                JsonProblem::Syntax(e)
            }
        })?
    } else {
        select
            .deserialize(&mut deserializer)
            .map_err(JsonProblem::Syntax)?
    };
    deserializer.end().map_err(JsonProblem::Syntax)?;
    Ok(value.unwrap_or(Value::Null))
}

/// Projects one JSON value: `None` when nothing at or below it is requested (it was skipped).
struct Select<'p> {
    selection: Selection<'p>,
}

impl<'de> DeserializeSeed<'de> for Select<'_> {
    type Value = Option<Value>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        if self.selection.is_empty() {
            IgnoredAny::deserialize(deserializer)?;
            Ok(None)
        } else if self.selection.is_whole() {
            Value::deserialize(deserializer).map(Some)
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Select<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // The root of a v1 value comes here directly (to be refused unless it is an object), so the
        // shortcuts of `deserialize` are repeated.
        if self.selection.is_empty() {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(None);
        }
        if self.selection.is_whole() {
            return Value::deserialize(MapAccessDeserializer::new(map)).map(Some);
        }
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let selection = self.selection.key(&key);
            if let Some(value) = map.next_value_seed(Select { selection })? {
                object.insert(key.into_owned(), value);
            }
        }
        Ok(Some(Value::Object(object)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let keep = self.selection.array_len();
        let mut items = Vec::new();
        let mut index = 0u64;
        while let Some(value) = seq.next_element_seed(Select {
            selection: self.selection.index(index),
        })? {
            if index < keep {
                items.push(value.unwrap_or(Value::Null));
            }
            index += 1;
        }
        Ok(Some(Value::Array(items)))
    }

    // A path that runs into a scalar keeps it (see the module docs), as serde_json builds it.
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Value::Number(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Value::Number(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(Number::from_f64(v).map_or(Value::Null, Value::Number)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Value::String(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Value::String(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some(Value::Null))
    }
}

/// An object key, borrowed from the text unless it has escapes: a skipped member allocates nothing.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::catalog::EventType;
    use crate::dead_letter::Reason;
    use crate::envelope::ContentType;
    use crate::events::CoreEvent;
    use crate::payload::{encode, to_json, validate};
    use crate::samples;

    /// A path from its segments; a segment that parses as a number is an index.
    fn path(segments: &[&str]) -> DataPath {
        segments
            .iter()
            .map(|s| match s.parse::<u64>() {
                Ok(i) => Segment::Index(i),
                Err(_) => Segment::key(*s),
            })
            .collect()
    }

    fn paths(list: &[&[&str]]) -> Vec<DataPath> {
        list.iter().map(|p| path(p)).collect()
    }

    /// The reference: the parts of a whole decoded value that `selection` keeps, as the module docs say.
    fn restrict(value: &Value, selection: Selection<'_>) -> Option<Value> {
        if selection.is_empty() {
            return None;
        }
        if selection.is_whole() {
            return Some(value.clone());
        }
        Some(match value {
            Value::Object(members) => Value::Object(
                members
                    .iter()
                    .filter_map(|(k, v)| restrict(v, selection.key(k)).map(|r| (k.clone(), r)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .zip(0..selection.array_len())
                    .map(|(v, i)| restrict(v, selection.index(i)).unwrap_or(Value::Null))
                    .collect(),
            ),
            scalar => scalar.clone(),
        })
    }

    /// Checks, in both content types, that projecting `event` on `paths` gives the same as cutting the
    /// requested parts out of `to_json`.
    fn assert_projects_like_to_json<E: CoreEvent>(event: &E, paths: &[DataPath]) -> Vec<Value> {
        let refs: Vec<&DataPath> = paths.iter().collect();
        let sorted = sorted(&refs);
        [ContentType::Avro, ContentType::Json]
            .into_iter()
            .map(|content_type| {
                let bytes = encode(event, content_type).unwrap();
                let projected = project(E::TYPE.as_str(), content_type, Some(&bytes), &refs).unwrap();
                let whole = to_json(E::TYPE, content_type, &bytes).unwrap();
                let expected = restrict(&whole, Selection::root(&sorted)).unwrap_or(Value::Null);
                assert_eq!(projected, expected, "{content_type:?} {refs:?}");
                projected
            })
            .collect()
    }

    #[test]
    fn paths_display_as_cel_reads_them() {
        assert_eq!(
            path(&["response", "answers", "q-city", "choice"]).to_string(),
            r#"response.answers["q-city"].choice"#
        );
        assert_eq!(path(&["items", "0", "x_1"]).to_string(), "items[0].x_1");
        assert_eq!(path(&["in", "a\"b"]).to_string(), r#"["in"]["a\"b"]"#);
        assert_eq!(DataPath::default().to_string(), "");
    }

    #[test]
    fn selections_split_sorted_paths() {
        let list = paths(&[
            &["a", "b"],
            &["a", "c", "0"],
            &["a", "c", "3"],
            &["d"],
            &["a", "b"],
        ]);
        let refs: Vec<&DataPath> = list.iter().collect();
        let sorted = sorted(&refs);
        assert_eq!(sorted.len(), 4, "duplicates are dropped");
        let root = Selection::root(&sorted);
        assert!(!root.is_whole());
        let a = root.key("a");
        assert_eq!(a.paths.len(), 3);
        assert!(a.key("b").is_whole());
        assert!(a.key("x").is_empty());
        let c = a.key("c");
        assert_eq!(c.array_len(), 4);
        assert!(c.index(3).is_whole());
        assert!(c.index(1).is_empty());
        assert!(root.key("d").is_whole());
        assert_eq!(root.array_len(), 0);
    }

    #[test]
    fn a_response_projects_like_its_decoded_form() {
        let event = samples::response_every_answer_kind("acme", "r-1");
        let cases: [&[&[&str]]; 13] = [
            &[],
            &[&[]],
            &[&["response"]],
            &[&["response", "answers", "crop", "choice"]],
            &[
                &["response", "answers", "crop"],
                &["response", "answers", "crop", "choice"],
            ],
            // a skipped answer is a null in the map: kept, so reading `.choice` fails as on the whole value
            &[&["response", "answers", "skipped", "choice"]],
            &[&["response", "answers", "assets", "choices", "1"]],
            &[&["response", "answers", "assets", "choices", "5"]],
            &[
                &["response", "answers", "farm", "latitude"],
                &["response", "answers", "farm", "accuracy_m"],
            ],
            &[
                &["response", "nope"],
                &["nope"],
                &["response", "answers", "nope", "choice"],
            ],
            &[&["response", "id", "deeper"], &["response", "form_version", "0"]],
            &[
                &["0"],
                &["response", "answers", "0"],
                &["response", "answers", "assets", "choices", "x"],
            ],
            &[
                &["response", "duration_ms"],
                &["response", "locale"],
                &["response", "answers", "born"],
            ],
        ];
        for case in cases {
            assert_projects_like_to_json(&event, &paths(case));
        }
        let [avro, json] = assert_projects_like_to_json(
            &event,
            &paths(&[
                &["response", "answers", "crop", "choice"],
                &["response", "answers", "assets", "choices", "1"],
                &["response", "answers", "skipped", "choice"],
                &["response", "answers", "nope"],
            ]),
        )
        .try_into()
        .unwrap();
        let expected = json!({"response": {"answers": {
            "crop": {"choice": "maize"},
            "assets": {"choices": [null, "bike"]},
            "skipped": null,
        }}});
        assert_eq!(avro, expected);
        assert_eq!(json, expected);
    }

    #[test]
    fn twenty_four_answers_and_a_form_project_like_their_decoded_forms() {
        let response = samples::response_24_answers("acme", "r-1");
        assert_projects_like_to_json(
            &response,
            &paths(&[
                &["response", "answers", "q02", "choice"],
                &["response", "form_id"],
            ]),
        );
        let form = samples::form_created("acme", "1");
        let cases: [&[&[&str]]; 3] = [
            &[&["form", "questions", "0", "kind"], &["created_by"]],
            &[&["form", "description"], &["form", "questions", "0", "choices"]],
            &[
                &["form", "questions", "3"],
                &["form", "questions", "0", "hint", "x"],
            ],
        ];
        for case in cases {
            assert_projects_like_to_json(&form, &paths(case));
        }
    }

    #[test]
    fn types_the_contract_does_not_define_project_json_generically() {
        let text = br#"{"a": {"b": [1, {"c": true}], "d": "x"}, "e": 2.5}"#;
        let list = paths(&[&["a", "b", "1", "c"], &["e"], &["zz"]]);
        let refs: Vec<&DataPath> = list.iter().collect();
        let projected =
            |content_type, value| project("payment.received", content_type, value, &refs).unwrap();
        assert_eq!(
            projected(ContentType::Json, Some(&text[..])),
            json!({"a": {"b": [null, {"c": true}]}, "e": 2.5})
        );
        assert_eq!(
            project(
                "payment.received",
                ContentType::Json,
                Some(b"[[1, 2], 3]"),
                &[&path(&["0", "1"])]
            )
            .unwrap(),
            json!([[null, 2]])
        );
        assert_eq!(projected(ContentType::Json, Some(b"not json")), Value::Null);
        assert_eq!(projected(ContentType::Json, None), Value::Null);
        assert_eq!(projected(ContentType::Avro, Some(&text[..])), Value::Null);
    }

    #[test]
    fn bad_values_of_v1_types_are_refused_as_validation_refuses_them() {
        let event = samples::response_every_answer_kind("acme", "r-1");
        let list = paths(&[&["response", "answers", "crop", "choice"]]);
        let refs: Vec<&DataPath> = list.iter().collect();
        let reason = |content_type, value: Option<&[u8]>| {
            project("response.submitted", content_type, value, &refs)
                .unwrap_err()
                .reason
        };
        let avro = encode(&event, ContentType::Avro).unwrap();
        for cut in [0, 5, 10, avro.len() / 2, avro.len() - 1] {
            assert_eq!(
                reason(ContentType::Avro, Some(&avro[..cut])),
                Reason::InvalidPayload,
                "{cut}"
            );
        }
        let mut other_fingerprint = avro.clone();
        other_fingerprint[5] ^= 0xff;
        assert_eq!(
            reason(ContentType::Avro, Some(&other_fingerprint)),
            Reason::UnknownSchema
        );
        assert_eq!(reason(ContentType::Avro, None), Reason::InvalidPayload);
        assert_eq!(reason(ContentType::Json, Some(b"[1]")), Reason::InvalidPayload);
        assert_eq!(reason(ContentType::Json, Some(b"null")), Reason::InvalidPayload);
        assert_eq!(
            reason(ContentType::Json, Some(b"{\"a\": ")),
            Reason::InvalidPayload
        );
        assert_eq!(reason(ContentType::Json, Some(b"{} {}")), Reason::InvalidPayload);
        assert_eq!(
            project(
                EventType::FormCreated.as_str(),
                ContentType::Json,
                Some(b"{}"),
                &refs
            )
            .unwrap(),
            json!({})
        );
    }

    proptest! {
        /// The Avro walk reads the whole datum: it fails exactly where validation fails, whatever is asked.
        #[test]
        fn avro_projection_fails_exactly_where_validation_fails(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let event = samples::response_every_answer_kind("acme", "r-1");
            let mut avro = encode(&event, ContentType::Avro).unwrap();
            for (at, byte) in flips {
                let at = 10 + at.index(avro.len() - 10);
                avro[at] = byte;
            }
            let avro = &avro[..10 + cut.index(avro.len() - 9)];
            let list = paths(&[&["response", "answers", "crop", "choice"], &["response", "locale"]]);
            let refs: Vec<&DataPath> = list.iter().collect();
            let projected = project("response.submitted", ContentType::Avro, Some(avro), &refs);
            let validated = validate("response.submitted", ContentType::Avro, Some(avro));
            prop_assert_eq!(projected.is_ok(), validated.is_ok());
        }

        /// Arbitrary bytes never panic, in either content type, known type or not.
        #[test]
        fn arbitrary_values_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let list = paths(&[&["a"], &["response", "answers", "x", "choice"], &["0", "1"]]);
            let refs: Vec<&DataPath> = list.iter().collect();
            for event_type in ["response.submitted", "form.created", "anything.else"] {
                for content_type in [ContentType::Avro, ContentType::Json] {
                    let _ = project(event_type, content_type, Some(&bytes), &refs);
                }
            }
        }
    }
}
