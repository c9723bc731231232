//! The Google Sheets target of the exporter: the Sheets API through [`SheetsClient`], one spreadsheet per
//! team's installation (its config), one tab per form.

use std::sync::Arc;

use serde_json::Value;

use super::SheetsConfig;
use super::a1::{self, column_letters, quote_sheet_title};
use super::auth::TokenSource;
use super::client::{SheetsClient, UpdateValuesResponse, ValueRange};
use super::error::{ConfigError, ExportError, SheetsError};
use super::export::{Appended, SheetRef, Target, cell_text};
use super::index::RowIndex;
use crate::installations::{DEFAULT_INSTALLATION, Installations};

/// The spreadsheet of one team's installation.
#[derive(Debug)]
struct TeamSpreadsheet {
    spreadsheet_id: String,
    sheet_name: String,
    tokens: TokenSource,
}

/// The Google Sheets target: each installation's responses go to the spreadsheet its config names, each
/// form to its own sheet (tab) titled `<sheet_name> - <form_id>`, created when missing. Two installations
/// of one team have a config each, so a spreadsheet (and a service account) each; removing one's config
/// leaves the other's.
///
/// One tab per form because forms have different columns: a team using a household survey and a
/// clinic intake form would otherwise mix two headers in one sheet.
#[derive(Debug)]
pub struct GoogleSheets {
    client: SheetsClient,
    installations: Installations<TeamSpreadsheet>,
}

impl GoogleSheets {
    /// A target using `client`, with no team configured yet.
    pub fn new(client: SheetsClient) -> Self {
        Self {
            client,
            installations: Installations::new(),
        }
    }

    /// The title of the tab of `form_id` for a team whose config says `sheet_name`.
    pub fn tab_title(sheet_name: &str, form_id: &str) -> String {
        format!("{sheet_name} - {form_id}")
    }

    /// Applies the config of a team's default installation: [`GoogleSheets::configure_installation`].
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the config has no service-account key.
    pub fn configure_team(&self, team_id: &str, config: &SheetsConfig) -> Result<(), ConfigError> {
        self.configure_installation(team_id, DEFAULT_INSTALLATION, config)
    }

    /// Applies the config of a team's installation (on initialize or when the registry sends a new one),
    /// replacing any earlier one of that installation. Tokens already cached for it are dropped with the
    /// old config; the team's other installations keep theirs.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the config has no service-account key.
    pub fn configure_installation(
        &self,
        team_id: &str,
        installation: &str,
        config: &SheetsConfig,
    ) -> Result<(), ConfigError> {
        let key = config.service_account_key.as_ref().ok_or_else(|| ConfigError {
            field: "service_account_key",
            reason: "the Google Sheets target needs a service-account key".to_owned(),
        })?;
        let tokens = TokenSource::new(key, self.client.http().clone()).map_err(|error| ConfigError {
            field: "service_account_key",
            reason: error.to_string(),
        })?;
        let team = TeamSpreadsheet {
            spreadsheet_id: config.spreadsheet_id.clone(),
            sheet_name: config.sheet_name.clone(),
            tokens,
        };
        self.installations.insert(team_id, installation, team);
        Ok(())
    }

    /// Forgets the config of a team's default installation: [`GoogleSheets::remove_installation`].
    pub fn remove_team(&self, team_id: &str) -> bool {
        self.remove_installation(team_id, DEFAULT_INSTALLATION)
    }

    /// Forgets the config of a team's installation (the team removed it or disabled the plugin), leaving
    /// the team's other installations alone. Returns whether it had one.
    pub fn remove_installation(&self, team_id: &str, installation: &str) -> bool {
        self.installations.remove(team_id, installation)
    }

    fn team(&self, sheet: SheetRef<'_>) -> Result<Arc<TeamSpreadsheet>, ExportError> {
        self.installations
            .get(sheet.team_id, sheet.installation)
            .ok_or_else(|| ExportError::TeamNotConfigured {
                team_id: sheet.team_id.to_owned(),
                installation: sheet.installation.to_owned(),
            })
    }
}

impl Target for GoogleSheets {
    async fn read_header(&self, sheet: SheetRef<'_>) -> Result<Option<Vec<String>>, ExportError> {
        let team = self.team(sheet)?;
        let tab = Self::tab_title(&team.sheet_name, sheet.form_id);
        let titles = self
            .client
            .sheet_titles(&team.tokens, &team.spreadsheet_id)
            .await?;
        if !titles.contains(&tab) {
            self.client
                .add_sheet(&team.tokens, &team.spreadsheet_id, &tab)
                .await?;
            return Ok(None);
        }
        let range = format!("{}!1:1", quote_sheet_title(&tab));
        let values = self
            .client
            .get_values(&team.tokens, &team.spreadsheet_id, &range)
            .await?;
        Ok(values
            .values
            .into_iter()
            .next()
            .map(|row| row.iter().map(cell_text).collect()))
    }

    async fn write_header(&self, sheet: SheetRef<'_>, header: &[String]) -> Result<(), ExportError> {
        let team = self.team(sheet)?;
        let range = format!(
            "{}!1:1",
            quote_sheet_title(&Self::tab_title(&team.sheet_name, sheet.form_id))
        );
        let row: Vec<Value> = header.iter().map(|h| Value::from(h.as_str())).collect();
        self.client
            .update_values(&team.tokens, &team.spreadsheet_id, &range, &[row])
            .await?;
        Ok(())
    }

    async fn read_row_ids(&self, sheet: SheetRef<'_>, column: usize) -> Result<RowIndex, ExportError> {
        let team = self.team(sheet)?;
        let letters = column_letters(column + 1);
        let range = format!(
            "{}!{letters}:{letters}",
            quote_sheet_title(&Self::tab_title(&team.sheet_name, sheet.form_id))
        );
        let answer = self
            .client
            .get_values(&team.tokens, &team.spreadsheet_id, &range)
            .await?;
        // Google answers `'Tab'!A1:A1000` for `A:A`; its values start at the answer's first row.
        let first_row = a1::first_row(&answer.range).unwrap_or(1);
        let cells = answer.values.iter().map(|row| row.first().map(cell_text));
        Ok(RowIndex::from_column(first_row, cells))
    }

    /// One `values:batchUpdate` with a range per row: one write against the quota for all of them.
    async fn update_rows(
        &self,
        sheet: SheetRef<'_>,
        rows: &[(u64, Vec<Value>)],
    ) -> Result<Vec<Appended>, ExportError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let team = self.team(sheet)?;
        let tab = quote_sheet_title(&Self::tab_title(&team.sheet_name, sheet.form_id));
        let data: Vec<ValueRange> = rows
            .iter()
            .map(|(row, cells)| ValueRange {
                range: format!("{tab}!A{row}:{}{row}", column_letters(cells.len())),
                major_dimension: Some("ROWS".to_owned()),
                values: vec![cells.clone()],
            })
            .collect();
        let answer = self
            .client
            .batch_update_values(&team.tokens, &team.spreadsheet_id, &data)
            .await?;
        updated_rows(&answer.spreadsheet_id, &answer.responses, rows.len())
    }

    async fn append_rows(
        &self,
        sheet: SheetRef<'_>,
        rows: &[Vec<Value>],
    ) -> Result<Vec<Appended>, ExportError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let team = self.team(sheet)?;
        let range = format!(
            "{}!A1",
            quote_sheet_title(&Self::tab_title(&team.sheet_name, sheet.form_id))
        );
        let answer = self
            .client
            .append_values(&team.tokens, &team.spreadsheet_id, &range, rows)
            .await?;
        let updated = &answer.updates.updated_range;
        let ranges = a1::row_ranges(updated, rows.len()).ok_or_else(|| SheetsError::UnexpectedResponse {
            during: "appending values",
            reason: format!(
                "the updated range {updated:?} does not name the {} rows sent",
                rows.len()
            ),
        })?;
        Ok(ranges
            .into_iter()
            .map(|(range, row_number)| Appended {
                spreadsheet_id: answer.spreadsheet_id.clone(),
                range,
                row_number,
            })
            .collect())
    }
}

/// Where each row of a `values:batchUpdate` landed, from its answers (one per range, in order).
fn updated_rows(
    spreadsheet_id: &str,
    answers: &[UpdateValuesResponse],
    rows: usize,
) -> Result<Vec<Appended>, ExportError> {
    let unexpected = |reason: String| SheetsError::UnexpectedResponse {
        during: "updating rows",
        reason,
    };
    if answers.len() != rows {
        return Err(unexpected(format!("{} answers for the {rows} rows sent", answers.len())).into());
    }
    answers
        .iter()
        .map(|answer| {
            let range = &answer.updated_range;
            let row_number = a1::first_row(range)
                .ok_or_else(|| unexpected(format!("the updated range {range:?} names no row")))?;
            Ok(Appended {
                spreadsheet_id: spreadsheet_id.to_owned(),
                range: range.clone(),
                row_number,
            })
        })
        .collect()
}
