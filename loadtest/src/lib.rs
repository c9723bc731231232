//! `switchyard-loadtest`: realistic core-event traffic for Switchyard, and a check of what the router made
//! of it.
//!
//! ```text
//!   generate ──► Record ──► kafka::Producer ──► core.events ──► router ──► plugin topics, core.events.dlq
//!      │                                                          │                 │
//!      │ control records, events                        /metrics, /readyz           │ read_committed
//!      ▼                                                          ▼                 ▼
//!   expect (the routing rule) ───────────────────────────► verify + summary ◄── kafka::read_all_to_end
//! ```
//!
//! - [`generate`]: the simulated platform (teams, forms, plugins, enablements) and its event stream,
//!   deterministic for a seed. Every subcommand that produces traffic reuses it.
//! - [`expect`]: what the contract's routing rule says must happen to each generated event.
//! - [`kafka`] (the shared fixtures' Kafka module: records, producing, reading back, creating topics),
//!   [`topics`], [`router_admin`]: the I/O, and reading the router's readiness and metrics.
//! - [`verify`], [`summary`]: comparing what arrived with what was expected, and the verdict.
//! - [`run`], [`capacity`]: the measuring subcommands (`run`, `find-max`, `plan`); [`objective`]: what a
//!   measured step was asked for, its verdict and anomalies; [`metadata`]: what a report says about itself
//!   (time, revision, machine, the system under test); [`report`]: the self-contained HTML pages.
//! - [`control_plane`]: registering plugins and enabling them, through the registry or the topics;
//!   [`leftovers`]: what earlier load runs left on those topics, which a run removes first.
//! - [`demo`]: the `demo` subcommand, which wires the above together.

pub mod backfill_load;
pub mod capacity;
pub mod chaos;
pub mod control_plane;
pub mod demo;
pub mod demo_backfill;
pub mod expect;
pub mod generate;
pub mod leftovers;
pub mod measure;
pub mod metadata;
pub mod objective;
pub mod pipe;
pub mod plugins;
pub mod report;
pub mod router_admin;
pub mod run;
pub mod scenario;
pub mod summary;
pub mod topics;
pub mod verify;
pub mod workload;

/// Records, producing, reading topics back and creating them: the fixtures the tests and benchmarks share.
pub use switchyard_fixtures::kafka;

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::error::KafkaError;
use switchyard_fixtures::FixtureError;
use switchyard_schemas::Rejection;
use thiserror::Error;

/// Progress lines on stderr, stamped with the time since the run started.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    started: std::time::Instant,
}

impl Progress {
    /// Starts the clock.
    pub fn start() -> Self {
        Self {
            started: std::time::Instant::now(),
        }
    }

    /// Time since the start, the clock of the lines.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Prints one line.
    pub fn say(&self, line: std::fmt::Arguments<'_>) {
        eprintln!("[{:>6.1} s] {line}", self.started.elapsed().as_secs_f64());
    }
}

/// `at` in RFC 3339 with whole seconds, as control records carry it in `updated_at`.
pub fn rfc3339_seconds(at: time::OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "2026-01-01T00:00:00Z".to_owned())
}

impl LoadtestError {
    /// A call on a Kafka client failed while doing `action`, for `map_err`.
    pub(crate) fn kafka(action: impl Into<String>) -> impl FnOnce(KafkaError) -> Self {
        let action = action.into();
        move |error| Self::Fixture(FixtureError::Kafka { action, error })
    }
}

impl From<switchyard_service::kafka::ClientError> for LoadtestError {
    fn from(error: switchyard_service::kafka::ClientError) -> Self {
        Self::Fixture(error.into())
    }
}

/// Why a subcommand could not run to its end. Each message is complete (it includes the underlying
/// error's text), so none of them also reports a `source()`. A run that completes but finds lost, duplicated or
/// unexpected records is not an error: the [`summary::Summary`] says so in its verdict.
#[derive(Debug, Error)]
pub enum LoadtestError {
    /// A Kafka client could not be made or a call on it failed: creating topics, producing, reading a topic
    /// back, or another call of the tool's own ([`LoadtestError::kafka`]).
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    /// An HTTP request to the router's admin server failed.
    #[error("reading {url} failed: {}", error_chain(.error))]
    Http {
        /// The URL.
        url: String,
        /// reqwest's error.
        error: reqwest::Error,
    },
    /// A call to the registry's API failed.
    #[error("{action} through the registry failed: {message}")]
    Registry {
        /// What was being done, e.g. "registering sms-notify".
        action: String,
        /// The registry's answer or the transport error.
        message: String,
    },
    /// A wait ran out of time.
    #[error("gave up after {} waiting for {what}: {last}", humantime::format_duration(*.waited))]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long.
        waited: Duration,
        /// The last state seen.
        last: String,
    },
    /// A generated event does not match its schema: a bug in the generator.
    #[error("a generated event does not match its schema (a bug in the generator): {0}")]
    Encode(Rejection),
    /// The small async runtime that watches for SIGINT and SIGTERM could not start.
    #[error("cannot start the runtime that watches for signals: {0}")]
    Runtime(std::io::Error),
    /// A process could not be started, or a file of the run not written.
    #[error("{what} failed: {error}")]
    Process {
        /// What was being done.
        what: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The options cannot work together, or a command given by the user failed.
    #[error("{0}")]
    Usage(String),
    /// The JSON summary could not be written.
    #[error("writing the JSON summary to {} failed: {error}", path.display())]
    WriteJson {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

impl From<Rejection> for LoadtestError {
    fn from(rejection: Rejection) -> Self {
        LoadtestError::Encode(rejection)
    }
}

/// An error's message followed by those of its sources, `: `-separated (reqwest keeps the interesting
/// part, such as "Connection refused", in the sources).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Calls `check` every 250 ms until it finds something, at most `timeout`.
pub fn wait_for<T>(
    timeout: Duration,
    what: &'static str,
    mut check: impl FnMut() -> Result<Option<T>, LoadtestError>,
) -> Result<T, LoadtestError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(found) = check()? {
            return Ok(found);
        }
        if std::time::Instant::now() > deadline {
            return Err(LoadtestError::Timeout {
                what,
                waited: timeout,
                last: String::new(),
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
