//! bear-agents benchmarks: engine overhead per no-op step, in memory and with every transition
//! persisted to SQLite, and parse + validation time, at 100, 1,000 and 10,000 steps (the cost
//! must grow linearly). `cargo xtask bench agents` turns the estimates into a per-step table.
//!
//! The DAG is a binary tree (step i depends on step (i-1)/2): wide enough to keep the scheduler
//! busy, deep enough (log2 n levels) to exercise dependency release.

use std::collections::BTreeMap;
use std::sync::Arc;

use bear_agents::{
    Backends, Catalog, Engine, EngineConfig, MemoryStore, Registry, SqliteStore, Workflow,
};
use bear_core::{EventBus, RunStatus, WorkflowStateStore};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;

fn definition(n: usize) -> String {
    let steps: Vec<_> = (0..n)
        .map(|i| {
            let deps: Vec<String> = if i == 0 {
                vec![]
            } else {
                vec![format!("s{}", (i - 1) / 2)]
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
        let text = definition(n);
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
            .block_on(SqliteStore::open(&dir.path().join("runs.db"), false))
            .expect("sqlite");
        let db = engine(Arc::new(store));
        g.bench_with_input(BenchmarkId::new("run_sqlite", n), &w, |b, w| {
            b.iter(|| run(&rt, &db, w))
        });
    }
    g.finish();
}

criterion_group!(benches, agents_bench);
criterion_main!(benches);
