//! Plugins: register or update (`POST /v1/plugins`), read (`GET /v1/plugins`, `GET /v1/plugins/{id}`),
//! deregister (`DELETE /v1/plugins/{id}`) and heartbeat (`POST /v1/plugins/{id}/heartbeat`).
//!
//! Who may register or heartbeat: an admin, or the plugin itself (a plugin token whose `plugin` claim is
//! the id). A version lower than the registered one is refused with 409 unless an admin passes
//! `?force=true`. Everyone authenticated reads the public fields and the status; admins also see the URL,
//! the instances and the topics. Registration creates the plugin's topics before the manifest is stored,
//! so the router never routes to a plugin whose topic was not provisioned, and adds to the plugin's
//! registration history after it ([`crate::api::registrations`]; deregistration leaves the history).

use axum::Json;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchyard_schemas::catalog::EventType;
use switchyard_schemas::control::{Batch, ControlError, Ordering, PluginManifest, RateLimit};
use switchyard_schemas::ids::check_plugin_id;
use switchyard_schemas::publisher::{self, PublisherKey};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::paging::{Page, Paging};
use crate::api::registrations;
use crate::api::versions::{Precondition, Tagged, changing, unchanged_since};
use crate::api::{AppState, RawBody};
use crate::auth::{Principal, TokenExpiry};
use crate::config_schema::ConfigSchema;
use crate::problem::{FieldError, Problem};
use crate::provision::PluginTopics;
use crate::records::{InstanceRecord, InstanceState, PluginStatus, now_rfc3339, status_of, token_expiry};
use crate::store::Expect;

/// When the plugin token of a plugin's workers expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// RFC 3339 expiry of the earliest token among its live instances.
    pub expires_at: String,
    /// Seconds from now (negative once expired).
    pub expires_in_seconds: i64,
    /// Within `auth.plugin_token_warning_ms` (14 days by default): mint a new token and roll the workers.
    pub expires_soon: bool,
}

/// A plugin as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginView {
    /// Plugin id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Semantic version.
    pub version: String,
    /// Event types it subscribes to.
    pub events: Vec<String>,
    /// Actions it serves.
    pub actions: Vec<String>,
    /// Its configuration's JSON Schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<serde_json::Value>,
    /// Which of a team's events the runtime delivers one after the other: the manifest's `ordering`, or
    /// `team` when it has none.
    pub ordering: String,
    /// The manifest's `batch`, if it asks for batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Batch>,
    /// The manifest's `rate_limit`, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// The manifest's `installations: true`: a team may install the plugin more than once. Absent when
    /// false, so the view of a plugin without it is what it was before installations existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub installations: bool,
    /// `up`, `degraded` or `down`, from live heartbeats.
    pub status: PluginStatus,
    /// Instances heard from within the heartbeat TTL.
    pub active_instances: usize,
    /// Base URL of its service; admins only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When its workers' plugin token expires; absent when no live instance sent a heartbeat with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenView>,
    /// Every known instance; admins only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<InstanceRecord>>,
    /// Its topics; admins only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<PluginTopicsView>,
}

/// A plugin's topics as admins see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginTopicsView {
    /// Routed events.
    pub events: String,
    /// The runtime's dead letters.
    pub dead_letter: String,
}

/// What a manifest must carry to register (`registration.*`, `docs/registry.md`, "Signed manifests").
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// Refuse manifests without a valid publisher signature.
    pub require_signed: bool,
    /// The trusted publisher keys.
    pub publishers: Vec<PublisherKey>,
}

impl Registration {
    /// Checks the publisher's signature of the manifest as received (`json`): the key that signed it, or
    /// `None` for an unsigned manifest the registry accepts.
    fn check_signature(&self, json: &serde_json::Value, id: &str) -> Result<Option<String>, Problem> {
        publisher::verify(json, id, &self.publishers, self.require_signed).map_err(|error| {
            Problem::invalid(
                "the manifest's signature is refused",
                vec![FieldError {
                    pointer: "/signature".into(),
                    detail: error.to_string(),
                }],
            )
        })
    }
}

/// The answer to a registration: the plugin, and its Standard Webhooks signing secret.
#[derive(Debug, Serialize)]
pub struct Registered {
    /// The plugin as registered.
    #[serde(flatten)]
    pub plugin: PluginView,
    /// The secret with which the registry and the plugin runtime sign requests to this plugin (`whsec_...`).
    /// Returned only here, to the plugin itself or an admin.
    pub signing_secret: String,
    /// Every secret that signs the registry's calls to this plugin: `signing_secret` first, then one per
    /// signing key being retired (a rotation window). Sign with all of them; verify with any.
    pub signing_secrets: Vec<String>,
    /// The plugin's own config keys, `<id>:<base64>`, the sealing one first: what its workers open the
    /// sealed secret fields of its configs with. Absent when the registry seals nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_keys: Vec<String>,
}

fn view(state: &AppState, manifest: PluginManifest, principal: &Principal) -> PluginView {
    let instances = state.records().instances(&manifest.id);
    let now = OffsetDateTime::now_utc();
    let active = instances
        .iter()
        .filter(|i| i.is_live(now, state.heartbeat_ttl))
        .count();
    let admin = principal.is_admin();
    let PluginTopics { events, dead_letter } = state.provisioner.topics(&manifest.id);
    let token = token_expiry(&instances, now, state.heartbeat_ttl).map(|expires| {
        let left = (expires - now).whole_seconds();
        TokenView {
            expires_at: expires.format(&Rfc3339).unwrap_or_default(),
            expires_in_seconds: left,
            expires_soon: left < state.plugin_token_warning.as_secs() as i64,
        }
    });
    PluginView {
        token,
        status: status_of(&instances, now, state.heartbeat_ttl),
        active_instances: active,
        url: if admin { manifest.url } else { None },
        instances: admin.then_some(instances),
        topics: admin.then_some(PluginTopicsView { events, dead_letter }),
        id: manifest.id,
        name: manifest.name,
        description: manifest.description,
        version: manifest.version.to_string(),
        events: manifest.events,
        actions: manifest.actions,
        config_schema: manifest.config_schema,
        ordering: manifest.delivery.ordering().as_str().to_owned(),
        batch: manifest.delivery.batch,
        rate_limit: manifest.delivery.rate_limit,
        installations: manifest.delivery.installations,
    }
}

fn parse_json(body: &[u8]) -> Result<serde_json::Value, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::invalid(
            "the body is not JSON",
            vec![FieldError {
                pointer: String::new(),
                detail: e.to_string(),
            }],
        )
    })
}

/// Registers a plugin or updates its manifest: 201 when new, 200 when updated.
pub async fn register(
    principal: Principal,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    RawBody(body): RawBody,
) -> Result<Tagged<(StatusCode, Json<Registered>)>, Problem> {
    let force = force(query.as_deref())?;
    let json = parse_json(&body)?;
    let id = json
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    if !principal.may_act_as_plugin(&id) {
        return Err(Problem::forbidden(
            "only an admin or the plugin itself may register it",
        ));
    }
    let manifest = PluginManifest::parse(&id, &body).map_err(invalid_manifest)?;
    let signed_by = state.registration.check_signature(&json, &id)?;
    let manifest = state
        .schema_work
        .run("checking the manifest's config_schema", move || {
            check_manifest(&manifest).map(|()| manifest)
        })
        .await??;
    let value = serde_json::to_vec(&manifest)
        .map_err(|_| Problem::unavailable("the manifest could not be stored"))?;
    let forced = force && principal.is_admin();
    let (state, id, manifest, value) = (&state, id.as_str(), &manifest, value.as_slice());
    // The version rule holds against the manifest the write replaces, whichever replica wrote it: a
    // registration that loses the race to another is checked again against the winner.
    let (status, version) = changing(Expect::Any, move || async move {
        let current = state.store.get_versioned(&state.topics.plugins, id);
        let read = current.as_ref().map(|(version, _)| *version);
        let registered = current.and_then(|(_, value)| PluginManifest::parse(id, &value).ok());
        if let Some(registered) = &registered
            && manifest.version < registered.version
            && !forced
        {
            return Err(Problem::conflict(format!(
                "version {} is lower than the registered {}; an admin can force it with ?force=true",
                manifest.version, registered.version
            )));
        }
        state.provisioner.provision(id).await.map_err(|error| {
            tracing::warn!(%error, plugin = %id, "creating the plugin's topics failed");
            Problem::unavailable("the plugin's topics could not be created; retry")
        })?;
        let version = state
            .write_if(
                &state.topics.plugins,
                id,
                Some(value),
                unchanged_since(read),
                "the plugin",
            )
            .await?;
        let status = if read.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok((status, version))
    })
    .await?;
    registrations::record(state, manifest, value).await;
    tracing::info!(plugin = %id, version = %manifest.version, ?signed_by, "plugin registered");
    let signing_secret = state.gateway.signing_secret(id);
    let signing_secrets = state.gateway.signing_secrets(id);
    let config_keys = state
        .secrets
        .plugin_keys(id)
        .iter()
        .map(|key| key.to_text().to_string())
        .collect();
    Ok(Tagged(
        version,
        (
            status,
            Json(Registered {
                plugin: view(state, manifest.clone(), &principal),
                signing_secret,
                signing_secrets,
                config_keys,
            }),
        ),
    ))
}

/// The checks registration makes of a manifest that need no registry state (the contract's parse, the
/// registry's rules, its config schema; not the signature, the version rule or the caller's rights), for
/// `switchyardctl plugin check`: one line per problem.
pub fn validate_manifest(json: &serde_json::Value) -> Result<PluginManifest, Vec<String>> {
    let lines = |problem: Problem| -> Vec<String> {
        if problem.errors.is_empty() {
            return vec![problem.detail];
        }
        problem
            .errors
            .into_iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    if e.pointer.is_empty() { "/" } else { &e.pointer },
                    e.detail
                )
            })
            .collect()
    };
    let id = json.get("id").and_then(|v| v.as_str()).unwrap_or_default();
    let bytes = serde_json::to_vec(json).unwrap_or_default();
    let manifest = PluginManifest::parse(id, &bytes).map_err(|e| lines(invalid_manifest(e)))?;
    check_manifest(&manifest).map_err(lines)?;
    Ok(manifest)
}

/// `?force=true`: an admin registers a lower version than the current one.
fn force(query: Option<&str>) -> Result<bool, Problem> {
    let mut force = false;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        force = match pair {
            "force=true" | "force=1" | "force" => true,
            "force=false" | "force=0" => false,
            _ => {
                return Err(Problem::invalid(
                    "the query is invalid",
                    vec![FieldError {
                        pointer: String::new(),
                        detail: format!(
                            "unknown query parameter {pair:?}; only force=true|false is accepted"
                        ),
                    }],
                ));
            }
        };
    }
    Ok(force)
}

/// What the contract's parse does not check: known event types, action names, a valid config schema.
fn check_manifest(manifest: &PluginManifest) -> Result<(), Problem> {
    let mut errors = Vec::new();
    if let Some(range) = &manifest.contract
        && let Err(error) = publisher::check_contract(range)
    {
        errors.push(FieldError {
            pointer: "/contract".into(),
            detail: error.to_string(),
        });
    }
    if manifest.events.is_empty() {
        errors.push(FieldError {
            pointer: "/events".into(),
            detail: "must list at least one event type".into(),
        });
    }
    for (index, event) in manifest.events.iter().enumerate() {
        if EventType::from_ce_type(event).is_none() {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            errors.push(FieldError {
                pointer: format!("/events/{index}"),
                detail: format!(
                    "{event:?} is not an event type of the contract ({})",
                    known.join(", ")
                ),
            });
        }
    }
    if let Some(url) = &manifest.url
        && let Err(detail) = check_service_url(url)
    {
        errors.push(FieldError {
            pointer: "/url".into(),
            detail,
        });
    }
    for (index, action) in manifest.actions.iter().enumerate() {
        if check_plugin_id(action).is_err() {
            errors.push(FieldError {
                pointer: format!("/actions/{index}"),
                detail: format!(
                    "{action:?} is not an action name (1-64 lowercase letters, digits and '-', starting with a letter)"
                ),
            });
        }
    }
    if let Some(Ordering::Unknown(value)) = &manifest.delivery.ordering {
        errors.push(FieldError {
            pointer: "/ordering".into(),
            detail: format!("{value:?} is not an ordering ({})", Ordering::KNOWN.join(", ")),
        });
    }
    if let Some((field, detail)) = manifest.delivery.batch.and_then(|b| b.problem()) {
        errors.push(FieldError {
            pointer: format!("/batch/{field}"),
            detail,
        });
    }
    if let Some((field, detail)) = manifest.delivery.rate_limit.and_then(|r| r.problem()) {
        errors.push(FieldError {
            pointer: format!("/rate_limit/{field}"),
            detail,
        });
    }
    if let Some(schema) = &manifest.config_schema
        && let Err(error) = ConfigSchema::compile(schema)
    {
        errors.extend(error.problems().into_iter().map(|e| FieldError {
            pointer: format!("/config_schema{}", e.pointer),
            detail: e.detail,
        }));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problem::invalid("the manifest is invalid", errors))
    }
}

/// A plugin's service URL: an absolute `http`/`https` URI (RFC 3986: ASCII only, no spaces, `%` followed by
/// two hex digits) with a host. The contract only asks for the scheme prefix; the gateway has to call it.
fn check_service_url(url: &str) -> Result<(), String> {
    const URI_PUNCTUATION: &str = "-._~:/?#[]@!$&'()*+,;=%";
    if let Some(c) = url
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || URI_PUNCTUATION.contains(*c)))
    {
        return Err(format!(
            "{url:?} is not a URI: {c:?} must be percent-encoded (an international domain name in its xn-- form)"
        ));
    }
    let bytes = url.as_bytes();
    let bad_escape = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if bad_escape {
        return Err(format!(
            "{url:?} is not a URI: '%' must be followed by two hex digits"
        ));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} is not an http(s) URL"));
    }
    // The URL parser takes `http:///x` as host `x`; a URI's authority comes right after `//`.
    let authority = url.split_once("//").map_or("", |(_, rest)| rest);
    if authority.is_empty()
        || authority.starts_with(['/', '?', '#'])
        || parsed.host_str().is_none_or(str::is_empty)
    {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

/// Lists registered plugins, by id.
pub async fn list(
    principal: Principal,
    State(state): State<AppState>,
    paging: Paging,
) -> Result<Page<PluginView>, Problem> {
    let plugins = state.records().plugins();
    Ok(paging
        .page(plugins, |m| m.id.clone())?
        .map(|manifest| view(&state, manifest, &principal)))
}

/// One plugin, or 404.
pub async fn show(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Tagged<Json<PluginView>>, Problem> {
    let (version, manifest) = state
        .store
        .get_versioned(&state.topics.plugins, &id)
        .and_then(|(version, value)| Some((version, PluginManifest::parse(&id, &value).ok()?)))
        .ok_or_else(|| unknown(&id))?;
    Ok(Tagged(Some(version), Json(view(&state, manifest, &principal))))
}

fn unknown(id: &str) -> Problem {
    Problem::not_found(format!("no plugin {id} is registered"))
}

/// Deregisters a plugin (admins): removes its enablements, configs and instances, then its manifest, so
/// the router stops routing to it. Its topics and their data are kept. 204, or 404 when unknown. With
/// `If-Match`, the manifest must be at that version (412 before anything is removed), and its removal
/// is conditional on it too: a registration that wins the race keeps the plugin registered (412).
pub async fn deregister(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Precondition(precondition): Precondition,
) -> Result<StatusCode, Problem> {
    if !principal.is_admin() {
        return Err(Problem::forbidden("only an admin may deregister a plugin"));
    }
    if state.records().plugin(&id).is_none() {
        return Err(unknown(&id));
    }
    let read = state
        .read_for_change(&state.topics.plugins, &id, precondition, "the plugin")
        .await?
        .map(|(version, _)| version);
    // Dependents first: a failure half-way leaves a registered plugin with fewer enablements, and repeating
    // the DELETE finishes the job, rather than enablements of a plugin that no longer exists.
    let records = state.records();
    let enablements = records.plugin_enablement_keys(&id);
    let configs = records.plugin_config_keys(&id);
    let instances: Vec<String> = records
        .instances(&id)
        .into_iter()
        .map(|i| format!("{}/{}", i.plugin_id, i.instance_id))
        .collect();
    for key in &enablements {
        state.write(&state.topics.enablements, key, None).await?;
    }
    for key in &configs {
        state.write(&state.topics.configs, key, None).await?;
    }
    for key in &instances {
        state.write(&state.topics.instances, key, None).await?;
    }
    if precondition == Expect::Any {
        state.write(&state.topics.plugins, &id, None).await?;
    } else {
        state
            .write_if(
                &state.topics.plugins,
                &id,
                None,
                unchanged_since(read),
                "the plugin",
            )
            .await?;
    }
    tracing::info!(
        plugin = %id,
        enablements = enablements.len(),
        configs = configs.len(),
        "plugin deregistered"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// A heartbeat's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The instance, unique per plugin (e.g. the pod name): 1-128 printable characters without `/`.
    pub instance_id: String,
    /// `ok` (default) or `degraded`; `stopping` says goodbye: the instance is forgotten at once.
    #[serde(default)]
    pub state: BeatState,
}

/// What a heartbeat says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BeatState {
    /// Serving normally.
    #[default]
    Ok,
    /// Serving, but impaired.
    Degraded,
    /// Shutting down: forget the instance now rather than after the TTL.
    Stopping,
}

/// The answer to a heartbeat.
#[derive(Debug, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// The instance as recorded.
    pub instance: InstanceRecord,
    /// Send the next heartbeat well within this many seconds (a third of it is a good period).
    pub ttl_seconds: u64,
    /// The plugin's status now.
    pub status: PluginStatus,
}

/// Records a live instance of a plugin, or forgets one that says goodbye (the plugin itself or an admin).
/// 200, or 404 when unregistered.
pub async fn heartbeat(
    principal: Principal,
    Extension(TokenExpiry(token_exp)): Extension<TokenExpiry>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Json<HeartbeatAck>, Problem> {
    if !principal.may_act_as_plugin(&id) {
        return Err(Problem::forbidden(
            "only the plugin itself or an admin may send its heartbeats",
        ));
    }
    if state.records().plugin(&id).is_none() {
        return Err(unknown(&id));
    }
    let beat: Heartbeat = serde_json::from_slice(&body).map_err(|e| {
        Problem::invalid(
            "the heartbeat is invalid",
            vec![FieldError {
                pointer: String::new(),
                detail: e.to_string(),
            }],
        )
    })?;
    if beat.instance_id.is_empty()
        || beat.instance_id.len() > 128
        || beat
            .instance_id
            .chars()
            .any(|c| c == '/' || c.is_control() || c.is_whitespace())
    {
        return Err(Problem::invalid(
            "the heartbeat is invalid",
            vec![FieldError {
                pointer: "/instance_id".into(),
                detail: "must be 1-128 printable characters without spaces or '/'".into(),
            }],
        ));
    }
    let record = InstanceRecord {
        plugin_id: id.clone(),
        instance_id: beat.instance_id,
        state: match beat.state {
            BeatState::Degraded => InstanceState::Degraded,
            BeatState::Ok | BeatState::Stopping => InstanceState::Ok,
        },
        last_seen: now_rfc3339(),
        // The plugin's own token: the one its workers must renew (an admin's says nothing about them).
        token_expires_at: matches!(principal, Principal::Plugin(_))
            .then(|| OffsetDateTime::from_unix_timestamp(token_exp as i64).ok())
            .flatten()
            .and_then(|t| t.format(&Rfc3339).ok()),
    };
    let key = format!("{id}/{}", record.instance_id);
    if beat.state == BeatState::Stopping {
        state.write(&state.topics.instances, &key, None).await?;
        tracing::info!(plugin = %id, instance = %record.instance_id, "instance said goodbye");
    } else {
        let value = serde_json::to_vec(&record)
            .map_err(|_| Problem::unavailable("the heartbeat could not be stored"))?;
        state.write(&state.topics.instances, &key, Some(&value)).await?;
    }
    let status = status_of(
        &state.records().instances(&id),
        OffsetDateTime::now_utc(),
        state.heartbeat_ttl,
    );
    Ok(Json(HeartbeatAck {
        instance: record,
        ttl_seconds: state.heartbeat_ttl.as_secs(),
        status,
    }))
}

fn invalid_manifest(error: ControlError) -> Problem {
    let pointer = match &error {
        ControlError::Field { field, .. } => format!("/{field}"),
        ControlError::KeyMismatch { field, .. } => format!("/{field}"),
        ControlError::Id(_) | ControlError::Key { .. } => "/id".to_owned(),
        ControlError::Json { .. } => String::new(),
    };
    Problem::invalid(
        "the manifest is invalid",
        vec![FieldError {
            pointer,
            detail: error.to_string(),
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::check_service_url;

    #[test]
    fn service_urls_are_absolute_http_uris_with_a_host() {
        for ok in [
            "https://sheets.plugins.example",
            "http://127.0.0.1:8091",
            "https://xn--5ca.example/base/path?x=1%20",
            "http://[::1]:8080/",
        ] {
            assert_eq!(check_service_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "https://\u{cf}",
            "https://a b.example",
            "https://a.example/a b",
            "https://",
            "http:///path",
            "https://a.example/%zz",
            "https://a.example:99999",
            "https://a.example/\t",
        ] {
            assert!(check_service_url(bad).is_err(), "{bad}");
        }
    }
}
