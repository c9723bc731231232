//! The topics a local Switchyard needs for the demo, with the contract's default names, and the
//! `setup-topics` step that creates them.
//!
//! The router refuses to start without `core.events` and `core.events.dlq` and waits for the control
//! topics, so this runs before the router starts. It never creates plugin topics for plugins other than
//! the four samples: the router does not create them either, and a missing one is a deliberate
//! `plugin_topic_missing` case elsewhere.

use switchyard_schemas::topics;

use crate::LoadtestError;
use crate::generate::SAMPLE_PLUGINS;
use crate::kafka::{Created, TopicSpec, clients, create_topics};

/// The demo's topics: `core.events` (6 partitions), `core.events.dlq` (3), the compacted
/// `switchyard.plugins` (1), `switchyard.enablements` (3) and `switchyard.backfill-progress` (3),
/// `core.plugin-results` (3), and a 3-partition
/// topic per sample plugin.
pub fn demo_topics() -> Vec<TopicSpec> {
    let spec = |name: &str, partitions: i32, compacted: bool| TopicSpec {
        name: name.to_owned(),
        partitions,
        compacted,
    };
    let mut specs = vec![
        spec(topics::CORE_EVENTS, 6, false),
        spec(topics::CORE_EVENTS_DLQ, 3, false),
        spec(topics::PLUGINS, 1, true),
        spec(topics::ENABLEMENTS, 3, true),
        spec(topics::BACKFILL_PROGRESS, 3, true),
        spec(PLUGIN_RESULTS, 3, false),
    ];
    specs.extend(SAMPLE_PLUGINS.iter().map(|plugin| {
        spec(
            &topics::plugin_events_topic(topics::PLUGIN_EVENTS_TEMPLATE, plugin),
            3,
            false,
        )
    }));
    specs
}

/// Where plugin workers publish their results.
pub const PLUGIN_RESULTS: &str = "core.plugin-results";

/// The plugin topic of a sample plugin under the default template.
pub fn plugin_topic(plugin: &str) -> String {
    topics::plugin_events_topic(topics::PLUGIN_EVENTS_TEMPLATE, plugin)
}

/// Creates the demo's topics that do not exist yet; says what it did with each.
pub fn setup_topics(bootstrap: &str) -> Result<Vec<Created>, LoadtestError> {
    Ok(create_topics(&clients(bootstrap), &demo_topics())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_topics() {
        let specs = demo_topics();
        assert_eq!(specs.len(), 10);
        assert!(
            specs
                .iter()
                .any(|s| s.name == "plugin.rules-validate.events" && s.partitions == 3)
        );
        let compacted: Vec<_> = specs
            .iter()
            .filter(|s| s.compacted)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            compacted,
            [
                "switchyard.plugins",
                "switchyard.enablements",
                "switchyard.backfill-progress"
            ]
        );
    }
}
