//! Default topic names of the contract. Every component makes them configurable.

/// Input: core events, partitioned, key = team id.
pub const CORE_EVENTS: &str = "core.events";
/// Compacted: key = plugin id, value = manifest JSON, null = deregistered.
pub const PLUGINS: &str = "switchyard.plugins";
/// Compacted: key = `<team id>/<plugin id>[/<installation id>]`, value = enablement JSON, null = removed.
pub const ENABLEMENTS: &str = "switchyard.enablements";
/// What the router could not accept or deliver.
pub const CORE_EVENTS_DLQ: &str = "core.events.dlq";
/// Default template of a plugin's topic; `{plugin}` is replaced by the plugin id.
pub const PLUGIN_EVENTS_TEMPLATE: &str = "plugin.{plugin}.events";
/// Default template of a plugin's dead-letter topic, written by its workers.
pub const PLUGIN_DEAD_LETTER_TEMPLATE: &str = "plugin.{plugin}.dlq";
/// Compacted: key = `<team id>/<plugin id>[/<installation id>]`, value = [`crate::configs::ConfigRecord`],
/// null = removed.
pub const CONFIGS: &str = "switchyard.configs";
/// Compacted: key = backfill id, value = [`crate::backfill::Backfill`] (a request), written by the registry.
pub const BACKFILLS: &str = "switchyard.backfills";
/// Compacted: key = `<backfill id>/<core.events partition>`, value = [`crate::backfill::Progress`],
/// written by the router inside its transactions.
pub const BACKFILL_PROGRESS: &str = "switchyard.backfill-progress";
/// Plugin results: CloudEvents the workers write back, key = team id.
pub const PLUGIN_RESULTS: &str = "core.plugin-results";
/// Compacted: key = `<dead-letter topic>/<partition>/<offset>` of a plugin's dead letter, value =
/// [`crate::dead_letter::ReplayRecord`] (its replays), null = forgotten. Written by whoever replays a dead
/// letter (the registry, `switchyardctl dlq replay`), in the transaction that writes the replayed copy.
pub const DEAD_LETTER_REPLAYS: &str = "switchyard.dead-letter-replays";

/// The topic a plugin's events go to under a template such as [`PLUGIN_EVENTS_TEMPLATE`].
pub fn plugin_events_topic(template: &str, plugin_id: &str) -> String {
    template.replace("{plugin}", plugin_id)
}

/// The partition a keyed record lands in among `partitions` under the murmur2 partitioner the contract asks
/// every writer to use (section 2: the Java clients' default, librdkafka's `murmur2_random`): Kafka's
/// [`murmur2`] of the key with the sign bit cleared, modulo the partitions. With it a reader finds a team's
/// partition of `core.events` or of a plugin topic without a producer.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions.max(1) as u32) as i32
}

/// Kafka's murmur2 hash of a record key (the Java client's `Utils.murmur2`), as an unsigned 32-bit value.
pub fn murmur2(key: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let mut h = SEED ^ key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(first) = rest.first() {
        h ^= u32::from(*first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// The `switchyard_source` header value: `<topic>/<partition>/<offset>` of the input record.
pub fn source_header(topic: &str, partition: i32, offset: i64) -> String {
    format!("{topic}/{partition}/{offset}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            plugin_events_topic(PLUGIN_EVENTS_TEMPLATE, "sms-notify"),
            "plugin.sms-notify.events"
        );
        assert_eq!(source_header(CORE_EVENTS, 3, 42), "core.events/3/42");
    }

    #[test]
    fn murmur2_is_the_java_clients() {
        // Kafka's own vectors (UtilsTest.testMurmur2), signed as Java prints them.
        for (key, java) in [
            (&b"21"[..], -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key) as i32, java, "{}", String::from_utf8_lossy(key));
        }
        // Java's toPositive, then the modulo: "21" hashes to -973932308, positive 1173551340.
        assert_eq!(partition_for_key(b"21", 12), 1_173_551_340 % 12);
        assert_eq!(partition_for_key(b"acme", 1), 0);
    }
}
