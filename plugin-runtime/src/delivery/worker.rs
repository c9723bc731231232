//! Delivering one event: apply its installation's config if it changed, call the plugin, retry with backoff,
//! publish results, or dead-letter it. Returns only when the event is done (its offset may be committed)
//! or shutdown interrupted it (it will be read again).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use switchyard_service::kafka::KafkaContext;
use switchyard_service::traces::{KeyValue, SpanKind, TraceSpan, Traces};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::configs::{Configs, InstallationId};
use crate::delivery::breaker::Breaker;
use crate::delivery::records::{self, DeadReason, Failure, OutRecord};
use crate::delivery::retry::RetryPolicy;
use crate::delivery::spans;
use crate::event::Decoded;
use crate::metrics::Metrics;
use crate::plugin::{BatchItem, Context, DEFAULT_INSTALLATION, Event, EventMeta, Outcome, Plugin};

/// A routed record as read, with its decoding.
#[derive(Debug)]
pub struct Routed {
    /// The record as read.
    pub record: OutRecord,
    /// `<topic>/<partition>/<offset>`.
    pub source: String,
    /// Its Kafka timestamp.
    pub timestamp: Option<SystemTime>,
    /// The event, or why it does not decode.
    pub decoded: Result<Decoded, String>,
}

/// The record as read and where, for its dead letter.
#[derive(Clone, Copy)]
struct Original<'a> {
    record: &'a OutRecord,
    source: &'a str,
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Delivered or dead-lettered: the offset may be committed.
    Done,
    /// Shutdown came first: not done, it will be read again.
    Abandoned,
}

/// Where a worker writes.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// `plugin.<id>.dlq`.
    pub dead_letter: String,
    /// `core.plugin-results`.
    pub results: String,
}

/// Where a worker's dead letters and results go: Kafka (a [`FutureProducer`]) when it runs, a recorder in
/// tests.
pub trait OutputSink: Send + Sync + 'static {
    /// Writes `record` to `topic`; resolves once the write is acknowledged, or with why it was not.
    fn write(&self, topic: &str, record: &OutRecord) -> impl Future<Output = Result<(), String>> + Send;
}

impl OutputSink for FutureProducer<KafkaContext> {
    async fn write(&self, topic: &str, record: &OutRecord) -> Result<(), String> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(key) = &record.key {
            out = out.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            out = out.payload(value.as_slice());
        }
        self.send(out, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(error, _)| error.to_string())
    }
}

/// What every delivery shares.
pub struct Worker<P, S = FutureProducer<KafkaContext>> {
    /// The plugin.
    pub plugin: P,
    /// Its id.
    pub plugin_id: String,
    /// Writes dead letters and results.
    pub producer: S,
    /// Output topics.
    pub outputs: Outputs,
    /// The retry budget.
    pub retry: RetryPolicy,
    /// Outage detection.
    pub breaker: Mutex<Breaker>,
    /// `true` while an outage is declared; the consume loop pauses on it.
    pub outage: watch::Sender<bool>,
    /// Held by the one event that probes during an outage.
    pub probing: AtomicBool,
    /// Whether the plugin takes named installations (its manifest's `installations`); without it, events
    /// of any installation but the default one are dead-lettered as `config_rejected`.
    pub installations: bool,
    /// The installations' configs.
    pub configs: Arc<Configs>,
    /// Per team and installation, the config version last given to `initialize` and whether the plugin
    /// accepted it.
    pub applied: Mutex<HashMap<InstallationId, (u64, bool)>>,
    /// Longest wait for configs to be complete up to an event's time.
    pub config_wait: Duration,
    /// Metrics.
    pub metrics: Metrics,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
    /// Where a span per delivery attempt goes; `None`: tracing is off.
    pub traces: Option<Traces>,
}

use switchyard_schemas::times::now_rfc3339;

/// Why a team's config could not be applied before its event.
enum ConfigProblem {
    /// Try again later.
    Transient(String),
    /// The plugin refused it: the team's events are dead-lettered until a new config arrives.
    Refused(String),
}

/// The failures of one event so far.
#[derive(Default)]
struct Failures {
    attempts: u32,
    counted: u32,
    first: Option<(Instant, String)>,
    last: Option<String>,
}

impl Failures {
    fn note(&mut self) {
        let now = now_rfc3339();
        if self.first.is_none() {
            self.first = Some((Instant::now(), now.clone()));
        }
        self.last = Some(now);
    }

    fn failure(&self, reason: DeadReason, detail: String) -> Failure {
        Failure {
            reason,
            detail,
            attempts: self.attempts,
            first_failure: self.first.as_ref().map(|(_, t)| t.clone()),
            last_failure: self.last.clone(),
        }
    }
}

/// One event of a call, with what its delivery has been through.
struct Slot {
    /// Where it was read; the caller's handle on it.
    at: (i32, i64),
    record: OutRecord,
    source: String,
    ctx: Context,
    event: Event,
    failures: Failures,
    /// "Slow down" answers so far (they do not count against the retry budget).
    throttles: u32,
}

impl Slot {
    fn original(&self) -> Original<'_> {
        Original {
            record: &self.record,
            source: &self.source,
        }
    }
}

/// What a call tells the loop while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// This event is done (delivered or dead-lettered): its lane may go on.
    Done((i32, i64)),
    /// The plugin said "slow down", with how long if it said.
    SlowDown(Option<Duration>),
}

/// Whether the plugin takes batches: then every call goes through [`Plugin::execute_batch`], even of one
/// event, so that a batch plugin's service always gets the batch form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallForm {
    /// [`Plugin::execute`], one event per call.
    Single,
    /// [`Plugin::execute_batch`].
    Batch,
}

/// Longest wait before calling again after a "slow down" without `Retry-After`. Quotas such as Google's refill
/// every minute: a retry backoff growing to minutes would leave a refilled quota unused (the team's pace
/// already keeps further calls back).
pub const THROTTLED_WAIT_CAP: Duration = Duration::from_secs(8);

/// How long a call waits after its events' `throttles`-th "slow down": the plugin's `Retry-After` when it gave
/// one, else the retry backoff capped at [`THROTTLED_WAIT_CAP`].
fn throttled_wait(retry: &RetryPolicy, throttles: u32, after: Option<Duration>) -> Duration {
    match after {
        Some(after) => retry.delay(throttles, Some(after), rand::random::<f64>()),
        None => retry
            .delay(throttles, None, rand::random::<f64>())
            .min(THROTTLED_WAIT_CAP),
    }
}

impl<P: Plugin, S: OutputSink> Worker<P, S> {
    /// Delivers one event until it is done, or `cancel` (shutdown, or its partition revoked) interrupts.
    pub async fn deliver(&self, routed: Routed, cancel: &CancellationToken) -> Completion {
        let ends = self
            .deliver_call(vec![((0, 0), routed)], CallForm::Single, cancel, |_| {})
            .await;
        ends.first()
            .map_or(Completion::Abandoned, |(_, completion)| *completion)
    }

    /// Delivers the events of one call (one event, or a batch of events of one team's installation) until
    /// each is done, or
    /// `cancel` (shutdown, or their partition revoked) interrupts. `signal` hears of each event as soon as it
    /// is done (its lane may go on while the call retries the others) and of every "slow down" answer.
    /// Returns every event's end.
    ///
    /// Takes the records: their decoded attributes and data move into the [`Context`]s the plugin sees, so
    /// no attempt copies an event's JSON. Each event keeps its own retry budget; an event that is retried is
    /// called again with the others still pending, after the longest of their backoffs.
    pub async fn deliver_call(
        &self,
        events: Vec<((i32, i64), Routed)>,
        form: CallForm,
        cancel: &CancellationToken,
        mut signal: impl FnMut(Signal),
    ) -> Vec<((i32, i64), Completion)> {
        let mut ends = Vec::with_capacity(events.len());
        let mut pending = Vec::with_capacity(events.len());
        let mut timestamp = None;
        for (at, routed) in events {
            let Routed {
                record,
                source,
                timestamp: time,
                decoded,
            } = routed;
            match decoded {
                Ok(Decoded {
                    meta,
                    data,
                    data_json,
                    event,
                    ..
                }) => {
                    timestamp = timestamp.max(time);
                    pending.push(Slot {
                        at,
                        record,
                        source,
                        ctx: Context {
                            meta,
                            data,
                            data_json,
                            attempt: 0,
                            traceparent: None,
                        },
                        event,
                        failures: Failures::default(),
                        throttles: 0,
                    });
                }
                Err(detail) => {
                    let failure = Failures::default().failure(DeadReason::InvalidEvent, detail);
                    let original = Original {
                        record: &record,
                        source: &source,
                    };
                    let completion = self.dead_letter(original, failure, cancel).await;
                    self.end(at, completion, &mut ends, &mut signal);
                }
            }
        }
        // The scheduler gives a call the events of one team's installation.
        let Some((team, installation)) = pending
            .first()
            .map(|slot| (slot.ctx.meta.team_id.clone(), slot.ctx.meta.installation.clone()))
        else {
            return ends;
        };
        while !pending.is_empty() {
            if cancel.is_cancelled() {
                break;
            }
            // During an outage one call probes; the others wait for its success without using budget.
            let probing = if *self.outage.borrow() {
                match self.wait_out_outage(cancel).await {
                    None => break,
                    Some(probing) => probing,
                }
            } else {
                false
            };
            let outcomes = match self.ensure_config(&team, &installation, timestamp, cancel).await {
                Err(ConfigProblem::Refused(detail)) => {
                    for mut slot in pending.drain(..) {
                        slot.failures.note();
                        let failure = slot.failures.failure(DeadReason::ConfigRejected, detail.clone());
                        let completion = self.dead_letter(slot.original(), failure, cancel).await;
                        self.end(slot.at, completion, &mut ends, &mut signal);
                    }
                    break;
                }
                Err(ConfigProblem::Transient(reason)) => {
                    pending.iter().map(|_| Outcome::retry(reason.clone())).collect()
                }
                Ok(()) => {
                    let started = Instant::now();
                    let outcomes = self.call(&mut pending, form).await;
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    for (slot, outcome) in pending.iter().zip(&outcomes) {
                        log_call(&slot.ctx.meta, outcome, elapsed_ms);
                    }
                    outcomes
                }
            };
            if probing {
                self.probing.store(false, Ordering::SeqCst);
            }
            let ok = !outcomes.iter().any(|o| matches!(o, Outcome::Retry { .. }));
            let open = self.note_call(&team, ok);
            let mut retried = Vec::new();
            let mut delay = Duration::ZERO;
            for (mut slot, outcome) in pending.drain(..).zip(outcomes) {
                let completion = match outcome {
                    Outcome::Done(results) => {
                        let completion = self.publish_results(&slot.ctx.meta, &results, cancel).await;
                        if completion == Completion::Done {
                            self.metrics.events.with_label_values(&["done"]).inc();
                        }
                        completion
                    }
                    Outcome::DeadLetter { reason } => {
                        slot.failures.note();
                        let failure = slot.failures.failure(DeadReason::PluginDeadLetter, reason);
                        self.dead_letter(slot.original(), failure, cancel).await
                    }
                    Outcome::Throttled { reason, after } => {
                        // Not the event's fault: no budget is used; the loop slows the team down.
                        debug!(plugin = %self.plugin_id, team, %reason, "the plugin asked to slow down");
                        self.metrics.events.with_label_values(&["throttled"]).inc();
                        signal(Signal::SlowDown(after));
                        slot.throttles += 1;
                        delay = delay.max(throttled_wait(&self.retry, slot.throttles, after));
                        retried.push(slot);
                        continue;
                    }
                    Outcome::Retry { reason, after } => {
                        slot.failures.note();
                        if open {
                            // An outage is not the event's fault: no budget is used.
                            debug!(plugin = %self.plugin_id, %reason, "call failed during an outage");
                            retried.push(slot);
                            continue;
                        }
                        slot.failures.counted += 1;
                        let failures = &slot.failures;
                        let elapsed = failures
                            .first
                            .as_ref()
                            .map_or(Duration::ZERO, |(at, _)| at.elapsed());
                        if self.retry.allows(failures.counted, elapsed) {
                            self.metrics.events.with_label_values(&["retried"]).inc();
                            let wait = self.retry.delay(failures.counted, after, rand::random::<f64>());
                            debug!(plugin = %self.plugin_id, team, %reason, ?wait, "retrying");
                            delay = delay.max(wait);
                            retried.push(slot);
                            continue;
                        }
                        let detail = format!(
                            "gave up after {} calls over {:.0} s; last failure: {reason}",
                            failures.attempts,
                            elapsed.as_secs_f64()
                        );
                        let failure = failures.failure(DeadReason::RetriesExhausted, detail);
                        self.dead_letter(slot.original(), failure, cancel).await
                    }
                };
                self.end(slot.at, completion, &mut ends, &mut signal);
            }
            pending = retried;
            if !pending.is_empty() && !delay.is_zero() {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
        // Shutdown or revocation came first: not done, they will be read again.
        ends.extend(pending.into_iter().map(|slot| (slot.at, Completion::Abandoned)));
        ends
    }

    /// Calls the plugin once for the pending events: one outcome per event, in their order.
    async fn call(&self, pending: &mut [Slot], form: CallForm) -> Vec<Outcome> {
        for slot in pending.iter_mut() {
            slot.failures.attempts += 1;
            slot.ctx.attempt = slot.failures.attempts;
        }
        let attempt_spans = self
            .traces
            .as_ref()
            .map(|traces| self.start_spans(traces, pending));
        self.metrics.in_flight.inc();
        let started = Instant::now();
        let mut outcomes = match form {
            CallForm::Single => {
                let mut outcomes = Vec::with_capacity(pending.len());
                for slot in pending.iter() {
                    outcomes.push(self.plugin.execute(&slot.ctx, &slot.event).await);
                }
                outcomes
            }
            CallForm::Batch => {
                let items: Vec<BatchItem<'_>> = pending
                    .iter()
                    .map(|slot| BatchItem {
                        ctx: &slot.ctx,
                        event: &slot.event,
                    })
                    .collect();
                self.plugin.execute_batch(&items).await
            }
        };
        self.metrics.in_flight.dec();
        self.metrics
            .execute_seconds
            .observe(started.elapsed().as_secs_f64());
        if outcomes.len() != pending.len() {
            warn!(plugin = %self.plugin_id, events = pending.len(), outcomes = outcomes.len(),
                "the plugin answered a batch with a different number of outcomes; retrying the unanswered");
            outcomes.truncate(pending.len());
            let reason = "the plugin gave no outcome for this event".to_owned();
            outcomes.resize_with(pending.len(), || Outcome::retry(reason.clone()));
        }
        for (mut span, outcome) in attempt_spans.into_iter().flatten().zip(&outcomes) {
            let (label, error) = spans::outcome(outcome);
            span.set_attribute(KeyValue::new("switchyard.outcome", label));
            if let Some(error) = error {
                span.set_error(error);
            }
            span.end();
        }
        outcomes
    }

    /// Starts each pending event's span of this attempt, and hands its `traceparent` to the plugin.
    fn start_spans(&self, traces: &Traces, pending: &mut [Slot]) -> Vec<TraceSpan> {
        let start = SystemTime::now();
        let batch = pending.len();
        pending
            .iter_mut()
            .map(|slot| {
                let attributes = || {
                    spans::attempt_attributes(&spans::Attempt {
                        plugin: &self.plugin_id,
                        meta: &slot.ctx.meta,
                        topic: spans::topic_of(&slot.source),
                        at: slot.at,
                        attempt: slot.ctx.attempt,
                        batch,
                    })
                };
                let parent = spans::traceparent(&slot.record);
                let span = traces.span(spans::DELIVER, SpanKind::Client, parent, start, attributes);
                slot.ctx.traceparent = span.traceparent();
                span
            })
            .collect()
    }

    /// Tells the outage detector how a call went; returns whether an outage is declared.
    fn note_call(&self, team: &str, ok: bool) -> bool {
        let open = self
            .breaker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(team, ok);
        if open != *self.outage.borrow() {
            if open {
                warn!(plugin = %self.plugin_id, "the plugin fails for many teams at once: outage declared, consumption paused");
            } else {
                info!(plugin = %self.plugin_id, "the plugin answers again: outage over, consumption resumed");
            }
            self.outage.send_replace(open);
            self.metrics.paused.set(i64::from(open));
        }
        open
    }

    /// Records an event's end, and signals it when it is done.
    fn end(
        &self,
        at: (i32, i64),
        completion: Completion,
        ends: &mut Vec<((i32, i64), Completion)>,
        signal: &mut impl FnMut(Signal),
    ) {
        if completion == Completion::Done {
            signal(Signal::Done(at));
        }
        ends.push((at, completion));
    }

    /// During an outage: become the prober (after its backoff) or wait until the outage ends. `None` when
    /// shutdown came first; `Some(true)` for the prober.
    async fn wait_out_outage(&self, cancel: &CancellationToken) -> Option<bool> {
        let mut outage = self.outage.subscribe();
        loop {
            if !*outage.borrow_and_update() {
                return Some(false);
            }
            if self
                .probing
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                let delay = self
                    .breaker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .next_probe_delay();
                tokio::select! {
                    _ = cancel.cancelled() => {
                        self.probing.store(false, Ordering::SeqCst);
                        return None;
                    }
                    _ = tokio::time::sleep(delay) => return Some(true),
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                changed = outage.changed() => if changed.is_err() { return None; },
                // The prober may finish without ending the outage; look again now and then.
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// Applies the config of the team's installation if it changed since this worker last applied it.
    async fn ensure_config(
        &self,
        team: &str,
        installation: &str,
        timestamp: Option<SystemTime>,
        cancel: &CancellationToken,
    ) -> Result<(), ConfigProblem> {
        if !self.installations && installation != DEFAULT_INSTALLATION {
            return Err(ConfigProblem::Refused(format!(
                "the plugin keeps no state per installation (its manifest lacks \"installations\": true), so \
                 it takes events of the default installation only, not of {installation:?}"
            )));
        }
        // Nothing runs before the configs were read to their end once (a slow start must not look like
        // "this team has no config"); after that, freshness waits at most `config_wait`.
        if !self.configs.caught_up() {
            let first = self
                .configs
                .wait_complete(SystemTime::UNIX_EPOCH + Duration::from_nanos(1), Duration::MAX);
            tokio::select! {
                _ = cancel.cancelled() => {
                    return Err(ConfigProblem::Transient("stopping before the configs were read".into()));
                }
                _ = first => {}
            }
        }
        if let Some(time) = timestamp
            && !self.configs.wait_complete(time, self.config_wait).await
        {
            debug!(
                team,
                "the configs topic is not read up to the event's time; going on"
            );
        }
        let Some(current) = self.configs.get(team, installation) else {
            return Ok(());
        };
        let id = (team.to_owned(), installation.to_owned());
        let applied = self
            .applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied();
        match applied {
            Some((version, true)) if version == current.version => return Ok(()),
            // Refused before: the team's events are dead-lettered until a new config arrives.
            Some((version, false)) if version == current.version => {
                return Err(ConfigProblem::Refused(
                    "the plugin refused the installation's current config; waiting for a new one".to_owned(),
                ));
            }
            _ => {}
        }
        let result = self
            .plugin
            .initialize(team, installation, current.config.as_ref())
            .await;
        let remember = |accepted: bool| {
            self.applied
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, (current.version, accepted));
        };
        match result {
            Ok(()) => {
                remember(true);
                info!(plugin = %self.plugin_id, team, installation, "config applied");
                Ok(())
            }
            Err(error) if error.retryable => {
                Err(ConfigProblem::Transient(format!("initialize failed: {error}")))
            }
            Err(error) => {
                remember(false);
                warn!(plugin = %self.plugin_id, team, installation, %error, "the plugin refused the config");
                Err(ConfigProblem::Refused(format!(
                    "the plugin refused the installation's config: {error}"
                )))
            }
        }
    }

    async fn publish_results(
        &self,
        meta: &EventMeta,
        results: &[crate::plugin::PluginResult],
        cancel: &CancellationToken,
    ) -> Completion {
        let time = now_rfc3339();
        for (index, result) in results.iter().enumerate() {
            let record = records::result(&self.plugin_id, meta, index, result, &time);
            if self.write(&self.outputs.results, &record, cancel).await == Completion::Abandoned {
                return Completion::Abandoned;
            }
            self.metrics.results.inc();
        }
        Completion::Done
    }

    async fn dead_letter(
        &self,
        original: Original<'_>,
        failure: Failure,
        cancel: &CancellationToken,
    ) -> Completion {
        warn!(
            plugin = %self.plugin_id,
            source = %original.source,
            reason = failure.reason.code(),
            attempts = failure.attempts,
            "dead-lettering an event"
        );
        let letter = records::dead_letter(original.record, &self.plugin_id, original.source, &failure);
        let completion = self.write(&self.outputs.dead_letter, &letter, cancel).await;
        if completion == Completion::Done {
            self.metrics.events.with_label_values(&["dead_lettered"]).inc();
        }
        completion
    }

    /// Writes a record, retrying until the broker acknowledges it or `cancel`.
    async fn write(&self, topic: &str, record: &OutRecord, cancel: &CancellationToken) -> Completion {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.producer.write(topic, record).await {
                Ok(()) => return Completion::Done,
                Err(error) => {
                    warn!(%error, topic, "writing failed; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return Completion::Abandoned,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

/// The log target of one line per call and event, at DEBUG: what `switchyardctl dev` shows live
/// (`log.level = "info,switchyard::call=debug"`).
pub const CALL_LOG_TARGET: &str = "switchyard::call";

/// One event's answer in a call: its outcome, results or reason, and how long the call took.
fn log_call(meta: &EventMeta, outcome: &Outcome, elapsed_ms: u64) {
    let (kind, results, reason) = match outcome {
        Outcome::Done(results) => ("done", results.len(), ""),
        Outcome::DeadLetter { reason } => ("dead_letter", 0, reason.as_str()),
        Outcome::Retry { reason, .. } => ("retry", 0, reason.as_str()),
        Outcome::Throttled { reason, .. } => ("slow_down", 0, reason.as_str()),
    };
    debug!(
        target: CALL_LOG_TARGET,
        team = %meta.team_id,
        installation = %meta.installation,
        event = %meta.id,
        event_type = %meta.event_type,
        outcome = kind,
        results,
        reason,
        elapsed_ms,
        "call"
    );
}

#[cfg(test)]
mod tests;
