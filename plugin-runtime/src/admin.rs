//! The worker's HTTP server: `/metrics`, `/healthz`, `/readyz` (the team configs were read to their end and
//! shutdown has not begun), and `POST /actions/{name}` for in-process plugins: the registry's gateway calls
//! it with a Standard Webhooks signature and the team in `switchyard-team`; unsigned or badly signed calls
//! get 401. [`serve`] runs them with the admin limits of [`switchyard_service::http`] (header-read timeout,
//! connection cap, a lingering close so that a caller still uploading an oversized action body reads its
//! 413).

use std::future::Future;
use std::sync::Arc;
use std::sync::RwLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use switchyard_schemas::webhook::SigningSecrets;
use switchyard_service::admin::{self, Readiness};
use switchyard_service::http::Limits;
use tokio::net::TcpListener;

use crate::configs::Configs;
use crate::http_plugin::TEAM_HEADER;
use crate::metrics::Metrics;
use crate::plugin::Plugin;

/// What the server needs.
pub struct AdminState<P> {
    /// The plugin (for actions).
    pub plugin: Arc<P>,
    /// Metrics to render.
    pub metrics: Metrics,
    /// Ready once the team configs were read to their end; not ready from the first moment of shutdown.
    pub readiness: Readiness,
    /// The signing secret the registry signs action calls with.
    pub signing_secret: RwLock<Option<SigningSecrets>>,
}

/// The routes: the foundation's `/healthz`, `/readyz`, `/metrics`, and the actions.
pub fn router<P: Plugin>(state: Arc<AdminState<P>>) -> Router {
    admin::routes(state.readiness.clone(), state.metrics.registry().clone())
        .route("/actions/{name}", post(action::<P>))
        .with_state(state)
}

/// The worker's readiness: the team configs were read to their end.
pub fn readiness(metrics: &Metrics, configs: &Arc<Configs>) -> Readiness {
    let configs = Arc::clone(configs);
    Readiness::new(metrics.ready.clone()).require("reading the team configs", move || configs.caught_up())
}

/// Serves the routes on `listener` with [`Limits::admin`] until `shutdown` completes, then drains.
pub async fn serve<P: Plugin>(
    listener: TcpListener,
    state: Arc<AdminState<P>>,
    shutdown: impl Future<Output = ()>,
) {
    switchyard_service::http::serve(listener, router(state), Limits::admin(), shutdown).await;
}

async fn action<P: Plugin>(
    State(state): State<Arc<AdminState<P>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let secret = state
        .signing_secret
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let Some(secret) = secret else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no signing secret yet\n").into_response();
    };
    if secret.verify_request(header, &body).is_err() {
        return (StatusCode::UNAUTHORIZED, "bad or missing signature\n").into_response();
    }
    let team = header(TEAM_HEADER).unwrap_or_default().to_owned();
    match state.plugin.action(&team, &name, &body).await {
        Ok(reply) => (
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
            axum::Json(reply.body),
        )
            .into_response(),
        Err(error) if error.retryable => (StatusCode::SERVICE_UNAVAILABLE, error.message).into_response(),
        Err(error) => (StatusCode::UNPROCESSABLE_ENTITY, error.message).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use switchyard_service::slow_clients::{Pace, slow_upload};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::plugin::{Context, Event, Outcome, PluginError};

    /// A plugin with no actions: the body limit answers before the action handler is reached.
    struct Idle;

    impl Plugin for Idle {
        fn manifest(&self) -> switchyard_schemas::control::PluginManifest {
            serde_json::from_value(serde_json::json!({
                "id": "idle",
                "name": "Idle",
                "version": "1.0.0",
                "events": ["response.submitted"],
            }))
            .unwrap()
        }

        async fn initialize(
            &self,
            _team: &str,
            _installation: &str,
            _config: Option<&serde_json::Value>,
        ) -> Result<(), PluginError> {
            Ok(())
        }

        async fn execute(&self, _ctx: &Context, _event: &Event) -> Outcome {
            Outcome::done()
        }
    }

    #[tokio::test]
    async fn a_caller_still_uploading_an_oversized_action_body_reads_the_413() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let state = Arc::new(AdminState {
            plugin: Arc::new(Idle),
            metrics: Metrics::new("idle"),
            readiness: Readiness::new(prometheus::IntGauge::new("ready", "ready").unwrap()),
            signing_secret: RwLock::new(None),
        });
        let server = tokio::spawn(serve(listener, state, shutdown.clone().cancelled_owned()));
        // 3 MiB against axum's 2 MiB default: the worker answers once it has read 2 MiB, while the caller
        // still has a megabyte to send.
        let pace = Pace {
            chunk_bytes: 64 * 1024,
            every: Duration::from_millis(10),
        };
        let answer = slow_upload(
            address,
            "/actions/lookup",
            &[],
            3 * 1024 * 1024,
            pace,
            Duration::from_secs(10),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        shutdown.cancel();
        server.await.unwrap();
    }
}
