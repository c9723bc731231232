//! A plugin's registration history: every version it registered, when first and last, and a hash of each
//! manifest. `GET /v1/plugins/{id}/registrations` reads it; every successful `POST /v1/plugins` adds to it
//! ([`record`]). `switchyard.plugins` is compacted and keeps only the current manifest, so the history
//! lives in a compacted topic of its own (`topics.plugin_registrations`), one record per version, which
//! deregistration leaves in place: a plugin registered again continues its history.
//!
//! ```text
//!   POST /v1/plugins ── manifest written (201/200) ── stored record of <id>/<version>? ── next_record
//!       ── plain put ─► switchyard.plugin-registrations   (a failure: WARN + store_writes{failed}; the
//!                                                          registration still answers 201/200)
//!   GET  role (403: the plugin itself or an admin) · registered or has history (404)
//!       ── records <id>/* ── newest last_registered_at first ── page ──► [{version, ..., current}]
//! ```

use std::cmp::Reverse;
use std::fmt::Write as _;

use axum::extract::{Path, State};
use serde::Serialize;
use sha2::{Digest, Sha256};
use switchyard_schemas::control::PluginManifest;
use switchyard_schemas::times::epoch_ms;

use crate::api::AppState;
use crate::api::paging::{Page, Paging};
use crate::auth::Principal;
use crate::problem::Problem;
use crate::records::{RegistrationRecord, now_rfc3339, registration_key};

/// One version of a plugin as its history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistrationView {
    /// The manifest's version.
    pub version: String,
    /// The manifest's display name at the latest registration of this version.
    pub name: String,
    /// RFC 3339 time of the first registration of this version.
    pub first_registered_at: String,
    /// RFC 3339 time of the latest registration of this version.
    pub last_registered_at: String,
    /// Lowercase hex SHA-256 of the manifest as stored at the latest registration of this version.
    pub manifest_sha256: String,
    /// This is the version registered now.
    pub current: bool,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(bytes) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The history record of a registration of `manifest`, whose record in `switchyard.plugins` is `stored`,
/// at `now` (RFC 3339): `first_registered_at` comes from `previous`, the stored record of that version,
/// when it has a readable one; everything else describes this registration.
pub fn next_record(
    previous: Option<&RegistrationRecord>,
    manifest: &PluginManifest,
    stored: &[u8],
    now: &str,
) -> RegistrationRecord {
    let first = previous
        .map(|p| p.first_registered_at.as_str())
        .filter(|first| epoch_ms(first).is_some())
        .unwrap_or(now);
    RegistrationRecord {
        plugin_id: manifest.id.clone(),
        version: manifest.version.to_string(),
        first_registered_at: first.to_owned(),
        last_registered_at: now.to_owned(),
        name: manifest.name.clone(),
        manifest_sha256: sha256_hex(stored),
    }
}

/// Adds a successful registration of `manifest` (stored as `stored` in `switchyard.plugins`) to the
/// plugin's history. Called after the manifest write, so the history never shows a registration that did
/// not happen.
///
/// A plain write of a record computed from this replica's view, not a compare-and-set: several worker
/// instances registering the same version at once (through several replicas) each read the same stored
/// record, or none, and the log keeps whichever write came last. With the same manifest, as worker
/// instances send, the only effect is which of those close timestamps wins (`last_registered_at`, and
/// `first_registered_at` when no record was there yet). Two different manifests of one version registered
/// in the same moment may leave the name and hash of the one whose manifest write came first.
///
/// A failure does not fail the registration, which has already happened: it is logged and counted as a
/// failed write in `switchyard_registry_store_writes_total`, and the next registration of the version
/// writes the record again.
pub async fn record(state: &AppState, manifest: &PluginManifest, stored: &[u8]) {
    let topic = state.topics.plugin_registrations.as_str();
    let version = manifest.version.to_string();
    let previous = state.records().registration(&manifest.id, &version);
    let record = next_record(previous.as_ref(), manifest, stored, &now_rfc3339());
    let value = match serde_json::to_vec(&record) {
        Ok(value) => value,
        Err(error) => {
            tracing::warn!(
                %error,
                plugin = %manifest.id,
                %version,
                "a registration history record could not be encoded"
            );
            return;
        }
    };
    let key = registration_key(&manifest.id, &version);
    match state.store.put(topic, &key, Some(&value)).await {
        Ok(_) => state.metrics.store_writes.with_label_values(&[topic, "ok"]).inc(),
        Err(error) => {
            state
                .metrics
                .store_writes
                .with_label_values(&[topic, "failed"])
                .inc();
            tracing::warn!(
                %error,
                topic,
                plugin = %manifest.id,
                %version,
                "recording the registration in the history failed; the registration stands"
            );
        }
    }
}

/// The order of the history: newest `last_registered_at` first (an unreadable time last); within one
/// millisecond, by version string, descending. Also the paging key.
fn newest_first_key(record: &RegistrationRecord) -> Reverse<(i64, String)> {
    Reverse((
        epoch_ms(&record.last_registered_at).unwrap_or(i64::MIN),
        record.version.clone(),
    ))
}

/// `history` in the route's order ([`newest_first_key`]).
fn newest_first(mut history: Vec<RegistrationRecord>) -> Vec<RegistrationRecord> {
    history.sort_by_key(newest_first_key);
    history
}

/// A record as the route shows it, `current` when its version is `current_version`, the one registered
/// now (`None` when the plugin is not registered).
fn view(record: RegistrationRecord, current_version: Option<&str>) -> RegistrationView {
    RegistrationView {
        current: current_version == Some(record.version.as_str()),
        version: record.version,
        name: record.name,
        first_registered_at: record.first_registered_at,
        last_registered_at: record.last_registered_at,
        manifest_sha256: record.manifest_sha256,
    }
}

/// A plugin's registration history, newest first (the plugin itself or an admin); 404 when the plugin is
/// neither registered nor has a history.
pub async fn list(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    paging: Paging,
) -> Result<Page<RegistrationView>, Problem> {
    if !principal.may_act_as_plugin(&id) {
        return Err(Problem::forbidden(
            "only an admin or the plugin itself may read the plugin's registration history",
        ));
    }
    let records = state.records();
    let current = records.plugin(&id).map(|m| m.version.to_string());
    let history = records.registrations(&id);
    if current.is_none() && history.is_empty() {
        return Err(Problem::not_found(format!(
            "no plugin {id} is registered, and it has no registration history"
        )));
    }
    let current = current.as_deref();
    Ok(paging
        .page(newest_first(history), newest_first_key)?
        .map(|record| view(record, current)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: &str, name: &str) -> (PluginManifest, Vec<u8>) {
        let json = serde_json::json!({"id": "sms-notify", "name": name, "version": version,
            "events": ["response.submitted"]});
        let manifest = PluginManifest::parse("sms-notify", json.to_string().as_bytes()).unwrap();
        let stored = serde_json::to_vec(&manifest).unwrap();
        (manifest, stored)
    }

    fn at(version: &str, last: &str) -> RegistrationRecord {
        RegistrationRecord {
            plugin_id: "sms-notify".into(),
            version: version.into(),
            first_registered_at: "2026-11-01T00:00:00Z".into(),
            last_registered_at: last.into(),
            name: "SMS".into(),
            manifest_sha256: sha256_hex(version.as_bytes()),
        }
    }

    #[test]
    fn the_hash_is_the_lowercase_hex_sha256_of_the_stored_bytes() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_first_registration_starts_the_record_and_a_later_one_keeps_its_first_time() {
        let (first_manifest, first_stored) = manifest("1.0.0", "SMS notify");
        let first = next_record(None, &first_manifest, &first_stored, "2026-11-01T10:00:00Z");
        assert_eq!(
            first,
            RegistrationRecord {
                plugin_id: "sms-notify".into(),
                version: "1.0.0".into(),
                first_registered_at: "2026-11-01T10:00:00Z".into(),
                last_registered_at: "2026-11-01T10:00:00Z".into(),
                name: "SMS notify".into(),
                manifest_sha256: sha256_hex(&first_stored),
            }
        );
        // The same version again, with another name: the first time stays, the rest is this registration.
        let (renamed, renamed_stored) = manifest("1.0.0", "SMS notifier");
        let again = next_record(Some(&first), &renamed, &renamed_stored, "2026-11-02T08:30:00.5Z");
        assert_eq!(again.first_registered_at, "2026-11-01T10:00:00Z");
        assert_eq!(again.last_registered_at, "2026-11-02T08:30:00.5Z");
        assert_eq!(again.name, "SMS notifier");
        assert_eq!(again.manifest_sha256, sha256_hex(&renamed_stored));
        assert_ne!(again.manifest_sha256, first.manifest_sha256);
    }

    #[test]
    fn an_unreadable_first_time_is_replaced_by_now() {
        let (manifest, stored) = manifest("1.1.0", "SMS notify");
        let mut broken = at("1.1.0", "2026-11-01T00:00:00Z");
        broken.first_registered_at = "yesterday".into();
        let record = next_record(Some(&broken), &manifest, &stored, "2026-11-03T00:00:00Z");
        assert_eq!(record.first_registered_at, "2026-11-03T00:00:00Z");
    }

    #[test]
    fn the_history_is_newest_first_with_current_on_the_registered_version() {
        let history = vec![
            at("1.0.0", "2026-11-03T00:00:00Z"),
            at("1.1.0", "2026-11-02T00:00:00Z"),
            // Written around the API: sorts last.
            at("0.9.0", "not a time"),
            // A finer time than the others, with another offset: compared as times, not as strings.
            at("1.2.0", "2026-11-03T01:00:00.250+02:00"),
            at("1.10.0", "2026-11-04T00:00:00Z"),
        ];
        let ordered: Vec<String> = newest_first(history.clone())
            .into_iter()
            .map(|r| r.version)
            .collect();
        assert_eq!(ordered, ["1.10.0", "1.0.0", "1.2.0", "1.1.0", "0.9.0"]);
        let shown: Vec<(String, bool)> = newest_first(history)
            .into_iter()
            .map(|r| view(r, Some("1.2.0")))
            .map(|v| (v.version, v.current))
            .collect();
        assert_eq!(
            shown,
            [
                ("1.10.0".to_owned(), false),
                ("1.0.0".to_owned(), false),
                ("1.2.0".to_owned(), true),
                ("1.1.0".to_owned(), false),
                ("0.9.0".to_owned(), false)
            ]
        );
        assert!(!view(at("1.2.0", "2026-11-01T00:00:00Z"), None).current);
    }

    #[test]
    fn the_view_has_the_fields_of_the_route() {
        let view = view(at("1.0.0", "2026-11-03T00:00:00Z"), Some("1.0.0"));
        assert_eq!(
            serde_json::to_value(&view).unwrap(),
            serde_json::json!({"version": "1.0.0", "name": "SMS",
                "first_registered_at": "2026-11-01T00:00:00Z", "last_registered_at": "2026-11-03T00:00:00Z",
                "manifest_sha256": sha256_hex(b"1.0.0"), "current": true})
        );
    }
}
