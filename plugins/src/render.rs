//! Rendering answers and timestamps as text, shared by the spreadsheet cells and the SMS template.

use serde_json::Value;
use switchyard_schemas::events::Answer;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

/// The Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// The largest integer an `f64` holds exactly (2^53).
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// `days` since 1970-01-01 as `YYYY-MM-DD`; the bare number when it is outside the calendar `time`
/// supports (±9999 years).
pub(crate) fn date(days: i32) -> String {
    days.checked_add(UNIX_EPOCH_JULIAN_DAY)
        .and_then(|julian| Date::from_julian_day(julian).ok())
        .map_or_else(
            || days.to_string(),
            |date| {
                format!(
                    "{:04}-{:02}-{:02}",
                    date.year(),
                    u8::from(date.month()),
                    date.day()
                )
            },
        )
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC (`2026-11-22T08:30:00.250Z`); the bare number
/// when it is out of range.
pub(crate) fn timestamp(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// A number as text: whole numbers without a fractional part (`42`, not `42.0`).
pub(crate) fn number_text(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() <= MAX_EXACT_INTEGER {
        // Exact: a whole number of at most 2^53 converts to i64 without loss.
        format!("{}", number as i64)
    } else {
        number.to_string()
    }
}

/// A number as a JSON value: an integer when it is whole, `null` when it is not finite.
pub(crate) fn number_json(number: f64) -> Value {
    if number.fract() == 0.0 && number.abs() <= MAX_EXACT_INTEGER {
        // Exact, as in `number_text`.
        Value::from(number as i64)
    } else {
        serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
    }
}

/// An answer as plain text. Choices are rendered by `choice_label`, which gets the stored value.
pub(crate) fn answer_text(answer: &Answer, choice_label: &dyn Fn(&str) -> String) -> String {
    match answer {
        Answer::Text { text } => text.clone(),
        Answer::Number { number } => number_text(*number),
        Answer::Choice { choice } => choice_label(choice),
        Answer::MultiChoice { choices } => choices
            .iter()
            .map(|c| choice_label(c))
            .collect::<Vec<_>>()
            .join(", "),
        Answer::Date { date: days } => date(*days),
        Answer::Phone { phone } => phone.clone(),
        Answer::Location {
            latitude, longitude, ..
        } => {
            format!("{},{}", number_text(*latitude), number_text(*longitude))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(20_500), "2026-02-16");
        assert_eq!(date(-1), "1969-12-31");
        assert_eq!(date(i32::MAX), i32::MAX.to_string());
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_795_165_200_250), "2026-11-20T09:00:00.25Z");
    }

    #[test]
    fn numbers() {
        assert_eq!(number_text(42.0), "42");
        assert_eq!(number_text(-3.5), "-3.5");
        assert_eq!(number_json(42.0), Value::from(42));
        assert_eq!(number_json(0.25), serde_json::json!(0.25));
        assert_eq!(number_json(f64::NAN), Value::Null);
    }

    #[test]
    fn answers() {
        let plain = |v: &str| v.to_owned();
        let loc = Answer::Location {
            latitude: -1.28638,
            longitude: 36.8172,
            accuracy_m: Some(5.0),
        };
        assert_eq!(answer_text(&loc, &plain), "-1.28638,36.8172");
        let multi = Answer::MultiChoice {
            choices: vec!["radio".into(), "tv".into()],
        };
        assert_eq!(answer_text(&multi, &|v: &str| v.to_uppercase()), "RADIO, TV");
    }
}
