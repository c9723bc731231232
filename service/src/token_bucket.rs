//! A token bucket: how many things may happen now at `rate` per second. Pure, with the caller's clock;
//! the plugin runtime paces calls with it and the router paces backfills.

use std::time::{Duration, Instant};

/// `rate` tokens per second, holding at most one second's worth (at least one token). Starts full.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket of `rate` tokens per second (a rate below 1e-9 is taken as that).
    pub fn new(rate: f64, now: Instant) -> Self {
        let rate = rate.max(1e-9);
        Self {
            rate,
            tokens: rate.max(1.0),
            at: now,
        }
    }

    /// Tokens per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn capacity(&self) -> f64 {
        self.rate.max(1.0)
    }

    fn tokens_at(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * self.rate).min(self.capacity())
    }

    /// Whole tokens there now.
    pub fn available(&self, now: Instant) -> u64 {
        self.tokens_at(now).max(0.0) as u64
    }

    /// Takes `n` tokens (fewer may be there: the bucket stays at zero, it does not go into debt).
    pub fn take(&mut self, n: u64, now: Instant) {
        self.tokens = (self.tokens_at(now) - n as f64).max(0.0);
        self.at = now;
    }

    /// When the next token is there (`now` if it is).
    pub fn ready_at(&self, now: Instant) -> Instant {
        let tokens = self.tokens_at(now);
        if tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - tokens) / self.rate)
        }
    }

    /// Empties the bucket until `until`: nothing is saved up during a pause.
    pub fn pause_until(&mut self, until: Instant) {
        self.tokens = 0.0;
        self.at = until;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_s_worth_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(2.0, t0);
        assert_eq!((bucket.available(t0), bucket.ready_at(t0)), (2, t0));
        bucket.take(2, t0);
        assert_eq!(bucket.available(t0), 0);
        assert_eq!(bucket.ready_at(t0), t0 + Duration::from_millis(500));
        assert_eq!(
            bucket.available(t0 + Duration::from_secs(10)),
            2,
            "at most one second's worth"
        );
        bucket.take(5, t0 + Duration::from_millis(500));
        assert_eq!(bucket.available(t0 + Duration::from_millis(500)), 0, "no debt");
        bucket.pause_until(t0 + Duration::from_secs(3));
        assert_eq!(bucket.available(t0 + Duration::from_secs(3)), 0);
        assert_eq!(bucket.available(t0 + Duration::from_millis(3500)), 1);
        let slow = TokenBucket::new(0.5, t0);
        assert_eq!(slow.available(t0), 1, "at least one token");
    }
}
