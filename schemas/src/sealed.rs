//! Sealed secret fields of team configs (`switchyard.configs`, `docs/contract.md` section 7.4.1).
//!
//! ```text
//!   master key M (registry.secrets.master_keys, id "2026-12")
//!     └─ HKDF-SHA256(salt "switchyard config secrets v1", ikm M, info plugin id) = the plugin's key K
//!          └─ XChaCha20-Poly1305(K, random 24-byte nonce, value as JSON,
//!               associated data = "switchyard config secret v1" \0 team \0 plugin \0 installation \0
//!                                 JSON pointer \0 key id) = ciphertext and tag
//! ```
//!
//! The registry holds the master keys and seals every secret field of a config before it writes the
//! record: the field leaves `config` and its sealed form goes into the record's `sealed` map, under the
//! field's JSON pointer. A plugin's workers get only their own plugin's keys (from the registration answer,
//! or provisioned by the operator), so a worker can open its own plugin's fields and no other plugin's. The
//! associated data binds a ciphertext to its team, plugin, installation and field: copied into another
//! record, or to another field, it no longer opens. Keys are zeroized when dropped.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use zeroize::Zeroizing;

/// The algorithm, as the contract names it.
pub const ALGORITHM: &str = "XChaCha20-Poly1305";
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
const DERIVATION_SALT: &[u8] = b"switchyard config secrets v1";
const AAD_PREFIX: &[u8] = b"switchyard config secret v1";

/// A key's text form is bad, or a sealed field does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A key is not `<id>:<base64 of 32 bytes>`.
    #[error(
        "a key must be written <id>:<base64 of 32 bytes> with an id of 1-64 letters, digits, '.', '_' or '-'; {0}"
    )]
    KeyText(String),
    /// The field was sealed with a key this reader does not have.
    #[error(
        "the secret field {pointer} of {config} was sealed with key {key_id:?}, which this \
         reader does not have (it has {have}); a plugin's worker holds its own plugin's keys only, from its \
         registration or configs.keys"
    )]
    UnknownKey {
        /// The field's JSON pointer.
        pointer: String,
        /// The config: `<team>/<plugin>/<installation>`.
        config: String,
        /// The key it was sealed with.
        key_id: String,
        /// The ids of the keys this reader has.
        have: String,
    },
    /// The ciphertext does not open with the key of its id.
    #[error(
        "the secret field {pointer} of {config} does not open with key {key_id:?}: it was \
         sealed for another plugin, team, installation or field, or altered"
    )]
    Forged {
        /// The field's JSON pointer.
        pointer: String,
        /// The config: `<team>/<plugin>/<installation>`.
        config: String,
        /// The key id it names.
        key_id: String,
    },
    /// A sealed field is not readable (bad base64, a nonce of the wrong length, not JSON inside).
    #[error("the secret field {pointer} is not a readable sealed value: {reason}")]
    Unreadable {
        /// The field's JSON pointer.
        pointer: String,
        /// What is wrong.
        reason: String,
    },
}

fn check_key_id(id: &str) -> Result<(), SealError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(SealError::KeyText(format!("{id:?} is not such an id")))
    }
}

/// Parses `<id>:<base64>` into the id and 32 key bytes.
fn parse_key_text(text: &str) -> Result<(String, Zeroizing<[u8; KEY_BYTES]>), SealError> {
    let (id, encoded) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| SealError::KeyText("no ':' after the id".to_owned()))?;
    check_key_id(id)?;
    let bytes = Zeroizing::new(
        BASE64
            .decode(encoded.trim())
            .map_err(|_| SealError::KeyText(format!("the key of {id:?} is not base64")))?,
    );
    if bytes.len() != KEY_BYTES {
        return Err(SealError::KeyText(format!(
            "the key of {id:?} is {} bytes, not {KEY_BYTES}",
            bytes.len()
        )));
    }
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    key.copy_from_slice(&bytes);
    Ok((id.to_owned(), key))
}

/// A master key of the registry, with its id.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; KEY_BYTES]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({:?}, ..)", self.id)
    }
}

impl MasterKey {
    /// Parses `<id>:<base64 of 32 bytes>` (`openssl rand -base64 32` makes the key).
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let (id, key) = parse_key_text(text)?;
        Ok(Self { id, key })
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The plugin's key under this master key.
    pub fn plugin_key(&self, plugin: &str) -> PluginKey {
        let derivation = Hkdf::<Sha256>::new(Some(DERIVATION_SALT), self.key.as_slice());
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        derivation
            .expand(plugin.as_bytes(), key.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        PluginKey {
            id: self.id.clone(),
            key,
        }
    }
}

/// One plugin's key under one master key: what its workers open its fields with.
#[derive(Clone)]
pub struct PluginKey {
    id: String,
    key: Zeroizing<[u8; KEY_BYTES]>,
}

impl fmt::Debug for PluginKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PluginKey({:?}, ..)", self.id)
    }
}

impl PluginKey {
    /// Parses `<id>:<base64 of 32 bytes>`, the form [`PluginKey::to_text`] writes.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let (id, key) = parse_key_text(text)?;
        Ok(Self { id, key })
    }

    /// The text form, `<id>:<base64>`: a secret, for the registration answer or a worker's settings.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}:{}", self.id, BASE64.encode(self.key.as_slice())))
    }

    /// The master key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_slice().into())
    }
}

/// Where a config belongs: what the associated data binds a sealed field to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// Team id.
    pub team: &'a str,
    /// Plugin id.
    pub plugin: &'a str,
    /// Installation id (`default` for the default installation).
    pub installation: &'a str,
}

impl fmt::Display for Binding<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.team, self.plugin, self.installation)
    }
}

impl Binding<'_> {
    fn associated_data(&self, pointer: &str, key_id: &str) -> Vec<u8> {
        let mut aad = AAD_PREFIX.to_vec();
        for part in [self.team, self.plugin, self.installation, pointer, key_id] {
            aad.push(0);
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// A sealed field in a record's `sealed` map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The algorithm, [`ALGORITHM`].
    pub alg: String,
    /// The id of the master key whose plugin key sealed it.
    pub key_id: String,
    /// The nonce, standard base64 of 24 bytes.
    pub nonce: String,
    /// The ciphertext and its 16-byte tag, standard base64.
    pub ciphertext: String,
}

/// Seals `value` (any JSON value) as the field at `pointer` of the config `binding` names.
pub fn seal(key: &PluginKey, binding: Binding<'_>, pointer: &str, value: &Value) -> Sealed {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::fill(&mut nonce[..]);
    let plaintext = Zeroizing::new(serde_json::to_vec(value).expect("a JSON value serializes"));
    let aad = binding.associated_data(pointer, &key.id);
    let ciphertext = key
        .cipher()
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        .expect("XChaCha20-Poly1305 seals any length the process can hold");
    Sealed {
        alg: ALGORITHM.to_owned(),
        key_id: key.id.clone(),
        nonce: BASE64.encode(nonce),
        ciphertext: BASE64.encode(ciphertext),
    }
}

/// Opens the field at `pointer`, sealed with one of `keys`.
pub fn open(
    keys: &[PluginKey],
    binding: Binding<'_>,
    pointer: &str,
    sealed: &Sealed,
) -> Result<Value, SealError> {
    let unreadable = |reason: &str| SealError::Unreadable {
        pointer: pointer.to_owned(),
        reason: reason.to_owned(),
    };
    if sealed.alg != ALGORITHM {
        return Err(unreadable(&format!(
            "algorithm {:?} is not {ALGORITHM}",
            sealed.alg
        )));
    }
    let key = keys
        .iter()
        .find(|k| k.id == sealed.key_id)
        .ok_or_else(|| SealError::UnknownKey {
            pointer: pointer.to_owned(),
            config: binding.to_string(),
            key_id: sealed.key_id.clone(),
            have: if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.iter()
                    .map(|k| format!("{:?}", k.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })?;
    let nonce = BASE64
        .decode(&sealed.nonce)
        .map_err(|_| unreadable("the nonce is not base64"))?;
    let nonce: [u8; NONCE_BYTES] = nonce
        .try_into()
        .map_err(|_| unreadable("the nonce is not 24 bytes"))?;
    let ciphertext = BASE64
        .decode(&sealed.ciphertext)
        .map_err(|_| unreadable("the ciphertext is not base64"))?;
    let aad = binding.associated_data(pointer, &key.id);
    let plaintext = Zeroizing::new(
        key.cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Forged {
                pointer: pointer.to_owned(),
                config: binding.to_string(),
                key_id: sealed.key_id.clone(),
            })?,
    );
    serde_json::from_slice(&plaintext).map_err(|_| unreadable("the opened value is not JSON"))
}

/// Moves the value at each of `pointers` (those present) out of `config` into a sealed map.
pub fn seal_fields(
    key: &PluginKey,
    binding: Binding<'_>,
    config: &mut Value,
    pointers: &[String],
) -> BTreeMap<String, Sealed> {
    let mut sealed = BTreeMap::new();
    for pointer in pointers {
        if let Some(value) = take(config, pointer) {
            sealed.insert(pointer.clone(), seal(key, binding, pointer, &value));
        }
    }
    sealed
}

/// `config` with every sealed field opened and put back at its pointer.
pub fn open_fields(
    keys: &[PluginKey],
    binding: Binding<'_>,
    config: &Value,
    sealed: &BTreeMap<String, Sealed>,
) -> Result<Value, SealError> {
    let mut opened = config.clone();
    for (pointer, field) in sealed {
        let value = open(keys, binding, pointer, field)?;
        put(&mut opened, pointer, value).map_err(|reason| SealError::Unreadable {
            pointer: pointer.clone(),
            reason,
        })?;
    }
    Ok(opened)
}

/// The unescaped tokens of a JSON pointer (RFC 6901); the root `""` has none.
fn tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Removes and returns the value at `pointer`, an object member (a secret field is always one).
fn take(config: &mut Value, pointer: &str) -> Option<Value> {
    let mut tokens = tokens(pointer);
    let last = tokens.pop()?;
    let mut parent = config;
    for token in &tokens {
        parent = parent.as_object_mut()?.get_mut(token)?;
    }
    parent.as_object_mut()?.remove(&last)
}

/// Sets the member at `pointer`, creating the objects on the way.
fn put(config: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    let mut tokens = tokens(pointer);
    let last = tokens.pop().ok_or("the root cannot be a secret field")?;
    let mut parent = config;
    for token in &tokens {
        let object = parent
            .as_object_mut()
            .ok_or("a parent of the field is not an object")?;
        parent = object
            .entry(token.clone())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    let object = parent
        .as_object_mut()
        .ok_or("the field's parent is not an object")?;
    object.insert(last, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MASTER: &str = "2026-12:c3dpdGNoeWFyZC10ZXN0LW1hc3Rlci1rZXktMzJieXQ=";

    fn master() -> MasterKey {
        MasterKey::parse(MASTER).unwrap()
    }

    fn acme() -> Binding<'static> {
        Binding {
            team: "acme",
            plugin: "sms-notify",
            installation: "default",
        }
    }

    #[test]
    fn fields_seal_into_the_map_and_open_back_in_place() {
        let key = master().plugin_key("sms-notify");
        let mut config = json!({"from": "SURVEYS", "auth_token": "tok-123", "nested": {"api_key": 42}});
        let pointers = [
            "/auth_token".to_owned(),
            "/nested/api_key".to_owned(),
            "/absent".to_owned(),
        ];
        let sealed = seal_fields(&key, acme(), &mut config, &pointers);
        assert_eq!(
            config,
            json!({"from": "SURVEYS", "nested": {}}),
            "no clear secret is left"
        );
        assert_eq!(
            sealed.keys().collect::<Vec<_>>(),
            ["/auth_token", "/nested/api_key"]
        );
        let text = serde_json::to_string(&sealed).unwrap();
        assert!(!text.contains("tok-123"));
        assert_eq!(sealed["/auth_token"].key_id, "2026-12");
        let opened = open_fields(&[key], acme(), &config, &sealed).unwrap();
        assert_eq!(
            opened,
            json!({"from": "SURVEYS", "auth_token": "tok-123", "nested": {"api_key": 42}})
        );
    }

    #[test]
    fn another_plugins_key_another_team_or_another_field_does_not_open() {
        let master = master();
        let sealed = seal(
            &master.plugin_key("sms-notify"),
            acme(),
            "/auth_token",
            &json!("tok"),
        );
        // Plugin B's key has the same id but another value: refused, and the error says why.
        let other = master.plugin_key("sheets-export");
        let error = open(&[other], acme(), "/auth_token", &sealed).unwrap_err();
        assert!(matches!(error, SealError::Forged { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains("sealed for another plugin, team, installation or field")
        );
        // Moved to another team's record, or another field: refused.
        let own = master.plugin_key("sms-notify");
        let globex = Binding {
            team: "globex",
            ..acme()
        };
        assert!(matches!(
            open(std::slice::from_ref(&own), globex, "/auth_token", &sealed),
            Err(SealError::Forged { .. })
        ));
        assert!(matches!(
            open(std::slice::from_ref(&own), acme(), "/from", &sealed),
            Err(SealError::Forged { .. })
        ));
        let other_installation = Binding {
            installation: "forms-bc",
            ..acme()
        };
        assert!(
            open(
                std::slice::from_ref(&own),
                other_installation,
                "/auth_token",
                &sealed
            )
            .is_err()
        );
        // Without the key's id at all: the error names the key and what the reader has.
        let error = open(&[], acme(), "/auth_token", &sealed).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("\"2026-12\", which this reader does not have (it has none)"),
            "{error}"
        );
        assert_eq!(
            open(&[own], acme(), "/auth_token", &sealed).unwrap(),
            json!("tok")
        );
    }

    #[test]
    fn a_rotation_opens_with_either_key_and_keys_round_trip_their_text() {
        let old = master();
        let new = MasterKey::parse("2027-01:bmV3LW1hc3Rlci1rZXktb2YtdGhpcnR5LXR3by1ieXQ=").unwrap();
        let sealed_old = seal(&old.plugin_key("p"), acme(), "/t", &json!("x"));
        let sealed_new = seal(&new.plugin_key("p"), acme(), "/t", &json!("x"));
        let both = [new.plugin_key("p"), old.plugin_key("p")];
        assert_eq!(open(&both, acme(), "/t", &sealed_old).unwrap(), json!("x"));
        assert_eq!(open(&both, acme(), "/t", &sealed_new).unwrap(), json!("x"));
        let text = both[0].to_text();
        let back = PluginKey::parse(&text).unwrap();
        assert_eq!(open(&[back], acme(), "/t", &sealed_new).unwrap(), json!("x"));
        assert_eq!(format!("{:?}", both[0]), "PluginKey(\"2027-01\", ..)");
        // Two seals of the same value differ (random nonces).
        assert_ne!(
            seal(&both[0], acme(), "/t", &json!("x")),
            seal(&both[0], acme(), "/t", &json!("x"))
        );
    }

    #[test]
    fn bad_key_texts_are_refused() {
        for bad in [
            "no-colon",
            ":c2hvcnQ=",
            "id:not base64!",
            "id:c2hvcnQ=",
            "bad id:c3dpdGNoeWFyZC10ZXN0LW1hc3Rlci1rZXktMzJieXQ=",
        ] {
            assert!(MasterKey::parse(bad).is_err(), "{bad}");
        }
    }
}
