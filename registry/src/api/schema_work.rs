//! Compiling config schemas and validating configs, off the async workers and within a deadline.
//!
//! Both are CPU work whose cost depends on what a plugin registered. [`crate::config_schema`] bounds
//! that cost before jsonschema runs, but a bound is no guarantee of a quick answer on a busy machine;
//! so the work runs on tokio's blocking threads, at most `max_concurrent` jobs at a time, and the
//! request gets 503 (with `Retry-After`) when its job has not finished within `timeout`. A job that
//! outlives its deadline keeps its slot until it ends, so slow jobs cannot pile up behind each other;
//! the async workers, and with them `/healthz` and every other request, never wait for one.
//!
//! ```text
//!   handler ── run(job) ── permit (wait ≤ timeout) ── spawn_blocking(job + permit) ── answer ≤ timeout
//!                 └── 503 "busy" ◄──┘                                    └── 503 "too slow" (job runs on)
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::problem::Problem;

/// Seconds a client is asked to wait after a 503 from here.
const RETRY_AFTER_SECONDS: u64 = 1;

/// Runs schema jobs with a concurrency cap and a deadline.
#[derive(Clone)]
pub struct SchemaWork {
    permits: Arc<Semaphore>,
    timeout: Duration,
    metrics: Metrics,
}

impl SchemaWork {
    /// At most `max_concurrent` jobs at once (at least one), each answered within `timeout`.
    pub fn new(max_concurrent: usize, timeout: Duration, metrics: Metrics) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            timeout,
            metrics,
        }
    }

    /// Runs `job` on a blocking thread and returns its result, or 503 when no slot freed up or the job
    /// did not finish within the timeout (counted from the call).
    ///
    /// # Errors
    ///
    /// [`Problem::unavailable`] with `Retry-After` in both cases.
    pub async fn run<T: Send + 'static>(
        &self,
        what: &'static str,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Problem> {
        let deadline = Instant::now() + self.timeout;
        let permit = match tokio::time::timeout_at(deadline, Arc::clone(&self.permits).acquire_owned()).await
        {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; an error would mean shutdown.
            Ok(Err(_)) | Err(_) => {
                self.count("busy");
                return Err(self.unavailable(format!("the registry is busy {what}; retry shortly")));
            }
        };
        let handle = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        });
        match tokio::time::timeout_at(deadline, handle).await {
            Ok(Ok(result)) => {
                self.count("done");
                Ok(result)
            }
            Ok(Err(error)) => {
                self.count("failed");
                tracing::error!(%error, what, "a schema job panicked");
                Err(self.unavailable(format!("{what} failed unexpectedly; retry")))
            }
            Err(_) => {
                self.count("timed_out");
                tracing::warn!(
                    what,
                    timeout_ms = self.timeout.as_millis() as u64,
                    "a schema job did not finish in time"
                );
                Err(self.unavailable(format!(
                    "{what} took longer than {} ms; retry later, or ask the plugin's author to simplify its config_schema",
                    self.timeout.as_millis()
                )))
            }
        }
    }

    fn count(&self, outcome: &str) {
        self.metrics.schema_jobs.with_label_values(&[outcome]).inc();
    }

    fn unavailable(&self, detail: String) -> Problem {
        let mut problem = Problem::unavailable(detail);
        problem.retry_after = Some(RETRY_AFTER_SECONDS);
        problem
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn work(max_concurrent: usize, timeout_ms: u64) -> SchemaWork {
        SchemaWork::new(max_concurrent, Duration::from_millis(timeout_ms), Metrics::new())
    }

    #[tokio::test]
    async fn a_quick_job_returns_its_result() {
        assert_eq!(work(1, 5_000).run("adding", || 2 + 2).await, Ok(4));
    }

    #[tokio::test]
    async fn a_slow_job_gets_503_and_keeps_its_slot_until_it_ends() {
        let work = work(1, 100);
        let (release, released) = mpsc::channel::<()>();
        let slow = work
            .run("checking a config", move || released.recv().ok())
            .await
            .unwrap_err();
        assert_eq!(slow.status, 503);
        assert_eq!(slow.retry_after, Some(RETRY_AFTER_SECONDS));
        assert!(slow.detail.contains("took longer than 100 ms"), "{}", slow.detail);
        // The slow job still holds the only slot: the next one is refused as busy.
        let busy = work.run("checking a config", || ()).await.unwrap_err();
        assert!(busy.detail.contains("busy"), "{}", busy.detail);
        release.send(()).unwrap();
        // Once the slow job ends, its slot is free again.
        let deadline = Instant::now() + Duration::from_secs(5);
        while work.run("checking a config", || ()).await.is_err() {
            assert!(Instant::now() < deadline, "the slot was never freed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
