//! The routing rule, end to end: control records in, core events in, plugin topics out.

use std::collections::BTreeMap;

use switchyard_schemas::ContentType;
use switchyard_tests::broker::{TestProducer, read_to_end};
use switchyard_tests::records::{core_event, enablement, manifest};
use switchyard_tests::routers::{InProcessRouter, Topics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_an_event_to_the_enabled_plugin_with_bytes_and_headers_unchanged() {
    let topics = Topics::unique();
    topics.create(3, &["sheets", "sms"]).await;
    let producer = TestProducer::new();
    producer.send(&topics.plugins, &manifest("sheets", &["response.submitted"]));
    producer.send(&topics.plugins, &manifest("sms", &["response.submitted"]));
    producer.send(&topics.enablements, &enablement("acme", "sheets", true, None));
    producer.flush();

    let router = InProcessRouter::start(&topics, &[]);
    router.admin.wait_ready().await;
    let event = core_event("acme", "response.submitted", "evt-1", ContentType::Avro);
    producer.send(&topics.core, &event);
    producer.flush();
    assert_eq!(router.admin.wait_outcomes(1).await, (1, 0, 0));

    let sheets = read_to_end(&topics.plugin("sheets"));
    assert_eq!(sheets.len(), 1);
    assert_eq!(sheets[0].key, event.key);
    assert_eq!(sheets[0].value, event.value);
    let mut expected: BTreeMap<String, Option<String>> = event
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
            )
        })
        .collect();
    let source = sheets[0].header("switchyard_source").expect("switchyard_source");
    assert!(source.starts_with(&format!("{}/", topics.core)), "{source}");
    expected.insert("switchyard_source".into(), Some(source));
    assert_eq!(sheets[0].header_map(), expected);
    // headers keep their order, the source is appended
    let names: Vec<&str> = sheets[0].headers.iter().map(|(k, _)| k.as_str()).collect();
    let mut expected_names: Vec<&str> = event.headers.iter().map(|(k, _)| k.as_str()).collect();
    expected_names.push("switchyard_source");
    assert_eq!(names, expected_names);
    assert!(
        read_to_end(&topics.plugin("sms")).is_empty(),
        "sms is not enabled for acme"
    );
    assert!(read_to_end(&topics.dead_letter).is_empty());
    router.stop().await.expect("clean stop");
}

/// A team's switch for one plugin in the model: enabled, and the optional type filter.
type Switch = (bool, Option<Vec<String>>);

/// The test's own statement of the routing rule, kept independent of the router's code.
#[derive(Default, Clone)]
struct Model {
    /// plugin -> event types it lists (absent = not registered)
    plugins: BTreeMap<String, Vec<String>>,
    /// (team, plugin) -> (enabled, filter)
    enablements: BTreeMap<(String, String), Switch>,
}

impl Model {
    fn targets(&self, team: &str, event_type: &str) -> Vec<String> {
        self.plugins
            .iter()
            .filter(|(plugin, types)| {
                types.iter().any(|t| t == event_type)
                    && self
                        .enablements
                        .get(&(team.to_owned(), (*plugin).clone()))
                        .is_some_and(|(enabled, filter)| {
                            *enabled
                                && filter
                                    .as_ref()
                                    .is_none_or(|f| f.is_empty() || f.iter().any(|t| t == event_type))
                        })
            })
            .map(|(plugin, _)| plugin.clone())
            .collect()
    }
}

struct Control<'a> {
    producer: &'a TestProducer,
    topics: &'a Topics,
    model: Model,
    plugin_records: u64,
    enablement_records: u64,
}

impl Control<'_> {
    fn register(&mut self, plugin: &str, events: &[&str]) {
        self.producer
            .send(&self.topics.plugins, &manifest(plugin, events));
        self.model
            .plugins
            .insert(plugin.into(), events.iter().map(|s| s.to_string()).collect());
        self.plugin_records += 1;
    }
    fn deregister(&mut self, plugin: &str) {
        self.producer.send(
            &self.topics.plugins,
            &switchyard_tests::records::tombstone(plugin),
        );
        self.model.plugins.remove(plugin);
        self.plugin_records += 1;
    }
    fn enable(&mut self, team: &str, plugin: &str, enabled: bool, filter: Option<&[&str]>) {
        self.producer.send(
            &self.topics.enablements,
            &enablement(team, plugin, enabled, filter),
        );
        self.model.enablements.insert(
            (team.into(), plugin.into()),
            (enabled, filter.map(|f| f.iter().map(|s| s.to_string()).collect())),
        );
        self.enablement_records += 1;
    }
    fn remove(&mut self, team: &str, plugin: &str) {
        self.producer.send(
            &self.topics.enablements,
            &switchyard_tests::records::tombstone(&format!("{team}/{plugin}")),
        );
        self.model.enablements.remove(&(team.into(), plugin.into()));
        self.enablement_records += 1;
    }
    /// Waits until the router has applied every control record sent so far.
    async fn applied(&self, router: &InProcessRouter) {
        self.producer.flush();
        let (plugins, enablements) = (self.plugin_records as f64, self.enablement_records as f64);
        switchyard_tests::wait::wait_for(
            "control records applied",
            std::time::Duration::from_secs(30),
            || async {
                let p = router
                    .admin
                    .metric(r#"switchyard_router_control_records_total{result="applied",topic="plugins"}"#)
                    .await;
                let e = router
                    .admin
                    .metric(
                        r#"switchyard_router_control_records_total{result="applied",topic="enablements"}"#,
                    )
                    .await;
                (p >= plugins && e >= enablements).then_some(())
            },
        )
        .await;
    }
}

const TEAMS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
const TYPES: [&str; 4] = [
    "response.submitted",
    "response.updated",
    "form.created",
    "x.custom",
];
const PLUGINS: [&str; 4] = ["sheets", "sms", "audit", "legacy"];

/// Sends one event per team and type, with ids `<phase>:<team>:<type>:<n>`; returns the ids.
fn send_events(
    producer: &TestProducer,
    topics: &Topics,
    phase: &str,
    rounds: usize,
) -> Vec<(String, String, String)> {
    let mut sent = Vec::new();
    for n in 0..rounds {
        for team in TEAMS {
            for event_type in TYPES {
                let id = format!("{phase}:{team}:{event_type}:{n}");
                let content_type = if n % 2 == 0 {
                    ContentType::Json
                } else {
                    ContentType::Avro
                };
                producer.send(&topics.core, &core_event(team, event_type, &id, content_type));
                sent.push((id, team.to_owned(), event_type.to_owned()));
            }
        }
    }
    producer.flush();
    sent
}

/// (event id -> plugins it reached), counting duplicates.
fn delivered(topics: &Topics) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for plugin in PLUGINS {
        for record in read_to_end(&topics.plugin(plugin)) {
            out.entry(record.header("ce_id").expect("ce_id"))
                .or_default()
                .push(plugin.to_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_matrix_with_live_changes() {
    let topics = Topics::unique();
    topics.create(4, &PLUGINS).await;
    let producer = TestProducer::new();
    let mut control = Control {
        producer: &producer,
        topics: &topics,
        model: Model::default(),
        plugin_records: 0,
        enablement_records: 0,
    };
    control.register("sheets", &["response.submitted", "response.updated"]);
    control.register("sms", &["response.submitted"]);
    control.register("audit", &["form.created", "x.custom"]);
    control.register("legacy", &["response.submitted", "form.created"]);
    control.enable("acme", "sheets", true, None);
    control.enable("acme", "sms", true, Some(&["response.submitted"]));
    control.enable("acme", "audit", true, Some(&["x.custom"]));
    control.enable("acme", "legacy", true, None);
    control.enable("globex", "sheets", false, None);
    control.enable("globex", "sms", true, None);
    control.enable("globex", "audit", true, None);
    control.enable("initech", "audit", true, Some(&[]));
    control.enable("initech", "sms", true, Some(&["response.updated"])); // a type sms does not list
    control.remove("globex", "audit"); // tombstoned enablement
    control.deregister("legacy"); // deregistered plugin with a live enablement
    producer.flush();

    let router = InProcessRouter::start(&topics, &[]);
    router.admin.wait_ready().await;
    control.applied(&router).await;
    let before = control.model.clone();
    let phase1 = send_events(&producer, &topics, "p1", 2);
    router.admin.wait_outcomes(phase1.len() as u64).await;

    // Live changes while events flow: events sent during the changes may see either side of each change.
    control.enable("acme", "sheets", false, None);
    let mid_a = send_events(&producer, &topics, "mid-a", 1);
    control.enable("initech", "sms", true, None);
    control.register("legacy", &["response.submitted"]);
    let mid_b = send_events(&producer, &topics, "mid-b", 1);
    control.enable("globex", "sheets", true, Some(&["response.updated"]));
    control.deregister("audit");
    control.remove("acme", "sms");
    control.applied(&router).await;
    let after = control.model.clone();
    let phase2 = send_events(&producer, &topics, "p2", 2);
    let total = phase1.len() + mid_a.len() + mid_b.len() + phase2.len();
    let outcomes = router.admin.wait_outcomes(total as u64).await;

    let got = delivered(&topics);
    let check_exact = |events: &[(String, String, String)], model: &Model| {
        for (id, team, event_type) in events {
            let mut expected = model.targets(team, event_type);
            expected.sort();
            let mut actual = got.get(id).cloned().unwrap_or_default();
            actual.sort();
            assert_eq!(actual, expected, "event {id}");
        }
    };
    check_exact(&phase1, &before);
    check_exact(&phase2, &after);
    for (id, team, event_type) in mid_a.iter().chain(&mid_b) {
        let actual = got.get(id).cloned().unwrap_or_default();
        let mut unique = actual.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            actual.len(),
            "event {id} delivered twice to a plugin: {actual:?}"
        );
        let allowed: Vec<String> = before
            .targets(team, event_type)
            .into_iter()
            .chain(after.targets(team, event_type))
            .collect();
        assert!(
            actual.iter().all(|p| allowed.contains(p)),
            "event {id} reached {actual:?}; allowed {allowed:?}"
        );
    }
    // Nothing else arrived and nothing was dead-lettered.
    let sent: std::collections::HashSet<&String> = phase1
        .iter()
        .chain(&mid_a)
        .chain(&mid_b)
        .chain(&phase2)
        .map(|(id, _, _)| id)
        .collect();
    assert!(got.keys().all(|id| sent.contains(id)));
    assert!(read_to_end(&topics.dead_letter).is_empty());
    let routed_events = got.len() as u64;
    assert_eq!(outcomes, (routed_events, total as u64 - routed_events, 0));
    router.stop().await.expect("clean stop");
}
