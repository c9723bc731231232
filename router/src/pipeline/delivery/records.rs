//! The pure part of sending: from one input record and the planner's outputs to the records to write.
//!
//! ```text
//!   InputRecord (key, value, headers) ──► base headers = input headers + switchyard_source
//!                                              [+ switchyard_backfill, a backfill's history]  (once)
//!                                              │ one copy per output, the last takes the original
//!   Output::Plugin      ──► plugin topic,      headers = base + [switchyard_installation],     value
//!   Output::DeadLetter  ──► dead-letter topic, headers = base + switchyard_error, _error_detail,
//!                                              [switchyard_plugin], [switchyard_installation],
//!                                              [switchyard_value_dropped], value or none
//! ```
//!
//! `switchyard_installation` is set for a named installation only (a default installation's copy is as
//! before installations existed); an input header of that name is not copied: only the router says which
//! installation a copy is for.
//!
//! No Kafka here beyond building librdkafka's header list, so every shape is unit-tested without a broker.

use rdkafka::message::{Header, OwnedHeaders};
use switchyard_schemas::dead_letter::{self, Reason};
use switchyard_schemas::topics::source_header;
use switchyard_schemas::{backfill, envelope};

use crate::pipeline::plan::{Destination, Output, Recipient};

/// One input record, as the engine reads it: a view of a consumed message, or of a test's record.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'a> {
    /// The input partition.
    pub partition: i32,
    /// The input offset.
    pub offset: i64,
    /// The key (the team id).
    pub key: Option<&'a [u8]>,
    /// The value, written unchanged to every output (unless a dead letter drops it).
    pub value: Option<&'a [u8]>,
    /// The headers, in order.
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

/// What the producer writes for one output.
pub struct Outgoing<'a> {
    /// The destination topic.
    pub topic: &'a str,
    /// The input's key.
    pub key: Option<&'a [u8]>,
    /// The input's value, or none when a dead letter drops it.
    pub value: Option<&'a [u8]>,
    /// The headers, see the module doc.
    pub headers: OwnedHeaders,
}

/// One record to write, with what its delivery report must know of it.
pub struct Record<'a> {
    /// The record itself.
    pub out: Outgoing<'a>,
    /// Where the copy goes, as a refusal of it is remembered.
    pub destination: Destination,
    /// A dead letter's reason.
    pub reason: Option<Reason>,
    /// A dead letter written without its value.
    pub value_dropped: bool,
}

/// The records of one input record's outputs, in order. The base headers are built once per input record,
/// and not at all when it has no outputs (unrouted events, often most of them, write nothing); each record
/// takes its own copy of them and the last takes the original.
pub fn records<'a>(
    outputs: &'a [Output],
    input: &InputRecord<'a>,
    input_topic: &str,
    dead_letter_topic: &'a str,
    backfill: Option<&str>,
    traceparent: Option<&str>,
) -> impl Iterator<Item = Record<'a>> + use<'a> {
    let mut base = (!outputs.is_empty()).then(|| {
        let source = source_header(input_topic, input.partition, input.offset);
        base_headers(input.headers, &source, backfill, traceparent)
    });
    let (key, value) = (input.key, input.value);
    let last = outputs.len().saturating_sub(1);
    outputs.iter().enumerate().map_while(move |(i, output)| {
        let headers = if i == last { base.take() } else { base.clone() }?;
        Some(record(output, headers, key, value, dead_letter_topic))
    })
}

/// The headers every output of an input record starts with: the input's headers in order (but
/// `switchyard_installation` and `switchyard_backfill`), then `switchyard_source`, then
/// `switchyard_backfill` for a backfill's historical copy. Room is left for the five dead-letter headers.
///
/// `traceparent` is the router's span when it recorded one: it takes the place of the input's first
/// `traceparent` value, or, when the input had none, follows the input's headers.
pub fn base_headers(
    input: &[(&str, Option<&[u8]>)],
    source: &str,
    backfill: Option<&str>,
    traceparent: Option<&str>,
) -> OwnedHeaders {
    let mut base = OwnedHeaders::new_with_capacity(input.len() + 8);
    let mut traced = traceparent.is_none();
    for (key, value) in input {
        if !traced && *key == envelope::TRACEPARENT {
            base = base.insert(Header {
                key,
                value: traceparent,
            });
            traced = true;
        } else if *key != dead_letter::INSTALLATION && *key != backfill::HEADER {
            base = base.insert(Header { key, value: *value });
        }
    }
    if !traced {
        base = base.insert(Header {
            key: envelope::TRACEPARENT,
            value: traceparent,
        });
    }
    base = base.insert(Header {
        key: dead_letter::SOURCE,
        value: Some(source),
    });
    match backfill {
        Some(id) => base.insert(Header {
            key: backfill::HEADER,
            value: Some(id),
        }),
        None => base,
    }
}

/// The record of one output, on top of `base` (from [`base_headers`]).
pub fn record<'a>(
    output: &'a Output,
    base: OwnedHeaders,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    dead_letter_topic: &'a str,
) -> Record<'a> {
    match output {
        Output::Plugin { route, installation } => Record {
            out: Outgoing {
                topic: &route.topic,
                key,
                value,
                headers: with_installation(base, installation.as_deref()),
            },
            destination: Destination::Plugin(Recipient {
                plugin: route.id.clone(),
                installation: installation.clone(),
            }),
            reason: None,
            value_dropped: false,
        },
        Output::DeadLetter {
            rejection,
            plugin,
            drop_value,
        } => {
            let mut headers = base
                .insert(Header {
                    key: dead_letter::ERROR,
                    value: Some(rejection.reason.code()),
                })
                .insert(Header {
                    key: dead_letter::ERROR_DETAIL,
                    value: Some(rejection.detail.as_str()),
                });
            if let Some(recipient) = plugin {
                headers = headers.insert(Header {
                    key: dead_letter::PLUGIN,
                    value: Some(&*recipient.plugin),
                });
                headers = with_installation(headers, recipient.installation.as_deref());
            }
            if *drop_value {
                headers = headers.insert(Header {
                    key: dead_letter::VALUE_DROPPED,
                    value: Some("true"),
                });
            }
            Record {
                out: Outgoing {
                    topic: dead_letter_topic,
                    key,
                    value: if *drop_value { None } else { value },
                    headers,
                },
                destination: Destination::DeadLetter(plugin.clone()),
                reason: Some(rejection.reason),
                value_dropped: *drop_value,
            }
        }
    }
}

/// `headers` and, for a named installation, `switchyard_installation`.
fn with_installation(headers: OwnedHeaders, installation: Option<&str>) -> OwnedHeaders {
    match installation {
        None => headers,
        Some(name) => headers.insert(Header {
            key: dead_letter::INSTALLATION,
            value: Some(name),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rdkafka::message::Headers;
    use switchyard_schemas::Rejection;

    use super::*;
    use crate::tables::test_support;

    const HEADERS: &[(&str, Option<&[u8]>)] = &[("ce_type", Some(b"response.submitted")), ("empty", None)];

    fn input() -> InputRecord<'static> {
        InputRecord {
            partition: 3,
            offset: 41,
            key: Some(b"acme"),
            value: Some(b"{\"a\":1}"),
            headers: HEADERS,
        }
    }

    /// The default installation's copy for plugin `id`.
    fn plugin(id: &str) -> Output {
        named(id, None)
    }

    /// The copy for plugin `id`'s installation `installation`.
    fn named(id: &str, installation: Option<&str>) -> Output {
        test_support::plugin_output(id, installation)
    }

    fn dead_letter(reason: Reason, plugin: Option<&str>, drop_value: bool) -> Output {
        Output::DeadLetter {
            rejection: Rejection::new(reason, "why it failed"),
            plugin: plugin.map(Recipient::default_of),
            drop_value,
        }
    }

    fn header_list(headers: &OwnedHeaders) -> Vec<(String, Option<String>)> {
        headers
            .iter()
            .map(|h| {
                let value = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                (h.key.to_owned(), value)
            })
            .collect()
    }

    fn expected(extra: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        let mut list = vec![
            ("ce_type".to_owned(), Some("response.submitted".to_owned())),
            ("empty".to_owned(), None),
            (
                "switchyard_source".to_owned(),
                Some("core.events/3/41".to_owned()),
            ),
        ];
        list.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned()))),
        );
        list
    }

    fn build(outputs: &[Output]) -> Vec<Record<'_>> {
        records(
            outputs,
            &input(),
            "core.events",
            "switchyard.dead-letters",
            None,
            None,
        )
        .collect()
    }

    #[test]
    fn a_plugin_copy_is_the_input_unchanged_with_its_source() {
        let outputs = [plugin("sheets")];
        let [record] = &build(&outputs)[..] else {
            panic!("one record")
        };
        assert_eq!(record.out.topic, "plugin.sheets.events");
        assert_eq!(record.out.key, Some(&b"acme"[..]));
        assert_eq!(record.out.value, Some(&b"{\"a\":1}"[..]));
        assert_eq!(header_list(&record.out.headers), expected(&[]));
        assert_eq!(
            record.destination,
            Destination::Plugin(Recipient::default_of("sheets"))
        );
        assert_eq!((record.reason, record.value_dropped), (None, false));
    }

    #[test]
    fn a_dead_letter_of_one_plugins_copy_names_the_plugin() {
        let outputs = [dead_letter(Reason::PluginTopicMissing, Some("sms"), false)];
        let [record] = &build(&outputs)[..] else {
            panic!("one record")
        };
        assert_eq!(record.out.topic, "switchyard.dead-letters");
        assert_eq!(record.out.value, Some(&b"{\"a\":1}"[..]));
        assert_eq!(
            header_list(&record.out.headers),
            expected(&[
                ("switchyard_error", "plugin_topic_missing"),
                ("switchyard_error_detail", "why it failed"),
                ("switchyard_plugin", "sms"),
            ])
        );
        assert_eq!(
            record.destination,
            Destination::DeadLetter(Some(Recipient::default_of("sms")))
        );
        assert_eq!(record.reason, Some(Reason::PluginTopicMissing));
        assert!(!record.value_dropped);
    }

    #[test]
    fn a_dead_letter_of_the_whole_event_names_no_plugin() {
        let outputs = [dead_letter(Reason::InvalidKey, None, false)];
        let [record] = &build(&outputs)[..] else {
            panic!("one record")
        };
        assert_eq!(
            header_list(&record.out.headers),
            expected(&[
                ("switchyard_error", "invalid_key"),
                ("switchyard_error_detail", "why it failed"),
            ])
        );
        assert_eq!(record.destination, Destination::DeadLetter(None));
        assert_eq!(record.out.value, Some(&b"{\"a\":1}"[..]));
    }

    #[test]
    fn a_value_dropped_dead_letter_has_no_value_and_says_so() {
        let outputs = [dead_letter(Reason::PluginTopicRejected, Some("sms"), true)];
        let [record] = &build(&outputs)[..] else {
            panic!("one record")
        };
        assert_eq!(record.out.value, None);
        assert_eq!(record.out.key, Some(&b"acme"[..]));
        assert_eq!(
            header_list(&record.out.headers),
            expected(&[
                ("switchyard_error", "plugin_topic_rejected"),
                ("switchyard_error_detail", "why it failed"),
                ("switchyard_plugin", "sms"),
                ("switchyard_value_dropped", "true"),
            ])
        );
        assert!(record.value_dropped);
    }

    #[test]
    fn every_output_gets_its_own_headers_in_plan_order_and_none_are_built_for_no_outputs() {
        let outputs = [
            plugin("sheets"),
            dead_letter(Reason::PluginTopicMissing, Some("sms"), false),
            plugin("crm"),
        ];
        let built = build(&outputs);
        let topics: Vec<&str> = built.iter().map(|r| r.out.topic).collect();
        assert_eq!(
            topics,
            [
                "plugin.sheets.events",
                "switchyard.dead-letters",
                "plugin.crm.events"
            ]
        );
        // The dead letter's headers were added to its own copy, not to the others'.
        assert_eq!(header_list(&built[0].out.headers), expected(&[]));
        assert_eq!(header_list(&built[2].out.headers), expected(&[]));
        assert_eq!(built[1].out.headers.count(), 6);
        assert_eq!(build(&[]).len(), 0);
    }

    #[test]
    fn a_named_installation_s_copy_and_dead_letter_say_which_and_an_input_cannot() {
        const SPOOFED: &[(&str, Option<&[u8]>)] = &[
            ("ce_type", Some(b"response.submitted")),
            ("switchyard_installation", Some(b"someone-else")),
            ("empty", None),
        ];
        let input = InputRecord {
            headers: SPOOFED,
            ..input()
        };
        let outputs = [
            plugin("sheets"),
            named("sheets", Some("forms-bc")),
            Output::DeadLetter {
                rejection: Rejection::new(Reason::PluginTopicMissing, "why it failed"),
                plugin: Some(Recipient {
                    plugin: Arc::from("sheets"),
                    installation: Some(Arc::from("forms-bc")),
                }),
                drop_value: false,
            },
        ];
        let built: Vec<_> = records(
            &outputs,
            &input,
            "core.events",
            "switchyard.dead-letters",
            None,
            None,
        )
        .collect();
        assert_eq!(
            header_list(&built[0].out.headers),
            expected(&[]),
            "the default installation's copy: no installation header, the input's dropped"
        );
        assert_eq!(
            header_list(&built[1].out.headers),
            expected(&[("switchyard_installation", "forms-bc")])
        );
        assert_eq!(
            built[1].destination,
            Destination::Plugin(Recipient {
                plugin: Arc::from("sheets"),
                installation: Some(Arc::from("forms-bc")),
            })
        );
        assert_eq!(
            header_list(&built[2].out.headers),
            expected(&[
                ("switchyard_error", "plugin_topic_missing"),
                ("switchyard_error_detail", "why it failed"),
                ("switchyard_plugin", "sheets"),
                ("switchyard_installation", "forms-bc"),
            ])
        );
    }

    #[test]
    fn a_historical_copy_says_which_backfill_and_an_input_cannot() {
        const SPOOFED: &[(&str, Option<&[u8]>)] = &[
            ("ce_type", Some(b"response.submitted")),
            ("switchyard_backfill", Some(b"someone-else")),
            ("empty", None),
        ];
        let input = InputRecord {
            headers: SPOOFED,
            ..input()
        };
        let outputs = [named("sheets", Some("forms-bc"))];
        let built: Vec<_> = records(
            &outputs,
            &input,
            "core.events",
            "switchyard.dead-letters",
            Some("b-1"),
            None,
        )
        .collect();
        assert_eq!(
            header_list(&built[0].out.headers),
            expected(&[
                ("switchyard_backfill", "b-1"),
                ("switchyard_installation", "forms-bc")
            ])
        );
        let live: Vec<_> = records(
            &outputs,
            &input,
            "core.events",
            "switchyard.dead-letters",
            None,
            None,
        )
        .collect();
        assert_eq!(
            header_list(&live[0].out.headers),
            expected(&[("switchyard_installation", "forms-bc")]),
            "a live copy has none, whatever the input said"
        );
    }

    #[test]
    fn a_recorded_span_replaces_the_input_traceparent_in_place_or_follows_the_input_headers() {
        const OURS: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01";
        const TRACED: &[(&str, Option<&[u8]>)] = &[
            ("ce_type", Some(b"response.submitted")),
            (
                "traceparent",
                Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ),
            ("tracestate", Some(b"vendor=1")),
        ];
        let outputs = [plugin("sheets"), dead_letter(Reason::InvalidPayload, None, false)];
        let traced = InputRecord {
            headers: TRACED,
            ..input()
        };
        let built: Vec<_> = records(
            &outputs,
            &traced,
            "core.events",
            "switchyard.dead-letters",
            None,
            Some(OURS),
        )
        .collect();
        for record in &built {
            let headers = header_list(&record.out.headers);
            assert_eq!(headers[1], ("traceparent".to_owned(), Some(OURS.to_owned())));
            assert_eq!(headers[2], ("tracestate".to_owned(), Some("vendor=1".to_owned())));
            assert_eq!(headers[3].0, "switchyard_source");
        }
        let untraced: Vec<_> = records(
            &outputs,
            &input(),
            "core.events",
            "switchyard.dead-letters",
            None,
            Some(OURS),
        )
        .collect();
        let headers = header_list(&untraced[0].out.headers);
        assert_eq!(headers[2], ("traceparent".to_owned(), Some(OURS.to_owned())));
        assert_eq!(headers[3].0, "switchyard_source");
        // Tracing off (or the span not recorded): the input's traceparent as it was.
        let off: Vec<_> = records(
            &outputs,
            &traced,
            "core.events",
            "switchyard.dead-letters",
            None,
            None,
        )
        .collect();
        assert_eq!(
            header_list(&off[0].out.headers)[1].1.as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
    }
}
