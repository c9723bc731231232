//! `switchyard-router`: the foundation's service `main` around [`app::run`].

use std::process::ExitCode;

use switchyard_router::app;
use switchyard_router::config::Config;
use switchyard_service::lifecycle;

fn main() -> ExitCode {
    lifecycle::main::<Config, _, _>(
        lifecycle::own_log!(),
        "Routes core events to the topics of the plugins each team enabled.",
        app::run,
    )
}
