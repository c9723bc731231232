//! How each answer of a plugin service is judged against the HTTP contract (`docs/plugin-authors.md`
//! sections 3-5), and the requests' pure parts (sample configs, batch ids). No I/O: unit-tested here.

use serde_json::Value;

/// One check's verdict: passed (with what was seen) or failed (with why, and the fix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Passed; the text says what was seen.
    Pass(String),
    /// Failed.
    Fail {
        /// What was wrong.
        detail: String,
        /// What to change.
        fix: String,
    },
}

impl Verdict {
    fn fail(detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Verdict::Fail {
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

/// A call that must be refused (unsigned, wrongly signed, stale): any 4xx.
pub fn refused(status: u16, what: &str) -> Verdict {
    match status {
        400..=499 => Verdict::Pass(format!("refused with {status}")),
        200..=299 => Verdict::fail(
            format!("{what} was accepted ({status}): anyone who can reach the service can forge calls"),
            "verify webhook-signature over the raw body with the signing secret, and refuse (401) a \
             missing or wrong signature or a timestamp more than 5 minutes off (guide section 4)",
        ),
        _ => Verdict::fail(
            format!("{what} was answered {status}, which the platform retries"),
            "refuse a call that fails verification with 401 (guide section 4)",
        ),
    }
}

/// An answer to a valid, signed `/execute` of one event (guide section 3.5).
pub fn execute(status: u16, body: &[u8]) -> Verdict {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(outcome) = json
        .as_ref()
        .and_then(|j| j.get("outcome"))
        .and_then(Value::as_str)
    {
        let reason = json.as_ref().and_then(|j| j["reason"].as_str()).unwrap_or("");
        return match outcome {
            "dead_letter" => Verdict::Pass(format!(
                "dead_letter ({reason}): the event goes to the dead-letter topic"
            )),
            "slow_down" => Verdict::Pass(format!("slow_down ({reason}): called again later")),
            other => Verdict::fail(
                format!("answered \"outcome\": {other:?}, which the platform does not know"),
                "only \"dead_letter\" and \"slow_down\" are outcomes (guide section 3.5)",
            ),
        };
    }
    match status {
        200..=299 => match results(json.as_ref(), body) {
            Ok(count) => Verdict::Pass(format!("done ({status}, {count} result(s))")),
            Err(problem) => Verdict::fail(
                format!("answered {status} with a body the platform cannot read: {problem}"),
                "answer {\"results\": [{\"type\": ..., \"subject\": ..., \"data\": ...}]} or an empty body: \
                 a malformed 2xx counts as done and its results are dropped (guide section 3.4)",
            ),
        },
        429 => Verdict::Pass("429: throttled, called again after Retry-After".into()),
        408 | 500..=599 => Verdict::fail(
            format!(
                "answered {status} to a valid sample event: the platform retries it until the budget is spent"
            ),
            "a healthy service answers a valid event 2xx; keep 5xx/503 for passing problems (guide section 3.5)",
        ),
        300..=399 => Verdict::fail(
            format!("answered {status}: redirects are not followed and the event is retried"),
            "serve /execute at the URL the bridge calls",
        ),
        _ => Verdict::fail(
            format!(
                "answered {status} to a valid sample event: a 4xx dead-letters it ({})",
                snippet(body)
            ),
            "answer 2xx; for an event that can never succeed answer {\"outcome\": \"dead_letter\", \"reason\": ...} \
             (guide section 3.5)",
        ),
    }
}

/// The number of results of a 2xx `/execute` answer, or why the platform could not read them.
fn results(json: Option<&Value>, body: &[u8]) -> Result<usize, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(0);
    }
    let Some(json) = json else {
        return Err("not JSON".into());
    };
    match json.get("results") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Array(results)) => {
            for (index, result) in results.iter().enumerate() {
                if !result.get("type").is_some_and(Value::is_string) {
                    return Err(format!("results[{index}] has no string \"type\""));
                }
            }
            Ok(results.len())
        }
        Some(_) => Err("\"results\" is not an array".into()),
    }
}

/// An answer to a signed batch of `ids` (guide section 3.7).
pub fn batch(status: u16, body: &[u8], ids: &[String]) -> Verdict {
    if !(200..=299).contains(&status) {
        return match execute(status, body) {
            Verdict::Pass(seen) => Verdict::Pass(format!("the whole batch: {seen}")),
            fail => fail,
        };
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let events = match json.as_ref().and_then(|j| j.get("events")) {
        None | Some(Value::Null) => return Verdict::Pass(format!("every event done ({status})")),
        Some(Value::Array(events)) => events,
        Some(_) => {
            return Verdict::fail(
                "\"events\" is not an array: the platform counts every event done and drops the results",
                "answer {\"events\": [{\"id\": ..., \"outcome\": \"done\", \"results\": [...]}]} (guide section 3.7)",
            );
        }
    };
    for (index, event) in events.iter().enumerate() {
        let id = event.get("id").and_then(Value::as_str);
        let Some(id) = id.filter(|id| ids.iter().any(|sent| sent == id)) else {
            return Verdict::fail(
                format!(
                    "events[{index}] names no event of the batch ({:?})",
                    event.get("id")
                ),
                "give every entry the \"id\" of one event of the batch (guide section 3.7)",
            );
        };
        let outcome = event.get("outcome").and_then(Value::as_str).unwrap_or("done");
        if !["done", "retry", "dead_letter", "slow_down"].contains(&outcome) {
            return Verdict::fail(
                format!("event {id} has the outcome {outcome:?}"),
                "use done, retry, dead_letter or slow_down (guide section 3.7)",
            );
        }
        if let Err(problem) = results(Some(event), b"{}") {
            return Verdict::fail(
                format!("event {id}: {problem}"),
                "each result needs a string \"type\" (guide section 3.4)",
            );
        }
    }
    Verdict::Pass(format!(
        "{} of {} events listed, all readable",
        events.len(),
        ids.len()
    ))
}

/// The answer to a repeat of a delivery (the same `webhook-id`) after a `first` answer.
pub fn repeat(first: (u16, &[u8]), again: (u16, &[u8])) -> Verdict {
    if !(200..=299).contains(&again.0) {
        return Verdict::fail(
            format!("the repeat was answered {}", again.0),
            "answer a webhook-id you have seen 2xx, with the answer you gave the first time (guide section 5)",
        );
    }
    let parse = |body: &[u8]| serde_json::from_slice::<Value>(body).ok();
    if first.0 != again.0 || parse(first.1) != parse(again.1) {
        return Verdict::fail(
            format!(
                "the repeat was answered differently ({} {} then {} {})",
                first.0,
                snippet(first.1),
                again.0,
                snippet(again.1)
            ),
            "store the answer under the webhook-id and return it again: after a crash the platform publishes \
             what the second answer says (guide section 5)",
        );
    }
    Verdict::Pass(format!("the same answer again ({})", again.0))
}

/// The answer to `/initialize` with a config valid for the schema, or `null`.
pub fn initialize(status: u16, body: &[u8], config: &Value) -> Verdict {
    match status {
        200..=299 => Verdict::Pass(format!("applied ({status})")),
        _ => Verdict::fail(
            format!(
                "/initialize with {} was answered {status} ({})",
                if config.is_null() {
                    "config null (removed)".to_owned()
                } else {
                    format!("the valid config {config}")
                },
                snippet(body)
            ),
            "accept every config your config_schema allows and null (the config was removed); refuse (4xx) \
             only configs that can never work (guide section 3.2)",
        ),
    }
}

/// A config that the manifest's `config_schema` allows: every `default`, and a plain value of the right
/// type for each required property without one.
pub fn sample_config(schema: Option<&Value>) -> Value {
    let Some(schema) = schema else {
        return Value::Object(Default::default());
    };
    sample_value(schema).unwrap_or_else(|| Value::Object(Default::default()))
}

fn sample_value(schema: &Value) -> Option<Value> {
    if let Some(default) = schema.get("default") {
        return Some(default.clone());
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return Some(first.clone());
    }
    if let Some(constant) = schema.get("const") {
        return Some(constant.clone());
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds.first().and_then(Value::as_str).unwrap_or("object"),
        _ if schema.get("properties").is_some() => "object",
        _ => return None,
    };
    Some(match kind {
        "object" => {
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut object = serde_json::Map::new();
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    let has_default = property.get("default").is_some();
                    if (has_default || required.contains(&name.as_str()))
                        && let Some(value) = sample_value(property)
                    {
                        object.insert(name.clone(), value);
                    }
                }
            }
            Value::Object(object)
        }
        "string" => {
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(1) as usize;
            Value::String("x".repeat(min.max(1)))
        }
        "integer" | "number" => schema.get("minimum").cloned().unwrap_or_else(|| Value::from(0)),
        "boolean" => Value::Bool(false),
        "array" => Value::Array(Vec::new()),
        _ => Value::Null,
    })
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "empty body".into();
    }
    let cut: String = text.chars().take(120).collect();
    if cut.len() < text.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn passed(verdict: &Verdict) -> bool {
        matches!(verdict, Verdict::Pass(_))
    }

    #[test]
    fn refusals_must_be_4xx() {
        assert!(passed(&refused(401, "an unsigned call")));
        assert!(passed(&refused(403, "an unsigned call")));
        assert!(!passed(&refused(200, "an unsigned call")));
        assert!(!passed(&refused(500, "an unsigned call")));
    }

    #[test]
    fn execute_answers_follow_the_classification() {
        assert!(passed(&execute(
            200,
            br#"{"results": [{"type": "x.done", "data": 1}]}"#
        )));
        assert!(passed(&execute(204, b"")));
        assert!(passed(&execute(200, b"{}")));
        assert!(passed(&execute(
            200,
            br#"{"outcome": "dead_letter", "reason": "no"}"#
        )));
        assert!(passed(&execute(429, b"")));
        // Results the platform would drop without a word.
        assert!(!passed(&execute(200, br#"{"results": [{"data": 1}]}"#)));
        assert!(!passed(&execute(200, br#"{"results": {"type": "x"}}"#)));
        assert!(!passed(&execute(200, b"ok")));
        assert!(!passed(&execute(400, b"bad")));
        assert!(!passed(&execute(503, b"")));
        assert!(!passed(&execute(302, b"")));
        assert!(!passed(&execute(200, br#"{"outcome": "retry"}"#)));
    }

    #[test]
    fn batch_answers_name_events_of_the_batch() {
        let ids = vec!["a".to_owned(), "b".to_owned()];
        assert!(passed(&batch(200, b"", &ids)));
        assert!(passed(&batch(
            200,
            br#"{"events": [{"id": "a", "outcome": "done", "results": [{"type": "t"}]}, {"id": "b", "outcome": "dead_letter"}]}"#,
            &ids
        )));
        assert!(!passed(&batch(200, br#"{"events": [{"id": "z"}]}"#, &ids)));
        assert!(!passed(&batch(
            200,
            br#"{"events": [{"id": "a", "outcome": "maybe"}]}"#,
            &ids
        )));
        assert!(!passed(&batch(200, br#"{"events": {"a": 1}}"#, &ids)));
        assert!(!passed(&batch(400, b"", &ids)));
    }

    #[test]
    fn a_repeat_gets_the_same_answer() {
        let first = (200, &br#"{"results": [{"type": "t", "data": 1}]}"#[..]);
        assert!(passed(&repeat(
            first,
            (200, br#"{ "results": [{"data": 1, "type": "t"}] }"#)
        )));
        assert!(!passed(&repeat(first, (409, b"duplicate"))));
        assert!(!passed(&repeat(first, (200, br#"{"results": []}"#))));
    }

    #[test]
    fn sample_configs_take_defaults_and_fill_required_properties() {
        let schema = json!({"type": "object", "properties": {
            "greeting": {"type": "string", "default": "Hello"},
            "sheet": {"type": "string", "minLength": 3},
            "rows": {"type": "integer", "minimum": 1},
            "mode": {"enum": ["fast", "slow"]},
            "optional": {"type": "string"}},
            "required": ["sheet", "rows", "mode"]});
        assert_eq!(
            sample_config(Some(&schema)),
            json!({"greeting": "Hello", "sheet": "xxx", "rows": 1, "mode": "fast"})
        );
        assert_eq!(sample_config(None), json!({}));
    }
}
