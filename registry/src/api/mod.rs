//! The registry's HTTP API v1, as an axum router that tests call without a socket.
//!
//! Implemented so far: plugin registration and reading (`plugins`). Every route authenticates with a bearer
//! token ([`crate::auth`]) and answers errors as problem details ([`crate::problem`]).

pub mod plugins;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;

use crate::auth::KeySet;
use crate::store::Store;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The compacted-topic store.
    pub store: Arc<Store>,
    /// Token verification keys.
    pub keys: KeySet,
    /// The topic of plugin manifests (`switchyard.plugins`).
    pub plugins_topic: String,
}

impl FromRef<AppState> for KeySet {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}

/// The API routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/plugins", get(plugins::list).post(plugins::register))
        .route("/v1/plugins/{id}", get(plugins::show))
        .with_state(state)
}
