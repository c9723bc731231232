//! Route lookup cost and routing-table memory at 1k, 100k and 1M installations.
//!
//! `cargo bench -p switchyard-router --bench route_lookup`
//!
//! Two table shapes, 10 installations per team (so 100, 10k and 100k teams), 20 plugins each subscribing
//! to 1-4 of the 4 v1 types, 30% of installations with a one-type `event_types`:
//!
//! - `route_lookup` (as before installations existed): every installation the default one of its plugin.
//! - `named`: 3 of a team's 10 are named installations (names from a pool of 50) of plugins the team
//!   already has; no `form_ids`, no filters.
//! - `installations`: as `named`, and 20% of all installations carry 1-3 `form_ids`, another 20% a CEL
//!   `filter` on the data (one of 10 distinct sources, so compiled filters are shared as equal sources are
//!   in the router). Measured twice: the lookup alone (`installations`), and the lookup plus the filter
//!   step on a 24-answer Avro
//!   `response.submitted` (`installations_filtered`: the projection, the bindings and each matched
//!   installation's filter, as the planner runs them; the projection of an Avro value is also its
//!   validation, which the planner then skips).
//!
//! Lookups draw (team, type, form) uniformly from the teams that exist. Memory is measured, not estimated:
//! a counting global allocator records the bytes live after building the table minus those live before,
//! divided by the installation count; it is printed as `bytes_per_enablement` lines and written to
//! `target/bench/route_table_memory.json` (v1 shape) and `target/bench/route_table_installations.json`.
#![allow(
    unsafe_code,
    reason = "a counting global allocator needs `unsafe impl GlobalAlloc`"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use switchyard_router::pipeline::filters::{data_paths, retain_matching};
use switchyard_router::tables::routes::RouteTable;
use switchyard_schemas::control::{Enablement, PluginManifest};
use switchyard_schemas::envelope::{ContentType, Envelope};
use switchyard_schemas::events::Answer;
use switchyard_schemas::{payload, samples};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TYPES: [&str; 4] = [
    "form.created",
    "form.updated",
    "response.submitted",
    "response.updated",
];
const PLUGINS: usize = 20;
const PER_TEAM: usize = 10;

/// A small deterministic generator, so every run builds the same table.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The two table shapes of the module docs.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    DefaultOnly,
    Named,
    Installations,
}

const NAMES: usize = 50;
const FILTERS: usize = 10;
const FORMS: usize = 8;

fn build(enablements: usize, shape: Shape) -> RouteTable {
    let table = RouteTable::new("plugin.{plugin}.events");
    let mut rng = Lcg(42);
    for p in 0..PLUGINS {
        let count = 1 + rng.below(4);
        let events = (0..count).map(|i| TYPES[(p + i) % 4].to_owned()).collect();
        table.upsert_plugin(&PluginManifest {
            id: format!("plugin-{p:02}"),
            name: format!("Plugin {p}"),
            description: String::new(),
            version: semver::Version::new(1, 0, 0),
            url: None,
            events,
            actions: vec![],
            config_schema: None,
            contract: None,
            signature: None,
            delivery: Default::default(),
        });
    }
    for team in 0..enablements / PER_TEAM {
        let first = rng.below(PLUGINS);
        for k in 0..PER_TEAM {
            let event_types = (rng.below(10) < 3).then(|| vec![TYPES[rng.below(4)].to_owned()]);
            let mut enablement = Enablement {
                team_id: format!("team-{team:07}"),
                plugin_id: format!("plugin-{:02}", (first + k) % PLUGINS),
                installation: None,
                form_ids: None,
                filter: None,
                backfill: None,
                enabled: true,
                event_types,
                updated_at: "2026-11-22T10:00:00Z".to_owned(),
            };
            if shape != Shape::DefaultOnly && k >= PER_TEAM - 3 {
                // A named installation of a plugin the team already has.
                enablement.plugin_id = format!("plugin-{:02}", (first + k - 3) % PLUGINS);
                enablement.installation = Some(format!("export-{:02}", rng.below(NAMES)));
            }
            if shape == Shape::Installations {
                match rng.below(10) {
                    0 | 1 => {
                        let ids = (0..1 + rng.below(3)).map(|_| format!("f-{}", rng.below(FORMS)));
                        enablement.form_ids = Some(ids.collect());
                    }
                    2 | 3 => enablement.filter = Some(filter_source(rng.below(FILTERS))),
                    _ => {}
                }
            }
            table.upsert_enablement(&enablement).expect("valid filters");
        }
    }
    table
}

/// One of the [`FILTERS`] distinct sources: a city answer and the event type.
fn filter_source(k: usize) -> String {
    format!(r#"data.response.answers["q01"].choice == "city-{k}" && type == "response.submitted""#)
}

/// The event the filter step reads: 24 answers in Avro, `q01` answered `city-3`.
fn filtered_event() -> Vec<u8> {
    let mut event = samples::response_24_answers("team-0000000", "r-1");
    event.response.answers.insert(
        "q01".to_owned(),
        Some(Answer::Choice {
            choice: "city-3".to_owned(),
        }),
    );
    payload::encode(&event, ContentType::Avro).expect("the sample encodes")
}

fn bench(c: &mut Criterion) {
    let mut memory = Vec::new();
    let mut installations = Vec::new();
    let value = filtered_event();
    for (shape, group_name) in [
        (Shape::DefaultOnly, "route_lookup"),
        (Shape::Named, "named"),
        (Shape::Installations, "installations"),
    ] {
        for enablements in [1_000usize, 100_000, 1_000_000] {
            let before = LIVE.load(Ordering::Relaxed);
            let table = build(enablements, shape);
            let bytes = LIVE.load(Ordering::Relaxed).saturating_sub(before);
            let per = bytes as f64 / table.enablement_count() as f64;
            println!(
                "bytes_per_enablement shape={group_name} enablements={enablements} bytes={bytes} per_enablement={per:.1} filtered={}",
                table.filtered_count()
            );
            let line = format!(
                r#"{{"shape":"{group_name}","enablements":{enablements},"bytes":{bytes},"bytes_per_enablement":{per:.1},"filtered":{}}}"#,
                table.filtered_count()
            );
            match shape {
                Shape::DefaultOnly => memory.push(line),
                Shape::Named | Shape::Installations => installations.push(line),
            }

            let teams = enablements / PER_TEAM;
            let mut rng = Lcg(7);
            let queries: Vec<(String, &str, String)> = (0..4096)
                .map(|_| {
                    let team = format!("team-{:07}", rng.below(teams));
                    (team, TYPES[rng.below(4)], format!("f-{}", rng.below(FORMS)))
                })
                .collect();
            let mut out = Vec::with_capacity(16);
            let mut i = 0usize;
            c.benchmark_group(group_name).bench_with_input(
                BenchmarkId::from_parameter(enablements),
                &table,
                |b, table| {
                    b.iter(|| {
                        let (team, event_type, form) = &queries[i % queries.len()];
                        i += 1;
                        out.clear();
                        table.route(
                            black_box(team),
                            black_box(event_type),
                            Some(form.as_str()),
                            &mut out,
                        );
                        black_box(out.len())
                    })
                },
            );
            if shape == Shape::Installations {
                let mut i = 0usize;
                c.benchmark_group("installations_filtered").bench_with_input(
                    BenchmarkId::from_parameter(enablements),
                    &table,
                    |b, table| {
                        b.iter(|| {
                            let (team, _, form) = &queries[i % queries.len()];
                            i += 1;
                            out.clear();
                            let envelope = Envelope {
                                team_id: team,
                                id: "e-1",
                                source: "/bench",
                                event_type: "response.submitted",
                                content_type: ContentType::Avro,
                                subject: Some(form.as_str()),
                                time: None,
                            };
                            table.route(team, envelope.event_type, envelope.subject, &mut out);
                            let paths = data_paths(&out);
                            let data = (!paths.is_empty()).then(|| {
                                payload::project(
                                    envelope.event_type,
                                    envelope.content_type,
                                    Some(&value),
                                    &paths,
                                )
                            });
                            drop(paths);
                            let tally = retain_matching(&envelope, std::iter::empty(), data, &mut out);
                            black_box((out.len(), tally))
                        })
                    },
                );
            }
            drop(table);
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(
            dir.join("route_table_memory.json"),
            format!("[{}]\n", memory.join(",")),
        );
        let _ = std::fs::write(
            dir.join("route_table_installations.json"),
            format!("[{}]\n", installations.join(",")),
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
