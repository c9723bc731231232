//! `switchyardctl`: the registry from a terminal. Tables for people, `--json` for scripts.
//!
//! ```text
//! switchyardctl plugins list | show ID | register FILE | deregister ID
//! switchyardctl teams plugins TEAM
//! switchyardctl enable --team TEAM PLUGIN [--event-types a,b] | disable --team TEAM PLUGIN
//! switchyardctl config set --team TEAM PLUGIN (--file FILE | JSON) | show --team TEAM PLUGIN
//! switchyardctl token mint --role admin|team|plugin [--team T] [--plugin P] [--ttl 1h]
//! switchyardctl dlq list|replay --plugin P [--team T] [--since TIME] [--dry-run] | show --plugin P EVENT_ID
//!                 [--kafka-config FILE] [-X KEY=VALUE]... [--bootstrap HOSTS] [--timeout 30s]
//! ```
//! The registry's URL and the token come from `--url`/`--token` or `SWITCHYARD_REGISTRY_URL`/
//! `SWITCHYARD_TOKEN`. `token mint` signs with the registry's HS256 secret (`--secret` or
//! `SWITCHYARD_REGISTRY__AUTH__HS256_SECRET`, the variable the registry itself reads), and refuses a `--ttl`
//! longer than the registry accepts for the role (its `auth.max_token_lifetime_ms` and
//! `auth.max_plugin_token_lifetime_ms`, read from the same variables, 24 h and 90 days by default).
//!
//! `dlq` talks to Kafka with the Kafka settings of the services: the `[kafka]` section of `--kafka-config`
//! (the registry's own configuration file will do; other sections are ignored), then the variables
//! `SWITCHYARDCTL__KAFKA__...` (e.g. `SWITCHYARDCTL__KAFKA__OPTIONS__SASL_PASSWORD`), then `--bootstrap`
//! and `-X key=value`. It reads the dead-letter topic to its end or fails: past `--timeout` it exits 1
//! and replays nothing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use switchyard_registry::auth::{
    Claims, DEFAULT_MAX_PLUGIN_TOKEN_LIFETIME, DEFAULT_MAX_TOKEN_LIFETIME, Role, format_lifetime,
    mint_hs256_for,
};
use switchyard_registry::client::{Client, ClientError};
use switchyard_registry::dead_letters::{self, DeadLetterError, Filter};
use switchyard_registry::signing::MasterKey;
use switchyard_service::config::load_layers;
use switchyard_service::kafka::{
    CREDENTIALS_CHECK_TIMEOUT, ClientStats, Clients, KafkaSettings, check_credentials_blocking,
};

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
    /// A team's plugins.
    #[command(subcommand)]
    Teams(TeamsCommand),
    /// Enable a plugin for a team.
    Enable {
        /// The team.
        #[arg(long)]
        team: String,
        /// The plugin.
        plugin: String,
        /// Only these event types (comma-separated); default all of the plugin's.
        #[arg(long, value_delimiter = ',')]
        event_types: Vec<String>,
    },
    /// Disable a plugin for a team.
    Disable {
        /// The team.
        #[arg(long)]
        team: String,
        /// The plugin.
        plugin: String,
    },
    /// A team's config of a plugin.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Development tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// A plugin's dead letters (reads and writes Kafka directly).
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Debug, clap::Args)]
struct DlqTarget {
    /// The plugin.
    #[arg(long)]
    plugin: String,
    /// Kafka bootstrap servers [default: the config file's, else 127.0.0.1:9092].
    #[arg(long, env = "SWITCHYARD_KAFKA_BOOTSTRAP")]
    bootstrap: Option<String>,
    /// A TOML file whose `[kafka]` section (bootstrap_servers, options, consumer_options,
    /// producer_options) is used, as in the services' configuration files.
    #[arg(long, value_name = "FILE")]
    kafka_config: Option<PathBuf>,
    /// A librdkafka option for every client, e.g. `-X security.protocol=SASL_SSL`; repeatable.
    #[arg(short = 'X', long = "kafka-option", value_name = "KEY=VALUE", value_parser = parse_option)]
    kafka_options: Vec<(String, String)>,
    /// How long reading the dead-letter topic to its end may take (`30s`, `2m`).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// The plugin's events topic; `{plugin}` becomes the id.
    #[arg(long, default_value = "plugin.{plugin}.events")]
    events_template: String,
    /// The plugin's dead-letter topic; `{plugin}` becomes the id.
    #[arg(long, default_value = "plugin.{plugin}.dlq")]
    dead_letter_template: String,
}

#[derive(Debug, clap::Args)]
struct DlqFilter {
    /// Only this team's dead letters.
    #[arg(long)]
    team: Option<String>,
    /// Only those dead-lettered since: an RFC 3339 time or a duration ago (`2h`, `30m`).
    #[arg(long, value_parser = parse_since)]
    since: Option<SystemTime>,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List dead letters.
    List {
        #[command(flatten)]
        target: DlqTarget,
        #[command(flatten)]
        filter: DlqFilter,
    },
    /// Show the dead letters of one event.
    Show {
        #[command(flatten)]
        target: DlqTarget,
        /// The event's `ce_id`.
        event_id: String,
    },
    /// Put dead letters back on the plugin's topic, once the cause is fixed.
    Replay {
        #[command(flatten)]
        target: DlqTarget,
        #[command(flatten)]
        filter: DlqFilter,
        /// Only show what would be replayed.
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_since(text: &str) -> Result<SystemTime, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(SystemTime::now() - ago);
    }
    humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{text:?} is neither a duration nor an RFC 3339 time: {e}"))
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

#[derive(Debug, Subcommand)]
enum TeamsCommand {
    /// The team's enablements with each plugin's status.
    Plugins {
        /// The team.
        team: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Replace the config (secret fields left out keep their value; `null` clears one).
    Set {
        /// The team.
        #[arg(long)]
        team: String,
        /// The plugin.
        plugin: String,
        /// The config as JSON.
        #[arg(
            value_name = "JSON",
            conflicts_with = "file",
            required_unless_present = "file"
        )]
        config: Option<String>,
        /// Read the config from a file.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Show the config; secret fields appear only as set/unset.
    Show {
        /// The team.
        #[arg(long)]
        team: String,
        /// The plugin.
        plugin: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    Team,
    Plugin,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a plugin's Standard Webhooks signing secret, derived from the registry's signing key (for a
    /// plugin service that verifies the calls of its bridge and of the gateway).
    SigningSecret {
        /// The plugin.
        #[arg(long)]
        plugin: String,
        /// The registry's signing key.
        #[arg(
            long,
            env = "SWITCHYARD_REGISTRY__GATEWAY__SIGNING_KEY",
            hide_env_values = true
        )]
        signing_key: String,
    },
    /// Mint an HS256 token from the registry's shared secret.
    Mint {
        /// The role.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The team (team tokens).
        #[arg(long, required_if_eq("role", "team"))]
        team: Option<String>,
        /// The plugin (plugin tokens).
        #[arg(long, required_if_eq("role", "plugin"))]
        plugin: Option<String>,
        /// The `aud` claim, when the registry is configured with `auth.audience`.
        #[arg(long)]
        audience: Option<String>,
        /// Lifetime, e.g. `15m`, `1h`, `7d`; at most what the registry accepts for the role.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The registry's `auth.max_token_lifetime_ms`: the longest `--ttl` of an admin or team token.
        #[arg(
            long,
            env = "SWITCHYARD_REGISTRY__AUTH__MAX_TOKEN_LIFETIME_MS",
            default_value_t = DEFAULT_MAX_TOKEN_LIFETIME.as_millis() as u64
        )]
        max_token_lifetime_ms: u64,
        /// The registry's `auth.max_plugin_token_lifetime_ms`: the longest `--ttl` of a plugin token.
        #[arg(
            long,
            env = "SWITCHYARD_REGISTRY__AUTH__MAX_PLUGIN_TOKEN_LIFETIME_MS",
            default_value_t = DEFAULT_MAX_PLUGIN_TOKEN_LIFETIME.as_millis() as u64
        )]
        max_plugin_token_lifetime_ms: u64,
        /// The registry's HS256 secret.
        #[arg(long, env = "SWITCHYARD_REGISTRY__AUTH__HS256_SECRET", hide_env_values = true)]
        secret: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
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

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Usage(String),
}

fn run(args: &Args) -> Result<(), Failure> {
    if let Command::Token(TokenCommand::Mint {
        role,
        team,
        plugin,
        audience,
        ttl,
        max_token_lifetime_ms,
        max_plugin_token_lifetime_ms,
        secret,
    }) = &args.command
    {
        let (name, max_ms, key) = match role {
            RoleArg::Plugin => (
                "plugin",
                *max_plugin_token_lifetime_ms,
                "auth.max_plugin_token_lifetime_ms",
            ),
            RoleArg::Admin => ("admin", *max_token_lifetime_ms, "auth.max_token_lifetime_ms"),
            RoleArg::Team => ("team", *max_token_lifetime_ms, "auth.max_token_lifetime_ms"),
        };
        let max = Duration::from_millis(max_ms);
        if *ttl > max {
            return Err(Failure::Usage(format!(
                "--ttl {} is longer than the registry accepts for {name} tokens ({}, its {key}); the registry \
                 would refuse the token",
                format_lifetime(*ttl),
                format_lifetime(max),
            )));
        }
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + ttl.as_secs();
        let claims = Claims {
            role: match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Team => Role::Team,
                RoleArg::Plugin => Role::Plugin,
            },
            team: team.clone(),
            plugin: plugin.clone(),
            exp,
        };
        let token = mint_hs256_for(secret.as_bytes(), &claims, audience.as_deref())
            .map_err(|e| Failure::Usage(e.to_string()))?;
        println!("{token}");
        return Ok(());
    }
    if let Command::Dlq(command) = &args.command {
        return dlq(command, args.json);
    }
    if let Command::Token(TokenCommand::SigningSecret { plugin, signing_key }) = &args.command {
        let key = MasterKey::parse(signing_key).map_err(|e| Failure::Usage(e.to_string()))?;
        println!("{}", key.plugin_secret(plugin));
        return Ok(());
    }
    let client = Client::new(&args.url, args.token.clone())?;
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
            }
            let table = details(&shown);
            (value, table)
        }
        Command::Plugins(PluginsCommand::Deregister { id }) => {
            client.delete(&format!("/v1/plugins/{id}"))?;
            (json!({"deregistered": id}), format!("deregistered {id}\n"))
        }
        Command::Teams(TeamsCommand::Plugins { team }) => {
            let value = client.get(&format!("/v1/teams/{team}/plugins"))?;
            let table = enablement_rows(&value);
            (value, table)
        }
        Command::Enable {
            team,
            plugin,
            event_types,
        } => {
            let mut body = json!({"enabled": true});
            if !event_types.is_empty() {
                body["event_types"] = json!(event_types);
            }
            let value = client.put(&format!("/v1/teams/{team}/plugins/{plugin}"), &body)?;
            let table = enablement_rows(&json!([value.clone()]));
            (value, table)
        }
        Command::Disable { team, plugin } => {
            let value = client.put(
                &format!("/v1/teams/{team}/plugins/{plugin}"),
                &json!({"enabled": false}),
            )?;
            let table = enablement_rows(&json!([value.clone()]));
            (value, table)
        }
        Command::Config(ConfigCommand::Set {
            team,
            plugin,
            config,
            file,
        }) => {
            let config = match (config, file) {
                (Some(text), _) => serde_json::from_str(text)
                    .map_err(|e| Failure::Usage(format!("the config is not JSON: {e}")))?,
                (None, Some(file)) => read_json_file(file)?,
                (None, None) => return Err(Failure::Usage("give the config as JSON or --file".into())),
            };
            let value = client.put(&format!("/v1/teams/{team}/plugins/{plugin}/config"), &config)?;
            let table = config_table(&value);
            (value, table)
        }
        Command::Config(ConfigCommand::Show { team, plugin }) => {
            let value = client.get(&format!("/v1/teams/{team}/plugins/{plugin}/config"))?;
            let table = config_table(&value);
            (value, table)
        }
        Command::Token(_) | Command::Dlq(_) => unreachable!("handled above"),
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

/// The `[kafka]` section of `--kafka-config`; everything else in the file is ignored.
#[derive(Debug, serde::Deserialize)]
struct KafkaFile {
    kafka: KafkaSettings,
}

/// Prefix of the environment overrides of `dlq`'s Kafka settings.
const KAFKA_ENV_PREFIX: &str = "SWITCHYARDCTL";

fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

impl DlqTarget {
    /// The Kafka settings: defaults < `--kafka-config` < `SWITCHYARDCTL__KAFKA__...` < flags.
    fn kafka(&self) -> Result<KafkaSettings, Failure> {
        let loaded: KafkaFile = load_layers(
            "[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n",
            KAFKA_ENV_PREFIX,
            &[],
            self.kafka_config.as_deref(),
            None,
        )
        .map_err(|e| Failure::Usage(format!("the Kafka settings: {e}")))?;
        let mut kafka = loaded.kafka;
        if let Some(bootstrap) = &self.bootstrap {
            kafka.bootstrap_servers = bootstrap.clone();
        }
        kafka.options.extend(self.kafka_options.iter().cloned());
        kafka.check().map_err(|e| Failure::Usage(e.to_string()))?;
        Ok(kafka)
    }
}

fn dlq(command: &DlqCommand, json_output: bool) -> Result<(), Failure> {
    let target = match command {
        DlqCommand::List { target, .. }
        | DlqCommand::Show { target, .. }
        | DlqCommand::Replay { target, .. } => target,
    };
    let topic = |template: &str| template.replace("{plugin}", &target.plugin);
    let dead_letter_topic = topic(&target.dead_letter_template);
    let settings = target.kafka()?;
    // Statistics of a one-shot command are read by no one.
    let clients =
        Clients::new(settings.clone(), ClientStats::unregistered()).with_statistics_interval(Duration::ZERO);
    let kafka = |e: DeadLetterError| Failure::Usage(format!("Kafka at {}: {e}", settings.bootstrap_servers));
    let timeout = target.timeout;
    // A refused password is named here, not reported later as a read that timed out.
    check_credentials_blocking(&clients, CREDENTIALS_CHECK_TIMEOUT.min(timeout))
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let letters = match command {
        DlqCommand::List { filter, .. } | DlqCommand::Replay { filter, .. } => {
            let filter = Filter {
                team: filter.team.clone(),
                since: filter.since,
            };
            dead_letters::read(&clients, &dead_letter_topic, &filter, timeout).map_err(kafka)?
        }
        DlqCommand::Show { event_id, .. } => {
            dead_letters::read(&clients, &dead_letter_topic, &Filter::default(), timeout)
                .map_err(kafka)?
                .into_iter()
                .filter(|l| &l.event_id == event_id)
                .collect()
        }
    };
    if let DlqCommand::Replay { dry_run: false, .. } = command {
        let events_topic = topic(&target.events_template);
        let replayed = dead_letters::replay(&clients, &letters, &events_topic, timeout).map_err(kafka)?;
        if json_output {
            println!("{}", json!({"replayed": replayed, "to": events_topic}));
        } else {
            println!("replayed {replayed} dead letters to {events_topic}");
        }
        return Ok(());
    }
    let value = serde_json::to_value(&letters).unwrap_or_default();
    if json_output {
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|l| {
            vec![
                l.position.clone(),
                l.team.clone(),
                l.event_id.clone(),
                l.reason.clone(),
                l.attempts.clone(),
                l.dead_lettered_at.clone(),
                l.detail.chars().take(60).collect(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "POSITION",
                "TEAM",
                "EVENT",
                "REASON",
                "ATTEMPTS",
                "DEAD-LETTERED",
                "DETAIL"
            ],
            &rows
        )
    );
    if let DlqCommand::Replay { dry_run: true, .. } = command {
        println!("(dry run: {} would be replayed)", letters.len());
    }
    Ok(())
}

fn read_json_file(path: &PathBuf) -> Result<Value, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Failure::Usage(format!("{} is not JSON: {e}", path.display())))
}

fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

fn plugin_rows(value: &Value) -> String {
    let rows: Vec<Vec<String>> = value
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            ["id", "version", "status", "active_instances", "events", "actions"]
                .iter()
                .map(|k| text(p, k))
                .collect()
        })
        .collect();
    table(
        &["ID", "VERSION", "STATUS", "INSTANCES", "EVENTS", "ACTIONS"],
        &rows,
    )
}

fn enablement_rows(value: &Value) -> String {
    let rows: Vec<Vec<String>> = value
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut row: Vec<String> = ["plugin_id", "enabled", "event_types", "status", "configured"]
                .iter()
                .map(|k| text(e, k))
                .collect();
            if row[2] == "-" {
                row[2] = "(all)".to_owned();
            }
            row
        })
        .collect();
    table(
        &["PLUGIN", "ENABLED", "EVENT TYPES", "STATUS", "CONFIGURED"],
        &rows,
    )
}

fn details(value: &Value) -> String {
    let rows: Vec<Vec<String>> = value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, _)| vec![key.clone(), text(value, key)])
        .collect();
    table(&["FIELD", "VALUE"], &rows)
}

fn config_table(value: &Value) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    flatten(
        value.get("config").unwrap_or(&Value::Null),
        String::new(),
        &mut rows,
    );
    for (pointer, state) in value
        .get("secrets")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        rows.push(vec![
            pointer.clone(),
            format!("(secret, {})", state.as_str().unwrap_or("?")),
        ]);
    }
    rows.sort();
    table(&["FIELD", "VALUE"], &rows)
}

fn flatten(value: &Value, pointer: String, rows: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                flatten(child, format!("{pointer}/{key}"), rows);
            }
        }
        Value::Null if pointer.is_empty() => {}
        other => rows.push(vec![pointer, other.to_string()]),
    }
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}
