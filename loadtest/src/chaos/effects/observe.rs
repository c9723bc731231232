//! Turning what the run left behind (records read back, the fakes' state) into the inputs of
//! [`super::tally`], and the oracle of rules-validate and slang-search: the plugins' own logic, run here on
//! each routed response with the team's config, says whether the plugin owes a result.

use std::collections::HashMap;

use serde_json::Value;
use switchyard_plugins::rules::RuleSet;
use switchyard_plugins::slang::SlangIndex;
use switchyard_schemas::envelope::{self as ce, ContentType};
use switchyard_schemas::events::{Response, ResponseSubmitted, ResponseUpdated};
use switchyard_schemas::payload;

use super::tally::{ResultRecord, RoutedEvent};
use crate::control_plane::sample_config;
use crate::generate::control::{RULES_VALIDATE, SLANG_SEARCH};
use crate::kafka::ReadRecord;

/// Header of a result: the event it answers.
const CAUSATION_ID: &str = "ce_causationid";

/// Whether rules-validate or slang-search owes a result for a response: each team's compiled config,
/// compiled once per distinct config.
#[derive(Default)]
pub(super) struct Oracle {
    rules: HashMap<String, Option<RuleSet>>,
    slang: HashMap<String, Option<SlangIndex>>,
}

impl Oracle {
    /// Whether `plugin` yields a result for `response` of `team` (false for the other plugins, and for a
    /// config that does not compile: the worker dead-letters those events).
    pub(super) fn yields_result(&mut self, plugin: &str, team: &str, response: &Response) -> bool {
        let Some(config) = sample_config(team, plugin) else {
            return false;
        };
        let key = config.to_string();
        match plugin {
            RULES_VALIDATE => self
                .rules
                .entry(key)
                .or_insert_with(|| RuleSet::from_json(&config).ok())
                .as_ref()
                .is_some_and(|rules| !rules.evaluate(response).violations.is_empty()),
            SLANG_SEARCH => self
                .slang
                .entry(key)
                .or_insert_with(|| SlangIndex::from_json(&config).ok())
                .as_ref()
                .is_some_and(|index| !index.search(response).is_empty()),
            _ => false,
        }
    }
}

/// The response of a response event, decoded from its record.
fn response_of(record: &ReadRecord, event_type: &str) -> Option<Response> {
    let content_type = ContentType::parse(&record.header(ce::CONTENT_TYPE)?)?;
    let value = record.value.as_deref()?;
    match event_type {
        "response.submitted" => payload::decode::<ResponseSubmitted>(content_type, value)
            .ok()
            .map(|e| e.response),
        "response.updated" => payload::decode::<ResponseUpdated>(content_type, value)
            .ok()
            .map(|e| e.response),
        _ => None,
    }
}

/// The events routed to `plugin`, from its topic's records.
pub(super) fn routed_events(plugin: &str, records: &[ReadRecord], oracle: &mut Oracle) -> Vec<RoutedEvent> {
    records
        .iter()
        .filter_map(|record| {
            let id = record.header(ce::ID)?;
            let event_type = record.header(ce::TYPE)?;
            let team = String::from_utf8_lossy(record.key.as_deref()?).into_owned();
            let response = response_of(record, &event_type);
            let yields_result = response
                .as_ref()
                .is_some_and(|response| oracle.yields_result(plugin, &team, response));
            Some(RoutedEvent {
                id,
                team,
                event_type,
                response_id: response.map(|r| r.id),
                yields_result,
            })
        })
        .collect()
}

/// The result records of the results topic.
pub(super) fn results(records: &[ReadRecord]) -> Vec<ResultRecord> {
    records
        .iter()
        .filter_map(|record| {
            Some(ResultRecord {
                plugin: record.header(ce::SOURCE)?.strip_prefix("/plugins/")?.to_owned(),
                event_id: record.header(CAUSATION_ID)?,
                id: record.header(ce::ID)?,
                kind: record.header(ce::TYPE)?,
            })
        })
        .collect()
}

/// The response id a text is about: the default template ends with it ("... your response R-1.").
pub(super) fn texted_response(body: &str) -> String {
    body.split_whitespace()
        .last()
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_owned()
}

/// The response ids of a sheet's data rows, by its header's `response_id` column (empty when it has no
/// header yet).
pub(super) fn sheet_responses(grid: &[Vec<Value>]) -> Vec<String> {
    let Some((header, rows)) = grid.split_first() else {
        return Vec::new();
    };
    let Some(column) = header.iter().position(|cell| cell == "response_id") else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|row| match row.get(column) {
            Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_text_names_its_response_last() {
        assert_eq!(
            texted_response("Thank you Wanjiru, we received your response r-19."),
            "r-19"
        );
    }

    #[test]
    fn rows_are_read_by_the_headers_response_id_column() {
        let grid = vec![
            vec![json!("submitted_at"), json!("response_id")],
            vec![json!("2026-12-05"), json!("r-1")],
            vec![json!("2026-12-05"), Value::Null],
            vec![json!("2026-12-05"), json!("r-2")],
        ];
        assert_eq!(sheet_responses(&grid), ["r-1", "r-2"]);
        assert!(sheet_responses(&[]).is_empty());
    }
}
