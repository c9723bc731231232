//! The variables filters see for one event, built once per event and shared by every filter of it.
//!
//! Nothing is converted up front: [`Bindings::new`] only keeps borrows. A variable becomes a CEL value when
//! an expression first reads it (cel asks the bindings by name), and the three that cost something to
//! build (`time`, parsed; `extensions`, a map; `data`, a tree) are built once and kept for the other
//! filters of the event. Strings are borrowed from the event throughout, never copied.

use std::collections::HashMap;
use std::sync::OnceLock;

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp, CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use switchyard_schemas::Envelope;

/// Deepest `data` tree converted for CEL; anything deeper reads as `null`. A projection from the contract's
/// decoders is never deeper (serde_json stops at 128 levels, the Avro walker at 64), so this only guards
/// against a tree a caller built by other means.
const MAX_DATA_DEPTH: usize = 128;

/// A CEL value that may borrow from the event.
type Boxed<'a> = Box<dyn Val + 'a>;

/// The CloudEvents attributes of one event, borrowed from its record.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    /// `ce_id`: the variable `id`.
    pub id: &'a str,
    /// `ce_source`: the variable `source`.
    pub source: &'a str,
    /// `ce_type`: the variable `type`.
    pub event_type: &'a str,
    /// `ce_subject`, if present: the variable `subject` (absent otherwise).
    pub subject: Option<&'a str>,
    /// `ce_time`, RFC 3339, if present: the variable `time`, a timestamp (absent otherwise, or if it does
    /// not parse).
    pub time: Option<&'a str>,
    /// The record key: the variable `teamid`.
    pub team_id: &'a str,
    /// The other `ce_<name>` headers as `(name without "ce_", value)`: the map `extensions`. The router
    /// passes every `ce_` header but `ce_specversion` and the five above; a name given twice keeps its
    /// last value.
    pub extensions: &'a [(&'a str, &'a str)],
}

impl<'a> Attributes<'a> {
    /// The attributes of a checked envelope, with its extension headers.
    pub fn from_envelope(envelope: &Envelope<'a>, extensions: &'a [(&'a str, &'a str)]) -> Self {
        Self {
            id: envelope.id,
            source: envelope.source,
            event_type: envelope.event_type,
            subject: envelope.subject,
            time: envelope.time,
            team_id: envelope.team_id,
            extensions,
        }
    }
}

/// The variables of one event, for every filter that evaluates it. Build it once per event, after
/// projecting the data on the paths those filters read (`switchyard_schemas::payload::project`).
pub struct Bindings<'a> {
    id: CelString<'a>,
    source: CelString<'a>,
    event_type: CelString<'a>,
    team_id: CelString<'a>,
    subject: Option<CelString<'a>>,
    time_text: Option<&'a str>,
    extension_pairs: &'a [(&'a str, &'a str)],
    /// The projected data, as given: what [`crate::Verdict::Missing`] is decided on.
    pub(crate) data_json: &'a serde_json::Value,
    time: OnceLock<Option<CelTimestamp>>,
    extensions: OnceLock<CelMap<'a>>,
    data: OnceLock<Boxed<'a>>,
}

impl<'a> Bindings<'a> {
    /// The variables of the event with `attributes` and `data`, the contract's bare-JSON form of its data
    /// (a projection is enough; `Value::Null` when there is none). Cheap: nothing is converted until a
    /// filter reads it.
    pub fn new(attributes: &Attributes<'a>, data: &'a serde_json::Value) -> Self {
        Self {
            id: CelString::from(attributes.id),
            source: CelString::from(attributes.source),
            event_type: CelString::from(attributes.event_type),
            team_id: CelString::from(attributes.team_id),
            subject: attributes.subject.map(CelString::from),
            time_text: attributes.time,
            extension_pairs: attributes.extensions,
            data_json: data,
            time: OnceLock::new(),
            extensions: OnceLock::new(),
            data: OnceLock::new(),
        }
    }

    /// Whether the event has the extension `name`.
    pub(crate) fn has_extension(&self, name: &str) -> bool {
        self.extension_pairs.iter().any(|(n, _)| *n == name)
    }

    /// Whether the event has `subject`.
    pub(crate) fn has_subject(&self) -> bool {
        self.subject.is_some()
    }

    /// The event's time, if it has one that parses.
    pub(crate) fn time(&self) -> Option<&CelTimestamp> {
        self.time
            .get_or_init(|| {
                let text = self.time_text?;
                chrono::DateTime::parse_from_rfc3339(text)
                    .ok()
                    .map(CelTimestamp::from)
            })
            .as_ref()
    }

    fn extensions(&self) -> &CelMap<'a> {
        self.extensions.get_or_init(|| {
            let map: HashMap<CelMapKey<'a>, Boxed<'a>> = self
                .extension_pairs
                .iter()
                .map(|&(name, value)| {
                    (
                        CelMapKey::from(name),
                        Box::new(CelString::from(value)) as Boxed<'a>,
                    )
                })
                .collect();
            CelMap::from(map)
        })
    }

    fn data(&self) -> &Boxed<'a> {
        self.data.get_or_init(|| json_value(self.data_json, 0))
    }

    /// What cel asks for a variable by name.
    pub(crate) fn resolver(&self) -> Resolver<'_, 'a> {
        Resolver(self)
    }
}

/// The bindings as cel's variable resolver. A separate type so that cel's trait stays out of this crate's
/// API.
pub(crate) struct Resolver<'b, 'a>(&'b Bindings<'a>);

impl VariableResolver for Resolver<'_, '_> {
    fn resolve<'c>(&'c self, variable: &str) -> Option<CowVal<'c, 'c>> {
        let bindings = self.0;
        let value: &'c dyn Val = match variable {
            "type" => &bindings.event_type,
            "data" => bindings.data().as_ref(),
            "subject" => bindings.subject.as_ref()?,
            "id" => &bindings.id,
            "source" => &bindings.source,
            "teamid" => &bindings.team_id,
            "time" => bindings.time()?,
            "extensions" => bindings.extensions(),
            // cel also asks for qualified names (`data.response`) before their root: not variables.
            _ => return None,
        };
        Some(CowVal::Borrowed(value))
    }
}

/// A JSON value as a CEL value, borrowing its strings.
fn json_value(value: &serde_json::Value, depth: usize) -> Boxed<'_> {
    use serde_json::Value;
    if depth > MAX_DATA_DEPTH {
        return Box::new(CelNull);
    }
    match value {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            (None, None) => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        Value::String(s) => Box::new(CelString::from(s.as_str())),
        Value::Array(items) => Box::new(CelList::from(
            items
                .iter()
                .map(|item| json_value(item, depth + 1))
                .collect::<Vec<_>>(),
        )),
        Value::Object(members) => Box::new(CelMap::from(
            members
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.as_str()), json_value(v, depth + 1)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}
