//! `switchyardctl topics`: every topic a deployment needs, with the recommended settings, created and
//! checked from a terminal; and a backup of the compacted control topics, restored when they are lost.
//!
//! ```text
//!   flags + the registry's [topics]/[store]/[provisioning] ──► topic_plan::recommended ──► [TopicSpec]
//!   the cluster ──► admin::Cluster::describe ──► [ExistingTopic] ──► topic_plan::plan ──► [Step]
//!       apply: create the missing (and with --alter-configs fix configs); check: report, exit 1
//!   backup DIR: each control topic read to its end (read_committed) ──► latest record per key ──► files
//!   restore DIR: files ──► one transaction back into the (empty) topics
//! ```
//!
//! The topic names are the registry's: its embedded defaults, then `--registry-config FILE`, then
//! `SWITCHYARD_REGISTRY__TOPICS__...`, exactly as the registry reads them; its list of compacted topics
//! ([`switchyard_registry::config::TopicLayout::store_topics`]) is the one the registry creates at start.
//! Kafka is reached as `dlq` reaches it ([`crate::kafka_flags`]). The plan itself is pure and tested in
//! `switchyard_service::kafka::topic_plan`.

mod admin;
mod backup;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;
use switchyard_registry::config::TopicLayout;
use switchyard_schemas::topics;
use switchyard_service::follower::{Apply, Record, read_until_caught_up};
use switchyard_service::kafka::topic_plan::{
    self, DEAD_LETTER_PARTITIONS, LIBRDKAFKA_MESSAGE_MAX_BYTES, PlanInput, RESULTS_PARTITIONS, Step,
};

use self::admin::Cluster;
use crate::Failure;
use crate::kafka_flags::KafkaFlags;

/// The chart's default `kafka.coreEventsPartitions`.
const CORE_EVENTS_PARTITIONS: i32 = 12;

/// What to plan: names, counts and settings.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PlanFlags {
    /// The registry's configuration file: its `[topics]` names, `store.partitions` (control topics) and
    /// `provisioning.partitions` (plugin topics); `SWITCHYARD_REGISTRY__...` variables apply on top, as
    /// for the registry. Default: the registry's defaults.
    #[arg(long, value_name = "FILE")]
    registry_config: Option<PathBuf>,
    /// Replication factor of every topic (1 for a single-broker development cluster).
    #[arg(long, default_value_t = 3)]
    replication_factor: i32,
    /// `min.insync.replicas` of every topic [default: the replication factor less 1, between 1 and 2].
    #[arg(long)]
    min_insync_replicas: Option<i32>,
    /// Partitions of core.events: the most router replicas that get work (the chart's
    /// `kafka.coreEventsPartitions`).
    #[arg(long, default_value_t = CORE_EVENTS_PARTITIONS)]
    core_events_partitions: i32,
    /// Retention of core.events, how far back backfills reach: a duration (`30d`, `365d`) or `unlimited`.
    #[arg(long, default_value = "30d", value_parser = parse_retention)]
    core_events_retention: i64,
    /// The router's dead-letter topic (its `topics.dead_letter`).
    #[arg(long, default_value = topics::CORE_EVENTS_DLQ)]
    dead_letter_topic: String,
    /// The plugin workers' results topic (their `topics.results`).
    #[arg(long, default_value = topics::PLUGIN_RESULTS)]
    results_topic: String,
    /// Plugins whose events and dead-letter topics to include, comma-separated.
    #[arg(long, value_delimiter = ',')]
    plugins: Vec<String>,
    /// Also include every plugin registered now (read from the plugins control topic).
    #[arg(long)]
    registered_plugins: bool,
    /// Partitions of each plugin topic [default: the registry's provisioning.partitions].
    #[arg(long)]
    plugin_partitions: Option<i32>,
    /// The producers' `message.max.bytes` (librdkafka's default unless `kafka.producer_options` sets it):
    /// every topic's `max.message.bytes` is derived from it.
    #[arg(long, default_value_t = LIBRDKAFKA_MESSAGE_MAX_BYTES)]
    message_max_bytes: i64,
}

/// Reaching Kafka, and how long its calls may take.
#[derive(Debug, clap::Args)]
pub(crate) struct Connection {
    #[command(flatten)]
    kafka: KafkaFlags,
    /// Bound of each Kafka call, and of reading a topic to its end (`30s`, `2m`).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TopicsCommand {
    /// Create every missing topic with the recommended settings; report what differs on the others (and,
    /// with --alter-configs, set their configs). Exits 1 when differences are left.
    Apply {
        #[command(flatten)]
        plan: PlanFlags,
        #[command(flatten)]
        connection: Connection,
        /// Only print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also set the configs of existing topics that differ (partitions and replicas are never changed).
        #[arg(long)]
        alter_configs: bool,
    },
    /// Compare every topic with the recommended settings and change nothing. Exits 1 when a topic is
    /// missing or differs.
    Check {
        #[command(flatten)]
        plan: PlanFlags,
        #[command(flatten)]
        connection: Connection,
    },
    /// The recommended settings of each kind of topic, and why (no Kafka needed).
    Explain {
        #[command(flatten)]
        plan: PlanFlags,
    },
    /// Copy the latest record of every key (tombstones included) of each control topic to files in DIR.
    Backup {
        /// A new or empty directory.
        dir: PathBuf,
        /// The registry's configuration file, for the control topics' names (as for `apply`).
        #[arg(long, value_name = "FILE")]
        registry_config: Option<PathBuf>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Write a backup's records back into the control topics, in one transaction. The topics must exist
    /// (`topics apply`) and be empty unless --force; stop the registry and the routers first.
    Restore {
        /// The directory `backup` wrote.
        dir: PathBuf,
        /// Write even into topics that hold records: each restored key then gets the backup's value.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        connection: Connection,
    },
}

fn parse_retention(text: &str) -> Result<i64, String> {
    if matches!(text, "unlimited" | "-1") {
        return Ok(-1);
    }
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is neither a duration (30d) nor `unlimited`: {e}"))?;
    i64::try_from(duration.as_millis())
        .ok()
        .filter(|&ms| ms > 0)
        .ok_or_else(|| format!("{text:?} is not a usable retention"))
}

impl PlanFlags {
    fn layout(&self) -> Result<TopicLayout, Failure> {
        TopicLayout::load(self.registry_config.as_deref())
            .map_err(|e| Failure::Usage(format!("the registry's topic settings: {e}")))
    }

    /// The plan's input: the registry's names and counts, these flags, and `registered` plugins.
    fn input(&self, layout: &TopicLayout, registered: &[String]) -> PlanInput {
        let mut plugins = self.plugins.clone();
        for plugin in registered {
            if !plugins.contains(plugin) {
                plugins.push(plugin.clone());
            }
        }
        PlanInput {
            core_events: layout.topics.core_events.clone(),
            core_events_partitions: self.core_events_partitions,
            core_events_retention_ms: self.core_events_retention,
            dead_letters: self.dead_letter_topic.clone(),
            dead_letter_partitions: DEAD_LETTER_PARTITIONS,
            results: self.results_topic.clone(),
            results_partitions: RESULTS_PARTITIONS,
            control_topics: layout.store_topics(),
            control_partitions: layout.store.partitions,
            plugin_events_template: layout.topics.plugin_events_template.clone(),
            plugin_dead_letter_template: layout.topics.plugin_dead_letter_template.clone(),
            plugins,
            plugin_partitions: self.plugin_partitions.unwrap_or(layout.provisioning.partitions),
            replication_factor: self.replication_factor,
            min_insync_replicas: self.min_insync_replicas,
            producer_message_max_bytes: self.message_max_bytes,
        }
    }
}

pub(crate) fn topics(command: &TopicsCommand, json: bool) -> Result<ExitCode, Failure> {
    match command {
        TopicsCommand::Explain { plan } => {
            let layout = plan.layout()?;
            let text =
                topic_plan::explain(&plan.input(&layout, &[])).map_err(|e| Failure::Usage(e.to_string()))?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        TopicsCommand::Apply {
            plan,
            connection,
            dry_run,
            alter_configs,
        } => apply(plan, connection, *dry_run, *alter_configs, json),
        TopicsCommand::Check { plan, connection } => check(plan, connection, json),
        TopicsCommand::Backup {
            dir,
            registry_config,
            connection,
        } => {
            let layout = TopicLayout::load(registry_config.as_deref())
                .map_err(|e| Failure::Usage(format!("the registry's topic settings: {e}")))?;
            let (settings, clients) = connection.kafka.connect(connection.timeout)?;
            let summary = backup::backup(
                &clients,
                &layout.store_topics(),
                dir,
                &settings.bootstrap_servers,
                connection.timeout,
            )?;
            print_backup(&summary, json, "backed up");
            Ok(ExitCode::SUCCESS)
        }
        TopicsCommand::Restore {
            dir,
            force,
            connection,
        } => {
            let (_, clients) = connection.kafka.connect(connection.timeout)?;
            let summary = backup::restore(&clients, dir, *force, connection.timeout)?;
            print_backup(&summary, json, "restored");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_backup(summary: &backup::Manifest, json: bool, verb: &str) {
    if json {
        println!("{}", serde_json::to_string_pretty(summary).unwrap_or_default());
        return;
    }
    for topic in &summary.topics {
        if topic.existed {
            println!(
                "{verb} {:<40} {} keys ({} tombstones)",
                topic.topic, topic.records, topic.tombstones
            );
        } else {
            println!("skipped  {:<40} (it did not exist at the backup)", topic.topic);
        }
    }
}

/// The plan against the cluster: the specs, the cluster's topics and the steps.
struct Planned {
    steps: Vec<Step>,
    described: std::collections::BTreeMap<String, topic_plan::ExistingTopic>,
    specs: Vec<topic_plan::TopicSpec>,
}

fn planned(plan: &PlanFlags, cluster: &Cluster, connection: &Connection) -> Result<Planned, Failure> {
    let layout = plan.layout()?;
    let registered = if plan.registered_plugins {
        registered_plugins(cluster, &layout.topics.plugins, connection.timeout)?
    } else {
        Vec::new()
    };
    let specs = topic_plan::recommended(&plan.input(&layout, &registered))
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let described = cluster.describe(&names)?;
    let steps = topic_plan::plan(&specs, &described);
    Ok(Planned {
        steps,
        described,
        specs,
    })
}

/// The ids of the plugins registered now: the keys of the plugins topic whose latest value is not a
/// tombstone.
fn registered_plugins(cluster: &Cluster, topic: &str, timeout: Duration) -> Result<Vec<String>, Failure> {
    #[derive(Default)]
    struct Registered(std::collections::BTreeMap<String, bool>);
    impl Apply for Registered {
        fn apply(&mut self, record: Record<'_>) {
            if let Some(key) = record.key.and_then(|k| std::str::from_utf8(k).ok()) {
                self.0.insert(key.to_owned(), record.value.is_some());
            }
        }
    }
    let mut registered = Registered::default();
    read_until_caught_up(
        cluster.clients(),
        topic,
        "switchyardctl-topics",
        &mut registered,
        timeout,
    )
    .map_err(|e| Failure::Usage(format!("reading the registered plugins from {topic}: {e}")))?;
    Ok(registered
        .0
        .into_iter()
        .filter_map(|(id, live)| live.then_some(id))
        .collect())
}

fn count(steps: &[Step]) -> (usize, usize, usize) {
    steps
        .iter()
        .fold((0, 0, 0), |(create, ok, differ), step| match step {
            Step::Create { .. } => (create + 1, ok, differ),
            Step::InPlace { .. } => (create, ok + 1, differ),
            Step::Differs { .. } => (create, ok, differ + 1),
        })
}

fn check(plan: &PlanFlags, connection: &Connection, json: bool) -> Result<ExitCode, Failure> {
    let (settings, clients) = connection.kafka.connect(connection.timeout)?;
    let cluster = Cluster::new(&clients, &settings.bootstrap_servers, connection.timeout)?;
    let Planned { steps, .. } = planned(plan, &cluster, connection)?;
    let (missing, ok, differ) = count(&steps);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "steps": steps, "missing": missing, "in_place": ok, "differ": differ
            }))
            .unwrap_or_default()
        );
    } else {
        for step in &steps {
            match step {
                Step::Create { spec } => println!("missing  {}", spec.name),
                other => println!("{other}"),
            }
        }
        println!("{ok} in place, {missing} missing, {differ} differ");
    }
    Ok(if missing + differ == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn apply(
    plan: &PlanFlags,
    connection: &Connection,
    dry_run: bool,
    alter_configs: bool,
    json: bool,
) -> Result<ExitCode, Failure> {
    let (settings, clients) = connection.kafka.connect(connection.timeout)?;
    let cluster = Cluster::new(&clients, &settings.bootstrap_servers, connection.timeout)?;
    let Planned {
        steps,
        described,
        specs,
    } = planned(plan, &cluster, connection)?;
    let to_create: Vec<&topic_plan::TopicSpec> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Create { spec } => Some(spec),
            _ => None,
        })
        .collect();
    if !json {
        for step in &steps {
            println!("{step}");
        }
    }
    let brokers = cluster.brokers()?;
    let too_few_brokers = specs
        .first()
        .filter(|spec| usize::try_from(spec.replication_factor).unwrap_or(usize::MAX) > brokers)
        .map(|spec| {
            format!(
                "the cluster at {} has {brokers} broker(s), fewer than the replication factor {}: pass \
                 --replication-factor {brokers} (a development cluster) or add brokers",
                settings.bootstrap_servers, spec.replication_factor
            )
        });
    let (create, ok, differ) = count(&steps);
    if let Some(problem) = &too_few_brokers
        && create > 0
    {
        if !dry_run {
            return Err(Failure::Usage(format!("{problem}; nothing was created")));
        }
        eprintln!("switchyardctl: WARNING: {problem}");
    }
    if dry_run {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"steps": steps, "dry_run": true})).unwrap_or_default()
            );
        } else {
            println!("dry run: {create} to create, {ok} in place, {differ} differ; nothing changed");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let created = cluster.create(&to_create)?;
    let mut altered = Vec::new();
    let mut left = 0;
    for step in &steps {
        let Step::Differs { topic, differences } = step else {
            continue;
        };
        let alterable = differences
            .iter()
            .any(|d| matches!(d.fix, topic_plan::Fix::AlterConfig { .. }));
        if alter_configs && alterable {
            let existing = &described[topic];
            cluster.alter(topic, &topic_plan::altered_configs(existing, differences))?;
            altered.push(topic.clone());
            left += differences
                .iter()
                .filter(|d| matches!(d.fix, topic_plan::Fix::ByHand { .. }))
                .count();
        } else {
            left += differences.len();
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "steps": steps, "created": created, "altered": altered, "differences_left": left
            }))
            .unwrap_or_default()
        );
    } else {
        for topic in &created {
            println!("created  {topic}");
        }
        for topic in &altered {
            println!("altered  {topic}");
        }
        println!(
            "{} created, {} altered, {ok} in place; {left} difference(s) left{}",
            created.len(),
            altered.len(),
            if left > 0 && !alter_configs {
                " (--alter-configs sets the configs; partitions and replicas are changed by hand)"
            } else {
                ""
            }
        );
    }
    Ok(if left == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: TopicsCommand,
    }

    fn parse(line: &str) -> Result<TopicsCommand, clap::Error> {
        Cli::try_parse_from(line.split_whitespace()).map(|cli| cli.command)
    }

    #[test]
    fn flags_make_the_plan_input() {
        let Ok(TopicsCommand::Apply { plan, .. }) = parse(
            "x apply --replication-factor 1 --core-events-partitions 24 --core-events-retention 365d \
             --plugins sms-notify,rules-validate --plugin-partitions 4 --dry-run",
        ) else {
            panic!()
        };
        let layout = TopicLayout::defaults().unwrap();
        let input = plan.input(&layout, &["sms-notify".to_owned(), "slang-search".to_owned()]);
        assert_eq!(input.replication_factor, 1);
        assert_eq!(input.core_events_partitions, 24);
        assert_eq!(input.core_events_retention_ms, 365 * 86_400_000);
        assert_eq!(input.plugins, ["sms-notify", "rules-validate", "slang-search"]);
        assert_eq!(input.plugin_partitions, 4);
        assert_eq!(input.core_events, "core.events");
        assert_eq!(input.dead_letters, "core.events.dlq");
        assert_eq!(input.results, "core.plugin-results");
        // The registry's own list, whatever it holds today.
        assert_eq!(input.control_topics, layout.store_topics());
        assert!(
            input
                .control_topics
                .contains(&"switchyard.backfill-progress".to_owned())
        );
        assert_eq!(input.control_partitions, layout.store.partitions);

        // The default is the plan's recommendation.
        assert_eq!(parse_retention("30d"), Ok(topic_plan::CORE_EVENTS_RETENTION_MS));
        let Ok(TopicsCommand::Check { plan, .. }) = parse("x check --core-events-retention unlimited") else {
            panic!()
        };
        let input = plan.input(&layout, &[]);
        assert_eq!(input.core_events_retention_ms, -1);
        assert_eq!(input.plugin_partitions, layout.provisioning.partitions);
        assert_eq!(input.replication_factor, 3);

        for bad in [
            "x apply --core-events-retention soon",
            "x apply --replication-factor three",
            "x backup",
            "x restore",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
