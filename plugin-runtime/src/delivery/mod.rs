//! Delivery of a plugin's events: [`schedule`] (order and offsets), [`retry`] (budget and backoff),
//! [`breaker`] (outage versus poison), [`records`] (dead letters and results), [`worker`] (one event's
//! delivery), `spans` (what its trace says) and [`run`] (the consume loop).

pub mod breaker;
pub mod lanes;
pub mod pace;
pub mod records;
pub mod retry;
pub mod run;
pub mod schedule;
mod spans;
pub mod worker;
