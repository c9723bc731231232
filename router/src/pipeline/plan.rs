//! The pure part of routing: from one input record to the records to write and the event's outcome.
//!
//! ```text
//!   key + headers ──envelope──► payload check ──► route lookup ──► per plugin: topic check ──► Plan
//!        │ reject                  │ reject          │ none             │ missing / known-rejected
//!        ▼                         ▼                 ▼                  ▼
//!   one dead letter          one dead letter     unrouted        that plugin's copy dead-lettered
//! ```
//!
//! No Kafka here: the topic check and the memory of copies the broker refused come in as arguments, so
//! every branch is unit-tested without a broker.

use std::sync::Arc;

use switchyard_schemas::dead_letter::Reason;
use switchyard_schemas::{Rejection, envelope, payload};

use crate::tables::routes::{PluginRoute, RouteTable};

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

/// One record to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// The event, unchanged, to a plugin's topic.
    Plugin(Arc<PluginRoute>),
    /// The event, unchanged, to the dead-letter topic with the failure in headers.
    DeadLetter {
        /// Why.
        rejection: Rejection,
        /// The plugin whose copy failed, for per-plugin reasons.
        plugin: Option<Arc<str>>,
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
    /// A plugin's topic.
    Plugin(Arc<str>),
    /// The dead-letter topic, for the whole event (`None`) or one plugin's copy.
    DeadLetter(Option<Arc<str>>),
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
}

impl Planner<'_> {
    /// Plans one input record. `topic_state` tells whether a plugin's topic exists; `refusals` holds what
    /// the broker refused for this record before.
    pub fn plan<'h, H>(
        &self,
        key: Option<&'h [u8]>,
        headers: H,
        value: Option<&[u8]>,
        topic_state: &mut dyn FnMut(&PluginRoute) -> TopicState,
        refusals: &dyn Refusals,
        targets: &mut Vec<Arc<PluginRoute>>,
    ) -> Plan
    where
        H: IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    {
        let envelope = match envelope::parse(key, headers) {
            Ok(envelope) => envelope,
            Err(rejection) => return whole_event_dead_letter(rejection, refusals),
        };
        if self.validate_payloads
            && let Err(rejection) = payload::validate(envelope.event_type, envelope.content_type, value)
        {
            return whole_event_dead_letter(rejection, refusals);
        }
        targets.clear();
        self.table.route(envelope.team_id, envelope.event_type, targets);
        if targets.is_empty() {
            return Plan {
                outcome: Outcome::Unrouted,
                outputs: Vec::new(),
            };
        }
        let mut outputs = Vec::with_capacity(targets.len());
        let mut routed = false;
        for plugin in targets.drain(..) {
            let refused = refusals.refusal(&Destination::Plugin(Arc::clone(&plugin.id)));
            let rejection = match (refused, topic_state(&plugin)) {
                (Some(refusal), _) => Rejection::new(
                    Reason::PluginTopicRejected,
                    format!("the topic {} refused the record: {refusal}", plugin.topic),
                ),
                (None, TopicState::Missing) => Rejection::new(
                    Reason::PluginTopicMissing,
                    format!(
                        "the topic {} of plugin {} does not exist",
                        plugin.topic, plugin.id
                    ),
                ),
                (None, TopicState::Exists) => {
                    routed = true;
                    outputs.push(Output::Plugin(plugin));
                    continue;
                }
            };
            let drop_value = refusals
                .refusal(&Destination::DeadLetter(Some(Arc::clone(&plugin.id))))
                .is_some();
            outputs.push(Output::DeadLetter {
                rejection,
                plugin: Some(Arc::clone(&plugin.id)),
                drop_value,
            });
        }
        let outcome = if routed {
            Outcome::Routed
        } else {
            Outcome::DeadLettered
        };
        Plan { outcome, outputs }
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
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use switchyard_schemas::ContentType;
    use switchyard_schemas::envelope as h;

    use super::*;
    use crate::tables::test_support;

    fn table() -> RouteTable {
        test_support::table(
            "acme",
            &[
                ("sheets", &["response.submitted"]),
                ("sms", &["response.submitted", "x.custom"]),
            ],
        )
    }

    fn headers(
        ce_type: &'static str,
        content_type: &'static str,
    ) -> Vec<(&'static str, Option<&'static [u8]>)> {
        vec![
            (h::SPECVERSION, Some(b"1.0")),
            (h::ID, Some(b"e-1")),
            (h::SOURCE, Some(b"/test")),
            (h::TYPE, Some(ce_type.as_bytes())),
            (h::CONTENT_TYPE, Some(content_type.as_bytes())),
        ]
    }

    struct Refused(HashMap<Destination, String>);

    impl Refusals for Refused {
        fn refusal(&self, destination: &Destination) -> Option<&str> {
            self.0.get(destination).map(String::as_str)
        }
    }

    fn plan_with(
        validate: bool,
        key: Option<&'static [u8]>,
        headers: Vec<(&'static str, Option<&'static [u8]>)>,
        value: Option<&[u8]>,
        missing: &[&str],
        refusals: &dyn Refusals,
    ) -> Plan {
        let table = table();
        let planner = Planner {
            table: &table,
            validate_payloads: validate,
        };
        let mut state = |p: &PluginRoute| {
            if missing.contains(&&*p.id) {
                TopicState::Missing
            } else {
                TopicState::Exists
            }
        };
        planner.plan(key, headers, value, &mut state, refusals, &mut Vec::new())
    }

    fn ids(plan: &Plan) -> Vec<String> {
        plan.outputs
            .iter()
            .map(|o| match o {
                Output::Plugin(p) => p.id.to_string(),
                Output::DeadLetter {
                    rejection,
                    plugin,
                    drop_value,
                } => {
                    format!(
                        "dlq:{}:{}:{drop_value}",
                        rejection.reason,
                        plugin.as_deref().unwrap_or("-")
                    )
                }
            })
            .collect()
    }

    #[test]
    fn routes_to_every_enabled_subscriber() {
        let plan = plan_with(
            false,
            Some(b"acme"),
            headers("response.submitted", "application/json"),
            Some(b"{}"),
            &[],
            &NoRefusals,
        );
        assert_eq!(plan.outcome, Outcome::Routed);
        assert_eq!(ids(&plan), ["sheets", "sms"]);
    }

    #[test]
    fn unknown_types_skip_validation_and_unsubscribed_events_are_unrouted() {
        let plan = plan_with(
            true,
            Some(b"acme"),
            headers("x.custom", "application/avro"),
            Some(b"\xff"),
            &[],
            &NoRefusals,
        );
        assert_eq!(
            (plan.outcome, ids(&plan)),
            (Outcome::Routed, vec!["sms".to_owned()])
        );
        let plan = plan_with(
            true,
            Some(b"globex"),
            headers("x.custom", "application/json"),
            None,
            &[],
            &NoRefusals,
        );
        assert_eq!(
            plan,
            Plan {
                outcome: Outcome::Unrouted,
                outputs: vec![]
            }
        );
    }

    #[test]
    fn whole_event_rejections() {
        let plan = plan_with(
            true,
            None,
            headers("x.custom", "application/json"),
            None,
            &[],
            &NoRefusals,
        );
        assert_eq!(ids(&plan), ["dlq:missing_key:-:false"]);
        assert_eq!(plan.outcome, Outcome::DeadLettered);
        let plan = plan_with(
            true,
            Some(b"acme"),
            headers("response.submitted", "application/json"),
            Some(b"{}"),
            &[],
            &NoRefusals,
        );
        assert_eq!(ids(&plan), ["dlq:invalid_payload:-:false"]);
        // with validation off the same payload is routed as-is
        let plan = plan_with(
            false,
            Some(b"acme"),
            headers("response.submitted", "application/json"),
            Some(b"{}"),
            &[],
            &NoRefusals,
        );
        assert_eq!(plan.outcome, Outcome::Routed);
    }

    #[test]
    fn a_missing_topic_dead_letters_only_that_copy() {
        let plan = plan_with(
            false,
            Some(b"acme"),
            headers("response.submitted", "application/json"),
            None,
            &["sms"],
            &NoRefusals,
        );
        assert_eq!(plan.outcome, Outcome::Routed);
        assert_eq!(ids(&plan), ["sheets", "dlq:plugin_topic_missing:sms:false"]);
        let plan = plan_with(
            false,
            Some(b"acme"),
            headers("response.submitted", "application/json"),
            None,
            &["sms", "sheets"],
            &NoRefusals,
        );
        assert_eq!(plan.outcome, Outcome::DeadLettered);
    }

    #[test]
    fn refusals_remembered_from_an_earlier_attempt() {
        let refused = Refused(HashMap::from([
            (
                Destination::Plugin(Arc::from("sms")),
                "Broker: Message size too large".to_owned(),
            ),
            (
                Destination::DeadLetter(Some(Arc::from("sms"))),
                "Broker: Message size too large".to_owned(),
            ),
        ]));
        let plan = plan_with(
            false,
            Some(b"acme"),
            headers("response.submitted", "application/json"),
            None,
            &[],
            &refused,
        );
        assert_eq!(ids(&plan), ["sheets", "dlq:plugin_topic_rejected:sms:true"]);
        let whole = Refused(HashMap::from([(
            Destination::DeadLetter(None),
            "too large".to_owned(),
        )]));
        let plan = plan_with(
            true,
            Some(b"bad key!"),
            headers("x", "application/json"),
            None,
            &[],
            &whole,
        );
        assert_eq!(ids(&plan), ["dlq:invalid_key:-:true"]);
    }

    #[test]
    fn avro_payloads_validate_by_fingerprint() {
        let bytes = payload_avro();
        let plan = plan_with(
            true,
            Some(b"acme"),
            headers("response.submitted", "application/avro"),
            Some(&bytes),
            &[],
            &NoRefusals,
        );
        assert_eq!(plan.outcome, Outcome::Routed);
    }

    fn payload_avro() -> Vec<u8> {
        use switchyard_schemas::events::{Response, ResponseSubmitted};
        let event = ResponseSubmitted {
            response: Response {
                id: "r".into(),
                form_id: "f".into(),
                form_version: 1,
                team_id: "acme".into(),
                collector_id: "c".into(),
                submitted_at: 0,
                locale: "en".into(),
                answers: Default::default(),
                duration_ms: None,
            },
        };
        payload::encode(&event, ContentType::Avro).unwrap()
    }
}
