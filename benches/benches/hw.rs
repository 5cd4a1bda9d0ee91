//! bear-hw benchmarks: the recommendation functions are called on every model load, so they
//! must stay trivially cheap next to the detection they summarise.

use bear_hw::{GIB, Probe, SysProbe};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn recommendations(c: &mut Criterion) {
    let dir = std::env::temp_dir();
    let machine = SysProbe.probe(&dir);
    let mut group = c.benchmark_group("hw");
    group.bench_function("recommend", |b| {
        b.iter(|| bear_hw::recommend(black_box(&machine)))
    });
    group.bench_function("fit_model", |b| {
        b.iter(|| bear_hw::fit_model(black_box(&machine), black_box(4 * GIB), 4096, None))
    });
    group.sample_size(10);
    group.bench_function("probe", |b| b.iter(|| SysProbe.probe(black_box(&dir))));
    group.finish();
}

criterion_group!(benches, recommendations);
criterion_main!(benches);
