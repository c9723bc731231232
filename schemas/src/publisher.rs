//! Signed, version-checked plugin releases (contract section 7.1.2): a publisher signs a manifest with an
//! Ed25519 key, the registry trusts publisher keys per plugin id or id prefix, and a manifest names the
//! range of contract versions it was written for.
//!
//! ```text
//!  publisher: manifest.json ──(drop "signature" and "url", RFC 8785)──► bytes ──Ed25519(secret key)──► "signature"
//!  registry:  received JSON ──(the same)──► bytes ──verify(trusted key named by key_id)──► accept | 422
//! ```
//!
//! The signature covers the manifest exactly as its publisher wrote it, except `url` (where a deployment
//! runs the service, filled in by the bridge) and `signature` itself. Everything here is pure: the
//! registry's configuration and `switchyardctl plugin sign|keygen` call it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::canonical_json;

/// The version of this wire contract, which a manifest's `contract` range must include (contract section
/// 12 lists what each minor version added).
pub const CONTRACT_VERSION: semver::Version = semver::Version::new(1, 5, 0);

/// The only signature algorithm.
pub const ED25519: &str = "ed25519";

/// A manifest's `signature` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSignature {
    /// Always `ed25519`.
    pub alg: String,
    /// Which publisher key signed it: the registry looks the key up by this id.
    pub key_id: String,
    /// The 64-byte Ed25519 signature of the signed bytes, base64 (standard alphabet, padded).
    pub value: String,
}

/// Why a signature or a key was refused. Each message says what to do.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The registry requires a signature and there is none.
    #[error(
        "the manifest is not signed, and this registry accepts only signed manifests (registration.require_signed): sign it with `switchyardctl plugin sign`"
    )]
    Missing,
    /// The `signature` member is not the contract's object.
    #[error("the signature is malformed: {0}")]
    Malformed(String),
    /// An algorithm other than Ed25519.
    #[error("the signature's algorithm {0:?} is not supported (only \"ed25519\")")]
    Algorithm(String),
    /// No trusted key has this id.
    #[error(
        "the manifest is signed with key {0:?}, which this registry does not trust (registration.publishers)"
    )]
    UnknownKey(String),
    /// The key is trusted, but not for this plugin id.
    #[error("key {key_id:?} is trusted only for plugins {patterns}, not for {plugin:?}")]
    NotTrustedFor {
        /// The signing key.
        key_id: String,
        /// The manifest's plugin id.
        plugin: String,
        /// The key's patterns, comma-separated.
        patterns: String,
    },
    /// The signature does not match the signed bytes.
    #[error(
        "the signature of key {0:?} does not match the manifest: it was changed after signing, or signed with another key"
    )]
    Mismatch(String),
    /// The manifest is not a JSON object.
    #[error("a manifest is a JSON object")]
    NotAnObject,
}

/// A key line or key file that does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct KeyError(String);

/// The bytes a publisher signs: the RFC 8785 form of the manifest without its `signature` and `url`.
pub fn signed_bytes(manifest: &Value) -> Result<Vec<u8>, SignatureError> {
    let Value::Object(members) = manifest else {
        return Err(SignatureError::NotAnObject);
    };
    let mut members = members.clone();
    members.remove("signature");
    members.remove("url");
    Ok(canonical_json::to_vec(&Value::Object(members)))
}

/// A publisher's secret key: what `switchyardctl plugin keygen` writes, `<key id>:<base64 32-byte seed>`.
pub struct SecretKey {
    key_id: String,
    key: SigningKey,
}

impl SecretKey {
    /// A new random key.
    pub fn generate(key_id: &str) -> Result<Self, KeyError> {
        check_key_id(key_id)?;
        Ok(Self {
            key_id: key_id.to_owned(),
            key: SigningKey::from_bytes(&rand::random()),
        })
    }

    /// Reads a key file's text.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (key_id, seed) = text
            .trim()
            .split_once(':')
            .ok_or_else(|| KeyError("a publisher key file holds `<key id>:<base64 seed>`".into()))?;
        check_key_id(key_id)?;
        let seed: [u8; 32] = STANDARD
            .decode(seed)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| KeyError("the key's seed is not 32 bytes of base64".into()))?;
        Ok(Self {
            key_id: key_id.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The key file's text (a secret: store it like one).
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.key_id, STANDARD.encode(self.key.to_bytes()))
    }

    /// The key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The trust entry for the registry's `registration.publishers`, for the given plugin patterns.
    pub fn trust_line(&self, patterns: &[String]) -> String {
        format!(
            "{} {} {}",
            self.key_id,
            STANDARD.encode(self.key.verifying_key().to_bytes()),
            patterns.join(" ")
        )
    }

    /// Signs `manifest` in place: sets its `signature` member (replacing one that was there).
    pub fn sign(&self, manifest: &mut Value) -> Result<(), SignatureError> {
        let signature = self.key.sign(&signed_bytes(manifest)?);
        let signature = ManifestSignature {
            alg: ED25519.into(),
            key_id: self.key_id.clone(),
            value: STANDARD.encode(signature.to_bytes()),
        };
        if let Value::Object(members) = manifest {
            members.insert(
                "signature".into(),
                serde_json::to_value(signature).unwrap_or_default(),
            );
        }
        Ok(())
    }
}

/// A key the registry trusts, and the plugins it may sign: `<key id> <base64 public key> <pattern>...`,
/// where a pattern is a plugin id, a prefix ending in `*` (`acme-*`), or `*` for every plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherKey {
    key_id: String,
    key: VerifyingKey,
    plugins: Vec<String>,
}

impl PublisherKey {
    /// Reads a trust line.
    pub fn parse(line: &str) -> Result<Self, KeyError> {
        let mut parts = line.split_whitespace();
        let (Some(key_id), Some(public)) = (parts.next(), parts.next()) else {
            return Err(KeyError(format!(
                "{line:?} is not `<key id> <base64 public key> <plugin pattern>...`"
            )));
        };
        check_key_id(key_id)?;
        let bytes: [u8; 32] = STANDARD
            .decode(public)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| KeyError(format!("the public key of {key_id:?} is not 32 bytes of base64")))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| KeyError(format!("the public key of {key_id:?} is not an Ed25519 key")))?;
        let plugins: Vec<String> = parts.map(str::to_owned).collect();
        if plugins.is_empty() {
            return Err(KeyError(format!(
                "key {key_id:?} names no plugins: add a plugin id, a prefix such as `acme-*`, or `*`"
            )));
        }
        for pattern in &plugins {
            let stem = pattern.strip_suffix('*').unwrap_or(pattern);
            if !stem
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(KeyError(format!(
                    "{pattern:?} is not a plugin pattern (a plugin id, a prefix ending in `*`, or `*`)"
                )));
            }
        }
        Ok(Self {
            key_id: key_id.to_owned(),
            key,
            plugins,
        })
    }

    /// The key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether the key may sign the manifest of `plugin`.
    pub fn covers(&self, plugin: &str) -> bool {
        self.plugins
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => plugin.starts_with(prefix),
                None => pattern == plugin,
            })
    }
}

/// Checks the signature of `manifest` (the JSON as received) for plugin `plugin` against the trusted
/// keys: `Ok(Some(key id))` when signed and valid, `Ok(None)` when unsigned and `required` is false.
/// A signature that is present is always checked, required or not.
pub fn verify(
    manifest: &Value,
    plugin: &str,
    trusted: &[PublisherKey],
    required: bool,
) -> Result<Option<String>, SignatureError> {
    let signature = match manifest.get("signature") {
        None | Some(Value::Null) if required => return Err(SignatureError::Missing),
        None | Some(Value::Null) => return Ok(None),
        Some(signature) => {
            ManifestSignature::deserialize(signature).map_err(|e| SignatureError::Malformed(e.to_string()))?
        }
    };
    if signature.alg != ED25519 {
        return Err(SignatureError::Algorithm(signature.alg));
    }
    let key = trusted
        .iter()
        .find(|key| key.key_id == signature.key_id)
        .ok_or_else(|| SignatureError::UnknownKey(signature.key_id.clone()))?;
    if !key.covers(plugin) {
        return Err(SignatureError::NotTrustedFor {
            key_id: key.key_id.clone(),
            plugin: plugin.to_owned(),
            patterns: key.plugins.join(", "),
        });
    }
    let bytes: [u8; 64] = STANDARD
        .decode(&signature.value)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| SignatureError::Malformed("`value` is not 64 bytes of base64".into()))?;
    key.key
        .verify(&signed_bytes(manifest)?, &Signature::from_bytes(&bytes))
        .map_err(|_| SignatureError::Mismatch(key.key_id.clone()))?;
    Ok(Some(signature.key_id))
}

/// A manifest's `contract` range that does not include this contract.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ContractError {
    /// Not a version range.
    #[error("{range:?} is not a version range (Cargo's syntax: \"^1\", \">=1.2, <2\", \"~1.4\"): {detail}")]
    Invalid {
        /// The manifest's range.
        range: String,
        /// The parser's complaint.
        detail: String,
    },
    /// A range that excludes this contract's version.
    #[error(
        "the plugin supports contract versions {range}, and this registry speaks contract {CONTRACT_VERSION}"
    )]
    Unsupported {
        /// The manifest's range.
        range: String,
    },
}

/// Checks a manifest's `contract` range against [`CONTRACT_VERSION`].
pub fn check_contract(range: &str) -> Result<(), ContractError> {
    let requirement = semver::VersionReq::parse(range).map_err(|e| ContractError::Invalid {
        range: range.to_owned(),
        detail: e.to_string(),
    })?;
    if requirement.matches(&CONTRACT_VERSION) {
        Ok(())
    } else {
        Err(ContractError::Unsupported {
            range: range.to_owned(),
        })
    }
}

fn check_key_id(key_id: &str) -> Result<(), KeyError> {
    let valid = !key_id.is_empty()
        && key_id.len() <= 64
        && key_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(KeyError(format!(
            "{key_id:?} is not a key id (1-64 letters, digits, '-', '_' or '.')"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest() -> Value {
        json!({"id": "acme-hello", "name": "Hello", "version": "1.0.0", "contract": "^1",
               "events": ["response.submitted"], "config_schema": {"type": "object", "properties": {"n": {"minimum": 0.5}}}})
    }

    fn key() -> (SecretKey, PublisherKey) {
        let secret = SecretKey::generate("acme-2026").unwrap();
        let trusted = PublisherKey::parse(&secret.trust_line(&["acme-*".into()])).unwrap();
        (secret, trusted)
    }

    #[test]
    fn a_signed_manifest_verifies_whatever_its_whitespace_member_order_and_url() {
        let (secret, trusted) = key();
        let mut signed = manifest();
        secret.sign(&mut signed).unwrap();
        let verified = verify(&signed, "acme-hello", std::slice::from_ref(&trusted), true);
        assert_eq!(verified, Ok(Some("acme-2026".into())));
        // Re-read from pretty-printed text with a url added, as the bridge sends it.
        let mut moved: Value = serde_json::from_str(&serde_json::to_string_pretty(&signed).unwrap()).unwrap();
        moved["url"] = json!("http://10.0.0.7:3000");
        assert_eq!(
            verify(&moved, "acme-hello", &[trusted], true),
            Ok(Some("acme-2026".into()))
        );
    }

    #[test]
    fn a_changed_manifest_an_unknown_key_and_a_missing_signature_are_refused() {
        let (secret, trusted) = key();
        let mut signed = manifest();
        secret.sign(&mut signed).unwrap();
        let trusted = [trusted];

        let mut changed = signed.clone();
        changed["events"] = json!(["response.submitted", "response.updated"]);
        assert_eq!(
            verify(&changed, "acme-hello", &trusted, false),
            Err(SignatureError::Mismatch("acme-2026".into()))
        );
        let other = SecretKey::generate("other").unwrap();
        let mut foreign = manifest();
        other.sign(&mut foreign).unwrap();
        assert_eq!(
            verify(&foreign, "acme-hello", &trusted, false),
            Err(SignatureError::UnknownKey("other".into()))
        );
        // Same key id, another key: the signature does not match.
        let impostor = SecretKey::generate("acme-2026").unwrap();
        let mut forged = manifest();
        impostor.sign(&mut forged).unwrap();
        assert_eq!(
            verify(&forged, "acme-hello", &trusted, false),
            Err(SignatureError::Mismatch("acme-2026".into()))
        );
        assert_eq!(
            verify(&manifest(), "acme-hello", &trusted, true),
            Err(SignatureError::Missing)
        );
        assert_eq!(verify(&manifest(), "acme-hello", &trusted, false), Ok(None));
    }

    #[test]
    fn a_key_signs_only_the_plugins_it_is_trusted_for() {
        let secret = SecretKey::generate("acme-2026").unwrap();
        let trusted =
            [PublisherKey::parse(&secret.trust_line(&["wordcount".into(), "acme-*".into()])).unwrap()];
        let mut signed =
            json!({"id": "globex-x", "name": "X", "version": "1.0.0", "events": ["form.created"]});
        secret.sign(&mut signed).unwrap();
        assert!(matches!(
            verify(&signed, "globex-x", &trusted, false),
            Err(SignatureError::NotTrustedFor { .. })
        ));
        assert!(
            trusted[0].covers("wordcount")
                && trusted[0].covers("acme-a")
                && !trusted[0].covers("wordcount-2")
        );
        let everyone = PublisherKey::parse(&secret.trust_line(&["*".into()])).unwrap();
        assert!(everyone.covers("globex-x"));
    }

    #[test]
    fn keys_round_trip_through_their_text_and_bad_lines_are_explained() {
        let secret = SecretKey::generate("acme-2026").unwrap();
        let again = SecretKey::parse(&secret.to_text()).unwrap();
        assert_eq!(again.trust_line(&["*".into()]), secret.trust_line(&["*".into()]));
        assert!(
            PublisherKey::parse("acme-2026 AAAA")
                .unwrap_err()
                .0
                .contains("32 bytes")
        );
        let line = secret.trust_line(&[]);
        assert!(
            PublisherKey::parse(&line)
                .unwrap_err()
                .0
                .contains("names no plugins")
        );
        assert!(PublisherKey::parse(&secret.trust_line(&["Acme*".into()])).is_err());
        assert!(SecretKey::generate("has space").is_err());
    }

    #[test]
    fn a_malformed_or_foreign_signature_is_refused_not_ignored() {
        let (_, trusted) = key();
        let mut odd = manifest();
        odd["signature"] = json!({"alg": "rsa", "key_id": "acme-2026", "value": "AA=="});
        assert_eq!(
            verify(&odd, "acme-hello", std::slice::from_ref(&trusted), false),
            Err(SignatureError::Algorithm("rsa".into()))
        );
        odd["signature"] = json!("v1,abc");
        assert!(matches!(
            verify(&odd, "acme-hello", &[trusted], false),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn the_contracts_example_signs_these_bytes() {
        // contract.md section 7.1.2.
        let manifest = json!({"id": "acme-hello", "name": "Hello", "version": "1.0.0",
                              "events": ["response.submitted"], "url": "http://10.0.0.7:3000"});
        let bytes = signed_bytes(&manifest).unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"events":["response.submitted"],"id":"acme-hello","name":"Hello","version":"1.0.0"}"#
        );
        assert_eq!(bytes.len(), 84);
    }

    #[test]
    fn contract_ranges_are_checked_against_this_contract() {
        for accepted in ["^1", "1", ">=1.0, <2", "~1.5", "*", ">=1.5.0"] {
            assert_eq!(check_contract(accepted), Ok(()), "{accepted}");
        }
        for refused in ["^2", ">=1.6", "<1.5", "=1.4.0", "^0.9"] {
            let error = check_contract(refused).unwrap_err();
            assert!(matches!(error, ContractError::Unsupported { .. }), "{refused}");
            assert!(error.to_string().contains("1.5.0") && error.to_string().contains(refused));
        }
        assert!(matches!(
            check_contract("one point oh"),
            Err(ContractError::Invalid { .. })
        ));
    }
}
