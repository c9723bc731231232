//! Default topic names of the contract. Every component makes them configurable.

/// Input: core events, partitioned, key = team id.
pub const CORE_EVENTS: &str = "core.events";
/// Compacted: key = plugin id, value = manifest JSON, null = deregistered.
pub const PLUGINS: &str = "switchyard.plugins";
/// Compacted: key = `<team id>/<plugin id>[/<installation id>]`, value = enablement JSON, null = removed.
pub const ENABLEMENTS: &str = "switchyard.enablements";
/// What the router could not accept or deliver.
pub const CORE_EVENTS_DLQ: &str = "core.events.dlq";
/// Default template of a plugin's topic; `{plugin}` is replaced by the plugin id.
pub const PLUGIN_EVENTS_TEMPLATE: &str = "plugin.{plugin}.events";
/// Default template of a plugin's dead-letter topic, written by its workers.
pub const PLUGIN_DEAD_LETTER_TEMPLATE: &str = "plugin.{plugin}.dlq";
/// Compacted: key = `<team id>/<plugin id>[/<installation id>]`, value = [`crate::configs::ConfigRecord`],
/// null = removed.
pub const CONFIGS: &str = "switchyard.configs";
/// Plugin results: CloudEvents the workers write back, key = team id.
pub const PLUGIN_RESULTS: &str = "core.plugin-results";

/// The topic a plugin's events go to under a template such as [`PLUGIN_EVENTS_TEMPLATE`].
pub fn plugin_events_topic(template: &str, plugin_id: &str) -> String {
    template.replace("{plugin}", plugin_id)
}

/// The `switchyard_source` header value: `<topic>/<partition>/<offset>` of the input record.
pub fn source_header(topic: &str, partition: i32, offset: i64) -> String {
    format!("{topic}/{partition}/{offset}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            plugin_events_topic(PLUGIN_EVENTS_TEMPLATE, "sms-notify"),
            "plugin.sms-notify.events"
        );
        assert_eq!(source_header(CORE_EVENTS, 3, 42), "core.events/3/42");
    }
}
