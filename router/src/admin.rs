//! The admin HTTP server: `/metrics` (Prometheus text), `/healthz` (the process answers) and `/readyz`
//! (the control topics are caught up, the pipeline runs, and shutdown has not begun).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::IntGauge;

use crate::metrics::Metrics;

/// Readiness, set by the app as it starts and stops.
#[derive(Clone)]
pub struct Health {
    inner: Arc<HealthInner>,
}

struct HealthInner {
    caught_up: AtomicBool,
    running: AtomicBool,
    stopping: AtomicBool,
    gauge: IntGauge,
}

impl Health {
    /// Not ready; `gauge` mirrors readiness as 0 or 1.
    pub fn new(gauge: IntGauge) -> Self {
        gauge.set(0);
        Self {
            inner: Arc::new(HealthInner {
                caught_up: AtomicBool::new(false),
                running: AtomicBool::new(false),
                stopping: AtomicBool::new(false),
                gauge,
            }),
        }
    }

    /// The control topics are caught up.
    pub fn set_caught_up(&self) {
        self.inner.caught_up.store(true, Ordering::SeqCst);
        self.update();
    }

    /// The pipeline consumes (`true`) or has stopped (`false`).
    pub fn set_running(&self, running: bool) {
        self.inner.running.store(running, Ordering::SeqCst);
        self.update();
    }

    /// Shutdown began: not ready from now on.
    pub fn set_stopping(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.update();
    }

    /// Why the router is not ready, or `None` when it is.
    pub fn not_ready_because(&self) -> Option<&'static str> {
        if self.inner.stopping.load(Ordering::SeqCst) {
            Some("shutting down")
        } else if !self.inner.caught_up.load(Ordering::SeqCst) {
            Some("catching up on the control topics")
        } else if !self.inner.running.load(Ordering::SeqCst) {
            Some("starting the pipeline")
        } else {
            None
        }
    }

    fn update(&self) {
        self.inner
            .gauge
            .set(i64::from(self.not_ready_because().is_none()));
    }
}

/// What the handlers need.
#[derive(Clone)]
pub struct AdminState {
    /// Metrics to render.
    pub metrics: Metrics,
    /// Readiness.
    pub health: Health,
}

/// The admin routes, without a socket (tests call it directly).
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    match state.health.not_ready_because() {
        None => (StatusCode::OK, "ready\n".to_owned()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get(app: &Router, path: &str) -> (StatusCode, String) {
        let response = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readiness_follows_start_and_shutdown() {
        let metrics = Metrics::new();
        let health = Health::new(metrics.ready.clone());
        let app = router(AdminState {
            metrics: metrics.clone(),
            health: health.clone(),
        });
        assert_eq!(get(&app, "/healthz").await, (StatusCode::OK, "ok\n".into()));
        assert_eq!(get(&app, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        health.set_caught_up();
        assert_eq!(get(&app, "/readyz").await.1, "not ready: starting the pipeline\n");
        health.set_running(true);
        assert_eq!(get(&app, "/readyz").await, (StatusCode::OK, "ready\n".into()));
        assert_eq!(metrics.ready.get(), 1);
        health.set_stopping();
        assert_eq!(
            get(&app, "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: shutting down\n".into()
            )
        );
        let (status, body) = get(&app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("switchyard_router_ready 0"), "{body}");
        assert!(
            body.contains("switchyard_router_events_total{outcome=\"routed\"} 0"),
            "{body}"
        );
    }
}
