//! The control plane of the simulated platform: the four sample plugins and which team enabled which.
//!
//! The enablement mix tells a story the summary can show: the first team uses every plugin, one team
//! filters plugins to some event types, one has a plugin switched off, and one has no enablement at all,
//! so all of its events are `unrouted`. Further teams get a seeded mix.
//!
//! Every (team, sample plugin) pair gets a record: an enablement, or a tombstone where the team has none.
//! So whatever earlier runs left in the compacted topic, the routing table holds exactly this mix for the
//! run's teams and plugins afterwards.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use switchyard_schemas::EventType;
use switchyard_schemas::control::{Enablement, PluginManifest};

use super::teams::Team;
use crate::kafka::Record;

/// `sheets-export`: every response and form change, to a spreadsheet.
pub const SHEETS_EXPORT: &str = "sheets-export";
/// `sms-notify`: a text message per submitted response.
pub const SMS_NOTIFY: &str = "sms-notify";
/// `rules-validate`: checks responses against a team's rules.
pub const RULES_VALIDATE: &str = "rules-validate";
/// `slang-search`: indexes free-text answers, slang included.
pub const SLANG_SEARCH: &str = "slang-search";

/// The sample plugin ids, in display order.
pub const SAMPLE_PLUGINS: [&str; 4] = [SHEETS_EXPORT, SMS_NOTIFY, RULES_VALIDATE, SLANG_SEARCH];

/// One control record, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// A manifest for `switchyard.plugins`.
    Plugin(PluginManifest),
    /// An enablement for `switchyard.enablements`, or its removal (a tombstone).
    Enablement {
        /// The team.
        team: String,
        /// The plugin.
        plugin: String,
        /// `None` removes the pair.
        enablement: Option<Enablement>,
    },
}

impl Control {
    /// The record key.
    pub fn key(&self) -> String {
        match self {
            Control::Plugin(manifest) => manifest.id.clone(),
            Control::Enablement { team, plugin, .. } => format!("{team}/{plugin}"),
        }
    }

    /// The record: key, JSON value (or none for a tombstone), no headers.
    pub fn to_record(&self) -> Record {
        // Serializing these plain structs (string keys, no maps with other keys) cannot fail.
        let value = match self {
            Control::Plugin(manifest) => {
                Some(serde_json::to_vec(manifest).expect("a manifest serializes to JSON"))
            }
            Control::Enablement { enablement, .. } => enablement
                .as_ref()
                .map(|e| serde_json::to_vec(e).expect("an enablement serializes to JSON")),
        };
        Record {
            key: Some(self.key().into_bytes()),
            value,
            headers: Vec::new(),
        }
    }
}

fn types(types: &[EventType]) -> Vec<String> {
    types.iter().map(|t| t.as_str().to_owned()).collect()
}

/// The four sample plugins' manifests: the seed plugins' own, as their workers register them (so that the
/// demo's registration through the registry and the workers' agree). `rules-validate` is served at
/// `127.0.0.1:8093`, where the demo runs its service.
pub fn sample_plugins() -> Vec<PluginManifest> {
    use switchyard_plugins::{in_process, rules_service};
    vec![
        in_process::sheets_export_manifest(None),
        in_process::sms_notify_manifest(None),
        rules_service::manifest("http://127.0.0.1:8093"),
        in_process::slang_search_manifest(),
    ]
}

/// How one team uses one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// No enablement (a tombstone is written).
    None,
    /// Enabled for every type the plugin lists.
    All,
    /// Enabled for these types only.
    Only(&'static [EventType]),
    /// An enablement with `enabled: false`.
    Disabled,
}

const RESPONSES: &[EventType] = &[EventType::ResponseSubmitted, EventType::ResponseUpdated];
const SUBMITTED: &[EventType] = &[EventType::ResponseSubmitted];

/// The demo story for the first five teams, by team index: uses of sheets-export, sms-notify,
/// rules-validate, slang-search.
const STORY: [[Use; 4]; 5] = [
    // Uses everything.
    [Use::All, Use::All, Use::All, Use::All],
    // Exports responses only (no form changes) and validates submissions only.
    [Use::Only(RESPONSES), Use::None, Use::Only(SUBMITTED), Use::None],
    // Exports everything, texts on submissions, searches free text.
    [Use::All, Use::Only(SUBMITTED), Use::None, Use::All],
    // Switched its export off for now; validates everything.
    [Use::Disabled, Use::None, Use::All, Use::None],
    // No plugins at all: every event of this team is unrouted.
    [Use::None, Use::None, Use::None, Use::None],
];

/// The control records of a run: the sample manifests, then one enablement or tombstone per (team, sample
/// plugin) pair. Deterministic for `seed`; `updated_at` is the enablements' RFC 3339 time.
pub fn control_records(teams: &[Team], seed: u64, updated_at: &str) -> Vec<Control> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x636f_6e74_726f_6c00);
    let mut out: Vec<Control> = sample_plugins().into_iter().map(Control::Plugin).collect();
    for (index, team) in teams.iter().enumerate() {
        let uses = STORY.get(index).copied().unwrap_or_else(|| seeded_uses(&mut rng));
        for (plugin, use_) in SAMPLE_PLUGINS.iter().zip(uses) {
            let enablement = |enabled: bool, event_types: Option<&[EventType]>| Enablement {
                team_id: team.id.clone(),
                plugin_id: (*plugin).to_owned(),
                installation: None,
                form_ids: None,
                filter: None,
                backfill: None,
                enabled,
                event_types: event_types.map(types),
                updated_at: updated_at.to_owned(),
            };
            let enablement = match use_ {
                Use::None => None,
                Use::All => Some(enablement(true, None)),
                Use::Only(only) => Some(enablement(true, Some(only))),
                Use::Disabled => Some(enablement(false, None)),
            };
            out.push(Control::Enablement {
                team: team.id.clone(),
                plugin: (*plugin).to_owned(),
                enablement,
            });
        }
    }
    out
}

/// A random but plausible mix: most teams export to sheets, fewer text or validate, some search.
fn seeded_uses(rng: &mut Xoshiro256PlusPlus) -> [Use; 4] {
    let mut pick = |p: f64, only: &'static [EventType]| {
        if !rng.random_bool(p) {
            Use::None
        } else if rng.random_bool(0.1) {
            Use::Disabled
        } else if rng.random_bool(0.25) {
            Use::Only(only)
        } else {
            Use::All
        }
    };
    let mut uses = [
        pick(0.8, RESPONSES),
        pick(0.35, SUBMITTED),
        pick(0.4, SUBMITTED),
        pick(0.3, SUBMITTED),
    ];
    if uses.iter().all(|u| matches!(u, Use::None | Use::Disabled)) {
        uses[0] = Use::All;
    }
    uses
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::teams::teams;

    #[test]
    fn manifests_are_valid_records() {
        for control in control_records(&teams(7, 8), 7, "2026-11-22T09:55:00Z") {
            let record = control.to_record();
            let key = record.key.unwrap();
            match control {
                Control::Plugin(_) => {
                    PluginManifest::parse(std::str::from_utf8(&key).unwrap(), &record.value.unwrap())
                        .unwrap();
                }
                Control::Enablement { enablement, .. } => match record.value {
                    Some(value) => {
                        assert_eq!(Enablement::parse(&key, &value).unwrap(), enablement.unwrap());
                    }
                    None => assert!(enablement.is_none()),
                },
            }
        }
    }

    #[test]
    fn every_pair_gets_a_record_and_the_story_holds() {
        let teams = teams(7, 12);
        let records = control_records(&teams, 7, "2026-11-22T09:55:00Z");
        assert_eq!(records.len(), 4 + teams.len() * 4);
        assert_eq!(records, control_records(&teams, 7, "2026-11-22T09:55:00Z"));
        let of = |team: &str| -> Vec<Option<Enablement>> {
            records
                .iter()
                .filter_map(|c| match c {
                    Control::Enablement {
                        team: t, enablement, ..
                    } if t == team => Some(enablement.clone()),
                    _ => None,
                })
                .collect()
        };
        assert!(
            of("kilimo-coop")
                .iter()
                .all(|e| e.as_ref().is_some_and(|e| e.enabled))
        );
        assert!(of("elimu-schools").iter().all(Option::is_none));
        assert!(of("maji-water")[1].as_ref().unwrap().event_types.is_some());
        assert!(!of("eko-health")[0].as_ref().unwrap().enabled);
    }
}
