//! Installation filters: a CEL expression over one event's CloudEvents attributes and its decoded data,
//! compiled once (by the registry when it is written, by the router when the enablement arrives) and
//! evaluated by the router for every event of the team.
//!
//! ```text
//!   registry  PUT ..filter..  ─► Filter::compile ─► 422 + FilterError { offset, line, column } | stored
//!   router    enablement      ─► Filter::compile ─► Arc<Filter> in the routing table (shared when equal)
//!   router    event           ─► payload::project(data, ∪ filter.data_paths())        once per event
//!                               ─► Bindings::new(Attributes, &projection)               once per event
//!                               ─► filter.evaluate(&bindings) ─► Verdict               per filter
//! ```
//!
//! # Variables
//!
//! A filter reads a closed set of variables; compiling refuses any other identifier:
//!
//! | variable | value |
//! |---|---|
//! | `id`, `source`, `type` | `ce_id`, `ce_source`, `ce_type` (strings) |
//! | `subject` | `ce_subject` (a string); absent when the event has none |
//! | `time` | `ce_time` as a timestamp; absent when the event has none |
//! | `teamid` | the team id, from the record key |
//! | `extensions` | a map of every other `ce_<name>` header: `name` (without `ce_`) to its string value; test with `has(extensions.x)` or `"x" in extensions` |
//! | `data` | the event's data in the contract's bare-JSON form, read only through literal paths |
//!
//! `data` is what plugins receive as `data`, so a `response.submitted` answer is
//! `data.response.answers["q-city"].choice == "nairobi"` (not `data.answers[...]`, which is always missing).
//! For a type the contract does not define, `data` is the JSON value if the event is JSON, and `null` if
//! it is Avro (there is no schema to read it with).
//!
//! # The bound
//!
//! cel 0.15 has no cost limit or interruption, so the cost of an evaluation is bounded by the expression's
//! shape, checked when it compiles. A filter that exceeds the bound never compiles, so it is refused when
//! written and never reaches routing.
//!
//! - source at most [`MAX_SOURCE_BYTES`] (1024) bytes;
//! - brackets and conditionals nested at most [`MAX_NESTING`] (32) deep, checked on the source before
//!   parsing (the parser recurses per level);
//! - at most [`MAX_NODES`] (64) nodes after macro expansion, nested at most [`MAX_DEPTH`] (24) deep;
//! - no comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`); `has()` is allowed;
//! - only these functions: the operators (`&&`, `||`, `!`, `?:`, `==`, `!=`, `<`, `<=`, `>`, `>=`, `+`, `-`,
//!   `*`, `/`, `%`, `in`, indexing), `size`, `contains`, `startsWith`, `endsWith` and the conversions `int`,
//!   `uint`, `double`, `string`, `bool`, `timestamp`, `duration`. Not `matches` (cel compiles its regular
//!   expression on every call, about 15 µs);
//! - `data` only through literal paths (field selections, string keys and non-negative integer indexes):
//!   at most [`MAX_DATA_PATHS`] (16) distinct paths.
//!
//! Without comprehensions every node is evaluated at most once (`&&`, `||` and `?:` short-circuit, never
//! repeat), so **an evaluation performs at most 64 operations, each taking time at most linear in the sizes
//! of its operands**, which are parts of the event or of the source, or results of at most 63 earlier
//! operations (so a `+` of strings or lists can build a value at most 64 times the event's size).
//!
//! # Verdicts
//!
//! [`Filter::evaluate`] never fails and never panics. A result other than a bool is [`Verdict::Error`] (it
//! cannot always be known when compiling). Reading what the event does not have is [`Verdict::Missing`]:
//! a data path whose key or element is absent or that goes through a `null` (`answers["q"].choice` of a
//! skipped answer), an extension read by name, or an absent `subject` or `time`. A `null` at the end of a
//! path is a value (`== null` is true). Every other evaluation error (a type mismatch such as `null > 1`, a
//! division by zero, an overflow) is [`Verdict::Error`]. Neither routes a copy; they are counted apart.
//!
//! # Cost
//!
//! Measured (`cargo bench -p switchyard-filter`), see `benches/evaluate.rs`. A compiled filter keeps its
//! source and cel's expression tree, not cel's `Program` and its source map: see
//! [`Filter::memory_bytes`].

pub mod bindings;
pub mod bounds;
pub mod compile;
pub mod compile_thread;
pub mod error;
pub mod evaluate;

pub use bindings::{Attributes, Bindings};
pub use bounds::{MAX_DATA_PATHS, MAX_DEPTH, MAX_NESTING, MAX_NODES, MAX_SOURCE_BYTES};
pub use compile::Filter;
pub use error::{FilterError, Problem};
pub use evaluate::{Absent, Verdict};
pub use switchyard_schemas::projection::{DataPath, Segment};
