//! The seed plugins on the runtime, from a routed event to its effect: a CSV row (sheets-export's local
//! target) and an SMS request at a Twilio-compatible API (sms-notify), configured through the configs topic
//! the registry writes, with their result events.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_plugin_runtime::seeds::plugins::{
    SheetsExportPlugin, SmsNotifyPlugin, sheets_export_manifest, sms_notify_manifest,
};
use switchyard_plugin_runtime::seeds::sheets::CsvTarget;
use switchyard_plugin_runtime::seeds::sms::fake::{self, FakeTwilio};
use switchyard_plugin_runtime::seeds::sms::{SmsNotifier, TwilioClient};
use switchyard_schemas::envelope::ContentType;
use switchyard_tests::broker::{Outgoing, TestProducer, read_to_end, unique};
use switchyard_tests::records::core_event;
use switchyard_tests::wait::wait_for;
use switchyard_tests::workers::{InProcessWorker, WorkerTopics};

fn config(team: &str, plugin: &str, config: Value) -> Outgoing {
    Outgoing {
        key: Some(format!("{team}/{plugin}").into_bytes()),
        value: Some(
            json!({"team_id": team, "plugin_id": plugin, "config": config, "plugin_version": "1.0.0",
                   "updated_at": "2026-11-22T10:00:00Z"})
            .to_string()
            .into_bytes(),
        ),
        headers: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheets_export_writes_a_row_per_response_with_the_forms_columns() {
    let topics = WorkerTopics::create("sheets-export", 1).await;
    let dir = std::env::temp_dir().join(unique("sheets-csv"));
    let plugin = SheetsExportPlugin::new(CsvTarget::new(&dir), sheets_export_manifest(None));
    let worker = InProcessWorker::start(plugin, topics.settings(&[]));
    let producer = TestProducer::new();
    producer.send(
        &topics.configs,
        &config(
            "acme",
            "sheets-export",
            json!({"spreadsheet_id": "1BxAcmeResponses"}),
        ),
    );
    producer.send(
        &topics.events,
        &core_event("acme", "form.created", "1", ContentType::Avro),
    );
    for id in ["r-1", "r-2"] {
        producer.send(
            &topics.events,
            &core_event("acme", "response.submitted", id, ContentType::Avro),
        );
    }
    producer.flush();
    let results = wait_for("two rows", Duration::from_secs(30), || async {
        let results = read_to_end(&topics.results);
        (results.len() >= 2).then_some(results)
    })
    .await;
    assert!(
        results
            .iter()
            .all(|r| r.header("ce_type").as_deref() == Some("switchyard.plugin.sheets.row_appended"))
    );
    assert_eq!(results[0].header("ce_subject").as_deref(), Some("r-1"));
    let csv = std::fs::read_to_string(dir.join("acme").join("form-1.csv")).expect("the team's CSV");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[0].starts_with("response_id,submitted_at,collector_id,form_version,Your name"),
        "{csv}"
    );
    assert!(
        lines[1].starts_with("r-1,") && lines[1].contains("Wanjiru"),
        "{csv}"
    );
    assert!(lines[2].starts_with("r-2,"), "{csv}");
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_notify_texts_the_respondent_once_per_event() {
    let topics = WorkerTopics::create("sms-notify", 1).await;
    let (sid, token) = ("AC0123456789abcdef0123456789abcdef", "twilio-test-token");
    let twilio = FakeTwilio::new();
    twilio.add_account(sid, token);
    let server = fake::serve(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        twilio.clone(),
    )
    .await
    .unwrap();
    let client = TwilioClient::new(&server.base_url(), reqwest::Client::new()).unwrap();
    let plugin = SmsNotifyPlugin::new(SmsNotifier::new(client), sms_notify_manifest(None));
    let worker = InProcessWorker::start(plugin, topics.settings(&[]));
    let producer = TestProducer::new();
    producer.send(
        &topics.configs,
        &config(
            "acme",
            "sms-notify",
            json!({"account_sid": sid, "auth_token": token, "from": "SURVEYS",
                   "template": "Asante {{name}}, we received response {{response_id}}."}),
        ),
    );
    producer.send(
        &topics.events,
        &core_event("acme", "response.submitted", "r-9", ContentType::Json),
    );
    producer.flush();
    let results = wait_for("the SMS result", Duration::from_secs(30), || async {
        let results = read_to_end(&topics.results);
        (!results.is_empty()).then_some(results)
    })
    .await;
    assert_eq!(
        results[0].header("ce_type").as_deref(),
        Some("switchyard.plugin.sms.sent")
    );
    let data: Value = serde_json::from_slice(results[0].value.as_deref().unwrap()).unwrap();
    assert!(data["to"].as_str().unwrap().ends_with("678"), "{data}");
    assert!(
        !data.to_string().contains("712345"),
        "the number is masked: {data}"
    );
    let messages = twilio.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, "+254712345678");
    assert_eq!(messages[0].body, "Asante Wanjiru, we received response r-9.");
    worker.stop().await.expect("clean stop");
}
