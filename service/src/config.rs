//! Configuration loading every Switchyard process shares: embedded TOML defaults < `--config FILE` <
//! `<PREFIX>__SECTION__KEY` environment variables, one error type, the logging settings, and [`Secret`].
//!
//! Every service's config structs deny unknown keys, so a typo is an error at start-up rather than a
//! silently ignored setting.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use config::{Environment, File, FileFormat};
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

/// A configuration that cannot be loaded or is inconsistent (of any Switchyard binary).
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A layer failed to load or the result does not fit the schema (unknown key, wrong type).
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is out of range or inconsistent with another.
    #[error("configuration: {key}: {message}")]
    Invalid {
        /// Dotted path of the key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A [`ConfigError::Invalid`] for `key`.
pub fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `switchyard_router=debug,rdkafka=warn`. Default `info`.
    pub level: String,
}

/// A secret string; `Debug` shows only whether it is set, and there is no `Display`, so that logging a
/// configuration or a plugin's state cannot leak it. [`Secret::expose`] is the only way to the value.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty (not configured).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(unset)"
        } else {
            "Secret(set)"
        })
    }
}

/// A configuration loaded in layers, as every Switchyard binary loads its own: the embedded defaults, then
/// `--config FILE`, then the `<ENV_PREFIX>__SECTION__KEY` environment variables; then checked.
pub trait Layered: serde::de::DeserializeOwned {
    /// The embedded defaults (TOML).
    const DEFAULTS: &'static str;
    /// Prefix of the environment overrides, e.g. `SWITCHYARD_ROUTER`.
    const ENV_PREFIX: &'static str;
    /// Dotted keys whose environment value is a comma-separated list.
    const LIST_KEYS: &'static [&'static str] = &[];

    /// Checks values the types cannot express.
    fn check(&self) -> Result<(), ConfigError>;

    /// Loads the layers: defaults, then `file` if given, then the process environment.
    fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, None)
    }

    /// As [`Layered::load`], with an explicit environment instead of the process's (for tests, see
    /// [`environment`]).
    fn load_from(file: Option<&Path>, env: Option<BTreeMap<String, String>>) -> Result<Self, ConfigError> {
        let config: Self = load_layers(Self::DEFAULTS, Self::ENV_PREFIX, Self::LIST_KEYS, file, env)?;
        config.check()?;
        Ok(config)
    }
}

/// The layered load every Switchyard component uses: `defaults` (TOML) < `file` < the environment variables
/// `<prefix>__SECTION__KEY` (`env` instead of the process's, for tests). `list_keys` are dotted keys whose
/// environment value is a comma-separated list. Unknown keys fail if the target denies them.
pub fn load_layers<T: serde::de::DeserializeOwned>(
    defaults: &str,
    prefix: &str,
    list_keys: &[&str],
    file: Option<&Path>,
    env: Option<BTreeMap<String, String>>,
) -> Result<T, config::ConfigError> {
    let mut builder = config::Config::builder().add_source(File::from_str(defaults, FileFormat::Toml));
    if let Some(path) = file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    let mut environment = Environment::with_prefix(prefix)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true);
    if !list_keys.is_empty() {
        environment = environment.list_separator(",");
        for key in list_keys {
            environment = environment.with_list_parse_key(key);
        }
    }
    let environment = match env {
        Some(vars) => environment.source(Some(vars.into_iter().collect())),
        None => environment,
    };
    builder.add_source(environment).build()?.try_deserialize()
}

/// An explicit environment for [`load_layers`] (and the services' `load_from`) instead of the process's,
/// for tests: `environment(&[("SWITCHYARD_ROUTER__DELIVERY__MODE", "at_least_once")])`.
pub fn environment(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
    )
}

/// Accepts strings, numbers and booleans as option values (the environment layer parses `5` as a number)
/// and lets keys use `_` for `.`, because environment variable names cannot contain dots.
pub fn options_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
    Ok(raw
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                Scalar::Text(s) => s,
                Scalar::Int(n) => n.to_string(),
                Scalar::Float(n) => n.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (key.replace('_', "."), value)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        #[serde(deserialize_with = "options_map")]
        options: BTreeMap<String, String>,
        hosts: Vec<String>,
        token: Secret,
    }

    const DEFAULTS: &str = "name = \"a\"\nhosts = []\ntoken = \"\"\n[options]\n";

    use super::environment as env;

    #[test]
    fn the_environment_overrides_the_defaults_with_dotted_option_keys_and_lists() {
        let sample: Sample = load_layers(
            DEFAULTS,
            "T",
            &["hosts"],
            None,
            env(&[
                ("T__NAME", "b"),
                ("T__OPTIONS__LINGER_MS", "5"),
                ("T__HOSTS", "x,y"),
                ("T__TOKEN", "hunter2"),
            ]),
        )
        .unwrap();
        assert_eq!(sample.name, "b");
        assert_eq!(sample.options["linger.ms"], "5");
        assert_eq!(sample.hosts, ["x", "y"]);
        assert_eq!(sample.token.expose(), "hunter2");
        assert_eq!(format!("{sample:?}").matches("hunter2").count(), 0);
        assert!(format!("{:?}", sample.token).contains("Secret(set)"));
        assert_eq!(format!("{:?}", Secret::default()), "Secret(unset)");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let error = load_layers::<Sample>(DEFAULTS, "T", &[], None, env(&[("T__NAMEZ", "b")])).unwrap_err();
        assert!(error.to_string().contains("namez"), "{error}");
    }
}
