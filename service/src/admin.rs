//! The admin surface every Switchyard process serves: `/healthz` (the process answers), `/readyz` (every
//! readiness condition holds and shutdown has not begun) and `/metrics` (Prometheus text).
//!
//! Readiness is one model for every service: a list of conditions, each named by what the process is
//! doing until it holds ("catching up on the control topics"), checked in order when asked. A condition
//! is a [`Gate`] the service opens and closes, or any `Fn() -> bool`. `/readyz` answers `200 ready` or
//! `503 not ready: <the first condition that does not hold>`; once shutdown begins it answers
//! `503 not ready: shutting down` for good. The service's `*_ready` gauge is set on every check, and
//! `/metrics` checks before it renders, so a scrape always sees the current value.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{IntGauge, Registry, TextEncoder};

/// A condition the service sets.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<AtomicBool>);

impl Gate {
    /// Holds from now on (`true`) or no longer (`false`).
    pub fn set(&self, holds: bool) {
        self.0.store(holds, Ordering::SeqCst);
    }

    /// Whether it holds.
    pub fn holds(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

type Check = Box<dyn Fn() -> bool + Send + Sync>;

/// Whether the process is ready; cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

struct Inner {
    conditions: Vec<(&'static str, Check)>,
    stopping: AtomicBool,
    gauge: IntGauge,
}

impl Readiness {
    /// A readiness with no conditions yet; `gauge` mirrors it as 0 or 1.
    pub fn new(gauge: IntGauge) -> Self {
        gauge.set(0);
        Self {
            inner: Arc::new(Inner {
                conditions: Vec::new(),
                stopping: AtomicBool::new(false),
                gauge,
            }),
        }
    }

    /// Adds a condition; `waiting` says what the process does until it holds. Call before cloning.
    pub fn require(
        mut self,
        waiting: &'static str,
        holds: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("conditions are added before the readiness is shared")
            .conditions
            .push((waiting, Box::new(holds)));
        self
    }

    /// Adds a [`Gate`] as a condition.
    pub fn require_gate(self, waiting: &'static str, gate: &Gate) -> Self {
        let gate = gate.clone();
        self.require(waiting, move || gate.holds())
    }

    /// Shutdown began: not ready from now on.
    pub fn set_stopping(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.not_ready_because();
    }

    /// Why the process is not ready, or `None` when it is; updates the gauge.
    pub fn not_ready_because(&self) -> Option<&'static str> {
        let reason = if self.inner.stopping.load(Ordering::SeqCst) {
            Some("shutting down")
        } else {
            self.inner
                .conditions
                .iter()
                .find(|(_, holds)| !holds())
                .map(|(waiting, _)| *waiting)
        };
        self.inner.gauge.set(i64::from(reason.is_none()));
        reason
    }
}

/// `/healthz`, `/readyz` and `/metrics` (rendering `registry`), for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>(readiness: Readiness, registry: Registry) -> Router<S> {
    let ready = readiness.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move {
                match ready.not_ready_because() {
                    None => (StatusCode::OK, "ready\n".to_owned()),
                    Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
                }
            }),
        )
        .route(
            "/metrics",
            get(move || async move {
                readiness.not_ready_because();
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    render(&registry),
                )
                    .into_response()
            }),
        )
}

/// `registry` in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "encoding metrics failed");
            String::new()
        })
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
    async fn readiness_reports_the_first_unmet_condition_then_shutdown_for_good() {
        let registry = Registry::new();
        let gauge = IntGauge::new("test_ready", "1 while ready").unwrap();
        registry.register(Box::new(gauge.clone())).unwrap();
        let (caught_up, running) = (Gate::default(), Gate::default());
        let readiness = Readiness::new(gauge.clone())
            .require_gate("catching up", &caught_up)
            .require_gate("starting", &running);
        let app = routes(readiness.clone(), registry);
        assert_eq!(get(&app, "/healthz").await, (StatusCode::OK, "ok\n".into()));
        assert_eq!(
            get(&app, "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: catching up\n".into())
        );
        running.set(true);
        assert_eq!(get(&app, "/readyz").await.1, "not ready: catching up\n");
        caught_up.set(true);
        assert_eq!(get(&app, "/readyz").await, (StatusCode::OK, "ready\n".into()));
        assert!(get(&app, "/metrics").await.1.contains("test_ready 1"));
        readiness.set_stopping();
        caught_up.set(true);
        assert_eq!(
            get(&app, "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: shutting down\n".into()
            )
        );
        assert_eq!(gauge.get(), 0);
        assert!(get(&app, "/metrics").await.1.contains("test_ready 0"));
    }
}
