//! Per-key token buckets.
//!
//! Each key (a client, a plugin, ...) has a bucket that holds up to `burst` tokens and refills at
//! `rate_per_sec` tokens per second. A request takes one token; when the bucket is empty the caller gets
//! the time until the next token, to send as `Retry-After` (see [`retry_after_secs`]).
//!
//! Buckets are created lazily and kept in a [`DashMap`], so checks for different keys rarely contend.
//! Time is always passed in (`now`), which keeps the logic deterministic and easy to test.
//!
//! Memory stays bounded in two ways:
//!
//! * A bucket that has been idle long enough to be full again behaves exactly like a fresh bucket, so
//!   removing it loses nothing. [`RateLimiter::sweep`] removes all such buckets; call it periodically,
//!   for example once every [`RateLimiter::full_refill_time`] or once a minute from a background task.
//! * The map holds at most `max_keys` buckets (a soft bound: concurrent first requests for new keys can
//!   overshoot it by a few entries). When a new key arrives and the map is full, the limiter sweeps
//!   (at most once per second, so a flood of new keys cannot make every request scan the map). If the
//!   map is still full, the new key is **refused** (fail closed): letting untracked keys through would
//!   let anyone bypass the limit by inventing keys. Known keys keep working normally.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Default for [`RateLimiter::with_max_keys`].
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Least time between two sweeps triggered by a full map.
const FULL_MAP_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Errors from building a [`RateLimiter`].
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RateLimitError {
    /// The rate is zero, negative, infinite or NaN.
    #[error("The rate limit must be a positive, finite number of requests per second, but it is {0}.")]
    Rate(f64),
    /// The burst is zero, which would refuse every request.
    #[error("The rate limit burst must be at least 1 request, but it is 0.")]
    Burst,
    /// The key limit is zero, which would refuse every key.
    #[error("The rate limiter must be allowed to track at least 1 key, but max_keys is 0.")]
    MaxKeys,
}

/// One key's bucket: the tokens it held at `updated`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A thread-safe set of token buckets, one per key.
#[derive(Debug)]
pub struct RateLimiter {
    rate_per_sec: f64,
    burst: f64,
    max_keys: usize,
    buckets: DashMap<String, Bucket>,
    last_full_map_sweep: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// Makes a limiter allowing `burst` requests at once and `rate_per_sec` requests per second on
    /// average, per key, tracking at most [`DEFAULT_MAX_KEYS`] keys.
    pub fn new(rate_per_sec: f64, burst: u32) -> Result<Self, RateLimitError> {
        if !(rate_per_sec.is_finite() && rate_per_sec > 0.0) {
            return Err(RateLimitError::Rate(rate_per_sec));
        }
        if burst == 0 {
            return Err(RateLimitError::Burst);
        }
        Ok(Self {
            rate_per_sec,
            burst: f64::from(burst),
            max_keys: DEFAULT_MAX_KEYS,
            buckets: DashMap::new(),
            last_full_map_sweep: Mutex::new(None),
        })
    }

    /// Sets the largest number of keys tracked at once (see the module docs for what happens when full).
    pub fn with_max_keys(mut self, max_keys: usize) -> Result<Self, RateLimitError> {
        if max_keys == 0 {
            return Err(RateLimitError::MaxKeys);
        }
        self.max_keys = max_keys;
        Ok(self)
    }

    /// Time for an empty bucket to become full; an idle key is forgotten by [`sweep`](Self::sweep)
    /// after at most this long.
    pub fn full_refill_time(&self) -> Duration {
        secs_to_duration(self.burst / self.rate_per_sec)
    }

    /// Number of keys currently tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Takes one token from `key`'s bucket.
    ///
    /// Returns `Err(wait)` when the bucket is empty, where `wait` is the time until one token is
    /// available. A new key arriving while the map is full (even after a sweep) is refused with the
    /// full refill time as its wait.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if let Some(mut bucket) = self.buckets.get_mut(key) {
            return self.take(&mut bucket, now);
        }
        if self.buckets.len() >= self.max_keys {
            self.sweep_if_due(now);
            if self.buckets.len() >= self.max_keys {
                return Err(self.full_refill_time());
            }
        }
        // Another thread may have inserted the key meanwhile; the entry API handles both cases.
        let mut bucket = self.buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        self.take(&mut bucket, now)
    }

    /// Removes every bucket that has refilled completely by `now`; such a bucket is indistinguishable
    /// from a new one. Call it periodically (see the module docs); it visits every key.
    pub fn sweep(&self, now: Instant) {
        self.buckets
            .retain(|_, bucket| self.refilled(bucket, now) < self.burst);
    }

    /// Tokens `bucket` holds at `now`. A `now` earlier than the last update counts as no time passing.
    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.rate_per_sec).min(self.burst)
    }

    fn take(&self, bucket: &mut Bucket, now: Instant) -> Result<(), Duration> {
        bucket.tokens = self.refilled(bucket, now);
        bucket.updated = bucket.updated.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(secs_to_duration((1.0 - bucket.tokens) / self.rate_per_sec))
        }
    }

    fn sweep_if_due(&self, now: Instant) {
        // A poisoned lock only means another thread panicked while holding it; the Option is still valid.
        let mut last = self
            .last_full_map_sweep
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = match *last {
            Some(previous) => now.saturating_duration_since(previous) >= FULL_MAP_SWEEP_INTERVAL,
            None => true,
        };
        if due {
            *last = Some(now);
            drop(last);
            self.sweep(now);
        }
    }
}

/// Converts seconds to a [`Duration`], saturating instead of panicking on huge values.
fn secs_to_duration(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// Rounds a wait up to whole seconds for a `Retry-After` header; the result is at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let rounded_up = wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0));
    rounded_up.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_limited() {
        let limiter = RateLimiter::new(2.0, 3).unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("a", t0), Ok(()));
        }
        assert_eq!(limiter.check("a", t0), Err(ms(500)));
        // A refused request takes nothing: the wait shrinks as time passes.
        assert_eq!(limiter.check("a", t0 + ms(200)), Err(ms(300)));
    }

    #[test]
    fn refills_over_time_up_to_burst() {
        let limiter = RateLimiter::new(2.0, 3).unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.check("a", t0).unwrap();
        }
        assert_eq!(limiter.check("a", t0 + ms(500)), Ok(()));
        assert!(limiter.check("a", t0 + ms(500)).is_err());
        // Long idle: refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.check("a", later), Ok(()));
        }
        assert!(limiter.check("a", later).is_err());
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let limiter = RateLimiter::new(1.0, 1).unwrap();
        let t0 = Instant::now() + Duration::from_secs(10);
        limiter.check("a", t0).unwrap();
        assert_eq!(
            limiter.check("a", t0 - Duration::from_secs(5)),
            Err(Duration::from_secs(1))
        );
        assert_eq!(limiter.check("a", t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn keys_are_independent() {
        let limiter = RateLimiter::new(1.0, 1).unwrap();
        let t0 = Instant::now();
        assert_eq!(limiter.check("a", t0), Ok(()));
        assert!(limiter.check("a", t0).is_err());
        assert_eq!(limiter.check("b", t0), Ok(()));
        assert!(limiter.check("b", t0).is_err());
    }

    #[test]
    fn sweep_removes_only_full_buckets() {
        let limiter = RateLimiter::new(1.0, 2).unwrap();
        let t0 = Instant::now();
        limiter.check("old", t0).unwrap();
        limiter.check("recent", t0 + ms(1500)).unwrap();
        assert_eq!(limiter.full_refill_time(), Duration::from_secs(2));
        // At t0+1s "old" has 2 tokens again (1 left + 1 refilled); "recent" is still spent.
        limiter.sweep(t0 + ms(2000));
        assert_eq!(limiter.len(), 1);
        limiter.sweep(t0 + ms(2500));
        assert!(limiter.is_empty());
    }

    #[test]
    fn full_map_refuses_new_keys_until_sweep_frees_room() {
        let limiter = RateLimiter::new(1.0, 2).unwrap().with_max_keys(2).unwrap();
        let t0 = Instant::now();
        limiter.check("a", t0).unwrap();
        limiter.check("b", t0).unwrap();
        // Full, and the sweep finds nothing idle: the new key is refused, known keys still work.
        assert_eq!(limiter.check("c", t0), Err(limiter.full_refill_time()));
        assert_eq!(limiter.check("a", t0 + ms(100)), Ok(()));
        assert_eq!(limiter.len(), 2);
        // "b" is full again at t0+1s; "a" (spent at t0+100ms) is not yet.
        assert_eq!(limiter.check("c", t0 + ms(1100)), Ok(()));
        assert_eq!(limiter.len(), 2);
        assert!(limiter.check("a", t0 + ms(1100)).is_ok());
    }

    #[test]
    fn full_map_sweeps_at_most_once_per_second() {
        let limiter = RateLimiter::new(10.0, 1).unwrap().with_max_keys(1).unwrap();
        let t0 = Instant::now();
        limiter.check("a", t0).unwrap();
        assert!(limiter.check("b", t0).is_err()); // sweeps at t0, "a" not yet full
        // "a" is full after 100 ms, but the last full-map sweep was under a second ago.
        assert!(limiter.check("b", t0 + ms(500)).is_err());
        assert_eq!(limiter.check("b", t0 + ms(1000)), Ok(()));
    }

    #[test]
    fn rejects_bad_settings() {
        assert_eq!(RateLimiter::new(0.0, 1).unwrap_err(), RateLimitError::Rate(0.0));
        assert!(RateLimiter::new(f64::NAN, 1).is_err());
        assert!(RateLimiter::new(f64::INFINITY, 1).is_err());
        assert_eq!(RateLimiter::new(1.0, 0).unwrap_err(), RateLimitError::Burst);
        assert_eq!(
            RateLimiter::new(1.0, 1).unwrap().with_max_keys(0).unwrap_err(),
            RateLimitError::MaxKeys
        );
    }

    #[test]
    fn tiny_rates_do_not_overflow() {
        let limiter = RateLimiter::new(1e-300, 1).unwrap();
        let t0 = Instant::now();
        limiter.check("a", t0).unwrap();
        assert_eq!(limiter.check("a", t0), Err(Duration::MAX));
        assert_eq!(retry_after_secs(Duration::MAX), u64::MAX);
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(ms(1)), 1);
        assert_eq!(retry_after_secs(ms(1000)), 1);
        assert_eq!(retry_after_secs(ms(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
    }
}
