//! The poison corpus: 10,000 malformed core events of every kind among valid traffic. Every one lands in the
//! dead-letter topic once with the right reason code, every valid event is routed, and the router stays up.

use std::collections::HashMap;

use switchyard_schemas::ContentType;
use switchyard_tests::broker::{TestProducer, read_to_end};
use switchyard_tests::poison::{POISON_ID, corpus, kinds};
use switchyard_tests::records::{core_event, enablement, manifest};
use switchyard_tests::routers::{InProcessRouter, Topics};

const POISON: usize = 10_000;
const VALID: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_malformed_events_are_dead_lettered_with_their_reasons() {
    let topics = Topics::unique();
    topics.create(3, &["sheets"]).await;
    let producer = TestProducer::new();
    producer.send(&topics.plugins, &manifest("sheets", &["response.submitted"]));
    producer.send(&topics.enablements, &enablement("acme", "sheets", true, None));
    producer.flush();
    let router = InProcessRouter::start(&topics, &[]);
    router.admin.wait_ready().await;

    let poison = corpus(POISON, "acme");
    assert!(kinds() >= 20);
    for (n, bad) in poison.iter().enumerate() {
        producer.send(&topics.core, &bad.record);
        if n % 5 == 0 {
            let content_type = if n % 2 == 0 {
                ContentType::Avro
            } else {
                ContentType::Json
            };
            producer.send(
                &topics.core,
                &core_event(
                    "acme",
                    "response.submitted",
                    &format!("valid-{}", n / 5),
                    content_type,
                ),
            );
        }
    }
    producer.flush();
    let (routed, unrouted, dead) = router.admin.wait_outcomes((POISON + VALID) as u64).await;
    assert_eq!((routed, unrouted, dead), (VALID as u64, 0, POISON as u64));
    assert!(router.admin.ready().await, "the router is still up and ready");

    let letters = read_to_end(&topics.dead_letter);
    assert_eq!(letters.len(), POISON, "one dead letter per malformed event");
    let mut seen: HashMap<usize, String> = HashMap::new();
    for letter in &letters {
        let index: usize = letter
            .header(POISON_ID)
            .and_then(|v| v.parse().ok())
            .expect("every dead letter is one of the corpus");
        let reason = letter.header("switchyard_error").unwrap_or_default();
        assert!(
            seen.insert(index, reason).is_none(),
            "poison {index} dead-lettered twice"
        );
    }
    let wrong: Vec<String> = poison
        .iter()
        .filter(|p| seen.get(&p.index).map(String::as_str) != Some(p.reason))
        .take(5)
        .map(|p| {
            format!(
                "{} ({}): expected {}, got {:?}",
                p.index,
                p.case,
                p.reason,
                seen.get(&p.index)
            )
        })
        .collect();
    assert!(wrong.is_empty(), "wrong reasons: {wrong:?}");
    let plugin = read_to_end(&topics.plugin("sheets"));
    assert_eq!(plugin.len(), VALID, "every valid event routed");
    assert!(plugin.iter().all(|r| r.header(POISON_ID).is_none()));
    router.stop().await.expect("the router stops cleanly");
}
