//! The records of the compacted `switchyard.configs` topic: a team's config of one plugin, written by the
//! registry and read by the plugin's workers (`docs/contract.md`, section 7.4).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::DEFAULT_INSTALLATION;
use crate::sealed::{Binding, PluginKey, SealError, Sealed, open_fields};

/// A team's config of one installation of a plugin, the value of a `switchyard.configs` record keyed as
/// its enablement: `<team>/<plugin>` for the default installation, `<team>/<plugin>/<installation>`
/// otherwise ([`crate::control::parse_installation_key`]). Plugin workers read this topic and apply each
/// record as `initialize(team, installation, config)`. A registry with master keys seals the secret fields
/// ([`crate::sealed`]): they leave `config` for `sealed`, and [`ConfigRecord::opened`] puts them back for
/// a reader that holds the plugin's keys. A record without `sealed` holds its secrets in clear, as every
/// record did before sealing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// Team id.
    pub team_id: String,
    /// Plugin id.
    pub plugin_id: String,
    /// Installation id, the key's third part; absent for the default installation, so a v1 record writes
    /// back byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
    /// The config, valid against the plugin's `config_schema` when it was written, less its sealed fields.
    pub config: serde_json::Value,
    /// The sealed secret fields, by JSON pointer into `config`; absent when none is sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<BTreeMap<String, Sealed>>,
    /// The manifest version it was validated against.
    pub plugin_version: String,
    /// RFC 3339 time of the change.
    pub updated_at: String,
}

impl ConfigRecord {
    /// The installation id: the field, or [`DEFAULT_INSTALLATION`] when absent.
    pub fn installation(&self) -> &str {
        self.installation.as_deref().unwrap_or(DEFAULT_INSTALLATION)
    }

    /// What the associated data of its sealed fields binds them to.
    pub fn binding(&self) -> Binding<'_> {
        Binding {
            team: &self.team_id,
            plugin: &self.plugin_id,
            installation: self.installation(),
        }
    }

    /// The whole config: `config` with every sealed field opened with `keys` and put back.
    pub fn opened(&self, keys: &[PluginKey]) -> Result<serde_json::Value, SealError> {
        match &self.sealed {
            Some(sealed) if !sealed.is_empty() => open_fields(keys, self.binding(), &self.config, sealed),
            _ => Ok(self.config.clone()),
        }
    }

    /// Whether a field is sealed.
    pub fn is_sealed(&self) -> bool {
        self.sealed.as_ref().is_some_and(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_form_reads_and_writes_unchanged() {
        let text = r#"{"team_id":"acme","plugin_id":"sheets","config":{"sheet":"x"},"plugin_version":"1.2.0","updated_at":"2026-01-02T03:04:05Z"}"#;
        let record: ConfigRecord = serde_json::from_str(text).unwrap();
        assert_eq!(record.config["sheet"], "x");
        assert_eq!(record.installation(), DEFAULT_INSTALLATION);
        assert_eq!(serde_json::to_string(&record).unwrap(), text);
    }

    #[test]
    fn a_named_installation_says_so() {
        let text = r#"{"team_id":"acme","plugin_id":"sheets","installation":"forms-bc","config":{},"plugin_version":"1.2.0","updated_at":"2026-01-02T03:04:05Z"}"#;
        let record: ConfigRecord = serde_json::from_str(text).unwrap();
        assert_eq!(record.installation(), "forms-bc");
        assert_eq!(serde_json::to_string(&record).unwrap(), text);
    }
}
