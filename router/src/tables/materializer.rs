//! Reads a compacted control topic into the routing table, from the beginning and forever after.
//!
//! ```text
//!   switchyard.plugins ──► [materializer thread] ──┐
//!                                                  ├──► RouteTable ──► pipeline lookups
//!   switchyard.enablements ──► [materializer thread] ┘
//! ```
//!
//! Every replica reads every partition itself with the foundation's follower
//! ([`switchyard_service::follower`]): no consumer group, nothing committed, caught up once it has read to
//! the high watermarks it saw at start, then applying updates and tombstones live. One follower per topic.
//!
//! An invalid record (bad key, bad JSON, fields disagreeing with the key, a filter that does not compile or
//! exceeds its bounds) removes what its key named, as a tombstone would, so replicas converge whichever
//! records compaction kept. It is logged and counted.

use std::sync::Arc;
use std::time::Duration;

use switchyard_schemas::control::{
    ControlError, Enablement, PluginManifest, parse_installation_key, parse_plugin_key,
};
use switchyard_service::follower::{Apply, FollowError, FollowOptions, Follower, Record};
use switchyard_service::kafka::Clients;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::tables::routes::RouteTable;

/// Which control topic a materializer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlTopic {
    /// Plugin manifests, keyed by plugin id.
    Plugins,
    /// Enablements, keyed by `<team>/<plugin>` or `<team>/<plugin>/<installation>`.
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

/// Starts following `kind` into `table`; the follower reports caught up once it has read up to the high
/// watermarks it saw at start.
pub fn spawn(
    kind: ControlTopic,
    config: &Config,
    clients: &Clients,
    table: Arc<RouteTable>,
    metrics: Metrics,
    shutdown: &CancellationToken,
) -> Result<Follower, FollowError> {
    let topic = match kind {
        ControlTopic::Plugins => config.topics.plugins.clone(),
        ControlTopic::Enablements => config.topics.enablements.clone(),
    };
    let options = FollowOptions {
        topic: topic.clone(),
        name: format!("control-{}", kind.label()),
        resync: false,
    };
    let materializer = Materializer {
        kind,
        topic,
        table,
        metrics,
    };
    Follower::spawn(clients, options, materializer, shutdown)
}

struct Materializer {
    kind: ControlTopic,
    topic: String,
    table: Arc<RouteTable>,
    metrics: Metrics,
}

impl Apply for Materializer {
    fn apply(&mut self, record: Record<'_>) {
        Materializer::apply(self, record.key, record.value, record.offset);
    }

    fn caught_up(&mut self, elapsed: Duration) {
        self.metrics.catchup_lag.with_label_values(&[&self.topic]).set(0);
        info!(
            topic = %self.topic,
            plugins = self.table.plugin_count(),
            enablements = self.table.enablement_count(),
            elapsed_ms = elapsed.as_millis() as u64,
            "control topic caught up"
        );
    }

    fn lag(&mut self, records: i64) {
        self.metrics
            .catchup_lag
            .with_label_values(&[&self.topic])
            .set(records);
    }
}

impl Materializer {
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
        self.metrics
            .filtered_installations
            .set(self.table.filtered_count() as i64);
        self.metrics
            .held_installations
            .set(self.table.held_count() as i64);
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
        let parts = parse_installation_key(key)?;
        let remove = || {
            self.table
                .remove_enablement(parts.team, parts.plugin, parts.installation)
        };
        let Some(value) = value else {
            remove();
            return Ok(());
        };
        match Enablement::parse(key, value) {
            // A filter that does not compile removes the installation inside the table.
            Ok(enablement) => {
                self.table
                    .upsert_enablement(&enablement)
                    .map_err(|error| ControlError::Field {
                        field: "filter",
                        message: error.to_string(),
                    })
            }
            Err(error) => {
                remove();
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::test_support::{installation, manifest};

    fn materializer() -> Materializer {
        let table = Arc::new(RouteTable::new("p.{plugin}"));
        table.upsert_plugin(&manifest("sheets", &["response.submitted"]));
        Materializer {
            kind: ControlTopic::Enablements,
            topic: "switchyard.enablements".into(),
            table,
            metrics: Metrics::new(),
        }
    }

    fn write(materializer: &Materializer, enablement: Option<&Enablement>, key: &str) {
        let value = enablement.map(|e| serde_json::to_vec(e).unwrap());
        materializer.apply(Some(key.as_bytes()), value.as_deref(), 0);
    }

    fn routed(materializer: &Materializer) -> Vec<String> {
        let mut out = Vec::new();
        materializer
            .table
            .route("acme", "response.submitted", None, &mut out);
        out.iter().map(|t| t.installation().to_owned()).collect()
    }

    fn invalid(materializer: &Materializer) -> u64 {
        materializer
            .metrics
            .control_records
            .with_label_values(&["enablements", "invalid"])
            .get()
    }

    #[test]
    fn installations_by_key_and_a_bad_filter_or_key_fails_closed() {
        let m = materializer();
        let named = installation("acme", "sheets", "forms-bc", |_| {});
        write(
            &m,
            Some(&installation("acme", "sheets", "default", |_| {})),
            "acme/sheets",
        );
        write(&m, Some(&named), "acme/sheets/forms-bc");
        assert_eq!(routed(&m), ["default", "forms-bc"]);

        // A filter that does not compile removes the installation it names, and is counted.
        let broken = installation("acme", "sheets", "forms-bc", |e| e.filter = Some("data.(".into()));
        write(&m, Some(&broken), "acme/sheets/forms-bc");
        assert_eq!(routed(&m), ["default"]);
        assert_eq!(invalid(&m), 1);
        write(&m, Some(&named), "acme/sheets/forms-bc");
        assert_eq!(routed(&m), ["default", "forms-bc"]);

        // A record under another installation's key is invalid: it removes what its key names.
        write(&m, Some(&named), "acme/sheets");
        assert_eq!(routed(&m), ["forms-bc"]);
        assert_eq!(invalid(&m), 2);
        // `default` has one spelling: a three-part key naming it changes nothing.
        write(&m, None, "acme/sheets/default");
        assert_eq!(routed(&m), ["forms-bc"]);
        assert_eq!(invalid(&m), 3);

        write(&m, None, "acme/sheets/forms-bc");
        assert!(routed(&m).is_empty());
        assert_eq!(m.metrics.enablements.get(), 0);
    }
}
