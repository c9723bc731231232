use std::collections::BTreeMap;

use switchyard_schemas::events::{Answer, Question, QuestionKind};

use super::*;
use crate::Disposition;
use crate::sheets::SheetsError;

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
