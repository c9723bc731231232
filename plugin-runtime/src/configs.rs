//! The teams' configs of this plugin, followed from the registry's `switchyard.configs` topic.
//!
//! The foundation's follower ([`switchyard_service::follower`]) reads every partition from the beginning
//! (no group) and keeps the latest config per team for
//! this plugin (keys `<team>/<plugin>`; a null value removes it). Each config gets a version number that
//! grows with every change; the worker calls `initialize(team, config)` before the team's next event
//! whenever the version differs from the one it applied.
//!
//! "Before the team's next event" needs more than reading eventually: an event routed right after a
//! config change must not run with the old config. So the follower also publishes the wall-clock time up to
//! which its view is complete: it notes the time, reads the topic's end offsets, and once it has read up to
//! them, everything written before that time is applied. The worker waits (bounded by `config_wait_ms`)
//! until that time passes the event's timestamp before executing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use switchyard_schemas::configs::ConfigRecord;
use switchyard_service::follower::{Apply, FollowError, FollowOptions, Follower, Record};
use switchyard_service::kafka::Clients;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// One team's config as the follower last read it.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamConfig {
    /// Grows with every change seen.
    pub version: u64,
    /// The config; `None` when removed.
    pub config: Option<Value>,
}

type Teams = Arc<Mutex<HashMap<String, TeamConfig>>>;

/// The shared view.
pub struct Configs {
    teams: Teams,
    follower: Option<Follower>,
    /// Without a follower: whether the view counts as complete (a fixed view) or never does.
    fixed: bool,
}

impl Configs {
    /// An empty view that never completes (for plugins run without Kafka configs, and tests).
    pub fn empty() -> Arc<Self> {
        Arc::new(Self {
            teams: Teams::default(),
            follower: None,
            fixed: false,
        })
    }

    /// A complete view of these teams' configs that never changes (for tests).
    pub fn fixed(teams: impl IntoIterator<Item = (String, Value)>) -> Arc<Self> {
        let teams = teams
            .into_iter()
            .map(|(team, config)| {
                let config = TeamConfig {
                    version: 1,
                    config: Some(config),
                };
                (team, config)
            })
            .collect();
        Arc::new(Self {
            teams: Arc::new(Mutex::new(teams)),
            follower: None,
            fixed: true,
        })
    }

    /// The team's current config.
    pub fn get(&self, team: &str) -> Option<TeamConfig> {
        self.teams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(team)
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
}

impl Apply for TeamConfigs {
    fn apply(&mut self, record: Record<'_>) {
        let Some(key) = record.key.and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        let Some((team, record_plugin)) = key.split_once('/') else {
            return;
        };
        if record_plugin != self.plugin {
            return;
        }
        let config = match record.value {
            None => None,
            Some(bytes) => match serde_json::from_slice::<ConfigRecord>(bytes) {
                Ok(record) => Some(record.config),
                Err(error) => {
                    // The error names a position only, never the content (which may hold secrets).
                    warn!(%error, team, "an unreadable config record is treated as a removal");
                    None
                }
            },
        };
        let mut teams = self.teams.lock().unwrap_or_else(|p| p.into_inner());
        let version = teams.get(team).map_or(1, |t| t.version + 1);
        teams.insert(team.to_owned(), TeamConfig { version, config });
        debug!(team, version, "team config changed");
    }
}

/// Starts following `topic` for `plugin`'s configs; `shutdown` (or [`Configs::stop`]) stops it.
pub fn follow(
    clients: &Clients,
    topic: &str,
    plugin: &str,
    shutdown: &CancellationToken,
) -> Result<Arc<Configs>, FollowError> {
    let teams = Teams::default();
    let applier = TeamConfigs {
        plugin: plugin.to_owned(),
        teams: Arc::clone(&teams),
    };
    let options = FollowOptions {
        topic: topic.to_owned(),
        name: format!("configs-{plugin}"),
        resync: true,
    };
    let follower = Follower::spawn(clients, options, applier, shutdown)?;
    Ok(Arc::new(Configs {
        teams,
        follower: Some(follower),
        fixed: false,
    }))
}
