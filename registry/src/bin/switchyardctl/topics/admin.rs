//! The cluster as `topics apply` and `check` see it: each topic's partitions, replicas and configs
//! (described), topics created with their configs, configs altered. The admin client's futures run on a
//! current-thread runtime of this command's own.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, OwnedResourceSpecifier,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use switchyard_service::kafka::topic_plan::{ExistingTopic, TopicSpec};
use switchyard_service::kafka::{Clients, KafkaContext};

use crate::Failure;

/// One admin client on one cluster.
pub(super) struct Cluster {
    admin: AdminClient<KafkaContext>,
    clients: Clients,
    bootstrap: String,
    timeout: Duration,
    runtime: tokio::runtime::Runtime,
}

impl Cluster {
    /// An admin client made by `clients`.
    pub(super) fn new(clients: &Clients, bootstrap: &str, timeout: Duration) -> Result<Self, Failure> {
        let admin = clients
            .admin("switchyardctl-topics")
            .create()
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| Failure::Usage(format!("starting a runtime: {e}")))?;
        Ok(Self {
            admin,
            clients: clients.clone(),
            bootstrap: bootstrap.to_owned(),
            timeout,
            runtime,
        })
    }

    /// The client builder the cluster was reached with.
    pub(super) fn clients(&self) -> &Clients {
        &self.clients
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .operation_timeout(Some(self.timeout))
            .request_timeout(Some(self.timeout))
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    fn failed(&self, action: &str) -> impl Fn(KafkaError) -> Failure {
        let context = format!("Kafka at {}: {action}", self.bootstrap);
        move |error| Failure::Usage(format!("{context}: {error}"))
    }

    /// How many brokers the cluster has.
    pub(super) fn brokers(&self) -> Result<usize, Failure> {
        self.admin
            .inner()
            .fetch_metadata(None, self.timeout)
            .map(|m| m.brokers().len())
            .map_err(self.failed("reading the metadata"))
    }

    /// Those of `names` that exist, with their partitions, replicas and configs.
    pub(super) fn describe(&self, names: &[String]) -> Result<BTreeMap<String, ExistingTopic>, Failure> {
        // Metadata of every topic: asking for all never creates one, whatever the broker's auto-creation.
        let metadata = self
            .admin
            .inner()
            .fetch_metadata(None, self.timeout)
            .map_err(self.failed("reading the metadata"))?;
        let mut existing = BTreeMap::new();
        for topic in metadata.topics() {
            if !names.iter().any(|n| n == topic.name()) || topic.error().is_some() {
                continue;
            }
            let partitions = topic.partitions();
            existing.insert(
                topic.name().to_owned(),
                ExistingTopic {
                    partitions: i32::try_from(partitions.len()).unwrap_or(i32::MAX),
                    replication_factor: partitions
                        .iter()
                        .map(|p| i32::try_from(p.replicas().len()).unwrap_or(i32::MAX))
                        .min()
                        .unwrap_or(0),
                    ..ExistingTopic::default()
                },
            );
        }
        if existing.is_empty() {
            return Ok(existing);
        }
        let specifiers: Vec<ResourceSpecifier<'_>> =
            existing.keys().map(|t| ResourceSpecifier::Topic(t)).collect();
        let described = self
            .block_on(self.admin.describe_configs(&specifiers, &self.options()))
            .map_err(self.failed("describing the topics' configs"))?;
        for resource in described {
            let resource = resource
                .map_err(|code| self.failed("describing the topics' configs")(KafkaError::AdminOp(code)))?;
            let OwnedResourceSpecifier::Topic(name) = &resource.specifier else {
                continue;
            };
            let Some(topic) = existing.get_mut(name) else {
                continue;
            };
            for entry in &resource.entries {
                let Some(value) = &entry.value else { continue };
                topic.configs.insert(entry.name.clone(), value.clone());
                if entry.source == ConfigSource::DynamicTopic && !entry.is_read_only && !entry.is_sensitive {
                    topic.topic_configs.insert(entry.name.clone(), value.clone());
                }
            }
        }
        Ok(existing)
    }

    /// Creates `specs` with their partitions, replicas and configs; returns the names created. A topic
    /// that appeared meanwhile (another apply, a registry starting) is no error: the next check compares it.
    pub(super) fn create(&self, specs: &[&TopicSpec]) -> Result<Vec<String>, Failure> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        let new: Vec<NewTopic<'_>> = specs
            .iter()
            .map(|spec| {
                spec.configs.iter().fold(
                    NewTopic::new(
                        &spec.name,
                        spec.partitions,
                        TopicReplication::Fixed(spec.replication_factor),
                    ),
                    |topic, setting| topic.set(setting.key, &setting.value),
                )
            })
            .collect();
        let results = self
            .block_on(self.admin.create_topics(&new, &self.options()))
            .map_err(self.failed("creating topics"))?;
        let mut created = Vec::new();
        for result in results {
            match result {
                Ok(topic) => created.push(topic),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(Failure::Usage(format!(
                        "Kafka at {} refused to create {topic}: {code}{}",
                        self.bootstrap,
                        if created.is_empty() {
                            String::new()
                        } else {
                            format!(" (created before it: {})", created.join(", "))
                        }
                    )));
                }
            }
        }
        Ok(created)
    }

    /// Replaces the configs set on `topic` with `configs` (Kafka's AlterConfigs sets the whole set).
    pub(super) fn alter(&self, topic: &str, configs: &BTreeMap<String, String>) -> Result<(), Failure> {
        let alter = configs.iter().fold(
            AlterConfig::new(ResourceSpecifier::Topic(topic)),
            |alter, (key, value)| alter.set(key, value),
        );
        let results = self
            .block_on(self.admin.alter_configs(&[alter], &self.options()))
            .map_err(self.failed(&format!("changing the configs of {topic}")))?;
        for result in results {
            if let Err((_, code)) = result {
                return Err(self.failed(&format!("changing the configs of {topic}"))(
                    KafkaError::AdminOp(code),
                ));
            }
        }
        Ok(())
    }
}
