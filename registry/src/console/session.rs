//! The console's session cookie and CSRF tokens: pure functions of a key, an identity and the clock.
//!
//! **Session.** Signing in verifies a registry token once; the cookie then carries who signed in and until
//! when, not the token: `<base64url(payload)>.<base64url(mac)>` with payload `v1\n<role>\n<subject>\n<expires>`
//! (subject: the team or plugin id, empty for an admin; expires: seconds since the epoch) and
//! `mac = HMAC-SHA256(key, "session\0" + payload)`. Every replica that shares the key accepts it, so no
//! session is stored anywhere; the price is that signing out clears the browser's cookie but cannot
//! revoke a copy of it before it expires (at most `console.session_ttl_ms`, and never after the token
//! it was made from).
//!
//! **CSRF.** Every form of a signed-in page carries `HMAC-SHA256(key, "csrf\0" + binding)`, the binding being
//! the session cookie's value (or, behind an authenticating proxy, the identity it names); a cross-site page
//! can neither read it nor compute it. The sign-in form is bound to a random nonce in a cookie of its own
//! (`sign-in\0` + nonce), so that another site cannot sign a browser in as somebody else.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchyard_schemas::ids::{check_plugin_id, check_team_id};

use crate::auth::Principal;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";

/// The key that signs sessions and CSRF tokens.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// A signed-in browser: who, and until when (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Who signed in.
    pub principal: Principal,
    /// When the session ends.
    pub expires: u64,
}

/// Why a cookie is not a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// It is not one this key signed (forged, changed, another key's, or not a session at all).
    Invalid,
    /// It was, until it expired.
    Expired,
}

impl SessionKey {
    /// A key of 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn mac(&self, context: &[u8], message: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(context);
        mac.update(message);
        mac
    }

    /// The cookie value of `session`.
    pub fn seal(&self, session: &Session) -> String {
        let (role, subject) = match &session.principal {
            Principal::Admin => ("admin", ""),
            Principal::Team(team) => ("team", team.as_str()),
            Principal::Plugin(plugin) => ("plugin", plugin.as_str()),
        };
        let payload = format!("{VERSION}\n{role}\n{subject}\n{}", session.expires);
        let mac = self.mac(b"session\0", payload.as_bytes()).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// The session a cookie value carries, if this key signed it and it has not expired at `now`.
    pub fn open(&self, cookie: &str, now: u64) -> Result<Session, SessionError> {
        let (payload, mac) = cookie.split_once('.').ok_or(SessionError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| SessionError::Invalid)?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| SessionError::Invalid)?;
        self.mac(b"session\0", &payload)
            .verify_slice(&mac)
            .map_err(|_| SessionError::Invalid)?;
        let payload = String::from_utf8(payload).map_err(|_| SessionError::Invalid)?;
        let fields: Vec<&str> = payload.split('\n').collect();
        let [VERSION, role, subject, expires] = fields.as_slice() else {
            return Err(SessionError::Invalid);
        };
        let principal = match *role {
            "admin" if subject.is_empty() => Principal::Admin,
            "team" if check_team_id(subject.as_bytes()).is_ok() => Principal::Team((*subject).to_owned()),
            "plugin" if check_plugin_id(subject).is_ok() => Principal::Plugin((*subject).to_owned()),
            _ => return Err(SessionError::Invalid),
        };
        let expires: u64 = expires.parse().map_err(|_| SessionError::Invalid)?;
        if expires <= now {
            return Err(SessionError::Expired);
        }
        Ok(Session { principal, expires })
    }

    /// The CSRF token of a binding: a session cookie's value, or a proxy identity ([`proxy_binding`]).
    pub fn csrf_token(&self, binding: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(b"csrf\0", binding.as_bytes()).finalize().into_bytes())
    }

    /// Whether `token` is the CSRF token of `binding` (compared in constant time).
    pub fn check_csrf(&self, binding: &str, token: &str) -> bool {
        check(self.mac(b"csrf\0", binding.as_bytes()), token)
    }

    /// The CSRF token of the sign-in form bound to `nonce` (the sign-in cookie's value).
    pub fn sign_in_token(&self, nonce: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(b"sign-in\0", nonce.as_bytes()).finalize().into_bytes())
    }

    /// Whether `token` is the sign-in form's token for `nonce`.
    pub fn check_sign_in(&self, nonce: &str, token: &str) -> bool {
        !nonce.is_empty() && check(self.mac(b"sign-in\0", nonce.as_bytes()), token)
    }
}

fn check(mac: HmacSha256, token: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(token)
        .is_ok_and(|token| mac.verify_slice(&token).is_ok())
}

/// The CSRF binding of a user an authenticating proxy vouches for, acting as `principal`.
pub fn proxy_binding(user: &str, principal: &Principal) -> String {
    let role = match principal {
        Principal::Admin => "admin\n".to_owned(),
        Principal::Team(team) => format!("team\n{team}"),
        Principal::Plugin(plugin) => format!("plugin\n{plugin}"),
    };
    format!("proxy\n{user}\n{role}")
}

/// When a session made now from a token expiring at `token_expires` ends: at the earlier of the two.
pub fn session_expiry(now: u64, ttl_seconds: u64, token_expires: u64) -> u64 {
    now.saturating_add(ttl_seconds).min(token_expires)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, scoped to the console's path, `Secure` when the
/// console is reached over TLS; `max_age` 0 removes the cookie.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

/// The value of cookie `name` in a `Cookie` header, if present.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SessionKey {
        SessionKey::new([byte; 32])
    }

    fn session(principal: Principal) -> Session {
        Session {
            principal,
            expires: 2_000,
        }
    }

    #[test]
    fn a_sealed_session_opens_with_its_key_until_it_expires() {
        for principal in [
            Principal::Admin,
            Principal::Team("acme".into()),
            Principal::Plugin("sheets-export".into()),
        ] {
            let sealed = key(1).seal(&session(principal.clone()));
            assert_eq!(key(1).open(&sealed, 1_999), Ok(session(principal)));
            assert_eq!(key(1).open(&sealed, 2_000), Err(SessionError::Expired));
            assert_eq!(key(2).open(&sealed, 1_000), Err(SessionError::Invalid));
        }
    }

    #[test]
    fn a_changed_or_forged_session_is_invalid() {
        let sealed = key(1).seal(&session(Principal::Team("acme".into())));
        let (payload, mac) = sealed.split_once('.').unwrap();
        // Another team, another expiry, another role: each with the original MAC.
        for forged in [
            "v1\nteam\nglobex\n2000",
            "v1\nteam\nacme\n9999",
            "v1\nadmin\n\n2000",
        ] {
            let cookie = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(forged));
            assert_eq!(
                key(1).open(&cookie, 1_000),
                Err(SessionError::Invalid),
                "{forged:?}"
            );
        }
        // Well signed but not a session this version understands.
        let other = SessionKey::new([1; 32]);
        for payload in [
            "v2\nteam\nacme\n2000",
            "v1\nteam\n\n2000",
            "v1\nadmin\nacme\n2000",
            "v1\nteam\nacme",
        ] {
            let mac = other
                .mac(b"session\0", payload.as_bytes())
                .finalize()
                .into_bytes();
            let cookie = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(payload),
                URL_SAFE_NO_PAD.encode(mac)
            );
            assert_eq!(
                other.open(&cookie, 1_000),
                Err(SessionError::Invalid),
                "{payload:?}"
            );
        }
        for junk in [
            "",
            ".",
            "abc",
            &format!("{payload}."),
            &format!(".{mac}"),
            "%%%.%%%",
        ] {
            assert_eq!(key(1).open(junk, 1_000), Err(SessionError::Invalid), "{junk:?}");
        }
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_session_and_key() {
        let a = key(1).seal(&session(Principal::Team("acme".into())));
        let b = key(1).seal(&session(Principal::Team("globex".into())));
        let token = key(1).csrf_token(&a);
        assert!(key(1).check_csrf(&a, &token));
        assert!(!key(1).check_csrf(&b, &token));
        assert!(!key(2).check_csrf(&a, &token));
        assert!(!key(1).check_csrf(&a, ""));
        assert!(!key(1).check_csrf(&a, "not base64!"));
        // The sign-in form's token is another context: a session's token is not one.
        assert!(key(1).check_sign_in("nonce", &key(1).sign_in_token("nonce")));
        assert!(!key(1).check_sign_in("nonce", &key(1).csrf_token("nonce")));
        assert!(!key(1).check_sign_in("", &key(1).sign_in_token("")));
        assert_ne!(
            proxy_binding("achieng", &Principal::Team("acme".into())),
            proxy_binding("achieng", &Principal::Plugin("acme".into()))
        );
        assert_ne!(
            proxy_binding("achieng", &Principal::Team("acme".into())),
            proxy_binding("otieno", &Principal::Team("acme".into()))
        );
    }

    #[test]
    fn a_session_ends_with_its_token_at_the_latest() {
        assert_eq!(session_expiry(1_000, 3_600, 10_000), 4_600);
        assert_eq!(session_expiry(1_000, 3_600, 2_000), 2_000);
        assert_eq!(session_expiry(u64::MAX - 1, 3_600, u64::MAX), u64::MAX);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_tls() {
        assert_eq!(
            set_cookie("s", "v", "/console", 60, false),
            "s=v; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie("s", "v", "/console", 60, true).ends_with("; Secure"));
        assert_eq!(cookie("a=1; s=x.y; b=2", "s"), Some("x.y"));
        assert_eq!(cookie("as=1", "s"), None);
    }
}
