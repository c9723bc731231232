//! The processes `dev` starts: each in its own process group, logged to a file, stopped in reverse order.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::usage;
use crate::Failure;

/// One child process and the name it is logged under.
pub(super) struct Running {
    pub(super) name: &'static str,
    pub(super) child: Child,
}

/// What was started, stopped in reverse order on the way out (also when a step fails).
pub(super) struct Stack {
    pub(super) running: Vec<Running>,
    pub(super) kafka: Option<(PathBuf, u16)>,
}

impl Stack {
    pub(super) async fn stop(&mut self) {
        while let Some(mut process) = self.running.pop() {
            if let Some(pid) = process.child.id() {
                // The whole group: `cargo run` and what it started, a shell and its children.
                let group = nix::unistd::Pid::from_raw(-(pid as i32));
                let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
            }
            if tokio::time::timeout(Duration::from_secs(15), process.child.wait())
                .await
                .is_err()
            {
                eprintln!("dev: {} did not stop within 15 s; killing it", process.name);
                let _ = process.child.kill().await;
            }
        }
        if let Some((script, port)) = self.kafka.take() {
            eprintln!("dev: stopping the broker");
            let _ = Command::new(&script)
                .arg("stop")
                .env("KAFKA_PORT", port.to_string())
                .status()
                .await;
        }
    }
}

/// Starts a child in its own process group, its output into `<logs>/<name>.log`; with `tee`, its stderr
/// (where the services log) comes back as a pipe instead, which the caller copies into the log file it also
/// gets back (the worker's log, read for the live view).
pub(super) fn spawn(
    stack: &mut Stack,
    name: &'static str,
    command: &mut Command,
    logs: &Path,
    tee: bool,
) -> Result<Option<(tokio::process::ChildStderr, std::fs::File)>, Failure> {
    let file = std::fs::File::create(logs.join(format!("{name}.log")))
        .map_err(|e| usage(format!("cannot write the log of {name}: {e}")))?;
    let copy = file.try_clone().map_err(|e| usage(e.to_string()))?;
    command
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .stdout(copy);
    let kept = if tee {
        command.stderr(Stdio::piped());
        Some(file)
    } else {
        command.stderr(file);
        None
    };
    let mut child = command
        .spawn()
        .map_err(|e| usage(format!("starting {name}: {e}")))?;
    let stderr = child.stderr.take();
    stack.running.push(Running { name, child });
    Ok(stderr.zip(kept))
}

/// Polls `ready` every 250 ms until it holds, a child exits, or `timeout` passes.
pub(super) async fn wait_for<F, Fut>(
    stack: &mut Stack,
    what: &str,
    timeout: Duration,
    mut ready: F,
) -> Result<(), Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if ready().await {
            return Ok(());
        }
        for process in &mut stack.running {
            if let Ok(Some(status)) = process.child.try_wait() {
                return Err(usage(format!(
                    "{} exited ({status}) while waiting for {what}; see its log",
                    process.name
                )));
            }
        }
        if Instant::now() > deadline {
            return Err(usage(format!(
                "gave up waiting for {what} after {}",
                humantime::format_duration(timeout)
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
