//! `switchyard-registry`: parses flags, loads the configuration, installs logging and runs the registry.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use switchyard_registry::app;
use switchyard_registry::config::Config;
use switchyard_service::config::Layered as _;
use switchyard_service::lifecycle::{self, CONFIG_ERROR, ConfigArgs, SHUTDOWN_DEADLINE};
use switchyard_service::telemetry;

/// The plugin manager: plugins register, teams enable and configure them, the core calls their actions.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    flags: ConfigArgs,
}

const PROGRAM: &str = "switchyard-registry";

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(config) = lifecycle::loaded(PROGRAM, Config::load(args.flags.config.as_deref())) else {
        return ExitCode::from(CONFIG_ERROR);
    };
    if args.flags.check_config {
        // Also what needs no broker: the keys and the gateway's settings.
        if lifecycle::loaded(PROGRAM, app::check_offline(&config)).is_none() {
            return ExitCode::from(CONFIG_ERROR);
        }
        println!("{PROGRAM}: configuration is valid");
        return ExitCode::SUCCESS;
    }
    telemetry::init(&config.log);
    // In-flight requests get http.request_timeout_ms to finish; the deadline leaves them that and more.
    let deadline = SHUTDOWN_DEADLINE.max(Duration::from_millis(config.http.request_timeout_ms) * 2);
    lifecycle::run_until_signal(PROGRAM, deadline, |shutdown| app::run(config, shutdown))
}
