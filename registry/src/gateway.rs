//! The action gateway: forwards a team's call of a plugin action to `{url}/actions/{action}`.
//!
//! ```text
//!  POST /v1/teams/T/plugins/P/actions/A ──► may act for T? T and P known? enabled? A declared?
//!        │                                   Idempotency-Key valid? ≤ max body? T under its rate?
//!        │                                   (403/404/409/404/422/413/429, nothing sent)
//!        ▼
//!  URL matches the allow-list? ──► resolve, every address outside denied ranges? (SSRF guard) ──► POST
//!        │ signed (Standard Webhooks), switchyard-team: T, no redirects, timeout, response capped
//!        ▼
//!  2xx/4xx: the plugin's answer as-is · 3xx, 5xx, connection error, oversized answer: 502 · timeout: 504
//! ```
//!
//! A plugin's signing secret is derived from the configured master key ([`crate::signing`]).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use switchyard_schemas::webhook::SigningSecrets;
use thiserror::Error;

use crate::config::GatewayConfig;
use crate::ratelimit::{RateLimitError, RateLimiter};
use crate::signing::{MasterKey, MasterKeyError};
use switchyard_service::egress::{EgressError, EgressPolicy, egress_error, read_capped};

/// The header that names the calling team.
pub const TEAM_HEADER: &str = "switchyard-team";
/// The header that names the action.
pub const ACTION_HEADER: &str = "switchyard-action";
/// Most teams whose rate buckets are kept at once.
const MAX_RATE_KEYS: usize = 100_000;

/// The gateway cannot be built from its configuration.
#[derive(Debug, Error)]
pub enum GatewayConfigError {
    /// The master key is invalid.
    #[error("gateway.signing_key or gateway.previous_signing_keys: {0}")]
    Key(#[from] MasterKeyError),
    /// A URL pattern or network is invalid, or the HTTP client cannot be built.
    #[error("gateway: {0}")]
    Egress(#[from] EgressError),
    /// The rate or burst is out of range.
    #[error("gateway: {0}")]
    Rate(#[from] RateLimitError),
}

/// Why a call did not produce a plugin answer.
#[derive(Debug, Error)]
pub enum CallError {
    /// The plugin has no URL.
    #[error("the plugin has no service URL")]
    NoUrl,
    /// The target is not allowed (allow-list or SSRF guard). The detail is for the log only: it may name
    /// internal addresses.
    #[error("the plugin's URL is refused by the gateway's egress policy: {0}")]
    Refused(String),
    /// The plugin did not answer in time.
    #[error("the plugin did not answer within {0:?}")]
    Timeout(Duration),
    /// Connection failure, a redirect, a 5xx, or an oversized answer.
    #[error("{0}")]
    Upstream(String),
}

impl CallError {
    /// The bounded metric label of this outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            CallError::NoUrl | CallError::Refused(_) => "refused",
            CallError::Timeout(_) => "timeout",
            CallError::Upstream(_) => "upstream_error",
        }
    }
}

/// A plugin's answer to pass on.
#[derive(Debug)]
pub struct Answer {
    /// Its status, 2xx or 4xx.
    pub status: u16,
    /// Its content type, if any.
    pub content_type: Option<String>,
    /// Its body.
    pub body: Vec<u8>,
}

/// One action call.
#[derive(Debug)]
pub struct Call<'a> {
    /// Plugin id.
    pub plugin_id: &'a str,
    /// The plugin's base URL.
    pub url: Option<&'a str>,
    /// The calling team.
    pub team: &'a str,
    /// The action name.
    pub action: &'a str,
    /// The message id (`webhook-id`), stable across the caller's retries when it sends an idempotency key.
    pub message_id: &'a str,
    /// The request's content type.
    pub content_type: Option<&'a str>,
    /// The request body.
    pub body: Bytes,
}

/// The gateway's shared state.
pub struct Gateway {
    policy: EgressPolicy,
    client: reqwest::Client,
    /// The current signing key first, then the ones being retired.
    masters: Vec<MasterKey>,
    limiter: RateLimiter,
    timeout: Duration,
    max_request_bytes: usize,
    max_response_bytes: usize,
}

impl Gateway {
    /// Builds the gateway from its configuration.
    pub fn new(config: &GatewayConfig) -> Result<Self, GatewayConfigError> {
        let policy = EgressPolicy::new(&config.url_patterns, &config.allowed_networks)?;
        let timeout = Duration::from_millis(config.timeout_ms);
        Ok(Self {
            client: policy.client(timeout)?,
            policy,
            masters: std::iter::once(&config.signing_key)
                .chain(&config.previous_signing_keys)
                .map(|key| MasterKey::parse(key.expose()))
                .collect::<Result<_, _>>()?,
            limiter: RateLimiter::new(config.rate_per_second, config.burst)?.with_max_keys(MAX_RATE_KEYS)?,
            timeout,
            max_request_bytes: config.max_request_bytes,
            max_response_bytes: config.max_response_bytes,
        })
    }

    /// The largest request body forwarded.
    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }

    /// The plugin's signing secret (`whsec_...`), from the current key.
    pub fn signing_secret(&self, plugin_id: &str) -> String {
        self.masters[0].plugin_secret(plugin_id)
    }

    /// The console's session key derived from the current signing key.
    pub fn console_session_key(&self) -> [u8; 32] {
        self.masters[0].console_session_key()
    }

    /// Every secret of the plugin that signs calls: the current one first, then one per key being
    /// retired.
    pub fn signing_secrets(&self, plugin_id: &str) -> Vec<String> {
        self.masters.iter().map(|m| m.plugin_secret(plugin_id)).collect()
    }

    /// Takes one token from the team's bucket, or says how many seconds to wait.
    pub fn admit(&self, team: &str) -> Result<(), u64> {
        self.limiter
            .check(team, Instant::now())
            .map_err(crate::ratelimit::retry_after_secs)
    }

    /// Forgets idle rate buckets; the app calls it periodically.
    pub fn sweep(&self) {
        self.limiter.sweep(Instant::now());
    }

    /// Forwards the call and returns the plugin's answer.
    pub async fn call(&self, call: Call<'_>) -> Result<Answer, CallError> {
        let base = call.url.ok_or(CallError::NoUrl)?;
        let target = format!("{}/actions/{}", base.trim_end_matches('/'), call.action);
        let url = self
            .policy
            .check_url(&target)
            .map_err(|e| CallError::Refused(e.to_string()))?;
        let secret = SigningSecrets::parse(&self.signing_secrets(call.plugin_id).join(" "))
            .map_err(|e| CallError::Upstream(format!("cannot sign the request: {e}")))?;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut request = self
            .client
            .post(url)
            .header(TEAM_HEADER, call.team)
            .header(ACTION_HEADER, call.action)
            .header(
                reqwest::header::CONTENT_TYPE,
                call.content_type.unwrap_or("application/json"),
            );
        for (name, value) in secret.headers(call.message_id, timestamp, &call.body) {
            request = request.header(name, value);
        }
        let response = request
            .body(call.body)
            .send()
            .await
            .map_err(|e| self.classify(&e))?;
        let status = response.status();
        if status.is_redirection() || status.is_server_error() || status.is_informational() {
            return Err(CallError::Upstream(format!(
                "the plugin answered {status}{}",
                if status.is_redirection() {
                    " (redirects are not followed)"
                } else {
                    ""
                }
            )));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_capped(response, self.max_response_bytes)
            .await
            .map_err(|e| match e {
                EgressError::TooLarge { .. } => CallError::Upstream(format!(
                    "the plugin's answer is larger than {} bytes",
                    self.max_response_bytes
                )),
                other => self.classify_read(other),
            })?;
        Ok(Answer {
            status: status.as_u16(),
            content_type,
            body,
        })
    }

    fn classify(&self, error: &reqwest::Error) -> CallError {
        if error.is_timeout() {
            return CallError::Timeout(self.timeout);
        }
        // The guarded resolver's refusal surfaces as a connect error; a failed lookup is an upstream problem.
        match egress_error(error) {
            Some(EgressError::Resolve { host, .. }) => {
                return CallError::Upstream(format!("the plugin's host {host} could not be resolved"));
            }
            Some(refused) => return CallError::Refused(refused.to_string()),
            None => {}
        }
        CallError::Upstream(if error.is_connect() {
            "the plugin's service could not be reached".to_owned()
        } else {
            "the request to the plugin's service failed".to_owned()
        })
    }

    fn classify_read(&self, error: EgressError) -> CallError {
        match error {
            EgressError::Read(e) if e.is_timeout() => CallError::Timeout(self.timeout),
            _ => CallError::Upstream("reading the plugin's answer failed".to_owned()),
        }
    }
}
