//! What `switchyardctl` prints for people: aligned tables of the API's JSON (`--json` prints the JSON).

use serde_json::Value;

pub(crate) fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

pub(crate) fn plugin_rows(value: &Value) -> String {
    let rows: Vec<Vec<String>> = value
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            ["id", "version", "status", "active_instances", "events", "actions"]
                .iter()
                .map(|k| text(p, k))
                .collect()
        })
        .collect();
    table(
        &["ID", "VERSION", "STATUS", "INSTANCES", "EVENTS", "ACTIONS"],
        &rows,
    )
}

pub(crate) fn enablement_rows(value: &Value) -> String {
    let rows: Vec<Vec<String>> = value
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut row: Vec<String> = ["plugin_id", "enabled", "event_types", "status", "configured"]
                .iter()
                .map(|k| text(e, k))
                .collect();
            if row[2] == "-" {
                row[2] = "(all)".to_owned();
            }
            row
        })
        .collect();
    table(
        &["PLUGIN", "ENABLED", "EVENT TYPES", "STATUS", "CONFIGURED"],
        &rows,
    )
}

/// Installations (`teams installations`, `show`, and `enable`/`disable` with `--installation`).
pub(crate) fn installation_rows(value: &Value) -> String {
    let rows: Vec<Vec<String>> = value
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let mut row: Vec<String> = [
                "plugin_id",
                "installation",
                "enabled",
                "event_types",
                "form_ids",
                "filter",
                "status",
                "configured",
            ]
            .iter()
            .map(|k| text(i, k))
            .collect();
            for (column, none) in [(3, "(all)"), (4, "(any)"), (5, "(none)")] {
                if row[column] == "-" {
                    row[column] = none.to_owned();
                }
            }
            // A filter may be up to 1 KiB; the table shows its start (`--json` shows it whole).
            if row[5].chars().count() > FILTER_COLUMN {
                row[5] = row[5]
                    .chars()
                    .take(FILTER_COLUMN - 3)
                    .chain("...".chars())
                    .collect();
            }
            row
        })
        .collect();
    table(
        &[
            "PLUGIN",
            "INSTALLATION",
            "ENABLED",
            "EVENT TYPES",
            "FORMS",
            "FILTER",
            "STATUS",
            "CONFIGURED",
        ],
        &rows,
    )
}

/// Backfills (`backfill list`, and the one a `backfill` command names): history as offsets read of the
/// offsets to read, once the router has started.
pub(crate) fn backfill_rows(value: &Value) -> String {
    let rows: Vec<Vec<String>> = value
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            let progress = b.get("progress").unwrap_or(&Value::Null);
            let offset = |key: &str| progress.get(key).and_then(Value::as_i64);
            let history = match (offset("from"), offset("until"), offset("next")) {
                (Some(from), Some(until), Some(next)) => {
                    format!("{}/{}", (next.min(until) - from).max(0), (until - from).max(0))
                }
                _ => "-".to_owned(),
            };
            let eta = b
                .get("eta_seconds")
                .and_then(Value::as_u64)
                .map_or_else(|| "-".to_owned(), |s| format!("{s}s"));
            let mut until = text(b, "until");
            if until == "-" {
                until = "(hold point)".to_owned();
            }
            let mut state = text(b, "state");
            if b.get("cancel_requested") == Some(&Value::Bool(true)) && state != "cancelled" {
                state.push_str(" (cancelling)");
            }
            vec![
                text(b, "id"),
                text(b, "plugin_id"),
                text(b, "installation"),
                state,
                text(b, "since"),
                until,
                history,
                text(progress, "written"),
                eta,
                text(b, "requested_at"),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "PLUGIN",
            "INSTALLATION",
            "STATE",
            "SINCE",
            "UNTIL",
            "HISTORY",
            "WRITTEN",
            "ETA",
            "REQUESTED",
        ],
        &rows,
    )
}

/// The widest filter a table shows.
const FILTER_COLUMN: usize = 40;

pub(crate) fn details(value: &Value) -> String {
    let rows: Vec<Vec<String>> = value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, _)| vec![key.clone(), text(value, key)])
        .collect();
    table(&["FIELD", "VALUE"], &rows)
}

pub(crate) fn config_table(value: &Value) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    flatten(
        value.get("config").unwrap_or(&Value::Null),
        String::new(),
        &mut rows,
    );
    for (pointer, state) in value
        .get("secrets")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        rows.push(vec![
            pointer.clone(),
            format!("(secret, {})", state.as_str().unwrap_or("?")),
        ]);
    }
    rows.sort();
    table(&["FIELD", "VALUE"], &rows)
}

fn flatten(value: &Value, pointer: String, rows: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                flatten(child, format!("{pointer}/{key}"), rows);
            }
        }
        Value::Null if pointer.is_empty() => {}
        other => rows.push(vec![pointer, other.to_string()]),
    }
}

pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installations_as_a_table() {
        let value = serde_json::json!([
            {"plugin_id": "sheets-export", "installation": "default", "enabled": true,
             "updated_at": "t", "status": "up", "configured": false},
            {"plugin_id": "sheets-export", "installation": "forms-b", "enabled": false,
             "event_types": ["response.submitted"], "form_ids": ["f-b", "f-c"],
             "filter": format!("data.answers.q1 == '{}'", "x".repeat(40)), "updated_at": "t",
             "status": "down", "configured": true}
        ]);
        let printed = installation_rows(&value);
        let lines: Vec<&str> = printed.lines().collect();
        assert!(
            lines[0].starts_with("PLUGIN         INSTALLATION  ENABLED  EVENT TYPES"),
            "{printed}"
        );
        assert!(lines[1].contains("(all)") && lines[1].contains("(any)") && lines[1].contains("(none)"));
        assert!(
            lines[2].contains("f-b,f-c") && lines[2].contains("data.answers.q1 == 'xxxxxxxxxxxxxxxxx..."),
            "{printed}"
        );
        assert_eq!(
            installation_rows(&serde_json::json!([])).lines().last(),
            Some("(none)")
        );
    }

    #[test]
    fn backfills_as_a_table() {
        let value = serde_json::json!([
            {"id": "b-2", "team_id": "acme", "plugin_id": "sheets-export", "installation": "forms-bc",
             "since": "2026-11-01T00:00:00Z", "state": "running", "requested_at": "2026-12-05T10:00:00Z",
             "updated_at": "2026-12-05T10:00:00Z", "cancel_requested": false, "eta_seconds": 50,
             "progress": {"partition": 2, "from": 100, "until": 1100, "hold": 1100, "next": 350,
                          "scanned": 250, "matched": 60, "written": 60, "dead_lettered": 0,
                          "started_at": "2026-12-05T10:00:01Z", "updated_at": "2026-12-05T10:00:11Z"}},
            {"id": "b-1", "team_id": "acme", "plugin_id": "sheets-export", "installation": "default",
             "since": "2026-10-01T00:00:00Z", "until": "2026-10-02T00:00:00Z", "state": "pending",
             "requested_at": "2026-12-04T10:00:00Z", "updated_at": "2026-12-04T10:05:00Z",
             "cancel_requested": true}
        ]);
        let printed = backfill_rows(&value);
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "ID",
                "PLUGIN",
                "INSTALLATION",
                "STATE",
                "SINCE",
                "UNTIL",
                "HISTORY",
                "WRITTEN",
                "ETA",
                "REQUESTED"
            ]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "b-2",
                "sheets-export",
                "forms-bc",
                "running",
                "2026-11-01T00:00:00Z",
                "(hold",
                "point)",
                "250/1000",
                "60",
                "50s",
                "2026-12-05T10:00:00Z"
            ]
        );
        assert!(
            lines[2].contains("pending (cancelling)") && lines[2].contains("2026-10-02T00:00:00Z"),
            "{printed}"
        );
        assert_eq!(
            backfill_rows(&serde_json::json!([])).lines().last(),
            Some("(none)")
        );
    }
}
