//! The router (`switchyard-router`): the routing rule, installations and filters, per-team order, dead letters and poison records,
//! readiness, replicas and rebalances, consumer lag, at-least-once mode, a plugin topic deleted under
//! traffic, and the real binary killed and restarted (`black_box`, `takeover`).

mod at_least_once;
mod backfill;
mod black_box;
mod dead_letters;
mod installations;
mod order;
mod poison;
mod readiness;
mod replicas;
mod router_lag;
mod routing;
mod takeover;
mod topic_deletion;
