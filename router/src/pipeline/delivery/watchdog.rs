//! The transaction watchdog: ends the process when a blocking transaction call does not return.
//!
//! ```text
//!   pipeline thread:  arm(call) ── send_offsets / commit / abort ── (guard dropped) disarm
//!   txn-watchdog:     every 500 ms: armed for longer than the limit?  ──► exit(70)
//! ```
//!
//! librdkafka can block in `send_offsets_to_transaction` past its timeout when the group coordinator dies
//! (librdkafka issue 5456). A hung transaction call cannot be cancelled from inside; the watchdog ends the
//! process so that a restart (which fences and aborts the open transaction) recovers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

/// When the running blocking transaction call started, shared between the pipeline thread and the
/// watchdog's thread.
#[derive(Debug, Clone, Default)]
pub struct Watchdog {
    /// The start of the running call in Unix milliseconds; 0 when none runs.
    started_ms: Arc<AtomicU64>,
    /// The running call's name, for the exit's log line.
    call: Arc<Mutex<&'static str>>,
}

/// A blocking call is running; dropping this disarms the watchdog.
#[must_use = "the watchdog is disarmed when this guard drops"]
pub struct Armed<'a>(&'a Watchdog);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.started_ms.store(0, Ordering::Relaxed);
    }
}

impl Watchdog {
    /// A disarmed watchdog; nothing watches it until [`Self::spawn`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms the watchdog for one blocking call (`call` names it), until the returned guard drops.
    pub fn arm(&self, call: &'static str) -> Armed<'_> {
        *self.call.lock().unwrap_or_else(PoisonError::into_inner) = call;
        self.started_ms.store(now_ms(), Ordering::Relaxed);
        Armed(self)
    }

    #[cfg(test)]
    fn is_armed(&self) -> bool {
        self.started_ms.load(Ordering::Relaxed) != 0
    }

    /// Starts the thread that ends the process (exit status 70) when a call stays armed longer than `limit`;
    /// it stops with `shutdown`.
    pub fn spawn(&self, limit: Duration, shutdown: CancellationToken) {
        let started_ms = Arc::clone(&self.started_ms);
        let call = Arc::clone(&self.call);
        let spawned = std::thread::Builder::new().name("txn-watchdog".into()).spawn(move || {
            while !shutdown.is_cancelled() {
                std::thread::sleep(Duration::from_millis(500));
                let started = started_ms.load(Ordering::Relaxed);
                if started == 0 {
                    continue;
                }
                if now_ms().saturating_sub(started) > limit.as_millis() as u64 {
                    error!(
                        limit_ms = limit.as_millis() as u64,
                        call = *call.lock().unwrap_or_else(PoisonError::into_inner),
                        "a transaction call has not returned within its limit; exiting so that a restart recovers"
                    );
                    std::process::exit(70);
                }
            }
        });
        if let Err(error) = spawned {
            warn!(%error, "could not start the transaction watchdog");
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_only_while_the_guard_lives() {
        let watchdog = Watchdog::new();
        assert!(!watchdog.is_armed());
        {
            let _armed = watchdog.arm("commit_transaction");
            assert!(watchdog.clone().is_armed(), "clones share the state");
        }
        assert!(!watchdog.is_armed());
    }
}
