//! `switchyardctl dlq`: a plugin's dead letters, read from and replayed to Kafka directly (no registry
//! call), with the Kafka settings of the services.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use serde_json::json;
use switchyard_registry::dead_letters::{self, DeadLetter, DeadLetterError, Filter};
use switchyard_service::config::load_layers;
use switchyard_service::kafka::{
    CREDENTIALS_CHECK_TIMEOUT, ClientStats, Clients, KafkaSettings, check_credentials_blocking,
};

use crate::tables::table;
use crate::{Failure, parse_time};

#[derive(Debug, clap::Args)]
pub(crate) struct DlqTarget {
    /// The plugin.
    #[arg(long)]
    plugin: String,
    /// Kafka bootstrap servers [default: the config file's, else 127.0.0.1:9092].
    #[arg(long, env = "SWITCHYARD_KAFKA_BOOTSTRAP")]
    bootstrap: Option<String>,
    /// A TOML file whose `[kafka]` section (bootstrap_servers, options, consumer_options,
    /// producer_options) is used, as in the services' configuration files.
    #[arg(long, value_name = "FILE")]
    kafka_config: Option<PathBuf>,
    /// A librdkafka option for every client, e.g. `-X security.protocol=SASL_SSL`; repeatable.
    #[arg(short = 'X', long = "kafka-option", value_name = "KEY=VALUE", value_parser = parse_option)]
    kafka_options: Vec<(String, String)>,
    /// How long reading the dead-letter topic to its end may take (`30s`, `2m`).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// The plugin's events topic; `{plugin}` becomes the id.
    #[arg(long, default_value = "plugin.{plugin}.events")]
    events_template: String,
    /// The plugin's dead-letter topic; `{plugin}` becomes the id.
    #[arg(long, default_value = "plugin.{plugin}.dlq")]
    dead_letter_template: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DlqFilter {
    /// Only this team's dead letters.
    #[arg(long)]
    team: Option<String>,
    /// Only those dead-lettered since: an RFC 3339 time or a duration ago (`2h`, `30m`).
    #[arg(long, value_parser = parse_time)]
    since: Option<SystemTime>,
    /// Only those of this installation (`default`: the default installation's).
    #[arg(long)]
    installation: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// List dead letters.
    List {
        #[command(flatten)]
        target: DlqTarget,
        #[command(flatten)]
        filter: DlqFilter,
    },
    /// Show the dead letters of one event.
    Show {
        #[command(flatten)]
        target: DlqTarget,
        /// The event's `ce_id`.
        event_id: String,
    },
    /// Put dead letters back on the plugin's topic, once the cause is fixed.
    Replay {
        #[command(flatten)]
        target: DlqTarget,
        #[command(flatten)]
        filter: DlqFilter,
        /// Only show what would be replayed.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The `[kafka]` section of `--kafka-config`; everything else in the file is ignored.
#[derive(Debug, serde::Deserialize)]
struct KafkaFile {
    kafka: KafkaSettings,
}

/// Prefix of the environment overrides of `dlq`'s Kafka settings.
const KAFKA_ENV_PREFIX: &str = "SWITCHYARDCTL";

/// The name of `dlq`'s consumers and producer (`client.id`).
const CLIENT: &str = "switchyardctl-dlq";

/// A time in milliseconds since the Unix epoch (before it: 0).
fn epoch_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

impl DlqTarget {
    /// The Kafka settings: defaults < `--kafka-config` < `SWITCHYARDCTL__KAFKA__...` < flags.
    fn kafka(&self) -> Result<KafkaSettings, Failure> {
        let loaded: KafkaFile = load_layers(
            "[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n",
            KAFKA_ENV_PREFIX,
            &[],
            self.kafka_config.as_deref(),
            None,
        )
        .map_err(|e| Failure::Usage(format!("the Kafka settings: {e}")))?;
        let mut kafka = loaded.kafka;
        if let Some(bootstrap) = &self.bootstrap {
            kafka.bootstrap_servers = bootstrap.clone();
        }
        kafka.options.extend(self.kafka_options.iter().cloned());
        kafka.check().map_err(|e| Failure::Usage(e.to_string()))?;
        Ok(kafka)
    }
}

pub(crate) fn dlq(command: &DlqCommand, json_output: bool) -> Result<(), Failure> {
    let target = match command {
        DlqCommand::List { target, .. }
        | DlqCommand::Show { target, .. }
        | DlqCommand::Replay { target, .. } => target,
    };
    let topic = |template: &str| template.replace("{plugin}", &target.plugin);
    let dead_letter_topic = topic(&target.dead_letter_template);
    let settings = target.kafka()?;
    // Statistics of a one-shot command are read by no one.
    let clients =
        Clients::new(settings.clone(), ClientStats::unregistered()).with_statistics_interval(Duration::ZERO);
    let kafka = |e: DeadLetterError| Failure::Usage(format!("Kafka at {}: {e}", settings.bootstrap_servers));
    let timeout = target.timeout;
    // A refused password is named here, not reported later as a read that timed out.
    check_credentials_blocking(&clients, CREDENTIALS_CHECK_TIMEOUT.min(timeout))
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let filter = |filter: &DlqFilter| Filter {
        team: filter.team.clone(),
        since_ms: filter.since.map(epoch_ms),
        installation: filter.installation.clone(),
    };
    if let DlqCommand::Replay {
        filter: chosen,
        dry_run: false,
        ..
    } = command
    {
        let letters = dead_letters::records(&clients, CLIENT, &dead_letter_topic, &filter(chosen), timeout)
            .map_err(kafka)?;
        let events_topic = topic(&target.events_template);
        let replayed = dead_letters::replay(
            &clients,
            CLIENT,
            &dead_letter_topic,
            &letters,
            &events_topic,
            timeout,
        )
        .map_err(kafka)?;
        if json_output {
            println!("{}", json!({"replayed": replayed, "to": events_topic}));
        } else {
            println!("replayed {replayed} dead letters to {events_topic}");
        }
        return Ok(());
    }
    let letters: Vec<DeadLetter> = match command {
        DlqCommand::List { filter: chosen, .. } | DlqCommand::Replay { filter: chosen, .. } => {
            dead_letters::list(&clients, CLIENT, &dead_letter_topic, &filter(chosen), timeout)
                .map_err(kafka)?
        }
        DlqCommand::Show { event_id, .. } => {
            dead_letters::list(&clients, CLIENT, &dead_letter_topic, &Filter::default(), timeout)
                .map_err(kafka)?
                .into_iter()
                .filter(|l| l.event_id.as_deref() == Some(event_id.as_str()))
                .collect()
        }
    };
    let value = serde_json::to_value(&letters).unwrap_or_default();
    if json_output {
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
        return Ok(());
    }
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|l| {
            vec![
                l.id.to_string(),
                text(&l.team),
                l.installation().to_owned(),
                text(&l.event_id),
                text(&l.reason),
                l.attempts.map(|a| a.to_string()).unwrap_or_default(),
                text(&l.dead_lettered_at),
                text(&l.detail).chars().take(60).collect(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "ID",
                "TEAM",
                "INSTALLATION",
                "EVENT",
                "REASON",
                "ATTEMPTS",
                "DEAD-LETTERED",
                "DETAIL"
            ],
            &rows
        )
    );
    if let DlqCommand::Replay { dry_run: true, .. } = command {
        println!("(dry run: {} would be replayed)", letters.len());
    }
    Ok(())
}
