//! Fixtures for Switchyard's integration and black-box tests. Every test talks to a real Apache Kafka
//! broker, started by `scripts/kafka start` (the `make test` target does it) and found at
//! `SWITCHYARD_TEST_BOOTSTRAP` (default `127.0.0.1:9092`).
//!
//! The mechanisms the tests share with the load tool and the benchmarks (topics, producing, reading back,
//! free ports, metrics, supervised processes) are in `switchyard-fixtures`; the modules here give them the
//! test's broker and turn their errors into panics.
//!
//! - [`broker`]: unique names, topic creation, producing, reading topics to their end.
//! - [`binaries`]: the workspace's binaries as supervised processes, and free loopback addresses.
//! - [`browser`]: a headless Chromium under WebDriver for the web console's tests: axe-core, screenshots.
//! - [`in_process`]: a service running as a task of the test, stopped as SIGTERM would.
//! - [`records`]: core events, manifests and enablements as the contract describes them.
//! - [`routers`]: routers in process (through the library) and as the real binary.
//! - [`registries`]: registries in process, served on loopback, and as the real binary; test tokens.
//! - [`workers`]: plugin workers in process with a scripted plugin that records its calls.
//! - [`traces`]: a real Jaeger (`scripts/jaeger`) and the spans of a trace read back from it.
//! - [`wait`]: polling until a condition holds, with a deadline, instead of sleeping.

pub mod binaries;
pub mod broker;
pub mod browser;
pub mod in_process;
pub mod poison;
pub mod records;
pub mod registries;
pub mod routers;
pub mod traces;
pub mod wait;
pub mod workers;
