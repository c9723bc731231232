//! Unauthenticated operational routes: `/healthz` (the process answers), `/readyz` (the store topics are
//! caught up and shutdown has not begun), `/metrics` (Prometheus text) and `/v1/openapi.json`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::api::AppState;

/// The OpenAPI 3.1 document of the API, kept in step with [`super::router`] by a test.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// The operational routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let reason = state.not_ready_because();
    state.metrics.ready.set(i64::from(reason.is_none()));
    match reason {
        None => (StatusCode::OK, "ready\n".to_owned()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state
        .metrics
        .ready
        .set(i64::from(state.not_ready_because().is_none()));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
