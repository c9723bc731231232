//! Compares the records of a run read back from a plugin topic or the dead-letter topic with what the
//! contract says should be there: every expected record exactly once, nothing else, unchanged, and in
//! per-team order.
//!
//! Exactly once is per input record (contract 10.1): given the run's [`Inputs`] read back from the core
//! topic, an event its producer wrote twice is expected twice, once from each input record, and a copy
//! is a duplicate only when its `switchyard_source` names an input record already seen. Without them every
//! event is expected once.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use switchyard_schemas::dead_letter;
use switchyard_schemas::envelope as h;

use crate::expect::{Expectations, Expected, digest};
use crate::kafka::ReadRecord;

/// How many problem examples a check keeps.
const EXAMPLES: usize = 5;

/// The result of checking one topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TopicCheck {
    /// The topic.
    pub topic: String,
    /// Records the contract says this run must leave there.
    pub expected: u64,
    /// This run's records found there.
    pub arrived: u64,
    /// Expected records not found.
    pub missing: u64,
    /// Copies beyond the first of an expected record.
    pub duplicated: u64,
    /// Copies of an event from a second (third, ...) input record of it: the producer wrote the event
    /// more than once, and each input record is routed once. Not a problem; only counted with [`Inputs`].
    pub repeated_inputs: u64,
    /// Records of this run that should not be there at all.
    pub unexpected: u64,
    /// Records whose key, value or added headers are not what the contract says.
    pub altered: u64,
    /// Dead letters with another reason code than expected.
    pub wrong_reason: u64,
    /// Records of a team found before an earlier event of the same team.
    pub out_of_order: u64,
    /// Dead letters found, by reason code (dead-letter topic only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_reason: BTreeMap<String, u64>,
    /// A few of the problems, for a human.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

impl TopicCheck {
    /// Whether every expected record arrived once, unchanged and in order, and nothing else did.
    pub fn clean(&self) -> bool {
        self.missing == 0
            && self.duplicated == 0
            && self.unexpected == 0
            && self.altered == 0
            && self.wrong_reason == 0
            && self.out_of_order == 0
    }

    fn note(&mut self, problem: impl FnOnce() -> String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(problem());
        }
    }
}

/// Which topic is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The topic of this plugin.
    Plugin(&'a str),
    /// The dead-letter topic.
    DeadLetters,
}

impl Target<'_> {
    /// Whether an event with `outcome` must leave a record here, and with which reason code.
    fn expects(&self, outcome: &Expected) -> Option<Option<&'static str>> {
        match (self, outcome) {
            (Target::Plugin(plugin), Expected::Routed(plugins)) if plugins.iter().any(|p| p == plugin) => {
                Some(None)
            }
            (Target::DeadLetters, Expected::DeadLettered(reason)) => Some(Some(reason.code())),
            _ => None,
        }
    }
}

/// Where each event's records are in the core topic (their `switchyard_source` values,
/// `<topic>/<partition>/<offset>`), read back after a run.
#[derive(Debug, Default)]
pub struct Inputs(HashMap<String, Vec<String>>);

impl Inputs {
    /// The input records of `core_topic` read back (records without a `ce_id` are left out).
    pub fn from_records(core_topic: &str, records: &[ReadRecord]) -> Self {
        let mut inputs: HashMap<String, Vec<String>> = HashMap::new();
        for record in records {
            if let Some(id) = record.header(h::ID) {
                inputs
                    .entry(id)
                    .or_default()
                    .push(format!("{core_topic}/{}/{}", record.partition, record.offset));
            }
        }
        Self(inputs)
    }

    /// The events written to the core topic more than once, with where.
    pub fn repeated(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0
            .iter()
            .filter(|(_, at)| at.len() > 1)
            .map(|(id, at)| (id.as_str(), at.as_slice()))
    }

    /// The input records of event `id`, if it was read back.
    fn of(&self, id: &str) -> Option<&[String]> {
        self.0.get(id).map(Vec::as_slice)
    }
}

/// Checks this run's `records` of one topic against `expectations`; the events were read from
/// `core_topic`, and `inputs` (if given) are its records read back.
pub fn check(
    core_topic: &str,
    topic: &str,
    target: Target<'_>,
    expectations: &Expectations,
    inputs: Option<&Inputs>,
    records: &[ReadRecord],
) -> TopicCheck {
    // How many copies of an event are due: one per input record of it.
    let due = |id: &str| inputs.and_then(|i| i.of(id)).map_or(1, |at| at.len().max(1)) as u64;
    let mut result = TopicCheck {
        topic: topic.to_owned(),
        expected: expectations
            .events
            .iter()
            .filter(|(_, e)| target.expects(&e.outcome).is_some())
            .map(|(id, _)| due(id))
            .sum(),
        arrived: records.len() as u64,
        ..TopicCheck::default()
    };
    // The `switchyard_source` of each due copy found, per event.
    let mut seen: HashMap<&str, Vec<Option<String>>> = HashMap::new();
    let mut last_seq: HashMap<(i32, Option<&[u8]>), u64> = HashMap::new();
    for record in records {
        if target == Target::DeadLetters {
            let reason = record
                .header(dead_letter::ERROR)
                .unwrap_or_else(|| "(none)".to_owned());
            *result.by_reason.entry(reason).or_default() += 1;
        }
        let id = record
            .headers
            .iter()
            .find(|(n, _)| n == h::ID)
            .and_then(|(_, v)| v.as_deref())
            .and_then(|v| std::str::from_utf8(v).ok());
        let Some((id, expectation)) = id.and_then(|id| expectations.events.get_key_value(id)) else {
            result.unexpected += 1;
            result.note(|| {
                format!(
                    "unexpected: {} at {}/{}",
                    describe(record),
                    record.partition,
                    record.offset
                )
            });
            continue;
        };
        let Some(reason) = target.expects(&expectation.outcome) else {
            result.unexpected += 1;
            result.note(|| {
                format!(
                    "unexpected: event {id} ({}, expected {:?}) at {}/{}",
                    expectation.team, expectation.outcome, record.partition, record.offset
                )
            });
            continue;
        };
        let source = record.header(dead_letter::SOURCE);
        let copies = seen.entry(id.as_str()).or_default();
        // A copy is due when its input record is one of the event's and not yet seen (without `inputs`:
        // when it is the event's first copy).
        let due_copy = match inputs.and_then(|i| i.of(id)) {
            Some(at) => source.as_ref().is_some_and(|s| at.contains(s)) && !copies.contains(&source),
            None => copies.is_empty(),
        };
        if !due_copy {
            result.duplicated += 1;
            result.note(|| {
                format!(
                    "duplicated: event {id} again at {}/{} from {}; earlier copies from {}",
                    record.partition,
                    record.offset,
                    source.as_deref().unwrap_or("(no source)"),
                    if copies.is_empty() {
                        "(none)".to_owned()
                    } else {
                        copies
                            .iter()
                            .map(|s| s.as_deref().unwrap_or("(no source)"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )
            });
            continue;
        }
        let first = copies.is_empty();
        copies.push(source);
        if !first {
            result.repeated_inputs += 1;
        }
        if let Some(reason) = reason {
            let found = record.header(dead_letter::ERROR);
            if found.as_deref() != Some(reason) {
                result.wrong_reason += 1;
                result.note(|| format!("wrong reason: event {id} has {found:?}, expected {reason}"));
            }
        }
        let source_ok = record.header(dead_letter::SOURCE).is_some_and(|s| {
            s.strip_prefix(core_topic)
                .is_some_and(|rest| rest.starts_with('/'))
        });
        if record.key.as_deref() != Some(expectation.team.as_bytes())
            || digest(record.value.as_deref()) != expectation.value_digest
            || !source_ok
        {
            result.altered += 1;
            result.note(|| format!("altered: event {id} at {}/{}", record.partition, record.offset));
        }
        if !first {
            // A repeated input's copy sits where its own input record was, after later events: its place
            // in the team's order is not the event's.
            continue;
        }
        let last = last_seq
            .entry((record.partition, record.key.as_deref()))
            .or_insert(expectation.seq);
        if expectation.seq < *last {
            result.out_of_order += 1;
            result.note(|| {
                format!(
                    "out of order: event {id} of {} after a later one",
                    expectation.team
                )
            });
        }
        *last = (*last).max(expectation.seq);
    }
    // The copies that were due, per event.
    let found = |id: &str| seen.get(id).map_or(0, |copies| copies.len() as u64);
    let mut missing: Vec<(u64, &str, u64)> = expectations
        .events
        .iter()
        .filter(|(_, e)| target.expects(&e.outcome).is_some())
        .filter_map(|(id, e)| {
            let short = due(id).saturating_sub(found(id));
            (short > 0).then_some((e.seq, id.as_str(), short))
        })
        .collect();
    missing.sort_unstable();
    result.missing = missing.iter().map(|(_, _, short)| short).sum();
    for (seq, id, _) in missing.iter().take(EXAMPLES) {
        result.note(|| format!("missing: event {id} (#{seq})"));
    }
    result
}

fn describe(record: &ReadRecord) -> String {
    match record.header(h::ID) {
        Some(id) => format!("unknown event {id}"),
        None => "a record without ce_id".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use switchyard_schemas::dead_letter::Reason;

    use super::*;
    use crate::expect::EventExpectation;

    fn expectations() -> Expectations {
        let mut e = Expectations::default();
        let mut add = |id: &str, seq: u64, team: &str, outcome: Expected| {
            e.events.insert(
                id.to_owned(),
                EventExpectation {
                    seq,
                    team: team.to_owned(),
                    value_digest: digest(Some(id.as_bytes())),
                    outcome,
                },
            );
        };
        add(
            "a",
            0,
            "kilimo-coop",
            Expected::Routed(vec!["sheets-export".into(), "sms-notify".into()]),
        );
        add(
            "b",
            1,
            "kilimo-coop",
            Expected::Routed(vec!["sheets-export".into()]),
        );
        add(
            "c",
            2,
            "maji-water",
            Expected::Routed(vec!["sheets-export".into()]),
        );
        add("d", 3, "elimu-schools", Expected::Unrouted);
        add(
            "e",
            4,
            "maji-water",
            Expected::DeadLettered(Reason::TeamidMismatch),
        );
        e
    }

    fn record(id: &str, team: &str, partition: i32, offset: i64, extra: &[(&str, &str)]) -> ReadRecord {
        let mut headers = vec![
            (h::ID.to_owned(), Some(id.as_bytes().to_vec())),
            (dead_letter::SOURCE.to_owned(), Some(b"core.events/0/1".to_vec())),
        ];
        headers.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Some(v.as_bytes().to_vec()))),
        );
        ReadRecord {
            topic: "t".into(),
            partition,
            offset,
            key: Some(team.as_bytes().to_vec()),
            value: Some(id.as_bytes().to_vec()),
            headers,
        }
    }

    #[test]
    fn a_clean_topic() {
        let records = [
            record("a", "kilimo-coop", 0, 0, &[]),
            record("c", "maji-water", 1, 0, &[]),
            record("b", "kilimo-coop", 0, 1, &[]),
        ];
        let check = check(
            "core.events",
            "plugin.sheets-export.events",
            Target::Plugin("sheets-export"),
            &expectations(),
            None,
            &records,
        );
        assert!(check.clean(), "{check:?}");
        assert_eq!((check.expected, check.arrived), (3, 3));
    }

    #[test]
    fn every_kind_of_problem() {
        let mut altered = record("c", "maji-water", 1, 0, &[]);
        altered.value = Some(b"changed".to_vec());
        let records = [
            record("b", "kilimo-coop", 0, 0, &[]),
            record("a", "kilimo-coop", 0, 1, &[]), // a is older than b: out of order
            record("a", "kilimo-coop", 0, 2, &[]), // twice
            record("d", "elimu-schools", 2, 0, &[]), // unrouted, yet here
            record("zz", "kilimo-coop", 0, 3, &[]), // not of this run's expectations
            altered,
        ];
        let check = check(
            "core.events",
            "plugin.sheets-export.events",
            Target::Plugin("sheets-export"),
            &expectations(),
            None,
            &records,
        );
        assert_eq!(check.out_of_order, 1);
        assert_eq!(check.duplicated, 1);
        assert_eq!(check.unexpected, 2);
        assert_eq!(check.altered, 1);
        assert_eq!(check.missing, 0);
        assert!(!check.clean());
        assert_eq!(check.examples.len(), EXAMPLES);

        let missing = check_missing();
        assert_eq!(missing.missing, 1);
        assert!(missing.examples[0].contains("event b"), "{:?}", missing.examples);
    }

    fn check_missing() -> TopicCheck {
        let records = [
            record("a", "kilimo-coop", 0, 0, &[]),
            record("c", "maji-water", 1, 0, &[]),
        ];
        check(
            "core.events",
            "plugin.sheets-export.events",
            Target::Plugin("sheets-export"),
            &expectations(),
            None,
            &records,
        )
    }

    /// An output copy of `id` from input record `core.events/0/<input>`.
    fn copy(id: &str, team: &str, offset: i64, input: i64) -> ReadRecord {
        let mut r = record(id, team, 0, offset, &[]);
        let source = format!("core.events/0/{input}").into_bytes();
        r.headers
            .iter_mut()
            .find(|(n, _)| n == dead_letter::SOURCE)
            .expect("record() sets a source")
            .1 = Some(source);
        r
    }

    #[test]
    fn an_event_written_twice_is_due_twice_and_a_copy_of_one_input_twice_is_a_duplicate() {
        // The producer wrote `a` twice (offsets 0 and 5) and `b` once (offset 1).
        let inputs = Inputs::from_records(
            "core.events",
            &[
                record("a", "kilimo-coop", 0, 0, &[]),
                record("b", "kilimo-coop", 0, 1, &[]),
                record("a", "kilimo-coop", 0, 5, &[]),
            ],
        );
        assert_eq!(
            inputs.repeated().collect::<Vec<_>>(),
            [(
                "a",
                ["core.events/0/0".to_owned(), "core.events/0/5".to_owned()].as_slice()
            )]
        );
        let check_with = |records: &[ReadRecord]| {
            check(
                "core.events",
                "plugin.sheets-export.events",
                Target::Plugin("sheets-export"),
                &expectations(),
                Some(&inputs),
                records,
            )
        };
        // Each input record once, the second `a` after `b` as in the input: clean.
        let once = check_with(&[
            copy("a", "kilimo-coop", 0, 0),
            copy("c", "maji-water", 1, 0),
            copy("b", "kilimo-coop", 2, 1),
            copy("a", "kilimo-coop", 3, 5),
        ]);
        assert!(once.clean(), "{once:?}");
        assert_eq!((once.expected, once.repeated_inputs), (4, 1));

        // The first input record of `a` routed twice, its second never.
        let twice = check_with(&[
            copy("a", "kilimo-coop", 0, 0),
            copy("c", "maji-water", 1, 0),
            copy("b", "kilimo-coop", 2, 1),
            copy("a", "kilimo-coop", 3, 0),
        ]);
        assert_eq!((twice.duplicated, twice.missing), (1, 1));
        assert!(
            twice.examples[0].contains("from core.events/0/0; earlier copies from core.events/0/0"),
            "{:?}",
            twice.examples
        );

        // Without the inputs, the second copy of `a` is a duplicate whatever its source.
        let strict = check(
            "core.events",
            "plugin.sheets-export.events",
            Target::Plugin("sheets-export"),
            &expectations(),
            None,
            &[
                copy("a", "kilimo-coop", 0, 0),
                copy("c", "maji-water", 1, 0),
                copy("b", "kilimo-coop", 2, 1),
                copy("a", "kilimo-coop", 3, 5),
            ],
        );
        assert_eq!(
            (strict.duplicated, strict.missing, strict.repeated_inputs),
            (1, 0, 0)
        );
    }

    #[test]
    fn dead_letters_need_their_reason() {
        let good = [record(
            "e",
            "maji-water",
            0,
            0,
            &[(dead_letter::ERROR, "teamid_mismatch")],
        )];
        let check_good = check(
            "core.events",
            "core.events.dlq",
            Target::DeadLetters,
            &expectations(),
            None,
            &good,
        );
        assert!(check_good.clean(), "{check_good:?}");
        assert_eq!(check_good.by_reason["teamid_mismatch"], 1);

        let wrong = [record(
            "e",
            "maji-water",
            0,
            0,
            &[(dead_letter::ERROR, "invalid_payload")],
        )];
        assert_eq!(
            check(
                "core.events",
                "core.events.dlq",
                Target::DeadLetters,
                &expectations(),
                None,
                &wrong
            )
            .wrong_reason,
            1
        );

        let routed_instead = [record(
            "a",
            "kilimo-coop",
            0,
            0,
            &[(dead_letter::ERROR, "plugin_topic_missing")],
        )];
        let check_bad = check(
            "core.events",
            "core.events.dlq",
            Target::DeadLetters,
            &expectations(),
            None,
            &routed_instead,
        );
        assert_eq!((check_bad.unexpected, check_bad.missing), (1, 1));
    }
}
