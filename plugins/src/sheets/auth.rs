//! OAuth 2.0 for service accounts: a signed JWT assertion exchanged for a short-lived access token.
//!
//! ```text
//!   ServiceAccountKey ──TokenSource::new──► TokenSource ──token()──► AccessToken (cached)
//!                                                │ cache empty or within 60 s of expiry
//!                                                ▼
//!       POST token_uri  grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<RS256 JWT>
//!       ◄── {"access_token": "...", "expires_in": 3599, "token_type": "Bearer"}
//! ```
//!
//! The assertion says who we are (`iss` = the account's email), what we want (`scope`), to whom it is
//! addressed (`aud` = the token endpoint) and when it was made (`iat`, `exp` = `iat` + 1 hour); its
//! header names the signing key (`kid`) when the key file gives its id. The token is cached until
//! 60 seconds before it expires; a single async lock makes concurrent callers share one refresh.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::error::SheetsError;
use crate::{Secret, excerpt, json_error_position, retry_after};

/// Google's token endpoint, for key files that do not name one.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The OAuth scope that allows reading and writing spreadsheets.
pub const SPREADSHEETS_SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets";
/// The `grant_type` of the JWT bearer flow (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long an assertion is valid; Google accepts at most one hour.
const ASSERTION_LIFETIME_SECS: u64 = 3600;
/// A cached token is replaced this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The parts of a Google service-account key file (the JSON downloaded from the cloud console) that the
/// token flow needs; other fields of the file are ignored.
///
/// `Debug` leaves the private key out.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    /// The account's email address: the assertion's issuer.
    pub client_email: String,
    /// The PEM-encoded RSA private key (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1 `BEGIN RSA PRIVATE KEY`).
    pub private_key: Secret,
    /// Where to exchange the assertion for a token.
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
    /// The key's id, sent as the assertion header's `kid`.
    #[serde(default)]
    pub private_key_id: Option<String>,
}

fn default_token_uri() -> String {
    GOOGLE_TOKEN_URI.to_owned()
}

impl ServiceAccountKey {
    /// Parses a key file and checks that its private key is a usable RSA key.
    ///
    /// # Errors
    ///
    /// [`SheetsError::InvalidKey`] when the text is not a key file or the key is not an RSA private key.
    /// The message says where the JSON went wrong, never what it contains.
    pub fn from_json(text: &str) -> Result<Self, SheetsError> {
        let key: Self = serde_json::from_str(text).map_err(|error| SheetsError::InvalidKey {
            reason: format!(
                "it is not a service-account JSON key file ({})",
                json_error_position(&error)
            ),
        })?;
        key.encoding_key()?;
        Ok(key)
    }

    fn encoding_key(&self) -> Result<EncodingKey, SheetsError> {
        if self.client_email.trim().is_empty() {
            return Err(SheetsError::InvalidKey {
                reason: "its client_email is empty".to_owned(),
            });
        }
        EncodingKey::from_rsa_pem(self.private_key.expose().as_bytes()).map_err(|_| SheetsError::InvalidKey {
            reason: "its private_key is not a PEM-encoded RSA private key".to_owned(),
        })
    }
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key", &self.private_key)
            .field("token_uri", &self.token_uri)
            .field("private_key_id", &self.private_key_id)
            .finish()
    }
}

/// An OAuth access token; `Debug` does not show it.
#[derive(Clone)]
pub struct AccessToken(Secret);

impl AccessToken {
    /// The token, for an `Authorization: Bearer` header.
    pub fn secret(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(..)")
    }
}

/// The claims of the JWT assertion.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AssertionClaims {
    pub(crate) iss: String,
    pub(crate) scope: String,
    pub(crate) aud: String,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
}

/// The token endpoint's answer on success.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
    #[serde(default)]
    token_type: Option<String>,
}

/// The token endpoint's answer on failure (RFC 6749 §5.2).
#[derive(Deserialize)]
struct TokenErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

struct CachedToken {
    token: AccessToken,
    refresh_at: Instant,
}

struct Inner {
    http: reqwest::Client,
    client_email: String,
    token_uri: String,
    key_id: Option<String>,
    signing_key: EncodingKey,
    cache: Mutex<Option<CachedToken>>,
}

/// Access tokens for one service account, fetched on demand and cached; cheap to clone (clones share
/// the cache) and safe to use from many tasks.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_email", &self.inner.client_email)
            .field("token_uri", &self.inner.token_uri)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A token source for `key`, requesting tokens with `http`.
    ///
    /// # Errors
    ///
    /// [`SheetsError::InvalidKey`] when the key's private key is not a PEM-encoded RSA key.
    pub fn new(key: &ServiceAccountKey, http: reqwest::Client) -> Result<Self, SheetsError> {
        let signing_key = key.encoding_key()?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                client_email: key.client_email.clone(),
                token_uri: key.token_uri.clone(),
                key_id: key.private_key_id.clone(),
                signing_key,
                cache: Mutex::new(None),
            }),
        })
    }

    /// The service account's email address.
    pub fn client_email(&self) -> &str {
        &self.inner.client_email
    }

    /// A valid access token: the cached one while it has more than a minute left, a new one otherwise.
    ///
    /// # Errors
    ///
    /// [`SheetsError::TokenRefused`] when the endpoint refuses the assertion (a wrong key or a
    /// disabled account: dead-letter; 429 or 5xx: retry), [`SheetsError::Transport`] when it cannot be
    /// reached, [`SheetsError::UnexpectedResponse`] when its answer makes no sense.
    pub async fn token(&self) -> Result<AccessToken, SheetsError> {
        let mut cache = self.inner.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let (token, lifetime) = self.fetch().await?;
        let refresh_at = Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN);
        *cache = Some(CachedToken {
            token: token.clone(),
            refresh_at,
        });
        Ok(token)
    }

    /// Forgets the cached token, e.g. after the API answered 401 to it.
    pub async fn invalidate(&self) {
        *self.inner.cache.lock().await = None;
    }

    /// The signed assertion for a request made now.
    fn assertion(&self) -> Result<String, SheetsError> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let claims = AssertionClaims {
            iss: self.inner.client_email.clone(),
            scope: SPREADSHEETS_SCOPE.to_owned(),
            aud: self.inner.token_uri.clone(),
            iat,
            exp: iat + ASSERTION_LIFETIME_SECS,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.inner.key_id);
        jsonwebtoken::encode(&header, &claims, &self.inner.signing_key).map_err(|error| {
            SheetsError::Signing {
                reason: format!("{:?}", error.kind()),
            }
        })
    }

    async fn fetch(&self) -> Result<(AccessToken, Duration), SheetsError> {
        const DURING: &str = "the token request";
        let assertion = self.assertion()?;
        let response = self
            .inner
            .http
            .post(&self.inner.token_uri)
            .form(&[
                ("grant_type", JWT_BEARER_GRANT),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|source| SheetsError::Transport {
                during: DURING,
                source,
            })?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.text().await.map_err(|source| SheetsError::Transport {
            during: DURING,
            source,
        })?;
        if !status.is_success() {
            let (error, description) = match serde_json::from_str::<TokenErrorBody>(&body) {
                Ok(parsed) => (parsed.error, parsed.error_description),
                Err(_) => (
                    status.canonical_reason().unwrap_or("error").to_owned(),
                    Some(excerpt(&body, 200)),
                ),
            };
            return Err(SheetsError::TokenRefused {
                status: status.as_u16(),
                error,
                description,
                retry_after,
            });
        }
        // Parsed by hand, not with serde_json's error Display, which could quote the token.
        let parsed: TokenResponse =
            serde_json::from_str(&body).map_err(|_| SheetsError::UnexpectedResponse {
                during: DURING,
                reason: "the body is not a token response".to_owned(),
            })?;
        if let Some(kind) = &parsed.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(SheetsError::UnexpectedResponse {
                during: DURING,
                reason: format!("the token type is {kind:?}, not Bearer"),
            });
        }
        Ok((
            AccessToken(Secret::new(parsed.access_token)),
            Duration::from_secs(parsed.expires_in),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE_KEY: &str = include_str!("../../testdata/demo_key.pem");

    fn key_json() -> String {
        serde_json::json!({
            "type": "service_account",
            "client_email": "exporter@demo.iam.gserviceaccount.com",
            "private_key": PRIVATE_KEY,
            "private_key_id": "k1",
            "token_uri": "http://127.0.0.1:9/token",
        })
        .to_string()
    }

    #[test]
    fn the_key_never_shows() {
        let key = ServiceAccountKey::from_json(&key_json()).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains("exporter@demo"), "{shown}");
        let source = TokenSource::new(&key, reqwest::Client::new()).unwrap();
        assert!(!format!("{source:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn bad_key_files_are_refused_without_quoting_them() {
        let error =
            ServiceAccountKey::from_json(r#"{"client_email": 3, "private_key": "s3cr3t"}"#).unwrap_err();
        assert!(!error.to_string().contains("s3cr3t"));
        assert_eq!(error.disposition(), crate::Disposition::DeadLetter);
        let not_a_key = serde_json::json!({
            "client_email": "a@b",
            "private_key": "-----BEGIN PRIVATE KEY-----\ns3cr3t\n-----END PRIVATE KEY-----"
        });
        let error = ServiceAccountKey::from_json(&not_a_key.to_string()).unwrap_err();
        assert!(matches!(error, SheetsError::InvalidKey { .. }));
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
    }

    #[test]
    fn the_assertion_carries_the_expected_claims() {
        let key = ServiceAccountKey::from_json(&key_json()).unwrap();
        let source = TokenSource::new(&key, reqwest::Client::new()).unwrap();
        let jwt = source.assertion().unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("k1"));
        let claims: AssertionClaims = jsonwebtoken::dangerous::insecure_decode_claims(&jwt).unwrap();
        assert_eq!(claims.iss, "exporter@demo.iam.gserviceaccount.com");
        assert_eq!(claims.scope, SPREADSHEETS_SCOPE);
        assert_eq!(claims.aud, "http://127.0.0.1:9/token");
        assert_eq!(claims.exp, claims.iat + 3600);
    }
}
