//! What every Switchyard service process shares, below the services themselves.
//!
//! Today that is [`http`], the HTTP server that the registry's API and the admin endpoints of routers and
//! plugin workers run on (with `slow_clients`, the misbehaving clients its tests and the services' tests
//! use, behind the `slow-clients` feature). It has no Kafka dependency; the shared Kafka pieces join later under their own
//! module names.

pub mod http;
#[cfg(any(test, feature = "slow-clients"))]
pub mod slow_clients;
