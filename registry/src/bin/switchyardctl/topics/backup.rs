//! `topics backup DIR` and `topics restore DIR`: the compacted control topics' state as files, and back.
//!
//! ```text
//!   backup:  topic ──read_until_caught_up (read_committed)──► Latest (last record per key, tombstones kept)
//!              ──► DIR/<topic>.jsonl (one record a line, in partition and offset order) + DIR/manifest.json
//!   restore: DIR ──► the records, each to its partition (same count) or its key's murmur2 partition
//!              ──► one transaction over every topic: all of the backup becomes visible, or none of it
//! ```
//!
//! What a compacted topic keeps is the latest record of each key, so that is what a backup holds: key,
//! value (null for a tombstone, which is kept so that restoring into a topic that still has the key
//! removes it), headers and timestamp. A record without a key is counted and left out (compaction cannot
//! keep it either). Offsets are not restored: the registry's versions (its `ETag`s) are offsets, so a
//! client holding one from before the restore gets a conflict and reads again.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use serde::{Deserialize, Serialize};
use switchyard_schemas::topics::partition_for_key;
use switchyard_service::follower::{Apply, Record, read_until_caught_up};
use switchyard_service::kafka::{Clients, KafkaContext, metadata_partitions};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Failure;

/// The `format` of a backup's manifest; a restore refuses any other.
pub(super) const FORMAT: &str = "switchyard-control-topics-backup/1";
/// The manifest's file name in a backup directory.
const MANIFEST: &str = "manifest.json";
/// The name of the commands' Kafka clients.
const CLIENT: &str = "switchyardctl-topics-backup";

/// What a backup holds: `DIR/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// When the backup was taken (RFC 3339).
    pub taken_at: String,
    /// The cluster it was taken from.
    pub bootstrap: String,
    /// Each control topic.
    pub topics: Vec<TopicBackup>,
}

/// One topic of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct TopicBackup {
    /// The topic.
    pub topic: String,
    /// Whether it existed when the backup was taken (a restore skips one that did not).
    pub existed: bool,
    /// Its partition count then.
    pub partitions: i32,
    /// Its records' file in the directory, `<topic>.jsonl`.
    pub file: Option<String>,
    /// Keys kept: the latest record of each, tombstones included.
    pub records: usize,
    /// How many of those are tombstones.
    pub tombstones: usize,
    /// Records without a key, left out.
    pub keyless: usize,
}

/// Bytes in a backup file: text when they are UTF-8 (control records are JSON), else base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum Data {
    /// UTF-8 bytes as they are.
    Text(String),
    /// Other bytes.
    Binary {
        /// Standard base64 with padding.
        base64: String,
    },
}

impl Data {
    fn of(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Data::Text(text.to_owned()),
            Err(_) => Data::Binary {
                base64: STANDARD.encode(bytes),
            },
        }
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            Data::Text(text) => Ok(text.as_bytes().to_vec()),
            Data::Binary { base64 } => STANDARD
                .decode(base64)
                .map_err(|e| format!("invalid base64: {e}")),
        }
    }
}

/// A header of a backed-up record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct HeaderData {
    /// Its name.
    pub name: String,
    /// Its value; `null` for a header without one.
    pub value: Option<Data>,
}

/// One line of a backup file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct BackupRecord {
    /// The partition it was in.
    pub partition: i32,
    /// Its offset there (for the record; not restored).
    pub offset: i64,
    /// Its timestamp, restored as the new record's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// Its key.
    pub key: Data,
    /// Its value; `null` for a tombstone.
    pub value: Option<Data>,
    /// Its headers, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderData>,
}

/// The latest record of each key of one topic, as a follower applies them in log order.
#[derive(Debug, Default)]
struct Latest {
    records: BTreeMap<Vec<u8>, BackupRecord>,
    keyless: usize,
}

impl Apply for Latest {
    fn apply(&mut self, record: Record<'_>) {
        let Some(key) = record.key else {
            self.keyless += 1;
            return;
        };
        let headers = record
            .headers
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| HeaderData {
                        name: h.key.to_owned(),
                        value: h.value.map(Data::of),
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.records.insert(
            key.to_vec(),
            BackupRecord {
                partition: record.partition,
                offset: record.offset,
                timestamp_ms: record.timestamp_ms,
                key: Data::of(key),
                value: record.value.map(Data::of),
                headers,
            },
        );
    }
}

impl Latest {
    /// The kept records in the order they were written: by partition, then offset.
    fn in_log_order(self) -> Vec<BackupRecord> {
        let mut records: Vec<BackupRecord> = self.records.into_values().collect();
        records.sort_by_key(|r| (r.partition, r.offset));
        records
    }
}

/// The partition a backed-up record goes to in a topic of `partitions`: its own when the count is the
/// one it was backed up from, else its key's under the contract's murmur2 partitioner (section 2), where
/// every writer of a control topic puts it.
fn target_partition(record: &BackupRecord, key: &[u8], backed_up: i32, partitions: i32) -> i32 {
    if partitions == backed_up && record.partition < partitions {
        record.partition
    } else {
        partition_for_key(key, partitions)
    }
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::Usage(format!("{}: {e}", path.display()))
}

/// The partitions of `topic`, or none when it does not exist.
fn partitions(clients: &Clients, topic: &str, timeout: Duration) -> Result<Vec<i32>, Failure> {
    let consumer: BaseConsumer<KafkaContext> = clients
        .consumer(CLIENT)
        .managed("group.id", format!("{CLIENT}-unused"))
        .managed("allow.auto.create.topics", "false")
        .create()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    metadata_partitions(consumer.client(), topic, timeout)
        .map_err(|e| Failure::Usage(format!("reading the metadata of {topic}: {e}")))
}

/// Backs up `topics` to `dir` (created if missing; refused if it holds a backup already).
pub(super) fn backup(
    clients: &Clients,
    topics: &[String],
    dir: &Path,
    bootstrap: &str,
    timeout: Duration,
) -> Result<Manifest, Failure> {
    let manifest_path = dir.join(MANIFEST);
    if manifest_path.exists() {
        return Err(Failure::Usage(format!(
            "{} holds a backup already; choose a new directory",
            dir.display()
        )));
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut manifest = Manifest {
        format: FORMAT.to_owned(),
        taken_at: now_rfc3339(),
        bootstrap: bootstrap.to_owned(),
        topics: Vec::new(),
    };
    for topic in topics {
        let count = partitions(clients, topic, timeout)?.len();
        if count == 0 {
            manifest.topics.push(TopicBackup {
                topic: topic.clone(),
                existed: false,
                partitions: 0,
                file: None,
                records: 0,
                tombstones: 0,
                keyless: 0,
            });
            continue;
        }
        let mut latest = Latest::default();
        read_until_caught_up(clients, topic, CLIENT, &mut latest, timeout)
            .map_err(|e| Failure::Usage(format!("reading {topic}: {e}; no backup was written of it")))?;
        let keyless = latest.keyless;
        let records = latest.in_log_order();
        let file = format!("{topic}.jsonl");
        let path = dir.join(&file);
        let mut out = BufWriter::new(fs::File::create(&path).map_err(io(&path))?);
        for record in &records {
            serde_json::to_writer(&mut out, record)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
            out.write_all(b"\n").map_err(io(&path))?;
        }
        out.flush().map_err(io(&path))?;
        manifest.topics.push(TopicBackup {
            topic: topic.clone(),
            existed: true,
            partitions: i32::try_from(count).unwrap_or(i32::MAX),
            file: Some(file),
            records: records.len(),
            tombstones: records.iter().filter(|r| r.value.is_none()).count(),
            keyless,
        });
    }
    // The manifest last: a directory without one holds no complete backup.
    let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    fs::write(&manifest_path, text + "\n").map_err(io(&manifest_path))?;
    Ok(manifest)
}

/// Reads a backup's manifest and checks its format.
fn read_manifest(dir: &Path) -> Result<Manifest, Failure> {
    let path = dir.join(MANIFEST);
    let text = fs::read_to_string(&path).map_err(io(&path))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| Failure::Usage(format!("{} is not a backup manifest: {e}", path.display())))?;
    if manifest.format != FORMAT {
        return Err(Failure::Usage(format!(
            "{} is a backup of format {:?}; this switchyardctl restores {FORMAT:?}",
            path.display(),
            manifest.format
        )));
    }
    Ok(manifest)
}

/// Reads one backup file.
fn read_records(path: &Path) -> Result<Vec<BackupRecord>, Failure> {
    let file = fs::File::open(path).map_err(io(path))?;
    let mut records = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        records.push(
            serde_json::from_str(&line)
                .map_err(|e| Failure::Usage(format!("{} line {}: {e}", path.display(), index + 1)))?,
        );
    }
    Ok(records)
}

/// Whether any partition of `topic` holds records (its high watermark above its low one).
fn holds_records(
    clients: &Clients,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<bool, Failure> {
    let consumer: BaseConsumer<KafkaContext> = clients
        .consumer(CLIENT)
        .managed("group.id", format!("{CLIENT}-unused"))
        .managed("allow.auto.create.topics", "false")
        .create()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    for &partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| Failure::Usage(format!("reading the offsets of {topic}/{partition}: {e}")))?;
        if high > low {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes the backup in `dir` back, in one transaction. Every topic must exist and, unless `force`, be
/// empty; all of it is checked before anything is written.
pub(super) fn restore(
    clients: &Clients,
    dir: &Path,
    force: bool,
    timeout: Duration,
) -> Result<Manifest, Failure> {
    let manifest = read_manifest(dir)?;
    let mut plan = Vec::new();
    for topic in manifest.topics.iter().filter(|t| t.existed) {
        let Some(file) = &topic.file else { continue };
        let records = read_records(&dir.join(file))?;
        let partitions = partitions(clients, &topic.topic, timeout)?;
        if partitions.is_empty() {
            return Err(Failure::Usage(format!(
                "the topic {} does not exist: create the topics first (switchyardctl topics apply); nothing \
                 was restored",
                topic.topic
            )));
        }
        if !force && holds_records(clients, &topic.topic, &partitions, timeout)? {
            return Err(Failure::Usage(format!(
                "the topic {} holds records: a restore would lay older state over them. Stop the registry and \
                 the routers, delete and re-create the topics, or pass --force; nothing was restored",
                topic.topic
            )));
        }
        let count = i32::try_from(partitions.len()).unwrap_or(i32::MAX);
        plan.push((topic, records, count));
    }
    let transaction_timeout = timeout.clamp(Duration::from_secs(10), Duration::from_secs(900));
    let producer: ThreadedProducer<KafkaContext> = clients
        .producer(CLIENT)
        .managed("enable.idempotence", "true")
        .managed("transactional.id", format!("{CLIENT}-{}", uuid::Uuid::new_v4()))
        .managed(
            "transaction.timeout.ms",
            transaction_timeout.as_millis().to_string(),
        )
        .create()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let failed = |call: &str| {
        let call = call.to_owned();
        move |e: KafkaError| Failure::Usage(format!("the restore's transaction failed at {call}: {e}"))
    };
    producer
        .init_transactions(timeout)
        .map_err(failed("init_transactions"))?;
    producer
        .begin_transaction()
        .map_err(failed("begin_transaction"))?;
    let written = write(&producer, &plan).and_then(|()| {
        producer
            .commit_transaction(timeout)
            .map_err(failed("commit_transaction"))
    });
    if let Err(error) = written {
        let _ = producer.abort_transaction(Duration::from_secs(5));
        return Err(Failure::Usage(format!("{error}; nothing was restored")));
    }
    Ok(manifest)
}

/// Sends every record of `plan` inside the producer's open transaction.
fn write(
    producer: &ThreadedProducer<KafkaContext>,
    plan: &[(&TopicBackup, Vec<BackupRecord>, i32)],
) -> Result<(), Failure> {
    for (topic, records, partitions) in plan {
        for record in records {
            let bad = |e: String| Failure::Usage(format!("a record of {} in the backup: {e}", topic.topic));
            let key = record.key.bytes().map_err(bad)?;
            let value = record.value.as_ref().map(Data::bytes).transpose().map_err(bad)?;
            let header_values: Vec<(String, Option<Vec<u8>>)> = record
                .headers
                .iter()
                .map(|h| Ok((h.name.clone(), h.value.as_ref().map(Data::bytes).transpose()?)))
                .collect::<Result<_, String>>()
                .map_err(bad)?;
            let mut headers = OwnedHeaders::new();
            for (name, value) in &header_values {
                headers = headers.insert(Header {
                    key: name,
                    value: value.as_deref(),
                });
            }
            let mut out: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topic.topic)
                .key(key.as_slice())
                .partition(target_partition(record, &key, topic.partitions, *partitions))
                .headers(headers);
            if let Some(value) = &value {
                out = out.payload(value.as_slice());
            }
            if let Some(timestamp) = record.timestamp_ms {
                out = out.timestamp(timestamp);
            }
            loop {
                match producer.send(out) {
                    Ok(()) => break,
                    // The queue is bounded: wait for room, do not drop.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        out = back;
                        producer.poll(Duration::from_millis(50));
                    }
                    Err((error, _)) => {
                        return Err(Failure::Usage(format!("writing to {}: {error}", topic.topic)));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64, key: &[u8], value: Option<&[u8]>) -> BackupRecord {
        BackupRecord {
            partition,
            offset,
            timestamp_ms: Some(1_700_000_000_000 + offset),
            key: Data::of(key),
            value: value.map(Data::of),
            headers: Vec::new(),
        }
    }

    #[test]
    fn text_stays_text_and_other_bytes_are_base64() {
        let line = serde_json::to_string(&BackupRecord {
            headers: vec![
                HeaderData {
                    name: "switchyard_source".into(),
                    value: Some(Data::of(b"core.events/1/2")),
                },
                HeaderData {
                    name: "empty".into(),
                    value: None,
                },
            ],
            ..record(0, 7, b"acme/sms-notify", Some(&[0xc3, 0x28, 0x00]))
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"partition":0,"offset":7,"timestamp_ms":1700000000007,"key":"acme/sms-notify","value":{"base64":"wygA"},"headers":[{"name":"switchyard_source","value":"core.events/1/2"},{"name":"empty","value":null}]}"#
        );
        let back: BackupRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back.value.unwrap().bytes().unwrap(), [0xc3, 0x28, 0x00]);
        let tombstone = serde_json::to_string(&record(0, 8, b"k", None)).unwrap();
        assert!(tombstone.contains(r#""value":null"#), "{tombstone}");
        assert_eq!(
            serde_json::from_str::<BackupRecord>(&tombstone).unwrap().value,
            None
        );
        assert!(Data::Binary { base64: "!!".into() }.bytes().is_err());
    }

    #[test]
    fn the_latest_record_of_each_key_is_kept_in_log_order() {
        let mut latest = Latest::default();
        let apply = |latest: &mut Latest, partition, offset, key: Option<&[u8]>, value: Option<&[u8]>| {
            latest.apply(Record {
                partition,
                offset,
                key,
                value,
                headers: None,
                timestamp_ms: Some(offset),
            });
        };
        apply(&mut latest, 0, 0, Some(b"a"), Some(b"1"));
        apply(&mut latest, 1, 0, Some(b"b"), Some(b"1"));
        apply(&mut latest, 0, 1, Some(b"c"), Some(b"1"));
        apply(&mut latest, 0, 2, Some(b"a"), Some(b"2"));
        apply(&mut latest, 0, 3, None, Some(b"keyless"));
        apply(&mut latest, 0, 4, Some(b"c"), None);
        assert_eq!(latest.keyless, 1);
        let kept: Vec<(i32, i64, Data, Option<Data>)> = latest
            .in_log_order()
            .into_iter()
            .map(|r| (r.partition, r.offset, r.key, r.value))
            .collect();
        assert_eq!(
            kept,
            [
                (0, 2, Data::of(b"a"), Some(Data::of(b"2"))),
                // A tombstone is the key's latest state: kept.
                (0, 4, Data::of(b"c"), None),
                (1, 0, Data::of(b"b"), Some(Data::of(b"1"))),
            ]
        );
    }

    #[test]
    fn a_record_keeps_its_partition_unless_the_count_changed() {
        let r = record(2, 0, b"acme/sms-notify", Some(b"{}"));
        assert_eq!(target_partition(&r, b"acme/sms-notify", 3, 3), 2);
        assert_eq!(
            target_partition(&r, b"acme/sms-notify", 3, 6),
            partition_for_key(b"acme/sms-notify", 6)
        );
        assert_eq!(target_partition(&r, b"acme/sms-notify", 3, 1), 0);
    }

    #[test]
    fn a_backup_is_written_and_read_back() {
        let dir = std::env::temp_dir().join(format!("switchyardctl-backup-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let manifest = Manifest {
            format: FORMAT.into(),
            taken_at: now_rfc3339(),
            bootstrap: "kafka:9092".into(),
            topics: vec![],
        };
        fs::write(dir.join(MANIFEST), serde_json::to_string(&manifest).unwrap()).unwrap();
        assert_eq!(read_manifest(&dir).unwrap(), manifest);
        fs::write(
            dir.join(MANIFEST),
            serde_json::to_string(&Manifest {
                format: "something-else/9".into(),
                ..manifest
            })
            .unwrap(),
        )
        .unwrap();
        assert!(
            read_manifest(&dir)
                .unwrap_err()
                .to_string()
                .contains("of format \"something-else/9\"")
        );
        let path = dir.join("t.jsonl");
        fs::write(
            &path,
            format!(
                "{}\n\n{}\n",
                serde_json::to_string(&record(0, 1, b"a", Some(b"x"))).unwrap(),
                serde_json::to_string(&record(0, 2, b"b", None)).unwrap()
            ),
        )
        .unwrap();
        assert_eq!(
            read_records(&path).unwrap(),
            [record(0, 1, b"a", Some(b"x")), record(0, 2, b"b", None)]
        );
        fs::write(&path, "{\"partition\": 0}\n").unwrap();
        assert!(
            read_records(&path)
                .unwrap_err()
                .to_string()
                .contains("t.jsonl line 1")
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
