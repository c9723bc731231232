//! How Switchyard's services live and stop: a two-worker tokio runtime, SIGTERM and SIGINT as a
//! cancellation, and an exit code from the result. The router's, the registry's and the plugin workers'
//! `main`s all end in [`run_until_signal`].

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Runs `service(shutdown)` on a new runtime until it returns; SIGTERM or SIGINT cancel `shutdown`.
/// Exit code 0 after a clean stop, 1 after an error (logged and printed to stderr as `program: error`).
pub fn run_until_signal<F, E>(program: &str, service: impl FnOnce(CancellationToken) -> F) -> ExitCode
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
        tokio::spawn(cancel_on_signal(shutdown.clone()));
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

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        error!("cannot install signal handlers; stop the process with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => info!(signal = "SIGTERM", "shutdown requested"),
        _ = int.recv() => info!(signal = "SIGINT", "shutdown requested"),
    }
    shutdown.cancel();
}
