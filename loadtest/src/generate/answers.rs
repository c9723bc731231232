//! Answers to a form, consistent with its questions' kinds and with each other: the location lies near the
//! chosen city, the phone number has the country's calling code (E.164), money is in the country's
//! currency. Some free text uses local slang (Sheng in East Africa, Pidgin in West Africa), and some
//! respondents report savings above their income, the kind of response a rules plugin should flag.

use std::collections::BTreeMap;

use rand::RngExt;
use rand::seq::IndexedRandom;
use rand_distr::{Distribution, LogNormal, Normal};
use switchyard_schemas::events::{Answer, Form, Question, QuestionKind};

use super::places::{Country, country_of_city};

/// Probability that an optional question is skipped.
pub const SKIP_PROBABILITY: f64 = 0.08;
/// Probability that reported savings exceed reported income.
pub const SAVINGS_ABOVE_INCOME_PROBABILITY: f64 = 0.07;
/// Probability that a free-text comment uses slang.
pub const SLANG_PROBABILITY: f64 = 0.35;

/// Sheng (Nairobi street slang) words the slang-search plugin maps to standard words.
pub const SHENG_WORDS: [&str; 10] = [
    "mambo", "poa", "fiti", "msee", "doh", "sasa", "manze", "keja", "ganji", "mat",
];

const SHENG_COMMENTS: [&str; 12] = [
    "Mambo poa, maji iko fiti sasa",
    "Msee wa chama alisema doh itarudi next week",
    "Hakuna doh ya kununua mbolea mwezi huu",
    "Vitu ni fiti lakini bei ya unga iko juu",
    "Manze, the borehole is down again",
    "Sasa, keja iko mbali na kliniki",
    "Msee ako na ganji kidogo tu, anaomba loan",
    "Poa sana, tunashukuru for the visit",
    "Mat ilichelewa so tulianza late",
    "Doh ya school fees ndio shida kubwa",
    "Mambo ni poa, lakini mvua haijanyesha",
    "Msee hakuwa home, tumempigia simu",
];

const PIDGIN_COMMENTS: [&str; 6] = [
    "Abeg, the pump don spoil again",
    "No wahala, everything dey okay",
    "Chale, market prices too high this month",
    "Wetin we go do, rain never fall",
    "Oga say make we come back next week",
    "E be like say the clinic too far for am",
];

const PLAIN_COMMENTS: [&str; 10] = [
    "Respondent was cooperative.",
    "Follow up next month.",
    "Needs a referral to the county office.",
    "Harvest was poor because of the late rains.",
    "Household head was away; spoke with the spouse.",
    "Water point repaired last week.",
    "Asked about the next training session.",
    "Price of fertiliser has doubled since January.",
    "Interview done in the local language.",
    "Phone number confirmed by a test call.",
];

/// Enumerator's notes of about `length` bytes: plain observations strung together, as a long free-text
/// answer reads.
pub fn notes<R: rand::Rng>(length: usize, rng: &mut R) -> String {
    let mut text = String::with_capacity(length + 64);
    while text.len() < length {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(
            PLAIN_COMMENTS
                .choose(rng)
                .copied()
                .unwrap_or("Follow up next month."),
        );
    }
    text
}

/// What the answers of one response depend on besides the form.
#[derive(Debug, Clone, Copy)]
pub struct Respondent<'a> {
    /// The team's country (phone numbers, currency, names).
    pub country: &'a Country,
    /// Today, in days since 1970-01-01.
    pub today: i32,
}

/// Answers to every question of `form`, keyed by question id; `None` for a skipped optional question.
pub fn answer_form<R: rand::Rng>(
    form: &Form,
    respondent: Respondent<'_>,
    rng: &mut R,
) -> BTreeMap<String, Option<Answer>> {
    let mut state = State {
        respondent,
        form_id: &form.id,
        city: None,
        income: None,
    };
    // The city first: the location answer and the phone number depend on it.
    if let Some(city) = form.questions.iter().find(|q| q.id == "city")
        && let Some(choice) = city.choices.choose(rng)
    {
        state.city = Some(choice.value.clone());
    }
    let mut answers = BTreeMap::new();
    for question in &form.questions {
        let answer = if !question.required && rng.random_bool(SKIP_PROBABILITY) {
            None
        } else {
            Some(state.answer(question, rng))
        };
        answers.insert(question.id.clone(), answer);
    }
    answers
}

/// A plausible correction of one answer, as a supervisor would make it (for `response.updated`).
pub fn correct_one<R: rand::Rng>(
    form: &Form,
    answers: &mut BTreeMap<String, Option<Answer>>,
    respondent: Respondent<'_>,
    rng: &mut R,
) {
    let Some(question) = form.questions.choose(rng) else {
        return;
    };
    let mut state = State {
        respondent,
        form_id: &form.id,
        city: match answers.get("city") {
            Some(Some(Answer::Choice { choice })) => Some(choice.clone()),
            _ => None,
        },
        income: match answers.get("monthly_income") {
            Some(Some(Answer::Number { number })) => Some(*number),
            _ => None,
        },
    };
    let answer = state.answer(question, rng);
    answers.insert(question.id.clone(), Some(answer));
}

struct State<'a> {
    respondent: Respondent<'a>,
    form_id: &'a str,
    city: Option<String>,
    income: Option<f64>,
}

impl State<'_> {
    fn country(&self) -> &Country {
        self.city
            .as_deref()
            .and_then(country_of_city)
            .unwrap_or(self.respondent.country)
    }

    fn answer<R: rand::Rng>(&mut self, question: &Question, rng: &mut R) -> Answer {
        match question.kind {
            QuestionKind::Text => Answer::Text {
                text: self.text(&question.id, rng),
            },
            QuestionKind::Number => Answer::Number {
                number: self.number(&question.id, rng),
            },
            QuestionKind::SingleChoice => {
                let choice = if question.id == "city" {
                    self.city.clone()
                } else {
                    None
                };
                Answer::Choice {
                    choice: choice
                        .or_else(|| question.choices.choose(rng).map(|c| c.value.clone()))
                        .unwrap_or_else(|| "other".to_owned()),
                }
            }
            QuestionKind::MultipleChoice => Answer::MultiChoice {
                choices: question
                    .choices
                    .iter()
                    .filter(|_| rng.random_bool(0.35))
                    .map(|c| c.value.clone())
                    .collect(),
            },
            QuestionKind::Date => Answer::Date {
                date: self.date(&question.id, rng),
            },
            QuestionKind::Phone => Answer::Phone {
                phone: self.country().phone(rng),
            },
            QuestionKind::Location => self.location(rng),
        }
    }

    fn text<R: rand::Rng>(&self, id: &str, rng: &mut R) -> String {
        if id.ends_with("_name") {
            return self.country().person(rng);
        }
        if rng.random_bool(SLANG_PROBABILITY) {
            let slang: &[&str] = match self.country().code {
                "NG" | "GH" => &PIDGIN_COMMENTS,
                _ => &SHENG_COMMENTS,
            };
            return slang.choose(rng).copied().unwrap_or_default().to_owned();
        }
        PLAIN_COMMENTS.choose(rng).copied().unwrap_or_default().to_owned()
    }

    fn number<R: rand::Rng>(&mut self, id: &str, rng: &mut R) -> f64 {
        let typical = self.respondent.country.typical_income;
        let round = |x: f64, step: f64| (x / step).round() * step;
        let money_step = (typical / 400.0).max(1.0).round();
        match id {
            "household_size" => f64::from(rng.random_range(1..=11u32)),
            "monthly_income" => {
                let income = LogNormal::new(typical.ln(), 0.6)
                    .expect("a positive standard deviation")
                    .sample(rng);
                let income = round(income, money_step).max(money_step);
                self.income = Some(income);
                income
            }
            "monthly_savings" => {
                let income = self.income.unwrap_or(typical);
                let share = if rng.random_bool(SAVINGS_ABOVE_INCOME_PROBABILITY) {
                    rng.random_range(1.05..2.5)
                } else {
                    rng.random_range(0.0..0.3)
                };
                round(income * share, money_step)
            }
            "loan_balance" if rng.random_bool(0.4) => 0.0,
            "loan_balance" => round(typical * rng.random_range(0.2..3.0), money_step),
            "farm_size_acres" => round(rng.random_range(0.25..12.0), 0.25),
            "temperature_c" => {
                let t = Normal::new(37.3, 0.8)
                    .expect("a positive standard deviation")
                    .sample(rng);
                round(t, 0.1)
            }
            "daily_users" => f64::from(rng.random_range(20..=800u32)),
            _ => f64::from(rng.random_range(1..=100u32)),
        }
    }

    fn date<R: rand::Rng>(&self, id: &str, rng: &mut R) -> i32 {
        let today = self.respondent.today;
        if id == "date_of_birth" {
            let years = if self.form_id.ends_with("school-enrolment") {
                rng.random_range(4..13)
            } else if self.form_id.ends_with("clinic-intake") {
                rng.random_range(0..86)
            } else {
                rng.random_range(18..76)
            };
            today - years * 365 - years / 4 - rng.random_range(0..365)
        } else {
            today - rng.random_range(0..4)
        }
    }

    fn location<R: rand::Rng>(&self, rng: &mut R) -> Answer {
        let country = self.country();
        let city = self
            .city
            .as_deref()
            .and_then(|value| country.cities.iter().find(|c| c.value == value))
            .or_else(|| country.cities.first());
        let (latitude, longitude) = city.map_or((0.0, 0.0), |c| (c.latitude, c.longitude));
        let jitter = Normal::new(0.0, 0.04).expect("a positive standard deviation");
        let round6 = |x: f64| (x * 1e6).round() / 1e6;
        Answer::Location {
            latitude: round6(latitude + jitter.sample(rng)),
            longitude: round6(longitude + jitter.sample(rng)),
            accuracy_m: rng
                .random_bool(0.85)
                .then(|| (rng.random_range(3.0..40.0f64) * 10.0).round() / 10.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    use super::*;
    use crate::generate::forms::{TEMPLATES, publish};
    use crate::generate::teams::teams;

    #[test]
    fn answers_match_question_kinds() {
        let team = &teams(7, 1)[0];
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let respondent = Respondent {
            country: team.country,
            today: 20_500,
        };
        let mut savings_above_income = 0;
        let mut slang = 0;
        for template in &TEMPLATES {
            let form = publish(template, team, 2026, 1_795_165_200_000);
            for _ in 0..300 {
                let answers = answer_form(&form, respondent, &mut rng);
                assert_eq!(answers.len(), form.questions.len());
                for question in &form.questions {
                    let Some(answer) = &answers[&question.id] else {
                        assert!(!question.required, "{} skipped", question.id);
                        continue;
                    };
                    match (question.kind, answer) {
                        (QuestionKind::Text, Answer::Text { text }) => {
                            slang += usize::from(SHENG_WORDS.iter().any(|w| text.to_lowercase().contains(w)));
                        }
                        (QuestionKind::Number, Answer::Number { number }) => assert!(*number >= 0.0),
                        (QuestionKind::SingleChoice, Answer::Choice { choice }) => {
                            assert!(question.choices.iter().any(|c| &c.value == choice), "{choice}");
                        }
                        (QuestionKind::MultipleChoice, Answer::MultiChoice { choices }) => {
                            assert!(
                                choices
                                    .iter()
                                    .all(|v| question.choices.iter().any(|c| &c.value == v))
                            );
                        }
                        (QuestionKind::Date, Answer::Date { date }) => assert!(*date <= 20_500),
                        (QuestionKind::Phone, Answer::Phone { phone }) => {
                            assert!(phone.starts_with('+'), "{phone}");
                        }
                        (QuestionKind::Location, Answer::Location { latitude, .. }) => {
                            assert!((-90.0..=90.0).contains(latitude));
                        }
                        (kind, answer) => panic!("{kind:?} answered with {answer:?}"),
                    }
                }
                if let (
                    Some(Some(Answer::Number { number: income })),
                    Some(Some(Answer::Number { number: saved })),
                ) = (answers.get("monthly_income"), answers.get("monthly_savings"))
                    && saved > income
                {
                    savings_above_income += 1;
                }
            }
        }
        assert!(savings_above_income > 0);
        assert!(slang > 0);
    }

    #[test]
    fn kenyan_phones_start_with_2547_or_2541() {
        let team = &teams(7, 1)[0];
        let form = publish(&TEMPLATES[1], team, 2026, 0);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        for _ in 0..50 {
            let answers = answer_form(
                &form,
                Respondent {
                    country: team.country,
                    today: 20_500,
                },
                &mut rng,
            );
            let Some(Some(Answer::Phone { phone })) = answers.get("phone") else {
                panic!("the phone question is required here");
            };
            assert!(
                phone.starts_with("+2547") || phone.starts_with("+2541"),
                "{phone}"
            );
        }
    }
}
