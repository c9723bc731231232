//! Wires the registry together ([`build`]) and serves it until shutdown ([`run`]).
//!
//! Start-up: create or check the store topics (refusing a non-compacted one), start following them, bind
//! the listener. `/readyz` answers 503 until every store topic is caught up. A housekeeping task forgets
//! instances silent for `heartbeat.forget_after_ms`, keeps the gauges current and sweeps idle rate buckets;
//! another, every [`RELEASE_PERIOD`], lets go of installations whose backfill the router has handed over
//! to live routing ([`crate::backfills::release`]).
//! Shutdown: readiness goes false at once, in-flight requests finish (within `http.request_timeout_ms`), the
//! store flushes and stops. The HTTP server is [`switchyard_service::http::serve`], with the header-read
//! timeout, connection cap, keep-alive limits and lingering close of the `[http]` section.

use std::sync::Arc;
use std::time::Duration;

use switchyard_service::admin::Readiness;
use switchyard_service::kafka::{
    CREDENTIALS_CHECK_TIMEOUT, ClientError, CredentialsError, check_credentials,
};
use thiserror::Error;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::plugins::Registration;
use crate::api::schema_work::SchemaWork;
use crate::api::{self, AppState};
use crate::auth::{JwksError, KeyError, KeySet};
use crate::backfills::Retention;
use crate::config::Config;
use crate::dead_letters::PluginQueues;
use crate::gateway::{Gateway, GatewayConfigError};
use crate::metrics::Metrics;
use crate::provision::{Provisioner, ProvisionerConfig};
use crate::records::{InstanceRecord, Topics, token_expiry};
use crate::secrets::ConfigSecrets;
use crate::store::{Store, StoreConfig, StoreError};

/// Why the registry could not start or stopped.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// The store could not open (Kafka unreachable, a topic not compacted).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A configured public key is invalid.
    #[error("auth: {0}")]
    Keys(#[from] KeyError),
    /// `secrets.master_keys` is invalid.
    #[error("secrets.master_keys: {0}")]
    Secrets(String),
    /// `registration.publishers` is invalid.
    #[error("registration.publishers: {0}")]
    Publishers(String),
    /// `auth.jwks` is invalid.
    #[error(transparent)]
    Jwks(#[from] JwksError),
    /// The gateway's configuration is invalid.
    #[error(transparent)]
    Gateway(#[from] GatewayConfigError),
    /// The broker refused the credentials, or the connection settings do not make a client.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The admin client could not be created.
    #[error(transparent)]
    Admin(#[from] ClientError),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// How often the registry looks for installations to let go after their backfill.
pub const RELEASE_PERIOD: Duration = Duration::from_millis(500);

/// A built registry: its state and its routes.
pub struct Registry {
    /// The shared state.
    pub state: AppState,
    /// Every route.
    pub router: axum::Router,
}

/// The steps of start-up that need no broker: token keys and the gateway (URL patterns, networks,
/// signing key, rate). `--check-config` runs them too.
pub fn check_offline(config: &Config) -> Result<(KeySet, Gateway), RegistryError> {
    let (max_lifetime, max_plugin_lifetime) = config.auth.max_lifetimes();
    let keys = KeySet::new(
        Some(config.auth.hs256_secret.expose().as_bytes()),
        &config.auth.rs256_public_keys,
        &config.auth.eddsa_public_keys,
    )?
    .with_jwks(config.auth.jwks.expose())?
    .with_audience(Some(config.auth.audience.clone()))
    .with_max_lifetimes(max_lifetime, max_plugin_lifetime);
    Ok((keys, Gateway::new(&config.gateway)?))
}

/// Does every fallible step of start-up except binding: keys, gateway, admin client, store.
pub async fn build(config: &Config) -> Result<Registry, RegistryError> {
    let (keys, gateway) = check_offline(config)?;
    let master_keys: Vec<&str> = config.secrets.master_keys.iter().map(|k| k.expose()).collect();
    let secrets = ConfigSecrets::parse(&master_keys).map_err(|e| RegistryError::Secrets(e.to_string()))?;
    if secrets.enabled() {
        info!(keys = ?secrets.ids(), "config secrets are sealed with the first master key");
    } else {
        warn!(
            "secrets.master_keys is empty: the secret fields of team configs are stored in clear in the \
             configs topic; set a master key (docs/registry.md, Sealed secrets)"
        );
    }
    // A refused password stops the start here with its reason, not later as a timeout of the store.
    let metrics = Metrics::new();
    let clients = config.clients(metrics.kafka.clone());
    check_credentials(&clients, CREDENTIALS_CHECK_TIMEOUT).await?;
    let provisioner = Provisioner::new(ProvisionerConfig {
        clients: clients.clone(),
        events_template: config.topics.plugin_events_template.clone(),
        dead_letter_template: config.topics.plugin_dead_letter_template.clone(),
        partitions: config.provisioning.partitions,
        replication_factor: config.provisioning.replication_factor,
        timeout: config.write_timeout(),
    })?;
    let topics = Topics::from_config(&config.topics);
    let retention = Retention::new(
        clients.clone(),
        config.topics.core_events.clone(),
        config.write_timeout(),
    );
    let store = Arc::new(
        Store::open(StoreConfig {
            clients,
            topics: topics.all(),
            partitions: config.store.partitions,
            replication_factor: config.store.replication_factor,
            timeout: config.write_timeout(),
        })
        .await?,
    );
    let readiness = Readiness::new(metrics.ready.clone()).require("catching up on the store topics", {
        let store = Arc::clone(&store);
        move || store.caught_up()
    });
    let state = AppState {
        store,
        topics: Arc::new(topics),
        keys,
        provisioner: Arc::new(provisioner),
        gateway: Arc::new(gateway),
        heartbeat_ttl: Duration::from_millis(config.heartbeat.ttl_ms),
        plugin_token_warning: Duration::from_millis(config.auth.plugin_token_warning_ms),
        plugin_queues: PluginQueues::new(config, metrics.kafka.clone()),
        schema_work: SchemaWork::new(
            config.config_schemas.max_concurrent,
            Duration::from_millis(config.config_schemas.timeout_ms),
            metrics.clone(),
        ),
        metrics,
        readiness,
        retention,
        secrets: Arc::new(secrets),
        registration: Arc::new(Registration {
            require_signed: config.registration.require_signed,
            publishers: config
                .registration
                .publisher_keys()
                .map_err(RegistryError::Publishers)?,
        }),
    };
    let api = api::router(
        state.clone(),
        config.http.body_limit_bytes,
        Duration::from_millis(config.http.request_timeout_ms),
    );
    let router = if config.console.enabled {
        let console = console(config, &state, api.clone());
        api.merge(crate::console::router(console))
    } else {
        api
    };
    Ok(Registry { state, router })
}

/// The console's state: the API it calls, and its session key (its own, else the signing key's).
fn console(config: &Config, state: &AppState, api: axum::Router) -> crate::console::Console {
    let secret = config.console.session_secret.expose();
    let key = match crate::signing::MasterKey::parse(secret) {
        Ok(own) if !secret.is_empty() => own.console_session_key(),
        _ => state.gateway.console_session_key(),
    };
    crate::console::Console {
        api,
        keys: state.keys.clone(),
        key: crate::console::session::SessionKey::new(key),
        path: config.console.path.as_str().into(),
        session_ttl: Duration::from_millis(config.console.session_ttl_ms),
        secure_cookies: config.console.secure_cookies,
        proxy: config
            .console
            .proxy
            .enabled
            .then(|| std::sync::Arc::new(config.console.proxy.clone())),
        spent_links: Some(spent_links(state)),
    }
}

/// The record of the console's spent sign-in links, in the state's store.
fn spent_links(state: &AppState) -> crate::console::sign_in::SpentLinks {
    crate::console::sign_in::SpentLinks {
        store: Arc::clone(&state.store),
        topic: state.topics.console_sign_ins.clone(),
    }
}

/// Runs the registry until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RegistryError> {
    let Registry { state, router } = build(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| RegistryError::Listen {
            address: config.http.listen,
            source,
        })?;
    info!(address = %config.http.listen, "registry listening");
    let housekeeping = tokio::spawn(housekeep(
        state.clone(),
        Duration::from_millis(config.heartbeat.forget_after_ms),
        shutdown.clone(),
    ));
    let releasing = tokio::spawn(release_holds(state.clone(), shutdown.clone()));
    let stopping = {
        let (state, shutdown) = (state.clone(), shutdown.clone());
        async move {
            shutdown.cancelled().await;
            state.readiness.set_stopping();
            info!("shutting down: finishing in-flight requests");
        }
    };
    switchyard_service::http::serve(listener, router, config.http.limits(), stopping).await;
    housekeeping.abort();
    releasing.abort();
    let store = Arc::clone(&state.store);
    drop(state);
    // Flushing and joining the followers block; keep them off the async workers.
    if let Err(error) = tokio::task::spawn_blocking(move || store.close()).await {
        warn!(%error, "closing the store failed");
    }
    Ok(())
}

/// Every few seconds: refresh gauges (plugins, instances, backfills), forget long-silent instances and the
/// console's spent sign-in links whose token has expired, sweep idle rate buckets.
async fn housekeep(state: AppState, forget_after: Duration, shutdown: CancellationToken) {
    let period = state
        .heartbeat_ttl
        .clamp(Duration::from_secs(1), Duration::from_secs(10));
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if !state.store.caught_up() {
            continue;
        }
        let now = OffsetDateTime::now_utc();
        let records = state.records();
        let plugins = records.plugins();
        state.metrics.plugins.set(plugins.len() as i64);
        state.metrics.live_instances.reset();
        state.metrics.plugin_token_expiry.reset();
        let instances = records.all_instances();
        for plugin in &plugins {
            let live = instances
                .iter()
                .filter(|i| i.plugin_id == plugin.id && i.is_live(now, state.heartbeat_ttl))
                .count();
            state
                .metrics
                .live_instances
                .with_label_values(&[plugin.id.as_str()])
                .set(live as i64);
            let own: Vec<InstanceRecord> = instances
                .iter()
                .filter(|i| i.plugin_id == plugin.id)
                .cloned()
                .collect();
            if let Some(expires) = token_expiry(&own, now, state.heartbeat_ttl) {
                state
                    .metrics
                    .plugin_token_expiry
                    .with_label_values(&[plugin.id.as_str()])
                    .set((expires - now).whole_seconds());
            }
        }
        for instance in instances
            .iter()
            .filter(|i| i.age(now).is_none_or(|age| age > forget_after))
        {
            let key = format!("{}/{}", instance.plugin_id, instance.instance_id);
            // Every replica may do this; removing twice is harmless.
            if state.write(&state.topics.instances, &key, None).await.is_ok() {
                info!(plugin = %instance.plugin_id, instance = %instance.instance_id, "forgot a silent instance");
            }
        }
        spent_links(&state)
            .forget_expired(now.unix_timestamp().max(0) as u64)
            .await;
        state.gateway.sweep();
        api::backfills::refresh_gauge(&state);
    }
}

/// Every [`RELEASE_PERIOD`], once the store is caught up: one round of [`api::backfills::release_holds`].
async fn release_holds(state: AppState, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(RELEASE_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if state.store.caught_up() {
            api::backfills::release_holds(&state).await;
        }
    }
}
