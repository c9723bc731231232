//! Evaluating a compiled filter on one event's bindings, and what the result means.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cel::common::types::CelBool;
use cel::{Context, Env, ExecutionError, Value};
use serde_json::Value as Json;
use switchyard_schemas::projection::{DataPath, Segment};

use crate::bindings::Bindings;
use crate::compile::Filter;

/// How a filter came out on one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The filter evaluated to `true`: the installation gets a copy.
    Match,
    /// The filter evaluated to `false`: no copy.
    NoMatch,
    /// The filter read something the event does not have (a skipped answer, an absent `subject`): no copy,
    /// and counted apart from errors.
    Missing(Absent),
    /// The filter failed on this event (a type mismatch, a division by zero, a result that is not a
    /// bool): no copy. The text says why, for logs; never put it in a metric label.
    Error(String),
}

impl Verdict {
    /// A bounded label for metrics: `match`, `no_match`, `missing` or `error`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::NoMatch => "no_match",
            Verdict::Missing(_) => "missing",
            Verdict::Error(_) => "error",
        }
    }

    /// Whether the installation gets a copy of the event.
    pub fn is_match(&self) -> bool {
        matches!(self, Verdict::Match)
    }
}

/// What a [`Verdict::Missing`] filter read and the event lacks. Indexes refer to the filter that gave the
/// verdict; [`Filter::describe_absent`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Absent {
    /// The event has no `ce_subject`.
    Subject,
    /// The event has no `ce_time` (or one that does not parse).
    Time,
    /// The extension [`Filter::extension_reads`]`[i]`.
    Extension(usize),
    /// The path [`Filter::data_paths`]`[i]`: a key or an element is not there, or a `null` (a skipped
    /// answer) is on the way.
    Data(usize),
}

thread_local! {
    /// cel's standard library, per thread: every evaluation hands a context its own `Arc` of it, and a
    /// per-thread one keeps router threads from contending on one reference count.
    static ENV: Arc<Env> = Arc::new(Env::stdlib());
}

impl Filter {
    /// Evaluates the filter on one event. Never fails and never panics: whatever goes wrong is a
    /// [`Verdict`].
    ///
    /// The cost is bounded at compile time (see the crate docs): at most [`crate::MAX_NODES`] operations.
    pub fn evaluate(&self, bindings: &Bindings<'_>) -> Verdict {
        let resolver = bindings.resolver();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            ENV.with(|env| {
                let mut context = Context::with_env(Arc::clone(env));
                context.set_variable_resolver(&resolver);
                match Value::resolve_val(&self.expr, &context) {
                    Ok(value) => match value.downcast_ref::<CelBool>() {
                        Some(b) if *b.inner() => Verdict::Match,
                        Some(_) => Verdict::NoMatch,
                        None => Verdict::Error(format!(
                            "the filter evaluated to a value of type {} instead of true or false",
                            value.get_type().name()
                        )),
                    },
                    Err(error) => self.classify(error, bindings),
                }
            })
        }));
        // cel is not known to panic on any input, but an evaluation runs on the router's hot path: a bug
        // there must cost one verdict, not the process.
        outcome.unwrap_or_else(|_| Verdict::Error("the filter's evaluation panicked".to_owned()))
    }

    /// Names what a [`Verdict::Missing`] of this filter refers to, as the filter writes it:
    /// `subject`, `extensions.x`, `data.response.answers["q1"]`.
    pub fn describe_absent(&self, absent: Absent) -> String {
        match absent {
            Absent::Subject => "subject".to_owned(),
            Absent::Time => "time".to_owned(),
            Absent::Extension(i) => self.extension_reads.get(i).map_or_else(
                || "an extension".to_owned(),
                |name| format!("extensions[{:?}]", &**name),
            ),
            Absent::Data(i) => self
                .data_paths
                .get(i)
                .map_or_else(|| "data".to_owned(), format_data_path),
        }
    }

    /// An evaluation error is [`Verdict::Missing`] when it is what reading something the event lacks
    /// produces and the filter reads such a thing by name; otherwise it is [`Verdict::Error`].
    fn classify(&self, error: ExecutionError, bindings: &Bindings<'_>) -> Verdict {
        let absent = match &error {
            ExecutionError::UndeclaredReference(name) => match name.as_str() {
                "subject" if !bindings.has_subject() => Some(Absent::Subject),
                "time" if bindings.time().is_none() => Some(Absent::Time),
                _ => None,
            },
            ExecutionError::NoSuchKey(key) => self
                .absent_data(bindings.data_json, |gap| gap == Gap::Key(key.as_str()))
                .or_else(|| {
                    self.extension_reads
                        .iter()
                        .position(|name| **name == ***key && !bindings.has_extension(name))
                        .map(Absent::Extension)
                }),
            ExecutionError::IndexOutOfBounds(index) => {
                let index = match index {
                    Value::Int(i) => u64::try_from(*i).ok(),
                    Value::UInt(u) => Some(*u),
                    _ => None,
                };
                index.and_then(|index| self.absent_data(bindings.data_json, |gap| gap == Gap::Index(index)))
            }
            // Selecting or indexing into a null: a skipped answer on the way.
            ExecutionError::NoSuchOverload(overload)
                if matches!(overload.function(), "_._" | "_[_]")
                    && overload.argument_types().first().map(String::as_str) == Some("null_type") =>
            {
                self.absent_data(bindings.data_json, |gap| gap == Gap::Null)
            }
            _ => None,
        };
        match absent {
            Some(absent) => Verdict::Missing(absent),
            None => Verdict::Error(error_text(&error)),
        }
    }

    /// The first of the filter's data paths whose gap in `data` satisfies `matches`.
    fn absent_data(&self, data: &Json, matches: impl Fn(Gap<'_>) -> bool) -> Option<Absent> {
        self.data_paths
            .iter()
            .position(|path| gap(data, path).is_some_and(&matches))
            .map(Absent::Data)
    }
}

/// Longest [`Verdict::Error`] text, in characters. cel's messages quote the values involved, which can be
/// as large as the event.
const MAX_ERROR_CHARS: usize = 300;

/// The text of a [`Verdict::Error`] for `error`, cut to [`MAX_ERROR_CHARS`].
fn error_text(error: &ExecutionError) -> String {
    let mut text = format!("the filter failed on this event: {error}");
    if let Some((cut, _)) = text.char_indices().nth(MAX_ERROR_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Where a data path stops short in a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gap<'p> {
    /// An object without this key.
    Key(&'p str),
    /// An array without this index.
    Index(u64),
    /// A `null` before the path's end.
    Null,
}

/// Where `path` stops short in `data`, if it does. A path that runs into a value of another kind (a key
/// of a string) has no gap: reading it is an error of the filter, not something missing.
fn gap<'p>(data: &Json, path: &'p DataPath) -> Option<Gap<'p>> {
    let mut value = data;
    for segment in path.segments() {
        value = match (value, segment) {
            (Json::Null, _) => return Some(Gap::Null),
            (Json::Object(members), Segment::Key(key)) => match members.get(&**key) {
                Some(member) => member,
                None => return Some(Gap::Key(key)),
            },
            (Json::Array(items), Segment::Index(index)) => {
                match usize::try_from(*index).ok().and_then(|i| items.get(i)) {
                    Some(item) => item,
                    None => return Some(Gap::Index(*index)),
                }
            }
            _ => return None,
        };
    }
    None
}

/// A data path as a filter writes it: `data.` and the path.
fn format_data_path(path: &DataPath) -> String {
    let text = path.to_string();
    if text.starts_with('[') {
        format!("data{text}")
    } else {
        format!("data.{text}")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;
    use switchyard_schemas::events::CoreEvent;
    use switchyard_schemas::{ContentType, payload, samples};

    use super::*;
    use crate::bindings::Attributes;
    use crate::error::Problem;

    const EXTENSIONS: [(&str, &str); 2] = [("channel", "sms"), ("teamid", "acme")];

    fn attributes(event_type: &str) -> Attributes<'_> {
        Attributes {
            id: "0193a5b2-7c3e-7f00-8000-000000000001",
            source: "/collect/web",
            event_type,
            subject: Some("form-1"),
            time: Some("2026-11-22T10:00:00Z"),
            team_id: "acme",
            extensions: &EXTENSIONS,
        }
    }

    fn compile(source: &str) -> Filter {
        Filter::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"))
    }

    /// The verdict of `source` on attributes alone (`data` null).
    fn on_attributes(source: &str, attributes: &Attributes<'_>) -> Verdict {
        compile(source).evaluate(&Bindings::new(attributes, &Json::Null))
    }

    /// The verdicts of `source` on `event` in Avro and in JSON, each projected on the filter's paths as the
    /// router does.
    fn on_event<E: CoreEvent>(source: &str, event: &E) -> [Verdict; 2] {
        let filter = compile(source);
        let paths: Vec<&DataPath> = filter.data_paths().iter().collect();
        [ContentType::Avro, ContentType::Json].map(|content_type| {
            let value = payload::encode(event, content_type).unwrap();
            let data = payload::project(E::TYPE.as_str(), content_type, Some(&value), &paths).unwrap();
            filter.evaluate(&Bindings::new(&attributes(E::TYPE.as_str()), &data))
        })
    }

    fn response() -> switchyard_schemas::events::ResponseSubmitted {
        samples::response_every_answer_kind("acme", "r-1")
    }

    #[test]
    fn attributes_are_variables() {
        let attrs = attributes("response.submitted");
        for source in [
            "type == 'response.submitted' && subject == 'form-1'",
            "id.startsWith('0193') && source == '/collect/web' && teamid == 'acme'",
            "time > timestamp('2026-01-01T00:00:00Z') && time < timestamp('2027-01-01T00:00:00Z')",
            "time + duration('24h') > timestamp('2026-11-23T09:00:00Z')",
            "extensions.channel == 'sms' && extensions['teamid'] == teamid && 'channel' in extensions",
            "has(extensions.channel) && !has(extensions.other) && size(extensions) == 2",
            "type in ['response.submitted', 'response.updated'] ? subject.size() == 6 : false",
        ] {
            assert_eq!(on_attributes(source, &attrs), Verdict::Match, "{source}");
        }
        assert_eq!(on_attributes("type == 'form.created'", &attrs), Verdict::NoMatch);
        assert_eq!(
            on_attributes("subject != 'form-1' || teamid == 'other'", &attrs),
            Verdict::NoMatch
        );
    }

    #[test]
    fn absent_attributes_are_missing() {
        let attrs = Attributes {
            subject: None,
            time: None,
            extensions: &[],
            ..attributes("response.submitted")
        };
        assert_eq!(
            on_attributes("subject == 'form-1'", &attrs),
            Verdict::Missing(Absent::Subject)
        );
        assert_eq!(
            on_attributes("type == 'x' || time > timestamp('2026-01-01T00:00:00Z')", &attrs),
            Verdict::Missing(Absent::Time)
        );
        let filter = compile("extensions.a == '1' && type == 'response.submitted'");
        let verdict = filter.evaluate(&Bindings::new(&attrs, &Json::Null));
        assert_eq!(verdict, Verdict::Missing(Absent::Extension(0)));
        assert_eq!(filter.describe_absent(Absent::Extension(0)), r#"extensions["a"]"#);
        // when both sides of `||` fail, cel reports the right one
        let filter = compile("extensions.a == '1' || extensions.channel == 'sms'");
        let verdict = filter.evaluate(&Bindings::new(&attrs, &Json::Null));
        assert_eq!(verdict, Verdict::Missing(Absent::Extension(1)));
        // presence tests are not reads
        assert_eq!(on_attributes("has(extensions.channel)", &attrs), Verdict::NoMatch);
        // a `time` that does not parse reads as absent
        let bad_time = Attributes {
            time: Some("yesterday"),
            ..attributes("x")
        };
        assert_eq!(
            on_attributes("time == time", &bad_time),
            Verdict::Missing(Absent::Time)
        );
    }

    #[test]
    fn data_is_read_through_the_projection_in_both_content_types() {
        let response = response();
        for source in [
            "data.response.answers['crop'].choice == 'maize'",
            "data.response.answers.income.number > 4000 && data.response.answers.income.number < 4200.6",
            "data.response.answers['assets'].choices[1] == 'bike' && size(data.response.answers.assets.choices) == 2",
            "'radio' in data.response.answers.assets.choices",
            "data.response.answers.farm.latitude < 0.0 && has(data.response.answers.farm.accuracy_m)",
            "data.response.form_version == 7 && data.response.locale.startsWith('sw')",
            "has(data.response.duration_ms) && data.response.duration_ms >= 240000",
            "has(data.response.answers.skipped) && !has(data.response.answers.nope)",
            "data.response.answers.crop == {'choice': 'maize'}",
        ] {
            assert_eq!(
                on_event(source, &response),
                [Verdict::Match, Verdict::Match],
                "{source}"
            );
        }
        assert_eq!(
            on_event("data.response.answers['crop'].choice == 'rice'", &response),
            [Verdict::NoMatch, Verdict::NoMatch]
        );
        let form = samples::form_created("acme", "1");
        assert_eq!(
            on_event(
                "data.form.questions[0].kind == 'TEXT' && data.created_by == 'user-1'",
                &form
            ),
            [Verdict::Match, Verdict::Match]
        );
    }

    #[test]
    fn what_the_event_lacks_is_missing() {
        let response = response();
        let missing = |i| {
            [
                Verdict::Missing(Absent::Data(i)),
                Verdict::Missing(Absent::Data(i)),
            ]
        };
        // a skipped answer is a null in the answers
        assert_eq!(
            on_event("data.response.answers.skipped.choice == 'x'", &response),
            missing(0)
        );
        assert_eq!(
            on_event("data.response.answers['skipped']['choice'] == 'x'", &response),
            missing(0)
        );
        // an answer the response does not have
        assert_eq!(
            on_event(
                "data.response.form_id == 'form-1' && data.response.answers.q9.choice == 'x'",
                &response
            ),
            missing(1)
        );
        // an element past the end
        assert_eq!(
            on_event("data.response.answers.assets.choices[7] == 'x'", &response),
            missing(0)
        );
    }

    /// Issue 17 writes its example as `data.answers["q-city"].choice == "nairobi"`, but `data` is the
    /// contract's form of the event, where a response's answers are under `response`: that path is missing
    /// on every response.submitted. The filter to write is `data.response.answers["q-city"].choice`.
    #[test]
    fn the_issues_example_path_is_missing_on_a_response() {
        let mut response = response();
        response.response.answers.insert(
            "q-city".to_owned(),
            Some(switchyard_schemas::events::Answer::Choice {
                choice: "nairobi".to_owned(),
            }),
        );
        let as_written = r#"data.answers["q-city"].choice == "nairobi""#;
        let missing = Verdict::Missing(Absent::Data(0));
        assert_eq!(on_event(as_written, &response), [missing.clone(), missing]);
        assert_eq!(
            compile(as_written).describe_absent(Absent::Data(0)),
            r#"data.answers["q-city"].choice"#
        );
        assert_eq!(
            on_event(
                r#"data.response.answers["q-city"].choice == "nairobi""#,
                &response
            ),
            [Verdict::Match, Verdict::Match]
        );
    }

    #[test]
    fn failures_are_errors_not_missing() {
        let response = response();
        for source in [
            // a type mismatch
            "data.response.answers.crop.choice > 3",
            // a field of a string: the path runs into a value of another kind
            "data.response.locale.region == 'KE'",
            // not a bool
            "data.response.form_version + 1",
            "size(data.response.answers) == 8 ? data.response.locale : false",
            // arithmetic
            "data.response.form_version / 0 == 1",
            "data.response.form_version % 0 == 1",
            "9223372036854775807 + data.response.form_version > 0",
            "-9223372036854775807 - data.response.form_version - 2 < 0",
            // a missing key of a literal, and an index past a literal list: not the event's
            "{'a': 1}['b'] == 1",
            "[1, 2][5] == 1",
            "{'a': 1, 'a': 2}['a'] == 1",
        ] {
            let verdicts = on_event(source, &response);
            for verdict in &verdicts {
                assert!(matches!(verdict, Verdict::Error(_)), "{source}: {verdict:?}");
                assert_eq!(verdict.label(), "error");
            }
        }
    }

    #[test]
    fn adversarial_expressions_and_events_never_panic() {
        let huge = "x".repeat(1 << 20);
        let extensions = [("big", huge.as_str())];
        let attrs = Attributes {
            subject: Some(&huge),
            extensions: &extensions,
            ..attributes("payment.received")
        };
        let data = json!({"a": {"b": [huge.clone(), 1, -1.5, null, true, {"c": u64::MAX}]}});
        let bindings = Bindings::new(&attrs, &data);
        // cel quotes the 1 MiB subject in this error
        let verdict = compile("subject - 1 == 1").evaluate(&bindings);
        let Verdict::Error(text) = verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(text.chars().count(), MAX_ERROR_CHARS + 1, "{text}");
        assert!(text.contains("xxxx") && text.ends_with('…'), "{text}");
        for source in [
            "size(subject + subject + subject + extensions.big) > 0",
            "subject.contains(extensions.big + 'y')",
            "subject.startsWith(subject) && subject.endsWith(extensions.big)",
            "data.a.b[0] + data.a.b[0] == subject + subject",
            "data.a.b[5].c == 18446744073709551615u && data.a.b[5].c > 0",
            "data.a.b[5].c + 1u > 0u",
            "int(data.a.b[5].c) > 0",
            "uint(data.a.b[2]) > 0u",
            "int(1e300) > 0 || int('9223372036854775808') > 0",
            "double('nan') != double('nan')",
            "-9223372036854775807 - 1 == -(-9223372036854775807 - 1)",
            "duration('9999999999999999999h') > duration('1s')",
            "timestamp('9999-12-31T23:59:59Z') + duration('87600h') > time",
            "timestamp('0001-01-01T00:00:00Z') - duration('87600h') < time",
            "timestamp('9999-12-31T23:59:59Z') - timestamp('0001-01-01T00:00:00Z') > duration('1h')",
            "duration('2562047h') + duration('2562047h') > duration('1h')",
            "timestamp('not a time') < time",
            "string(1e308 * 10.0) == 'inf'",
            "string(b'\\xff') == ''",
            "bool('maybe')",
            "data.a.b[1] / 0 == 0 || data.a.b[2] / 0.0 > 0.0",
            "[data.a.b, data.a.b] + [data.a.b] == [data.a.b]",
            "data.a.b[3].x == 1 || data.a.b[4][0] == 1",
            "size(b'abc') == 3 && b'abc' + b'd' == b'abcd'",
        ] {
            let verdict = compile(source).evaluate(&bindings);
            assert!(
                !matches!(&verdict, Verdict::Error(message) if message.contains("panicked")),
                "{source}: {verdict:?}"
            );
        }
    }

    #[test]
    fn the_deepest_filter_evaluates_on_a_small_stack() {
        // 24 levels (the bound), evaluated on a thread with the default 2 MiB stack, in a debug build
        let deepest = format!("data.a{} > 0", " + 1".repeat(super::super::MAX_DEPTH - 3));
        let filter = compile(&deepest);
        let data = json!({"a": 1});
        let verdict = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || filter.evaluate(&Bindings::new(&attributes("x"), &data)))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(verdict, Verdict::Match);
    }

    #[test]
    fn unknown_types_have_json_data_or_none() {
        let filter = compile("data.amount > 10 && type == 'payment.received'");
        let paths: Vec<&DataPath> = filter.data_paths().iter().collect();
        let attrs = attributes("payment.received");
        let verdict = |content_type, value: &[u8]| {
            let data = payload::project("payment.received", content_type, Some(value), &paths).unwrap();
            filter.evaluate(&Bindings::new(&attrs, &data))
        };
        assert_eq!(
            verdict(ContentType::Json, br#"{"amount": 12, "other": [1]}"#),
            Verdict::Match
        );
        assert_eq!(verdict(ContentType::Json, br#"{"amount": 8}"#), Verdict::NoMatch);
        assert_eq!(
            verdict(ContentType::Json, br#"{"x": 8}"#),
            Verdict::Missing(Absent::Data(0))
        );
        assert_eq!(
            verdict(ContentType::Json, b"not json"),
            Verdict::Missing(Absent::Data(0))
        );
        // Avro without a schema: no data
        assert_eq!(
            verdict(ContentType::Avro, b"\xc3\x01avro"),
            Verdict::Missing(Absent::Data(0))
        );
    }

    #[test]
    fn one_bindings_serves_every_filter_of_an_event() {
        let response = response();
        let filters = [
            compile("data.response.answers.crop.choice == 'maize'"),
            compile("data.response.locale == 'en'"),
            compile("has(extensions.channel) && subject == 'form-1'"),
            compile("data.response.answers.q9.text == 'x'"),
        ];
        let mut paths: Vec<&DataPath> = filters.iter().flat_map(|f| f.data_paths()).collect();
        paths.dedup();
        let value = payload::encode(&response, ContentType::Avro).unwrap();
        let data = payload::project("response.submitted", ContentType::Avro, Some(&value), &paths).unwrap();
        let bindings = Bindings::new(&attributes("response.submitted"), &data);
        let labels: Vec<&str> = filters.iter().map(|f| f.evaluate(&bindings).label()).collect();
        assert_eq!(labels, ["match", "no_match", "match", "missing"]);
        assert!(filters[0].evaluate(&bindings).is_match());
    }

    #[test]
    fn absent_things_are_named_as_the_filter_writes_them() {
        let filter =
            compile("data.response.answers['q-1'].choice == 'x' || data['0'][1] == 1 || extensions.x == '1'");
        assert_eq!(
            filter.describe_absent(Absent::Data(0)),
            r#"data.response.answers["q-1"].choice"#
        );
        assert_eq!(filter.describe_absent(Absent::Data(1)), r#"data["0"][1]"#);
        assert_eq!(filter.describe_absent(Absent::Extension(0)), r#"extensions["x"]"#);
        assert_eq!(filter.describe_absent(Absent::Subject), "subject");
        assert_eq!(filter.describe_absent(Absent::Data(9)), "data");
    }

    /// Pieces of filters, good and bad, for the fuzz test below.
    const TOKENS: [&str; 44] = [
        "data",
        "type",
        "subject",
        "time",
        "extensions",
        "teamid",
        "x",
        ".",
        ".response",
        ".answers",
        ".a",
        "[",
        "]",
        "(",
        ")",
        "{",
        "}",
        ",",
        ":",
        "?",
        "'q1'",
        "\"",
        "'",
        "0",
        "-1",
        "1.5",
        "2u",
        "null",
        "true",
        "&&",
        "||",
        "!",
        "==",
        "<",
        "+",
        "-",
        "*",
        "/",
        "%",
        " in ",
        "has(",
        "size(",
        ".contains(",
        "timestamp(",
    ];

    proptest! {
        /// Whatever compiles evaluates to a verdict without panicking; whatever does not is refused with a
        /// position inside the source.
        #[test]
        fn arbitrary_token_soup_never_panics(tokens in proptest::collection::vec(0..TOKENS.len(), 1..40)) {
            let source: String = tokens.iter().map(|&i| TOKENS[i]).collect();
            let data = json!({"response": {"answers": {"q1": null, "a": [1, "s"]}}, "a": {"0": 1}});
            match Filter::compile(&source) {
                Ok(filter) => {
                    let verdict = filter.evaluate(&Bindings::new(&attributes("x"), &data));
                    prop_assert!(
                        !matches!(&verdict, Verdict::Error(m) if m.contains("panicked")),
                        "{}: {:?}", source, verdict
                    );
                }
                Err(error) => {
                    prop_assert!(error.offset <= source.len());
                    prop_assert!(error.problem != Problem::Internal, "{}: {}", source, error);
                }
            }
        }
    }

    /// Well-formed filters over every variable, literal kind and allowed function, nested at random.
    fn expression() -> impl Strategy<Value = String> {
        let leaf = prop::sample::select(vec![
            "type",
            "subject",
            "time",
            "teamid",
            "id",
            "extensions",
            "extensions.channel",
            "extensions['x']",
            "data.response.answers.q1",
            "data.response.answers.a[1]",
            "data.response.answers.a[9]",
            "data.a['0']",
            "data.response",
            "has(data.response.answers.q1)",
            "has(extensions.x)",
            "9223372036854775807",
            "-9223372036854775808",
            "0",
            "1.5",
            "-0.0",
            "2u",
            "18446744073709551615u",
            "null",
            "true",
            "'s'",
            "''",
            "b'\\xff'",
            "[1, 's']",
            "[]",
            "{'k': 1}",
            "{}",
            "timestamp('2026-01-01T00:00:00Z')",
            "duration('1h')",
            "duration('-2562047h')",
        ])
        .prop_map(str::to_owned);
        leaf.prop_recursive(5, 40, 3, |inner| {
            let operators = vec![
                "&&", "||", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "in",
            ];
            let functions = vec![
                "size",
                "int",
                "uint",
                "double",
                "string",
                "bool",
                "timestamp",
                "duration",
            ];
            prop_oneof![
                (inner.clone(), prop::sample::select(operators), inner.clone())
                    .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
                inner.clone().prop_map(|a| format!("!{a}")),
                inner.clone().prop_map(|a| format!("-{a}")),
                (inner.clone(), inner.clone(), inner.clone())
                    .prop_map(|(a, b, c)| format!("({a} ? {b} : {c})")),
                (prop::sample::select(functions), inner.clone()).prop_map(|(f, a)| format!("{f}({a})")),
                (
                    inner.clone(),
                    prop::sample::select(vec!["contains", "startsWith", "endsWith"]),
                    inner.clone()
                )
                    .prop_map(|(a, f, b)| format!("{a}.{f}({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}[{b}]")),
                (inner.clone(), inner).prop_map(|(a, b)| format!("[{a}, {b}]")),
            ]
        })
    }

    proptest! {
        /// Every well-formed filter that compiles evaluates to a verdict, on an event with and without the
        /// optional attributes, without panicking.
        #[test]
        fn arbitrary_filters_evaluate_without_panicking(source in expression()) {
            let Ok(filter) = Filter::compile(&source) else { return Ok(()) };
            let data = json!({"response": {"answers": {"q1": null, "a": [1, "s", {"k": 1.5}]}}, "a": {"0": 1}});
            let bare = Attributes { subject: None, time: None, extensions: &[], ..attributes("x") };
            for attrs in [attributes("response.submitted"), bare] {
                let verdict = filter.evaluate(&Bindings::new(&attrs, &data));
                prop_assert!(
                    !matches!(&verdict, Verdict::Error(m) if m.contains("panicked")),
                    "{}: {:?}", source, verdict
                );
            }
        }
    }
}
