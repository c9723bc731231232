//! Sealed config secrets, for admins (`docs/registry.md`, "Sealed secrets"): how the stored configs are
//! sealed (`GET /v1/secrets`), and one round of sealing again with the sealing key
//! (`POST /v1/secrets/reseal?limit=N`) what an older key sealed or what is still in clear.
//! `switchyardctl secrets rotate` repeats rounds until nothing is left, with a progress bar.
//!
//! A round reads each config that needs it with its version, opens it with every master key, seals it
//! with the first, and writes it only over the version read ([`AppState::write_if`]): a team's write
//! in between wins (and seals with the sealing key itself), and the record is looked at again next round.
//! So a rotation under load loses no write.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use switchyard_schemas::configs::ConfigRecord;
use switchyard_schemas::control::PluginManifest;

use crate::api::AppState;
use crate::api::versions::unchanged_since;
use crate::auth::Principal;
use crate::config_schema::ConfigSchema;
use crate::problem::{FieldError, Problem};

/// The default and the largest number of configs one round seals again.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// How the stored configs are sealed.
#[derive(Debug, Serialize)]
pub struct SecretsStatus {
    /// The id of the key that seals; absent when no master key is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sealing_key: Option<String>,
    /// Every configured master key id, the sealing one first.
    pub keys: Vec<String>,
    /// Stored configs.
    pub configs: usize,
    /// Configs with a field sealed with each key id (a config sealed with two keys counts under both).
    pub sealed_with: BTreeMap<String, usize>,
    /// Configs with a secret field in clear.
    pub clear: usize,
    /// Configs a rotation still has to seal again: [`SecretsStatus::clear`] ones and those with a field
    /// sealed with another key than the sealing one (0 without master keys).
    pub to_reseal: usize,
}

/// One round's outcome.
#[derive(Debug, Serialize)]
pub struct ResealRound {
    /// Configs sealed again with the sealing key.
    pub resealed: usize,
    /// Configs changed by another write since they were read: left for the next round.
    pub changed: usize,
    /// Configs that could not be opened, with why (a key no longer configured, an altered record).
    pub failed: Vec<ResealFailure>,
    /// Configs still to seal again after this round.
    pub remaining: usize,
}

/// A config a round could not seal again.
#[derive(Debug, Serialize)]
pub struct ResealFailure {
    /// Its key in the configs topic.
    pub config: String,
    /// Why.
    pub reason: String,
}

fn admin_only(principal: &Principal) -> Result<(), Problem> {
    if principal.is_admin() {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "only an admin may see or rotate sealed secrets",
        ))
    }
}

/// One stored config: its key, version and record.
struct Stored {
    key: String,
    version: i64,
    record: ConfigRecord,
}

/// Every readable stored config, and each plugin's secret pointers (from its registered schema).
async fn stored(state: &AppState) -> Result<(Vec<Stored>, HashMap<String, Vec<String>>), Problem> {
    let topic = &state.topics.configs;
    let configs: Vec<Stored> = state
        .store
        .entries(topic)
        .into_iter()
        .filter_map(|(key, _)| {
            let (version, value) = state.store.get_versioned(topic, &key)?;
            let record = serde_json::from_slice(&value).ok()?;
            Some(Stored { key, version, record })
        })
        .collect();
    let manifests: Vec<PluginManifest> = state.records().plugins();
    let pointers = state
        .schema_work
        .run("reading the plugins' config schemas", move || {
            manifests
                .into_iter()
                .map(|m| {
                    let pointers = m
                        .config_schema
                        .as_ref()
                        .and_then(|schema| ConfigSchema::compile(schema).ok())
                        .map(|schema| schema.secret_pointers())
                        .unwrap_or_default();
                    (m.id, pointers)
                })
                .collect::<HashMap<_, _>>()
        })
        .await?;
    Ok((configs, pointers))
}

fn needs_reseal(state: &AppState, stored: &Stored, pointers: &HashMap<String, Vec<String>>) -> bool {
    let secret = pointers
        .get(&stored.record.plugin_id)
        .map_or(&[][..], Vec::as_slice);
    state.secrets.needs_reseal(&stored.record, secret)
}

/// `GET /v1/secrets`: how the stored configs are sealed.
pub async fn status(
    principal: Principal,
    State(state): State<AppState>,
) -> Result<Json<SecretsStatus>, Problem> {
    admin_only(&principal)?;
    let (configs, pointers) = stored(&state).await?;
    let mut sealed_with = BTreeMap::new();
    let mut clear = 0;
    for stored in &configs {
        let mut ids: Vec<&str> = stored
            .record
            .sealed
            .iter()
            .flatten()
            .map(|(_, s)| s.key_id.as_str())
            .collect();
        ids.dedup();
        for id in ids {
            *sealed_with.entry(id.to_owned()).or_insert(0) += 1;
        }
        let secret = pointers
            .get(&stored.record.plugin_id)
            .map_or(&[][..], Vec::as_slice);
        if secret
            .iter()
            .any(|p| stored.record.config.pointer(p).is_some_and(|v| !v.is_null()))
        {
            clear += 1;
        }
    }
    Ok(Json(SecretsStatus {
        sealing_key: state.secrets.current_id().map(str::to_owned),
        keys: state.secrets.ids(),
        configs: configs.len(),
        to_reseal: configs
            .iter()
            .filter(|s| needs_reseal(&state, s, &pointers))
            .count(),
        sealed_with,
        clear,
    }))
}

/// `POST /v1/secrets/reseal?limit=N`: seals again up to N configs (100 by default, at most 1000).
pub async fn reseal(
    principal: Principal,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<ResealRound>, Problem> {
    admin_only(&principal)?;
    let limit = limit(query.as_deref())?;
    if !state.secrets.enabled() {
        return Err(Problem::conflict(
            "no master key is configured (secrets.master_keys): there is nothing to seal with",
        ));
    }
    let (configs, pointers) = stored(&state).await?;
    let due: Vec<&Stored> = configs
        .iter()
        .filter(|s| needs_reseal(&state, s, &pointers))
        .collect();
    let (mut resealed, mut changed, mut failed) = (0, 0, Vec::new());
    for stored in due.iter().take(limit) {
        let secret = pointers
            .get(&stored.record.plugin_id)
            .map_or(&[][..], Vec::as_slice);
        let mut record = stored.record.clone();
        match state.secrets.open(&record) {
            Ok(config) => record.config = config,
            Err(error) => {
                failed.push(ResealFailure {
                    config: stored.key.clone(),
                    reason: error.to_string(),
                });
                continue;
            }
        }
        record.sealed = None;
        // The fields sealed before stay sealed even if the schema no longer names them secret.
        let mut fields: Vec<String> = secret.to_vec();
        fields.extend(stored.record.sealed.iter().flatten().map(|(p, _)| p.clone()));
        fields.sort();
        fields.dedup();
        state.secrets.seal(&mut record, &fields);
        let value =
            serde_json::to_vec(&record).map_err(|_| Problem::unavailable("a config could not be stored"))?;
        let written = state
            .write_if(
                &state.topics.configs,
                &stored.key,
                Some(&value),
                unchanged_since(Some(stored.version)),
                "the config",
            )
            .await;
        match written {
            Ok(_) => resealed += 1,
            Err(problem) if problem.status == 412 => changed += 1,
            Err(problem) => return Err(problem),
        }
    }
    tracing::info!(resealed, changed, failed = failed.len(), "configs sealed again");
    let remaining = due.len() - resealed;
    Ok(Json(ResealRound {
        resealed,
        changed,
        failed,
        remaining,
    }))
}

fn limit(query: Option<&str>) -> Result<usize, Problem> {
    let mut limit = DEFAULT_LIMIT;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let parsed = pair
            .strip_prefix("limit=")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|l| (1..=MAX_LIMIT).contains(l));
        limit = parsed.ok_or_else(|| {
            Problem::invalid(
                "the query is invalid",
                vec![FieldError {
                    pointer: String::new(),
                    detail: format!("only limit=N, N from 1 to {MAX_LIMIT}, is accepted; got {pair:?}"),
                }],
            )
        })?;
    }
    Ok(limit)
}
