//! The run's topics and its router processes: starting, killing and stopping replicas with stable
//! transactional ids and admin ports across their incarnations.

use std::path::PathBuf;
use std::process::Command;
use std::thread::ScopedJoinHandle;
use std::time::Duration;

use switchyard_schemas::topics as names;

use super::ChaosOptions;
use super::faults::Target as FaultTarget;
use super::slots::Slots;
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

/// Starts, kills and restarts router processes; dropping it kills those still running.
pub(super) struct Routers<'a> {
    options: &'a ChaosOptions,
    topics: &'a RunTopics,
    pub(super) group: String,
    replicas: Slots,
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
            replicas: Slots::new("router", logs),
        }
    }

    pub(super) fn start(&mut self, slot: usize) -> Result<(), LoadtestError> {
        let transactional_id = self.transactional_id(slot);
        let (options, topics, group) = (self.options, self.topics, &self.group);
        self.replicas.start(slot, |admin| {
            let prefix = "SWITCHYARD_ROUTER__";
            let mut command = Command::new(&options.router_bin);
            command
                .env(format!("{prefix}KAFKA__BOOTSTRAP_SERVERS"), &options.bootstrap)
                .env(format!("{prefix}TOPICS__CORE_EVENTS"), &topics.core)
                .env(format!("{prefix}TOPICS__DEAD_LETTER"), &topics.dead_letter)
                .env(format!("{prefix}TOPICS__PLUGINS"), &topics.plugins)
                .env(format!("{prefix}TOPICS__ENABLEMENTS"), &topics.enablements)
                .env(
                    format!("{prefix}TOPICS__PLUGIN_EVENTS_TEMPLATE"),
                    &topics.template,
                )
                .env(format!("{prefix}DELIVERY__MODE"), options.mode.as_str())
                .env(format!("{prefix}DELIVERY__GROUP_ID"), group)
                .env(format!("{prefix}DELIVERY__TRANSACTIONAL_ID"), transactional_id)
                .env(
                    format!("{prefix}DELIVERY__TRANSACTION_TIMEOUT_MS"),
                    options.transaction_timeout.as_millis().to_string(),
                )
                // A killed member's partitions move after the session timeout: keep it at the broker's
                // minimum so that a kill costs seconds.
                .env(
                    format!("{prefix}KAFKA__CONSUMER_OPTIONS__SESSION_TIMEOUT_MS"),
                    SESSION_TIMEOUT.as_millis().to_string(),
                )
                .env(
                    format!("{prefix}KAFKA__CONSUMER_OPTIONS__HEARTBEAT_INTERVAL_MS"),
                    "1000",
                )
                .env(format!("{prefix}ADMIN__LISTEN"), admin)
                .env(format!("{prefix}LOG__LEVEL"), "info");
            command
        })
    }

    /// The transactional id of a replica slot, the same across its incarnations.
    pub(super) fn transactional_id(&self, slot: usize) -> String {
        format!("{}-{slot}", self.group)
    }

    /// SIGKILL, then wait for the process to be gone.
    pub(super) fn kill(&mut self, slot: usize) {
        self.replicas.kill(slot);
    }

    /// SIGTERM, then wait for the exit (SIGKILL after the timeout). Returns whether it exited with 0.
    pub(super) fn stop(&mut self, slot: usize, timeout: Duration) -> bool {
        self.replicas.stop(slot, timeout)
    }

    /// Replicas that exited without being asked to.
    pub(super) fn exited(&mut self) -> Vec<(usize, String)> {
        self.replicas.exited()
    }

    pub(super) fn running(&self) -> Vec<usize> {
        self.replicas.running()
    }

    pub(super) fn wait_assigned(&self, slot: usize, timeout: Duration) -> Result<(), LoadtestError> {
        RouterAdmin::new(self.replicas.admin(slot))?.wait_assigned(timeout)
    }

    /// A thread that waits until the replica in `slot` owns input partitions (its start's rebalance is
    /// over): the work of a fault that starts a replica.
    pub(super) fn until_assigned<'scope>(
        &self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        slot: usize,
    ) -> ScopedJoinHandle<'scope, Result<FaultTarget, LoadtestError>> {
        let (admin, timeout) = (self.replicas.admin(slot).to_owned(), self.options.timeout);
        scope.spawn(move || {
            RouterAdmin::new(&admin)?.wait_assigned(timeout)?;
            Ok(FaultTarget { node: None })
        })
    }
}
