//! Versions of resources: the `ETag` of an answer, the `If-Match` / `If-None-Match` of a request, and the
//! read-change-write loop every change of a stored record goes through.
//!
//! A resource's ETag is the version of the record it is stored in ([`crate::store`]: the record's offset),
//! quoted: `"57"`. A change reads the record with its version, computes the new record, and writes it
//! only if the record is still at that version ([`AppState::write_if`]); the log decides between two
//! replicas changing it at once. A caller's precondition is checked against the version read
//! ([`AppState::read_for_change`]); a caller without one has its change computed again from the newer
//! record ([`changing`]), so merges (secrets kept, `form_ids` kept, the plugin version rule) never act on
//! a stale copy.

use std::future::Future;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::{ETAG, IF_MATCH, IF_NONE_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::problem::Problem;
use crate::store::{Expect, Outcome};

/// How many times a change without a precondition is computed again after another write won the race.
const CHANGE_ATTEMPTS: usize = 8;
/// How long a replica whose view has not yet applied the version a caller names waits for it.
const BEHIND_LIMIT: Duration = Duration::from_secs(2);

/// The ETag of the record at `version`: the offset, quoted.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A request's precondition: `If-Match` (one strong ETag, or `*`) or `If-None-Match: *`; none is
/// [`Expect::Any`]. A weak ETag (`W/"57"`) never matches a strong comparison, so it is a 412 later, as
/// RFC 9110 asks; a list of several ETags, or both headers at once, is a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precondition(pub Expect);

impl<S: Send + Sync> FromRequestParts<S> for Precondition {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parse_precondition(&parts.headers).map(Precondition)
    }
}

/// Never the version of a record: a weak or unreadable ETag in `If-Match` matches nothing.
const MATCHES_NOTHING: i64 = -1;

fn parse_precondition(headers: &HeaderMap) -> Result<Expect, Problem> {
    let text = |name: axum::http::HeaderName| -> Result<Option<String>, Problem> {
        let mut values = headers.get_all(&name).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(Problem::bad_request(format!("send {name} once")));
        }
        first
            .to_str()
            .map(|v| Some(v.trim().to_owned()))
            .map_err(|_| Problem::bad_request(format!("{name} is not ASCII")))
    };
    match (text(IF_MATCH)?, text(IF_NONE_MATCH)?) {
        (None, None) => Ok(Expect::Any),
        (Some(_), Some(_)) => Err(Problem::bad_request("send If-Match or If-None-Match, not both")),
        (None, Some(value)) if value == "*" => Ok(Expect::Absent),
        (None, Some(_)) => Err(Problem::bad_request(
            "If-None-Match accepts only *: create the resource only if it does not exist",
        )),
        (Some(value), None) if value == "*" => Ok(Expect::Exists),
        (Some(value), None) => {
            if value.contains(',') {
                return Err(Problem::bad_request(
                    "If-Match takes one ETag (or *), the one the resource was read with",
                ));
            }
            if value.starts_with("W/") {
                return Ok(Expect::Version(MATCHES_NOTHING));
            }
            let quoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| {
                    Problem::bad_request(format!(
                        "If-Match must be an ETag in double quotes, as the registry sent it (\"57\"), or *; got {value}"
                    ))
                })?;
            // An ETag this registry did not make matches nothing (RFC 9110: no 400 for that).
            Ok(Expect::Version(quoted.parse().unwrap_or(MATCHES_NOTHING)))
        }
    }
}

/// An answer with the `ETag` of the resource it shows, when it is stored.
pub struct Tagged<T>(pub Option<i64>, pub T);

impl<T: IntoResponse> IntoResponse for Tagged<T> {
    fn into_response(self) -> Response {
        let mut response = self.1.into_response();
        if let Some(value) = self.0.and_then(|v| HeaderValue::from_str(&etag(v)).ok()) {
            response.headers_mut().insert(ETAG, value);
        }
        response
    }
}

/// The expectation of a write computed from the record read at `read` (`None`: there was none).
pub fn unchanged_since(read: Option<i64>) -> Expect {
    read.map_or(Expect::Absent, Expect::Version)
}

/// The 412 of a resource at `current` (`None`: absent) when the caller expected otherwise.
fn precondition_failed(what: &str, current: Option<i64>) -> Problem {
    let detail = match current {
        Some(_) => format!("{what} changed since the version the request names; read it again"),
        None => format!("{what} does not exist (or no longer does)"),
    };
    Problem::precondition_failed(detail, current.map(etag))
}

impl AppState {
    /// The record of `key` with its version, for a change conditioned on `precondition`: 412 when the
    /// record does not meet it. A view that has not yet applied the version the caller names (a write
    /// through another replica a moment ago) waits for it, up to 2 s.
    pub async fn read_for_change(
        &self,
        topic: &str,
        key: &str,
        precondition: Expect,
        what: &str,
    ) -> Result<Option<(i64, Vec<u8>)>, Problem> {
        let deadline = Instant::now() + BEHIND_LIMIT;
        loop {
            let current = self.store.get_versioned(topic, key);
            let version = current.as_ref().map(|(v, _)| *v);
            if precondition.admits(version) {
                return Ok(current);
            }
            let behind = match precondition {
                // A version past the end of the log (a made-up ETag) is not worth waiting for.
                Expect::Version(named) if version.is_none_or(|v| v < named) => {
                    self.store.may_exist(topic, named).await
                }
                _ => false,
            };
            if !behind || Instant::now() >= deadline {
                return Err(precondition_failed(what, version));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Writes `value` (`None`: removes the key) if the key is still at the version the change was
    /// computed from (`expect`, from [`unchanged_since`]): its new version, or a 412 naming the version
    /// that won. Store failures are 503s, as with [`AppState::write`].
    pub async fn write_if(
        &self,
        topic: &str,
        key: &str,
        value: Option<&[u8]>,
        expect: Expect,
        what: &str,
    ) -> Result<Option<i64>, Problem> {
        let outcome = self.store.put_if(topic, key, value, expect).await;
        let label = match &outcome {
            Ok(Outcome::Written(_)) => "ok",
            Ok(Outcome::Conflict(_)) => "conflict",
            Err(_) => "failed",
        };
        self.metrics.store_writes.with_label_values(&[topic, label]).inc();
        match outcome {
            Ok(Outcome::Written(version)) => Ok(version),
            Ok(Outcome::Conflict(current)) => Err(precondition_failed(what, current)),
            Err(error) => {
                tracing::warn!(%error, topic, "a store write failed");
                Err(Problem::unavailable(
                    "the registry's store did not accept the write; retry",
                ))
            }
        }
    }
}

/// Runs `change` (read, compute, [`AppState::write_if`]) until it is not refused by a newer write: with a
/// caller's precondition the first 412 is the answer (the caller named the version), without one the
/// change is computed again from the newer record, after a short random pause (up to 5 ms times the
/// attempt), up to 8 times, then a 503.
pub async fn changing<T, F: Future<Output = Result<T, Problem>>>(
    precondition: Expect,
    mut change: impl FnMut() -> F,
) -> Result<T, Problem> {
    for attempt in 0..CHANGE_ATTEMPTS {
        match change().await {
            Err(problem) if precondition == Expect::Any && is_precondition_failed(&problem) => {
                // Replicas that keep changing one record take turns rather than collide again at once.
                let jitter = rand::random_range(0..=5 * (attempt as u64 + 1));
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            outcome => return outcome,
        }
    }
    Err(Problem::unavailable(
        "the resource kept changing while this request changed it; retry",
    ))
}

fn is_precondition_failed(problem: &Problem) -> bool {
    problem.kind == "/problems/precondition-failed"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn preconditions_from_headers() {
        assert_eq!(parse_precondition(&headers(&[])), Ok(Expect::Any));
        assert_eq!(
            parse_precondition(&headers(&[("if-match", "\"57\"")])),
            Ok(Expect::Version(57))
        );
        assert_eq!(
            parse_precondition(&headers(&[("if-match", " \"57\" ")])),
            Ok(Expect::Version(57))
        );
        assert_eq!(
            parse_precondition(&headers(&[("if-match", "*")])),
            Ok(Expect::Exists)
        );
        assert_eq!(
            parse_precondition(&headers(&[("if-none-match", "*")])),
            Ok(Expect::Absent)
        );
        // Weak and foreign ETags match nothing: a 412 once compared, not a 400.
        assert_eq!(
            parse_precondition(&headers(&[("if-match", "W/\"57\"")])),
            Ok(Expect::Version(MATCHES_NOTHING))
        );
        assert_eq!(
            parse_precondition(&headers(&[("if-match", "\"abc\"")])),
            Ok(Expect::Version(MATCHES_NOTHING))
        );
        for bad in [
            vec![("if-match", "57")],
            vec![("if-match", "\"1\", \"2\"")],
            vec![("if-none-match", "\"57\"")],
            vec![("if-match", "\"1\""), ("if-none-match", "*")],
            vec![("if-match", "\"1\""), ("if-match", "\"2\"")],
        ] {
            let problem = parse_precondition(&headers(&bad)).unwrap_err();
            assert_eq!(problem.status, 400, "{bad:?}");
        }
    }

    #[test]
    fn etags_are_quoted_offsets_and_answers_carry_them() {
        assert_eq!(etag(57), "\"57\"");
        let response = Tagged(Some(57), "ok").into_response();
        assert_eq!(response.headers()[ETAG], "\"57\"");
        assert!(Tagged(None, "ok").into_response().headers().get(ETAG).is_none());
        assert_eq!(unchanged_since(Some(3)), Expect::Version(3));
        assert_eq!(unchanged_since(None), Expect::Absent);
    }

    #[tokio::test]
    async fn changes_without_a_precondition_are_computed_again_and_with_one_answer_412() {
        let mut calls = 0;
        let outcome = changing(Expect::Any, || {
            calls += 1;
            let attempt = calls;
            async move {
                if attempt < 3 {
                    Err(precondition_failed("the config", Some(9)))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(outcome, Ok(3));
        let mut calls = 0;
        let outcome: Result<(), Problem> = changing(Expect::Version(4), || {
            calls += 1;
            async { Err(precondition_failed("the config", Some(9))) }
        })
        .await;
        assert_eq!(outcome.unwrap_err().status, 412);
        assert_eq!(calls, 1);
        let outcome: Result<(), Problem> = changing(Expect::Any, || async {
            Err(precondition_failed("the config", None))
        })
        .await;
        assert_eq!(outcome.unwrap_err().status, 503);
    }
}
