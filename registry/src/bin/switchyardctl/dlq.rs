//! `switchyardctl dlq`: a plugin's dead letters, read from and replayed to Kafka directly (no registry
//! call), with the Kafka settings of the services.
//!
//! ```text
//!   list    plugin.<id>.dlq (filtered) + switchyard.dead-letter-replays ─► a row each, REPLAYED | --json
//!   show    the letter <partition>-<offset> (read where it is), else every letter of event ID
//!           ─► each whole: fields, times, source, replays, headers, the CloudEvent decoded
//!   replay  the filtered letters; those replayed before are refused (unless --again), the others written
//!           back with their replay records in one transaction ─► what went where
//! ```
//!
//! The reading and the replay are the registry's own ([`dead_letters`]); what is printed, and the
//! refusal, are here.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use serde::Serialize;
use switchyard_registry::dead_letters::{
    self, DeadLetterError, Encoding, Entry, Filter, Histories, LetterId, ReplayTarget, ReplayView,
    StoredLetter, WholeEntry,
};
use switchyard_schemas::dead_letter::{Position, ReplayRecord};
use switchyard_schemas::topics::DEAD_LETTER_REPLAYS;
use switchyard_service::kafka::Clients;

use crate::kafka_flags::KafkaFlags;
use crate::tables::table;
use crate::{Failure, parse_time};

#[derive(Debug, clap::Args)]
pub(crate) struct DlqTarget {
    /// The plugin.
    #[arg(long)]
    plugin: String,
    #[command(flatten)]
    kafka: KafkaFlags,
    /// How long each read (the dead-letter topic to its end, the replays topic to its end) and the replay
    /// may take (`30s`, `2m`).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// The plugin's events topic; `{plugin}` becomes the id.
    #[arg(long, default_value = "plugin.{plugin}.events")]
    events_template: String,
    /// The plugin's dead-letter topic; `{plugin}` becomes the id.
    #[arg(long, default_value = "plugin.{plugin}.dlq")]
    dead_letter_template: String,
    /// Where replays are recorded: the registry's `topics.dead_letter_replays`.
    #[arg(long, default_value = DEAD_LETTER_REPLAYS)]
    replays_topic: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DlqFilter {
    /// Only this team's dead letters.
    #[arg(long)]
    team: Option<String>,
    /// Only those dead-lettered since: an RFC 3339 time or a duration ago (`2h`, `30m`).
    #[arg(long, value_parser = parse_time)]
    since: Option<SystemTime>,
    /// Only those of this installation (`default`: the default installation's).
    #[arg(long)]
    installation: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// List dead letters, each with whether it was replayed.
    List {
        #[command(flatten)]
        target: DlqTarget,
        #[command(flatten)]
        filter: DlqFilter,
    },
    /// Show one dead letter whole: every field and header, the event decoded, its replays.
    Show {
        #[command(flatten)]
        target: DlqTarget,
        /// A letter id, `<partition>-<offset>` (the list's ID), or an event's `ce_id`: then every dead
        /// letter of that event.
        id: String,
    },
    /// Put dead letters back on the plugin's topic, once the cause is fixed. Those replayed before are
    /// refused unless `--again`.
    Replay {
        #[command(flatten)]
        target: DlqTarget,
        #[command(flatten)]
        filter: DlqFilter,
        /// Only show what would be replayed.
        #[arg(long)]
        dry_run: bool,
        /// Replay letters replayed before too.
        #[arg(long)]
        again: bool,
        /// Who replays, for the replay record [default: `<user>@<host> via switchyardctl`].
        #[arg(long)]
        by: Option<String>,
    },
}

/// The name of `dlq`'s consumers and producer (`client.id`; the replay's transactional id starts with it).
const CLIENT: &str = "switchyardctl-dlq";

/// A time in milliseconds since the Unix epoch (before it: 0).
fn epoch_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The topics of one plugin and how to read them.
struct Queues {
    clients: Clients,
    bootstrap: String,
    dead_letter_topic: String,
    events_topic: String,
    replays_topic: String,
    timeout: Duration,
}

impl Queues {
    fn connect(target: &DlqTarget) -> Result<Self, Failure> {
        let (settings, clients) = target.kafka.connect(target.timeout)?;
        let topic = |template: &str| template.replace("{plugin}", &target.plugin);
        Ok(Self {
            clients,
            bootstrap: settings.bootstrap_servers,
            dead_letter_topic: topic(&target.dead_letter_template),
            events_topic: topic(&target.events_template),
            replays_topic: target.replays_topic.clone(),
            timeout: target.timeout,
        })
    }

    fn failed(&self, error: DeadLetterError) -> Failure {
        Failure::Usage(format!("Kafka at {}: {error}", self.bootstrap))
    }

    fn records(&self, filter: &Filter) -> Result<Vec<StoredLetter>, Failure> {
        dead_letters::records(
            &self.clients,
            CLIENT,
            &self.dead_letter_topic,
            filter,
            self.timeout,
        )
        .map_err(|e| self.failed(e))
    }

    /// The replay records of the plugin's letters. A missing replays topic is no replay known when only
    /// reading (said on stderr), and an error when a replay is to be recorded (`required`).
    fn histories(&self, required: bool) -> Result<Histories, Failure> {
        let read = dead_letters::histories(
            &self.clients,
            CLIENT,
            &self.replays_topic,
            &self.dead_letter_topic,
            self.timeout,
        );
        let histories = match read {
            Ok(histories) => histories,
            Err(error) if error.is_missing_topic() && !required => {
                eprintln!(
                    "switchyardctl: the topic {} does not exist, so no replay is known (the registry \
                     creates it when it starts; --replays-topic names another)",
                    self.replays_topic
                );
                Histories::default()
            }
            Err(error) if error.is_missing_topic() => {
                return Err(Failure::Usage(format!(
                    "cannot record the replay: the topic {} does not exist. The registry creates it when it \
                     starts (topics.dead_letter_replays); --replays-topic names the one it uses",
                    self.replays_topic
                )));
            }
            Err(error) => return Err(self.failed(error)),
        };
        for (letter, why) in histories.unreadable() {
            eprintln!(
                "switchyardctl: the replay record of {letter} in {} cannot be read ({why}); it counts as \
                 replayed",
                self.replays_topic
            );
        }
        Ok(histories)
    }
}

pub(crate) fn dlq(command: &DlqCommand, json_output: bool) -> Result<(), Failure> {
    let target = match command {
        DlqCommand::List { target, .. }
        | DlqCommand::Show { target, .. }
        | DlqCommand::Replay { target, .. } => target,
    };
    let queues = Queues::connect(target)?;
    let filter = |filter: &DlqFilter| Filter {
        team: filter.team.clone(),
        event_id: None,
        since_ms: filter.since.map(epoch_ms),
        installation: filter.installation.clone(),
    };
    match command {
        DlqCommand::List { filter: chosen, .. } => {
            let letters = dead_letters::list(
                &queues.clients,
                CLIENT,
                &queues.dead_letter_topic,
                &filter(chosen),
                queues.timeout,
            )
            .map_err(|e| queues.failed(e))?;
            let histories = queues.histories(false)?;
            let entries: Vec<Entry> = letters
                .iter()
                .map(|l| Entry::of(l, histories.get(l.id)))
                .collect();
            print_json_or(json_output, &entries, || list_table(&entries))
        }
        DlqCommand::Show { id, .. } => show(&queues, id, json_output),
        DlqCommand::Replay {
            filter: chosen,
            dry_run,
            again,
            by,
            ..
        } => {
            let by = by.clone().or_else(default_by);
            replay(&queues, &filter(chosen), *dry_run, *again, by, json_output)
        }
    }
}

/// Prints `value` as pretty JSON with `--json`, else `text()`.
fn print_json_or(
    json_output: bool,
    value: &impl Serialize,
    text: impl FnOnce() -> String,
) -> Result<(), Failure> {
    if json_output {
        let json = serde_json::to_string_pretty(value)
            .map_err(|e| Failure::Usage(format!("cannot write the JSON: {e}")))?;
        println!("{json}");
    } else {
        print!("{}", text());
    }
    Ok(())
}

fn show(queues: &Queues, id: &str, json_output: bool) -> Result<(), Failure> {
    // A letter id is read where it is; an event id (or a letter id that is not there) reads the topic.
    let mut stored = match LetterId::parse(id) {
        Some(letter) => dead_letters::records_at(
            &queues.clients,
            CLIENT,
            &queues.dead_letter_topic,
            &BTreeSet::from([letter]),
            queues.timeout,
        )
        .map_err(|e| queues.failed(e))?,
        None => Vec::new(),
    };
    if stored.is_empty() {
        stored = queues.records(&Filter {
            event_id: Some(id.to_owned()),
            ..Filter::default()
        })?;
    }
    if stored.is_empty() {
        return Err(Failure::Usage(format!(
            "{} has no dead letter {id} (neither a letter id there nor an event's ce_id)",
            queues.dead_letter_topic
        )));
    }
    let histories = queues.histories(false)?;
    let whole: Vec<WholeEntry> = stored
        .iter()
        .map(|s| WholeEntry::of(s, histories.get(s.letter.id)))
        .collect();
    print_json_or(json_output, &whole, || {
        whole
            .iter()
            .map(|w| show_text(w, &queues.dead_letter_topic))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// What `replay --json` prints.
#[derive(Debug, Serialize)]
struct ReplayOutcome<'a> {
    /// Nothing was written: `letters` would be.
    dry_run: bool,
    /// The events topic.
    to: &'a str,
    /// How many were (or would be) replayed.
    replayed: usize,
    /// Those, as `list` shows them now (a replayed one with this replay as its last).
    letters: Vec<Entry>,
    /// Those refused: replayed before, without `--again`.
    refused: Vec<Entry>,
}

fn replay(
    queues: &Queues,
    filter: &Filter,
    dry_run: bool,
    again: bool,
    by: Option<String>,
    json_output: bool,
) -> Result<(), Failure> {
    let letters = queues.records(filter)?;
    let histories = queues.histories(!dry_run && !letters.is_empty())?;
    let (refused, chosen): (Vec<StoredLetter>, Vec<StoredLetter>) = letters
        .into_iter()
        .partition(|l| !again && histories.get(l.letter.id).is_some());
    let refused: Vec<Entry> = refused
        .iter()
        .map(|l| Entry::of(&l.letter, histories.get(l.letter.id)))
        .collect();
    if !refused.is_empty() {
        eprint!("{}", refusal(&refused, dry_run));
    }
    if dry_run {
        let entries: Vec<Entry> = chosen
            .iter()
            .map(|l| Entry::of(&l.letter, histories.get(l.letter.id)))
            .collect();
        let outcome = ReplayOutcome {
            dry_run,
            to: &queues.events_topic,
            replayed: entries.len(),
            letters: entries,
            refused,
        };
        return print_json_or(json_output, &outcome, || {
            format!(
                "{}(dry run: {} would be replayed to {})\n",
                list_table(&outcome.letters),
                outcome.replayed,
                outcome.to
            )
        });
    }
    if chosen.is_empty() && !refused.is_empty() {
        return Err(Failure::Usage(format!(
            "nothing replayed: the {} chosen {} replayed before; --again replays them again",
            dead_letters_count(refused.len()),
            if refused.len() == 1 { "was" } else { "were" }
        )));
    }
    let target = ReplayTarget {
        dead_letter_topic: queues.dead_letter_topic.clone(),
        events_topic: queues.events_topic.clone(),
        replays_topic: queues.replays_topic.clone(),
        by,
        transactional_prefix: CLIENT.to_owned(),
    };
    let done = dead_letters::replay(
        &queues.clients,
        CLIENT,
        &target,
        &chosen,
        &histories,
        queues.timeout,
    )
    .map_err(|e| queues.failed(e))?;
    let entries: Vec<Entry> = chosen
        .iter()
        .zip(&done)
        .map(|(letter, replayed)| {
            let position = Position::new(
                &queues.dead_letter_topic,
                letter.letter.partition,
                letter.letter.offset,
            );
            let record =
                ReplayRecord::appended(position, histories.get(letter.letter.id), replayed.replay.clone());
            Entry::of(&letter.letter, Some(&record))
        })
        .collect();
    let outcome = ReplayOutcome {
        dry_run,
        to: &queues.events_topic,
        replayed: entries.len(),
        letters: entries,
        refused,
    };
    print_json_or(json_output, &outcome, || replayed_text(&outcome))
}

/// Who replays, when `--by` does not say: `<user>@<host> via switchyardctl`, from `USER` (or `LOGNAME`)
/// and the host name, as far as they are known.
fn default_by() -> Option<String> {
    let user = ["USER", "LOGNAME"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .into_iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty());
    Some(match (user, host) {
        (Some(user), Some(host)) => format!("{user}@{host} via switchyardctl"),
        (Some(user), None) => format!("{user} via switchyardctl"),
        (None, _) => "switchyardctl".to_owned(),
    })
}

/// A value for a table cell or a field: the text, or `-` when there is none.
fn or_dash(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_owned(), str::to_owned)
}

/// The REPLAYED cell: `-`, or when the last replay was, with how many there were when more than one.
fn replayed_cell(entry: &Entry) -> String {
    match (&entry.last_replay, entry.replay_count) {
        (_, _) if !entry.replayed => "-".to_owned(),
        (Some(last), 1) => last.at.clone(),
        (Some(last), count) => format!("{} ({count}x)", last.at),
        // A record this version cannot read.
        (None, _) => "yes".to_owned(),
    }
}

/// The list's table: one row per letter.
fn list_table(entries: &[Entry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let l = &e.letter;
            vec![
                l.id.to_string(),
                or_dash(l.team.as_deref()),
                l.installation().to_owned(),
                or_dash(l.event_id.as_deref()),
                or_dash(l.reason.as_deref()),
                l.attempts.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                or_dash(l.dead_lettered_at.as_deref()),
                replayed_cell(e),
                l.detail.as_deref().unwrap_or("-").chars().take(60).collect(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "TEAM",
            "INSTALLATION",
            "EVENT",
            "REASON",
            "ATTEMPTS",
            "DEAD-LETTERED",
            "REPLAYED",
            "DETAIL",
        ],
        &rows,
    )
}

/// One replay on a line: when, by whom, where its copy is.
fn replay_line(replay: &ReplayView) -> String {
    format!(
        "{}  by {}  to {}",
        replay.at,
        or_dash(replay.by.as_deref()),
        position_text(&replay.to)
    )
}

fn position_text(position: &Position) -> String {
    format!(
        "{} partition {} offset {}",
        position.topic, position.partition, position.offset
    )
}

/// Aligned `name  value` lines.
fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(name, value)| format!("{name:<width$}  {value}\n"))
        .collect()
}

/// `dlq show` for people: the fields, the replays, the headers, the event.
fn show_text(whole: &WholeEntry, dead_letter_topic: &str) -> String {
    let entry = &whole.entry;
    let l = &entry.letter;
    let mut out = format!("dead letter {} of {dead_letter_topic}\n", l.id);
    let source = match (&entry.source_position, &l.source) {
        (Some(position), _) => position_text(position),
        (None, source) => or_dash(source.as_deref()),
    };
    let mut rows = vec![
        ("team", or_dash(l.team.as_deref())),
        ("installation", l.installation().to_owned()),
        ("event id", or_dash(l.event_id.as_deref())),
        ("event type", or_dash(l.event_type.as_deref())),
        ("reason", or_dash(l.reason.as_deref())),
        ("detail", or_dash(l.detail.as_deref())),
        (
            "attempts",
            l.attempts.map_or_else(|| "-".to_owned(), |a| a.to_string()),
        ),
        ("first failure", or_dash(l.first_failure.as_deref())),
        ("last failure", or_dash(l.last_failure.as_deref())),
        ("dead-lettered", or_dash(l.dead_lettered_at.as_deref())),
        ("source", source),
    ];
    if let Some(from) = &l.replayed_from {
        rows.push(("replayed from", from.clone()));
    }
    rows.push(("bytes", l.bytes.to_string()));
    rows.push((
        "replays",
        match (entry.replayed, whole.replays.len()) {
            (false, _) => "none".to_owned(),
            (true, 0) => "yes (its record cannot be read)".to_owned(),
            (true, count) => count.to_string(),
        },
    ));
    out.push_str(&fields(&rows));
    for replay in &whole.replays {
        let _ = writeln!(out, "  {}", replay_line(replay));
    }
    let _ = writeln!(out, "\nheaders ({})", whole.headers.len());
    let headers: Vec<(&str, String)> = whole
        .headers
        .iter()
        .map(|h| {
            let value = match (&h.value, h.encoding) {
                (None, _) => "(null)".to_owned(),
                (Some(value), Encoding::Text) => value.clone(),
                (Some(value), Encoding::Base64) => format!("{value} (base64)"),
            };
            (h.name.as_str(), value)
        })
        .collect();
    for line in fields(&headers).lines() {
        let _ = writeln!(out, "  {line}");
    }
    let content_type = whole.content_type.as_deref().unwrap_or("no content type");
    let _ = writeln!(out, "\nevent (CloudEvents JSON; the value was {content_type})");
    if let Some(error) = &whole.event_error {
        let _ = writeln!(out, "  note: {error}");
    }
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&whole.event).unwrap_or_default()
    );
    out
}

/// What a replay did, for people.
fn replayed_text(outcome: &ReplayOutcome<'_>) -> String {
    let mut out = format!(
        "replayed {} to {}\n",
        dead_letters_count(outcome.replayed),
        outcome.to
    );
    if outcome.letters.is_empty() {
        return out;
    }
    let rows: Vec<Vec<String>> = outcome
        .letters
        .iter()
        .map(|e| {
            vec![
                e.letter.id.to_string(),
                or_dash(e.letter.team.as_deref()),
                or_dash(e.letter.event_id.as_deref()),
                e.last_replay
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |r| r.to.to_string()),
            ]
        })
        .collect();
    out.push_str(&table(&["ID", "TEAM", "EVENT", "REPLAYED TO"], &rows));
    out
}

/// `1 dead letter`, `2 dead letters`.
fn dead_letters_count(count: usize) -> String {
    match count {
        1 => "1 dead letter".to_owned(),
        count => format!("{count} dead letters"),
    }
}

/// `once`, `twice`, `3 times`.
fn times(count: usize) -> String {
    match count {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        count => format!("{count} times"),
    }
}

/// Why letters were refused, for stderr.
fn refusal(refused: &[Entry], dry_run: bool) -> String {
    let verb = if dry_run { "would refuse" } else { "refused" };
    let mut out = format!(
        "switchyardctl: {verb} {} replayed before (--again replays them again):\n",
        dead_letters_count(refused.len())
    );
    for entry in refused {
        let l = &entry.letter;
        let last = entry.last_replay.as_ref().map_or_else(
            || "its replay record cannot be read".to_owned(),
            |r| format!("last {}", replay_line(r)),
        );
        let _ = writeln!(
            out,
            "  {} (event {}, team {}): replayed {}, {last}",
            l.id,
            or_dash(l.event_id.as_deref()),
            or_dash(l.team.as_deref()),
            times(entry.replay_count)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use switchyard_registry::dead_letters::{DeadLetter, HeaderRef};
    use switchyard_schemas::dead_letter::Replay;

    use super::*;

    fn headers() -> Vec<(String, Option<Vec<u8>>)> {
        [
            ("ce_specversion", "1.0"),
            ("ce_id", "e-1"),
            ("ce_source", "/forms"),
            ("ce_type", "survey.archived"),
            ("content-type", "application/json"),
            ("switchyard_error", "retries_exhausted"),
            ("switchyard_error_detail", "the sheet answered 503 eight times"),
            ("switchyard_source", "plugin.p.events/2/41"),
            ("switchyard_attempts", "8"),
            ("switchyard_first_failure", "2026-12-05T10:00:00Z"),
            ("switchyard_last_failure", "2026-12-05T10:09:00Z"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), Some(v.as_bytes().to_vec())))
        .collect()
    }

    fn stored() -> StoredLetter {
        let headers = headers();
        let refs: Vec<HeaderRef<'_>> = headers.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
        let value = br#"{"archived": true}"#.to_vec();
        StoredLetter {
            letter: DeadLetter::of(2, 7, Some(b"acme"), &refs, value.len(), Some(1_796_465_340_250)),
            key: Some(b"acme".to_vec()),
            value: Some(value),
            headers,
        }
    }

    fn history(count: i64) -> ReplayRecord {
        ReplayRecord {
            dead_letter: Position::new("plugin.p.dlq", 2, 7),
            replays: (0..count)
                .map(|n| Replay {
                    at: format!("2026-12-05T11:0{n}:00Z"),
                    by: Some("ops@host via switchyardctl".to_owned()),
                    to: Position::new("plugin.p.events", 2, 100 + n),
                })
                .collect(),
        }
    }

    #[test]
    fn the_list_marks_replayed_letters() {
        let letter = stored().letter;
        let table = list_table(&[
            Entry::of(&letter, None),
            Entry::of(&letter, Some(&history(1))),
            Entry::of(&letter, Some(&history(3))),
            Entry::of(&letter, Some(&history(0))),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "ID",
                "TEAM",
                "INSTALLATION",
                "EVENT",
                "REASON",
                "ATTEMPTS",
                "DEAD-LETTERED",
                "REPLAYED",
                "DETAIL"
            ]
        );
        let replayed = |line: &str| line.split_whitespace().nth(7).unwrap().to_owned();
        assert_eq!(replayed(lines[1]), "-");
        assert_eq!(replayed(lines[2]), "2026-12-05T11:00:00Z");
        assert!(lines[3].contains("2026-12-05T11:02:00Z (3x)"), "{table}");
        assert_eq!(replayed(lines[4]), "yes", "a record that cannot be read");
        assert_eq!(
            lines[1].split_whitespace().take(7).collect::<Vec<_>>(),
            [
                "2-7",
                "acme",
                "default",
                "e-1",
                "retries_exhausted",
                "8",
                "2026-12-05T10:09:00.25Z"
            ]
        );
    }

    #[test]
    fn show_prints_the_entry_whole() {
        let whole = WholeEntry::of(&stored(), Some(&history(2)));
        let text = show_text(&whole, "plugin.p.dlq");
        for line in [
            "dead letter 2-7 of plugin.p.dlq",
            "event id       e-1",
            "attempts       8",
            "first failure  2026-12-05T10:00:00Z",
            "last failure   2026-12-05T10:09:00Z",
            "dead-lettered  2026-12-05T10:09:00.25Z",
            "source         plugin.p.events partition 2 offset 41",
            "replays        2",
            "  2026-12-05T11:01:00Z  by ops@host via switchyardctl  to plugin.p.events partition 2 offset 101",
            "headers (11)",
            "  switchyard_attempts       8",
            "event (CloudEvents JSON; the value was application/json)",
            "  \"data\": {",
            "    \"archived\": true",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        let never = show_text(&WholeEntry::of(&stored(), None), "plugin.p.dlq");
        assert!(never.contains("replays        none"), "{never}");
    }

    #[test]
    fn json_numbers_are_numbers_in_list_show_and_replay() {
        let entry = Entry::of(&stored().letter, Some(&history(1)));
        let outcome = ReplayOutcome {
            dry_run: false,
            to: "plugin.p.events",
            replayed: 1,
            letters: vec![entry.clone()],
            refused: vec![],
        };
        let replayed = serde_json::to_value(&outcome).unwrap();
        let shown = serde_json::to_value(WholeEntry::of(&stored(), Some(&history(1)))).unwrap();
        let listed = serde_json::to_value(&entry).unwrap();
        assert_eq!(replayed["replayed"], 1);
        for json in [&replayed["letters"][0], &shown, &listed] {
            for number in [
                "partition",
                "offset",
                "attempts",
                "bytes",
                "dead_lettered_at_ms",
                "first_failure_ms",
                "last_failure_ms",
                "replay_count",
            ] {
                assert!(json[number].is_number(), "{number} in {json}");
            }
            assert!(json["last_replay"]["at_ms"].is_number(), "{json}");
            assert!(json["last_replay"]["to"]["offset"].is_number(), "{json}");
            assert!(json["source_position"]["partition"].is_number(), "{json}");
            assert_eq!(json["replayed"], true);
        }
    }

    #[test]
    fn a_refusal_names_each_letter_and_its_last_replay() {
        let refused = [Entry::of(&stored().letter, Some(&history(2)))];
        let text = refusal(&refused, false);
        assert!(
            text.starts_with(
                "switchyardctl: refused 1 dead letter replayed before (--again replays them again):\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "2-7 (event e-1, team acme): replayed twice, last 2026-12-05T11:01:00Z  by ops@host via \
                 switchyardctl  to plugin.p.events partition 2 offset 101"
            ),
            "{text}"
        );
        assert!(refusal(&refused, true).starts_with("switchyardctl: would refuse"));
    }

    #[test]
    fn replay_flags() {
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            dlq: DlqCommand,
        }
        let parse = |line: &str| <Cli as clap::Parser>::try_parse_from(line.split_whitespace());
        let Cli {
            dlq: DlqCommand::Replay {
                again, by, target, ..
            },
        } = parse("x replay --plugin p --team acme --again --by ci-job-7").unwrap()
        else {
            panic!("a replay")
        };
        assert!(again);
        assert_eq!(by.as_deref(), Some("ci-job-7"));
        assert_eq!(target.replays_topic, DEAD_LETTER_REPLAYS);
        assert!(matches!(
            parse("x show --plugin p 2-7").unwrap().dlq,
            DlqCommand::Show { ref id, .. } if id == "2-7"
        ));
        assert!(parse("x show --plugin p").is_err(), "show needs an id");
    }
}
