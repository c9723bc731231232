//! The CSV target of the exporter: a directory of CSV files, for the demo and for teams without Google.

use std::collections::HashMap;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

use super::a1::column_letters;
use super::csv;
use super::error::ExportError;
use super::export::{Appended, SheetRef, Target, cell_text};
use super::index::RowIndex;
use crate::installations::DEFAULT_INSTALLATION;

/// The CSV target, for the demo and for teams without Google: `<dir>/<team_id>/<form_id>.csv` for a
/// team's default installation, `<dir>/<team_id>/<installation>/<form_id>.csv` for a named one (an
/// installation id has no `.`, so it never names a form's file), the header as the first record, one
/// record per response. RFC 4180 quoting; records end with `\n`. The configs' `spreadsheet_id` is not
/// used: each installation has its own files whether or not it has a config.
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
    /// [`ExportError::UnsafeName`] when the team, installation or form id cannot be a file name.
    pub fn path_of(&self, sheet: SheetRef<'_>) -> Result<PathBuf, ExportError> {
        let team = safe_name("team id", sheet.team_id)?;
        let form = safe_name("form id", sheet.form_id)?;
        let mut dir = self.dir.join(team);
        if sheet.installation != DEFAULT_INSTALLATION {
            dir.push(safe_name("installation id", sheet.installation)?);
        }
        Ok(dir.join(format!("{form}.csv")))
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
