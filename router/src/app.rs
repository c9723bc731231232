//! Wires the router together and runs it until shutdown.
//!
//! ```text
//!   admin HTTP (tokio) ─── /metrics /healthz /readyz
//!   control threads ──► RouteTable ──(caught up)──► pipeline thread ──► plugin topics, DLQ
//! ```
//!
//! Shutdown order: readiness goes false at once; the pipeline stops fetching, commits what it read and
//! flushes; then the control threads and the HTTP server stop. The admin server runs with
//! [`Limits::admin`]: a header-read timeout, a connection cap and a bounded drain.

use std::sync::Arc;

use switchyard_service::admin::{self, Gate, Readiness};
use switchyard_service::http::Limits;
use switchyard_service::kafka::{CREDENTIALS_CHECK_TIMEOUT, check_credentials};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::RouterError;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::run::Pipeline;
use crate::tables::materializer::{self, ControlTopic};
use crate::tables::routes::RouteTable;

/// What `/readyz` waits for.
struct Gates {
    caught_up: Gate,
    running: Gate,
}

/// Runs the router until `shutdown` is cancelled (clean exit) or a fatal error happens.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RouterError> {
    let metrics = Metrics::new();
    metrics.set_info(&config);
    let gates = Gates {
        caught_up: Gate::default(),
        running: Gate::default(),
    };
    let readiness = Readiness::new(metrics.ready.clone())
        .require_gate("catching up on the control topics", &gates.caught_up)
        .require_gate("starting the pipeline", &gates.running);
    let table = Arc::new(RouteTable::new(config.topics.plugin_events_template.clone()));

    let listener = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .map_err(|source| RouterError::Listen {
            address: config.admin.listen,
            source,
        })?;
    info!(address = %config.admin.listen, "admin server listening");
    let background = CancellationToken::new();
    let server = tokio::spawn(switchyard_service::http::serve(
        listener,
        admin::routes(readiness.clone(), metrics.registry().clone()),
        Limits::admin(),
        background.clone().cancelled_owned(),
    ));
    tokio::spawn({
        let (shutdown, readiness) = (shutdown.clone(), readiness.clone());
        async move {
            shutdown.cancelled().await;
            readiness.set_stopping();
        }
    });

    let result = run_data_plane(&config, &table, &metrics, &gates, &shutdown, &background).await;
    readiness.set_stopping();
    background.cancel();
    if let Err(error) = server.await {
        warn!(%error, "the admin server task failed");
    }
    result
}

async fn run_data_plane(
    config: &Config,
    table: &Arc<RouteTable>,
    metrics: &Metrics,
    gates: &Gates,
    shutdown: &CancellationToken,
    background: &CancellationToken,
) -> Result<(), RouterError> {
    let clients = config.clients(metrics.kafka.clone());
    // A refused password stops the start here; the clients below would retry it forever.
    check_credentials(&clients, CREDENTIALS_CHECK_TIMEOUT).await?;
    let mut followers = Vec::new();
    for kind in [ControlTopic::Plugins, ControlTopic::Enablements] {
        followers.push(materializer::spawn(
            kind,
            config,
            &clients,
            Arc::clone(table),
            metrics.clone(),
            background,
        )?);
    }
    let result = async {
        for follower in &followers {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                () = follower.wait_caught_up() => {}
            }
        }
        gates.caught_up.set(true);
        let pipeline = {
            let (config, table, metrics) = (config.clone(), Arc::clone(table), metrics.clone());
            tokio::task::spawn_blocking(move || Pipeline::build(&config, table, metrics))
                .await
                .map_err(RouterError::Join)??
        };
        gates.running.set(true);
        let shutdown = shutdown.clone();
        let outcome = tokio::task::spawn_blocking(move || pipeline.run(&shutdown))
            .await
            .map_err(RouterError::Join)?;
        gates.running.set(false);
        outcome
    }
    .await;
    background.cancel();
    // Dropping a follower joins its thread: off the async workers.
    tokio::task::spawn_blocking(move || drop(followers))
        .await
        .map_err(RouterError::Join)?;
    result
}
