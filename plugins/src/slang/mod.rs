//! **slang-search**: finds local slang in a response's free-text answers, using the dictionary of the
//! city the respondent named in another answer. Each hit becomes a result event (term, standard meaning,
//! where it was found).
//!
//! ```text
//!  config (JSON) ── SlangConfig::from_json ── SlangIndex::build ──► SlangIndex (once per config)
//!  builtin() ── merged under the team's dictionaries ──┘    └──► SlangError  (a config error)
//!  Response ── SlangIndex::search ──► Vec<Hit { question_id, term, meaning, city, start, end }>
//! ```
//!
//! # Dictionaries
//!
//! [`builtin`] holds Sheng for the East African cities of the demo and West African Pidgin for the
//! Nigerian and Ghanaian ones (every slang word the demo's generator writes is in them). A team's config
//! adds its own `dictionaries` (city → term → meaning) on top; for a term both have, the team's meaning
//! wins, and `use_builtin: false` drops the built-in ones. City names are normalised with
//! [`normalize_city`] (lowercase; spaces, dashes and underscores alike), so the choice value
//! `dar-es-salaam` and the typed `Dar es Salaam` are one city. Terms are normalised with
//! [`normalize_term`] (single spaces, ASCII lowercase); multi-word terms (`no wahala`, `e be like say`)
//! are allowed and match with single spaces between the words.
//!
//! # Which dictionary
//!
//! The city is the answer to `city_question` (default `city`): a choice value or a text. Only that
//! city's dictionary is searched, so `poa` in a Lagos response is not Sheng. No answer, a blank one, or a
//! city without a dictionary gives **no hits**: the language of a text is never guessed.
//!
//! # Matching
//!
//! [`SlangIndex::build`] compiles, at initialize time, one Aho-Corasick automaton per city (ASCII
//! case-insensitive), so a search costs one pass over each text answer whatever the dictionary's size.
//! A candidate counts only on **word boundaries**: the character before it and the character after it
//! (if any) must not be alphanumeric in the Unicode sense (`char::is_alphanumeric`), so `mat` is not
//! found in `format` or `matatu`, nor `poa` in `poa2`, nor `doh` in `dohá` (an accented letter is a
//! letter too), while punctuation, spaces, dashes, underscores and apostrophes (`msee's`) are
//! boundaries. Among the candidates on boundaries, the leftmost wins, then the longest (`no wahala` over
//! `wahala`), and hits never overlap. This is leftmost-longest matching applied
//! *after* the boundary check: the automaton is built with `MatchKind::Standard` and searched for
//! overlapping matches, because a leftmost-longest automaton reports one match per position and would
//! hide `poa` in `poa sanaa` when `poa sana` (which fails the boundary check there) is also a term.
//!
//! Offsets are byte offsets into the answer's UTF-8 text (`&text[start..end]` is the term as written).
//! Searched answers are the `text_questions` given in the config, or by default every text answer other
//! than the city question's; answers of other kinds are never searched.

mod builtin;
mod config;
mod dictionary;
mod error;
mod index;

pub use builtin::{PIDGIN_CITIES, SHENG_CITIES, builtin};
pub use config::{
    DEFAULT_CITY_QUESTION, MAX_MEANING_CHARS, MAX_TEAM_TERMS, MAX_TERM_CHARS, SlangConfig, config_schema,
};
pub use dictionary::{Dictionaries, Dictionary, normalize_city, normalize_term};
pub use error::SlangError;
pub use index::{Hit, SlangIndex};

#[cfg(test)]
mod tests;
