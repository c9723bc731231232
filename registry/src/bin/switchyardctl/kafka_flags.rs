//! The Kafka settings of the commands that talk to Kafka directly (`dlq`, `topics`), taken the way the
//! services take theirs: the `[kafka]` section of `--kafka-config` (any service's configuration file will
//! do; other sections are ignored), then `SWITCHYARDCTL__KAFKA__...` (e.g.
//! `SWITCHYARDCTL__KAFKA__OPTIONS__SASL_PASSWORD`), then `--bootstrap` and `-X key=value`.

use std::path::PathBuf;
use std::time::Duration;

use switchyard_service::config::load_layers;
use switchyard_service::kafka::{
    CREDENTIALS_CHECK_TIMEOUT, ClientStats, Clients, KafkaSettings, check_credentials_blocking,
};

use crate::Failure;

/// How to reach Kafka: flattened into each command that does.
#[derive(Debug, clap::Args)]
pub(crate) struct KafkaFlags {
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
}

/// The `[kafka]` section of `--kafka-config`; everything else in the file is ignored.
#[derive(Debug, serde::Deserialize)]
struct KafkaFile {
    kafka: KafkaSettings,
}

/// Prefix of the environment overrides of the Kafka settings.
const KAFKA_ENV_PREFIX: &str = "SWITCHYARDCTL";

fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

impl KafkaFlags {
    /// The Kafka settings: defaults < `--kafka-config` < `SWITCHYARDCTL__KAFKA__...` < flags.
    pub(crate) fn settings(&self) -> Result<KafkaSettings, Failure> {
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

    /// The settings and a client builder on them, once the broker accepted the credentials: a refused
    /// password is named here, not reported later as a read that timed out.
    pub(crate) fn connect(&self, timeout: Duration) -> Result<(KafkaSettings, Clients), Failure> {
        let settings = self.settings()?;
        // Statistics of a one-shot command are read by no one.
        let clients = Clients::new(settings.clone(), ClientStats::unregistered())
            .with_statistics_interval(Duration::ZERO);
        check_credentials_blocking(&clients, CREDENTIALS_CHECK_TIMEOUT.min(timeout))
            .map_err(|e| Failure::Usage(e.to_string()))?;
        Ok((settings, clients))
    }
}
