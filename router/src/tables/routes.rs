//! The routing table: which installations of which plugins get an event of type T from team X.
//!
//! ```text
//!   teams:   DashMap<team id, [Installed { plugin, name, type set, selectors }]> per-key updates, many keys
//!   plugins: ArcSwap<[Option<PluginRoute>]> indexed by plugin index             swapped whole, changes rarely
//!   types:   ArcSwap<HashMap<event type, type index>>                           swapped whole, changes rarely
//!   names:   RwLock<[installation name]> indexed by name index (0 = default)    appended, slots reused
//! ```
//!
//! Installations are many (one per team, plugin and installation name, up to millions) and change one at
//! a time, so they live in a sharded `DashMap` keyed by team: an update locks one shard briefly, a lookup
//! takes one read lock. Plugins and event types are few and change when a plugin registers, so readers take
//! a lock-free snapshot (`arc-swap`) and the single writer copies and swaps the whole table. Interning
//! plugin ids, event types and installation names as integers keeps an installation at 24 bytes and makes
//! the per-event checks integer operations: `event_types` is a bit set of type indices in the entry itself
//! (no pointer to follow for the 30% of installations that have one), and so is a 32-bit Bloom filter of
//! its `form_ids`; the form ids themselves (as sorted hashes, confirmed by the string on a hit) and a
//! `filter` sit behind one pointer, only for the installations that have them.
//!
//! A name's slot is reused only once no installation names it. Readers resolve names while holding their
//! team's shard guard, and the writer removes an installation (under the shard's write lock) before it
//! releases the name, so a reader never sees a slot that was reused under it.
//!
//! Only installations with `enabled: true` are stored. An installation of a plugin that is not registered
//! is kept and takes effect when the plugin registers; the routing rule checks registration at lookup. A
//! team's installations are kept sorted by plugin, then installation (the default one first, then by name),
//! so every replica writes an event's copies in the same order.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use arc_swap::ArcSwap;
use compact_str::CompactString;
use dashmap::DashMap;
use switchyard_filter::{Filter, FilterError};
use switchyard_schemas::backfill::Request;
use switchyard_schemas::control::{Enablement, PluginManifest, installation_key};
use switchyard_schemas::ids::DEFAULT_INSTALLATION;
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

/// One installation an event goes to, unless its filter says no.
#[derive(Debug, Clone)]
pub struct Target {
    /// The plugin.
    pub plugin: Arc<PluginRoute>,
    /// The installation's name; `None` for the default installation.
    pub installation: Option<Arc<str>>,
    /// The installation's CEL filter, which the caller evaluates; `None` = every event.
    pub filter: Option<Arc<Filter>>,
    /// The backfill holding the installation (its enablement's `backfill`), which the caller resolves:
    /// the router owner of the team's partition routes it live only once the backfill handed over.
    pub backfill: Option<Arc<Request>>,
}

impl Target {
    /// The installation's name.
    pub fn installation(&self) -> &str {
        self.installation.as_deref().unwrap_or(DEFAULT_INSTALLATION)
    }
}

/// An installation a backfill holds: its enablement names the backfill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Team id.
    pub team: Arc<str>,
    /// Plugin id.
    pub plugin: Arc<str>,
    /// Installation id.
    pub installation: Arc<str>,
    /// The backfill.
    pub backfill: Arc<Request>,
}

/// The hash of the lookup's maps: foldhash, seeded per process, faster than the standard SipHash on short keys (team
/// ids come from trusted producers and the registry, so keys chosen to collide are not a concern).
type Hasher = foldhash::fast::RandomState;

/// The name index of the default installation.
const DEFAULT_NAME: u32 = 0;

/// One team's installation of one plugin: 24 bytes, and all a lookup reads of most installations.
#[derive(Debug, Clone)]
struct Installed {
    plugin: u32,
    name: u32,
    types: TypeSet,
    /// Its `form_ids` as a 32-bit Bloom filter ([`form_bits`]), `0` when it has none: most events of a form
    /// it does not list are turned away here, without following the pointer to `selectors`.
    forms: u32,
    selectors: Option<Arc<Selectors>>,
}

/// An installation's `event_types` as a bit set of interned type indices: `0` = every type the plugin
/// subscribes to. Indices from [`TypeSet::OVERFLOW`] on (a deployment that has interned that many type
/// names) do not fit: then the bit `OVERFLOW` says the list is in [`Selectors::types`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TypeSet(u32);

impl TypeSet {
    const OVERFLOW: u32 = 31;

    /// The set of `types` (sorted, deduplicated interned indices; empty = every type).
    fn of(types: &[u32]) -> Self {
        Self(types.iter().fold(0, |set, &t| set | 1 << t.min(Self::OVERFLOW)))
    }

    fn overflows(self) -> bool {
        self.0 & 1 << Self::OVERFLOW != 0
    }
}

/// The two bits of a form id's (or subject's) hash in an installation's `forms` filter. With 1-3 form ids
/// (2-6 bits of 32 set), a subject not listed passes the filter about 1-4% of the time, and is then
/// turned away by the exact check.
fn form_bits(hash: u64) -> u32 {
    1 << (hash & 31) | 1 << ((hash >> 5) & 31)
}

/// What only some installations have.
#[derive(Debug)]
struct Selectors {
    /// `form_ids`, sorted by (hash, id); empty = any form.
    form_ids: Box<[(u64, Box<str>)]>,
    filter: Option<Arc<Filter>>,
    /// The `event_types` of a [`TypeSet`] that overflows, sorted.
    types: Box<[u32]>,
    /// The enablement's `backfill`.
    backfill: Option<Arc<Request>>,
}

impl Installed {
    /// Whether the installation takes events of interned type `event_type` (rule 4 of contract section 8).
    fn admits_type(&self, event_type: u32) -> bool {
        match self.types {
            TypeSet(0) => true,
            set if set.overflows() => self
                .selectors
                .as_ref()
                .is_some_and(|s| s.types.binary_search(&event_type).is_ok()),
            TypeSet(bits) => event_type < TypeSet::OVERFLOW && bits & 1 << event_type != 0,
        }
    }

    /// Whether the installation takes an event whose `ce_subject` hashes to `subject` (hashed on first use,
    /// at most once per lookup): rule 5.
    fn admits_form(&self, subject: &mut LazyHash<'_>) -> bool {
        if self.forms == 0 {
            return true;
        }
        let Some((hash, subject)) = subject.get() else {
            return false;
        };
        let bits = form_bits(hash);
        if self.forms & bits != bits {
            return false;
        }
        self.selectors.as_ref().is_some_and(|selectors| {
            let ids = &selectors.form_ids;
            let first = ids.partition_point(|(h, _)| *h < hash);
            ids[first..]
                .iter()
                .take_while(|(h, _)| *h == hash)
                .any(|(_, id)| **id == *subject)
        })
    }
}

/// An event's `ce_subject` and its hash, computed when an installation with `form_ids` first asks.
struct LazyHash<'a> {
    subject: Option<&'a str>,
    hasher: &'a Hasher,
    hash: Option<u64>,
}

impl<'a> LazyHash<'a> {
    fn get(&mut self) -> Option<(u64, &'a str)> {
        let subject = self.subject?;
        let hash = *self.hash.get_or_insert_with(|| self.hasher.hash_one(subject));
        Some((hash, subject))
    }
}

/// State only the writer touches: interners' reverse maps and the compiled-filter cache.
#[derive(Default)]
struct Writer {
    plugin_index: HashMap<String, u32>,
    /// Installation name -> (index, installations naming it). The default installation is not counted.
    name_index: HashMap<Arc<str>, (u32, usize)>,
    free_names: Vec<u32>,
    /// Identical filters are compiled once and shared.
    filters: HashMap<Arc<str>, Weak<Filter>>,
    /// Size of `filters` after its last sweep of dropped entries.
    filters_swept: usize,
}

/// The routing table. Lookups are lock-free but for one DashMap shard read lock (and, for a named
/// installation, a read lock of the names); writes come from one materializer thread (the `Mutex` only
/// makes concurrent writers safe, it is never contended).
pub struct RouteTable {
    template: String,
    teams: DashMap<CompactString, Box<[Installed]>, Hasher>,
    plugins: ArcSwap<Vec<Option<Arc<PluginRoute>>>>,
    types: ArcSwap<HashMap<Box<str>, u32, Hasher>>,
    names: RwLock<Vec<Option<Arc<str>>>>,
    /// Hashes `form_ids` and subjects.
    form_hasher: Hasher,
    writer: Mutex<Writer>,
    enabled: AtomicUsize,
    filtered: AtomicUsize,
    registered: AtomicUsize,
    /// Installations held by a backfill, by installation key; `held` is its size, read without the lock.
    holds: Mutex<HashMap<String, Hold>>,
    held: AtomicUsize,
}

impl RouteTable {
    /// An empty table; plugin topics are named by `template` (`{plugin}` is replaced by the id).
    pub fn new(template: impl Into<String>) -> Self {
        Self {
            template: template.into(),
            teams: DashMap::with_hasher(Hasher::default()),
            plugins: ArcSwap::from_pointee(Vec::new()),
            types: ArcSwap::from_pointee(HashMap::default()),
            names: RwLock::new(vec![None]),
            form_hasher: Hasher::default(),
            writer: Mutex::new(Writer::default()),
            enabled: AtomicUsize::new(0),
            filtered: AtomicUsize::new(0),
            registered: AtomicUsize::new(0),
            holds: Mutex::new(HashMap::new()),
            held: AtomicUsize::new(0),
        }
    }

    /// Appends to `out` the installations that get an event of `event_type` from `team` with `ce_subject`
    /// `subject` by every part of the routing rule but the filter, which the caller evaluates
    /// ([`Target::filter`]). In the table's order: by plugin, then installation.
    pub fn route(&self, team: &str, event_type: &str, subject: Option<&str>, out: &mut Vec<Target>) {
        let Some(&type_index) = self.types.load().get(event_type) else {
            return; // no plugin and no installation has ever named this type
        };
        let Some(installed) = self.teams.get(team) else {
            return;
        };
        let plugins = self.plugins.load();
        let mut names = None;
        let mut subject = LazyHash {
            subject,
            hasher: &self.form_hasher,
            hash: None,
        };
        // The checks that read only the entry and the (few, cached) plugins come first: an installation's
        // selectors are a pointer away, followed only for the ones still in the running.
        for entry in installed.iter().filter(|e| e.admits_type(type_index)) {
            let Some(Some(plugin)) = plugins.get(entry.plugin as usize) else {
                continue;
            };
            if plugin.events.binary_search(&type_index).is_err() || !entry.admits_form(&mut subject) {
                continue;
            }
            // Resolved under the shard guard: the name's slot cannot be reused meanwhile.
            let installation = (entry.name != DEFAULT_NAME).then(|| {
                let names = names.get_or_insert_with(|| self.names.read().unwrap_or_else(|p| p.into_inner()));
                names[entry.name as usize]
                    .clone()
                    .unwrap_or_else(|| Arc::from("unnamed"))
            });
            let (filter, backfill) = match &entry.selectors {
                Some(s) => (s.filter.clone(), s.backfill.clone()),
                None => (None, None),
            };
            out.push(Target {
                plugin: Arc::clone(plugin),
                installation,
                filter,
                backfill,
            });
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

    /// Deregisters a plugin. Its installations stay and apply again if it registers again (the registry
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

    /// Applies an (already checked) enablement record: `enabled: true` adds or replaces its installation,
    /// `false` removes it. A filter that does not compile removes the installation too and is the error
    /// (fail closed: an installation never routes unfiltered what its filter was meant to hold back).
    pub fn upsert_enablement(&self, enablement: &Enablement) -> Result<(), FilterError> {
        let (team, plugin_id, name) = (
            enablement.team_id.as_str(),
            enablement.plugin_id.as_str(),
            enablement.installation(),
        );
        if !enablement.enabled {
            self.remove_enablement(team, plugin_id, name);
            return Ok(());
        }
        self.set_hold(team, plugin_id, name, enablement.backfill.as_ref());
        let mut writer = self.lock_writer();
        let filter = match enablement.filter() {
            None => None,
            Some(source) => match compiled(&mut writer, source) {
                Ok(filter) => Some(filter),
                Err(error) => {
                    drop(writer);
                    self.remove_enablement(team, plugin_id, name);
                    return Err(error);
                }
            },
        };
        let plugin = intern_plugin(&mut writer, plugin_id);
        let mut types = match &enablement.event_types {
            Some(types) => self.intern_types(types),
            None => Vec::new(),
        };
        types.sort_unstable();
        types.dedup();
        let type_set = TypeSet::of(&types);
        let mut form_ids: Vec<(u64, Box<str>)> = enablement
            .form_ids()
            .unwrap_or_default()
            .iter()
            .map(|id| (self.form_hasher.hash_one(id.as_str()), Box::from(id.as_str())))
            .collect();
        form_ids.sort_unstable();
        form_ids.dedup();
        let backfill = enablement.backfill.clone().map(Arc::new);
        let selectors =
            (!form_ids.is_empty() || filter.is_some() || type_set.overflows() || backfill.is_some()).then(
                || {
                    Arc::new(Selectors {
                        form_ids: form_ids.into_boxed_slice(),
                        filter,
                        types: if type_set.overflows() {
                            types.into_boxed_slice()
                        } else {
                            Box::default()
                        },
                        backfill,
                    })
                },
            );
        let name_index = self.existing_name(&writer, name);
        let mut entries = self.teams.entry(CompactString::from(team)).or_default();
        let mut list = entries.to_vec();
        let position = name_index.and_then(|n| list.iter().position(|e| (e.plugin, e.name) == (plugin, n)));
        let name_index = match (position, name_index) {
            (Some(_), Some(index)) => index,
            _ => self.hold_name(&mut writer, name),
        };
        let forms = selectors.as_ref().map_or(0, |s| {
            s.form_ids
                .iter()
                .fold(0, |bits, (hash, _)| bits | form_bits(*hash))
        });
        let entry = Installed {
            plugin,
            name: name_index,
            types: type_set,
            forms,
            selectors,
        };
        let filtered = entry.selectors.as_ref().is_some_and(|s| s.filter.is_some());
        match position {
            Some(at) => {
                let was_filtered = list[at].selectors.as_ref().is_some_and(|s| s.filter.is_some());
                self.count_filtered(was_filtered, filtered);
                list[at] = entry;
            }
            None => {
                let names = self.names.read().unwrap_or_else(|p| p.into_inner());
                let order = |e: &Installed| (e.plugin, name_order(&names, e.name));
                let at = list.partition_point(|e| order(e) < order(&entry));
                drop(names);
                self.count_filtered(false, filtered);
                list.insert(at, entry);
                self.enabled.fetch_add(1, Ordering::Relaxed);
            }
        }
        *entries = list.into_boxed_slice();
        Ok(())
    }

    /// Removes a team's installation of a plugin (a tombstone, `enabled: false`, or an invalid record).
    pub fn remove_enablement(&self, team_id: &str, plugin_id: &str, installation: &str) {
        self.set_hold(team_id, plugin_id, installation, None);
        let mut writer = self.lock_writer();
        let Some(&plugin) = writer.plugin_index.get(plugin_id) else {
            return;
        };
        let Some(name) = self.existing_name(&writer, installation) else {
            return;
        };
        let mut removed = None;
        self.teams.remove_if_mut(team_id, |_, list| {
            if let Some(at) = list.iter().position(|e| (e.plugin, e.name) == (plugin, name)) {
                let mut kept = list.to_vec();
                removed = Some(kept.remove(at));
                *list = kept.into_boxed_slice();
            }
            list.is_empty()
        });
        // The shard lock is released: no reader can still be resolving this installation's name.
        if let Some(entry) = removed {
            self.enabled.fetch_sub(1, Ordering::Relaxed);
            self.count_filtered(
                entry.selectors.as_ref().is_some_and(|s| s.filter.is_some()),
                false,
            );
            self.release_name(&mut writer, entry.name);
        }
    }

    /// Installations stored (enabled ones).
    pub fn enablement_count(&self) -> usize {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Installations stored with a filter.
    pub fn filtered_count(&self) -> usize {
        self.filtered.load(Ordering::Relaxed)
    }

    /// Registered plugins.
    pub fn plugin_count(&self) -> usize {
        self.registered.load(Ordering::Relaxed)
    }

    /// Installations held by a backfill.
    pub fn held_count(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The installations held by a backfill, in no order.
    pub fn holds(&self) -> Vec<Hold> {
        if self.held_count() == 0 {
            return Vec::new();
        }
        let holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        holds.values().cloned().collect()
    }

    fn set_hold(&self, team: &str, plugin: &str, installation: &str, backfill: Option<&Request>) {
        let key = installation_key(team, plugin, installation);
        let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        match backfill {
            Some(backfill) => {
                holds.insert(
                    key,
                    Hold {
                        team: Arc::from(team),
                        plugin: Arc::from(plugin),
                        installation: Arc::from(installation),
                        backfill: Arc::new(backfill.clone()),
                    },
                );
            }
            None => {
                holds.remove(&key);
            }
        }
        self.held.store(holds.len(), Ordering::Relaxed);
    }

    fn count_filtered(&self, before: bool, after: bool) {
        match (before, after) {
            (false, true) => {
                self.filtered.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.filtered.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        // A panic while holding the lock cannot leave the interners half-written in a harmful way. Recover
        // rather than poison every later write.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The index of a name some installation holds already.
    fn existing_name(&self, writer: &Writer, name: &str) -> Option<u32> {
        if name == DEFAULT_INSTALLATION {
            return Some(DEFAULT_NAME);
        }
        writer.name_index.get(name).map(|&(index, _)| index)
    }

    /// Counts one more installation naming `name`, interning it if it is new.
    fn hold_name(&self, writer: &mut Writer, name: &str) -> u32 {
        if name == DEFAULT_INSTALLATION {
            return DEFAULT_NAME;
        }
        if let Some((index, holders)) = writer.name_index.get_mut(name) {
            *holders += 1;
            return *index;
        }
        let name: Arc<str> = Arc::from(name);
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        let index = match writer.free_names.pop() {
            Some(index) => {
                names[index as usize] = Some(Arc::clone(&name));
                index
            }
            None => {
                names.push(Some(Arc::clone(&name)));
                (names.len() - 1) as u32
            }
        };
        writer.name_index.insert(name, (index, 1));
        index
    }

    /// Counts one installation fewer naming the name at `index`; frees its slot at the last.
    fn release_name(&self, writer: &mut Writer, index: u32) {
        if index == DEFAULT_NAME {
            return;
        }
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        let Some(name) = names.get(index as usize).cloned().flatten() else {
            return;
        };
        if let Some((_, holders)) = writer.name_index.get_mut(&*name) {
            *holders -= 1;
            if *holders == 0 {
                writer.name_index.remove(&*name);
                names[index as usize] = None;
                writer.free_names.push(index);
            }
        }
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

/// The sort key of a name within one plugin's installations: the default one first, then by name.
fn name_order(names: &[Option<Arc<str>>], index: u32) -> (bool, &str) {
    match index {
        DEFAULT_NAME => (false, ""),
        _ => (true, names[index as usize].as_deref().unwrap_or_default()),
    }
}

/// The compiled filter of `source`, shared with every installation that has the same one.
fn compiled(writer: &mut Writer, source: &str) -> Result<Arc<Filter>, FilterError> {
    if let Some(filter) = writer.filters.get(source).and_then(Weak::upgrade) {
        return Ok(filter);
    }
    let filter = Arc::new(Filter::compile(source)?);
    writer.filters.insert(Arc::from(source), Arc::downgrade(&filter));
    if writer.filters.len() > 2 * writer.filters_swept.max(64) {
        writer.filters.retain(|_, filter| filter.strong_count() > 0);
        writer.filters_swept = writer.filters.len();
    }
    Ok(filter)
}

fn intern_plugin(writer: &mut Writer, plugin_id: &str) -> u32 {
    let next = writer.plugin_index.len() as u32;
    *writer.plugin_index.entry(plugin_id.to_owned()).or_insert(next)
}

#[cfg(test)]
mod tests;
