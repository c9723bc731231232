//! The plugin creator kit, black box, as an author uses it: `switchyardctl plugin new` in each language,
//! the project's own build and tests, the first events through `switchyardctl dev` (its own broker,
//! registry, router and bridge), and `switchyardctl plugin check` against the running service.
//!
//! The four languages run one after the other (one dev broker port: `SWITCHYARD_TEST_KIT_KAFKA_PORT`,
//! default 19492). They need `python3`, `npm`, `go` and `cargo` on the PATH and the package registries
//! (PyPI, npm, the Go module proxy), as a plugin author's machine does. The Rust template builds into
//! `target/kit-template` (its own target dir, kept between runs).

mod templates;
