//! The pure part of routing: from one input record to the records to write and the event's outcome.
//!
//! ```text
//!   key + headers ──envelope──► payload check ──► route lookup ──► filters ──► per copy: topic check ──► Plan
//!        │ reject                  │ reject          │ none          │ none      │ missing / known-rejected
//!        ▼                         ▼                 ▼               ▼           ▼
//!   one dead letter          one dead letter     unrouted        unrouted   that copy dead-lettered
//! ```
//!
//! A copy is one installation's: a plugin installed twice by a team gets two copies, each with its
//! installation (contract section 8).
//!
//! No Kafka here: the topic check and the memory of copies the broker refused come in as arguments, so
//! every branch is unit-tested without a broker.

use std::sync::Arc;

use switchyard_schemas::backfill::Request;
use switchyard_schemas::dead_letter::Reason;
use switchyard_schemas::{ContentType, EventType, Rejection, envelope, payload};

use crate::pipeline::filters::{self, FilterTally};
use crate::tables::routes::{PluginRoute, RouteTable, Target};

/// The final outcome of one input event. Exactly one per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written to at least one plugin's topic.
    Routed,
    /// No enabled plugin subscribes: nothing is written.
    Unrouted,
    /// Rejected as a whole, or every plugin copy failed: only dead letters are written.
    DeadLettered,
}

impl Outcome {
    /// The metric label.
    pub const fn label(self) -> &'static str {
        match self {
            Outcome::Routed => "routed",
            Outcome::Unrouted => "unrouted",
            Outcome::DeadLettered => "dead_lettered",
        }
    }
}

/// One installation's copy of an event: the plugin, and the installation (`None`: the default one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recipient {
    /// Plugin id.
    pub plugin: Arc<str>,
    /// Installation name; `None` for the default installation, whose copies carry no
    /// `switchyard_installation` header.
    pub installation: Option<Arc<str>>,
}

impl Recipient {
    /// The default installation of `plugin`.
    pub fn default_of(plugin: &str) -> Self {
        Self {
            plugin: Arc::from(plugin),
            installation: None,
        }
    }
}

/// One record to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// The event, unchanged, to a plugin's topic, for one installation.
    Plugin {
        /// Where the plugin's events go.
        route: Arc<PluginRoute>,
        /// The installation; `None` for the default one.
        installation: Option<Arc<str>>,
    },
    /// The event, unchanged, to the dead-letter topic with the failure in headers.
    DeadLetter {
        /// Why.
        rejection: Rejection,
        /// The installation whose copy failed, for per-copy reasons.
        plugin: Option<Recipient>,
        /// The dead-letter topic itself refused the full record (too large, say): write it without its
        /// value, which stays readable at `switchyard_source`.
        drop_value: bool,
    },
}

/// What to do with one input record.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The event's outcome once these outputs are durable.
    pub outcome: Outcome,
    /// The records to write, in order.
    pub outputs: Vec<Output>,
    /// The verdicts of the installations' filters evaluated for it.
    pub filters: FilterTally,
    /// Installations the rule keeps but a backfill holds (their copies are the backfill's to write): the
    /// backfills' requests. Live plans only; usually empty.
    pub held: Vec<Arc<Request>>,
}

/// Which of an event's installations a plan is for.
#[derive(Clone, Copy)]
pub enum Selection<'a> {
    /// Live routing: every installation the rule keeps, except those held by a backfill that has not
    /// handed over here (`is_live` false for its request). `None`: this router runs no backfills, and held
    /// installations are routed as any other (at-least-once mode).
    Live {
        /// Whether a held installation's backfill has handed it back to live routing.
        is_live: Option<&'a dyn Fn(&Request) -> bool>,
    },
    /// A backfill's copy of a historical event: only this installation, and only the request's event
    /// types. An event rejected as a whole gets no plan output: live routing dead-lettered it when it
    /// arrived.
    Backfill {
        /// Plugin id.
        plugin: &'a str,
        /// Installation id.
        installation: &'a str,
        /// The request.
        request: &'a Request,
    },
}

impl Selection<'_> {
    /// Live routing of every installation, held or not.
    pub const ALL: Selection<'static> = Selection::Live { is_live: None };
}

/// Whether a plugin's topic can take records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicState {
    /// It exists.
    Exists,
    /// It does not exist (as of the last check).
    Missing,
}

/// Where a copy of an event goes, as remembered after the broker refused it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A plugin's topic, for one installation.
    Plugin(Recipient),
    /// The dead-letter topic, for the whole event (`None`) or one installation's copy.
    DeadLetter(Option<Recipient>),
    /// A backfill's progress record (not a copy: any failure of it rewinds, and it is written again).
    Progress,
}

/// Copies of one input record that the broker refused earlier, with the refusal; consulted when the record
/// is processed again after a rewind.
pub trait Refusals {
    /// The refusal of `destination`, if any.
    fn refusal(&self, destination: &Destination) -> Option<&str>;
}

/// Nothing refused: the common case.
pub struct NoRefusals;

impl Refusals for NoRefusals {
    fn refusal(&self, _: &Destination) -> Option<&str> {
        None
    }
}

/// Plans records against a routing table.
pub struct Planner<'a> {
    /// The routing table.
    pub table: &'a RouteTable,
    /// Whether payloads of the v1 types are validated.
    pub validate_payloads: bool,
    /// Which installations it plans for.
    pub selection: Selection<'a>,
}

impl Planner<'_> {
    /// Plans one input record. `topic_state` tells whether a plugin's topic exists; `refusals` holds what
    /// the broker refused for this record before; `targets` is scratch space kept between calls.
    pub fn plan<'h, H>(
        &self,
        key: Option<&'h [u8]>,
        headers: H,
        value: Option<&[u8]>,
        topic_state: &mut dyn FnMut(&PluginRoute) -> TopicState,
        refusals: &dyn Refusals,
        targets: &mut Vec<Target>,
    ) -> Plan
    where
        H: IntoIterator<Item = (&'h str, Option<&'h [u8]>)> + Clone,
    {
        let backfill = matches!(self.selection, Selection::Backfill { .. });
        let envelope = match envelope::parse(key, headers.clone()) {
            Ok(envelope) => envelope,
            Err(_) if backfill => return Plan::unrouted(FilterTally::default()),
            Err(rejection) => return whole_event_dead_letter(rejection, refusals),
        };
        targets.clear();
        self.table
            .route(envelope.team_id, envelope.event_type, envelope.subject, targets);
        let held = self.select(envelope.event_type, targets);
        // Projecting a v1 Avro value for the filters checks it as validation does, in the same walk: then
        // that walk is the validation. Any other value is validated first, routed or not.
        let paths = filters::data_paths(targets);
        let projection_validates = self.validate_payloads
            && !paths.is_empty()
            && envelope.content_type == ContentType::Avro
            && EventType::from_ce_type(envelope.event_type).is_some();
        if self.validate_payloads
            && !projection_validates
            && let Err(rejection) = payload::validate(envelope.event_type, envelope.content_type, value)
        {
            return self.rejected(rejection, refusals, held);
        }
        let data = (!paths.is_empty())
            .then(|| payload::project(envelope.event_type, envelope.content_type, value, &paths));
        if projection_validates && let Some(Err(rejection)) = data {
            return self.rejected(rejection, refusals, held);
        }
        drop(paths);
        let tally = filters::retain_matching(&envelope, headers, data, targets);
        if targets.is_empty() {
            let mut plan = Plan::unrouted(tally);
            plan.held = held;
            return plan;
        }
        let mut outputs = Vec::with_capacity(targets.len());
        let mut routed = false;
        for Target {
            plugin: route,
            installation,
            ..
        } in targets.drain(..)
        {
            let recipient = Recipient {
                plugin: Arc::clone(&route.id),
                installation,
            };
            let refused = refusals.refusal(&Destination::Plugin(recipient.clone()));
            let rejection = match (refused, topic_state(&route)) {
                (Some(refusal), _) => Rejection::new(
                    Reason::PluginTopicRejected,
                    format!("the topic {} refused the record: {refusal}", route.topic),
                ),
                (None, TopicState::Missing) => Rejection::new(
                    Reason::PluginTopicMissing,
                    format!("the topic {} of plugin {} does not exist", route.topic, route.id),
                ),
                (None, TopicState::Exists) => {
                    routed = true;
                    outputs.push(Output::Plugin {
                        route,
                        installation: recipient.installation,
                    });
                    continue;
                }
            };
            let drop_value = refusals
                .refusal(&Destination::DeadLetter(Some(recipient.clone())))
                .is_some();
            outputs.push(Output::DeadLetter {
                rejection,
                plugin: Some(recipient),
                drop_value,
            });
        }
        let outcome = if routed {
            Outcome::Routed
        } else {
            Outcome::DeadLettered
        };
        Plan {
            outcome,
            outputs,
            filters: tally,
            held,
        }
    }

    /// Keeps in `targets` the installations of the selection; returns the requests of the held ones that
    /// were removed.
    fn select(&self, event_type: &str, targets: &mut Vec<Target>) -> Vec<Arc<Request>> {
        let mut held = Vec::new();
        match self.selection {
            Selection::Live { is_live: None } => {}
            Selection::Live {
                is_live: Some(is_live),
            } => targets.retain(|target| match &target.backfill {
                Some(request) if !is_live(request) => {
                    held.push(Arc::clone(request));
                    false
                }
                _ => true,
            }),
            Selection::Backfill {
                plugin,
                installation,
                request,
            } => {
                if request.keeps_type(event_type) {
                    targets.retain(|t| &*t.plugin.id == plugin && t.installation() == installation);
                } else {
                    targets.clear();
                }
            }
        }
        held
    }

    /// The plan of an event rejected as a whole: one dead letter when live, nothing for a backfill.
    fn rejected(&self, rejection: Rejection, refusals: &dyn Refusals, held: Vec<Arc<Request>>) -> Plan {
        let mut plan = match self.selection {
            Selection::Backfill { .. } => Plan::unrouted(FilterTally::default()),
            Selection::Live { .. } => whole_event_dead_letter(rejection, refusals),
        };
        plan.held = held;
        plan
    }
}

impl Plan {
    fn unrouted(filters: FilterTally) -> Self {
        Plan {
            outcome: Outcome::Unrouted,
            outputs: Vec::new(),
            filters,
            held: Vec::new(),
        }
    }
}

fn whole_event_dead_letter(rejection: Rejection, refusals: &dyn Refusals) -> Plan {
    let drop_value = refusals.refusal(&Destination::DeadLetter(None)).is_some();
    Plan {
        outcome: Outcome::DeadLettered,
        outputs: vec![Output::DeadLetter {
            rejection,
            plugin: None,
            drop_value,
        }],
        filters: FilterTally::default(),
        held: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
