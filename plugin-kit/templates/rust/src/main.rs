//! `__PLUGIN_ID__`: runs the plugin as a Switchyard plugin worker until SIGTERM or SIGINT.
//!
//! Settings are the runtime's, in layers: its defaults < `--config FILE` (TOML) < the environment,
//! `SWITCHYARD_PLUGIN__<SECTION>__<KEY>` (e.g.
//! `SWITCHYARD_PLUGIN__KAFKA__BOOTSTRAP_SERVERS=host:9092`, `SWITCHYARD_PLUGIN__REGISTRY__URL`,
//! `SWITCHYARD_PLUGIN__REGISTRY__TOKEN`).

use std::process::ExitCode;

use clap::Parser;
use switchyard_plugin_runtime::app;
use switchyard_plugin_runtime::lifecycle::{
    self, CONFIG_ERROR, ConfigArgs, Program, SHUTDOWN_DEADLINE,
};
use switchyard_plugin_runtime::settings::{Layered as _, Settings};
use switchyard_plugin_runtime::telemetry;

use __PLUGIN_MODULE__::__PLUGIN_TYPE__;

const PROGRAM: &str = "__PLUGIN_ID__";

/// __PLUGIN_NAME__: a Switchyard plugin worker.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// `--config FILE` and `--check-config`, as every Switchyard worker takes them.
    #[command(flatten)]
    flags: ConfigArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(settings) = lifecycle::loaded(PROGRAM, Settings::load(args.flags.config.as_deref()))
    else {
        return ExitCode::from(CONFIG_ERROR);
    };
    let plugin = match __PLUGIN_TYPE__::new() {
        Ok(plugin) => plugin,
        Err(error) => {
            eprintln!("{PROGRAM}: manifest.json is not a valid manifest: {error}");
            return ExitCode::FAILURE;
        }
    };
    if args.flags.check_config {
        println!("{PROGRAM}: configuration is valid");
        return ExitCode::SUCCESS;
    }
    telemetry::init(&settings.log);
    // Registers with the registry (when `registry.url` is set), follows the configs, consumes the
    // plugin's topic and serves the admin server (`/metrics`, `/healthz`, `/readyz`,
    // `/actions/{name}`) until a signal; then finishes the calls in progress and commits. Its start and
    // stop are logged under this crate's own target, `<crate>::lifecycle`.
    let program = Program::new(PROGRAM, lifecycle::own_log!());
    lifecycle::run_until_signal(program, SHUTDOWN_DEADLINE, |shutdown| {
        app::run(plugin, settings, shutdown)
    })
}
