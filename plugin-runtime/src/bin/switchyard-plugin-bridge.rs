//! `switchyard-plugin-bridge`: runs a plugin service written in any language as a Switchyard plugin. It
//! consumes the plugin's topic and calls `POST {url}/execute` for each event (see `docs/plugin-authors.md`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use switchyard_service::config::Layered as _;

use clap::Parser;
use switchyard_plugin_runtime::app;
use switchyard_plugin_runtime::http_plugin::{HttpPlugin, HttpPluginSettings};
use switchyard_plugin_runtime::settings::Settings;
use switchyard_service::lifecycle::{self, CONFIG_ERROR, ConfigArgs, Program, SHUTDOWN_DEADLINE};
use switchyard_service::telemetry;

/// Delivers a plugin's events to its HTTP service, in per-team order, with retries and dead letters.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The plugin service's base URL, e.g. http://127.0.0.1:8093.
    #[arg(long, env = "SWITCHYARD_PLUGIN_URL")]
    url: String,
    /// Read the manifest from this JSON file instead of `GET {url}/metadata`.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    #[command(flatten)]
    flags: ConfigArgs,
}

const PROGRAM: &str = "switchyard-plugin-bridge";

/// mimalloc rather than glibc's malloc: a quarter of the bridge's CPU went to malloc and free (many small
/// buffers, freed on other threads than they were made on); with mimalloc the bridge spends 40% less CPU per
/// event (docs/benchmarks-runtime.md, "A bridge that costs little").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(settings) = lifecycle::loaded(PROGRAM, Settings::load(args.flags.config.as_deref())) else {
        return ExitCode::from(CONFIG_ERROR);
    };
    let manifest = match &args.manifest {
        None => None,
        Some(path) => match std::fs::read(path).map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(json)) => Some(json),
            Ok(Err(error)) => {
                eprintln!(
                    "switchyard-plugin-bridge: {} is not JSON: {error}",
                    path.display()
                );
                return ExitCode::from(2);
            }
            Err(error) => {
                eprintln!(
                    "switchyard-plugin-bridge: cannot read {}: {error}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
    };
    if args.flags.check_config {
        println!("{PROGRAM}: configuration is valid");
        return ExitCode::SUCCESS;
    }
    telemetry::init(&settings.log);
    let http = HttpPluginSettings {
        url: args.url,
        timeout: Duration::from_millis(settings.http.timeout_ms),
        max_response_bytes: settings.http.max_response_bytes,
        url_patterns: settings.http.url_patterns.clone(),
        allowed_networks: settings.http.allowed_networks.clone(),
    };
    let program = Program::new(PROGRAM, lifecycle::own_log!());
    lifecycle::run_until_signal(program, SHUTDOWN_DEADLINE, |shutdown| async move {
        let plugin = HttpPlugin::connect(&http, manifest)
            .await
            .map_err(|e| e.to_string())?;
        if !settings.http.signing_secret.is_empty() {
            plugin
                .set_signing_secret(settings.http.signing_secret.expose())
                .map_err(|e| e.to_string())?;
        }
        app::run(plugin, settings, shutdown)
            .await
            .map_err(|e| e.to_string())
    })
}
