//! The foundation's lifecycle on a real process and real signals: the first SIGTERM starts the drain; a
//! second one, or the shutdown deadline, ends a drain that does not finish, with status 1 and the reason.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Starts the stuck service and waits until it runs (its signal handlers are installed before it starts);
/// also returns its output, line by line.
fn start(deadline_ms: u64) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard-stuck-service"))
        .arg(deadline_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the stuck service");
    let mut output = BufReader::new(child.stdout.take().expect("stdout"));
    assert_eq!(next_line(&mut output), "ready");
    (child, output)
}

fn next_line(output: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    output.read_line(&mut line).expect("read a line of the service");
    line.trim().to_owned()
}

fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).expect("send a signal");
}

/// Waits for the exit (failing after `limit`); the exit code, stderr and how long it took.
fn wait_exit(mut child: Child, limit: Duration) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut stderr)
                .expect("stderr");
            return (status.code(), stderr, started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the service still ran {limit:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_signal_ends_a_drain_that_does_not_finish() {
    let (child, mut output) = start(60_000);
    signal(&child, Signal::SIGTERM);
    assert_eq!(next_line(&mut output), "cancelled; draining forever");
    assert!(child_running(&child), "the first signal only starts the drain");
    signal(&child, Signal::SIGINT);
    let (code, stderr, took) = wait_exit(child, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(took < Duration::from_secs(2), "at once: {took:?}");
    assert!(
        stderr.contains("switchyard-stuck-service: a second SIGINT; exiting before the shutdown finished"),
        "{stderr}"
    );
}

#[test]
fn the_shutdown_deadline_ends_a_drain_that_does_not_finish() {
    let (child, _output) = start(1_500);
    let signalled = Instant::now();
    signal(&child, Signal::SIGTERM);
    let (code, stderr, _) = wait_exit(child, Duration::from_secs(15));
    let took = signalled.elapsed();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        took >= Duration::from_millis(1_400),
        "not before the deadline: {took:?}"
    );
    assert!(
        stderr.contains("the shutdown took longer than its deadline of 1.5s"),
        "{stderr}"
    );
}

fn child_running(child: &Child) -> bool {
    kill(Pid::from_raw(child.id() as i32), None).is_ok()
        && std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
            .is_ok_and(|stat| !stat.contains(") Z "))
}
