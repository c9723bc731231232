//! What earlier load runs left on the control topics a run uses, and what removing it takes.
//!
//! `run` and `find-max` own the load plugins' namespace (`load-01`, `load-02`, ...: see
//! [`Scenario::plugin_ids`](crate::scenario::Scenario::plugin_ids)) on their control topics. Before a run
//! writes its own manifests and enablements, it reads both topics to their ends and removes every load
//! plugin and every enablement of a load plugin that its scenario does not contain. Otherwise the router
//! would still route the run's events by an earlier run's enablements: more records in the run's plugin
//! topics than its scenario prescribes, and more work in the latency and CPU figures than it states. A
//! killed run leaves its records behind; the next run removes them the same way.
//!
//! ```text
//!  control topics (read to end) ─► LoadControls (latest record per load key) ─┐
//!  this run's controls ──────────────────────────────────────────────────────┴─► Leftovers
//!      ─► tombstones (--setup topics)  or  DELETE plugin + disable pair (--setup registry)
//! ```
//!
//! Keys of other plugins (the platform's own) are never read into the model, so never touched.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::generate::Control;
use crate::kafka::Record;
use crate::scenario::is_load_plugin;

/// The latest state of the load plugins' keys on the control topics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadControls {
    /// Load plugins whose latest manifest record is not a tombstone.
    pub plugins: BTreeSet<String>,
    /// Enablements of load plugins whose latest record is not a tombstone, (team, plugin) -> whether it
    /// says `"enabled": true`.
    pub enablements: BTreeMap<(String, String), bool>,
}

impl LoadControls {
    /// Applies one record of the plugins topic, in partition order; other plugins' keys are ignored.
    pub fn apply_plugin(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Ok(plugin) = std::str::from_utf8(key) else {
            return;
        };
        if !is_load_plugin(plugin) {
            return;
        }
        match value {
            Some(_) => self.plugins.insert(plugin.to_owned()),
            None => self.plugins.remove(plugin),
        };
    }

    /// Applies one record of the enablements topic (key `team/plugin`), in partition order; other
    /// plugins' keys are ignored. A value that is not an enablement with `"enabled": true` counts as
    /// disabled: it routes nothing, but it is still removed.
    pub fn apply_enablement(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Some((team, plugin)) = std::str::from_utf8(key).ok().and_then(|k| k.split_once('/')) else {
            return;
        };
        if !is_load_plugin(plugin) {
            return;
        }
        let pair = (team.to_owned(), plugin.to_owned());
        match value {
            Some(value) => {
                let enabled = serde_json::from_slice::<serde_json::Value>(value)
                    .is_ok_and(|v| v["enabled"] == serde_json::Value::Bool(true));
                self.enablements.insert(pair, enabled);
            }
            None => {
                self.enablements.remove(&pair);
            }
        }
    }
}

/// What earlier runs left that this run's controls do not contain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Registered load plugins that are not this run's.
    pub plugins: Vec<String>,
    /// Live enablements of load plugins that are not this run's: (team, plugin, enabled).
    pub enablements: Vec<(String, String, bool)>,
}

/// How to remove [`Leftovers`] through the registry, whose API has no removal of a single enablement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryRemoval {
    /// `DELETE /v1/plugins/{id}`: the registry tombstones the plugin and every enablement of it.
    pub deregister: Vec<String>,
    /// `PUT /v1/teams/{team}/plugins/{plugin}` with `"enabled": false`: enabled pairs of plugins that stay
    /// registered (this run's).
    pub disable: Vec<(String, String)>,
}

/// The control records a removal writes, which the router counts as applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ControlRecords {
    /// On the plugins topic.
    pub plugins: u64,
    /// On the enablements topic.
    pub enablements: u64,
}

impl Leftovers {
    /// Whether nothing is left over.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty() && self.enablements.is_empty()
    }

    /// The leftovers of `live` given the controls this run writes.
    pub fn of(live: &LoadControls, controls: &[Control]) -> Self {
        let mut plugins = BTreeSet::new();
        let mut pairs = BTreeSet::new();
        for control in controls {
            match control {
                Control::Plugin(manifest) => {
                    plugins.insert(manifest.id.as_str());
                }
                Control::Enablement { team, plugin, .. } => {
                    pairs.insert((team.as_str(), plugin.as_str()));
                }
            }
        }
        Self {
            plugins: live
                .plugins
                .iter()
                .filter(|p| !plugins.contains(p.as_str()))
                .cloned()
                .collect(),
            enablements: live
                .enablements
                .iter()
                .filter(|((team, plugin), _)| !pairs.contains(&(team.as_str(), plugin.as_str())))
                .map(|((team, plugin), enabled)| (team.clone(), plugin.clone(), *enabled))
                .collect(),
        }
    }

    /// Removal by tombstones, one per leftover key: the records for the plugins topic and for the
    /// enablements topic.
    pub fn tombstones(&self) -> (Vec<Record>, Vec<Record>) {
        let tombstone = |key: String| Record {
            key: Some(key.into_bytes()),
            value: None,
            headers: Vec::new(),
        };
        (
            self.plugins.iter().map(|p| tombstone(p.clone())).collect(),
            self.enablements
                .iter()
                .map(|(team, plugin, _)| tombstone(format!("{team}/{plugin}")))
                .collect(),
        )
    }

    /// The records the tombstones write.
    pub fn tombstone_records(&self) -> ControlRecords {
        ControlRecords {
            plugins: self.plugins.len() as u64,
            enablements: self.enablements.len() as u64,
        }
    }

    /// Removal through the registry: deregister the leftover plugins (which removes all their
    /// enablements) and disable the enabled leftover pairs of the plugins that stay. A disabled pair
    /// routes nothing and the router drops it from its table, so it is left as it is; so is a pair of a
    /// load plugin that is not registered (the registry refuses to change it, and it routes nothing
    /// unless a later run registers the plugin, which then removes it).
    pub fn through_registry(&self, controls: &[Control]) -> (RegistryRemoval, ControlRecords) {
        let ours: BTreeSet<&str> = controls
            .iter()
            .filter_map(|c| match c {
                Control::Plugin(manifest) => Some(manifest.id.as_str()),
                Control::Enablement { .. } => None,
            })
            .collect();
        let deregister = self.plugins.clone();
        let gone: BTreeSet<&str> = deregister.iter().map(String::as_str).collect();
        let disable: Vec<(String, String)> = self
            .enablements
            .iter()
            .filter(|(_, plugin, enabled)| *enabled && ours.contains(plugin.as_str()))
            .map(|(team, plugin, _)| (team.clone(), plugin.clone()))
            .collect();
        let removed_with_plugins = self
            .enablements
            .iter()
            .filter(|(_, plugin, _)| gone.contains(plugin.as_str()))
            .count();
        let records = ControlRecords {
            plugins: deregister.len() as u64,
            enablements: (removed_with_plugins + disable.len()) as u64,
        };
        (RegistryRemoval { deregister, disable }, records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;
    use crate::workload::{controls, scenario_teams};

    fn enablement(team: &str, plugin: &str, enabled: bool) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "team_id": team, "plugin_id": plugin, "enabled": enabled, "updated_at": "2026-11-22T09:55:00Z"
        }))
        .unwrap()
    }

    fn apply(live: &mut LoadControls, control: &Control) {
        let record = control.to_record();
        let key = record.key.unwrap_or_default();
        match control {
            Control::Plugin(_) => live.apply_plugin(&key, record.value.as_deref()),
            Control::Enablement { .. } => live.apply_enablement(&key, record.value.as_deref()),
        }
    }

    fn live_after(controls: &[Control]) -> LoadControls {
        let mut live = LoadControls::default();
        for control in controls {
            apply(&mut live, control);
        }
        live
    }

    #[test]
    fn the_model_keeps_the_latest_record_of_load_keys_only() {
        let mut live = LoadControls::default();
        live.apply_plugin(b"load-01", Some(b"{}"));
        live.apply_plugin(b"load-02", Some(b"{}"));
        live.apply_plugin(b"load-02", None);
        live.apply_plugin(b"sheets-export", Some(b"{}"));
        live.apply_enablement(b"acme/load-01", Some(&enablement("acme", "load-01", true)));
        live.apply_enablement(b"acme/load-01", Some(&enablement("acme", "load-01", false)));
        live.apply_enablement(b"acme/load-03", Some(&enablement("acme", "load-03", true)));
        live.apply_enablement(b"beta/load-03", Some(&enablement("beta", "load-03", true)));
        live.apply_enablement(b"beta/load-03", None);
        live.apply_enablement(b"acme/load-04", Some(b"not json"));
        live.apply_enablement(
            b"acme/sheets-export",
            Some(&enablement("acme", "sheets-export", true)),
        );
        live.apply_enablement(b"no-slash", Some(b"{}"));
        assert_eq!(live.plugins, BTreeSet::from(["load-01".to_owned()]));
        let pairs: Vec<_> = live
            .enablements
            .iter()
            .map(|((t, p), e)| (t.as_str(), p.as_str(), *e))
            .collect();
        assert_eq!(
            pairs,
            [
                ("acme", "load-01", false),
                ("acme", "load-03", true),
                ("acme", "load-04", false)
            ]
        );
    }

    /// Issue 13, finding 7: a smoke run after a standard run on the same topics finds the standard
    /// run's extra plugins and every enablement the smoke scenario does not make, and nothing of its own.
    #[test]
    fn a_smoke_run_after_a_standard_run_removes_what_it_does_not_make() {
        let standard = Scenario::load("standard").unwrap();
        let smoke = Scenario::load("smoke").unwrap();
        let at = "2026-11-22T09:55:00Z";
        let before = controls(&standard, &scenario_teams(&standard, 7), 7, at);
        let ours = controls(&smoke, &scenario_teams(&smoke, 7), 7, at);
        let live = live_after(&before);
        let leftovers = Leftovers::of(&live, &ours);
        let extra: Vec<String> = (5..=20).map(|n| format!("load-{n:02}")).collect();
        assert_eq!(leftovers.plugins, extra);
        let ours_pairs: BTreeSet<String> = ours.iter().map(Control::key).collect();
        assert!(!leftovers.enablements.is_empty());
        for (team, plugin, _) in &leftovers.enablements {
            assert!(!ours_pairs.contains(&format!("{team}/{plugin}")));
        }
        // Removing them and writing ours leaves exactly ours.
        let mut live = live;
        let (plugins, enablements) = leftovers.tombstones();
        for record in &plugins {
            live.apply_plugin(record.key.as_deref().unwrap(), record.value.as_deref());
        }
        for record in &enablements {
            live.apply_enablement(record.key.as_deref().unwrap(), record.value.as_deref());
        }
        for control in &ours {
            apply(&mut live, control);
        }
        assert_eq!(live, live_after(&ours));
        assert!(Leftovers::of(&live, &ours).is_empty());
        assert_eq!(
            leftovers.tombstone_records(),
            ControlRecords {
                plugins: 16,
                enablements: leftovers.enablements.len() as u64
            }
        );
        // The same run again finds nothing to remove.
        assert!(Leftovers::of(&live_after(&ours), &ours).is_empty());
    }

    #[test]
    fn through_the_registry_plugins_are_deregistered_and_pairs_disabled() {
        let mut live = LoadControls::default();
        for plugin in ["load-01", "load-02"] {
            live.apply_plugin(plugin.as_bytes(), Some(b"{}"));
        }
        for (team, plugin, enabled) in [
            ("acme", "load-01", true),   // ours, kept
            ("beta", "load-01", true),   // ours, not wanted: disabled
            ("gamma", "load-01", false), // disabled already: left
            ("acme", "load-02", true),   // removed with load-02
            ("beta", "load-02", false),  // removed with load-02
            ("acme", "load-09", true),   // load-09 is not registered: left
        ] {
            let key = format!("{team}/{plugin}");
            live.apply_enablement(key.as_bytes(), Some(&enablement(team, plugin, enabled)));
        }
        let scenario =
            Scenario::parse(&include_str!("../scenarios/smoke.toml").replace("count = 4", "count = 1"))
                .unwrap();
        let manifest = crate::workload::manifests(&scenario).remove(0);
        let ours = [
            Control::Plugin(manifest),
            Control::Enablement {
                team: "acme".into(),
                plugin: "load-01".into(),
                enablement: None,
            },
        ];
        let leftovers = Leftovers::of(&live, &ours);
        let (removal, records) = leftovers.through_registry(&ours);
        assert_eq!(removal.deregister, ["load-02"]);
        assert_eq!(removal.disable, [("beta".to_owned(), "load-01".to_owned())]);
        assert_eq!(
            records,
            ControlRecords {
                plugins: 1,
                enablements: 3
            }
        );
    }
}
