//! Switchyard's plugin runtime: what plugin workers run. It consumes a plugin's topic in a consumer group
//! and calls the plugin, in process (the [`plugin::Plugin`] trait) or over HTTP ([`http_plugin`], the
//! `switchyard-plugin-bridge` binary), with per-team order, bounded concurrency across teams, retries,
//! dead letters, outage pauses, team configs, results and registry heartbeats.
//!
//! | module | holds |
//! |---|---|
//! | [`plugin`] | the trait, events, outcomes |
//! | [`app`] | [`app::run`]: a worker, wired |
//! | [`delivery`] | scheduling, retries, outage detection, dead letters, the consume loop |
//! | [`event`] | decoding routed records |
//! | [`configs`] | following the teams' configs |
//! | [`registration`] | registering, heartbeats, goodbye |
//! | [`http_plugin`] | plugin services over HTTP |
//! | [`admin`], [`metrics`] | the worker's HTTP server and metrics |
//! | [`settings`] | layered settings |
//! | [`lifecycle`], [`telemetry`] | the foundation's start, signals and logging, re-exported so that a plugin's `main` needs only this crate |
//!
//! The four seed plugins are built on this crate like any other plugin, in the `switchyard-plugins` crate
//! (`plugins/`); nothing here depends on them.

pub mod admin;
pub mod app;
pub mod configs;
pub mod delivery;
pub mod event;
pub mod http_plugin;
pub mod metrics;
pub mod plugin;
pub mod registration;
pub mod settings;

pub use switchyard_service::{lifecycle, telemetry};
