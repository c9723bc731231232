//! A fake Google: the OAuth token endpoint and the Sheets API v4 calls [`crate::sheets::SheetsClient`] makes,
//! answering like the real ones, for tests and for the demo.
//!
//! What it checks:
//!
//! * `POST /token`: `grant_type` is the JWT bearer grant; the assertion is an RS256 JWT whose `iss` is
//!   a registered service account and whose signature verifies with that account's public key; `aud`
//!   is this endpoint's URL (set by [`serve`], or [`FakeSheets::set_audience`]); `exp` has not passed
//!   and is at most an hour after `iat`; `scope` includes the spreadsheets scope. It answers Google's
//!   `{"error": "invalid_grant", ...}` (400) otherwise, and issues opaque tokens that expire after
//!   [`FakeSheets::set_token_lifetime`] (an hour by default).
//! * Every API call needs `Authorization: Bearer <a live token>` (401 `UNAUTHENTICATED` otherwise).
//! * Per-minute request quotas, as Google documents them for the Sheets API
//!   (<https://developers.google.com/sheets/api/limits>): read requests (`spreadsheets.get`,
//!   `values.get`) and write requests (`values.update`, `values.append`, `values.batchUpdate`,
//!   `batchUpdate`; one request each, however many ranges or rows it writes) are counted separately,
//!   each per project and per user per project. The user is the service account the token
//!   was issued to; its project is the one its email names (`<name>@<project>.iam.gserviceaccount.com`).
//!   The defaults are Google's: 300 per minute per project and 60 per minute per user, for reads and
//!   for writes alike ([`QuotaLimits::GOOGLE_DEFAULT`]; change them with
//!   [`FakeSheets::set_write_quota_per_minute`] and [`FakeSheets::set_read_quota_per_minute`]). A call
//!   past a limit is answered like Google does, 429 `RESOURCE_EXHAUSTED` without `Retry-After`:
//!
//!   ```text
//!   {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
//!              "message": "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per
//!                          minute per user' of service 'sheets.googleapis.com' for consumer
//!                          'project_number:100000000001'.",
//!              "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
//!                           "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com",
//!                           "metadata": {"quota_limit": "WriteRequestsPerMinutePerUser",
//!                                        "quota_metric": "sheets.googleapis.com/write_requests", ...}},
//!                          {"@type": "type.googleapis.com/google.rpc.Help", "links": [...]}]}}
//!   ```
//!
//!   (the per-project limits are named `Write requests per minute` / `WriteRequestsPerMinutePerProject`,
//!   and `Read ...` for reads). Refused calls do not use quota. Each counter is a fixed one-minute window
//!   that starts with its first call and is refilled a minute later ("refilled every minute", as Google
//!   puts it). The fake's clock, which also expires tokens, can be moved on with
//!   [`FakeSheets::advance_clock`] so tests need not wait a minute; JWT assertions are still checked
//!   against the system time.
//! * Spreadsheets must exist ([`FakeSheets::add_spreadsheet`], or [`FakeSheets::auto_create_spreadsheets`])
//!   (404 `NOT_FOUND`); a range must parse and name an existing sheet (400 `Unable to parse range`);
//!   writes need `valueInputOption`; cells must be strings, numbers, booleans or null.
//!
//! What it does: rows live in memory per (spreadsheet, sheet). An update writes from the range's
//! top-left cell (a null cell leaves the cell as it was); a `values:batchUpdate` (a
//! `BatchUpdateValuesRequest`: `valueInputOption` and `data`, a list of `ValueRange`s) checks every range
//! first and writes all or nothing, answering a `BatchUpdateValuesResponse` (totals and one
//! `UpdateValuesResponse` per range, in order; an error names the range, `Invalid data[1]: ...`); an
//! append writes after the last non-empty row and answers with the `updatedRange`
//! (`'Responses'!A5:H5`); a read returns values as Google formats them (numbers as strings) with empty
//! trailing rows and cells trimmed (an empty row inside stays `[]`), and echoes the range with its open
//! bounds filled in from the grid (`'Responses'!A:A` → `'Responses'!A1:A1000`).
//! [`FakeSheets::grid`] shows the stored cells for assertions, [`FakeSheets::api_calls`],
//! [`FakeSheets::method_calls`] and [`FakeSheets::write_calls`] count the calls,
//! [`FakeSheets::quota_refusals`] the calls refused for a used-up quota, and
//! [`FakeSheets::fail_next_api_calls`] / [`FakeSheets::fail_next_token_requests`] make the next calls
//! fail (e.g. 503 with `Retry-After`). [`FakeSheets::fail_after_applying`] makes the next calls of a
//! method do their work and then fail, as when Google applied an append whose answer was lost.
//! [`FakeSheets::set_latency`] delays every API answer (not the token endpoint's), for benchmarks that
//! need Google's round trip (a `values.append` takes a few hundred milliseconds).
//!
//! [`DEMO_PRIVATE_KEY_PEM`] is a fixed, published RSA test key: it protects nothing and must never be
//! used outside tests and the demo.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::server::{FailureSwitch, FakeServer, InjectedFailure};
use crate::sheets::a1::{self, Area, SheetPart, column_letters, quote_sheet_title};
use crate::sheets::auth::{AssertionClaims, JWT_BEARER_GRANT, SPREADSHEETS_SCOPE};

/// The private half of the demo service account's key (PKCS#8 PEM). Public test material.
pub const DEMO_PRIVATE_KEY_PEM: &str = include_str!("../../testdata/demo_key.pem");
/// The public half of the demo service account's key (SPKI PEM).
pub const DEMO_PUBLIC_KEY_PEM: &str = include_str!("../../testdata/demo_key.pub.pem");
/// The demo service account's email.
pub const DEMO_CLIENT_EMAIL: &str = "sheets-export@switchyard-demo.iam.gserviceaccount.com";
/// The demo key's id.
pub const DEMO_KEY_ID: &str = "demo-key-1";

/// The demo service account's key file, pointing at `token_uri` (e.g. `http://127.0.0.1:4000/token`).
pub fn demo_service_account_json(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "switchyard-demo",
        "private_key_id": DEMO_KEY_ID,
        "private_key": DEMO_PRIVATE_KEY_PEM,
        "client_email": DEMO_CLIENT_EMAIL,
        "token_uri": token_uri,
    })
    .to_string()
}

/// Longest lifetime of an assertion Google accepts.
const MAX_ASSERTION_SECS: u64 = 3600;
/// Clock skew tolerated on `iat` and `exp`.
const LEEWAY_SECS: u64 = 60;

struct IssuedToken {
    /// The service account it was issued to: the user of the quotas.
    account: String,
    expires_at: Instant,
}

struct Sheet {
    id: i64,
    title: String,
    grid: Vec<Vec<Value>>,
}

impl Sheet {
    /// `(rows, columns)` of the sheet's grid: a new sheet has Google's 1000 × 26, and the grid grows
    /// with what is written past it.
    fn dimensions(&self) -> (usize, usize) {
        let widest = self.grid.iter().map(Vec::len).max().unwrap_or(0);
        (self.grid.len().max(1000), widest.max(26))
    }
}

#[derive(Default)]
struct Spreadsheet {
    sheets: Vec<Sheet>,
}

struct Inner {
    audience: Option<String>,
    accounts: HashMap<String, DecodingKey>,
    token_lifetime: Duration,
    tokens: HashMap<String, IssuedToken>,
    tokens_issued: u64,
    spreadsheets: HashMap<String, Spreadsheet>,
    auto_create: bool,
    next_sheet_id: i64,
    api_failures: FailureSwitch,
    /// Per method: the next calls that do their work, then answer with a failure
    /// ([`FakeSheets::fail_after_applying`]).
    lost_answers: HashMap<ApiMethod, FailureSwitch>,
    token_failures: FailureSwitch,
    api_calls: u64,
    method_calls: HashMap<ApiMethod, u64>,
    /// Calls answered 429 because a quota was used up (injected failures not included).
    quota_refusals: u64,
    /// Project id → the number Google would show for it, assigned as accounts are added.
    project_numbers: HashMap<String, u64>,
    quotas: Quotas,
    latency: Duration,
    /// How far the fake's clock is ahead of the system's ([`FakeSheets::advance_clock`]).
    clock_offset: Duration,
}

impl Inner {
    /// The fake's clock: quota windows and token expiry use it.
    fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }

    fn project_number(&self, project: &str) -> u64 {
        self.project_numbers
            .get(project)
            .copied()
            .unwrap_or(UNKNOWN_PROJECT_NUMBER)
    }
}

/// The fake's state, shared by the server and the test that drives it; clones share it.
#[derive(Clone)]
pub struct FakeSheets {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for FakeSheets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSheets").finish_non_exhaustive()
    }
}

impl Default for FakeSheets {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeSheets {
    /// A fake with no service account and no spreadsheet.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                audience: None,
                accounts: HashMap::new(),
                token_lifetime: Duration::from_secs(3600),
                tokens: HashMap::new(),
                tokens_issued: 0,
                spreadsheets: HashMap::new(),
                auto_create: false,
                next_sheet_id: 1,
                api_failures: FailureSwitch::default(),
                lost_answers: HashMap::new(),
                token_failures: FailureSwitch::default(),
                api_calls: 0,
                method_calls: HashMap::new(),
                quota_refusals: 0,
                project_numbers: HashMap::new(),
                quotas: Quotas::default(),
                latency: Duration::ZERO,
                clock_offset: Duration::ZERO,
            })),
        }
    }

    /// A fake that knows the demo service account and creates spreadsheets on first use, for the demo.
    ///
    /// # Errors
    ///
    /// Only if the bundled demo public key were not a valid PEM key (a test guards against that).
    pub fn demo() -> Result<Self, jsonwebtoken::errors::Error> {
        let fake = Self::new();
        fake.add_service_account(DEMO_CLIENT_EMAIL, DEMO_PUBLIC_KEY_PEM)?;
        fake.auto_create_spreadsheets(true);
        Ok(fake)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a service account whose assertions verify with `public_key_pem` (SPKI or PKCS#1).
    ///
    /// # Errors
    ///
    /// When the PEM is not an RSA public key.
    pub fn add_service_account(
        &self,
        client_email: &str,
        public_key_pem: &str,
    ) -> Result<(), jsonwebtoken::errors::Error> {
        let key = DecodingKey::from_rsa_pem(public_key_pem.as_bytes())?;
        let mut inner = self.lock();
        inner.accounts.insert(client_email.to_owned(), key);
        let next = FIRST_PROJECT_NUMBER + inner.project_numbers.len() as u64;
        inner
            .project_numbers
            .entry(project_of(client_email).to_owned())
            .or_insert(next);
        Ok(())
    }

    /// The project number Google would name in a quota error of this service account's calls
    /// (`consumer 'project_number:<n>'`), if the account is registered.
    pub fn project_number(&self, client_email: &str) -> Option<u64> {
        let inner = self.lock();
        inner
            .accounts
            .contains_key(client_email)
            .then(|| inner.project_number(project_of(client_email)))
    }

    /// Write requests allowed per minute to a project and to each user (service account) of it;
    /// Google's defaults are 300 and 60.
    pub fn set_write_quota_per_minute(&self, per_project: u32, per_user: u32) {
        self.lock().quotas.write = QuotaLimits {
            per_project,
            per_user,
        };
    }

    /// Read requests allowed per minute to a project and to each user of it; Google's defaults are 300
    /// and 60.
    pub fn set_read_quota_per_minute(&self, per_project: u32, per_user: u32) {
        self.lock().quotas.read = QuotaLimits {
            per_project,
            per_user,
        };
    }

    /// Moves the fake's clock forward: quota windows end and tokens expire as if `by` had passed.
    pub fn advance_clock(&self, by: Duration) {
        self.lock().clock_offset += by;
    }

    /// Delays every Sheets API answer by `latency` (zero by default), as Google's round trip would.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The `aud` assertions must carry: the token endpoint's own URL. [`serve`] sets it when unset;
    /// with [`router`] alone and no audience set, `aud` is not checked.
    pub fn set_audience(&self, audience: &str) {
        self.lock().audience = Some(audience.to_owned());
    }

    /// How long issued tokens live (`expires_in`).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = lifetime;
    }

    /// Creates (or empties) a spreadsheet with sheets of these titles.
    pub fn add_spreadsheet(&self, spreadsheet_id: &str, sheet_titles: &[&str]) {
        let mut inner = self.lock();
        let mut spreadsheet = Spreadsheet::default();
        for title in sheet_titles {
            let id = inner.next_sheet_id;
            inner.next_sheet_id += 1;
            spreadsheet.sheets.push(Sheet {
                id,
                title: (*title).to_owned(),
                grid: Vec::new(),
            });
        }
        inner.spreadsheets.insert(spreadsheet_id.to_owned(), spreadsheet);
    }

    /// Whether unknown spreadsheet ids are created (with one sheet, `Sheet1`) instead of answering 404.
    pub fn auto_create_spreadsheets(&self, on: bool) {
        self.lock().auto_create = on;
    }

    /// The cells stored in a sheet, as written (raw values; `null` for never-written cells inside the
    /// used area); `None` if there is no such sheet.
    pub fn grid(&self, spreadsheet_id: &str, sheet_title: &str) -> Option<Vec<Vec<Value>>> {
        let inner = self.lock();
        let spreadsheet = inner.spreadsheets.get(spreadsheet_id)?;
        spreadsheet
            .sheets
            .iter()
            .find(|s| s.title == sheet_title)
            .map(|s| s.grid.clone())
    }

    /// The titles of a spreadsheet's sheets, in order.
    pub fn sheet_titles(&self, spreadsheet_id: &str) -> Option<Vec<String>> {
        let inner = self.lock();
        Some(
            inner
                .spreadsheets
                .get(spreadsheet_id)?
                .sheets
                .iter()
                .map(|s| s.title.clone())
                .collect(),
        )
    }

    /// Makes the next `count` Sheets API calls fail with `failure`, whatever they ask.
    pub fn fail_next_api_calls(&self, count: u32, failure: InjectedFailure) {
        self.lock().api_failures.set(count, failure);
    }

    /// Makes the next `count` calls of `method` do their work (an append appends) and then answer with
    /// `failure` instead of their answer, as when Google applied a write but its answer was lost on the
    /// way (a 503 from a front end; to the client, a timeout or a reset connection is the same: an
    /// outcome it cannot know). Calls refused before doing their work (quota, bad token, bad request)
    /// do not count.
    pub fn fail_after_applying(&self, method: ApiMethod, count: u32, failure: InjectedFailure) {
        self.lock()
            .lost_answers
            .entry(method)
            .or_default()
            .set(count, failure);
    }

    /// Makes the next `count` token requests fail with `failure`.
    pub fn fail_next_token_requests(&self, count: u32, failure: InjectedFailure) {
        self.lock().token_failures.set(count, failure);
    }

    /// How many tokens were issued.
    pub fn tokens_issued(&self) -> u64 {
        self.lock().tokens_issued
    }

    /// How many Sheets API calls arrived (failed ones included).
    pub fn api_calls(&self) -> u64 {
        self.lock().api_calls
    }

    /// How many calls of `method` arrived (failed ones included).
    pub fn method_calls(&self, method: ApiMethod) -> u64 {
        self.lock().method_calls.get(&method).copied().unwrap_or(0)
    }

    /// How many write calls arrived, of every method (failed ones included).
    pub fn write_calls(&self) -> u64 {
        let inner = self.lock();
        inner
            .method_calls
            .iter()
            .filter(|(method, _)| method.kind() == RequestKind::Write)
            .map(|(_, calls)| calls)
            .sum()
    }

    /// How many calls were answered `429 RESOURCE_EXHAUSTED` because a per-minute quota was used up (the
    /// failures of [`FakeSheets::fail_next_api_calls`] are not counted).
    pub fn quota_refusals(&self) -> u64 {
        self.lock().quota_refusals
    }

    /// Revokes every issued token, as if they had expired early.
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }
}

/// The fake's routes over `state`.
pub fn router(state: FakeSheets) -> Router {
    Router::new()
        .route("/token", post(token))
        .route("/v4/spreadsheets/{id}", get(spreadsheet_meta).post(batch_update))
        .route(
            "/v4/spreadsheets/{id}/values:batchUpdate",
            post(batch_update_values),
        )
        .route(
            "/v4/spreadsheets/{id}/values/{range}",
            get(get_values).put(update_values).post(append_values),
        )
        .with_state(state)
}

/// Serves the fake on `listener`; sets the expected assertion audience to `http://<addr>/token` unless
/// one was set.
///
/// # Errors
///
/// When the listener's address cannot be read.
pub async fn serve(listener: TcpListener, state: FakeSheets) -> io::Result<FakeServer> {
    let addr = listener.local_addr()?;
    {
        let mut inner = state.lock();
        if inner.audience.is_none() {
            inner.audience = Some(format!("http://{addr}/token"));
        }
    }
    FakeServer::start(listener, router(state)).await
}

// ---------------------------------------------------------------------------------------------------
// Quotas

/// The number of the first project the fake sees; the next ones count up. Google's project numbers
/// have twelve digits.
const FIRST_PROJECT_NUMBER: u64 = 100_000_000_001;
/// The project number an injected 429 names when the call carried no live token.
const UNKNOWN_PROJECT_NUMBER: u64 = 100_000_000_000;
/// How long a quota window lasts: Google's quotas are per minute.
const QUOTA_WINDOW: Duration = Duration::from_secs(60);

/// The project a service account belongs to: `<name>@<project>.iam.gserviceaccount.com` → `<project>`;
/// any other email counts as its own domain's project.
fn project_of(client_email: &str) -> &str {
    let domain = client_email
        .rsplit_once('@')
        .map_or(client_email, |(_, domain)| domain);
    domain.strip_suffix(".iam.gserviceaccount.com").unwrap_or(domain)
}

/// Which quota a Sheets API call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// Calls that read a spreadsheet.
    Read,
    /// Calls that change a spreadsheet.
    Write,
}

/// The Sheets API v4 methods the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiMethod {
    /// `spreadsheets.get` (`GET /v4/spreadsheets/{id}`), a read.
    SpreadsheetsGet,
    /// `spreadsheets.batchUpdate` (`POST /v4/spreadsheets/{id}:batchUpdate`), a write.
    BatchUpdate,
    /// `spreadsheets.values.get` (`GET .../values/{range}`), a read.
    ValuesGet,
    /// `spreadsheets.values.update` (`PUT .../values/{range}`), a write.
    ValuesUpdate,
    /// `spreadsheets.values.append` (`POST .../values/{range}:append`), a write.
    ValuesAppend,
    /// `spreadsheets.values.batchUpdate` (`POST /v4/spreadsheets/{id}/values:batchUpdate`), one write
    /// however many ranges it writes.
    ValuesBatchUpdate,
}

impl ApiMethod {
    /// The quota the method counts against.
    pub fn kind(self) -> RequestKind {
        match self {
            Self::SpreadsheetsGet | Self::ValuesGet => RequestKind::Read,
            Self::BatchUpdate | Self::ValuesUpdate | Self::ValuesAppend | Self::ValuesBatchUpdate => {
                RequestKind::Write
            }
        }
    }
}

/// Requests of one kind allowed per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLimits {
    /// To all users of a project together.
    pub per_project: u32,
    /// To one user (service account) of a project.
    pub per_user: u32,
}

impl QuotaLimits {
    /// Google's documented defaults, the same for reads and writes: 300 per minute per project, 60 per
    /// minute per user per project.
    pub const GOOGLE_DEFAULT: Self = Self {
        per_project: 300,
        per_user: 60,
    };
}

/// A limit a call would have exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exceeded {
    kind: RequestKind,
    /// The per-user limit (else the per-project one).
    per_user: bool,
    /// Its value.
    limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct QuotaKey {
    kind: RequestKind,
    project: String,
    /// `None` for the project's own counter.
    user: Option<String>,
}

/// One counter's current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    used: u32,
}

/// The per-minute counters of every (kind, project) and (kind, project, user).
#[derive(Debug)]
struct Quotas {
    read: QuotaLimits,
    write: QuotaLimits,
    windows: HashMap<QuotaKey, Window>,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            read: QuotaLimits::GOOGLE_DEFAULT,
            write: QuotaLimits::GOOGLE_DEFAULT,
            windows: HashMap::new(),
        }
    }
}

impl Quotas {
    fn limits(&self, kind: RequestKind) -> QuotaLimits {
        match kind {
            RequestKind::Read => self.read,
            RequestKind::Write => self.write,
        }
    }

    /// Counts a call of `user` in `project` at `now`, unless it would exceed a limit (the per-user one
    /// is named first when both would be). A refused call uses no quota.
    fn admit(&mut self, kind: RequestKind, project: &str, user: &str, now: Instant) -> Result<(), Exceeded> {
        let limits = self.limits(kind);
        let user_key = QuotaKey {
            kind,
            project: project.to_owned(),
            user: Some(user.to_owned()),
        };
        let project_key = QuotaKey {
            kind,
            project: project.to_owned(),
            user: None,
        };
        if self.window(&user_key, now).used >= limits.per_user {
            return Err(Exceeded {
                kind,
                per_user: true,
                limit: limits.per_user,
            });
        }
        if self.window(&project_key, now).used >= limits.per_project {
            return Err(Exceeded {
                kind,
                per_user: false,
                limit: limits.per_project,
            });
        }
        self.window(&user_key, now).used += 1;
        self.window(&project_key, now).used += 1;
        Ok(())
    }

    /// The counter's window at `now`: a fresh one when there was none or the last one ended.
    fn window(&mut self, key: &QuotaKey, now: Instant) -> &mut Window {
        let window = self
            .windows
            .entry(key.clone())
            .or_insert(Window { start: now, used: 0 });
        if now.saturating_duration_since(window.start) >= QUOTA_WINDOW {
            *window = Window { start: now, used: 0 };
        }
        window
    }
}

/// Google's answer to a call past a quota (HTTP 429), for a consumer with this project number.
fn quota_exceeded_body(exceeded: Exceeded, project_number: u64) -> Value {
    let (metric, metric_id, kind) = match exceeded.kind {
        RequestKind::Read => ("Read requests", "read_requests", "Read"),
        RequestKind::Write => ("Write requests", "write_requests", "Write"),
    };
    let (limit, limit_id) = if exceeded.per_user {
        (
            format!("{metric} per minute per user"),
            format!("{kind}RequestsPerMinutePerUser"),
        )
    } else {
        (
            format!("{metric} per minute"),
            format!("{kind}RequestsPerMinutePerProject"),
        )
    };
    let message = format!(
        "Quota exceeded for quota metric '{metric}' and limit '{limit}' of service 'sheets.googleapis.com' \
         for consumer 'project_number:{project_number}'."
    );
    json!({ "error": {
        "code": 429,
        "message": message,
        "status": status_name(429),
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {
                    "service": "sheets.googleapis.com",
                    "consumer": format!("projects/{project_number}"),
                    "quota_metric": format!("sheets.googleapis.com/{metric_id}"),
                    "quota_limit": limit_id,
                    "quota_limit_value": exceeded.limit.to_string(),
                    "quota_location": "global",
                }
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{
                    "description": "Request a higher quota limit.",
                    "url": "https://cloud.google.com/docs/quotas/help/request_increase"
                }]
            }
        ]
    }})
}

// ---------------------------------------------------------------------------------------------------
// Token endpoint

/// A refused token request: an OAuth error code and its description, answered with 400.
struct Refusal {
    error: &'static str,
    description: &'static str,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

fn invalid_grant(description: &'static str) -> Refusal {
    Refusal {
        error: "invalid_grant",
        description,
    }
}

fn injected(failure: InjectedFailure, body: Value) -> Response {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(body)).into_response();
    if let Some(seconds) = failure.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

async fn token(State(state): State<FakeSheets>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut inner = state.lock();
    if let Some(failure) = inner.token_failures.take() {
        let body = json!({ "error": "internal_failure", "error_description": "Injected failure." });
        return injected(failure, body);
    }
    if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER_GRANT) {
        return Refusal {
            error: "unsupported_grant_type",
            description: "Invalid grant_type.",
        }
        .into_response();
    }
    let Some(assertion) = form.get("assertion") else {
        return invalid_grant("Missing required parameter: assertion").into_response();
    };
    let account = match verify_assertion(&inner, assertion) {
        Ok(account) => account,
        Err(refusal) => return refusal.into_response(),
    };
    inner.tokens_issued += 1;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let access_token = format!("ya29.fake-{:08x}-{nanos:08x}", inner.tokens_issued);
    let lifetime = inner.token_lifetime;
    let expires_at = inner.now() + lifetime;
    inner
        .tokens
        .insert(access_token.clone(), IssuedToken { account, expires_at });
    Json(json!({
        "access_token": access_token,
        "expires_in": lifetime.as_secs(),
        "token_type": "Bearer",
    }))
    .into_response()
}

/// The assertion's service account, if the assertion is acceptable.
fn verify_assertion(inner: &Inner, assertion: &str) -> Result<String, Refusal> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| invalid_grant("Invalid JWT."))?;
    if header.alg != Algorithm::RS256 {
        return Err(invalid_grant("Invalid JWT: the signing algorithm must be RS256."));
    }
    let unverified: AssertionClaims = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
        .map_err(|_| invalid_grant("Invalid JWT: claims are missing or malformed."))?;
    let key = inner
        .accounts
        .get(&unverified.iss)
        .ok_or_else(|| invalid_grant("Invalid grant: account not found"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = LEEWAY_SECS;
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    match &inner.audience {
        Some(audience) => validation.set_audience(&[audience]),
        None => validation.validate_aud = false,
    }
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, key, &validation)
        .map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            match error.kind() {
                ErrorKind::InvalidSignature => invalid_grant("Invalid JWT Signature."),
                ErrorKind::InvalidAudience => invalid_grant("Invalid JWT: Failed audience check."),
                ErrorKind::ExpiredSignature => short_lived(),
                _ => invalid_grant("Invalid JWT."),
            }
        })?
        .claims;
    if claims.exp > claims.iat + MAX_ASSERTION_SECS || claims.iat > unix_now() + LEEWAY_SECS {
        return Err(short_lived());
    }
    if !claims
        .scope
        .split_whitespace()
        .any(|scope| scope == SPREADSHEETS_SCOPE)
    {
        return Err(Refusal {
            error: "invalid_scope",
            description: "Invalid OAuth scope or ID token audience provided.",
        });
    }
    Ok(claims.iss)
}

fn short_lived() -> Refusal {
    invalid_grant(
        "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. \
         Check your iat and exp values in the JWT claim.",
    )
}

// ---------------------------------------------------------------------------------------------------
// Sheets API

/// A Google API error answer.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

/// Google's status name of an HTTP status.
fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

fn google_error_body(status: u16, message: &str) -> Value {
    json!({ "error": { "code": status, "message": message, "status": status_name(status) } })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.status.as_u16();
        (self.status, Json(google_error_body(code, &self.message))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// Counts the call, applies an injected failure, checks the bearer token and the quotas; the answer to
/// send instead of doing the work, if any.
fn admit(inner: &mut Inner, headers: &HeaderMap, method: ApiMethod) -> Option<Response> {
    inner.api_calls += 1;
    *inner.method_calls.entry(method).or_default() += 1;
    let now = inner.now();
    let account = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| inner.tokens.get(token))
        .filter(|issued| now < issued.expires_at)
        .map(|issued| issued.account.clone());
    if let Some(failure) = inner.api_failures.take() {
        let body = match failure.status {
            429 => {
                let number = account.as_deref().map_or(UNKNOWN_PROJECT_NUMBER, |account| {
                    inner.project_number(project_of(account))
                });
                let exceeded = Exceeded {
                    kind: method.kind(),
                    per_user: true,
                    limit: inner.quotas.limits(method.kind()).per_user,
                };
                quota_exceeded_body(exceeded, number)
            }
            status => {
                let message = match status {
                    403 => "The caller does not have permission",
                    503 => "The service is currently unavailable.",
                    _ => "Internal error encountered.",
                };
                google_error_body(status, message)
            }
        };
        return Some(injected(failure, body));
    }
    let Some(account) = account else {
        return Some(
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login \
                 cookie or other valid authentication credential.",
            )
            .into_response(),
        );
    };
    let project = project_of(&account);
    match inner.quotas.admit(method.kind(), project, &account, now) {
        Ok(()) => None,
        Err(exceeded) => {
            inner.quota_refusals += 1;
            let body = quota_exceeded_body(exceeded, inner.project_number(project));
            Some((StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response())
        }
    }
}

/// `answer`, unless [`FakeSheets::fail_after_applying`] said to lose this call's answer: then the
/// failure it named, the work being done.
fn answered(inner: &mut Inner, method: ApiMethod, answer: impl IntoResponse) -> Response {
    match inner.lost_answers.get_mut(&method).and_then(FailureSwitch::take) {
        Some(failure) => {
            let message = match failure.status {
                503 => "The service is currently unavailable.",
                _ => "Internal error encountered.",
            };
            injected(failure, google_error_body(failure.status, message))
        }
        None => answer.into_response(),
    }
}

/// Sleeps for the configured latency, without holding the state's lock.
async fn round_trip(state: &FakeSheets) {
    let latency = state.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

fn spreadsheet<'a>(inner: &'a mut Inner, id: &str) -> Result<&'a mut Spreadsheet, ApiError> {
    if !inner.spreadsheets.contains_key(id) && inner.auto_create {
        let sheet_id = inner.next_sheet_id;
        inner.next_sheet_id += 1;
        let sheets = vec![Sheet {
            id: sheet_id,
            title: "Sheet1".to_owned(),
            grid: Vec::new(),
        }];
        inner.spreadsheets.insert(id.to_owned(), Spreadsheet { sheets });
    }
    inner
        .spreadsheets
        .get_mut(id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Requested entity was not found."))
}

/// The sheet and cells a range names.
fn resolve<'a>(spreadsheet: &'a mut Spreadsheet, range: &str) -> Result<(&'a mut Sheet, Area), ApiError> {
    let (index, area) = locate(spreadsheet, range)?;
    let sheet = spreadsheet
        .sheets
        .get_mut(index)
        .ok_or_else(|| ApiError::bad_request(format!("Unable to parse range: {range}")))?;
    Ok((sheet, area))
}

/// The index of the sheet a range names, and its cells.
fn locate(spreadsheet: &Spreadsheet, range: &str) -> Result<(usize, Area), ApiError> {
    let unparsable = || ApiError::bad_request(format!("Unable to parse range: {range}"));
    let (part, cells) = a1::split_sheet(range).ok_or_else(unparsable)?;
    let (index, area) = match part {
        SheetPart::Title(title) => {
            let index = spreadsheet
                .sheets
                .iter()
                .position(|s| s.title == title)
                .ok_or_else(unparsable)?;
            let area = match cells {
                Some(cells) => a1::parse_area(cells).ok_or_else(unparsable)?,
                None => Area::default(),
            };
            (index, area)
        }
        SheetPart::Bare(word) => match spreadsheet.sheets.iter().position(|s| s.title == word) {
            Some(index) => (index, Area::default()),
            None => (0, a1::parse_area(&word).ok_or_else(unparsable)?),
        },
    };
    if index >= spreadsheet.sheets.len() {
        return Err(unparsable());
    }
    Ok((index, area))
}

/// The cells of `area` as Google echoes a read range: bounds left open are filled in from the grid's
/// `(rows, columns)` (`A:A` → `A1:A1000`, `1:1` → `A1:Z1`, the whole sheet → `A1:Z1000`); a single cell
/// stays one (`B2`).
fn bounded_cells(area: Area, (rows, columns): (usize, usize)) -> String {
    let start = (area.start_col.unwrap_or(1), area.start_row.unwrap_or(1));
    let end = (area.end_col.unwrap_or(columns), area.end_row.unwrap_or(rows));
    let cell = |(col, row): (usize, usize)| format!("{}{row}", column_letters(col));
    if start == end {
        cell(start)
    } else {
        format!("{}:{}", cell(start), cell(end))
    }
}

/// `'Title'!A1:C3` for a written block.
fn block_range(title: &str, row: usize, col: usize, rows: usize, cols: usize) -> String {
    let last_row = row + rows.max(1) - 1;
    let last_col = col + cols.max(1) - 1;
    format!(
        "{}!{}{row}:{}{last_row}",
        quote_sheet_title(title),
        column_letters(col),
        column_letters(last_col)
    )
}

/// Reads the `values` of a write request, checking what Google checks.
fn request_values(body: &Bytes, url_range: &str) -> Result<Vec<Vec<Value>>, ApiError> {
    let body = json_body(body)?;
    if let Some(range) = body.get("range").and_then(Value::as_str)
        && range != url_range
    {
        return Err(ApiError::bad_request(format!(
            "Requested writing within range [{range}], but the URL names [{url_range}]."
        )));
    }
    block_values(&body)
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::bad_request("Invalid JSON payload received."))
}

/// The rows of a `ValueRange`, checking what Google checks.
fn block_values(body: &Value) -> Result<Vec<Vec<Value>>, ApiError> {
    match body.get("majorDimension").and_then(Value::as_str) {
        None | Some("ROWS") => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "The fake supports majorDimension ROWS only.",
            ));
        }
    }
    let rows: Vec<Vec<Value>> = serde_json::from_value(body.get("values").cloned().unwrap_or(Value::Null))
        .map_err(|_| ApiError::bad_request("Invalid value at 'data.values': a list of rows is required."))?;
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            if cell.is_array() || cell.is_object() {
                return Err(ApiError::bad_request(format!(
                    "Invalid values[{r}][{c}]: list_value or struct_value is not a cell value."
                )));
            }
        }
    }
    Ok(rows)
}

fn require_input_option(query: &HashMap<String, String>) -> Result<(), ApiError> {
    check_input_option(query.get("valueInputOption").map(String::as_str))
}

fn check_input_option(option: Option<&str>) -> Result<(), ApiError> {
    match option {
        Some("RAW" | "USER_ENTERED") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid valueInputOption: {other}"
        ))),
        None => Err(ApiError::bad_request(
            "'valueInputOption' is required but not specified",
        )),
    }
}

/// Writes `rows` with their top-left cell at (`row`, `col`), 1-based; null cells are skipped.
fn write_block(grid: &mut Vec<Vec<Value>>, row: usize, col: usize, rows: &[Vec<Value>]) {
    for (r, values) in rows.iter().enumerate() {
        let index = row - 1 + r;
        if grid.len() <= index {
            grid.resize_with(index + 1, Vec::new);
        }
        let cells = &mut grid[index];
        for (c, value) in values.iter().enumerate() {
            if value.is_null() {
                continue;
            }
            let column = col - 1 + c;
            if cells.len() <= column {
                cells.resize(column + 1, Value::Null);
            }
            cells[column] = value.clone();
        }
    }
}

fn is_empty_cell(value: &Value) -> bool {
    value.is_null() || value.as_str() == Some("")
}

/// A stored cell as Google formats it for reading.
fn formatted(value: &Value) -> Value {
    match value {
        Value::Null => Value::from(""),
        Value::Bool(true) => Value::from("TRUE"),
        Value::Bool(false) => Value::from("FALSE"),
        Value::Number(number) => Value::from(number.to_string()),
        other => other.clone(),
    }
}

async fn spreadsheet_meta(
    State(state): State<FakeSheets>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    round_trip(&state).await;
    let mut inner = state.lock();
    if let Some(refusal) = admit(&mut inner, &headers, ApiMethod::SpreadsheetsGet) {
        return Ok(refusal);
    }
    let spreadsheet = spreadsheet(&mut inner, &id)?;
    let sheets: Vec<Value> = spreadsheet
        .sheets
        .iter()
        .enumerate()
        .map(|(index, sheet)| {
            json!({ "properties": {
                "sheetId": sheet.id,
                "title": sheet.title,
                "index": index,
                "sheetType": "GRID",
                "gridProperties": {
                    "rowCount": sheet.dimensions().0,
                    "columnCount": sheet.dimensions().1
                }
            }})
        })
        .collect();
    let answer = json!({ "spreadsheetId": id, "properties": { "title": id }, "sheets": sheets });
    Ok(answered(&mut inner, ApiMethod::SpreadsheetsGet, Json(answer)))
}

async fn batch_update(
    State(state): State<FakeSheets>,
    Path(id_and_method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    round_trip(&state).await;
    let mut inner = state.lock();
    if let Some(refusal) = admit(&mut inner, &headers, ApiMethod::BatchUpdate) {
        return Ok(refusal);
    }
    let Some(id) = id_and_method.strip_suffix(":batchUpdate") else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Method not found."));
    };
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("Invalid JSON payload received."))?;
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    spreadsheet(&mut inner, id)?;
    let mut next_sheet_id = inner.next_sheet_id;
    let spreadsheet = spreadsheet(&mut inner, id)?;
    let mut replies = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let Some(title) = request
            .pointer("/addSheet/properties/title")
            .and_then(Value::as_str)
        else {
            return Err(ApiError::bad_request(format!(
                "Invalid requests[{i}]: the fake supports addSheet only."
            )));
        };
        if spreadsheet.sheets.iter().any(|s| s.title == title) {
            return Err(ApiError::bad_request(format!(
                "Invalid requests[{i}].addSheet: A sheet with the name \"{title}\" already exists. \
                 Please enter another name."
            )));
        }
        let sheet = Sheet {
            id: next_sheet_id,
            title: title.to_owned(),
            grid: Vec::new(),
        };
        next_sheet_id += 1;
        replies.push(json!({ "addSheet": { "properties": {
            "sheetId": sheet.id, "title": sheet.title, "index": spreadsheet.sheets.len(), "sheetType": "GRID"
        }}}));
        spreadsheet.sheets.push(sheet);
    }
    inner.next_sheet_id = next_sheet_id;
    let answer = json!({ "spreadsheetId": id, "replies": replies });
    Ok(answered(&mut inner, ApiMethod::BatchUpdate, Json(answer)))
}

async fn get_values(
    State(state): State<FakeSheets>,
    Path((id, range)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    round_trip(&state).await;
    let mut inner = state.lock();
    if let Some(refusal) = admit(&mut inner, &headers, ApiMethod::ValuesGet) {
        return Ok(refusal);
    }
    let (sheet, area) = resolve(spreadsheet(&mut inner, &id)?, &range)?;
    let first_row = area.start_row.unwrap_or(1);
    let first_col = area.start_col.unwrap_or(1);
    let mut values: Vec<Value> = Vec::new();
    for (index, stored) in sheet.grid.iter().enumerate().skip(first_row - 1) {
        if area.end_row.is_some_and(|end| index + 1 > end) {
            break;
        }
        let mut cells: Vec<Value> = stored
            .iter()
            .enumerate()
            .skip(first_col - 1)
            .take_while(|(c, _)| area.end_col.is_none_or(|end| *c < end))
            .map(|(_, cell)| cell.clone())
            .collect();
        while cells.last().is_some_and(is_empty_cell) {
            cells.pop();
        }
        values.push(Value::Array(cells.iter().map(formatted).collect()));
    }
    while values
        .last()
        .is_some_and(|row| row.as_array().is_some_and(Vec::is_empty))
    {
        values.pop();
    }
    let echoed = format!(
        "{}!{}",
        quote_sheet_title(&sheet.title),
        bounded_cells(area, sheet.dimensions())
    );
    let mut body = json!({ "range": echoed, "majorDimension": "ROWS" });
    if !values.is_empty() {
        body["values"] = Value::Array(values);
    }
    Ok(answered(&mut inner, ApiMethod::ValuesGet, Json(body)))
}

async fn update_values(
    State(state): State<FakeSheets>,
    Path((id, range)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    round_trip(&state).await;
    let mut inner = state.lock();
    if let Some(refusal) = admit(&mut inner, &headers, ApiMethod::ValuesUpdate) {
        return Ok(refusal);
    }
    require_input_option(&query)?;
    let rows = request_values(&body, &range)?;
    let (sheet, area) = resolve(spreadsheet(&mut inner, &id)?, &range)?;
    let (row, col) = block_start(&sheet.title, area, &range, &rows)?;
    write_block(&mut sheet.grid, row, col, &rows);
    let answer = update_answer(&id, &sheet.title, row, col, &rows);
    Ok(answered(&mut inner, ApiMethod::ValuesUpdate, Json(answer)))
}

/// Where a block of `rows` written to `area` starts (row, column), if it fits: a single-cell range
/// is only a start, a larger one must hold the whole block, as Google checks.
fn block_start(
    title: &str,
    area: Area,
    range: &str,
    rows: &[Vec<Value>],
) -> Result<(usize, usize), ApiError> {
    let row = area.start_row.unwrap_or(1);
    let col = area.start_col.unwrap_or(1);
    let height = rows.len();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let single_cell = area.start_row == area.end_row && area.start_col == area.end_col;
    let too_tall = area.end_row.is_some_and(|end| row + height > end + 1);
    let too_wide = area.end_col.is_some_and(|end| col + width > end + 1);
    if !single_cell && (too_tall || too_wide) {
        return Err(ApiError::bad_request(format!(
            "Requested writing within range [{range}], but tried writing to {}.",
            block_range(title, row, col, height, width)
        )));
    }
    Ok((row, col))
}

/// Google's `UpdateValuesResponse` for a block written at (`row`, `col`).
fn update_answer(id: &str, title: &str, row: usize, col: usize, rows: &[Vec<Value>]) -> Value {
    let height = rows.len();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    json!({
        "spreadsheetId": id,
        "updatedRange": block_range(title, row, col, height, width),
        "updatedRows": height,
        "updatedColumns": width,
        "updatedCells": rows.iter().map(Vec::len).sum::<usize>(),
    })
}

/// One block of a `values:batchUpdate`, checked and placed before anything is written.
struct PlacedBlock {
    sheet: usize,
    row: usize,
    col: usize,
    rows: Vec<Vec<Value>>,
}

/// `values:batchUpdate`: a `BatchUpdateValuesRequest` (`valueInputOption` and `data`, a list of
/// `ValueRange`s) written all or nothing, answered with a `BatchUpdateValuesResponse`. One write
/// request for the quota, however many ranges.
async fn batch_update_values(
    State(state): State<FakeSheets>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    round_trip(&state).await;
    let mut inner = state.lock();
    if let Some(refusal) = admit(&mut inner, &headers, ApiMethod::ValuesBatchUpdate) {
        return Ok(refusal);
    }
    let body = json_body(&body)?;
    check_input_option(body.get("valueInputOption").and_then(Value::as_str))?;
    let data = body
        .get("data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let spreadsheet = spreadsheet(&mut inner, &id)?;
    let blocks = data
        .iter()
        .enumerate()
        .map(|(i, block)| {
            place_block(spreadsheet, block).map_err(|error| ApiError {
                message: format!("Invalid data[{i}]: {}", error.message),
                ..error
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let responses = write_blocks(spreadsheet, &id, &blocks);
    let answer = batch_answer(&id, &blocks, responses);
    Ok(answered(&mut inner, ApiMethod::ValuesBatchUpdate, Json(answer)))
}

/// Writes blocks placed by [`place_block`]; the `UpdateValuesResponse` of each, in order.
fn write_blocks(spreadsheet: &mut Spreadsheet, id: &str, blocks: &[PlacedBlock]) -> Vec<Value> {
    let mut responses = Vec::with_capacity(blocks.len());
    for block in blocks {
        let sheet = &mut spreadsheet.sheets[block.sheet];
        write_block(&mut sheet.grid, block.row, block.col, &block.rows);
        responses.push(update_answer(id, &sheet.title, block.row, block.col, &block.rows));
    }
    responses
}

/// Checks one `ValueRange` of a batch and says where it goes.
fn place_block(spreadsheet: &Spreadsheet, block: &Value) -> Result<PlacedBlock, ApiError> {
    let range = block
        .get("range")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Unable to parse range: "))?;
    let rows = block_values(block)?;
    let (sheet, area) = locate(spreadsheet, range)?;
    let (row, col) = block_start(&spreadsheet.sheets[sheet].title, area, range, &rows)?;
    Ok(PlacedBlock {
        sheet,
        row,
        col,
        rows,
    })
}

/// Google's `BatchUpdateValuesResponse`: totals over the distinct rows, columns and sheets written.
fn batch_answer(id: &str, blocks: &[PlacedBlock], responses: Vec<Value>) -> Value {
    let mut rows = std::collections::HashSet::new();
    let mut cols = std::collections::HashSet::new();
    let mut cells = 0;
    for block in blocks {
        for (r, values) in block.rows.iter().enumerate() {
            rows.insert((block.sheet, block.row + r));
            cols.extend((0..values.len()).map(|c| (block.sheet, block.col + c)));
            cells += values.len();
        }
    }
    let sheets: std::collections::HashSet<usize> = blocks.iter().map(|b| b.sheet).collect();
    json!({
        "spreadsheetId": id,
        "totalUpdatedRows": rows.len(),
        "totalUpdatedColumns": cols.len(),
        "totalUpdatedCells": cells,
        "totalUpdatedSheets": sheets.len(),
        "responses": responses,
    })
}

async fn append_values(
    State(state): State<FakeSheets>,
    Path((id, range_and_method)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    round_trip(&state).await;
    let mut inner = state.lock();
    if let Some(refusal) = admit(&mut inner, &headers, ApiMethod::ValuesAppend) {
        return Ok(refusal);
    }
    let Some(range) = range_and_method.strip_suffix(":append") else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Method not found."));
    };
    require_input_option(&query)?;
    match query.get("insertDataOption").map(String::as_str) {
        None | Some("INSERT_ROWS" | "OVERWRITE") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid insertDataOption: {other}"
            )));
        }
    }
    let rows = request_values(&body, range)?;
    let (sheet, area) = resolve(spreadsheet(&mut inner, &id)?, range)?;
    let used_rows = sheet
        .grid
        .iter()
        .rposition(|row| !row.iter().all(is_empty_cell))
        .map_or(0, |i| i + 1);
    let used_cols = sheet.grid.iter().map(Vec::len).max().unwrap_or(0);
    let row = used_rows + 1;
    let col = area.start_col.unwrap_or(1);
    let height = rows.len();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    write_block(&mut sheet.grid, row, col, &rows);
    let mut body = json!({
        "spreadsheetId": id,
        "updates": {
            "spreadsheetId": id,
            "updatedRange": block_range(&sheet.title, row, col, height, width),
            "updatedRows": height,
            "updatedColumns": width,
            "updatedCells": rows.iter().map(Vec::len).sum::<usize>(),
        }
    });
    if used_rows > 0 {
        body["tableRange"] = Value::from(block_range(&sheet.title, 1, 1, used_rows, used_cols));
    }
    Ok(answered(&mut inner, ApiMethod::ValuesAppend, Json(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_keys_are_valid() {
        FakeSheets::demo().unwrap();
        jsonwebtoken::EncodingKey::from_rsa_pem(DEMO_PRIVATE_KEY_PEM.as_bytes()).unwrap();
        let key = crate::sheets::ServiceAccountKey::from_json(&demo_service_account_json("http://x/token"))
            .unwrap();
        assert_eq!(key.private_key_id.as_deref(), Some(DEMO_KEY_ID));
    }

    #[test]
    fn quotas_count_per_user_and_per_project_and_refill_after_a_minute() {
        let mut quotas = Quotas {
            write: QuotaLimits {
                per_project: 3,
                per_user: 2,
            },
            ..Quotas::default()
        };
        let start = Instant::now();
        let write = RequestKind::Write;
        assert_eq!(quotas.admit(write, "p", "a", start), Ok(()));
        assert_eq!(quotas.admit(write, "p", "a", start), Ok(()));
        let per_user = Exceeded {
            kind: write,
            per_user: true,
            limit: 2,
        };
        assert_eq!(quotas.admit(write, "p", "a", start), Err(per_user));
        // Reads and other projects have counters of their own.
        assert_eq!(quotas.admit(RequestKind::Read, "p", "a", start), Ok(()));
        assert_eq!(quotas.admit(write, "q", "a", start), Ok(()));
        // The project's third write is b's first; its fourth is refused although c has used nothing.
        assert_eq!(quotas.admit(write, "p", "b", start), Ok(()));
        let per_project = Exceeded {
            kind: write,
            per_user: false,
            limit: 3,
        };
        assert_eq!(quotas.admit(write, "p", "c", start), Err(per_project));
        // Refused calls used nothing, and a minute later every counter starts again.
        let almost = start + QUOTA_WINDOW - Duration::from_millis(1);
        assert_eq!(quotas.admit(write, "p", "a", almost), Err(per_user));
        let later = start + QUOTA_WINDOW;
        assert_eq!(quotas.admit(write, "p", "a", later), Ok(()));
        assert_eq!(quotas.admit(write, "p", "c", later), Ok(()));
    }

    #[test]
    fn quota_errors_are_googles() {
        let per_user = Exceeded {
            kind: RequestKind::Write,
            per_user: true,
            limit: 60,
        };
        let body = quota_exceeded_body(per_user, 100_000_000_001);
        assert_eq!(body["error"]["code"], json!(429));
        assert_eq!(body["error"]["status"], json!("RESOURCE_EXHAUSTED"));
        assert_eq!(
            body["error"]["message"],
            json!(
                "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per \
                 user' of service 'sheets.googleapis.com' for consumer 'project_number:100000000001'."
            )
        );
        let info = &body["error"]["details"][0];
        assert_eq!(info["@type"], json!("type.googleapis.com/google.rpc.ErrorInfo"));
        assert_eq!(info["reason"], json!("RATE_LIMIT_EXCEEDED"));
        assert_eq!(
            info["metadata"]["quota_limit"],
            json!("WriteRequestsPerMinutePerUser")
        );
        assert_eq!(
            info["metadata"]["quota_metric"],
            json!("sheets.googleapis.com/write_requests")
        );
        assert_eq!(info["metadata"]["quota_limit_value"], json!("60"));
        assert_eq!(info["metadata"]["consumer"], json!("projects/100000000001"));

        let per_project = Exceeded {
            kind: RequestKind::Read,
            per_user: false,
            limit: 300,
        };
        let body = quota_exceeded_body(per_project, 7);
        assert!(body["error"]["message"].as_str().unwrap().starts_with(
            "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' "
        ));
        assert_eq!(
            body["error"]["details"][0]["metadata"]["quota_limit"],
            json!("ReadRequestsPerMinutePerProject")
        );
    }

    #[test]
    fn service_accounts_belong_to_the_project_their_email_names() {
        assert_eq!(project_of(DEMO_CLIENT_EMAIL), "switchyard-demo");
        assert_eq!(project_of("someone@example.org"), "example.org");
        let fake = FakeSheets::demo().unwrap();
        assert_eq!(fake.project_number(DEMO_CLIENT_EMAIL), Some(FIRST_PROJECT_NUMBER));
        assert_eq!(fake.project_number("nobody@x.iam.gserviceaccount.com"), None);
    }

    #[test]
    fn read_ranges_are_echoed_with_their_open_bounds_filled_in() {
        let area = |cells: &str| a1::parse_area(cells).unwrap();
        assert_eq!(bounded_cells(area("A:A"), (1000, 26)), "A1:A1000");
        assert_eq!(bounded_cells(area("c:c"), (1500, 30)), "C1:C1500");
        assert_eq!(bounded_cells(area("1:1"), (1000, 26)), "A1:Z1");
        assert_eq!(bounded_cells(area("A2:B3"), (1000, 26)), "A2:B3");
        assert_eq!(bounded_cells(area("B2"), (1000, 26)), "B2");
        assert_eq!(bounded_cells(Area::default(), (1000, 26)), "A1:Z1000");
    }

    #[test]
    fn batch_answers_count_distinct_rows_columns_and_sheets() {
        let block = |sheet, row, col, rows: Vec<Vec<Value>>| PlacedBlock {
            sheet,
            row,
            col,
            rows,
        };
        let blocks = [
            block(0, 2, 1, vec![vec![json!("a"), json!("b")]]),
            block(0, 2, 2, vec![vec![json!("c")]]),
            block(1, 5, 1, vec![vec![json!("d")], vec![json!("e")]]),
        ];
        let answer = batch_answer("s", &blocks, vec![json!({}); 3]);
        assert_eq!(answer["totalUpdatedRows"], json!(3));
        assert_eq!(answer["totalUpdatedColumns"], json!(3));
        assert_eq!(answer["totalUpdatedCells"], json!(5));
        assert_eq!(answer["totalUpdatedSheets"], json!(2));
        assert_eq!(answer["responses"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn blocks_are_written_and_skipped_cells_kept() {
        let mut grid = Vec::new();
        write_block(&mut grid, 2, 2, &[vec![json!("a"), json!(1)]]);
        write_block(&mut grid, 2, 2, &[vec![Value::Null, json!(2)]]);
        assert_eq!(grid, vec![vec![], vec![Value::Null, json!("a"), json!(2)]]);
        assert_eq!(block_range("It's", 2, 2, 1, 2), "'It''s'!B2:C2");
    }
}
