//! A secured Kafka: the registry and router binaries and a plugin worker connect over SASL_SSL with
//! SCRAM-SHA-512, configured only through their settings, and route an event end to end; with a wrong
//! password each binary exits non-zero at once, naming the authentication failure.
//!
//! The broker is the second one `scripts/test` starts (`KAFKA_SECURITY=sasl_ssl scripts/kafka start`,
//! a CA and certificate of its own, SCRAM users made at format time); it exports where it is:
//! `SWITCHYARD_TEST_SECURE_BOOTSTRAP`, `..._CA`, `..._USERNAME`, `..._PASSWORD`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchyard_service::config::Layered as _;

use serde_json::json;
use switchyard_fixtures::kafka::{self, TopicSpec};
use switchyard_plugin_runtime::plugin::Outcome;
use switchyard_plugin_runtime::settings::Settings;
use switchyard_schemas::envelope::ContentType;
use switchyard_service::kafka::{ClientStats, Clients, KafkaSettings};
use switchyard_tests::binaries::{free_address, workspace_binary};
use switchyard_tests::broker::{Outgoing, TestProducer, unique};
use switchyard_tests::records::{core_event, header};
use switchyard_tests::registries::{RegistryProcess, RegistryTopics, admin, http, registry_binary, team};
use switchyard_tests::routers::{RouterProcess, Topics, router_binary};
use switchyard_tests::wait::wait_for;
use switchyard_tests::workers::{InProcessWorker, ScriptedPlugin};

const PLUGIN: &str = "secure-echo";
const WRONG_PASSWORD: &str = "not-the-password";

/// Where the secured broker is and who may use it.
#[derive(Clone)]
struct SecureBroker {
    bootstrap: String,
    ca: String,
    username: String,
    password: String,
}

impl SecureBroker {
    fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: this test needs the SASL_SSL broker that scripts/test starts \
                     (KAFKA_SECURITY=sasl_ssl scripts/kafka start); run it through scripts/test"
                )
            })
        };
        Self {
            bootstrap: var("SWITCHYARD_TEST_SECURE_BOOTSTRAP"),
            ca: var("SWITCHYARD_TEST_SECURE_CA"),
            username: var("SWITCHYARD_TEST_SECURE_USERNAME"),
            password: var("SWITCHYARD_TEST_SECURE_PASSWORD"),
        }
    }

    /// The connection settings as `<PREFIX>__KAFKA__...` variables, the way the Helm chart passes them.
    fn env(&self, prefix: &str, password: &str) -> BTreeMap<String, String> {
        [
            ("BOOTSTRAP_SERVERS", self.bootstrap.as_str()),
            ("OPTIONS__SECURITY_PROTOCOL", "SASL_SSL"),
            ("OPTIONS__SASL_MECHANISMS", "SCRAM-SHA-512"),
            ("OPTIONS__SASL_USERNAME", self.username.as_str()),
            ("OPTIONS__SASL_PASSWORD", password),
            ("OPTIONS__SSL_CA_LOCATION", self.ca.as_str()),
        ]
        .into_iter()
        .map(|(key, value)| (format!("{prefix}__KAFKA__{key}"), value.to_owned()))
        .collect()
    }

    /// The test's own clients, with the right password: the settings the services get, through the same
    /// builder.
    fn clients(&self) -> Clients {
        let options = [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", self.username.as_str()),
            ("sasl.password", self.password.as_str()),
            ("ssl.ca.location", self.ca.as_str()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        let settings = KafkaSettings {
            options,
            ..KafkaSettings::bootstrap(&self.bootstrap)
        };
        Clients::new(settings, ClientStats::unregistered()).with_statistics_interval(Duration::ZERO)
    }

    /// Creates topics over SASL_SSL, failing the test if any fails or exists already.
    async fn create_topics(&self, topics: &[(&str, i32)]) {
        let specs: Vec<TopicSpec> = topics
            .iter()
            .map(|&(name, partitions)| TopicSpec::new(name, partitions))
            .collect();
        let clients = self.clients();
        let created = tokio::task::spawn_blocking(move || kafka::create_topics(&clients, &specs))
            .await
            .expect("admin thread")
            .unwrap_or_else(|error| panic!("over SASL_SSL: {error}"));
        for topic in created {
            assert!(
                matches!(topic, kafka::Created::Created(_)),
                "{topic}: a fresh topic"
            );
        }
    }

    /// The `ce_id` headers of every committed record of `topic`, read to its end over SASL_SSL.
    fn read_ids(&self, topic: &str) -> Vec<String> {
        kafka::read_to_end(&self.clients(), topic, Duration::from_secs(30), |_| true)
            .unwrap_or_else(|error| panic!("reading {topic} over SASL_SSL: {error}"))
            .kept
            .iter()
            .map(|record| record.header("ce_id").unwrap_or_default())
            .collect()
    }
}

/// Runs a binary that must fail: it exits within `deadline` (or is killed and the test fails); returns
/// its exit code and everything it wrote to stderr.
fn run_to_exit(mut command: Command, name: &str, deadline: Duration) -> (Option<i32>, String) {
    let stderr_path = std::env::temp_dir()
        .join(unique(&format!("{name}-stderr")))
        .with_extension("log");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut child: Child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|error| panic!("start {name}: {error}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name} with a wrong password still ran after {deadline:?}: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.code(),
        std::fs::read_to_string(&stderr_path).expect("stderr"),
    )
}

fn assert_refused(name: &str, (code, stderr): (Option<i32>, String)) {
    assert!(
        code.is_some_and(|c| c != 0),
        "{name} exits non-zero, got {code:?}: {stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("{name}: Kafka authentication failed"))
            && last.contains("invalid credentials with SASL mechanism SCRAM-SHA-512"),
        "{name} names the authentication failure as its last word: {stderr}"
    );
    assert!(
        !stderr.contains(WRONG_PASSWORD),
        "{name} does not print the password: {stderr}"
    );
}

/// The router's file: the non-secret connection settings, as the Helm chart renders them. The password
/// comes from the environment.
fn router_toml(broker: &SecureBroker) -> String {
    format!(
        "[kafka]\nbootstrap_servers = \"{}\"\n\n[kafka.options]\nsecurity_protocol = \"SASL_SSL\"\n\
         sasl_mechanisms = \"SCRAM-SHA-512\"\nsasl_username = \"{}\"\nssl_ca_location = \"{}\"\n",
        broker.bootstrap, broker.username, broker.ca
    )
}

fn router_env(topics: &Topics, admin: SocketAddr, password: &str) -> BTreeMap<String, String> {
    let mut env = topics.env(&unique("router"), &unique("txn"), admin);
    // The file says where the broker is.
    env.remove("SWITCHYARD_ROUTER__KAFKA__BOOTSTRAP_SERVERS");
    env.insert(
        "SWITCHYARD_ROUTER__KAFKA__OPTIONS__SASL_PASSWORD".to_owned(),
        password.to_owned(),
    );
    env
}

fn worker_env(
    broker: &SecureBroker,
    registry: &RegistryTopics,
    results: &str,
    password: &str,
) -> BTreeMap<String, String> {
    let mut env = broker.env("SWITCHYARD_PLUGIN", password);
    for (key, value) in [
        ("TOPICS__EVENTS_TEMPLATE", registry.events_template.as_str()),
        (
            "TOPICS__DEAD_LETTER_TEMPLATE",
            registry.dead_letter_template.as_str(),
        ),
        ("TOPICS__CONFIGS", registry.configs.as_str()),
        ("TOPICS__RESULTS", results),
        ("DELIVERY__GROUP_ID", &unique("worker")),
        ("DELIVERY__COMMIT_INTERVAL_MS", "200"),
        ("ADMIN__LISTEN", &free_address().to_string()),
    ] {
        env.insert(format!("SWITCHYARD_PLUGIN__{key}"), value.to_owned());
    }
    env
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binaries_route_over_sasl_ssl_and_a_wrong_password_stops_each_with_a_clear_message() {
    let broker = SecureBroker::from_env();
    let dir = std::env::temp_dir().join(unique("switchyard-kafka-security"));
    std::fs::create_dir_all(&dir).expect("temp dir");

    // The registry binary, configured through its environment: it creates its topics over SASL_SSL.
    let registry_topics = RegistryTopics::unique();
    let registry_address = free_address();
    let secure_registry = |password: &str| {
        let mut env = registry_topics.env(registry_address, &[]);
        env.extend(broker.env("SWITCHYARD_REGISTRY", password));
        env
    };
    let registry = RegistryProcess::start(
        &secure_registry(&broker.password),
        registry_address,
        &dir.join("registry.log"),
    );
    registry.wait_ready().await;

    // Register the plugin (its topics are provisioned over SASL_SSL) and enable it for acme.
    let (status, body) = http(
        "POST",
        &format!("{}/v1/plugins", registry.url),
        Some(&admin()),
        Some(
            &json!({"id": PLUGIN, "name": "Secure echo", "version": "1.0.0", "url": "http://127.0.0.1:9",
                     "events": ["response.submitted"], "actions": []}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(
        "PUT",
        &format!("{}/v1/teams/acme/plugins/{PLUGIN}", registry.url),
        Some(&team("acme")),
        Some(&json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The router binary on the registry's control topics, with its settings in a file and the password
    // in the environment.
    let topics = Topics::of_registry(&registry_topics);
    let results = format!("{}.core.plugin-results", registry_topics.plugins);
    broker
        .create_topics(&[(&topics.core, 2), (&topics.dead_letter, 1), (&results, 1)])
        .await;
    let router_admin = free_address();
    let router = RouterProcess::start(
        &router_toml(&broker),
        &router_env(&topics, router_admin, &broker.password),
        router_admin,
        &dir.join("router.log"),
    );
    router.admin.wait_ready().await;
    wait_for(
        "the router to apply the enablement",
        Duration::from_secs(30),
        || async { (router.admin.metric("switchyard_router_enablements").await == 1.0).then_some(()) },
    )
    .await;

    // A worker of the plugin, in process, configured through its settings only.
    let plugin = ScriptedPlugin::new(PLUGIN, |_| (Duration::ZERO, Outcome::done()));
    let settings = Settings::load_from(
        None,
        Some(worker_env(&broker, &registry_topics, &results, &broker.password)),
    )
    .expect("worker settings");
    let worker = InProcessWorker::start(plugin.clone(), settings);

    // One event over SASL_SSL: routed to the plugin's topic, then executed by the worker.
    let producer = TestProducer::on(&broker.clients());
    producer.send(
        &topics.core,
        &core_event("acme", "response.submitted", "secure-1", ContentType::Json),
    );
    producer.flush();

    let plugin_topic = registry_topics.events(PLUGIN);
    let routed = wait_for("the event on the plugin's topic", Duration::from_secs(30), || {
        let (broker, topic) = (broker.clone(), plugin_topic.clone());
        async move {
            let ids = tokio::task::spawn_blocking(move || broker.read_ids(&topic))
                .await
                .expect("reader");
            (!ids.is_empty()).then_some(ids)
        }
    })
    .await;
    assert_eq!(routed, ["secure-1"], "the event on the plugin's topic");
    let executed = wait_for(
        "the worker to execute the event",
        Duration::from_secs(30),
        || async {
            let ids = plugin.ids_of("acme");
            (!ids.is_empty()).then_some(ids)
        },
    )
    .await;
    assert_eq!(executed, ["secure-1"]);

    worker.stop().await.expect("the worker stops cleanly");
    assert!(router.terminate().success(), "the router exits 0 on SIGTERM");
    assert!(registry.terminate().success(), "the registry exits 0 on SIGTERM");

    // A wrong password: each binary stops at once with the reason, all three at the same time.
    let deadline = Duration::from_secs(30);
    let mut router_command = Command::new(router_binary());
    router_command
        .arg("--config")
        .arg(write_file(&dir, "router.toml", &router_toml(&broker)))
        .envs(router_env(&topics, free_address(), WRONG_PASSWORD));
    let mut registry_command = Command::new(registry_binary());
    registry_command.envs(secure_registry(WRONG_PASSWORD));
    let mut worker_command = Command::new(workspace_binary(
        "switchyard-seed-plugin",
        "SWITCHYARD_SEED_PLUGIN_BIN",
    ));
    worker_command
        .arg("slang-search")
        .envs(worker_env(&broker, &registry_topics, &results, WRONG_PASSWORD));
    let runs = [
        ("switchyard-router", router_command),
        ("switchyard-registry", registry_command),
        ("switchyard-seed-plugin", worker_command),
    ]
    .map(|(name, command)| {
        (
            name,
            std::thread::spawn(move || run_to_exit(command, name, deadline)),
        )
    });
    for (name, run) in runs {
        assert_refused(name, run.join().expect("runner thread"));
    }
}

/// `switchyardctl dlq` reads a plugin's dead letters from the SASL_SSL cluster with the same `[kafka]`
/// settings as the services (here the router's file, the password from the environment), and a wrong
/// password ends it non-zero with nothing listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchyardctl_dlq_lists_dead_letters_of_a_sasl_ssl_cluster_with_the_services_settings() {
    let broker = SecureBroker::from_env();
    let dir = std::env::temp_dir().join(unique("switchyard-secure-dlq"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let plugin = unique("secure-dlq");
    let dead_letter_topic = format!("plugin.{plugin}.dlq");
    broker.create_topics(&[(&dead_letter_topic, 2)]).await;
    let producer = TestProducer::on(&broker.clients());
    producer.send(
        &dead_letter_topic,
        &Outgoing {
            key: Some(b"acme".to_vec()),
            value: Some(b"{}".to_vec()),
            headers: vec![
                header("ce_id", "lost-1"),
                header("switchyard_error", "retries_exhausted"),
            ],
        },
    );
    producer.flush();
    let settings = write_file(&dir, "kafka.toml", &router_toml(&broker));
    let ctl = |password: &str, timeout: &str| {
        let mut command = Command::new(switchyard_tests::registries::ctl_binary());
        command
            .args(["--json", "dlq", "list", "--plugin", &plugin, "--timeout", timeout])
            .arg("--kafka-config")
            .arg(&settings)
            .env("SWITCHYARDCTL__KAFKA__OPTIONS__SASL_PASSWORD", password)
            .env_remove("SWITCHYARD_KAFKA_BOOTSTRAP");
        command
    };
    let output = ctl(&broker.password, "20s").output().expect("switchyardctl");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dlq list over SASL_SSL: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: serde_json::Value = serde_json::from_str(&stdout).expect("JSON list");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["event_id"], "lost-1");
    assert_eq!(listed[0]["reason"], "retries_exhausted");

    // As the services do, the command checks the credentials first and names a refusal.
    let (code, stderr) = run_to_exit(
        ctl(WRONG_PASSWORD, "20s"),
        "switchyardctl",
        Duration::from_secs(60),
    );
    assert!(code.is_some_and(|c| c != 0), "a wrong password fails: {stderr}");
    assert!(
        stderr.contains("Kafka authentication failed") && !stderr.contains(WRONG_PASSWORD),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
