//! The exporter: form events shape each form's [`Layout`], response events become rows of a
//! [`Target`], one row per response.
//!
//! ```text
//!   FormCreated / FormUpdated ──► remember the newest form of (team, form)   (no I/O)
//!   ResponseSubmitted / ResponseUpdated
//!        │ grouped by (team, form): one event alone, or the responses of a batch to one tab
//!        │ first time this process writes (team, form): read the target's header row back and build
//!        │   the layout from it, then merge the newest form into it; read the response_id column back
//!        │   into the tab's row index (response_id → row number)
//!        │ answers without a column: add columns named by question id
//!        │ header changed: rewrite it (Target::write_header), once for the group
//!        ├─► responses the index knows: overwrite their rows in one call (Target::update_rows)
//!        └─► the others: append them in one call (Target::append_rows), add their rows to the index
//!                                                        ──► an ExportOutcome::Exported per response
//! ```
//!
//! Writes to one (team, form) are serialised by an async lock, so a header rewrite, the row writes
//! around it and the row index never interleave; different forms proceed in parallel.
//!
//! **Batches.** [`SheetsExporter::export_batch`] takes several events (the runtime hands over one team's
//! at a time) and writes each tab at most twice: one header check (and rewrite, if needed), then one
//! [`Target::update_rows`] for the responses that have a row and one [`Target::append_rows`] for the
//! others, each in the events' order. Google counts requests, not rows, against its per-minute quotas
//! (60 writes per minute per service account by default), so a batch of 50 responses to one form costs
//! one or two writes instead of 50. The batch's form events are recorded first, before any row is
//! written: they come from other lanes than the responses, so their order relative to the responses is
//! not a guarantee anyway, and a form known before its responses spares columns named by question id.
//! The tabs of a batch are written one after the other, in the order of their first response. A tab
//! whose write fails gives all of its responses the same error (so the same retry or dead letter); the
//! other tabs are written regardless.
//!
//! **One row per response.** The first write of a `response_id` appends its row; every later write of
//! it (a `ResponseUpdated`, or the same event delivered again) overwrites that row with the newest
//! values, `submitted_at` staying the original one. Two events of one response in the same batch make
//! one row, with the values of the later. The row of each response comes from the tab's row index, kept
//! in memory: built once per process from the sheet's `response_id` column (one read), then extended
//! with the rows each append reports. A sheet without a header row is taken to have no rows, so a new
//! tab costs no read.
//!
//! **After a restart** the layouts and indexes are gone. Before its first write to a sheet the exporter
//! reads the header row back and maps its cells to the questions of the form by label (or id), so the
//! runtime should feed it the current forms ([`SheetsExporter::form_created`], e.g. from the forms table
//! it keeps) before responses. A response to a form it never saw is written under columns named by
//! question id, appended after the existing ones: nothing written earlier moves, but such a sheet then
//! has a label column and an id column for the same question. The `response_id` column is read back
//! too, so a response delivered again after the restart overwrites its row.
//!
//! **At least once.** The delivery engine repeats an event whose outcome it did not see (a worker crash,
//! a lost answer). A repeat of a written response finds it in the index and overwrites its row. An
//! append whose outcome is unknown (a timeout, a reset connection, a 5xx: any error whose disposition is
//! [`Disposition::Retry`]) may have been applied, so the tab's index is dropped then: the retry reads
//! the `response_id` column again before writing and overwrites the rows it finds there. The same goes
//! for a failed overwrite (harmless to redo; the CSV target fails one whose row is gone). A refused
//! write (`429`, `403`, `400`) changed nothing and keeps the index.
//!
//! **Other processes.** The index is one process's view. A team's events are in one partition (the record
//! key is the team), so one process at a time writes a team's sheets, but the partition can go to another
//! worker and come back (a worker joins and leaves): the other worker appends rows this process's index
//! does not have, and the events it did not commit come back here. So before every append the
//! `response_id` column is read again (unless it was read in the same call): a response found there is
//! overwritten instead. That read costs one `values.get` per append call, counted against Google's read
//! quota (60 a minute per user by default), which is the size of the write quota the appends are under.
//! The effects chaos run found the second rows this prevents (`docs/reliability.md`).
//!
//! **What is left.** Nothing in the Sheets API makes an append conditional. During a rebalance the old
//! owner of a partition may still be finishing a batch while the new owner starts on the same events.
//! Two processes writing one sheet at the same moment like that can both append a response neither has
//! seen in the sheet: it then has two rows, and
//! later writes overwrite only one of them (the last, after a restart) while the other keeps the older
//! values. Responses appended twice before rows were overwritten in place keep their extra rows the
//! same way. And the index trusts row numbers: sorting the sheet or deleting rows in it while a process
//! runs makes that process overwrite whatever row now has the number, until it restarts or a write of
//! unknown outcome makes it read the column again.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::Serialize;
use serde_json::Value;
use switchyard_schemas::events::{
    Form, FormCreated, FormUpdated, Response, ResponseSubmitted, ResponseUpdated,
};

use super::a1::{self, column_letters, quote_sheet_title};
use super::auth::TokenSource;
use super::client::{SheetsClient, UpdateValuesResponse, ValueRange};
use super::error::{ConfigError, ExportError, SheetsError};
use super::index::{self, RowIndex, Slot};
use super::layout::Layout;
use super::{SheetsConfig, csv};
use crate::Disposition;

/// The sheet of one (team, form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SheetRef<'a> {
    /// The owning team.
    pub team_id: &'a str,
    /// The form.
    pub form_id: &'a str,
}

/// Where a row was written (appended, or overwritten in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The spreadsheet id (Google) or the file's path (CSV).
    pub spreadsheet_id: String,
    /// The cells written in A1 notation, e.g. `'Responses - f-1'!A5:K5`.
    pub range: String,
    /// The row's number, counting the header as row 1.
    pub row_number: u64,
}

/// Somewhere rows can be written: a Google spreadsheet, a directory of CSV files.
///
/// The exporter calls [`Target::read_header`] once per (team, form) per process, before its first
/// write, and [`Target::read_row_ids`] when the header was there (again after a write whose outcome is
/// unknown); then [`Target::write_header`] whenever the columns change, [`Target::update_rows`] for the
/// responses that have a row and [`Target::append_rows`] for the others, once per response or per
/// group of responses of a batch. Calls for one sheet never overlap.
pub trait Target: Send + Sync {
    /// The sheet's current header row, or `None` when the sheet is new or empty (then it is taken to
    /// have no rows at all). May create the sheet.
    fn read_header(
        &self,
        sheet: SheetRef<'_>,
    ) -> impl Future<Output = Result<Option<Vec<String>>, ExportError>> + Send;

    /// Replaces the sheet's header row with `header` (which only ever grows).
    fn write_header(
        &self,
        sheet: SheetRef<'_>,
        header: &[String],
    ) -> impl Future<Output = Result<(), ExportError>> + Send;

    /// The row of each response id in the sheet's column `column` (0-based: the layout's `response_id`
    /// column), read from the sheet in one call. Row 1, the header, is not an id.
    fn read_row_ids(
        &self,
        sheet: SheetRef<'_>,
        column: usize,
    ) -> impl Future<Output = Result<RowIndex, ExportError>> + Send;

    /// Overwrites existing rows in one write (one API call, one file rewrite): each `(row number,
    /// cells)` from the first column on. Says where each landed, in the same order. No rows, no write.
    fn update_rows(
        &self,
        sheet: SheetRef<'_>,
        rows: &[(u64, Vec<Value>)],
    ) -> impl Future<Output = Result<Vec<Appended>, ExportError>> + Send;

    /// Appends `rows` after the sheet's last row in one write (one API call, one file write), and says
    /// where each landed, in the same order. No rows, no write.
    fn append_rows(
        &self,
        sheet: SheetRef<'_>,
        rows: &[Vec<Value>],
    ) -> impl Future<Output = Result<Vec<Appended>, ExportError>> + Send;

    /// Appends one row after the sheet's last row, through [`Target::append_rows`].
    fn append_row(
        &self,
        sheet: SheetRef<'_>,
        row: &[Value],
    ) -> impl Future<Output = Result<Appended, ExportError>> + Send {
        async move {
            let appended = self.append_rows(sheet, &[row.to_vec()]).await?;
            let reported = appended.len();
            let [one] = <[Appended; 1]>::try_from(appended)
                .map_err(|_| ExportError::AppendMismatch { given: 1, reported })?;
            Ok(one)
        }
    }
}

/// One event handed to [`SheetsExporter::export_batch`].
#[derive(Debug, Clone, Copy)]
pub enum ExportEvent<'a> {
    /// A new form.
    FormCreated(&'a FormCreated),
    /// A form's new version.
    FormUpdated(&'a FormUpdated),
    /// A new response.
    ResponseSubmitted(&'a ResponseSubmitted),
    /// An edited response.
    ResponseUpdated(&'a ResponseUpdated),
}

/// What became of one event of a batch. The responses of one tab share the error of its failed write,
/// hence the [`Arc`].
pub type BatchResult = Result<ExportOutcome, Arc<ExportError>>;

/// What the exporter did with an event, for the runtime's result event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ExportOutcome {
    /// A response was written as a row.
    Exported {
        /// The spreadsheet id (Google) or the CSV file's path.
        spreadsheet_id: String,
        /// The cells written, in A1 notation.
        range: String,
        /// The row's number (the header is row 1).
        row_number: u64,
        /// Whether the header row was rewritten first (in a batch: before the rows of its tab).
        header_changed: bool,
        /// Whether the response had a row already, overwritten with these values (an edit, or the
        /// same event delivered again); `false` when the row was appended.
        updated: bool,
    },
    /// A form event was recorded; the header is written with the next row.
    FormRecorded {
        /// Whether the form's columns will change.
        header_changed: bool,
    },
    /// A form event older than the version already known was ignored.
    StaleForm {
        /// The version known.
        known_version: i32,
        /// The version of the event.
        event_version: i32,
    },
}

#[derive(Default)]
struct FormState {
    /// The newest version of the form seen.
    form: Option<Form>,
    /// `None` until the header was read back from the target.
    layout: Option<Layout>,
    /// Whether the target's header row is behind the layout.
    header_dirty: bool,
    /// `None` until the `response_id` column was read back, and again after a write whose outcome is
    /// unknown.
    index: Option<RowIndex>,
}

type FormKey = (String, String);

/// The sheets-export plugin's logic over a [`Target`]. Safe to share between tasks.
pub struct SheetsExporter<T> {
    target: T,
    forms: Mutex<HashMap<FormKey, Arc<tokio::sync::Mutex<FormState>>>>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for SheetsExporter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SheetsExporter")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<T: Target> SheetsExporter<T> {
    /// An exporter writing to `target`, knowing no forms yet.
    pub fn new(target: T) -> Self {
        Self {
            target,
            forms: Mutex::new(HashMap::new()),
        }
    }

    /// The target.
    pub fn target(&self) -> &T {
        &self.target
    }

    /// Records a new form.
    pub async fn form_created(&self, event: &FormCreated) -> ExportOutcome {
        self.record_form(&event.form).await
    }

    /// Records a form's new version; its new questions become columns with the next row written.
    pub async fn form_updated(&self, event: &FormUpdated) -> ExportOutcome {
        self.record_form(&event.form).await
    }

    /// Writes a new response as a row.
    ///
    /// # Errors
    ///
    /// The target's errors; each says, through `disposition()`, whether to retry.
    pub async fn response_submitted(&self, event: &ResponseSubmitted) -> Result<ExportOutcome, ExportError> {
        self.export(&event.response).await
    }

    /// Overwrites the row of an edited response with its new values, `submitted_at` staying the
    /// original one; appends it if it has no row yet (see the module docs).
    ///
    /// # Errors
    ///
    /// As [`SheetsExporter::response_submitted`].
    pub async fn response_updated(&self, event: &ResponseUpdated) -> Result<ExportOutcome, ExportError> {
        self.export(&event.response).await
    }

    /// The columns currently known for (team, form), if it was written to or announced.
    pub async fn layout(&self, team_id: &str, form_id: &str) -> Option<Layout> {
        let slot = self.slot(team_id, form_id);
        let state = slot.lock().await;
        state
            .layout
            .clone()
            .or_else(|| state.form.as_ref().map(Layout::from_form))
    }

    fn slot(&self, team_id: &str, form_id: &str) -> Arc<tokio::sync::Mutex<FormState>> {
        let mut forms = self.forms.lock().unwrap_or_else(PoisonError::into_inner);
        forms
            .entry((team_id.to_owned(), form_id.to_owned()))
            .or_default()
            .clone()
    }

    async fn record_form(&self, form: &Form) -> ExportOutcome {
        let slot = self.slot(&form.team_id, &form.id);
        let mut guard = slot.lock().await;
        let state = &mut *guard;
        if let Some(known) = &state.form
            && known.version > form.version
        {
            return ExportOutcome::StaleForm {
                known_version: known.version,
                event_version: form.version,
            };
        }
        let header_changed = match &mut state.layout {
            Some(layout) => layout.merge(form),
            None => {
                let before = state.form.as_ref().map(Layout::from_form);
                before.is_none_or(|before| Layout::from_form(form).header() != before.header())
            }
        };
        state.header_dirty |= header_changed && state.layout.is_some();
        state.form = Some(form.clone());
        ExportOutcome::FormRecorded { header_changed }
    }

    /// Exports a batch of events, normally one team's: form events are recorded first (in order), then
    /// each (team, form) tab gets one header check, one [`Target::update_rows`] for its responses that
    /// have a row and one [`Target::append_rows`] for the others, in the events' order (see the module
    /// docs). One result per event, in the events' order;
    /// the responses of a tab whose write failed all carry that failure, whose `disposition()` says
    /// whether to retry them.
    pub async fn export_batch(&self, events: &[ExportEvent<'_>]) -> Vec<BatchResult> {
        /// Where an event's result comes from.
        enum Source {
            Recorded(ExportOutcome),
            /// The tab's index and the response's position among the tab's rows.
            Row(usize, usize),
        }
        let mut sources = Vec::with_capacity(events.len());
        let mut tabs: Vec<Vec<&Response>> = Vec::new();
        let mut tab_of: HashMap<(&str, &str), usize> = HashMap::new();
        for event in events {
            let response = match event {
                ExportEvent::FormCreated(created) => {
                    sources.push(Source::Recorded(self.record_form(&created.form).await));
                    continue;
                }
                ExportEvent::FormUpdated(updated) => {
                    sources.push(Source::Recorded(self.record_form(&updated.form).await));
                    continue;
                }
                ExportEvent::ResponseSubmitted(submitted) => &submitted.response,
                ExportEvent::ResponseUpdated(updated) => &updated.response,
            };
            let key = (response.team_id.as_str(), response.form_id.as_str());
            let tab = *tab_of.entry(key).or_insert_with(|| {
                tabs.push(Vec::new());
                tabs.len() - 1
            });
            sources.push(Source::Row(tab, tabs[tab].len()));
            tabs[tab].push(response);
        }
        let mut written = Vec::with_capacity(tabs.len());
        for responses in &tabs {
            written.push(self.export_tab(responses).await.map_err(Arc::new));
        }
        sources
            .into_iter()
            .map(|source| match source {
                Source::Recorded(outcome) => Ok(outcome),
                Source::Row(tab, position) => match &written[tab] {
                    Ok(outcomes) => outcomes.get(position).cloned().ok_or_else(|| {
                        Arc::new(ExportError::AppendMismatch {
                            given: tabs[tab].len(),
                            reported: outcomes.len(),
                        })
                    }),
                    Err(error) => Err(Arc::clone(error)),
                },
            })
            .collect()
    }

    async fn export(&self, response: &Response) -> Result<ExportOutcome, ExportError> {
        let outcomes = self.export_tab(&[response]).await?;
        let reported = outcomes.len();
        let [outcome] = <[ExportOutcome; 1]>::try_from(outcomes)
            .map_err(|_| ExportError::AppendMismatch { given: 1, reported })?;
        Ok(outcome)
    }

    /// Writes `responses`, all of one (team, form) and not empty, as rows of its sheet: the header first
    /// if it changed, then the rows. One outcome per response, in order.
    async fn export_tab(&self, responses: &[&Response]) -> Result<Vec<ExportOutcome>, ExportError> {
        let Some(first) = responses.first() else {
            return Ok(Vec::new());
        };
        let sheet = SheetRef {
            team_id: &first.team_id,
            form_id: &first.form_id,
        };
        let slot = self.slot(sheet.team_id, sheet.form_id);
        let mut guard = slot.lock().await;
        let state = &mut *guard;
        let (layout, index, header_dirty, index_fresh) = self.load_sheet(sheet, state).await?;
        for response in responses {
            *header_dirty |= layout.add_answer_columns(response);
        }
        let header_changed = *header_dirty;
        if header_changed {
            self.target.write_header(sheet, &layout.header()).await?;
            *header_dirty = false;
        }
        let written = self
            .write_rows(sheet, layout, index, index_fresh, responses)
            .await;
        if let Err(error) = &written
            && matches!(error.disposition(), Disposition::Retry { .. })
        {
            // The write may have been applied: read the response_id column again before the next one.
            state.index = None;
        }
        Ok(written?
            .into_iter()
            .map(|(written, updated)| ExportOutcome::Exported {
                spreadsheet_id: written.spreadsheet_id,
                range: written.range,
                row_number: written.row_number,
                header_changed,
                updated,
            })
            .collect())
    }

    /// The sheet's layout, row index and header flag, reading back from the target what this process
    /// does not know yet: the header row (once), the `response_id` column (once, and after a write
    /// whose outcome is unknown; not for a sheet without a header, which has no rows). The last value
    /// says whether the index was read (or found empty) just now.
    async fn load_sheet<'s>(
        &self,
        sheet: SheetRef<'_>,
        state: &'s mut FormState,
    ) -> Result<(&'s mut Layout, &'s mut RowIndex, &'s mut bool, bool), ExportError> {
        let FormState {
            form,
            layout,
            header_dirty,
            index,
        } = state;
        let fresh = index.is_none();
        if layout.is_none() {
            let existing = self.target.read_header(sheet).await?.filter(|h| !h.is_empty());
            let mut read = existing.as_deref().map_or_else(Layout::new, Layout::from_header);
            if let Some(form) = form {
                read.merge(form);
            }
            *header_dirty = existing
                .as_ref()
                .is_none_or(|existing| *existing != read.header());
            if existing.is_none() {
                *index = Some(RowIndex::default());
            }
            *layout = Some(read);
        }
        let layout = layout.get_or_insert_with(Layout::new);
        if index.is_none() {
            let read = self
                .target
                .read_row_ids(sheet, layout.response_id_column())
                .await?;
            *index = Some(read);
        }
        Ok((
            layout,
            index.get_or_insert_with(RowIndex::default),
            header_dirty,
            fresh,
        ))
    }

    /// Writes the rows of `responses`: the ones `index` knows overwrite their rows in one
    /// [`Target::update_rows`], the others go in one [`Target::append_rows`] and join the index. An id
    /// twice in the group is written once, with its last values. Each response's row and whether it was
    /// overwritten, in order.
    ///
    /// Before an append the `response_id` column is read again, unless `index_fresh` (read in this very
    /// call): another process may have appended some of these responses since this one read it, while
    /// their partition was away in a rebalance, and would otherwise get a second row.
    async fn write_rows(
        &self,
        sheet: SheetRef<'_>,
        layout: &Layout,
        index: &mut RowIndex,
        index_fresh: bool,
        responses: &[&Response],
    ) -> Result<Vec<(Appended, bool)>, ExportError> {
        let ids = || responses.iter().map(|r| r.id.as_str());
        let mut plan = index::plan(ids(), index);
        if !plan.appends.is_empty() && !index_fresh {
            *index = self
                .target
                .read_row_ids(sheet, layout.response_id_column())
                .await?;
            plan = index::plan(ids(), index);
        }
        let updates: Vec<(u64, Vec<Value>)> = plan
            .updates
            .iter()
            .map(|&(row, position)| (row, layout.row(responses[position])))
            .collect();
        let mut updated = Vec::new();
        if !updates.is_empty() {
            updated = checked(updates.len(), self.target.update_rows(sheet, &updates).await?)?;
        }
        let appends: Vec<Vec<Value>> = plan
            .appends
            .iter()
            .map(|&position| layout.row(responses[position]))
            .collect();
        let mut appended = Vec::new();
        if !appends.is_empty() {
            appended = checked(appends.len(), self.target.append_rows(sheet, &appends).await?)?;
        }
        for (&position, row) in plan.appends.iter().zip(&appended) {
            index.insert(responses[position].id.clone(), row.row_number);
        }
        Ok(plan
            .slots
            .iter()
            .map(|slot| match *slot {
                Slot::Update(k) => (updated[k].clone(), true),
                Slot::Append(k) => (appended[k].clone(), false),
            })
            .collect())
    }
}

/// `written` if a target reported as many rows as it was `given`.
fn checked(given: usize, written: Vec<Appended>) -> Result<Vec<Appended>, ExportError> {
    if written.len() == given {
        Ok(written)
    } else {
        Err(ExportError::AppendMismatch {
            given,
            reported: written.len(),
        })
    }
}

/// The spreadsheet of one team.
#[derive(Debug)]
struct TeamSpreadsheet {
    spreadsheet_id: String,
    sheet_name: String,
    tokens: TokenSource,
}

/// The Google Sheets target: each team's responses go to the spreadsheet its config names, each form
/// to its own sheet (tab) titled `<sheet_name> - <form_id>`, created when missing.
///
/// One tab per form because forms have different columns: a team using a household survey and a
/// clinic intake form would otherwise mix two headers in one sheet.
#[derive(Debug)]
pub struct GoogleSheets {
    client: SheetsClient,
    teams: RwLock<HashMap<String, Arc<TeamSpreadsheet>>>,
}

impl GoogleSheets {
    /// A target using `client`, with no team configured yet.
    pub fn new(client: SheetsClient) -> Self {
        Self {
            client,
            teams: RwLock::new(HashMap::new()),
        }
    }

    /// The title of the tab of `form_id` for a team whose config says `sheet_name`.
    pub fn tab_title(sheet_name: &str, form_id: &str) -> String {
        format!("{sheet_name} - {form_id}")
    }

    /// Applies a team's config (on initialize or when the registry sends a new one), replacing any
    /// earlier one. Tokens already cached for the team are dropped with the old config.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the config has no service-account key.
    pub fn configure_team(&self, team_id: &str, config: &SheetsConfig) -> Result<(), ConfigError> {
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
        self.teams
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(team_id.to_owned(), Arc::new(team));
        Ok(())
    }

    /// Forgets a team's config (the team disabled the plugin). Returns whether it had one.
    pub fn remove_team(&self, team_id: &str) -> bool {
        self.teams
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(team_id)
            .is_some()
    }

    fn team(&self, team_id: &str) -> Result<Arc<TeamSpreadsheet>, ExportError> {
        self.teams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(team_id)
            .cloned()
            .ok_or_else(|| ExportError::TeamNotConfigured {
                team_id: team_id.to_owned(),
            })
    }
}

impl Target for GoogleSheets {
    async fn read_header(&self, sheet: SheetRef<'_>) -> Result<Option<Vec<String>>, ExportError> {
        let team = self.team(sheet.team_id)?;
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
        let team = self.team(sheet.team_id)?;
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
        let team = self.team(sheet.team_id)?;
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
        let team = self.team(sheet.team_id)?;
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
        let team = self.team(sheet.team_id)?;
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

/// A cell as text: a header cell read back from Google, or a CSV field.
fn cell_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The CSV target, for the demo and for teams without Google: `<dir>/<team_id>/<form_id>.csv`, the
/// header as the first record, one record per response. RFC 4180 quoting; records end with `\n`.
///
/// New rows are appended. A header change, and a batch that overwrites rows (an edited response, or one
/// delivered again), rewrite the whole file (to a temporary file, renamed over the old one): simple and
/// safe against a crash half-way, at the cost of copying the file once per such batch, which suits the
/// demo and small teams. The row index of the CSV target is the file's first column read back, like a
/// sheet's. Team and form ids must be safe file names (ASCII letters, digits, `.`, `_`, `-`, not
/// starting with `.`), or the event is dead-lettered.
#[derive(Debug)]
pub struct CsvTarget {
    dir: PathBuf,
    /// Records per file (header included), once counted.
    records: Mutex<HashMap<PathBuf, u64>>,
}

impl CsvTarget {
    /// A target writing under `dir` (created when needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            records: Mutex::new(HashMap::new()),
        }
    }

    /// The file of a sheet.
    ///
    /// # Errors
    ///
    /// [`ExportError::UnsafeName`] when the team or form id cannot be a file name.
    pub fn path_of(&self, sheet: SheetRef<'_>) -> Result<PathBuf, ExportError> {
        let team = safe_name("team id", sheet.team_id)?;
        let form = safe_name("form id", sheet.form_id)?;
        Ok(self.dir.join(team).join(format!("{form}.csv")))
    }

    fn known_records(&self, path: &Path) -> Option<u64> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .copied()
    }

    fn set_records(&self, path: &Path, count: u64) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned(), count);
    }
}

fn safe_name<'a>(what: &'static str, value: &'a str) -> Result<&'a str, ExportError> {
    let ok = !value.is_empty()
        && value.len() <= 200
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(value)
    } else {
        Err(ExportError::UnsafeName {
            what,
            value: value.to_owned(),
        })
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<R: Send + 'static>(
    path: &Path,
    work: impl FnOnce(&Path) -> io::Result<R> + Send + 'static,
) -> Result<R, ExportError> {
    let owned = path.to_owned();
    let joined = tokio::task::spawn_blocking(move || work(&owned)).await;
    let result = joined.unwrap_or_else(|join| Err(io::Error::other(join)));
    result.map_err(|source| ExportError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes `text` to a temporary file renamed over `path`, so that a crash leaves the old file or the new.
fn replace_file(path: &Path, text: &str) -> io::Result<()> {
    let temporary = path.with_extension("csv.tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

/// A row as one CSV record.
fn csv_record(row: &[Value]) -> String {
    let cells: Vec<String> = row.iter().map(cell_text).collect();
    csv::record(cells.iter().map(String::as_str))
}

fn read_if_exists(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

impl Target for CsvTarget {
    async fn read_header(&self, sheet: SheetRef<'_>) -> Result<Option<Vec<String>>, ExportError> {
        let path = self.path_of(sheet)?;
        let (header, count) = blocking(&path, |path| {
            Ok(match read_if_exists(path)? {
                None => (None, 0),
                Some(text) => {
                    let records = csv::parse(&text);
                    let count = records.len() as u64;
                    (records.into_iter().next().map(|r| r.fields), count)
                }
            })
        })
        .await?;
        self.set_records(&path, count);
        Ok(header)
    }

    async fn write_header(&self, sheet: SheetRef<'_>, header: &[String]) -> Result<(), ExportError> {
        let path = self.path_of(sheet)?;
        let line = csv::record(header.iter().map(String::as_str));
        let count = blocking(&path, move |path| {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let old = read_if_exists(path)?.unwrap_or_default();
            let records = csv::parse(&old);
            let rest = records.first().map_or("", |first| &old[first.end..]);
            replace_file(path, &format!("{line}{rest}"))?;
            Ok(records.len().max(1) as u64)
        })
        .await?;
        self.set_records(&path, count);
        Ok(())
    }

    async fn read_row_ids(&self, sheet: SheetRef<'_>, column: usize) -> Result<RowIndex, ExportError> {
        let path = self.path_of(sheet)?;
        let (index, count) = blocking(&path, move |path| {
            let text = read_if_exists(path)?.unwrap_or_default();
            let records = csv::parse(&text);
            let ids = records.iter().map(|record| record.fields.get(column).cloned());
            Ok((RowIndex::from_column(1, ids), records.len() as u64))
        })
        .await?;
        self.set_records(&path, count);
        Ok(index)
    }

    /// Rewrites the file with the records of `rows` replaced; fails (to be retried) if one of them is
    /// not in the file any more, e.g. after someone edited it.
    async fn update_rows(
        &self,
        sheet: SheetRef<'_>,
        rows: &[(u64, Vec<Value>)],
    ) -> Result<Vec<Appended>, ExportError> {
        let path = self.path_of(sheet)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let lines: HashMap<u64, String> = rows.iter().map(|(n, row)| (*n, csv_record(row))).collect();
        blocking(&path, move |path| {
            let old = read_if_exists(path)?.unwrap_or_default();
            let new = csv::replace_records(&old, &lines).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a row to overwrite is not in the file",
                )
            })?;
            replace_file(path, &new)
        })
        .await?;
        let spreadsheet_id = path.display().to_string();
        Ok(rows
            .iter()
            .map(|(row_number, row)| Appended {
                spreadsheet_id: spreadsheet_id.clone(),
                range: format!("A{row_number}:{}{row_number}", column_letters(row.len())),
                row_number: *row_number,
            })
            .collect())
    }

    async fn append_rows(
        &self,
        sheet: SheetRef<'_>,
        rows: &[Vec<Value>],
    ) -> Result<Vec<Appended>, ExportError> {
        let path = self.path_of(sheet)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let lines: String = rows.iter().map(|row| csv_record(row)).collect();
        let known = self.known_records(&path);
        let before = blocking(&path, move |path| {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let before = match known {
                Some(count) => count,
                None => read_if_exists(path)?.map_or(0, |text| csv::parse(&text).len() as u64),
            };
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            file.write_all(lines.as_bytes())?;
            Ok(before)
        })
        .await?;
        self.set_records(&path, before + rows.len() as u64);
        let spreadsheet_id = path.display().to_string();
        Ok(rows
            .iter()
            .zip(before + 1..)
            .map(|(row, row_number)| Appended {
                spreadsheet_id: spreadsheet_id.clone(),
                range: format!("A{row_number}:{}{row_number}", column_letters(row.len())),
                row_number,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use switchyard_schemas::events::{Answer, Question, QuestionKind};

    use super::*;
    use crate::Disposition;

    /// Sheets in memory, keyed by form id (one team), recording every call and failing the forms told to.
    #[derive(Debug, Default)]
    struct Memory {
        sheets: Mutex<HashMap<String, Vec<Vec<Value>>>>,
        calls: Mutex<Vec<String>>,
        /// Form id → the HTTP status its next calls fail with.
        failing: Mutex<HashMap<String, u16>>,
        /// Form id → the HTTP status its next append answers with after appending.
        lost: Mutex<HashMap<String, u16>>,
    }

    impl Memory {
        fn call(&self, call: String, form_id: &str) -> Result<(), ExportError> {
            self.calls.lock().unwrap().push(call);
            match self.failing.lock().unwrap().get(form_id) {
                None => Ok(()),
                Some(&status) => Err(api_error(status)),
            }
        }

        fn take_calls(&self) -> Vec<String> {
            std::mem::take(&mut *self.calls.lock().unwrap())
        }
    }

    fn api_error(status: u16) -> ExportError {
        ExportError::Sheets(SheetsError::Api {
            during: "appending values",
            status,
            code: "UNAVAILABLE".to_owned(),
            message: "The service is currently unavailable.".to_owned(),
            retry_after: None,
        })
    }

    impl Target for Memory {
        async fn read_header(&self, sheet: SheetRef<'_>) -> Result<Option<Vec<String>>, ExportError> {
            self.call(format!("read {}", sheet.form_id), sheet.form_id)?;
            let sheets = self.sheets.lock().unwrap();
            Ok(sheets
                .get(sheet.form_id)
                .and_then(|rows| rows.first())
                .map(|header| header.iter().map(cell_text).collect()))
        }

        async fn write_header(&self, sheet: SheetRef<'_>, header: &[String]) -> Result<(), ExportError> {
            self.call(format!("header {}", sheet.form_id), sheet.form_id)?;
            let mut sheets = self.sheets.lock().unwrap();
            let rows = sheets.entry(sheet.form_id.to_owned()).or_default();
            let header = header.iter().map(|h| Value::from(h.as_str())).collect();
            match rows.first_mut() {
                Some(first) => *first = header,
                None => rows.push(header),
            }
            Ok(())
        }

        async fn read_row_ids(&self, sheet: SheetRef<'_>, column: usize) -> Result<RowIndex, ExportError> {
            self.call(format!("ids {}", sheet.form_id), sheet.form_id)?;
            let sheets = self.sheets.lock().unwrap();
            let rows = sheets.get(sheet.form_id).cloned().unwrap_or_default();
            let ids = rows.iter().map(|row| row.get(column).map(cell_text));
            Ok(RowIndex::from_column(1, ids))
        }

        async fn update_rows(
            &self,
            sheet: SheetRef<'_>,
            rows: &[(u64, Vec<Value>)],
        ) -> Result<Vec<Appended>, ExportError> {
            self.call(format!("update {} x{}", sheet.form_id, rows.len()), sheet.form_id)?;
            let mut sheets = self.sheets.lock().unwrap();
            let stored = sheets.entry(sheet.form_id.to_owned()).or_default();
            let mut updated = Vec::new();
            for (n, row) in rows {
                stored[*n as usize - 1] = row.clone();
                updated.push(Appended {
                    spreadsheet_id: sheet.team_id.to_owned(),
                    range: format!("A{n}:E{n}"),
                    row_number: *n,
                });
            }
            Ok(updated)
        }

        async fn append_rows(
            &self,
            sheet: SheetRef<'_>,
            rows: &[Vec<Value>],
        ) -> Result<Vec<Appended>, ExportError> {
            self.call(format!("append {} x{}", sheet.form_id, rows.len()), sheet.form_id)?;
            let mut sheets = self.sheets.lock().unwrap();
            let stored = sheets.entry(sheet.form_id.to_owned()).or_default();
            let mut appended = Vec::new();
            for row in rows {
                stored.push(row.clone());
                appended.push(Appended {
                    spreadsheet_id: sheet.team_id.to_owned(),
                    range: format!("A{n}:E{n}", n = stored.len()),
                    row_number: stored.len() as u64,
                });
            }
            match self.lost.lock().unwrap().remove(sheet.form_id) {
                Some(status) => Err(api_error(status)),
                None => Ok(appended),
            }
        }
    }

    fn form(id: &str) -> Form {
        Form {
            id: id.into(),
            team_id: "t".into(),
            title: "A form".into(),
            description: None,
            version: 1,
            default_locale: "en".into(),
            questions: vec![Question {
                id: "name".into(),
                label: "Name".into(),
                kind: QuestionKind::Text,
                required: false,
                choices: vec![],
                hint: None,
            }],
            created_at: 0,
            updated_at: 0,
        }
    }

    fn response(id: &str, form_id: &str, name: &str) -> Response {
        let answers = BTreeMap::from([("name".to_owned(), Some(Answer::Text { text: name.into() }))]);
        Response {
            id: id.into(),
            form_id: form_id.into(),
            form_version: 1,
            team_id: "t".into(),
            collector_id: "c".into(),
            submitted_at: 0,
            locale: "en".into(),
            answers,
            duration_ms: None,
        }
    }

    fn submitted(id: &str, form_id: &str, name: &str) -> ResponseSubmitted {
        ResponseSubmitted {
            response: response(id, form_id, name),
        }
    }

    fn row_number(result: &BatchResult) -> Option<u64> {
        match result {
            Ok(ExportOutcome::Exported { row_number, .. }) => Some(*row_number),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_batch_writes_each_tab_once_and_answers_in_the_events_order() {
        let exporter = SheetsExporter::new(Memory::default());
        let created = FormCreated {
            form: form("a"),
            created_by: "u".into(),
        };
        let (a1, b1, b2) = (
            submitted("r1", "a", "Wanjiku"),
            submitted("r2", "b", "Otieno"),
            submitted("r3", "b", "Achieng"),
        );
        let edit = ResponseUpdated {
            response: response("r1", "a", "Wanjiku M."),
            revision: 2,
            updated_by: "u".into(),
            updated_at: 0,
        };
        let results = exporter
            .export_batch(&[
                ExportEvent::ResponseSubmitted(&a1),
                ExportEvent::ResponseSubmitted(&b1),
                ExportEvent::FormCreated(&created),
                ExportEvent::ResponseUpdated(&edit),
                ExportEvent::ResponseSubmitted(&b2),
            ])
            .await;
        let rows: Vec<Option<u64>> = results.iter().map(row_number).collect();
        // r1's edit, in the same batch, ends in r1's row.
        assert_eq!(rows, [Some(2), Some(2), None, Some(2), Some(3)]);
        assert!(matches!(
            results[2],
            Ok(ExportOutcome::FormRecorded { header_changed: true })
        ));
        assert!(results.iter().all(|r| !matches!(
            r,
            Ok(ExportOutcome::Exported {
                header_changed: false,
                ..
            })
        )));
        assert_eq!(
            exporter.target().take_calls(),
            [
                "read a",
                "header a",
                "append a x1",
                "read b",
                "header b",
                "append b x2"
            ]
        );
        // The form, recorded before any row, named tab a's column; tab b's is named by question id.
        let sheets = exporter.target().sheets.lock().unwrap().clone();
        assert_eq!(sheets["a"][0][4], Value::from("Name"));
        assert_eq!(sheets["b"][0][4], Value::from("name"));
        assert_eq!(sheets["a"][1][4], Value::from("Wanjiku M."));
        assert_eq!(sheets["a"].len(), 2);
    }

    #[tokio::test]
    async fn a_failed_tab_fails_its_own_responses_only() {
        let exporter = SheetsExporter::new(Memory::default());
        let (a1, b1, b2) = (
            submitted("r1", "a", "x"),
            submitted("r2", "b", "y"),
            submitted("r3", "b", "z"),
        );
        let batch = [
            ExportEvent::ResponseSubmitted(&b1),
            ExportEvent::ResponseSubmitted(&a1),
            ExportEvent::ResponseSubmitted(&b2),
        ];
        exporter.target().failing.lock().unwrap().insert("b".into(), 503);
        let results = exporter.export_batch(&batch).await;
        assert_eq!(row_number(&results[1]), Some(2));
        let (Err(first), Err(second)) = (&results[0], &results[2]) else {
            panic!("tab b must fail: {results:?}");
        };
        assert!(Arc::ptr_eq(first, second));
        assert_eq!(first.disposition(), Disposition::Retry { after: None });
        // Tab b's header was never read, so the retried batch reads it first.
        assert_eq!(
            exporter.target().take_calls(),
            ["read b", "read a", "header a", "append a x1"]
        );

        exporter.target().failing.lock().unwrap().insert("b".into(), 403);
        let results = exporter.export_batch(&batch).await;
        assert!(
            results[0]
                .as_ref()
                .is_err_and(|e| e.disposition() == Disposition::DeadLetter)
        );
        assert!(
            results[2]
                .as_ref()
                .is_err_and(|e| e.disposition() == Disposition::DeadLetter)
        );
        // r1 has its row: written again, it is overwritten.
        assert_eq!(row_number(&results[1]), Some(2));
        assert!(matches!(
            results[1],
            Ok(ExportOutcome::Exported { updated: true, .. })
        ));

        exporter.target().failing.lock().unwrap().clear();
        let results = exporter.export_batch(&batch).await;
        let rows: Vec<Option<u64>> = results.iter().map(row_number).collect();
        assert_eq!(rows, [Some(2), Some(2), Some(3)]);
        assert_eq!(exporter.target().sheets.lock().unwrap()["a"].len(), 2);
        assert!(exporter.export_batch(&[]).await.is_empty());
    }

    #[tokio::test]
    async fn a_restarted_exporter_reads_the_ids_back_and_overwrites() {
        let first = SheetsExporter::new(Memory::default());
        let (r1, r2) = (submitted("r1", "a", "x"), submitted("r2", "a", "y"));
        first.response_submitted(&r1).await.unwrap();
        // A new sheet has no rows: its ids are not read.
        assert_eq!(first.target().take_calls(), ["read a", "header a", "append a x1"]);

        let restarted = SheetsExporter::new(Memory {
            sheets: Mutex::new(first.target().sheets.lock().unwrap().clone()),
            ..Memory::default()
        });
        let edit = ResponseUpdated {
            response: response("r1", "a", "x2"),
            revision: 2,
            updated_by: "u".into(),
            updated_at: 0,
        };
        let results = restarted
            .export_batch(&[
                ExportEvent::ResponseSubmitted(&r2),
                ExportEvent::ResponseSubmitted(&r1),
                ExportEvent::ResponseUpdated(&edit),
            ])
            .await;
        let rows: Vec<Option<u64>> = results.iter().map(row_number).collect();
        assert_eq!(rows, [Some(3), Some(2), Some(2)]);
        assert_eq!(
            restarted.target().take_calls(),
            ["read a", "ids a", "update a x1", "append a x1"]
        );
        let sheets = restarted.target().sheets.lock().unwrap().clone();
        assert_eq!(sheets["a"].len(), 3);
        assert_eq!(sheets["a"][1][4], Value::from("x2"));
    }

    #[tokio::test]
    async fn a_response_another_process_appended_meanwhile_is_overwritten_not_appended_again() {
        // Two workers share a sheet across a rebalance: this one read the ids, then the other appended r2
        // while it owned the partition, and r2 comes back here redelivered.
        let here = SheetsExporter::new(Memory::default());
        let (r1, r2) = (submitted("r1", "a", "x"), submitted("r2", "a", "y"));
        here.response_submitted(&r1).await.unwrap();
        let other = SheetsExporter::new(Memory {
            sheets: Mutex::new(here.target().sheets.lock().unwrap().clone()),
            ..Memory::default()
        });
        other.response_submitted(&r2).await.unwrap();
        *here.target().sheets.lock().unwrap() = other.target().sheets.lock().unwrap().clone();
        here.target().take_calls();

        let outcome = here.response_submitted(&r2).await.unwrap();
        assert!(matches!(
            outcome,
            ExportOutcome::Exported {
                row_number: 3,
                updated: true,
                ..
            }
        ));
        assert_eq!(here.target().take_calls(), ["ids a", "update a x1"]);
        assert_eq!(here.target().sheets.lock().unwrap()["a"].len(), 3);
        // A response the index knows is overwritten without a read.
        here.response_submitted(&r1).await.unwrap();
        assert_eq!(here.target().take_calls(), ["update a x1"]);
    }

    #[tokio::test]
    async fn an_append_of_unknown_outcome_makes_the_retry_read_the_ids_again() {
        let exporter = SheetsExporter::new(Memory::default());
        let (r1, r2) = (submitted("r1", "a", "x"), submitted("r2", "a", "y"));
        exporter.response_submitted(&r1).await.unwrap();
        exporter.target().take_calls();

        // Applied, but answered 503: the retry finds r2's row instead of appending it again.
        exporter.target().lost.lock().unwrap().insert("a".into(), 503);
        let error = exporter.response_submitted(&r2).await.unwrap_err();
        assert_eq!(error.disposition(), Disposition::Retry { after: None });
        let outcome = exporter.response_submitted(&r2).await.unwrap();
        assert!(matches!(
            outcome,
            ExportOutcome::Exported {
                row_number: 3,
                updated: true,
                ..
            }
        ));
        assert_eq!(
            exporter.target().take_calls(),
            ["ids a", "append a x1", "ids a", "update a x1"]
        );
        assert_eq!(exporter.target().sheets.lock().unwrap()["a"].len(), 3);

        // A refusal (429) changed nothing: the index is kept, no read.
        exporter.target().failing.lock().unwrap().insert("a".into(), 429);
        let error = exporter.response_submitted(&r1).await.unwrap_err();
        assert!(matches!(error.disposition(), Disposition::Throttled { .. }));
        exporter.target().failing.lock().unwrap().clear();
        exporter.response_submitted(&r1).await.unwrap();
        assert_eq!(exporter.target().take_calls(), ["update a x1", "update a x1"]);
    }
}
