//! Unit tests of [`super`].

use super::*;
use crate::tables::test_support::{enablement, installation, manifest};

fn upsert(table: &RouteTable, enablement: Enablement) {
    table
        .upsert_enablement(&enablement)
        .expect("no filter, or a valid one");
}

fn routed(table: &RouteTable, team: &str, event_type: &str) -> Vec<String> {
    routed_form(table, team, event_type, Some("f-1"))
}

/// `plugin` for the default installation, `plugin/name` for others.
fn routed_form(table: &RouteTable, team: &str, event_type: &str, subject: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    table.route(team, event_type, subject, &mut out);
    out.iter()
        .map(|target| match &target.installation {
            None => target.plugin.id.to_string(),
            Some(name) => format!("{}/{name}", target.plugin.id),
        })
        .collect()
}

#[test]
fn the_routing_rule() {
    let table = RouteTable::new("plugin.{plugin}.events");
    table.upsert_plugin(&manifest("sheets", &["response.submitted", "response.updated"]));
    table.upsert_plugin(&manifest("sms", &["response.submitted"]));
    table.upsert_plugin(&manifest("audit", &["form.created", "custom.thing"]));
    upsert(&table, enablement("acme", "sheets", true, None));
    upsert(
        &table,
        enablement("acme", "sms", true, Some(&["response.submitted"])),
    );
    upsert(&table, enablement("acme", "audit", true, Some(&["custom.thing"])));
    upsert(&table, enablement("globex", "sms", false, None));

    assert_eq!(routed(&table, "acme", "response.submitted"), ["sheets", "sms"]);
    assert_eq!(routed(&table, "acme", "response.updated"), ["sheets"]);
    // audit lists form.created, but acme's filter admits only custom.thing
    assert!(routed(&table, "acme", "form.created").is_empty());
    // unknown types go to the plugins that list them
    assert_eq!(routed(&table, "acme", "custom.thing"), ["audit"]);
    assert!(routed(&table, "acme", "never.seen").is_empty());
    // disabled and absent teams get nothing
    assert!(routed(&table, "globex", "response.submitted").is_empty());
    assert!(routed(&table, "initech", "response.submitted").is_empty());
    assert_eq!(table.enablement_count(), 3);
    assert_eq!(table.plugin_count(), 3);
    let mut out = Vec::new();
    table.route("acme", "response.updated", None, &mut out);
    assert_eq!(&*out[0].plugin.topic, "plugin.sheets.events");
}

#[test]
fn a_filter_naming_a_type_the_plugin_does_not_list_routes_nothing() {
    let table = RouteTable::new("p.{plugin}");
    table.upsert_plugin(&manifest("sms", &["response.submitted"]));
    upsert(&table, enablement("acme", "sms", true, Some(&["form.created"])));
    assert!(routed(&table, "acme", "form.created").is_empty());
    assert!(routed(&table, "acme", "response.submitted").is_empty());
}

#[test]
fn live_changes() {
    let table = RouteTable::new("p.{plugin}");
    // the enablement arrives before the plugin registers
    upsert(&table, enablement("acme", "sms", true, None));
    assert!(routed(&table, "acme", "response.submitted").is_empty());
    table.upsert_plugin(&manifest("sms", &["response.submitted"]));
    assert_eq!(routed(&table, "acme", "response.submitted"), ["sms"]);
    // the plugin drops the type in a new version
    table.upsert_plugin(&manifest("sms", &["response.updated"]));
    assert!(routed(&table, "acme", "response.submitted").is_empty());
    table.upsert_plugin(&manifest("sms", &["response.submitted"]));
    // a filter is added, then replaced
    upsert(
        &table,
        enablement("acme", "sms", true, Some(&["response.updated"])),
    );
    assert!(routed(&table, "acme", "response.submitted").is_empty());
    upsert(&table, enablement("acme", "sms", true, Some(&[])));
    assert_eq!(routed(&table, "acme", "response.submitted"), ["sms"]);
    assert_eq!(table.enablement_count(), 1);
    // deregistration stops routing; registering again resumes it
    table.remove_plugin("sms");
    assert!(routed(&table, "acme", "response.submitted").is_empty());
    assert_eq!(table.plugin_count(), 0);
    table.upsert_plugin(&manifest("sms", &["response.submitted"]));
    assert_eq!(routed(&table, "acme", "response.submitted"), ["sms"]);
    // disable, then tombstone twice: counts never go below zero
    upsert(&table, enablement("acme", "sms", false, None));
    assert!(routed(&table, "acme", "response.submitted").is_empty());
    table.remove_enablement("acme", "sms", "default");
    table.remove_enablement("acme", "unknown-plugin", "default");
    assert_eq!(table.enablement_count(), 0);
    assert!(table.teams.is_empty(), "empty teams are dropped");
    table.remove_plugin("never-registered");
    assert_eq!(table.plugin_count(), 1);
}

#[test]
fn several_installations_of_one_plugin_each_get_a_copy_in_name_order() {
    let table = RouteTable::new("p.{plugin}");
    table.upsert_plugin(&manifest("sheets", &["response.submitted"]));
    table.upsert_plugin(&manifest("sms", &["response.submitted"]));
    upsert(
        &table,
        installation("acme", "sheets", "forms-bc", |e| {
            e.form_ids = Some(vec!["f-c".into(), "f-b".into()]);
        }),
    );
    upsert(&table, enablement("acme", "sms", true, None));
    upsert(&table, installation("acme", "sheets", "all", |_| {}));
    upsert(
        &table,
        installation("acme", "sheets", "default", |e| {
            e.form_ids = Some(vec!["f-a".into()]);
        }),
    );
    assert_eq!(table.enablement_count(), 4);
    let form = |subject| routed_form(&table, "acme", "response.submitted", subject);
    assert_eq!(form(Some("f-a")), ["sheets", "sheets/all", "sms"]);
    assert_eq!(form(Some("f-b")), ["sheets/all", "sheets/forms-bc", "sms"]);
    assert_eq!(form(None), ["sheets/all", "sms"], "form_ids need a ce_subject");
    assert_eq!(form(Some("f-z")), ["sheets/all", "sms"]);

    // Disabling and tombstoning one installation leaves the others.
    upsert(
        &table,
        installation("acme", "sheets", "all", |e| e.enabled = false),
    );
    assert_eq!(form(Some("f-b")), ["sheets/forms-bc", "sms"]);
    table.remove_enablement("acme", "sheets", "forms-bc");
    assert_eq!(form(Some("f-b")), ["sms"]);
    assert_eq!(form(Some("f-a")), ["sheets", "sms"]);
    assert_eq!(table.enablement_count(), 2);
}

#[test]
fn names_are_shared_and_their_slots_reused_only_when_free() {
    let table = RouteTable::new("p.{plugin}");
    table.upsert_plugin(&manifest("sheets", &["response.submitted"]));
    for team in ["acme", "globex"] {
        upsert(&table, installation(team, "sheets", "exports", |_| {}));
    }
    assert_eq!(table.names.read().unwrap().len(), 2, "default + one shared name");
    table.remove_enablement("acme", "sheets", "exports");
    assert_eq!(routed(&table, "globex", "response.submitted"), ["sheets/exports"]);
    table.remove_enablement("globex", "sheets", "exports");
    upsert(&table, installation("acme", "sheets", "other", |_| {}));
    assert_eq!(table.names.read().unwrap().len(), 2, "the freed slot is reused");
    assert_eq!(routed(&table, "acme", "response.submitted"), ["sheets/other"]);
    // Replacing an installation keeps its one hold on the name.
    upsert(
        &table,
        installation("acme", "sheets", "other", |e| {
            e.event_types = Some(vec!["response.submitted".into()]);
        }),
    );
    table.remove_enablement("acme", "sheets", "other");
    assert!(table.writer.lock().unwrap().name_index.is_empty());
    assert_eq!(table.enablement_count(), 0);
}

#[test]
fn filters_are_handed_to_the_caller_and_a_bad_one_removes_the_installation() {
    let table = RouteTable::new("p.{plugin}");
    table.upsert_plugin(&manifest("sms", &["response.submitted"]));
    let city = r#"data.response.answers["q-city"].choice == "nairobi""#;
    for name in ["city", "city-too"] {
        upsert(
            &table,
            installation("acme", "sms", name, |e| e.filter = Some(city.into())),
        );
    }
    let mut out = Vec::new();
    table.route("acme", "response.submitted", None, &mut out);
    let filters: Vec<_> = out.iter().map(|t| t.filter.clone().unwrap()).collect();
    assert_eq!(filters[0].source(), city);
    assert!(Arc::ptr_eq(&filters[0], &filters[1]), "compiled once, shared");
    assert_eq!(table.filtered_count(), 2);

    let broken = installation("acme", "sms", "city", |e| {
        e.filter = Some("data.response.(".into())
    });
    assert!(table.upsert_enablement(&broken).is_err());
    assert_eq!(routed(&table, "acme", "response.submitted"), ["sms/city-too"]);
    assert_eq!((table.enablement_count(), table.filtered_count()), (1, 1));
}

#[test]
fn an_installation_is_24_bytes_and_type_sets_past_31_types_still_route() {
    assert_eq!(std::mem::size_of::<Installed>(), 24);
    let table = RouteTable::new("p.{plugin}");
    let many: Vec<String> = (0..70).map(|i| format!("t.{i}")).collect();
    let many_refs: Vec<&str> = many.iter().map(String::as_str).collect();
    table.upsert_plugin(&manifest("wide", &many_refs));
    upsert(&table, enablement("acme", "wide", true, Some(&["t.2", "t.66"])));
    upsert(&table, enablement("globex", "wide", true, Some(&["t.1"])));
    for (team, event_type, routed_to) in [
        ("acme", "t.2", true),
        ("acme", "t.66", true),
        ("acme", "t.65", false),
        ("acme", "t.1", false),
        ("globex", "t.1", true),
        ("globex", "t.66", false),
    ] {
        assert_eq!(
            !routed(&table, team, event_type).is_empty(),
            routed_to,
            "{team} {event_type}"
        );
    }
}

#[test]
fn form_ids_past_what_the_bloom_filter_tells_apart_are_checked_exactly() {
    let table = RouteTable::new("p.{plugin}");
    table.upsert_plugin(&manifest("sheets", &["response.submitted"]));
    upsert(
        &table,
        installation("acme", "sheets", "many", |e| {
            e.form_ids = Some((0..200).map(|i| format!("f-{i}")).collect());
        }),
    );
    let form = |subject: &str| routed_form(&table, "acme", "response.submitted", Some(subject));
    assert_eq!(form("f-0"), ["sheets/many"]);
    assert_eq!(form("f-199"), ["sheets/many"]);
    for other in ["f-200", "f-1000", "g-0", ""] {
        assert!(form(other).is_empty(), "{other}");
    }
}
