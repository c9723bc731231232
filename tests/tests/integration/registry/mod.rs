//! The registry (`switchyard-registry`): its API with exact statuses and bodies (`api`), a team's
//! installations of plugins and the v1 routes' compatibility (`installations`), backfills of installations
//! and the registry letting go of them (`backfills`), a plugin's dead letters and its workers' lag
//! (`dead_letters`), a plugin's registration history (`registrations`), signed and version-checked
//! manifests (`signed`), a plugin token's rotation as the runbook says (`plugin_tokens`), the
//! authorization matrix (`authz`), the action gateway (`gateway`), the HTTP
//! server against misbehaving clients (`http`), its store on compacted topics (`store`), the real
//! binary's logs and schema-cost guard, and `switchyardctl` commands
//! that need no registry (`ctl`).

mod api;
mod authz;
mod backfills;
mod compare_and_set;
mod ctl;
mod dead_letters;
mod gateway;
mod http;
mod installations;
mod logs;
mod plugin_tokens;
mod registrations;
mod schema_cost;
mod sealed_secrets;
mod signed;
mod store;
