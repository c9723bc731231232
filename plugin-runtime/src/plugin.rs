//! What a plugin is to the runtime: the [`Plugin`] trait, the typed [`Event`] it receives, and the
//! [`Outcome`] it answers with.
//!
//! The runtime calls `initialize(team, installation, config)` whenever the config of a team's installation
//! changes, before that installation's next event; `execute(ctx, event)` once per event, the events of one
//! lane (the manifest's `ordering`, within one installation) one after the other, other lanes,
//! installations and teams concurrently; `execute_batch(items)` instead when the manifest asks for
//! batches; `action(team, name, body)` when the registry's gateway forwards a team's action call. The same
//! plugin value serves every team, so it keeps per-installation state itself (behind a lock or a concurrent
//! map), keyed by `(team, installation)`.
//!
//! A team may install a plugin more than once, each installation with its own config and its own slice of
//! events (contract section 7.2). Every plugin sees the installation [`DEFAULT_INSTALLATION`]; others reach
//! only a plugin whose manifest says `installations: true` (the runtime dead-letters them for any other).

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_schemas::control::PluginManifest;
use switchyard_schemas::events::{FormCreated, FormUpdated, ResponseSubmitted, ResponseUpdated};
pub use switchyard_schemas::ids::DEFAULT_INSTALLATION;

/// The CloudEvents attributes of a routed event, and where it was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMeta {
    /// `ce_id`: unique per event; the idempotency key of everything the plugin does for it.
    pub id: String,
    /// `ce_source`.
    pub source: String,
    /// `ce_type`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `ce_time`, RFC 3339, when the core set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `ce_subject` (the form id of v1 events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The team (the record key).
    pub team_id: String,
    /// The team's installation the event was routed for (the `switchyard_installation` header; absent =
    /// [`DEFAULT_INSTALLATION`]).
    #[serde(
        default = "default_installation",
        skip_serializing_if = "is_default_installation"
    )]
    pub installation: String,
    /// The backfill that delivered the event as history (the `switchyard_backfill` header, contract
    /// section 10.5); `None` for a live event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<String>,
}

fn default_installation() -> String {
    DEFAULT_INSTALLATION.to_owned()
}

fn is_default_installation(installation: &str) -> bool {
    installation == DEFAULT_INSTALLATION
}

/// Whose an event is: a team, and the installation it was routed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner<'a> {
    /// Team id.
    pub team: &'a str,
    /// Installation id.
    pub installation: &'a str,
}

impl EventMeta {
    /// The team and installation it was routed for.
    pub fn owner(&self) -> Owner<'_> {
        Owner {
            team: &self.team_id,
            installation: &self.installation,
        }
    }

    /// Whether the event was routed for the team's default installation.
    pub fn is_default_installation(&self) -> bool {
        is_default_installation(&self.installation)
    }

    /// The idempotency key of this copy of the event: `ce_id` for the default installation,
    /// `<ce_id>/<installation>` for any other (each installation's copy is its own delivery, so a plugin
    /// that remembers what it did per key does it once per installation). The HTTP bridge sends it as
    /// `webhook-id`.
    pub fn copy_id(&self) -> Cow<'_, str> {
        if self.is_default_installation() {
            Cow::Borrowed(&self.id)
        } else {
            Cow::Owned(format!("{}/{}", self.id, self.installation))
        }
    }
}

/// A routed event, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `form.created`.
    FormCreated(FormCreated),
    /// `form.updated`.
    FormUpdated(FormUpdated),
    /// `response.submitted`.
    ResponseSubmitted(ResponseSubmitted),
    /// `response.updated`.
    ResponseUpdated(ResponseUpdated),
    /// A type this runtime has no typed form for, as the JSON of its data.
    Other(Value),
}

/// What the runtime tells `execute` besides the event.
#[derive(Debug, Clone)]
pub struct Context {
    /// The event's attributes.
    pub meta: EventMeta,
    /// The data as JSON (the contract's JSON form, also for Avro events); `null` when the plugin asked for
    /// [`Decoding::JsonText`].
    pub data: Value,
    /// The data as compact JSON text, when the plugin asked for [`Decoding::JsonText`]; else `None`.
    pub data_json: Option<String>,
    /// 1 for the first call of this event, then 2, 3, ... on retries.
    pub attempt: u32,
    /// The W3C `traceparent` of this attempt's span, when the worker records traces (`[traces]`): a
    /// plugin that calls further services sends it on, so that their spans join the event's trace. `None`
    /// when tracing is off or the event's trace is not sampled.
    pub traceparent: Option<String>,
}

/// What the runtime decodes of each event for a plugin ([`Plugin::decoding`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Decoding {
    /// The typed [`Event`] and [`Context::data`] as a JSON tree.
    #[default]
    Typed,
    /// Only the data as JSON text ([`Context::data_json`]), written straight from the record: no tree and no
    /// typed event (`data` is `null`, the event [`Event::Other`] of `null`). For a plugin that passes the
    /// data on, like the HTTP bridge. A value that breaks its schema is still dead-lettered as
    /// `invalid_event`.
    JsonText,
}

/// Something the plugin wants the core to know, published to `core.plugin-results` as a CloudEvent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginResult {
    /// The result's kind, e.g. `response.flagged`, `sms.sent`, `row.appended`, `slang.found`; published as
    /// `ce_type` `switchyard.plugin.<kind>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What it concerns, e.g. the response id; `ce_subject`. Defaults to the event's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The payload (JSON).
    #[serde(default)]
    pub data: Value,
}

/// How an event ended, as the plugin sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done; the results (possibly none) are published.
    Done(Vec<PluginResult>),
    /// A transient failure: call again later (after at least `after`, when given).
    Retry {
        /// Why, for logs and the dead-letter header if the budget runs out.
        reason: String,
        /// The plugin's or its service's wish (`Retry-After`).
        after: Option<Duration>,
    },
    /// The event can never succeed: dead-letter it now, without retrying.
    DeadLetter {
        /// Why.
        reason: String,
    },
    /// The plugin or its service is over its quota or rate (`429`, or its own "slow down"): call again
    /// later. The runtime lowers the team's concurrency and pauses its calls, and does not count this
    /// against the event's retry budget.
    Throttled {
        /// Why, for logs.
        reason: String,
        /// How long to hold off (`Retry-After`), when given.
        after: Option<Duration>,
    },
}

impl Outcome {
    /// Done with no results.
    pub fn done() -> Self {
        Outcome::Done(Vec::new())
    }

    /// A retry without a delay wish.
    pub fn retry(reason: impl Into<String>) -> Self {
        Outcome::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    /// Throttled, without a delay wish.
    pub fn throttled(reason: impl Into<String>) -> Self {
        Outcome::Throttled {
            reason: reason.into(),
            after: None,
        }
    }

    /// A dead letter.
    pub fn dead_letter(reason: impl Into<String>) -> Self {
        Outcome::DeadLetter {
            reason: reason.into(),
        }
    }
}

/// One event of a batch: what `execute` would get for it.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// Its attributes, data and attempt.
    pub ctx: &'a Context,
    /// The typed event.
    pub event: &'a Event,
}

/// A config the plugin could not apply, or an action it could not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    /// Whether calling again may succeed.
    pub retryable: bool,
    /// What went wrong, in one sentence; it is logged, so it must not contain secrets.
    pub message: String,
}

impl PluginError {
    /// A failure that calling again will not fix (a bad config).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
        }
    }

    /// A failure that may pass.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
        }
    }
}

/// An action's answer: an HTTP status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionReply {
    /// HTTP status, e.g. 200 or 404.
    pub status: u16,
    /// The body.
    pub body: Value,
}

/// A plugin. See the module documentation for how the runtime calls it.
pub trait Plugin: Send + Sync + 'static {
    /// The manifest the runtime registers with the registry. `url` is filled in by the runtime when the
    /// plugin serves actions in process.
    fn manifest(&self) -> PluginManifest;

    /// The manifest as the runtime sends it to the registry, a JSON object. The default serializes
    /// [`Plugin::manifest`]. A plugin whose manifest carries a publisher's signature (contract section
    /// 7.1.2) returns the JSON its publisher signed: serializing the typed manifest again could change
    /// what the signature covers (defaults written out, members this crate does not know dropped). The
    /// runtime sets `url` in it, which the signature does not cover.
    fn manifest_json(&self) -> Value {
        serde_json::to_value(self.manifest()).unwrap_or_default()
    }

    /// Applies the config of a team's installation (or `None`: the config was removed). Called before the
    /// installation's next event after every change. A permanent error dead-letters the installation's
    /// events until a new config arrives; a transient one is retried like an event.
    fn initialize(
        &self,
        team: &str,
        installation: &str,
        config: Option<&Value>,
    ) -> impl Future<Output = Result<(), PluginError>> + Send;

    /// Handles one event.
    fn execute(&self, ctx: &Context, event: &Event) -> impl Future<Output = Outcome> + Send;

    /// Handles a batch of events of one team's installation, when the manifest has `batch`: one outcome per item, in the
    /// items' order (the events of one lane in topic order; a lane appears in one running batch at most).
    /// Each outcome is the event's own: done events publish their results, retried ones are called again
    /// (in a later batch), dead-lettered ones go to the dead-letter topic. The default calls
    /// [`Plugin::execute`] for each item in turn.
    fn execute_batch(&self, items: &[BatchItem<'_>]) -> impl Future<Output = Vec<Outcome>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(items.len());
            for item in items {
                outcomes.push(self.execute(item.ctx, item.event).await);
            }
            outcomes
        }
    }

    /// What the runtime decodes of each event; the default builds the typed event and the JSON tree.
    fn decoding(&self) -> Decoding {
        Decoding::Typed
    }

    /// Receives the plugin's Standard Webhooks signing secret (`whsec_...`) once registration returned it.
    /// Plugins that call out with signatures keep it; the default ignores it.
    fn set_signing_secret(&self, secret: &str) {
        let _ = secret;
    }

    /// Serves an action the registry forwarded for `team`. The default answers 404.
    fn action(
        &self,
        team: &str,
        name: &str,
        body: &[u8],
    ) -> impl Future<Output = Result<ActionReply, PluginError>> + Send {
        let _ = (team, body);
        let name = name.to_owned();
        async move {
            Ok(ActionReply {
                status: 404,
                body: serde_json::json!({"error": format!("no action {name}")}),
            })
        }
    }
}
