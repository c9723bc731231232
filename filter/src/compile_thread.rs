//! The one thread that parses CEL in this process, with a stack large enough for any parse.
//!
//! cel's ANTLR parser recurses per level of nesting and per link of a left-deep chain (`a.b.c…`,
//! `1 + 1 + …`), with large frames in a debug build. Measured on the worst sources [`crate::bounds`]
//! lets through (1 KiB; 32 nested brackets, the parser's own limit just above): up to 0.3 MiB of stack in
//! a release build and 6.5 MiB in a debug build, more than a caller's thread may have left (2 MiB for a
//! spawned or tokio thread). So parsing runs on a thread of its own with a generous stack: reserved, not
//! committed, so the pages a parse does not touch cost nothing.
//!
//! A long-lived thread rather than one per compile, because the router compiles on its control-topic
//! thread for every enablement record: measured, spawning and joining a thread costs 15 µs with a 16 MiB
//! stack and 30-60 µs with 64 MiB, a round trip to a waiting thread 3 µs, and a typical compile 20-25 µs.
//! Compiles are serialized through it, which at tens of microseconds each is no bottleneck.
//!
//! The thread starts on first use and runs for the life of the process. A panic inside a job is caught
//! there (the caller gets [`CompileThreadError`]) and the thread goes on serving.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel, sync_channel};

use thiserror::Error;

/// Stack of the compile thread: far above the measured worst case of a debug build, so that a change in
/// cel's parser does not turn into an abort.
pub const STACK_BYTES: usize = 64 << 20;

/// Why a job did not run to completion on the compile thread.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CompileThreadError {
    /// The thread could not be started (the process is out of threads or memory).
    #[error("the compile thread could not be started: {0}")]
    Start(String),
    /// The job panicked.
    #[error("the compile job panicked")]
    Panicked,
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `job` on the compile thread and waits for its result.
///
/// Blocks the caller for the job's duration plus a few microseconds: call it where blocking briefly is
/// fine (a control thread, or `spawn_blocking` from async code).
///
/// # Errors
///
/// [`CompileThreadError`] when the thread cannot be started or the job panics.
pub fn run<R, F>(job: F) -> Result<R, CompileThreadError>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let jobs = compile_thread().map_err(|e| CompileThreadError::Start(e.clone()))?;
    let (reply, result) = sync_channel(1);
    let send = jobs.send(Box::new(move || {
        // The receiver waits below; it can only be gone if the caller's thread died meanwhile.
        let _ = reply.send(job());
    }));
    if send.is_err() {
        return Err(CompileThreadError::Start(
            "the compile thread has stopped".to_owned(),
        ));
    }
    // A panicking job drops `reply` unsent.
    result.recv().map_err(|_| CompileThreadError::Panicked)
}

fn compile_thread() -> Result<&'static Sender<Job>, &'static String> {
    static JOBS: OnceLock<Result<Sender<Job>, String>> = OnceLock::new();
    JOBS.get_or_init(|| {
        let (jobs, queue) = channel::<Job>();
        std::thread::Builder::new()
            .name("cel-compile".to_owned())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                for job in queue {
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })
            .map(|_| jobs)
            .map_err(|e| e.to_string())
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_and_a_panic_does_not_stop_the_thread() {
        assert_eq!(run(|| 6 * 7), Ok(42));
        let name = run(|| std::thread::current().name().map(str::to_owned)).unwrap();
        assert_eq!(name.as_deref(), Some("cel-compile"));
        assert_eq!(
            run(|| -> u8 { panic!("a test panic on the compile thread") }),
            Err(CompileThreadError::Panicked)
        );
        assert_eq!(run(|| "still serving"), Ok("still serving"));
    }

    #[test]
    fn the_stack_holds_deep_recursion() {
        fn depth(n: u32) -> u32 {
            let frame = std::hint::black_box([0u8; 1024]);
            if n == 0 {
                u32::from(frame[0])
            } else {
                1 + depth(n - 1)
            }
        }
        // 16 MiB of frames: far more than a default thread has.
        assert_eq!(run(|| depth(16 * 1024)), Ok(16 * 1024));
    }
}
