//! sheets-export against the fake Google on 127.0.0.1.

// Test helpers outside `#[test]` functions unwrap too; clippy.toml only exempts the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use switchyard_plugin_runtime::plugin::{
    BatchItem, Context, DEFAULT_INSTALLATION, Event, EventMeta, Outcome, Plugin,
};
use switchyard_plugins::Disposition;
use switchyard_plugins::fakes::server::{FakeServer, InjectedFailure};
use switchyard_plugins::fakes::sheets::{
    self as fake, ApiMethod, DEMO_CLIENT_EMAIL, FakeSheets, demo_service_account_json,
};
use switchyard_plugins::in_process::{SheetsExportPlugin, sheets_export_manifest};
use switchyard_plugins::sheets::{
    BatchResult, CsvTarget, ExportError, ExportEvent, ExportOutcome, GoogleSheets, ServiceAccountKey,
    SheetsClient, SheetsConfig, SheetsError, SheetsExporter, TokenSource, ValueRange,
};
use switchyard_schemas::control::Batch;
use switchyard_schemas::events::{
    Answer, Choice, Form, FormCreated, FormUpdated, Question, QuestionKind, Response, ResponseSubmitted,
    ResponseUpdated,
};
use tokio::net::TcpListener;

const OTHER_PRIVATE_KEY: &str = include_str!("../testdata/other_key.pem");
const SPREADSHEET: &str = "1kilimoSheet";
const TEAM: &str = "kilimo-coop";
const FORM: &str = "f-kilimo-coop-household-survey";
const TAB: &str = "Responses - f-kilimo-coop-household-survey";
/// A second form of the team, for batches that span two tabs.
const FORM_B: &str = "f-kilimo-coop-clinic-intake";
const TAB_B: &str = "Responses - f-kilimo-coop-clinic-intake";

async fn start(fake: &FakeSheets) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    fake::serve(listener, fake.clone()).await.unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn question(id: &str, label: &str, kind: QuestionKind) -> Question {
    Question {
        id: id.into(),
        label: label.into(),
        kind,
        required: false,
        choices: vec![],
        hint: None,
    }
}

fn household(version: i32) -> Form {
    let mut city = question("city", "City or nearest town", QuestionKind::SingleChoice);
    city.choices = vec![
        Choice {
            value: "nairobi".into(),
            label: "Nairobi".into(),
        },
        Choice {
            value: "nakuru".into(),
            label: "Nakuru".into(),
        },
    ];
    let mut questions = vec![
        question("respondent_name", "Respondent's name", QuestionKind::Text),
        question("phone", "Phone number", QuestionKind::Phone),
        city,
        question("monthly_income", "Monthly household income", QuestionKind::Number),
        question("comments", "Enumerator's comments", QuestionKind::Text),
    ];
    if version >= 2 {
        let mut consent = question(
            "consent_given",
            "Did the respondent consent to follow-up?",
            QuestionKind::SingleChoice,
        );
        consent.choices = vec![
            Choice {
                value: "yes".into(),
                label: "Yes".into(),
            },
            Choice {
                value: "no".into(),
                label: "No".into(),
            },
        ];
        questions.push(consent);
    }
    Form {
        id: FORM.into(),
        team_id: TEAM.into(),
        title: "Household survey 2026".into(),
        description: None,
        version,
        default_locale: "sw".into(),
        questions,
        created_at: 1_795_165_200_000,
        updated_at: 1_795_165_200_000,
    }
}

fn response(id: &str, version: i32, name: &str, comment: &str, consent: Option<&str>) -> Response {
    let mut answers = BTreeMap::new();
    answers.insert(
        "respondent_name".to_owned(),
        Some(Answer::Text { text: name.into() }),
    );
    answers.insert(
        "phone".to_owned(),
        Some(Answer::Phone {
            phone: "+254712345678".into(),
        }),
    );
    answers.insert(
        "city".to_owned(),
        Some(Answer::Choice {
            choice: "nakuru".into(),
        }),
    );
    answers.insert(
        "monthly_income".to_owned(),
        Some(Answer::Number { number: 18_500.0 }),
    );
    answers.insert("comments".to_owned(), Some(Answer::Text { text: comment.into() }));
    if let Some(consent) = consent {
        answers.insert(
            "consent_given".to_owned(),
            Some(Answer::Choice {
                choice: consent.into(),
            }),
        );
    }
    Response {
        id: id.into(),
        form_id: FORM.into(),
        form_version: version,
        team_id: TEAM.into(),
        collector_id: "enum-7".into(),
        submitted_at: 1_795_165_260_000,
        locale: "sw".into(),
        answers,
        duration_ms: Some(95_000),
    }
}

fn submitted(response: Response) -> ResponseSubmitted {
    ResponseSubmitted { response }
}

fn config(server: &FakeServer) -> SheetsConfig {
    let key = demo_service_account_json(&format!("{}/token", server.base_url()));
    SheetsConfig::from_json(&json!({ "spreadsheet_id": SPREADSHEET, "service_account_key": key })).unwrap()
}

fn google(server: &FakeServer) -> SheetsExporter<GoogleSheets> {
    let client = SheetsClient::new(&server.base_url(), http()).unwrap();
    let target = GoogleSheets::new(client);
    target.configure_team(TEAM, &config(server)).unwrap();
    SheetsExporter::new(target)
}

fn strings(row: &[&str]) -> Vec<Value> {
    row.iter().map(|s| Value::from(*s)).collect()
}

#[tokio::test]
async fn tokens_are_fetched_once_and_reused() {
    let fake = FakeSheets::demo().unwrap();
    let server = start(&fake).await;
    let key = ServiceAccountKey::from_json(&demo_service_account_json(&format!(
        "{}/token",
        server.base_url()
    )))
    .unwrap();
    let tokens = TokenSource::new(&key, http()).unwrap();
    let first = tokens.token().await.unwrap();
    let second = tokens.token().await.unwrap();
    assert_eq!(first.secret(), second.secret());
    assert_eq!(fake.tokens_issued(), 1);
    assert!(!format!("{first:?}").contains(first.secret()));

    // A clone shares the cache; concurrent callers share one refresh.
    let clone = tokens.clone();
    let (a, b) = tokio::join!(clone.token(), tokens.token());
    assert_eq!(a.unwrap().secret(), b.unwrap().secret());
    assert_eq!(fake.tokens_issued(), 1);

    // A token with less than the 60-second margin left is never reused.
    fake.set_token_lifetime(Duration::from_secs(30));
    tokens.invalidate().await;
    tokens.token().await.unwrap();
    tokens.token().await.unwrap();
    assert_eq!(fake.tokens_issued(), 3);
}

#[tokio::test]
async fn a_wrong_key_is_dead_lettered() {
    let fake = FakeSheets::demo().unwrap();
    let server = start(&fake).await;
    let key = json!({
        "client_email": DEMO_CLIENT_EMAIL,
        "private_key": OTHER_PRIVATE_KEY,
        "token_uri": format!("{}/token", server.base_url()),
    });
    let key = ServiceAccountKey::from_json(&key.to_string()).unwrap();
    let error = TokenSource::new(&key, http()).unwrap().token().await.unwrap_err();
    assert!(
        matches!(&error, SheetsError::TokenRefused { status: 400, error, .. } if error == "invalid_grant"),
        "{error:?}"
    );
    assert_eq!(error.disposition(), Disposition::DeadLetter);
    assert!(!error.to_string().contains("PRIVATE KEY"));

    // An assertion addressed to another audience is refused too.
    let key = ServiceAccountKey::from_json(&demo_service_account_json(&format!(
        "{}/token",
        server.base_url()
    )))
    .unwrap();
    fake.set_audience("https://oauth2.googleapis.com/token");
    let error = TokenSource::new(&key, http()).unwrap().token().await.unwrap_err();
    assert!(error.to_string().contains("audience"), "{error}");
    assert_eq!(error.disposition(), Disposition::DeadLetter);
}

#[tokio::test]
async fn token_endpoint_outages_are_retried() {
    let fake = FakeSheets::demo().unwrap();
    let server = start(&fake).await;
    fake.fail_next_token_requests(
        1,
        InjectedFailure {
            status: 503,
            retry_after: Some(3),
        },
    );
    let key = ServiceAccountKey::from_json(&demo_service_account_json(&format!(
        "{}/token",
        server.base_url()
    )))
    .unwrap();
    let tokens = TokenSource::new(&key, http()).unwrap();
    let error = tokens.token().await.unwrap_err();
    assert_eq!(
        error.disposition(),
        Disposition::Retry {
            after: Some(Duration::from_secs(3))
        }
    );
    tokens.token().await.unwrap();

    // Nobody listening: a connection error, retried.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let key =
        ServiceAccountKey::from_json(&demo_service_account_json(&format!("http://{address}/token"))).unwrap();
    let error = TokenSource::new(&key, http()).unwrap().token().await.unwrap_err();
    assert!(matches!(error, SheetsError::Transport { .. }), "{error:?}");
    assert_eq!(error.disposition(), Disposition::Retry { after: None });
}

#[tokio::test]
async fn the_client_reads_writes_and_appends_in_sheets_with_spaces() {
    let fake = FakeSheets::new();
    fake.add_service_account(DEMO_CLIENT_EMAIL, fake::DEMO_PUBLIC_KEY_PEM)
        .unwrap();
    fake.add_spreadsheet("s1", &["My data"]);
    let server = start(&fake).await;
    let client = SheetsClient::new(&server.base_url(), http()).unwrap();
    let key = ServiceAccountKey::from_json(&demo_service_account_json(&format!(
        "{}/token",
        server.base_url()
    )))
    .unwrap();
    let auth = TokenSource::new(&key, http()).unwrap();

    let updated = client
        .update_values(&auth, "s1", "'My data'!1:1", &[strings(&["a", "b"])])
        .await
        .unwrap();
    assert_eq!(updated.updated_range, "'My data'!A1:B1");
    let appended = client
        .append_values(&auth, "s1", "'My data'!A1", &[vec![json!("x"), json!(42)]])
        .await
        .unwrap();
    assert_eq!(appended.updates.updated_range, "'My data'!A2:B2");
    assert_eq!(appended.first_row(), Some(2));
    let read = client.get_values(&auth, "s1", "'My data'!A1:B2").await.unwrap();
    assert_eq!(read.range, "'My data'!A1:B2");
    assert_eq!(read.values, vec![strings(&["a", "b"]), strings(&["x", "42"])]);
    assert_eq!(
        fake.grid("s1", "My data").unwrap()[1],
        vec![json!("x"), json!(42)]
    );

    assert_eq!(client.sheet_titles(&auth, "s1").await.unwrap(), ["My data"]);
    client.add_sheet(&auth, "s1", "Second tab").await.unwrap();
    assert_eq!(fake.sheet_titles("s1").unwrap(), ["My data", "Second tab"]);

    let missing = client.get_values(&auth, "s1", "'Nope'!A1").await.unwrap_err();
    assert!(matches!(&missing, SheetsError::Api { status: 400, code, .. } if code == "INVALID_ARGUMENT"));
    assert_eq!(missing.disposition(), Disposition::DeadLetter);
    let unknown = client
        .get_values(&auth, "no-such-spreadsheet", "A1")
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, SheetsError::Api { status: 404, .. }),
        "{unknown:?}"
    );

    // A revoked token is replaced transparently, once.
    fake.revoke_tokens();
    client.get_values(&auth, "s1", "'My data'!A1").await.unwrap();
    assert_eq!(fake.tokens_issued(), 2);
}

#[tokio::test]
async fn the_header_comes_first_then_one_row_per_response() {
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet(SPREADSHEET, &["Sheet1"]);
    let server = start(&fake).await;
    let exporter = google(&server);

    let recorded = exporter
        .form_created(&FormCreated {
            form: household(1),
            created_by: "u-1".into(),
        })
        .await;
    assert_eq!(recorded, ExportOutcome::FormRecorded { header_changed: true });
    assert_eq!(fake.api_calls(), 0, "form events need no API call");

    let first = exporter
        .response_submitted(&submitted(response(
            "r-1",
            1,
            "Wanjiku Kamau",
            "Mambo poa, maji iko fiti",
            None,
        )))
        .await
        .unwrap();
    assert_eq!(
        first,
        ExportOutcome::Exported {
            spreadsheet_id: SPREADSHEET.into(),
            range: format!("'{TAB}'!A2:I2"),
            row_number: 2,
            header_changed: true,
            updated: false,
        }
    );
    let second = exporter
        .response_submitted(&submitted(response("r-2", 1, "Otieno", "", None)))
        .await
        .unwrap();
    assert!(matches!(
        second,
        ExportOutcome::Exported {
            row_number: 3,
            header_changed: false,
            ..
        }
    ));

    let grid = fake.grid(SPREADSHEET, TAB).unwrap();
    assert_eq!(fake.sheet_titles(SPREADSHEET).unwrap(), ["Sheet1", TAB]);
    assert_eq!(
        grid[0],
        strings(&[
            "response_id",
            "submitted_at",
            "collector_id",
            "form_version",
            "Respondent's name",
            "Phone number",
            "City or nearest town",
            "Monthly household income",
            "Enumerator's comments",
        ])
    );
    assert_eq!(
        grid[1],
        vec![
            json!("r-1"),
            json!("2026-11-20T09:01:00Z"),
            json!("enum-7"),
            json!(1),
            json!("Wanjiku Kamau"),
            json!("+254712345678"),
            json!("Nakuru"),
            json!(18_500),
            json!("Mambo poa, maji iko fiti"),
        ]
    );
    assert_eq!(grid[2][0], json!("r-2"));
    assert_eq!(grid.len(), 3);
}

#[tokio::test]
async fn a_new_question_adds_a_column_and_old_rows_stay_aligned() {
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet(SPREADSHEET, &[]);
    let server = start(&fake).await;
    let exporter = google(&server);
    exporter
        .form_created(&FormCreated {
            form: household(1),
            created_by: "u-1".into(),
        })
        .await;
    exporter
        .response_submitted(&submitted(response("r-1", 1, "Wanjiku", "ok", None)))
        .await
        .unwrap();

    let updated = FormUpdated {
        form: household(2),
        previous_version: 1,
        updated_by: "u-1".into(),
    };
    assert_eq!(
        exporter.form_updated(&updated).await,
        ExportOutcome::FormRecorded { header_changed: true }
    );
    let stale = FormUpdated {
        form: household(1),
        previous_version: 0,
        updated_by: "u-1".into(),
    };
    assert!(matches!(
        exporter.form_updated(&stale).await,
        ExportOutcome::StaleForm { known_version: 2, .. }
    ));

    let outcome = exporter
        .response_submitted(&submitted(response("r-2", 2, "Achieng", "ok", Some("yes"))))
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        ExportOutcome::Exported {
            row_number: 3,
            header_changed: true,
            ..
        }
    ));

    let grid = fake.grid(SPREADSHEET, TAB).unwrap();
    assert_eq!(grid[0].len(), 10);
    assert_eq!(grid[0][9], json!("Did the respondent consent to follow-up?"));
    assert_eq!(
        grid[0][4],
        json!("Respondent's name"),
        "old columns keep their place"
    );
    assert_eq!(grid[1][4], json!("Wanjiku"));
    assert_eq!(grid[1].len(), 9, "the old row is untouched");
    assert_eq!(grid[2][4], json!("Achieng"));
    assert_eq!(grid[2][9], json!("Yes"));

    // An edit overwrites the response's row, under the current columns.
    let edit = ResponseUpdated {
        response: response("r-1", 2, "Wanjiku Kamau", "corrected", Some("no")),
        revision: 2,
        updated_by: "supervisor".into(),
        updated_at: 1_795_165_900_000,
    };
    let outcome = exporter.response_updated(&edit).await.unwrap();
    assert_eq!(
        outcome,
        ExportOutcome::Exported {
            spreadsheet_id: SPREADSHEET.into(),
            range: format!("'{TAB}'!A2:J2"),
            row_number: 2,
            header_changed: false,
            updated: true,
        }
    );
    let grid = fake.grid(SPREADSHEET, TAB).unwrap();
    assert_eq!(grid.len(), 3);
    assert_eq!(grid[1][0], json!("r-1"));
    assert_eq!(grid[1][8], json!("corrected"));
    assert_eq!(grid[1][9], json!("No"));
}

#[tokio::test]
async fn a_restarted_exporter_keeps_the_existing_columns() {
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet(SPREADSHEET, &[]);
    let server = start(&fake).await;
    {
        let exporter = google(&server);
        exporter
            .form_created(&FormCreated {
                form: household(2),
                created_by: "u-1".into(),
            })
            .await;
        exporter
            .response_submitted(&submitted(response("r-1", 2, "Wanjiku", "ok", Some("yes"))))
            .await
            .unwrap();
    }
    // A fresh process fed the current form reads the header back and writes under it unchanged.
    let exporter = google(&server);
    exporter
        .form_created(&FormCreated {
            form: household(2),
            created_by: "u-1".into(),
        })
        .await;
    let outcome = exporter
        .response_submitted(&submitted(response("r-2", 2, "Kiprop", "", Some("no"))))
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            ExportOutcome::Exported {
                row_number: 3,
                header_changed: false,
                ..
            }
        ),
        "{outcome:?}"
    );
    let grid = fake.grid(SPREADSHEET, TAB).unwrap();
    assert_eq!(grid[0].len(), 10);
    assert_eq!(grid[2][4], json!("Kiprop"));
    assert_eq!(grid[2][9], json!("No"));

    // One that never sees the form cannot map labels to question ids: it adds id-named columns at the
    // end rather than guess, so nothing already written moves.
    let blind = google(&server);
    let outcome = blind
        .response_submitted(&submitted(response("r-3", 2, "Njeri", "", Some("no"))))
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        ExportOutcome::Exported {
            row_number: 4,
            header_changed: true,
            ..
        }
    ));
    let grid = fake.grid(SPREADSHEET, TAB).unwrap();
    assert_eq!(grid[0][4], json!("Respondent's name"));
    assert_eq!(grid[0].len(), 16);
    assert_eq!(grid[0][15], json!("respondent_name"));
    assert_eq!(grid[3][0], json!("r-3"));
    assert_eq!(grid[3][15], json!("Njeri"));
}

#[tokio::test]
async fn a_response_to_an_unknown_form_gets_columns_named_by_answer_id() {
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet(SPREADSHEET, &[]);
    let server = start(&fake).await;
    let exporter = google(&server);
    exporter
        .response_submitted(&submitted(response("r-1", 1, "Wanjiku", "ok", None)))
        .await
        .unwrap();
    let grid = fake.grid(SPREADSHEET, TAB).unwrap();
    assert_eq!(
        grid[0][4..],
        strings(&["city", "comments", "monthly_income", "phone", "respondent_name"])[..]
    );
    assert_eq!(grid[1][4], json!("nakuru"));

    // The form arrives: the id columns are relabelled in place, nothing moves.
    exporter
        .form_created(&FormCreated {
            form: household(1),
            created_by: "u-1".into(),
        })
        .await;
    exporter
        .response_submitted(&submitted(response("r-2", 1, "Otieno", "ok", None)))
        .await
        .unwrap();
    let grid = fake.grid(SPREADSHEET, TAB).unwrap();
    assert_eq!(grid[0][4], json!("City or nearest town"));
    assert_eq!(grid[0][8], json!("Respondent's name"));
    assert_eq!(grid[2][4], json!("Nakuru"));
    assert_eq!(grid[2][8], json!("Otieno"));
}

#[tokio::test]
async fn api_errors_are_classified() {
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet(SPREADSHEET, &[]);
    let server = start(&fake).await;
    let exporter = google(&server);
    let event = submitted(response("r-1", 1, "Wanjiku", "ok", None));

    fake.fail_next_api_calls(
        1,
        InjectedFailure {
            status: 503,
            retry_after: Some(7),
        },
    );
    let error = exporter.response_submitted(&event).await.unwrap_err();
    assert_eq!(
        error.disposition(),
        Disposition::Retry {
            after: Some(Duration::from_secs(7))
        }
    );
    assert!(
        error
            .to_string()
            .starts_with("The Sheets API answered HTTP 503 UNAVAILABLE"),
        "{error}"
    );

    fake.fail_next_api_calls(
        1,
        InjectedFailure {
            status: 429,
            retry_after: None,
        },
    );
    let error = exporter.response_submitted(&event).await.unwrap_err();
    assert_eq!(error.disposition(), Disposition::Throttled { after: None });

    fake.fail_next_api_calls(
        1,
        InjectedFailure {
            status: 403,
            retry_after: None,
        },
    );
    let error = exporter.response_submitted(&event).await.unwrap_err();
    assert!(
        matches!(&error, ExportError::Sheets(SheetsError::Api { status: 403, code, .. })
            if code == "PERMISSION_DENIED")
    );
    assert_eq!(error.disposition(), Disposition::DeadLetter);

    // After the failures, the retried event goes through, with the header first.
    let outcome = exporter.response_submitted(&event).await.unwrap();
    assert!(matches!(
        outcome,
        ExportOutcome::Exported {
            row_number: 2,
            header_changed: true,
            ..
        }
    ));

    // An unknown team is a configuration problem.
    let mut other = event.clone();
    other.response.team_id = "maji-water".into();
    let error = exporter.response_submitted(&other).await.unwrap_err();
    assert!(matches!(error, ExportError::TeamNotConfigured { .. }));
    assert_eq!(error.disposition(), Disposition::DeadLetter);
}

#[tokio::test]
async fn the_google_target_needs_a_key() {
    let client = SheetsClient::new("http://127.0.0.1:1", http()).unwrap();
    let target = GoogleSheets::new(client);
    let config = SheetsConfig::from_json(&json!({ "spreadsheet_id": "x" })).unwrap();
    let error = target.configure_team(TEAM, &config).unwrap_err();
    assert_eq!(error.field, "service_account_key");
    assert!(!target.remove_team(TEAM));
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("saas-draft-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_csv_target_quotes_and_grows_its_header() {
    let dir = temp_dir("csv");
    let exporter = SheetsExporter::new(CsvTarget::new(&dir));
    exporter
        .form_created(&FormCreated {
            form: household(1),
            created_by: "u-1".into(),
        })
        .await;
    let outcome = exporter
        .response_submitted(&submitted(response(
            "r-1",
            1,
            "O'Brien \"Bob\"",
            "Mambo poa, maji\niko fiti",
            None,
        )))
        .await
        .unwrap();
    let path = dir.join(TEAM).join(format!("{FORM}.csv"));
    assert_eq!(
        outcome,
        ExportOutcome::Exported {
            spreadsheet_id: path.display().to_string(),
            range: "A2:I2".into(),
            row_number: 2,
            header_changed: true,
            updated: false,
        }
    );
    let header = "response_id,submitted_at,collector_id,form_version,Respondent's name,Phone number,\
                  City or nearest town,Monthly household income,Enumerator's comments\n";
    let row1 = "r-1,2026-11-20T09:01:00Z,enum-7,1,\"O'Brien \"\"Bob\"\"\",+254712345678,Nakuru,18500,\
                \"Mambo poa, maji\niko fiti\"\n";
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{header}{row1}"));

    let updated = FormUpdated {
        form: household(2),
        previous_version: 1,
        updated_by: "u-1".into(),
    };
    exporter.form_updated(&updated).await;
    let outcome = exporter
        .response_submitted(&submitted(response("r-2", 2, "Achieng", "", Some("yes"))))
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        ExportOutcome::Exported {
            row_number: 3,
            header_changed: true,
            ..
        }
    ));
    let new_header = format!("{},Did the respondent consent to follow-up?\n", header.trim_end());
    let row2 = "r-2,2026-11-20T09:01:00Z,enum-7,2,Achieng,+254712345678,Nakuru,18500,,Yes\n";
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{new_header}{row1}{row2}")
    );

    // A restarted exporter, fed the current form, continues the file under its header.
    let restarted = SheetsExporter::new(CsvTarget::new(&dir));
    restarted
        .form_created(&FormCreated {
            form: household(2),
            created_by: "u-1".into(),
        })
        .await;
    let outcome = restarted
        .response_submitted(&submitted(response("r-3", 2, "Kiprop", "", Some("no"))))
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        ExportOutcome::Exported {
            row_number: 4,
            header_changed: false,
            ..
        }
    ));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(&new_header));
    assert!(
        text.ends_with("r-3,2026-11-20T09:01:00Z,enum-7,2,Kiprop,+254712345678,Nakuru,18500,,No\n"),
        "{text}"
    );

    // Ids that could escape the directory are refused.
    let mut evil = submitted(response("r-4", 1, "x", "", None));
    evil.response.team_id = "../etc".into();
    let error = restarted.response_submitted(&evil).await.unwrap_err();
    assert!(matches!(error, ExportError::UnsafeName { .. }));
    assert_eq!(error.disposition(), Disposition::DeadLetter);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Quotas and batches

fn demo_tokens(server: &FakeServer) -> TokenSource {
    let key = ServiceAccountKey::from_json(&demo_service_account_json(&format!(
        "{}/token",
        server.base_url()
    )))
    .unwrap();
    TokenSource::new(&key, http()).unwrap()
}

/// The household form under the id of the team's second form.
fn form_b() -> Form {
    let mut form = household(1);
    form.id = FORM_B.into();
    form
}

fn response_to(form_id: &str, id: &str, name: &str) -> ResponseSubmitted {
    let mut response = response(id, 1, name, "", None);
    response.form_id = form_id.into();
    submitted(response)
}

fn created(form: Form) -> FormCreated {
    FormCreated {
        form,
        created_by: "u-1".into(),
    }
}

/// The Sheets API writes the fake has counted.
fn writes(fake: &FakeSheets) -> u64 {
    [
        ApiMethod::BatchUpdate,
        ApiMethod::ValuesUpdate,
        ApiMethod::ValuesAppend,
    ]
    .into_iter()
    .map(|method| fake.method_calls(method))
    .sum()
}

fn exported(result: &BatchResult) -> Option<(String, u64)> {
    match result {
        Ok(ExportOutcome::Exported {
            range, row_number, ..
        }) => Some((range.clone(), *row_number)),
        _ => None,
    }
}

#[tokio::test]
async fn the_fake_refuses_calls_past_googles_per_minute_quotas() {
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet("s1", &["Data"]);
    fake.set_write_quota_per_minute(300, 2);
    let server = start(&fake).await;
    let client = SheetsClient::new(&server.base_url(), http()).unwrap();
    let auth = demo_tokens(&server);
    let number = fake.project_number(DEMO_CLIENT_EMAIL).unwrap();

    for _ in 0..2 {
        client
            .update_values(&auth, "s1", "Data!A1", &[strings(&["a"])])
            .await
            .unwrap();
    }
    let error = client
        .append_values(&auth, "s1", "Data!A1", &[strings(&["b"])])
        .await
        .unwrap_err();
    let expected = format!(
        "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per user' of \
         service 'sheets.googleapis.com' for consumer 'project_number:{number}'."
    );
    assert!(
        matches!(&error, SheetsError::Api { status: 429, code, message, retry_after: None, .. }
            if code == "RESOURCE_EXHAUSTED" && *message == expected),
        "{error:?}"
    );
    assert_eq!(error.disposition(), Disposition::Throttled { after: None });
    // Reads count against a quota of their own.
    client.get_values(&auth, "s1", "Data!A1").await.unwrap();

    // The whole answer, as Google sends it: no Retry-After, the quota in the details.
    let token = auth.token().await.unwrap();
    let raw = http()
        .post(format!(
            "{}/v4/spreadsheets/s1/values/Data!A1:append?valueInputOption=RAW",
            server.base_url()
        ))
        .bearer_auth(token.secret())
        .json(&json!({ "values": [["c"]] }))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 429);
    assert!(raw.headers().get("retry-after").is_none());
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!(429));
    assert_eq!(body["error"]["status"], json!("RESOURCE_EXHAUSTED"));
    let info = &body["error"]["details"][0];
    assert_eq!(info["reason"], json!("RATE_LIMIT_EXCEEDED"));
    assert_eq!(
        info["metadata"]["quota_limit"],
        json!("WriteRequestsPerMinutePerUser")
    );
    assert_eq!(info["metadata"]["quota_limit_value"], json!("2"));
    // Refused writes changed nothing.
    assert_eq!(fake.grid("s1", "Data").unwrap(), vec![vec![json!("a")]]);

    // A minute later the quota is refilled.
    fake.advance_clock(Duration::from_secs(60));
    let appended = client
        .append_values(&auth, "s1", "Data!A1", &[strings(&["b"])])
        .await
        .unwrap();
    assert_eq!(appended.first_row(), Some(2));

    // The project's own limit, shared by its users, is named as Google names it.
    fake.set_write_quota_per_minute(1, 60);
    let error = client
        .update_values(&auth, "s1", "Data!A1", &[strings(&["x"])])
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("limit 'Write requests per minute' of service 'sheets.googleapis.com'"),
        "{error}"
    );
    fake.set_read_quota_per_minute(300, 1);
    client.get_values(&auth, "s1", "Data!A1").await.unwrap();
    let error = client.get_values(&auth, "s1", "Data!A1").await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("limit 'Read requests per minute per user'"),
        "{error}"
    );
}

#[tokio::test]
async fn a_batch_appends_once_per_tab() {
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet(SPREADSHEET, &[]);
    let server = start(&fake).await;
    let exporter = google(&server);
    let (form_a, form_b) = (created(household(1)), created(form_b()));
    let responses = [
        response_to(FORM, "r-1", "Wanjiku"),
        response_to(FORM_B, "r-2", "Otieno"),
        response_to(FORM, "r-3", "Achieng"),
        response_to(FORM_B, "r-4", "Kiprop"),
    ];
    let mut events = vec![
        ExportEvent::FormCreated(&form_a),
        ExportEvent::FormCreated(&form_b),
    ];
    events.extend(responses.iter().map(ExportEvent::ResponseSubmitted));

    let results = exporter.export_batch(&events).await;
    assert_eq!(fake.method_calls(ApiMethod::ValuesAppend), 2);
    // One header per tab, written before its rows.
    assert_eq!(fake.method_calls(ApiMethod::ValuesUpdate), 2);
    assert!(matches!(
        results[0],
        Ok(ExportOutcome::FormRecorded { header_changed: true })
    ));
    assert_eq!(
        results[2].as_ref().unwrap(),
        &ExportOutcome::Exported {
            spreadsheet_id: SPREADSHEET.into(),
            range: format!("'{TAB}'!A2:I2"),
            row_number: 2,
            header_changed: true,
            updated: false,
        }
    );
    let rows: Vec<_> = results[2..].iter().map(exported).collect();
    assert_eq!(
        rows,
        [
            Some((format!("'{TAB}'!A2:I2"), 2)),
            Some((format!("'{TAB_B}'!A2:I2"), 2)),
            Some((format!("'{TAB}'!A3:I3"), 3)),
            Some((format!("'{TAB_B}'!A3:I3"), 3)),
        ]
    );
    let grid = fake.grid(SPREADSHEET, TAB).unwrap();
    let ids: Vec<&Value> = grid.iter().map(|row| &row[0]).collect();
    assert_eq!(ids, [&json!("response_id"), &json!("r-1"), &json!("r-3")]);
    assert_eq!(grid[2][4], json!("Achieng"));

    // Once the tabs are known, a batch of new responses costs two calls per tab: the ids read again (another
    // worker may have appended some during a rebalance) and one append.
    let before = fake.api_calls();
    let more = [
        response_to(FORM, "r-5", "Njeri"),
        response_to(FORM_B, "r-6", "Mutua"),
        response_to(FORM, "r-7", "Chebet"),
    ];
    let events: Vec<_> = more.iter().map(ExportEvent::ResponseSubmitted).collect();
    let results = exporter.export_batch(&events).await;
    assert_eq!(fake.api_calls() - before, 4);
    let rows: Vec<_> = results.iter().map(|r| exported(r).map(|(_, row)| row)).collect();
    assert_eq!(rows, [Some(4), Some(4), Some(5)]);
}

#[tokio::test]
async fn a_quota_refusal_retries_only_the_tab_it_stopped() {
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet(SPREADSHEET, &[]);
    let server = start(&fake).await;
    let exporter = google(&server);
    let warm_up = [response_to(FORM, "r-1", "a"), response_to(FORM_B, "r-2", "b")];
    let events: Vec<_> = warm_up.iter().map(ExportEvent::ResponseSubmitted).collect();
    assert!(exporter.export_batch(&events).await.iter().all(Result::is_ok));

    // Room for one more write this minute: tab A's append takes it, tab B's is refused.
    fake.set_write_quota_per_minute(300, u32::try_from(writes(&fake)).unwrap() + 1);
    let batch = [
        response_to(FORM_B, "r-3", "c"),
        response_to(FORM, "r-4", "d"),
        response_to(FORM_B, "r-5", "e"),
    ];
    let mut events: Vec<_> = batch.iter().map(ExportEvent::ResponseSubmitted).collect();
    events.swap(0, 1);
    let results = exporter.export_batch(&events).await;
    assert_eq!(exported(&results[0]).map(|(_, row)| row), Some(3));
    for refused in [&results[1], &results[2]] {
        let error = refused.as_ref().unwrap_err();
        assert_eq!(error.disposition(), Disposition::Throttled { after: None });
        assert!(
            error.to_string().contains("429 RESOURCE_EXHAUSTED") && error.to_string().contains("per user"),
            "{error}"
        );
    }
    assert_eq!(fake.grid(SPREADSHEET, TAB_B).unwrap().len(), 2);

    // Retried after the minute, tab B's rows land in their order.
    fake.advance_clock(Duration::from_secs(60));
    let retried: Vec<_> = [&batch[0], &batch[2]]
        .into_iter()
        .map(ExportEvent::ResponseSubmitted)
        .collect();
    let results = exporter.export_batch(&retried).await;
    let rows: Vec<_> = results.iter().map(|r| exported(r).map(|(_, row)| row)).collect();
    assert_eq!(rows, [Some(3), Some(4)]);

    // A 429 with a Retry-After passes the wish on.
    fake.fail_next_api_calls(
        1,
        InjectedFailure {
            status: 429,
            retry_after: Some(30),
        },
    );
    let results = exporter.export_batch(&retried[..1]).await;
    assert_eq!(
        results[0].as_ref().unwrap_err().disposition(),
        Disposition::Throttled {
            after: Some(Duration::from_secs(30))
        }
    );
}

fn item_context(index: usize, event_type: &str, data: Value) -> Context {
    Context {
        meta: EventMeta {
            id: format!("ev-{index}"),
            source: "test".into(),
            event_type: event_type.into(),
            time: None,
            subject: None,
            team_id: TEAM.into(),
            installation: "default".into(),
            backfill: None,
        },
        data,
        data_json: None,
        attempt: 1,
        traceparent: None,
    }
}

#[tokio::test]
async fn the_plugin_answers_a_batch_in_its_order() {
    let manifest = sheets_export_manifest(None);
    assert_eq!(
        manifest.delivery.batch,
        Some(Batch {
            max_events: 50,
            max_wait_ms: 200
        })
    );
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet(SPREADSHEET, &[]);
    let server = start(&fake).await;
    let target = GoogleSheets::new(SheetsClient::new(&server.base_url(), http()).unwrap());
    let plugin = SheetsExportPlugin::new(target, manifest);
    let key = demo_service_account_json(&format!("{}/token", server.base_url()));
    let config = json!({ "spreadsheet_id": SPREADSHEET, "service_account_key": key });
    plugin
        .initialize(TEAM, DEFAULT_INSTALLATION, Some(&config))
        .await
        .unwrap();

    let form = created(household(1));
    let (r1, r2) = (response_to(FORM, "r-1", "a"), response_to(FORM_B, "r-2", "b"));
    let edit = ResponseUpdated {
        response: r1.response.clone(),
        revision: 2,
        updated_by: "u-1".into(),
        updated_at: 1_795_165_300_000,
    };
    let events = [
        (
            "form.created",
            Event::FormCreated(form.clone()),
            serde_json::to_value(&form).unwrap(),
        ),
        (
            "response.submitted",
            Event::ResponseSubmitted(r1.clone()),
            serde_json::to_value(&r1).unwrap(),
        ),
        ("survey.archived", Event::Other(json!({})), json!({})),
        (
            "response.submitted",
            Event::ResponseSubmitted(r2.clone()),
            serde_json::to_value(&r2).unwrap(),
        ),
        (
            "response.updated",
            Event::ResponseUpdated(edit.clone()),
            serde_json::to_value(&edit).unwrap(),
        ),
    ];
    let contexts: Vec<Context> = events
        .iter()
        .enumerate()
        .map(|(index, (kind, _, data))| item_context(index, kind, data.clone()))
        .collect();
    let items: Vec<BatchItem<'_>> = events
        .iter()
        .zip(&contexts)
        .map(|((_, event, _), ctx)| BatchItem { ctx, event })
        .collect();

    let outcomes = plugin.execute_batch(&items).await;
    let subjects: Vec<Option<Option<&str>>> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Outcome::Done(results) => Some(results.first().and_then(|r| {
                assert_eq!(r.kind, "sheets.row_appended");
                r.subject.as_deref()
            })),
            _ => None,
        })
        .collect();
    assert_eq!(
        subjects,
        [
            Some(None),
            Some(Some("r-1")),
            Some(None),
            Some(Some("r-2")),
            Some(Some("r-1"))
        ]
    );
    // The edit, in the same batch as the submission, ends in the same row.
    let Outcome::Done(results) = &outcomes[4] else {
        unreachable!()
    };
    assert_eq!(results[0].data["row_number"], json!(2));
    assert_eq!(results[0].data["updated"], json!(false));
    assert_eq!(fake.method_calls(ApiMethod::ValuesAppend), 2);

    // No permission on the second form's tab: its responses are dead-lettered, the first tab's written.
    let later = [items[3], items[1]];
    fake.fail_next_api_calls(
        1,
        InjectedFailure {
            status: 403,
            retry_after: None,
        },
    );
    let outcomes = plugin.execute_batch(&later).await;
    assert!(
        matches!(&outcomes[0], Outcome::DeadLetter { reason } if reason.contains("403 PERMISSION_DENIED")),
        "{outcomes:?}"
    );
    assert!(matches!(&outcomes[1], Outcome::Done(results) if results.len() == 1));
}

#[tokio::test]
async fn the_fake_answers_after_its_latency() {
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet("s1", &["Data"]);
    let server = start(&fake).await;
    let client = SheetsClient::new(&server.base_url(), http()).unwrap();
    let auth = demo_tokens(&server);
    auth.token().await.unwrap();
    fake.set_latency(Duration::from_millis(200));
    let started = std::time::Instant::now();
    client.get_values(&auth, "s1", "Data!A1").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn the_csv_target_appends_a_batch_in_one_write() {
    let dir = temp_dir("csv-batch");
    let exporter = SheetsExporter::new(CsvTarget::new(&dir));
    let form = created(household(1));
    let responses = [
        response_to(FORM, "r-1", "Wanjiku"),
        response_to(FORM, "r-2", "Otieno"),
        response_to(FORM, "r-3", "Achieng"),
    ];
    let mut events = vec![ExportEvent::FormCreated(&form)];
    events.extend(responses.iter().map(ExportEvent::ResponseSubmitted));
    let results = exporter.export_batch(&events).await;
    let rows: Vec<_> = results.iter().map(exported).collect();
    assert_eq!(
        rows,
        [
            None,
            Some(("A2:I2".to_owned(), 2)),
            Some(("A3:I3".to_owned(), 3)),
            Some(("A4:I4".to_owned(), 4)),
        ]
    );
    let text = std::fs::read_to_string(dir.join(TEAM).join(format!("{FORM}.csv"))).unwrap();
    let ids: Vec<&str> = text.lines().map(|line| line.split(',').next().unwrap()).collect();
    assert_eq!(ids, ["response_id", "r-1", "r-2", "r-3"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------------
// One row per response

/// How many rows of `tab` carry `response_id` in their first cell.
fn rows_of(fake: &FakeSheets, tab: &str, response_id: &str) -> usize {
    let grid = fake.grid(SPREADSHEET, tab).unwrap_or_default();
    grid.iter()
        .filter(|row| row.first() == Some(&json!(response_id)))
        .count()
}

/// The row number and whether the row was overwritten, of an exported response.
fn written(result: &BatchResult) -> Option<(u64, bool)> {
    match result {
        Ok(ExportOutcome::Exported {
            row_number, updated, ..
        }) => Some((*row_number, *updated)),
        _ => None,
    }
}

fn edited(response: Response) -> ResponseUpdated {
    ResponseUpdated {
        response,
        revision: 2,
        updated_by: "supervisor".into(),
        updated_at: 1_795_165_900_000,
    }
}

/// An exporter on a fresh fake that knows the household form.
async fn household_exporter() -> (FakeSheets, FakeServer, SheetsExporter<GoogleSheets>) {
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet(SPREADSHEET, &[]);
    let server = start(&fake).await;
    let exporter = google(&server);
    exporter.form_created(&created(household(1))).await;
    (fake, server, exporter)
}

#[tokio::test]
async fn a_response_exported_twice_keeps_one_row() {
    let (fake, _server, exporter) = household_exporter().await;
    let event = submitted(response("r-1", 1, "Wanjiku", "ok", None));
    let first = exporter.response_submitted(&event).await.unwrap();
    assert!(matches!(
        first,
        ExportOutcome::Exported {
            row_number: 2,
            updated: false,
            ..
        }
    ));
    let again = exporter.response_submitted(&event).await.unwrap();
    assert!(matches!(
        again,
        ExportOutcome::Exported {
            row_number: 2,
            updated: true,
            ..
        }
    ));
    assert_eq!(rows_of(&fake, TAB, "r-1"), 1);
    assert_eq!(fake.method_calls(ApiMethod::ValuesAppend), 1);
    assert_eq!(fake.method_calls(ApiMethod::ValuesBatchUpdate), 1);

    // Twice in one batch: a new response gets one appended row, a known one is overwritten once.
    let other = submitted(response("r-2", 1, "Otieno", "", None));
    let batch = [
        ExportEvent::ResponseSubmitted(&other),
        ExportEvent::ResponseSubmitted(&event),
        ExportEvent::ResponseSubmitted(&other),
        ExportEvent::ResponseSubmitted(&event),
    ];
    let results = exporter.export_batch(&batch).await;
    let rows: Vec<_> = results.iter().map(written).collect();
    assert_eq!(
        rows,
        [
            Some((3, false)),
            Some((2, true)),
            Some((3, false)),
            Some((2, true))
        ]
    );
    assert_eq!(rows_of(&fake, TAB, "r-1"), 1);
    assert_eq!(rows_of(&fake, TAB, "r-2"), 1);
    assert_eq!(fake.grid(SPREADSHEET, TAB).unwrap().len(), 3);
    assert_eq!(fake.method_calls(ApiMethod::ValuesAppend), 2);
    assert_eq!(fake.method_calls(ApiMethod::ValuesBatchUpdate), 2);
}

#[tokio::test]
async fn an_edit_overwrites_the_row_with_the_new_answers() {
    let (fake, _server, exporter) = household_exporter().await;
    exporter
        .response_submitted(&submitted(response("r-1", 1, "Wanjiku", "ok", None)))
        .await
        .unwrap();
    let outcome = exporter
        .response_updated(&edited(response("r-1", 1, "Wanjiku Kamau", "corrected", None)))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ExportOutcome::Exported {
            spreadsheet_id: SPREADSHEET.into(),
            range: format!("'{TAB}'!A2:I2"),
            row_number: 2,
            header_changed: false,
            updated: true,
        }
    );
    let grid = fake.grid(SPREADSHEET, TAB).unwrap();
    assert_eq!(grid.len(), 2);
    assert_eq!(grid[1][0], json!("r-1"));
    assert_eq!(
        grid[1][1],
        json!("2026-11-20T09:01:00Z"),
        "the original submitted_at"
    );
    assert_eq!(grid[1][4], json!("Wanjiku Kamau"));
    assert_eq!(grid[1][8], json!("corrected"));

    // A submission and its edit in one batch, before either was written: one row, with the edit.
    let (new, edit) = (
        submitted(response("r-2", 1, "Otieno", "first", None)),
        edited(response("r-2", 1, "Otieno", "second", None)),
    );
    let results = exporter
        .export_batch(&[
            ExportEvent::ResponseSubmitted(&new),
            ExportEvent::ResponseUpdated(&edit),
        ])
        .await;
    let rows: Vec<_> = results.iter().map(written).collect();
    assert_eq!(rows, [Some((3, false)), Some((3, false))]);
    let grid = fake.grid(SPREADSHEET, TAB).unwrap();
    assert_eq!(grid.len(), 3);
    assert_eq!(grid[2][8], json!("second"));
}

#[tokio::test]
async fn a_restarted_exporter_overwrites_the_rows_written_before() {
    let (fake, server, exporter) = household_exporter().await;
    let (r1, r2, r3) = (
        submitted(response("r-1", 1, "Wanjiku", "", None)),
        submitted(response("r-2", 1, "Otieno", "", None)),
        submitted(response("r-3", 1, "Achieng", "", None)),
    );
    let batch = [
        ExportEvent::ResponseSubmitted(&r1),
        ExportEvent::ResponseSubmitted(&r2),
    ];
    assert!(exporter.export_batch(&batch).await.iter().all(Result::is_ok));
    drop(exporter);

    // A new process, fed the form, is handed r-2 again (its offset was not committed) and r-3.
    let restarted = google(&server);
    restarted.form_created(&created(household(1))).await;
    let calls = |method| fake.method_calls(method);
    let before = [
        ApiMethod::SpreadsheetsGet,
        ApiMethod::ValuesGet,
        ApiMethod::ValuesUpdate,
        ApiMethod::ValuesBatchUpdate,
        ApiMethod::ValuesAppend,
    ]
    .map(calls);
    let batch = [
        ExportEvent::ResponseSubmitted(&r2),
        ExportEvent::ResponseSubmitted(&r3),
    ];
    let results = restarted.export_batch(&batch).await;
    let rows: Vec<_> = results.iter().map(written).collect();
    assert_eq!(rows, [Some((3, true)), Some((4, false))]);
    let after = [
        ApiMethod::SpreadsheetsGet,
        ApiMethod::ValuesGet,
        ApiMethod::ValuesUpdate,
        ApiMethod::ValuesBatchUpdate,
        ApiMethod::ValuesAppend,
    ]
    .map(calls);
    // Reads: the tabs, the header, the response_id column. Writes: one overwrite, one append.
    let spent: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(spent, [1, 2, 0, 1, 1]);
    assert_eq!(rows_of(&fake, TAB, "r-2"), 1);
    assert_eq!(fake.grid(SPREADSHEET, TAB).unwrap().len(), 4);
}

#[tokio::test]
async fn an_append_applied_but_answered_503_is_not_appended_again() {
    let (fake, _server, exporter) = household_exporter().await;
    exporter
        .response_submitted(&submitted(response("r-1", 1, "Wanjiku", "", None)))
        .await
        .unwrap();

    // Google appends the rows, but the answer is lost: a 503 arrives instead.
    let unavailable = InjectedFailure {
        status: 503,
        retry_after: None,
    };
    fake.fail_after_applying(ApiMethod::ValuesAppend, 1, unavailable);
    let (r2, r3) = (
        submitted(response("r-2", 1, "Otieno", "", None)),
        submitted(response("r-3", 1, "Achieng", "", None)),
    );
    let batch = [
        ExportEvent::ResponseSubmitted(&r2),
        ExportEvent::ResponseSubmitted(&r3),
    ];
    let results = exporter.export_batch(&batch).await;
    for result in &results {
        let error = result.as_ref().unwrap_err();
        assert_eq!(error.disposition(), Disposition::Retry { after: None });
    }
    assert_eq!(rows_of(&fake, TAB, "r-2"), 1, "the append was applied");

    // The delivery engine retries: the column is read again, the rows are found and overwritten.
    let (reads, appends) = (
        fake.method_calls(ApiMethod::ValuesGet),
        fake.method_calls(ApiMethod::ValuesAppend),
    );
    let r4 = submitted(response("r-4", 1, "Kiprop", "", None));
    let retried = [
        ExportEvent::ResponseSubmitted(&r2),
        ExportEvent::ResponseSubmitted(&r3),
        ExportEvent::ResponseSubmitted(&r4),
    ];
    let results = exporter.export_batch(&retried).await;
    let rows: Vec<_> = results.iter().map(written).collect();
    assert_eq!(rows, [Some((3, true)), Some((4, true)), Some((5, false))]);
    assert_eq!(fake.method_calls(ApiMethod::ValuesGet) - reads, 1);
    assert_eq!(fake.method_calls(ApiMethod::ValuesAppend) - appends, 1);
    for id in ["r-1", "r-2", "r-3", "r-4"] {
        assert_eq!(rows_of(&fake, TAB, id), 1, "{id}");
    }
    assert_eq!(fake.grid(SPREADSHEET, TAB).unwrap().len(), 5);

    // An append refused for the quota was not applied: the index is kept; the retry reads only what every
    // append reads first.
    fake.fail_next_api_calls(
        1,
        InjectedFailure {
            status: 429,
            retry_after: None,
        },
    );
    let r5 = submitted(response("r-5", 1, "Njeri", "", None));
    assert!(exporter.response_submitted(&r5).await.is_err());
    let reads = fake.method_calls(ApiMethod::ValuesGet);
    exporter.response_submitted(&r5).await.unwrap();
    assert_eq!(fake.method_calls(ApiMethod::ValuesGet), reads + 1);
    assert_eq!(rows_of(&fake, TAB, "r-5"), 1);
}

#[tokio::test]
async fn a_batch_writes_each_tab_with_one_append_and_at_most_one_batch_update() {
    let (fake, _server, exporter) = household_exporter().await;
    exporter.form_created(&created(form_b())).await;
    let warm_up = [
        response_to(FORM, "r-1", "Wanjiku"),
        response_to(FORM_B, "r-2", "Otieno"),
        response_to(FORM, "r-3", "Achieng"),
    ];
    let events: Vec<_> = warm_up.iter().map(ExportEvent::ResponseSubmitted).collect();
    exporter.export_batch(&events).await;
    // Per new tab: addSheet, the header, the append.
    assert_eq!(fake.write_calls(), 6);

    let edit_b = edited(response_to(FORM_B, "r-2", "Otieno Juma").response);
    let new = [
        response_to(FORM, "r-4", "Kiprop"),
        response_to(FORM_B, "r-5", "Njeri"),
    ];
    let events = [
        ExportEvent::ResponseSubmitted(&warm_up[0]),
        ExportEvent::ResponseSubmitted(&new[0]),
        ExportEvent::ResponseUpdated(&edit_b),
        ExportEvent::ResponseSubmitted(&warm_up[2]),
        ExportEvent::ResponseSubmitted(&new[1]),
        ExportEvent::ResponseSubmitted(&new[0]),
    ];
    let (writes, batch_updates, appends) = (
        fake.write_calls(),
        fake.method_calls(ApiMethod::ValuesBatchUpdate),
        fake.method_calls(ApiMethod::ValuesAppend),
    );
    let results = exporter.export_batch(&events).await;
    let rows: Vec<_> = results.iter().map(written).collect();
    assert_eq!(
        rows,
        [
            Some((2, true)),
            Some((4, false)),
            Some((2, true)),
            Some((3, true)),
            Some((3, false)),
            Some((4, false))
        ]
    );
    // Two tabs: one batchUpdate and one append each, nothing else.
    assert_eq!(fake.write_calls() - writes, 4);
    assert_eq!(fake.method_calls(ApiMethod::ValuesBatchUpdate) - batch_updates, 2);
    assert_eq!(fake.method_calls(ApiMethod::ValuesAppend) - appends, 2);
    assert_eq!(fake.grid(SPREADSHEET, TAB).unwrap().len(), 4);
    assert_eq!(fake.grid(SPREADSHEET, TAB_B).unwrap().len(), 3);
    assert_eq!(fake.grid(SPREADSHEET, TAB_B).unwrap()[1][4], json!("Otieno Juma"));

    // Only rows already written: one batchUpdate per tab and no append.
    let writes = fake.write_calls();
    let events: Vec<_> = warm_up.iter().map(ExportEvent::ResponseSubmitted).collect();
    exporter.export_batch(&events).await;
    assert_eq!(fake.write_calls() - writes, 2);
    assert_eq!(fake.method_calls(ApiMethod::ValuesAppend) - appends, 2);
}

#[tokio::test]
async fn the_fake_batch_updates_values_as_google_does() {
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet("s1", &["Data"]);
    let server = start(&fake).await;
    let client = SheetsClient::new(&server.base_url(), http()).unwrap();
    let auth = demo_tokens(&server);
    let block = |range: &str, rows: Vec<Vec<Value>>| ValueRange {
        range: range.to_owned(),
        major_dimension: Some("ROWS".to_owned()),
        values: rows,
    };
    client
        .update_values(&auth, "s1", "Data!A1", &[strings(&["id", "n"])])
        .await
        .unwrap();
    let answer = client
        .batch_update_values(
            &auth,
            "s1",
            &[
                block("Data!A2:B2", vec![vec![json!("a"), json!(1)]]),
                block("'Data'!A4", vec![strings(&["b"])]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(answer.spreadsheet_id, "s1");
    assert_eq!(
        (
            answer.total_updated_rows,
            answer.total_updated_columns,
            answer.total_updated_cells,
            answer.total_updated_sheets
        ),
        (2, 2, 3, 1)
    );
    let ranges: Vec<&str> = answer
        .responses
        .iter()
        .map(|r| r.updated_range.as_str())
        .collect();
    assert_eq!(ranges, ["'Data'!A2:B2", "'Data'!A4:A4"]);
    assert_eq!(fake.method_calls(ApiMethod::ValuesBatchUpdate), 1);

    // A whole column reads back from row 1, an empty row inside as `[]`, the range bounded by the grid.
    let column = client.get_values(&auth, "s1", "Data!A:A").await.unwrap();
    assert_eq!(column.range, "'Data'!A1:A1000");
    let expected: Vec<Vec<Value>> = vec![strings(&["id"]), strings(&["a"]), vec![], strings(&["b"])];
    assert_eq!(column.values, expected);

    // Every range is checked before anything is written.
    let error = client
        .batch_update_values(
            &auth,
            "s1",
            &[
                block("Data!A5", vec![strings(&["c"])]),
                block("Nope!A1", vec![strings(&["d"])]),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SheetsError::Api { status: 400, message, .. }
            if message == "Invalid data[1]: Unable to parse range: Nope!A1"),
        "{error:?}"
    );
    assert_eq!(fake.grid("s1", "Data").unwrap().len(), 4);
    let token = auth.token().await.unwrap();
    let raw = http()
        .post(format!(
            "{}/v4/spreadsheets/s1/values:batchUpdate",
            server.base_url()
        ))
        .bearer_auth(token.secret())
        .json(&json!({ "data": [{ "range": "Data!A5", "values": [["c"]] }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        json!("'valueInputOption' is required but not specified")
    );

    // It is a write like any other for the quota.
    fake.set_write_quota_per_minute(300, u32::try_from(fake.write_calls()).unwrap());
    let error = client
        .batch_update_values(&auth, "s1", &[block("Data!A5", vec![strings(&["c"])])])
        .await
        .unwrap_err();
    assert_eq!(error.disposition(), Disposition::Throttled { after: None });
}

#[tokio::test]
async fn the_csv_target_keeps_one_record_per_response() {
    let dir = temp_dir("csv-one-row");
    let path = dir.join(TEAM).join(format!("{FORM}.csv"));
    let exporter = SheetsExporter::new(CsvTarget::new(&dir));
    exporter.form_created(&created(household(1))).await;
    let (r1, r2) = (
        submitted(response("r-1", 1, "Wanjiku", "two\nlines", None)),
        submitted(response("r-2", 1, "Otieno", "", None)),
    );
    let edit = edited(response("r-1", 1, "Wanjiku Kamau", "fixed", None));
    let batch = [
        ExportEvent::ResponseSubmitted(&r1),
        ExportEvent::ResponseSubmitted(&r2),
        ExportEvent::ResponseSubmitted(&r1),
    ];
    let rows: Vec<_> = exporter.export_batch(&batch).await.iter().map(written).collect();
    assert_eq!(rows, [Some((2, false)), Some((3, false)), Some((2, false))]);
    let outcome = exporter.response_updated(&edit).await.unwrap();
    assert!(matches!(
        outcome,
        ExportOutcome::Exported {
            row_number: 2,
            updated: true,
            ..
        }
    ));
    let text = std::fs::read_to_string(&path).unwrap();
    let ids: Vec<&str> = text.lines().map(|line| line.split(',').next().unwrap()).collect();
    assert_eq!(ids, ["response_id", "r-1", "r-2"], "{text}");
    assert!(
        text.contains("Wanjiku Kamau") && !text.contains("two\nlines"),
        "{text}"
    );

    // A restarted exporter reads the ids back: a repeated event overwrites, a new one is appended.
    let restarted = SheetsExporter::new(CsvTarget::new(&dir));
    restarted.form_created(&created(household(1))).await;
    let r3 = submitted(response("r-3", 1, "Achieng", "", None));
    let batch = [
        ExportEvent::ResponseSubmitted(&r2),
        ExportEvent::ResponseSubmitted(&r3),
    ];
    let rows: Vec<_> = restarted.export_batch(&batch).await.iter().map(written).collect();
    assert_eq!(rows, [Some((3, true)), Some((4, false))]);
    let text = std::fs::read_to_string(&path).unwrap();
    let ids: Vec<&str> = text.lines().map(|line| line.split(',').next().unwrap()).collect();
    assert_eq!(ids, ["response_id", "r-1", "r-2", "r-3"], "{text}");

    // Someone truncated the file behind the exporter's back: the overwrite fails and is retried, and
    // the retry reads the ids again and appends the row that is gone.
    let header = text.lines().next().unwrap();
    std::fs::write(&path, format!("{header}\n")).unwrap();
    let error = restarted.response_submitted(&r3).await.unwrap_err();
    assert_eq!(error.disposition(), Disposition::Retry { after: None });
    let outcome = restarted.response_submitted(&r3).await.unwrap();
    assert!(matches!(
        outcome,
        ExportOutcome::Exported {
            row_number: 2,
            updated: false,
            ..
        }
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Installations: a team that installed the plugin twice

/// The team's second installation, with a spreadsheet of its own.
const BRANCH: &str = "forms-bc";
const BRANCH_SPREADSHEET: &str = "1kilimoBranchSheet";
const BRANCH_TAB: &str = "Branch - f-kilimo-coop-household-survey";

/// The context of `event` routed for the team's `installation`.
fn installation_context(installation: &str, id: &str, event_type: &str, data: Value) -> Context {
    let mut ctx = item_context(0, event_type, data);
    ctx.meta.id = id.into();
    ctx.meta.installation = installation.into();
    ctx
}

/// What the plugin answers for a `response.submitted` of `response` routed for `installation`.
async fn export_for<T: switchyard_plugins::in_process::ConfiguredTarget>(
    plugin: &SheetsExportPlugin<T>,
    installation: &str,
    response: &Response,
) -> Outcome {
    let event = submitted(response.clone());
    let ctx = installation_context(
        installation,
        &format!("e-{}", response.id),
        "response.submitted",
        serde_json::to_value(&event).unwrap(),
    );
    plugin.execute(&ctx, &Event::ResponseSubmitted(event)).await
}

/// The `response_id` column of a tab of the fake.
fn ids_in(fake: &FakeSheets, spreadsheet: &str, tab: &str) -> Vec<String> {
    fake.grid(spreadsheet, tab)
        .unwrap_or_default()
        .iter()
        .map(|row| row.first().and_then(Value::as_str).unwrap_or_default().to_owned())
        .collect()
}

/// The row number and `updated` flag of a `sheets.row_appended` outcome.
fn appended(outcome: &Outcome) -> Option<(u64, bool)> {
    let Outcome::Done(results) = outcome else {
        return None;
    };
    let result = results.first()?;
    assert_eq!(result.kind, "sheets.row_appended");
    Some((
        result.data["row_number"].as_u64()?,
        result.data["updated"].as_bool()?,
    ))
}

#[tokio::test]
async fn two_installations_of_a_team_write_to_their_own_spreadsheets() {
    let fake = FakeSheets::demo().unwrap();
    fake.add_spreadsheet(SPREADSHEET, &[]);
    fake.add_spreadsheet(BRANCH_SPREADSHEET, &[]);
    let server = start(&fake).await;
    let manifest = sheets_export_manifest(None);
    assert!(manifest.delivery.installations, "the manifest opts in");
    let target = GoogleSheets::new(SheetsClient::new(&server.base_url(), http()).unwrap());
    let plugin = SheetsExportPlugin::new(target, manifest);
    let key = demo_service_account_json(&format!("{}/token", server.base_url()));
    let default_config = json!({ "spreadsheet_id": SPREADSHEET, "service_account_key": key });
    let branch_config = json!({ "spreadsheet_id": BRANCH_SPREADSHEET, "sheet_name": "Branch",
                                "service_account_key": key });
    plugin
        .initialize(TEAM, DEFAULT_INSTALLATION, Some(&default_config))
        .await
        .unwrap();
    plugin
        .initialize(TEAM, BRANCH, Some(&branch_config))
        .await
        .unwrap();
    let form = created(household(1));
    for installation in [DEFAULT_INSTALLATION, BRANCH] {
        let ctx = installation_context(
            installation,
            "e-form",
            "form.created",
            serde_json::to_value(&form).unwrap(),
        );
        let outcome = plugin.execute(&ctx, &Event::FormCreated(form.clone())).await;
        assert_eq!(outcome, Outcome::done());
    }

    // r-1 to the default installation only, r-2 to the branch only, r-3 to both.
    let (r1, r2, r3) = (
        response("r-1", 1, "Wanjiku", "", None),
        response("r-2", 1, "Otieno", "", None),
        response("r-3", 1, "Achieng", "", None),
    );
    assert_eq!(
        appended(&export_for(&plugin, DEFAULT_INSTALLATION, &r1).await),
        Some((2, false))
    );
    assert_eq!(
        appended(&export_for(&plugin, BRANCH, &r2).await),
        Some((2, false))
    );
    assert_eq!(
        appended(&export_for(&plugin, DEFAULT_INSTALLATION, &r3).await),
        Some((3, false))
    );
    assert_eq!(
        appended(&export_for(&plugin, BRANCH, &r3).await),
        Some((3, false))
    );
    assert_eq!(ids_in(&fake, SPREADSHEET, TAB), ["response_id", "r-1", "r-3"]);
    assert_eq!(
        ids_in(&fake, BRANCH_SPREADSHEET, BRANCH_TAB),
        ["response_id", "r-2", "r-3"]
    );
    assert_eq!(fake.sheet_titles(SPREADSHEET).unwrap(), [TAB]);
    assert_eq!(fake.sheet_titles(BRANCH_SPREADSHEET).unwrap(), [BRANCH_TAB]);

    // One row per response per installation: the branch's copy again overwrites the branch's row.
    assert_eq!(appended(&export_for(&plugin, BRANCH, &r3).await), Some((3, true)));
    assert_eq!(
        ids_in(&fake, BRANCH_SPREADSHEET, BRANCH_TAB),
        ["response_id", "r-2", "r-3"]
    );

    // Removing the branch's config leaves the default installation's alone.
    plugin.initialize(TEAM, BRANCH, None).await.unwrap();
    let r4 = response("r-4", 1, "Njeri", "", None);
    let refused = export_for(&plugin, BRANCH, &r4).await;
    assert!(
        matches!(&refused, Outcome::DeadLetter { reason }
            if reason.contains(r#"no sheets-export config for its installation "forms-bc""#)),
        "{refused:?}"
    );
    assert_eq!(
        appended(&export_for(&plugin, DEFAULT_INSTALLATION, &r4).await),
        Some((4, false))
    );
    assert_eq!(
        ids_in(&fake, SPREADSHEET, TAB),
        ["response_id", "r-1", "r-3", "r-4"]
    );
    assert_eq!(
        ids_in(&fake, BRANCH_SPREADSHEET, BRANCH_TAB),
        ["response_id", "r-2", "r-3"]
    );

    // The default installation's error reads as before installations existed.
    let unknown = ExportError::TeamNotConfigured {
        team_id: "maji-water".into(),
        installation: DEFAULT_INSTALLATION.into(),
    };
    assert_eq!(
        unknown.to_string(),
        r#"Team "maji-water" has no sheets-export config, so its responses cannot be exported."#
    );
}

#[tokio::test]
async fn the_csv_target_writes_each_installation_to_its_own_files() {
    let dir = temp_dir("csv-installations");
    let default_path = dir.join(TEAM).join(format!("{FORM}.csv"));
    let branch_path = dir.join(TEAM).join(BRANCH).join(format!("{FORM}.csv"));
    let ids = |path: &PathBuf| -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap();
        text.lines()
            .map(|line| line.split(',').next().unwrap().to_owned())
            .collect()
    };
    let exporter = SheetsExporter::new(CsvTarget::new(&dir));
    let form = created(household(1));
    let (r1, r2, r3) = (
        submitted(response("r-1", 1, "Wanjiku", "", None)),
        submitted(response("r-2", 1, "Otieno", "", None)),
        submitted(response("r-3", 1, "Achieng", "", None)),
    );
    let default_batch = [
        ExportEvent::FormCreated(&form),
        ExportEvent::ResponseSubmitted(&r1),
        ExportEvent::ResponseSubmitted(&r3),
    ];
    let branch_batch = [
        ExportEvent::FormCreated(&form),
        ExportEvent::ResponseSubmitted(&r2),
        ExportEvent::ResponseSubmitted(&r3),
    ];
    let rows: Vec<_> = exporter
        .export_batch_for(DEFAULT_INSTALLATION, &default_batch)
        .await
        .iter()
        .map(written)
        .collect();
    assert_eq!(rows, [None, Some((2, false)), Some((3, false))]);
    let rows: Vec<_> = exporter
        .export_batch_for(BRANCH, &branch_batch)
        .await
        .iter()
        .map(written)
        .collect();
    assert_eq!(rows, [None, Some((2, false)), Some((3, false))]);
    assert_eq!(ids(&default_path), ["response_id", "r-1", "r-3"]);
    assert_eq!(ids(&branch_path), ["response_id", "r-2", "r-3"]);
    assert!(
        exporter
            .layout_for(TEAM, BRANCH, FORM)
            .await
            .is_some_and(|layout| layout.header()[4] == "Respondent's name"),
        "the branch knows the form it was told of"
    );

    // A restarted exporter reads each installation's ids back from its own file: r-2 again overwrites the
    // branch's row, and is a new row of the default installation's file.
    let restarted = SheetsExporter::new(CsvTarget::new(&dir));
    let branch_again = restarted
        .export_batch_for(BRANCH, &[ExportEvent::ResponseSubmitted(&r2)])
        .await;
    assert_eq!(written(&branch_again[0]), Some((2, true)));
    let default_new = restarted.response_submitted(&r2).await.unwrap();
    assert!(matches!(
        default_new,
        ExportOutcome::Exported {
            row_number: 4,
            updated: false,
            ..
        }
    ));
    assert_eq!(ids(&default_path), ["response_id", "r-1", "r-3", "r-2"]);
    assert_eq!(ids(&branch_path), ["response_id", "r-2", "r-3"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
