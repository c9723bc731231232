//! Delivery lanes against the real broker, with a scripted in-process plugin that records every call: for
//! each `ordering`, no two events of one lane overlap and each lane keeps the topic's order, while different
//! lanes of one team do overlap; an event retried for seconds holds only its own lane (`"response"`), or its
//! whole team (`"team"`, the default, as documented); and a manifest without the field behaves as `"team"`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switchyard_plugin_runtime::plugin::Outcome;
use switchyard_schemas::control::Ordering;
use switchyard_schemas::envelope::ContentType;
use switchyard_tests::broker::{Outgoing, TestProducer, read_to_end};
use switchyard_tests::records::core_event;
use switchyard_tests::wait::wait_for;
use switchyard_tests::workers::{Call, InProcessWorker, ScriptedPlugin, WorkerTopics};

/// A `response.submitted` of `response` in `form` (its `ce_subject`), with event id `id`.
fn response_event(team: &str, form: &str, response: &str, id: &str) -> Outgoing {
    let mut event = core_event(team, "response.submitted", response, ContentType::Json);
    for (name, value) in &mut event.headers {
        match name.as_str() {
            "ce_id" => *value = Some(id.as_bytes().to_vec()),
            "ce_subject" => *value = Some(form.as_bytes().to_vec()),
            _ => {}
        }
    }
    event
}

/// The events of one team: 3 forms, 2 responses per form, 3 events per response, interleaved. Event ids
/// are `<form>.<response>.<n>`.
fn events(team: &str) -> Vec<(String, Outgoing)> {
    let mut events = Vec::new();
    for n in 0..3 {
        for form in ["f1", "f2", "f3"] {
            for response in ["a", "b"] {
                let id = format!("{form}.{response}.{n}");
                let event = response_event(team, form, &format!("{form}-{response}"), &id);
                events.push((id, event));
            }
        }
    }
    events
}

/// The lane of an event id of [`events`] under `ordering` (`None`: its own).
fn lane_of(ordering: &Ordering, id: &str) -> Option<String> {
    let mut parts = id.split('.');
    let (form, response) = (parts.next().unwrap(), parts.next().unwrap());
    match ordering {
        Ordering::Team => Some(String::new()),
        Ordering::Form => Some(form.to_owned()),
        Ordering::Response => Some(format!("{form}-{response}")),
        _ => None,
    }
}

fn overlap(a: &Call, b: &Call) -> bool {
    a.started < b.ended && b.started < a.ended
}

async fn run_ordering(name: &str, ordering: Option<Ordering>) -> (Vec<String>, Vec<Call>) {
    let topics = WorkerTopics::create(name, 2).await;
    let mut plugin = ScriptedPlugin::new(name, |_| (Duration::from_millis(40), Outcome::done()));
    if let Some(ordering) = ordering {
        plugin = plugin.with_ordering(ordering);
    }
    let worker = InProcessWorker::start(
        plugin.clone(),
        topics.settings(&[
            ("DELIVERY__MAX_IN_FLIGHT", "16"),
            ("DELIVERY__MAX_IN_FLIGHT_PER_TEAM", "8"),
        ]),
    );
    let producer = TestProducer::new();
    let events = events("acme");
    for (_, event) in &events {
        producer.send(&topics.events, event);
    }
    producer.flush();
    wait_for("every event executed", Duration::from_secs(60), || async {
        (plugin.calls().len() >= events.len()).then_some(())
    })
    .await;
    worker.stop().await.expect("clean stop");
    assert!(
        read_to_end(&topics.dead_letter).is_empty(),
        "{name}: no dead letters"
    );
    (events.into_iter().map(|(id, _)| id).collect(), plugin.calls())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_ordering_keeps_its_lanes_in_order_and_runs_different_lanes_concurrently() {
    let cases = [
        ("lanes-default", None),
        ("lanes-team", Some(Ordering::Team)),
        ("lanes-form", Some(Ordering::Form)),
        ("lanes-response", Some(Ordering::Response)),
        ("lanes-none", Some(Ordering::None)),
    ];
    for (name, ordering) in cases {
        let (sent, calls) = run_ordering(name, ordering.clone()).await;
        let ordering = ordering.unwrap_or_default();
        assert_eq!(calls.len(), sent.len(), "{name}: each event once");
        let position: HashMap<&str, usize> =
            sent.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        let lane = |call: &Call| lane_of(&ordering, &call.id);
        let mut concurrent_lanes = false;
        for (i, a) in calls.iter().enumerate() {
            for b in &calls[i + 1..] {
                let same_lane = lane(a).is_some() && lane(a) == lane(b);
                if same_lane {
                    assert!(
                        !overlap(a, b),
                        "{name}: {} and {} of one lane overlapped",
                        a.id,
                        b.id
                    );
                    let (first, second) = if a.started < b.started { (a, b) } else { (b, a) };
                    assert!(
                        position[first.id.as_str()] < position[second.id.as_str()],
                        "{name}: {} ran before {} against the topic's order",
                        first.id,
                        second.id
                    );
                } else if overlap(a, b) {
                    concurrent_lanes = true;
                }
            }
        }
        // One team: "team" is one lane; every other ordering runs lanes of the team at once.
        assert_eq!(
            concurrent_lanes,
            ordering != Ordering::Team,
            "{name}: lanes ran concurrently"
        );
    }
}

/// Runs r1 failing (retry) for `failing`, then r2 of the same team and form; returns when r2's call ended
/// and when r1's successful call ended.
async fn head_of_line(name: &str, ordering: Ordering, failing: Duration) -> (Instant, Instant) {
    let topics = WorkerTopics::create(name, 1).await;
    let started = Instant::now();
    let plugin = ScriptedPlugin::new(name, move |ctx| {
        let outcome = if ctx.meta.id == "r1" && started.elapsed() < failing {
            Outcome::retry("the service answered 503")
        } else {
            Outcome::done()
        };
        (Duration::from_millis(5), outcome)
    })
    .with_ordering(ordering);
    let worker = InProcessWorker::start(
        plugin.clone(),
        topics.settings(&[("RETRY__MAX_ATTEMPTS", "100"), ("RETRY__MAX_BACKOFF_MS", "200")]),
    );
    let producer = TestProducer::new();
    producer.send(&topics.events, &response_event("acme", "f1", "r1", "r1"));
    producer.send(&topics.events, &response_event("acme", "f1", "r2", "r2"));
    producer.flush();
    let ended = |id: &str| {
        plugin
            .calls()
            .into_iter()
            .filter(|c| c.id == id)
            .map(|c| c.ended)
            .max()
    };
    let r1_done = wait_for("r1 delivered", Duration::from_secs(60), || async {
        let done = plugin
            .calls()
            .iter()
            .any(|c| c.id == "r1" && c.attempt > 1 && c.ended.duration_since(started) >= failing);
        done.then(|| ended("r1")).flatten()
    })
    .await;
    let r2_done = wait_for("r2 delivered", Duration::from_secs(30), || async { ended("r2") }).await;
    worker.stop().await.expect("clean stop");
    assert!(
        read_to_end(&topics.dead_letter).is_empty(),
        "{name}: no dead letters"
    );
    (r2_done, r1_done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_event_holds_only_its_own_lane() {
    let failing = Duration::from_secs(4);
    let (r2, r1) = head_of_line("hol-response", Ordering::Response, failing).await;
    assert!(
        r1.duration_since(r2) > Duration::from_secs(2),
        "\"response\": r2 was delivered while r1 was retried"
    );
    let (r2, r1) = head_of_line("hol-team", Ordering::Team, failing).await;
    assert!(r2 >= r1, "\"team\": r2 waited for r1, as documented");
}
