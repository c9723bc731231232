//! The seed plugins on the runtime, from a routed event to its effect: a CSV row (sheets-export's local
//! target) and an SMS request at a Twilio-compatible API (sms-notify), configured through the configs topic
//! the registry writes, with their result events.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_plugins::fakes::server::FakeServer;
use switchyard_plugins::fakes::server::InjectedFailure;
use switchyard_plugins::fakes::twilio::{self as fake, FakeTwilio};
use switchyard_plugins::in_process::{
    SheetsExportPlugin, SmsNotifyPlugin, sheets_export_manifest, sms_notify_manifest,
};
use switchyard_plugins::sheets::CsvTarget;
use switchyard_plugins::sms::ledger::{Entry, Intent, Sent, SentLedger};
use switchyard_plugins::sms::{SmsNotifier, TwilioClient};
use switchyard_schemas::envelope::ContentType;
use switchyard_service::kafka::ClientStats;
use switchyard_tests::broker::{Outgoing, TestProducer, group_caught_up, read_to_end, unique};
use switchyard_tests::records::core_event;
use switchyard_tests::wait::{wait_for, wait_for_records};
use switchyard_tests::workers::{InProcessWorker, WorkerTopics};
use tokio_util::sync::CancellationToken;

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
    let settings = topics.settings(&[]);
    let group = settings.delivery.group_id.clone();
    let worker = InProcessWorker::start(plugin, settings);
    let producer = TestProducer::new();
    producer.send(
        &topics.configs,
        &config(
            "acme",
            "sheets-export",
            json!({"spreadsheet_id": "1BxAcmeResponses"}),
        ),
    );
    // The config is written (acknowledged) before the event is sent, as the registry answers only
    // after its write: a config still on its way is not promised to the next event.
    producer.flush();
    producer.send(
        &topics.events,
        &core_event("acme", "form.created", "1", ContentType::Avro),
    );
    producer.flush();
    // The seed orders by response: a form event and the responses to it run in different lanes. Forms come
    // long before their responses in practice; here the form is handled first so that the header has its
    // labels (a response to a form not seen yet gets columns named by question id).
    wait_for("the form handled", Duration::from_secs(30), || async {
        group_caught_up(&group, &topics.events).then_some(())
    })
    .await;
    for id in ["r-1", "r-2"] {
        producer.send(
            &topics.events,
            &core_event("acme", "response.submitted", id, ContentType::Avro),
        );
    }
    producer.flush();
    let results = wait_for_records("two rows", &topics.results, 2, Duration::from_secs(30)).await;
    assert!(
        results
            .iter()
            .all(|r| r.header("ce_type").as_deref() == Some("switchyard.plugin.sheets.row_appended"))
    );
    let mut subjects: Vec<String> = results.iter().filter_map(|r| r.header("ce_subject")).collect();
    subjects.sort();
    assert_eq!(subjects, ["r-1", "r-2"], "one row per response, in either order");
    let csv = std::fs::read_to_string(dir.join("acme").join("form-1.csv")).expect("the team's CSV");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[0].starts_with("response_id,submitted_at,collector_id,form_version,Your name"),
        "{csv}"
    );
    let mut rows = lines[1..].to_vec();
    rows.sort();
    assert!(
        rows[0].starts_with("r-1,") && rows[0].contains("Wanjiru"),
        "{csv}"
    );
    assert!(rows[1].starts_with("r-2,"), "{csv}");
    worker.stop().await.expect("clean stop");
}

const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "twilio-test-token";

/// The Twilio stand-in on loopback, with the test account.
async fn twilio() -> (FakeTwilio, FakeServer) {
    let twilio = FakeTwilio::new();
    twilio.add_account(TWILIO_SID, TWILIO_TOKEN);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = fake::serve(listener, twilio.clone()).await.unwrap();
    (twilio, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_notify_texts_the_respondent_once_per_event() {
    let topics = WorkerTopics::create("sms-notify", 1).await;
    let (sid, token) = (TWILIO_SID, TWILIO_TOKEN);
    let (twilio, server) = twilio().await;
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
    // The config is written (acknowledged) before the event is sent, as the registry answers only
    // after its write: a config still on its way is not promised to the next event.
    producer.flush();
    producer.send(
        &topics.events,
        &core_event("acme", "response.submitted", "r-9", ContentType::Json),
    );
    producer.flush();
    let results = wait_for_records("the SMS result", &topics.results, 1, Duration::from_secs(30)).await;
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

/// An sms-notify worker with its ledger on `ledger_topic`, sending to the Twilio stand-in at `twilio`.
async fn sms_worker_with_ledger(
    settings: switchyard_plugin_runtime::settings::Settings,
    twilio: &FakeServer,
    ledger_topic: &str,
    shutdown: &CancellationToken,
) -> InProcessWorker {
    let clients = settings.clients(ClientStats::unregistered());
    let ledger = SentLedger::start(&clients, ledger_topic, shutdown).await.unwrap();
    let client = TwilioClient::new(&twilio.base_url(), reqwest::Client::new()).unwrap();
    let plugin =
        SmsNotifyPlugin::new(SmsNotifier::new(client), sms_notify_manifest(None)).with_ledger(ledger);
    InProcessWorker::start(plugin, settings)
}

/// Configures acme's sms-notify with the test account and sends one response with a number.
fn sms_config_and_event(topics: &WorkerTopics) {
    let producer = TestProducer::new();
    producer.send(
        &topics.configs,
        &config(
            "acme",
            "sms-notify",
            json!({"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "SURVEYS"}),
        ),
    );
    producer.flush();
    producer.send(
        &topics.events,
        &core_event("acme", "response.submitted", "r-9", ContentType::Json),
    );
    producer.flush();
}

/// The message id an `sms.sent` result carries.
fn sid_of(result: &switchyard_tests::broker::Incoming) -> String {
    let data: Value = serde_json::from_slice(result.value.as_deref().unwrap()).unwrap();
    data["sid"].as_str().unwrap().to_owned()
}

/// Every record of the ledger topic, in order, read as the workers read them.
fn ledger_records(topic: &str) -> Vec<Entry> {
    read_to_end(topic)
        .iter()
        .map(|r| Entry::from_json(r.value.as_deref().unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_notify_with_its_ledger_texts_once_across_duplicates_and_a_replay() {
    // Twilio's Messages API takes no idempotency key: only the ledger stops a repeat. The same event is
    // produced twice (a producer duplicate), then a second worker in a new group replays both, as a
    // restart from an old commit would.
    let topics = WorkerTopics::create("sms-notify", 1).await;
    let ledger_topic = unique("sms-ledger");
    let (sid, token) = (TWILIO_SID, TWILIO_TOKEN);
    let (twilio, server) = twilio().await;
    let shutdown = CancellationToken::new();
    let worker = sms_worker_with_ledger(topics.settings(&[]), &server, &ledger_topic, &shutdown).await;
    let producer = TestProducer::new();
    producer.send(
        &topics.configs,
        &config(
            "acme",
            "sms-notify",
            json!({"account_sid": sid, "auth_token": token, "from": "SURVEYS"}),
        ),
    );
    producer.flush();
    let event = core_event("acme", "response.submitted", "r-9", ContentType::Json);
    producer.send(&topics.events, &event);
    producer.send(&topics.events, &event);
    producer.flush();
    let results = wait_for_records("both results", &topics.results, 2, Duration::from_secs(30)).await;
    assert_eq!(twilio.messages().len(), 1, "the duplicate texted again");
    assert_eq!(
        sid_of(&results[0]),
        sid_of(&results[1]),
        "the duplicate answers the first send"
    );
    worker.stop().await.expect("clean stop");

    let replay = sms_worker_with_ledger(topics.settings(&[]), &server, &ledger_topic, &shutdown).await;
    let results = wait_for_records(
        "the replayed results",
        &topics.results,
        4,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(twilio.messages().len(), 1, "the replay texted again");
    assert!(results.iter().all(|r| sid_of(r) == sid_of(&results[0])));
    replay.stop().await.expect("clean stop");
    // One intent, then its outcome, under one key; the duplicate and the replay wrote nothing.
    let records = ledger_records(&ledger_topic);
    assert!(
        matches!(&records[..], [Entry::Intent(_), Entry::Sent(sent)] if sent.sid == sid_of(&results[0])),
        "{records:?}"
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_notify_finds_the_message_whose_answer_was_lost() {
    // Twilio stores the message but its answer is an error (lost on the way): the runtime retries the
    // event, and the retry finds the message at Twilio instead of texting again.
    let topics = WorkerTopics::create("sms-notify", 1).await;
    let ledger_topic = unique("sms-ledger");
    let (twilio, server) = twilio().await;
    twilio.fail_after_sending(
        1,
        InjectedFailure {
            status: 500,
            retry_after: None,
        },
    );
    let shutdown = CancellationToken::new();
    let worker = sms_worker_with_ledger(topics.settings(&[]), &server, &ledger_topic, &shutdown).await;
    sms_config_and_event(&topics);
    let results = wait_for_records("the SMS result", &topics.results, 1, Duration::from_secs(30)).await;
    let messages = twilio.messages();
    assert_eq!(messages.len(), 1, "the retry texted again");
    assert_eq!(
        results[0].header("ce_type").as_deref(),
        Some("switchyard.plugin.sms.sent")
    );
    assert_eq!(sid_of(&results[0]), messages[0].sid, "the stored message's sid");
    worker.stop().await.expect("clean stop");
    assert_eq!(read_to_end(&topics.results).len(), 1);
    assert!(read_to_end(&topics.dead_letter).is_empty());
    let records = ledger_records(&ledger_topic);
    assert!(
        matches!(&records[..], [Entry::Intent(_), Entry::Sent(sent)] if sent.sid == messages[0].sid),
        "{records:?}"
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_notify_after_a_crash_between_its_intent_and_its_record_finds_the_message() {
    // The first worker records its intent and sends; Twilio stores the message and holds its answer, and
    // the worker stops before the answer comes (its drain deadline aborts the call, as a SIGKILL would
    // end it): the ledger holds the intent only and the event is not committed. A second worker of the
    // group, with a ledger of its own read from the topic, gets the event again and finds the message.
    let topics = WorkerTopics::create("sms-notify", 1).await;
    let ledger_topic = unique("sms-ledger");
    let (twilio, server) = twilio().await;
    twilio.hold_answers_after_sending(1, Duration::from_secs(120));
    let shutdown = CancellationToken::new();
    // The drain deadline is the HTTP timeout plus 5 s.
    let settings = topics.settings(&[("HTTP__TIMEOUT_MS", "100")]);
    let group = settings.delivery.group_id.clone();
    let crashing = sms_worker_with_ledger(settings, &server, &ledger_topic, &shutdown).await;
    sms_config_and_event(&topics);
    wait_for("Twilio to store the message", Duration::from_secs(30), || async {
        (twilio.messages().len() == 1).then_some(())
    })
    .await;
    crashing.stop().await.expect("the stop ends");
    assert!(read_to_end(&topics.results).is_empty(), "no answer, no result");
    assert!(
        matches!(&ledger_records(&ledger_topic)[..], [Entry::Intent(_)]),
        "the intent only"
    );

    let next = sms_worker_with_ledger(
        topics.settings(&[("DELIVERY__GROUP_ID", &group)]),
        &server,
        &ledger_topic,
        &shutdown,
    )
    .await;
    let results = wait_for_records("the SMS result", &topics.results, 1, Duration::from_secs(30)).await;
    let messages = twilio.messages();
    assert_eq!(messages.len(), 1, "the redelivery texted again");
    assert_eq!(sid_of(&results[0]), messages[0].sid, "the stored message's sid");
    next.stop().await.expect("clean stop");
    let records = ledger_records(&ledger_topic);
    assert!(
        matches!(&records[..], [Entry::Intent(_), Entry::Sent(sent)] if sent.sid == messages[0].sid),
        "{records:?}"
    );
    shutdown.cancel();
}

/// How long the sms ledger's writes take: one acks=all write of an intent before each send, one of the
/// outcome after it (the window an intent leaves open is the time from Twilio's answer to the second
/// write's acknowledgement). `make sms-ledger-window` runs it; docs/reliability.md has the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with make sms-ledger-window"]
async fn sms_ledger_window() {
    let topics = WorkerTopics::create("sms-notify", 1).await;
    let settings = topics.settings(&[]);
    let clients = settings.clients(ClientStats::unregistered());
    let shutdown = CancellationToken::new();
    let ledger = SentLedger::start(&clients, &unique("sms-ledger"), &shutdown)
        .await
        .unwrap();
    let sent = Sent {
        sid: "SM00000000000000000000000000000000".to_owned(),
        to_masked: "+*********678".to_owned(),
    };
    let intent = Intent::now(
        "+254712345678",
        "SURVEYS",
        "Thank you Wanjiru, we received your response r-9.",
    );
    let (mut intents, mut outcomes) = (Vec::new(), Vec::new());
    for n in 0..1000 {
        let started = std::time::Instant::now();
        ledger.record_intent(&format!("evt-{n}"), &intent).await.unwrap();
        intents.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = std::time::Instant::now();
        ledger.record(&format!("evt-{n}"), &sent).await.unwrap();
        outcomes.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    for (what, millis) in [
        ("one acks=all record", &mut outcomes),
        ("the intent before each send, the added cost", &mut intents),
    ] {
        millis.sort_by(f64::total_cmp);
        let at = |q: f64| millis[((millis.len() - 1) as f64 * q) as usize];
        println!(
            "sms ledger window ({what}, 1000 in a row): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    ledger.stop();
    shutdown.cancel();
}

/// A response of `team` from Nairobi that saves more than it earns and speaks Sheng.
fn nairobi_response(team: &str, id: &str) -> Outgoing {
    use std::collections::BTreeMap;
    use switchyard_schemas::events::{Answer, Response, ResponseSubmitted};
    let mut answers = BTreeMap::new();
    answers.insert(
        "city".to_owned(),
        Some(Answer::Choice {
            choice: "nairobi".to_owned(),
        }),
    );
    answers.insert(
        "comments".to_owned(),
        Some(Answer::Text {
            text: "Maisha ni poa, msee wangu".to_owned(),
        }),
    );
    answers.insert(
        "monthly_income".to_owned(),
        Some(Answer::Number { number: 12000.0 }),
    );
    answers.insert(
        "monthly_savings".to_owned(),
        Some(Answer::Number { number: 30000.0 }),
    );
    let event = ResponseSubmitted {
        response: Response {
            id: id.to_owned(),
            form_id: "form-1".to_owned(),
            form_version: 1,
            team_id: team.to_owned(),
            collector_id: "collector-7".to_owned(),
            submitted_at: 1_795_000_000_000,
            locale: "sw-KE".to_owned(),
            answers,
            duration_ms: None,
        },
    };
    let value = switchyard_schemas::payload::encode(&event, ContentType::Avro).unwrap();
    core_event(team, "response.submitted", id, ContentType::Avro).with_value(&value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slang_search_reports_hits_with_their_meanings() {
    use switchyard_plugins::in_process::SlangSearchPlugin;
    let topics = WorkerTopics::create("slang-search", 1).await;
    let worker = InProcessWorker::start(SlangSearchPlugin::new().unwrap(), topics.settings(&[]));
    let producer = TestProducer::new();
    producer.send(&topics.events, &nairobi_response("acme", "r-slang"));
    producer.send(
        &topics.events,
        &core_event("acme", "response.submitted", "r-plain", ContentType::Json),
    );
    producer.flush();
    let results = wait_for_records("slang found", &topics.results, 1, Duration::from_secs(30)).await;
    assert_eq!(results.len(), 1, "the plain response has no slang");
    assert_eq!(
        results[0].header("ce_type").as_deref(),
        Some("switchyard.plugin.slang.found")
    );
    let data: Value = serde_json::from_slice(results[0].value.as_deref().unwrap()).unwrap();
    let terms: Vec<&str> = data["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["term"].as_str().unwrap())
        .collect();
    assert_eq!(terms, ["poa", "msee"], "{data}");
    assert_eq!(data["city"], "nairobi");
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_validate_flags_a_response_through_the_http_service() {
    use std::sync::Arc;
    use switchyard_plugin_runtime::http_plugin::{HttpPlugin, HttpPluginSettings};
    use switchyard_plugins::rules_service::{RulesService, router};
    use switchyard_schemas::webhook::SigningSecret;

    let topics = WorkerTopics::create("rules-validate", 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (secret, secret_text) = SigningSecret::generate();
    let service = Arc::new(RulesService::new(&base, Some(secret)).unwrap());
    tokio::spawn(async move { axum::serve(listener, router(service)).await });
    let bridge = HttpPlugin::connect(
        &HttpPluginSettings {
            url: base.clone(),
            timeout: Duration::from_secs(5),
            max_response_bytes: 65536,
            url_patterns: vec![base.clone()],
            allowed_networks: vec!["127.0.0.1/32".into()],
        },
        None,
    )
    .await
    .expect("metadata");
    bridge.set_signing_secret(&secret_text).unwrap();
    let worker = InProcessWorker::start(bridge, topics.settings(&[]));
    let producer = TestProducer::new();
    // globex tightens the rule through its config; acme keeps the default rules.
    producer.send(
        &topics.configs,
        &config(
            "globex",
            "rules-validate",
            json!({"rules": [{"name": "no_savings_over_half", "expression":
                "answers.monthly_savings <= answers.monthly_income / 2.0",
                "message": "Savings above half the income"}]}),
        ),
    );
    // The config is written (acknowledged) before the event is sent, as the registry answers only
    // after its write: a config still on its way is not promised to the next event.
    producer.flush();
    producer.send(&topics.events, &nairobi_response("acme", "r-over"));
    producer.send(
        &topics.events,
        &core_event("acme", "response.submitted", "r-ok", ContentType::Json),
    );
    producer.send(&topics.events, &nairobi_response("globex", "r-globex"));
    producer.flush();
    let results = wait_for_records("two flags", &topics.results, 2, Duration::from_secs(30)).await;
    // The teams' calls run concurrently: their results come in either order.
    let flagged: std::collections::BTreeMap<String, Value> = results
        .iter()
        .map(|r| {
            (
                r.header("ce_subject").unwrap_or_default(),
                serde_json::from_slice(r.value.as_deref().unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(results.len(), 2, "r-ok breaks no rule: {flagged:?}");
    assert_eq!(
        flagged["r-over"]["violations"][0]["rule"],
        "savings_within_income"
    );
    assert_eq!(
        flagged["r-globex"]["violations"][0]["rule"],
        "no_savings_over_half"
    );
    assert!(
        results
            .iter()
            .all(|r| r.header("ce_type").as_deref() == Some("switchyard.plugin.response.flagged"))
    );
    assert!(read_to_end(&topics.dead_letter).is_empty(), "signed calls only");
    worker.stop().await.expect("clean stop");
}

/// The whole platform in one test: core events through the router to the four seed plugins, each
/// registered by its worker and enabled and configured through the registry's API, to each effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_seed_plugins_from_core_events_to_their_effects() {
    use std::sync::Arc;
    use switchyard_plugin_runtime::http_plugin::{HttpPlugin, HttpPluginSettings};
    use switchyard_plugins::in_process::SlangSearchPlugin;
    use switchyard_plugins::rules_service::{RulesService, router};
    use switchyard_registry::signing::MasterKey;
    use switchyard_schemas::webhook::SigningSecret;
    use switchyard_tests::broker::create_topics;
    use switchyard_tests::registries::{RegistryTopics, SIGNING_KEY, ServedRegistry, admin, http, plugin};
    use switchyard_tests::routers::{InProcessRouter, Topics};

    let registry_topics = RegistryTopics::unique();
    let registry = ServedRegistry::start(&registry_topics, &[]).await;
    let core = Topics::of_registry(&registry_topics);
    create_topics(&[(&core.core, 2, false), (&core.dead_letter, 1, false)]).await;
    let router_instance = InProcessRouter::start(&core, &[]);

    // The SaaS stand-ins and the rules service.
    let (sid, token) = (TWILIO_SID, TWILIO_TOKEN);
    let (twilio, twilio_server) = twilio().await;
    let rules_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rules_base = format!("http://{}", rules_listener.local_addr().unwrap());
    let rules_secret = MasterKey::parse(SIGNING_KEY)
        .unwrap()
        .plugin_secret("rules-validate");
    let service =
        Arc::new(RulesService::new(&rules_base, Some(SigningSecret::parse(&rules_secret).unwrap())).unwrap());
    tokio::spawn(async move { axum::serve(rules_listener, router(service)).await });

    // The four workers, each registering itself.
    let csv = std::env::temp_dir().join(unique("sheets-csv"));
    let worker_settings = |id: &'static str, topics: &WorkerTopics, extra: &[(&str, &str)]| {
        let token = plugin(id);
        let mut overrides = vec![
            ("REGISTRY__URL", registry.url.as_str()),
            ("REGISTRY__TOKEN", token.as_str()),
        ];
        overrides.extend_from_slice(extra);
        topics.settings(&overrides)
    };
    let sheets_topics = WorkerTopics::of_registry("sheets-export", &registry_topics).await;
    let sms_topics = WorkerTopics::of_registry("sms-notify", &registry_topics).await;
    let rules_topics = WorkerTopics::of_registry("rules-validate", &registry_topics).await;
    let slang_topics = WorkerTopics::of_registry("slang-search", &registry_topics).await;
    let sheets = InProcessWorker::start(
        SheetsExportPlugin::new(CsvTarget::new(&csv), sheets_export_manifest(None)),
        worker_settings("sheets-export", &sheets_topics, &[]),
    );
    let client = TwilioClient::new(&twilio_server.base_url(), reqwest::Client::new()).unwrap();
    let sms = InProcessWorker::start(
        SmsNotifyPlugin::new(SmsNotifier::new(client), sms_notify_manifest(None)),
        worker_settings("sms-notify", &sms_topics, &[]),
    );
    let bridge = HttpPlugin::connect(
        &HttpPluginSettings {
            url: rules_base.clone(),
            timeout: Duration::from_secs(5),
            max_response_bytes: 65536,
            url_patterns: vec![rules_base.clone()],
            allowed_networks: vec!["127.0.0.1/32".into()],
        },
        None,
    )
    .await
    .unwrap();
    let rules = InProcessWorker::start(bridge, worker_settings("rules-validate", &rules_topics, &[]));
    let slang = InProcessWorker::start(
        SlangSearchPlugin::new().unwrap(),
        worker_settings("slang-search", &slang_topics, &[]),
    );

    // Enabled and configured through the registry once every worker has registered.
    let admin = admin();
    for id in ["sheets-export", "sms-notify", "rules-validate", "slang-search"] {
        wait_for(&format!("{id} to register"), Duration::from_secs(30), || async {
            let (status, _) = http(
                "GET",
                &format!("{}/v1/plugins/{id}", registry.url),
                Some(&admin),
                None,
            )
            .await;
            (status == 200).then_some(())
        })
        .await;
        let (status, body) = http(
            "PUT",
            &format!("{}/v1/teams/acme/plugins/{id}", registry.url),
            Some(&admin),
            Some(&json!({"enabled": true})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    for (id, config) in [
        ("sheets-export", json!({"spreadsheet_id": "1BxAcme"})),
        (
            "sms-notify",
            json!({"account_sid": sid, "auth_token": token, "from": "SURVEYS"}),
        ),
    ] {
        let (status, body) = http(
            "PUT",
            &format!("{}/v1/teams/acme/plugins/{id}/config", registry.url),
            Some(&admin),
            Some(&config),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    wait_for(
        "the router to apply the enablements",
        Duration::from_secs(20),
        || async {
            (router_instance
                .admin
                .metric("switchyard_router_enablements")
                .await
                >= 4.0)
                .then_some(())
        },
    )
    .await;

    // Core events, as the platform writes them.
    let producer = TestProducer::new();
    producer.send(
        &core.core,
        &core_event("acme", "form.created", "1", ContentType::Avro),
    );
    producer.send(&core.core, &nairobi_response("acme", "r-core"));
    producer.send(
        &core.core,
        &core_event("acme", "response.submitted", "r-phone", ContentType::Json),
    );
    producer.flush();

    let by_type = |records: &[switchyard_tests::broker::Incoming], kind: &str| {
        records
            .iter()
            .filter(|r| r.header("ce_type").as_deref() == Some(kind))
            .count()
    };
    wait_for("every effect", Duration::from_secs(60), || async {
        let results = [&sheets_topics, &sms_topics, &rules_topics, &slang_topics]
            .iter()
            .flat_map(|t| read_to_end(&t.results))
            .collect::<Vec<_>>();
        (by_type(&results, "switchyard.plugin.sheets.row_appended") >= 2
            && by_type(&results, "switchyard.plugin.sms.sent") >= 1
            && by_type(&results, "switchyard.plugin.response.flagged") >= 1
            && by_type(&results, "switchyard.plugin.slang.found") >= 1)
            .then_some(())
    })
    .await;
    let rows = std::fs::read_to_string(csv.join("acme").join("form-1.csv")).unwrap();
    assert_eq!(rows.lines().count(), 3, "a header and two rows: {rows}");
    assert_eq!(
        twilio.messages().len(),
        1,
        "r-phone has a number; r-core has none"
    );
    assert_eq!(twilio.messages()[0].to, "+254712345678");
    for worker in [sheets, sms, rules, slang] {
        worker.stop().await.expect("clean stop");
    }
    router_instance.stop().await.expect("router stops");
    registry.stop().await;
}
