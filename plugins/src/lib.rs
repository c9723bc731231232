//! Switchyard's four seed plugins, built on the plugin runtime the way any plugin author's would be, and
//! the `switchyard-seed-plugin` binary that runs them. The plugin runtime does not depend on this crate.
//!
//! * [`sheets`] (`sheets-export`): every response becomes a row of a Google Sheet, one column per
//!   question; an OAuth 2.0 service-account token source, a Sheets API v4 client, the column layout,
//!   and the exporter with a Google Sheets target and a local CSV target.
//! * [`sms`] (`sms-notify`): a text message to the phone number a response gives, filled from a
//!   per-installation template and sent through a Twilio-compatible REST API.
//! * [`rules`] (`rules-validate`): per-installation CEL rules over a response's answers;
//!   [`rules_service`] serves them as an HTTP plugin service, run behind `switchyard-plugin-bridge`.
//! * [`slang`] (`slang-search`): local slang in free-text answers, from per-city dictionaries.
//! * [`in_process`]: `sheets-export`, `sms-notify` and `slang-search` as
//!   [`Plugin`](switchyard_plugin_runtime::plugin::Plugin)s the runtime runs in process.
//! * [`installations`]: what each seed plugin keeps per (team, installation): a team may install a
//!   plugin several times, each installation with its own config and its own copy of the team's events;
//!   every seed plugin's manifest says `installations: true`.
//! * [`fakes`]: local stand-ins of Google Sheets and Twilio for tests and the demo; not part of any
//!   plugin.
//!
//! # Errors and the delivery engine
//!
//! The plugin runtime's delivery engine must know, for every failure, whether trying again can help.
//! Every error type of this crate therefore has a `disposition()` returning a [`Disposition`]:
//!
//! | failure | disposition |
//! | --- | --- |
//! | HTTP 408, 429, 5xx | [`Disposition::Retry`], `after` = the `Retry-After` seconds when given |
//! | timeout, connection refused or reset, a body cut short | [`Disposition::Retry`] without `after` |
//! | any other 4xx (bad credentials, no permission, invalid number, ...) | [`Disposition::DeadLetter`] |
//! | bad input or config (an unusable key, an unknown team, a bad template) | [`Disposition::DeadLetter`] |
//!
//! The rule lives in [`Disposition::for_status`] and [`Disposition::for_transport`] so both clients
//! apply it the same way.
//!
//! # Secrets and personal data
//!
//! Private keys, auth tokens and access tokens are held in [`Secret`] (or types with a hand-written
//! `Debug`), so neither `{:?}` nor an error message can show them. Error messages never quote a
//! config value or a response body that could carry one. Phone numbers are personal data: what the
//! SMS plugin returns or reports shows only their last three digits.
//!
//! # Fakes
//!
//! [`fakes::sheets`] and [`fakes::twilio`] are small axum servers that answer the same requests the way
//! the real services do, closely enough for the clients' tests and for the project's demo, which runs
//! them in place of Google and Twilio. [`fakes::server::FakeServer`] is the handle both return.
//!
//! # TLS
//!
//! The clients take a `reqwest::Client` built by the caller; this crate builds reqwest with `native-tls`
//! (the system's OpenSSL, which librdkafka links already), so the real `https://` services work. The
//! fakes and the tests speak plain HTTP on 127.0.0.1.

pub mod fakes;
pub mod in_process;
pub mod installations;
mod render;
pub mod rules;
pub mod rules_service;
pub mod sheets;
pub mod slang;
pub mod sms;

use std::time::Duration;

/// What the delivery engine should do with an event whose handling failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The failure may be transient: deliver the event again later.
    Retry {
        /// How long the service asked us to wait (its `Retry-After`), if it said.
        after: Option<Duration>,
    },
    /// The service is over its quota or rate (a `429`): deliver the event again later, without charging
    /// its retry budget; the runtime slows the team's calls down.
    Throttled {
        /// How long the service asked us to wait (its `Retry-After`), if it said.
        after: Option<Duration>,
    },
    /// Trying again cannot help: move the event to the dead-letter topic.
    DeadLetter,
}

impl Disposition {
    /// The disposition of an HTTP error status: 429 is throttling, 408 and 5xx are worth retrying (after
    /// `retry_after` when the service gave one); every other status is not.
    pub fn for_status(status: u16, retry_after: Option<Duration>) -> Self {
        match status {
            429 => Self::Throttled { after: retry_after },
            408 | 500..=599 => Self::Retry { after: retry_after },
            _ => Self::DeadLetter,
        }
    }

    /// The disposition of a request that got no HTTP status: a request that could not even be built
    /// (an invalid URL, a header that cannot be sent) is dead on arrival; a timeout, a refused or reset
    /// connection, or a body cut short may succeed next time.
    pub fn for_transport(error: &reqwest::Error) -> Self {
        if error.is_builder() {
            Self::DeadLetter
        } else {
            Self::Retry { after: None }
        }
    }

    /// Whether the event is delivered again later ([`Disposition::Retry`] or [`Disposition::Throttled`]).
    pub fn is_retry(&self) -> bool {
        matches!(self, Self::Retry { .. } | Self::Throttled { .. })
    }
}

/// A string that must never be shown: a private key, an auth token, an access token (the foundation's
/// one secret type: `Debug` shows only whether it is set, there is no `Display`).
pub use switchyard_service::config::Secret;

/// The `Retry-After` of a response, when it gives a number of seconds (the HTTP-date form is not used
/// by either service and is ignored).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// At most `max` characters of `text`, for quoting an unexpected response body in an error.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Where and what kind of JSON error `error` is, without quoting the input (which may hold a secret or
/// personal data): `syntax error at line 1, column 7`.
pub(crate) fn json_error_position(error: &serde_json::Error) -> String {
    let kind = match error.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "end-of-input",
    };
    format!("{kind} error at line {}, column {}", error.line(), error.column())
}

/// `text`, ending with a full stop unless it already ends with punctuation.
pub(crate) fn with_period(text: &str) -> String {
    let trimmed = text.trim_end();
    if trimmed.ends_with(['.', '!', '?', '…']) {
        trimmed.to_owned()
    } else {
        format!("{trimmed}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let after = Some(Duration::from_secs(7));
        assert_eq!(
            Disposition::for_status(429, after),
            Disposition::Throttled { after }
        );
        assert_eq!(
            Disposition::for_status(408, None),
            Disposition::Retry { after: None }
        );
        assert_eq!(
            Disposition::for_status(500, None),
            Disposition::Retry { after: None }
        );
        assert_eq!(Disposition::for_status(503, after), Disposition::Retry { after });
        for status in [400, 401, 403, 404, 409, 422] {
            assert_eq!(Disposition::for_status(status, after), Disposition::DeadLetter);
        }
    }

    #[test]
    fn secrets_do_not_show() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(set)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn excerpts_are_bounded() {
        assert_eq!(excerpt("abc", 5), "abc");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
