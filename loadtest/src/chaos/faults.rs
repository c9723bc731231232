//! The faults of a chaos run: which, in what order, at what progress, and the broker-side ones as steps of
//! the project's Kafka script (`scripts/kafka`, single node or cluster mode).
//!
//! A broker fault runs on a thread of its own while the run samples progress: it takes seconds to tens of
//! seconds (a node held down past the session timeout, a rolling restart), and its recovery time is
//! measured while it happens.

use std::process::{Command, Stdio};
use std::time::Duration;

use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use serde::Serialize;

use crate::LoadtestError;

/// One fault of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL a router replica and start it again.
    RouterKill,
    /// Run the broker restart command: a bounce of the single-node broker, a rolling restart of a cluster.
    BrokerRestart,
    /// SIGKILL the node leading the most core partitions, hold it down, start it again.
    LeaderKill,
    /// SIGKILL the node hosting the transaction coordinator of router replica 0, hold it down, start it.
    CoordinatorKill,
    /// SIGSTOP the node leading the most core partitions past the session timeouts, then SIGCONT it.
    BrokerPause,
    /// Cut the node leading the most core partitions off from the others and from clients past the session
    /// timeouts (the script's `partition N`: the node keeps running, its packets are dropped both ways), heal.
    BrokerPartition,
    /// A third router replica joins the group.
    ReplicaJoins,
    /// The third replica leaves (SIGTERM).
    ReplicaLeaves,
}

/// How many faults of each kind a run does.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultCounts {
    /// SIGKILLs of a router replica.
    pub router_kills: u32,
    /// Runs of the broker restart command.
    pub broker_restarts: u32,
    /// SIGKILLs of the node leading the most core partitions.
    pub leader_kills: u32,
    /// SIGKILLs of the node hosting a router's transaction coordinator.
    pub coordinator_kills: u32,
    /// SIGSTOPs of a node past the session timeouts.
    pub broker_pauses: u32,
    /// Network partitions of a node past the session timeouts.
    pub broker_partitions: u32,
    /// Whether a third replica joins and later leaves.
    pub rebalance: bool,
}

/// The faults in order, each with the committed progress (a share of all inputs) it waits for. Faults are
/// spread over 5%..85% of the run with at least one slot of progress between two; the kinds are
/// shuffled, except that the replica that joins leaves later.
pub fn schedule(counts: &FaultCounts, rng: &mut Xoshiro256PlusPlus) -> Vec<(f64, Fault)> {
    let kinds = [
        (Fault::RouterKill, counts.router_kills),
        (Fault::BrokerRestart, counts.broker_restarts),
        (Fault::LeaderKill, counts.leader_kills),
        (Fault::CoordinatorKill, counts.coordinator_kills),
        (Fault::BrokerPause, counts.broker_pauses),
        (Fault::BrokerPartition, counts.broker_partitions),
    ];
    let faults: Vec<Fault> = kinds
        .iter()
        .flat_map(|&(fault, n)| std::iter::repeat_n(fault, n as usize))
        .collect();
    let rebalance = counts
        .rebalance
        .then_some((Fault::ReplicaJoins, Fault::ReplicaLeaves));
    spread(faults, rebalance, 0.05..0.85, rng)
}

/// Puts `items` in a random order (Fisher-Yates).
pub(super) fn shuffle<T>(items: &mut [T], rng: &mut Xoshiro256PlusPlus) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

/// Shuffles `faults`, inserts the `pair`'s first at a random place and its second somewhere after it,
/// and gives each a point of `range`: one slot of it each, in order, at a random point inside the slot
/// (never at its edges, so two faults are never at one point).
pub(super) fn spread<T>(
    mut faults: Vec<T>,
    pair: Option<(T, T)>,
    range: std::ops::Range<f64>,
    rng: &mut Xoshiro256PlusPlus,
) -> Vec<(f64, T)> {
    shuffle(&mut faults, rng);
    if let Some((first, second)) = pair {
        let at = rng.random_range(0..=faults.len());
        faults.insert(at, first);
        let later = rng.random_range(at + 1..=faults.len());
        faults.insert(later, second);
    }
    let slot = (range.end - range.start) / (faults.len().max(1) as f64);
    faults
        .into_iter()
        .enumerate()
        .map(|(i, fault)| {
            (
                range.start + slot * (i as f64 + rng.random_range(0.2..0.8)),
                fault,
            )
        })
        .collect()
}

/// The broker side of the run: the restart command, and the Kafka script for the node faults.
#[derive(Debug, Clone)]
pub struct Brokers {
    /// A shell command that restarts the broker (or the cluster, node by node) and returns once it serves.
    pub restart_command: Option<String>,
    /// The project's Kafka script with its environment, e.g. `scripts/kafka`: it must answer `top-leader
    /// TOPIC` and `coordinator transaction ID` and do `kill N`, `start N`, `pause N`, `resume N`,
    /// `partition N`, `heal N` and `wait-in-sync` for the cluster under test.
    pub script: Option<String>,
    /// How long a killed node stays down before it is started again.
    pub down: Duration,
    /// How long a paused node stays paused.
    pub pause: Duration,
    /// How long a partitioned node stays cut off. The controller fences it only after it has missed
    /// heartbeats for the session timeout (9 s on the script's cluster), which took 11 to 17 s there.
    pub partition: Duration,
}

/// What a broker fault hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The Kafka node id, for the node faults.
    pub node: Option<i32>,
}

impl Brokers {
    /// Refuses a schedule that needs a command it was not given.
    pub fn check(&self, counts: &FaultCounts) -> Result<(), LoadtestError> {
        if counts.broker_restarts > 0 && self.restart_command.is_none() {
            return Err(LoadtestError::Usage(
                "broker restarts need --broker-restart-command".to_owned(),
            ));
        }
        let node_faults =
            counts.leader_kills + counts.coordinator_kills + counts.broker_pauses + counts.broker_partitions;
        if node_faults > 0 && self.script.is_none() {
            return Err(LoadtestError::Usage(
                "leader kills, coordinator kills, broker pauses and broker partitions need --kafka-script"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// Does one broker fault to its end: the node back and every partition in sync again. `core` is the
    /// run's core topic; `transactional_id` the router replica whose coordinator a coordinator kill hits.
    pub fn inject(&self, fault: Fault, core: &str, transactional_id: &str) -> Result<Target, LoadtestError> {
        let node = match fault {
            Fault::BrokerRestart => {
                shell(self.restart_command.as_deref().unwrap_or("true"))?;
                return Ok(Target { node: None });
            }
            Fault::LeaderKill | Fault::BrokerPause | Fault::BrokerPartition => {
                self.ask(&format!("top-leader {core}"))?
            }
            Fault::CoordinatorKill => self.ask(&format!("coordinator transaction {transactional_id}"))?,
            other => {
                return Err(LoadtestError::Usage(format!("{other:?} is not a broker fault")));
            }
        };
        let (cut, held, restore) = match fault {
            Fault::BrokerPause => ("pause", self.pause, "resume"),
            Fault::BrokerPartition => ("partition", self.partition, "heal"),
            _ => ("kill", self.down, "start"),
        };
        self.script_do(&format!("{cut} {node}"))?;
        std::thread::sleep(held);
        self.script_do(&format!("{restore} {node}"))?;
        self.script_do("wait-in-sync")?;
        Ok(Target { node: Some(node) })
    }

    fn script_do(&self, arguments: &str) -> Result<String, LoadtestError> {
        shell(&format!(
            "{} {arguments}",
            self.script.as_deref().unwrap_or("false")
        ))
    }

    fn ask(&self, question: &str) -> Result<i32, LoadtestError> {
        let answer = self.script_do(question)?;
        answer.trim().parse().map_err(|_| {
            LoadtestError::Usage(format!(
                "the Kafka script answered {answer:?} to {question:?}, not a node id"
            ))
        })
    }
}

/// Runs `command` with `sh -c`; its stdout on success. Its stderr goes to ours: the script's messages are
/// the run's log of what the brokers did.
fn shell(command: &str) -> Result<String, LoadtestError> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| LoadtestError::Process {
            what: format!("running {command}"),
            error,
        })?;
    if !output.status.success() {
        return Err(LoadtestError::Usage(format!(
            "{command} failed ({})",
            output.status
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn counts() -> FaultCounts {
        FaultCounts {
            router_kills: 3,
            broker_restarts: 1,
            leader_kills: 1,
            coordinator_kills: 1,
            broker_pauses: 1,
            broker_partitions: 1,
            rebalance: true,
        }
    }

    #[test]
    fn the_schedule_spreads_every_fault_in_order() {
        for seed in 0..50 {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let plan = schedule(&counts(), &mut rng);
            assert_eq!(plan.len(), 10);
            assert!(plan.windows(2).all(|w| w[0].0 < w[1].0), "{plan:?}");
            assert!(plan.iter().all(|(at, _)| (0.05..0.85).contains(at)), "{plan:?}");
            let count = |f: Fault| plan.iter().filter(|(_, g)| *g == f).count();
            assert_eq!(
                [
                    Fault::RouterKill,
                    Fault::BrokerRestart,
                    Fault::LeaderKill,
                    Fault::CoordinatorKill,
                    Fault::BrokerPause,
                    Fault::BrokerPartition,
                    Fault::ReplicaJoins,
                    Fault::ReplicaLeaves
                ]
                .map(count),
                [3, 1, 1, 1, 1, 1, 1, 1]
            );
            let joins = plan.iter().position(|(_, f)| *f == Fault::ReplicaJoins).unwrap();
            let leaves = plan.iter().position(|(_, f)| *f == Fault::ReplicaLeaves).unwrap();
            assert!(joins < leaves);
        }
        let none = FaultCounts::default();
        assert!(schedule(&none, &mut Xoshiro256PlusPlus::seed_from_u64(1)).is_empty());
    }

    #[test]
    fn a_fault_without_its_command_is_refused_before_the_run() {
        let brokers = Brokers {
            restart_command: None,
            script: None,
            down: Duration::ZERO,
            pause: Duration::ZERO,
            partition: Duration::ZERO,
        };
        assert!(
            brokers
                .check(&FaultCounts {
                    router_kills: 5,
                    rebalance: true,
                    ..FaultCounts::default()
                })
                .is_ok()
        );
        for counts in [
            FaultCounts {
                broker_restarts: 1,
                ..FaultCounts::default()
            },
            FaultCounts {
                leader_kills: 1,
                ..FaultCounts::default()
            },
            FaultCounts {
                coordinator_kills: 1,
                ..FaultCounts::default()
            },
            FaultCounts {
                broker_pauses: 1,
                ..FaultCounts::default()
            },
            FaultCounts {
                broker_partitions: 1,
                ..FaultCounts::default()
            },
        ] {
            assert!(
                matches!(brokers.check(&counts), Err(LoadtestError::Usage(_))),
                "{counts:?}"
            );
        }
    }

    #[test]
    fn the_script_answers_and_steps_run_through_the_shell() {
        // A stand-in script: answers node 2 to every question and does every step.
        let brokers = Brokers {
            restart_command: Some("true".to_owned()),
            script: Some("f() { echo 2; }; f".to_owned()),
            down: Duration::ZERO,
            pause: Duration::ZERO,
            partition: Duration::ZERO,
        };
        for fault in [
            Fault::LeaderKill,
            Fault::CoordinatorKill,
            Fault::BrokerPause,
            Fault::BrokerPartition,
        ] {
            assert_eq!(brokers.inject(fault, "t", "x").unwrap(), Target { node: Some(2) });
        }
        assert_eq!(
            brokers.inject(Fault::BrokerRestart, "t", "x").unwrap(),
            Target { node: None }
        );
        let garbled = Brokers {
            script: Some("f() { echo leader; }; f".to_owned()),
            ..brokers.clone()
        };
        assert!(garbled.inject(Fault::LeaderKill, "t", "x").is_err());
        let failing = Brokers {
            script: Some("f() { case $1 in kill) return 1;; *) echo 2;; esac; }; f".to_owned()),
            ..brokers
        };
        assert!(failing.inject(Fault::LeaderKill, "t", "x").is_err());
    }

    #[test]
    fn a_partition_cuts_the_top_leader_off_and_heals_it() {
        // A stand-in script that knows only the steps of a partition of node 2, the top leader of topic t:
        // any other step (a pause, a kill, another node) fails the fault.
        let only = |steps: &str| Brokers {
            restart_command: None,
            script: Some(format!(
                r#"f() {{ case "$1 $2" in "top-leader t") echo 2;; {steps}) ;; *) return 1;; esac; }}; f"#
            )),
            down: Duration::ZERO,
            pause: Duration::ZERO,
            partition: Duration::ZERO,
        };
        let all = only(r#""partition 2"|"heal 2"|"wait-in-sync ""#);
        assert_eq!(
            all.inject(Fault::BrokerPartition, "t", "x").unwrap(),
            Target { node: Some(2) }
        );
        assert!(all.inject(Fault::BrokerPause, "t", "x").is_err());
        for missing in [
            r#""heal 2"|"wait-in-sync ""#,
            r#""partition 2"|"wait-in-sync ""#,
            r#""partition 2"|"heal 2""#,
        ] {
            assert!(
                only(missing).inject(Fault::BrokerPartition, "t", "x").is_err(),
                "{missing}"
            );
        }
    }
}
