//! `sheets-export`: every response becomes a row of a Google Sheet, one column per question.
//!
//! # Pieces
//!
//! * [`auth`]: the OAuth 2.0 service-account flow ([`ServiceAccountKey`] → [`TokenSource`] → cached
//!   access tokens).
//! * [`client`]: [`SheetsClient`], the Sheets API v4 calls used (read, update, batch-update and append
//!   values; list and add sheets), with Google's errors classified for the delivery engine.
//! * [`layout`]: [`Layout`], the columns of a form and how a response renders as a row.
//! * [`index`]: [`RowIndex`], the row of each response in a sheet, so that a response keeps one row.
//! * [`export`]: [`SheetsExporter`] over a [`Target`]: [`GoogleSheets`] (`google.rs`) or, for the demo,
//!   [`CsvTarget`] (`csv_target.rs`).
//!
//! The in-process Sheets API and token endpoint that tests and the demo use in place of Google are not
//! part of the plugin: they are [`crate::fakes::sheets`].
//!
//! # Per-installation config
//!
//! The registry validates each config against [`config_schema`]; the plugin turns it into a
//! [`SheetsConfig`] with [`SheetsConfig::from_json`] when the config is applied, so a bad key is
//! reported then rather than on the first response. `service_account_key` is optional in the schema
//! because a deployment exporting to CSV needs none; [`GoogleSheets::configure_installation`] requires
//! it.
//!
//! A team may install the plugin several times (the manifest says `installations: true`): each
//! installation has its own config, so its own spreadsheet, and its own slice of the team's events. The
//! exporter's forms, layouts and row indexes and the Google target's spreadsheets are kept per (team,
//! installation); the CSV target writes a named installation's files in a directory of their own. The
//! default installation's sheets and files are where they were before installations existed.
//!
//! # One tab per form
//!
//! An installation names one spreadsheet; each of the team's forms gets its own sheet (tab) in it,
//! titled `<sheet_name> - <form_id>` ([`GoogleSheets::tab_title`]) and created on first use, because
//! forms have different columns. Two installations naming the same spreadsheet and `sheet_name` would
//! write the same tabs (a response's row overwritten by either): give each its own.

pub mod a1;
pub mod auth;
pub mod client;
mod csv;
mod csv_target;
mod error;
pub mod export;
mod google;
pub mod index;
pub mod layout;

use serde_json::{Map, Value, json};

pub use self::auth::{AccessToken, ServiceAccountKey, TokenSource};
pub use self::client::{
    AppendValuesResponse, BatchUpdateValuesResponse, SheetsClient, UpdateValuesResponse, ValueRange,
};
pub use self::csv_target::CsvTarget;
pub use self::error::{ConfigError, ExportError, SheetsError};
pub use self::export::{Appended, BatchResult, ExportEvent, ExportOutcome, SheetRef, SheetsExporter, Target};
pub use self::google::GoogleSheets;
pub use self::index::RowIndex;
pub use self::layout::Layout;

/// Longest `sheet_name` accepted; the tab title adds the form id to it.
const MAX_SHEET_NAME_CHARS: usize = 50;

/// The JSON Schema (draft 2020-12) of a team's sheets-export config.
pub fn config_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "sheets-export",
        "description": "Exports every response as a row of a Google Sheet, one tab per form.",
        "type": "object",
        "additionalProperties": false,
        "required": ["spreadsheet_id"],
        "properties": {
            "spreadsheet_id": {
                "type": "string",
                "description": "The id in the spreadsheet's URL: docs.google.com/spreadsheets/d/<id>/edit. \
                                Share the spreadsheet with the service account's email as an editor.",
                "minLength": 1,
                "maxLength": 200,
                "pattern": "^[A-Za-z0-9_-]+$"
            },
            "sheet_name": {
                "type": "string",
                "description": "Prefix of the tab titles: each form writes to the tab \
                                '<sheet_name> - <form id>'.",
                "default": SheetsConfig::DEFAULT_SHEET_NAME,
                "minLength": 1,
                "maxLength": MAX_SHEET_NAME_CHARS
            },
            "service_account_key": {
                "type": "string",
                "description": "The service account's JSON key file, as a string.",
                "writeOnly": true,
                "minLength": 1
            }
        }
    })
}

/// A team's sheets-export config.
#[derive(Debug, Clone)]
pub struct SheetsConfig {
    /// The spreadsheet the team's responses go to.
    pub spreadsheet_id: String,
    /// Prefix of each form's tab title.
    pub sheet_name: String,
    /// The service account to write as; required by the Google target, not by the CSV one.
    pub service_account_key: Option<ServiceAccountKey>,
}

impl SheetsConfig {
    /// `sheet_name` when the config does not give one.
    pub const DEFAULT_SHEET_NAME: &str = "Responses";

    /// Reads a config the registry validated, checking again what the schema says and that the key is
    /// a usable RSA key. Error messages name the field, never its value.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a missing, mistyped, unknown or unusable field.
    pub fn from_json(config: &Value) -> Result<Self, ConfigError> {
        let object = config.as_object().ok_or_else(|| ConfigError {
            field: "config",
            reason: "it is not a JSON object".to_owned(),
        })?;
        if let Some(unknown) = object.keys().find(|k| {
            !matches!(
                k.as_str(),
                "spreadsheet_id" | "sheet_name" | "service_account_key"
            )
        }) {
            return Err(ConfigError {
                field: "config",
                reason: format!("the field {unknown:?} is not known"),
            });
        }
        let spreadsheet_id = string_field(object, "spreadsheet_id")?.ok_or_else(|| ConfigError {
            field: "spreadsheet_id",
            reason: "it is required".to_owned(),
        })?;
        if spreadsheet_id.is_empty()
            || spreadsheet_id.len() > 200
            || !spreadsheet_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        {
            return Err(ConfigError {
                field: "spreadsheet_id",
                reason: "it must be 1 to 200 ASCII letters, digits, '_' or '-'".to_owned(),
            });
        }
        let sheet_name = string_field(object, "sheet_name")?.unwrap_or(Self::DEFAULT_SHEET_NAME);
        let length = sheet_name.chars().count();
        if length == 0 || length > MAX_SHEET_NAME_CHARS || sheet_name.chars().any(char::is_control) {
            return Err(ConfigError {
                field: "sheet_name",
                reason: format!(
                    "it must be 1 to {MAX_SHEET_NAME_CHARS} characters without control characters"
                ),
            });
        }
        let service_account_key = string_field(object, "service_account_key")?
            .map(|text| {
                ServiceAccountKey::from_json(text).map_err(|error| ConfigError {
                    field: "service_account_key",
                    reason: match error {
                        SheetsError::InvalidKey { reason } => reason,
                        other => other.to_string(),
                    },
                })
            })
            .transpose()?;
        Ok(Self {
            spreadsheet_id: spreadsheet_id.to_owned(),
            sheet_name: sheet_name.to_owned(),
            service_account_key,
        })
    }
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ConfigError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ConfigError {
            field,
            reason: "it must be a string".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE_KEY: &str = include_str!("../../testdata/demo_key.pem");

    #[test]
    fn configs_are_read_with_defaults() {
        let key = json!({"client_email": "e@x", "private_key": PRIVATE_KEY}).to_string();
        let config =
            SheetsConfig::from_json(&json!({"spreadsheet_id": "1AbC_d-9", "service_account_key": key}))
                .unwrap();
        assert_eq!(config.sheet_name, "Responses");
        assert_eq!(
            config.service_account_key.unwrap().token_uri,
            auth::GOOGLE_TOKEN_URI
        );
        let bare = SheetsConfig::from_json(&json!({"spreadsheet_id": "x", "sheet_name": "Data"})).unwrap();
        assert!(bare.service_account_key.is_none());
        assert_eq!(bare.sheet_name, "Data");
    }

    #[test]
    fn bad_configs_name_the_field_but_not_the_value() {
        let cases = [
            (json!([]), "config"),
            (json!({"sheet_name": "x"}), "spreadsheet_id"),
            (json!({"spreadsheet_id": "a/b"}), "spreadsheet_id"),
            (json!({"spreadsheet_id": "a", "sheet_name": ""}), "sheet_name"),
            (json!({"spreadsheet_id": "a", "extra": 1}), "config"),
            (
                json!({"spreadsheet_id": "a", "service_account_key": "{\"private_key\": \"TOPSECRET\"}"}),
                "service_account_key",
            ),
            (
                json!({"spreadsheet_id": "a", "service_account_key": 5}),
                "service_account_key",
            ),
        ];
        for (config, field) in cases {
            let error = SheetsConfig::from_json(&config).unwrap_err();
            assert_eq!(error.field, field, "{config}");
            assert!(!error.to_string().contains("TOPSECRET"), "{error}");
            assert_eq!(error.disposition(), crate::Disposition::DeadLetter);
        }
    }

    #[test]
    fn the_schema_marks_the_key_write_only() {
        let schema = config_schema();
        assert_eq!(
            schema["properties"]["service_account_key"]["writeOnly"],
            json!(true)
        );
        assert_eq!(schema["properties"]["sheet_name"]["default"], json!("Responses"));
        assert_eq!(schema["required"], json!(["spreadsheet_id"]));
    }
}
