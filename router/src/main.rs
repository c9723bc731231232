//! `switchyard-router`: parses flags, loads the configuration, installs logging and runs the router.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use switchyard_router::config::Config;
use switchyard_router::{app, lifecycle, telemetry};

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
    lifecycle::run_until_signal("switchyard-router", |shutdown| app::run(config, shutdown))
}
