//! How fast calls may start, for one team or for the whole plugin: a concurrency limit that halves when the
//! plugin says "slow down" (a `429`) and grows back by one after as many successes (additive increase,
//! multiplicative decrease), a pause after each such answer, and a token bucket when the manifest's
//! `rate_limit` sets a rate. Pure, with the caller's clock; [`super::schedule`] asks it before each start.

use std::time::{Duration, Instant};

use switchyard_service::token_bucket::TokenBucket;

/// The pause after a "slow down" without `Retry-After`.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(1);

/// The pace of a team, or of the plugin.
#[derive(Debug, Clone)]
pub struct Pace {
    ceiling: usize,
    limit: usize,
    successes: usize,
    paused_until: Option<Instant>,
    bucket: Option<TokenBucket>,
}

impl Pace {
    /// At most `ceiling` calls at once, and `rate` calls per second if given (from `now`, with a full
    /// bucket).
    pub fn new(ceiling: usize, rate: Option<f64>, now: Instant) -> Self {
        let ceiling = ceiling.max(1);
        Self {
            ceiling,
            limit: ceiling,
            successes: 0,
            paused_until: None,
            bucket: rate.filter(|r| *r > 0.0).map(|rate| TokenBucket::new(rate, now)),
        }
    }

    /// Calls allowed at once now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// When a call may start, given `running` calls: `None` while the limit is reached (a call's end must
    /// come first), else `now` or the end of a pause or the next token.
    pub fn ready_at(&self, running: usize, now: Instant) -> Option<Instant> {
        if running >= self.limit {
            return None;
        }
        let paused = self.paused_until.filter(|until| *until > now).unwrap_or(now);
        let token = self.bucket.as_ref().map_or(now, |b| b.ready_at(now));
        Some(paused.max(token))
    }

    /// A call starts: takes a token.
    pub fn start(&mut self, now: Instant) {
        if let Some(bucket) = &mut self.bucket {
            bucket.take(1, now);
        }
    }

    /// The plugin said "slow down": halve the limit, pause for `after` (or [`DEFAULT_PAUSE`]).
    pub fn slow_down(&mut self, after: Option<Duration>, now: Instant) {
        self.limit = (self.limit / 2).max(1);
        self.successes = 0;
        let until = now + after.unwrap_or(DEFAULT_PAUSE);
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        if let Some(bucket) = &mut self.bucket {
            bucket.pause_until(until);
        }
    }

    /// A call ended without "slow down": after as many successes as the limit, one call more.
    pub fn succeeded(&mut self) {
        if self.limit >= self.ceiling {
            return;
        }
        self.successes += 1;
        if self.successes >= self.limit {
            self.limit += 1;
            self.successes = 0;
        }
    }

    /// Whether it holds nothing a fresh pace would not (so it can be forgotten): full limit, no rate.
    pub fn is_fresh(&self, now: Instant) -> bool {
        self.limit == self.ceiling && self.bucket.is_none() && self.paused_until.is_none_or(|p| p <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_down_halves_and_successes_add_one_back() {
        let t0 = Instant::now();
        let mut pace = Pace::new(8, None, t0);
        pace.slow_down(Some(Duration::from_secs(2)), t0);
        assert_eq!(pace.limit(), 4);
        assert_eq!(pace.ready_at(0, t0), Some(t0 + Duration::from_secs(2)), "paused");
        assert_eq!(pace.ready_at(4, t0), None, "at the limit");
        pace.slow_down(None, t0);
        pace.slow_down(None, t0);
        pace.slow_down(None, t0);
        assert_eq!(pace.limit(), 1, "never below one");
        pace.succeeded();
        assert_eq!(pace.limit(), 2);
        for _ in 0..2 {
            pace.succeeded();
        }
        assert_eq!(pace.limit(), 3);
        for _ in 0..100 {
            pace.succeeded();
        }
        assert_eq!(pace.limit(), 8, "up to the ceiling");
        assert!(pace.is_fresh(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn a_rate_spaces_the_calls() {
        let t0 = Instant::now();
        let mut pace = Pace::new(10, Some(2.0), t0);
        assert_eq!(pace.ready_at(0, t0), Some(t0));
        pace.start(t0);
        pace.start(t0);
        assert_eq!(
            pace.ready_at(0, t0),
            Some(t0 + Duration::from_millis(500)),
            "a burst of one second's worth, then one token every 500 ms"
        );
        let later = t0 + Duration::from_millis(500);
        assert_eq!(pace.ready_at(0, later), Some(later));
        assert!(!pace.is_fresh(later), "a rate is kept");
    }
}
