//! The teams' configs of this plugin, followed from the registry's `switchyard.configs` topic.
//!
//! A thread reads every partition from the beginning (no group) and keeps the latest config per team for
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use switchyard_registry::records::ConfigRecord;
use switchyard_router::kafka::LogContext;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// One team's config as the follower last read it.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamConfig {
    /// Grows with every change seen.
    pub version: u64,
    /// The config; `None` when removed.
    pub config: Option<Value>,
}

/// The shared view.
#[derive(Debug)]
pub struct Configs {
    teams: Mutex<HashMap<String, TeamConfig>>,
    complete_as_of: watch::Sender<SystemTime>,
    stop: AtomicBool,
}

impl Configs {
    /// An empty view (for plugins run without Kafka configs, and tests).
    pub fn empty() -> Arc<Self> {
        Arc::new(Self {
            teams: Mutex::new(HashMap::new()),
            complete_as_of: watch::Sender::new(SystemTime::UNIX_EPOCH),
            stop: AtomicBool::new(false),
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
        let mut complete = self.complete_as_of.subscribe();
        let done = complete.wait_for(|as_of| *as_of >= time);
        if limit == Duration::MAX {
            return done.await.is_ok();
        }
        tokio::time::timeout(limit, done).await.is_ok_and(|r| r.is_ok())
    }

    /// Whether the view has been complete at least once (the topic was read to its end).
    pub fn caught_up(&self) -> bool {
        *self.complete_as_of.borrow() > SystemTime::UNIX_EPOCH
    }

    /// Stops the follower thread.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Applies one record of the topic.
    fn apply(&self, plugin: &str, key: &str, value: Option<&[u8]>) {
        let Some((team, record_plugin)) = key.split_once('/') else {
            return;
        };
        if record_plugin != plugin {
            return;
        }
        let config = match value {
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

/// Starts following `topic` for `plugin`'s configs.
pub fn follow(
    client: ClientConfig,
    topic: &str,
    plugin: &str,
) -> Result<(Arc<Configs>, JoinHandle<()>), KafkaError> {
    // Client errors as the router logs them (transient ones at WARN), not rdkafka's default ERROR.
    let consumer: BaseConsumer<LogContext> = client
        .clone()
        .set("group.id", format!("switchyard-plugin-{plugin}-configs-unused"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "50")
        .create_with_context(LogContext::new(format!("configs-{plugin}")))?;
    let configs = Configs::empty();
    let (shared, topic, plugin) = (Arc::clone(&configs), topic.to_owned(), plugin.to_owned());
    let thread = std::thread::Builder::new()
        .name("follow-configs".into())
        .spawn(move || run(&consumer, &topic, &plugin, &shared))
        .map_err(|_| KafkaError::ClientCreation("cannot start the configs follower thread".into()))?;
    Ok((configs, thread))
}

fn run(consumer: &BaseConsumer<LogContext>, topic: &str, plugin: &str, configs: &Configs) {
    const TIMEOUT: Duration = Duration::from_secs(5);
    let stopped = || configs.stop.load(Ordering::Relaxed);
    let partitions: Vec<i32> = loop {
        if stopped() {
            return;
        }
        match consumer.fetch_metadata(Some(topic), TIMEOUT) {
            Ok(metadata) => {
                let found: Vec<i32> = metadata
                    .topics()
                    .iter()
                    .filter(|t| t.name() == topic && t.error().is_none())
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect();
                if !found.is_empty() {
                    break found;
                }
                warn!(
                    topic,
                    "the configs topic does not exist yet; waiting for the registry to create it"
                );
            }
            Err(error) => warn!(%error, topic, "reading the configs topic's metadata failed"),
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        let _ = assignment.add_partition_offset(topic, partition, Offset::Beginning);
    }
    if let Err(error) = consumer.assign(&assignment) {
        warn!(%error, topic, "assigning the configs topic failed");
        return;
    }
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut logged_caught_up = false;
    while !stopped() {
        let started = SystemTime::now();
        let mut targets: HashMap<i32, i64> = HashMap::new();
        for &partition in &partitions {
            match consumer.fetch_watermarks(topic, partition, TIMEOUT) {
                Ok((_, high)) => {
                    targets.insert(partition, high);
                }
                Err(error) => {
                    warn!(%error, topic, partition, "reading the configs topic's end failed");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        if targets.len() != partitions.len() {
            continue;
        }
        loop {
            let behind = targets
                .iter()
                .any(|(p, &high)| next.get(p).copied().unwrap_or(0) < high);
            if !behind || stopped() {
                break;
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    if let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) {
                        configs.apply(plugin, key, message.payload());
                    }
                    next.insert(message.partition(), message.offset() + 1);
                }
                Some(Err(error)) => warn!(%error, topic, "reading the configs topic failed"),
                None => {}
            }
        }
        if stopped() {
            return;
        }
        configs.complete_as_of.send_replace(started);
        if !logged_caught_up {
            info!(topic, "team configs caught up");
            logged_caught_up = true;
        }
        // Read what arrives meanwhile, then look at the ends again.
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            if let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) {
                configs.apply(plugin, key, message.payload());
            }
            next.insert(message.partition(), message.offset() + 1);
        }
    }
}
