//! Creates a plugin's topics when it registers: `plugin.<id>.events` (what the router writes and the plugin
//! runtime consumes) and `plugin.<id>.dlq` (where the runtime puts events it gave up on).
//!
//! There is no retry topic: the plugin runtime retries in place so that a team's events stay in order (a
//! retry topic would let later events overtake a retried one). Creation is idempotent; an existing topic is
//! left as it is, whatever its partition count. Deregistering a plugin keeps its topics and their data.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde::Serialize;
use switchyard_schemas::topics::plugin_events_topic;
use switchyard_service::kafka::topic_plan::{TopicKind, created_configs};
use switchyard_service::kafka::{ClientError, Clients, KafkaContext};
use tracing::info;

/// A plugin's topic names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginTopics {
    /// Routed events.
    pub events: String,
    /// The runtime's dead letters.
    pub dead_letter: String,
}

/// Creates plugin topics with the admin API.
pub struct Provisioner {
    admin: AdminClient<KafkaContext>,
    events_template: String,
    dead_letter_template: String,
    partitions: i32,
    replication_factor: i32,
    timeout: Duration,
}

/// How provisioning is set up.
#[derive(Clone)]
pub struct ProvisionerConfig {
    /// Makes the admin client.
    pub clients: Clients,
    /// `plugin.{plugin}.events`.
    pub events_template: String,
    /// `plugin.{plugin}.dlq`.
    pub dead_letter_template: String,
    /// Partitions of each new topic.
    pub partitions: i32,
    /// Replication factor of each new topic.
    pub replication_factor: i32,
    /// Bound of one admin call.
    pub timeout: Duration,
}

impl Provisioner {
    /// Creates the admin client.
    pub fn new(config: ProvisionerConfig) -> Result<Self, ClientError> {
        let admin = config
            .clients
            .admin("admin")
            .tunable("client.id", "switchyard-registry-admin")
            .create()?;
        Ok(Self {
            admin,
            events_template: config.events_template,
            dead_letter_template: config.dead_letter_template,
            partitions: config.partitions,
            replication_factor: config.replication_factor,
            timeout: config.timeout,
        })
    }

    /// The topic names of a plugin.
    pub fn topics(&self, plugin_id: &str) -> PluginTopics {
        PluginTopics {
            events: plugin_events_topic(&self.events_template, plugin_id),
            dead_letter: plugin_events_topic(&self.dead_letter_template, plugin_id),
        }
    }

    /// Creates the plugin's topics that do not exist yet.
    pub async fn provision(&self, plugin_id: &str) -> Result<PluginTopics, KafkaError> {
        let topics = self.topics(plugin_id);
        // Born with the settings `switchyardctl topics apply` recommends (retention, min.insync.replicas, ...).
        let configs = [
            (
                &topics.events,
                created_configs(TopicKind::PluginEvents, self.replication_factor),
            ),
            (
                &topics.dead_letter,
                created_configs(TopicKind::PluginDeadLetters, self.replication_factor),
            ),
        ];
        let new: Vec<NewTopic<'_>> = configs
            .iter()
            .map(|(name, configs)| {
                configs.iter().fold(
                    NewTopic::new(
                        name,
                        self.partitions,
                        TopicReplication::Fixed(self.replication_factor),
                    ),
                    |topic, (key, value)| topic.set(key, value),
                )
            })
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(self.timeout))
            .request_timeout(Some(self.timeout));
        for result in self.admin.create_topics(&new, &options).await? {
            match result {
                Ok(topic) => info!(%topic, plugin = plugin_id, "created a plugin topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(KafkaError::AdminOp(code)),
            }
        }
        Ok(topics)
    }
}
