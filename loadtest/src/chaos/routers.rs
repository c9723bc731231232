//! The run's topics and its router processes: starting, killing and stopping replicas with stable
//! transactional ids and admin ports across their incarnations.

use std::path::PathBuf;
use std::process::Command;
use std::thread::ScopedJoinHandle;
use std::time::Duration;

use switchyard_fixtures::net::free_address;
use switchyard_fixtures::process::Supervised;
use switchyard_schemas::topics as names;

use super::ChaosOptions;
use super::faults::Target as FaultTarget;
use crate::LoadtestError;
use crate::router_admin::RouterAdmin;

/// The routers' consumer session timeout: a SIGKILLed replica's partitions move after it.
pub(super) const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// The topics of one run, all under its own prefix so that runs never see each other's records.
pub(super) struct RunTopics {
    pub(super) core: String,
    pub(super) dead_letter: String,
    pub(super) plugins: String,
    pub(super) enablements: String,
    pub(super) template: String,
}

impl RunTopics {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            core: format!("{prefix}.{}", names::CORE_EVENTS),
            dead_letter: format!("{prefix}.{}", names::CORE_EVENTS_DLQ),
            plugins: format!("{prefix}.{}", names::PLUGINS),
            enablements: format!("{prefix}.{}", names::ENABLEMENTS),
            template: format!("{prefix}.{}", names::PLUGIN_EVENTS_TEMPLATE),
        }
    }

    pub(super) fn plugin(&self, plugin: &str) -> String {
        names::plugin_events_topic(&self.template, plugin)
    }
}

/// One router replica slot: a stable transactional id and admin port across its incarnations.
struct Replica {
    slot: usize,
    admin: String,
    /// The running incarnation, if any (killed when dropped).
    process: Option<Supervised>,
    incarnation: u32,
}

/// Starts, kills and restarts router processes; dropping it kills those still running.
pub(super) struct Routers<'a> {
    options: &'a ChaosOptions,
    topics: &'a RunTopics,
    pub(super) group: String,
    logs: PathBuf,
    replicas: Vec<Replica>,
}

impl<'a> Routers<'a> {
    /// No replica yet; [`Routers::start`] starts them, slot by slot.
    pub(super) fn new(
        options: &'a ChaosOptions,
        topics: &'a RunTopics,
        group: String,
        logs: PathBuf,
    ) -> Self {
        Self {
            options,
            topics,
            group,
            logs,
            replicas: Vec::new(),
        }
    }

    pub(super) fn start(&mut self, slot: usize) -> Result<(), LoadtestError> {
        if slot == self.replicas.len() {
            self.replicas.push(Replica {
                slot,
                admin: free_address()?.to_string(),
                process: None,
                incarnation: 0,
            });
        }
        let transactional_id = self.transactional_id(slot);
        let replica = &mut self.replicas[slot];
        replica.incarnation += 1;
        let log_path = self
            .logs
            .join(format!("router-{slot}.{}.log", replica.incarnation));
        let prefix = "SWITCHYARD_ROUTER__";
        let mut command = Command::new(&self.options.router_bin);
        command
            .env(
                format!("{prefix}KAFKA__BOOTSTRAP_SERVERS"),
                &self.options.bootstrap,
            )
            .env(format!("{prefix}TOPICS__CORE_EVENTS"), &self.topics.core)
            .env(format!("{prefix}TOPICS__DEAD_LETTER"), &self.topics.dead_letter)
            .env(format!("{prefix}TOPICS__PLUGINS"), &self.topics.plugins)
            .env(format!("{prefix}TOPICS__ENABLEMENTS"), &self.topics.enablements)
            .env(
                format!("{prefix}TOPICS__PLUGIN_EVENTS_TEMPLATE"),
                &self.topics.template,
            )
            .env(format!("{prefix}DELIVERY__MODE"), self.options.mode.as_str())
            .env(format!("{prefix}DELIVERY__GROUP_ID"), &self.group)
            .env(format!("{prefix}DELIVERY__TRANSACTIONAL_ID"), transactional_id)
            // A killed member's partitions move after the session timeout: keep it at the broker's minimum
            // so that a kill costs seconds.
            .env(
                format!("{prefix}DELIVERY__TRANSACTION_TIMEOUT_MS"),
                self.options.transaction_timeout.as_millis().to_string(),
            )
            .env(
                format!("{prefix}KAFKA__CONSUMER_OPTIONS__SESSION_TIMEOUT_MS"),
                SESSION_TIMEOUT.as_millis().to_string(),
            )
            .env(
                format!("{prefix}KAFKA__CONSUMER_OPTIONS__HEARTBEAT_INTERVAL_MS"),
                "1000",
            )
            .env(format!("{prefix}ADMIN__LISTEN"), &replica.admin)
            .env(format!("{prefix}LOG__LEVEL"), "info");
        replica.process = Some(Supervised::spawn(&mut command, &log_path)?);
        Ok(())
    }

    /// The transactional id of a replica slot, the same across its incarnations.
    pub(super) fn transactional_id(&self, slot: usize) -> String {
        format!("{}-{slot}", self.group)
    }

    /// SIGKILL, then wait for the process to be gone.
    pub(super) fn kill(&mut self, slot: usize) {
        if let Some(mut process) = self.replicas[slot].process.take() {
            let _ = process.kill();
        }
    }

    /// SIGTERM, then wait for the exit (SIGKILL after the timeout). Returns whether it exited with 0.
    pub(super) fn stop(&mut self, slot: usize, timeout: Duration) -> bool {
        let Some(mut process) = self.replicas[slot].process.take() else {
            return true;
        };
        process.terminate(timeout).is_ok_and(|status| status.success())
    }

    /// Replicas that exited without being asked to.
    pub(super) fn exited(&mut self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for replica in &mut self.replicas {
            if let Some(status) = replica.process.as_mut().and_then(Supervised::exited) {
                out.push((replica.slot, status.to_string()));
                replica.process = None;
            }
        }
        out
    }

    pub(super) fn running(&self) -> Vec<usize> {
        self.replicas
            .iter()
            .filter(|r| r.process.is_some())
            .map(|r| r.slot)
            .collect()
    }

    pub(super) fn wait_assigned(&self, slot: usize, timeout: Duration) -> Result<(), LoadtestError> {
        RouterAdmin::new(&self.replicas[slot].admin)?.wait_assigned(timeout)
    }

    /// A thread that waits until the replica in `slot` owns input partitions (its start's rebalance is
    /// over): the work of a fault that starts a replica.
    pub(super) fn until_assigned<'scope>(
        &self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        slot: usize,
    ) -> ScopedJoinHandle<'scope, Result<FaultTarget, LoadtestError>> {
        let (admin, timeout) = (self.replicas[slot].admin.clone(), self.options.timeout);
        scope.spawn(move || {
            RouterAdmin::new(&admin)?.wait_assigned(timeout)?;
            Ok(FaultTarget { node: None })
        })
    }
}
