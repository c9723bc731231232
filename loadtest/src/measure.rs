//! What a load run measures while it runs: end-to-end latency and records out (the [`LatencyReader`]),
//! and once a second the consumer lag of the system under test and the CPU and memory of its processes
//! (the [`Sampler`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use switchyard_service::kafka::{KafkaContext, LagError, LagReader};

use crate::LoadtestError;
use crate::workload::SENT_AT_HEADER;

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// A latency histogram in microseconds, up to an hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Records measured.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `histogram` (microseconds).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// Invariant: every record counted in `records` is in `total` and `window` too, and the other way round:
/// the reader records and counts a record in one critical section, so a [`LatencyReader::take_total`]
/// returns a histogram of exactly as many latencies as records it counts.
#[derive(Debug)]
struct Latencies {
    /// Since the last [`LatencyReader::take_total`].
    total: Histogram<u64>,
    /// Since the last [`LatencyReader::take_window`].
    window: Histogram<u64>,
    /// Records counted since the reader started (never reset).
    records: u64,
}

/// Everything the reader measured since the last [`LatencyReader::take_total`], and its running count at
/// that moment, taken together.
#[derive(Debug)]
pub struct Totals {
    /// One latency per record read (microseconds).
    pub latencies: Histogram<u64>,
    /// Records counted since the reader started, at the moment `latencies` was taken.
    pub records: u64,
}

/// Reads every plugin topic from its current end as a `read_committed` consumer and records, for each
/// record, now minus its [`SENT_AT_HEADER`].
pub struct LatencyReader {
    latencies: Arc<Mutex<Latencies>>,
    records: Arc<AtomicU64>,
    since_us: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), LoadtestError>>>,
}

impl LatencyReader {
    /// Starts reading `topics` from their current ends.
    pub fn start(bootstrap: &str, topics: &[String]) -> Result<Self, LoadtestError> {
        let consumer: BaseConsumer<KafkaContext> = crate::kafka::clients(bootstrap)
            .consumer("loadtest-latency")
            .managed(
                "group.id",
                format!("switchyard-loadtest-latency-{}", uuid::Uuid::now_v7()),
            )
            .managed("enable.auto.commit", "false")
            .managed("isolation.level", "read_committed")
            .tunable("fetch.wait.max.ms", "10")
            .tunable("fetch.queue.backoff.ms", "10")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        let timeout = Duration::from_secs(10);
        for topic in topics {
            let metadata = consumer
                .fetch_metadata(Some(topic), timeout)
                .map_err(LoadtestError::kafka(format!("reading the metadata of {topic}")))?;
            for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                let (_, high) = consumer
                    .fetch_watermarks(topic, partition.id(), timeout)
                    .map_err(LoadtestError::kafka(format!(
                        "reading the end offsets of {topic}"
                    )))?;
                assignment
                    .add_partition_offset(topic, partition.id(), Offset::Offset(high))
                    .map_err(LoadtestError::kafka(format!("assigning {topic}")))?;
            }
        }
        consumer
            .assign(&assignment)
            .map_err(LoadtestError::kafka("assigning the plugin topics"))?;
        let latencies = Arc::new(Mutex::new(Latencies {
            total: histogram(),
            window: histogram(),
            records: 0,
        }));
        let records = Arc::new(AtomicU64::new(0));
        let since_us = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (latencies, records, since, stop) =
                (latencies.clone(), records.clone(), since_us.clone(), stop.clone());
            std::thread::Builder::new()
                .name("latency-reader".into())
                .spawn(move || read_loop(&consumer, &latencies, &records, &since, &stop))
                .map_err(|error| LoadtestError::Process {
                    what: "starting the latency reader".into(),
                    error,
                })?
        };
        Ok(Self {
            latencies,
            records,
            since_us,
            stop,
            thread: Some(thread),
        })
    }

    /// From now on, counts and measures only records sent at or after `sent_us` (a step ignores what an
    /// earlier step left in flight).
    pub fn only_sent_since(&self, sent_us: u64) {
        self.since_us.store(sent_us, Ordering::Relaxed);
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// The latencies since the last call, and a fresh window.
    pub fn take_window(&self) -> Histogram<u64> {
        let mut latencies = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut latencies.window, histogram())
    }

    /// Every latency since the last call, with the count of records read so far at that moment: the
    /// difference of two calls' `records` is the `len()` of the second one's histogram.
    pub fn take_total(&self) -> Totals {
        let mut latencies = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        Totals {
            latencies: std::mem::replace(&mut latencies.total, histogram()),
            records: latencies.records,
        }
    }

    /// Stops reading; reports a failure of the reader.
    pub fn stop(mut self) -> Result<(), LoadtestError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }
}

impl Drop for LatencyReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read_loop(
    consumer: &BaseConsumer<KafkaContext>,
    latencies: &Mutex<Latencies>,
    records: &AtomicU64,
    since_us: &AtomicU64,
    stop: &AtomicBool,
) -> Result<(), LoadtestError> {
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => {
                let now = now_us();
                let sent = message.headers().and_then(|headers| {
                    headers
                        .iter()
                        .find(|h| h.key == SENT_AT_HEADER)
                        .and_then(|h| h.value)
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(|v| v.parse::<u64>().ok())
                });
                if let Some(sent) = sent
                    && sent >= since_us.load(Ordering::Relaxed)
                {
                    let us = now.saturating_sub(sent).max(1);
                    // One uncontended lock per record (the sampler takes it once a second): recorded and
                    // counted together, so the latency samples and the records read always agree.
                    let mut shared = latencies.lock().unwrap_or_else(|p| p.into_inner());
                    shared.total.saturating_record(us);
                    shared.window.saturating_record(us);
                    shared.records += 1;
                    records.store(shared.records, Ordering::Relaxed);
                }
            }
            Some(Err(error)) => {
                return Err(LoadtestError::kafka("reading the plugin topics")(error));
            }
            None => {}
        }
    }
    Ok(())
}

/// CPU time and resident memory of a set of processes, read from `/proc`.
#[derive(Debug, Clone)]
pub struct Processes {
    pids: Vec<u32>,
    ticks_per_second: f64,
}

/// One reading of [`Processes`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// CPU seconds (user + system) so far, summed over the processes.
    pub cpu_seconds: f64,
    /// Resident memory now, MiB, summed.
    pub rss_mib: f64,
}

impl Processes {
    /// These processes.
    pub fn new(pids: Vec<u32>) -> Self {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100);
        Self {
            pids,
            ticks_per_second: ticks as f64,
        }
    }

    /// Every running process whose name (`/proc/<pid>/comm`, at most 15 bytes) is `name`'s first 15 bytes.
    pub fn named(name: &str) -> Self {
        let comm = &name.as_bytes()[..name.len().min(15)];
        let mut pids = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if std::fs::read(entry.path().join("comm"))
                    .is_ok_and(|found| found.strip_suffix(b"\n").unwrap_or(&found) == comm)
                {
                    pids.push(pid);
                }
            }
        }
        Self::new(pids)
    }

    /// The process ids.
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// The current reading; processes that are gone count as zero.
    pub fn usage(&self) -> Usage {
        let mut usage = Usage::default();
        for pid in &self.pids {
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                // The command name may contain spaces: the fields after it start past the last ')'.
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .map_or("", |(_, rest)| rest)
                    .split_whitespace()
                    .collect();
                let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
                // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name.
                usage.cpu_seconds += (ticks(11) + ticks(12)) / self.ticks_per_second;
            }
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                let kib = status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmRSS:"))
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                    .unwrap_or(0.0);
                usage.rss_mib += kib / 1024.0;
            }
        }
        usage
    }
}

/// The consumer lag of a group on a topic, read with one long-lived consumer (it never joins the group):
/// the service's [`LagReader`], the one reader of a group's lag.
pub struct LagWatcher {
    reader: LagReader,
    topic: String,
    partitions: Vec<i32>,
}

/// A failed read of the group's offsets as the tool's error.
fn lag_failed(error: LagError) -> LoadtestError {
    match error {
        LagError::Client(error) => error.into(),
        LagError::Kafka {
            action,
            topic,
            group,
            source,
        } => LoadtestError::kafka(format!("{action} of {topic} for the group {group}"))(*source),
    }
}

impl LagWatcher {
    /// A watcher of `group` on `topic`.
    pub fn new(bootstrap: &str, group: &str, topic: &str) -> Result<Self, LoadtestError> {
        let reader = LagReader::new(&crate::kafka::clients(bootstrap), "loadtest-lag", group)?;
        let partitions = reader
            .partitions(topic, Duration::from_secs(10))
            .map_err(lag_failed)?;
        Ok(Self {
            reader,
            topic: topic.to_owned(),
            partitions,
        })
    }

    /// How far the group is through the topic: the sum over partitions of its committed offsets and of
    /// the partitions' end offsets, both counted from each partition's start (`None` when the broker did
    /// not answer).
    pub fn progress(&self) -> Option<(u64, u64)> {
        let partitions = self
            .reader
            .lag(&self.topic, &self.partitions, Duration::from_secs(2))
            .ok()?;
        let (mut done, mut total) = (0u64, 0u64);
        for partition in partitions {
            let held = (partition.end - partition.low).max(0) as u64;
            total += held;
            done += held - partition.lag as u64;
        }
        Some((done, total))
    }

    /// The group's committed offset of each partition, indexed by partition id (0 where it committed
    /// nothing yet; `None` when the group coordinator did not answer). Asks the group coordinator only, not
    /// the partitions' leaders: it answers while a leader is down or paused.
    pub fn committed(&self) -> Option<Vec<i64>> {
        let committed = self
            .reader
            .committed(&self.topic, &self.partitions, Duration::from_secs(2))
            .ok()?;
        let width = self.partitions.iter().max().map_or(0, |&p| p as usize + 1);
        let mut offsets = vec![0; width];
        for (partition, at) in committed {
            if let (Some(at), Ok(index)) = (at, usize::try_from(partition))
                && let Some(slot) = offsets.get_mut(index)
            {
                *slot = at;
            }
        }
        Some(offsets)
    }

    /// Partitions of the topic.
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// Records of the topic not yet committed by the group (`None` when the broker did not answer).
    pub fn lag(&self) -> Option<u64> {
        self.progress().map(|(done, total)| total - done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_milliseconds() {
        let mut h = histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.5, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.5, "{p:?}");
        assert_eq!(Percentiles::of(&histogram()), Percentiles::default());
    }

    #[test]
    fn this_process_uses_cpu_and_memory() {
        let me = Processes::new(vec![std::process::id()]);
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        let usage = me.usage();
        assert!(usage.cpu_seconds > 0.0 && usage.rss_mib > 1.0, "{usage:?}");
        assert!(Processes::named("no-such-process-name").pids().is_empty());
    }
}
