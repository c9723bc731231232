//! Bearer JWTs: who is calling, decided before any handler runs.
//!
//! The core platform mints the tokens; the registry only verifies them against keys from its configuration:
//! an HS256 shared secret, RS256 public keys and EdDSA (Ed25519) public keys, any of which may be absent.
//! A token's `alg` picks the key family, and only a configured family is accepted, so `alg: none` and
//! algorithm confusion (an RS256 public key presented as an HS256 secret) fail: the HS256 path only ever
//! uses the configured secret. Claims: `role` in {`admin`, `team`, `plugin`}, `team` for team tokens,
//! `plugin` for plugin tokens, `exp` (required). With an audience configured, `aud` must name it;
//! without one, `aud` is not checked (an issuer that serves several audiences with one key should set it).
//!
//! Two more rules bound what a token can be: a header with `crit` is refused before any key is tried
//! (RFC 7515 section 4.1.11: a recipient must reject critical extensions it does not understand, and the
//! registry understands none), and `exp` may lie at most a maximum lifetime ahead of now (24 hours for
//! admin and team tokens, 90 days for plugin tokens by default), so that a leaked token cannot stay valid
//! for years. `iat` is not needed: what bounds the harm of a leaked token is how long it stays valid from
//! now, which `exp` alone says.
//!
//! Every failure is a 401 for the caller, with a reason that names no key and echoes no token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode};
use serde::{Deserialize, Serialize};
use switchyard_schemas::ids::{check_plugin_id, check_team_id};
use thiserror::Error;

/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY_SECONDS: u64 = 30;
/// Default of `auth.max_token_lifetime_ms`: admin and team tokens, 24 hours.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Default of `auth.max_plugin_token_lifetime_ms`: plugin tokens, 90 days.
pub const DEFAULT_MAX_PLUGIN_TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// The role a token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Operators and the core platform: everything.
    Admin,
    /// A team: its own enablements, configs and plugin actions.
    Team,
    /// A plugin: registers and heartbeats itself only.
    Plugin,
}

/// The claims the registry reads; others are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The role.
    pub role: Role,
    /// The team, for `team` tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The plugin, for `plugin` tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// The token's id (RFC 7519 `jti`): names a console sign-in link's token, which is spent once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `switchyard_use`: what alone the token is for. [`CONSOLE_SIGN_IN`] makes a one-time console sign-in
    /// link's token, which the API refuses; absent for every other token.
    #[serde(default, rename = "switchyard_use", skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// `switchyard_use` of a console sign-in link's token (`switchyardctl console login`): the console's sign-in
/// page accepts it once; every API route refuses it.
pub const CONSOLE_SIGN_IN: &str = "console-sign-in";

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An administrator.
    Admin,
    /// One team.
    Team(String),
    /// One plugin.
    Plugin(String),
}

impl Principal {
    /// Whether it may act on `team`'s resources: an admin, or that team itself.
    pub fn may_access_team(&self, team: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Team(own) => own == team,
            Principal::Plugin(_) => false,
        }
    }

    /// Whether it may register or heartbeat `plugin`: an admin, or that plugin itself.
    pub fn may_act_as_plugin(&self, plugin: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Plugin(own) => own == plugin,
            Principal::Team(_) => false,
        }
    }

    /// Whether it is an administrator.
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin)
    }
}

/// Why a token was not accepted. Each is a 401; none carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// No `Authorization: Bearer ...` header.
    #[error("a bearer token is required")]
    Missing,
    /// Not a JWT (wrong shape, bad base64 or JSON, or an algorithm name not known).
    #[error("the bearer token is malformed")]
    Malformed,
    /// The token's algorithm is not one the registry is configured to accept.
    #[error("tokens signed with {0} are not accepted")]
    Algorithm(String),
    /// No configured key verifies the signature.
    #[error("the token's signature does not verify")]
    Signature,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// The header lists critical extensions (`crit`), none of which the registry implements.
    #[error("the token's header has a crit parameter; no critical extension is supported")]
    Critical,
    /// `exp` lies further ahead than the role's maximum lifetime.
    #[error("the token is valid for too long: {role} tokens may expire at most {max} from now")]
    Lifetime {
        /// `admin`, `team` or `plugin`.
        role: &'static str,
        /// The maximum, e.g. `1 day`.
        max: String,
    },
    /// A required claim is missing or invalid.
    #[error("the token's claims are invalid: {0}")]
    Claims(String),
    /// The header's `kid` names no configured key of the token's algorithm, and no key without an id is
    /// configured for it either.
    #[error("the token's kid {0:?} names no key of this registry (retired, or not yet added)")]
    UnknownKid(String),
    /// A token for one use only (`switchyard_use`), presented to anything else.
    #[error("the token is only for {0}; the API does not accept it")]
    Purpose(String),
}

/// The verification keys, by family, and the longest lifetimes accepted.
#[derive(Clone)]
pub struct KeySet {
    hs256: Option<DecodingKey>,
    rs256: Vec<DecodingKey>,
    eddsa: Vec<DecodingKey>,
    /// Keys with an id (`kid`), from `auth.jwks`, with the algorithm each verifies.
    identified: Vec<(String, Algorithm, DecodingKey)>,
    audience: Option<String>,
    max_lifetime: Duration,
    max_plugin_lifetime: Duration,
}

/// `auth.jwks` could not be read.
#[derive(Debug, Error)]
#[error("auth.jwks: {0}")]
pub struct JwksError(String);

/// A key that could not be loaded from configuration.
#[derive(Debug, Error)]
#[error("the {kind} key #{index} is not a valid PEM public key: {message}")]
pub struct KeyError {
    /// `RS256` or `EdDSA`.
    pub kind: &'static str,
    /// Its position in the configured list.
    pub index: usize,
    /// The parser's message.
    pub message: String,
}

impl KeySet {
    /// Keys from configuration: an optional HS256 secret, RS256 and EdDSA public keys in PEM; the default
    /// maximum lifetimes.
    pub fn new(
        hs256_secret: Option<&[u8]>,
        rs256_pems: &[String],
        eddsa_pems: &[String],
    ) -> Result<Self, KeyError> {
        let load = |kind: &'static str,
                    pems: &[String],
                    parse: fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>| {
            pems.iter()
                .enumerate()
                .map(|(index, pem)| {
                    parse(pem.as_bytes()).map_err(|e| KeyError {
                        kind,
                        index,
                        message: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            hs256: hs256_secret
                .filter(|s| !s.is_empty())
                .map(DecodingKey::from_secret),
            rs256: load("RS256", rs256_pems, DecodingKey::from_rsa_pem)?,
            eddsa: load("EdDSA", eddsa_pems, DecodingKey::from_ed_pem)?,
            identified: Vec::new(),
            audience: None,
            max_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            max_plugin_lifetime: DEFAULT_MAX_PLUGIN_TOKEN_LIFETIME,
        })
    }

    /// Adds the keys of a JSON Web Key Set (RFC 7517; `auth.jwks`), each with its `kid`: `kty` `RSA`
    /// (RS256), `OKP` with `crv` `Ed25519` (EdDSA) or `oct` (HS256). An empty text adds none.
    pub fn with_jwks(mut self, jwks: &str) -> Result<Self, JwksError> {
        if jwks.trim().is_empty() {
            return Ok(self);
        }
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(jwks).map_err(|e| JwksError(format!("it is not a JWK Set: {e}")))?;
        for (index, jwk) in set.keys.iter().enumerate() {
            let kid = jwk
                .common
                .key_id
                .clone()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| JwksError(format!("key #{index} has no kid")))?;
            use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
                AlgorithmParameters::OctetKey(_) => Algorithm::HS256,
                _ => {
                    return Err(JwksError(format!(
                        "key {kid:?}: only kty RSA (RS256), OKP Ed25519 (EdDSA) and oct (HS256) are accepted"
                    )));
                }
            };
            if self.identified.iter().any(|(other, _, _)| other == &kid) {
                return Err(JwksError(format!("kid {kid:?} appears twice")));
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|e| JwksError(format!("key {kid:?}: {e}")))?;
            self.identified.push((kid, algorithm, key));
        }
        Ok(self)
    }

    /// The keys a token of `alg` with `kid` is tried with: the key with that id, else the keys without
    /// one (as before key ids), or without a `kid` every key of the family.
    fn candidates(&self, alg: Algorithm, kid: Option<&str>) -> Result<Vec<&DecodingKey>, AuthError> {
        let unidentified: Vec<&DecodingKey> = match alg {
            Algorithm::HS256 => self.hs256.iter().collect(),
            Algorithm::RS256 => self.rs256.iter().collect(),
            Algorithm::EdDSA => self.eddsa.iter().collect(),
            _ => Vec::new(),
        };
        let family = self.identified.iter().filter(|(_, a, _)| *a == alg);
        let keys: Vec<&DecodingKey> = match kid {
            Some(kid) => {
                let named: Vec<&DecodingKey> =
                    family.filter(|(id, _, _)| id == kid).map(|(_, _, k)| k).collect();
                if !named.is_empty() {
                    named
                } else if !unidentified.is_empty() {
                    unidentified
                } else if self.identified.iter().any(|(_, a, _)| *a == alg) {
                    return Err(AuthError::UnknownKid(kid.to_owned()));
                } else {
                    Vec::new()
                }
            }
            None => unidentified
                .into_iter()
                .chain(family.map(|(_, _, k)| k))
                .collect(),
        };
        if keys.is_empty() {
            return Err(AuthError::Algorithm(format!("{alg:?}")));
        }
        Ok(keys)
    }

    /// Refuses admin and team tokens whose `exp` is more than `tokens` ahead, plugin tokens more than
    /// `plugin_tokens` ahead (each with the 30 s clock skew allowance).
    pub fn with_max_lifetimes(mut self, tokens: Duration, plugin_tokens: Duration) -> Self {
        self.max_lifetime = tokens;
        self.max_plugin_lifetime = plugin_tokens;
        self
    }

    /// Requires tokens to carry `aud` naming `audience` (`None`: `aud` is not checked).
    pub fn with_audience(mut self, audience: Option<String>) -> Self {
        self.audience = audience.filter(|a| !a.is_empty());
        self
    }

    /// Verifies an `Authorization` header value (`Bearer <token>`) and returns the principal.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        self.authenticate_until(authorization)
            .map(|(principal, _)| principal)
    }

    /// As [`KeySet::authenticate`], with the token's `exp`.
    pub fn authenticate_until(&self, authorization: Option<&str>) -> Result<(Principal, u64), AuthError> {
        let token = authorization
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify_until(token)
    }

    /// Verifies a token and returns the principal it speaks for.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_until(token).map(|(principal, _)| principal)
    }

    /// As [`KeySet::verify`], with the token's `exp`. A token for one use only ([`Claims::purpose`]) is
    /// refused: those are for [`KeySet::verify_claims`]'s callers.
    pub fn verify_until(&self, token: &str) -> Result<(Principal, u64), AuthError> {
        let (principal, claims) = self.verify_claims(token)?;
        match claims.purpose {
            Some(purpose) => Err(AuthError::Purpose(purpose)),
            None => Ok((principal, claims.exp)),
        }
    }

    /// Verifies a token, one-use tokens included, and returns the principal and every claim the registry
    /// reads.
    pub fn verify_claims(&self, token: &str) -> Result<(Principal, Claims), AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        if has_crit_header(token)? {
            return Err(AuthError::Critical);
        }
        let keys = self.candidates(header.alg, header.kid.as_deref())?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.set_required_spec_claims(&["exp", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp"]);
            }
        }
        let mut last = AuthError::Signature;
        for key in keys {
            match decode::<Claims>(token, key, &validation) {
                Ok(data) => {
                    self.check_lifetime(&data.claims, unix_now())?;
                    let claims = data.claims.clone();
                    return principal(data.claims).map(|p| (p, claims));
                }
                Err(error) => {
                    use jsonwebtoken::errors::ErrorKind;
                    last = match error.kind() {
                        ErrorKind::InvalidSignature => AuthError::Signature,
                        ErrorKind::ExpiredSignature => return Err(AuthError::Expired),
                        ErrorKind::MissingRequiredClaim(claim) => {
                            AuthError::Claims(format!("{claim} is required"))
                        }
                        ErrorKind::InvalidAudience => {
                            AuthError::Claims("aud does not name this registry".into())
                        }
                        ErrorKind::Json(_) => AuthError::Claims(
                            "role, team, plugin or exp is missing or of the wrong type".into(),
                        ),
                        _ => AuthError::Malformed,
                    };
                }
            }
        }
        Err(last)
    }

    /// Refuses a verified token whose `exp` lies further ahead of `now` than its role may.
    fn check_lifetime(&self, claims: &Claims, now: u64) -> Result<(), AuthError> {
        let (role, max) = match claims.role {
            Role::Admin => ("admin", self.max_lifetime),
            Role::Team => ("team", self.max_lifetime),
            Role::Plugin => ("plugin", self.max_plugin_lifetime),
        };
        if lifetime_within(claims.exp, now, max) {
            Ok(())
        } else {
            Err(AuthError::Lifetime {
                role,
                max: format_lifetime(max),
            })
        }
    }
}

/// A lifetime in the largest whole unit that divides it: `1 day`, `90 days`, `12 h`, `15 min`, `90 s`.
pub fn format_lifetime(lifetime: Duration) -> String {
    let seconds = lifetime.as_secs();
    match seconds {
        86_400 => "1 day".to_owned(),
        s if s > 0 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Whether a token expiring at `exp` (seconds since the epoch) lives at most `max` from `now`, allowing
/// for the clock skew [`LEEWAY_SECONDS`] (an issuer whose clock is ahead mints a slightly later `exp`).
fn lifetime_within(exp: u64, now: u64, max: Duration) -> bool {
    exp.saturating_sub(now) <= max.as_secs().saturating_add(LEEWAY_SECONDS)
}

/// Whether a compact JWS's protected header (its first segment, base64url JSON) has a `crit` parameter,
/// whatever its value. Read here rather than from `jsonwebtoken`'s parsed header, which maps
/// `"crit": null` to "absent" and may drop the parameter in another version. A header that is not
/// base64url of a JSON object is [`AuthError::Malformed`].
fn has_crit_header(token: &str) -> Result<bool, AuthError> {
    let segment = token.split('.').next().unwrap_or_default();
    let json = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::Malformed)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
    Ok(header.contains_key("crit"))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn principal(claims: Claims) -> Result<Principal, AuthError> {
    match claims.role {
        Role::Admin => Ok(Principal::Admin),
        Role::Team => {
            let team = claims
                .team
                .ok_or_else(|| AuthError::Claims("a team token needs a team claim".into()))?;
            check_team_id(team.as_bytes()).map_err(|e| AuthError::Claims(e.to_string()))?;
            Ok(Principal::Team(team))
        }
        Role::Plugin => {
            let plugin = claims
                .plugin
                .ok_or_else(|| AuthError::Claims("a plugin token needs a plugin claim".into()))?;
            check_plugin_id(&plugin).map_err(|e| AuthError::Claims(e.to_string()))?;
            Ok(Principal::Plugin(plugin))
        }
    }
}

/// Handlers take a `Principal` argument: the request is refused with a 401 problem before the handler runs
/// unless its bearer token verifies against the state's [`KeySet`].
impl<S> axum::extract::FromRequestParts<S> for Principal
where
    KeySet: axum::extract::FromRef<S>,
    S: Send + Sync,
{
    type Rejection = crate::problem::Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let authorization = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if authorization.is_none()
            && let Some(Delegated(principal)) = parts.extensions.get::<Delegated>()
        {
            return Ok(principal.clone());
        }
        let keys = <KeySet as axum::extract::FromRef<S>>::from_ref(state);
        let (principal, expires) = keys
            .authenticate_until(authorization)
            .map_err(|error| crate::problem::Problem::unauthorized(&error))?;
        parts.extensions.insert(TokenExpiry(expires));
        Ok(principal)
    }
}

/// An identity the console established (a signed session, or an authenticating proxy's headers) for a
/// request it makes to the API in process ([`crate::console`]). Only a request built inside the registry
/// can carry a request extension, so no client can present one; a request with an `Authorization` header
/// is judged by its token alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegated(pub Principal);

/// When the request's token expires (its `exp`, seconds since the epoch): a request extension that the
/// [`Principal`] extractor leaves for the handlers after it (heartbeats record a plugin token's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenExpiry(pub u64);

/// Mints an HS256 token from the shared secret: development tokens for the demo, tests and runbooks.
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> Result<String, AuthError> {
    mint_hs256_for(secret, claims, None)
}

/// As [`mint_hs256`], with an `aud` claim for a registry configured with `auth.audience`.
pub fn mint_hs256_for(secret: &[u8], claims: &Claims, audience: Option<&str>) -> Result<String, AuthError> {
    mint_hs256_with(secret, claims, audience, None)
}

/// As [`mint_hs256_for`], with a `kid` in the header naming the key (`auth.jwks`).
pub fn mint_hs256_with(
    secret: &[u8],
    claims: &Claims,
    audience: Option<&str>,
    kid: Option<&str>,
) -> Result<String, AuthError> {
    #[derive(Serialize)]
    struct WithAudience<'a> {
        #[serde(flatten)]
        claims: &'a Claims,
        #[serde(skip_serializing_if = "Option::is_none")]
        aud: Option<&'a str>,
    }
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    encode(
        &header,
        &WithAudience {
            claims,
            aud: audience,
        },
        &EncodingKey::from_secret(secret),
    )
    .map_err(|_| AuthError::Malformed)
}

#[cfg(test)]
mod tests;
