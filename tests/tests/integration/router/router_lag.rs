//! `switchyard_router_consumer_lag_records` against a real broker: it follows the offsets the router made
//! durable, so an idle router that has committed everything shows 0 on every partition, in both modes, also
//! when the input was written in transactions (whose commit markers leave the end one past the last record).

use std::time::Duration;

use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use switchyard_fixtures::metrics::Metrics;
use switchyard_schemas::ContentType;
use switchyard_service::kafka::KafkaContext;
use switchyard_tests::broker::{TestProducer, clients, unique};
use switchyard_tests::records::{core_event, enablement, manifest};
use switchyard_tests::routers::{Admin, InProcessRouter, Topics};
use switchyard_tests::wait::wait_for;

const PARTITIONS: i32 = 3;

/// The lag series of every input partition, once all of them are exported.
async fn lags(admin: &Admin) -> Option<Vec<f64>> {
    let (_, text) = admin.get("/metrics").await?;
    let lags = Metrics::parse(&text).by_label("switchyard_router_consumer_lag_records", "partition");
    (lags.len() == PARTITIONS as usize).then(|| lags.into_values().collect())
}

/// Sends `events` core events in one transaction, so that each partition ends in a commit marker.
fn send_in_a_transaction(topic: &str, events: &[switchyard_tests::broker::Outgoing]) {
    let producer: ThreadedProducer<KafkaContext> = clients()
        .producer("lag-input")
        .managed("transactional.id", unique("lag-input"))
        .tunable("partitioner", "murmur2_random")
        .create()
        .expect("transactional producer");
    let timeout = Duration::from_secs(30);
    producer.init_transactions(timeout).expect("init_transactions");
    producer.begin_transaction().expect("begin_transaction");
    for event in events {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(key) = &event.key {
            record = record.key(key.as_slice());
        }
        if let Some(value) = &event.value {
            record = record.payload(value.as_slice());
        }
        let mut headers = rdkafka::message::OwnedHeaders::new();
        for (name, value) in &event.headers {
            headers = headers.insert(rdkafka::message::Header {
                key: name,
                value: value.as_deref(),
            });
        }
        producer
            .send(record.headers(headers))
            .map_err(|(error, _)| error)
            .expect("send");
    }
    producer.commit_transaction(timeout).expect("commit_transaction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_lag_falls_to_zero_once_everything_is_durable() {
    for mode in ["exactly_once", "at_least_once"] {
        let topics = Topics::unique();
        topics.create(PARTITIONS, &["sheets"]).await;
        let producer = TestProducer::new();
        producer.send(&topics.plugins, &manifest("sheets", &["response.submitted"]));
        for team in 0..6 {
            producer.send(
                &topics.enablements,
                &enablement(&format!("team-{team}"), "sheets", true, None),
            );
        }
        producer.flush();
        let router = InProcessRouter::start(
            &topics,
            &[
                ("DELIVERY__MODE", mode),
                ("DELIVERY__STATISTICS_INTERVAL_MS", "200"),
            ],
        );
        router.admin.wait_ready().await;

        let event = |i: usize| {
            core_event(
                &format!("team-{}", i % 6),
                "response.submitted",
                &format!("evt-{i}"),
                ContentType::Avro,
            )
        };
        for i in 0..300 {
            producer.send(&topics.core, &event(i));
        }
        producer.flush();
        let transactional: Vec<_> = (300..400).map(event).collect();
        send_in_a_transaction(&topics.core, &transactional);
        assert_eq!(router.admin.wait_outcomes(400).await, (400, 0, 0), "{mode}");

        // Before the fix, exactly-once lag stayed at the number of records read since the assignment.
        let settled = wait_for(
            &format!("{mode}: consumer lag 0 on every partition"),
            Duration::from_secs(30),
            || async {
                lags(&router.admin)
                    .await
                    .filter(|lags| lags.iter().all(|&lag| lag == 0.0))
            },
        )
        .await;
        assert_eq!(settled, vec![0.0; PARTITIONS as usize], "{mode}");
        router.stop().await.expect("clean stop");
    }
}
