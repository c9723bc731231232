//! Team, plugin and installation identifiers, validated once at the boundary.
//!
//! They appear in topic names, record keys, headers and metric labels, so the contract keeps them to a
//! small ASCII alphabet: a team id is 1-128 chars of `[A-Za-z0-9._-]`; a plugin id is 1-64 chars of
//! `[a-z0-9-]` starting with a letter (it becomes part of `plugin.<id>.events`, and Kafka topic names allow
//! 249); an installation id follows the plugin id's rule.

use thiserror::Error;

/// Longest team id the contract accepts.
pub const TEAM_ID_MAX_LEN: usize = 128;
/// Longest plugin id the contract accepts.
pub const PLUGIN_ID_MAX_LEN: usize = 64;
/// Longest installation id the contract accepts.
pub const INSTALLATION_ID_MAX_LEN: usize = 64;
/// The installation a v1 key `<team>/<plugin>` names, and the one a record without `installation` means.
pub const DEFAULT_INSTALLATION: &str = "default";

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    /// The identifier is empty.
    #[error("the {kind} id is empty")]
    Empty {
        /// `team`, `plugin` or `installation`.
        kind: &'static str,
    },
    /// The identifier is longer than allowed.
    #[error("the {kind} id is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// `team`, `plugin` or `installation`.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The identifier has a character outside its alphabet.
    #[error("the {kind} id has a character outside {alphabet} at byte {position}")]
    BadCharacter {
        /// `team`, `plugin` or `installation`.
        kind: &'static str,
        /// The allowed alphabet, as a pattern.
        alphabet: &'static str,
        /// Byte offset of the first bad character.
        position: usize,
    },
    /// A plugin or installation id must start with a letter.
    #[error("the {kind} id must start with a lowercase letter")]
    LowercaseStart {
        /// `plugin` or `installation`.
        kind: &'static str,
    },
}

/// Checks a team id: 1-128 chars of `[A-Za-z0-9._-]`.
pub fn check_team_id(id: &[u8]) -> Result<(), IdError> {
    const KIND: &str = "team";
    if id.is_empty() {
        return Err(IdError::Empty { kind: KIND });
    }
    if id.len() > TEAM_ID_MAX_LEN {
        return Err(IdError::TooLong {
            kind: KIND,
            len: id.len(),
            max: TEAM_ID_MAX_LEN,
        });
    }
    match id
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'))
    {
        Some(position) => Err(IdError::BadCharacter {
            kind: KIND,
            alphabet: "[A-Za-z0-9._-]",
            position,
        }),
        None => Ok(()),
    }
}

/// Checks a plugin id: 1-64 chars of `[a-z0-9-]`, starting with a letter.
pub fn check_plugin_id(id: &str) -> Result<(), IdError> {
    check_lowercase_id("plugin", id, PLUGIN_ID_MAX_LEN)
}

/// Checks an installation id: the plugin id's rule, 1-64 chars of `[a-z0-9-]` starting with a letter.
pub fn check_installation_id(id: &str) -> Result<(), IdError> {
    check_lowercase_id("installation", id, INSTALLATION_ID_MAX_LEN)
}

fn check_lowercase_id(kind: &'static str, id: &str, max: usize) -> Result<(), IdError> {
    let bytes = id.as_bytes();
    if bytes.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if bytes.len() > max {
        return Err(IdError::TooLong {
            kind,
            len: bytes.len(),
            max,
        });
    }
    if !bytes[0].is_ascii_lowercase() {
        return Err(IdError::LowercaseStart { kind });
    }
    match bytes
        .iter()
        .position(|&b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        Some(position) => Err(IdError::BadCharacter {
            kind,
            alphabet: "[a-z0-9-]",
            position,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_ids() {
        assert!(check_team_id(b"acme").is_ok());
        assert!(check_team_id(b"Acme.Field_Ops-2").is_ok());
        assert!(check_team_id(&[b'a'; 128]).is_ok());
        assert_eq!(check_team_id(b""), Err(IdError::Empty { kind: "team" }));
        assert_eq!(
            check_team_id(&[b'a'; 129]),
            Err(IdError::TooLong {
                kind: "team",
                len: 129,
                max: 128
            })
        );
        assert!(matches!(
            check_team_id(b"acme/x"),
            Err(IdError::BadCharacter { position: 4, .. })
        ));
        assert!(matches!(
            check_team_id("équipe".as_bytes()),
            Err(IdError::BadCharacter { position: 0, .. })
        ));
        assert!(check_team_id(b"a b").is_err());
    }

    #[test]
    fn plugin_ids() {
        assert!(check_plugin_id("sheets-export").is_ok());
        assert!(check_plugin_id("a1").is_ok());
        let start = Err(IdError::LowercaseStart { kind: "plugin" });
        assert_eq!(check_plugin_id("1abc"), start);
        assert_eq!(check_plugin_id("-abc"), start);
        assert!(check_plugin_id("Sheets").is_err());
        assert!(check_plugin_id("sheets_export").is_err());
        assert!(check_plugin_id("sheets.export").is_err());
        assert!(check_plugin_id(&"a".repeat(64)).is_ok());
        assert!(check_plugin_id(&"a".repeat(65)).is_err());
        assert!(check_plugin_id("").is_err());
    }

    #[test]
    fn installation_ids_follow_the_plugin_id_rule() {
        for good in ["default", "form-a", "b2", &"a".repeat(64)] {
            assert!(check_installation_id(good).is_ok(), "{good}");
        }
        for bad in ["", "Form-a", "form_a", "form/a", "1st", &"a".repeat(65)] {
            assert!(check_installation_id(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_installation_id("-a"),
            Err(IdError::LowercaseStart { kind: "installation" })
        );
        assert_eq!(
            check_installation_id("").unwrap_err().to_string(),
            "the installation id is empty"
        );
    }
}
