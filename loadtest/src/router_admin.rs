//! The router's admin endpoints as the tool uses them: `/readyz` and the counters of `/metrics` (parsed by
//! the shared fixtures' [`Metrics`]).
//!
//! The router's event counters move only when an outcome is durable (its transaction committed), so once
//! they have grown by the number of events sent, every output of those events is readable by a
//! `read_committed` consumer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use switchyard_fixtures::metrics::Metrics;

use crate::LoadtestError;

/// `switchyard_router_events_total{outcome}`.
pub const EVENTS_TOTAL: &str = "switchyard_router_events_total";
/// `switchyard_router_dead_letters_total{reason}`.
pub const DEAD_LETTERS_TOTAL: &str = "switchyard_router_dead_letters_total";
/// `switchyard_router_plugin_records_total{plugin}`.
pub const PLUGIN_RECORDS_TOTAL: &str = "switchyard_router_plugin_records_total";
/// `switchyard_router_control_records_total{topic,result}`.
pub const CONTROL_RECORDS_TOTAL: &str = "switchyard_router_control_records_total";
/// The gauge of input partitions a replica owns.
pub const ASSIGNED_PARTITIONS: &str = "switchyard_router_assigned_partitions";

/// How often waits poll the router.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The router counters the tool reads, as integers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouterCounters {
    /// `events_total{outcome="routed"}`.
    pub routed: u64,
    /// `events_total{outcome="unrouted"}`.
    pub unrouted: u64,
    /// `events_total{outcome="dead_lettered"}`.
    pub dead_lettered: u64,
    /// `dead_letters_total` by reason.
    pub dead_letters: BTreeMap<String, u64>,
    /// `plugin_records_total` by plugin.
    pub plugin_records: BTreeMap<String, u64>,
    /// `control_records_total{topic="plugins",result="applied"}`.
    pub plugins_applied: u64,
    /// `control_records_total{topic="enablements",result="applied"}`.
    pub enablements_applied: u64,
}

impl RouterCounters {
    /// Reads the counters from a metrics page.
    pub fn from_metrics(metrics: &Metrics) -> Self {
        let int = |v: f64| v.max(0.0) as u64;
        let map = |name, label| {
            metrics
                .by_label(name, label)
                .into_iter()
                .map(|(k, v)| (k, int(v)))
                .collect()
        };
        Self {
            routed: int(metrics.value(EVENTS_TOTAL, &[("outcome", "routed")])),
            unrouted: int(metrics.value(EVENTS_TOTAL, &[("outcome", "unrouted")])),
            dead_lettered: int(metrics.value(EVENTS_TOTAL, &[("outcome", "dead_lettered")])),
            dead_letters: map(DEAD_LETTERS_TOTAL, "reason"),
            plugin_records: map(PLUGIN_RECORDS_TOTAL, "plugin"),
            plugins_applied: int(metrics.value(
                CONTROL_RECORDS_TOTAL,
                &[("topic", "plugins"), ("result", "applied")],
            )),
            enablements_applied: int(metrics.value(
                CONTROL_RECORDS_TOTAL,
                &[("topic", "enablements"), ("result", "applied")],
            )),
        }
    }

    /// Events with an outcome.
    pub fn outcomes(&self) -> u64 {
        self.routed + self.unrouted + self.dead_lettered
    }

    /// What grew since `before` (counters that went down, as after a router restart, count as 0).
    pub fn since(&self, before: &RouterCounters) -> RouterCounters {
        let map = |now: &BTreeMap<String, u64>, then: &BTreeMap<String, u64>| {
            now.iter()
                .map(|(k, v)| (k.clone(), v.saturating_sub(then.get(k).copied().unwrap_or(0))))
                .filter(|(_, v)| *v > 0)
                .collect()
        };
        RouterCounters {
            routed: self.routed.saturating_sub(before.routed),
            unrouted: self.unrouted.saturating_sub(before.unrouted),
            dead_lettered: self.dead_lettered.saturating_sub(before.dead_lettered),
            dead_letters: map(&self.dead_letters, &before.dead_letters),
            plugin_records: map(&self.plugin_records, &before.plugin_records),
            plugins_applied: self.plugins_applied.saturating_sub(before.plugins_applied),
            enablements_applied: self
                .enablements_applied
                .saturating_sub(before.enablements_applied),
        }
    }
}

/// A client of one router's admin server.
pub struct RouterAdmin {
    base: String,
    client: reqwest::blocking::Client,
}

impl RouterAdmin {
    /// A client of the admin server at `address` (`host:port`).
    pub fn new(address: &str) -> Result<Self, LoadtestError> {
        let base = format!("http://{address}");
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|error| LoadtestError::Http {
                url: base.clone(),
                error,
            })?;
        Ok(Self { base, client })
    }

    /// Whether `/readyz` answers 200.
    pub fn ready(&self) -> Result<bool, LoadtestError> {
        let url = format!("{}/readyz", self.base);
        let response = self
            .client
            .get(&url)
            .send()
            .map_err(|error| LoadtestError::Http { url, error })?;
        Ok(response.status().is_success())
    }

    /// The current counters.
    pub fn counters(&self) -> Result<RouterCounters, LoadtestError> {
        Ok(RouterCounters::from_metrics(&self.metrics()?))
    }

    /// The `/metrics` page.
    pub fn metrics(&self) -> Result<Metrics, LoadtestError> {
        let url = format!("{}/metrics", self.base);
        let text = self
            .client
            .get(&url)
            .send()
            .and_then(reqwest::blocking::Response::error_for_status)
            .and_then(reqwest::blocking::Response::text)
            .map_err(|error| LoadtestError::Http { url, error })?;
        Ok(Metrics::parse(&text))
    }

    /// The input partitions this replica owns now.
    pub fn assigned_partitions(&self) -> Result<u64, LoadtestError> {
        Ok(self.metrics()?.value(ASSIGNED_PARTITIONS, &[]).max(0.0) as u64)
    }

    /// Waits until the replica is ready and owns at least one input partition: the rebalance its start
    /// caused is over.
    pub fn wait_assigned(&self, timeout: Duration) -> Result<(), LoadtestError> {
        self.wait_until("the router to own input partitions", timeout, |admin| match admin
            .ready()
            .and_then(|ready| Ok((ready, admin.assigned_partitions()?)))
        {
            Ok((true, owned)) if owned > 0 => Ok(None),
            Ok((ready, owned)) => Ok(Some(format!("ready: {ready}, partitions owned: {owned}"))),
            Err(error) => Ok(Some(error.to_string())),
        })
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), LoadtestError> {
        self.wait_until(
            "the router to be ready (/readyz 200)",
            timeout,
            |admin| match admin.ready() {
                Ok(true) => Ok(None),
                Ok(false) => Ok(Some("/readyz does not answer 200 yet".to_owned())),
                Err(error) => Ok(Some(error.to_string())),
            },
        )
    }

    /// Polls the counters until `done` returns `None`; `done` describes the state while waiting. Calls
    /// `progress` about once a second with that description.
    pub fn wait_for_counters(
        &self,
        what: &'static str,
        timeout: Duration,
        mut done: impl FnMut(&RouterCounters) -> Option<String>,
        mut progress: impl FnMut(&str),
    ) -> Result<RouterCounters, LoadtestError> {
        let mut last_report = Instant::now();
        let mut latest = None;
        self.wait_until(what, timeout, |admin| {
            let counters = admin.counters()?;
            let state = done(&counters);
            if let Some(state) = &state
                && last_report.elapsed() >= Duration::from_secs(1)
            {
                progress(state);
                last_report = Instant::now();
            }
            latest = Some(counters);
            Ok(state)
        })?;
        latest.ok_or(LoadtestError::Timeout {
            what,
            waited: timeout,
            last: "no metrics read".to_owned(),
        })
    }

    /// Polls `state` every 100 ms until it returns `None` or `timeout` passes.
    fn wait_until(
        &self,
        what: &'static str,
        timeout: Duration,
        mut state: impl FnMut(&Self) -> Result<Option<String>, LoadtestError>,
    ) -> Result<(), LoadtestError> {
        let started = Instant::now();
        loop {
            let last = match state(self)? {
                None => return Ok(()),
                Some(last) => last,
            };
            if started.elapsed() >= timeout {
                return Err(LoadtestError::Timeout {
                    what,
                    waited: timeout,
                    last,
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The counters the tool reads, as the router's /metrics lists them (see fixtures::metrics for the format).
    const PAGE: &str = r#"switchyard_router_events_total{outcome="routed"} 120
switchyard_router_events_total{outcome="unrouted"} 7
switchyard_router_events_total{outcome="dead_lettered"} 3
switchyard_router_dead_letters_total{reason="missing_header"} 2
switchyard_router_dead_letters_total{reason="teamid_mismatch"} 1
switchyard_router_plugin_records_total{plugin="sheets-export"} 100
switchyard_router_plugin_records_total{plugin="sms-notify"} 40
switchyard_router_control_records_total{result="invalid",topic="plugins"} 1
switchyard_router_control_records_total{result="applied",topic="plugins"} 4
switchyard_router_control_records_total{result="applied",topic="enablements"} 32
"#;

    #[test]
    fn counters_and_deltas() {
        let before = RouterCounters::from_metrics(&Metrics::parse(PAGE));
        assert_eq!(before.outcomes(), 130);
        assert_eq!(before.plugins_applied, 4);
        assert_eq!(before.enablements_applied, 32);
        assert_eq!(before.dead_letters["missing_header"], 2);
        let after_page = PAGE
            .replace("\"routed\"} 120", "\"routed\"} 150")
            .replace("\"sms-notify\"} 40", "\"sms-notify\"} 52")
            .replace(
                "\"teamid_mismatch\"} 1",
                "\"teamid_mismatch\"} 1\nswitchyard_router_dead_letters_total{reason=\"invalid_payload\"} 4",
            );
        let after = RouterCounters::from_metrics(&Metrics::parse(&after_page));
        let delta = after.since(&before);
        assert_eq!(delta.routed, 30);
        assert_eq!(delta.unrouted, 0);
        assert_eq!(
            delta.plugin_records,
            BTreeMap::from([("sms-notify".to_owned(), 12)])
        );
        assert_eq!(
            delta.dead_letters,
            BTreeMap::from([("invalid_payload".to_owned(), 4)])
        );
        // A restarted router starts from zero: nothing negative.
        assert_eq!(
            RouterCounters::default().since(&before),
            RouterCounters::default()
        );
    }
}
