//! [`run`]: everything a plugin worker does, for any [`Plugin`].
//!
//! ```text
//!  registry ◄── register, heartbeats, goodbye ───────────────┐
//!  switchyard.configs ──► configs follower ──► initialize ──┐ │
//!  plugin.<id>.events ──► consume loop ──► scheduler ──► deliveries ──► plugin.execute
//!                                                           ├──► core.plugin-results
//!                                                           └──► plugin.<id>.dlq
//!  admin HTTP: /metrics /healthz /readyz /actions/{name}
//! ```
//!
//! Shutdown: readiness goes false, deliveries stop retrying, calls in progress finish (bounded), done
//! offsets are committed, the worker says goodbye to the registry.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use switchyard_schemas::sealed::PluginKey;
use switchyard_schemas::topics::plugin_events_topic;
use switchyard_schemas::webhook::SigningSecrets;
use switchyard_service::follower::FollowError;
use switchyard_service::kafka::{
    CREDENTIALS_CHECK_TIMEOUT, ClientError, CredentialsError, KafkaContext, check_credentials,
};
use switchyard_service::traces::{Traces, TracesError};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::{self, AdminState};
use crate::configs;
use crate::delivery::breaker::Breaker;
use crate::delivery::run::{LoopSettings, WorkerContext, consume};
use crate::delivery::worker::{CallForm, Outputs, Worker};
use crate::metrics::Metrics;
use crate::plugin::Plugin;
use crate::registration::Registration;
use crate::settings::Settings;

/// Why a worker could not start.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// A Kafka client could not be created or subscribed.
    #[error("{action} failed: {source}")]
    Kafka {
        /// What was being done.
        action: &'static str,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The admin address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A client could not be made (a clash of options, a setting librdkafka refuses).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The configs follower could not start.
    #[error(transparent)]
    Follower(#[from] FollowError),
    /// The broker refused the credentials, or the connection settings do not make a client.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The trace exporter could not be built.
    #[error(transparent)]
    Traces(#[from] TracesError),
    /// The registry refused the registration.
    #[error("registering with the registry failed: {0}")]
    Registry(#[from] crate::registration::RegistryCallError),
}

fn kafka(action: &'static str) -> impl FnOnce(KafkaError) -> RuntimeError {
    move |source| RuntimeError::Kafka { action, source }
}

/// Runs `plugin` until `shutdown` is cancelled.
pub async fn run<P: Plugin>(
    plugin: P,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), RuntimeError> {
    let mut manifest = plugin.manifest();
    if !settings.admin.public_url.is_empty() {
        manifest.url = Some(settings.admin.public_url.clone());
    }
    // What registration sends: the plugin's own JSON (a publisher's signature covers it), with the url.
    let mut document = plugin.manifest_json();
    if let (Some(url), Some(members)) = (&manifest.url, document.as_object_mut()) {
        members.insert("url".into(), url.clone().into());
    }
    let id = manifest.id.clone();
    let metrics = Metrics::new(&id);
    // A refused password stops the start here; the clients below would retry it forever.
    let clients = settings.clients(metrics.kafka.clone());
    check_credentials(&clients, CREDENTIALS_CHECK_TIMEOUT).await?;
    // Settings were checked at load: the keys parse.
    let provisioned = settings.secrets.keys().unwrap_or_default();
    let configs = configs::follow(
        &clients,
        &settings.topics.configs,
        &id,
        provisioned.clone(),
        &shutdown,
    )?;
    let readiness = admin::readiness(&metrics, &configs);
    tokio::spawn({
        let (shutdown, readiness) = (shutdown.clone(), readiness.clone());
        async move {
            shutdown.cancelled().await;
            readiness.set_stopping();
        }
    });

    let plugin = Arc::new(plugin);
    let admin_state = Arc::new(AdminState {
        plugin: Arc::clone(&plugin),
        metrics: metrics.clone(),
        readiness,
        signing_secret: RwLock::new(None),
    });
    let listener = tokio::net::TcpListener::bind(settings.admin.listen)
        .await
        .map_err(|source| RuntimeError::Listen {
            address: settings.admin.listen,
            source,
        })?;
    info!(address = %settings.admin.listen, plugin = %id, "worker listening");
    let stop_server = CancellationToken::new();
    let server = tokio::spawn(admin::serve(
        listener,
        Arc::clone(&admin_state),
        stop_server.clone().cancelled_owned(),
    ));

    let (outage, outage_watch) = watch::channel(false);
    let heartbeats = if settings.registry.url.is_empty() {
        None
    } else {
        let (registration, registered) = Registration::register(
            &settings.registry.url,
            &settings.registry.token,
            settings.instance_id(),
            &manifest,
            &document,
            &shutdown,
        )
        .await?;
        let secrets = registered.signing_secrets.join(" ");
        if let Ok(secrets) = SigningSecrets::parse(&secrets) {
            *admin_state
                .signing_secret
                .write()
                .unwrap_or_else(|p| p.into_inner()) = Some(secrets);
        }
        plugin.set_signing_secret(&secrets);
        // The registration's keys first (the sealing one leads), then any provisioned ones.
        let mut keys: Vec<PluginKey> = registered
            .config_keys
            .iter()
            .filter_map(|text| PluginKey::parse(text).ok())
            .collect();
        keys.extend(provisioned);
        configs.set_keys(keys);
        let period = Duration::from_millis(settings.registry.heartbeat_interval_ms);
        Some(tokio::spawn(registration.heartbeats(
            period,
            outage_watch,
            shutdown.clone(),
        )))
    };

    let producer: FutureProducer<KafkaContext> = clients
        .producer("producer")
        .tunable("client.id", format!("switchyard-plugin-{id}-producer"))
        .managed("enable.idempotence", "true")
        .managed("acks", "all")
        // Java-compatible key hashing, as the router partitions plugin topics.
        .tunable("partitioner", "murmur2_random")
        .create()?;
    let events_topic = plugin_events_topic(&settings.topics.events_template, &id);
    let (revoked_sender, revoked) = mpsc::unbounded_channel();
    let client = clients
        .consumer("consumer")
        .tunable("client.id", format!("switchyard-plugin-{id}"))
        .managed("group.id", settings.delivery.group_id.replace("{plugin}", &id))
        .managed("partition.assignment.strategy", "cooperative-sticky")
        .managed("isolation.level", "read_committed")
        .managed("enable.auto.commit", "true")
        .managed("enable.auto.offset.store", "false")
        .managed(
            "auto.commit.interval.ms",
            settings.delivery.commit_interval_ms.to_string(),
        )
        .tunable("auto.offset.reset", "earliest")
        .tunable("fetch.queue.backoff.ms", "10")
        // librdkafka's default of 500 ms let a fetch of the plugin's topic wait long while the worker had run
        // dry: 100 ms tripled the bridge's rate in docs/benchmarks-runtime.md ("A bridge that costs little").
        .tunable("fetch.wait.max.ms", "100");
    let context = WorkerContext::new(
        client.context(),
        revoked_sender,
        metrics.clone(),
        events_topic.clone(),
    );
    let consumer: StreamConsumer<WorkerContext> = client.create_with(context)?;
    consumer
        .subscribe(&[&events_topic])
        .map_err(kafka("subscribing to the plugin's topic"))?;
    let traces = Traces::start(&settings.traces, &format!("switchyard-plugin-{id}"))?;
    let worker = Arc::new(Worker {
        plugin: ArcPlugin(Arc::clone(&plugin)),
        plugin_id: id.clone(),
        producer,
        outputs: Outputs {
            dead_letter: plugin_events_topic(&settings.topics.dead_letter_template, &id),
            results: settings.topics.results.clone(),
        },
        retry: settings.retry_policy(),
        breaker: Mutex::new(Breaker::new(settings.breaker_policy())),
        outage,
        probing: AtomicBool::new(false),
        installations: manifest.delivery.installations,
        configs: Arc::clone(&configs),
        applied: Mutex::new(HashMap::new()),
        config_wait: Duration::from_millis(settings.delivery.config_wait_ms),
        metrics,
        shutdown: shutdown.clone(),
        traces: traces.clone(),
    });
    info!(plugin = %id, topic = %events_topic, "consuming");
    let loop_settings = LoopSettings {
        limits: settings.limits(&manifest.delivery),
        ordering: manifest.delivery.ordering(),
        form: if manifest.delivery.batch.is_some() {
            CallForm::Batch
        } else {
            CallForm::Single
        },
        commit_interval: Duration::from_millis(settings.delivery.commit_interval_ms),
        drain_timeout: Duration::from_millis(settings.http.timeout_ms.saturating_add(5000)),
    };
    // The loop runs as a task of the runtime rather than on the thread awaiting `run` (the bridge's main
    // thread, outside the worker pool): the deliveries it spawns and the completions it joins then stay on
    // the runtime's workers instead of waking another thread for each event.
    let consuming = tokio::spawn({
        let (worker, topic) = (Arc::clone(&worker), events_topic.clone());
        async move { consume(worker, consumer, &topic, revoked, loop_settings).await }
    });
    // Dropping `run` drops the loop with it, as when the loop was part of this future.
    let _loop_guard = AbortOnDrop(consuming.abort_handle());
    if let Err(error) = consuming.await {
        if error.is_panic() {
            std::panic::resume_unwind(error.into_panic());
        }
        warn!(%error, "the consume loop was cancelled");
    }
    if let Some(heartbeats) = heartbeats
        && let Err(error) = heartbeats.await
    {
        warn!(%error, "the heartbeat task failed");
    }
    stop_server.cancel();
    let _ = server.await;
    // Stopping the follower joins its thread: off the async workers.
    let _ = tokio::task::spawn_blocking(move || configs.stop()).await;
    if let Some(traces) = traces {
        // Exporting what is buffered blocks on the collector: off the async workers too.
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    info!(plugin = %id, "worker stopped");
    Ok(())
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A shared plugin is a plugin: the admin server and the deliveries use the same value.
pub struct ArcPlugin<P>(pub Arc<P>);

impl<P: Plugin> Plugin for ArcPlugin<P> {
    fn manifest(&self) -> switchyard_schemas::control::PluginManifest {
        self.0.manifest()
    }

    fn manifest_json(&self) -> serde_json::Value {
        self.0.manifest_json()
    }

    fn set_signing_secret(&self, secret: &str) {
        self.0.set_signing_secret(secret);
    }

    fn decoding(&self) -> crate::plugin::Decoding {
        self.0.decoding()
    }

    fn initialize(
        &self,
        team: &str,
        installation: &str,
        config: Option<&serde_json::Value>,
    ) -> impl std::future::Future<Output = Result<(), crate::plugin::PluginError>> + Send {
        self.0.initialize(team, installation, config)
    }

    fn execute(
        &self,
        ctx: &crate::plugin::Context,
        event: &crate::plugin::Event,
    ) -> impl std::future::Future<Output = crate::plugin::Outcome> + Send {
        self.0.execute(ctx, event)
    }

    fn execute_batch(
        &self,
        items: &[crate::plugin::BatchItem<'_>],
    ) -> impl std::future::Future<Output = Vec<crate::plugin::Outcome>> + Send {
        self.0.execute_batch(items)
    }

    fn action(
        &self,
        team: &str,
        name: &str,
        body: &[u8],
    ) -> impl std::future::Future<Output = Result<crate::plugin::ActionReply, crate::plugin::PluginError>> + Send
    {
        self.0.action(team, name, body)
    }
}
