//! How soon a SIGKILLed router's partitions flow again when it restarts at once (finding 5 of the
//! adversarial review: 83 s). With dynamic membership the restarted process is a new member, and the group
//! waits for the dead one's session to expire (`session.timeout.ms`, 45 s by default) before it rebalances.
//! With static membership (`delivery.group_instance_id`) the restart is the same member: the coordinator
//! hands its partitions straight back, and `init_transactions` with the same transactional id aborts what the
//! dead process left open. `make takeover` measures both (`docs/reliability.md`).

use std::time::{Duration, Instant};

use switchyard_schemas::ContentType;
use switchyard_tests::binaries::{free_address, log_path};
use switchyard_tests::broker::{TestProducer, group_caught_up, read_to_end, unique};
use switchyard_tests::records::{core_event, enablement, manifest};
use switchyard_tests::routers::{RouterProcess, Topics};
use switchyard_tests::wait::wait_for;

/// Default session timeout of the router's consumer (librdkafka's default, which the router keeps).
const SESSION_TIMEOUT: Duration = Duration::from_secs(45);

/// Kills a router mid-stream, restarts it at once with the same settings, and returns the time from the
/// kill until every event sent was routed, after checking that each was routed exactly once.
async fn takeover_after_sigkill(static_membership: bool) -> Duration {
    let topics = Topics::unique();
    topics.create(4, &["sheets"]).await;
    let producer = TestProducer::new();
    producer.send(&topics.plugins, &manifest("sheets", &["response.submitted"]));
    for team in 0..8 {
        producer.send(
            &topics.enablements,
            &enablement(&format!("team-{team}"), "sheets", true, None),
        );
    }
    producer.flush();
    let group = unique("router");
    let admin = free_address();
    let mut env = topics.env(&group, &unique("txn"), admin);
    if static_membership {
        env.insert(
            "SWITCHYARD_ROUTER__DELIVERY__GROUP_INSTANCE_ID".into(),
            unique("router-0"),
        );
    }
    let log = log_path(&format!("{group}-takeover"));
    let send = |from: usize, to: usize| {
        for n in from..to {
            producer.send(
                &topics.core,
                &core_event(
                    &format!("team-{}", n % 8),
                    "response.submitted",
                    &format!("{n:05}"),
                    ContentType::Avro,
                ),
            );
        }
        producer.flush();
    };

    let router = RouterProcess::start("", &env, admin, &log);
    router.admin.wait_ready().await;
    send(0, 500);
    router.admin.wait_outcomes(500).await;
    // A transaction is open when the kill lands: events keep arriving.
    send(500, 600);
    let killed = Instant::now();
    router.kill();
    let restarted = RouterProcess::start("", &env, admin, &log);
    send(600, 800);
    wait_for(
        "the restarted router to route everything",
        SESSION_TIMEOUT * 3,
        || {
            let (group, topic) = (group.clone(), topics.core.clone());
            async move { group_caught_up(&group, &topic).then_some(()) }
        },
    )
    .await;
    let takeover = killed.elapsed();
    let mut ids: Vec<String> = read_to_end(&topics.plugin("sheets"))
        .iter()
        .map(|r| r.header("ce_id").expect("ce_id"))
        .collect();
    ids.sort();
    let expected: Vec<String> = (0..800).map(|n| format!("{n:05}")).collect();
    assert_eq!(
        ids, expected,
        "every event exactly once (static membership: {static_membership})"
    );
    assert!(restarted.terminate().success(), "log: {}", log.display());
    takeover
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarted_after_sigkill_takes_its_partitions_back_without_waiting_for_its_session() {
    let takeover = takeover_after_sigkill(true).await;
    eprintln!("static membership: partitions flowing again {takeover:?} after the SIGKILL");
    // Not a speed target: a dynamic member cannot be back before its old session expired (45 s).
    assert!(takeover < SESSION_TIMEOUT, "{takeover:?}");
}

/// `make takeover`: both kinds of membership side by side, for docs/reliability.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "over a minute: run with make takeover"]
async fn takeover_times_with_dynamic_and_static_membership() {
    let dynamic = takeover_after_sigkill(false).await;
    let fixed = takeover_after_sigkill(true).await;
    println!(
        "takeover after SIGKILL and immediate restart: dynamic membership {dynamic:?}, static membership {fixed:?}"
    );
}
