//! `switchyardctl filter test --filter CEL --event FILE`: an installation filter against a sample event,
//! evaluated here as the router evaluates it, without calling the registry.
//!
//! ```text
//!   --filter ──► Filter::compile ──────────────────────────────┐ compile error: printed, exit 2
//!   --event  ──► CloudEvents JSON (structured) ──► Attributes ──┤
//!                      └─ data ──► payload::project(JSON, the filter's paths)
//!                                        └──► Bindings ──► evaluate ──► match (0) | no_match (1)
//!                                                                     | missing: <path> (1) | error: <why> (2)
//! ```
//!
//! The attributes are bound as the router binds the headers of a record: `id`, `source`, `type`, `subject`,
//! `time`, `teamid`, and every other attribute but `specversion` and `datacontenttype` (which the router
//! sees as the `content-type` header) as an extension; an extension that is not a string is bound to its
//! JSON text. The data goes through the router's projection, so a data that the contract's decoder refuses
//! is an error here as it is there.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Map, Value};
use switchyard_filter::{Attributes, Bindings, Filter, Verdict};
use switchyard_schemas::ContentType;
use switchyard_schemas::payload;

/// `filter ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum FilterCommand {
    /// Evaluate a filter against a sample event, locally. Prints `match`, `no_match`, `missing: <path>` or
    /// `error: <message>`; exits 0 on a match, 1 on no match or missing, 2 on an error.
    Test {
        /// The filter, a CEL expression as an installation's `filter`.
        #[arg(long)]
        filter: String,
        /// The event, a JSON file in the CloudEvents structured format
        /// (`{"specversion": "1.0", "id": .., "source": .., "type": .., "subject": .., "time": .., "teamid": ..,
        /// "data": {..}}`).
        #[arg(long, value_name = "FILE")]
        event: PathBuf,
    },
}

/// How a test came out: the line printed and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// A verdict (`match`, `no_match`, `missing: ..`, `error: ..`), printed on stdout; or why there is
    /// none (the filter does not compile, the file is no event), printed on stderr.
    pub line: String,
    /// 0 match, 1 no match or missing, 2 error.
    pub status: u8,
    /// Whether `line` is a verdict.
    pub verdict: bool,
}

impl Outcome {
    fn verdict(line: impl Into<String>, status: u8) -> Self {
        Self {
            line: line.into(),
            status,
            verdict: true,
        }
    }

    fn failed(line: String) -> Self {
        Self {
            line,
            status: 2,
            verdict: false,
        }
    }
}

/// Runs a `filter` command.
pub(crate) fn run(command: &FilterCommand) -> ExitCode {
    let FilterCommand::Test { filter, event } = command;
    let outcome = test_file(filter, event);
    if outcome.verdict {
        println!("{}", outcome.line);
    } else {
        eprintln!("{}", outcome.line);
    }
    ExitCode::from(outcome.status)
}

/// Compiles `filter`, reads the event at `path` and evaluates.
fn test_file(filter: &str, path: &Path) -> Outcome {
    let filter = match Filter::compile(filter) {
        Ok(filter) => filter,
        Err(error) => return Outcome::failed(format!("switchyardctl: {error}")),
    };
    let event = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            return Outcome::failed(format!("switchyardctl: cannot read {}: {error}", path.display()));
        }
    };
    match serde_json::from_slice::<Value>(&event) {
        Ok(Value::Object(event)) => evaluate(&filter, &event),
        Ok(_) => Outcome::failed(format!(
            "switchyardctl: {} is not a CloudEvent in the JSON structured format: not a JSON object",
            path.display()
        )),
        Err(error) => Outcome::failed(format!("switchyardctl: {} is not JSON: {error}", path.display())),
    }
}

/// The attributes that are not extensions: the router reads them from their own headers (the
/// `content-type` header for `datacontenttype`), or they are the event's data.
const NOT_EXTENSIONS: [&str; 10] = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "teamid",
    "datacontenttype",
    "data",
    "data_base64",
];

/// Evaluates a compiled filter on an event in the CloudEvents JSON structured format.
pub(crate) fn evaluate(filter: &Filter, event: &Map<String, Value>) -> Outcome {
    let text = |name: &str| event.get(name).and_then(Value::as_str);
    let required = |name: &str| {
        text(name).ok_or_else(|| {
            Outcome::failed(format!(
                "switchyardctl: the event has no string attribute {name:?}"
            ))
        })
    };
    let attributes = (required("id"), required("source"), required("type"));
    let (id, source, event_type) = match attributes {
        (Ok(id), Ok(source), Ok(event_type)) => (id, source, event_type),
        (Err(outcome), _, _) | (_, Err(outcome), _) | (_, _, Err(outcome)) => return outcome,
    };
    // Extensions are strings on the wire (`ce_<name>` headers); another JSON value is bound as its text.
    let extension_values: Vec<(&str, String)> = event
        .iter()
        .filter(|(name, _)| !NOT_EXTENSIONS.contains(&name.as_str()))
        .map(|(name, value)| {
            let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            (name.as_str(), value)
        })
        .collect();
    let extensions: Vec<(&str, &str)> = extension_values
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let attributes = Attributes {
        id,
        source,
        event_type,
        subject: text("subject"),
        time: text("time"),
        team_id: text("teamid").unwrap_or_default(),
        extensions: &extensions,
    };
    let paths: Vec<_> = filter.data_paths().iter().collect();
    let data = if paths.is_empty() {
        Ok(Value::Null)
    } else {
        let serialized = event.get("data").map(Value::to_string);
        payload::project(
            event_type,
            ContentType::Json,
            serialized.as_deref().map(str::as_bytes),
            &paths,
        )
    };
    let data = match data {
        Ok(data) => data,
        // As in the router: the filter cannot see data that does not decode, so it fails.
        Err(rejection) => return Outcome::verdict(format!("error: {}", rejection.detail), 2),
    };
    let bindings = Bindings::new(&attributes, &data);
    match filter.evaluate(&bindings) {
        Verdict::Match => Outcome::verdict("match", 0),
        Verdict::NoMatch => Outcome::verdict("no_match", 1),
        Verdict::Missing(absent) => {
            Outcome::verdict(format!("missing: {}", filter.describe_absent(absent)), 1)
        }
        Verdict::Error(message) => Outcome::verdict(format!("error: {message}"), 2),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn outcome(filter: &str, event: Value) -> (String, u8) {
        let filter = Filter::compile(filter).unwrap();
        let Value::Object(event) = event else {
            panic!("an object")
        };
        let outcome = evaluate(&filter, &event);
        (outcome.line, outcome.status)
    }

    fn event() -> Value {
        json!({"specversion": "1.0", "id": "evt-1", "source": "/forms/f-1", "type": "form.created",
               "subject": "f-1", "time": "2026-11-22T09:55:00Z", "teamid": "acme", "channel": "web",
               "attempt": 2, "datacontenttype": "application/json", "data": {"anything": 1}})
    }

    #[test]
    fn attributes_and_extensions_as_the_router_binds_them() {
        for (filter, expected) in [
            (r#"type == "form.created" && subject == "f-1""#, ("match", 0)),
            (
                r#"teamid == "acme" && id == "evt-1" && source == "/forms/f-1""#,
                ("match", 0),
            ),
            (
                r#"extensions.channel == "web" && extensions.attempt == "2""#,
                ("match", 0),
            ),
            (
                r#"has(extensions.specversion) || has(extensions.teamid) || has(extensions.datacontenttype)"#,
                ("no_match", 1),
            ),
            (r#"type == "form.updated""#, ("no_match", 1)),
            (
                r#"extensions.region == "eu""#,
                ("missing: extensions[\"region\"]", 1),
            ),
            ("1 / 0 == 1", ("error", 2)),
        ] {
            let (line, status) = outcome(filter, event());
            assert_eq!(
                (line.split(':').next().unwrap(), status),
                (expected.0.split(':').next().unwrap(), expected.1),
                "{filter}: {line}"
            );
            if expected.0.starts_with("missing") {
                assert_eq!(line, expected.0);
            }
        }
        let mut no_subject = event();
        no_subject.as_object_mut().unwrap().remove("subject");
        assert_eq!(
            outcome(r#"subject == "f-1""#, no_subject),
            ("missing: subject".to_owned(), 1)
        );
    }

    #[test]
    fn required_attributes() {
        let mut no_type = event();
        no_type.as_object_mut().unwrap().remove("type");
        let (line, status) = outcome("true", no_type);
        assert_eq!(status, 2);
        assert!(line.contains("\"type\""), "{line}");
    }
}
