//! The faults of the plugin side: which, and when. They follow the clock rather than the routers'
//! progress, because the workers lag the routers by their own queues: spread over the time the events
//! are fed, they meet workers with work in hand.

use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use serde::Serialize;

use super::super::faults::{shuffle, spread};

/// One fault of the plugin side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fault", content = "plugin")]
pub enum EffectFault {
    /// SIGKILL the plugin's worker and start it again at once.
    WorkerKill(&'static str),
    /// A second worker of every plugin joins its group.
    WorkersJoin,
    /// The second workers leave (SIGTERM).
    WorkersLeave,
    /// Every endpoint fails for a while: Twilio and Google answer 503, the rules service is SIGKILLed;
    /// when it ends, the next texts and appends are done but their answers lost.
    EndpointOutage,
}

/// How many faults of each kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct EffectFaultCounts {
    /// Worker SIGKILLs, spread over the plugins in turn.
    pub worker_kills: u32,
    /// Whether second workers join and later leave.
    pub rebalance: bool,
    /// Endpoint outages.
    pub endpoint_outages: u32,
}

/// The faults in order, each with the time after the start it is due: spread over 10%..80% of
/// `feeding` (how long the events are fed), shuffled, the leaving after the joining. Kills go to
/// `plugins` in a shuffled turn, so that four kills hit each of four plugins once.
pub fn schedule(
    counts: &EffectFaultCounts,
    plugins: &[&'static str],
    feeding: Duration,
    rng: &mut Xoshiro256PlusPlus,
) -> Vec<(Duration, EffectFault)> {
    let mut turn = plugins.to_vec();
    shuffle(&mut turn, rng);
    let mut faults: Vec<EffectFault> = (0..counts.worker_kills as usize)
        .filter_map(|i| {
            turn.get(i % turn.len().max(1))
                .map(|p| EffectFault::WorkerKill(p))
        })
        .collect();
    faults.extend(std::iter::repeat_n(
        EffectFault::EndpointOutage,
        counts.endpoint_outages as usize,
    ));
    let rebalance = counts
        .rebalance
        .then_some((EffectFault::WorkersJoin, EffectFault::WorkersLeave));
    spread(faults, rebalance, 0.1..0.8, rng)
        .into_iter()
        .map(|(share, fault)| (feeding.mul_f64(share), fault))
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn every_plugin_is_killed_in_turn_and_the_faults_are_spread_in_order() {
        let plugins = ["a", "b", "c", "d"];
        let counts = EffectFaultCounts {
            worker_kills: 4,
            rebalance: true,
            endpoint_outages: 1,
        };
        for seed in 0..50 {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let plan = schedule(&counts, &plugins, Duration::from_secs(100), &mut rng);
            assert_eq!(plan.len(), 7);
            let mut killed: Vec<&str> = plan
                .iter()
                .filter_map(|(_, f)| match f {
                    EffectFault::WorkerKill(p) => Some(*p),
                    _ => None,
                })
                .collect();
            killed.sort_unstable();
            assert_eq!(killed, plugins);
            assert!(plan.windows(2).all(|w| w[0].0 < w[1].0), "in time order");
            assert!(plan[0].0 >= Duration::from_secs(10) && plan[6].0 <= Duration::from_secs(80));
            let position = |f| plan.iter().position(|(_, g)| *g == f).unwrap();
            assert!(position(EffectFault::WorkersJoin) < position(EffectFault::WorkersLeave));
        }
    }
}
