//! `switchyardctl backfill`: start a backfill of a team's installation, follow it, list and cancel them,
//! through the registry's backfill routes.
//!
//! ```text
//!   start ─► POST .../plugins/{id}[/installations/{installation}]/backfills ─┐
//!   status ─► GET /v1/teams/{team}/backfills/{id} ◄─────────────────────────┴─ --watch: again every second
//!                 until it ends: a progress bar on a terminal, else one line per poll
//!   list ─► GET /v1/teams/{team}/backfills | .../plugins/{id}[/installations/{installation}]/backfills
//!   cancel ─► DELETE /v1/teams/{team}/backfills/{id}
//! ```

use std::io::IsTerminal;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use switchyard_registry::client::Client;

use crate::tables::{backfill_rows, text};
use crate::teams::Output;
use crate::{Failure, parse_time};

/// How often `--watch` asks again.
const POLL: Duration = Duration::from_secs(1);

/// `backfill start`.
#[derive(Debug, Args)]
pub(crate) struct Start {
    /// The team.
    #[arg(long)]
    team: String,
    /// The plugin.
    #[arg(long)]
    plugin: String,
    /// The installation (default: `default`).
    #[arg(long)]
    installation: Option<String>,
    /// History starts at: an RFC 3339 time or a duration ago (`7d`, `12h`).
    #[arg(long, value_parser = parse_time)]
    since: SystemTime,
    /// History ends before: an RFC 3339 time or a duration ago [default: where the router holds the
    /// installation].
    #[arg(long, value_parser = parse_time)]
    until: Option<SystemTime>,
    /// Only these event types (comma-separated) [default: the installation's].
    #[arg(long, value_delimiter = ',')]
    types: Option<Vec<String>>,
    /// Most copies per second [default: the router's].
    #[arg(long)]
    rate: Option<u32>,
    /// When `--since` is older than core.events still holds: refuse, or start at the oldest event.
    #[arg(long, default_value = "refuse", value_parser = ["refuse", "earliest"])]
    on_retention: String,
    /// Follow it until it ends.
    #[arg(long)]
    watch: bool,
}

/// `backfill ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum BackfillCommand {
    /// Start a backfill: the team's past events delivered to an installation of a plugin.
    Start(Start),
    /// Show a backfill (its state, progress and ETA).
    Status {
        /// The team.
        #[arg(long)]
        team: String,
        /// The backfill id.
        id: String,
        /// Follow it until it ends.
        #[arg(long)]
        watch: bool,
    },
    /// List the team's backfills, newest first: all of them, of a plugin's default installation, or of one
    /// installation.
    List {
        /// The team.
        #[arg(long)]
        team: String,
        /// Only this plugin's (its default installation unless `--installation`).
        #[arg(long)]
        plugin: Option<String>,
        /// Only this installation's.
        #[arg(long, requires = "plugin")]
        installation: Option<String>,
    },
    /// Cancel a pending or running backfill: history stops, live routing resumes without a gap.
    Cancel {
        /// The team.
        #[arg(long)]
        team: String,
        /// The backfill id.
        id: String,
    },
}

fn backfills_path(team: &str, plugin: &str, installation: Option<&str>) -> String {
    match installation {
        None => format!("/v1/teams/{team}/plugins/{plugin}/backfills"),
        Some(installation) => {
            format!("/v1/teams/{team}/plugins/{plugin}/installations/{installation}/backfills")
        }
    }
}

fn backfill_path(team: &str, id: &str) -> String {
    format!("/v1/teams/{team}/backfills/{id}")
}

/// The body of `start`'s request.
fn start_body(args: &Start) -> Value {
    let mut body = json!({
        "since": humantime::format_rfc3339_millis(args.since).to_string(),
        "on_retention": args.on_retention,
    });
    if let Some(until) = args.until {
        body["until"] = json!(humantime::format_rfc3339_millis(until).to_string());
    }
    if let Some(types) = &args.types {
        body["event_types"] = json!(types.iter().filter(|t| !t.is_empty()).collect::<Vec<_>>());
    }
    if let Some(rate) = args.rate {
        body["rate"] = json!(rate);
    }
    body
}

/// `backfill ...`; `json` says whether the answer is printed as JSON (then `--watch` lines go to stderr).
pub(crate) fn backfill(client: &Client, command: &BackfillCommand, json: bool) -> Result<Output, Failure> {
    let value = match command {
        BackfillCommand::Start(args) => {
            let path = backfills_path(&args.team, &args.plugin, args.installation.as_deref());
            let started = client.post(&path, &start_body(args))?;
            if let Some(warning) = started.get("warning") {
                eprintln!(
                    "switchyardctl: warning: {}: since moved up to {} (the oldest event core.events holds)",
                    text(warning, "code"),
                    text(warning, "since_adjusted_to")
                );
            }
            match started.get("id").and_then(Value::as_str) {
                Some(id) if args.watch => watch(client, &args.team, id, json)?,
                _ => started,
            }
        }
        BackfillCommand::Status {
            team,
            id,
            watch: true,
        } => watch(client, team, id, json)?,
        BackfillCommand::Status { team, id, .. } => client.get(&backfill_path(team, id))?,
        BackfillCommand::List {
            team,
            plugin,
            installation,
        } => {
            let path = match plugin {
                Some(plugin) => backfills_path(team, plugin, installation.as_deref()),
                None => format!("/v1/teams/{team}/backfills"),
            };
            let value = client.get(&path)?;
            let table = backfill_rows(&value);
            return Ok((value, table));
        }
        BackfillCommand::Cancel { team, id } => client.delete(&backfill_path(team, id))?,
    };
    let table = backfill_rows(&json!([value.clone()]));
    Ok((value, table))
}

/// Asks for the backfill every [`POLL`] until it is neither pending nor running, showing its progress;
/// returns its last view, or fails when it ended `failed`.
fn watch(client: &Client, team: &str, id: &str, json: bool) -> Result<Value, Failure> {
    let path = backfill_path(team, id);
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = ProgressBar::new(1);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} offsets  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    loop {
        let view = client.get(&path)?;
        let state = text(&view, "state");
        match &bar {
            Some(bar) => {
                let (done, total) = history(&view).unwrap_or((0, 1));
                bar.set_length(total.max(1));
                bar.set_position(done);
                bar.set_message(summary(&view));
            }
            None if json => eprintln!("{}", progress_line(&view)),
            None => println!("{}", progress_line(&view)),
        }
        if !matches!(state.as_str(), "pending" | "running") {
            if let Some(bar) = &bar {
                bar.finish_with_message(summary(&view));
            }
            if state == "failed" {
                let error = view.pointer("/progress/error").and_then(Value::as_str);
                return Err(Failure::Usage(format!(
                    "the backfill {id} failed: {}",
                    error.unwrap_or("(no reason given)")
                )));
            }
            return Ok(view);
        }
        std::thread::sleep(POLL);
    }
}

/// History read so far and in all, in offsets (`next - from` of `until - from`), once the router has
/// started.
fn history(view: &Value) -> Option<(u64, u64)> {
    let offset = |key: &str| view.get("progress")?.get(key)?.as_i64();
    let (from, until, next) = (offset("from")?, offset("until")?, offset("next")?);
    let total = (until - from).max(0) as u64;
    Some((((next - from).max(0) as u64).min(total), total))
}

/// The state, copies written and the ETA: the progress bar's message.
fn summary(view: &Value) -> String {
    let mut line = text(view, "state");
    if let Some(written) = view.pointer("/progress/written") {
        line.push_str(&format!("  written {written}"));
    }
    if let Some(eta) = view.get("eta_seconds").and_then(Value::as_u64) {
        line.push_str(&format!(
            "  ETA {}",
            humantime::format_duration(Duration::from_secs(eta))
        ));
    }
    line
}

/// One line per poll when stdout is not a terminal: the id, the summary and the history read.
fn progress_line(view: &Value) -> String {
    let position = match history(view) {
        Some((done, total)) => format!("history {done}/{total}"),
        None => "history -".to_owned(),
    };
    format!("{}  {}  {position}", text(view, "id"), summary(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> Value {
        json!({"id": "b-1", "state": "running", "eta_seconds": 90,
               "progress": {"from": 100, "until": 1100, "next": 350, "written": 40}})
    }

    #[test]
    fn paths_and_the_start_body() {
        assert_eq!(
            backfills_path("acme", "sheets-export", None),
            "/v1/teams/acme/plugins/sheets-export/backfills"
        );
        assert_eq!(
            backfills_path("acme", "sheets-export", Some("forms-bc")),
            "/v1/teams/acme/plugins/sheets-export/installations/forms-bc/backfills"
        );
        let args = Start {
            team: "acme".into(),
            plugin: "sheets-export".into(),
            installation: None,
            since: parse_time("2026-11-01T00:00:00Z").unwrap(),
            until: Some(parse_time("2026-11-15T12:00:00Z").unwrap()),
            types: Some(vec!["response.submitted".into()]),
            rate: Some(200),
            on_retention: "earliest".into(),
            watch: false,
        };
        assert_eq!(
            start_body(&args),
            json!({"since": "2026-11-01T00:00:00.000Z", "until": "2026-11-15T12:00:00.000Z",
                   "event_types": ["response.submitted"], "rate": 200, "on_retention": "earliest"})
        );
    }

    #[test]
    fn progress_as_a_line_and_a_bar() {
        assert_eq!(history(&running()), Some((250, 1000)));
        assert_eq!(
            progress_line(&running()),
            "b-1  running  written 40  ETA 1m 30s  history 250/1000"
        );
        assert_eq!(
            progress_line(&json!({"id": "b-2", "state": "pending"})),
            "b-2  pending  history -"
        );
    }
}
