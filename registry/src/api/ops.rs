//! Unauthenticated operational routes: the foundation's `/healthz`, `/readyz` (the store topics are caught
//! up and shutdown has not begun) and `/metrics` ([`switchyard_service::admin`]), and `/v1/openapi.json`.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use switchyard_service::admin;

use crate::api::AppState;

/// The OpenAPI 3.1 document of the API, kept in step with [`super::router`] by a test.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// The operational routes.
pub fn router(state: &AppState) -> Router<AppState> {
    admin::routes(state.readiness.clone(), state.metrics.registry().clone())
        .route("/v1/openapi.json", get(openapi))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
