//! Counting the seed plugins' effects against what the routed events call for: pure, no I/O.
//!
//! The unit of each plugin's effect, and where it is counted:
//!
//! | plugin | one effect per | counted in | due when |
//! | --- | --- | --- | --- |
//! | sheets-export | routed response (its submission and edits write one row) | the fake Sheets' rows, by the `response_id` column | always |
//! | sms-notify | routed `response.submitted` | the fake Twilio's messages, by the response id the text ends with | unless the plugin answered `sms.skipped` (no phone number) |
//! | rules-validate | routed response event | distinct result `ce_id`s on the results topic | the rules flag the response |
//! | slang-search | routed response event | distinct result `ce_id`s on the results topic | the dictionaries find slang |
//!
//! An effect due and found once is *once*; found more than once, *duplicated*; not found, *missing*
//! (dead-lettered events among them, counted apart too). An effect found that nothing called for is
//! *unexpected*. Result copies with the same `ce_id` (a redelivery's results again) are one effect: the
//! contract tells consumers to drop them, and the report counts how many were dropped.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::generate::control::{RULES_VALIDATE, SHEETS_EXPORT, SLANG_SEARCH, SMS_NOTIFY};

/// The result kind sms-notify answers when it texts nobody.
pub const SMS_SKIPPED: &str = "switchyard.plugin.sms.skipped";

/// A routed event as the count needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedEvent {
    /// `ce_id`.
    pub id: String,
    /// The team.
    pub team: String,
    /// `ce_type`.
    pub event_type: String,
    /// The response's id, for response events.
    pub response_id: Option<String>,
    /// For rules-validate and slang-search: whether the plugin's logic yields a result for it.
    pub yields_result: bool,
}

/// One result record, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRecord {
    /// The plugin (`ce_source` `/plugins/<id>`).
    pub plugin: String,
    /// `ce_causationid`: the event it answers.
    pub event_id: String,
    /// `ce_id`.
    pub id: String,
    /// `ce_type`.
    pub kind: String,
}

/// What the fakes and the topics hold after the run.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Response ids of the texts Twilio accepted, one entry per message.
    pub messages: Vec<String>,
    /// (team, response id) of every data row of the teams' spreadsheets.
    pub rows: Vec<(String, String)>,
    /// Every result record.
    pub results: Vec<ResultRecord>,
    /// (plugin, event id) of every dead letter of the plugin workers.
    pub dead_letters: Vec<(String, String)>,
}

/// One plugin's effects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EffectCounts {
    /// Effects the routed events call for.
    pub expected: u64,
    /// Happened exactly once.
    pub once: u64,
    /// Happened more than once (counted once per effect).
    pub duplicated: u64,
    /// Did not happen.
    pub missing: u64,
    /// Of the missing, those whose event the worker dead-lettered.
    pub dead_lettered: u64,
    /// Happened without being called for.
    pub unexpected: u64,
    /// Result copies with a `ce_id` seen before, which consumers drop.
    pub copies_dropped: u64,
    /// A few of the effects that were not once, described.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

/// Examples kept per plugin.
const EXAMPLES: usize = 5;

impl EffectCounts {
    fn count(&mut self, due: bool, happened: u64, dead_lettered: bool, what: impl FnOnce() -> String) {
        if due != (happened == 1) && self.examples.len() < EXAMPLES {
            let due = if due { "due once" } else { "not due" };
            let dead = if dead_lettered { ", dead-lettered" } else { "" };
            self.examples
                .push(format!("{} ({due}): happened {happened} times{dead}", what()));
        }
        match (due, happened) {
            (false, 0) => {}
            (false, _) => self.unexpected += 1,
            (true, 0) => {
                self.expected += 1;
                self.missing += 1;
                self.dead_lettered += u64::from(dead_lettered);
            }
            (true, 1) => {
                self.expected += 1;
                self.once += 1;
            }
            (true, _) => {
                self.expected += 1;
                self.duplicated += 1;
            }
        }
    }

    /// Every due effect once, nothing else.
    pub fn clean(&self) -> bool {
        self.duplicated == 0 && self.missing == 0 && self.unexpected == 0
    }
}

/// The results of one (plugin, event): their distinct ids and kinds.
#[derive(Default)]
struct Answers<'a> {
    ids: HashSet<&'a str>,
    kinds: HashSet<&'a str>,
}

/// Counts each plugin's effects for the events routed to it (`routed`, by plugin).
pub fn tally(
    routed: &BTreeMap<String, Vec<RoutedEvent>>,
    observed: &Observed,
) -> BTreeMap<String, EffectCounts> {
    let mut messages: HashMap<&str, u64> = HashMap::new();
    for response in &observed.messages {
        *messages.entry(response).or_default() += 1;
    }
    let mut rows: HashMap<(&str, &str), u64> = HashMap::new();
    for (team, response) in &observed.rows {
        *rows.entry((team, response)).or_default() += 1;
    }
    // Distinct result ids and the kinds answered, by (plugin, event).
    let mut results: HashMap<(&str, &str), Answers<'_>> = HashMap::new();
    let mut copies: HashMap<&str, u64> = HashMap::new();
    for result in &observed.results {
        let answers = results.entry((&result.plugin, &result.event_id)).or_default();
        if !answers.ids.insert(&result.id) {
            *copies.entry(&result.plugin).or_default() += 1;
        }
        answers.kinds.insert(&result.kind);
    }
    let dead: HashSet<(&str, &str)> = observed
        .dead_letters
        .iter()
        .map(|(plugin, event)| (plugin.as_str(), event.as_str()))
        .collect();

    let mut out = BTreeMap::new();
    for (plugin, events) in routed {
        let mut counts = EffectCounts {
            copies_dropped: copies.get(plugin.as_str()).copied().unwrap_or_default(),
            ..EffectCounts::default()
        };
        let dead_lettered = |event: &RoutedEvent| dead.contains(&(plugin.as_str(), event.id.as_str()));
        match plugin.as_str() {
            SHEETS_EXPORT => {
                // One row per response, however many of its events were routed.
                let mut responses: BTreeMap<(&str, &str), bool> = BTreeMap::new();
                for event in events {
                    if let Some(response) = &event.response_id {
                        let lost = responses.entry((&event.team, response)).or_default();
                        *lost |= dead_lettered(event);
                    }
                }
                for (&(team, response), &lost) in &responses {
                    let written = rows.get(&(team, response)).copied().unwrap_or_default();
                    counts.count(true, written, lost, || {
                        format!("the row of response {response} of {team}")
                    });
                }
                let known: HashSet<(&str, &str)> = responses.keys().copied().collect();
                counts.unexpected += rows.keys().filter(|key| !known.contains(key)).count() as u64;
            }
            SMS_NOTIFY => {
                let mut known = HashSet::new();
                for event in events.iter().filter(|e| e.event_type == "response.submitted") {
                    let Some(response) = &event.response_id else {
                        continue;
                    };
                    known.insert(response.as_str());
                    let skipped = results
                        .get(&(plugin.as_str(), event.id.as_str()))
                        .is_some_and(|answers| answers.kinds.contains(SMS_SKIPPED));
                    let texts = messages.get(response.as_str()).copied().unwrap_or_default();
                    counts.count(!skipped, texts, dead_lettered(event), || {
                        format!("the text about response {response} (event {})", event.id)
                    });
                }
                counts.unexpected += messages.keys().filter(|r| !known.contains(*r)).count() as u64;
            }
            RULES_VALIDATE | SLANG_SEARCH => {
                for event in events.iter().filter(|e| e.response_id.is_some()) {
                    let ids = results
                        .get(&(plugin.as_str(), event.id.as_str()))
                        .map(|answers| answers.ids.len() as u64)
                        .unwrap_or_default();
                    counts.count(event.yields_result, ids, dead_lettered(event), || {
                        format!("the result of event {} ({})", event.id, event.event_type)
                    });
                }
            }
            _ => {}
        }
        out.insert(plugin.clone(), counts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, event_type: &str, response: &str, yields_result: bool) -> RoutedEvent {
        RoutedEvent {
            id: id.to_owned(),
            team: "acme".to_owned(),
            event_type: event_type.to_owned(),
            response_id: (!response.is_empty()).then(|| response.to_owned()),
            yields_result,
        }
    }

    fn result(plugin: &str, event: &str, n: u32, kind: &str) -> ResultRecord {
        ResultRecord {
            plugin: plugin.to_owned(),
            event_id: event.to_owned(),
            id: format!("{event}:{plugin}:{n}"),
            kind: kind.to_owned(),
        }
    }

    fn routed(plugin: &str, events: Vec<RoutedEvent>) -> BTreeMap<String, Vec<RoutedEvent>> {
        BTreeMap::from([(plugin.to_owned(), events)])
    }

    #[test]
    fn a_sheet_row_counts_per_response_not_per_event() {
        let events = vec![
            event("e1", "form.created", "", false),
            event("e2", "response.submitted", "r1", false),
            event("e3", "response.updated", "r1", false),
            event("e4", "response.submitted", "r2", false),
            event("e5", "response.submitted", "r3", false),
            event("e6", "response.submitted", "r4", false),
        ];
        let observed = Observed {
            rows: [
                ("acme", "r1"),
                ("acme", "r2"),
                ("acme", "r2"),
                ("acme", "r4"),
                ("acme", "r9"),
            ]
            .map(|(t, r)| (t.to_owned(), r.to_owned()))
            .to_vec(),
            dead_letters: vec![("sheets-export".to_owned(), "e5".to_owned())],
            ..Observed::default()
        };
        let counts = &tally(&routed(SHEETS_EXPORT, events), &observed)[SHEETS_EXPORT];
        assert_eq!(
            *counts,
            EffectCounts {
                expected: 4,
                once: 2,
                duplicated: 1,
                missing: 1,
                dead_lettered: 1,
                unexpected: 1,
                copies_dropped: 0,
                examples: counts.examples.clone(),
            }
        );
        assert!(!counts.clean());
    }

    #[test]
    fn a_skipped_text_is_no_effect_due_and_a_text_nobody_asked_for_is_unexpected() {
        let events = vec![
            event("e1", "response.submitted", "r1", false),
            event("e2", "response.submitted", "r2", false),
            event("e3", "response.submitted", "r3", false),
            event("e4", "response.submitted", "r4", false),
        ];
        let observed = Observed {
            messages: ["r1", "r2", "r2", "r7"].map(str::to_owned).to_vec(),
            results: vec![
                result(SMS_NOTIFY, "e1", 0, "switchyard.plugin.sms.sent"),
                result(SMS_NOTIFY, "e3", 0, SMS_SKIPPED),
                result(SMS_NOTIFY, "e3", 0, SMS_SKIPPED),
            ],
            ..Observed::default()
        };
        let counts = &tally(&routed(SMS_NOTIFY, events), &observed)[SMS_NOTIFY];
        assert_eq!(
            (
                counts.expected,
                counts.once,
                counts.duplicated,
                counts.missing,
                counts.unexpected
            ),
            (3, 1, 1, 1, 1)
        );
        assert_eq!(counts.copies_dropped, 1);
    }

    #[test]
    fn results_count_by_distinct_id_so_redelivered_copies_are_one_effect() {
        let events = vec![
            event("e1", "response.submitted", "r1", true),
            event("e2", "response.updated", "r1", true),
            event("e3", "response.submitted", "r2", false),
            event("e4", "response.submitted", "r3", true),
            event("e5", "form.created", "", false),
        ];
        let kind = "switchyard.plugin.response.flagged";
        let observed = Observed {
            results: vec![
                result(RULES_VALIDATE, "e1", 0, kind),
                result(RULES_VALIDATE, "e1", 0, kind),
                result(RULES_VALIDATE, "e1", 0, kind),
                result(RULES_VALIDATE, "e2", 0, kind),
                result(RULES_VALIDATE, "e2", 1, kind),
                result(RULES_VALIDATE, "e3", 0, kind),
                // Another plugin's result for the same event is not this plugin's effect.
                result(SLANG_SEARCH, "e4", 0, "switchyard.plugin.slang.found"),
            ],
            ..Observed::default()
        };
        let counts = &tally(&routed(RULES_VALIDATE, events), &observed)[RULES_VALIDATE];
        assert_eq!(
            *counts,
            EffectCounts {
                expected: 3,
                once: 1,
                duplicated: 1,
                missing: 1,
                dead_lettered: 0,
                unexpected: 1,
                copies_dropped: 2,
                examples: counts.examples.clone(),
            }
        );
    }

    #[test]
    fn every_effect_once_is_clean() {
        let events = vec![event("e1", "response.submitted", "r1", true)];
        let observed = Observed {
            results: vec![result(SLANG_SEARCH, "e1", 0, "switchyard.plugin.slang.found")],
            ..Observed::default()
        };
        assert!(tally(&routed(SLANG_SEARCH, events), &observed)[SLANG_SEARCH].clean());
    }
}
