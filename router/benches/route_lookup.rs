//! Route lookup cost and routing-table memory at 1k, 100k and 1M enablements.
//!
//! `cargo bench -p switchyard-router --bench route_lookup`
//!
//! Table shape: 10 enablements per team (so 100, 10k and 100k teams), 20 plugins each subscribing to 1-4
//! of the 4 v1 types, 30% of enablements with a one-type filter. Lookups draw (team, type) pairs uniformly
//! from the teams that exist. Memory is measured, not estimated: a counting global allocator records the
//! bytes live after building the table minus those live before, divided by the enablement count; it is
//! printed as `bytes_per_enablement` lines and written to `target/bench/route_table_memory.json`.
#![allow(
    unsafe_code,
    reason = "a counting global allocator needs `unsafe impl GlobalAlloc`"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use switchyard_router::tables::routes::RouteTable;
use switchyard_schemas::control::{Enablement, PluginManifest};

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

fn build(enablements: usize) -> RouteTable {
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
            delivery: Default::default(),
        });
    }
    for team in 0..enablements / PER_TEAM {
        let first = rng.below(PLUGINS);
        for k in 0..PER_TEAM {
            let filter = (rng.below(10) < 3).then(|| vec![TYPES[rng.below(4)].to_owned()]);
            table
                .upsert_enablement(&Enablement {
                    team_id: format!("team-{team:07}"),
                    plugin_id: format!("plugin-{:02}", (first + k) % PLUGINS),
                    installation: None,
                    form_ids: None,
                    filter: None,
                    enabled: true,
                    event_types: filter,
                    updated_at: "2026-11-22T10:00:00Z".to_owned(),
                })
                .expect("no filter");
        }
    }
    table
}

fn bench(c: &mut Criterion) {
    let mut memory = Vec::new();
    let mut group = c.benchmark_group("route_lookup");
    for enablements in [1_000usize, 100_000, 1_000_000] {
        let before = LIVE.load(Ordering::Relaxed);
        let table = build(enablements);
        let bytes = LIVE.load(Ordering::Relaxed).saturating_sub(before);
        let per = bytes as f64 / table.enablement_count() as f64;
        println!("bytes_per_enablement enablements={enablements} bytes={bytes} per_enablement={per:.1}");
        memory.push(format!(
            r#"{{"enablements":{enablements},"bytes":{bytes},"bytes_per_enablement":{per:.1}}}"#
        ));

        let teams = enablements / PER_TEAM;
        let mut rng = Lcg(7);
        let queries: Vec<(String, &str)> = (0..4096)
            .map(|_| (format!("team-{:07}", rng.below(teams)), TYPES[rng.below(4)]))
            .collect();
        let mut out = Vec::with_capacity(16);
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(enablements), &table, |b, table| {
            b.iter(|| {
                let (team, event_type) = &queries[i % queries.len()];
                i += 1;
                out.clear();
                table.route(black_box(team), black_box(event_type), None, &mut out);
                black_box(out.len())
            })
        });
        drop(table);
    }
    group.finish();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(
            dir.join("route_table_memory.json"),
            format!("[{}]\n", memory.join(",")),
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
