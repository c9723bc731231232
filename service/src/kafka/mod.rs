//! Every Kafka client of every Switchyard binary is made here.
//!
//! - [`KafkaSettings`]: the `[kafka]` section each service's configuration holds: bootstrap servers and
//!   three maps of librdkafka pass-through options (all clients, consumers, producers).
//! - [`Clients`]: the one builder. A client gets the options Switchyard sets for correctness (managed:
//!   the user may not set them), then its tunable defaults, then the user's options; a user option that
//!   names a managed one is an error that names the key. Every client reports librdkafka statistics into
//!   [`ClientStats`] and logs its client-level errors through [`log_client_error`].
//! - [`check_credentials`]: the start-up check that turns a refused SASL password into an error.
//! - [`metadata_partitions`]: a topic's partitions, or none if it does not exist.
//! - [`LagReader`] and [`group_lag`]: a consumer group's committed offsets against each partition's end.
//! - [`topic_plan`]: the topics a deployment needs with their recommended settings, and the plan that
//!   brings a cluster to them (pure).

mod clients;
mod context;
mod credentials;
mod lag;
pub mod topic_plan;

use std::time::Duration;

pub use clients::{ClientBuilder, ClientError, Clients, KafkaSettings, MANAGED_OPTIONS, Role};
pub use context::{ClientStats, DeliveryTally, KafkaContext, log_client_error};
pub use credentials::{
    CREDENTIALS_CHECK_TIMEOUT, CredentialsError, check_credentials, check_credentials_blocking,
};
pub use lag::{LagError, LagReader, PartitionLag, group_lag, partition_lag};
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;

/// The partitions of `topic`, or an empty list if it does not exist.
pub fn metadata_partitions<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(Vec::new());
    };
    match entry.error() {
        None => Ok(entry.partitions().iter().map(|p| p.id()).collect()),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => Ok(Vec::new()),
        Some(code) => Err(KafkaError::MetadataFetch(RDKafkaErrorCode::from(code))),
    }
}
