//! How Switchyard's processes live and stop: a two-worker tokio runtime, SIGTERM and SIGINT as a
//! cancellation, and an exit code from the result. Every binary's `main` ends in [`run_until_signal`].
//!
//! The first signal cancels the service's token and the service drains. Two things bound that drain from
//! outside: a second signal exits at once (a person pressing Ctrl-C twice), and so does the shutdown
//! deadline passing (a drain stuck on an unreachable broker must not hold the process until the
//! orchestrator's SIGKILL). Both exit with status 1 and say why on stderr.
//!
//! The lifecycle's log lines ("starting", "shutdown requested", "stopped", ...) carry the binary's own log
//! target, `<binary crate>::lifecycle` (e.g. `switchyard_registry::lifecycle`), not this module's: a
//! filter or a search by target finds one program's start and stop. `tracing` fixes an event's target at
//! compile time, at the logging call, so the calls are made by a function that [`own_log!`] expands in the
//! binary ([`Log`]).

use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{Layered, LogConfig};

/// The flags every Switchyard service binary takes ([`main`] parses them; a binary with more flattens them
/// into its own).
#[derive(Debug, Clone, clap::Parser)]
#[command(version)]
pub struct ConfigArgs {
    /// A TOML file layered over the embedded defaults (the binary's SWITCHYARD_<NAME>__... environment
    /// variables override both).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Load and check the configuration, then exit: 0 if it is valid.
    #[arg(long)]
    pub check_config: bool,
}

/// A service binary's configuration and what [`main`] needs to know of it.
pub trait Service: Layered {
    /// The binary's name, the first word of its messages.
    const PROGRAM: &'static str;

    /// Its logging settings.
    fn log(&self) -> &LogConfig;

    /// How long the shutdown may take before the process exits anyway.
    fn shutdown_deadline(&self) -> Duration {
        SHUTDOWN_DEADLINE
    }

    /// What `--check-config` checks beyond loading, without a broker.
    fn check_offline(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A service binary's whole `main`: parses [`ConfigArgs`] (`about` is the `--help` text), loads the
/// configuration (exit 2 with the error), with `--check-config` checks it and exits, else installs logging
/// and runs `service` until a signal ([`run_until_signal`]), its lifecycle logged by `log`
/// (`lifecycle::own_log!()` in the binary).
pub fn main<S, F, E>(
    log: Log,
    about: &'static str,
    service: impl FnOnce(S, CancellationToken) -> F,
) -> ExitCode
where
    S: Service,
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    use clap::{CommandFactory, FromArgMatches};
    let matches = ConfigArgs::command().name(S::PROGRAM).about(about).get_matches();
    let flags = match ConfigArgs::from_arg_matches(&matches) {
        Ok(flags) => flags,
        Err(error) => error.exit(),
    };
    let Some(config) = loaded(S::PROGRAM, S::load(flags.config.as_deref())) else {
        return ExitCode::from(CONFIG_ERROR);
    };
    if flags.check_config {
        if loaded(S::PROGRAM, config.check_offline()).is_none() {
            return ExitCode::from(CONFIG_ERROR);
        }
        println!("{}: configuration is valid", S::PROGRAM);
        return ExitCode::SUCCESS;
    }
    crate::telemetry::init(config.log());
    let deadline = config.shutdown_deadline();
    run_until_signal(Program::new(S::PROGRAM, log), deadline, |shutdown| {
        service(config, shutdown)
    })
}

/// The exit status of a configuration that does not load (a usage error).
pub const CONFIG_ERROR: u8 = 2;

/// The loaded configuration, or `None` after printing `program: error` to stderr; the caller then exits
/// with [`CONFIG_ERROR`].
pub fn loaded<T, E: Display>(program: &str, loaded: Result<T, E>) -> Option<T> {
    loaded.inspect_err(|error| eprintln!("{program}: {error}")).ok()
}

/// The shutdown deadline of [`run_until_signal`] unless a service needs longer: within Kubernetes's
/// default `terminationGracePeriodSeconds` of 30 s.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(25);

/// Runs `service(shutdown)` on a new runtime until it returns; SIGTERM or SIGINT cancel `shutdown`. A
/// second signal, or `deadline` passing after the first, ends the process at once with status 1.
/// Exit code 0 after a clean stop, 1 after an error (logged and printed to stderr as `program: error`).
///
/// `program` is the binary's name and where its lifecycle is logged: `Program::new(NAME,
/// lifecycle::own_log!())` for the binary's own log target; a bare name logs under this module's.
pub fn run_until_signal<F, E>(
    program: impl Into<Program>,
    deadline: Duration,
    service: impl FnOnce(CancellationToken) -> F,
) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let program = program.into();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{}: cannot start the async runtime: {error}", program.name);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        // Installed before the service starts: from its first line on, a signal stops it cleanly.
        match Signals::install() {
            Some(signals) => {
                tokio::spawn(stop_on_signals(signals, program, shutdown.clone(), deadline));
            }
            None => program.log.emit(&Event::NoSignalHandlers),
        }
        program.log.emit(&Event::Starting);
        service(shutdown).await
    });
    match result {
        Ok(()) => {
            program.log.emit(&Event::Stopped);
            ExitCode::SUCCESS
        }
        Err(error) => {
            program.log.emit(&Event::Failed { error: &error });
            eprintln!("{}: {error}", program.name);
            ExitCode::FAILURE
        }
    }
}

/// Cancels `shutdown` on the first signal; then exits the process on a second one or when `deadline` has
/// passed (unless the service returned first, which ends the process).
async fn stop_on_signals(
    mut signals: Signals,
    program: Program,
    shutdown: CancellationToken,
    deadline: Duration,
) {
    let first = signals.next().await;
    program.log.emit(&Event::ShutdownRequested { signal: first });
    shutdown.cancel();
    let reason = tokio::select! {
        second = signals.next() => format!("a second {second}"),
        () = tokio::time::sleep(deadline) => {
            format!("the shutdown took longer than its deadline of {deadline:?}")
        }
    };
    program.log.emit(&Event::ExitingEarly { reason: &reason });
    eprintln!("{}: {reason}; exiting before the shutdown finished", program.name);
    std::process::exit(1);
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT, for a process that bounds its own shutdown (the
/// load tool's pipe).
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    match Signals::install() {
        Some(mut signals) => {
            let signal = signals.next().await;
            Log::SERVICE.emit(&Event::ShutdownRequested { signal });
            shutdown.cancel();
        }
        None => Log::SERVICE.emit(&Event::NoSignalHandlers),
    }
}

/// A binary's name and where its lifecycle messages go.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// The binary's name, the first word of what it prints on stderr.
    pub name: &'static str,
    /// Its lifecycle's log target.
    pub log: Log,
}

impl Program {
    /// `name`, logging its lifecycle with `log` (`lifecycle::own_log!()`).
    pub const fn new(name: &'static str, log: Log) -> Self {
        Self { name, log }
    }
}

impl From<&'static str> for Program {
    /// A binary that has not named its own log target: its lifecycle is logged under
    /// `switchyard_service::lifecycle`.
    fn from(name: &'static str) -> Self {
        Self::new(name, Log::SERVICE)
    }
}

/// The lifecycle's messages, logged with one binary's log target. Made by [`own_log!`] expanded in that
/// binary: `tracing` takes an event's target from the logging call's place at compile time, so the calls
/// are compiled into the binary ([`Log::target`] says which target they carry).
#[derive(Clone, Copy)]
pub struct Log {
    target: &'static str,
    emit: fn(&Event<'_>),
}

impl Log {
    /// This module's target, for a binary that has not named its own.
    pub const SERVICE: Log = own_log!(module_path!());

    #[doc(hidden)]
    pub const fn __new(target: &'static str, emit: fn(&Event<'_>)) -> Self {
        Self { target, emit }
    }

    /// The log target of the messages.
    pub fn target(&self) -> &'static str {
        self.target
    }

    /// Logs `event`.
    pub fn emit(&self, event: &Event<'_>) {
        (self.emit)(event);
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("target", &self.target).finish()
    }
}

/// A lifecycle message and how [`Log::emit`] logs it.
pub enum Event<'a> {
    /// INFO "starting", with the binary's `version`: logging is installed and the service starts.
    Starting,
    /// INFO "shutdown requested", with the `signal`: the drain starts.
    ShutdownRequested {
        /// `SIGTERM` or `SIGINT`.
        signal: &'static str,
    },
    /// INFO "stopped": the service finished its drain.
    Stopped,
    /// ERROR "stopped on an error".
    Failed {
        /// What the service returned.
        error: &'a dyn Display,
    },
    /// ERROR "exiting before the shutdown finished": a second signal, or the shutdown deadline.
    ExitingEarly {
        /// Which of the two.
        reason: &'a str,
    },
    /// ERROR "cannot install signal handlers; stop the process with SIGKILL".
    NoSignalHandlers,
}

#[doc(hidden)]
pub use tracing as __tracing;

/// A [`Log`] whose messages carry the log target `<module of the call>::lifecycle`: in a binary's
/// `main.rs`, `<binary crate>::lifecycle` (`switchyard_registry::lifecycle`); `own_log!(TARGET)` names
/// the target. The "starting" line carries the calling package's version.
#[doc(hidden)]
#[macro_export]
macro_rules! __lifecycle_own_log {
    () => {
        $crate::lifecycle::own_log!(concat!(module_path!(), "::lifecycle"))
    };
    ($target:expr) => {{
        fn emit(event: &$crate::lifecycle::Event<'_>) {
            use $crate::lifecycle::Event;
            use $crate::lifecycle::__tracing::{error, info};
            const TARGET: &str = $target;
            match *event {
                Event::Starting => {
                    info!(target: TARGET, version = env!("CARGO_PKG_VERSION"), "starting")
                }
                Event::ShutdownRequested { signal } => {
                    info!(target: TARGET, signal, "shutdown requested")
                }
                Event::Stopped => info!(target: TARGET, "stopped"),
                Event::Failed { error } => error!(target: TARGET, %error, "stopped on an error"),
                Event::ExitingEarly { reason } => {
                    error!(target: TARGET, %reason, "exiting before the shutdown finished")
                }
                Event::NoSignalHandlers => error!(
                    target: TARGET,
                    "cannot install signal handlers; stop the process with SIGKILL"
                ),
            }
        }
        $crate::lifecycle::Log::__new($target, emit)
    }};
}

#[doc(inline)]
pub use crate::__lifecycle_own_log as own_log;

/// SIGTERM and SIGINT.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Option<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(term), Ok(int)) => Some(Self { term, int }),
            _ => None,
        }
    }

    /// The name of the next signal.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt as _};

    use super::*;

    /// (level, target, message) of each event.
    type Lines = Arc<Mutex<Vec<(String, String, String)>>>;

    struct Recorder(Lines);

    struct Message(String);

    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut message = Message(String::new());
            event.record(&mut message);
            let meta = event.metadata();
            self.0
                .lock()
                .unwrap()
                .push((meta.level().to_string(), meta.target().to_owned(), message.0));
        }
    }

    /// What `log` logs for every kind of event.
    fn every_event(log: Log) -> Vec<(String, String, String)> {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(Recorder(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let error = "the broker is gone";
            for event in [
                Event::Starting,
                Event::ShutdownRequested { signal: "SIGTERM" },
                Event::Stopped,
                Event::Failed { error: &error },
                Event::ExitingEarly {
                    reason: "a second SIGINT",
                },
                Event::NoSignalHandlers,
            ] {
                log.emit(&event);
            }
        });
        lines.lock().unwrap().clone()
    }

    mod a_binary {
        /// As `own_log!()` in a binary's `main.rs`, here in a module of its own.
        pub fn log() -> super::Log {
            crate::lifecycle::own_log!()
        }
    }

    #[test]
    fn own_log_logs_every_message_under_the_calling_module() {
        let log = a_binary::log();
        let target = "switchyard_service::lifecycle::tests::a_binary::lifecycle";
        assert_eq!(log.target(), target);
        let lines = every_event(log);
        let expected = [
            ("INFO", "starting"),
            ("INFO", "shutdown requested"),
            ("INFO", "stopped"),
            ("ERROR", "stopped on an error"),
            ("ERROR", "exiting before the shutdown finished"),
            (
                "ERROR",
                "cannot install signal handlers; stop the process with SIGKILL",
            ),
        ];
        assert_eq!(lines.len(), expected.len(), "{lines:?}");
        for ((level, line_target, message), (expected_level, expected_message)) in lines.iter().zip(expected)
        {
            assert_eq!(
                (level.as_str(), line_target.as_str(), message.as_str()),
                (expected_level, target, expected_message)
            );
        }
    }

    #[test]
    fn a_bare_name_logs_under_the_service_crate() {
        let program = Program::from("switchyard-stuck-service");
        assert_eq!(program.log.target(), "switchyard_service::lifecycle");
        let lines = every_event(program.log);
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert!(
            lines
                .iter()
                .all(|(_, target, _)| target == "switchyard_service::lifecycle"),
            "{lines:?}"
        );
    }
}
