//! Which plugin topics exist, checked against broker metadata before routing to them.
//!
//! Producing to a missing topic inside a transaction would fail the whole transaction after
//! `message.timeout.ms`; checking first turns that into one dead letter for that plugin while the others
//! keep flowing. A topic seen to exist is checked again every `topic_refresh_ms`; a missing one every
//! `missing_topic_recheck_ms`, so a topic created after its plugin registered is picked up within about a
//! second. The checks are blocking metadata calls on the pipeline thread, bounded by those intervals.
//! After a failed transaction, the topics it routed to are checked again on their next use
//! ([`TopicCache::recheck_used`]): a topic deleted under the router fails the transaction before its cached
//! answer expires, and the replay must see it missing rather than fail the same way again. Only those
//! topics: during a broker outage every check waits for its timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use tracing::{info, warn};

use crate::pipeline::plan::TopicState;

const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the broker about a topic: its partitions, none when it does not exist. Blocking, bounded by
/// `timeout`.
pub trait TopicLookup {
    /// The topic's partitions.
    fn partitions(&self, topic: &str, timeout: Duration) -> Result<Vec<i32>, KafkaError>;
}

/// A cache of topic existence. It is asked once per output record, so its map uses a fast hasher (topic
/// names are ours, not an attacker's) and its caller reads the clock once per input record.
pub struct TopicCache {
    refresh: Duration,
    recheck_missing: Duration,
    known: HashMap<Arc<str>, Entry, foldhash::fast::RandomState>,
}

/// What the cache knows of one topic.
struct Entry {
    state: TopicState,
    /// When it was checked; `None`: check again on the next use.
    checked: Option<Instant>,
    /// Answered since the last [`TopicCache::forget_use`]: the open transaction may route to it.
    used: bool,
}

impl TopicCache {
    /// A cache with the two re-check intervals.
    pub fn new(refresh: Duration, recheck_missing: Duration) -> Self {
        Self {
            refresh,
            recheck_missing,
            known: HashMap::default(),
        }
    }

    /// Whether `topic` exists at `now`, asking the broker when the cached answer is stale. A metadata
    /// failure keeps the previous answer (or assumes the topic exists, so that an outage stalls and retries
    /// rather than dead-letters).
    pub fn state<L: TopicLookup>(&mut self, lookup: &L, topic: &Arc<str>, now: Instant) -> TopicState {
        if let Some(entry) = self.known.get_mut(topic)
            && let Some(checked) = entry.checked
        {
            let ttl = if entry.state == TopicState::Exists {
                self.refresh
            } else {
                self.recheck_missing
            };
            if now.duration_since(checked) < ttl {
                entry.used = true;
                return entry.state;
            }
        }
        let previous = self.known.get(topic).map(|entry| entry.state);
        let state = match lookup.partitions(topic, METADATA_TIMEOUT) {
            Ok(partitions) if partitions.is_empty() => TopicState::Missing,
            Ok(_) => TopicState::Exists,
            Err(error) => {
                warn!(%error, %topic, "checking a plugin topic failed; keeping the previous answer");
                previous.unwrap_or(TopicState::Exists)
            }
        };
        if previous != Some(state) {
            match state {
                TopicState::Exists if previous.is_some() => info!(%topic, "plugin topic now exists"),
                TopicState::Missing => {
                    warn!(%topic, "plugin topic does not exist; its copies go to the dead-letter topic")
                }
                TopicState::Exists => {}
            }
        }
        self.known.insert(
            Arc::clone(topic),
            Entry {
                state,
                checked: Some(now),
                used: true,
            },
        );
        state
    }

    /// The transaction that may have routed to the topics answered since the last [`Self::forget_use`]
    /// failed: each of them is asked about again on its next use.
    pub fn recheck_used(&mut self) {
        for entry in self.known.values_mut().filter(|entry| entry.used) {
            entry.checked = None;
            entry.used = false;
        }
    }

    /// The transaction committed: the topics it used start afresh.
    pub fn forget_use(&mut self) {
        for entry in self.known.values_mut() {
            entry.used = false;
        }
    }
}
