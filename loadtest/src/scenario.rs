//! Scenarios: the shape of the traffic a load run sends, as TOML files (`loadtest/scenarios/*.toml`).
//!
//! A scenario names how many teams there are and how their activity is skewed, how many plugins exist
//! and which share of (team, plugin) pairs are enabled (and which share of those enablements carries a
//! filter), the event-type mix, the encoding, and the topic sizes. The built-in ones (`standard`,
//! `standard-filtered`, `smoke`) are compiled in, so the binary works from any folder; any other value of
//! `--scenario` is read as a path.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::LoadtestError;
use crate::generate::EventMix;

/// A load scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name, used in reports.
    pub name: String,
    /// One line for humans.
    #[serde(default)]
    pub description: String,
    /// The traffic.
    pub traffic: TrafficShape,
    /// The plugins and enablements.
    pub plugins: PluginShape,
    /// Topic sizes.
    pub topics: TopicShape,
}

/// Who sends what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficShape {
    /// Teams sending events.
    pub teams: usize,
    /// Zipf exponent of team activity (1.1: a few teams send most events).
    pub zipf_exponent: f64,
    /// Share of `form.created`.
    pub form_created: f64,
    /// Share of `form.updated`.
    pub form_updated: f64,
    /// Share of `response.updated`; `response.submitted` takes the rest.
    pub response_updated: f64,
    /// Share of events encoded as Avro (the rest JSON).
    pub avro_share: f64,
    /// Mean length of the enumerator's notes in each response (log-normal, cv 0.6); 0 for none.
    #[serde(default)]
    pub notes_mean_bytes: usize,
}

/// The plugins of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginShape {
    /// How many plugins exist (every one subscribes to every event type).
    pub count: usize,
    /// Share of (team, plugin) pairs enabled.
    pub enablement_ratio: f64,
    /// Share of those enablements that carry a CEL `filter` (contract section 8.1), one of a few shared
    /// sources over the event's data and attributes ([`crate::workload::FILTERS`]), each matching about
    /// half of the events it sees. Default 0: no filters, the enablements of a scenario without this key.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub filtered_share: f64,
}

fn is_zero(share: &f64) -> bool {
    *share == 0.0
}

/// Topic sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicShape {
    /// Partitions of the core topic.
    pub core_partitions: i32,
    /// Partitions of each plugin topic.
    pub plugin_partitions: i32,
}

const BUILT_IN: [(&str, &str); 3] = [
    ("standard", include_str!("../scenarios/standard.toml")),
    (
        "standard-filtered",
        include_str!("../scenarios/standard-filtered.toml"),
    ),
    ("smoke", include_str!("../scenarios/smoke.toml")),
];

impl Scenario {
    /// A built-in scenario by name, or a scenario file by path.
    pub fn load(name_or_path: &str) -> Result<Self, LoadtestError> {
        let (origin, text) = match BUILT_IN.iter().find(|(name, _)| *name == name_or_path) {
            Some((name, text)) => (format!("the built-in scenario {name}"), (*text).to_owned()),
            None => {
                let path = Path::new(name_or_path);
                let text = std::fs::read_to_string(path).map_err(|error| {
                    LoadtestError::Usage(format!(
                        "{name_or_path:?} is neither a built-in scenario ({}) nor a readable file: {error}",
                        BUILT_IN.map(|(name, _)| name).join(", ")
                    ))
                })?;
                (path.display().to_string(), text)
            }
        };
        Self::parse(&text).map_err(|problem| LoadtestError::Usage(format!("{origin}: {problem}")))
    }

    /// Parses and checks a scenario.
    pub fn parse(text: &str) -> Result<Self, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|error| error.to_string())?;
        scenario.check()?;
        Ok(scenario)
    }

    fn check(&self) -> Result<(), String> {
        let t = &self.traffic;
        let share = |name: &str, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(format!("{name} must be between 0 and 1, not {value}"))
            }
        };
        share("traffic.form_created", t.form_created)?;
        share("traffic.form_updated", t.form_updated)?;
        share("traffic.response_updated", t.response_updated)?;
        share("traffic.avro_share", t.avro_share)?;
        share("plugins.enablement_ratio", self.plugins.enablement_ratio)?;
        share("plugins.filtered_share", self.plugins.filtered_share)?;
        if t.form_created + t.form_updated + t.response_updated > 1.0 {
            return Err("the shares of form.created, form.updated and response.updated exceed 1".into());
        }
        if !(1..=100_000).contains(&t.teams) {
            return Err(format!("traffic.teams must be 1..=100000, not {}", t.teams));
        }
        if !(t.zipf_exponent > 0.0 && t.zipf_exponent.is_finite()) {
            return Err(format!(
                "traffic.zipf_exponent must be positive, not {}",
                t.zipf_exponent
            ));
        }
        if !(1..=500).contains(&self.plugins.count) {
            return Err(format!(
                "plugins.count must be 1..=500, not {}",
                self.plugins.count
            ));
        }
        if self.topics.core_partitions < 1 || self.topics.plugin_partitions < 1 {
            return Err("topic partitions must be at least 1".into());
        }
        Ok(())
    }

    /// The event mix for the generator.
    pub fn mix(&self) -> EventMix {
        EventMix {
            form_created: self.traffic.form_created,
            form_updated: self.traffic.form_updated,
            response_updated: self.traffic.response_updated,
        }
    }

    /// The ids of the run's plugins: `load-01`, `load-02`, ... Every scenario draws from this one
    /// namespace ([`is_load_plugin`]), which a run owns on its control topics.
    pub fn plugin_ids(&self) -> Vec<String> {
        (1..=self.plugins.count).map(|n| format!("load-{n:02}")).collect()
    }
}

/// Whether `id` names a load plugin of some scenario (`load-` and at least two digits): the keys a run
/// may remove from its control topics when its own scenario does not contain them.
pub fn is_load_plugin(id: &str) -> bool {
    id.strip_prefix("load-")
        .is_some_and(|n| n.len() >= 2 && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_scenarios_load() {
        let standard = Scenario::load("standard").unwrap();
        assert_eq!(standard.traffic.teams, 10_000);
        assert_eq!(standard.plugins.count, 20);
        assert_eq!(standard.topics.core_partitions, 12);
        assert_eq!(standard.plugin_ids()[19], "load-20");
        assert_eq!(standard.plugins.filtered_share, 0.0);
        Scenario::load("smoke").unwrap();
        // The filtered variant is the standard scenario with filters on a fifth of its enablements.
        let filtered = Scenario::load("standard-filtered").unwrap();
        assert_eq!(filtered.plugins.filtered_share, 0.2);
        assert_eq!(filtered.traffic, standard.traffic);
        assert_eq!(filtered.topics, standard.topics);
        assert_eq!(
            (filtered.plugins.count, filtered.plugins.enablement_ratio),
            (standard.plugins.count, standard.plugins.enablement_ratio)
        );
        assert!(standard.plugin_ids().iter().all(|id| is_load_plugin(id)));
        for other in [
            "load-1",
            "load-",
            "load-0a",
            "sheets-export",
            "xload-01",
            "load-01x",
        ] {
            assert!(!is_load_plugin(other), "{other}");
        }
        assert!(is_load_plugin("load-100"));
    }

    #[test]
    fn bad_scenarios_say_what_is_wrong() {
        let text = include_str!("../scenarios/smoke.toml");
        let wrong = text.replace("enablement_ratio = 0.3", "enablement_ratio = 1.5");
        assert!(
            Scenario::parse(&wrong)
                .unwrap_err()
                .contains("plugins.enablement_ratio")
        );
        let unknown = text.replace("count = 4", "count = 4\ncolour = 2");
        assert!(Scenario::parse(&unknown).unwrap_err().contains("colour"));
        let missing = Scenario::load("no-such-scenario").unwrap_err().to_string();
        assert!(
            missing.contains("standard, standard-filtered, smoke"),
            "{missing}"
        );
        let filtered = text.replace("count = 4", "count = 4\nfiltered_share = 1.2");
        assert!(
            Scenario::parse(&filtered)
                .unwrap_err()
                .contains("plugins.filtered_share")
        );
    }
}
