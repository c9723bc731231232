//! sheets-export against the fake Google on 127.0.0.1.

// Test helpers outside `#[test]` functions unwrap too; clippy.toml only exempts the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use switchyard_plugins::Disposition;
use switchyard_plugins::fakes::server::{FakeServer, InjectedFailure};
use switchyard_plugins::fakes::sheets::{
    self as fake, DEMO_CLIENT_EMAIL, FakeSheets, demo_service_account_json,
};
use switchyard_plugins::sheets::{
    CsvTarget, ExportError, ExportOutcome, GoogleSheets, ServiceAccountKey, SheetsClient, SheetsConfig,
    SheetsError, SheetsExporter, TokenSource,
};
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

    // An edit is a new row with the same response id.
    let edit = ResponseUpdated {
        response: response("r-1", 2, "Wanjiku Kamau", "corrected", Some("no")),
        revision: 2,
        updated_by: "supervisor".into(),
        updated_at: 1_795_165_900_000,
    };
    let outcome = exporter.response_updated(&edit).await.unwrap();
    assert!(matches!(
        outcome,
        ExportOutcome::Exported {
            row_number: 4,
            header_changed: false,
            ..
        }
    ));
    let grid = fake.grid(SPREADSHEET, TAB).unwrap();
    assert_eq!(grid[3][0], json!("r-1"));
    assert_eq!(grid[3][8], json!("corrected"));
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
    assert_eq!(error.disposition(), Disposition::Retry { after: None });

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
