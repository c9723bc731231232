//! Reads a compacted control topic into the routing table, from the beginning and forever after.
//!
//! ```text
//!   switchyard.plugins ──► [materializer thread] ──┐
//!                                                  ├──► RouteTable ──► pipeline lookups
//!   switchyard.enablements ──► [materializer thread] ┘
//! ```
//!
//! Every replica reads every partition itself (no consumer group, nothing committed). At start it notes
//! each partition's high watermark; it reports caught up once it has read to those marks (or reached the
//! end, which a `read_committed` reader may meet below the high watermark), and keeps applying updates and
//! tombstones live after that. One thread per topic, because librdkafka's end-of-partition event names the
//! partition but not the topic.
//!
//! An invalid record (bad key, bad JSON, fields disagreeing with the key) removes what its key named, as a
//! tombstone would, so replicas converge whichever records compaction kept. It is logged and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use switchyard_schemas::control::{
    ControlError, Enablement, PluginManifest, parse_enablement_key, parse_plugin_key,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::RouterError;
use crate::config::Config;
use crate::kafka::{StatsContext, metadata_partitions};
use crate::metrics::Metrics;
use crate::tables::routes::RouteTable;

/// Which control topic a materializer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlTopic {
    /// Plugin manifests, keyed by plugin id.
    Plugins,
    /// Enablements, keyed by `<team>/<plugin>`.
    Enablements,
}

impl ControlTopic {
    fn label(self) -> &'static str {
        match self {
            ControlTopic::Plugins => "plugins",
            ControlTopic::Enablements => "enablements",
        }
    }
}

const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);

/// Starts the thread that materializes `kind` into `table`. `caught_up` turns true once it has read up to
/// the high watermarks it saw at start.
pub fn spawn(
    kind: ControlTopic,
    config: &Config,
    table: Arc<RouteTable>,
    metrics: Metrics,
    caught_up: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, RouterError> {
    let topic = match kind {
        ControlTopic::Plugins => config.topics.plugins.clone(),
        ControlTopic::Enablements => config.topics.enablements.clone(),
    };
    let context = StatsContext::new(metrics.clone(), format!("control-{}", kind.label()));
    let consumer: BaseConsumer<StatsContext> = config
        .control_consumer()
        .create_with_context(context)
        .map_err(|source| RouterError::Client {
            client: "control consumer",
            source,
        })?;
    std::thread::Builder::new()
        .name(format!("control-{}", kind.label()))
        .spawn(move || {
            let mut materializer = Materializer {
                kind,
                topic,
                consumer,
                table,
                metrics,
            };
            materializer.run(&caught_up, &shutdown);
        })
        .map_err(RouterError::Thread)
}

struct Materializer {
    kind: ControlTopic,
    topic: String,
    consumer: BaseConsumer<StatsContext>,
    table: Arc<RouteTable>,
    metrics: Metrics,
}

impl Materializer {
    fn run(&mut self, caught_up: &watch::Sender<bool>, shutdown: &CancellationToken) {
        let Some(partitions) = self.wait_for_topic(shutdown) else {
            return;
        };
        let started = Instant::now();
        // Partition -> high watermark at start; removed once read up to it.
        let mut pending: HashMap<i32, i64> = HashMap::new();
        let mut next: HashMap<i32, i64> = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in partitions {
            match self
                .consumer
                .fetch_watermarks(&self.topic, partition, METADATA_TIMEOUT)
            {
                Ok((low, high)) if high > low => {
                    pending.insert(partition, high);
                    next.insert(partition, low);
                }
                Ok(_) => {}
                Err(error) => {
                    // Without the mark we cannot know when we are caught up; wait for the end of partition.
                    warn!(%error, topic = %self.topic, partition, "reading the high watermark failed");
                    pending.insert(partition, i64::MAX);
                }
            }
            if let Err(error) = assignment.add_partition_offset(&self.topic, partition, Offset::Beginning) {
                warn!(%error, topic = %self.topic, partition, "building the assignment failed");
            }
        }
        if let Err(error) = self.consumer.assign(&assignment) {
            warn!(%error, topic = %self.topic, "assigning the control topic failed");
        }
        let lag_gauge = self.metrics.catchup_lag.with_label_values(&[&self.topic]);
        let mut signalled = false;
        while !shutdown.is_cancelled() {
            match self.consumer.poll(POLL) {
                None => {}
                Some(Ok(message)) => {
                    self.apply(message.key(), message.payload(), message.offset());
                    next.insert(message.partition(), message.offset() + 1);
                    if pending
                        .get(&message.partition())
                        .is_some_and(|&high| message.offset() + 1 >= high)
                    {
                        pending.remove(&message.partition());
                    }
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    pending.remove(&partition);
                }
                Some(Err(error)) => warn!(%error, topic = %self.topic, "reading the control topic failed"),
            }
            if !signalled {
                let lag: i64 = pending
                    .iter()
                    .map(|(p, &high)| {
                        if high == i64::MAX {
                            1
                        } else {
                            high - next.get(p).copied().unwrap_or(0)
                        }
                    })
                    .sum();
                lag_gauge.set(lag.max(0));
                if pending.is_empty() {
                    signalled = true;
                    info!(
                        topic = %self.topic,
                        plugins = self.table.plugin_count(),
                        enablements = self.table.enablement_count(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "control topic caught up"
                    );
                    caught_up.send_replace(true);
                }
            }
        }
    }

    /// Waits until the topic exists and returns its partitions; `None` if shutdown came first.
    fn wait_for_topic(&self, shutdown: &CancellationToken) -> Option<Vec<i32>> {
        let mut last_warning: Option<Instant> = None;
        while !shutdown.is_cancelled() {
            match metadata_partitions(self.consumer.client(), &self.topic, METADATA_TIMEOUT) {
                Ok(partitions) if !partitions.is_empty() => return Some(partitions),
                outcome => {
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        let reason = match outcome {
                            Err(error) => error.to_string(),
                            Ok(_) => "it does not exist".to_owned(),
                        };
                        warn!(topic = %self.topic, %reason,
                            "waiting for the control topic; create it with cleanup.policy=compact (the registry does)");
                        last_warning = Some(Instant::now());
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        None
    }

    fn apply(&self, key: Option<&[u8]>, value: Option<&[u8]>, offset: i64) {
        let label = self.kind.label();
        let result = match self.kind {
            ControlTopic::Plugins => self.apply_plugin(key, value),
            ControlTopic::Enablements => self.apply_enablement(key, value),
        };
        match result {
            Ok(()) => {
                self.metrics
                    .control_records
                    .with_label_values(&[label, "applied"])
                    .inc();
                debug!(topic = %self.topic, offset, "control record applied");
            }
            Err(error) => {
                self.metrics
                    .control_records
                    .with_label_values(&[label, "invalid"])
                    .inc();
                warn!(%error, topic = %self.topic, offset, "invalid control record; treated as a removal of its key");
            }
        }
        self.metrics.plugins.set(self.table.plugin_count() as i64);
        self.metrics.enablements.set(self.table.enablement_count() as i64);
    }

    fn apply_plugin(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<(), ControlError> {
        let key = parse_plugin_key(key.unwrap_or_default())?;
        let Some(value) = value else {
            self.table.remove_plugin(key);
            return Ok(());
        };
        match PluginManifest::parse(key, value) {
            Ok(manifest) => {
                self.table.upsert_plugin(&manifest);
                Ok(())
            }
            Err(error) => {
                self.table.remove_plugin(key);
                Err(error)
            }
        }
    }

    fn apply_enablement(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<(), ControlError> {
        let key = key.unwrap_or_default();
        let (team, plugin) = parse_enablement_key(key)?;
        let Some(value) = value else {
            self.table.remove_enablement(team, plugin);
            return Ok(());
        };
        match Enablement::parse(key, value) {
            Ok(enablement) => {
                self.table.upsert_enablement(&enablement);
                Ok(())
            }
            Err(error) => {
                self.table.remove_enablement(team, plugin);
                Err(error)
            }
        }
    }
}
