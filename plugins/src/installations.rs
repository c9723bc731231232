//! What a seed plugin keeps per installation: a team may install a plugin several times, each installation
//! with its own config (contract section 7.2), so each plugin keeps its applied configs by (team,
//! installation), the key the runtime's `initialize(team, installation, config)` gives.
//!
//! ```text
//!   initialize(team, installation, Some(config)) ─► parse ─► Installations::insert(team, installation, v)
//!   initialize(team, installation, None)         ─► Installations::remove(team, installation)
//!   execute(ctx, event)                          ─► Installations::get(team, ctx.meta.installation)
//! ```
//!
//! The default installation ([`DEFAULT_INSTALLATION`]) is an installation like any other here: a plugin
//! that used to key by team now keys by (team, `"default"`), and behaves as before for it.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

pub use switchyard_plugin_runtime::plugin::DEFAULT_INSTALLATION;

/// A value per (team, installation), read on every event and written on every config change: a read-mostly
/// map behind a lock, each value an [`Arc`] so a reader keeps what it got while a new config replaces it.
///
/// Teams map to their installations (two levels) so that a look-up by `&str` allocates nothing.
#[derive(Debug)]
pub struct Installations<V> {
    teams: RwLock<HashMap<String, HashMap<String, Arc<V>>>>,
}

impl<V> Default for Installations<V> {
    fn default() -> Self {
        Self {
            teams: RwLock::new(HashMap::new()),
        }
    }
}

impl<V> Installations<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of the team's installation, if it has one.
    pub fn get(&self, team: &str, installation: &str) -> Option<Arc<V>> {
        self.teams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(team)?
            .get(installation)
            .cloned()
    }

    /// Sets the value of the team's installation, replacing any earlier one; the team's other
    /// installations keep theirs.
    pub fn insert(&self, team: &str, installation: &str, value: V) {
        self.teams
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(team.to_owned())
            .or_default()
            .insert(installation.to_owned(), Arc::new(value));
    }

    /// Forgets the value of the team's installation, leaving its other installations alone. Returns
    /// whether it had one.
    pub fn remove(&self, team: &str, installation: &str) -> bool {
        let mut teams = self.teams.write().unwrap_or_else(PoisonError::into_inner);
        let Some(installations) = teams.get_mut(team) else {
            return false;
        };
        let removed = installations.remove(installation).is_some();
        if installations.is_empty() {
            teams.remove(team);
        }
        removed
    }
}

/// How an error message names an installation: not at all for the default one (so its messages read as
/// before installations existed), ` for its installation "<id>"` for any other.
pub(crate) fn of_named_installation(installation: &str) -> String {
    if installation == DEFAULT_INSTALLATION {
        String::new()
    } else {
        format!(" for its installation {installation:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_installation_has_its_own_value_and_removing_one_leaves_the_others() {
        let map = Installations::new();
        map.insert("acme", DEFAULT_INSTALLATION, "a");
        map.insert("acme", "forms-bc", "bc");
        map.insert("globex", DEFAULT_INSTALLATION, "g");
        assert_eq!(map.get("acme", DEFAULT_INSTALLATION).as_deref(), Some(&"a"));
        assert_eq!(map.get("acme", "forms-bc").as_deref(), Some(&"bc"));
        assert_eq!(map.get("globex", "forms-bc"), None, "another team's installation");

        map.insert("acme", "forms-bc", "bc-2");
        assert_eq!(map.get("acme", "forms-bc").as_deref(), Some(&"bc-2"), "replaced");

        assert!(map.remove("acme", "forms-bc"));
        assert!(!map.remove("acme", "forms-bc"), "gone already");
        assert_eq!(map.get("acme", "forms-bc"), None);
        assert_eq!(
            map.get("acme", DEFAULT_INSTALLATION).as_deref(),
            Some(&"a"),
            "the team's other installation stays"
        );
        assert!(map.remove("acme", DEFAULT_INSTALLATION));
        assert!(!map.remove("acme", DEFAULT_INSTALLATION));
        assert!(
            map.teams.read().unwrap().get("acme").is_none(),
            "a team without any is dropped"
        );
        assert_eq!(map.get("globex", DEFAULT_INSTALLATION).as_deref(), Some(&"g"));
    }

    #[test]
    fn a_reader_keeps_the_value_it_got_while_a_new_one_replaces_it() {
        let map = Installations::new();
        map.insert("acme", DEFAULT_INSTALLATION, String::from("old"));
        let held = map.get("acme", DEFAULT_INSTALLATION).unwrap();
        map.insert("acme", DEFAULT_INSTALLATION, String::from("new"));
        assert_eq!(*held, "old");
        assert_eq!(*map.get("acme", DEFAULT_INSTALLATION).unwrap(), "new");
    }
}
