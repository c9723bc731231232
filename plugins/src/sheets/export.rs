//! The exporter: form events shape each form's [`Layout`], response events become rows of a
//! [`Target`], one row per response.
//!
//! ```text
//!   FormCreated / FormUpdated ──► remember the newest form of (team, installation, form)   (no I/O)
//!   ResponseSubmitted / ResponseUpdated                  (a call holds one installation's events)
//!        │ grouped by (team, form): one event alone, or the responses of a batch to one tab
//!        │ first time this process writes (team, installation, form): read the target's header row
//!        │   back and build the layout from it, then merge the newest form into it; read the
//!        │   response_id column back into the tab's row index (response_id → row number)
//!        │ answers without a column: add columns named by question id
//!        │ header changed: rewrite it (Target::write_header), once for the group
//!        ├─► responses the index knows: overwrite their rows in one call (Target::update_rows)
//!        └─► the others: append them in one call (Target::append_rows), add their rows to the index
//!                                                        ──► an ExportOutcome::Exported per response
//! ```
//!
//! Writes to one (team, installation, form) are serialised by an async lock, so a header rewrite, the row
//! writes around it and the row index never interleave; different forms proceed in parallel.
//!
//! **Installations.** A team may install the plugin several times, each installation with its own config
//! (its own spreadsheet) and its own slice of events. Everything the exporter keeps (the newest form, the
//! layout, the row index of each tab) is per (team, installation, form), and every [`SheetRef`] names the
//! installation, so the target writes each installation's rows to that installation's spreadsheet (CSV
//! file): two installations of one team never share a layout or a row index. The runtime hands over one
//! installation's events at a time ([`SheetsExporter::export_batch_for`]); the methods without an
//! installation are the default installation's, as before installations existed.
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
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde_json::Value;
use switchyard_schemas::events::{
    Form, FormCreated, FormUpdated, Response, ResponseSubmitted, ResponseUpdated,
};

use super::error::ExportError;
use super::index::{self, RowIndex, Slot};
use super::layout::Layout;
use crate::Disposition;
use crate::installations::DEFAULT_INSTALLATION;

/// The sheet of one (team, installation, form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SheetRef<'a> {
    /// The owning team.
    pub team_id: &'a str,
    /// The team's installation whose config names the spreadsheet
    /// ([`DEFAULT_INSTALLATION`] for the default one).
    pub installation: &'a str,
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
/// The exporter calls [`Target::read_header`] once per (team, installation, form) per process, before its
/// first write, and [`Target::read_row_ids`] when the header was there (again after a write whose outcome
/// is unknown); then [`Target::write_header`] whenever the columns change, [`Target::update_rows`] for the
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

/// (team, installation, form).
type FormKey = (String, String, String);

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

    /// Records a new form (for the default installation).
    pub async fn form_created(&self, event: &FormCreated) -> ExportOutcome {
        self.record_form(DEFAULT_INSTALLATION, &event.form).await
    }

    /// Records a form's new version (for the default installation); its new questions become columns
    /// with the next row written.
    pub async fn form_updated(&self, event: &FormUpdated) -> ExportOutcome {
        self.record_form(DEFAULT_INSTALLATION, &event.form).await
    }

    /// Writes a new response as a row (of the default installation's sheet).
    ///
    /// # Errors
    ///
    /// The target's errors; each says, through `disposition()`, whether to retry.
    pub async fn response_submitted(&self, event: &ResponseSubmitted) -> Result<ExportOutcome, ExportError> {
        self.export(DEFAULT_INSTALLATION, &event.response).await
    }

    /// Overwrites the row of an edited response with its new values, `submitted_at` staying the
    /// original one; appends it if it has no row yet (see the module docs).
    ///
    /// # Errors
    ///
    /// As [`SheetsExporter::response_submitted`].
    pub async fn response_updated(&self, event: &ResponseUpdated) -> Result<ExportOutcome, ExportError> {
        self.export(DEFAULT_INSTALLATION, &event.response).await
    }

    /// The columns currently known for (team, form) of the default installation, if it was written to or
    /// announced.
    pub async fn layout(&self, team_id: &str, form_id: &str) -> Option<Layout> {
        self.layout_for(team_id, DEFAULT_INSTALLATION, form_id).await
    }

    /// The columns currently known for (team, installation, form), if it was written to or announced.
    pub async fn layout_for(&self, team_id: &str, installation: &str, form_id: &str) -> Option<Layout> {
        let slot = self.slot(team_id, installation, form_id);
        let state = slot.lock().await;
        state
            .layout
            .clone()
            .or_else(|| state.form.as_ref().map(Layout::from_form))
    }

    fn slot(&self, team_id: &str, installation: &str, form_id: &str) -> Arc<tokio::sync::Mutex<FormState>> {
        let mut forms = self.forms.lock().unwrap_or_else(PoisonError::into_inner);
        forms
            .entry((team_id.to_owned(), installation.to_owned(), form_id.to_owned()))
            .or_default()
            .clone()
    }

    async fn record_form(&self, installation: &str, form: &Form) -> ExportOutcome {
        let slot = self.slot(&form.team_id, installation, &form.id);
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

    /// Exports a batch of events of the default installation: [`SheetsExporter::export_batch_for`] it.
    pub async fn export_batch(&self, events: &[ExportEvent<'_>]) -> Vec<BatchResult> {
        self.export_batch_for(DEFAULT_INSTALLATION, events).await
    }

    /// Exports a batch of events of one installation, normally of one team: form events are recorded
    /// first (in order), then each (team, form) tab of the installation gets one header check, one
    /// [`Target::update_rows`] for its responses that have a row and one [`Target::append_rows`] for the
    /// others, in the events' order (see the module docs). One result per event, in the events' order;
    /// the responses of a tab whose write failed all carry that failure, whose `disposition()` says
    /// whether to retry them. A single event is a batch of one.
    pub async fn export_batch_for(&self, installation: &str, events: &[ExportEvent<'_>]) -> Vec<BatchResult> {
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
                    let recorded = self.record_form(installation, &created.form).await;
                    sources.push(Source::Recorded(recorded));
                    continue;
                }
                ExportEvent::FormUpdated(updated) => {
                    let recorded = self.record_form(installation, &updated.form).await;
                    sources.push(Source::Recorded(recorded));
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
            written.push(self.export_tab(installation, responses).await.map_err(Arc::new));
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

    async fn export(&self, installation: &str, response: &Response) -> Result<ExportOutcome, ExportError> {
        let outcomes = self.export_tab(installation, &[response]).await?;
        let reported = outcomes.len();
        let [outcome] = <[ExportOutcome; 1]>::try_from(outcomes)
            .map_err(|_| ExportError::AppendMismatch { given: 1, reported })?;
        Ok(outcome)
    }

    /// Writes `responses`, all of one (team, form) and not empty, as rows of the installation's sheet: the
    /// header first if it changed, then the rows. One outcome per response, in order.
    async fn export_tab(
        &self,
        installation: &str,
        responses: &[&Response],
    ) -> Result<Vec<ExportOutcome>, ExportError> {
        let Some(first) = responses.first() else {
            return Ok(Vec::new());
        };
        let sheet = SheetRef {
            team_id: &first.team_id,
            installation,
            form_id: &first.form_id,
        };
        let slot = self.slot(sheet.team_id, installation, sheet.form_id);
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

/// A cell as text: a header cell read back from Google, or a CSV field.
pub(super) fn cell_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
