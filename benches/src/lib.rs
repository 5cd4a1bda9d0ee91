//! bear-benches: no library of its own; the Criterion benchmarks live in `benches/benches/`.
