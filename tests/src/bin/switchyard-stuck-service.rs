//! A service whose shutdown never finishes, for the lifecycle tests: `switchyard-stuck-service DEADLINE_MS`
//! prints `ready` once started, ignores its cancellation and waits forever, so that only a second signal
//! or the shutdown deadline of `switchyard_service::lifecycle` can end it.

use std::process::ExitCode;
use std::time::Duration;

use switchyard_service::lifecycle;

fn main() -> ExitCode {
    let deadline_ms: u64 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .expect("usage: switchyard-stuck-service DEADLINE_MS");
    lifecycle::run_until_signal(
        "switchyard-stuck-service",
        Duration::from_millis(deadline_ms),
        |shutdown| async move {
            println!("ready");
            shutdown.cancelled().await;
            println!("cancelled; draining forever");
            std::future::pending::<Result<(), String>>().await
        },
    )
}
