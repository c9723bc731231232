//! `switchyardctl`: the registry from a terminal. Tables for people, `--json` for scripts.
//!
//! ```text
//! switchyardctl plugins list | show ID | register FILE | deregister ID
//! switchyardctl teams plugins TEAM | installations TEAM [--plugin P]
//! switchyardctl enable --team TEAM PLUGIN [--installation NAME] [--event-types a,b] [--form-ids f1,f2]
//!                 [--filter CEL]
//! switchyardctl disable --team TEAM PLUGIN [--installation NAME]
//! switchyardctl show --team TEAM PLUGIN [--installation NAME] | uninstall --team TEAM PLUGIN --installation NAME
//! switchyardctl config set --team TEAM PLUGIN [--installation NAME] (--file FILE | JSON)
//!                 | show --team TEAM PLUGIN [--installation NAME]
//! switchyardctl filter test --filter CEL --event FILE
//! switchyardctl token mint --role admin|team|plugin [--team T] [--plugin P] [--ttl 1h]
//! switchyardctl dlq list|replay --plugin P [--team T] [--since TIME] [--dry-run] [--again] [--by NAME]
//!                 | show --plugin P LETTER_ID|EVENT_ID      [--replays-topic T]
//!                 [--kafka-config FILE] [-X KEY=VALUE]... [--bootstrap HOSTS] [--timeout 30s]
//! switchyardctl plugin new ID --lang python|node|go|rust [--dir DIR] | check --url URL [--secret whsec_...]
//!                 | keygen --key-id ID --out FILE [--plugins P...] | sign MANIFEST --key FILE [--out FILE]
//! switchyardctl dev [--plugin-url URL] [--in-process] [--bootstrap HOSTS] [--rate N] [-- COMMAND...]
//! switchyardctl topics apply [--dry-run] [--alter-configs] | check | explain
//!                 [--replication-factor N] [--core-events-partitions N] [--plugins a,b] [--registry-config FILE]
//!                 | backup DIR | restore DIR      [--kafka-config FILE] [-X KEY=VALUE]... [--bootstrap HOSTS]
//! switchyardctl backfill start --team T --plugin P [--installation I] --since TIME [--until TIME]
//!                 [--types a,b] [--rate N] [--on-retention refuse|earliest] [--watch]
//!                 | status --team T ID [--watch] | list --team T [--plugin P [--installation I]]
//!                 | cancel --team T ID
//! ```
//! The registry's URL and the token come from `--url`/`--token` or `SWITCHYARD_REGISTRY_URL`/
//! `SWITCHYARD_TOKEN`. Without `--installation` the team commands send the v1 requests, which address a
//! plugin's installation `default` ([`teams`]). `token mint` signs with the registry's HS256 secret
//! (`--secret` or `SWITCHYARD_REGISTRY__AUTH__HS256_SECRET`, the variable the registry itself reads), and
//! refuses a `--ttl` longer than the registry accepts for the role (its `auth.max_token_lifetime_ms` and
//! `auth.max_plugin_token_lifetime_ms`, read from the same variables, 24 h and 90 days by default).
//!
//! `filter test` evaluates an installation filter against a sample event locally, as the router would
//! ([`filter_test`]); it calls no registry and exits 0 (match), 1 (no match) or 2 (error).
//!
//! `backfill` uses the registry's backfill routes ([`backfills`]); with `--watch` it asks again every second
//! until the backfill ends, drawing a progress bar when stdout is a terminal and printing one line per poll
//! otherwise (to stderr with `--json`), and exits 1 if it ended `failed`. TIME is an RFC 3339 time or a
//! duration ago (`7d`, `12h`), as for `dlq --since`.
//!
//! `dlq` talks to Kafka with the Kafka settings of the services: the `[kafka]` section of `--kafka-config`
//! (the registry's own configuration file will do; other sections are ignored), then the variables
//! `SWITCHYARDCTL__KAFKA__...` (e.g. `SWITCHYARDCTL__KAFKA__OPTIONS__SASL_PASSWORD`), then `--bootstrap`
//! and `-X key=value`. It reads the dead-letter topic to its end or fails: past `--timeout` it exits 1
//! and replays nothing. A replay is recorded in `switchyard.dead-letter-replays`, and a letter replayed
//! before is refused without `--again` ([`dlq`]). `topics` takes the same Kafka settings ([`topics`]).

mod backfills;
mod console;
mod dev;
mod dlq;
mod filter_test;
mod kafka_flags;
mod plugin;
mod secrets;
mod tables;
mod teams;
mod token;
mod topics;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use switchyard_registry::client::{Client, ClientError};

use crate::backfills::BackfillCommand;
use crate::console::ConsoleCommand;
use crate::dlq::DlqCommand;
use crate::filter_test::FilterCommand;
use crate::plugin::PluginCommand;
use crate::secrets::SecretsCommand;
use crate::tables::{details, plugin_rows};
use crate::teams::{ConfigCommand, TeamsCommand};
use crate::token::TokenCommand;
use crate::topics::TopicsCommand;

/// Manage Switchyard plugins, team enablements and configs through the registry's API.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The registry's base URL.
    #[arg(
        long,
        env = "SWITCHYARD_REGISTRY_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// A bearer token (see `token mint`).
    #[arg(long, env = "SWITCHYARD_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Registered plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// A team's plugins and installations.
    #[command(subcommand)]
    Teams(TeamsCommand),
    /// Enable a plugin (an installation of it) for a team.
    Enable(teams::Enable),
    /// Disable a plugin (an installation of it) for a team.
    Disable(teams::Disable),
    /// Show a team's installation of a plugin.
    Show(teams::Show),
    /// Remove a team's installation of a plugin, and its config.
    Uninstall(teams::Uninstall),
    /// A team's config of a plugin (of an installation of it).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Installation filters, evaluated locally.
    #[command(subcommand)]
    Filter(FilterCommand),
    /// Development tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The web console: a sign-in link.
    #[command(subcommand)]
    Console(ConsoleCommand),
    /// A plugin's dead letters (reads and writes Kafka directly).
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// A team's backfills: past events delivered to an installation.
    #[command(subcommand)]
    Backfill(BackfillCommand),
    /// Sealed config secrets: their status, a rotation of the master key, a plugin's keys.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// For plugin authors: a new project, the conformance check, publisher keys and signatures.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// A local broker, registry, router and bridge for one plugin, sample events, each call's outcome.
    Dev(dev::Dev),
    /// Every topic Switchyard needs, with the recommended settings: create, check, back up the control
    /// topics and restore them (talks to Kafka directly).
    #[command(subcommand)]
    Topics(TopicsCommand),
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// List every plugin with its status.
    List,
    /// Show one plugin.
    Show {
        /// The plugin id.
        id: String,
    },
    /// Register or update a plugin from a manifest file (JSON).
    Register {
        /// The manifest.
        file: PathBuf,
        /// Admins: accept a lower version than the registered one.
        #[arg(long)]
        force: bool,
    },
    /// Deregister a plugin (admins).
    Deregister {
        /// The plugin id.
        id: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Command::Filter(command) = &args.command {
        // Its own exit codes: 0 match, 1 no match, 2 error.
        return filter_test::run(command);
    }
    let outcome = match &args.command {
        // `plugin check` exits 1 when a check failed.
        Command::Plugin(command) => plugin::plugin(command, args.json),
        Command::Dev(command) => dev::dev(command).map(|()| ExitCode::SUCCESS),
        // `topics check` (and `apply` with differences left) exits 1 without failing.
        Command::Topics(command) => topics::topics(command, args.json),
        _ => run(&args).map(|()| ExitCode::SUCCESS),
    };
    match outcome {
        Ok(code) => code,
        Err(Failure::Client(ClientError::Api {
            status,
            detail,
            errors,
        })) => {
            eprintln!("switchyardctl: {status}: {detail}");
            for error in errors {
                eprintln!("  {error}");
            }
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("switchyardctl: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Usage(String),
}

fn run(args: &Args) -> Result<(), Failure> {
    let client = match &args.command {
        Command::Token(command) => return token::token(command),
        Command::Console(command) => return console::console(&args.url, args.token.as_deref(), command),
        Command::Dlq(command) => return dlq::dlq(command, args.json),
        Command::Secrets(command @ SecretsCommand::PluginKeys { .. }) => {
            return secrets::plugin_keys(command);
        }
        Command::Filter(_) | Command::Plugin(_) | Command::Dev(_) | Command::Topics(_) => {
            unreachable!("handled in main")
        }
        _ => Client::new(&args.url, args.token.clone())?,
    };
    let (value, table) = match &args.command {
        Command::Plugins(PluginsCommand::List) => {
            let value = client.get("/v1/plugins")?;
            let table = plugin_rows(&value);
            (value, table)
        }
        Command::Plugins(PluginsCommand::Show { id }) => {
            let value = client.get(&format!("/v1/plugins/{id}"))?;
            let table = details(&value);
            (value, table)
        }
        Command::Plugins(PluginsCommand::Register { file, force }) => {
            let manifest = read_json_file(file)?;
            let path = if *force {
                "/v1/plugins?force=true"
            } else {
                "/v1/plugins"
            };
            let value = client.post(path, &manifest)?;
            let mut shown = value.clone();
            if let Some(object) = shown.as_object_mut() {
                // A terminal's scrollback is no place for a secret; --json prints it for scripts.
                object.insert("signing_secret".into(), json!("(hidden; use --json)"));
                for secret in ["signing_secrets", "config_keys"] {
                    if object.contains_key(secret) {
                        object.insert(secret.into(), json!("(hidden; use --json)"));
                    }
                }
            }
            let table = details(&shown);
            (value, table)
        }
        Command::Plugins(PluginsCommand::Deregister { id }) => {
            client.delete(&format!("/v1/plugins/{id}"))?;
            (json!({"deregistered": id}), format!("deregistered {id}\n"))
        }
        Command::Teams(command) => teams::teams(&client, command)?,
        Command::Enable(command) => teams::enable(&client, command)?,
        Command::Disable(command) => teams::disable(&client, command)?,
        Command::Show(command) => teams::show(&client, command)?,
        Command::Uninstall(command) => teams::uninstall(&client, command)?,
        Command::Config(command) => teams::config(&client, command)?,
        Command::Backfill(command) => backfills::backfill(&client, command, args.json)?,
        Command::Secrets(command) => secrets::secrets(&client, command)?,
        Command::Token(_)
        | Command::Console(_)
        | Command::Dlq(_)
        | Command::Filter(_)
        | Command::Plugin(_)
        | Command::Dev(_)
        | Command::Topics(_) => {
            unreachable!("handled above")
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
        );
    } else {
        print!("{table}");
    }
    Ok(())
}

/// A time on the command line: an RFC 3339 time or a duration ago (`2h`, `30m`).
pub(crate) fn parse_time(text: &str) -> Result<SystemTime, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(SystemTime::now() - ago);
    }
    humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{text:?} is neither a duration nor an RFC 3339 time: {e}"))
}

/// The Switchyard checkout: `SWITCHYARD_HOME`, else the one this binary was built in (an ancestor of its
/// folder holding `scripts/kafka`). The Rust template's path dependencies and `dev`'s broker come from it.
pub(crate) fn checkout() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("SWITCHYARD_HOME") {
        return Some(PathBuf::from(home));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .find(|dir| dir.join("scripts/kafka").exists())
        .map(std::path::Path::to_path_buf)
}

/// A fresh key: base64 of 32 random bytes (a development signing key, a master key).
pub(crate) fn random_key() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

/// A JSON file the command reads (a manifest, a config).
fn read_json_file(path: &PathBuf) -> Result<Value, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Failure::Usage(format!("{} is not JSON: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, clap::Error> {
        Args::try_parse_from(line.split_whitespace())
    }

    #[test]
    fn backfill_command_lines() {
        let args = parse(
            "switchyardctl backfill start --team acme --plugin sheets-export --installation forms-bc \
             --since 2026-11-01T00:00:00Z --until 2h --types response.submitted,response.updated \
             --rate 500 --on-retention earliest --watch",
        )
        .unwrap();
        let Command::Backfill(BackfillCommand::Start(start)) = args.command else {
            panic!("{:?}", args.command)
        };
        let debug = format!("{start:?}");
        for part in [
            r#"installation: Some("forms-bc")"#,
            r#"types: Some(["response.submitted", "response.updated"])"#,
            "rate: Some(500)",
            r#"on_retention: "earliest""#,
            "watch: true",
        ] {
            assert!(debug.contains(part), "{part} in {debug}");
        }
        assert!(matches!(
            parse("switchyardctl backfill status --team acme b-1 --watch")
                .unwrap()
                .command,
            Command::Backfill(BackfillCommand::Status { watch: true, .. })
        ));
        assert!(matches!(
            parse("switchyardctl --json backfill list --team acme --plugin p --installation i")
                .unwrap()
                .command,
            Command::Backfill(BackfillCommand::List {
                plugin: Some(_),
                installation: Some(_),
                ..
            })
        ));
        assert!(matches!(
            parse("switchyardctl backfill cancel --team acme b-1")
                .unwrap()
                .command,
            Command::Backfill(BackfillCommand::Cancel { .. })
        ));
        for bad in [
            "switchyardctl backfill start --team acme --plugin p",
            "switchyardctl backfill start --team acme --plugin p --since yesterday",
            "switchyardctl backfill start --team acme --plugin p --since 1h --on-retention latest",
            "switchyardctl backfill start --team acme --plugin p --since 1h --rate -1",
            "switchyardctl backfill list --team acme --installation i",
            "switchyardctl backfill cancel b-1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
