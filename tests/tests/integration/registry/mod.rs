//! The registry (`switchyard-registry`): its API with exact statuses and bodies (`api`), the authorization
//! matrix (`authz`), the action gateway (`gateway`), the HTTP server against misbehaving clients (`http`),
//! its store on compacted topics (`store`), and the real binary's logs and schema-cost guard.

mod api;
mod authz;
mod gateway;
mod http;
mod logs;
mod schema_cost;
mod store;
