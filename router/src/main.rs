//! `switchyard-router`: parses flags, loads the configuration, installs logging and runs the router.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use switchyard_router::app;
use switchyard_router::config::Config;
use switchyard_service::config::Layered as _;
use switchyard_service::lifecycle::{self, CONFIG_ERROR, ConfigArgs, SHUTDOWN_DEADLINE};
use switchyard_service::telemetry;

/// Routes core events to the topics of the plugins each team enabled.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    flags: ConfigArgs,
}

const PROGRAM: &str = "switchyard-router";

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(config) = lifecycle::loaded(PROGRAM, Config::load(args.flags.config.as_deref())) else {
        return ExitCode::from(CONFIG_ERROR);
    };
    if args.flags.check_config {
        println!("{PROGRAM}: configuration is valid");
        return ExitCode::SUCCESS;
    }
    telemetry::init(&config.log);
    // The drain is bounded by delivery.drain_timeout_ms; the deadline leaves it that and more.
    let deadline = SHUTDOWN_DEADLINE.max(Duration::from_millis(config.delivery.drain_timeout_ms) * 2);
    lifecycle::run_until_signal(PROGRAM, deadline, |shutdown| app::run(config, shutdown))
}
