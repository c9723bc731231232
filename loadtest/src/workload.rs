//! The workload of a load run: the scenario's plugins and enablements, and a pool of realistic events
//! that the sender replays with fresh ids and send times.
//!
//! Generating a realistic response (a form's questions answered, encoded as Avro) costs tens of
//! microseconds; at tens of thousands of events per second that would measure the generator, not the
//! router. So a pool is generated up front and replayed: each send clones a pooled record and stamps it
//! with a new `ce_id` and its send time ([`SENT_AT_HEADER`]), which the router copies to every plugin
//! topic and the latency reader subtracts from its own clock (same machine, same clock).

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use switchyard_schemas::EventType;
use switchyard_schemas::control::{Enablement, PluginManifest};
use switchyard_schemas::envelope as h;
use uuid::Uuid;

use crate::LoadtestError;
use crate::expect::RoutingTable;
use crate::generate::{Control, Team, Traffic, TrafficConfig, teams};
use crate::kafka::Record;
use crate::scenario::Scenario;

/// Send time of a record, Unix microseconds (decimal text).
pub const SENT_AT_HEADER: &str = "loadtest_sent_us";
/// How many plugin topics the routing rule sends the event to (decimal text); the `pipe` baseline copies
/// each input to that many topics without any lookup.
pub const FANOUT_HEADER: &str = "loadtest_fanout";

/// The scenario's plugin manifests: Kafka-only plugins subscribed to every event type.
pub fn manifests(scenario: &Scenario) -> Vec<PluginManifest> {
    scenario
        .plugin_ids()
        .into_iter()
        .map(|id| PluginManifest {
            name: format!("Load plugin {id}"),
            description: format!("A plugin of the {} load scenario.", scenario.name),
            version: semver::Version::new(1, 0, 0),
            url: None,
            events: EventType::ALL.iter().map(|t| t.as_str().to_owned()).collect(),
            actions: Vec::new(),
            config_schema: None,
            id,
            delivery: Default::default(),
        })
        .collect()
}

/// The control records of a run: the manifests, then an enablement for `enablement_ratio` of the (team,
/// plugin) pairs, chosen at random (deterministic for `seed`). Every team has at least one plugin.
pub fn controls(scenario: &Scenario, teams: &[Team], seed: u64, updated_at: &str) -> Vec<Control> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x656e_6162_6c65_0000);
    let plugins = scenario.plugin_ids();
    let mut out: Vec<Control> = manifests(scenario).into_iter().map(Control::Plugin).collect();
    for team in teams {
        let mut chosen: Vec<&String> = plugins
            .iter()
            .filter(|_| rng.random_bool(scenario.plugins.enablement_ratio))
            .collect();
        if chosen.is_empty() {
            chosen.push(&plugins[rng.random_range(0..plugins.len())]);
        }
        out.extend(chosen.into_iter().map(|plugin| Control::Enablement {
            team: team.id.clone(),
            plugin: plugin.clone(),
            enablement: Some(Enablement {
                team_id: team.id.clone(),
                plugin_id: plugin.clone(),
                installation: None,
                form_ids: None,
                filter: None,
                enabled: true,
                event_types: None,
                updated_at: updated_at.to_owned(),
            }),
        }));
    }
    out
}

/// A pool of generated events to replay.
#[derive(Debug)]
pub struct EventPool {
    records: Vec<Record>,
    /// Mean encoded value size, bytes.
    pub mean_value_bytes: f64,
    /// Mean number of plugin topics an event goes to.
    pub mean_fanout: f64,
    next: usize,
}

impl EventPool {
    /// `size` events of `scenario`'s traffic with its teams and routing table.
    pub fn generate(
        scenario: &Scenario,
        teams: &[Team],
        table: &RoutingTable,
        seed: u64,
        size: usize,
        run_id: Uuid,
        now_ms: i64,
    ) -> Result<Self, LoadtestError> {
        let mut traffic = Traffic::new(TrafficConfig {
            seed,
            teams: teams.to_vec(),
            run_id,
            source: format!("/loadtest/{run_id}"),
            start_ms: now_ms - size as i64 * 20,
            avro_share: scenario.traffic.avro_share,
            malformed_share: 0.0,
            mix: Some(scenario.mix()),
            activity_exponent: scenario.traffic.zipf_exponent,
            notes_mean_bytes: scenario.traffic.notes_mean_bytes,
        });
        let mut records = Vec::with_capacity(size);
        let (mut bytes, mut targets) = (0usize, 0usize);
        for _ in 0..size.max(1) {
            let event = traffic.next_event()?;
            let fanout = table.targets(&event.team, event.event_type.as_str()).len();
            let mut record = event.record;
            bytes += record.value.as_ref().map_or(0, Vec::len);
            targets += fanout;
            record.push_header(FANOUT_HEADER, &fanout.to_string());
            record.push_header(SENT_AT_HEADER, "0");
            records.push(record);
        }
        let n = records.len() as f64;
        Ok(Self {
            mean_value_bytes: bytes as f64 / n,
            mean_fanout: targets as f64 / n,
            records,
            next: 0,
        })
    }

    /// The next record to send, with a fresh `ce_id` and the send time `sent_us`.
    pub fn next_record(&mut self, sent_us: u64) -> Record {
        let mut record = self.records[self.next].clone();
        self.next = (self.next + 1) % self.records.len();
        record.set_header(h::ID, &Uuid::now_v7().to_string());
        record.set_header(SENT_AT_HEADER, &sent_us.to_string());
        record
    }
}

/// The teams of a scenario, with their activity skew.
pub fn scenario_teams(scenario: &Scenario, seed: u64) -> Vec<Team> {
    teams(seed, scenario.traffic.teams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_workload_has_the_promised_shape() {
        let scenario = Scenario::load("standard").unwrap();
        let teams = scenario_teams(&scenario, 3);
        let controls = controls(&scenario, &teams, 3, "2026-11-22T10:00:00Z");
        let enablements = controls
            .iter()
            .filter(|c| matches!(c, Control::Enablement { .. }))
            .count() as f64;
        let pairs = (teams.len() * scenario.plugins.count) as f64;
        assert!(
            (enablements / pairs - 0.15).abs() < 0.01,
            "{enablements} of {pairs}"
        );
        let table = RoutingTable::from_controls(&controls);
        let mut pool = EventPool::generate(
            &scenario,
            &teams,
            &table,
            3,
            4000,
            Uuid::now_v7(),
            1_790_000_000_000,
        )
        .unwrap();
        assert!(
            (700.0..1500.0).contains(&pool.mean_value_bytes),
            "about 1 KiB: {}",
            pool.mean_value_bytes
        );
        assert!((2.0..5.0).contains(&pool.mean_fanout), "{}", pool.mean_fanout);
        let mut types = std::collections::BTreeMap::<String, usize>::new();
        for record in &pool.records {
            let t = String::from_utf8(record.header(h::TYPE).unwrap().to_vec()).unwrap();
            *types.entry(t).or_default() += 1;
        }
        let submitted = types["response.submitted"] as f64 / 4000.0;
        assert!((0.87..0.93).contains(&submitted), "{types:?}");
        let a = pool.next_record(5);
        let b = pool.next_record(6);
        assert_ne!(a.header(h::ID), b.header(h::ID));
        assert_eq!(a.header(SENT_AT_HEADER), Some(&b"5"[..]));
    }
}
