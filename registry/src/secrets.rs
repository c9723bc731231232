//! The master keys that seal the secret fields of team configs (`secrets.master_keys`), and what the
//! registry does with them: seal a config's secret fields before writing it, open a stored config to
//! merge its secrets, and hand each plugin its own keys at registration ([`switchyard_schemas::sealed`]
//! has the scheme). The first key seals; the others only open, while a rotation re-seals what they
//! sealed.

use switchyard_schemas::configs::ConfigRecord;
use switchyard_schemas::sealed::{MasterKey, PluginKey, SealError, seal_fields};

/// The configured master keys, the sealing one first; none = secrets are stored in clear, as before
/// sealing existed.
#[derive(Clone, Debug, Default)]
pub struct ConfigSecrets {
    masters: Vec<MasterKey>,
}

impl ConfigSecrets {
    /// Parses the `<id>:<base64>` master keys; ids must be unique.
    pub fn parse(keys: &[&str]) -> Result<Self, SealError> {
        let masters = keys
            .iter()
            .map(|k| MasterKey::parse(k))
            .collect::<Result<Vec<_>, _>>()?;
        for (index, key) in masters.iter().enumerate() {
            if masters[..index].iter().any(|k| k.id() == key.id()) {
                return Err(SealError::KeyText(format!("the id {:?} appears twice", key.id())));
            }
        }
        Ok(Self { masters })
    }

    /// Whether any master key is configured.
    pub fn enabled(&self) -> bool {
        !self.masters.is_empty()
    }

    /// The id of the sealing key.
    pub fn current_id(&self) -> Option<&str> {
        self.masters.first().map(MasterKey::id)
    }

    /// Every key id, the sealing one first.
    pub fn ids(&self) -> Vec<String> {
        self.masters.iter().map(|m| m.id().to_owned()).collect()
    }

    /// The plugin's keys under every master key, the sealing one first: what its workers open with.
    pub fn plugin_keys(&self, plugin: &str) -> Vec<PluginKey> {
        self.masters.iter().map(|m| m.plugin_key(plugin)).collect()
    }

    /// The record's whole config, its sealed fields opened.
    pub fn open(&self, record: &ConfigRecord) -> Result<serde_json::Value, SealError> {
        record.opened(&self.plugin_keys(&record.plugin_id))
    }

    /// Seals the fields at `pointers` of the record's (clear) config with the sealing key; without master
    /// keys the record stays clear.
    pub fn seal(&self, record: &mut ConfigRecord, pointers: &[String]) {
        let Some(master) = self.masters.first() else {
            return;
        };
        let key = master.plugin_key(&record.plugin_id);
        let (team, plugin) = (record.team_id.clone(), record.plugin_id.clone());
        let installation = record.installation().to_owned();
        let binding = switchyard_schemas::sealed::Binding {
            team: &team,
            plugin: &plugin,
            installation: &installation,
        };
        let sealed = seal_fields(&key, binding, &mut record.config, pointers);
        record.sealed = (!sealed.is_empty()).then_some(sealed);
    }

    /// Whether the record needs sealing again: a field sealed with another key than the sealing one, or
    /// (with master keys) a secret field held in clear among `pointers`.
    pub fn needs_reseal(&self, record: &ConfigRecord, pointers: &[String]) -> bool {
        let Some(current) = self.current_id() else {
            return false;
        };
        let stale = record
            .sealed
            .iter()
            .flatten()
            .any(|(_, sealed)| sealed.key_id != current);
        let clear = pointers
            .iter()
            .any(|p| record.config.pointer(p).is_some_and(|v| !v.is_null()));
        stale || clear
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const OLD: &str = "2026-12:c3dpdGNoeWFyZC10ZXN0LW1hc3Rlci1rZXktMzJieXQ=";
    const NEW: &str = "2027-01:bmV3LW1hc3Rlci1rZXktb2YtdGhpcnR5LXR3by1ieXQ=";

    fn record(config: serde_json::Value) -> ConfigRecord {
        ConfigRecord {
            team_id: "acme".into(),
            plugin_id: "sms-notify".into(),
            installation: None,
            config,
            sealed: None,
            plugin_version: "1.0.0".into(),
            updated_at: "2026-12-05T00:00:00Z".into(),
        }
    }

    #[test]
    fn seal_open_and_what_a_rotation_must_reseal() {
        let pointers = vec!["/auth_token".to_owned()];
        let old = ConfigSecrets::parse(&[OLD]).unwrap();
        let mut sealed = record(json!({"from": "S", "auth_token": "tok"}));
        assert!(old.needs_reseal(&sealed, &pointers), "a clear secret");
        old.seal(&mut sealed, &pointers);
        assert_eq!(sealed.config, json!({"from": "S"}));
        assert!(!old.needs_reseal(&sealed, &pointers));
        assert_eq!(old.open(&sealed).unwrap()["auth_token"], "tok");
        // The new key first: the old seal must go, and both keys open it meanwhile.
        let rotating = ConfigSecrets::parse(&[NEW, OLD]).unwrap();
        assert!(rotating.needs_reseal(&sealed, &pointers));
        assert_eq!(rotating.open(&sealed).unwrap()["auth_token"], "tok");
        let mut resealed = sealed.clone();
        resealed.config = rotating.open(&sealed).unwrap();
        rotating.seal(&mut resealed, &pointers);
        assert_eq!(resealed.sealed.as_ref().unwrap()["/auth_token"].key_id, "2027-01");
        assert!(!rotating.needs_reseal(&resealed, &pointers));
        // Without master keys nothing is sealed and nothing needs it.
        let none = ConfigSecrets::default();
        let mut clear = record(json!({"auth_token": "tok"}));
        none.seal(&mut clear, &pointers);
        assert!(clear.sealed.is_none() && !none.needs_reseal(&clear, &pointers));
        assert!(ConfigSecrets::parse(&[OLD, OLD]).is_err());
    }
}
