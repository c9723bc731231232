//! The registry's store: compacted topics as its only state, read-your-writes, replicas converging.

use std::time::Duration;

use switchyard_registry::store::{Store, StoreConfig, StoreError};
use switchyard_tests::broker::{clients, create_topics, unique};
use switchyard_tests::wait::wait_for;

fn config(topics: &[&str]) -> StoreConfig {
    StoreConfig {
        clients: clients(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        partitions: 3,
        replication_factor: 1,
        timeout: Duration::from_secs(15),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_read_back_at_once_and_replicas_converge_and_rebuild() {
    let (plugins, enablements) = (unique("store.plugins"), unique("store.enablements"));
    let a = Store::open(config(&[&plugins, &enablements]))
        .await
        .expect("store a");
    let b = Store::open(config(&[&plugins, &enablements]))
        .await
        .expect("store b");
    a.wait_caught_up().await;
    b.wait_caught_up().await;

    // Read-your-writes: the writer sees its own write as soon as put returns.
    for n in 0..20 {
        let key = format!("plugin-{n:02}");
        a.put(&plugins, &key, Some(format!("v{n}").as_bytes()))
            .await
            .expect("put");
        assert_eq!(a.get(&plugins, &key).as_deref(), Some(format!("v{n}").as_bytes()));
    }
    a.put(&enablements, "acme/plugin-01", Some(b"on"))
        .await
        .expect("put");
    a.put(&plugins, "plugin-03", None).await.expect("tombstone");
    assert_eq!(a.get(&plugins, "plugin-03"), None);

    // The other replica sees the same state.
    wait_for("replica b to see a's writes", Duration::from_secs(30), || async {
        (b.entries(&plugins) == a.entries(&plugins) && b.get(&enablements, "acme/plugin-01").is_some())
            .then_some(())
    })
    .await;
    assert_eq!(b.entries(&plugins).len(), 19);

    // Both replicas write the same key: they converge on the value the log ordered last.
    let (first, second) = tokio::join!(
        a.put(&plugins, "contested", Some(b"from-a")),
        b.put(&plugins, "contested", Some(b"from-b"))
    );
    first.expect("a's write");
    second.expect("b's write");
    let settled = wait_for("both replicas to agree", Duration::from_secs(30), || async {
        let (x, y) = (a.get(&plugins, "contested"), b.get(&plugins, "contested"));
        (x.is_some() && x == y).then_some(x)
    })
    .await;
    assert!(settled == Some(b"from-a".to_vec()) || settled == Some(b"from-b".to_vec()));

    // A replica started later rebuilds the whole state from the topics.
    let expected = a.entries(&plugins);
    drop(a);
    let c = Store::open(config(&[&plugins, &enablements]))
        .await
        .expect("store c");
    c.wait_caught_up().await;
    assert_eq!(c.entries(&plugins), expected);
    assert_eq!(c.get(&enablements, "acme/plugin-01").as_deref(), Some(&b"on"[..]));
    assert!(matches!(
        c.put("not-followed", "k", None).await,
        Err(StoreError::UnknownTopic(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_topic_that_is_not_compacted_is_refused() {
    let topic = unique("store.deleting");
    create_topics(&[(&topic, 1, false)]).await;
    let error = Store::open(config(&[&topic])).await.err().expect("refused");
    assert!(
        matches!(&error, StoreError::NotCompacted { policy, .. } if policy == "delete"),
        "{error}"
    );
    assert!(
        error.to_string().contains(&topic) && error.to_string().contains("cleanup.policy=compact"),
        "{error}"
    );
}
