//! A team's plugins through the registry's API: list them, enable, disable, show and remove an
//! installation, set and show its config.
//!
//! Without `--installation` (and without `--form-ids`/`--filter`), `enable`, `disable` and `config` send
//! exactly the v1 requests (`.../plugins/{id}`, `.../plugins/{id}/config`), which address the installation
//! `default`. With them, they use `.../plugins/{id}/installations/{installation}`, whose `PUT` replaces the
//! whole installation: so `enable` and `disable` first read the stored installation and keep what the
//! command line does not change (an empty `--event-types ''`, `--form-ids ''` or `--filter ''` clears it).

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use switchyard_registry::client::{Client, ClientError};

use crate::tables::{config_table, enablement_rows, installation_rows};
use crate::{Failure, read_json_file};

/// Which installation a command addresses.
#[derive(Debug, Args)]
pub(crate) struct Installation {
    /// The installation (default: `default`, through the v1 routes where there are some).
    #[arg(long)]
    installation: Option<String>,
}

/// `enable`.
#[derive(Debug, Args)]
pub(crate) struct Enable {
    /// The team.
    #[arg(long)]
    team: String,
    /// The plugin.
    plugin: String,
    #[command(flatten)]
    installation: Installation,
    /// Only these event types (comma-separated); default all of the plugin's.
    #[arg(long, value_delimiter = ',')]
    event_types: Option<Vec<String>>,
    /// Only events of these forms, by form id (comma-separated; `''` for any form). Uses the installation
    /// route.
    #[arg(long, value_delimiter = ',')]
    form_ids: Option<Vec<String>>,
    /// Only events for which this CEL expression is true (`''` for every event); try it first with
    /// `switchyardctl filter test`. Uses the installation route.
    #[arg(long)]
    filter: Option<String>,
}

/// `disable`.
#[derive(Debug, Args)]
pub(crate) struct Disable {
    /// The team.
    #[arg(long)]
    team: String,
    /// The plugin.
    plugin: String,
    #[command(flatten)]
    installation: Installation,
}

/// `show`.
#[derive(Debug, Args)]
pub(crate) struct Show {
    /// The team.
    #[arg(long)]
    team: String,
    /// The plugin.
    plugin: String,
    #[command(flatten)]
    installation: Installation,
}

/// `uninstall`.
#[derive(Debug, Args)]
pub(crate) struct Uninstall {
    /// The team.
    #[arg(long)]
    team: String,
    /// The plugin.
    plugin: String,
    /// The installation to remove with its config (`default` removes the v1 enablement).
    #[arg(long)]
    installation: String,
}

/// `teams ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TeamsCommand {
    /// The team's enablements (default installations) with each plugin's status.
    Plugins {
        /// The team.
        team: String,
    },
    /// The team's installations, default and named, of every plugin or of one.
    Installations {
        /// The team.
        team: String,
        /// Only this plugin's.
        #[arg(long)]
        plugin: Option<String>,
    },
}

/// `config ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Replace the config (secret fields left out keep their value; `null` clears one).
    Set {
        /// The team.
        #[arg(long)]
        team: String,
        /// The plugin.
        plugin: String,
        #[command(flatten)]
        installation: Installation,
        /// The config as JSON.
        #[arg(
            value_name = "JSON",
            conflicts_with = "file",
            required_unless_present = "file"
        )]
        config: Option<String>,
        /// Read the config from a file.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
    /// Show the config; secret fields appear only as set/unset.
    Show {
        /// The team.
        #[arg(long)]
        team: String,
        /// The plugin.
        plugin: String,
        #[command(flatten)]
        installation: Installation,
    },
}

/// What a command answers: the API's JSON (for `--json`) and a table.
pub(crate) type Output = (Value, String);

fn v1_path(team: &str, plugin: &str) -> String {
    format!("/v1/teams/{team}/plugins/{plugin}")
}

fn installation_path(team: &str, plugin: &str, installation: &str) -> String {
    format!("/v1/teams/{team}/plugins/{plugin}/installations/{installation}")
}

/// The body that stores the installation as it is now (an empty selection when there is none yet), to
/// change only what the command line says.
fn stored_installation(client: &Client, path: &str) -> Result<Value, Failure> {
    let stored = match client.get(path) {
        Ok(view) => view,
        Err(ClientError::Api { status: 404, .. }) => Value::Null,
        Err(error) => return Err(error.into()),
    };
    let mut body = json!({});
    for field in ["event_types", "form_ids", "filter"] {
        if let Some(value) = stored.get(field) {
            body[field] = value.clone();
        }
    }
    Ok(body)
}

/// A comma-separated list from the command line: `''` is the empty list, which clears the field.
fn list(values: &[String]) -> Value {
    json!(values.iter().filter(|v| !v.is_empty()).collect::<Vec<_>>())
}

fn one(value: &Value) -> Value {
    json!([value.clone()])
}

/// `enable`: the v1 request unless an installation, form ids or a filter are named.
pub(crate) fn enable(client: &Client, args: &Enable) -> Result<Output, Failure> {
    let Enable {
        team,
        plugin,
        installation,
        event_types,
        form_ids,
        filter,
    } = args;
    if installation.installation.is_none() && form_ids.is_none() && filter.is_none() {
        let mut body = json!({"enabled": true});
        if let Some(types) = event_types.as_ref().filter(|t| !t.is_empty()) {
            body["event_types"] = json!(types);
        }
        let value = client.put(&v1_path(team, plugin), &body)?;
        let table = enablement_rows(&one(&value));
        return Ok((value, table));
    }
    let name = installation.installation.as_deref().unwrap_or("default");
    let path = installation_path(team, plugin, name);
    let mut body = stored_installation(client, &path)?;
    body["enabled"] = json!(true);
    if let Some(types) = event_types {
        body["event_types"] = list(types);
    }
    if let Some(ids) = form_ids {
        body["form_ids"] = list(ids);
    }
    if let Some(filter) = filter {
        body["filter"] = json!(filter);
    }
    let value = client.put(&path, &body)?;
    let table = installation_rows(&one(&value));
    Ok((value, table))
}

/// `disable`: the v1 request, or the installation as stored with `enabled: false`.
pub(crate) fn disable(client: &Client, args: &Disable) -> Result<Output, Failure> {
    let Disable {
        team,
        plugin,
        installation,
    } = args;
    let Some(name) = &installation.installation else {
        let value = client.put(&v1_path(team, plugin), &json!({"enabled": false}))?;
        let table = enablement_rows(&one(&value));
        return Ok((value, table));
    };
    let path = installation_path(team, plugin, name);
    let mut body = stored_installation(client, &path)?;
    body["enabled"] = json!(false);
    let value = client.put(&path, &body)?;
    let table = installation_rows(&one(&value));
    Ok((value, table))
}

/// `show`: one installation (`default` unless named).
pub(crate) fn show(client: &Client, args: &Show) -> Result<Output, Failure> {
    let name = args.installation.installation.as_deref().unwrap_or("default");
    let value = client.get(&installation_path(&args.team, &args.plugin, name))?;
    let table = installation_rows(&one(&value));
    Ok((value, table))
}

/// `uninstall`: removes an installation and its config.
pub(crate) fn uninstall(client: &Client, args: &Uninstall) -> Result<Output, Failure> {
    let Uninstall {
        team,
        plugin,
        installation,
    } = args;
    client.delete(&installation_path(team, plugin, installation))?;
    Ok((
        json!({"removed": {"team": team, "plugin": plugin, "installation": installation}}),
        format!("removed the installation {installation} of {plugin} for {team}, and its config\n"),
    ))
}

/// `teams plugins` and `teams installations`.
pub(crate) fn teams(client: &Client, command: &TeamsCommand) -> Result<Output, Failure> {
    match command {
        TeamsCommand::Plugins { team } => {
            let value = client.get(&format!("/v1/teams/{team}/plugins"))?;
            let table = enablement_rows(&value);
            Ok((value, table))
        }
        TeamsCommand::Installations { team, plugin } => {
            let path = match plugin {
                Some(plugin) => format!("/v1/teams/{team}/plugins/{plugin}/installations"),
                None => format!("/v1/teams/{team}/installations"),
            };
            let value = client.get(&path)?;
            let table = installation_rows(&value);
            Ok((value, table))
        }
    }
}

/// `config set` and `config show`: the v1 routes unless an installation is named.
pub(crate) fn config(client: &Client, command: &ConfigCommand) -> Result<Output, Failure> {
    let path = |team: &str, plugin: &str, installation: &Installation| match &installation.installation {
        None => format!("{}/config", v1_path(team, plugin)),
        Some(name) => format!("{}/config", installation_path(team, plugin, name)),
    };
    let value = match command {
        ConfigCommand::Set {
            team,
            plugin,
            installation,
            config,
            file,
        } => {
            let config = match (config, file) {
                (Some(text), _) => serde_json::from_str(text)
                    .map_err(|e| Failure::Usage(format!("the config is not JSON: {e}")))?,
                (None, Some(file)) => read_json_file(file)?,
                (None, None) => return Err(Failure::Usage("give the config as JSON or --file".into())),
            };
            client.put(&path(team, plugin, installation), &config)?
        }
        ConfigCommand::Show {
            team,
            plugin,
            installation,
        } => client.get(&path(team, plugin, installation))?,
    };
    let table = config_table(&value);
    Ok((value, table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_flags_clear() {
        assert_eq!(list(&["".into()]), json!([]));
        assert_eq!(list(&["a".into(), "b".into()]), json!(["a", "b"]));
    }
}
