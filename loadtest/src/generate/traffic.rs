//! The stream of core events: what a forms platform's services would write to `core.events`.
//!
//! ```text
//!   pick a team (Zipf) ─► pick one of its forms ─► not published yet? ─► form.created
//!                                                  else ~1%           ─► form.updated (next version)
//!                                                  else ~12%          ─► response.updated (a recent one)
//!                                                  else               ─► response.submitted
//!   ─► encode (~70% Avro, ~30% JSON) ─► CloudEvents headers + run header ─► ~1%: break it on purpose
//! ```
//!
//! Everything but the run's identity is deterministic for the seed: the same seed gives the same teams,
//! forms, answers and event order. The run id salts the event ids and the start time anchors the
//! simulated clock, so two runs never share a `ce_id`.

use std::collections::VecDeque;

use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal};
use serde_json::Value;
use switchyard_schemas::dead_letter::Reason;
use switchyard_schemas::envelope as h;
use switchyard_schemas::events::{
    Answer, CoreEvent, Form, FormCreated, FormUpdated, Question, QuestionKind, Response, ResponseSubmitted,
    ResponseUpdated,
};
use switchyard_schemas::payload::encode;
use switchyard_schemas::{ContentType, EventType, Rejection};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::answers::{Respondent, answer_form, correct_one, notes};
use super::forms::{Template, publish, revise, templates_for};
use super::teams::{ActivityPicker, Team};
use crate::kafka::Record;

/// The header that marks every record of one run with the run id, so a reader can pick the run's
/// records out of topics that hold earlier runs. The router passes it through untouched.
pub const RUN_HEADER: &str = "demo_run";

/// Mean gap between two events on the simulated clock, milliseconds.
pub const MEAN_GAP_MS: f64 = 20.0;
/// How many recent responses per team may later be edited.
const RECENT_RESPONSES: usize = 32;

/// What a traffic stream looks like.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    /// Seeds every random choice.
    pub seed: u64,
    /// The teams that send events (at least one).
    pub teams: Vec<Team>,
    /// This run's id: the [`RUN_HEADER`] value, and a salt of every generated id.
    pub run_id: Uuid,
    /// The `ce_source` of every event, e.g. `/demo/<run id>`.
    pub source: String,
    /// Start of the simulated clock, milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// Share of events encoded as `application/avro` (the rest is `application/json`).
    pub avro_share: f64,
    /// Share of events broken on purpose so that the router dead-letters them.
    pub malformed_share: f64,
    /// A fixed event-type mix instead of the natural one (forms published once, then answered).
    pub mix: Option<EventMix>,
    /// Zipf exponent of team activity ([`super::teams::ACTIVITY_EXPONENT`] in the demo).
    pub activity_exponent: f64,
    /// Mean length of an enumerator's notes answered in each response (log-normal); 0 adds no notes
    /// question to the forms.
    pub notes_mean_bytes: usize,
}

/// The id of the optional long free-text question added when notes are asked for.
pub const NOTES_QUESTION: &str = "enumerator_notes";

/// Shares of the event types; `response.submitted` takes the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventMix {
    /// `form.created`.
    pub form_created: f64,
    /// `form.updated`.
    pub form_updated: f64,
    /// `response.updated`.
    pub response_updated: f64,
}

/// What the next event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Revise,
    Edit,
    Submit,
}

impl EventMix {
    fn pick(&self, roll: f64) -> Kind {
        if roll < self.form_created {
            Kind::Create
        } else if roll < self.form_created + self.form_updated {
            Kind::Revise
        } else if roll < self.form_created + self.form_updated + self.response_updated {
            Kind::Edit
        } else {
            Kind::Submit
        }
    }
}

/// A deliberate flaw, and the dead-letter reason the contract gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Defect {
    /// A required header (`ce_type`, `ce_source` or `content-type`) is left out.
    MissingHeader,
    /// The value does not match its schema: a timestamp written as a string, a truncated Avro body, or
    /// Confluent Schema Registry framing instead of single-object encoding.
    InvalidPayload,
    /// `ce_teamid` names another team than the key.
    TeamidMismatch,
    /// `content-type` is neither `application/avro` nor `application/json`.
    UnsupportedContentType,
}

impl Defect {
    /// Every defect the generator makes.
    pub const ALL: [Defect; 4] = [
        Defect::MissingHeader,
        Defect::InvalidPayload,
        Defect::TeamidMismatch,
        Defect::UnsupportedContentType,
    ];

    /// The reason code the router must dead-letter it with.
    pub const fn reason(self) -> Reason {
        match self {
            Defect::MissingHeader => Reason::MissingHeader,
            Defect::InvalidPayload => Reason::InvalidPayload,
            Defect::TeamidMismatch => Reason::TeamidMismatch,
            Defect::UnsupportedContentType => Reason::UnsupportedContentType,
        }
    }
}

/// One generated core event with its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Position in the stream, from 0.
    pub seq: u64,
    /// The owning team: the record key.
    pub team: String,
    /// The event type (also when a defect removed the `ce_type` header).
    pub event_type: EventType,
    /// `ce_id`.
    pub id: String,
    /// How the value is encoded.
    pub content_type: ContentType,
    /// The deliberate flaw, if any.
    pub defect: Option<Defect>,
    /// The record for `core.events`.
    pub record: Record,
}

/// A published form and its version history as the generator tracks it.
#[derive(Debug)]
struct FormSlot {
    template: &'static Template,
    published: Option<Form>,
}

/// A response that may be edited later.
#[derive(Debug)]
struct Submitted {
    response: Response,
    form_slot: usize,
    revision: i32,
}

#[derive(Debug)]
struct TeamState {
    forms: Vec<FormSlot>,
    recent: VecDeque<Submitted>,
}

/// The event stream. An endless iterator; take as many events as needed.
#[derive(Debug)]
pub struct Traffic {
    config: TrafficConfig,
    rng: Xoshiro256PlusPlus,
    picker: ActivityPicker,
    gap: Exp<f64>,
    teams: Vec<TeamState>,
    clock_ms: i64,
    year: i32,
    salt: [u8; 10],
    seq: u64,
    notes: Option<LogNormal<f64>>,
}

/// `form` with the optional notes question appended, when notes are asked for.
fn with_notes(mut form: Form, notes_mean_bytes: usize) -> Form {
    if notes_mean_bytes > 0 && !form.questions.iter().any(|q| q.id == NOTES_QUESTION) {
        form.questions.push(Question {
            id: NOTES_QUESTION.to_owned(),
            label: "Enumerator's notes".to_owned(),
            kind: QuestionKind::Text,
            required: false,
            choices: Vec::new(),
            hint: Some("Anything the questions did not capture.".to_owned()),
        });
    }
    form
}

impl Traffic {
    /// A stream for `config`.
    pub fn new(config: TrafficConfig) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed);
        let teams = config
            .teams
            .iter()
            .map(|team| TeamState {
                forms: templates_for(team, &mut rng)
                    .into_iter()
                    .map(|template| FormSlot {
                        template,
                        published: None,
                    })
                    .collect(),
                recent: VecDeque::with_capacity(RECENT_RESPONSES),
            })
            .collect();
        let mut salt = [0u8; 10];
        salt.copy_from_slice(&config.run_id.as_bytes()[6..16]);
        let year = OffsetDateTime::from_unix_timestamp(config.start_ms / 1000).map_or(2026, |t| t.year());
        Self {
            picker: ActivityPicker::with_exponent(&config.teams, config.activity_exponent),
            gap: Exp::new(1.0 / MEAN_GAP_MS).expect("a positive rate"),
            clock_ms: config.start_ms,
            rng,
            teams,
            year,
            salt,
            seq: 0,
            notes: (config.notes_mean_bytes > 0).then(|| {
                LogNormal::from_mean_cv(config.notes_mean_bytes as f64, 0.6).expect("a positive mean")
            }),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TrafficConfig {
        &self.config
    }

    /// A UUID v7 at the simulated time, with random bits from the seeded generator salted by the run id.
    fn uuid(&mut self) -> Uuid {
        let mut bits: [u8; 10] = self.rng.random();
        for (b, s) in bits.iter_mut().zip(self.salt) {
            *b ^= s;
        }
        uuid::Builder::from_unix_timestamp_millis(self.clock_ms.max(0) as u64, &bits).into_uuid()
    }

    /// The next event.
    pub fn next_event(&mut self) -> Result<Event, Rejection> {
        self.clock_ms += self.gap.sample(&mut self.rng).round() as i64;
        let team_index = self.picker.pick(&mut self.rng);
        let team = self.config.teams[team_index].clone();
        let respondent = Respondent {
            country: team.country,
            today: (self.clock_ms / 86_400_000) as i32,
        };
        let content_type = if self.rng.random_bool(self.config.avro_share) {
            ContentType::Avro
        } else {
            ContentType::Json
        };
        // Earlier forms of a team are the busy ones.
        let weights: Vec<usize> = (0..self.teams[team_index].forms.len())
            .rev()
            .map(|w| w + 1)
            .collect();
        let slot = weighted_index(&weights, &mut self.rng);
        let roll: f64 = self.rng.random();
        let now = self.clock_ms;
        let response_id = format!("r-{}", self.uuid());

        let state = &mut self.teams[team_index];
        let published = state.forms[slot].published.is_some();
        let kind = match self.config.mix {
            None if !published => Kind::Create,
            None if roll < 0.01 => Kind::Revise,
            None if roll < 0.13 && !state.recent.is_empty() => Kind::Edit,
            None => Kind::Submit,
            Some(mix) => match mix.pick(roll) {
                Kind::Edit if state.recent.is_empty() => Kind::Submit,
                kind => kind,
            },
        };
        // A fixed mix may revise or answer a form that was never announced: publish it quietly first.
        if kind != Kind::Create && !published {
            let form = publish(state.forms[slot].template, &team, self.year, now);
            state.forms[slot].published = Some(with_notes(form, self.config.notes_mean_bytes));
        }
        let (event_type, form_id, value) = match (kind, &state.forms[slot].published) {
            (Kind::Create, _) | (_, None) => {
                let form = with_notes(
                    publish(state.forms[slot].template, &team, self.year, now),
                    self.config.notes_mean_bytes,
                );
                let event = FormCreated {
                    form: form.clone(),
                    created_by: format!("user-{}", self.rng.random_range(1..40)),
                };
                state.forms[slot].published = Some(form);
                typed(&event, content_type)?
            }
            (Kind::Revise, Some(form)) => {
                let next = with_notes(
                    revise(form, team.country, &mut self.rng, now),
                    self.config.notes_mean_bytes,
                );
                let event = FormUpdated {
                    previous_version: form.version,
                    form: next.clone(),
                    updated_by: format!("user-{}", self.rng.random_range(1..40)),
                };
                state.forms[slot].published = Some(next);
                typed(&event, content_type)?
            }
            (Kind::Edit, Some(_)) => {
                let pick = self.rng.random_range(0..state.recent.len());
                let edited = &mut state.recent[pick];
                let form = state.forms[edited.form_slot]
                    .published
                    .as_ref()
                    .expect("a response's form is published");
                correct_one(form, &mut edited.response.answers, respondent, &mut self.rng);
                edited.revision += 1;
                let event = ResponseUpdated {
                    response: edited.response.clone(),
                    revision: edited.revision,
                    updated_by: format!("supervisor-{}", self.rng.random_range(1..6)),
                    updated_at: now,
                };
                typed(&event, content_type)?
            }
            (Kind::Submit, Some(form)) => {
                let mut answers = answer_form(form, respondent, &mut self.rng);
                if let Some(lengths) = &self.notes {
                    let length = lengths.sample(&mut self.rng).round() as usize;
                    answers.insert(
                        NOTES_QUESTION.to_owned(),
                        Some(Answer::Text {
                            text: notes(length, &mut self.rng),
                        }),
                    );
                }
                let collector_id = if self.rng.random_bool(0.8) {
                    format!("enumerator-{}", self.rng.random_range(1..31))
                } else {
                    format!("web-link-{}", state.forms[slot].template.slug)
                };
                let response = Response {
                    id: response_id,
                    form_id: form.id.clone(),
                    form_version: form.version,
                    team_id: team.id.clone(),
                    collector_id,
                    submitted_at: now,
                    locale: team.country.locale(&mut self.rng).to_owned(),
                    answers,
                    duration_ms: self
                        .rng
                        .random_bool(0.9)
                        .then(|| self.rng.random_range(30_000..900_000)),
                };
                let event = ResponseSubmitted { response };
                let out = typed(&event, content_type)?;
                let state = &mut self.teams[team_index];
                if state.recent.len() == RECENT_RESPONSES {
                    state.recent.pop_front();
                }
                state.recent.push_back(Submitted {
                    response: event.response,
                    form_slot: slot,
                    revision: 1,
                });
                out
            }
        };

        let id = self.uuid().to_string();
        let mut record = Record {
            key: Some(team.id.as_bytes().to_vec()),
            value: Some(value),
            headers: Vec::with_capacity(10),
        };
        record.push_header(h::SPECVERSION, h::SPECVERSION_1_0);
        record.push_header(h::ID, &id);
        record.push_header(h::SOURCE, &self.config.source);
        record.push_header(h::TYPE, event_type.as_str());
        record.push_header(h::TIME, &rfc3339(now));
        record.push_header(h::SUBJECT, &form_id);
        record.push_header(h::TEAMID, &team.id);
        if self.rng.random_bool(0.6) {
            let trace: u128 = self.rng.random();
            let span: u64 = self.rng.random();
            record.push_header(h::TRACEPARENT, &format!("00-{trace:032x}-{span:016x}-01"));
        }
        let media_type = match content_type {
            ContentType::Json if self.rng.random_bool(0.1) => "application/json; charset=utf-8",
            other => other.media_type(),
        };
        record.push_header(h::CONTENT_TYPE, media_type);
        record.push_header(RUN_HEADER, &self.config.run_id.to_string());

        let defect = if self.rng.random_bool(self.config.malformed_share) {
            let defect = *Defect::ALL
                .choose(&mut self.rng)
                .unwrap_or(&Defect::MissingHeader);
            self.break_record(defect, &mut record, content_type, &team.id);
            // A broken response never reached the platform's store, so nobody edits it later.
            if event_type == EventType::ResponseSubmitted {
                self.teams[team_index].recent.pop_back();
            }
            Some(defect)
        } else {
            None
        };

        let event = Event {
            seq: self.seq,
            team: team.id,
            event_type,
            id,
            content_type,
            defect,
            record,
        };
        self.seq += 1;
        Ok(event)
    }

    fn break_record(&mut self, defect: Defect, record: &mut Record, content_type: ContentType, team: &str) {
        match defect {
            Defect::MissingHeader => {
                let header = [h::TYPE, h::SOURCE, h::CONTENT_TYPE]
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or(h::TYPE);
                record.remove_header(header);
            }
            Defect::InvalidPayload => {
                let value = record.value.take().unwrap_or_default();
                record.value = Some(match content_type {
                    ContentType::Json => timestamp_as_string(&value),
                    // The two classic Avro mistakes: Confluent framing, and a body cut short.
                    ContentType::Avro if self.rng.random_bool(0.5) => {
                        let mut framed = vec![0x00, 0x00, 0x00, 0x00, 0x2a];
                        framed.extend_from_slice(value.get(10..).unwrap_or_default());
                        framed
                    }
                    ContentType::Avro => value[..(10 + (value.len().saturating_sub(10)) / 2)].to_vec(),
                });
            }
            Defect::TeamidMismatch => {
                let other = self
                    .config
                    .teams
                    .iter()
                    .map(|t| t.id.clone())
                    .filter(|id| id != team)
                    .collect::<Vec<_>>()
                    .choose(&mut self.rng)
                    .cloned()
                    .unwrap_or_else(|| team.to_uppercase());
                record.set_header(h::TEAMID, &other);
            }
            Defect::UnsupportedContentType => {
                let media_type = [
                    "avro/binary",
                    "application/x-protobuf",
                    "application/vnd.apache.avro+binary",
                    "text/plain; charset=utf-8",
                ]
                .choose(&mut self.rng)
                .copied()
                .unwrap_or("avro/binary");
                record.set_header(h::CONTENT_TYPE, media_type);
            }
        }
    }
}

impl Iterator for Traffic {
    type Item = Result<Event, Rejection>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_event())
    }
}

fn typed<E: CoreEvent>(
    event: &E,
    content_type: ContentType,
) -> Result<(EventType, String, Vec<u8>), Rejection> {
    Ok((E::TYPE, event.form_id().to_owned(), encode(event, content_type)?))
}

/// Rewrites the first epoch-millisecond timestamp of a JSON value as an RFC 3339 string, the mistake the
/// contract warns about.
fn timestamp_as_string(value: &[u8]) -> Vec<u8> {
    let Ok(mut json) = serde_json::from_slice::<Value>(value) else {
        return b"{".to_vec();
    };
    for (object, field) in [("response", "submitted_at"), ("form", "created_at")] {
        if let Some(ms) = json
            .pointer(&format!("/{object}/{field}"))
            .and_then(Value::as_i64)
        {
            json[object][field] = Value::String(rfc3339(ms));
            break;
        }
    }
    serde_json::to_vec(&json).unwrap_or_default()
}

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

fn weighted_index<R: rand::Rng>(weights: &[usize], rng: &mut R) -> usize {
    let total: usize = weights.iter().sum();
    let mut pick = rng.random_range(0..total.max(1));
    for (i, w) in weights.iter().enumerate() {
        if pick < *w {
            return i;
        }
        pick -= w;
    }
    0
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use switchyard_schemas::envelope::parse;
    use switchyard_schemas::payload::validate;

    use super::*;
    use crate::generate::teams::teams;

    fn config(seed: u64, run_id: Uuid) -> TrafficConfig {
        TrafficConfig {
            seed,
            teams: teams(seed, 8),
            run_id,
            source: format!("/demo/{run_id}"),
            start_ms: 1_795_165_200_000,
            avro_share: 0.7,
            malformed_share: 0.01,
            mix: None,
            activity_exponent: crate::generate::teams::ACTIVITY_EXPONENT,
            notes_mean_bytes: 0,
        }
    }

    fn generate(seed: u64, run_id: Uuid, n: usize) -> Vec<Event> {
        Traffic::new(config(seed, run_id))
            .take(n)
            .collect::<Result<_, _>>()
            .unwrap()
    }

    const RUN: Uuid = Uuid::from_u128(0x0193_a5b2_7c1e_7d3a_9f00_aa11_bb22_cc33);

    #[test]
    fn deterministic_for_a_seed() {
        let a = generate(7, RUN, 2000);
        assert_eq!(a, generate(7, RUN, 2000));
        let b = generate(8, RUN, 2000);
        assert_ne!(
            a.iter().map(|e| &e.record.value).collect::<Vec<_>>(),
            b.iter().map(|e| &e.record.value).collect::<Vec<_>>()
        );
    }

    #[test]
    fn another_run_has_other_ids_but_the_same_story() {
        let a = generate(7, RUN, 500);
        let b = generate(7, Uuid::from_u128(42), 500);
        let ids: HashSet<_> = a.iter().map(|e| &e.id).collect();
        assert!(b.iter().all(|e| !ids.contains(&e.id)));
        assert_eq!(
            a.iter().map(|e| (&e.team, e.event_type)).collect::<Vec<_>>(),
            b.iter().map(|e| (&e.team, e.event_type)).collect::<Vec<_>>()
        );
    }

    /// Every valid event passes the contract's own checks; every defect gets exactly its reason.
    #[test]
    fn events_validate_and_defects_get_their_reason() {
        let events = generate(7, RUN, 5000);
        let mut ids = HashSet::new();
        let mut defects = HashSet::new();
        for event in &events {
            assert!(ids.insert(event.id.clone()), "duplicate ce_id {}", event.id);
            let record = &event.record;
            assert_eq!(record.key.as_deref(), Some(event.team.as_bytes()));
            assert_eq!(record.header(RUN_HEADER), Some(RUN.to_string().as_bytes()));
            let headers = record
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), Some(v.as_slice())));
            let outcome = parse(record.key.as_deref(), headers).and_then(|envelope| {
                validate(
                    envelope.event_type,
                    envelope.content_type,
                    record.value.as_deref(),
                )
            });
            match event.defect {
                None => {
                    assert_eq!(outcome, Ok(Some(event.event_type)), "event {}", event.seq);
                    assert_eq!(record.header(h::ID), Some(event.id.as_bytes()));
                }
                Some(defect) => {
                    assert_eq!(
                        outcome.unwrap_err().reason,
                        defect.reason(),
                        "event {}",
                        event.seq
                    );
                    defects.insert(defect);
                }
            }
        }
        assert_eq!(
            defects.len(),
            Defect::ALL.len(),
            "every defect occurs in 5000 events"
        );
    }

    #[test]
    fn the_mix_is_realistic() {
        let events = generate(7, RUN, 5000);
        let count = |f: &dyn Fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
        let avro = count(&|e| e.content_type == ContentType::Avro);
        assert!((3200..3800).contains(&avro), "{avro} Avro of 5000");
        let malformed = count(&|e| e.defect.is_some());
        assert!((20..100).contains(&malformed), "{malformed} malformed of 5000");
        let submitted = count(&|e| e.event_type == EventType::ResponseSubmitted);
        let updated = count(&|e| e.event_type == EventType::ResponseUpdated);
        let form_updates = count(&|e| e.event_type == EventType::FormUpdated);
        assert!(
            submitted > 3 * updated && updated > 100,
            "{submitted} submitted, {updated} updated"
        );
        assert!(form_updates > 5, "{form_updates} form updates");
        // Every form is created before anything else refers to it.
        let mut created = HashSet::new();
        for event in &events {
            let subject = event.record.header(h::SUBJECT).unwrap().to_vec();
            if event.event_type == EventType::FormCreated {
                assert!(created.insert(subject), "a form is created twice");
            } else {
                assert!(created.contains(&subject), "event {} before its form", event.seq);
            }
        }
        // Skewed activity: the busiest team sends far more than the quietest.
        let mut per_team = std::collections::HashMap::<&str, usize>::new();
        for event in &events {
            *per_team.entry(&event.team).or_default() += 1;
        }
        let max = per_team.values().max().unwrap();
        let min = per_team.values().min().unwrap();
        assert!(*max > 4 * *min, "{per_team:?}");
    }
}
