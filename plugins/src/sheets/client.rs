//! A minimal Google Sheets API v4 client: the calls the exporter needs and nothing else (read, update,
//! batch-update and append values; list and add sheets).
//!
//! Every call takes the [`TokenSource`] of the team whose spreadsheet it touches, so one client (one
//! connection pool, one base URL) serves every team. Values are written with
//! `valueInputOption=RAW`: what a respondent typed is stored as text, never parsed as a formula or a
//! number (`=IMPORTXML(...)` stays a string, `+254712345678` keeps its plus).
//!
//! When the API answers 401 to a cached token (revoked, or expired early), the client drops the token
//! and tries once more with a fresh one; a second 401 is an error.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use super::auth::TokenSource;
use super::error::SheetsError;
use crate::{excerpt, json_error_position, retry_after};

/// A block of cell values, as the values endpoints exchange it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueRange {
    /// The range covered, in A1 notation.
    pub range: String,
    /// `ROWS` (each inner list is a row) or `COLUMNS`.
    #[serde(default)]
    pub major_dimension: Option<String>,
    /// The values; Google leaves the field out when the range is empty, and trims empty trailing rows
    /// and cells.
    #[serde(default)]
    pub values: Vec<Vec<Value>>,
}

/// What an update (or the update part of an append) changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateValuesResponse {
    /// The spreadsheet.
    pub spreadsheet_id: String,
    /// The cells written, in A1 notation, e.g. `'Responses'!A5:H5`.
    pub updated_range: String,
    /// Rows written.
    #[serde(default)]
    pub updated_rows: u64,
    /// Columns written.
    #[serde(default)]
    pub updated_columns: u64,
    /// Cells written.
    #[serde(default)]
    pub updated_cells: u64,
}

/// The answer to an append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendValuesResponse {
    /// The spreadsheet.
    pub spreadsheet_id: String,
    /// The table the rows were appended to, as Google found it.
    #[serde(default)]
    pub table_range: Option<String>,
    /// What was written.
    pub updates: UpdateValuesResponse,
}

/// The answer to a `values:batchUpdate`: what each range of the request changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchUpdateValuesResponse {
    /// The spreadsheet.
    pub spreadsheet_id: String,
    /// Rows in which at least one cell was written.
    #[serde(default)]
    pub total_updated_rows: u64,
    /// Columns in which at least one cell was written.
    #[serde(default)]
    pub total_updated_columns: u64,
    /// Cells written.
    #[serde(default)]
    pub total_updated_cells: u64,
    /// Sheets in which at least one cell was written.
    #[serde(default)]
    pub total_updated_sheets: u64,
    /// One answer per range of the request, in the request's order.
    #[serde(default)]
    pub responses: Vec<UpdateValuesResponse>,
}

impl AppendValuesResponse {
    /// The number of the first row written (`'Responses'!A5:H5` → 5).
    pub fn first_row(&self) -> Option<u64> {
        super::a1::first_row(&self.updates.updated_range)
    }
}

#[derive(Deserialize)]
struct SpreadsheetMeta {
    #[serde(default)]
    sheets: Vec<SheetMeta>,
}

#[derive(Deserialize)]
struct SheetMeta {
    properties: SheetProperties,
}

#[derive(Deserialize)]
struct SheetProperties {
    title: String,
}

#[derive(Deserialize)]
struct GoogleErrorBody {
    error: GoogleError,
}

#[derive(Deserialize)]
struct GoogleError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: Option<String>,
}

/// A Google Sheets API v4 client.
#[derive(Debug, Clone)]
pub struct SheetsClient {
    base: Url,
    http: reqwest::Client,
}

impl SheetsClient {
    /// The real API's base URL.
    pub const GOOGLE_BASE_URL: &str = "https://sheets.googleapis.com";

    /// A client of the API at `base_url` (normally [`Self::GOOGLE_BASE_URL`]; a fake's address in
    /// tests), sending requests with `http`.
    ///
    /// # Errors
    ///
    /// [`SheetsError::InvalidBaseUrl`] when `base_url` is not an http(s) URL.
    pub fn new(base_url: &str, http: reqwest::Client) -> Result<Self, SheetsError> {
        let invalid = || SheetsError::InvalidBaseUrl {
            url: base_url.to_owned(),
        };
        let base = Url::parse(base_url).map_err(|_| invalid())?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid());
        }
        Ok(Self { base, http })
    }

    /// The HTTP client, for building a [`TokenSource`] that shares its connection pool.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The values in `range` (A1 notation, e.g. `'Responses'!1:1`), as Google formats them for display
    /// (numbers come back as strings).
    ///
    /// # Errors
    ///
    /// See [`SheetsError`]; every variant says whether to retry.
    pub async fn get_values(
        &self,
        auth: &TokenSource,
        spreadsheet_id: &str,
        range: &str,
    ) -> Result<ValueRange, SheetsError> {
        let url = self.url(&["v4", "spreadsheets", spreadsheet_id, "values", range], &[])?;
        self.call(auth, "reading values", || {
            self.http.request(Method::GET, url.clone())
        })
        .await
    }

    /// Writes `rows` into `range`, starting at its top-left cell, as raw values.
    ///
    /// # Errors
    ///
    /// See [`SheetsError`].
    pub async fn update_values(
        &self,
        auth: &TokenSource,
        spreadsheet_id: &str,
        range: &str,
        rows: &[Vec<Value>],
    ) -> Result<UpdateValuesResponse, SheetsError> {
        let url = self.url(
            &["v4", "spreadsheets", spreadsheet_id, "values", range],
            &[("valueInputOption", "RAW")],
        )?;
        let body = json!({ "range": range, "majorDimension": "ROWS", "values": rows });
        self.call(auth, "updating values", || {
            self.http.request(Method::PUT, url.clone()).json(&body)
        })
        .await
    }

    /// Writes each block of `data` (a range and its rows) from its range's top-left cell, as raw values,
    /// in one request (`values:batchUpdate`): one write against the quota, however many ranges.
    ///
    /// # Errors
    ///
    /// See [`SheetsError`]. Google checks every range before writing any.
    pub async fn batch_update_values(
        &self,
        auth: &TokenSource,
        spreadsheet_id: &str,
        data: &[ValueRange],
    ) -> Result<BatchUpdateValuesResponse, SheetsError> {
        let url = self.url(&["v4", "spreadsheets", spreadsheet_id, "values:batchUpdate"], &[])?;
        let body = json!({ "valueInputOption": "RAW", "data": data });
        self.call(auth, "updating rows", || {
            self.http.request(Method::POST, url.clone()).json(&body)
        })
        .await
    }

    /// Appends `rows` after the table found in `range` (normally `'<sheet>'!A1`), inserting new rows.
    ///
    /// # Errors
    ///
    /// See [`SheetsError`].
    pub async fn append_values(
        &self,
        auth: &TokenSource,
        spreadsheet_id: &str,
        range: &str,
        rows: &[Vec<Value>],
    ) -> Result<AppendValuesResponse, SheetsError> {
        let url = self.url(
            &[
                "v4",
                "spreadsheets",
                spreadsheet_id,
                "values",
                &format!("{range}:append"),
            ],
            &[("valueInputOption", "RAW"), ("insertDataOption", "INSERT_ROWS")],
        )?;
        let body = json!({ "range": range, "majorDimension": "ROWS", "values": rows });
        self.call(auth, "appending values", || {
            self.http.request(Method::POST, url.clone()).json(&body)
        })
        .await
    }

    /// The titles of the spreadsheet's sheets (tabs), in order.
    ///
    /// # Errors
    ///
    /// See [`SheetsError`].
    pub async fn sheet_titles(
        &self,
        auth: &TokenSource,
        spreadsheet_id: &str,
    ) -> Result<Vec<String>, SheetsError> {
        let url = self.url(
            &["v4", "spreadsheets", spreadsheet_id],
            &[("fields", "sheets.properties.title")],
        )?;
        let meta: SpreadsheetMeta = self
            .call(auth, "listing the sheets", || {
                self.http.request(Method::GET, url.clone())
            })
            .await?;
        Ok(meta
            .sheets
            .into_iter()
            .map(|sheet| sheet.properties.title)
            .collect())
    }

    /// Adds a sheet (tab) titled `title` at the end of the spreadsheet.
    ///
    /// # Errors
    ///
    /// See [`SheetsError`]; Google answers 400 when a sheet of that title exists already.
    pub async fn add_sheet(
        &self,
        auth: &TokenSource,
        spreadsheet_id: &str,
        title: &str,
    ) -> Result<(), SheetsError> {
        let url = self.url(
            &["v4", "spreadsheets", &format!("{spreadsheet_id}:batchUpdate")],
            &[],
        )?;
        let body = json!({ "requests": [{ "addSheet": { "properties": { "title": title } } }] });
        let _: Value = self
            .call(auth, "adding a sheet", || {
                self.http.request(Method::POST, url.clone()).json(&body)
            })
            .await?;
        Ok(())
    }

    /// `base` + the percent-encoded `segments` + `query`.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, SheetsError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| SheetsError::InvalidBaseUrl {
                url: self.base.to_string(),
            })?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Sends the request `build` makes with a bearer token, retrying once with a fresh token after a
    /// 401, and decodes a successful answer as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        auth: &TokenSource,
        during: &'static str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<T, SheetsError> {
        let mut response = self.send_once(auth, during, &build).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            auth.invalidate().await;
            response = self.send_once(auth, during, &build).await?;
        }
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response
            .text()
            .await
            .map_err(|source| SheetsError::Transport { during, source })?;
        if status.is_success() {
            return serde_json::from_str(&body).map_err(|error| SheetsError::UnexpectedResponse {
                during,
                reason: format!(
                    "the body does not have the documented shape ({})",
                    json_error_position(&error)
                ),
            });
        }
        let (code, message) = match serde_json::from_str::<GoogleErrorBody>(&body) {
            Ok(parsed) => (
                parsed.error.status.unwrap_or_else(|| reason_of(status)),
                parsed.error.message,
            ),
            Err(_) => (reason_of(status), excerpt(&body, 200)),
        };
        Err(SheetsError::Api {
            during,
            status: status.as_u16(),
            code,
            message,
            retry_after,
        })
    }

    async fn send_once(
        &self,
        auth: &TokenSource,
        during: &'static str,
        build: &impl Fn() -> RequestBuilder,
    ) -> Result<reqwest::Response, SheetsError> {
        let token = auth.token().await?;
        build()
            .bearer_auth(token.secret())
            .send()
            .await
            .map_err(|source| SheetsError::Transport { during, source })
    }
}

fn reason_of(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("error")
        .to_uppercase()
        .replace(' ', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_percent_encoded_as_one_segment() {
        let client = SheetsClient::new("http://127.0.0.1:1/prefix/", reqwest::Client::new()).unwrap();
        let url = client
            .url(
                &["v4", "spreadsheets", "abc", "values", "'My sheet/2'!A1:append"],
                &[("valueInputOption", "RAW")],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/prefix/v4/spreadsheets/abc/values/'My%20sheet%2F2'!A1:append\
             ?valueInputOption=RAW"
        );
        let url = client
            .url(&["v4", "spreadsheets", "abc", "values:batchUpdate"], &[])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/prefix/v4/spreadsheets/abc/values:batchUpdate"
        );
    }

    #[test]
    fn base_urls_must_be_http() {
        for bad in ["mailto:x@y", "not a url", "ftp://host/"] {
            let error = SheetsClient::new(bad, reqwest::Client::new()).unwrap_err();
            assert_eq!(error.disposition(), crate::Disposition::DeadLetter);
        }
    }
}
