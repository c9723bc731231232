//! `switchyard-seed-plugin`: the seed plugins and the local stand-ins of the SaaS they call.
//!
//! ```text
//! switchyard-seed-plugin sheets-export (--csv-dir DIR | --sheets-api URL) [--config FILE]
//! switchyard-seed-plugin sms-notify --sms-api URL [--ledger-topic TOPIC | --no-ledger] [--config FILE]
//! switchyard-seed-plugin slang-search [--config FILE]
//! switchyard-seed-plugin rules-service --listen ADDR     (behind switchyard-plugin-bridge)
//! switchyard-seed-plugin fake-twilio --listen ADDR --account SID:TOKEN
//! ```
//! The plugins run in process on the plugin runtime, configured like every worker (`--config`,
//! `SWITCHYARD_PLUGIN__...`). The fakes speak the real APIs' requests and answers, for the demo.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use switchyard_service::config::Layered as _;

use clap::{Parser, Subcommand};
use switchyard_plugin_runtime::app;
use switchyard_plugin_runtime::settings::Settings;
use switchyard_plugins::fakes::twilio::FakeTwilio;
use switchyard_plugins::in_process::{
    SheetsExportPlugin, SlangSearchPlugin, SmsNotifyPlugin, sheets_export_manifest, sms_notify_manifest,
};
use switchyard_plugins::rules_service::{self, RulesService};
use switchyard_plugins::sheets::client::SheetsClient;
use switchyard_plugins::sheets::{CsvTarget, GoogleSheets};
use switchyard_plugins::sms::SmsNotifier;
use switchyard_plugins::sms::ledger::SentLedger;
use switchyard_plugins::sms::twilio::TwilioClient;
use switchyard_schemas::webhook::SigningSecret;
use switchyard_service::kafka::ClientStats;
use switchyard_service::lifecycle::{self, CONFIG_ERROR, Program, SHUTDOWN_DEADLINE};
use switchyard_service::telemetry;

/// Runs a seed plugin, or a local stand-in of a SaaS API.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A TOML file layered over the worker's defaults (SWITCHYARD_PLUGIN__... variables override both).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Each response becomes a row of the team's spreadsheet.
    SheetsExport {
        /// Write CSV files under this directory instead of Google Sheets (local runs, the demo).
        #[arg(long, conflicts_with = "sheets_api")]
        csv_dir: Option<PathBuf>,
        /// The Google Sheets API base URL.
        #[arg(long, default_value = "https://sheets.googleapis.com")]
        sheets_api: String,
    },
    /// Texts respondents through a Twilio-compatible API.
    SmsNotify {
        /// The API base URL.
        #[arg(long, default_value = "https://api.twilio.com")]
        sms_api: String,
        /// The compacted topic recording every message sent, checked before each send so that a
        /// redelivered event does not text twice (created if missing).
        #[arg(long, default_value = switchyard_plugins::sms::ledger::DEFAULT_TOPIC)]
        ledger_topic: String,
        /// Send without a ledger: a redelivered event texts again.
        #[arg(long)]
        no_ledger: bool,
    },
    /// Finds local slang in text answers.
    SlangSearch,
    /// The rules-validate plugin service (HTTP); run `switchyard-plugin-bridge --url` in front of it.
    RulesService {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8093")]
        listen: String,
        /// Its Standard Webhooks secret (`whsec_...`); empty = requests are not verified.
        #[arg(
            long,
            env = "RULES_SIGNING_SECRET",
            default_value = "",
            hide_env_values = true
        )]
        signing_secret: String,
    },
    /// A local Twilio-compatible Messages API that accepts the given accounts.
    FakeTwilio {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8094")]
        listen: String,
        /// An accepted `ACCOUNT_SID:AUTH_TOKEN` pair (repeatable).
        #[arg(long = "account", required = true)]
        accounts: Vec<String>,
    },
}

const PROGRAM: &str = "switchyard-seed-plugin";

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(settings) = lifecycle::loaded(PROGRAM, Settings::load(args.config.as_deref())) else {
        return ExitCode::from(CONFIG_ERROR);
    };
    telemetry::init(&settings.log);
    let program = Program::new(PROGRAM, lifecycle::own_log!());
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.http.timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            eprintln!("switchyard-seed-plugin: cannot build the HTTP client: {error}");
            return ExitCode::FAILURE;
        }
    };
    let url = (!settings.admin.public_url.is_empty()).then(|| settings.admin.public_url.clone());
    match args.command {
        Command::SheetsExport {
            csv_dir: Some(dir), ..
        } => lifecycle::run_until_signal(program, SHUTDOWN_DEADLINE, |shutdown| {
            let plugin = SheetsExportPlugin::new(CsvTarget::new(dir), sheets_export_manifest(url));
            app::run(plugin, settings, shutdown)
        }),
        Command::SheetsExport {
            csv_dir: None,
            sheets_api,
        } => {
            let client = match SheetsClient::new(&sheets_api, http) {
                Ok(client) => client,
                Err(error) => {
                    eprintln!("switchyard-seed-plugin: {error}");
                    return ExitCode::from(2);
                }
            };
            lifecycle::run_until_signal(program, SHUTDOWN_DEADLINE, |shutdown| {
                let plugin = SheetsExportPlugin::new(GoogleSheets::new(client), sheets_export_manifest(url));
                app::run(plugin, settings, shutdown)
            })
        }
        Command::SmsNotify {
            sms_api,
            ledger_topic,
            no_ledger,
        } => {
            let client = match TwilioClient::new(&sms_api, http) {
                Ok(client) => client,
                Err(error) => {
                    eprintln!("switchyard-seed-plugin: {error}");
                    return ExitCode::from(2);
                }
            };
            lifecycle::run_until_signal(program, SHUTDOWN_DEADLINE, |shutdown| async move {
                let mut plugin = SmsNotifyPlugin::new(SmsNotifier::new(client), sms_notify_manifest(url));
                if !no_ledger {
                    let clients = settings.clients(ClientStats::unregistered());
                    let ledger = SentLedger::start(&clients, &ledger_topic, &shutdown)
                        .await
                        .map_err(|error| format!("starting the ledger on {ledger_topic}: {error}"))?;
                    plugin = plugin.with_ledger(ledger);
                }
                app::run(plugin, settings, shutdown)
                    .await
                    .map_err(|error| error.to_string())
            })
        }
        Command::SlangSearch => match SlangSearchPlugin::new() {
            Ok(plugin) => lifecycle::run_until_signal(program, SHUTDOWN_DEADLINE, |shutdown| {
                app::run(plugin, settings, shutdown)
            }),
            Err(error) => {
                eprintln!("switchyard-seed-plugin: the built-in dictionaries do not load: {error}");
                ExitCode::FAILURE
            }
        },
        Command::RulesService {
            listen,
            signing_secret,
        } => {
            let secret = if signing_secret.is_empty() {
                tracing::warn!("no signing secret: requests are not verified");
                None
            } else {
                match SigningSecret::parse(&signing_secret) {
                    Ok(secret) => Some(secret),
                    Err(error) => {
                        eprintln!("switchyard-seed-plugin: {error}");
                        return ExitCode::from(2);
                    }
                }
            };
            let service = match RulesService::new(&format!("http://{listen}"), secret) {
                Ok(service) => std::sync::Arc::new(service),
                Err(error) => {
                    eprintln!("switchyard-seed-plugin: the default rules do not compile: {error}");
                    return ExitCode::FAILURE;
                }
            };
            lifecycle::run_until_signal(program, SHUTDOWN_DEADLINE, |shutdown| async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
                tracing::info!(address = %listen, "rules-validate service listening");
                axum::serve(listener, rules_service::router(service))
                    .with_graceful_shutdown(shutdown.cancelled_owned())
                    .await
                    .map_err(|e| e.to_string())
            })
        }
        Command::FakeTwilio { listen, accounts } => {
            let fake = FakeTwilio::new();
            for account in &accounts {
                let Some((sid, token)) = account.split_once(':') else {
                    eprintln!("switchyard-seed-plugin: --account must be SID:TOKEN");
                    return ExitCode::from(2);
                };
                fake.add_account(sid, token);
            }
            lifecycle::run_until_signal(program, SHUTDOWN_DEADLINE, |shutdown| async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
                tracing::info!(address = %listen, "fake Twilio Messages API listening");
                axum::serve(listener, switchyard_plugins::fakes::twilio::router(fake))
                    .with_graceful_shutdown(shutdown.cancelled_owned())
                    .await
                    .map_err(|e| e.to_string())
            })
        }
    }
}
