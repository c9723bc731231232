//! The configs of this plugin's installations, followed from the registry's `switchyard.configs` topic.
//!
//! The foundation's follower ([`switchyard_service::follower`]) reads every partition from the beginning
//! (no group) and keeps the latest config per team and installation for this plugin (keys
//! `<team>/<plugin>` for the default installation, `<team>/<plugin>/<installation>` for others; a null
//! value removes it). Each config gets a version number that grows with every change; the worker calls
//! `initialize(team, installation, config)` before the installation's next event whenever the version
//! differs from the one it applied.
//!
//! "Before the team's next event" needs more than reading eventually: an event routed right after a
//! config change must not run with the old config. So the follower also publishes the wall-clock time up to
//! which its view is complete: it notes the time, reads the topic's end offsets, and once it has read up to
//! them, everything written before that time is applied. The worker waits (bounded by `config_wait_ms`)
//! until that time passes the event's timestamp before executing it.
//!
//! **Sealed secrets.** A record whose secret fields the registry sealed (`sealed`, contract section 7.4.1)
//! is opened here with this plugin's own keys, from the registration answer (`config_keys`) or
//! `secrets.config_keys`, and the plugin gets the whole config as before. A record sealed with a key the
//! worker does not have waits for it ([`Configs::set_keys`], after registration); one that does not open
//! with the key it names (another plugin's, moved, altered) is logged and treated as a removal, like an
//! unreadable record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use switchyard_schemas::configs::ConfigRecord;
use switchyard_schemas::control::parse_installation_key;
use switchyard_schemas::ids::DEFAULT_INSTALLATION;
use switchyard_schemas::sealed::{PluginKey, SealError};
use switchyard_service::follower::{Apply, FollowError, FollowOptions, Follower, Record};
use switchyard_service::kafka::Clients;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

/// One installation's config as the follower last read it.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamConfig {
    /// Grows with every change seen.
    pub version: u64,
    /// The config; `None` when removed.
    pub config: Option<Value>,
}

/// A team and one of its installations.
pub type InstallationId = (String, String);

type Teams = Arc<Mutex<HashMap<InstallationId, TeamConfig>>>;

/// This plugin's keys, and the records waiting for a key the worker does not have yet.
#[derive(Default)]
struct Keys {
    keys: Vec<PluginKey>,
    waiting: HashMap<InstallationId, ConfigRecord>,
}

type SharedKeys = Arc<Mutex<Keys>>;

/// The shared view.
pub struct Configs {
    teams: Teams,
    keys: SharedKeys,
    follower: Option<Follower>,
    /// Without a follower: whether the view counts as complete (a fixed view) or never does.
    fixed: bool,
}

impl Configs {
    /// An empty view that never completes (for plugins run without Kafka configs, and tests).
    pub fn empty() -> Arc<Self> {
        Arc::new(Self {
            teams: Teams::default(),
            keys: SharedKeys::default(),
            follower: None,
            fixed: false,
        })
    }

    /// A complete view of these teams' configs of their default installation that never changes (for
    /// tests).
    pub fn fixed(teams: impl IntoIterator<Item = (String, Value)>) -> Arc<Self> {
        Self::fixed_installations(
            teams
                .into_iter()
                .map(|(team, config)| ((team, DEFAULT_INSTALLATION.to_owned()), config)),
        )
    }

    /// A complete view of these installations' configs that never changes (for tests).
    pub fn fixed_installations(configs: impl IntoIterator<Item = (InstallationId, Value)>) -> Arc<Self> {
        let teams = configs
            .into_iter()
            .map(|(installation, config)| {
                let config = TeamConfig {
                    version: 1,
                    config: Some(config),
                };
                (installation, config)
            })
            .collect();
        Arc::new(Self {
            teams: Arc::new(Mutex::new(teams)),
            keys: SharedKeys::default(),
            follower: None,
            fixed: true,
        })
    }

    /// The current config of the team's installation.
    pub fn get(&self, team: &str, installation: &str) -> Option<TeamConfig> {
        self.teams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(team.to_owned(), installation.to_owned()))
            .cloned()
    }

    /// Waits until the view includes everything written before `time`, at most `limit` (`Duration::MAX`:
    /// no limit). Returns whether it does.
    pub async fn wait_complete(&self, time: SystemTime, limit: Duration) -> bool {
        match &self.follower {
            Some(follower) => follower.wait_complete(time, limit).await,
            None if self.fixed => true,
            None if limit == Duration::MAX => std::future::pending().await,
            None => {
                tokio::time::sleep(limit).await;
                false
            }
        }
    }

    /// Whether the view has been complete at least once (the topic was read to its end).
    pub fn caught_up(&self) -> bool {
        self.follower.as_ref().map_or(self.fixed, Follower::caught_up)
    }

    /// Gives the view this plugin's keys (from its registration), the sealing one first, and opens the
    /// records that were waiting for one of them: each becomes a new version of its installation's
    /// config.
    pub fn set_keys(&self, keys: Vec<PluginKey>) {
        let mut shared = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        shared.keys = keys;
        let waiting = std::mem::take(&mut shared.waiting);
        for (id, record) in waiting {
            if let Some(config) = open(&mut shared, &id, record) {
                let mut teams = self.teams.lock().unwrap_or_else(|p| p.into_inner());
                let version = teams.get(&id).map_or(1, |t| t.version + 1);
                teams.insert(
                    id,
                    TeamConfig {
                        version,
                        config: Some(config),
                    },
                );
            }
        }
    }

    /// Stops the follower thread and waits for it.
    pub fn stop(&self) {
        if let Some(follower) = &self.follower {
            follower.stop();
        }
    }
}

/// Applies the records of the configs topic that are this plugin's.
struct TeamConfigs {
    plugin: String,
    teams: Teams,
    keys: SharedKeys,
}

/// The record's whole config, its sealed fields opened; `None` when it cannot be (then it waits for a
/// key, or is logged as unusable).
fn open(keys: &mut Keys, id: &InstallationId, record: ConfigRecord) -> Option<Value> {
    if !record.is_sealed() {
        return Some(record.config);
    }
    // Sealed fields are bound to the team and installation the record names: a record copied whole under
    // another installation's key would open, so it must name the installation of its key.
    if (record.team_id.as_str(), record.installation()) != (id.0.as_str(), id.1.as_str()) {
        error!(
            team = id.0,
            installation = id.1,
            "a sealed config that names another team or installation than its key is treated as a removal"
        );
        return None;
    }
    match record.opened(&keys.keys) {
        Ok(config) => Some(config),
        Err(error @ SealError::UnknownKey { .. }) => {
            warn!(%error, "a config waits for a key this worker does not have yet");
            keys.waiting.insert(id.clone(), record);
            None
        }
        Err(error) => {
            error!(%error, "a config that does not open is treated as a removal");
            None
        }
    }
}

impl Apply for TeamConfigs {
    fn apply(&mut self, record: Record<'_>) {
        // A key of another shape names no installation: it changes nothing.
        let Some(key) = record.key.and_then(|k| parse_installation_key(k).ok()) else {
            return;
        };
        if key.plugin != self.plugin {
            return;
        }
        let (team, installation) = (key.team, key.installation);
        let config = match record.value {
            None => {
                let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
                keys.waiting.remove(&(team.to_owned(), installation.to_owned()));
                None
            }
            Some(bytes) => match serde_json::from_slice::<ConfigRecord>(bytes) {
                Ok(record) => {
                    let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
                    let id = (team.to_owned(), installation.to_owned());
                    keys.waiting.remove(&id);
                    open(&mut keys, &id, record)
                }
                Err(error) => {
                    // The error names a position only, never the content (which may hold secrets).
                    warn!(%error, team, installation, "an unreadable config record is treated as a removal");
                    None
                }
            },
        };
        let mut teams = self.teams.lock().unwrap_or_else(|p| p.into_inner());
        let id = (team.to_owned(), installation.to_owned());
        let version = teams.get(&id).map_or(1, |t| t.version + 1);
        teams.insert(id, TeamConfig { version, config });
        debug!(team, installation, version, "config changed");
    }
}

/// Starts following `topic` for `plugin`'s configs; `shutdown` (or [`Configs::stop`]) stops it.
pub fn follow(
    clients: &Clients,
    topic: &str,
    plugin: &str,
    keys: Vec<PluginKey>,
    shutdown: &CancellationToken,
) -> Result<Arc<Configs>, FollowError> {
    let teams = Teams::default();
    let keys = Arc::new(Mutex::new(Keys {
        keys,
        waiting: HashMap::new(),
    }));
    let applier = TeamConfigs {
        plugin: plugin.to_owned(),
        teams: Arc::clone(&teams),
        keys: Arc::clone(&keys),
    };
    let options = FollowOptions {
        topic: topic.to_owned(),
        name: format!("configs-{plugin}"),
        resync: true,
    };
    let follower = Follower::spawn(clients, options, applier, shutdown)?;
    Ok(Arc::new(Configs {
        teams,
        keys,
        follower: Some(follower),
        fixed: false,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn apply(configs: &mut TeamConfigs, key: &str, value: Option<Value>) {
        let value = value.map(|config| {
            let (team, rest) = key.split_once('/').unwrap();
            let installation = rest.split_once('/').map(|(_, installation)| installation);
            serde_json::to_vec(&ConfigRecord {
                team_id: team.to_owned(),
                plugin_id: "sheets-export".to_owned(),
                installation: installation.map(str::to_owned),
                config,
                sealed: None,
                plugin_version: "1.0.0".to_owned(),
                updated_at: "2026-12-05T10:00:00Z".to_owned(),
            })
            .unwrap()
        });
        configs.apply(Record {
            partition: 0,
            offset: 0,
            key: Some(key.as_bytes()),
            value: value.as_deref(),
            headers: None,
            timestamp_ms: None,
        });
    }

    #[test]
    fn each_installation_has_its_own_config_and_a_v1_key_is_the_default_one() {
        let teams = Teams::default();
        let mut applier = TeamConfigs {
            plugin: "sheets-export".to_owned(),
            teams: Arc::clone(&teams),
            keys: SharedKeys::default(),
        };
        apply(&mut applier, "acme/sheets-export", Some(json!({"sheet": "a"})));
        apply(
            &mut applier,
            "acme/sheets-export/forms-bc",
            Some(json!({"sheet": "bc"})),
        );
        apply(
            &mut applier,
            "acme/sms-notify/x",
            Some(json!({"other": "plugin"})),
        );
        apply(
            &mut applier,
            "acme/sheets-export/default",
            Some(json!({"sheet": "two spellings"})),
        );
        let configs = Configs {
            teams,
            keys: SharedKeys::default(),
            follower: None,
            fixed: true,
        };
        let config = |installation| configs.get("acme", installation).map(|c| (c.version, c.config));
        assert_eq!(config("default"), Some((1, Some(json!({"sheet": "a"})))));
        assert_eq!(config("forms-bc"), Some((1, Some(json!({"sheet": "bc"})))));
        assert_eq!(config("x"), None, "another plugin's installation");

        apply(&mut applier, "acme/sheets-export/forms-bc", None);
        assert_eq!(config("forms-bc"), Some((2, None)), "a tombstone removes it");
        assert_eq!(
            config("default"),
            Some((1, Some(json!({"sheet": "a"})))),
            "the others stay"
        );
    }

    #[test]
    fn sealed_records_open_with_this_plugins_keys_and_wait_for_them() {
        use switchyard_schemas::sealed::MasterKey;
        let master = MasterKey::parse("2026-12:c3dpdGNoeWFyZC10ZXN0LW1hc3Rlci1rZXktMzJieXQ=").unwrap();
        let sealed_record = |plugin: &str, key: &PluginKey| {
            let mut record = ConfigRecord {
                team_id: "acme".to_owned(),
                plugin_id: plugin.to_owned(),
                installation: None,
                config: json!({"sheet": "a", "token": "tok-1"}),
                sealed: None,
                plugin_version: "1.0.0".to_owned(),
                updated_at: "2026-12-05T10:00:00Z".to_owned(),
            };
            let binding = switchyard_schemas::sealed::Binding {
                team: "acme",
                plugin,
                installation: "default",
            };
            let mut config = record.config.clone();
            let sealed =
                switchyard_schemas::sealed::seal_fields(key, binding, &mut config, &["/token".to_owned()]);
            record.config = config;
            record.sealed = Some(sealed);
            serde_json::to_vec(&record).unwrap()
        };
        let teams = Teams::default();
        let keys = SharedKeys::default();
        let mut applier = TeamConfigs {
            plugin: "sheets-export".to_owned(),
            teams: Arc::clone(&teams),
            keys: Arc::clone(&keys),
        };
        fn record(value: &[u8]) -> Record<'_> {
            Record {
                partition: 0,
                offset: 0,
                key: Some(b"acme/sheets-export"),
                value: Some(value),
                headers: None,
                timestamp_ms: None,
            }
        }
        // Read before the worker has its keys: it waits, and opens once they come.
        let own = master.plugin_key("sheets-export");
        applier.apply(record(&sealed_record("sheets-export", &own)));
        let configs = Configs {
            teams: Arc::clone(&teams),
            keys: Arc::clone(&keys),
            follower: None,
            fixed: true,
        };
        assert_eq!(configs.get("acme", "default").unwrap().config, None);
        configs.set_keys(vec![own.clone()]);
        let opened = configs.get("acme", "default").unwrap();
        assert_eq!(opened.config, Some(json!({"sheet": "a", "token": "tok-1"})));
        assert_eq!(
            opened.version, 2,
            "a new version: the plugin is initialized with it"
        );
        // A record sealed with another plugin's key (copied under this plugin's key) does not open.
        let theirs = master.plugin_key("sms-notify");
        applier.apply(record(&sealed_record("sms-notify", &theirs)));
        assert_eq!(configs.get("acme", "default").unwrap().config, None);
    }
}
