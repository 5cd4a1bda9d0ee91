//! bear-agents benchmarks: engine overhead per no-op step, in memory and with every transition
//! persisted to SQLite, and parse + validation time, at 100, 1,000 and 10,000 steps (the cost
//! must grow linearly); and a 1,000-step chain on SQLite and on PostgreSQL (a throw-away
//! cluster on loopback, as the tests start one), same run. `cargo xtask bench agents` turns
//! the estimates into a per-step table.
//!
//! The DAG is a binary tree (step i depends on step (i-1)/2): wide enough to keep the scheduler
//! busy, deep enough (log2 n levels) to exercise dependency release. The chain (step i depends
//! on step i-1) runs one step at a time: each step's cost is the store's round trips.

use std::collections::BTreeMap;
use std::sync::Arc;

use bear_agents::{
    Backends, Catalog, Engine, EngineConfig, MemoryStore, Registry, SqlStore, Workflow,
};
use bear_core::{EventBus, RunStatus, WorkflowStateStore};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;

// The throw-away PostgreSQL cluster of bear-agents' tests.
#[path = "../../crates/bear-agents/tests/it/pg.rs"]
#[allow(dead_code, unreachable_pub)]
mod pg;

/// `n` no-op steps; step i depends on step `parent(i)`.
fn definition(n: usize, parent: fn(usize) -> usize) -> String {
    let steps: Vec<_> = (0..n)
        .map(|i| {
            let deps: Vec<String> = if i == 0 {
                vec![]
            } else {
                vec![format!("s{}", parent(i))]
            };
            json!({"id": format!("s{i}"), "type": "data_processing", "depends_on": deps,
                   "parameters": {"operation": "merge", "values": {}}})
        })
        .collect();
    json!({"name": format!("noop-{n}"), "steps": steps}).to_string()
}

fn engine(store: Arc<dyn WorkflowStateStore>) -> Engine {
    Engine::new(
        store,
        Registry::with_default_agents(),
        Backends::default(),
        EventBus::new(1 << 16),
        EngineConfig::default(),
    )
}

fn run(rt: &tokio::runtime::Runtime, engine: &Engine, w: &Workflow) {
    rt.block_on(async {
        let h = engine
            .start(w.clone(), BTreeMap::new())
            .await
            .expect("starts");
        assert_eq!(h.wait().await.expect("runs"), RunStatus::Completed);
    });
}

fn agents_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let catalog = Catalog {
        agents: Registry::with_default_agents().specs(),
        tools: Default::default(),
        has_generator: false,
        has_retriever: false,
        has_scrubber: false,
        default_timeout: std::time::Duration::from_secs(60),
    };
    let mut g = c.benchmark_group("agents");
    g.sample_size(10);
    for n in [100usize, 1_000, 10_000] {
        let text = definition(n, |i| (i - 1) / 2);
        let w = Workflow::parse(&text).expect("parses");
        g.bench_with_input(BenchmarkId::new("validate", n), &text, |b, text| {
            b.iter(|| {
                Workflow::parse(text)
                    .expect("parses")
                    .validate(&catalog)
                    .expect("valid")
            })
        });
        let mem = engine(Arc::new(MemoryStore::new()));
        g.bench_with_input(BenchmarkId::new("run_memory", n), &w, |b, w| {
            b.iter(|| run(&rt, &mem, w))
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let store = rt
            .block_on(SqlStore::open(&dir.path().join("runs.db"), false))
            .expect("sqlite");
        let db = engine(Arc::new(store));
        g.bench_with_input(BenchmarkId::new("run_sqlite", n), &w, |b, w| {
            b.iter(|| run(&rt, &db, w))
        });
    }
    chains(&rt, &mut g);
    g.finish();
}

/// A 1,000-step chain on SQLite and on PostgreSQL.
fn chains(
    rt: &tokio::runtime::Runtime,
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
) {
    let n = 1_000;
    let w = Workflow::parse(&definition(n, |i| i - 1)).expect("parses");
    let dir = tempfile::tempdir().expect("temp dir");
    let lite = rt
        .block_on(SqlStore::open(&dir.path().join("chain.db"), false))
        .expect("sqlite");
    let lite = engine(Arc::new(lite));
    g.bench_with_input(BenchmarkId::new("chain_sqlite", n), &w, |b, w| {
        b.iter(|| run(rt, &lite, w))
    });
    let server = pg::Postgres::start().expect("a PostgreSQL server (.ci/setup installs it)");
    let url = server.create_database("bench").expect("database");
    let shared = rt.block_on(SqlStore::connect(&url)).expect("postgres");
    let shared = engine(Arc::new(shared));
    g.bench_with_input(BenchmarkId::new("chain_postgres", n), &w, |b, w| {
        b.iter(|| run(rt, &shared, w))
    });
}

criterion_group!(benches, agents_bench);
criterion_main!(benches);
