//! The workspace's binaries as processes under test: where they are, started under supervision with a log
//! file (the shared fixtures' `process::Supervised`, killed when dropped), stopped with a deadline; and the
//! loopback addresses their servers listen on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use switchyard_fixtures::process::Supervised;

/// A loopback address with a port that was free a moment ago.
pub fn free_address() -> SocketAddr {
    switchyard_fixtures::net::free_address().unwrap_or_else(|error| panic!("{error}"))
}

/// How long a process under test may take to exit after SIGTERM before the test fails.
pub const TERMINATE_WITHIN: Duration = Duration::from_secs(60);

/// `target/test-logs/<name>.log` (the folder made if missing): where the tests' processes log.
pub fn log_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    dir.join(format!("{name}.log"))
}

/// Starts `command` with its output appended to `log`, failing the test if it cannot start.
pub fn supervise(command: &mut Command, log: &Path) -> Supervised {
    Supervised::spawn(command, log).unwrap_or_else(|error| panic!("{error}"))
}

/// SIGTERM, then the exit status, failing the test if the process does not exit within
/// [`TERMINATE_WITHIN`].
pub fn terminate(process: &mut Supervised) -> ExitStatus {
    process
        .terminate(TERMINATE_WITHIN)
        .unwrap_or_else(|error| panic!("{error}"))
}

/// A binary of the workspace: `$override_var` if set, else the one next to the test executable's profile
/// directory.
pub fn workspace_binary(name: &str, override_var: &str) -> PathBuf {
    if let Ok(path) = std::env::var(override_var) {
        return PathBuf::from(path);
    }
    // Test executables live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().expect("test executable path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}
