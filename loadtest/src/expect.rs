//! What the contract says must happen to each generated event (`docs/contract.md`, section 8).
//!
//! An event of type `T` from team `X` goes to plugin `P` if and only if `P` is registered, `X` has an
//! enablement for `P` with `enabled: true`, `P`'s manifest lists `T`, and the enablement's `event_types`,
//! when given and non-empty, lists `T`. A malformed event goes to the dead-letter topic with its reason; a
//! valid event with no target is `unrouted`.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use switchyard_schemas::control::{Enablement, PluginManifest};
use switchyard_schemas::dead_letter::Reason;

use crate::generate::{Control, Event};

/// The routing table as the control records build it.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    plugins: BTreeMap<String, PluginManifest>,
    enablements: BTreeMap<(String, String), Enablement>,
}

impl RoutingTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table with `records` applied in order.
    pub fn from_controls<'a>(records: impl IntoIterator<Item = &'a Control>) -> Self {
        let mut table = Self::new();
        for record in records {
            table.apply(record);
        }
        table
    }

    /// Applies one control record: the latest record of a key wins, a tombstone removes it.
    pub fn apply(&mut self, record: &Control) {
        match record {
            Control::Plugin(manifest) => {
                self.plugins.insert(manifest.id.clone(), manifest.clone());
            }
            Control::Enablement {
                team,
                plugin,
                enablement: Some(enablement),
            } => {
                self.enablements
                    .insert((team.clone(), plugin.clone()), enablement.clone());
            }
            Control::Enablement {
                team,
                plugin,
                enablement: None,
            } => {
                self.enablements.remove(&(team.clone(), plugin.clone()));
            }
        }
    }

    /// The plugins an event of `event_type` from `team` goes to, in plugin id order.
    pub fn targets(&self, team: &str, event_type: &str) -> Vec<String> {
        self.plugins
            .values()
            .filter(|manifest| {
                let Some(enablement) = self.enablements.get(&(team.to_owned(), manifest.id.clone())) else {
                    return false;
                };
                enablement.enabled
                    && manifest.events.iter().any(|t| t == event_type)
                    && enablement
                        .event_types
                        .as_ref()
                        .is_none_or(|only| only.is_empty() || only.iter().any(|t| t == event_type))
            })
            .map(|manifest| manifest.id.clone())
            .collect()
    }
}

/// The outcome the contract prescribes for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// One copy in each of these plugins' topics.
    Routed(Vec<String>),
    /// Nothing written anywhere.
    Unrouted,
    /// One whole-event dead letter with this reason.
    DeadLettered(Reason),
}

/// The expected outcome of `event` under `table`.
pub fn expected(table: &RoutingTable, event: &Event) -> Expected {
    if let Some(defect) = event.defect {
        return Expected::DeadLettered(defect.reason());
    }
    let targets = table.targets(&event.team, event.event_type.as_str());
    if targets.is_empty() {
        Expected::Unrouted
    } else {
        Expected::Routed(targets)
    }
}

/// What one event should leave behind, for checking records read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventExpectation {
    /// Position in the stream (orders a team's records).
    pub seq: u64,
    /// The key.
    pub team: String,
    /// A digest of the value, to detect altered copies.
    pub value_digest: u64,
    /// The outcome.
    pub outcome: Expected,
}

/// Expected totals of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpectedTotals {
    /// Events sent.
    pub events: u64,
    /// Events with outcome `routed`.
    pub routed: u64,
    /// Events with outcome `unrouted`.
    pub unrouted: u64,
    /// Events with outcome `dead_lettered`.
    pub dead_lettered: u64,
    /// Dead letters by reason code.
    pub dead_letters: BTreeMap<String, u64>,
    /// Records per plugin id.
    pub plugin_records: BTreeMap<String, u64>,
}

/// Every event's expectation, by `ce_id`, and the totals.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// By `ce_id`.
    pub events: HashMap<String, EventExpectation>,
    /// The totals.
    pub totals: ExpectedTotals,
}

impl Expectations {
    /// Records what `event` should leave behind under `table`.
    pub fn add(&mut self, table: &RoutingTable, event: &Event) {
        let outcome = expected(table, event);
        let totals = &mut self.totals;
        totals.events += 1;
        match &outcome {
            Expected::Routed(plugins) => {
                totals.routed += 1;
                for plugin in plugins {
                    *totals.plugin_records.entry(plugin.clone()).or_default() += 1;
                }
            }
            Expected::Unrouted => totals.unrouted += 1,
            Expected::DeadLettered(reason) => {
                totals.dead_lettered += 1;
                *totals.dead_letters.entry(reason.code().to_owned()).or_default() += 1;
            }
        }
        self.events.insert(
            event.id.clone(),
            EventExpectation {
                seq: event.seq,
                team: event.team.clone(),
                value_digest: digest(event.record.value.as_deref()),
                outcome,
            },
        );
    }
}

/// A digest of a record value (FNV-1a, 64 bits): stable across processes, enough to notice an altered
/// copy.
pub fn digest(value: Option<&[u8]>) -> u64 {
    let Some(value) = value else {
        return 0;
    };
    value.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use switchyard_schemas::EventType;

    use super::*;
    use crate::generate::control::{RULES_VALIDATE, SHEETS_EXPORT, SLANG_SEARCH, SMS_NOTIFY};
    use crate::generate::{control_records, sample_plugins, teams};

    fn enable(team: &str, plugin: &str, enabled: bool, types: Option<&[&str]>) -> Control {
        Control::Enablement {
            team: team.into(),
            plugin: plugin.into(),
            enablement: Some(Enablement {
                team_id: team.into(),
                plugin_id: plugin.into(),
                installation: None,
                form_ids: None,
                filter: None,
                enabled,
                event_types: types.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
                updated_at: "2026-11-22T09:55:00Z".into(),
            }),
        }
    }

    /// The worked example of the contract, section 8.
    #[test]
    fn the_contracts_worked_example() {
        let manifest = |id: &str, events: &[&str]| {
            Control::Plugin(PluginManifest {
                id: id.into(),
                name: id.into(),
                description: String::new(),
                version: semver::Version::new(1, 0, 0),
                url: None,
                events: events.iter().map(|s| (*s).to_owned()).collect(),
                actions: vec![],
                config_schema: None,
                delivery: Default::default(),
            })
        };
        let records = [
            manifest("sms-notify", &["response.submitted"]),
            manifest("sheets-export", &["response.submitted", "response.updated"]),
            manifest(
                "audit-log",
                &[
                    "form.created",
                    "form.updated",
                    "response.submitted",
                    "response.updated",
                ],
            ),
            manifest("billing-sync", &["payment.received"]),
            enable("acme", "sms-notify", true, None),
            enable("acme", "sheets-export", true, Some(&["response.updated"])),
            enable("acme", "audit-log", false, None),
            enable("acme", "billing-sync", true, None),
            enable("globex", "audit-log", true, Some(&[])),
            enable("globex", "crm-push", true, None),
        ];
        let table = RoutingTable::from_controls(&records);
        assert_eq!(table.targets("acme", "response.submitted"), ["sms-notify"]);
        assert_eq!(table.targets("acme", "response.updated"), ["sheets-export"]);
        assert!(table.targets("acme", "form.created").is_empty());
        assert_eq!(table.targets("acme", "payment.received"), ["billing-sync"]);
        assert_eq!(table.targets("globex", "form.updated"), ["audit-log"]);
        assert_eq!(table.targets("globex", "response.submitted"), ["audit-log"]);
        assert!(table.targets("initech", "response.submitted").is_empty());

        // A tombstone removes the pair; a later registration of crm-push activates globex's enablement.
        let mut table = table;
        table.apply(&Control::Enablement {
            team: "acme".into(),
            plugin: "sms-notify".into(),
            enablement: None,
        });
        assert!(table.targets("acme", "response.submitted").is_empty());
        table.apply(&manifest("crm-push", &["response.submitted"]));
        assert_eq!(
            table.targets("globex", "response.submitted"),
            ["audit-log", "crm-push"]
        );
    }

    #[test]
    fn the_demo_story() {
        let teams = teams(7, 8);
        let table = RoutingTable::from_controls(&control_records(&teams, 7, "2026-11-22T09:55:00Z"));
        assert_eq!(sample_plugins().len(), 4);
        let all = [SHEETS_EXPORT, SLANG_SEARCH, RULES_VALIDATE, SMS_NOTIFY];
        let mut sorted = all.map(str::to_owned).to_vec();
        sorted.sort();
        assert_eq!(table.targets("kilimo-coop", "response.submitted"), sorted);
        assert_eq!(table.targets("kilimo-coop", "form.created"), [SHEETS_EXPORT]);
        // afya-research: sheets for responses only, rules for submissions only.
        assert!(table.targets("afya-research", "form.updated").is_empty());
        assert_eq!(
            table.targets("afya-research", "response.updated"),
            [SHEETS_EXPORT]
        );
        assert_eq!(
            table.targets("afya-research", "response.submitted"),
            [RULES_VALIDATE, SHEETS_EXPORT]
        );
        // eko-health: sheets-export disabled.
        assert_eq!(table.targets("eko-health", "response.updated"), [RULES_VALIDATE]);
        assert!(table.targets("eko-health", "form.created").is_empty());
        // elimu-schools: nothing.
        for t in EventType::ALL {
            assert!(table.targets("elimu-schools", t.as_str()).is_empty());
        }
    }

    #[test]
    fn totals_follow_outcomes() {
        use crate::generate::{Traffic, TrafficConfig};
        let teams = teams(7, 8);
        let controls = control_records(&teams, 7, "2026-11-22T09:55:00Z");
        let table = RoutingTable::from_controls(&controls);
        let run_id = uuid::Uuid::from_u128(1);
        let traffic = Traffic::new(TrafficConfig {
            seed: 7,
            teams: teams.clone(),
            run_id,
            source: "/demo/test".into(),
            start_ms: 1_795_165_200_000,
            avro_share: 0.7,
            malformed_share: 0.01,
            mix: None,
            activity_exponent: crate::generate::teams::ACTIVITY_EXPONENT,
            notes_mean_bytes: 0,
        });
        let mut expectations = Expectations::default();
        for event in traffic.take(3000) {
            let event = event.unwrap();
            expectations.add(&table, &event);
            let outcome = &expectations.events[&event.id].outcome;
            if event.team == "elimu-schools" && event.defect.is_none() {
                assert_eq!(outcome, &Expected::Unrouted);
            }
        }
        let t = &expectations.totals;
        assert_eq!(t.events, 3000);
        assert_eq!(t.routed + t.unrouted + t.dead_lettered, 3000);
        assert_eq!(t.dead_letters.values().sum::<u64>(), t.dead_lettered);
        assert!(t.plugin_records.values().sum::<u64>() >= t.routed);
        assert!(t.unrouted > 0 && t.dead_lettered > 0);
    }

    #[test]
    fn digest_notices_changes() {
        assert_ne!(digest(Some(b"abc")), digest(Some(b"abd")));
        assert_eq!(digest(Some(b"abc")), digest(Some(b"abc")));
        assert_ne!(digest(None), digest(Some(b"")));
    }
}
