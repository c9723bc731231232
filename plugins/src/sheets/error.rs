//! The errors of the sheets-export plugin and how the delivery engine should treat them.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::installations::of_named_installation;
use crate::{Disposition, with_period};

/// A failure of the token flow or of a Sheets API call.
#[derive(Debug, Error)]
pub enum SheetsError {
    /// The service-account key file or its private key is unusable.
    #[error("The service-account key is unusable: {reason}.")]
    InvalidKey {
        /// What is wrong, without quoting the file.
        reason: String,
    },
    /// The JWT assertion could not be signed.
    #[error("The JWT assertion could not be signed ({reason}).")]
    Signing {
        /// The signing library's error kind.
        reason: String,
    },
    /// The base URL given to the client is not an http(s) URL.
    #[error("The Sheets API base URL {url:?} is not an http or https URL.")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
    },
    /// The token endpoint refused the assertion.
    #[error(
        "The token endpoint refused the assertion with HTTP {status}: {error}{}.",
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    TokenRefused {
        /// The HTTP status.
        status: u16,
        /// The OAuth error code, e.g. `invalid_grant`.
        error: String,
        /// The endpoint's explanation.
        description: Option<String>,
        /// The `Retry-After` the endpoint sent.
        retry_after: Option<Duration>,
    },
    /// The Sheets API answered with an error.
    #[error(
        "The Sheets API answered HTTP {status} {code} to {during}: {}",
        with_period(message)
    )]
    Api {
        /// What was being done, e.g. "appending values".
        during: &'static str,
        /// The HTTP status.
        status: u16,
        /// Google's status name, e.g. `PERMISSION_DENIED`.
        code: String,
        /// Google's message.
        message: String,
        /// The `Retry-After` the API sent.
        retry_after: Option<Duration>,
    },
    /// No answer arrived: the connection failed or timed out.
    #[error("{} failed before an answer arrived: {source}.", capitalized(during))]
    Transport {
        /// What was being done.
        during: &'static str,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// A successful answer that does not have the documented shape.
    #[error("The answer to {during} could not be understood: {reason}.")]
    UnexpectedResponse {
        /// What was being done.
        during: &'static str,
        /// What was wrong with it.
        reason: String,
    },
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

impl SheetsError {
    /// Whether retrying can help, and when: see [`Disposition`].
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::InvalidKey { .. } | Self::Signing { .. } | Self::InvalidBaseUrl { .. } => {
                Disposition::DeadLetter
            }
            Self::TokenRefused {
                status, retry_after, ..
            }
            | Self::Api {
                status, retry_after, ..
            } => Disposition::for_status(*status, *retry_after),
            Self::Transport { source, .. } => Disposition::for_transport(source),
            Self::UnexpectedResponse { .. } => Disposition::Retry { after: None },
        }
    }
}

/// A team's sheets-export config is unusable.
#[derive(Debug, Error)]
#[error("The sheets-export config field `{field}` is invalid: {reason}.")]
pub struct ConfigError {
    /// The offending field (`spreadsheet_id`, `sheet_name`, `service_account_key`), or `config` for the
    /// whole object.
    pub field: &'static str,
    /// What is wrong, never quoting a secret.
    pub reason: String,
}

impl ConfigError {
    /// Always [`Disposition::DeadLetter`]: a config does not fix itself.
    pub fn disposition(&self) -> Disposition {
        Disposition::DeadLetter
    }
}

/// A response or form event could not be exported.
#[derive(Debug, Error)]
pub enum ExportError {
    /// The event's installation has no config for the Google Sheets target.
    #[error(
        "Team {team_id:?} has no sheets-export config{}, so its responses cannot be exported.",
        of_named_installation(installation)
    )]
    TeamNotConfigured {
        /// The team.
        team_id: String,
        /// The team's installation ([`crate::installations::DEFAULT_INSTALLATION`] for the default one,
        /// which the message does not name).
        installation: String,
    },
    /// The Sheets API or the token flow failed.
    #[error(transparent)]
    Sheets(#[from] SheetsError),
    /// An id that cannot safely name a file of the CSV target.
    #[error(
        "The {what} {value:?} cannot name a CSV file: only ASCII letters, digits, '.', '_' and '-' are \
         allowed, and it must not start with '.'."
    )]
    UnsafeName {
        /// `team id`, `installation id` or `form id`.
        what: &'static str,
        /// The id.
        value: String,
    },
    /// Reading or writing a CSV file failed.
    #[error("Writing the CSV file {} failed: {source}.", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A target said where a different number of rows landed (appended or overwritten) than it was
    /// given: a defect of the target. The rows may have been written.
    #[error("The target reported {reported} written rows for the {given} rows it was given.")]
    AppendMismatch {
        /// Rows handed to the target.
        given: usize,
        /// Rows it reported.
        reported: usize,
    },
}

impl ExportError {
    /// Whether retrying can help, and when: see [`Disposition`]. I/O errors (a full disk, a file
    /// locked by another program) are retried, and so is a target's wrong count of appended rows (like
    /// an answer of unexpected shape: the write may or may not have happened).
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::TeamNotConfigured { .. } | Self::UnsafeName { .. } => Disposition::DeadLetter,
            Self::Sheets(error) => error.disposition(),
            Self::Io { .. } | Self::AppendMismatch { .. } => Disposition::Retry { after: None },
        }
    }
}
