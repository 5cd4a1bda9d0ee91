//! bear-security benchmarks: PII detection over the 10 MB mixed corpus (single thread), one
//! ~200-byte chat message, and scrubbing with the tokenize policy.
//!
//! The corpus comes from `benches/peers/pii_corpus.py` (run here with `python3` if absent) in
//! `$BEAR_PII_CORPUS` or `<target>/pii-corpus`; `cargo xtask bench security` runs Presidio's
//! pattern recognizers on the same files. Before timing, this bench scores BEAR's recall and
//! precision against the corpus labels and writes them to `bear-recall.json` there.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bear_security::{Detector, PiiConfig, Policy, Scrubber, Session, Vault};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn corpus_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BEAR_PII_CORPUS") {
        return d.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("pii-corpus")
}

fn load() -> (String, String, Vec<serde_json::Value>, PathBuf) {
    let dir = corpus_dir();
    if !dir.join("corpus.txt").is_file() {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/pii_corpus.py");
        let ok = std::process::Command::new("python3")
            .arg(script)
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot generate the PII corpus in {}", dir.display());
    }
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("corpus file");
    let labels = read("labels.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("label"))
        .collect();
    (read("corpus.txt"), read("message.txt"), labels, dir)
}

/// Recall and precision per labelled type (a label is found when a finding of its type
/// overlaps it), written for xtask's table.
fn score(detector: &Detector, text: &str, labels: &[serde_json::Value], dir: &std::path::Path) {
    let findings = detector.detect(text);
    let mut by_type: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    for f in &findings {
        by_type
            .entry(f.entity.name().into_owned())
            .or_default()
            .push((f.start, f.end));
    }
    let mut types = serde_json::Map::new();
    let kinds: std::collections::BTreeSet<&str> =
        labels.iter().filter_map(|l| l["type"].as_str()).collect();
    for kind in kinds {
        let want: Vec<(usize, usize)> = labels
            .iter()
            .filter(|l| l["type"] == kind)
            .map(|l| {
                (
                    l["start"].as_u64().unwrap_or(0) as usize,
                    l["end"].as_u64().unwrap_or(0) as usize,
                )
            })
            .collect();
        let got = by_type.get(kind).cloned().unwrap_or_default();
        let overlaps = |a: (usize, usize), b: (usize, usize)| a.0 < b.1 && a.1 > b.0;
        let hit = want
            .iter()
            .filter(|w| got.iter().any(|g| overlaps(**w, *g)))
            .count();
        let correct = got
            .iter()
            .filter(|g| want.iter().any(|w| overlaps(*w, **g)))
            .count();
        types.insert(
            kind.to_string(),
            serde_json::json!({
                "labels": want.len(),
                "recall": hit as f64 / want.len().max(1) as f64,
                "precision": if got.is_empty() { None } else { Some(correct as f64 / got.len() as f64) },
            }),
        );
    }
    let report = serde_json::json!({ "types": types, "findings": findings.len() });
    std::fs::write(dir.join("bear-recall.json"), report.to_string()).expect("write recall");
}

fn pii(c: &mut Criterion) {
    let (corpus, message, labels, dir) = load();
    let config = PiiConfig::default();
    let detector = Arc::new(Detector::new(&config).expect("detector"));
    score(&detector, &corpus, &labels, &dir);

    let mut group = c.benchmark_group("pii");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(corpus.len() as u64));
    group.bench_function("detect_10mb", |b| {
        b.iter(|| detector.detect(black_box(&corpus)))
    });
    let tokenizing = Scrubber::new(
        detector.clone(),
        PiiConfig {
            default_policy: Policy::Tokenize,
            ..PiiConfig::default()
        },
        bear_security::crypto::ephemeral_hmac_key().expect("key"),
        Some(Arc::new(Mutex::new(Vault::ephemeral().expect("vault")))),
    )
    .expect("scrubber");
    group.bench_function("scrub_tokenize_10mb", |b| {
        b.iter(|| {
            let mut session = Session::new().expect("session");
            tokenizing
                .scrub_with(black_box(&corpus), &mut session)
                .expect("scrub")
        })
    });
    group.finish();

    let mut group = c.benchmark_group("pii");
    group.throughput(Throughput::Bytes(message.len() as u64));
    group.bench_function("detect_message", |b| {
        b.iter(|| detector.detect(black_box(&message)))
    });
    group.finish();
}

criterion_group!(benches, pii);
criterion_main!(benches);
