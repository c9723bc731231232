//! What the contract says must happen to each generated event (`docs/contract.md`, section 8).
//!
//! An event of type `T` from team `X` goes to plugin `P` if and only if `P` is registered, `X` has an
//! enablement for `P` with `enabled: true`, `P`'s manifest lists `T`, the enablement's `event_types`,
//! when given and non-empty, lists `T`, its `form_ids`, when given and non-empty, list the event's
//! `ce_subject`, and its `filter`, when given and non-empty, evaluates to `true` on the event (section
//! 8.1: a `no_match`, `missing` or `error` verdict routes no copy). A malformed event goes to the
//! dead-letter topic with its reason; a valid event with no target is `unrouted`.
//!
//! ```text
//!   (team, type) ──► candidates: rules 1-4, a table lookup
//!   event record ──► rule 5: ce_subject in form_ids
//!                ──► rule 6: per filter, envelope of the headers + payload::project(data, its paths)
//!                    ──► Bindings ──► Filter::evaluate ──► only Verdict::Match keeps the plugin
//! ```
//!
//! The model evaluates each filter on its own projection of the data, not on one projection per event as
//! the router does: the same verdicts by another route. Filters are compiled once per distinct source and
//! shared by every enablement that carries it; a filter that does not compile routes nothing, as the
//! router drops such an installation. The model keys enablements by (team, plugin): the load tool writes
//! only default installations.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use switchyard_filter::{Attributes, Bindings, DataPath, Filter, Verdict};
use switchyard_schemas::control::{Enablement, PluginManifest};
use switchyard_schemas::dead_letter::Reason;
use switchyard_schemas::{envelope, payload};

use crate::generate::{Control, Event};
use crate::kafka::Record;

/// The routing table as the control records build it.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    plugins: BTreeMap<String, PluginManifest>,
    enablements: BTreeMap<(String, String), Enablement>,
    /// Every filter source the table has seen, compiled once: `None` when it does not compile.
    filters: HashMap<String, Option<Arc<Filter>>>,
}

impl RoutingTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table with `records` applied in order.
    pub fn from_controls<'a>(records: impl IntoIterator<Item = &'a Control>) -> Self {
        let mut table = Self::new();
        for record in records {
            table.apply(record);
        }
        table
    }

    /// Applies one control record: the latest record of a key wins, a tombstone removes it.
    pub fn apply(&mut self, record: &Control) {
        match record {
            Control::Plugin(manifest) => {
                self.plugins.insert(manifest.id.clone(), manifest.clone());
            }
            Control::Enablement {
                team,
                plugin,
                enablement: Some(enablement),
            } => {
                if let Some(source) = enablement.filter()
                    && !self.filters.contains_key(source)
                {
                    let compiled = Filter::compile(source).ok().map(Arc::new);
                    self.filters.insert(source.to_owned(), compiled);
                }
                self.enablements
                    .insert((team.clone(), plugin.clone()), enablement.clone());
            }
            Control::Enablement {
                team,
                plugin,
                enablement: None,
            } => {
                self.enablements.remove(&(team.clone(), plugin.clone()));
            }
        }
    }

    /// The enabled plugins that rules 1-4 select for an event of `event_type` from `team`, with their
    /// enablements, in plugin id order.
    fn selected<'a>(
        &'a self,
        team: &'a str,
        event_type: &'a str,
    ) -> impl Iterator<Item = (&'a PluginManifest, &'a Enablement)> + 'a {
        self.plugins.values().filter_map(move |manifest| {
            let enablement = self.enablements.get(&(team.to_owned(), manifest.id.clone()))?;
            let selected = enablement.enabled
                && manifest.events.iter().any(|t| t == event_type)
                && enablement
                    .event_types
                    .as_ref()
                    .is_none_or(|only| only.is_empty() || only.iter().any(|t| t == event_type));
            selected.then_some((manifest, enablement))
        })
    }

    /// The plugins an event of `event_type` from `team` goes to by rules 1-4 alone (registered, enabled,
    /// listed by the manifest and by `event_types`), in plugin id order: what [`Self::targets`] gives when
    /// no enablement of the team has `form_ids` or a `filter`. For callers that know only the team and
    /// the type, of tables without either (the demo's sample enablements, the contract's first example).
    pub fn candidates(&self, team: &str, event_type: &str) -> Vec<String> {
        self.selected(team, event_type)
            .map(|(manifest, _)| manifest.id.clone())
            .collect()
    }

    /// The plugins `event` goes to by all six rules of section 8, in plugin id order: the candidates of
    /// its team and type whose `form_ids` list its `ce_subject` and whose filter matches it. Filters are
    /// evaluated only for the candidates that have one, so a table without filters costs what
    /// [`Self::candidates`] does.
    pub fn targets(&self, event: &Event) -> Vec<String> {
        let record = &event.record;
        let subject = record
            .header(envelope::SUBJECT)
            .and_then(|v| std::str::from_utf8(v).ok());
        self.selected(&event.team, event.event_type.as_str())
            .filter(|(_, enablement)| {
                enablement
                    .form_ids()
                    .is_none_or(|ids| subject.is_some_and(|subject| ids.iter().any(|id| id == subject)))
            })
            .filter(|(_, enablement)| {
                enablement.filter().is_none_or(|source| {
                    self.filters
                        .get(source)
                        .and_then(Option::as_deref)
                        .is_some_and(|filter| evaluate(filter, record).is_match())
                })
            })
            .map(|(manifest, _)| manifest.id.clone())
            .collect()
    }
}

/// The CloudEvents attributes a filter reads by name, never in `extensions` (contract section 8.1).
const CORE_HEADERS: [&str; 7] = [
    envelope::SPECVERSION,
    envelope::ID,
    envelope::SOURCE,
    envelope::TYPE,
    envelope::TIME,
    envelope::SUBJECT,
    envelope::TEAMID,
];

/// The verdict of `filter` on the event in `record` (contract section 8.1): its attributes from the
/// envelope of the key and headers, every other `ce_<name>` header as `extensions.<name>`, and its data
/// projected on the paths the filter reads. An envelope or data that the contract refuses is an error
/// verdict (such an event is dead-lettered before routing anyway).
pub fn evaluate(filter: &Filter, record: &Record) -> Verdict {
    let headers = record
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), Some(value.as_slice())));
    let envelope = match envelope::parse(record.key.as_deref(), headers) {
        Ok(envelope) => envelope,
        Err(rejection) => return Verdict::Error(rejection.detail),
    };
    let extensions: Vec<(&str, &str)> = record
        .headers
        .iter()
        .filter(|(name, _)| !CORE_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.strip_prefix("ce_")?, std::str::from_utf8(value).ok()?)))
        .collect();
    let paths: Vec<&DataPath> = filter.data_paths().iter().collect();
    let data = if paths.is_empty() {
        Value::Null
    } else {
        match payload::project(
            envelope.event_type,
            envelope.content_type,
            record.value.as_deref(),
            &paths,
        ) {
            Ok(data) => data,
            Err(rejection) => return Verdict::Error(rejection.detail),
        }
    };
    let attributes = Attributes::from_envelope(&envelope, &extensions);
    filter.evaluate(&Bindings::new(&attributes, &data))
}

/// The outcome the contract prescribes for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// One copy in each of these plugins' topics.
    Routed(Vec<String>),
    /// Nothing written anywhere.
    Unrouted,
    /// One whole-event dead letter with this reason.
    DeadLettered(Reason),
}

/// The expected outcome of `event` under `table`.
pub fn expected(table: &RoutingTable, event: &Event) -> Expected {
    if let Some(defect) = event.defect {
        return Expected::DeadLettered(defect.reason());
    }
    let targets = table.targets(event);
    if targets.is_empty() {
        Expected::Unrouted
    } else {
        Expected::Routed(targets)
    }
}

/// What one event should leave behind, for checking records read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventExpectation {
    /// Position in the stream (orders a team's records).
    pub seq: u64,
    /// The key.
    pub team: String,
    /// A digest of the value, to detect altered copies.
    pub value_digest: u64,
    /// The outcome.
    pub outcome: Expected,
}

/// Expected totals of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpectedTotals {
    /// Events sent.
    pub events: u64,
    /// Events with outcome `routed`.
    pub routed: u64,
    /// Events with outcome `unrouted`.
    pub unrouted: u64,
    /// Events with outcome `dead_lettered`.
    pub dead_lettered: u64,
    /// Dead letters by reason code.
    pub dead_letters: BTreeMap<String, u64>,
    /// Records per plugin id.
    pub plugin_records: BTreeMap<String, u64>,
}

/// Every event's expectation, by `ce_id`, and the totals.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// By `ce_id`.
    pub events: HashMap<String, EventExpectation>,
    /// The totals.
    pub totals: ExpectedTotals,
}

impl Expectations {
    /// Records what `event` should leave behind under `table`.
    pub fn add(&mut self, table: &RoutingTable, event: &Event) {
        let outcome = expected(table, event);
        let totals = &mut self.totals;
        totals.events += 1;
        match &outcome {
            Expected::Routed(plugins) => {
                totals.routed += 1;
                for plugin in plugins {
                    *totals.plugin_records.entry(plugin.clone()).or_default() += 1;
                }
            }
            Expected::Unrouted => totals.unrouted += 1,
            Expected::DeadLettered(reason) => {
                totals.dead_lettered += 1;
                *totals.dead_letters.entry(reason.code().to_owned()).or_default() += 1;
            }
        }
        self.events.insert(
            event.id.clone(),
            EventExpectation {
                seq: event.seq,
                team: event.team.clone(),
                value_digest: digest(event.record.value.as_deref()),
                outcome,
            },
        );
    }
}

/// A digest of a record value (FNV-1a, 64 bits): stable across processes, enough to notice an altered
/// copy.
pub fn digest(value: Option<&[u8]>) -> u64 {
    let Some(value) = value else {
        return 0;
    };
    value.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use switchyard_schemas::EventType;

    use super::*;
    use crate::generate::control::{RULES_VALIDATE, SHEETS_EXPORT, SLANG_SEARCH, SMS_NOTIFY};
    use crate::generate::{control_records, sample_plugins, teams};

    fn enable(team: &str, plugin: &str, enabled: bool, types: Option<&[&str]>) -> Control {
        Control::Enablement {
            team: team.into(),
            plugin: plugin.into(),
            enablement: Some(Enablement {
                team_id: team.into(),
                plugin_id: plugin.into(),
                installation: None,
                form_ids: None,
                filter: None,
                backfill: None,
                enabled,
                event_types: types.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
                updated_at: "2026-11-22T09:55:00Z".into(),
            }),
        }
    }

    /// The worked example of the contract, section 8.
    #[test]
    fn the_contracts_worked_example() {
        let manifest = |id: &str, events: &[&str]| {
            Control::Plugin(PluginManifest {
                id: id.into(),
                name: id.into(),
                description: String::new(),
                version: semver::Version::new(1, 0, 0),
                url: None,
                events: events.iter().map(|s| (*s).to_owned()).collect(),
                actions: vec![],
                config_schema: None,
                contract: None,
                signature: None,
                delivery: Default::default(),
            })
        };
        let records = [
            manifest("sms-notify", &["response.submitted"]),
            manifest("sheets-export", &["response.submitted", "response.updated"]),
            manifest(
                "audit-log",
                &[
                    "form.created",
                    "form.updated",
                    "response.submitted",
                    "response.updated",
                ],
            ),
            manifest("billing-sync", &["payment.received"]),
            enable("acme", "sms-notify", true, None),
            enable("acme", "sheets-export", true, Some(&["response.updated"])),
            enable("acme", "audit-log", false, None),
            enable("acme", "billing-sync", true, None),
            enable("globex", "audit-log", true, Some(&[])),
            enable("globex", "crm-push", true, None),
        ];
        let table = RoutingTable::from_controls(&records);
        assert_eq!(table.candidates("acme", "response.submitted"), ["sms-notify"]);
        assert_eq!(table.candidates("acme", "response.updated"), ["sheets-export"]);
        assert!(table.candidates("acme", "form.created").is_empty());
        assert_eq!(table.candidates("acme", "payment.received"), ["billing-sync"]);
        assert_eq!(table.candidates("globex", "form.updated"), ["audit-log"]);
        assert_eq!(table.candidates("globex", "response.submitted"), ["audit-log"]);
        assert!(table.candidates("initech", "response.submitted").is_empty());

        // A tombstone removes the pair; a later registration of crm-push activates globex's enablement.
        let mut table = table;
        table.apply(&Control::Enablement {
            team: "acme".into(),
            plugin: "sms-notify".into(),
            enablement: None,
        });
        assert!(table.candidates("acme", "response.submitted").is_empty());
        table.apply(&manifest("crm-push", &["response.submitted"]));
        assert_eq!(
            table.candidates("globex", "response.submitted"),
            ["audit-log", "crm-push"]
        );
    }

    /// An event as the generator makes it: the envelope headers, an extension, and `value` in Avro.
    fn event(team: &str, event_type: EventType, subject: &str, value: Vec<u8>) -> Event {
        use switchyard_schemas::envelope as h;
        let mut record = Record {
            key: Some(team.as_bytes().to_vec()),
            value: Some(value),
            headers: Vec::new(),
        };
        for (name, value) in [
            (h::SPECVERSION, h::SPECVERSION_1_0),
            (h::ID, "0193a5b2-7c1e-7d3a-9f00-aa11bb22cc33"),
            (h::SOURCE, "/platform/test"),
            (h::TYPE, event_type.as_str()),
            (h::TIME, "2026-11-22T09:55:00Z"),
            (h::SUBJECT, subject),
            (h::TEAMID, team),
            ("ce_channel", "sms"),
            (h::CONTENT_TYPE, "application/avro"),
        ] {
            record.push_header(name, value);
        }
        Event {
            seq: 0,
            team: team.to_owned(),
            event_type,
            id: "0193a5b2-7c1e-7d3a-9f00-aa11bb22cc33".into(),
            content_type: switchyard_schemas::ContentType::Avro,
            defect: None,
            record,
        }
    }

    /// Rules 5 and 6 on a hand-made response and form event: only the plugins whose `form_ids` list the
    /// subject and whose filter is `match` get a copy; `no_match`, `missing` (a skipped answer, a
    /// response path of a form event), `error` and a filter that does not compile route nothing.
    #[test]
    fn form_ids_and_filters_keep_exactly_the_matching_plugins() {
        use std::collections::BTreeMap;

        use switchyard_schemas::ContentType;
        use switchyard_schemas::events::{Answer, FormCreated, Response, ResponseSubmitted};
        use switchyard_schemas::payload::encode;

        use crate::generate::forms::{TEMPLATES, publish};

        let team = &teams(7, 1)[0];
        let form = publish(&TEMPLATES[0], team, 2026, 1_795_165_200_000);
        assert_eq!(form.id, "f-kilimo-coop-household-survey");
        let all_types = ["form.created", "response.submitted"];
        let with = |plugin: &str, enabled: bool, form_ids: Option<&[&str]>, filter: Option<&str>| {
            let mut control = enable(&team.id, plugin, enabled, None);
            if let Control::Enablement {
                enablement: Some(e), ..
            } = &mut control
            {
                e.form_ids = form_ids.map(|ids| ids.iter().map(|id| (*id).to_owned()).collect());
                e.filter = filter.map(str::to_owned);
            }
            control
        };
        let mut records: Vec<Control> = [
            "broken",
            "coast",
            "disabled",
            "english",
            "income",
            "long",
            "other-form",
            "plain",
            "this-form",
            "typo",
        ]
        .iter()
        .map(|id| {
            Control::Plugin(PluginManifest {
                id: (*id).into(),
                name: (*id).into(),
                description: String::new(),
                version: semver::Version::new(1, 0, 0),
                url: None,
                events: all_types.map(str::to_owned).to_vec(),
                actions: vec![],
                config_schema: None,
                contract: None,
                signature: None,
                delivery: Default::default(),
            })
        })
        .collect();
        let english = r#"data.response.locale.startsWith("en")"#;
        records.extend([
            // `matches` is outside the bound: the filter never compiles, the installation never routes.
            with(
                "broken",
                true,
                None,
                Some(r#"data.response.locale.matches("^en")"#),
            ),
            with(
                "coast",
                true,
                None,
                Some(r#"data.response.answers["city"].choice == "mombasa""#),
            ),
            with("disabled", false, None, Some(english)),
            with("english", true, None, Some(english)),
            with(
                "income",
                true,
                None,
                Some(r#"data.response.answers["monthly_income"].number > 1000.0"#),
            ),
            with("long", true, None, Some("data.response.duration_ms > 420000")),
            with("other-form", true, Some(&["f-other"]), None),
            with("plain", true, Some(&[]), Some("")),
            with(
                "this-form",
                true,
                Some(&["f-other", "f-kilimo-coop-household-survey"]),
                Some(r#"subject.endsWith("-household-survey") && extensions.channel == "sms""#),
            ),
            with("typo", true, None, Some("data.response.locale > 3")),
        ]);
        let table = RoutingTable::from_controls(&records);

        // Locale en-KE, city Nairobi, income skipped, 5 minutes.
        let response = Response {
            id: "r-1".into(),
            form_id: form.id.clone(),
            form_version: 1,
            team_id: team.id.clone(),
            collector_id: "enumerator-3".into(),
            submitted_at: 1_795_165_260_000,
            locale: "en-KE".into(),
            answers: BTreeMap::from([
                (
                    "city".to_owned(),
                    Some(Answer::Choice {
                        choice: "nairobi".into(),
                    }),
                ),
                ("monthly_income".to_owned(), None),
            ]),
            duration_ms: Some(300_000),
        };
        let value = encode(&ResponseSubmitted { response }, ContentType::Avro).unwrap();
        let submitted = event(&team.id, EventType::ResponseSubmitted, &form.id, value);
        let verdict = |source: &str| evaluate(&Filter::compile(source).unwrap(), &submitted.record).label();
        assert_eq!(verdict(english), "match");
        assert_eq!(
            verdict(r#"data.response.answers["city"].choice == "mombasa""#),
            "no_match"
        );
        assert_eq!(
            verdict(r#"data.response.answers["monthly_income"].number > 1000.0"#),
            "missing"
        );
        assert_eq!(verdict("data.response.duration_ms > 420000"), "no_match");
        assert_eq!(verdict("data.response.locale > 3"), "error");
        // By hand: english (en-KE), plain (empty form_ids and filter are no limit), this-form (listed, and
        // its filter matches subject and extension).
        assert_eq!(table.targets(&submitted), ["english", "plain", "this-form"]);
        assert_eq!(
            expected(&table, &submitted),
            Expected::Routed(vec!["english".into(), "plain".into(), "this-form".into()])
        );
        assert_eq!(
            table.candidates(&team.id, "response.submitted").len(),
            9,
            "rules 1-4 alone keep every enabled plugin"
        );

        // A form event has no data.response: every response filter reads `missing`.
        let value = encode(
            &FormCreated {
                form: form.clone(),
                created_by: "user-1".into(),
            },
            ContentType::Avro,
        )
        .unwrap();
        let created = event(&team.id, EventType::FormCreated, &form.id, value);
        assert_eq!(
            evaluate(&Filter::compile(english).unwrap(), &created.record).label(),
            "missing"
        );
        assert_eq!(table.targets(&created), ["plain", "this-form"]);

        // Another form of the team: this-form's form_ids no longer list it, and nothing else changes.
        let mut elsewhere = submitted.clone();
        elsewhere
            .record
            .set_header(envelope::SUBJECT, "f-kilimo-coop-clinic-intake");
        assert_eq!(table.targets(&elsewhere), ["english", "plain"]);
        // Without a subject, form_ids select nothing.
        elsewhere.record.remove_header(envelope::SUBJECT);
        assert_eq!(table.targets(&elsewhere), ["english", "plain"]);
        // A filter-free table gives the candidates.
        let unfiltered = RoutingTable::from_controls(records.iter().filter(|control| match control {
            Control::Enablement {
                enablement: Some(e), ..
            } => e.filter().is_none() && e.form_ids().is_none(),
            _ => true,
        }));
        assert_eq!(
            unfiltered.targets(&submitted),
            unfiltered.candidates(&team.id, "response.submitted")
        );
    }

    #[test]
    fn the_demo_story() {
        let teams = teams(7, 8);
        let table = RoutingTable::from_controls(&control_records(&teams, 7, "2026-11-22T09:55:00Z"));
        assert_eq!(sample_plugins().len(), 4);
        let all = [SHEETS_EXPORT, SLANG_SEARCH, RULES_VALIDATE, SMS_NOTIFY];
        let mut sorted = all.map(str::to_owned).to_vec();
        sorted.sort();
        assert_eq!(table.candidates("kilimo-coop", "response.submitted"), sorted);
        assert_eq!(table.candidates("kilimo-coop", "form.created"), [SHEETS_EXPORT]);
        // afya-research: sheets for responses only, rules for submissions only.
        assert!(table.candidates("afya-research", "form.updated").is_empty());
        assert_eq!(
            table.candidates("afya-research", "response.updated"),
            [SHEETS_EXPORT]
        );
        assert_eq!(
            table.candidates("afya-research", "response.submitted"),
            [RULES_VALIDATE, SHEETS_EXPORT]
        );
        // eko-health: sheets-export disabled.
        assert_eq!(
            table.candidates("eko-health", "response.updated"),
            [RULES_VALIDATE]
        );
        assert!(table.candidates("eko-health", "form.created").is_empty());
        // elimu-schools: nothing.
        for t in EventType::ALL {
            assert!(table.candidates("elimu-schools", t.as_str()).is_empty());
        }
    }

    #[test]
    fn totals_follow_outcomes() {
        use crate::generate::{Traffic, TrafficConfig};
        let teams = teams(7, 8);
        let controls = control_records(&teams, 7, "2026-11-22T09:55:00Z");
        let table = RoutingTable::from_controls(&controls);
        let run_id = uuid::Uuid::from_u128(1);
        let traffic = Traffic::new(TrafficConfig {
            seed: 7,
            teams: teams.clone(),
            run_id,
            source: "/demo/test".into(),
            start_ms: 1_795_165_200_000,
            avro_share: 0.7,
            malformed_share: 0.01,
            mix: None,
            activity_exponent: crate::generate::teams::ACTIVITY_EXPONENT,
            notes_mean_bytes: 0,
        });
        let mut expectations = Expectations::default();
        for event in traffic.take(3000) {
            let event = event.unwrap();
            expectations.add(&table, &event);
            let outcome = &expectations.events[&event.id].outcome;
            if event.team == "elimu-schools" && event.defect.is_none() {
                assert_eq!(outcome, &Expected::Unrouted);
            }
        }
        let t = &expectations.totals;
        assert_eq!(t.events, 3000);
        assert_eq!(t.routed + t.unrouted + t.dead_lettered, 3000);
        assert_eq!(t.dead_letters.values().sum::<u64>(), t.dead_lettered);
        assert!(t.plugin_records.values().sum::<u64>() >= t.routed);
        assert!(t.unrouted > 0 && t.dead_lettered > 0);
    }

    #[test]
    fn digest_notices_changes() {
        assert_ne!(digest(Some(b"abc")), digest(Some(b"abd")));
        assert_eq!(digest(Some(b"abc")), digest(Some(b"abc")));
        assert_ne!(digest(None), digest(Some(b"")));
    }
}
