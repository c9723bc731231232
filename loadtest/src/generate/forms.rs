//! The forms teams publish: templates of typical data-collection forms (household survey, farmer
//! registration, clinic intake, ...) with typed questions, and how a published form changes over time.
//!
//! Question ids carry meaning for [`super::answers`]: `monthly_income` is answered with an income in the
//! team's currency, `date_of_birth` with a plausible birthday, and so on. Every form has a `city`
//! single-choice question offering the cities of the team's country.

use rand::RngExt;
use rand::seq::IndexedRandom;
use switchyard_schemas::events::{Choice, Form, Question, QuestionKind};

use super::places::Country;
use super::teams::Team;

/// How a template question offers choices.
#[derive(Debug, Clone, Copy)]
enum Choices {
    /// Not a choice question.
    None,
    /// These `(value, label)` pairs.
    Fixed(&'static [(&'static str, &'static str)]),
    /// The cities of the team's country.
    Cities,
}

/// A question of a template.
#[derive(Debug, Clone, Copy)]
struct Spec {
    id: &'static str,
    label: &'static str,
    kind: QuestionKind,
    required: bool,
    choices: Choices,
    hint: Option<&'static str>,
}

const fn q(id: &'static str, label: &'static str, kind: QuestionKind, required: bool) -> Spec {
    Spec {
        id,
        label,
        kind,
        required,
        choices: Choices::None,
        hint: None,
    }
}

const fn choice(
    id: &'static str,
    label: &'static str,
    required: bool,
    choices: &'static [(&'static str, &'static str)],
) -> Spec {
    Spec {
        id,
        label,
        kind: QuestionKind::SingleChoice,
        required,
        choices: Choices::Fixed(choices),
        hint: None,
    }
}

const fn multi(
    id: &'static str,
    label: &'static str,
    choices: &'static [(&'static str, &'static str)],
) -> Spec {
    Spec {
        id,
        label,
        kind: QuestionKind::MultipleChoice,
        required: false,
        choices: Choices::Fixed(choices),
        hint: None,
    }
}

const fn hinted(spec: Spec, hint: &'static str) -> Spec {
    Spec {
        hint: Some(hint),
        ..spec
    }
}

const CITY: Spec = Spec {
    id: "city",
    label: "City or nearest town",
    kind: QuestionKind::SingleChoice,
    required: true,
    choices: Choices::Cities,
    hint: None,
};

use QuestionKind::{Date, Location, Number, Phone, Text};

const YES_NO: &[(&str, &str)] = &[("yes", "Yes"), ("no", "No")];

/// A form template.
#[derive(Debug)]
pub struct Template {
    /// Short name, part of the form id.
    pub slug: &'static str,
    /// Title, followed by the year.
    pub title: &'static str,
    /// Description.
    pub description: &'static str,
    questions: &'static [Spec],
}

/// Every template.
pub static TEMPLATES: [Template; 6] = [
    Template {
        slug: "household-survey",
        title: "Household survey",
        description: "Income, savings, water and assets of households in the programme area.",
        questions: &[
            q("respondent_name", "Respondent's name", Text, true),
            q("phone", "Phone number", Phone, false),
            CITY,
            q("household_size", "People living in the household", Number, false),
            hinted(
                q("monthly_income", "Monthly household income", Number, false),
                "Leave empty if unsure",
            ),
            q("monthly_savings", "Monthly savings", Number, false),
            choice(
                "water_source",
                "Main source of drinking water",
                true,
                &[
                    ("piped", "Piped into the compound"),
                    ("kiosk", "Water kiosk"),
                    ("borehole", "Borehole"),
                    ("river", "River or lake"),
                    ("rain", "Rainwater"),
                ],
            ),
            multi(
                "assets",
                "Assets owned",
                &[
                    ("radio", "Radio"),
                    ("bike", "Bicycle"),
                    ("motorbike", "Motorbike"),
                    ("phone", "Mobile phone"),
                    ("solar", "Solar panel"),
                    ("tv", "Television"),
                ],
            ),
            q("interview_date", "Date of interview", Date, true),
            q("home_location", "Home location", Location, false),
            q("comments", "Enumerator's comments", Text, false),
        ],
    },
    Template {
        slug: "farmer-registration",
        title: "Farmer registration",
        description: "Registers cooperative members, their farms and what they grow.",
        questions: &[
            q("farmer_name", "Farmer's name", Text, true),
            q("phone", "Mobile money number", Phone, true),
            CITY,
            choice(
                "main_crop",
                "Main crop",
                true,
                &[
                    ("maize", "Maize"),
                    ("beans", "Beans"),
                    ("sorghum", "Sorghum"),
                    ("cassava", "Cassava"),
                    ("tea", "Tea"),
                    ("coffee", "Coffee"),
                ],
            ),
            hinted(
                q("farm_size_acres", "Farm size (acres)", Number, false),
                "Estimate to the nearest half acre",
            ),
            multi(
                "livestock",
                "Livestock kept",
                &[
                    ("cows", "Cows"),
                    ("goats", "Goats"),
                    ("chickens", "Chickens"),
                    ("pigs", "Pigs"),
                ],
            ),
            q("date_of_birth", "Date of birth", Date, false),
            q("farm_location", "Farm location", Location, true),
            q("monthly_income", "Monthly income from the farm", Number, false),
            q("monthly_savings", "Monthly savings", Number, false),
            q("notes", "Notes", Text, false),
        ],
    },
    Template {
        slug: "clinic-intake",
        title: "Clinic intake",
        description: "Outpatient intake at partner clinics and community health visits.",
        questions: &[
            q("patient_name", "Patient's name", Text, true),
            q("phone", "Phone number", Phone, false),
            q("date_of_birth", "Date of birth", Date, true),
            CITY,
            multi(
                "symptoms",
                "Symptoms",
                &[
                    ("fever", "Fever"),
                    ("cough", "Cough"),
                    ("headache", "Headache"),
                    ("diarrhoea", "Diarrhoea"),
                    ("rash", "Rash"),
                ],
            ),
            q("temperature_c", "Temperature (°C)", Number, false),
            q("visit_date", "Date of visit", Date, true),
            choice(
                "referred_by",
                "Referred by",
                false,
                &[
                    ("chv", "Community health volunteer"),
                    ("self", "Came on their own"),
                    ("school", "School"),
                    ("other", "Other"),
                ],
            ),
            q("notes", "Clinician's notes", Text, false),
        ],
    },
    Template {
        slug: "water-point-inspection",
        title: "Water point inspection",
        description: "Monthly inspection of community water points.",
        questions: &[
            q("inspector_name", "Inspector", Text, true),
            CITY,
            q("water_point_location", "Water point location", Location, true),
            choice(
                "functional",
                "Is the water point working?",
                true,
                &[("yes", "Yes"), ("partly", "Partly"), ("no", "No")],
            ),
            q("daily_users", "Estimated users per day", Number, false),
            multi(
                "issues",
                "Issues seen",
                &[
                    ("leak", "Leak"),
                    ("broken_pump", "Broken pump"),
                    ("dirty", "Dirty water"),
                    ("queue", "Long queues"),
                ],
            ),
            q("inspection_date", "Date of inspection", Date, true),
            q("comments", "Comments", Text, false),
        ],
    },
    Template {
        slug: "savings-group-checkin",
        title: "Savings group check-in",
        description: "Monthly check-in with members of savings groups (chamas).",
        questions: &[
            q("member_name", "Member's name", Text, true),
            q("phone", "Phone number", Phone, false),
            CITY,
            q("monthly_income", "Income this month", Number, false),
            q("monthly_savings", "Saved this month", Number, true),
            q("loan_balance", "Outstanding loan", Number, false),
            q("meeting_date", "Meeting date", Date, true),
            q("comments", "Comments", Text, false),
        ],
    },
    Template {
        slug: "school-enrolment",
        title: "School enrolment",
        description: "Enrolment of learners in partner schools.",
        questions: &[
            q("learner_name", "Learner's name", Text, true),
            q("guardian_phone", "Guardian's phone", Phone, true),
            q("date_of_birth", "Date of birth", Date, true),
            CITY,
            choice(
                "grade",
                "Grade",
                true,
                &[
                    ("pp1", "PP1"),
                    ("pp2", "PP2"),
                    ("g1", "Grade 1"),
                    ("g2", "Grade 2"),
                    ("g3", "Grade 3"),
                    ("g4", "Grade 4"),
                ],
            ),
            multi(
                "transport",
                "How the learner gets to school",
                &[
                    ("walk", "Walks"),
                    ("boda", "Boda boda"),
                    ("matatu", "Matatu"),
                    ("bus", "School bus"),
                ],
            ),
            q("comments", "Comments", Text, false),
        ],
    },
];

/// Questions a later version of a form may add.
const ADDITIONS: [Spec; 3] = [
    choice(
        "consent_given",
        "Did the respondent consent to follow-up?",
        false,
        YES_NO,
    ),
    q("alternative_phone", "Alternative phone number", Phone, false),
    q("follow_up_notes", "Follow-up notes", Text, false),
];

/// The template a team starts with, guessed from what its id says it does.
fn preferred_template(team_id: &str) -> usize {
    const HINTS: [(&[&str], usize); 5] = [
        (&["coop", "agro", "kilimo", "mavuno", "fisheries"], 1),
        (&["health", "afya", "lishe"], 2),
        (&["water", "maji"], 3),
        (&["savings", "chama"], 4),
        (&["schools", "elimu", "youth"], 5),
    ];
    HINTS
        .iter()
        .find(|(words, _)| words.iter().any(|w| team_id.contains(w)))
        .map_or(0, |(_, template)| *template)
}

/// The templates a team uses: its preferred one, then one or two others.
pub fn templates_for<R: rand::Rng>(team: &Team, rng: &mut R) -> Vec<&'static Template> {
    let first = preferred_template(&team.id);
    let mut chosen = vec![&TEMPLATES[first]];
    let extra = rng.random_range(1..=2);
    while chosen.len() < 1 + extra {
        let candidate = TEMPLATES.choose(rng).unwrap_or(&TEMPLATES[0]);
        if !chosen.iter().any(|t| t.slug == candidate.slug) {
            chosen.push(candidate);
        }
    }
    chosen
}

/// Version 1 of a form from `template`, published by `team` at `now_ms`.
pub fn publish(template: &Template, team: &Team, year: i32, now_ms: i64) -> Form {
    Form {
        id: format!("f-{}-{}", team.id, template.slug),
        team_id: team.id.clone(),
        title: format!("{} {year}", template.title),
        description: Some(template.description.to_owned()),
        version: 1,
        default_locale: team.country.locales[0].to_owned(),
        questions: template
            .questions
            .iter()
            .map(|spec| question(spec, team.country))
            .collect(),
        created_at: now_ms,
        updated_at: now_ms,
    }
}

fn question(spec: &Spec, country: &Country) -> Question {
    let choices = match spec.choices {
        Choices::None => Vec::new(),
        Choices::Fixed(pairs) => pairs
            .iter()
            .map(|(value, label)| Choice {
                value: (*value).to_owned(),
                label: (*label).to_owned(),
            })
            .collect(),
        Choices::Cities => country
            .cities
            .iter()
            .map(|city| Choice {
                value: city.value.to_owned(),
                label: city.label.to_owned(),
            })
            .collect(),
    };
    Question {
        id: spec.id.to_owned(),
        label: spec.label.to_owned(),
        kind: spec.kind,
        required: spec.required,
        choices,
        hint: spec.hint.map(str::to_owned),
    }
}

/// The next version of `form`, as a team editor would publish it: a new question, an `Other` choice, a
/// hint, or a question made required.
pub fn revise<R: rand::Rng>(form: &Form, country: &Country, rng: &mut R, now_ms: i64) -> Form {
    let mut next = form.clone();
    next.version += 1;
    next.updated_at = now_ms;
    let missing: Vec<&Spec> = ADDITIONS
        .iter()
        .filter(|spec| !form.questions.iter().any(|q| q.id == spec.id))
        .collect();
    match rng.random_range(0..4) {
        0 if !missing.is_empty() => {
            let spec = missing.choose(rng).copied().unwrap_or(&ADDITIONS[0]);
            next.questions.push(question(spec, country));
        }
        1 => {
            if let Some(q) = next.questions.iter_mut().find(|q| {
                q.kind == QuestionKind::SingleChoice
                    && q.id != "city"
                    && !q.choices.iter().any(|c| c.value == "other")
            }) {
                q.choices.push(Choice {
                    value: "other".to_owned(),
                    label: "Other".to_owned(),
                });
            }
        }
        2 => {
            if let Some(q) = next.questions.iter_mut().find(|q| q.hint.is_none()) {
                q.hint = Some(match q.kind {
                    QuestionKind::Phone => "Start with the country code, e.g. +254".to_owned(),
                    QuestionKind::Location => "Wait for an accuracy under 20 m".to_owned(),
                    QuestionKind::Number => "Numbers only, no currency signs".to_owned(),
                    _ => format!("Read \"{}\" aloud as written", q.label),
                });
            }
        }
        _ => {
            if let Some(q) = next
                .questions
                .iter_mut()
                .find(|q| !q.required && q.kind != QuestionKind::Text)
            {
                q.required = true;
            }
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    use super::*;
    use crate::generate::teams::teams;

    #[test]
    fn every_template_has_a_city_and_unique_question_ids() {
        for template in &TEMPLATES {
            assert!(
                template.questions.iter().any(|q| q.id == "city"),
                "{}",
                template.slug
            );
            let mut ids: Vec<_> = template.questions.iter().map(|q| q.id).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), template.questions.len(), "{}", template.slug);
        }
    }

    #[test]
    fn teams_start_with_the_form_their_name_suggests() {
        let teams = teams(7, 8);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let afya = teams.iter().find(|t| t.id == "afya-research").unwrap();
        assert_eq!(templates_for(afya, &mut rng)[0].slug, "clinic-intake");
        let maji = teams.iter().find(|t| t.id == "maji-water").unwrap();
        assert_eq!(templates_for(maji, &mut rng)[0].slug, "water-point-inspection");
    }

    #[test]
    fn revisions_bump_the_version() {
        let team = &teams(7, 1)[0];
        let form = publish(&TEMPLATES[0], team, 2026, 1_795_165_200_000);
        assert_eq!(form.id, "f-kilimo-coop-household-survey");
        let city = form.questions.iter().find(|q| q.id == "city").unwrap();
        assert_eq!(city.choices[0].label, "Nairobi");
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut current = form;
        for _ in 0..10 {
            let next = revise(&current, team.country, &mut rng, current.updated_at + 1000);
            assert_eq!(next.version, current.version + 1);
            assert_eq!(next.created_at, current.created_at);
            current = next;
        }
    }
}
