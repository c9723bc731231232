//! Control records: plugin manifests (`switchyard.plugins`) and enablements (`switchyard.enablements`).
//!
//! Both topics are compacted; the key names the entity and a null value removes it. Unknown JSON fields
//! are ignored so that newer writers do not break older readers.
//!
//! An enablement is one *installation* of a plugin by a team (contract section 7.2). Its key is
//! `<team>/<plugin>` for the installation named [`DEFAULT_INSTALLATION`] (the only form before
//! installations existed) and `<team>/<plugin>/<installation>` for any other: one entity, one spelling,
//! so compaction never keeps two records of it side by side.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ids::{DEFAULT_INSTALLATION, IdError, check_installation_id, check_plugin_id, check_team_id};

/// Longest event type name a manifest or enablement may list.
pub const EVENT_TYPE_MAX_LEN: usize = 256;
/// Most form ids an enablement's `form_ids` may list.
pub const FORM_IDS_MAX: usize = 256;
/// Longest form id an enablement's `form_ids` may list, in bytes.
pub const FORM_ID_MAX_LEN: usize = 256;
/// Longest `filter` expression, in bytes (its other bounds are checked by the `switchyard-filter` crate).
pub const FILTER_MAX_BYTES: usize = 1024;

/// A plugin's self-description, the value of a `switchyard.plugins` record keyed by its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginManifest {
    /// Plugin id; must equal the record key.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Semantic version.
    pub version: semver::Version,
    /// Base URL of its HTTP service; absent for Kafka-only plugins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Event types it subscribes to.
    pub events: Vec<String>,
    /// Names of the actions it serves.
    #[serde(default)]
    pub actions: Vec<String>,
    /// JSON Schema of its per-team configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<serde_json::Value>,
    /// The contract versions it was written for, a semver range (`^1`); checked at registration against
    /// [`crate::publisher::CONTRACT_VERSION`]. Absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// Its publisher's signature (contract section 7.1.2); checked by the registry at registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::publisher::ManifestSignature>,
    /// How the plugin runtime hands it events (contract section 7.1: `ordering`); absent fields keep the
    /// defaults, and a manifest without them serializes exactly as before they existed.
    #[serde(flatten)]
    pub delivery: DeliveryHints,
}

/// The manifest fields that tell the plugin runtime how to deliver: the router ignores them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryHints {
    /// Which events must run one after the other; absent = [`Ordering::Team`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<Ordering>,
    /// Hand the plugin several events of one team per call; absent = one event per call.
    #[serde(
        default,
        deserialize_with = "optional_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub batch: Option<Batch>,
    /// Calls per second the plugin takes, per team and in all; absent = no limit but the concurrency.
    #[serde(
        default,
        deserialize_with = "optional_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub rate_limit: Option<RateLimit>,
    /// The plugin keeps its state per installation (contract section 7.2), so a team may install it more
    /// than once; absent or `false` = only the default installation, and the registry refuses others.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub installations: bool,
}

/// An optional JSON object: `null` or absent is `None`. Only an object: serde would otherwise also take a
/// struct from a JSON array of its fields (`[50, 200]`), which the contract does not allow.
fn optional_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error as _;
    match Option::<serde_json::Map<String, serde_json::Value>>::deserialize(deserializer)? {
        None => Ok(None),
        Some(object) => serde_json::from_value(serde_json::Value::Object(object))
            .map(Some)
            .map_err(D::Error::custom),
    }
}

/// The manifest's `rate_limit`: calls (not events) per second, per team and for the plugin, each enforced
/// by every worker instance on its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Calls per second of one team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_team_per_second: Option<f64>,
    /// Calls per second in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_plugin_per_second: Option<f64>,
}

impl RateLimit {
    /// The largest rate the registry accepts.
    pub const MAX_PER_SECOND: f64 = 100_000.0;

    /// What is wrong with it, if anything: `(field, message)`.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        [
            ("per_team_per_second", self.per_team_per_second),
            ("per_plugin_per_second", self.per_plugin_per_second),
        ]
        .into_iter()
        .find_map(|(field, rate)| {
            let rate = rate?;
            (!(rate > 0.0 && rate <= Self::MAX_PER_SECOND)).then(|| {
                (
                    field,
                    format!("must be above 0 and at most {}", Self::MAX_PER_SECOND),
                )
            })
        })
    }
}

/// The manifest's `batch`: up to `max_events` events of one team per call, after at most `max_wait_ms` of
/// waiting for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Events per call, [`Batch::MAX_EVENTS`] at most.
    pub max_events: u32,
    /// Longest wait of the oldest event for a fuller batch, milliseconds; [`Batch::MAX_WAIT_MS`] at most.
    #[serde(default)]
    pub max_wait_ms: u64,
}

impl Batch {
    /// The largest `max_events` the registry accepts.
    pub const MAX_EVENTS: u32 = 1000;
    /// The largest `max_wait_ms` the registry accepts.
    pub const MAX_WAIT_MS: u64 = 60_000;

    /// What is wrong with it, if anything: `(field, message)`.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if !(1..=Self::MAX_EVENTS).contains(&self.max_events) {
            return Some((
                "max_events",
                format!("must be between 1 and {}", Self::MAX_EVENTS),
            ));
        }
        if self.max_wait_ms > Self::MAX_WAIT_MS {
            return Some(("max_wait_ms", format!("must be at most {}", Self::MAX_WAIT_MS)));
        }
        None
    }
}

impl DeliveryHints {
    /// The ordering in effect: the manifest's, or [`Ordering::Team`].
    pub fn ordering(&self) -> Ordering {
        self.ordering.clone().unwrap_or_default()
    }
}

/// The manifest's `ordering`: which of a team's events the runtime runs one after the other.
///
/// A value this version does not know is kept as [`Ordering::Unknown`] (so a manifest of a newer writer
/// still routes, and is written back unchanged); the registry refuses it, the runtime treats it as
/// [`Ordering::Team`], the strictest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Ordering {
    /// One event of a team at a time (`"team"`, the default).
    #[default]
    Team,
    /// One event at a time per form of a team (`"form"`).
    Form,
    /// One event at a time per response of a team; form events per form (`"response"`).
    Response,
    /// No order (`"none"`).
    None,
    /// A value this version does not know.
    Unknown(String),
}

impl Ordering {
    /// The values this version knows, as written.
    pub const KNOWN: [&'static str; 4] = ["team", "form", "response", "none"];

    /// The value as written in a manifest.
    pub fn as_str(&self) -> &str {
        match self {
            Ordering::Team => "team",
            Ordering::Form => "form",
            Ordering::Response => "response",
            Ordering::None => "none",
            Ordering::Unknown(value) => value,
        }
    }
}

impl From<String> for Ordering {
    fn from(value: String) -> Self {
        match value.as_str() {
            "team" => Ordering::Team,
            "form" => Ordering::Form,
            "response" => Ordering::Response,
            "none" => Ordering::None,
            _ => Ordering::Unknown(value),
        }
    }
}

impl From<Ordering> for String {
    fn from(ordering: Ordering) -> Self {
        match ordering {
            Ordering::Unknown(value) => value,
            known => known.as_str().to_owned(),
        }
    }
}

/// A team's installation of one plugin, the value of a `switchyard.enablements` record keyed
/// `<team>/<plugin>` (installation `default`) or `<team>/<plugin>/<installation>`.
///
/// The fields added with installations (`installation`, `form_ids`, `filter`) are skipped when absent, so
/// a v1 record reads and writes back byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enablement {
    /// Team id; must equal the key's first part.
    pub team_id: String,
    /// Plugin id; must equal the key's second part.
    pub plugin_id: String,
    /// Installation id; must equal the key's third part. Absent = [`DEFAULT_INSTALLATION`], the only
    /// installation a two-part key names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
    /// Whether events flow.
    pub enabled: bool,
    /// Only these of the plugin's types; absent or empty = every type the plugin subscribes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    /// Only events whose `ce_subject` (the form id) is one of these; absent or empty = any event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_ids: Option<Vec<String>>,
    /// Only events for which this CEL expression is true (contract section 8); absent or empty = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// A backfill of this installation is under way (section 7.5): what it delivers. The router owner of the
    /// team's partition routes the installation live again only once it has written the backfill's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<crate::backfill::Request>,
    /// RFC 3339 time of the change.
    pub updated_at: String,
}

/// The parts of an enablement or config key: `<team>/<plugin>` or `<team>/<plugin>/<installation>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstallationKey<'a> {
    /// Team id.
    pub team: &'a str,
    /// Plugin id.
    pub plugin: &'a str,
    /// Installation id; [`DEFAULT_INSTALLATION`] for a two-part key.
    pub installation: &'a str,
}

impl InstallationKey<'_> {
    /// Whether it names the default installation (a two-part key).
    pub fn is_default(&self) -> bool {
        self.installation == DEFAULT_INSTALLATION
    }

    /// The key as written: two parts for the default installation, three for any other.
    pub fn to_key(&self) -> String {
        installation_key(self.team, self.plugin, self.installation)
    }
}

/// The key of a team's installation of a plugin, on `switchyard.enablements` and `switchyard.configs`:
/// `<team>/<plugin>` for [`DEFAULT_INSTALLATION`], `<team>/<plugin>/<installation>` otherwise.
pub fn installation_key(team: &str, plugin: &str, installation: &str) -> String {
    if installation == DEFAULT_INSTALLATION {
        format!("{team}/{plugin}")
    } else {
        format!("{team}/{plugin}/{installation}")
    }
}

/// Why a control record is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ControlError {
    /// The key is not UTF-8 or not of the expected shape.
    #[error("the key {key:?} is not {expected}")]
    Key {
        /// The key, lossily decoded.
        key: String,
        /// What it should be.
        expected: &'static str,
    },
    /// An identifier is invalid.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The value is not JSON of the expected shape.
    #[error("the value is not a valid {what}: {message}")]
    Json {
        /// `plugin manifest` or `enablement`.
        what: &'static str,
        /// serde's message.
        message: String,
    },
    /// A field disagrees with the key.
    #[error("the field {field} is {value:?} but the key says {key:?}")]
    KeyMismatch {
        /// The field name.
        field: &'static str,
        /// The field value.
        value: String,
        /// The key part.
        key: String,
    },
    /// A field is out of its allowed range.
    #[error("the field {field} is invalid: {message}")]
    Field {
        /// The field name.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Splits a key `<team id>/<plugin id>` or `<team id>/<plugin id>/<installation id>` of
/// `switchyard.enablements` or `switchyard.configs` and checks every part. A three-part key naming
/// [`DEFAULT_INSTALLATION`] is refused: that installation is spelled `<team id>/<plugin id>`.
pub fn parse_installation_key(key: &[u8]) -> Result<InstallationKey<'_>, ControlError> {
    let bad = |expected| ControlError::Key {
        key: String::from_utf8_lossy(key).into_owned(),
        expected,
    };
    const SHAPE: &str = "<team id>/<plugin id> or <team id>/<plugin id>/<installation id>";
    let text = std::str::from_utf8(key).map_err(|_| bad(SHAPE))?;
    let mut parts = text.splitn(3, '/');
    let (Some(team), Some(plugin)) = (parts.next(), parts.next()) else {
        return Err(bad(SHAPE));
    };
    let installation = match parts.next() {
        None => DEFAULT_INSTALLATION,
        Some(DEFAULT_INSTALLATION) => {
            return Err(bad(
                "<team id>/<plugin id> for the default installation (a three-part key never names it)",
            ));
        }
        Some(installation) => {
            check_installation_id(installation)?;
            installation
        }
    };
    check_team_id(team.as_bytes())?;
    check_plugin_id(plugin)?;
    Ok(InstallationKey {
        team,
        plugin,
        installation,
    })
}

/// Splits a v1 enablement key `<team id>/<plugin id>` and checks both parts; a three-part key is refused
/// (its plugin part would hold a `/`). Readers that know installations use [`parse_installation_key`].
pub fn parse_enablement_key(key: &[u8]) -> Result<(&str, &str), ControlError> {
    let bad = || ControlError::Key {
        key: String::from_utf8_lossy(key).into_owned(),
        expected: "<team id>/<plugin id>",
    };
    let key = std::str::from_utf8(key).map_err(|_| bad())?;
    let (team, plugin) = key.split_once('/').ok_or_else(bad)?;
    check_team_id(team.as_bytes())?;
    check_plugin_id(plugin)?;
    Ok((team, plugin))
}

/// Checks a plugin record key.
pub fn parse_plugin_key(key: &[u8]) -> Result<&str, ControlError> {
    let key = std::str::from_utf8(key).map_err(|_| ControlError::Key {
        key: String::from_utf8_lossy(key).into_owned(),
        expected: "a plugin id",
    })?;
    check_plugin_id(key)?;
    Ok(key)
}

impl PluginManifest {
    /// Parses and checks a `switchyard.plugins` value against its key.
    pub fn parse(key: &str, value: &[u8]) -> Result<Self, ControlError> {
        let manifest: PluginManifest = serde_json::from_slice(value).map_err(|e| ControlError::Json {
            what: "plugin manifest",
            message: e.to_string(),
        })?;
        manifest.check(key)?;
        Ok(manifest)
    }

    /// Checks the fields the router and runtime rely on. The registry checks more (the config schema).
    pub fn check(&self, key: &str) -> Result<(), ControlError> {
        check_plugin_id(&self.id)?;
        if self.id != key {
            return Err(ControlError::KeyMismatch {
                field: "id",
                value: self.id.clone(),
                key: key.to_owned(),
            });
        }
        if self.name.trim().is_empty() {
            return Err(ControlError::Field {
                field: "name",
                message: "must not be empty".into(),
            });
        }
        check_event_types("events", &self.events)?;
        if let Some(url) = &self.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ControlError::Field {
                field: "url",
                message: format!("{url:?} is not an http(s) URL"),
            });
        }
        if let Some(schema) = &self.config_schema
            && !schema.is_object()
        {
            return Err(ControlError::Field {
                field: "config_schema",
                message: "must be a JSON object".into(),
            });
        }
        Ok(())
    }
}

impl Enablement {
    /// Parses and checks a `switchyard.enablements` value against its key, in either form.
    pub fn parse(key: &[u8], value: &[u8]) -> Result<Self, ControlError> {
        let key = parse_installation_key(key)?;
        let enablement: Enablement = serde_json::from_slice(value).map_err(|e| ControlError::Json {
            what: "enablement",
            message: e.to_string(),
        })?;
        for (field, value, part) in [
            ("team_id", enablement.team_id.as_str(), key.team),
            ("plugin_id", &enablement.plugin_id, key.plugin),
            ("installation", enablement.installation(), key.installation),
        ] {
            if value != part {
                return Err(ControlError::KeyMismatch {
                    field,
                    value: value.to_owned(),
                    key: part.to_owned(),
                });
            }
        }
        if let Some(types) = &enablement.event_types {
            check_event_types("event_types", types)?;
        }
        if let Some(form_ids) = &enablement.form_ids {
            check_form_ids(form_ids)?;
        }
        if let Some(filter) = &enablement.filter
            && filter.len() > FILTER_MAX_BYTES
        {
            return Err(ControlError::Field {
                field: "filter",
                message: format!(
                    "is {} bytes long; at most {FILTER_MAX_BYTES} are allowed",
                    filter.len()
                ),
            });
        }
        if let Some(backfill) = &enablement.backfill {
            backfill.check().map_err(|error| ControlError::Field {
                field: "backfill",
                message: error.to_string(),
            })?;
        }
        OffsetDateTime::parse(&enablement.updated_at, &Rfc3339).map_err(|e| ControlError::Field {
            field: "updated_at",
            message: format!("{:?} is not RFC 3339: {e}", enablement.updated_at),
        })?;
        Ok(enablement)
    }

    /// The installation id: the field, or [`DEFAULT_INSTALLATION`] when absent.
    pub fn installation(&self) -> &str {
        self.installation.as_deref().unwrap_or(DEFAULT_INSTALLATION)
    }

    /// The form ids events must carry, if it is limited to some (`None` for absent or empty).
    pub fn form_ids(&self) -> Option<&[String]> {
        self.form_ids.as_deref().filter(|ids| !ids.is_empty())
    }

    /// The filter expression, if there is one (`None` for absent or empty).
    pub fn filter(&self) -> Option<&str> {
        self.filter.as_deref().filter(|filter| !filter.is_empty())
    }

    /// The record key: `<team>/<plugin>` for the default installation, `<team>/<plugin>/<installation>`
    /// otherwise.
    pub fn key(&self) -> String {
        installation_key(&self.team_id, &self.plugin_id, self.installation())
    }
}

fn check_form_ids(form_ids: &[String]) -> Result<(), ControlError> {
    let problem = |message: String| ControlError::Field {
        field: "form_ids",
        message,
    };
    if form_ids.len() > FORM_IDS_MAX {
        return Err(problem(format!(
            "lists {} form ids; at most {FORM_IDS_MAX} are allowed",
            form_ids.len()
        )));
    }
    match form_ids
        .iter()
        .find(|id| id.is_empty() || id.len() > FORM_ID_MAX_LEN || id.chars().any(char::is_control))
    {
        Some(id) => Err(problem(format!(
            "{id:?} is not a form id (1-{FORM_ID_MAX_LEN} bytes, no control characters)"
        ))),
        None => Ok(()),
    }
}

pub(crate) fn check_event_types(field: &'static str, types: &[String]) -> Result<(), ControlError> {
    for t in types {
        if t.is_empty()
            || t.len() > EVENT_TYPE_MAX_LEN
            || t.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(ControlError::Field {
                field,
                message: format!(
                    "{t:?} is not an event type (1-{EVENT_TYPE_MAX_LEN} printable characters, no spaces)"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
