//! A plugin's dead letters through the API: a team lists, reads and replays its own
//! (`/v1/teams/{team}/plugins/{id}/dead-letters[/{letter}|/replay]`), the plugin itself or an admin reads
//! every team's (`/v1/plugins/{id}/dead-letters[/{letter}]`). The API is where who may see which letter is
//! decided: a team's routes keep only the records keyed by that team, and another team's letter is a 404,
//! as if it did not exist.
//!
//! ```text
//!   GET list    query (422) · role (403) · team id (404) · plugin (404)
//!                 ── list(plugin.<id>.dlq, filter) ── newest first ── page
//!   GET letter  role (403) · team id (404) · plugin (404) · letter id (404)
//!                 ── records_at(letter) ── the team's? (404 if not)
//!   POST replay role (403) · team id (404) · plugin (404) · body (422)
//!                 ── records_at(letters) | records(filter) ── each named letter the team's? (422 if not)
//!                 ── unless dry_run: replay ─► plugin.<id>.events, each recorded (by the caller's role) in
//!                    switchyard.dead-letter-replays, in one transaction
//!   each Kafka read, and read + replay together: PluginQueues::run (a blocking thread, a few at once,
//!   within store.write_timeout_ms)
//! ```
//!
//! Reading a list reads the whole dead-letter topic each time (see `docs/registry.md`, Known limits); a
//! letter, or the letters a replay names, are read where they are.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use switchyard_schemas::ids::check_installation_id;
use switchyard_schemas::times::epoch_ms;
use switchyard_service::kafka::Clients;
use url::form_urlencoded;

use crate::api::paging::{MAX_LIMIT, Page, Paging};
use crate::api::teams::{authorize, plugin, unreadable};
use crate::api::{AppState, RawBody};
use crate::auth::Principal;
use crate::dead_letters::{
    self, DeadLetter, DeadLetterError, Detail, Filter, LetterId, ReplayTarget, RunError, StoredLetter,
};
use crate::problem::{FieldError, Problem};

/// The name of the registry's dead-letter consumers and producer (`client.id`, metrics label).
const CLIENT: &str = "dead-letters";

/// The filters of a list: `?since=` (RFC 3339) and `?installation=`. Other parameters are left to
/// [`Paging`] or ignored, as on the other lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    since: Option<String>,
    since_ms: Option<i64>,
    installation: Option<String>,
}

fn invalid_query(detail: String) -> Problem {
    Problem::invalid(
        "the query is invalid",
        vec![FieldError {
            pointer: String::new(),
            detail,
        }],
    )
}

impl ListQuery {
    fn parse(query: Option<&str>) -> Result<Self, Problem> {
        let mut parsed = Self::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "since" => {
                    let ms = epoch_ms(&value).ok_or_else(|| {
                        invalid_query(format!("since must be an RFC 3339 time; got {value:?}"))
                    })?;
                    parsed.since_ms = Some(ms);
                    parsed.since = Some(value.into_owned());
                }
                "installation" => {
                    check_installation_id(&value).map_err(|e| {
                        invalid_query(format!("installation {value:?} is not an installation id: {e}"))
                    })?;
                    parsed.installation = Some(value.into_owned());
                }
                _ => {}
            }
        }
        Ok(parsed)
    }

    fn filter(&self, team: Option<&str>) -> Filter {
        Filter {
            team: team.map(str::to_owned),
            event_id: None,
            since_ms: self.since_ms,
            installation: self.installation.clone(),
        }
    }

    /// The next page's link keeps the filters: `Paging` writes only `limit` and `cursor` into it.
    fn carry_into(&self, page: &mut Page<DeadLetter>) {
        let Some(next) = page.next.as_mut() else {
            return;
        };
        let mut extra = form_urlencoded::Serializer::new(String::new());
        if let Some(since) = &self.since {
            extra.append_pair("since", since);
        }
        if let Some(installation) = &self.installation {
            extra.append_pair("installation", installation);
        }
        let extra = extra.finish();
        if !extra.is_empty() {
            *next = next.replacen(">; rel=", &format!("&{extra}>; rel="), 1);
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        Self::parse(parts.uri.query())
    }
}

/// What a failed read or replay answers: 503, the cause logged.
fn unavailable(error: &dyn std::fmt::Display, plugin: &str, what: &str) -> Problem {
    tracing::warn!(%error, plugin, what, "a dead-letter read or replay failed");
    Problem::unavailable(format!("{what} of {plugin} did not finish; retry"))
}

fn ran<T>(
    outcome: Result<Result<T, DeadLetterError>, RunError>,
    plugin: &str,
    what: &str,
) -> Result<T, Problem> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(unavailable(&error, plugin, what)),
        Err(error) => Err(unavailable(&error, plugin, what)),
    }
}

/// The dead letters `filter` keeps, newest first; none when the topic does not exist yet.
async fn newest_first(state: &AppState, id: &str, filter: Filter) -> Result<Vec<DeadLetter>, Problem> {
    let topic = state.plugin_queues.dead_letter_topic(id);
    let read = state
        .plugin_queues
        .run(
            move |clients, timeout| match dead_letters::list(clients, CLIENT, &topic, &filter, timeout) {
                Err(error) if error.is_missing_topic() => Ok(Vec::new()),
                read => read,
            },
        )
        .await;
    let mut letters = ran(read, id, "reading the dead letters")?;
    letters.sort_by_key(newest_first_key);
    Ok(letters)
}

/// Newest first: by the record's time, then by partition and offset (a letter without a time last).
fn newest_first_key(letter: &DeadLetter) -> Reverse<(i64, i32, i64)> {
    Reverse((letter.timestamp_ms.unwrap_or(-1), letter.partition, letter.offset))
}

async fn page(
    state: &AppState,
    id: &str,
    team: Option<&str>,
    query: &ListQuery,
    paging: &Paging,
) -> Result<Page<DeadLetter>, Problem> {
    let letters = newest_first(state, id, query.filter(team)).await?;
    let mut page = paging.page(letters, newest_first_key)?;
    query.carry_into(&mut page);
    Ok(page)
}

/// The letters `ids` names that the topic holds, with their records; none when the topic does not exist.
async fn stored_at(
    state: &AppState,
    id: &str,
    ids: BTreeSet<LetterId>,
) -> Result<BTreeMap<LetterId, StoredLetter>, Problem> {
    let topic = state.plugin_queues.dead_letter_topic(id);
    let read = state
        .plugin_queues
        .run(move |clients, timeout| dead_letters::records_at(clients, CLIENT, &topic, &ids, timeout))
        .await;
    let letters = ran(read, id, "reading the dead letters")?;
    Ok(letters.into_iter().map(|l| (l.letter.id, l)).collect())
}

/// One letter whole, if it is there and `team` (when given) is its team.
async fn detail(
    state: &AppState,
    id: &str,
    team: Option<&str>,
    letter: &str,
) -> Result<Json<Detail>, Problem> {
    let missing = || match team {
        Some(_) => Problem::not_found(format!("this team has no dead letter {letter} of {id}")),
        None => Problem::not_found(format!("{id} has no dead letter {letter}")),
    };
    let letter_id = LetterId::parse(letter).ok_or_else(missing)?;
    let stored = stored_at(state, id, BTreeSet::from([letter_id])).await?;
    stored
        .get(&letter_id)
        .filter(|s| team.is_none_or(|team| s.letter.team.as_deref() == Some(team)))
        .map(|s| Json(s.detail()))
        .ok_or_else(missing)
}

/// The team's dead letters of a plugin, newest first.
pub async fn list_team(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id)): Path<(String, String)>,
    query: ListQuery,
    paging: Paging,
) -> Result<Page<DeadLetter>, Problem> {
    authorize(&principal, &team)?;
    plugin(&state, &id)?;
    page(&state, &id, Some(&team), &query, &paging).await
}

/// One of the team's dead letters of a plugin, whole.
pub async fn show_team(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id, letter)): Path<(String, String, String)>,
) -> Result<Json<Detail>, Problem> {
    authorize(&principal, &team)?;
    plugin(&state, &id)?;
    detail(&state, &id, Some(&team), &letter).await
}

/// 403 unless the caller is an admin or the plugin `id` itself: the plugin routes' role check (also the
/// lag's, [`crate::api::lag`]).
pub(crate) fn authorize_plugin(principal: &Principal, id: &str) -> Result<(), Problem> {
    if principal.may_act_as_plugin(id) {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "only an admin or the plugin itself may read the plugin's dead letters and lag",
        ))
    }
}

/// Every team's dead letters of a plugin, newest first (the plugin itself or an admin).
pub async fn list_plugin(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: ListQuery,
    paging: Paging,
) -> Result<Page<DeadLetter>, Problem> {
    authorize_plugin(&principal, &id)?;
    plugin(&state, &id)?;
    page(&state, &id, None, &query, &paging).await
}

/// One dead letter of a plugin, whole, whatever its team (the plugin itself or an admin).
pub async fn show_plugin(
    principal: Principal,
    State(state): State<AppState>,
    Path((id, letter)): Path<(String, String)>,
) -> Result<Json<Detail>, Problem> {
    authorize_plugin(&principal, &id)?;
    plugin(&state, &id)?;
    detail(&state, &id, None, &letter).await
}

/// A replay request: the letters it names, or all of them (since a time, of an installation).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// Letter ids, `<partition>-<offset>`.
    #[serde(default)]
    pub letters: Option<Vec<String>>,
    /// Every letter of the team (with `since` and `installation`).
    #[serde(default)]
    pub all: Option<bool>,
    /// With `all`: only those dead-lettered at or after it, RFC 3339.
    #[serde(default)]
    pub since: Option<String>,
    /// With `all`: only those of this installation (`default`: without the header).
    #[serde(default)]
    pub installation: Option<String>,
    /// Only say what would be replayed.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a replay request asks for, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These letters, each once, with the body's index of its first mention (for the pointers).
    Letters(Vec<(usize, LetterId)>),
    /// Every letter the filter keeps.
    All(Filter),
}

fn field(pointer: &str, detail: impl Into<String>) -> FieldError {
    FieldError {
        pointer: pointer.to_owned(),
        detail: detail.into(),
    }
}

impl ReplayBody {
    /// The selection it makes for `team`, or every error in it, each at its pointer.
    pub fn check(self, team: &str) -> Result<Selection, Vec<FieldError>> {
        let mut errors = Vec::new();
        let all = self.all.unwrap_or(false);
        let selection = match (self.letters, all) {
            (Some(_), true) => {
                errors.push(field("", "name letters, or all: true, not both"));
                None
            }
            (Some(letters), false) => {
                if letters.is_empty() {
                    errors.push(field("/letters", "name at least one letter"));
                } else if letters.len() > MAX_LIMIT {
                    errors.push(field(
                        "/letters",
                        format!("at most {MAX_LIMIT} letters a request; got {}", letters.len()),
                    ));
                }
                let mut seen = BTreeSet::new();
                let mut named = Vec::new();
                for (index, letter) in letters.iter().enumerate() {
                    match LetterId::parse(letter) {
                        Some(id) if seen.insert(id) => named.push((index, id)),
                        Some(_) => {}
                        None => errors.push(field(
                            &format!("/letters/{index}"),
                            format!("{letter:?} is not a dead-letter id (<partition>-<offset>)"),
                        )),
                    }
                }
                Some(Selection::Letters(named))
            }
            (None, true) => {
                let since_ms = self.since.as_deref().map(epoch_ms);
                if since_ms == Some(None) {
                    errors.push(field("/since", "must be an RFC 3339 time"));
                }
                if let Some(installation) = &self.installation
                    && let Err(e) = check_installation_id(installation)
                {
                    errors.push(field(
                        "/installation",
                        format!("{installation:?} is not an installation id: {e}"),
                    ));
                }
                Some(Selection::All(Filter {
                    team: Some(team.to_owned()),
                    event_id: None,
                    since_ms: since_ms.flatten(),
                    installation: self.installation.clone(),
                }))
            }
            (None, false) => {
                errors.push(field("", "name letters, or ask for all: true"));
                None
            }
        };
        if !all {
            for (name, given) in [
                ("since", self.since.is_some()),
                ("installation", self.installation.is_some()),
            ] {
                if given {
                    errors.push(field(
                        &format!("/{name}"),
                        format!("{name} goes only with all: true"),
                    ));
                }
            }
        }
        match selection {
            Some(selection) if errors.is_empty() => Ok(selection),
            _ => Err(errors),
        }
    }
}

/// The answer to a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    /// Nothing was written: this is what would be replayed.
    pub dry_run: bool,
    /// How many letters were (or would be) replayed.
    pub count: usize,
    /// Their ids, in the order they were (or would be) written: partition and offset order.
    pub letters: Vec<LetterId>,
}

/// What a replay job ends with: the ids replayed (or that would be), or the named letters the team does
/// not have (nothing replayed).
type ReplayOutcome = Result<Result<Vec<LetterId>, Vec<FieldError>>, DeadLetterError>;

/// Reads what `selection` names and, unless `dry_run`, replays it to `target`, each replay added to its
/// letter's replay record as the replays topic holds it now (read to its end, as `switchyardctl` does:
/// this replica's store may not have applied a replay that just happened), within `timeout` in all.
/// Blocks.
fn replay_blocking(
    clients: &Clients,
    target: &ReplayTarget,
    team: &str,
    selection: Selection,
    dry_run: bool,
    timeout: Duration,
) -> ReplayOutcome {
    let dead_letter_topic = target.dead_letter_topic.as_str();
    let deadline = Instant::now() + timeout;
    let letters = match selection {
        Selection::Letters(named) => {
            let ids = named.iter().map(|(_, id)| *id).collect();
            let mut stored: BTreeMap<LetterId, StoredLetter> =
                dead_letters::records_at(clients, CLIENT, dead_letter_topic, &ids, timeout)?
                    .into_iter()
                    .filter(|l| l.letter.team.as_deref() == Some(team))
                    .map(|l| (l.letter.id, l))
                    .collect();
            let missing: Vec<FieldError> = named
                .iter()
                .filter(|(_, letter)| !stored.contains_key(letter))
                .map(|(index, letter)| {
                    field(
                        &format!("/letters/{index}"),
                        format!("this team has no dead letter {letter}"),
                    )
                })
                .collect();
            if !missing.is_empty() {
                return Ok(Err(missing));
            }
            let mut letters: Vec<StoredLetter> = named.iter().filter_map(|(_, l)| stored.remove(l)).collect();
            letters.sort_by_key(|l| l.letter.id);
            letters
        }
        Selection::All(filter) => {
            match dead_letters::records(clients, CLIENT, dead_letter_topic, &filter, timeout) {
                Err(error) if error.is_missing_topic() => Vec::new(),
                read => read?,
            }
        }
    };
    let ids = letters.iter().map(|l| l.letter.id).collect();
    if !dry_run && !letters.is_empty() {
        let left = || deadline.saturating_duration_since(Instant::now());
        let histories =
            dead_letters::histories(clients, CLIENT, &target.replays_topic, dead_letter_topic, left())?;
        dead_letters::replay(clients, CLIENT, target, &letters, &histories, left())?;
    }
    Ok(Ok(ids))
}

/// Who a replay record names for a replay through the API: the token's role (and team).
fn replayed_by(principal: &Principal) -> String {
    match principal {
        Principal::Admin => "an admin via the registry".to_owned(),
        Principal::Team(team) => format!("team {team} via the registry"),
        Principal::Plugin(plugin) => format!("plugin {plugin} via the registry"),
    }
}

/// Replays the team's dead letters of a plugin onto the plugin's topic (or, with `dry_run`, says which).
pub async fn replay_team(
    principal: Principal,
    State(state): State<AppState>,
    Path((team, id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Json<Replayed>, Problem> {
    authorize(&principal, &team)?;
    plugin(&state, &id)?;
    let body: ReplayBody = serde_json::from_slice(&body).map_err(|e| unreadable("replay request", &e))?;
    let dry_run = body.dry_run;
    let selection = body
        .check(&team)
        .map_err(|errors| Problem::invalid("the replay request is invalid", errors))?;
    let queues = &state.plugin_queues;
    let target = ReplayTarget {
        dead_letter_topic: queues.dead_letter_topic(&id),
        events_topic: queues.events_topic(&id),
        replays_topic: queues.replays_topic().to_owned(),
        by: Some(replayed_by(&principal)),
        // Under the prefix of the store's own transactional ids: one ACL covers the registry's.
        transactional_prefix: "switchyard-registry-dead-letters".to_owned(),
    };
    let job_team = team.clone();
    let outcome = queues
        .run(move |clients, timeout| {
            replay_blocking(clients, &target, &job_team, selection, dry_run, timeout)
        })
        .await;
    let what = if dry_run {
        "reading the dead letters"
    } else {
        "replaying the dead letters"
    };
    let letters = ran(outcome, &id, what)?.map_err(|missing| {
        Problem::invalid(
            format!(
                "the replay request names dead letters of {id} this team does not have; nothing was replayed"
            ),
            missing,
        )
    })?;
    if !dry_run && !letters.is_empty() {
        tracing::info!(%team, plugin = %id, count = letters.len(), "dead letters replayed");
    }
    Ok(Json(Replayed {
        dry_run,
        count: letters.len(),
        letters,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> ReplayBody {
        serde_json::from_value(json).unwrap()
    }

    fn pointers(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.pointer.as_str()).collect()
    }

    #[test]
    fn a_replay_names_letters_once_each_or_asks_for_all() {
        let named = body(serde_json::json!({"letters": ["0-12", "1-3", "0-12"]}))
            .check("acme")
            .unwrap();
        let id = |text| LetterId::parse(text).unwrap();
        assert_eq!(named, Selection::Letters(vec![(0, id("0-12")), (1, id("1-3"))]));
        let all = body(
            serde_json::json!({"all": true, "since": "2026-12-05T10:00:00Z", "installation": "default"}),
        )
        .check("acme")
        .unwrap();
        assert_eq!(
            all,
            Selection::All(Filter {
                team: Some("acme".to_owned()),
                event_id: None,
                since_ms: Some(1_796_464_800_000),
                installation: Some("default".to_owned()),
            })
        );
    }

    #[test]
    fn every_error_of_a_replay_request_has_its_pointer() {
        let errors =
            body(serde_json::json!({"letters": ["0-1", "x", "2-"], "since": "2026-12-05T10:00:00Z"}))
                .check("acme")
                .unwrap_err();
        assert_eq!(pointers(&errors), ["/letters/1", "/letters/2", "/since"]);
        let errors = body(serde_json::json!({"all": true, "since": "yesterday", "installation": "Bad"}))
            .check("acme")
            .unwrap_err();
        assert_eq!(pointers(&errors), ["/since", "/installation"]);
        for nothing in [
            serde_json::json!({}),
            serde_json::json!({"all": false}),
            serde_json::json!({"dry_run": true}),
        ] {
            assert_eq!(pointers(&body(nothing).check("acme").unwrap_err()), [""]);
        }
        let both = body(serde_json::json!({"letters": ["0-1"], "all": true}))
            .check("acme")
            .unwrap_err();
        assert_eq!(pointers(&both), [""]);
        let empty = body(serde_json::json!({"letters": []}))
            .check("acme")
            .unwrap_err();
        assert_eq!(pointers(&empty), ["/letters"]);
        let many: Vec<String> = (0..=MAX_LIMIT).map(|n| format!("0-{n}")).collect();
        let errors = body(serde_json::json!({"letters": many}))
            .check("acme")
            .unwrap_err();
        assert_eq!(pointers(&errors), ["/letters"]);
        assert!(
            serde_json::from_value::<ReplayBody>(serde_json::json!({"letter": ["0-1"]})).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn the_list_query_is_checked_and_carried_into_the_next_link() {
        let query = ListQuery::parse(Some(
            "since=2026-12-05T10%3A00%3A00%2B01%3A00&installation=forms-bc&limit=2",
        ))
        .unwrap();
        assert_eq!(query.since_ms, Some(1_796_464_800_000 - 3_600_000));
        let filter = query.filter(Some("acme"));
        assert_eq!(filter.installation.as_deref(), Some("forms-bc"));
        let mut page = Page {
            items: Vec::new(),
            next: Some("</v1/plugins/p/dead-letters?limit=2&cursor=abc>; rel=\"next\"".to_owned()),
        };
        query.carry_into(&mut page);
        assert_eq!(
            page.next.unwrap(),
            "</v1/plugins/p/dead-letters?limit=2&cursor=abc&since=2026-12-05T10%3A00%3A00%2B01%3A00&installation=forms-bc>; rel=\"next\""
        );
        for bad in ["since=yesterday", "since=", "installation=Forms", "installation="] {
            assert_eq!(ListQuery::parse(Some(bad)).unwrap_err().status, 422, "{bad}");
        }
        assert_eq!(ListQuery::parse(Some("other=1")).unwrap(), ListQuery::default());
    }

    #[test]
    fn lists_are_newest_first_and_timeless_letters_last() {
        let at = |partition, offset, ms| DeadLetter::of(partition, offset, None, &[], 0, ms);
        let mut letters = [
            at(0, 1, Some(10)),
            at(1, 0, Some(30)),
            at(0, 2, None),
            at(0, 3, Some(30)),
        ];
        letters.sort_by_key(newest_first_key);
        let ids: Vec<String> = letters.iter().map(|l| l.id.to_string()).collect();
        assert_eq!(ids, ["1-0", "0-3", "0-1", "0-2"]);
    }
}
