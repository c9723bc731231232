//! Records as the contract describes them: core events, manifests, enablements.

use std::collections::BTreeMap;

use switchyard_schemas::ContentType;
use switchyard_schemas::events::{Answer, FormCreated, Response, ResponseSubmitted, ResponseUpdated};
use switchyard_schemas::payload::encode;
use switchyard_schemas::samples;

use crate::broker::Outgoing;

/// A valid core event with the required headers, `ce_teamid`, `ce_subject`, a `traceparent` and a value
/// of the right schema for the v1 types (an opaque JSON object for other types).
pub fn core_event(team: &str, ce_type: &str, id: &str, content_type: ContentType) -> Outgoing {
    let value = match ce_type {
        "response.submitted" => encode(&response_submitted(team, id), content_type).expect("encode"),
        "form.created" => encode(&form_created(team, id), content_type).expect("encode"),
        "response.updated" => encode(
            &ResponseUpdated {
                response: response_submitted(team, id).response,
                revision: 2,
                updated_by: "user-2".to_owned(),
                updated_at: 1_795_000_100_000,
            },
            content_type,
        )
        .expect("encode"),
        _ => format!(r#"{{"custom":"{id}"}}"#).into_bytes(),
    };
    Outgoing {
        key: Some(team.as_bytes().to_vec()),
        value: Some(value),
        headers: samples::core_event_headers(team, ce_type, id, content_type),
    }
}

/// A `(name, value)` header.
pub fn header(name: &str, value: &str) -> (String, Option<Vec<u8>>) {
    (name.to_owned(), Some(value.as_bytes().to_vec()))
}

/// A `response.submitted` event with a few typed answers.
pub fn response_submitted(team: &str, id: &str) -> ResponseSubmitted {
    let mut answers = BTreeMap::new();
    answers.insert(
        "name".to_owned(),
        Some(Answer::Text {
            text: "Wanjiru".to_owned(),
        }),
    );
    answers.insert("income".to_owned(), Some(Answer::Number { number: 4200.0 }));
    answers.insert(
        "phone".to_owned(),
        Some(Answer::Phone {
            phone: "+254712345678".to_owned(),
        }),
    );
    ResponseSubmitted {
        response: Response {
            id: id.to_owned(),
            form_id: "form-1".to_owned(),
            form_version: 1,
            team_id: team.to_owned(),
            collector_id: "collector-1".to_owned(),
            submitted_at: 1_795_000_000_000,
            locale: "sw-KE".to_owned(),
            answers,
            duration_ms: Some(61_000),
        },
    }
}

/// A `form.created` event (the schemas' sample).
pub fn form_created(team: &str, id: &str) -> FormCreated {
    switchyard_schemas::samples::form_created(team, id)
}

/// A plugin manifest record for `switchyard.plugins`.
pub fn manifest(plugin: &str, events: &[&str]) -> Outgoing {
    let value = serde_json::json!({
        "id": plugin, "name": plugin, "description": "test plugin", "version": "1.0.0",
        "events": events, "actions": []
    });
    Outgoing {
        key: Some(plugin.as_bytes().to_vec()),
        value: Some(value.to_string().into_bytes()),
        headers: vec![],
    }
}

/// An enablement record for `switchyard.enablements`.
pub fn enablement(team: &str, plugin: &str, enabled: bool, event_types: Option<&[&str]>) -> Outgoing {
    let mut value = serde_json::json!({
        "team_id": team, "plugin_id": plugin, "enabled": enabled, "updated_at": "2026-11-22T10:00:00Z"
    });
    if let Some(types) = event_types {
        value["event_types"] = serde_json::json!(types);
    }
    Outgoing {
        key: Some(format!("{team}/{plugin}").into_bytes()),
        value: Some(value.to_string().into_bytes()),
        headers: vec![],
    }
}

/// An enablement record of installation `installation` of `plugin` by `team` (key `<team>/<plugin>` for
/// `default`, `<team>/<plugin>/<installation>` otherwise), with `fields` (`form_ids`, `filter`,
/// `event_types`, ...) added to the value.
pub fn installation(
    team: &str,
    plugin: &str,
    installation: &str,
    enabled: bool,
    fields: serde_json::Value,
) -> Outgoing {
    let mut value = serde_json::json!({
        "team_id": team, "plugin_id": plugin, "enabled": enabled, "updated_at": "2026-12-05T10:00:00Z"
    });
    if installation != switchyard_schemas::ids::DEFAULT_INSTALLATION {
        value["installation"] = serde_json::json!(installation);
    }
    if let (Some(value), serde_json::Value::Object(fields)) = (value.as_object_mut(), fields) {
        value.extend(fields);
    }
    Outgoing {
        key: Some(switchyard_schemas::control::installation_key(team, plugin, installation).into_bytes()),
        value: Some(value.to_string().into_bytes()),
        headers: vec![],
    }
}

/// A tombstone (null value) for `key`.
pub fn tombstone(key: &str) -> Outgoing {
    Outgoing {
        key: Some(key.as_bytes().to_vec()),
        value: None,
        headers: vec![],
    }
}
