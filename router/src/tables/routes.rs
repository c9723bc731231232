//! The routing table: which plugins get an event of type T from team X.
//!
//! ```text
//!   teams:   DashMap<team id, [Enabled { plugin index, type filter }]>   per-key updates, many keys
//!   plugins: ArcSwap<[Option<PluginRoute>]> indexed by plugin index      swapped whole, changes rarely
//!   types:   ArcSwap<HashMap<event type, type index>>                    swapped whole, changes rarely
//! ```
//!
//! Enablements are many (one per team and plugin, up to millions) and change one at a time, so they live in
//! a sharded `DashMap` keyed by team: an update locks one shard briefly, a lookup takes one read lock.
//! Plugins and event types are few and change when a plugin registers, so readers take a lock-free snapshot
//! (`arc-swap`) and the single writer copies and swaps the whole table. Interning plugin ids and event types
//! as `u32` keeps each enablement at a few bytes and makes the per-event check integer comparisons.
//!
//! Only enablements with `enabled: true` are stored. An enablement of a plugin that is not registered is
//! kept and takes effect when the plugin registers; the routing rule checks registration at lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use compact_str::CompactString;
use dashmap::DashMap;
use switchyard_schemas::control::{Enablement, PluginManifest};
use switchyard_schemas::topics::plugin_events_topic;

/// Where one plugin's events go.
#[derive(Debug, PartialEq, Eq)]
pub struct PluginRoute {
    /// Plugin id.
    pub id: Arc<str>,
    /// Its topic, from the configured template.
    pub topic: Arc<str>,
    /// Interned event types it subscribes to, sorted.
    events: Box<[u32]>,
}

/// One team's enablement of one plugin. `filter: None` means every type the plugin subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Enabled {
    plugin: u32,
    filter: Option<Box<[u32]>>,
}

impl Enabled {
    fn admits(&self, event_type: u32) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|types| types.binary_search(&event_type).is_ok())
    }
}

/// State only the writer touches: interners' reverse maps.
#[derive(Default)]
struct Writer {
    plugin_index: HashMap<String, u32>,
}

/// The routing table. Lookups are lock-free but for one DashMap shard read lock; writes come from one
/// materializer thread (the `Mutex` only makes concurrent writers safe, it is never contended).
pub struct RouteTable {
    template: String,
    teams: DashMap<CompactString, Box<[Enabled]>>,
    plugins: ArcSwap<Vec<Option<Arc<PluginRoute>>>>,
    types: ArcSwap<HashMap<Box<str>, u32>>,
    writer: Mutex<Writer>,
    enabled: AtomicUsize,
    registered: AtomicUsize,
}

impl RouteTable {
    /// An empty table; plugin topics are named by `template` (`{plugin}` is replaced by the id).
    pub fn new(template: impl Into<String>) -> Self {
        Self {
            template: template.into(),
            teams: DashMap::new(),
            plugins: ArcSwap::from_pointee(Vec::new()),
            types: ArcSwap::from_pointee(HashMap::new()),
            writer: Mutex::new(Writer::default()),
            enabled: AtomicUsize::new(0),
            registered: AtomicUsize::new(0),
        }
    }

    /// Appends to `out` the plugins that get an event of `event_type` from `team`, in enablement order.
    pub fn route(&self, team: &str, event_type: &str, out: &mut Vec<Arc<PluginRoute>>) {
        let Some(&type_index) = self.types.load().get(event_type) else {
            return; // no plugin and no enablement has ever named this type
        };
        let Some(enabled) = self.teams.get(team) else {
            return;
        };
        let plugins = self.plugins.load();
        for entry in enabled.iter().filter(|e| e.admits(type_index)) {
            if let Some(Some(plugin)) = plugins.get(entry.plugin as usize)
                && plugin.events.binary_search(&type_index).is_ok()
            {
                out.push(Arc::clone(plugin));
            }
        }
    }

    /// Registers or updates a plugin from its (already checked) manifest.
    pub fn upsert_plugin(&self, manifest: &PluginManifest) {
        let mut writer = self.lock_writer();
        let index = intern_plugin(&mut writer, &manifest.id);
        let mut events = self.intern_types(&manifest.events);
        events.sort_unstable();
        events.dedup();
        let route = PluginRoute {
            id: Arc::from(manifest.id.as_str()),
            topic: Arc::from(plugin_events_topic(&self.template, &manifest.id)),
            events: events.into_boxed_slice(),
        };
        let mut plugins = Vec::clone(&self.plugins.load());
        if plugins.len() <= index as usize {
            plugins.resize(index as usize + 1, None);
        }
        if plugins[index as usize].is_none() {
            self.registered.fetch_add(1, Ordering::Relaxed);
        }
        plugins[index as usize] = Some(Arc::new(route));
        self.plugins.store(Arc::new(plugins));
    }

    /// Deregisters a plugin. Its enablements stay and apply again if it registers again (the registry
    /// removes them explicitly when a plugin is deleted).
    pub fn remove_plugin(&self, plugin_id: &str) {
        let writer = self.lock_writer();
        let Some(&index) = writer.plugin_index.get(plugin_id) else {
            return;
        };
        let current = self.plugins.load();
        if current.get(index as usize).is_none_or(Option::is_none) {
            return;
        }
        let mut plugins = Vec::clone(&current);
        plugins[index as usize] = None;
        self.plugins.store(Arc::new(plugins));
        self.registered.fetch_sub(1, Ordering::Relaxed);
    }

    /// Applies an enablement record: `enabled: true` adds or replaces it, `false` removes it.
    pub fn upsert_enablement(&self, enablement: &Enablement) {
        if !enablement.enabled {
            self.remove_enablement(&enablement.team_id, &enablement.plugin_id);
            return;
        }
        let plugin = intern_plugin(&mut self.lock_writer(), &enablement.plugin_id);
        let filter = match &enablement.event_types {
            Some(types) if !types.is_empty() => {
                let mut types = self.intern_types(types);
                types.sort_unstable();
                types.dedup();
                Some(types.into_boxed_slice())
            }
            _ => None,
        };
        let entry = Enabled { plugin, filter };
        let mut team = self
            .teams
            .entry(CompactString::from(enablement.team_id.as_str()))
            .or_default();
        let mut list = team.to_vec();
        match list.iter_mut().find(|e| e.plugin == plugin) {
            Some(existing) => *existing = entry,
            None => {
                list.push(entry);
                self.enabled.fetch_add(1, Ordering::Relaxed);
            }
        }
        *team = list.into_boxed_slice();
    }

    /// Removes a team's enablement of a plugin (a tombstone, `enabled: false`, or an invalid record).
    pub fn remove_enablement(&self, team_id: &str, plugin_id: &str) {
        let Some(&plugin) = self.lock_writer().plugin_index.get(plugin_id) else {
            return;
        };
        let removed = self.teams.remove_if_mut(team_id, |_, list| {
            if list.iter().any(|e| e.plugin == plugin) {
                let kept: Vec<Enabled> = list.iter().filter(|e| e.plugin != plugin).cloned().collect();
                self.enabled.fetch_sub(1, Ordering::Relaxed);
                *list = kept.into_boxed_slice();
            }
            list.is_empty()
        });
        drop(removed);
    }

    /// Enabled (team, plugin) pairs stored.
    pub fn enablement_count(&self) -> usize {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Registered plugins.
    pub fn plugin_count(&self) -> usize {
        self.registered.load(Ordering::Relaxed)
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        // A panic while holding the lock cannot leave the interner half-written in a harmful way: ids are
        // only ever added. Recover rather than poison every later write.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn intern_types(&self, names: &[String]) -> Vec<u32> {
        let current = self.types.load();
        if names.iter().all(|n| current.contains_key(n.as_str())) {
            return names.iter().map(|n| current[n.as_str()]).collect();
        }
        let mut types = HashMap::clone(&current);
        let ids = names
            .iter()
            .map(|name| {
                let next = types.len() as u32;
                *types.entry(Box::from(name.as_str())).or_insert(next)
            })
            .collect();
        self.types.store(Arc::new(types));
        ids
    }
}

fn intern_plugin(writer: &mut Writer, plugin_id: &str) -> u32 {
    let next = writer.plugin_index.len() as u32;
    *writer.plugin_index.entry(plugin_id.to_owned()).or_insert(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::test_support::{enablement, manifest};

    fn routed(table: &RouteTable, team: &str, event_type: &str) -> Vec<String> {
        let mut out = Vec::new();
        table.route(team, event_type, &mut out);
        out.iter().map(|p| p.id.to_string()).collect()
    }

    #[test]
    fn the_routing_rule() {
        let table = RouteTable::new("plugin.{plugin}.events");
        table.upsert_plugin(&manifest("sheets", &["response.submitted", "response.updated"]));
        table.upsert_plugin(&manifest("sms", &["response.submitted"]));
        table.upsert_plugin(&manifest("audit", &["form.created", "custom.thing"]));
        table.upsert_enablement(&enablement("acme", "sheets", true, None));
        table.upsert_enablement(&enablement("acme", "sms", true, Some(&["response.submitted"])));
        table.upsert_enablement(&enablement("acme", "audit", true, Some(&["custom.thing"])));
        table.upsert_enablement(&enablement("globex", "sms", false, None));

        assert_eq!(routed(&table, "acme", "response.submitted"), ["sheets", "sms"]);
        assert_eq!(routed(&table, "acme", "response.updated"), ["sheets"]);
        // audit lists form.created, but acme's filter admits only custom.thing
        assert!(routed(&table, "acme", "form.created").is_empty());
        // unknown types go to the plugins that list them
        assert_eq!(routed(&table, "acme", "custom.thing"), ["audit"]);
        assert!(routed(&table, "acme", "never.seen").is_empty());
        // disabled and absent teams get nothing
        assert!(routed(&table, "globex", "response.submitted").is_empty());
        assert!(routed(&table, "initech", "response.submitted").is_empty());
        assert_eq!(table.enablement_count(), 3);
        assert_eq!(table.plugin_count(), 3);
        let mut out = Vec::new();
        table.route("acme", "response.updated", &mut out);
        assert_eq!(&*out[0].topic, "plugin.sheets.events");
    }

    #[test]
    fn a_filter_naming_a_type_the_plugin_does_not_list_routes_nothing() {
        let table = RouteTable::new("p.{plugin}");
        table.upsert_plugin(&manifest("sms", &["response.submitted"]));
        table.upsert_enablement(&enablement("acme", "sms", true, Some(&["form.created"])));
        assert!(routed(&table, "acme", "form.created").is_empty());
        assert!(routed(&table, "acme", "response.submitted").is_empty());
    }

    #[test]
    fn live_changes() {
        let table = RouteTable::new("p.{plugin}");
        // the enablement arrives before the plugin registers
        table.upsert_enablement(&enablement("acme", "sms", true, None));
        assert!(routed(&table, "acme", "response.submitted").is_empty());
        table.upsert_plugin(&manifest("sms", &["response.submitted"]));
        assert_eq!(routed(&table, "acme", "response.submitted"), ["sms"]);
        // the plugin drops the type in a new version
        table.upsert_plugin(&manifest("sms", &["response.updated"]));
        assert!(routed(&table, "acme", "response.submitted").is_empty());
        table.upsert_plugin(&manifest("sms", &["response.submitted"]));
        // a filter is added, then replaced
        table.upsert_enablement(&enablement("acme", "sms", true, Some(&["response.updated"])));
        assert!(routed(&table, "acme", "response.submitted").is_empty());
        table.upsert_enablement(&enablement("acme", "sms", true, Some(&[])));
        assert_eq!(routed(&table, "acme", "response.submitted"), ["sms"]);
        assert_eq!(table.enablement_count(), 1);
        // deregistration stops routing; registering again resumes it
        table.remove_plugin("sms");
        assert!(routed(&table, "acme", "response.submitted").is_empty());
        assert_eq!(table.plugin_count(), 0);
        table.upsert_plugin(&manifest("sms", &["response.submitted"]));
        assert_eq!(routed(&table, "acme", "response.submitted"), ["sms"]);
        // disable, then tombstone twice: counts never go below zero
        table.upsert_enablement(&enablement("acme", "sms", false, None));
        assert!(routed(&table, "acme", "response.submitted").is_empty());
        table.remove_enablement("acme", "sms");
        table.remove_enablement("acme", "unknown-plugin");
        assert_eq!(table.enablement_count(), 0);
        assert!(table.teams.is_empty(), "empty teams are dropped");
        table.remove_plugin("never-registered");
        assert_eq!(table.plugin_count(), 1);
    }
}
