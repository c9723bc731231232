//! The CEL variables a rule sees for one response: `answers`, `days` and `response`. Built once per
//! response and shared by all of the team's rules.

use std::collections::HashMap;

use cel::Context;
use cel::common::types::{CelDouble, CelInt, CelList, CelMap, CelMapKey, CelString, CelTimestamp};
use cel::common::value::Val;
use switchyard_schemas::events::{Answer, Response};

use super::analysis::{ANSWERS, DAYS, RESPONSE};

/// Milliseconds in a day.
const MS_PER_DAY: i64 = 86_400_000;
/// Days from 0001-01-01 (chrono's day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_FROM_CE: i32 = 719_163;

/// A CEL value that may borrow from the response.
type Boxed<'r> = Box<dyn Val + 'r>;

/// Binds `answers`, `days` and `response` for `response` in `context`; see the module docs of [`super`]
/// for the mapping. Strings are borrowed from the response, not copied: the only allocations are the
/// maps, the boxes of the values and the text of date answers.
pub(crate) fn bind<'r>(context: &mut Context<'_, 'r>, response: &'r Response) {
    let mut answers: HashMap<CelMapKey<'r>, Boxed<'r>> = HashMap::with_capacity(response.answers.len());
    let mut days: HashMap<CelMapKey<'r>, Boxed<'r>> = HashMap::new();
    for (id, answer) in &response.answers {
        let Some(answer) = answer else { continue };
        if let Answer::Date { date } = answer {
            days.insert(key(id), Box::new(CelInt::from(i64::from(*date))));
        }
        if let Some(value) = answer_value(answer) {
            answers.insert(key(id), value);
        }
    }

    let mut fields: HashMap<CelMapKey<'r>, Boxed<'r>> = HashMap::with_capacity(9);
    fields.insert(key("id"), text(&response.id));
    fields.insert(key("form_id"), text(&response.form_id));
    fields.insert(
        key("form_version"),
        Box::new(CelInt::from(i64::from(response.form_version))),
    );
    fields.insert(key("team_id"), text(&response.team_id));
    fields.insert(key("collector_id"), text(&response.collector_id));
    fields.insert(key("locale"), text(&response.locale));
    let day = response.submitted_at.div_euclid(MS_PER_DAY);
    fields.insert(key("submitted_day"), Box::new(CelInt::from(day)));
    // Out of chrono's range (±262,000 years) only in a corrupt event; then the field is absent and a rule
    // reading it reports an error.
    if let Some(at) = chrono::DateTime::from_timestamp_millis(response.submitted_at) {
        fields.insert(
            key("submitted_at"),
            Box::new(CelTimestamp::from(at.fixed_offset())),
        );
    }
    if let Some(duration) = response.duration_ms {
        fields.insert(key("duration_ms"), Box::new(CelInt::from(duration)));
    }

    context.add_variable_as_val(ANSWERS, Box::new(CelMap::from(answers)));
    context.add_variable_as_val(DAYS, Box::new(CelMap::from(days)));
    context.add_variable_as_val(RESPONSE, Box::new(CelMap::from(fields)));
}

fn key(s: &str) -> CelMapKey<'_> {
    CelMapKey::from(s)
}

fn text(s: &str) -> Boxed<'_> {
    Box::new(CelString::from(s))
}

fn double<'r>(x: f64) -> Boxed<'r> {
    Box::new(CelDouble::from(x))
}

/// An answer as a CEL value; `None` for a date outside chrono's range, which then only appears in `days`.
fn answer_value(answer: &Answer) -> Option<Boxed<'_>> {
    Some(match answer {
        Answer::Text { text: t } => text(t),
        Answer::Number { number } => double(*number),
        Answer::Choice { choice } => text(choice),
        Answer::MultiChoice { choices } => {
            Box::new(CelList::from(choices.iter().map(|c| text(c)).collect::<Vec<_>>()))
        }
        Answer::Date { date } => Box::new(CelString::from(date_string(*date)?)),
        Answer::Phone { phone } => text(phone),
        Answer::Location {
            latitude,
            longitude,
            accuracy_m,
        } => {
            let mut fields: HashMap<CelMapKey<'_>, Boxed<'_>> = HashMap::with_capacity(3);
            fields.insert(key("latitude"), double(*latitude));
            fields.insert(key("longitude"), double(*longitude));
            if let Some(accuracy) = accuracy_m {
                fields.insert(key("accuracy_m"), double(*accuracy));
            }
            Box::new(CelMap::from(fields))
        }
    })
}

/// `YYYY-MM-DD` for a count of days since 1970-01-01.
pub(crate) fn date_string(days: i32) -> Option<String> {
    let date = chrono::NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_FROM_CE)?)?;
    Some(date.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_iso_calendar_days() {
        assert_eq!(date_string(0).as_deref(), Some("1970-01-01"));
        assert_eq!(date_string(20_500).as_deref(), Some("2026-02-16"));
        assert_eq!(date_string(-1).as_deref(), Some("1969-12-31"));
        assert_eq!(date_string(i32::MAX), None);
    }
}
