//! Outage versus poison. When a plugin fails for many teams at once (its endpoint is down), retrying and
//! dead-lettering each event would empty the queue into the dead-letter topic. Instead the worker declares
//! an outage: it pauses consumption, lets one event probe the plugin with growing backoff while every other
//! retrying event waits, charges no event's retry budget meanwhile, and resumes when a call succeeds.
//!
//! A single failing event among healthy ones (poison) does not trip it: successes of other teams keep the
//! failure share low, so that event is retried and dead-lettered on its own budget.
//!
//! The rule: within the last `window` calls, at least `min_teams` distinct teams failed with a retryable
//! error, failures are at least `threshold` of the calls, and the latest call failed. Any success closes it.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

/// Outage detection settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Calls remembered.
    pub window: usize,
    /// Distinct failing teams needed.
    pub min_teams: usize,
    /// Share of failed calls needed, 0-1.
    pub threshold: f64,
    /// First wait between probes.
    pub probe_initial: Duration,
    /// Longest wait between probes.
    pub probe_max: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            window: 20,
            min_teams: 3,
            threshold: 0.8,
            probe_initial: Duration::from_millis(500),
            probe_max: Duration::from_secs(30),
        }
    }
}

/// The detector's memory.
#[derive(Debug)]
pub struct Breaker {
    policy: BreakerPolicy,
    recent: VecDeque<(String, bool)>,
    open: bool,
    probes: u32,
}

impl Breaker {
    /// Closed, with no history.
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            recent: VecDeque::new(),
            open: false,
            probes: 0,
        }
    }

    /// Records a call's result (`ok` = the plugin answered with anything but a retryable failure) and
    /// returns whether the breaker is open afterwards.
    pub fn record(&mut self, team: &str, ok: bool) -> bool {
        if self.recent.len() == self.policy.window.max(1) {
            self.recent.pop_front();
        }
        self.recent.push_back((team.to_owned(), ok));
        if ok {
            self.open = false;
            self.probes = 0;
        } else if !self.open {
            let failures: Vec<&str> = self
                .recent
                .iter()
                .filter(|(_, ok)| !ok)
                .map(|(team, _)| team.as_str())
                .collect();
            let teams: HashSet<&str> = failures.iter().copied().collect();
            let share = failures.len() as f64 / self.recent.len() as f64;
            self.open = teams.len() >= self.policy.min_teams && share >= self.policy.threshold;
        }
        self.open
    }

    /// Whether an outage is declared.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The wait before the next probe (grows with each failed probe).
    pub fn next_probe_delay(&mut self) -> Duration {
        let exponent = self.probes.min(20);
        self.probes = self.probes.saturating_add(1);
        self.policy
            .probe_initial
            .saturating_mul(1u32 << exponent)
            .min(self.policy.probe_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_teams_failing_is_an_outage_and_a_success_ends_it() {
        let mut breaker = Breaker::new(BreakerPolicy::default());
        assert!(!breaker.record("a", false));
        assert!(!breaker.record("b", false));
        assert!(breaker.record("c", false), "three teams, all failing");
        assert!(breaker.is_open());
        assert_eq!(breaker.next_probe_delay(), Duration::from_millis(500));
        assert_eq!(breaker.next_probe_delay(), Duration::from_secs(1));
        assert!(!breaker.record("a", true));
        assert_eq!(breaker.next_probe_delay(), Duration::from_millis(500));
    }

    #[test]
    fn one_poison_team_among_healthy_ones_is_not_an_outage() {
        let mut breaker = Breaker::new(BreakerPolicy::default());
        for round in 0..10 {
            assert!(!breaker.record("poison", false), "round {round}");
            for team in ["a", "b", "c"] {
                assert!(!breaker.record(team, true));
            }
        }
    }

    #[test]
    fn a_single_team_failing_alone_is_not_an_outage() {
        let mut breaker = Breaker::new(BreakerPolicy::default());
        for _ in 0..30 {
            assert!(!breaker.record("only", false));
        }
    }
}
