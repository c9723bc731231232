//! The topics a Switchyard deployment needs, the settings recommended for each, and the plan that brings a
//! cluster to them. Pure: no Kafka here; `switchyardctl topics` describes the cluster and carries the plan
//! out, the load test's demo takes its topic set from [`recommended`].
//!
//! ```text
//!   PlanInput (names, partition counts, replication, plugins) ──► recommended() ──► [TopicSpec]
//!                                                                                      │
//!   the cluster, described: name ─► ExistingTopic (partitions, replicas, configs) ──► plan() ──► [Step]
//!                                                   create | in place | differs (each Difference, its Fix)
//! ```
//!
//! A setting is compared by its [`Rule`]: a retention or a replication factor above the recommendation is
//! the operator's choice and no difference, a `cleanup.policy` must be exactly right. Only topic configs
//! can be changed in place ([`Fix::AlterConfig`]); partitions and replicas are left to the operator
//! ([`Fix::ByHand`]), because adding partitions moves teams to other partitions and replicas move by a
//! reassignment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use thiserror::Error;

/// librdkafka's default `message.max.bytes`, which every Switchyard producer keeps unless
/// `kafka.producer_options` sets it.
pub const LIBRDKAFKA_MESSAGE_MAX_BYTES: i64 = 1_000_000;
/// What a topic's `max.message.bytes` (a record batch, after compression, with its framing) allows above
/// the producers' `message.max.bytes`: Kafka's default 1,048,588 less librdkafka's default 1,000,000.
pub const BATCH_MARGIN_BYTES: i64 = 48_588;
/// Room left in an event of `core.events` for the headers the router adds to its copies
/// (`switchyard_source`, `switchyard_installation`, `switchyard_backfill`) and to its dead letters
/// (`switchyard_reason`, `switchyard_detail`, ...), so that an event the topic accepted can be copied.
pub const ROUTER_HEADER_ROOM_BYTES: i64 = 16_384;
/// One day, in milliseconds.
const DAY_MS: i64 = 86_400_000;
/// Default retention of `core.events`: how far back a backfill reaches (docs/operations.md).
pub const CORE_EVENTS_RETENTION_MS: i64 = 30 * DAY_MS;
/// Retention of the plugin topics: longer than a large backfill takes to drain and a long weekend.
pub const PLUGIN_EVENTS_RETENTION_MS: i64 = 7 * DAY_MS;
/// Retention of the dead-letter topics: time to look at them and replay after a fix.
pub const DEAD_LETTER_RETENTION_MS: i64 = 30 * DAY_MS;
/// Retention of `core.plugin-results`.
pub const RESULTS_RETENTION_MS: i64 = 7 * DAY_MS;
/// Partitions of `core.events.dlq`: the router's dead letters are few.
pub const DEAD_LETTER_PARTITIONS: i32 = 3;
/// Partitions of `core.plugin-results`.
pub const RESULTS_PARTITIONS: i32 = 6;
/// Longest legal Kafka topic name.
const MAX_TOPIC_NAME: usize = 249;

/// What a deployment's topics are called and how large they are; [`recommended`] turns it into specs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInput {
    /// The router's input (`core.events`).
    pub core_events: String,
    /// Partitions of `core.events`: the most router replicas that get work.
    pub core_events_partitions: i32,
    /// Retention of `core.events` in milliseconds, -1 for unlimited: how far back backfills reach.
    pub core_events_retention_ms: i64,
    /// The router's dead letters (`core.events.dlq`).
    pub dead_letters: String,
    /// Partitions of the router's dead-letter topic.
    pub dead_letter_partitions: i32,
    /// Plugin results (`core.plugin-results`).
    pub results: String,
    /// Partitions of the results topic.
    pub results_partitions: i32,
    /// The compacted control topics (the registry's store topics, which include the router's backfill
    /// progress), in the registry's order.
    pub control_topics: Vec<String>,
    /// Partitions of each control topic (the registry's `store.partitions`).
    pub control_partitions: i32,
    /// A plugin's events topic; `{plugin}` becomes the id.
    pub plugin_events_template: String,
    /// A plugin's dead-letter topic; `{plugin}` becomes the id.
    pub plugin_dead_letter_template: String,
    /// The plugins whose two topics to include.
    pub plugins: Vec<String>,
    /// Partitions of each plugin topic (the registry's `provisioning.partitions`).
    pub plugin_partitions: i32,
    /// Replication factor of every topic.
    pub replication_factor: i32,
    /// `min.insync.replicas` of every topic; `None`: [`default_min_insync_replicas`].
    pub min_insync_replicas: Option<i32>,
    /// The producers' `message.max.bytes` (the router's, the registry's, the workers'; and what the core
    /// platform's producers keep an event's size under).
    pub producer_message_max_bytes: i64,
}

/// `min.insync.replicas` for a replication factor: one less than the replicas, at least 1 and at most 2.
/// With 3 replicas, an acknowledged write is on 2 brokers and writes go on while one broker is down.
pub fn default_min_insync_replicas(replication_factor: i32) -> i32 {
    (replication_factor - 1).clamp(1, 2)
}

/// What a topic is for; it decides the recommended settings and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicKind {
    /// `core.events`.
    CoreEvents,
    /// `core.events.dlq`.
    RouterDeadLetters,
    /// `core.plugin-results`.
    Results,
    /// A compacted control topic.
    Control,
    /// `plugin.<id>.events`.
    PluginEvents,
    /// `plugin.<id>.dlq`.
    PluginDeadLetters,
}

impl TopicKind {
    /// Every kind, in the order of the settings table.
    pub const ALL: [TopicKind; 6] = [
        TopicKind::CoreEvents,
        TopicKind::RouterDeadLetters,
        TopicKind::Results,
        TopicKind::Control,
        TopicKind::PluginEvents,
        TopicKind::PluginDeadLetters,
    ];

    /// Who writes and reads it, in a few words.
    pub fn purpose(self) -> &'static str {
        match self {
            TopicKind::CoreEvents => {
                "the core platform's events; the router reads them, backfills re-read them"
            }
            TopicKind::RouterDeadLetters => "what the router could not accept or deliver",
            TopicKind::Results => "results the plugin workers publish",
            TopicKind::Control => {
                "the registry's state and the router's backfill progress; compacted, read from the start"
            }
            TopicKind::PluginEvents => "the router's copies for one plugin; its workers read them",
            TopicKind::PluginDeadLetters => "events a plugin's workers gave up on",
        }
    }
}

/// How an existing value is held against the recommended one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Must be equal (as a set of comma-separated words for `cleanup.policy`).
    Exactly,
    /// Must be at least the value; -1 (unlimited) is more than any.
    AtLeast,
    /// Must be at most the value.
    AtMost,
}

impl Rule {
    /// Whether `have` satisfies `want` under this rule.
    pub fn holds(self, want: &str, have: &str) -> bool {
        match self {
            Rule::Exactly => words(want) == words(have),
            Rule::AtLeast | Rule::AtMost => match (number(want), number(have)) {
                (Some(want), Some(have)) => {
                    let (want, have) = (unlimited_as_max(want), unlimited_as_max(have));
                    if self == Rule::AtLeast {
                        have >= want
                    } else {
                        have <= want
                    }
                }
                _ => want == have,
            },
        }
    }

    fn describe(self, want: &str) -> String {
        match self {
            Rule::Exactly => want.to_owned(),
            Rule::AtLeast => format!("at least {want}"),
            Rule::AtMost => format!("at most {want}"),
        }
    }
}

fn words(value: &str) -> BTreeSet<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect()
}

fn number(value: &str) -> Option<i64> {
    value.trim().parse().ok()
}

/// Kafka's -1 ("no limit") as the largest value, for comparisons.
fn unlimited_as_max(value: i64) -> i64 {
    if value < 0 { i64::MAX } else { value }
}

/// One topic config of a spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The topic config's name, e.g. `retention.ms`.
    pub key: &'static str,
    /// The recommended value, as Kafka spells it.
    pub value: String,
    /// How an existing value is compared with it.
    pub rule: Rule,
    /// Why this value.
    pub why: String,
}

/// A topic as it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicSpec {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub kind: TopicKind,
    /// Partitions (at least).
    pub partitions: i32,
    /// Replication factor (at least).
    pub replication_factor: i32,
    /// Topic configs set at creation and checked after.
    pub configs: Vec<Setting>,
}

impl TopicSpec {
    /// The recommended value of `key`, if the spec sets it.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.configs
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    /// Whether its `cleanup.policy` is `compact` alone.
    pub fn is_compacted(&self) -> bool {
        self.config("cleanup.policy") == Some("compact")
    }
}

/// Why a [`PlanInput`] cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// A count below 1.
    #[error("{what} must be at least 1, not {value}")]
    TooSmall {
        /// The count, in words.
        what: &'static str,
        /// What was given.
        value: i64,
    },
    /// `min.insync.replicas` above the replication factor: every write would be refused.
    #[error(
        "min.insync.replicas {min_insync} is more than the replication factor {replication_factor}: \
         every write would be refused"
    )]
    MinInsyncAboveReplicas {
        /// The given `min.insync.replicas`.
        min_insync: i32,
        /// The replication factor.
        replication_factor: i32,
    },
    /// A template without `{plugin}`.
    #[error("the topic template {template:?} has no {{plugin}}")]
    Template {
        /// The template.
        template: String,
    },
    /// A topic name Kafka refuses.
    #[error("{name:?} is not a Kafka topic name (1-249 of a-z, A-Z, 0-9, '.', '_', '-'; not . or ..)")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// Two topics of the plan with one name.
    #[error("the topic {name} is named twice in the plan (check the topic names in the configuration)")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// The producers' limit leaves no room for the router's headers.
    #[error(
        "the producers' message.max.bytes {value} leaves no room for events on core.events (at least \
         {ROUTER_HEADER_ROOM_BYTES} bytes go to the router's headers)"
    )]
    MessageMaxBytes {
        /// The given value.
        value: i64,
    },
}

/// Whether Kafka accepts `name` as a topic name.
pub fn is_legal_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOPIC_NAME
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The recommended topic configs of one kind of topic at `replication_factor` (the producers'
/// `message.max.bytes` at librdkafka's default): what a service sets on the topics it creates itself (the
/// registry's store topics at start, a plugin's two topics at registration), so that they are born as
/// [`recommended`] would make them. The one source of the values is [`recommended`].
pub fn created_configs(kind: TopicKind, replication_factor: i32) -> Vec<(&'static str, String)> {
    let input = PlanInput {
        core_events: "core".to_owned(),
        core_events_partitions: 1,
        core_events_retention_ms: CORE_EVENTS_RETENTION_MS,
        dead_letters: "dead-letters".to_owned(),
        dead_letter_partitions: 1,
        results: "results".to_owned(),
        results_partitions: 1,
        control_topics: vec!["control".to_owned()],
        control_partitions: 1,
        plugin_events_template: "{plugin}.events".to_owned(),
        plugin_dead_letter_template: "{plugin}.dlq".to_owned(),
        plugins: vec!["plugin".to_owned()],
        plugin_partitions: 1,
        replication_factor: replication_factor.max(1),
        min_insync_replicas: None,
        producer_message_max_bytes: LIBRDKAFKA_MESSAGE_MAX_BYTES,
    };
    recommended(&input)
        .ok()
        .and_then(|specs| specs.into_iter().find(|spec| spec.kind == kind))
        .map(|spec| spec.configs.into_iter().map(|s| (s.key, s.value)).collect())
        .unwrap_or_default()
}

/// The topics of `input` with the recommended settings: `core.events`, the router's dead letters, the
/// results, every control topic, and each plugin's events and dead-letter topics.
pub fn recommended(input: &PlanInput) -> Result<Vec<TopicSpec>, PlanError> {
    for (what, value) in [
        ("the replication factor", input.replication_factor),
        ("the partitions of core.events", input.core_events_partitions),
        (
            "the partitions of the dead-letter topic",
            input.dead_letter_partitions,
        ),
        ("the partitions of the results topic", input.results_partitions),
        ("the partitions of a control topic", input.control_partitions),
        ("the partitions of a plugin topic", input.plugin_partitions),
    ] {
        if value < 1 {
            return Err(PlanError::TooSmall {
                what,
                value: value.into(),
            });
        }
    }
    let min_insync = input
        .min_insync_replicas
        .unwrap_or_else(|| default_min_insync_replicas(input.replication_factor));
    if min_insync < 1 {
        return Err(PlanError::TooSmall {
            what: "min.insync.replicas",
            value: min_insync.into(),
        });
    }
    if min_insync > input.replication_factor {
        return Err(PlanError::MinInsyncAboveReplicas {
            min_insync,
            replication_factor: input.replication_factor,
        });
    }
    let max_bytes = input.producer_message_max_bytes;
    if max_bytes <= ROUTER_HEADER_ROOM_BYTES {
        return Err(PlanError::MessageMaxBytes { value: max_bytes });
    }
    for template in [&input.plugin_events_template, &input.plugin_dead_letter_template] {
        if !template.contains("{plugin}") {
            return Err(PlanError::Template {
                template: template.clone(),
            });
        }
    }

    let rf = input.replication_factor;
    let common = |kind: TopicKind| -> Vec<Setting> {
        let written = max_bytes + BATCH_MARGIN_BYTES;
        let (bytes, bytes_rule, bytes_why) = if kind == TopicKind::CoreEvents {
            (
                max_bytes - ROUTER_HEADER_ROOM_BYTES,
                Rule::AtMost,
                format!(
                    "the producers' message.max.bytes ({max_bytes}) less {ROUTER_HEADER_ROOM_BYTES} for the \
                     headers the router adds: an event the topic takes can be copied and dead-lettered whole \
                     (the core platform's producers must keep an event's uncompressed size below it too)"
                ),
            )
        } else {
            (
                written,
                Rule::AtLeast,
                format!(
                    "a batch of the producers' largest record ({max_bytes}, their message.max.bytes) with its \
                     framing fits ({BATCH_MARGIN_BYTES} more: Kafka's own default against librdkafka's); at \
                     least that of core.events, or large events are dead-lettered `plugin_topic_rejected`"
                ),
            )
        };
        vec![
            Setting {
                key: "min.insync.replicas",
                value: min_insync.to_string(),
                rule: Rule::Exactly,
                why: format!(
                    "Switchyard's producers write with acks=all: a write is acknowledged once {min_insync} of \
                     the {rf} replicas have it, and writes go on with {} broker(s) down",
                    rf - min_insync
                ),
            },
            Setting {
                key: "max.message.bytes",
                value: bytes.to_string(),
                rule: bytes_rule,
                why: bytes_why,
            },
        ]
    };
    let delete = |retention_ms: i64, why: &str| -> Vec<Setting> {
        vec![
            Setting {
                key: "cleanup.policy",
                value: "delete".to_owned(),
                rule: Rule::Exactly,
                why: "a stream of records, removed by age".to_owned(),
            },
            Setting {
                key: "retention.ms",
                value: retention_ms.to_string(),
                rule: Rule::AtLeast,
                why: why.to_owned(),
            },
        ]
    };
    let producer_compression = || Setting {
        key: "compression.type",
        value: "producer".to_owned(),
        rule: Rule::Exactly,
        why: "kept as the producer compressed it (set compression.type=zstd in kafka.producer_options to \
              compress): the broker never recompresses"
            .to_owned(),
    };
    let spec = |name: &str, kind: TopicKind, partitions: i32, mut configs: Vec<Setting>| {
        configs.extend(common(kind));
        configs.sort_by_key(|s| s.key);
        TopicSpec {
            name: name.to_owned(),
            kind,
            partitions,
            replication_factor: rf,
            configs,
        }
    };

    let mut specs = Vec::new();
    let mut core = delete(
        input.core_events_retention_ms,
        "how far back a backfill can reach (docs/operations.md, \"History for backfills\"); also how long \
         the dead letters' switchyard_source pointers stay readable",
    );
    core.push(Setting {
        key: "compression.type",
        value: "zstd".to_owned(),
        rule: Rule::Exactly,
        why: "the long history is most of the disk: stored compressed whatever the core platform's \
              producers send (no recompression when they use zstd themselves)"
            .to_owned(),
    });
    specs.push(spec(
        &input.core_events,
        TopicKind::CoreEvents,
        input.core_events_partitions,
        core,
    ));
    let mut dead = delete(
        DEAD_LETTER_RETENTION_MS,
        "time to look at dead letters and replay them after a fix",
    );
    dead.push(producer_compression());
    specs.push(spec(
        &input.dead_letters,
        TopicKind::RouterDeadLetters,
        input.dead_letter_partitions,
        dead,
    ));
    let mut results = delete(
        RESULTS_RETENTION_MS,
        "time for the core platform's consumers to be down and catch up",
    );
    results.push(producer_compression());
    specs.push(spec(
        &input.results,
        TopicKind::Results,
        input.results_partitions,
        results,
    ));
    for topic in &input.control_topics {
        specs.push(spec(
            topic,
            TopicKind::Control,
            input.control_partitions,
            vec![
                Setting {
                    key: "cleanup.policy",
                    value: "compact".to_owned(),
                    rule: Rule::Exactly,
                    why: "the latest record of each key is the state; `compact,delete` would lose state \
                          (the registry refuses it)"
                        .to_owned(),
                },
                producer_compression(),
            ],
        ));
    }
    for plugin in &input.plugins {
        let mut events = delete(
            PLUGIN_EVENTS_RETENTION_MS,
            "longer than a plugin's outage or a large backfill takes to drain at the plugin's pace",
        );
        events.push(producer_compression());
        specs.push(spec(
            &input.plugin_events_template.replace("{plugin}", plugin),
            TopicKind::PluginEvents,
            input.plugin_partitions,
            events,
        ));
        let mut dead = delete(
            DEAD_LETTER_RETENTION_MS,
            "time to look at dead letters and replay them after a fix (switchyardctl dlq)",
        );
        dead.push(producer_compression());
        specs.push(spec(
            &input.plugin_dead_letter_template.replace("{plugin}", plugin),
            TopicKind::PluginDeadLetters,
            input.plugin_partitions,
            dead,
        ));
    }
    let mut seen = BTreeSet::new();
    for spec in &specs {
        if !is_legal_topic_name(&spec.name) {
            return Err(PlanError::InvalidName {
                name: spec.name.clone(),
            });
        }
        if !seen.insert(spec.name.as_str()) {
            return Err(PlanError::Duplicate {
                name: spec.name.clone(),
            });
        }
    }
    Ok(specs)
}

/// A topic as the cluster has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExistingTopic {
    /// Partitions.
    pub partitions: i32,
    /// The fewest replicas of any of its partitions.
    pub replication_factor: i32,
    /// Every topic config with its current value (defaults included), as `describe_configs` gives them.
    pub configs: BTreeMap<String, String>,
    /// The configs set on the topic itself (not inherited from the broker): what an alteration keeps.
    pub topic_configs: BTreeMap<String, String>,
}

/// How a difference can be fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fix {
    /// Set the topic config `key` to `value` (`switchyardctl topics apply --alter-configs` does).
    AlterConfig {
        /// The config.
        key: String,
        /// Its recommended value.
        value: String,
    },
    /// Not done by `apply`: what the operator can do.
    ByHand {
        /// How, in a sentence.
        how: String,
    },
}

/// One setting of an existing topic that is not as recommended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// `partitions`, `replication factor` or a config key.
    pub setting: String,
    /// The recommendation with its rule, e.g. `at least 3`.
    pub want: String,
    /// What the topic has (`(unset)` for a config the broker did not report).
    pub have: String,
    /// How to fix it.
    pub fix: Fix,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is {}, want {}", self.setting, self.have, self.want)?;
        match &self.fix {
            Fix::AlterConfig { .. } => write!(f, " (--alter-configs sets it)"),
            Fix::ByHand { how } => write!(f, " ({how})"),
        }
    }
}

/// What to do about one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Step {
    /// The topic is missing: create it as specified.
    Create {
        /// The topic, as it will be created.
        spec: TopicSpec,
    },
    /// The topic exists as recommended.
    InPlace {
        /// Its name.
        topic: String,
    },
    /// The topic exists with settings that are not as recommended.
    Differs {
        /// Its name.
        topic: String,
        /// Each setting that is not.
        differences: Vec<Difference>,
    },
}

impl Step {
    /// The topic's name.
    pub fn topic(&self) -> &str {
        match self {
            Step::Create { spec } => &spec.name,
            Step::InPlace { topic } | Step::Differs { topic, .. } => topic,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Create { spec } => {
                write!(
                    f,
                    "create   {}  partitions={} replication={}",
                    spec.name, spec.partitions, spec.replication_factor
                )?;
                for setting in &spec.configs {
                    write!(f, " {}={}", setting.key, setting.value)?;
                }
                Ok(())
            }
            Step::InPlace { topic } => write!(f, "ok       {topic}"),
            Step::Differs { topic, differences } => {
                write!(f, "differs  {topic}")?;
                for difference in differences {
                    write!(f, "\n           {difference}")?;
                }
                Ok(())
            }
        }
    }
}

/// Desired against existing: a step per desired topic, in the order of `desired`.
pub fn plan(desired: &[TopicSpec], existing: &BTreeMap<String, ExistingTopic>) -> Vec<Step> {
    desired
        .iter()
        .map(|spec| match existing.get(&spec.name) {
            None => Step::Create { spec: spec.clone() },
            Some(topic) => {
                let differences = differences(spec, topic);
                if differences.is_empty() {
                    Step::InPlace {
                        topic: spec.name.clone(),
                    }
                } else {
                    Step::Differs {
                        topic: spec.name.clone(),
                        differences,
                    }
                }
            }
        })
        .collect()
}

/// What of `topic` is not as `spec` recommends.
fn differences(spec: &TopicSpec, topic: &ExistingTopic) -> Vec<Difference> {
    let mut found = Vec::new();
    // Any partition count works for a control topic (the contract, section 2).
    if topic.partitions < spec.partitions && spec.kind != TopicKind::Control {
        found.push(Difference {
            setting: "partitions".to_owned(),
            want: Rule::AtLeast.describe(&spec.partitions.to_string()),
            have: topic.partitions.to_string(),
            fix: Fix::ByHand {
                how: format!(
                    "kafka-topics.sh --alter --topic {} --partitions {}; this moves keys (teams) to other \
                     partitions: drain the consumers first",
                    spec.name, spec.partitions
                ),
            },
        });
    }
    if topic.replication_factor < spec.replication_factor {
        found.push(Difference {
            setting: "replication factor".to_owned(),
            want: Rule::AtLeast.describe(&spec.replication_factor.to_string()),
            have: topic.replication_factor.to_string(),
            fix: Fix::ByHand {
                how: "add replicas with kafka-reassign-partitions.sh".to_owned(),
            },
        });
    }
    for setting in &spec.configs {
        let have = topic.configs.get(setting.key);
        let holds = have.is_some_and(|have| setting.rule.holds(&setting.value, have));
        if !holds {
            found.push(Difference {
                setting: setting.key.to_owned(),
                want: setting.rule.describe(&setting.value),
                have: have.cloned().unwrap_or_else(|| "(unset)".to_owned()),
                fix: Fix::AlterConfig {
                    key: setting.key.to_owned(),
                    value: setting.value.clone(),
                },
            });
        }
    }
    found
}

/// The whole set of topic configs to send for `topic` so that `differences` are fixed: Kafka's
/// `AlterConfigs` replaces a topic's configs with the set it is given, so the configs set on the topic
/// stay and the fixes are laid over them.
pub fn altered_configs(topic: &ExistingTopic, differences: &[Difference]) -> BTreeMap<String, String> {
    let mut configs = topic.topic_configs.clone();
    for difference in differences {
        if let Fix::AlterConfig { key, value } = &difference.fix {
            configs.insert(key.clone(), value.clone());
        }
    }
    configs
}

/// The settings table: per kind of topic, each recommended setting and why, for `input`'s counts.
pub fn explain(input: &PlanInput) -> Result<String, PlanError> {
    // One plugin stands for all of them; its rows show the templates.
    let specs = recommended(&PlanInput {
        plugins: vec!["id".to_owned()],
        ..input.clone()
    })?;
    let mut text = String::new();
    for kind in TopicKind::ALL {
        let of_kind: Vec<&TopicSpec> = specs.iter().filter(|s| s.kind == kind).collect();
        let Some(first) = of_kind.first() else {
            continue;
        };
        let names: Vec<String> = match kind {
            TopicKind::PluginEvents => vec![input.plugin_events_template.clone()],
            TopicKind::PluginDeadLetters => vec![input.plugin_dead_letter_template.clone()],
            _ => of_kind.iter().map(|s| s.name.clone()).collect(),
        };
        text.push_str(&format!("{}\n  {}\n", names.join(", "), kind.purpose()));
        text.push_str(&format!(
            "  partitions          {} ({})\n",
            first.partitions,
            partitions_why(kind)
        ));
        text.push_str(&format!(
            "  replication factor  at least {} (each partition on that many brokers; see min.insync.replicas)\n",
            first.replication_factor
        ));
        for setting in &first.configs {
            let days = match setting.key {
                "retention.ms" => number(&setting.value)
                    .filter(|ms| *ms > 0 && ms % DAY_MS == 0)
                    .map(|ms| format!(" = {} days", ms / DAY_MS))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            text.push_str(&format!(
                "  {:<19} {}{days} ({})\n",
                setting.key,
                setting.rule.describe(&setting.value),
                setting.why
            ));
        }
        text.push('\n');
    }
    Ok(text)
}

fn partitions_why(kind: TopicKind) -> &'static str {
    match kind {
        TopicKind::CoreEvents => {
            "the most router replicas that get work; adding partitions later moves teams between partitions"
        }
        TopicKind::RouterDeadLetters => "dead letters are few",
        TopicKind::Results => "the most consumers of results that get work",
        TopicKind::Control => "the registry's store.partitions; any count works",
        TopicKind::PluginEvents | TopicKind::PluginDeadLetters => {
            "the registry's provisioning.partitions: the most workers of the plugin that get work"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PlanInput {
        PlanInput {
            core_events: "core.events".to_owned(),
            core_events_partitions: 12,
            core_events_retention_ms: CORE_EVENTS_RETENTION_MS,
            dead_letters: "core.events.dlq".to_owned(),
            dead_letter_partitions: DEAD_LETTER_PARTITIONS,
            results: "core.plugin-results".to_owned(),
            results_partitions: RESULTS_PARTITIONS,
            control_topics: vec![
                "switchyard.plugins".to_owned(),
                "switchyard.enablements".to_owned(),
            ],
            control_partitions: 1,
            plugin_events_template: "plugin.{plugin}.events".to_owned(),
            plugin_dead_letter_template: "plugin.{plugin}.dlq".to_owned(),
            plugins: vec!["sms-notify".to_owned()],
            plugin_partitions: 6,
            replication_factor: 3,
            min_insync_replicas: None,
            producer_message_max_bytes: LIBRDKAFKA_MESSAGE_MAX_BYTES,
        }
    }

    /// The topic as `spec` would create it, as a describe would report it.
    fn as_created(spec: &TopicSpec) -> ExistingTopic {
        let configs: BTreeMap<String, String> = spec
            .configs
            .iter()
            .map(|s| (s.key.to_owned(), s.value.clone()))
            .collect();
        ExistingTopic {
            partitions: spec.partitions,
            replication_factor: spec.replication_factor,
            topic_configs: configs.clone(),
            configs,
        }
    }

    #[test]
    fn every_topic_with_its_settings() {
        let specs = recommended(&input()).unwrap();
        let names: Vec<(&str, TopicKind, i32)> = specs
            .iter()
            .map(|s| (s.name.as_str(), s.kind, s.partitions))
            .collect();
        assert_eq!(
            names,
            [
                ("core.events", TopicKind::CoreEvents, 12),
                ("core.events.dlq", TopicKind::RouterDeadLetters, 3),
                ("core.plugin-results", TopicKind::Results, 6),
                ("switchyard.plugins", TopicKind::Control, 1),
                ("switchyard.enablements", TopicKind::Control, 1),
                ("plugin.sms-notify.events", TopicKind::PluginEvents, 6),
                ("plugin.sms-notify.dlq", TopicKind::PluginDeadLetters, 6),
            ]
        );
        let core = &specs[0];
        assert_eq!(core.replication_factor, 3);
        assert_eq!(core.config("min.insync.replicas"), Some("2"));
        assert_eq!(core.config("cleanup.policy"), Some("delete"));
        assert_eq!(core.config("retention.ms"), Some("2592000000"));
        assert_eq!(core.config("compression.type"), Some("zstd"));
        // Room for the router's headers below the producers' limit ...
        assert_eq!(core.config("max.message.bytes"), Some("983616"));
        // ... and every topic Switchyard writes takes what its producers send: Kafka's default.
        for spec in &specs[1..] {
            assert_eq!(spec.config("max.message.bytes"), Some("1048588"), "{}", spec.name);
            assert_eq!(spec.config("compression.type"), Some("producer"), "{}", spec.name);
        }
        assert!(specs[3].is_compacted() && specs[4].is_compacted());
        assert_eq!(
            specs[3].config("retention.ms"),
            None,
            "compaction, not age, removes control records"
        );
        assert!(
            !specs
                .iter()
                .any(|s| s.kind != TopicKind::Control && s.is_compacted())
        );
        assert_eq!(specs[5].config("retention.ms"), Some("604800000"));
    }

    #[test]
    fn min_insync_follows_the_replication_factor() {
        assert_eq!([1, 2, 3, 4, 5].map(default_min_insync_replicas), [1, 1, 2, 2, 2]);
        let single = recommended(&PlanInput {
            replication_factor: 1,
            ..input()
        })
        .unwrap();
        assert!(
            single
                .iter()
                .all(|s| s.replication_factor == 1 && s.config("min.insync.replicas") == Some("1"))
        );
        let explicit = recommended(&PlanInput {
            min_insync_replicas: Some(3),
            ..input()
        })
        .unwrap();
        assert_eq!(explicit[0].config("min.insync.replicas"), Some("3"));
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let refused = |input: PlanInput| recommended(&input).unwrap_err().to_string();
        assert_eq!(
            refused(PlanInput {
                replication_factor: 0,
                ..input()
            }),
            "the replication factor must be at least 1, not 0"
        );
        assert_eq!(
            refused(PlanInput {
                min_insync_replicas: Some(4),
                ..input()
            }),
            "min.insync.replicas 4 is more than the replication factor 3: every write would be refused"
        );
        assert!(
            refused(PlanInput {
                plugins: vec!["no/slash".to_owned()],
                ..input()
            })
            .starts_with("\"plugin.no/slash.events\" is not a Kafka topic name")
        );
        assert!(
            refused(PlanInput {
                plugin_events_template: "plugin.events".to_owned(),
                ..input()
            })
            .contains("has no {plugin}")
        );
        assert!(
            refused(PlanInput {
                control_topics: vec!["core.events".to_owned()],
                ..input()
            })
            .starts_with("the topic core.events is named twice")
        );
        assert!(
            refused(PlanInput {
                producer_message_max_bytes: 1000,
                ..input()
            })
            .contains("leaves no room")
        );
        assert!(is_legal_topic_name("a.b_c-D9"));
        assert!(
            !is_legal_topic_name("..") && !is_legal_topic_name("") && !is_legal_topic_name(&"x".repeat(250))
        );
    }

    #[test]
    fn an_empty_cluster_creates_everything_and_a_created_one_is_in_place() {
        let specs = recommended(&input()).unwrap();
        let steps = plan(&specs, &BTreeMap::new());
        assert!(steps.iter().all(|s| matches!(s, Step::Create { .. })));
        assert_eq!(steps.len(), specs.len());
        let existing: BTreeMap<String, ExistingTopic> =
            specs.iter().map(|s| (s.name.clone(), as_created(s))).collect();
        let again = plan(&specs, &existing);
        assert!(
            again.iter().all(|s| matches!(s, Step::InPlace { .. })),
            "{again:#?}"
        );
        assert_eq!(again[0].to_string(), "ok       core.events");
    }

    #[test]
    fn differences_are_found_by_rule() {
        let specs = recommended(&input()).unwrap();
        let core = &specs[0];
        let mut topic = as_created(core);
        // More than recommended is the operator's choice.
        topic.partitions = 24;
        topic.replication_factor = 5;
        topic.configs.insert("retention.ms".into(), "-1".into());
        topic.configs.insert("max.message.bytes".into(), "500000".into());
        topic.configs.insert("cleanup.policy".into(), "delete".into());
        assert_eq!(
            plan(
                std::slice::from_ref(core),
                &[(core.name.clone(), topic.clone())].into()
            ),
            [Step::InPlace {
                topic: "core.events".into()
            }]
        );
        // Fewer partitions and replicas, a shorter retention, a larger message limit, another policy.
        topic.partitions = 6;
        topic.replication_factor = 1;
        topic.configs.insert("retention.ms".into(), "604800000".into());
        topic.configs.insert("max.message.bytes".into(), "1048588".into());
        topic
            .configs
            .insert("cleanup.policy".into(), "compact,delete".into());
        topic.configs.remove("min.insync.replicas");
        let steps = plan(
            std::slice::from_ref(core),
            &[(core.name.clone(), topic.clone())].into(),
        );
        let Step::Differs { differences, .. } = &steps[0] else {
            panic!("{steps:?}")
        };
        let lines: Vec<String> = differences.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "partitions is 6, want at least 12 (kafka-topics.sh --alter --topic core.events --partitions 12; \
                 this moves keys (teams) to other partitions: drain the consumers first)",
                "replication factor is 1, want at least 3 (add replicas with kafka-reassign-partitions.sh)",
                "cleanup.policy is compact,delete, want delete (--alter-configs sets it)",
                "max.message.bytes is 1048588, want at most 983616 (--alter-configs sets it)",
                "min.insync.replicas is (unset), want 2 (--alter-configs sets it)",
                "retention.ms is 604800000, want at least 2592000000 (--alter-configs sets it)",
            ]
        );
        // The alteration keeps what was set on the topic and lays the fixes over it.
        topic.topic_configs = [
            ("segment.ms".to_owned(), "3600000".to_owned()),
            ("retention.ms".to_owned(), "604800000".to_owned()),
        ]
        .into();
        let altered = altered_configs(&topic, differences);
        assert_eq!(altered.get("segment.ms").map(String::as_str), Some("3600000"));
        assert_eq!(
            altered.get("retention.ms").map(String::as_str),
            Some("2592000000")
        );
        assert_eq!(altered.get("cleanup.policy").map(String::as_str), Some("delete"));
        assert_eq!(altered.get("min.insync.replicas").map(String::as_str), Some("2"));
        assert!(!altered.contains_key("partitions"));
    }

    #[test]
    fn a_control_topic_with_any_partition_count_is_in_place_but_not_with_delete() {
        let specs = recommended(&input()).unwrap();
        let control = &specs[3];
        let mut topic = as_created(control);
        topic.partitions = 3;
        assert!(matches!(
            &plan(
                std::slice::from_ref(control),
                &[(control.name.clone(), topic.clone())].into()
            )[0],
            Step::InPlace { .. }
        ));
        topic
            .configs
            .insert("cleanup.policy".into(), "compact, delete".into());
        let steps = plan(
            std::slice::from_ref(control),
            &[(control.name.clone(), topic)].into(),
        );
        assert!(
            steps[0]
                .to_string()
                .contains("cleanup.policy is compact, delete, want compact"),
            "{}",
            steps[0]
        );
    }

    #[test]
    fn rules() {
        assert!(Rule::Exactly.holds("compact,delete", "delete, compact"));
        assert!(!Rule::Exactly.holds("compact", "compact,delete"));
        assert!(Rule::AtLeast.holds("100", "-1"));
        assert!(!Rule::AtLeast.holds("-1", "100"));
        assert!(Rule::AtLeast.holds("100", "100") && !Rule::AtLeast.holds("100", "99"));
        assert!(Rule::AtMost.holds("100", "99") && !Rule::AtMost.holds("100", "-1"));
        assert!(!Rule::AtLeast.holds("100", "lots"));
    }

    #[test]
    fn the_explanation_names_every_kind_and_setting() {
        let text = explain(&input()).unwrap();
        for part in [
            "core.events\n",
            "plugin.{plugin}.events\n",
            "plugin.{plugin}.dlq\n",
            "switchyard.plugins, switchyard.enablements\n",
            "  min.insync.replicas 2 (",
            "  retention.ms        at least 2592000000 = 30 days (how far back a backfill can reach",
            "  max.message.bytes   at most 983616 (",
            "  cleanup.policy      compact (",
        ] {
            assert!(text.contains(part), "{part:?} in\n{text}");
        }
    }

    #[test]
    fn topics_a_service_creates_get_the_plans_configs() {
        let control = created_configs(TopicKind::Control, 3);
        assert!(
            control.contains(&("cleanup.policy", "compact".to_owned())),
            "{control:?}"
        );
        assert!(
            control.contains(&("min.insync.replicas", "2".to_owned())),
            "{control:?}"
        );
        let events = created_configs(TopicKind::PluginEvents, 1);
        assert!(
            events.contains(&("min.insync.replicas", "1".to_owned())),
            "{events:?}"
        );
        assert!(
            events.contains(&("retention.ms", PLUGIN_EVENTS_RETENTION_MS.to_string())),
            "{events:?}"
        );
        let dead = created_configs(TopicKind::PluginDeadLetters, 3);
        assert!(
            dead.contains(&("retention.ms", DEAD_LETTER_RETENTION_MS.to_string())),
            "{dead:?}"
        );
    }
}
