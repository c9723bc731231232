//! The organisations that collect data on the platform: their team ids, home countries and how busy each
//! one is.
//!
//! The first few teams have fixed, recognisable ids (the demo's story refers to them); further ones are
//! made up from Swahili words and a kind of organisation, deterministically from the seed. Activity
//! follows a Zipf law over a seeded ranking: a few teams send most of the traffic.

use std::collections::HashSet;

use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

use super::places::{COUNTRIES, Country, GHANA, KENYA, NIGERIA};

/// The Zipf exponent of team activity: the busiest team sends about a third of all events among eight.
pub const ACTIVITY_EXPONENT: f64 = 1.1;

/// One team (an organisation using the platform).
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    /// The team id, the key of its core events.
    pub id: String,
    /// Where it works.
    pub country: &'static Country,
    /// Its activity rank: 1 is the busiest.
    pub rank: usize,
}

const FIXED: [(&str, &Country); 8] = [
    ("kilimo-coop", &KENYA),
    ("afya-research", &KENYA),
    ("maji-water", &KENYA),
    ("eko-health", &NIGERIA),
    ("elimu-schools", &KENYA),
    ("chama-savings", &KENYA),
    ("accra-agro", &GHANA),
    ("pwani-fisheries", &KENYA),
];

const WORDS: [&str; 16] = [
    "jamii",
    "nuru",
    "tumaini",
    "umoja",
    "baraka",
    "mazingira",
    "lishe",
    "nyota",
    "imara",
    "amani",
    "zawadi",
    "neema",
    "bidii",
    "upendo",
    "faraja",
    "mavuno",
];

const KINDS: [&str; 12] = [
    "coop", "health", "water", "schools", "agro", "savings", "research", "relief", "ngo", "county", "youth",
    "women",
];

/// `count` teams, deterministic for `seed`. Ids are unique and valid team ids.
pub fn teams(seed: u64, count: usize) -> Vec<Team> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x7465_616d_7300_0000);
    let mut out: Vec<Team> = Vec::with_capacity(count);
    for (i, (id, country)) in FIXED.iter().enumerate().take(count) {
        out.push(Team {
            id: (*id).to_owned(),
            country,
            rank: i + 1,
        });
    }
    let mut taken: HashSet<String> = out.iter().map(|t| t.id.clone()).collect();
    while out.len() < count {
        let word = WORDS.choose(&mut rng).copied().unwrap_or("jamii");
        let kind = KINDS.choose(&mut rng).copied().unwrap_or("coop");
        let mut id = format!("{word}-{kind}");
        if taken.contains(&id) {
            id = format!("{id}-{}", rng.random_range(2..100u32));
        }
        if taken.contains(&id) && out.len() >= 100 {
            // Thousands of teams exhaust the short names: number them (never below 100, so never like
            // a random suffix).
            id = format!("{word}-{kind}-{}", out.len() + 1);
        }
        if !taken.insert(id.clone()) {
            continue;
        }
        // Two teams in three work in Kenya, the rest anywhere.
        let country = if rng.random_bool(2.0 / 3.0) {
            &KENYA
        } else {
            COUNTRIES.choose(&mut rng).copied().unwrap_or(&KENYA)
        };
        out.push(Team {
            id,
            country,
            rank: out.len() + 1,
        });
    }
    let mut ranks: Vec<usize> = (1..=count).collect();
    ranks.shuffle(&mut rng);
    for (team, rank) in out.iter_mut().zip(ranks) {
        team.rank = rank;
    }
    out
}

/// Picks teams with Zipf-distributed activity over their ranks.
#[derive(Debug, Clone)]
pub struct ActivityPicker {
    zipf: Zipf<f64>,
    /// `by_rank[r - 1]` is the index of the team with rank `r`.
    by_rank: Vec<usize>,
}

impl ActivityPicker {
    /// A picker over `teams` (at least one) with the default exponent.
    pub fn new(teams: &[Team]) -> Self {
        Self::with_exponent(teams, ACTIVITY_EXPONENT)
    }

    /// A picker over `teams` (at least one) with Zipf exponent `exponent` (positive).
    pub fn with_exponent(teams: &[Team], exponent: f64) -> Self {
        let mut by_rank = vec![0; teams.len()];
        for (index, team) in teams.iter().enumerate() {
            by_rank[team.rank - 1] = index;
        }
        let n = teams.len().max(1) as f64;
        let zipf = Zipf::new(n, exponent).expect("n >= 1 and a positive exponent");
        Self { zipf, by_rank }
    }

    /// The index of the team that sends the next event.
    pub fn pick<R: rand::Rng>(&self, rng: &mut R) -> usize {
        let rank = self.zipf.sample(rng) as usize;
        self.by_rank[rank.clamp(1, self.by_rank.len()) - 1]
    }
}

#[cfg(test)]
mod tests {
    use switchyard_schemas::ids::check_team_id;

    use super::*;

    #[test]
    fn deterministic_unique_and_valid() {
        let a = teams(7, 40);
        assert_eq!(a, teams(7, 40));
        assert_eq!(a[0].id, "kilimo-coop");
        let mut ids: Vec<_> = a.iter().map(|t| t.id.as_str()).collect();
        for id in &ids {
            check_team_id(id.as_bytes()).unwrap();
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 40);
        let mut ranks: Vec<_> = a.iter().map(|t| t.rank).collect();
        ranks.sort_unstable();
        assert_eq!(ranks, (1..=40).collect::<Vec<_>>());
        let many = teams(7, 10_000);
        let unique: HashSet<&str> = many.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(unique.len(), 10_000);
        assert!(many.iter().all(|t| check_team_id(t.id.as_bytes()).is_ok()));
        assert_ne!(
            teams(8, 40).iter().map(|t| t.rank).collect::<Vec<_>>(),
            a.iter().map(|t| t.rank).collect::<Vec<_>>()
        );
    }

    #[test]
    fn activity_is_skewed() {
        let teams = teams(7, 8);
        let picker = ActivityPicker::new(&teams);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut counts = vec![0usize; teams.len()];
        for _ in 0..20_000 {
            counts[picker.pick(&mut rng)] += 1;
        }
        let busiest = teams.iter().position(|t| t.rank == 1).unwrap();
        let quietest = teams.iter().position(|t| t.rank == 8).unwrap();
        assert!(counts[busiest] > 4 * counts[quietest], "{counts:?}");
        assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    }
}
