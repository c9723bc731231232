//! Per-plugin Standard Webhooks signing secrets, derived from one configured master key.
//!
//! `secret(plugin) = "whsec_" + base64(HMAC-SHA256(master, "switchyard plugin signing secret\0" + plugin))`.
//! Deriving instead of storing means no secret sits in a topic, every registry replica computes the same
//! secret, and a plugin learns its own secret from its registration response (and can ask again by
//! registering again). Rotating the master key rotates every plugin's secret at once.
//!
//! The console's session key comes from the same master key under another context
//! ([`MasterKey::console_session_key`]), unless `console.session_secret` sets one of its own.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

const CONTEXT: &[u8] = b"switchyard plugin signing secret\0";
const CONSOLE_CONTEXT: &[u8] = b"switchyard console session key\0";
const MIN_KEY_BYTES: usize = 32;

/// The master key is missing, not base64 or too short.
#[derive(Debug, Error)]
#[error("the signing key must be base64 of at least {MIN_KEY_BYTES} bytes")]
pub struct MasterKeyError;

/// The configured master key.
#[derive(Clone)]
pub struct MasterKey(Vec<u8>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Decodes the configured base64 key.
    pub fn parse(base64: &str) -> Result<Self, MasterKeyError> {
        let bytes = STANDARD.decode(base64.trim()).map_err(|_| MasterKeyError)?;
        if bytes.len() < MIN_KEY_BYTES {
            return Err(MasterKeyError);
        }
        Ok(Self(bytes))
    }

    /// The plugin's signing secret in the Standard Webhooks text form (`whsec_...`).
    pub fn plugin_secret(&self, plugin_id: &str) -> String {
        format!(
            "whsec_{}",
            STANDARD.encode(self.derive(CONTEXT, plugin_id.as_bytes()))
        )
    }

    /// The key that signs the console's session cookies and CSRF tokens: the same on every replica that
    /// shares this master key.
    pub fn console_session_key(&self) -> [u8; 32] {
        self.derive(CONSOLE_CONTEXT, b"")
    }

    /// `HMAC-SHA256(master, context + subject)`.
    fn derive(&self, context: &[u8], subject: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(context);
        mac.update(subject);
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_stable_per_plugin_and_differ_between_plugins() {
        let key = MasterKey::parse(&STANDARD.encode([7u8; 32])).unwrap();
        let a = key.plugin_secret("sheets-export");
        assert!(a.starts_with("whsec_"));
        assert_eq!(a, key.plugin_secret("sheets-export"));
        assert_ne!(a, key.plugin_secret("sms-notify"));
        let other = MasterKey::parse(&STANDARD.encode([8u8; 32])).unwrap();
        assert_ne!(a, other.plugin_secret("sheets-export"));
        assert!(MasterKey::parse("c2hvcnQ=").is_err());
        assert!(MasterKey::parse("not base64!").is_err());
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
        assert_ne!(key.console_session_key(), other.console_session_key());
        assert_ne!(
            STANDARD.encode(key.console_session_key()),
            a.trim_start_matches("whsec_")
        );
    }
}
