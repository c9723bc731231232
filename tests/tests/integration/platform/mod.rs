//! What spans the components: the binaries over a SASL_SSL Kafka (`kafka_security`, which needs the
//! second broker `scripts/test` starts), the foundation's process lifecycle on real signals, each binary's
//! lifecycle lines under its own log target and a worker's clean stop without a warning (`log_targets`), the
//! load tool against the router binary (`loadtest_smoke`; with installation filters, `loadtest_filtered`; its report in a
//! real headless Chromium, `load_report`), and registry
//! replicas, `switchyardctl` and a router end to end (`registry_e2e`), and an event's OpenTelemetry trace
//! from producer to plugin call in a real Jaeger (`traces`); `switchyardctl topics` creating, checking,
//! backing up and restoring the topics (`topics`).

mod kafka_security;
mod lifecycle;
mod load_report;
mod loadtest_filtered;
mod loadtest_smoke;
mod log_targets;
mod registry_e2e;
mod topics;
mod traces;
