//! Writes the seed corpora, `corpus/<target>/seed-*`: a few valid inputs per target, built from the same
//! samples as the tests and benchmarks (`switchyard_schemas::samples`) and the registry's config-schema tests.
//!
//! ```text
//! cd schemas/fuzz && cargo +nightly run --example seeds
//! ```

use std::fs;
use std::path::Path;

use serde_json::json;
use switchyard_fuzz::config_schema::cost::any_of_chain;
use switchyard_fuzz::{Record, revisions};
use switchyard_schemas::ContentType;
use switchyard_schemas::catalog::EventType;
use switchyard_schemas::envelope as h;
use switchyard_schemas::events::{CoreEvent, FormCreated, FormUpdated, ResponseSubmitted, ResponseUpdated};
use switchyard_schemas::payload::encode;
use switchyard_schemas::samples;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("create the corpus folder");
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
    };

    // envelope: records as the router reads them.
    for (name, ce_type, content_type) in [
        ("response-submitted-avro", "response.submitted", ContentType::Avro),
        ("form-created-json", "form.created", ContentType::Json),
        ("custom-type-json", "payment.received", ContentType::Json),
    ] {
        write(
            "envelope",
            name,
            &core_event("acme", ce_type, "evt-1", content_type).encode(),
        );
    }
    let mut minimal = core_event("acme", "response.updated", "evt-2", ContentType::Avro);
    minimal.headers.retain(|(name, _)| {
        [h::SPECVERSION, h::ID, h::SOURCE, h::TYPE, h::CONTENT_TYPE].contains(&name.as_str())
    });
    write("envelope", "minimal-headers", &minimal.encode());
    let mut no_key = core_event("acme", "form.updated", "evt-3", ContentType::Json);
    no_key.key = None;
    write("envelope", "no-key", &no_key.encode());

    // avro: the first byte picks the revision, the rest is the body.
    for (index, revision) in revisions().iter().enumerate() {
        if revision.revision != "current" {
            continue;
        }
        let value = event_value(revision.event_type, ContentType::Avro);
        let mut input = vec![u8::try_from(index).expect("few revisions")];
        input.extend_from_slice(&value[10..]);
        write("avro", revision.event_type.as_str(), &input);
    }

    // json: the first byte picks the event type.
    for (index, event_type) in EventType::ALL.into_iter().enumerate() {
        let mut input = vec![u8::try_from(index).expect("four types")];
        input.extend_from_slice(&event_value(event_type, ContentType::Json));
        write("json", event_type.as_str(), &input);
    }

    // manifest and enablement: key, newline, value.
    let manifests = [
        (
            "sheets-export",
            json!({"id": "sheets-export", "name": "Sheets export", "version": "1.2.0",
                "url": "https://sheets.plugins.example", "events": ["response.submitted"], "actions": ["resync"],
                "config_schema": {"type": "object", "properties": {"token": {"type": "string", "writeOnly": true}}},
                "future_field": 42}),
        ),
        (
            "audit",
            json!({"id": "audit", "name": "Audit", "version": "0.1.0-beta.1+build.5", "events": ["form.created"]}),
        ),
        (
            "sms-notify",
            json!({"id": "sms-notify", "name": "sms-notify", "description": "test plugin", "version": "1.0.0",
                "events": ["response.submitted", "response.updated"], "actions": []}),
        ),
    ];
    for (key, value) in manifests {
        write("manifest", key, &keyed(key, &value));
    }
    let enablements = [
        (
            "acme/sms-notify",
            json!({"team_id": "acme", "plugin_id": "sms-notify", "enabled": true,
                "event_types": ["response.submitted"], "updated_at": "2026-11-22T10:00:00Z"}),
        ),
        (
            "team.b_2/audit",
            json!({"team_id": "team.b_2", "plugin_id": "audit", "enabled": false,
                "updated_at": "2026-11-22T10:00:00.123+03:00"}),
        ),
        (
            "acme/sheets-export",
            json!({"team_id": "acme", "plugin_id": "sheets-export", "enabled": true, "event_types": [],
                "updated_at": "2026-01-01T00:00:00Z", "future_field": null}),
        ),
        (
            "acme/sheets-export/forms-bc",
            json!({"team_id": "acme", "plugin_id": "sheets-export", "installation": "forms-bc",
                "enabled": true, "form_ids": ["f-b", "f-c"],
                "filter": "data.response.answers[\"q-city\"].choice == \"nairobi\"",
                "updated_at": "2026-01-01T00:00:00Z"}),
        ),
    ];
    for (key, value) in enablements {
        write("enablement", &key.replace('/', "-"), &keyed(key, &value));
    }

    // team_config, text mode: schema NUL config NUL previous config.
    let sheets = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Google Sheets export",
        "type": "object",
        "required": ["spreadsheet_id", "service_account_key"],
        "additionalProperties": false,
        "properties": {
            "spreadsheet_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{10,}$"},
            "sheet_name": {"type": "string", "default": "Events", "maxLength": 100},
            "service_account_key": {"type": "string", "writeOnly": true, "minLength": 20, "pattern": "^[a-z0-9-]+$"},
            "recipients": {"type": "array", "items": {"type": "string", "format": "email"}},
            "sms": {
                "type": "object",
                "required": ["provider"],
                "additionalProperties": false,
                "properties": {
                    "provider": {"enum": ["twilio", "vonage"]},
                    "api_token": {"type": "string", "writeOnly": true, "minLength": 20}
                }
            }
        }
    });
    let config = json!({
        "spreadsheet_id": "1AbCdEfGhIjKlMnOp",
        "sheet_name": "Signups",
        "recipients": ["ops@example.com", "not an address"],
        "sms": {"provider": "twilio", "api_token": "hunter2"}
    });
    let previous =
        json!({"spreadsheet_id": "1AbCdEfGhIjKlMnOp", "service_account_key": "0123456789-abcdef-0123456789"});
    write("team_config", "sheets", &parts(&[&sheets, &config, &previous]));
    let refs = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"token": {"type": "string", "writeOnly": true, "minLength": 8}},
        "type": "object",
        "properties": {
            "token": {"$ref": "#/definitions/token"},
            "a/b~c": {"writeOnly": true},
            "nested": {"type": "object", "properties": {"key": {"$ref": "#/definitions/token"}}},
            "list": {"type": "array", "items": {"type": "string", "writeOnly": true}, "maxItems": 2}
        },
        "oneOf": [{"required": ["token"]}, {"required": ["nested"]}]
    });
    let refs_config = json!({"token": null, "nested": {"key": 5}, "list": ["x", "y", "z"], "a/b~c": {}});
    write("team_config", "refs", &parts(&[&refs, &refs_config]));
    let schema_only =
        json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "multipleOf": 3}}});
    write("team_config", "schema-only", schema_only.to_string().as_bytes());
    // The adversarial review's schema (registry/src/config_schema/cost.rs): 26 levels are refused at
    // compile time, 11 stay under the bound and are validated; and a subschema reaching itself in place.
    write("team_config", "chain-26", &parts(&[&any_of_chain(26), &json!({})]));
    write("team_config", "chain-11", &parts(&[&any_of_chain(11), &json!("ab")]));
    write(
        "team_config",
        "self-reference",
        &parts(&[&json!({"anyOf": [{"type": "string"}, {"$ref": "#"}]}), &json!(1)]),
    );
    // Structured (arbitrary) mode: any input that does not start with '{'.
    write(
        "team_config",
        "structured",
        &(0u8..=255).rev().chain(0u8..=255).collect::<Vec<_>>(),
    );
}

fn keyed(key: &str, value: &serde_json::Value) -> Vec<u8> {
    let mut out = key.as_bytes().to_vec();
    out.push(b'\n');
    out.extend_from_slice(value.to_string().as_bytes());
    out
}

fn parts(values: &[&serde_json::Value]) -> Vec<u8> {
    let texts: Vec<String> = values
        .iter()
        .map(|v| serde_json::to_string_pretty(v).expect("JSON"))
        .collect();
    texts.join("\0").into_bytes()
}

fn core_event(team: &str, ce_type: &str, id: &str, content_type: ContentType) -> Record {
    let value = match EventType::from_ce_type(ce_type) {
        Some(known) => event_value(known, content_type),
        None => format!(r#"{{"custom":"{id}"}}"#).into_bytes(),
    };
    Record {
        key: Some(team.as_bytes().to_vec()),
        headers: samples::core_event_headers(team, ce_type, id, content_type),
        value: Some(value),
    }
}

fn event_value(event_type: EventType, content_type: ContentType) -> Vec<u8> {
    fn bytes<E: CoreEvent>(event: &E, content_type: ContentType) -> Vec<u8> {
        encode(event, content_type).expect("a fixture encodes")
    }
    match event_type {
        EventType::FormCreated => bytes(&form_created(), content_type),
        EventType::FormUpdated => bytes(
            &FormUpdated {
                form: form_created().form,
                previous_version: 1,
                updated_by: "user-2".to_owned(),
            },
            content_type,
        ),
        EventType::ResponseSubmitted => bytes(&response_submitted(), content_type),
        EventType::ResponseUpdated => bytes(
            &ResponseUpdated {
                response: response_submitted().response,
                revision: 2,
                updated_by: "user-2".to_owned(),
                updated_at: 1_795_000_100_000,
            },
            content_type,
        ),
    }
}

fn response_submitted() -> ResponseSubmitted {
    samples::response_every_answer_kind("acme", "resp-1")
}

fn form_created() -> FormCreated {
    samples::form_created("acme", "1")
}
