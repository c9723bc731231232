//! A team's compiled dictionaries, and the search of a response's text answers.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use aho_corasick::{AhoCorasick, MatchKind};
use serde::{Deserialize, Serialize};
use switchyard_schemas::events::{Answer, Response};

use super::config::{MAX_TEAM_TERMS, SlangConfig};
use super::dictionary::{Dictionaries, normalize_city};
use super::{SlangError, builtin};

/// A team's dictionaries compiled for searching: one automaton per city. Built once per config; cheap to
/// share between threads.
#[derive(Debug, Clone)]
pub struct SlangIndex {
    city_question: String,
    /// `None`: every text answer except the city question's.
    text_questions: Option<BTreeSet<String>>,
    cities: HashMap<String, CityIndex>,
}

/// One city's automaton and, by pattern id, the terms and meanings it finds.
#[derive(Debug, Clone)]
struct CityIndex {
    automaton: AhoCorasick,
    entries: Vec<(String, String)>,
}

/// A slang term found in a text answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    /// The question whose answer contains the term.
    pub question_id: String,
    /// The dictionary's term (normalised: lowercase ASCII, single spaces); the text as written is
    /// `text[start..end]`.
    pub term: String,
    /// The term's standard meaning.
    pub meaning: String,
    /// The city whose dictionary has the term (normalised, e.g. `dar-es-salaam`).
    pub city: String,
    /// Byte offset of the first byte of the term in the answer's text (UTF-8).
    pub start: usize,
    /// Byte offset just past the term.
    pub end: usize,
}

impl SlangIndex {
    /// Merges the team's dictionaries over the built-in ones (unless `use_builtin` is off) and builds one
    /// automaton per city.
    ///
    /// # Errors
    ///
    /// When the config names an empty city question or text question, its dictionaries have an empty or
    /// duplicate city or term, an empty meaning, something too long or too many terms, or (not expected)
    /// an automaton cannot be built.
    pub fn build(config: &SlangConfig) -> Result<Self, SlangError> {
        if config.city_question.trim().is_empty() {
            return Err(SlangError::EmptyCityQuestion);
        }
        let text_questions = match &config.text_questions {
            None => None,
            Some(ids) if ids.is_empty() || ids.iter().any(|id| id.trim().is_empty()) => {
                return Err(SlangError::EmptyTextQuestion);
            }
            Some(ids) => Some(ids.iter().cloned().collect()),
        };
        let count: usize = config.dictionaries.values().map(|terms| terms.len()).sum();
        if count > MAX_TEAM_TERMS {
            return Err(SlangError::TooManyTerms { count });
        }
        let team = Dictionaries::from_config(&config.dictionaries)?;
        let dictionaries = if config.use_builtin {
            let mut merged = builtin();
            merged.merge(team);
            merged
        } else {
            team
        };

        let mut cities = HashMap::new();
        for (city, terms) in dictionaries.iter() {
            if terms.is_empty() {
                continue;
            }
            let entries: Vec<(String, String)> = terms
                .iter()
                .map(|(term, meaning)| (term.clone(), meaning.clone()))
                .collect();
            // `Standard` rather than `LeftmostLongest`: the overlapping search reports every candidate,
            // including a shorter term hidden by a longer one that then fails the word-boundary check;
            // leftmost-longest is applied afterwards, among the candidates on word boundaries.
            let automaton = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(entries.iter().map(|(term, _)| term))
                .map_err(|source| SlangError::Automaton {
                    city: city.to_owned(),
                    source,
                })?;
            cities.insert(city.to_owned(), CityIndex { automaton, entries });
        }
        Ok(Self {
            city_question: config.city_question.clone(),
            text_questions,
            cities,
        })
    }

    /// Reads a config from JSON and builds the index.
    ///
    /// # Errors
    ///
    /// [`SlangError::Shape`] when the JSON is not a config, otherwise as [`SlangIndex::build`].
    pub fn from_json(config: &serde_json::Value) -> Result<Self, SlangError> {
        Self::build(&SlangConfig::from_json(config)?)
    }

    /// The cities that have a dictionary (normalised keys), in no particular order.
    pub fn cities(&self) -> impl Iterator<Item = &str> {
        self.cities.keys().map(String::as_str)
    }

    /// The respondent's city: the city question's answer (a choice value or text), normalised with
    /// [`normalize_city`]. `None` when unanswered, answered with another kind, or blank.
    pub fn city_of(&self, response: &Response) -> Option<String> {
        let city = match response.answers.get(&self.city_question)?.as_ref()? {
            Answer::Choice { choice } => normalize_city(choice),
            Answer::Text { text } => normalize_city(text),
            _ => return None,
        };
        (!city.is_empty()).then_some(city)
    }

    /// The slang in the response's text answers, by question id then position. Uses only the dictionary
    /// of the respondent's city: no city, or a city without a dictionary, gives no hits (the language of a
    /// text is not guessed).
    pub fn search(&self, response: &Response) -> Vec<Hit> {
        let mut hits = Vec::new();
        let Some(city) = self.city_of(response) else {
            return hits;
        };
        let Some(index) = self.cities.get(&city) else {
            return hits;
        };
        for (question_id, answer) in &response.answers {
            let Some(Answer::Text { text }) = answer else {
                continue;
            };
            let searched = match &self.text_questions {
                Some(ids) => ids.contains(question_id),
                None => *question_id != self.city_question,
            };
            if !searched {
                continue;
            }
            for (pattern, start, end) in index.find(text) {
                let Some((term, meaning)) = index.entries.get(pattern) else {
                    continue;
                };
                hits.push(Hit {
                    question_id: question_id.clone(),
                    term: term.clone(),
                    meaning: meaning.clone(),
                    city: city.clone(),
                    start,
                    end,
                });
            }
        }
        hits
    }
}

impl CityIndex {
    /// `(pattern id, start, end)` of the terms in `text`: whole words only, leftmost first, the longest
    /// term at a position, never overlapping.
    fn find(&self, text: &str) -> Vec<(usize, usize, usize)> {
        // Only fails for a match kind other than `Standard`.
        let Ok(matches) = self.automaton.try_find_overlapping_iter(text) else {
            return Vec::new();
        };
        let mut candidates: Vec<(usize, usize, usize)> = matches
            .filter(|m| on_word_boundaries(text, m.start(), m.end()))
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            .collect();
        candidates.sort_unstable_by_key(|&(_, start, end)| (start, Reverse(end)));
        let mut free_from = 0;
        candidates.retain(|&(_, start, end)| {
            let keep = start >= free_from;
            if keep {
                free_from = end;
            }
            keep
        });
        candidates
    }
}

/// Whether `text[start..end]` is neither preceded nor followed by a letter or digit (any script).
fn on_word_boundaries(text: &str, start: usize, end: usize) -> bool {
    let before = text.get(..start).and_then(|s| s.chars().next_back());
    let after = text.get(end..).and_then(|s| s.chars().next());
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}
