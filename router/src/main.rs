//! `switchyard-router`: parses flags, loads the configuration, installs logging and runs the router.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use std::time::Duration;
use switchyard_router::config::Config;

use switchyard_router::app;
use switchyard_service::lifecycle::{self, SHUTDOWN_DEADLINE};
use switchyard_service::telemetry;

/// Routes core events to the per-plugin topics of the plugins each team enabled.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A TOML file layered over the embedded defaults (environment variables SWITCHYARD_ROUTER__... override both).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Load and check the configuration, then exit: 0 if it is valid.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("switchyard-router: {error}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("switchyard-router: configuration is valid");
        return ExitCode::SUCCESS;
    }
    telemetry::init(&config.log);
    // The drain is bounded by delivery.drain_timeout_ms; the deadline leaves it that and more.
    let deadline = SHUTDOWN_DEADLINE.max(Duration::from_millis(config.delivery.drain_timeout_ms) * 2);
    lifecycle::run_until_signal("switchyard-router", deadline, |shutdown| {
        app::run(config, shutdown)
    })
}
