//! `switchyard-router`: parses flags, loads the configuration, installs logging and runs the router.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use switchyard_router::config::Config;
use switchyard_router::{app, signals, telemetry};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("switchyard-router: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(signals::cancel_on_signal(shutdown.clone()));
        app::run(config, shutdown).await
    });
    match result {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            error!(%error, "the router stopped on an error");
            ExitCode::FAILURE
        }
    }
}
