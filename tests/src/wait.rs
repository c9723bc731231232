//! Waiting for a condition with a deadline: the only way tests wait.

use std::time::{Duration, Instant};

/// Polls `condition` every 50 ms until it returns `Some`, or fails after `deadline` with `what` and the
/// last state described by `condition` returning `None`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `topic` holds at least `at_least` records (read to its end, `read_committed`), for at most
/// `deadline`; returns them all.
pub async fn wait_for_records(
    what: &str,
    topic: &str,
    at_least: usize,
    deadline: Duration,
) -> Vec<crate::broker::Incoming> {
    wait_for(what, deadline, || async {
        let records = crate::broker::read_to_end(topic);
        (records.len() >= at_least).then_some(records)
    })
    .await
}
