//! What spans the components: the binaries over a SASL_SSL Kafka (`kafka_security`, which needs the
//! second broker `scripts/test` starts), the foundation's process lifecycle on real signals, the load tool
//! against the router binary (`loadtest_smoke`; with installation filters, `loadtest_filtered`), and registry
//! replicas, `switchyardctl` and a router end to end (`registry_e2e`).

mod kafka_security;
mod lifecycle;
mod loadtest_filtered;
mod loadtest_smoke;
mod registry_e2e;
