//! The message template language.
//!
//! * `{{answer.<question_id>}}`: the answer to that question (empty if skipped or absent);
//! * `{{name}}`: the respondent's name: the text answer to `name`, else to the first question (by id)
//!   whose id ends in `_name` (`respondent_name`, `farmer_name`, `patient_name`, ...);
//! * `{{response_id}}`, `{{form_id}}`, `{{team_id}}`: the response's ids.
//!
//! Spaces inside the braces are allowed (`{{ answer.city }}`). Anything else between `{{` and `}}`,
//! and a `{{` never closed, is an error of [`Template::parse`], which the plugin calls when a team's
//! config is applied, so a bad template is reported once, at initialize, not with every response.
//!
//! Answers render as text: numbers without a needless `.0`, a choice as its stored value, several
//! choices joined with ", ", a date as `YYYY-MM-DD`, a location as `lat,lon`. When a placeholder
//! renders empty, a space before it is dropped if punctuation or the end follows, so the default
//! template without a name reads "Thank you, we received ..." rather than "Thank you , we ...".
//!
//! A message longer than [`MAX_MESSAGE_CHARS`] (Twilio's limit) is cut and ends with "…".

use std::fmt;

use switchyard_schemas::events::{Answer, Response};
use thiserror::Error;

use crate::{Disposition, render};

/// The longest message Twilio accepts, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1600;

/// The template used when a team's config has none.
pub const DEFAULT_TEMPLATE: &str = "Thank you {{name}}, we received your response {{response_id}}.";

/// A template that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    /// Nothing to send.
    #[error("The message template is empty.")]
    Empty,
    /// `{{` without a matching `}}`.
    #[error(
        "The placeholder opened at character {position} of the message template is never closed with '}}}}'."
    )]
    Unclosed {
        /// 0-based character index of the `{{`.
        position: usize,
    },
    /// A placeholder that is not one of the known ones.
    #[error(
        "The message template uses the unknown placeholder {{{{{placeholder}}}}}; known are \
         {{{{answer.<question_id>}}}}, {{{{name}}}}, {{{{response_id}}}}, {{{{form_id}}}} and \
         {{{{team_id}}}}."
    )]
    UnknownPlaceholder {
        /// What stood between the braces.
        placeholder: String,
    },
}

impl TemplateError {
    /// Always [`Disposition::DeadLetter`]: a template does not fix itself.
    pub fn disposition(&self) -> Disposition {
        Disposition::DeadLetter
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Answer(String),
    Name,
    ResponseId,
    FormId,
    TeamId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
}

/// A parsed message template.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

impl Default for Template {
    fn default() -> Self {
        // The default template is valid (a unit test parses it); this fallback is never taken.
        Self::parse(DEFAULT_TEMPLATE).unwrap_or(Self {
            source: String::new(),
            parts: Vec::new(),
        })
    }
}

impl Template {
    /// Parses `source`.
    ///
    /// # Errors
    ///
    /// [`TemplateError`] for an empty template, an unclosed `{{` or an unknown placeholder.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        if source.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut rest = source;
        let mut consumed_chars = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let position = consumed_chars + rest[..open].chars().count();
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed { position })?;
            let name = after[..close].trim();
            let field = match name {
                "name" => Field::Name,
                "response_id" => Field::ResponseId,
                "form_id" => Field::FormId,
                "team_id" => Field::TeamId,
                _ => match name.strip_prefix("answer.") {
                    Some(id) if is_question_id(id) => Field::Answer(id.to_owned()),
                    _ => {
                        return Err(TemplateError::UnknownPlaceholder {
                            placeholder: name.to_owned(),
                        });
                    }
                },
            };
            parts.push(Part::Field(field));
            let used = open + 2 + close + 2;
            consumed_chars += rest[..used].chars().count();
            rest = &rest[used..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The template's text, as configured.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The message for `response`, at most [`MAX_MESSAGE_CHARS`] characters.
    pub fn render(&self, response: &Response) -> String {
        let mut out = String::new();
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field(field) => {
                    let value = field_value(field, response);
                    if value.is_empty() {
                        let next = match self.parts.get(i + 1) {
                            Some(Part::Text(text)) => text.chars().next(),
                            Some(Part::Field(_)) => Some('x'),
                            None => None,
                        };
                        if out.ends_with(' ')
                            && next.is_none_or(|c| matches!(c, ',' | '.' | ';' | ':' | '!' | '?' | ' '))
                        {
                            out.pop();
                        }
                    }
                    out.push_str(&value);
                }
            }
        }
        truncate(out)
    }
}

fn is_question_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn field_value(field: &Field, response: &Response) -> String {
    match field {
        Field::ResponseId => response.id.clone(),
        Field::FormId => response.form_id.clone(),
        Field::TeamId => response.team_id.clone(),
        Field::Answer(id) => match response.answers.get(id) {
            Some(Some(answer)) => render::answer_text(answer, &|value: &str| value.to_owned()),
            _ => String::new(),
        },
        Field::Name => {
            let text = |id: &str| match response.answers.get(id) {
                Some(Some(Answer::Text { text })) if !text.trim().is_empty() => Some(text.trim().to_owned()),
                _ => None,
            };
            text("name")
                .or_else(|| {
                    response
                        .answers
                        .keys()
                        .filter(|id| id.ends_with("_name"))
                        .find_map(|id| text(id))
                })
                .unwrap_or_default()
        }
    }
}

fn truncate(message: String) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message;
    }
    let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn response(answers: Vec<(&str, Option<Answer>)>) -> Response {
        Response {
            id: "r-42".into(),
            form_id: "f-kilimo-coop-farmer-registration".into(),
            form_version: 1,
            team_id: "kilimo-coop".into(),
            collector_id: "enum-1".into(),
            submitted_at: 0,
            locale: "sw".into(),
            answers: answers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<BTreeMap<_, _>>(),
            duration_ms: None,
        }
    }

    #[test]
    fn the_default_template_finds_the_name() {
        let template = Template::default();
        assert_eq!(template.source(), DEFAULT_TEMPLATE);
        let farmer = response(vec![(
            "farmer_name",
            Some(Answer::Text {
                text: "Wanjiku Kamau".into(),
            }),
        )]);
        assert_eq!(
            template.render(&farmer),
            "Thank you Wanjiku Kamau, we received your response r-42."
        );
        let nameless = response(vec![("farmer_name", None)]);
        assert_eq!(
            template.render(&nameless),
            "Thank you, we received your response r-42."
        );
    }

    #[test]
    fn placeholders_are_filled() {
        let template = Template::parse(
            "{{team_id}}/{{ form_id }}: {{answer.city}} {{answer.farm_size_acres}} acres, \
             {{answer.livestock}}, born {{answer.date_of_birth}}{{answer.missing}}.",
        )
        .unwrap();
        let r = response(vec![
            (
                "city",
                Some(Answer::Choice {
                    choice: "nakuru".into(),
                }),
            ),
            ("farm_size_acres", Some(Answer::Number { number: 2.5 })),
            (
                "livestock",
                Some(Answer::MultiChoice {
                    choices: vec!["cows".into(), "goats".into()],
                }),
            ),
            ("date_of_birth", Some(Answer::Date { date: 7_000 })),
        ]);
        assert_eq!(
            template.render(&r),
            "kilimo-coop/f-kilimo-coop-farmer-registration: nakuru 2.5 acres, cows, goats, born 1989-03-02."
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        assert_eq!(Template::parse("  "), Err(TemplateError::Empty));
        assert_eq!(
            Template::parse("Hi {{name"),
            Err(TemplateError::Unclosed { position: 3 })
        );
        assert_eq!(
            Template::parse("Hi {{answers.name}}"),
            Err(TemplateError::UnknownPlaceholder {
                placeholder: "answers.name".into()
            })
        );
        assert_eq!(
            Template::parse("{{answer.}}"),
            Err(TemplateError::UnknownPlaceholder {
                placeholder: "answer.".into()
            })
        );
        let error = Template::parse("{{password}}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "The message template uses the unknown placeholder {{password}}; known are \
             {{answer.<question_id>}}, {{name}}, {{response_id}}, {{form_id}} and {{team_id}}."
        );
        assert_eq!(
            Template::parse("x {{y").unwrap_err().to_string(),
            "The placeholder opened at character 2 of the message template is never closed with '}}'."
        );
        assert!(Template::parse("Just text, {single} braces }} fine").is_ok());
    }

    #[test]
    fn long_messages_are_cut() {
        let template = Template::parse("{{answer.notes}}").unwrap();
        let long = "ab".repeat(1000);
        let message = template.render(&response(vec![("notes", Some(Answer::Text { text: long }))]));
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS);
        assert!(message.ends_with("a…") || message.ends_with("b…"));
    }
}
