//! Integration and black-box tests against the real broker (`make test` starts it).

mod at_least_once;
mod black_box;
mod dead_letters;
mod kafka_security;
mod loadtest_smoke;
mod order;
mod plugin_outage;
mod poison;
mod python_plugin;
mod readiness;
mod registry_api;
mod registry_authz;
mod registry_e2e;
mod registry_gateway;
mod registry_store;
mod replicas;
mod routing;
mod runtime;
mod runtime_http;
mod seed_plugins;
mod worker_kill;
