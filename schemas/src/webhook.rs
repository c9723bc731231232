//! Standard Webhooks v1: signing outgoing webhooks and verifying incoming ones.
//!
//! A signed webhook carries three headers:
//!
//! * [`WEBHOOK_ID`] — a message id that stays the same across retries, so receivers can use it as an
//!   idempotency key;
//! * [`WEBHOOK_TIMESTAMP`] — Unix seconds of *this* delivery attempt;
//! * [`WEBHOOK_SIGNATURE`] — a space-separated list of `v1,<base64 signature>` entries, where each
//!   signature is HMAC-SHA256 over `"{id}.{timestamp}.{body}"`.
//!
//! The HMAC key is the base64-decoded part of a `whsec_...` secret. A receiver accepts a message when
//! the timestamp is within a tolerance of its clock (5 minutes is the standard, see
//! [`DEFAULT_TOLERANCE_SECS`]) and *any* listed `v1` signature matches. Listing several signatures lets
//! a sender sign with the old and the new secret while a secret is being rotated.
//!
//! Signatures are compared in constant time, and [`SigningSecret`]'s `Debug` output never shows the key.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Header carrying the message id, which is stable across retries (the idempotency key).
pub const WEBHOOK_ID: &str = "webhook-id";
/// Header carrying the Unix timestamp (seconds) of this delivery attempt.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the space-separated list of `v1,<base64>` signatures.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// The content type of a batch `/execute` (the CloudEvents JSON batch format).
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// The tolerance the specification recommends between the sender's timestamp and the receiver's clock.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

/// Prefix of the text form of a signing secret.
const SECRET_PREFIX: &str = "whsec_";
/// Smallest key the specification allows (192 bits).
const MIN_KEY_BYTES: usize = 24;
/// Largest key the specification allows (512 bits), which is also SHA-256's block size.
const MAX_KEY_BYTES: usize = 64;
/// Size of the keys made by [`SigningSecret::generate`].
const GENERATED_KEY_BYTES: usize = 24;

/// Errors from parsing a secret or verifying a webhook.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// The secret text does not start with `whsec_`.
    #[error(
        "The webhook signing secret must start with \"whsec_\" followed by base64; \
         check the configured secret."
    )]
    SecretPrefix,
    /// The part after `whsec_` is not valid standard base64.
    #[error(
        "The webhook signing secret is not valid base64 after the \"whsec_\" prefix; \
         check the configured secret."
    )]
    SecretBase64,
    /// The decoded key is shorter or longer than the specification allows.
    #[error(
        "The webhook signing secret decodes to {len} bytes, but it must be between 24 and 64 bytes; \
         generate a new secret."
    )]
    SecretLength {
        /// Length of the decoded key in bytes.
        len: usize,
    },
    /// The `webhook-timestamp` header is not an integer number of seconds.
    #[error("The webhook-timestamp header {value:?} is not a Unix timestamp in whole seconds.")]
    BadTimestamp {
        /// The header value as received.
        value: String,
    },
    /// The timestamp is further in the past than the tolerance allows (possibly a replay).
    #[error(
        "The webhook timestamp {timestamp} is more than {tolerance_secs} s older than the receiver's clock \
         ({now}); the message may be a replay, or the sender's clock is behind."
    )]
    TooOld {
        /// The timestamp from the header.
        timestamp: i64,
        /// The receiver's clock, Unix seconds.
        now: i64,
        /// The allowed difference in seconds.
        tolerance_secs: i64,
    },
    /// The timestamp is further in the future than the tolerance allows.
    #[error(
        "The webhook timestamp {timestamp} is more than {tolerance_secs} s ahead of the receiver's clock \
         ({now}); the sender's clock is probably ahead."
    )]
    TooNew {
        /// The timestamp from the header.
        timestamp: i64,
        /// The receiver's clock, Unix seconds.
        now: i64,
        /// The allowed difference in seconds.
        tolerance_secs: i64,
    },
    /// None of the `v1` signatures in the header matches the message.
    #[error(
        "No v1 signature in the webhook-signature header matches message {id:?}; the body, id or timestamp \
         was changed, or the sender uses a different secret."
    )]
    NoMatchingSignature {
        /// The message id from the `webhook-id` header.
        id: String,
    },
}

/// An HMAC key for signing and verifying webhooks.
///
/// The key is stored zero-padded to SHA-256's 64-byte block. HMAC pads shorter keys with zeros in
/// exactly this way (RFC 2104, section 2), so the signatures are the same as with the unpadded key; the
/// fixed size lets us key the MAC without a fallible call.
#[derive(Clone)]
pub struct SigningSecret {
    key_block: [u8; MAX_KEY_BYTES],
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

impl SigningSecret {
    /// Parses the text form `whsec_<standard base64>`.
    ///
    /// The `whsec_` prefix is required: raw base64 is rejected so that a value pasted into the wrong
    /// setting is caught early. The decoded key must be 24 to 64 bytes long, as the specification asks.
    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(WebhookError::SecretPrefix)?;
        let key = BASE64.decode(encoded).map_err(|_| WebhookError::SecretBase64)?;
        Self::from_key(&key)
    }

    /// Makes a new random 24-byte secret and returns it with its `whsec_` text form.
    pub fn generate() -> (Self, String) {
        let mut key = [0u8; GENERATED_KEY_BYTES];
        rand::fill(&mut key[..]);
        let text = format!("{SECRET_PREFIX}{}", BASE64.encode(key));
        let mut key_block = [0u8; MAX_KEY_BYTES];
        key_block[..GENERATED_KEY_BYTES].copy_from_slice(&key);
        (Self { key_block }, text)
    }

    fn from_key(key: &[u8]) -> Result<Self, WebhookError> {
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(WebhookError::SecretLength { len: key.len() });
        }
        let mut key_block = [0u8; MAX_KEY_BYTES];
        key_block[..key.len()].copy_from_slice(key);
        Ok(Self { key_block })
    }

    /// Computes the raw HMAC-SHA256 of `"{id}.{timestamp}.{body}"`.
    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new(&self.key_block.into());
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Signs a message and returns one signature entry, `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", BASE64.encode(self.mac(id, timestamp, body)))
    }

    /// Returns the three headers to send with a webhook: id, timestamp and signature.
    ///
    /// Use the same `id` for every retry of a message and the attempt's own `timestamp`.
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
        headers(id, timestamp, self.sign(id, timestamp, body))
    }

    /// Verifies a received request now, with the default tolerance: `header(name)` looks up a request
    /// header (the three Standard Webhooks ones; a missing header fails verification).
    pub fn verify_request<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        body: &[u8],
    ) -> Result<(), WebhookError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let id = header(WEBHOOK_ID).unwrap_or_default();
        self.verify(
            id,
            header(WEBHOOK_TIMESTAMP).unwrap_or_default(),
            header(WEBHOOK_SIGNATURE).unwrap_or_default(),
            body,
            now,
            DEFAULT_TOLERANCE_SECS,
        )
    }

    /// Verifies a received webhook.
    ///
    /// Checks that `timestamp_header` is within `tolerance_secs` of `now_unix` (both edges included) and
    /// that at least one `v1` entry of `signature_header` matches. Entries of other versions and entries
    /// that are not valid base64 are skipped. Use [`DEFAULT_TOLERANCE_SECS`] unless you have a reason not
    /// to.
    pub fn verify(
        &self,
        id: &str,
        timestamp_header: &str,
        signature_header: &str,
        body: &[u8],
        now_unix: i64,
        tolerance_secs: i64,
    ) -> Result<(), WebhookError> {
        let timestamp: i64 = timestamp_header
            .trim()
            .parse()
            .map_err(|_| WebhookError::BadTimestamp {
                value: timestamp_header.to_owned(),
            })?;
        if now_unix.saturating_sub(timestamp) > tolerance_secs {
            return Err(WebhookError::TooOld {
                timestamp,
                now: now_unix,
                tolerance_secs,
            });
        }
        if timestamp.saturating_sub(now_unix) > tolerance_secs {
            return Err(WebhookError::TooNew {
                timestamp,
                now: now_unix,
                tolerance_secs,
            });
        }

        let expected = self.mac(id, timestamp, body);
        // Check every entry without stopping early, so timing does not reveal which one matched.
        let mut matched = subtle::Choice::from(0);
        for entry in signature_header.split_ascii_whitespace() {
            let Some(encoded) = entry.strip_prefix("v1,") else {
                continue;
            };
            let Ok(candidate) = BASE64.decode(encoded) else {
                continue;
            };
            matched |= expected.as_slice().ct_eq(&candidate);
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(WebhookError::NoMatchingSignature { id: id.to_owned() })
        }
    }
}

/// The three Standard Webhooks headers of a message with its `webhook-signature` value.
fn headers(id: &str, timestamp: i64, signature: String) -> [(&'static str, String); 3] {
    [
        (WEBHOOK_ID, id.to_owned()),
        (WEBHOOK_TIMESTAMP, timestamp.to_string()),
        (WEBHOOK_SIGNATURE, signature),
    ]
}

/// The secrets of a rotation window: the current one first, then those being retired. A sender signs
/// each message with every one of them (one `v1` entry each, in this order), so that a receiver that still
/// holds an old secret, or already holds the new one, verifies it; a receiver given several accepts a
/// message that any of them signed.
#[derive(Clone)]
pub struct SigningSecrets(Vec<SigningSecret>);

impl fmt::Debug for SigningSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningSecrets({} secrets)", self.0.len())
    }
}

impl From<SigningSecret> for SigningSecrets {
    fn from(secret: SigningSecret) -> Self {
        Self(vec![secret])
    }
}

impl SigningSecrets {
    /// Parses one `whsec_` secret, or several separated by whitespace (the current one first).
    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        let secrets = text
            .split_ascii_whitespace()
            .map(SigningSecret::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if secrets.is_empty() {
            return Err(WebhookError::SecretPrefix);
        }
        Ok(Self(secrets))
    }

    /// How many secrets sign.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: there is always a current secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `webhook-signature` value: one `v1,<base64>` entry per secret, separated by spaces.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let entries: Vec<String> = self.0.iter().map(|s| s.sign(id, timestamp, body)).collect();
        entries.join(" ")
    }

    /// The three headers to send, as [`SigningSecret::headers`], signed with every secret.
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
        headers(id, timestamp, self.sign(id, timestamp, body))
    }

    /// Verifies a received request now, as [`SigningSecret::verify_request`], with any of the secrets.
    pub fn verify_request<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str> + Copy,
        body: &[u8],
    ) -> Result<(), WebhookError> {
        let mut last = Err(WebhookError::SecretPrefix);
        for secret in &self.0 {
            last = secret.verify_request(header, body);
            if !matches!(last, Err(WebhookError::NoMatchingSignature { .. })) {
                return last;
            }
        }
        last
    }
}

/// The `webhook-id` of a batch: `batch_` and the first 128 bits of the SHA-256 of its event ids, one per
/// line, so that the same events (a redelivery) give the same id.
pub fn batch_id<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut hash = Sha256::new();
    for id in ids {
        hash.update(id.as_bytes());
        hash.update(b"\n");
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("batch_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn during_a_rotation_every_secret_signs_and_either_verifies() {
        let (old, old_text) = SigningSecret::generate();
        let (new, new_text) = SigningSecret::generate();
        let both = SigningSecrets::parse(&format!("{new_text} {old_text}")).unwrap();
        assert_eq!(both.len(), 2);
        let now = 1_700_000_000;
        let signature = both.sign("msg_1", now, b"{}");
        let entries: Vec<&str> = signature.split(' ').collect();
        assert_eq!(
            entries,
            [new.sign("msg_1", now, b"{}"), old.sign("msg_1", now, b"{}")]
        );
        // A receiver with only the old secret, or only the new one, verifies the message.
        for receiver in [&old, &new] {
            assert_eq!(
                receiver.verify("msg_1", &now.to_string(), &signature, b"{}", now, 300),
                Ok(())
            );
        }
        // A receiver holding both accepts a message signed with only one of them.
        let headers = |name: &str| -> Option<&'static str> {
            match name {
                WEBHOOK_ID => Some("msg_1"),
                _ => None,
            }
        };
        assert!(
            both.verify_request(headers, b"{}").is_err(),
            "no timestamp, no signature"
        );
        assert!(SigningSecrets::parse("").is_err());
        assert!(SigningSecrets::parse(&format!("{new_text} nonsense")).is_err());
        assert_eq!(format!("{both:?}"), "SigningSecrets(2 secrets)");
    }

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1649367553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const EXPECTED: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn secret() -> SigningSecret {
        SigningSecret::parse(SECRET).unwrap()
    }

    fn verify(
        secret: &SigningSecret,
        id: &str,
        ts: &str,
        sig: &str,
        body: &[u8],
    ) -> Result<(), WebhookError> {
        secret.verify(id, ts, sig, body, TS, DEFAULT_TOLERANCE_SECS)
    }

    #[test]
    fn spec_test_vector() {
        assert_eq!(secret().sign(ID, TS, BODY), EXPECTED);
        assert_eq!(verify(&secret(), ID, "1649367553", EXPECTED, BODY), Ok(()));
    }

    #[test]
    fn headers_round_trip() {
        let (secret, text) = SigningSecret::generate();
        assert!(text.starts_with("whsec_"));
        let [(id_name, id), (ts_name, ts), (sig_name, sig)] = secret.headers(ID, TS, BODY);
        assert_eq!(
            (id_name, ts_name, sig_name),
            (WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE)
        );
        assert_eq!(verify(&secret, &id, &ts, &sig, BODY), Ok(()));
        // The text form parses back to the same key.
        let reparsed = SigningSecret::parse(&text).unwrap();
        assert_eq!(verify(&reparsed, &id, &ts, &sig, BODY), Ok(()));
    }

    #[test]
    fn tampering_fails() {
        let s = secret();
        let no_match = Err(WebhookError::NoMatchingSignature { id: ID.to_owned() });
        assert_eq!(
            verify(&s, ID, "1649367553", EXPECTED, br#"{"email":"evil@example.com"}"#),
            no_match
        );
        assert_eq!(verify(&s, ID, "1649367554", EXPECTED, BODY), no_match);
        assert!(matches!(
            verify(&s, "msg_other", "1649367553", EXPECTED, BODY),
            Err(WebhookError::NoMatchingSignature { .. })
        ));
        let (other, _) = SigningSecret::generate();
        assert_eq!(verify(&other, ID, "1649367553", EXPECTED, BODY), no_match);
    }

    #[test]
    fn any_listed_signature_may_match() {
        let s = secret();
        let (old, _) = SigningSecret::generate();
        let header = format!(
            "v1,bm90IGl0 v1a,ignored {} not-base64 {EXPECTED}",
            old.sign(ID, TS, BODY)
        );
        assert_eq!(verify(&s, ID, "1649367553", &header, BODY), Ok(()));
        // Only non-v1 or broken entries: no match.
        let without_v1 = EXPECTED.replacen("v1,", "v2,", 1);
        assert!(verify(&s, ID, "1649367553", &without_v1, BODY).is_err());
        assert!(verify(&s, ID, "1649367553", "", BODY).is_err());
    }

    #[test]
    fn tolerance_edges() {
        let s = secret();
        let sig_at = |ts: i64| s.sign(ID, ts, BODY);
        let check = |ts: i64| s.verify(ID, &ts.to_string(), &sig_at(ts), BODY, TS, 300);
        assert_eq!(check(TS - 300), Ok(()));
        assert_eq!(check(TS + 300), Ok(()));
        assert_eq!(
            check(TS - 301),
            Err(WebhookError::TooOld {
                timestamp: TS - 301,
                now: TS,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            check(TS + 301),
            Err(WebhookError::TooNew {
                timestamp: TS + 301,
                now: TS,
                tolerance_secs: 300
            })
        );
        // Extreme values do not overflow.
        assert!(matches!(check(i64::MIN), Err(WebhookError::TooOld { .. })));
        assert!(matches!(check(i64::MAX), Err(WebhookError::TooNew { .. })));
    }

    #[test]
    fn bad_timestamp() {
        for value in ["", "abc", "1649367553.5", "0x10"] {
            assert_eq!(
                verify(&secret(), ID, value, EXPECTED, BODY),
                Err(WebhookError::BadTimestamp {
                    value: value.to_owned()
                })
            );
        }
    }

    #[test]
    fn secret_parsing() {
        assert_eq!(
            SigningSecret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap_err(),
            WebhookError::SecretPrefix
        );
        assert_eq!(
            SigningSecret::parse("whsec_!!!").unwrap_err(),
            WebhookError::SecretBase64
        );
        assert_eq!(
            SigningSecret::parse("whsec_c2hvcnQ=").unwrap_err(),
            WebhookError::SecretLength { len: 5 }
        );
        let long = format!("whsec_{}", BASE64.encode([7u8; 65]));
        assert_eq!(
            SigningSecret::parse(&long).unwrap_err(),
            WebhookError::SecretLength { len: 65 }
        );
        let max = format!("whsec_{}", BASE64.encode([7u8; 64]));
        assert!(SigningSecret::parse(&max).is_ok());
    }

    #[test]
    fn debug_does_not_leak() {
        let (secret, text) = SigningSecret::generate();
        let shown = format!("{secret:?} {:?}", secret);
        assert_eq!(shown, "SigningSecret(..) SigningSecret(..)");
        assert!(!shown.contains(&text[6..]));
    }

    #[test]
    fn a_batch_id_depends_on_its_events_only() {
        let id = batch_id(["e-1", "e-2"]);
        assert!(id.starts_with("batch_") && id.len() == 6 + 32, "{id}");
        assert_eq!(id, batch_id(["e-1", "e-2"]));
        assert_ne!(id, batch_id(["e-1", "e-3"]));
        assert_ne!(batch_id(["e-1e-2"]), batch_id(["e-1", "e-2"]));
    }
}
