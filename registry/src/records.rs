//! The registry's records in its compacted topics, and what it derives from them.
//!
//! | topic                    | key                      | value                         |
//! |--------------------------|--------------------------|-------------------------------|
//! | `switchyard.plugins`     | plugin id                | [`PluginManifest`] (contract) |
//! | `switchyard.enablements` | installation key (below) | [`Enablement`] (contract)     |
//! | `switchyard.configs`     | installation key (below) | [`ConfigRecord`]              |
//! | `switchyard.instances`   | `<plugin>/<instance id>` | [`InstanceRecord`]            |
//! | `switchyard.backfills`   | backfill id              | [`Backfill`] (contract)       |
//! | `switchyard.backfill-progress` | `<backfill id>/<partition>` | [`Progress`] (contract; the router writes it) |
//! | `switchyard.plugin-registrations` | `<plugin id>/<version>` | [`RegistrationRecord`] (kept after deregistration) |
//!
//! An enablement is a team's *installation* of a plugin. Its key, and the key of its config, is
//! `<team>/<plugin>` for the installation `default` (the only form before installations existed) and
//! `<team>/<plugin>/<installation>` for any other ([`parse_installation_key`]); so the keys of one plugin
//! are not all `.../<plugin>`, and every lookup here parses them instead of matching suffixes.
//!
//! A null value removes the key. A plugin's status is derived from its instances' heartbeats: `down` with
//! no live instance (none heard from within the TTL), `degraded` when a live instance reports itself
//! degraded, `up` otherwise.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_schemas::backfill::{Backfill, Progress};
use switchyard_schemas::control::{Enablement, PluginManifest, installation_key, parse_installation_key};
use switchyard_schemas::ids::DEFAULT_INSTALLATION;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::store::Store;

/// The names of the registry's topics.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Plugin manifests.
    pub plugins: String,
    /// Enablements.
    pub enablements: String,
    /// Per-team plugin configs.
    pub configs: String,
    /// Instance heartbeats.
    pub instances: String,
    /// Backfill requests.
    pub backfills: String,
    /// Backfill progress (the router's).
    pub backfill_progress: String,
    /// Spent console sign-in links.
    pub console_sign_ins: String,
    /// Each plugin's registration history.
    pub plugin_registrations: String,
    /// The replays of plugins' dead letters ([`crate::dead_letters`]).
    pub dead_letter_replays: String,
}

impl Topics {
    /// The store topics named in the configuration's `[topics]`. `switchyardctl topics` and the load
    /// test's topic set take the registry's compacted topics from here and [`Topics::all`]: a new store
    /// topic added to both is created, checked and backed up by them too.
    pub fn from_config(config: &crate::config::TopicsConfig) -> Self {
        Self {
            plugins: config.plugins.clone(),
            enablements: config.enablements.clone(),
            configs: config.configs.clone(),
            instances: config.instances.clone(),
            backfills: config.backfills.clone(),
            backfill_progress: config.backfill_progress.clone(),
            console_sign_ins: config.console_sign_ins.clone(),
            plugin_registrations: config.plugin_registrations.clone(),
            dead_letter_replays: config.dead_letter_replays.clone(),
        }
    }

    /// Every store topic, for [`crate::store::StoreConfig::topics`].
    pub fn all(&self) -> Vec<String> {
        vec![
            self.plugins.clone(),
            self.enablements.clone(),
            self.configs.clone(),
            self.instances.clone(),
            self.backfills.clone(),
            self.backfill_progress.clone(),
            self.console_sign_ins.clone(),
            self.plugin_registrations.clone(),
            self.dead_letter_replays.clone(),
        ]
    }
}

pub use switchyard_schemas::configs::ConfigRecord;

/// What an instance says about itself in a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Serving normally.
    Ok,
    /// Serving, but impaired (e.g. its downstream SaaS is failing).
    Degraded,
}

/// One plugin instance's last heartbeat, the value of a `switchyard.instances` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Plugin id.
    pub plugin_id: String,
    /// Instance id, unique per plugin (e.g. the pod name).
    pub instance_id: String,
    /// Its state.
    pub state: InstanceState,
    /// RFC 3339 time the registry received the heartbeat.
    pub last_seen: String,
    /// RFC 3339 time the plugin token it sent the heartbeat with expires; absent when an admin token sent
    /// it (or a registry from before this field recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<String>,
}

impl InstanceRecord {
    /// Time since the last heartbeat; `None` when `last_seen` is unreadable.
    pub fn age(&self, now: OffsetDateTime) -> Option<Duration> {
        let seen = OffsetDateTime::parse(&self.last_seen, &Rfc3339).ok()?;
        Some((now - seen).try_into().unwrap_or(Duration::ZERO))
    }

    /// Heard from within `ttl`.
    pub fn is_live(&self, now: OffsetDateTime, ttl: Duration) -> bool {
        self.age(now).is_some_and(|age| age <= ttl)
    }
}

/// One version in a plugin's registration history, the value of a `switchyard.plugin-registrations`
/// record keyed `<plugin id>/<version>`. Every successful registration of that version rewrites it, keeping
/// `first_registered_at`; deregistration leaves it, so the history outlives the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRecord {
    /// Plugin id.
    pub plugin_id: String,
    /// The manifest's version, as registered.
    pub version: String,
    /// RFC 3339 time of the first registration of this version that the history holds.
    pub first_registered_at: String,
    /// RFC 3339 time of the latest registration of this version.
    pub last_registered_at: String,
    /// The manifest's display name at the latest registration.
    pub name: String,
    /// Lowercase hex SHA-256 of the manifest record's bytes as stored in `switchyard.plugins` at the latest
    /// registration: a manifest changed under the same version shows as a new hash.
    pub manifest_sha256: String,
}

/// The key of `version` of `plugin` in the registration history.
pub fn registration_key(plugin: &str, version: &str) -> String {
    format!("{plugin}/{version}")
}

/// A plugin's derived status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginStatus {
    /// At least one live instance, none degraded.
    Up,
    /// Live instances, one or more degraded.
    Degraded,
    /// No live instance.
    Down,
}

/// When the earliest plugin token among the live `instances` expires, if any of them reported one.
pub fn token_expiry(
    instances: &[InstanceRecord],
    now: OffsetDateTime,
    ttl: Duration,
) -> Option<OffsetDateTime> {
    instances
        .iter()
        .filter(|i| i.is_live(now, ttl))
        .filter_map(|i| OffsetDateTime::parse(i.token_expires_at.as_deref()?, &Rfc3339).ok())
        .min()
}

/// Status from the instances of one plugin.
pub fn status_of(instances: &[InstanceRecord], now: OffsetDateTime, ttl: Duration) -> PluginStatus {
    let live: Vec<_> = instances.iter().filter(|i| i.is_live(now, ttl)).collect();
    if live.is_empty() {
        PluginStatus::Down
    } else if live.iter().any(|i| i.state == InstanceState::Degraded) {
        PluginStatus::Degraded
    } else {
        PluginStatus::Up
    }
}

pub use switchyard_schemas::times::now_rfc3339;

/// Typed reads of the store.
pub struct Records<'a> {
    store: &'a Store,
    topics: &'a Topics,
}

impl<'a> Records<'a> {
    /// Reads `store` with the topic names `topics`.
    pub fn new(store: &'a Store, topics: &'a Topics) -> Self {
        Self { store, topics }
    }

    /// A registered plugin's manifest.
    pub fn plugin(&self, id: &str) -> Option<PluginManifest> {
        let value = self.store.get(&self.topics.plugins, id)?;
        PluginManifest::parse(id, &value).ok()
    }

    /// Every registered plugin, by id.
    pub fn plugins(&self) -> Vec<PluginManifest> {
        self.store
            .entries(&self.topics.plugins)
            .into_iter()
            .filter_map(|(id, value)| PluginManifest::parse(&id, &value).ok())
            .collect()
    }

    /// A team's installation `installation` of a plugin ([`DEFAULT_INSTALLATION`] is the v1 enablement).
    pub fn enablement(&self, team: &str, plugin: &str, installation: &str) -> Option<Enablement> {
        let key = installation_key(team, plugin, installation);
        let value = self.store.get(&self.topics.enablements, &key)?;
        Enablement::parse(key.as_bytes(), &value).ok()
    }

    /// A team's installation with its version (the offset of its record).
    pub fn enablement_versioned(
        &self,
        team: &str,
        plugin: &str,
        installation: &str,
    ) -> Option<(i64, Enablement)> {
        let key = installation_key(team, plugin, installation);
        let (version, value) = self.store.get_versioned(&self.topics.enablements, &key)?;
        Some((version, Enablement::parse(key.as_bytes(), &value).ok()?))
    }

    /// A team's default installations (the v1 enablements), by plugin id.
    pub fn team_enablements(&self, team: &str) -> Vec<Enablement> {
        self.team_installations(team)
            .into_iter()
            .filter(|e| e.installation() == DEFAULT_INSTALLATION)
            .collect()
    }

    /// Every installation of every plugin of a team, default and named, by (plugin, installation).
    pub fn team_installations(&self, team: &str) -> Vec<Enablement> {
        let mut installations: Vec<Enablement> = self
            .store
            .entries_with_prefix(&self.topics.enablements, &format!("{team}/"))
            .into_iter()
            .filter_map(|(key, value)| Enablement::parse(key.as_bytes(), &value).ok())
            .collect();
        // Key order is not (plugin, installation) order: `p-2` sorts before `p/x`.
        installations.sort_by(|a, b| {
            (a.plugin_id.as_str(), a.installation()).cmp(&(b.plugin_id.as_str(), b.installation()))
        });
        installations
    }

    /// A team's installations of one plugin, by installation id.
    pub fn plugin_installations(&self, team: &str, plugin: &str) -> Vec<Enablement> {
        let mut installations: Vec<Enablement> = self
            .store
            .entries_with_prefix(&self.topics.enablements, &format!("{team}/{plugin}"))
            .into_iter()
            .filter_map(|(key, value)| Enablement::parse(key.as_bytes(), &value).ok())
            .filter(|e| e.plugin_id == plugin)
            .collect();
        installations.sort_by(|a, b| a.installation().cmp(b.installation()));
        installations
    }

    /// The keys of every enablement of a plugin, across teams and installations.
    pub fn plugin_enablement_keys(&self, plugin: &str) -> Vec<String> {
        keys_of_plugin(self.store.entries(&self.topics.enablements), plugin)
    }

    /// The keys of every config of a plugin, across teams and installations.
    pub fn plugin_config_keys(&self, plugin: &str) -> Vec<String> {
        keys_of_plugin(self.store.entries(&self.topics.configs), plugin)
    }

    /// A team's config of the installation `installation` of a plugin.
    pub fn config(&self, team: &str, plugin: &str, installation: &str) -> Option<ConfigRecord> {
        let value = self.store.get(
            &self.topics.configs,
            &installation_key(team, plugin, installation),
        )?;
        serde_json::from_slice(&value).ok()
    }

    /// A plugin's instances, live or not, by instance id.
    pub fn instances(&self, plugin: &str) -> Vec<InstanceRecord> {
        self.store
            .entries_with_prefix(&self.topics.instances, &format!("{plugin}/"))
            .into_iter()
            .filter_map(|(_, value)| serde_json::from_slice(&value).ok())
            .collect()
    }

    /// Every instance of every plugin.
    pub fn all_instances(&self) -> Vec<InstanceRecord> {
        self.store
            .entries(&self.topics.instances)
            .into_iter()
            .filter_map(|(_, value)| serde_json::from_slice(&value).ok())
            .collect()
    }

    /// The history record of `version` of a plugin, if it was ever registered.
    pub fn registration(&self, plugin: &str, version: &str) -> Option<RegistrationRecord> {
        let value = self.store.get(
            &self.topics.plugin_registrations,
            &registration_key(plugin, version),
        )?;
        serde_json::from_slice(&value).ok()
    }

    /// A plugin's registration history, one record per version, in key order. A plugin id has no `/`, so
    /// the prefix `<plugin>/` matches that plugin's keys alone.
    pub fn registrations(&self, plugin: &str) -> Vec<RegistrationRecord> {
        self.store
            .entries_with_prefix(&self.topics.plugin_registrations, &format!("{plugin}/"))
            .into_iter()
            .filter_map(|(_, value)| serde_json::from_slice::<RegistrationRecord>(&value).ok())
            .filter(|record| record.plugin_id == plugin)
            .collect()
    }

    /// Every installation, of every team and plugin, whose enablement carries a backfill request.
    pub fn held_installations(&self) -> Vec<Enablement> {
        // Most enablements carry none: copy and parse only those that may (this runs every 500 ms).
        self.store
            .entries_where(&self.topics.enablements, |_, value| {
                contains(value, br#""backfill""#)
            })
            .into_iter()
            .filter_map(|(key, value)| Enablement::parse(key.as_bytes(), &value).ok())
            .filter(|e| e.backfill.is_some())
            .collect()
    }

    /// A backfill's record.
    pub fn backfill(&self, id: &str) -> Option<Backfill> {
        let value = self.store.get(&self.topics.backfills, id)?;
        Backfill::parse(id.as_bytes(), &value).ok()
    }

    /// Every backfill of every team, by id.
    pub fn backfills(&self) -> Vec<Backfill> {
        self.store
            .entries(&self.topics.backfills)
            .into_iter()
            .filter_map(|(id, value)| Backfill::parse(id.as_bytes(), &value).ok())
            .collect()
    }

    /// A team's backfills, by id (the records are keyed by id alone, so this reads them all).
    pub fn team_backfills(&self, team: &str) -> Vec<Backfill> {
        let mut backfills = self.backfills();
        backfills.retain(|b| b.team_id == team);
        backfills
    }

    /// A backfill's progress records, one per `core.events` partition it reads, by partition.
    pub fn progress(&self, backfill: &str) -> Vec<Progress> {
        let mut progress: Vec<Progress> = self
            .store
            .entries_with_prefix(&self.topics.backfill_progress, &format!("{backfill}/"))
            .into_iter()
            .filter_map(|(key, value)| Progress::parse(key.as_bytes(), &value).ok())
            .collect();
        progress.sort_by_key(|p| p.partition);
        progress
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// The keys among `entries` that name an installation of `plugin`, in either form. A key that does not
/// parse (written around the API, say `bad team/<plugin>` or `<team>/<plugin>/default`) counts when its
/// second `/`-separated part is the plugin, so deregistration clears it too.
fn keys_of_plugin(entries: Vec<(String, Vec<u8>)>, plugin: &str) -> Vec<String> {
    entries
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| match parse_installation_key(key.as_bytes()) {
            Ok(parsed) => parsed.plugin == plugin,
            Err(_) => key.split('/').nth(1) == Some(plugin),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(state: InstanceState, seconds_ago: i64) -> InstanceRecord {
        let seen = OffsetDateTime::now_utc() - time::Duration::seconds(seconds_ago);
        InstanceRecord {
            plugin_id: "p".into(),
            instance_id: format!("i{seconds_ago}"),
            state,
            last_seen: seen.format(&Rfc3339).unwrap(),
            token_expires_at: None,
        }
    }

    #[test]
    fn a_plugins_keys_in_both_forms_and_no_others() {
        let entries = [
            "acme/sms",
            "acme/sms/forms-a",
            "acme/sms/forms-b",
            "acme/sms-2",
            "acme/sms-2/sms",
            "globex/sms",
            "acme/other/sms",
            "bad team/sms",
            "acme/sms/default",
            "sms",
        ]
        .map(|key| (key.to_owned(), Vec::new()));
        assert_eq!(
            keys_of_plugin(entries.to_vec(), "sms"),
            [
                "acme/sms",
                "acme/sms/forms-a",
                "acme/sms/forms-b",
                "globex/sms",
                "bad team/sms",
                "acme/sms/default"
            ]
        );
    }

    #[test]
    fn status_derives_from_live_heartbeats() {
        let now = OffsetDateTime::now_utc();
        let ttl = Duration::from_secs(30);
        assert_eq!(status_of(&[], now, ttl), PluginStatus::Down);
        assert_eq!(
            status_of(&[instance(InstanceState::Ok, 40)], now, ttl),
            PluginStatus::Down
        );
        assert_eq!(
            status_of(
                &[
                    instance(InstanceState::Ok, 5),
                    instance(InstanceState::Degraded, 40)
                ],
                now,
                ttl
            ),
            PluginStatus::Up
        );
        assert_eq!(
            status_of(
                &[
                    instance(InstanceState::Ok, 5),
                    instance(InstanceState::Degraded, 3)
                ],
                now,
                ttl
            ),
            PluginStatus::Degraded
        );
    }
}
