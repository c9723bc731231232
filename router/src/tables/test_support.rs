//! Control records and routing tables for the router's unit tests.

use switchyard_schemas::control::{Enablement, PluginManifest};

use std::sync::Arc;

use crate::pipeline::plan::Output;
use crate::tables::routes::RouteTable;

/// A manifest of plugin `id`, version 1.0.0, subscribed to `events`.
pub fn manifest(id: &str, events: &[&str]) -> PluginManifest {
    PluginManifest {
        id: id.into(),
        name: id.into(),
        description: String::new(),
        version: semver::Version::new(1, 0, 0),
        url: None,
        events: events.iter().map(|s| s.to_string()).collect(),
        actions: vec![],
        config_schema: None,
        contract: None,
        signature: None,
        delivery: Default::default(),
    }
}

/// `team`'s enablement of `plugin`, for `types` (`None`: every type of the manifest).
pub fn enablement(team: &str, plugin: &str, enabled: bool, types: Option<&[&str]>) -> Enablement {
    Enablement {
        team_id: team.into(),
        plugin_id: plugin.into(),
        installation: None,
        form_ids: None,
        filter: None,
        backfill: None,
        enabled,
        event_types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
        updated_at: "2026-11-22T10:00:00Z".into(),
    }
}

/// `team`'s enabled installation `name` of `plugin` for every type, changed by `change`.
pub fn installation(
    team: &str,
    plugin: &str,
    name: &str,
    change: impl FnOnce(&mut Enablement),
) -> Enablement {
    let mut enablement = enablement(team, plugin, true, None);
    if name != switchyard_schemas::ids::DEFAULT_INSTALLATION {
        enablement.installation = Some(name.into());
    }
    change(&mut enablement);
    enablement
}

/// A table (topics `plugin.{plugin}.events`) in which `team` enabled each plugin of `plugins`, given as
/// (id, the event types of its manifest).
pub fn table(team: &str, plugins: &[(&str, &[&str])]) -> RouteTable {
    let table = RouteTable::new("plugin.{plugin}.events");
    for (id, events) in plugins {
        table.upsert_plugin(&manifest(id, events));
        table
            .upsert_enablement(&enablement(team, id, true, None))
            .expect("no filter");
    }
    table
}

/// A plan's copy of an event for plugin `id` (subscribed to `response.submitted`) and `installation`
/// (`None`: the default one).
pub fn plugin_output(id: &str, installation: Option<&str>) -> Output {
    let table = table("acme", &[(id, &["response.submitted"])]);
    let mut targets = Vec::new();
    table.route("acme", "response.submitted", None, &mut targets);
    let target = targets.pop().expect("the plugin is routed");
    Output::Plugin {
        route: target.plugin,
        installation: installation.map(Arc::from),
    }
}
