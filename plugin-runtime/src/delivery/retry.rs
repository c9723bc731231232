//! The retry budget and schedule of one event: exponential backoff with full jitter, never shorter than the
//! plugin's `Retry-After`, bounded in attempts and in total time.
//!
//! The defaults follow the common webhook practice (Svix, Stripe: immediate, then seconds, then minutes)
//! compressed to what an in-order worker can afford: a retrying event holds its team's queue, so the
//! budget is minutes, not days. Outages are not charged to the budget (see [`super::breaker`]).

use std::time::Duration;

/// Retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls per event at most, the first included.
    pub max_attempts: u32,
    /// Time from the first failure after which no more retries start.
    pub max_elapsed: Duration,
    /// The first backoff.
    pub initial: Duration,
    /// The longest backoff.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            max_elapsed: Duration::from_secs(600),
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the backoff after `failures` failures (1 = after the first): `initial * 2^(n-1)`,
    /// capped at `max`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        self.initial.saturating_mul(1u32 << exponent).min(self.max)
    }

    /// The wait before the next call: uniformly random in `[ceiling / 2, ceiling]` (`unit` in `[0, 1)` is
    /// the random draw), and at least `retry_after` when the plugin asked for it (capped at `max`).
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let ceiling = self.ceiling(failures);
        let jittered = ceiling.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0));
        match retry_after {
            Some(after) => jittered.max(after.min(self.max)),
            None => jittered,
        }
    }

    /// Whether another call may start after `attempts` calls, `elapsed` after the first failure.
    pub fn allows(&self, attempts: u32, elapsed: Duration) -> bool {
        attempts < self.max_attempts && elapsed < self.max_elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_capped_and_honours_retry_after() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.ceiling(1), Duration::from_millis(500));
        assert_eq!(policy.ceiling(4), Duration::from_secs(4));
        assert_eq!(policy.ceiling(20), Duration::from_secs(60));
        assert_eq!(policy.delay(3, None, 0.0), Duration::from_secs(1));
        assert_eq!(policy.delay(3, None, 1.0), Duration::from_secs(2));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(7)), 0.3),
            Duration::from_secs(7)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600)), 0.3),
            Duration::from_secs(60),
            "a Retry-After beyond the cap is capped"
        );
    }

    #[test]
    fn the_budget_counts_attempts_and_time() {
        let policy = RetryPolicy::default();
        assert!(policy.allows(7, Duration::from_secs(10)));
        assert!(!policy.allows(8, Duration::from_secs(10)));
        assert!(!policy.allows(2, Duration::from_secs(600)));
    }
}
