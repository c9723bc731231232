//! How Switchyard's processes live and stop: a two-worker tokio runtime, SIGTERM and SIGINT as a
//! cancellation, and an exit code from the result. Every binary's `main` ends in [`run_until_signal`].
//!
//! The first signal cancels the service's token and the service drains. Two things bound that drain from
//! outside: a second signal exits at once (a person pressing Ctrl-C twice), and so does the shutdown
//! deadline passing (a drain stuck on an unreachable broker must not hold the process until the
//! orchestrator's SIGKILL). Both exit with status 1 and say why on stderr.

use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

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
/// and runs `service` until a signal ([`run_until_signal`]).
pub fn main<S, F, E>(about: &'static str, service: impl FnOnce(S, CancellationToken) -> F) -> ExitCode
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
    run_until_signal(S::PROGRAM, deadline, |shutdown| service(config, shutdown))
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
pub fn run_until_signal<F, E>(
    program: &str,
    deadline: Duration,
    service: impl FnOnce(CancellationToken) -> F,
) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{program}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        // Installed before the service starts: from its first line on, a signal stops it cleanly.
        if let Some(signals) = Signals::install() {
            tokio::spawn(stop_on_signals(
                signals,
                program.to_owned(),
                shutdown.clone(),
                deadline,
            ));
        }
        service(shutdown).await
    });
    match result {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            error!(%error, "stopped on an error");
            eprintln!("{program}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Cancels `shutdown` on the first signal; then exits the process on a second one or when `deadline` has
/// passed (unless the service returned first, which ends the process).
async fn stop_on_signals(
    mut signals: Signals,
    program: String,
    shutdown: CancellationToken,
    deadline: Duration,
) {
    let first = signals.next().await;
    info!(signal = first, "shutdown requested");
    shutdown.cancel();
    let reason = tokio::select! {
        second = signals.next() => format!("a second {second}"),
        () = tokio::time::sleep(deadline) => {
            format!("the shutdown took longer than its deadline of {deadline:?}")
        }
    };
    error!(%reason, "exiting before the shutdown finished");
    eprintln!("{program}: {reason}; exiting before the shutdown finished");
    std::process::exit(1);
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT, for a process that bounds its own shutdown (the
/// load tool's pipe).
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    if let Some(mut signals) = Signals::install() {
        let signal = signals.next().await;
        info!(signal, "shutdown requested");
        shutdown.cancel();
    }
}

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
            _ => {
                error!("cannot install signal handlers; stop the process with SIGKILL");
                None
            }
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
