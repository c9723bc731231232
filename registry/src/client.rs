//! A blocking client of the registry's HTTP API, used by `switchyardctl` (and usable from scripts and tests).
//!
//! Each call returns the response body as JSON, or a [`ClientError`] that carries the problem details the
//! registry answered with, so the CLI can print `detail` and each field error.

use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

/// A failed call.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The registry could not be reached or the answer not read.
    #[error("cannot reach the registry at {url}: {message}")]
    Transport {
        /// The URL called.
        url: String,
        /// What failed.
        message: String,
    },
    /// The registry answered with an error status.
    #[error("{status}: {detail}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The problem's `detail` (or the body when it is not a problem).
        detail: String,
        /// The problem's field errors as `pointer: detail` lines.
        errors: Vec<String>,
    },
}

/// The API client.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    /// A client of the registry at `base` (e.g. `http://127.0.0.1:8080`) with a bearer token.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Transport {
                url: base.to_owned(),
                message: e.to_string(),
            })?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::GET, path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(reqwest::Method::POST, path, Some(body))
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(reqwest::Method::PUT, path, Some(body))
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::DELETE, path, None)
    }

    fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: url.clone(),
            message: e.to_string(),
        };
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().map_err(transport)?;
        let status = response.status();
        let text = response.text().map_err(transport)?;
        let json: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(json);
        }
        let detail = json
            .get("detail")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| match &json {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        let errors = json
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        let pointer = e.get("pointer").and_then(Value::as_str).unwrap_or("");
                        let detail = e.get("detail").and_then(Value::as_str).unwrap_or("");
                        format!(
                            "{}: {detail}",
                            if pointer.is_empty() { "(body)" } else { pointer }
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Err(ClientError::Api {
            status: status.as_u16(),
            detail,
            errors,
        })
    }
}
