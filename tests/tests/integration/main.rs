//! Integration and black-box tests against the real broker (`make test` starts it), one folder per
//! component, one file per feature: `cargo test -p switchyard-tests --test integration <filter>` selects by
//! module path, e.g. `router::takeover`, `registry::`, `kafka_security`.
//!
//! - [`router`]: the routing hop, in process and as the real binary.
//! - [`registry`]: the registry's API, store, gateway and HTTP server, and its binary.
//! - [`runtime`]: plugin workers, in process and behind `switchyard-plugin-bridge`.
//! - [`plugins`]: the seed plugins on the runtime.
//! - [`kit`]: the plugin creator kit: each template generated, built, tested, run through the dev loop and
//!   checked for conformance.
//! - [`console`]: the registry's web console, over HTTP and in a real headless Chromium.
//! - [`platform`]: what spans the components: a secured Kafka, the process lifecycle, the load tool, the
//!   registry, router and CLI together.

mod console;
mod kit;
mod platform;
mod plugins;
mod registry;
mod router;
mod runtime;
