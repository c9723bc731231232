//! The engine driven through fake producer and consumer I/O, without a broker: refusals and rewinds,
//! generations, the in-order offset store, the dead letter refused without its value, producer replacement.
//!
//! The fake producer keeps every sent record and its tag; a test decides which delivery reports arrive and
//! when, and scripts transaction call failures. An abort or a replacement purges what was not reported, as
//! librdkafka does.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::types::RDKafkaErrorCode;
use switchyard_schemas::envelope as h;

use super::contexts::{Report, Tag};
use super::engine::{Engine, EngineSettings};
use super::io::{ConsumerIo, ProducerIo, TransactionError};
use super::records::{InputRecord, Outgoing};
use super::watchdog::Watchdog;
use crate::RouterError;
use crate::config::DeliveryMode;
use crate::kafka::TransactionAction;
use crate::metrics::Metrics;
use crate::pipeline::plan::{Destination, Recipient};
use crate::pipeline::topics::{TopicCache, TopicLookup};
use crate::tables::routes::RouteTable;
use crate::tables::test_support;

const DEAD_LETTERS: &str = "switchyard.dead-letters";

/// One record the engine sent, with its tag's identity.
#[derive(Debug, Clone)]
struct Sent {
    generation: u64,
    partition: i32,
    offset: i64,
    topic: String,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<String>)>,
}

impl Sent {
    fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }
}

#[derive(Default)]
struct FakeProducer {
    sent: RefCell<Vec<Sent>>,
    /// Tags of sent records whose report has not arrived, boxed as the reports give them back.
    #[allow(clippy::vec_box)]
    outstanding: RefCell<Vec<Box<Tag>>>,
    reports: RefCell<Vec<Report>>,
    /// Transaction calls and replacements, in order.
    calls: RefCell<Vec<String>>,
    /// Scripted failures: the next call of that name fails with that error.
    failures: RefCell<Vec<(&'static str, TransactionError)>>,
    replacements: Cell<usize>,
}

impl FakeProducer {
    /// Delivers the outstanding records `which` selects, failed with `error` or acknowledged.
    fn deliver(&self, which: impl Fn(&Tag) -> bool, error: Option<KafkaError>) {
        let mut outstanding = self.outstanding.borrow_mut();
        let (reported, kept): (Vec<_>, Vec<_>) = outstanding.drain(..).partition(|tag| which(tag));
        *outstanding = kept;
        self.reports
            .borrow_mut()
            .extend(reported.into_iter().map(|tag| Report {
                tag,
                error: error.clone(),
            }));
    }

    fn acknowledge_all(&self) {
        self.deliver(|_| true, None);
    }

    /// What librdkafka does with records not delivered when a transaction aborts or a producer goes.
    fn purge(&self) {
        self.deliver(
            |_| true,
            Some(KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue)),
        );
    }

    fn fail_next(&self, call: &'static str, action: TransactionAction) {
        self.fail_next_with(call, action, RDKafkaErrorCode::InvalidTransactionalState);
    }

    fn fail_next_with(&self, call: &'static str, action: TransactionAction, code: RDKafkaErrorCode) {
        let error = TransactionError {
            error: KafkaError::MessageProduction(code),
            retriable: false,
            action,
        };
        self.failures.borrow_mut().push((call, error));
    }

    /// The next call of that name fails with `error`, classified as the real producer's errors are.
    fn fail_next_error(&self, call: &'static str, error: KafkaError) {
        self.failures.borrow_mut().push((call, error.into()));
    }

    fn call(&self, call: &'static str, record: String) -> Result<(), TransactionError> {
        self.calls.borrow_mut().push(record);
        let mut failures = self.failures.borrow_mut();
        let Some(i) = failures.iter().position(|(c, ..)| *c == call) else {
            return Ok(());
        };
        Err(failures.remove(i).1)
    }

    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn sent_in(&self, generation: u64) -> Vec<Sent> {
        let sent = self.sent.borrow();
        sent.iter()
            .filter(|s| s.generation == generation)
            .cloned()
            .collect()
    }
}

impl TopicLookup for FakeProducer {
    fn partitions(&self, _: &str, _: Duration) -> Result<Vec<i32>, KafkaError> {
        Ok(vec![0])
    }
}

impl ProducerIo for FakeProducer {
    type Group = ();

    fn begin_transaction(&self) -> Result<(), TransactionError> {
        self.call("begin_transaction", "begin".into())
    }

    fn send_offsets_to_transaction(
        &self,
        topic: &str,
        offsets: &[(i32, i64)],
        _: &(),
        _: Duration,
    ) -> Result<(), TransactionError> {
        let mut offsets = offsets.to_vec();
        offsets.sort_unstable();
        let offsets: Vec<String> = offsets.iter().map(|(p, o)| format!("{p}:{o}")).collect();
        let record = format!("send_offsets {topic} {}", offsets.join(","));
        self.call("send_offsets_to_transaction", record)
    }

    fn commit_transaction(&self, _: Duration) -> Result<(), TransactionError> {
        self.call("commit_transaction", "commit".into())
    }

    fn abort_transaction(&self, _: Duration) -> Result<(), TransactionError> {
        self.purge();
        self.call("abort_transaction", "abort".into())
    }

    fn send(&self, out: Outgoing<'_>, tag: Box<Tag>) {
        let headers = out
            .headers
            .iter()
            .map(|header| {
                let value = header.value.map(|v| String::from_utf8_lossy(v).into_owned());
                (header.key.to_owned(), value)
            })
            .collect();
        self.sent.borrow_mut().push(Sent {
            generation: tag.generation,
            partition: tag.partition,
            offset: tag.offset,
            topic: out.topic.to_owned(),
            value: out.value.map(<[u8]>::to_vec),
            headers,
        });
        self.outstanding.borrow_mut().push(tag);
    }

    fn poll(&self, _: Duration) {}

    fn take_reports(&self, into: &mut Vec<Report>) {
        into.append(&mut self.reports.borrow_mut());
    }

    fn flush(&self, _: Duration) -> Result<(), KafkaError> {
        Ok(())
    }

    fn replace(&mut self) -> Result<(), RouterError> {
        self.purge();
        self.calls.borrow_mut().push("replace".into());
        self.replacements.set(self.replacements.get() + 1);
        Ok(())
    }
}

#[derive(Default)]
struct FakeConsumer {
    seeks: RefCell<Vec<(i32, i64)>>,
    stored: RefCell<Vec<(i32, i64)>>,
}

impl ConsumerIo<()> for FakeConsumer {
    fn group_metadata(&self) -> Option<()> {
        Some(())
    }

    fn seek(&self, _: &str, partition: i32, offset: i64, _: Duration) -> Result<(), KafkaError> {
        self.seeks.borrow_mut().push((partition, offset));
        Ok(())
    }

    fn store_offset(&self, _: &str, partition: i32, next: i64) -> Result<(), KafkaError> {
        self.stored.borrow_mut().push((partition, next));
        Ok(())
    }

    fn commit_consumer_state(&self) -> Result<(), KafkaError> {
        Ok(())
    }

    fn committed_offset(&self, _: &str, _: i32, _: Duration) -> Result<Option<i64>, KafkaError> {
        Ok(None)
    }
}

/// Team `acme` has plugins `sheets` and `sms` enabled for `response.submitted`; `globex` has none.
fn table() -> Arc<RouteTable> {
    let types: &[&str] = &["response.submitted"];
    Arc::new(test_support::table("acme", &[("sheets", types), ("sms", types)]))
}

const HEADERS: &[(&str, Option<&[u8]>)] = &[
    (h::SPECVERSION, Some(b"1.0")),
    (h::ID, Some(b"e-1")),
    (h::SOURCE, Some(b"/test")),
    (h::TYPE, Some(b"response.submitted")),
    (h::CONTENT_TYPE, Some(b"application/json")),
];

struct Harness {
    engine: Engine<FakeProducer>,
    consumer: FakeConsumer,
}

fn harness(mode: DeliveryMode, commit_max_events: usize) -> Harness {
    let settings = EngineSettings {
        mode,
        input_topic: Arc::from("core.events"),
        dead_letter_topic: DEAD_LETTERS.into(),
        commit_interval: Duration::from_secs(3600),
        commit_max_events,
        drain_timeout: Duration::from_secs(1),
        transaction_timeout: Duration::from_secs(3600),
        validate_payloads: false,
        traces: None,
    };
    let topics = TopicCache::new(Duration::from_secs(3600), Duration::from_secs(3600));
    let mut engine = Engine::new(
        settings,
        FakeProducer::default(),
        table(),
        topics,
        Metrics::new(),
        Watchdog::new(),
    );
    engine.core.pause = |_| {};
    Harness {
        engine,
        consumer: FakeConsumer::default(),
    }
}

impl Harness {
    fn producer(&self) -> &FakeProducer {
        &self.engine.core.producer
    }

    fn metrics(&self) -> &Metrics {
        &self.engine.core.metrics
    }

    /// Processes the event of team `team` at `partition`/`offset`.
    fn process_from(&mut self, team: &'static str, partition: i32, offset: i64) {
        self.engine.process(&InputRecord {
            partition,
            offset,
            key: Some(team.as_bytes()),
            value: Some(b"{\"answers\":[]}"),
            headers: HEADERS,
        });
    }

    /// Processes an event routed to both plugins.
    fn process(&mut self, partition: i32, offset: i64) {
        self.process_from("acme", partition, offset);
    }

    fn service(&mut self) {
        self.engine.service(&self.consumer);
    }

    fn seeks(&self) -> Vec<(i32, i64)> {
        std::mem::take(&mut *self.consumer.seeks.borrow_mut())
    }

    fn stored(&self) -> Vec<(i32, i64)> {
        self.consumer.stored.borrow().clone()
    }

    fn counter(&self, vec: &prometheus::IntCounterVec, label: &str) -> u64 {
        vec.with_label_values(&[label]).get()
    }
}

fn copy_to(plugin: &str) -> impl Fn(&Tag) -> bool {
    let plugin = Destination::Plugin(Recipient::default_of(plugin));
    move |tag| tag.destination == plugin
}

fn too_large() -> Option<KafkaError> {
    Some(KafkaError::MessageProduction(
        RDKafkaErrorCode::MessageSizeTooLarge,
    ))
}

fn timed_out() -> Option<KafkaError> {
    Some(KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut))
}

/// (partition, offset, topic) of each record.
fn routes(sent: &[Sent]) -> Vec<(i32, i64, &str)> {
    sent.iter()
        .map(|s| (s.partition, s.offset, s.topic.as_str()))
        .collect()
}

#[test]
fn exactly_once_a_refused_copy_rewinds_and_is_dead_lettered_on_the_replay() {
    let mut h = harness(DeliveryMode::ExactlyOnce, 3);
    // A first batch commits: partition 0 is durable up to 13.
    for offset in 10..13 {
        h.process(0, offset);
    }
    h.producer().acknowledge_all();
    h.service();
    assert_eq!(
        h.producer().calls(),
        ["begin", "send_offsets core.events 0:13", "commit"]
    );

    // The second batch: the broker refuses the sms copy of 0/14 for a reason of its own.
    h.process(0, 13);
    h.process(1, 7);
    h.process(0, 14);
    h.producer()
        .deliver(|tag| copy_to("sms")(tag) && tag.offset == 14, too_large());
    h.producer().acknowledge_all();
    h.service();
    assert_eq!(
        h.producer().calls()[3..],
        ["begin", "abort"],
        "the transaction is aborted, not committed"
    );
    let mut seeks = h.seeks();
    seeks.sort_unstable();
    assert_eq!(seeks, [(0, 13), (1, 7)], "back to the first record not durable");
    assert_eq!(h.counter(&h.metrics().transactions, "aborted"), 1);
    assert_eq!(h.metrics().rewinds.get(), 1);

    // The replay, as the consumer reads the records again after the seeks.
    h.process(0, 13);
    h.process(1, 7);
    h.process(0, 14);
    let replay = h.producer().sent_in(1);
    assert_eq!(
        routes(&replay),
        [
            (0, 13, "plugin.sheets.events"),
            (0, 13, "plugin.sms.events"),
            (1, 7, "plugin.sheets.events"),
            (1, 7, "plugin.sms.events"),
            (0, 14, "plugin.sheets.events"),
            (0, 14, DEAD_LETTERS),
        ]
    );
    let dead_letter = &replay[5];
    assert_eq!(
        dead_letter.header("switchyard_error"),
        Some("plugin_topic_rejected")
    );
    assert_eq!(dead_letter.header("switchyard_plugin"), Some("sms"));
    assert_eq!(dead_letter.header("switchyard_source"), Some("core.events/0/14"));
    assert_eq!(dead_letter.value.as_deref(), Some(&b"{\"answers\":[]}"[..]));

    h.producer().acknowledge_all();
    h.service();
    assert_eq!(
        h.producer().calls()[5..],
        ["begin", "send_offsets core.events 0:15,1:8", "commit"]
    );
    assert!(h.engine.take_fatal().is_none());
    assert!(h.engine.core.refusals.is_empty(), "forgotten once durable");
    // Counted once each, when durable: 6 events routed, the refused copy as one dead letter.
    let m = h.metrics();
    assert_eq!(h.counter(&m.events, "routed"), 6);
    assert_eq!(h.counter(&m.plugin_records, "sheets"), 6);
    assert_eq!(h.counter(&m.plugin_records, "sms"), 5);
    assert_eq!(h.counter(&m.dead_letters, "plugin_topic_rejected"), 1);
    assert_eq!(h.counter(&m.transactions, "committed"), 2);
    let position = h.engine.position(0);
    assert_eq!(
        (position.transaction_committed, position.pending),
        (Some(15), false)
    );
}

#[test]
fn a_transient_failure_resends_the_same_outputs_and_older_reports_are_ignored() {
    let mut h = harness(DeliveryMode::ExactlyOnce, 2);
    h.process(0, 0);
    h.process(0, 1);
    h.producer()
        .deliver(|tag| copy_to("sheets")(tag) && tag.offset == 0, timed_out());
    h.producer().acknowledge_all();
    h.service();
    assert_eq!(h.producer().calls(), ["begin", "abort"]);
    assert_eq!(h.seeks(), [(0, 0)]);
    assert!(
        h.engine.core.refusals.is_empty(),
        "a transient failure is not remembered"
    );

    h.process(0, 0);
    h.process(0, 1);
    assert_eq!(
        routes(&h.producer().sent_in(1)),
        routes(&h.producer().sent_in(0)),
        "the replay sends the same outputs"
    );
    // A late report of the first generation: a transient failure that no longer concerns anything.
    h.producer().reports.borrow_mut().push(Report {
        tag: Box::new(Tag {
            generation: 0,
            partition: 0,
            offset: 1,
            destination: Destination::Plugin(Recipient::default_of("sms")),
            reason: None,
            value_dropped: false,
        }),
        error: timed_out(),
    });
    h.producer().acknowledge_all();
    h.service();
    assert_eq!(
        h.producer().calls()[2..],
        ["begin", "send_offsets core.events 0:2", "commit"]
    );
    assert!(h.seeks().is_empty());
    assert_eq!(h.metrics().rewinds.get(), 1);
    assert_eq!(h.counter(&h.metrics().events, "routed"), 2);
}

#[test]
fn at_least_once_stores_offsets_in_partition_order_whatever_the_acknowledgement_order() {
    let mut h = harness(DeliveryMode::AtLeastOnce, 1);
    for offset in 0..3 {
        h.process(0, offset);
    }
    h.process_from("globex", 0, 3); // unrouted: no outputs
    h.process(1, 0);
    assert!(h.producer().calls().is_empty(), "no transactions");
    let at =
        |partition: i32, offset: i64| move |tag: &Tag| tag.partition == partition && tag.offset == offset;

    // Later records first: nothing before them is durable, nothing is stored.
    h.producer().deliver(at(0, 2), None);
    h.producer()
        .deliver(|tag| at(0, 1)(tag) && copy_to("sms")(tag), None);
    h.service();
    assert!(h.stored().is_empty());
    assert!(h.engine.position(0).pending);

    h.producer().deliver(at(1, 0), None);
    h.service();
    assert_eq!(h.stored(), [(1, 1)]);

    // 0/0 completes; 0/1 still waits for its sheets copy.
    h.producer().deliver(at(0, 0), None);
    h.service();
    assert_eq!(h.stored(), [(1, 1), (0, 1)]);
    assert_eq!(h.counter(&h.metrics().events, "routed"), 2);

    // 0/1 completes: 0/2 and the unrouted 0/3 were complete already.
    h.producer().acknowledge_all();
    h.service();
    assert_eq!(h.stored(), [(1, 1), (0, 1), (0, 4)]);
    assert_eq!(h.counter(&h.metrics().events, "routed"), 4);
    assert_eq!(h.counter(&h.metrics().events, "unrouted"), 1);
    assert_eq!(h.counter(&h.metrics().plugin_records, "sms"), 4);
    assert!(!h.engine.position(0).pending);
}

#[test]
fn at_least_once_ignores_acknowledgements_of_an_earlier_generation() {
    let mut h = harness(DeliveryMode::AtLeastOnce, 1);
    h.process(0, 0);
    let (sheets, sms) = (copy_to("sheets"), copy_to("sms"));
    h.producer().deliver(&sheets, timed_out());
    h.service();
    assert_eq!(h.seeks(), [(0, 0)]);

    h.process(0, 0);
    // The first generation's sms copy is acknowledged late; it must not count for the replay.
    h.producer().deliver(|tag| tag.generation == 0, None);
    h.producer()
        .deliver(|tag| tag.generation == 1 && sheets(tag), None);
    h.service();
    assert!(
        h.stored().is_empty(),
        "the replay's sms copy is not acknowledged yet"
    );
    h.producer().deliver(&sms, None);
    h.service();
    assert_eq!(h.stored(), [(0, 1)]);
}

#[test]
fn a_dead_letter_refused_even_without_its_value_is_fatal() {
    let mut h = harness(DeliveryMode::ExactlyOnce, 10);
    let dead_letter =
        |tag: &Tag| tag.destination == Destination::DeadLetter(Some(Recipient::default_of("sms")));
    h.process(0, 5);
    h.producer().deliver(copy_to("sms"), too_large());
    h.service();
    // The replay dead-letters the copy; the dead-letter topic refuses it too.
    h.process(0, 5);
    h.producer().deliver(dead_letter, too_large());
    h.service();
    assert!(h.engine.take_fatal().is_none());
    // The next replay writes it without its value.
    h.process(0, 5);
    let replay = h.producer().sent_in(2);
    assert_eq!(routes(&replay)[1], (0, 5, DEAD_LETTERS));
    assert_eq!(replay[1].value, None);
    assert_eq!(replay[1].header("switchyard_value_dropped"), Some("true"));
    h.producer().deliver(dead_letter, too_large());
    h.producer().acknowledge_all();
    h.service();
    match h.engine.take_fatal() {
        Some(RouterError::DeadLetterRefused { topic, .. }) => assert_eq!(topic, DEAD_LETTERS),
        other => panic!("expected the dead-letter refusal to be fatal, got {other:?}"),
    }
    assert!(!h.producer().calls().iter().any(|c| c == "commit"));
}

#[test]
fn an_unusable_producer_is_replaced_and_the_sixth_replacement_within_the_window_is_fatal() {
    let mut h = harness(DeliveryMode::ExactlyOnce, 1);
    for attempt in 1..=6 {
        h.producer()
            .fail_next("commit_transaction", TransactionAction::ReplaceProducer);
        h.process(0, 0);
        h.producer().acknowledge_all();
        h.service();
        if attempt <= 5 {
            assert!(h.engine.take_fatal().is_none(), "attempt {attempt}");
            assert_eq!(h.producer().replacements.get(), attempt);
            assert_eq!(h.seeks(), [(0, 0)], "attempt {attempt}");
            assert_eq!(h.metrics().producer_replacements.get(), attempt as u64);
            // The replaced producer's transaction is gone with it (no abort call on the broken one).
            assert_eq!(h.counter(&h.metrics().transactions, "aborted"), attempt as u64);
        } else {
            match h.engine.take_fatal() {
                Some(RouterError::Transaction { call, .. }) => assert_eq!(call, "commit_transaction"),
                other => panic!("expected a fatal transaction error, got {other:?}"),
            }
            assert_eq!(h.producer().replacements.get(), 5);
        }
    }
    assert!(!h.producer().calls().iter().any(|c| c == "abort"));
}

#[test]
fn a_commit_whose_flush_timed_out_is_called_again_and_commits() {
    // rust-rdkafka's commit_transaction flushes first; with the broker away the flush times out.
    let mut h = harness(DeliveryMode::ExactlyOnce, 1);
    h.producer().fail_next_error(
        "commit_transaction",
        KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut),
    );
    h.process(0, 0);
    h.producer().acknowledge_all();
    h.service();
    assert!(h.engine.take_fatal().is_none());
    assert_eq!(
        h.producer().calls(),
        ["begin", "send_offsets core.events 0:1", "commit", "commit"]
    );
    assert!(h.seeks().is_empty(), "nothing is read again");
    assert_eq!(h.counter(&h.metrics().transactions, "committed"), 1);
}

#[test]
fn a_fenced_producer_is_fatal_and_not_replaced() {
    let mut h = harness(DeliveryMode::ExactlyOnce, 1);
    h.producer()
        .fail_next("commit_transaction", TransactionAction::Stop);
    h.process(0, 0);
    h.producer().acknowledge_all();
    h.service();
    assert!(matches!(
        h.engine.take_fatal(),
        Some(RouterError::Transaction {
            call: "commit_transaction",
            ..
        })
    ));
    assert_eq!(h.producer().replacements.get(), 0);
}

#[test]
fn a_fence_of_a_transaction_older_than_its_timeout_replaces_the_producer() {
    // The coordinator of a transaction failed over for longer than the transaction timeout and aborted
    // it: librdkafka says "fenced", fatal, and another producer with the same id carries on.
    let mut h = harness(DeliveryMode::ExactlyOnce, 1);
    h.engine.core.settings.transaction_timeout = Duration::ZERO;
    h.producer().fail_next_with(
        "commit_transaction",
        TransactionAction::Stop,
        RDKafkaErrorCode::Fenced,
    );
    h.process(0, 0);
    h.producer().acknowledge_all();
    h.service();
    assert!(h.engine.take_fatal().is_none());
    assert_eq!(h.producer().replacements.get(), 1);
    assert_eq!(
        h.seeks(),
        [(0, 0)],
        "the aborted transaction's input is read again"
    );
    // A fence of a transaction younger than the timeout is another producer's: stop.
    h.engine.core.settings.transaction_timeout = Duration::from_secs(3600);
    h.producer().fail_next_with(
        "commit_transaction",
        TransactionAction::Stop,
        RDKafkaErrorCode::Fenced,
    );
    h.process(0, 0);
    h.producer().acknowledge_all();
    h.service();
    assert!(matches!(
        h.engine.take_fatal(),
        Some(RouterError::Transaction { .. })
    ));
    assert_eq!(h.producer().replacements.get(), 1);
}

#[test]
fn a_revocation_commits_first_and_a_lost_assignment_rewinds_only_what_stays() {
    let mut h = harness(DeliveryMode::ExactlyOnce, 100);
    h.process(0, 0);
    h.process(1, 0);
    h.producer().acknowledge_all();
    h.engine.on_revoke(&h.consumer, &[1], false);
    assert_eq!(
        h.producer().calls(),
        ["begin", "send_offsets core.events 0:1,1:1", "commit"]
    );

    h.process(0, 1);
    h.process(1, 1);
    h.engine.on_revoke(&h.consumer, &[1], true);
    assert_eq!(h.producer().calls()[3..], ["begin", "abort"]);
    assert_eq!(h.seeks(), [(0, 1)], "the revoked partition's next owner reads it");
    assert_eq!(h.engine.position(1).transaction_committed, None, "forgotten");
}

thread_local! {
    static PAUSES: std::cell::RefCell<Vec<Duration>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[test]
fn the_transient_backoff_starts_again_once_something_became_durable() {
    let mut h = harness(DeliveryMode::AtLeastOnce, 1);
    h.engine.core.pause = |pause| PAUSES.with(|pauses| pauses.borrow_mut().push(pause));
    let fail_once = |h: &mut Harness, offset: i64| {
        h.process(0, offset);
        h.producer().deliver(|_| true, timed_out());
        h.service();
    };
    fail_once(&mut h, 0);
    fail_once(&mut h, 0);
    // The replay goes through and is stored: a later failure is a new episode.
    h.process(0, 0);
    h.producer().acknowledge_all();
    h.service();
    assert_eq!(h.stored(), [(0, 1)]);
    fail_once(&mut h, 1);
    let pauses = PAUSES.with(|pauses| pauses.borrow().clone());
    assert_eq!(
        pauses,
        [200, 400, 200].map(Duration::from_millis),
        "100 ms doubling, from the start after progress"
    );
}
