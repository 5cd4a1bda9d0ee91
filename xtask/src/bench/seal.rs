//! `cargo xtask bench seal`: what sealing at rest costs, the same collection plain and sealed
//! in paired rounds (`benches/benches/seal.rs`).

use super::{cell, criterion, report, target_dir};

/// Runs the paired bench and publishes its block in docs/benchmarks.md.
pub(crate) fn seal() -> anyhow::Result<()> {
    if std::env::var_os("BEAR_BENCH_REPORT_ONLY").is_none() {
        criterion(Some("seal"))?;
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        target_dir().join("bench-seal.json"),
    )?)?;
    let f = |x: &serde_json::Value| x.as_f64().unwrap_or(f64::NAN);
    let ingest = &v["ingest"];
    let ratio = f(&ingest["throughput_ratio_median"]);
    let mut out = format!(
        "### Sealed at rest (bear-rag's sealing layer)\n\n\
         The same work on a plain and a sealed collection, alternating, {} docs / {} chunks \
         (the demo corpus, copied); ratios are sealed over plain, median of the pairs with \
         the 10th to 90th percentile.\n\n\
         | measure | plain | sealed | ratio (p10-p90) | goal |\n|---|---|---|---|---|\n\
         | ingest throughput, {} rounds | {:.2} s | {:.2} s | {ratio:.3} ({:.3}-{:.3}) | {} |\n",
        v["docs"],
        v["chunks"],
        ingest["rounds"],
        f(&ingest["plain_s_median"]),
        f(&ingest["sealed_s_median"]),
        f(&ingest["throughput_ratio_p10"]),
        f(&ingest["throughput_ratio_p90"]),
        cell("seal.ingest_ratio", ratio),
    );
    for (label, id, goal) in [
        ("ANN (IVF-HNSW-SQ) search p50", "ann", "seal.ann_ratio"),
        ("full-text search p50", "full_text", "seal.full_text_ratio"),
        ("hybrid search p50", "hybrid", "seal.hybrid_ratio"),
        ("exact search from memory p50", "exact", "seal.exact_ratio"),
    ] {
        let m = &v["search"][id];
        let r = f(&m["paired_ratio_median"]);
        out.push_str(&format!(
            "| {label}, {} rounds | {:.2} ms | {:.2} ms | {r:.3} ({:.3}-{:.3}) | {} |\n",
            v["search_rounds"],
            f(&m["plain_p50_ms"]),
            f(&m["sealed_p50_ms"]),
            f(&m["paired_ratio_p10"]),
            f(&m["paired_ratio_p90"]),
            cell(goal, r),
        ));
    }
    out.push_str(
        "\nThe plain collection reads through io_uring where the kernel allows it; a sealed one \
         reads through the object store (`file-object-store://`). Where the cost was \
         (December 2026): opening the segments a search touches took about 20 µs of it; \
         fetching them through the object store took the rest (with the plain collection on \
         the object store too, every ratio was 1.00-1.05). Opened segments of data and index \
         files are now kept in a 64 MiB process-wide cache (bear-rag `store/segments.rs`); \
         before it, full-text was 1.18-1.22x and exact 1.14-1.16x.\n",
    );
    report::publish("seal", &out)
}
