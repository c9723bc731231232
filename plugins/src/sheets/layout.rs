//! The columns of one form's sheet, and how a response becomes a row of it.
//!
//! ```text
//!   response_id | submitted_at | collector_id | form_version | <label of q1> | ... | <extra id>
//! ```
//!
//! The four fixed columns come first, then one column per question in form order, headed by the
//! question's label. Columns are only ever appended: a question added by a new form version gets a
//! new column at the end, a question removed keeps its column (empty in later rows), a question whose
//! label changed keeps its column under the new label. So a row written under any earlier header still
//! lines up with the current one.
//!
//! Answers to questions the layout does not know (the form was never seen, or the response answers a
//! newer version than the one seen) get a column headed by the question id; when the form arrives,
//! that column is taken over by the question and relabelled.
//!
//! A layout can also start from a header already in the sheet ([`Layout::from_header`]): after a
//! restart the exporter reads row 1 back and maps its cells onto the questions by label (or id), so
//! it keeps writing under the existing columns instead of rewriting the header in a new order.

use std::collections::HashMap;

use serde_json::Value;
use switchyard_schemas::events::{Answer, Form, Response};

use crate::render;

/// The fixed leading columns, in order.
pub const FIXED_COLUMNS: [&str; 4] = ["response_id", "submitted_at", "collector_id", "form_version"];

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ColumnKey {
    /// The fixed column `FIXED_COLUMNS[i]`.
    Fixed(usize),
    /// The answer to this question id.
    Question(String),
    /// A column found in an existing header that no question has claimed (yet).
    Unbound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    key: ColumnKey,
    header: String,
}

/// The columns of one (team, form) sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    columns: Vec<Column>,
    /// Question id → choice value → label, from the newest form merged.
    choice_labels: HashMap<String, HashMap<String, String>>,
}

impl Default for Layout {
    fn default() -> Self {
        Self::new()
    }
}

impl Layout {
    /// Only the fixed columns.
    pub fn new() -> Self {
        Self {
            columns: FIXED_COLUMNS
                .iter()
                .enumerate()
                .map(|(i, name)| Column {
                    key: ColumnKey::Fixed(i),
                    header: (*name).to_owned(),
                })
                .collect(),
            choice_labels: HashMap::new(),
        }
    }

    /// The fixed columns followed by one column per question of `form`.
    pub fn from_form(form: &Form) -> Self {
        let mut layout = Self::new();
        layout.merge(form);
        layout
    }

    /// A layout that keeps the columns of an existing header row: cells naming a fixed column become
    /// that column, the others wait for a question whose label (or id) they match. Fixed columns the
    /// header lacks are appended.
    pub fn from_header(header: &[String]) -> Self {
        let mut columns: Vec<Column> = Vec::with_capacity(header.len() + FIXED_COLUMNS.len());
        for text in header {
            let fixed = FIXED_COLUMNS
                .iter()
                .position(|name| name == text)
                .filter(|i| !columns.iter().any(|c| c.key == ColumnKey::Fixed(*i)));
            let key = fixed.map_or(ColumnKey::Unbound, ColumnKey::Fixed);
            columns.push(Column {
                key,
                header: text.clone(),
            });
        }
        for (i, name) in FIXED_COLUMNS.iter().enumerate() {
            if !columns.iter().any(|c| c.key == ColumnKey::Fixed(i)) {
                columns.push(Column {
                    key: ColumnKey::Fixed(i),
                    header: (*name).to_owned(),
                });
            }
        }
        Self {
            columns,
            choice_labels: HashMap::new(),
        }
    }

    /// Brings the layout up to `form`: each question keeps its column (relabelled if its label
    /// changed), claims a waiting column headed by its label or id, or gets a new column at the end.
    /// Nothing is removed or reordered. Returns whether the header changed.
    pub fn merge(&mut self, form: &Form) -> bool {
        let mut changed = false;
        for question in &form.questions {
            let labels = question
                .choices
                .iter()
                .map(|c| (c.value.clone(), c.label.clone()))
                .collect();
            self.choice_labels.insert(question.id.clone(), labels);
            let index = self
                .position(&ColumnKey::Question(question.id.clone()))
                .or_else(|| self.waiting_column(&question.label))
                .or_else(|| self.waiting_column(&question.id));
            match index {
                Some(i) => {
                    let column = &mut self.columns[i];
                    column.key = ColumnKey::Question(question.id.clone());
                    if column.header != question.label {
                        column.header.clone_from(&question.label);
                        changed = true;
                    }
                }
                None => {
                    self.columns.push(Column {
                        key: ColumnKey::Question(question.id.clone()),
                        header: question.label.clone(),
                    });
                    changed = true;
                }
            }
        }
        changed
    }

    /// Adds a column, headed by the question id, for every question the response has an answer slot
    /// for (answered or skipped) but the layout has no column for. Returns whether the header changed.
    pub fn add_answer_columns(&mut self, response: &Response) -> bool {
        let mut changed = false;
        for id in response.answers.keys() {
            if self.position(&ColumnKey::Question(id.clone())).is_some() {
                continue;
            }
            match self.waiting_column(id) {
                Some(i) => self.columns[i].key = ColumnKey::Question(id.clone()),
                None => {
                    self.columns.push(Column {
                        key: ColumnKey::Question(id.clone()),
                        header: id.clone(),
                    });
                    changed = true;
                }
            }
        }
        changed
    }

    /// The header row.
    pub fn header(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.header.clone()).collect()
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether there are no columns (never true: the fixed columns are always there).
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The 0-based index of the column holding answers to `question_id`.
    pub fn column_of(&self, question_id: &str) -> Option<usize> {
        self.position(&ColumnKey::Question(question_id.to_owned()))
    }

    /// The 0-based index of the `response_id` column: the first one, unless an existing header put it
    /// elsewhere.
    pub fn response_id_column(&self) -> usize {
        self.position(&ColumnKey::Fixed(0)).unwrap_or(0)
    }

    /// The response as a row of cells, one per column. Answers without a column are left out (call
    /// [`Layout::add_answer_columns`] first); columns without an answer are empty strings.
    ///
    /// Cells: text and phone numbers as text, numbers as numbers, a choice as its label (its value
    /// when the form's labels are unknown), several choices joined with ", ", a date as `YYYY-MM-DD`,
    /// a location as `lat,lon`, `submitted_at` as RFC 3339 in UTC.
    pub fn row(&self, response: &Response) -> Vec<Value> {
        self.columns
            .iter()
            .map(|column| match &column.key {
                ColumnKey::Fixed(0) => Value::from(response.id.as_str()),
                ColumnKey::Fixed(1) => Value::from(render::timestamp(response.submitted_at)),
                ColumnKey::Fixed(2) => Value::from(response.collector_id.as_str()),
                ColumnKey::Fixed(_) => Value::from(response.form_version),
                ColumnKey::Question(id) => match response.answers.get(id) {
                    Some(Some(answer)) => self.cell(id, answer),
                    _ => Value::from(""),
                },
                ColumnKey::Unbound => Value::from(""),
            })
            .collect()
    }

    fn cell(&self, question_id: &str, answer: &Answer) -> Value {
        if let Answer::Number { number } = answer {
            return render::number_json(*number);
        }
        let labels = self.choice_labels.get(question_id);
        let label = |value: &str| {
            labels
                .and_then(|l| l.get(value))
                .map_or_else(|| value.to_owned(), String::clone)
        };
        Value::from(render::answer_text(answer, &label))
    }

    fn position(&self, key: &ColumnKey) -> Option<usize> {
        self.columns.iter().position(|c| &c.key == key)
    }

    fn waiting_column(&self, header: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.key == ColumnKey::Unbound && c.header == header)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use switchyard_schemas::events::{Choice, Question, QuestionKind};

    use super::*;

    fn question(id: &str, label: &str, kind: QuestionKind) -> Question {
        Question {
            id: id.into(),
            label: label.into(),
            kind,
            required: false,
            choices: vec![],
            hint: None,
        }
    }

    fn form(version: i32, questions: Vec<Question>) -> Form {
        Form {
            id: "f-kilimo-coop-household-survey".into(),
            team_id: "kilimo-coop".into(),
            title: "Household survey 2026".into(),
            description: None,
            version,
            default_locale: "sw".into(),
            questions,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn household() -> Form {
        let mut city = question("city", "City or nearest town", QuestionKind::SingleChoice);
        city.choices = vec![Choice {
            value: "nairobi".into(),
            label: "Nairobi".into(),
        }];
        let mut assets = question("assets", "Assets owned", QuestionKind::MultipleChoice);
        assets.choices = vec![
            Choice {
                value: "radio".into(),
                label: "Radio".into(),
            },
            Choice {
                value: "solar".into(),
                label: "Solar panel".into(),
            },
        ];
        form(
            1,
            vec![
                question("respondent_name", "Respondent's name", QuestionKind::Text),
                question("phone", "Phone number", QuestionKind::Phone),
                city,
                question("monthly_income", "Monthly household income", QuestionKind::Number),
                assets,
                question("interview_date", "Date of interview", QuestionKind::Date),
                question("home_location", "Home location", QuestionKind::Location),
            ],
        )
    }

    fn response(answers: Vec<(&str, Option<Answer>)>) -> Response {
        Response {
            id: "r-1".into(),
            form_id: "f-kilimo-coop-household-survey".into(),
            form_version: 1,
            team_id: "kilimo-coop".into(),
            collector_id: "enum-7".into(),
            submitted_at: 1_795_165_200_000,
            locale: "sw".into(),
            answers: answers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<BTreeMap<_, _>>(),
            duration_ms: None,
        }
    }

    #[test]
    fn a_form_gives_fixed_columns_then_labels() {
        let layout = Layout::from_form(&household());
        assert_eq!(
            layout.header(),
            [
                "response_id",
                "submitted_at",
                "collector_id",
                "form_version",
                "Respondent's name",
                "Phone number",
                "City or nearest town",
                "Monthly household income",
                "Assets owned",
                "Date of interview",
                "Home location"
            ]
        );
    }

    #[test]
    fn answers_render_as_cells() {
        let layout = Layout::from_form(&household());
        let row = layout.row(&response(vec![
            (
                "respondent_name",
                Some(Answer::Text {
                    text: "Wanjiku Kamau".into(),
                }),
            ),
            (
                "phone",
                Some(Answer::Phone {
                    phone: "+254712345678".into(),
                }),
            ),
            (
                "city",
                Some(Answer::Choice {
                    choice: "nairobi".into(),
                }),
            ),
            ("monthly_income", Some(Answer::Number { number: 18_500.0 })),
            (
                "assets",
                Some(Answer::MultiChoice {
                    choices: vec!["radio".into(), "solar".into()],
                }),
            ),
            ("interview_date", Some(Answer::Date { date: 20_500 })),
            ("home_location", None),
        ]));
        assert_eq!(
            row,
            [
                Value::from("r-1"),
                Value::from("2026-11-20T09:00:00Z"),
                Value::from("enum-7"),
                Value::from(1),
                Value::from("Wanjiku Kamau"),
                Value::from("+254712345678"),
                Value::from("Nairobi"),
                Value::from(18_500),
                Value::from("Radio, Solar panel"),
                Value::from("2026-02-16"),
                Value::from(""),
            ]
        );
    }

    #[test]
    fn new_questions_are_appended_and_nothing_moves() {
        let mut layout = Layout::from_form(&household());
        let before = layout.header();
        assert!(
            !layout.merge(&household()),
            "merging the same form changes nothing"
        );
        let mut v2 = household();
        v2.version = 2;
        v2.questions.remove(1);
        v2.questions.insert(
            0,
            question("consent_given", "Consent?", QuestionKind::SingleChoice),
        );
        assert!(layout.merge(&v2));
        let after = layout.header();
        assert_eq!(after[..before.len()], before[..]);
        assert_eq!(after.last().map(String::as_str), Some("Consent?"));
        assert_eq!(
            layout.column_of("phone"),
            Some(5),
            "a removed question keeps its column"
        );
    }

    #[test]
    fn relabelled_questions_keep_their_column() {
        let mut layout = Layout::from_form(&household());
        let mut v2 = household();
        v2.questions[0].label = "Name of respondent".into();
        assert!(layout.merge(&v2));
        assert_eq!(layout.header()[4], "Name of respondent");
        assert_eq!(layout.len(), 11);
    }

    #[test]
    fn unknown_answers_get_id_columns_that_the_form_later_claims() {
        let mut layout = Layout::new();
        let r = response(vec![
            (
                "phone",
                Some(Answer::Phone {
                    phone: "+254712345678".into(),
                }),
            ),
            (
                "city",
                Some(Answer::Choice {
                    choice: "nairobi".into(),
                }),
            ),
        ]);
        assert!(layout.add_answer_columns(&r));
        assert!(!layout.add_answer_columns(&r));
        assert_eq!(layout.header()[4..], ["city", "phone"]);
        assert_eq!(
            layout.row(&r)[4],
            Value::from("nairobi"),
            "no labels without the form"
        );
        assert!(layout.merge(&household()));
        assert_eq!(layout.header()[4..6], ["City or nearest town", "Phone number"]);
        assert_eq!(layout.row(&r)[4], Value::from("Nairobi"));
        assert_eq!(layout.len(), 4 + 7);
    }

    #[test]
    fn an_existing_header_is_kept_and_claimed() {
        let existing: Vec<String> = [
            "response_id",
            "submitted_at",
            "collector_id",
            "form_version",
            "Phone number",
            "Respondent's name",
            "legacy",
        ]
        .map(String::from)
        .to_vec();
        let mut layout = Layout::from_header(&existing);
        assert_eq!(layout.header(), existing);
        layout.merge(&household());
        assert_eq!(
            layout.header()[..7],
            existing[..7],
            "existing columns stay where they are"
        );
        assert_eq!(layout.column_of("phone"), Some(4));
        assert_eq!(layout.column_of("respondent_name"), Some(5));
        assert_eq!(layout.header()[7], "City or nearest town");
        let row = layout.row(&response(vec![(
            "phone",
            Some(Answer::Phone {
                phone: "+2547".into(),
            }),
        )]));
        assert_eq!(row[6], Value::from(""), "an unclaimed column stays empty");
        assert_eq!(layout.response_id_column(), 0);
        let moved = Layout::from_header(&["note".to_owned(), "response_id".to_owned()]);
        assert_eq!(moved.response_id_column(), 1);
    }
}
