//! `switchyard-registry`: parses flags, loads the configuration, installs logging and runs the registry.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use switchyard_registry::app;
use switchyard_registry::config::Config;
use switchyard_service::lifecycle::{self, SHUTDOWN_DEADLINE};
use switchyard_service::telemetry;

/// The plugin manager: plugins register, teams enable and configure them, the core calls their actions.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A TOML file layered over the embedded defaults (environment variables SWITCHYARD_REGISTRY__...
    /// override both).
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
            eprintln!("switchyard-registry: {error}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        return match app::check_offline(&config) {
            Ok(_) => {
                println!("switchyard-registry: configuration is valid");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("switchyard-registry: {error}");
                ExitCode::from(2)
            }
        };
    }
    telemetry::init(&config.log);
    // In-flight requests get http.request_timeout_ms to finish; the deadline leaves them that and more.
    let deadline = SHUTDOWN_DEADLINE.max(Duration::from_millis(config.http.request_timeout_ms) * 2);
    lifecycle::run_until_signal("switchyard-registry", deadline, |shutdown| {
        app::run(config, shutdown)
    })
}
