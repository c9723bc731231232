//! The topics a local Switchyard needs for the demo, and the `setup-topics` step that creates them.
//!
//! They are the deployment's topic plan (`switchyard_service::kafka::topic_plan`, what `switchyardctl
//! topics apply` creates in production) with the registry's default names and list of compacted topics,
//! sized for one broker. The router refuses to start without `core.events` and `core.events.dlq` and waits
//! for the control topics, so this runs before the router starts. Plugin topics are made only for the four
//! samples: the router does not create them either, and a missing one is a deliberate
//! `plugin_topic_missing` case elsewhere.

use switchyard_registry::config::TopicLayout;
use switchyard_schemas::topics;
use switchyard_service::kafka::topic_plan::{self, PlanInput};

use crate::LoadtestError;
use crate::generate::SAMPLE_PLUGINS;
use crate::kafka::{Created, TopicSpec, clients, create_topics};

/// The demo's topics: the plan for one broker (replication 1) with `core.events` in 6 partitions, every
/// other data topic (`core.events.dlq`, `core.plugin-results`, each sample plugin's events and dead-letter
/// topics) in 3, and each of the registry's compacted topics in 1, as the registry makes them. Created with
/// the fixtures' topic creation, which sets the compaction of the control topics and leaves the other
/// recommended settings (retention, sizes) at the broker's defaults, which suit a demo.
pub fn demo_topics() -> Result<Vec<TopicSpec>, LoadtestError> {
    let layout = TopicLayout::defaults()
        .map_err(|e| LoadtestError::Usage(format!("the registry's default topic names: {e}")))?;
    let plan = topic_plan::recommended(&PlanInput {
        core_events: layout.topics.core_events.clone(),
        core_events_partitions: 6,
        core_events_retention_ms: topic_plan::CORE_EVENTS_RETENTION_MS,
        dead_letters: topics::CORE_EVENTS_DLQ.to_owned(),
        dead_letter_partitions: 3,
        results: PLUGIN_RESULTS.to_owned(),
        results_partitions: 3,
        control_topics: layout.store_topics(),
        control_partitions: 1,
        plugin_events_template: layout.topics.plugin_events_template.clone(),
        plugin_dead_letter_template: layout.topics.plugin_dead_letter_template.clone(),
        plugins: SAMPLE_PLUGINS.iter().map(|p| (*p).to_owned()).collect(),
        plugin_partitions: 3,
        replication_factor: 1,
        min_insync_replicas: None,
        producer_message_max_bytes: topic_plan::LIBRDKAFKA_MESSAGE_MAX_BYTES,
    })
    .map_err(|e| LoadtestError::Usage(format!("the demo's topic plan: {e}")))?;
    Ok(plan
        .into_iter()
        .map(|spec| TopicSpec {
            compacted: spec.is_compacted(),
            name: spec.name,
            partitions: spec.partitions,
        })
        .collect())
}

/// Where plugin workers publish their results.
pub const PLUGIN_RESULTS: &str = topics::PLUGIN_RESULTS;

/// The plugin topic of a sample plugin under the default template.
pub fn plugin_topic(plugin: &str) -> String {
    topics::plugin_events_topic(topics::PLUGIN_EVENTS_TEMPLATE, plugin)
}

/// Creates the demo's topics that do not exist yet; says what it did with each.
pub fn setup_topics(bootstrap: &str) -> Result<Vec<Created>, LoadtestError> {
    Ok(create_topics(&clients(bootstrap), &demo_topics()?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_topics() {
        let specs = demo_topics().unwrap();
        let named = |name: &str| {
            specs
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        assert_eq!(named("core.events").partitions, 6);
        assert_eq!(named("core.events.dlq").partitions, 3);
        assert_eq!(named("core.plugin-results").partitions, 3);
        for plugin in SAMPLE_PLUGINS {
            assert_eq!(named(&plugin_topic(plugin)).partitions, 3);
            assert!(!named(&format!("plugin.{plugin}.dlq")).compacted);
        }
        // Every compacted topic the registry keeps, and only those, compacted.
        let compacted: Vec<&str> = specs
            .iter()
            .filter(|s| s.compacted)
            .map(|s| s.name.as_str())
            .collect();
        let store = TopicLayout::defaults().unwrap().store_topics();
        assert_eq!(compacted, store);
        for topic in [
            "switchyard.plugins",
            "switchyard.enablements",
            "switchyard.backfill-progress",
        ] {
            assert!(compacted.contains(&topic), "{topic}");
        }
        assert!(specs.iter().filter(|s| s.compacted).all(|s| s.partitions == 1));
        assert_eq!(specs.len(), 3 + store.len() + 2 * SAMPLE_PLUGINS.len());
    }
}
