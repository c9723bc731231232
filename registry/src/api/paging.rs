//! Paging of the list endpoints: `?limit=N` answers the first `N` items in the list's order and, when
//! more follow, a `Link: <...?limit=N&cursor=C>; rel="next"` header naming the next page. The body stays
//! the JSON array it always was, so a client that sends no `limit` gets every item, as before.
//!
//! The cursor is opaque to clients: the sort key of the last item of the page (base64url of its JSON).
//! The next page is the items whose key comes after it, so the order is stable while items are added or
//! removed between pages: none is repeated, and an item present on both calls is not skipped.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::header::LINK;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};

/// The largest page.
pub const MAX_LIMIT: usize = 1000;

/// A list request's `limit` and `cursor`, and its path (for the next page's link). Other query
/// parameters are ignored, as they always were on these routes.
#[derive(Debug, Clone, Default)]
pub struct Paging {
    limit: Option<usize>,
    cursor: Option<String>,
    path: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        Self::parse(parts.uri.path(), parts.uri.query())
    }
}

fn invalid_query(detail: String) -> Problem {
    Problem::invalid(
        "the query is invalid",
        vec![FieldError {
            pointer: String::new(),
            detail,
        }],
    )
}

impl Paging {
    fn parse(path: &str, query: Option<&str>) -> Result<Self, Problem> {
        let mut paging = Self {
            path: path.to_owned(),
            ..Self::default()
        };
        for pair in query.unwrap_or_default().split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "limit" => {
                    let limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            invalid_query(format!("limit must be a whole number from 1 to {MAX_LIMIT}"))
                        })?;
                    paging.limit = Some(limit);
                }
                "cursor" => paging.cursor = Some(value.to_owned()),
                _ => {}
            }
        }
        Ok(paging)
    }

    /// The page of `items` (in ascending order of `key`) this request asks for, and the next page's
    /// link when more items follow it.
    pub fn page<T, K>(&self, mut items: Vec<T>, key: impl Fn(&T) -> K) -> Result<Page<T>, Problem>
    where
        K: Ord + Serialize + DeserializeOwned,
    {
        if let Some(cursor) = &self.cursor {
            let after: K = URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|json| serde_json::from_slice(&json).ok())
                .ok_or_else(|| {
                    invalid_query(
                        "the cursor is not one this registry gave; start again without it".to_owned(),
                    )
                })?;
            items.retain(|item| key(item) > after);
        }
        let Some(limit) = self.limit.filter(|&limit| items.len() > limit) else {
            return Ok(Page { items, next: None });
        };
        items.truncate(limit);
        let next = items.last().map(|last| {
            let cursor = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&key(last)).unwrap_or_default());
            format!("<{}?limit={limit}&cursor={cursor}>; rel=\"next\"", self.path)
        });
        Ok(Page { items, next })
    }
}

/// One page of a list, and the `Link` header to the next one.
#[derive(Debug)]
pub struct Page<T> {
    /// The page's items.
    pub items: Vec<T>,
    /// `<path?limit=N&cursor=C>; rel="next"`, when more items follow.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// The same page with its items mapped (to their views).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        let mut response = Json(self.items).into_response();
        if let Some(link) = self.next.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(LINK, link);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;

    use super::*;

    fn paging(query: &str) -> Paging {
        Paging::parse("/v1/plugins", Some(query)).unwrap()
    }

    fn cursor_of(link: &str) -> String {
        link.split("cursor=")
            .nth(1)
            .unwrap()
            .split('>')
            .next()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn pages_walk_the_whole_list_once_in_order() {
        let items: Vec<String> = (0..7).map(|n| format!("p-{n}")).collect();
        let mut seen = Vec::new();
        let mut query = "limit=3".to_owned();
        loop {
            let page = paging(&query).page(items.clone(), |i| i.clone()).unwrap();
            seen.extend(page.items);
            let Some(next) = page.next else { break };
            assert!(next.starts_with("</v1/plugins?limit=3&cursor=") && next.ends_with(">; rel=\"next\""));
            query = format!("limit=3&cursor={}", cursor_of(&next));
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn a_removed_item_does_not_shift_the_next_page_and_no_limit_is_everything() {
        let items: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let first = paging("limit=2").page(items.clone(), |i| i.clone()).unwrap();
        assert_eq!(first.items, ["a", "b"]);
        let cursor = cursor_of(&first.next.unwrap());
        // "b", the cursor's item, is removed before the next call; "c" and "d" still come next.
        let rest: Vec<String> = ["a", "c", "d"].map(String::from).to_vec();
        let second = paging(&format!("limit=2&cursor={cursor}"))
            .page(rest, |i| i.clone())
            .unwrap();
        assert_eq!(second.items, ["c", "d"]);
        assert!(second.next.is_none());
        let all = Paging::parse("/v1/plugins", None)
            .unwrap()
            .page(items.clone(), |i| i.clone())
            .unwrap();
        assert_eq!(all.items, items);
        assert!(all.next.is_none());
    }

    #[test]
    fn newest_first_lists_page_by_a_reversed_key() {
        let items = vec![(30, "c"), (20, "b"), (10, "a")];
        let key = |i: &(i64, &str)| Reverse((i.0, i.1.to_owned()));
        let first = paging("limit=1").page(items.clone(), key).unwrap();
        assert_eq!(first.items, [(30, "c")]);
        let next = paging(&format!("limit=5&cursor={}", cursor_of(&first.next.unwrap())))
            .page(items, key)
            .unwrap();
        assert_eq!(next.items, [(20, "b"), (10, "a")]);
    }

    #[test]
    fn bad_limits_and_cursors_are_422s() {
        for query in ["limit=0", "limit=1001", "limit=x", "limit="] {
            assert_eq!(
                Paging::parse("/p", Some(query)).unwrap_err().status,
                422,
                "{query}"
            );
        }
        let problem = paging("cursor=not-ours")
            .page(vec!["a".to_owned()], |i| i.clone())
            .unwrap_err();
        assert_eq!(problem.status, 422);
        assert!(paging("other=1").limit.is_none(), "other parameters are ignored");
    }
}
