//! Why a slang-search config is refused.

use thiserror::Error;

use super::config::{MAX_MEANING_CHARS, MAX_TEAM_TERMS, MAX_TERM_CHARS};

/// Why a config could not be turned into a [`SlangIndex`](super::SlangIndex), or a dictionary entry not
/// be added. Always a config problem: searching itself never fails.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SlangError {
    /// The JSON is not a slang-search config at all.
    #[error("The slang-search config does not have the expected shape: {0}.")]
    Shape(#[source] serde_json::Error),
    /// `city_question` is empty.
    #[error("The city question id is empty; leave `city_question` out to use \"city\".")]
    EmptyCityQuestion,
    /// `text_questions` is an empty list or names an empty question id.
    #[error(
        "The list of text questions is empty or holds an empty id; leave `text_questions` out to search \
         every text answer."
    )]
    EmptyTextQuestion,
    /// A city name is empty once normalised.
    #[error("The dictionaries have the city {city:?}, which is empty once spaces and dashes are removed.")]
    EmptyCity {
        /// The city as written.
        city: String,
    },
    /// Two city names of the config are the same once normalised.
    #[error(
        "The dictionaries have the cities {first:?} and {second:?}, which are the same city; merge them \
         into one."
    )]
    DuplicateCity {
        /// One spelling.
        first: String,
        /// The other spelling.
        second: String,
    },
    /// A term is empty once normalised.
    #[error("The dictionary of {city:?} has an empty term.")]
    EmptyTerm {
        /// The city (normalised).
        city: String,
    },
    /// Two terms of one city are the same once normalised.
    #[error(
        "The dictionary of {city:?} has the terms {first:?} and {second:?}, which are the same term (case \
         and spacing do not count); keep one."
    )]
    DuplicateTerm {
        /// The city (normalised).
        city: String,
        /// One spelling.
        first: String,
        /// The other spelling.
        second: String,
    },
    /// A term is longer than [`MAX_TERM_CHARS`].
    #[error(
        "The dictionary of {city:?} has a term of {chars} characters, but at most {MAX_TERM_CHARS} are \
         allowed."
    )]
    TermTooLong {
        /// The city (normalised).
        city: String,
        /// Characters in the term.
        chars: usize,
    },
    /// A meaning is empty.
    #[error("The term {term:?} of {city:?} has an empty meaning.")]
    EmptyMeaning {
        /// The city (normalised).
        city: String,
        /// The term (normalised).
        term: String,
    },
    /// A meaning is longer than [`MAX_MEANING_CHARS`].
    #[error(
        "The term {term:?} of {city:?} has a meaning of {chars} characters, but at most {MAX_MEANING_CHARS} \
         are allowed."
    )]
    MeaningTooLong {
        /// The city (normalised).
        city: String,
        /// The term (normalised).
        term: String,
        /// Characters in the meaning.
        chars: usize,
    },
    /// The team's dictionaries hold more than [`MAX_TEAM_TERMS`] terms in all.
    #[error("The dictionaries hold {count} terms in all, but at most {MAX_TEAM_TERMS} are allowed.")]
    TooManyTerms {
        /// Terms in the config.
        count: usize,
    },
    /// The automaton of a city could not be built.
    #[error("The search automaton for {city:?} could not be built: {source}.")]
    Automaton {
        /// The city (normalised).
        city: String,
        /// Why.
        #[source]
        source: aho_corasick::BuildError,
    },
}
