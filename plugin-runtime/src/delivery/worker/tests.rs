//! Unit tests of [`super`]: deliveries against in-memory fakes of the plugin and the output topics, no
//! broker.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU32;

use serde_json::{Value, json};
use switchyard_schemas::control::PluginManifest;

use super::*;
use crate::delivery::breaker::BreakerPolicy;
use crate::plugin::{Event, PluginError, PluginResult};

/// Answers with the scripted outcomes in order (then `done`), and remembers the configs it was given.
#[test]
fn a_throttled_call_waits_at_most_the_cap_unless_told_longer() {
    let retry = RetryPolicy::default();
    for throttles in [1, 5, 20] {
        assert!(throttled_wait(&retry, throttles, None) <= THROTTLED_WAIT_CAP);
    }
    let told = Duration::from_secs(30);
    assert!(throttled_wait(&retry, 1, Some(told)) >= told);
}

#[derive(Default)]
struct Scripted {
    outcomes: Mutex<VecDeque<Outcome>>,
    calls: AtomicU32,
    initialized: Mutex<Vec<(String, String, Option<Value>)>>,
}

impl Scripted {
    fn new(outcomes: impl IntoIterator<Item = Outcome>) -> Self {
        Self {
            outcomes: Mutex::new(outcomes.into_iter().collect()),
            ..Self::default()
        }
    }
}

impl Plugin for Scripted {
    fn manifest(&self) -> PluginManifest {
        unreachable!("not registered in these tests")
    }

    async fn initialize(
        &self,
        team: &str,
        installation: &str,
        config: Option<&Value>,
    ) -> Result<(), PluginError> {
        self.initialized
            .lock()
            .unwrap()
            .push((team.to_owned(), installation.to_owned(), config.cloned()));
        Ok(())
    }

    async fn execute(&self, _: &Context, _: &Event) -> Outcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.outcomes
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(Outcome::done)
    }
}

/// Records what the worker writes; refuses the first `refuse` writes.
#[derive(Default)]
struct Recorder {
    written: Mutex<Vec<(String, OutRecord)>>,
    refuse: AtomicU32,
}

impl OutputSink for Recorder {
    async fn write(&self, topic: &str, record: &OutRecord) -> Result<(), String> {
        let refused = self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refused {
            return Err("Local: Message timed out".into());
        }
        self.written
            .lock()
            .unwrap()
            .push((topic.to_owned(), record.clone()));
        Ok(())
    }
}

fn worker(plugin: Scripted, sink: Recorder) -> Worker<Scripted, Recorder> {
    Worker {
        plugin,
        plugin_id: "echo".into(),
        producer: sink,
        outputs: Outputs {
            dead_letter: "plugin.echo.dlq".into(),
            results: "core.plugin-results".into(),
        },
        retry: RetryPolicy {
            max_attempts: 3,
            max_elapsed: Duration::from_secs(60),
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
        },
        breaker: Mutex::new(Breaker::new(BreakerPolicy {
            window: 20,
            min_teams: 3,
            threshold: 0.8,
            probe_initial: Duration::from_millis(1),
            probe_max: Duration::from_millis(2),
        })),
        outage: watch::Sender::new(false),
        probing: AtomicBool::new(false),
        installations: false,
        configs: Configs::fixed([("acme".to_owned(), json!({"sheet": "s-1"}))]),
        applied: Mutex::new(HashMap::new()),
        config_wait: Duration::ZERO,
        metrics: Metrics::new("echo"),
        shutdown: CancellationToken::new(),
        traces: None,
    }
}

fn routed(decoded: bool) -> Routed {
    routed_for("default", decoded)
}

fn routed_for(installation: &str, decoded: bool) -> Routed {
    let meta = EventMeta {
        id: "e-1".into(),
        source: "/forms".into(),
        event_type: "response.submitted".into(),
        time: None,
        subject: Some("f-1".into()),
        team_id: "acme".into(),
        installation: installation.into(),
        backfill: None,
    };
    Routed {
        record: OutRecord {
            key: Some(b"acme".to_vec()),
            value: Some(b"{}".to_vec()),
            headers: vec![("ce_id".into(), Some(b"e-1".to_vec()))],
        },
        source: "plugin.echo.events/0/7".into(),
        timestamp: None,
        decoded: if decoded {
            Ok(Decoded::tree(meta, json!({}), Event::Other(json!({}))))
        } else {
            Err("the value is not JSON".into())
        },
    }
}

fn header(record: &OutRecord, name: &str) -> String {
    record
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

fn outcome_count(worker: &Worker<Scripted, Recorder>, outcome: &str) -> u64 {
    worker.metrics.events.with_label_values(&[outcome]).get()
}

#[tokio::test]
async fn a_done_event_applies_the_config_first_then_publishes_each_result() {
    let result = PluginResult {
        kind: "row.appended".into(),
        subject: None,
        data: json!({"row": 4}),
    };
    let worker = worker(Scripted::new([Outcome::Done(vec![result])]), Recorder::default());
    let completion = worker.deliver(routed(true), &CancellationToken::new()).await;
    assert_eq!(completion, Completion::Done);
    assert_eq!(
        *worker.plugin.initialized.lock().unwrap(),
        [(
            "acme".to_owned(),
            "default".to_owned(),
            Some(json!({"sheet": "s-1"}))
        )]
    );
    let written = worker.producer.written.lock().unwrap();
    assert_eq!(written.len(), 1);
    let (topic, record) = &written[0];
    assert_eq!(topic, "core.plugin-results");
    assert_eq!(header(record, "ce_type"), "switchyard.plugin.row.appended");
    assert_eq!(header(record, "ce_causationid"), "e-1");
    assert_eq!(outcome_count(&worker, "done"), 1);
}

#[tokio::test]
async fn each_installation_is_initialized_with_its_own_config() {
    let mut worker = worker(Scripted::default(), Recorder::default());
    worker.installations = true;
    worker.configs = Configs::fixed_installations([
        (("acme".into(), "default".into()), json!({"sheet": "s-1"})),
        (("acme".into(), "forms-bc".into()), json!({"sheet": "s-bc"})),
    ]);
    let cancel = CancellationToken::new();
    for installation in ["forms-bc", "default", "forms-bc"] {
        let completion = worker.deliver(routed_for(installation, true), &cancel).await;
        assert_eq!(completion, Completion::Done);
    }
    assert_eq!(
        *worker.plugin.initialized.lock().unwrap(),
        [
            (
                "acme".to_owned(),
                "forms-bc".to_owned(),
                Some(json!({"sheet": "s-bc"}))
            ),
            (
                "acme".to_owned(),
                "default".to_owned(),
                Some(json!({"sheet": "s-1"}))
            ),
        ],
        "once each, until its config changes"
    );
    assert_eq!(worker.plugin.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_named_installation_of_a_plugin_without_installations_is_dead_lettered() {
    let worker = worker(Scripted::default(), Recorder::default());
    assert!(!worker.installations);
    let completion = worker
        .deliver(routed_for("forms-bc", true), &CancellationToken::new())
        .await;
    assert_eq!(completion, Completion::Done);
    assert_eq!(worker.plugin.calls.load(Ordering::SeqCst), 0);
    assert!(worker.plugin.initialized.lock().unwrap().is_empty());
    let written = worker.producer.written.lock().unwrap();
    assert_eq!(header(&written[0].1, "switchyard_error"), "config_rejected");
    assert!(
        header(&written[0].1, "switchyard_error_detail").contains("\"installations\": true"),
        "{:?}",
        header(&written[0].1, "switchyard_error_detail")
    );
    assert_eq!(outcome_count(&worker, "dead_lettered"), 1);
}

#[tokio::test]
async fn a_batch_ends_each_event_on_its_own_outcome() {
    // The default execute_batch calls execute per event: done, retry, dead letter; then the retried one
    // alone, done.
    let worker = worker(
        Scripted::new([
            Outcome::done(),
            Outcome::retry("busy"),
            Outcome::dead_letter("no such phone"),
            Outcome::done(),
        ]),
        Recorder::default(),
    );
    let events = (0..3).map(|offset| ((0, offset), routed(true))).collect();
    let mut heard = Vec::new();
    let ends = worker
        .deliver_call(events, CallForm::Batch, &CancellationToken::new(), |signal| {
            if let Signal::Done(at) = signal {
                heard.push(at);
            }
        })
        .await;
    assert_eq!(
        worker.plugin.calls.load(Ordering::SeqCst),
        4,
        "three, then the retried one"
    );
    assert_eq!(heard, [(0, 0), (0, 2), (0, 1)], "each event ends when it is done");
    assert!(ends.iter().all(|(_, completion)| *completion == Completion::Done));
    let written = worker.producer.written.lock().unwrap();
    assert_eq!(written.len(), 1, "one dead letter");
    assert_eq!(header(&written[0].1, "switchyard_error"), "plugin_dead_letter");
    assert_eq!(
        (outcome_count(&worker, "done"), outcome_count(&worker, "retried")),
        (2, 1)
    );
}

#[tokio::test]
async fn retries_until_the_budget_is_spent_then_dead_letters() {
    let worker = worker(
        Scripted::new((0..5).map(|_| Outcome::retry("503 from the sheet"))),
        Recorder::default(),
    );
    let completion = worker.deliver(routed(true), &CancellationToken::new()).await;
    assert_eq!(completion, Completion::Done);
    assert_eq!(worker.plugin.calls.load(Ordering::SeqCst), 3, "max_attempts");
    let written = worker.producer.written.lock().unwrap();
    let (topic, letter) = &written[0];
    assert_eq!(topic, "plugin.echo.dlq");
    assert_eq!(header(letter, "switchyard_error"), "retries_exhausted");
    assert_eq!(header(letter, "switchyard_attempts"), "3");
    assert_eq!(header(letter, "switchyard_source"), "plugin.echo.events/0/7");
    assert_eq!(
        (
            outcome_count(&worker, "retried"),
            outcome_count(&worker, "dead_lettered")
        ),
        (2, 1)
    );
}

#[tokio::test]
async fn an_undecodable_event_is_dead_lettered_without_calling_the_plugin() {
    let worker = worker(Scripted::default(), Recorder::default());
    assert_eq!(
        worker.deliver(routed(false), &CancellationToken::new()).await,
        Completion::Done
    );
    assert_eq!(worker.plugin.calls.load(Ordering::SeqCst), 0);
    let written = worker.producer.written.lock().unwrap();
    assert_eq!(header(&written[0].1, "switchyard_error"), "invalid_event");
    assert_eq!(header(&written[0].1, "switchyard_attempts"), "0");
}

#[tokio::test]
async fn a_refused_write_is_retried_until_acknowledged() {
    let sink = Recorder {
        refuse: AtomicU32::new(2),
        ..Recorder::default()
    };
    let worker = worker(Scripted::new([Outcome::dead_letter("bad phone number")]), sink);
    let completion = worker.deliver(routed(true), &CancellationToken::new()).await;
    assert_eq!(completion, Completion::Done);
    let written = worker.producer.written.lock().unwrap();
    assert_eq!(written.len(), 1, "written once, after two refusals");
    assert_eq!(header(&written[0].1, "switchyard_error"), "plugin_dead_letter");
    assert_eq!(outcome_count(&worker, "dead_lettered"), 1);
}

#[tokio::test]
async fn shutdown_during_a_failing_write_abandons_the_event_uncounted() {
    let sink = Recorder {
        refuse: AtomicU32::new(u32::MAX),
        ..Recorder::default()
    };
    let worker = worker(Scripted::new([Outcome::dead_letter("bad phone number")]), sink);
    let cancel = CancellationToken::new();
    let stop = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.cancel();
        })
    };
    assert_eq!(worker.deliver(routed(true), &cancel).await, Completion::Abandoned);
    stop.await.unwrap();
    assert!(worker.producer.written.lock().unwrap().is_empty());
    assert_eq!(
        outcome_count(&worker, "dead_lettered"),
        0,
        "read again, so not counted"
    );
}
