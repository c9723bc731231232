//! Numbered process slots of a chaos run (router replicas, plugin workers): each slot keeps its admin
//! address across the incarnations that are killed and started again, and each incarnation logs to a
//! file of its own (`<name>-<slot>.<incarnation>.log`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use switchyard_fixtures::net::free_address;
use switchyard_fixtures::process::Supervised;

use crate::LoadtestError;

/// One slot: a stable admin address, the running incarnation if any (killed when dropped).
struct Slot {
    admin: String,
    process: Option<Supervised>,
    incarnation: u32,
}

/// The slots of one kind of process; dropping them kills those still running.
pub(super) struct Slots {
    name: String,
    logs: PathBuf,
    slots: Vec<Slot>,
}

impl Slots {
    /// No slot yet; `<name>` names the log files in `logs`.
    pub(super) fn new(name: &str, logs: PathBuf) -> Self {
        Self {
            name: name.to_owned(),
            logs,
            slots: Vec::new(),
        }
    }

    /// Starts a new incarnation in `slot` (the next unused slot number, or one whose process is gone) from
    /// the command `build` makes for the slot's admin address.
    pub(super) fn start(
        &mut self,
        slot: usize,
        build: impl FnOnce(&str) -> Command,
    ) -> Result<(), LoadtestError> {
        while self.slots.len() <= slot {
            self.slots.push(Slot {
                admin: free_address()?.to_string(),
                process: None,
                incarnation: 0,
            });
        }
        let entry = &mut self.slots[slot];
        entry.incarnation += 1;
        let log = self
            .logs
            .join(format!("{}-{slot}.{}.log", self.name, entry.incarnation));
        entry.process = Some(Supervised::spawn(&mut build(&entry.admin), &log)?);
        Ok(())
    }

    /// The slot's admin address (`host:port`); the slot must have been started once.
    pub(super) fn admin(&self, slot: usize) -> &str {
        &self.slots[slot].admin
    }

    /// SIGKILL, then wait for the process to be gone.
    pub(super) fn kill(&mut self, slot: usize) {
        if let Some(mut process) = self.slots.get_mut(slot).and_then(|s| s.process.take()) {
            let _ = process.kill();
        }
    }

    /// SIGTERM, then wait for the exit (SIGKILL after the timeout). Returns whether it exited with 0.
    pub(super) fn stop(&mut self, slot: usize, timeout: Duration) -> bool {
        let Some(mut process) = self.slots.get_mut(slot).and_then(|s| s.process.take()) else {
            return true;
        };
        process.terminate(timeout).is_ok_and(|status| status.success())
    }

    /// Slots whose process exited without being asked to, with how it exited.
    pub(super) fn exited(&mut self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (slot, entry) in self.slots.iter_mut().enumerate() {
            if let Some(status) = entry.process.as_mut().and_then(Supervised::exited) {
                out.push((slot, status.to_string()));
                entry.process = None;
            }
        }
        out
    }

    /// The slots with a process running.
    pub(super) fn running(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&slot| self.slots[slot].process.is_some())
            .collect()
    }
}
