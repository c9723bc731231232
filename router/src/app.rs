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
use std::thread::JoinHandle;

use switchyard_service::http::Limits;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::RouterError;
use crate::admin::{self, AdminState, Health};
use crate::config::Config;
use crate::kafka::{CREDENTIALS_CHECK_TIMEOUT, check_credentials};
use crate::metrics::Metrics;
use crate::pipeline::run::Pipeline;
use crate::tables::materializer::{self, ControlTopic};
use crate::tables::routes::RouteTable;

/// Runs the router until `shutdown` is cancelled (clean exit) or a fatal error happens.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RouterError> {
    let metrics = Metrics::new();
    let health = Health::new(metrics.ready.clone());
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
        admin::router(AdminState {
            metrics: metrics.clone(),
            health: health.clone(),
        }),
        Limits::admin(),
        background.clone().cancelled_owned(),
    ));
    tokio::spawn({
        let (shutdown, health) = (shutdown.clone(), health.clone());
        async move {
            shutdown.cancelled().await;
            health.set_stopping();
        }
    });

    let result = run_data_plane(&config, &table, &metrics, &health, &shutdown, &background).await;
    health.set_stopping();
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
    health: &Health,
    shutdown: &CancellationToken,
    background: &CancellationToken,
) -> Result<(), RouterError> {
    // A refused password stops the start here; the clients below would retry it forever.
    check_credentials(
        &config.kafka.bootstrap_servers,
        &config.kafka.options,
        CREDENTIALS_CHECK_TIMEOUT,
    )
    .await?;
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut caught_up = Vec::new();
    for kind in [ControlTopic::Plugins, ControlTopic::Enablements] {
        let (sender, receiver) = watch::channel(false);
        threads.push(materializer::spawn(
            kind,
            config,
            Arc::clone(table),
            metrics.clone(),
            sender,
            background.clone(),
        )?);
        caught_up.push(receiver);
    }
    let result = async {
        for receiver in &mut caught_up {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                changed = receiver.wait_for(|ready| *ready) => {
                    if changed.is_err() {
                        return Err(RouterError::ControlStopped);
                    }
                }
            }
        }
        health.set_caught_up();
        let pipeline = {
            let (config, table, metrics) = (config.clone(), Arc::clone(table), metrics.clone());
            tokio::task::spawn_blocking(move || Pipeline::build(&config, table, metrics))
                .await
                .map_err(RouterError::Join)??
        };
        health.set_running(true);
        let shutdown = shutdown.clone();
        let outcome = tokio::task::spawn_blocking(move || pipeline.run(&shutdown))
            .await
            .map_err(RouterError::Join)?;
        health.set_running(false);
        outcome
    }
    .await;
    background.cancel();
    tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    })
    .await
    .map_err(RouterError::Join)?;
    result
}
