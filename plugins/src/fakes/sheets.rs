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
//! * Spreadsheets must exist ([`FakeSheets::add_spreadsheet`], or [`FakeSheets::auto_create_spreadsheets`])
//!   (404 `NOT_FOUND`); a range must parse and name an existing sheet (400 `Unable to parse range`);
//!   writes need `valueInputOption`; cells must be strings, numbers, booleans or null.
//!
//! What it does: rows live in memory per (spreadsheet, sheet). An update writes from the range's
//! top-left cell (a null cell leaves the cell as it was); an append writes after the last non-empty
//! row and answers with the `updatedRange` (`'Responses'!A5:H5`); a read returns values as Google
//! formats them (numbers as strings) with empty trailing rows and cells trimmed.
//! [`FakeSheets::grid`] shows the stored cells for assertions, and [`FakeSheets::fail_next_api_calls`]
//! / [`FakeSheets::fail_next_token_requests`] make the next calls fail (e.g. 503 with `Retry-After`).
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
    expires_at: Instant,
}

struct Sheet {
    id: i64,
    title: String,
    grid: Vec<Vec<Value>>,
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
    token_failures: FailureSwitch,
    api_calls: u64,
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
                token_failures: FailureSwitch::default(),
                api_calls: 0,
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
        self.lock().accounts.insert(client_email.to_owned(), key);
        Ok(())
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
    if let Err(refusal) = verify_assertion(&inner, assertion) {
        return refusal.into_response();
    }
    inner.tokens_issued += 1;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let access_token = format!("ya29.fake-{:08x}-{nanos:08x}", inner.tokens_issued);
    let lifetime = inner.token_lifetime;
    inner.tokens.insert(
        access_token.clone(),
        IssuedToken {
            expires_at: Instant::now() + lifetime,
        },
    );
    Json(json!({
        "access_token": access_token,
        "expires_in": lifetime.as_secs(),
        "token_type": "Bearer",
    }))
    .into_response()
}

fn verify_assertion(inner: &Inner, assertion: &str) -> Result<(), Refusal> {
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
    Ok(())
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

/// Counts the call, applies an injected failure, checks the bearer token; the answer to send instead of
/// doing the work, if any.
fn admit(inner: &mut Inner, headers: &HeaderMap) -> Option<Response> {
    inner.api_calls += 1;
    if let Some(failure) = inner.api_failures.take() {
        let message = match failure.status {
            403 => "The caller does not have permission",
            429 => {
                "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per \
                 user'."
            }
            503 => "The service is currently unavailable.",
            _ => "Internal error encountered.",
        };
        return Some(injected(failure, google_error_body(failure.status, message)));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let live = token
        .and_then(|token| inner.tokens.get(token))
        .is_some_and(|issued| Instant::now() < issued.expires_at);
    (!live).then(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or \
             other valid authentication credential.",
        )
        .into_response()
    })
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
    let sheet = spreadsheet.sheets.get_mut(index).ok_or_else(unparsable)?;
    Ok((sheet, area))
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
    let body: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::bad_request("Invalid JSON payload received."))?;
    if let Some(range) = body.get("range").and_then(Value::as_str)
        && range != url_range
    {
        return Err(ApiError::bad_request(format!(
            "Requested writing within range [{range}], but the URL names [{url_range}]."
        )));
    }
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
    match query.get("valueInputOption").map(String::as_str) {
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
    let mut inner = state.lock();
    if let Some(refusal) = admit(&mut inner, &headers) {
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
                "gridProperties": { "rowCount": sheet.grid.len().max(1000), "columnCount": 26 }
            }})
        })
        .collect();
    Ok(Json(json!({ "spreadsheetId": id, "properties": { "title": id }, "sheets": sheets })).into_response())
}

async fn batch_update(
    State(state): State<FakeSheets>,
    Path(id_and_method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let mut inner = state.lock();
    if let Some(refusal) = admit(&mut inner, &headers) {
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
    Ok(Json(json!({ "spreadsheetId": id, "replies": replies })).into_response())
}

async fn get_values(
    State(state): State<FakeSheets>,
    Path((id, range)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let mut inner = state.lock();
    if let Some(refusal) = admit(&mut inner, &headers) {
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
    let cells = match a1::split_sheet(&range) {
        Some((_, Some(cells))) => cells.to_ascii_uppercase(),
        Some((SheetPart::Bare(word), None)) if word != sheet.title => word.to_ascii_uppercase(),
        _ => "A1:Z1000".to_owned(),
    };
    let echoed = format!("{}!{cells}", quote_sheet_title(&sheet.title));
    let mut body = json!({ "range": echoed, "majorDimension": "ROWS" });
    if !values.is_empty() {
        body["values"] = Value::Array(values);
    }
    Ok(Json(body).into_response())
}

async fn update_values(
    State(state): State<FakeSheets>,
    Path((id, range)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let mut inner = state.lock();
    if let Some(refusal) = admit(&mut inner, &headers) {
        return Ok(refusal);
    }
    require_input_option(&query)?;
    let rows = request_values(&body, &range)?;
    let (sheet, area) = resolve(spreadsheet(&mut inner, &id)?, &range)?;
    let row = area.start_row.unwrap_or(1);
    let col = area.start_col.unwrap_or(1);
    let height = rows.len();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let single_cell = area.start_row == area.end_row && area.start_col == area.end_col;
    if !single_cell {
        let too_tall = area.end_row.is_some_and(|end| row + height > end + 1);
        let too_wide = area.end_col.is_some_and(|end| col + width > end + 1);
        if too_tall || too_wide {
            return Err(ApiError::bad_request(format!(
                "Requested writing within range [{range}], but tried writing to {}.",
                block_range(&sheet.title, row, col, height, width)
            )));
        }
    }
    write_block(&mut sheet.grid, row, col, &rows);
    Ok(Json(json!({
        "spreadsheetId": id,
        "updatedRange": block_range(&sheet.title, row, col, height, width),
        "updatedRows": height,
        "updatedColumns": width,
        "updatedCells": rows.iter().map(Vec::len).sum::<usize>(),
    }))
    .into_response())
}

async fn append_values(
    State(state): State<FakeSheets>,
    Path((id, range_and_method)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let mut inner = state.lock();
    if let Some(refusal) = admit(&mut inner, &headers) {
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
    Ok(Json(body).into_response())
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
    fn blocks_are_written_and_skipped_cells_kept() {
        let mut grid = Vec::new();
        write_block(&mut grid, 2, 2, &[vec![json!("a"), json!(1)]]);
        write_block(&mut grid, 2, 2, &[vec![Value::Null, json!(2)]]);
        assert_eq!(grid, vec![vec![], vec![Value::Null, json!("a"), json!(2)]]);
        assert_eq!(block_range("It's", 2, 2, 1, 2), "'It''s'!B2:C2");
    }
}
