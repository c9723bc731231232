//! The seed plugins as [`Plugin`]s the runtime runs in process: `sheets-export`, `sms-notify` and
//! `slang-search` (`rules-validate` runs as an HTTP service behind the bridge: [`crate::rules_service`]).
//! Each maps its domain outcome to a result event and its errors' [`Disposition`] to the runtime's retry
//! or dead letter.
//!
//! Each keeps its state per (team, installation) (their manifests say `installations: true`): a team may
//! install one plugin several times, each installation with its own config and its own copy of the team's
//! events (`ctx.meta.installation`). What that means for each plugin is on its type.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_plugin_runtime::plugin::{
    BatchItem, Context, Event, Outcome, Plugin, PluginError, PluginResult,
};
use switchyard_schemas::control::{Batch, DeliveryHints, Ordering, PluginManifest};
use switchyard_schemas::events::ResponseSubmitted;
use tracing::{error, warn};

use crate::Disposition;
use crate::installations::Installations;
use crate::sheets::{
    self, CsvTarget, ExportError, ExportEvent, ExportOutcome, GoogleSheets, SheetsConfig, SheetsExporter,
    Target,
};
use crate::slang::{self, SlangError, SlangIndex};
use crate::sms::ledger::{self, Entry, Intent, Sent, SentLedger};
use crate::sms::record::{Decision, decide};
use crate::sms::{self, Prepared, SkipReason, SmsError, SmsNotifier, SmsOutcome, mask};

fn version(text: &str) -> semver::Version {
    semver::Version::parse(text).unwrap_or_else(|_| semver::Version::new(0, 0, 0))
}

fn outcome_of(disposition: Disposition, reason: String) -> Outcome {
    match disposition {
        Disposition::Retry { after } => Outcome::Retry { reason, after },
        Disposition::Throttled { after } => Outcome::Throttled { reason, after },
        Disposition::DeadLetter => Outcome::dead_letter(reason),
    }
}

/// The manifest of `sheets-export`; `url` is where its worker serves actions, if anywhere.
pub fn sheets_export_manifest(url: Option<String>) -> PluginManifest {
    PluginManifest {
        id: "sheets-export".to_owned(),
        name: "Sheets export".to_owned(),
        description: "Writes every response as one row of the team's spreadsheet (an edit or a redelivery \
                      overwrites its row), one tab per form, and keeps the columns in step with the form's \
                      questions. Installed more than once, each installation writes to its own spreadsheet."
            .to_owned(),
        version: version("1.6.0"),
        url,
        events: [
            "response.submitted",
            "response.updated",
            "form.created",
            "form.updated",
        ]
        .map(str::to_owned)
        .to_vec(),
        actions: Vec::new(),
        config_schema: Some(sheets::config_schema()),
        // A row needs only its response's events in order (an edit after its submission). The exporter
        // serialises the writes to one tab itself; a response handled before its form's event gets columns
        // named by question id (see `sheets::export`). Batches: Google counts calls, not rows, against its
        // per-minute write quota (60 per service account), so a batch's responses to one form are one
        // `values.append`; waiting 200 ms for a fuller batch costs less than one such call's round trip.
        // Installations: layouts, row indexes and spreadsheets are kept per (team, installation).
        contract: None,
        signature: None,
        delivery: DeliveryHints {
            ordering: Some(Ordering::Response),
            batch: Some(Batch {
                max_events: 50,
                max_wait_ms: 200,
            }),
            installations: true,
            ..Default::default()
        },
    }
}

/// The manifest of `sms-notify`.
pub fn sms_notify_manifest(url: Option<String>) -> PluginManifest {
    PluginManifest {
        id: "sms-notify".to_owned(),
        name: "SMS notify".to_owned(),
        description: "Texts respondents a thank-you when a response is submitted, through a \
                      Twilio-compatible API."
            .to_owned(),
        version: version("0.11.0"),
        url,
        events: vec!["response.submitted".to_owned()],
        actions: Vec::new(),
        config_schema: Some(sms::config_schema()),
        // Each text stands alone. Installations: configs per (team, installation), ledger keys per copy.
        contract: None,
        signature: None,
        delivery: DeliveryHints {
            ordering: Some(Ordering::None),
            installations: true,
            ..Default::default()
        },
    }
}

/// A sheets target that takes the configs of teams' installations.
pub trait ConfiguredTarget: Target + 'static {
    /// Applies the config of a team's installation.
    fn configure(&self, team: &str, installation: &str, config: &SheetsConfig) -> Result<(), String>;
    /// Forgets the config of a team's installation, leaving its other installations alone.
    fn remove(&self, team: &str, installation: &str);
}

impl ConfiguredTarget for GoogleSheets {
    fn configure(&self, team: &str, installation: &str, config: &SheetsConfig) -> Result<(), String> {
        self.configure_installation(team, installation, config)
            .map_err(|e| e.to_string())
    }

    fn remove(&self, team: &str, installation: &str) {
        self.remove_installation(team, installation);
    }
}

/// The CSV target needs no config: each installation writes to its own files regardless
/// ([`CsvTarget::path_of`]).
impl ConfiguredTarget for CsvTarget {
    fn configure(&self, _team: &str, _installation: &str, _config: &SheetsConfig) -> Result<(), String> {
        Ok(())
    }

    fn remove(&self, _team: &str, _installation: &str) {}
}

/// `sheets-export` over a target (Google Sheets, or CSV files for the demo).
///
/// Per installation: the config (so the spreadsheet, the tab titles and the service account), and every
/// form, layout and row index the exporter keeps (see [`crate::sheets::export`]); the CSV target writes a
/// named installation's files in a directory of their own. Removing one installation's config leaves the
/// team's others alone. The idempotency (a response's row read back and overwritten) is per installation's
/// sheet, so each installation's copy of a response gets one row in that installation's sheet.
pub struct SheetsExportPlugin<T> {
    exporter: SheetsExporter<T>,
    manifest: PluginManifest,
}

impl<T: ConfiguredTarget> SheetsExportPlugin<T> {
    /// The plugin writing to `target`.
    pub fn new(target: T, manifest: PluginManifest) -> Self {
        Self {
            exporter: SheetsExporter::new(target),
            manifest,
        }
    }
}

impl<T: ConfiguredTarget> Plugin for SheetsExportPlugin<T> {
    fn manifest(&self) -> PluginManifest {
        self.manifest.clone()
    }

    async fn initialize(
        &self,
        team: &str,
        installation: &str,
        config: Option<&Value>,
    ) -> Result<(), PluginError> {
        match config {
            None => {
                self.exporter.target().remove(team, installation);
                Ok(())
            }
            Some(config) => {
                let config =
                    SheetsConfig::from_json(config).map_err(|e| PluginError::permanent(e.to_string()))?;
                self.exporter
                    .target()
                    .configure(team, installation, &config)
                    .map_err(PluginError::permanent)
            }
        }
    }

    /// A batch of one: the same writes as [`Plugin::execute_batch`] for one event.
    async fn execute(&self, ctx: &Context, event: &Event) -> Outcome {
        let Some(event) = export_event(event) else {
            return Outcome::done();
        };
        let exported = self
            .exporter
            .export_batch_for(&ctx.meta.installation, &[event])
            .await;
        match exported.first() {
            Some(result) => export_outcome(ctx, result.as_ref().map_err(|e| &**e)),
            None => Outcome::retry("the exporter gave no result for this event"),
        }
    }

    /// One `values.append` per form's tab for the whole batch (see `sheets::export`); each event's outcome
    /// is what [`Plugin::execute`] would answer for it, a failed tab's error for each of its responses.
    /// The runtime's batch holds one installation's events.
    async fn execute_batch(&self, items: &[BatchItem<'_>]) -> Vec<Outcome> {
        let Some(first) = items.first() else {
            return Vec::new();
        };
        let events: Vec<Option<ExportEvent<'_>>> =
            items.iter().map(|item| export_event(item.event)).collect();
        let exported: Vec<ExportEvent<'_>> = events.iter().flatten().copied().collect();
        let installation = &first.ctx.meta.installation;
        let mut results = self
            .exporter
            .export_batch_for(installation, &exported)
            .await
            .into_iter();
        items
            .iter()
            .zip(&events)
            .map(
                |(item, event)| match (event, event.and_then(|_| results.next())) {
                    (None, _) => Outcome::done(),
                    (Some(_), Some(result)) => export_outcome(item.ctx, result.as_ref().map_err(|e| &**e)),
                    // The exporter answers every event it is given; should it not, the event is tried again.
                    (Some(_), None) => Outcome::retry("the exporter gave no result for this event"),
                },
            )
            .collect()
    }
}

/// The exporter's form of a typed event; `None` for types the plugin ignores.
fn export_event(event: &Event) -> Option<ExportEvent<'_>> {
    match event {
        Event::FormCreated(created) => Some(ExportEvent::FormCreated(created)),
        Event::FormUpdated(updated) => Some(ExportEvent::FormUpdated(updated)),
        Event::ResponseSubmitted(submitted) => Some(ExportEvent::ResponseSubmitted(submitted)),
        Event::ResponseUpdated(updated) => Some(ExportEvent::ResponseUpdated(updated)),
        Event::Other(_) => None,
    }
}

/// The outcome of an exported event: a `sheets.row_appended` result for a written row, nothing for a form
/// event, the error's retry or dead letter. The kind keeps its name when the response's row already existed
/// and was overwritten (a redelivery or an edit: one row per response); its data then says `"updated": true`.
fn export_outcome(ctx: &Context, exported: Result<&ExportOutcome, &ExportError>) -> Outcome {
    match exported {
        Ok(outcome @ ExportOutcome::Exported { .. }) => Outcome::Done(vec![PluginResult {
            kind: "sheets.row_appended".to_owned(),
            subject: response_id(ctx),
            data: serde_json::to_value(outcome).unwrap_or(Value::Null),
        }]),
        Ok(_) => Outcome::done(),
        Err(error) => outcome_of(error.disposition(), error.to_string()),
    }
}

fn response_id(ctx: &Context) -> Option<String> {
    ctx.data["response"]["id"].as_str().map(str::to_owned)
}

/// `sms-notify`. With a [`SentLedger`] it texts at most once per event, but for the windows the ledger's
/// module lists (Twilio's list lagging its create, two owners at once during a rebalance, ...); without
/// one, once per delivery (at least once).
///
/// ```text
///   hold(E) ─► look_up(E) ─┬─ sent ───────────────────────────────────────────► answer it
///                          ├─ intent ─► Twilio's list ─┬─ the intent's message ─► record sent, answer it
///                          │                           └─ none ──┐
///                          └─ absent ────────────────────────────┴─► prepare ─► record intent ─► send
///                                                                                ─► record sent ─► answer
/// ```
///
/// The intent is not written again when the ledger already holds one for the same text: its older time
/// keeps a later look-up's reach. The installation's config is read when the message is prepared, so an
/// event answered from the ledger needs none.
///
/// Per installation: the config (account, sender, template, phone question), and the ledger's key: "E"
/// above is the event's copy id ([`ledger::key`]), the event id for the default installation (the key
/// every earlier version wrote, so their ledgers keep answering) and `<event id>/<installation>` for a
/// named one, so two installations' copies of one event each text once. Twilio's list is asked on the
/// account of the copy's installation.
pub struct SmsNotifyPlugin {
    notifier: SmsNotifier,
    manifest: PluginManifest,
    ledger: Option<SentLedger>,
}

impl SmsNotifyPlugin {
    /// The plugin sending through `notifier`, with no ledger.
    pub fn new(notifier: SmsNotifier, manifest: PluginManifest) -> Self {
        Self {
            notifier,
            manifest,
            ledger: None,
        }
    }

    /// The same, checking and recording every send in `ledger`.
    pub fn with_ledger(self, ledger: SentLedger) -> Self {
        Self {
            ledger: Some(ledger),
            ..self
        }
    }

    /// Texts for `submitted` unless the ledger or Twilio knows it was texted (see [`SmsNotifyPlugin`]).
    async fn execute_once(
        &self,
        ledger: &SentLedger,
        ctx: &Context,
        submitted: &ResponseSubmitted,
    ) -> Outcome {
        let installation = ctx.meta.installation.as_str();
        // The key of this installation's copy of the event: the event id for the default installation.
        let key = ledger::key(&ctx.meta);
        let event_id = key.as_ref();
        // Held until the outcome is recorded: another copy of this event waits, then finds the record.
        let _held = ledger.hold(event_id).await;
        let entry = match ledger.look_up(event_id).await {
            Ok(entry) => entry,
            Err(error) => return Outcome::retry(error.to_string()),
        };
        let listed = match &entry {
            // An attempt whose outcome is unknown: Twilio says whether its message went out.
            Some(Entry::Intent(intent)) => {
                let team = &submitted.response.team_id;
                match self.notifier.look_up_for(team, installation, intent).await {
                    Ok(listed) => listed,
                    Err(error) => return sms_error(&error),
                }
            }
            _ => Vec::new(),
        };
        match decide(entry.as_ref(), &listed) {
            // Sent before (a redelivery): the same result again, nothing sent.
            Decision::Answer(sent) => return sent_result(ctx, &sent),
            // Sent by an attempt that did not record it: recorded now, nothing sent.
            Decision::Recover(sent) => {
                self.remember(ledger, event_id, &sent).await;
                return sent_result(ctx, &sent);
            }
            Decision::Send => {}
        }
        let text = match self.notifier.prepare_for(installation, submitted) {
            Ok(Prepared::Text(text)) => text,
            Ok(Prepared::Skipped(reason)) => return skipped_result(ctx, reason),
            Err(error) => return sms_error(&error),
        };
        let intended = matches!(&entry, Some(Entry::Intent(intent))
            if intent.is_for(text.to(), text.from(), text.body()));
        if !intended {
            let intent = Intent::now(text.to(), text.from(), text.body());
            // Nothing is sent yet: the event is simply tried again.
            if let Err(error) = ledger.record_intent(event_id, &intent).await {
                return Outcome::retry(error.to_string());
            }
        }
        match self.notifier.send(&text).await {
            Ok(message) => {
                let sent = Sent {
                    sid: message.sid,
                    to_masked: mask(text.to()),
                };
                self.remember(ledger, event_id, &sent).await;
                sent_result(ctx, &sent)
            }
            // The intent stays: if Twilio did take the message, the next attempt finds it there.
            Err(error) => sms_error(&error),
        }
    }

    /// Records a send that happened. The message is out: failing the event now would make the redelivery
    /// ask Twilio (or, within the windows the ledger lists, text again), so the write is retried here, and
    /// given up on (logged) only after the last attempt; the intent stays for the redelivery.
    async fn remember(&self, ledger: &SentLedger, event_id: &str, sent: &Sent) {
        for attempt in 1..=LEDGER_ATTEMPTS {
            match ledger.record(event_id, sent).await {
                Ok(()) => return,
                Err(error) if attempt < LEDGER_ATTEMPTS => {
                    warn!(%error, attempt, "recording a sent message failed; retrying");
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                }
                Err(error) => {
                    error!(%error, event = event_id, "a sent message is not in the ledger: a redelivery will ask Twilio for it");
                }
            }
        }
    }
}

/// Attempts to record one sent message in the ledger.
const LEDGER_ATTEMPTS: u32 = 5;

fn sent_result(ctx: &Context, sent: &Sent) -> Outcome {
    Outcome::Done(vec![PluginResult {
        kind: "sms.sent".to_owned(),
        subject: response_id(ctx),
        data: json!({"sid": sent.sid, "to": sent.to_masked}),
    }])
}

fn skipped_result(ctx: &Context, reason: SkipReason) -> Outcome {
    Outcome::Done(vec![PluginResult {
        kind: "sms.skipped".to_owned(),
        subject: response_id(ctx),
        data: serde_json::to_value(SmsOutcome::Skipped { reason }).unwrap_or(Value::Null),
    }])
}

fn sms_error(error: &SmsError) -> Outcome {
    outcome_of(error.disposition(), error.to_string())
}

impl Plugin for SmsNotifyPlugin {
    fn manifest(&self) -> PluginManifest {
        self.manifest.clone()
    }

    async fn initialize(
        &self,
        team: &str,
        installation: &str,
        config: Option<&Value>,
    ) -> Result<(), PluginError> {
        match config {
            None => {
                self.notifier.remove_installation(team, installation);
                Ok(())
            }
            Some(config) => self
                .notifier
                .configure_installation(team, installation, config)
                .map_err(|e| PluginError::permanent(e.to_string())),
        }
    }

    async fn execute(&self, ctx: &Context, event: &Event) -> Outcome {
        let Event::ResponseSubmitted(submitted) = event else {
            return Outcome::done();
        };
        if let Some(ledger) = &self.ledger {
            return self.execute_once(ledger, ctx, submitted).await;
        }
        match self
            .notifier
            .response_submitted_for(&ctx.meta.installation, submitted)
            .await
        {
            Ok(SmsOutcome::Sent { sid, to_masked }) => sent_result(ctx, &Sent { sid, to_masked }),
            Ok(SmsOutcome::Skipped { reason }) => skipped_result(ctx, reason),
            Err(error) => sms_error(&error),
        }
    }
}

/// The manifest of `slang-search` (a Kafka-only plugin: no URL, no actions).
pub fn slang_search_manifest() -> PluginManifest {
    PluginManifest {
        id: "slang-search".to_owned(),
        name: "Slang search".to_owned(),
        description: "Finds local slang (Sheng, Pidgin, a team's own terms) in free-text answers, using the \
                      respondent's city, and reports each hit with its standard meaning."
            .to_owned(),
        version: version("0.4.0-beta.1"),
        url: None,
        events: vec!["response.submitted".to_owned(), "response.updated".to_owned()],
        actions: Vec::new(),
        config_schema: Some(slang::config_schema()),
        // Installations: a dictionary index per (team, installation).
        contract: None,
        signature: None,
        delivery: DeliveryHints {
            ordering: Some(Ordering::Response),
            installations: true,
            ..Default::default()
        },
    }
}

/// `slang-search`: installations without a config use the built-in dictionaries.
///
/// Per installation: the dictionary index built from its config, so two installations of one team can
/// search with two dictionaries (other cities, other terms); removing one's config puts it back on the
/// built-in dictionaries and leaves the others alone.
pub struct SlangSearchPlugin {
    default: Arc<SlangIndex>,
    installations: Installations<SlangIndex>,
}

impl SlangSearchPlugin {
    /// The plugin with the built-in dictionaries as every installation's default.
    pub fn new() -> Result<Self, SlangError> {
        Ok(Self {
            default: Arc::new(SlangIndex::from_json(&json!({}))?),
            installations: Installations::new(),
        })
    }

    fn index(&self, team: &str, installation: &str) -> Arc<SlangIndex> {
        self.installations
            .get(team, installation)
            .unwrap_or_else(|| Arc::clone(&self.default))
    }
}

impl Plugin for SlangSearchPlugin {
    fn manifest(&self) -> PluginManifest {
        slang_search_manifest()
    }

    async fn initialize(
        &self,
        team: &str,
        installation: &str,
        config: Option<&Value>,
    ) -> Result<(), PluginError> {
        match config {
            None => {
                self.installations.remove(team, installation);
            }
            Some(config) => {
                let index =
                    SlangIndex::from_json(config).map_err(|e| PluginError::permanent(e.to_string()))?;
                self.installations.insert(team, installation, index);
            }
        }
        Ok(())
    }

    async fn execute(&self, ctx: &Context, event: &Event) -> Outcome {
        let response = match event {
            Event::ResponseSubmitted(submitted) => &submitted.response,
            Event::ResponseUpdated(updated) => &updated.response,
            _ => return Outcome::done(),
        };
        let index = self.index(&ctx.meta.team_id, &ctx.meta.installation);
        let hits = index.search(response);
        if hits.is_empty() {
            return Outcome::done();
        }
        Outcome::Done(vec![PluginResult {
            kind: "slang.found".to_owned(),
            subject: Some(response.id.clone()),
            data: json!({"response_id": response.id, "form_id": response.form_id,
                         "city": index.city_of(response), "hits": hits}),
        }])
    }
}
