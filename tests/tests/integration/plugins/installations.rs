//! The seed plugins with two installations of one team: routed records with and without the
//! `switchyard_installation` header (written to the plugin's topic directly, as the router will), and a
//! config per installation on the configs topic (`<team>/<plugin>` and `<team>/<plugin>/<installation>`).
//! Each installation's effects go where its own config says, once each.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_plugins::fakes::twilio::{self as fake, FakeTwilio};
use switchyard_plugins::in_process::{
    SheetsExportPlugin, SmsNotifyPlugin, sheets_export_manifest, sms_notify_manifest,
};
use switchyard_plugins::sheets::CsvTarget;
use switchyard_plugins::sms::ledger::{Entry, SentLedger};
use switchyard_plugins::sms::{SmsNotifier, TwilioClient};
use switchyard_schemas::configs::ConfigRecord;
use switchyard_schemas::control::installation_key;
use switchyard_schemas::dead_letter::INSTALLATION;
use switchyard_schemas::envelope::ContentType;
use switchyard_schemas::ids::DEFAULT_INSTALLATION;
use switchyard_service::kafka::ClientStats;
use switchyard_tests::broker::{Incoming, Outgoing, TestProducer, group_caught_up, read_to_end, unique};
use switchyard_tests::records::{core_event, header};
use switchyard_tests::wait::{wait_for, wait_for_records};
use switchyard_tests::workers::{InProcessWorker, WorkerTopics};
use tokio_util::sync::CancellationToken;

/// The team's second installation.
const NAMED: &str = "forms-bc";

/// The configs-topic record of a team's installation of `plugin`, as the registry writes it.
fn installation_config(team: &str, plugin: &str, installation: &str, config: Value) -> Outgoing {
    let record = ConfigRecord {
        team_id: team.to_owned(),
        plugin_id: plugin.to_owned(),
        installation: (installation != DEFAULT_INSTALLATION).then(|| installation.to_owned()),
        config,
        sealed: None,
        plugin_version: "1.0.0".to_owned(),
        updated_at: "2026-12-05T10:00:00Z".to_owned(),
    };
    Outgoing {
        key: Some(installation_key(team, plugin, installation).into_bytes()),
        value: Some(serde_json::to_vec(&record).unwrap()),
        headers: Vec::new(),
    }
}

/// A routed copy of a core event for the team's `installation`: the default one's has no
/// `switchyard_installation` header, as every record had before installations existed.
fn routed(event: Outgoing, installation: &str) -> Outgoing {
    let mut event = event;
    if installation != DEFAULT_INSTALLATION {
        event.headers.push(header(INSTALLATION, installation));
    }
    event
}

/// The first cell of every line of a CSV file.
fn first_column(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    text.lines()
        .map(|line| line.split(',').next().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheets_export_writes_each_installations_rows_to_its_own_csv_files() {
    let topics = WorkerTopics::create("sheets-export", 1).await;
    let dir = std::env::temp_dir().join(unique("sheets-csv-installations"));
    let plugin = SheetsExportPlugin::new(CsvTarget::new(&dir), sheets_export_manifest(None));
    let settings = topics.settings(&[]);
    let group = settings.delivery.group_id.clone();
    let worker = InProcessWorker::start(plugin, settings);
    let producer = TestProducer::new();
    for (installation, spreadsheet) in [
        (DEFAULT_INSTALLATION, "1BxAcmeResponses"),
        (NAMED, "1BxAcmeFormsBc"),
    ] {
        producer.send(
            &topics.configs,
            &installation_config(
                "acme",
                "sheets-export",
                installation,
                json!({"spreadsheet_id": spreadsheet}),
            ),
        );
    }
    // The configs are written (acknowledged) before the events, as the registry answers only after its
    // write.
    producer.flush();
    // The form first (its own lane), to each installation, so that the headers have its labels.
    for installation in [DEFAULT_INSTALLATION, NAMED] {
        producer.send(
            &topics.events,
            &routed(
                core_event("acme", "form.created", "1", ContentType::Avro),
                installation,
            ),
        );
    }
    producer.flush();
    wait_for("the forms handled", Duration::from_secs(30), || async {
        group_caught_up(&group, &topics.events).then_some(())
    })
    .await;
    // r-1 to the default installation only, r-2 to the named one only, r-3 to both.
    for (id, installation) in [
        ("r-1", DEFAULT_INSTALLATION),
        ("r-2", NAMED),
        ("r-3", DEFAULT_INSTALLATION),
        ("r-3", NAMED),
    ] {
        producer.send(
            &topics.events,
            &routed(
                core_event("acme", "response.submitted", id, ContentType::Avro),
                installation,
            ),
        );
    }
    producer.flush();
    let results = wait_for_records("four rows", &topics.results, 4, Duration::from_secs(30)).await;
    assert!(
        results
            .iter()
            .all(|r| r.header("ce_type").as_deref() == Some("switchyard.plugin.sheets.row_appended"))
    );
    // A named installation's results have ids of their own and say which installation they are for.
    let mut ids: Vec<(String, Option<String>)> = results
        .iter()
        .map(|r| (r.header("ce_id").unwrap(), r.header("ce_installation")))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            ("r-1:sheets-export:0".to_owned(), None),
            ("r-2:sheets-export/forms-bc:0".to_owned(), Some(NAMED.to_owned())),
            ("r-3:sheets-export/forms-bc:0".to_owned(), Some(NAMED.to_owned())),
            ("r-3:sheets-export:0".to_owned(), None),
        ]
    );
    // Each CSV target got exactly its installation's rows: the default installation's where it always was.
    let default_rows = first_column(&dir.join("acme").join("form-1.csv"));
    let named_rows = first_column(&dir.join("acme").join(NAMED).join("form-1.csv"));
    assert_eq!(default_rows, ["response_id", "r-1", "r-3"]);
    assert_eq!(named_rows, ["response_id", "r-2", "r-3"]);
    let header = std::fs::read_to_string(dir.join("acme").join(NAMED).join("form-1.csv")).unwrap();
    assert!(
        header.starts_with("response_id,submitted_at,collector_id,form_version,Your name"),
        "the named installation's form event shaped its header: {header}"
    );
    assert!(read_to_end(&topics.dead_letter).is_empty());
    worker.stop().await.expect("clean stop");
    std::fs::remove_dir_all(&dir).unwrap();
}

const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "twilio-test-token";

/// The ledger's records, key → the forms written under it, in order.
fn ledger_by_key(topic: &str) -> BTreeMap<String, Vec<Entry>> {
    let mut by_key: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for record in read_to_end(topic) {
        let key = String::from_utf8(record.key.clone().unwrap()).unwrap();
        let entry = Entry::from_json(record.value.as_deref().unwrap()).unwrap();
        by_key.entry(key).or_default().push(entry);
    }
    by_key
}

fn sid_of(result: &Incoming) -> String {
    let data: Value = serde_json::from_slice(result.value.as_deref().unwrap()).unwrap();
    data["sid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_notify_texts_once_per_installation_with_its_ledger() {
    // One event, routed to both installations of the team, each copy produced twice (a producer's
    // duplicate): one text per installation, each with its own template, and the duplicates answered from
    // the ledger. The default installation's copy is keyed by the event id, as before installations.
    let topics = WorkerTopics::create("sms-notify", 1).await;
    let ledger_topic = unique("sms-ledger");
    let twilio = FakeTwilio::new();
    twilio.add_account(TWILIO_SID, TWILIO_TOKEN);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = fake::serve(listener, twilio.clone()).await.unwrap();
    let shutdown = CancellationToken::new();
    let settings = topics.settings(&[]);
    let clients = settings.clients(ClientStats::unregistered());
    let ledger = SentLedger::start(&clients, &ledger_topic, &shutdown)
        .await
        .unwrap();
    let client = TwilioClient::new(&server.base_url(), reqwest::Client::new()).unwrap();
    let plugin =
        SmsNotifyPlugin::new(SmsNotifier::new(client), sms_notify_manifest(None)).with_ledger(ledger);
    let worker = InProcessWorker::start(plugin, settings);
    let producer = TestProducer::new();
    for (installation, template) in [
        (DEFAULT_INSTALLATION, "Asante {{name}}."),
        (NAMED, "Forms BC: {{response_id}} received."),
    ] {
        producer.send(
            &topics.configs,
            &installation_config(
                "acme",
                "sms-notify",
                installation,
                json!({"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "SURVEYS",
                       "template": template}),
            ),
        );
    }
    producer.flush();
    let event = core_event("acme", "response.submitted", "r-9", ContentType::Json);
    for installation in [DEFAULT_INSTALLATION, NAMED] {
        let copy = routed(event.clone(), installation);
        producer.send(&topics.events, &copy);
        producer.send(&topics.events, &copy);
    }
    producer.flush();
    let results = wait_for_records("four results", &topics.results, 4, Duration::from_secs(30)).await;
    let mut bodies: Vec<String> = twilio.messages().into_iter().map(|m| m.body).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        ["Asante Wanjiru.", "Forms BC: r-9 received."],
        "one text per installation"
    );
    // Each installation's duplicate answers its own first send.
    let sids = |installation: Option<&str>| -> Vec<String> {
        results
            .iter()
            .filter(|r| r.header("ce_installation").as_deref() == installation)
            .map(sid_of)
            .collect()
    };
    let (default_sids, named_sids) = (sids(None), sids(Some(NAMED)));
    assert_eq!(default_sids.len(), 2);
    assert_eq!(default_sids[0], default_sids[1]);
    assert_eq!(named_sids.len(), 2);
    assert_eq!(named_sids[0], named_sids[1]);
    assert_ne!(default_sids[0], named_sids[0]);
    worker.stop().await.expect("clean stop");

    // The ledger: the default installation's copy under the event id, as sms-notify always keyed it; the
    // named one's under `<event id>/<installation>`; an intent then its outcome under each, nothing else.
    let ledger = ledger_by_key(&ledger_topic);
    assert_eq!(
        ledger.keys().collect::<Vec<_>>(),
        ["r-9", "r-9/forms-bc"],
        "{ledger:?}"
    );
    for (key, sid) in [("r-9", &default_sids[0]), ("r-9/forms-bc", &named_sids[0])] {
        assert!(
            matches!(&ledger[key][..], [Entry::Intent(_), Entry::Sent(sent)] if &sent.sid == sid),
            "{key}: {:?}",
            ledger[key]
        );
    }
    assert!(read_to_end(&topics.dead_letter).is_empty());
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_validate_applies_each_installations_rules_behind_the_bridge() {
    use std::sync::Arc;
    use switchyard_plugin_runtime::http_plugin::{HttpPlugin, HttpPluginSettings};
    use switchyard_plugin_runtime::plugin::Plugin as _;
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
    assert!(
        bridge.manifest().delivery.installations,
        "the service's manifest opts in"
    );
    bridge.set_signing_secret(&secret_text).unwrap();
    let settings = topics.settings(&[]);
    let group = settings.delivery.group_id.clone();
    let worker = InProcessWorker::start(bridge, settings);
    let producer = TestProducer::new();
    // The named installation flags every income above 4,000; the default one keeps the default rules,
    // which r-1's answers break none of.
    producer.send(
        &topics.configs,
        &installation_config(
            "acme",
            "rules-validate",
            NAMED,
            json!({"rules": [{"name": "income_at_most_4000", "expression": "answers.income <= 4000.0",
                              "message": "Income above 4,000"}]}),
        ),
    );
    producer.flush();
    let event = core_event("acme", "response.submitted", "r-1", ContentType::Json);
    producer.send(&topics.events, &routed(event.clone(), DEFAULT_INSTALLATION));
    producer.send(&topics.events, &routed(event, NAMED));
    producer.flush();
    // Both copies handled (their offsets committed), then every result there is.
    wait_for("both copies handled", Duration::from_secs(30), || async {
        group_caught_up(&group, &topics.events).then_some(())
    })
    .await;
    let results = read_to_end(&topics.results);
    assert_eq!(results.len(), 1, "only the named installation's rules flag r-1");
    assert_eq!(
        results[0].header("ce_id").as_deref(),
        Some("r-1:rules-validate/forms-bc:0")
    );
    let data: Value = serde_json::from_slice(results[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(data["violations"][0]["rule"], "income_at_most_4000");
    assert!(read_to_end(&topics.dead_letter).is_empty(), "signed calls only");
    worker.stop().await.expect("clean stop");
}

/// A `response.submitted` of `team` for form `form` (its `ce_subject` and `form_id`) from `city`, with the
/// respondent's phone number.
fn city_response(team: &str, id: &str, form: &str, city: &str) -> Outgoing {
    use switchyard_schemas::events::Answer;
    let mut event = switchyard_tests::records::response_submitted(team, id);
    event.response.form_id = form.to_owned();
    event.response.answers.insert(
        "city".to_owned(),
        Some(Answer::Choice {
            choice: city.to_owned(),
        }),
    );
    let value = switchyard_schemas::payload::encode(&event, ContentType::Avro).unwrap();
    let mut record = core_event(team, "response.submitted", id, ContentType::Avro).with_value(&value);
    for (name, value) in &mut record.headers {
        if name == "ce_subject" {
            *value = Some(form.as_bytes().to_vec());
        }
    }
    record
}

/// The issue's end-to-end line, through the registry's API, the router and the workers: two sheets-export
/// installations of one team with different `form_ids` write to two CSV targets, and an sms-notify
/// installation filtered on the respondent's city texts only for matching responses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installations_from_the_registry_through_the_router_to_their_effects() {
    use switchyard_tests::broker::create_topics;
    use switchyard_tests::registries::{RegistryTopics, ServedRegistry, admin, http, plugin};
    use switchyard_tests::routers::{InProcessRouter, Topics};

    let registry_topics = RegistryTopics::unique();
    let registry = ServedRegistry::start(&registry_topics, &[]).await;
    let core = Topics::of_registry(&registry_topics);
    create_topics(&[(&core.core, 2, false), (&core.dead_letter, 1, false)]).await;
    let router = InProcessRouter::start(&core, &[]);

    let twilio = FakeTwilio::new();
    twilio.add_account(TWILIO_SID, TWILIO_TOKEN);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let twilio_server = fake::serve(listener, twilio.clone()).await.unwrap();

    let csv = std::env::temp_dir().join(unique("installations-csv"));
    let sheets_topics = WorkerTopics::of_registry("sheets-export", &registry_topics).await;
    let sms_topics = WorkerTopics::of_registry("sms-notify", &registry_topics).await;
    let settings = |id: &str, topics: &WorkerTopics| {
        let token = plugin(id);
        topics.settings(&[
            ("REGISTRY__URL", registry.url.as_str()),
            ("REGISTRY__TOKEN", token.as_str()),
        ])
    };
    let sheets = InProcessWorker::start(
        SheetsExportPlugin::new(CsvTarget::new(&csv), sheets_export_manifest(None)),
        settings("sheets-export", &sheets_topics),
    );
    let client = TwilioClient::new(&twilio_server.base_url(), reqwest::Client::new()).unwrap();
    let sms = InProcessWorker::start(
        SmsNotifyPlugin::new(SmsNotifier::new(client), sms_notify_manifest(None)),
        settings("sms-notify", &sms_topics),
    );

    let admin = admin();
    let put = |path: String, body: Value| {
        let (url, admin) = (format!("{}{path}", registry.url), admin.clone());
        async move {
            let (status, answer) = http("PUT", &url, Some(&admin), Some(&body)).await;
            assert_eq!(status, 200, "PUT {url}: {answer}");
        }
    };
    for id in ["sheets-export", "sms-notify"] {
        wait_for(&format!("{id} to register"), Duration::from_secs(30), || async {
            let url = format!("{}/v1/plugins/{id}", registry.url);
            (http("GET", &url, Some(&admin), None).await.0 == 200).then_some(())
        })
        .await;
    }
    let installation =
        |plugin: &str, name: &str| format!("/v1/teams/acme/plugins/{plugin}/installations/{name}");
    put(
        installation("sheets-export", "default"),
        json!({"enabled": true, "form_ids": ["f-a"]}),
    )
    .await;
    put(
        installation("sheets-export", NAMED),
        json!({"enabled": true, "form_ids": ["f-b", "f-c"]}),
    )
    .await;
    put(
        installation("sms-notify", "nairobi"),
        json!({"enabled": true, "filter": r#"data.response.answers["city"].choice == "nairobi""#}),
    )
    .await;
    put(
        format!("{}/config", installation("sheets-export", "default")),
        json!({"spreadsheet_id": "1BxA"}),
    )
    .await;
    put(
        format!("{}/config", installation("sheets-export", NAMED)),
        json!({"spreadsheet_id": "1BxBC"}),
    )
    .await;
    put(
        format!("{}/config", installation("sms-notify", "nairobi")),
        json!({"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "SURVEYS"}),
    )
    .await;
    wait_for(
        "the router to apply the installations",
        Duration::from_secs(20),
        || async { (router.admin.metric("switchyard_router_enablements").await >= 3.0).then_some(()) },
    )
    .await;

    let producer = TestProducer::new();
    let events = [
        ("r-1", "f-a", "nairobi"),
        ("r-2", "f-b", "mombasa"),
        ("r-3", "f-c", "nairobi"),
        ("r-4", "f-z", "mombasa"),
        ("r-5", "f-a", "mombasa"),
    ];
    for (id, form, city) in events {
        producer.send(&core.core, &city_response("acme", id, form, city));
    }
    producer.flush();
    // The workers share the registry's results topic: each plugin's are told apart by their source.
    let result_ids = |plugin: &str| {
        let source = format!("/plugins/{plugin}");
        let mut ids: Vec<String> = read_to_end(&sheets_topics.results)
            .iter()
            .filter(|r| r.header("ce_source").as_deref() == Some(source.as_str()))
            .filter_map(|r| r.header("ce_id"))
            .collect();
        ids.sort();
        ids
    };
    wait_for("every effect", Duration::from_secs(60), || async {
        (result_ids("sheets-export").len() >= 4 && result_ids("sms-notify").len() >= 2).then_some(())
    })
    .await;
    assert_eq!(
        router.admin.wait_outcomes(events.len() as u64).await,
        (4, 1, 0),
        "r-4 is unrouted"
    );

    let default_rows = first_column(&csv.join("acme").join("f-a.csv"));
    assert_eq!(
        default_rows,
        ["response_id", "r-1", "r-5"],
        "the default installation: f-a only"
    );
    let named = csv.join("acme").join(NAMED);
    assert_eq!(first_column(&named.join("f-b.csv")), ["response_id", "r-2"]);
    assert_eq!(first_column(&named.join("f-c.csv")), ["response_id", "r-3"]);
    assert!(!csv.join("acme").join("f-z.csv").exists() && !named.join("f-z.csv").exists());
    let texted: Vec<String> = twilio.messages().iter().map(|m| m.to.clone()).collect();
    assert_eq!(texted.len(), 2, "r-1 and r-3 are from Nairobi: {texted:?}");
    assert_eq!(
        result_ids("sms-notify"),
        ["r-1:sms-notify/nairobi:0", "r-3:sms-notify/nairobi:0"]
    );
    assert_eq!(
        result_ids("sheets-export"),
        [
            "r-1:sheets-export:0",
            "r-2:sheets-export/forms-bc:0",
            "r-3:sheets-export/forms-bc:0",
            "r-5:sheets-export:0"
        ]
    );

    for worker in [sheets, sms] {
        worker.stop().await.expect("clean stop");
    }
    router.stop().await.expect("router stops");
    registry.stop().await;
}
