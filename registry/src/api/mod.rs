//! The registry's HTTP API v1, as an axum router that tests call without a socket.
//!
//! | module      | routes                                                                      |
//! |-------------|-----------------------------------------------------------------------------|
//! | [`plugins`] | `/v1/plugins`, `/v1/plugins/{id}`, `/v1/plugins/{id}/heartbeat`             |
//! | [`teams`]   | `/v1/teams/{team}/plugins`, `.../{id}`, `.../{id}/config` (the default installation) |
//! | [`installations`] | `/v1/teams/{team}/installations`, `.../plugins/{id}/installations[/{installation}[/config]]` |
//! | [`backfills`] | `/v1/teams/{team}/backfills[/{backfill}]`, `.../plugins/{id}[/installations/{installation}]/backfills` |
//! | [`secrets`] | `/v1/secrets`, `/v1/secrets/reseal` (admins: sealed config secrets, their rotation)     |
//! | [`dead_letters`] | `/v1/teams/{team}/plugins/{id}/dead-letters[/{letter}]`, `.../dead-letters/replay`, `/v1/plugins/{id}/dead-letters[/{letter}]` |
//! | [`lag`]     | `/v1/plugins/{id}/lag` (the plugin workers' consumer lag)                   |
//! | [`registrations`] | `/v1/plugins/{id}/registrations` (the plugin's registration history)  |
//! | [`actions`] | `/v1/teams/{team}/plugins/{id}/actions/{action}` (the gateway)              |
//! | [`ops`]     | `/healthz`, `/readyz`, `/metrics`, `/v1/openapi.json` (no token needed)     |
//!
//! Every `/v1` route except the OpenAPI document authenticates with a bearer token ([`crate::auth`]) and
//! answers errors as problem details ([`crate::problem`]). Who may call what is in `docs/registry.md`.

pub mod actions;
pub mod backfills;
pub mod dead_letters;
pub mod installations;
pub mod lag;
pub mod ops;
pub mod paging;
pub mod plugins;
pub mod registrations;
pub mod schema_work;
pub mod secrets;
pub mod teams;
pub mod versions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRef, FromRequest, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use self::schema_work::SchemaWork;
use crate::auth::KeySet;
use crate::backfills::Retention;
use crate::dead_letters::PluginQueues;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::problem::{FieldError, Problem};
use crate::provision::Provisioner;
use crate::records::{Records, Topics};
use crate::secrets::ConfigSecrets;
use crate::store::Store;
use switchyard_service::admin::Readiness;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The compacted-topic store.
    pub store: Arc<Store>,
    /// Its topic names.
    pub topics: Arc<Topics>,
    /// Token verification keys.
    pub keys: KeySet,
    /// Creates plugin topics on registration.
    pub provisioner: Arc<Provisioner>,
    /// The action gateway.
    pub gateway: Arc<Gateway>,
    /// An instance is live this long after its last heartbeat.
    pub heartbeat_ttl: Duration,
    /// A plugin token expiring within this time is reported as expiring soon.
    pub plugin_token_warning: Duration,
    /// Metrics.
    pub metrics: Metrics,
    /// Ready once the store topics are caught up; not ready from the first moment of shutdown.
    pub readiness: Readiness,
    /// Runs config-schema compilation and config validation off the async workers, within a deadline.
    pub schema_work: SchemaWork,
    /// Reads how far back a team's partition of `core.events` reaches, for backfill requests.
    pub retention: Retention,
    /// The master keys that seal configs' secret fields.
    pub secrets: Arc<ConfigSecrets>,
    /// What a manifest must carry to register (`registration.*`).
    pub registration: Arc<plugins::Registration>,
    /// Reads plugins' dead letters and their workers' consumer lag, and replays dead letters.
    pub plugin_queues: PluginQueues,
}

impl FromRef<AppState> for KeySet {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}

impl AppState {
    /// Typed reads of the store.
    pub fn records(&self) -> Records<'_> {
        Records::new(&self.store, &self.topics)
    }

    /// Writes a store record (or removes it with `None`) and answers 503 if the store did not take it.
    pub async fn write(&self, topic: &str, key: &str, value: Option<&[u8]>) -> Result<(), Problem> {
        match self.store.put(topic, key, value).await {
            Ok(_) => {
                self.metrics.store_writes.with_label_values(&[topic, "ok"]).inc();
                Ok(())
            }
            Err(error) => {
                self.metrics
                    .store_writes
                    .with_label_values(&[topic, "failed"])
                    .inc();
                tracing::warn!(%error, topic, "a store write failed");
                Err(Problem::unavailable(
                    "the registry's store did not accept the write; retry",
                ))
            }
        }
    }
}

/// A request body read whole. Its rejections are problem details like every other error: 413 over the
/// body limit, 422 when it cannot be read.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::too_large("the body is larger than the registry's limit")
                } else {
                    Problem::invalid(
                        "the body could not be read",
                        vec![FieldError {
                            pointer: String::new(),
                            detail: rejection.body_text(),
                        }],
                    )
                }
            })
    }
}

/// Every route of the API, with its request limits and metrics.
pub fn router(state: AppState, body_limit: usize, request_timeout: Duration) -> Router {
    let api = Router::new()
        .route("/v1/plugins", get(plugins::list).post(plugins::register))
        .route("/v1/plugins/{id}", get(plugins::show).delete(plugins::deregister))
        .route("/v1/plugins/{id}/heartbeat", post(plugins::heartbeat))
        .route("/v1/secrets", get(secrets::status))
        .route("/v1/secrets/reseal", post(secrets::reseal))
        .route("/v1/teams/{team}/plugins", get(teams::list))
        .route("/v1/teams/{team}/plugins/{id}", put(teams::set_enablement))
        .route(
            "/v1/teams/{team}/plugins/{id}/config",
            put(teams::set_config).get(teams::show_config),
        )
        .route("/v1/teams/{team}/installations", get(installations::list_team))
        .route(
            "/v1/teams/{team}/plugins/{id}/installations",
            get(installations::list_plugin),
        )
        .route(
            "/v1/teams/{team}/plugins/{id}/installations/{installation}",
            get(installations::show)
                .put(installations::set)
                .delete(installations::delete),
        )
        .route(
            "/v1/teams/{team}/plugins/{id}/installations/{installation}/config",
            put(installations::set_config).get(installations::show_config),
        )
        .route(
            "/v1/teams/{team}/plugins/{id}/backfills",
            get(backfills::list_default).post(backfills::start_default),
        )
        .route(
            "/v1/teams/{team}/plugins/{id}/installations/{installation}/backfills",
            get(backfills::list_installation).post(backfills::start),
        )
        .route("/v1/teams/{team}/backfills", get(backfills::list_team))
        .route(
            "/v1/teams/{team}/backfills/{backfill}",
            get(backfills::show).delete(backfills::cancel),
        )
        .route(
            "/v1/teams/{team}/plugins/{id}/dead-letters",
            get(dead_letters::list_team),
        )
        .route(
            "/v1/teams/{team}/plugins/{id}/dead-letters/replay",
            post(dead_letters::replay_team),
        )
        .route(
            "/v1/teams/{team}/plugins/{id}/dead-letters/{letter}",
            get(dead_letters::show_team),
        )
        .route("/v1/plugins/{id}/dead-letters", get(dead_letters::list_plugin))
        .route(
            "/v1/plugins/{id}/dead-letters/{letter}",
            get(dead_letters::show_plugin),
        )
        .route("/v1/plugins/{id}/lag", get(lag::show))
        .route("/v1/plugins/{id}/registrations", get(registrations::list))
        .layer(DefaultBodyLimit::max(body_limit));
    // The gateway reads its body itself, up to its own limit.
    let gateway = Router::new().route(
        "/v1/teams/{team}/plugins/{id}/actions/{action}",
        post(actions::call),
    );
    Router::new()
        .merge(api)
        .merge(gateway)
        .merge(ops::router(&state))
        .fallback(|| async { Problem::not_found("no such route; see /v1/openapi.json") })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            bounded(request, next, request_timeout)
        }))
        .with_state(state)
}

/// Answers 503 to API calls until the store is caught up; counts each request by route template and
/// status, and times it.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    // Until the store has read its topics, answers would come from a partial view.
    let catching_up = route.starts_with("/v1/") && route != "/v1/openapi.json" && !state.store.caught_up();
    let response = if catching_up {
        Problem::unavailable("the registry is still reading its state; retry shortly").into_response()
    } else {
        next.run(request).await
    };
    state
        .metrics
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    state
        .metrics
        .request_seconds
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Answers 503 when a request takes longer than the configured bound.
async fn bounded(request: Request, next: Next, limit: Duration) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::unavailable("the request took too long; retry").into_response(),
    }
}
