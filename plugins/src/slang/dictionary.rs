//! Dictionaries of slang terms per city, with the normalisation of city names and terms.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::Serialize;

use super::SlangError;
use super::config::{MAX_MEANING_CHARS, MAX_TERM_CHARS};

/// One city's dictionary: term → meaning, terms normalised with [`normalize_term`].
pub type Dictionary = BTreeMap<String, String>;

/// Slang dictionaries per city: city → term → meaning. City names and terms are kept normalised
/// ([`normalize_city`], [`normalize_term`]), so lookups and merges ignore case and spacing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Dictionaries {
    cities: BTreeMap<String, Dictionary>,
}

/// A city's key: lowercased, with runs of spaces, dashes and underscores turned into one dash, so that a
/// choice value (`dar-es-salaam`) and a typed name (` Dar es  Salaam`) are the same city.
pub fn normalize_city(city: &str) -> String {
    city.to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// A term's key, and the pattern searched for: trimmed, runs of whitespace turned into one space, ASCII
/// letters lowercased. Matching ignores ASCII case only, so other letters stay as written.
pub fn normalize_term(term: &str) -> String {
    term.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

impl Dictionaries {
    /// No dictionaries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a term of a city; returns the meaning it replaces.
    ///
    /// # Errors
    ///
    /// When the city or the term is empty once normalised, the term is longer than
    /// [`MAX_TERM_CHARS`] or the meaning is empty or longer than [`MAX_MEANING_CHARS`].
    pub fn insert(&mut self, city: &str, term: &str, meaning: &str) -> Result<Option<String>, SlangError> {
        let city_key = normalize_city(city);
        if city_key.is_empty() {
            return Err(SlangError::EmptyCity {
                city: city.to_owned(),
            });
        }
        let term = checked_term(&city_key, term)?;
        let meaning = checked_meaning(&city_key, &term, meaning)?;
        Ok(self.cities.entry(city_key).or_default().insert(term, meaning))
    }

    /// Reads a team's dictionaries as they appear in a config. Stricter than [`Dictionaries::insert`]:
    /// two spellings of one city, or of one term within a city, are refused rather than one silently
    /// winning.
    ///
    /// # Errors
    ///
    /// As [`Dictionaries::insert`], plus [`SlangError::DuplicateCity`] and [`SlangError::DuplicateTerm`].
    pub fn from_config(config: &BTreeMap<String, BTreeMap<String, String>>) -> Result<Self, SlangError> {
        let mut spelled: BTreeMap<String, &str> = BTreeMap::new();
        let mut dictionaries = Self::new();
        for (city, terms) in config {
            let key = normalize_city(city);
            if key.is_empty() {
                return Err(SlangError::EmptyCity { city: city.clone() });
            }
            if let Some(first) = spelled.insert(key.clone(), city) {
                return Err(SlangError::DuplicateCity {
                    first: first.to_owned(),
                    second: city.clone(),
                });
            }
            let dictionary = dictionaries.cities.entry(key.clone()).or_default();
            let mut term_spelled: BTreeMap<String, &str> = BTreeMap::new();
            for (term, meaning) in terms {
                let normalised = checked_term(&key, term)?;
                if let Some(first) = term_spelled.insert(normalised.clone(), term) {
                    return Err(SlangError::DuplicateTerm {
                        city: key,
                        first: first.to_owned(),
                        second: term.clone(),
                    });
                }
                let meaning = checked_meaning(&key, &normalised, meaning)?;
                dictionary.insert(normalised, meaning);
            }
        }
        Ok(dictionaries)
    }

    /// Merges `other` into `self`: cities are united, and for a term both have, `other`'s meaning wins.
    pub fn merge(&mut self, other: Dictionaries) {
        for (city, terms) in other.cities {
            match self.cities.entry(city) {
                Entry::Vacant(vacant) => {
                    vacant.insert(terms);
                }
                Entry::Occupied(mut occupied) => occupied.get_mut().extend(terms),
            }
        }
    }

    /// The dictionary of a city, given as a key or a name (normalised here).
    pub fn city(&self, city: &str) -> Option<&Dictionary> {
        self.cities.get(&normalize_city(city))
    }

    /// The meaning of a term in a city (both normalised here).
    pub fn meaning(&self, city: &str, term: &str) -> Option<&str> {
        self.city(city)?.get(&normalize_term(term)).map(String::as_str)
    }

    /// The cities, as normalised keys, in order.
    pub fn cities(&self) -> impl Iterator<Item = &str> {
        self.cities.keys().map(String::as_str)
    }

    /// Every city with its dictionary.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Dictionary)> {
        self.cities.iter().map(|(city, terms)| (city.as_str(), terms))
    }

    /// Number of terms, all cities together.
    pub fn term_count(&self) -> usize {
        self.cities.values().map(BTreeMap::len).sum()
    }

    /// Whether there is no term at all.
    pub fn is_empty(&self) -> bool {
        self.term_count() == 0
    }

    /// Adds a term known to be valid (built-in data, checked by the tests).
    pub(crate) fn insert_builtin(&mut self, city: &str, term: &str, meaning: &str) {
        self.cities
            .entry(city.to_owned())
            .or_default()
            .insert(term.to_owned(), meaning.to_owned());
    }
}

fn checked_term(city: &str, term: &str) -> Result<String, SlangError> {
    let normalised = normalize_term(term);
    if normalised.is_empty() {
        return Err(SlangError::EmptyTerm {
            city: city.to_owned(),
        });
    }
    let chars = normalised.chars().count();
    if chars > MAX_TERM_CHARS {
        return Err(SlangError::TermTooLong {
            city: city.to_owned(),
            chars,
        });
    }
    Ok(normalised)
}

fn checked_meaning(city: &str, term: &str, meaning: &str) -> Result<String, SlangError> {
    let meaning = meaning.trim();
    if meaning.is_empty() {
        return Err(SlangError::EmptyMeaning {
            city: city.to_owned(),
            term: term.to_owned(),
        });
    }
    let chars = meaning.chars().count();
    if chars > MAX_MEANING_CHARS {
        return Err(SlangError::MeaningTooLong {
            city: city.to_owned(),
            term: term.to_owned(),
            chars,
        });
    }
    Ok(meaning.to_owned())
}
