//! The workload of a load run: the scenario's plugins and enablements, and a pool of realistic events
//! that the sender replays with fresh ids and send times.
//!
//! Generating a realistic response (a form's questions answered, encoded as Avro) costs tens of
//! microseconds; at tens of thousands of events per second that would measure the generator, not the
//! router. So a pool is generated up front and replayed: each send clones a pooled record and stamps it
//! with a new `ce_id` and its send time ([`SENT_AT_HEADER`]), which the router copies to every plugin
//! topic and the latency reader subtracts from its own clock (same machine, same clock).
//!
//! A scenario with `filtered_share` puts a CEL filter on that share of its enablements ([`FILTERS`]); each
//! pooled event's fan-out ([`FANOUT_HEADER`]) is then what the filters leave, by the expectation model
//! ([`RoutingTable::targets`]), so the `pipe` baseline copies exactly as many records as the router
//! writes.

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

/// The filters of a scenario's filtered enablements (`filtered_share`), as teams write them to send a
/// plugin only part of their traffic, each matching about half of the events it sees (measured over the
/// `standard-filtered` pool in this module's tests). So few sources among thousands of enablements are
/// shared, as the router shares equal filters. Form events have no `data.response`, so the filters on
/// response paths read `missing` for them.
pub const FILTERS: [&str; 5] = [
    // Sessions not in Swahili (an SMS template not translated yet).
    r#"!data.response.locale.startsWith("sw")"#,
    // Interviews longer than 7 minutes (a quality review); an error where the duration is null (a tenth).
    "data.response.duration_ms > 420000",
    // Respondents in the larger cities (a regional office's export).
    r#"data.response.answers["city"].choice in ["nairobi", "mombasa", "kisumu", "lagos", "abuja", "accra", "kumasi", "kampala", "dar-es-salaam"]"#,
    // Two of the six form templates, by the event's subject: form events too.
    r#"subject.endsWith("-household-survey") || subject.endsWith("-school-enrolment")"#,
    // Responses with long enumerator's notes (a transcription plugin); missing where the notes were skipped.
    r#"size(data.response.answers["enumerator_notes"].text) > 540"#,
];

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
            contract: None,
            signature: None,
            delivery: Default::default(),
        })
        .collect()
}

/// The control records of a run: the manifests, then an enablement for `enablement_ratio` of the (team,
/// plugin) pairs, chosen at random (deterministic for `seed`). Every team has at least one plugin. A
/// `filtered_share` of the enablements carries one of the [`FILTERS`], drawn from a random stream of its
/// own: the pairs are the same with or without filters, and a scenario without them draws nothing.
pub fn controls(scenario: &Scenario, teams: &[Team], seed: u64, updated_at: &str) -> Vec<Control> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x656e_6162_6c65_0000);
    let mut filter_rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x6669_6c74_6572_0000);
    let filtered_share = scenario.plugins.filtered_share;
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
        out.extend(chosen.into_iter().map(|plugin| {
            let filter = (filtered_share > 0.0 && filter_rng.random_bool(filtered_share))
                .then(|| FILTERS[filter_rng.random_range(0..FILTERS.len())].to_owned());
            Control::Enablement {
                team: team.id.clone(),
                plugin: plugin.clone(),
                enablement: Some(Enablement {
                    team_id: team.id.clone(),
                    plugin_id: plugin.clone(),
                    installation: None,
                    form_ids: None,
                    filter,
                    backfill: None,
                    enabled: true,
                    event_types: None,
                    updated_at: updated_at.to_owned(),
                }),
            }
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
    /// Mean number of plugin topics an event goes to (after filters).
    pub mean_fanout: f64,
    next: usize,
}

impl EventPool {
    /// `size` events of `scenario`'s traffic with its teams and routing table; each is stamped with its
    /// fan-out under that table, filters applied ([`FANOUT_HEADER`]).
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
            let fanout = table.targets(&event).len();
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
    use std::collections::BTreeMap;

    use switchyard_filter::Filter;

    use super::*;
    use crate::expect::evaluate;

    const RUN: Uuid = Uuid::from_u128(0x0193_a5b2_7c1e_7d3a_9f00_aa11_bb22_cc33);

    /// The enablements of `controls`: (team, plugin) -> filter.
    fn enablements(controls: &[Control]) -> BTreeMap<(String, String), Option<String>> {
        controls
            .iter()
            .filter_map(|control| match control {
                Control::Enablement {
                    team,
                    plugin,
                    enablement: Some(enablement),
                } => Some(((team.clone(), plugin.clone()), enablement.filter.clone())),
                _ => None,
            })
            .collect()
    }

    fn fanout(record: &Record) -> usize {
        std::str::from_utf8(record.header(FANOUT_HEADER).unwrap())
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn the_standard_workload_has_the_promised_shape() {
        let scenario = Scenario::load("standard").unwrap();
        let teams = scenario_teams(&scenario, 3);
        let controls = controls(&scenario, &teams, 3, "2026-11-22T10:00:00Z");
        assert!(
            enablements(&controls).values().all(Option::is_none),
            "no filters without filtered_share"
        );
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

    /// `standard-filtered`: the standard scenario's enabled pairs, a fifth of them with one of the five
    /// shared filters, and a pool of the same events whose fan-out is what the filters leave.
    #[test]
    fn the_filtered_workload_filters_a_fifth_of_the_same_enablements() {
        let standard = Scenario::load("standard").unwrap();
        let scenario = Scenario::load("standard-filtered").unwrap();
        let teams = scenario_teams(&scenario, 3);
        assert_eq!(teams, scenario_teams(&standard, 3));
        let at = "2026-11-22T10:00:00Z";
        let (plain, filtered) = (
            controls(&standard, &teams, 3, at),
            controls(&scenario, &teams, 3, at),
        );
        let (plain_pairs, pairs) = (enablements(&plain), enablements(&filtered));
        assert!(
            plain_pairs.keys().eq(pairs.keys()),
            "the same (team, plugin) pairs are enabled"
        );
        let mut by_source = BTreeMap::<&str, usize>::new();
        for filter in pairs.values().flatten() {
            *by_source.entry(filter.as_str()).or_default() += 1;
        }
        let with_filter = by_source.values().sum::<usize>() as f64;
        let share = with_filter / pairs.len() as f64;
        assert!(
            (0.19..0.21).contains(&share),
            "{share} of {} enablements",
            pairs.len()
        );
        assert_eq!(
            by_source.len(),
            FILTERS.len(),
            "every source is used: {by_source:?}"
        );
        assert!(
            by_source.values().all(|n| *n as f64 > with_filter * 0.15),
            "shared evenly: {by_source:?}"
        );
        assert_eq!(
            controls(&scenario, &teams, 3, at),
            filtered,
            "deterministic for the seed"
        );

        let pool = |scenario: &Scenario, controls: &[Control]| {
            let table = RoutingTable::from_controls(controls);
            let pool =
                EventPool::generate(scenario, &teams, &table, 3, 4000, RUN, 1_790_000_000_000).unwrap();
            (table, pool)
        };
        let (_, plain_pool) = pool(&standard, &plain);
        let (table, filtered_pool) = pool(&scenario, &filtered);
        assert!(
            (0.8..0.95).contains(&(filtered_pool.mean_fanout / plain_pool.mean_fanout)),
            "filters drop about a tenth of the copies: {} against {}",
            filtered_pool.mean_fanout,
            plain_pool.mean_fanout
        );
        // The same events; each one's fan-out is its unfiltered one less its filtered enablements whose
        // filter does not match it.
        let compiled: BTreeMap<&str, Filter> = FILTERS
            .iter()
            .map(|source| (*source, Filter::compile(source).unwrap()))
            .collect();
        let mut verdicts = BTreeMap::<(&str, &str), usize>::new();
        let mut dropped_some = 0;
        for (plain, record) in plain_pool.records.iter().zip(&filtered_pool.records) {
            assert_eq!(plain.value, record.value);
            let team = std::str::from_utf8(record.key.as_deref().unwrap()).unwrap();
            let event_type = std::str::from_utf8(record.header(h::TYPE).unwrap()).unwrap();
            let candidates = table.candidates(team, event_type);
            assert_eq!(candidates.len(), fanout(plain));
            let dropped = candidates
                .iter()
                .filter_map(|plugin| pairs[&(team.to_owned(), plugin.clone())].as_deref())
                .filter(|source| !evaluate(&compiled[source], record).is_match())
                .count();
            assert_eq!(fanout(record), candidates.len() - dropped);
            dropped_some += usize::from(dropped > 0);
            for (source, filter) in &compiled {
                *verdicts
                    .entry((*source, evaluate(filter, record).label()))
                    .or_default() += 1;
            }
        }
        assert!(dropped_some > 100, "{dropped_some} events lost a copy");
        // Each source matches roughly half of the events; form events read `missing` for response paths.
        for source in FILTERS {
            let matched = verdicts.get(&(source, "match")).copied().unwrap_or(0) as f64 / 4000.0;
            assert!(
                (0.35..0.6).contains(&matched),
                "{source}: {matched} ({verdicts:?})"
            );
        }
        assert!(verdicts[&(FILTERS[0], "missing")] > 200, "{verdicts:?}");
        assert!(
            verdicts[&(FILTERS[1], "error")] > 200,
            "a null duration: {verdicts:?}"
        );
    }
}
