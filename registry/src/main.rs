//! `switchyard-registry`: the foundation's service `main` around [`app::run`].

use std::process::ExitCode;

use switchyard_registry::app;
use switchyard_registry::config::Config;
use switchyard_service::lifecycle;

fn main() -> ExitCode {
    lifecycle::main::<Config, _, _>(
        lifecycle::own_log!(),
        "The plugin manager: plugins register, teams enable and configure them, the core calls their actions.",
        app::run,
    )
}
