//! sheets-export's batches against the fake Google over HTTP on 127.0.0.1 (no broker needed): one
//! `values.append` per form's tab keeps a burst of responses within Google's per-minute write quota, where
//! one call per response runs into `429 RESOURCE_EXHAUSTED`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_plugins::Disposition;
use switchyard_plugins::fakes::server::FakeServer;
use switchyard_plugins::fakes::sheets::{self as fake, ApiMethod, FakeSheets, demo_service_account_json};
use switchyard_plugins::in_process::sheets_export_manifest;
use switchyard_plugins::sheets::{
    ExportError, ExportEvent, ExportOutcome, GoogleSheets, SheetsClient, SheetsConfig, SheetsError,
    SheetsExporter,
};
use switchyard_schemas::events::{
    Answer, Form, FormCreated, Question, QuestionKind, Response, ResponseSubmitted,
};
use tokio::net::TcpListener;

const TEAM: &str = "maji-water";
const SPREADSHEET: &str = "1majiWaterPoints";
const FORMS: [&str; 2] = ["f-maji-water-point-audit", "f-maji-household-visit"];
/// Responses in the burst, alternating between the two forms.
const BURST: usize = 150;

async fn start(fake: &FakeSheets) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    fake::serve(listener, fake.clone()).await.unwrap()
}

/// The demo service account (Google's default quotas: 60 writes per minute) and an empty spreadsheet.
async fn google() -> (FakeSheets, FakeServer, SheetsExporter<GoogleSheets>) {
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet(SPREADSHEET, &[]);
    let server = start(&fake).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let target = GoogleSheets::new(SheetsClient::new(&server.base_url(), http).unwrap());
    let key = demo_service_account_json(&format!("{}/token", server.base_url()));
    let config =
        SheetsConfig::from_json(&json!({ "spreadsheet_id": SPREADSHEET, "service_account_key": key }))
            .unwrap();
    target.configure_team(TEAM, &config).unwrap();
    (fake, server, SheetsExporter::new(target))
}

fn form(id: &str) -> FormCreated {
    FormCreated {
        form: Form {
            id: id.into(),
            team_id: TEAM.into(),
            title: "Water point audit".into(),
            description: None,
            version: 1,
            default_locale: "en".into(),
            questions: vec![Question {
                id: "flow".into(),
                label: "Litres per minute".into(),
                kind: QuestionKind::Number,
                required: true,
                choices: vec![],
                hint: None,
            }],
            created_at: 1_795_165_200_000,
            updated_at: 1_795_165_200_000,
        },
        created_by: "u-1".into(),
    }
}

/// The `n`th response of the burst, to `FORMS[n % 2]`.
fn response(n: usize) -> ResponseSubmitted {
    let answers = BTreeMap::from([("flow".to_owned(), Some(Answer::Number { number: n as f64 }))]);
    ResponseSubmitted {
        response: Response {
            id: format!("r-{n:03}"),
            form_id: FORMS[n % 2].into(),
            form_version: 1,
            team_id: TEAM.into(),
            collector_id: "enum-3".into(),
            submitted_at: 1_795_165_260_000,
            locale: "en".into(),
            answers,
            duration_ms: None,
        },
    }
}

/// The response ids in a tab, below its header.
fn ids_in(fake: &FakeSheets, form_id: &str) -> Vec<Value> {
    let tab = GoogleSheets::tab_title("Responses", form_id);
    let grid = fake.grid(SPREADSHEET, &tab).unwrap();
    grid.iter().skip(1).map(|row| row[0].clone()).collect()
}

#[tokio::test]
async fn batches_keep_a_burst_within_googles_write_quota() {
    let (fake, _server, exporter) = google().await;
    let max_events = sheets_export_manifest(None).delivery.batch.unwrap().max_events as usize;
    let forms = FORMS.map(form);
    let responses: Vec<ResponseSubmitted> = (0..BURST).map(response).collect();

    let mut events: Vec<ExportEvent<'_>> = forms.iter().map(ExportEvent::FormCreated).collect();
    events.extend(responses.iter().map(ExportEvent::ResponseSubmitted));
    let mut results = Vec::new();
    for batch in events.chunks(max_events) {
        results.extend(exporter.export_batch(batch).await);
    }

    assert_eq!(results.len(), events.len());
    let refused: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    // Three batches, each writing both tabs once.
    let batches = events.len().div_ceil(max_events) as u64;
    assert_eq!(fake.method_calls(ApiMethod::ValuesAppend), 2 * batches);
    for (parity, form_id) in FORMS.iter().enumerate() {
        let expected: Vec<Value> = (0..BURST)
            .filter(|n| n % 2 == parity)
            .map(|n| json!(format!("r-{n:03}")))
            .collect();
        assert_eq!(ids_in(&fake, form_id), expected, "{form_id}");
    }
    let last = results.last().unwrap().as_ref().unwrap();
    assert!(
        matches!(last, ExportOutcome::Exported { row_number, header_changed: false, .. }
            if *row_number == (BURST / 2 + 1) as u64),
        "{last:?}"
    );
}

#[tokio::test]
async fn one_call_per_response_runs_into_the_quota() {
    let (fake, _server, exporter) = google().await;
    for created in FORMS.map(form) {
        exporter.form_created(&created).await;
    }
    let mut exported = 0;
    let mut refused = Vec::new();
    for n in 0..BURST {
        match exporter.response_submitted(&response(n)).await {
            Ok(_) => exported += 1,
            Err(error) => refused.push(error),
        }
    }

    // 60 writes in the minute: each tab's creation and header take two, the appends the other 56. Each append
    // is preceded by a read of the ids (another worker may have appended meanwhile), so the refused ones run
    // into the read quota next.
    assert_eq!(exported, 56);
    assert_eq!(refused.len(), BURST - 56);
    for error in &refused {
        assert!(
            matches!(error, ExportError::Sheets(SheetsError::Api { status: 429, code, message, .. })
                if code == "RESOURCE_EXHAUSTED"
                    && (message.contains("'Write requests per minute per user'")
                        || message.contains("'Read requests per minute per user'"))),
            "{error}"
        );
        assert_eq!(error.disposition(), Disposition::Throttled { after: None });
    }

    // A minute later the refused responses go through.
    fake.advance_clock(Duration::from_secs(60));
    let outcome = exporter.response_submitted(&response(BURST)).await.unwrap();
    assert!(matches!(outcome, ExportOutcome::Exported { .. }), "{outcome:?}");
}
