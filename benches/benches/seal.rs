//! What sealing at rest costs: the same work on a plain and a sealed collection, in paired
//! rounds (plain, sealed, plain, sealed, ...) so that this machine's drift falls on both.
//!
//! - Ingest: 4 copies of the demo corpus into a new collection, plain against sealed.
//! - Search p50 on the ingested corpus (with its vector and full-text indexes): ANN, full
//!   text, hybrid, and exact from memory.
//!
//! No Criterion here: a paired loop is the measurement. Results go to
//! `<target>/bench-seal.json` for `cargo xtask bench seal`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bear_core::{CancellationToken, Embedder, ModelId, PiiConfig, PiiPolicy, RagConfig};
use bear_rag::{AnnTuning, Collection, Filter, IngestOptions, Pipeline, SearchMode, Store};

const COPIES: usize = 4;
const INGEST_ROUNDS: usize = 5;
const SEARCH_ROUNDS: usize = 60;
const QUESTIONS: &[&str] = &[
    "How much notice must be given to terminate the lease?",
    "What is the monthly rent for the office?",
    "Who is the lender and what is the interest rate?",
    "What security secures the loan?",
    "How long do the confidentiality obligations last?",
    "What did the court decide about the claim?",
    "Which law governs the supply agreement?",
    "What are the payment terms for the software licence?",
];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn embedder() -> Arc<dyn Embedder> {
    let dirs = bear_core::Dirs::from_env(|k| std::env::var_os(k)).expect("dirs");
    let dir = dirs.models_dir.join(bear_core::assets::MINILM_DIR);
    let id = ModelId::new("all-MiniLM-L6-v2").expect("id");
    Arc::new(bear_models::CandleEmbedder::load(id, &dir).expect("run `cargo xtask models` first"))
}

fn pipeline(embedder: Arc<dyn Embedder>) -> Pipeline {
    let config = PiiConfig {
        default_policy: PiiPolicy::Replace,
        ..PiiConfig::default()
    };
    let detector = Arc::new(bear_security::Detector::new(&config).expect("detector"));
    let key = bear_security::crypto::ephemeral_hmac_key().expect("key");
    let scrubber =
        Arc::new(bear_security::Scrubber::new(detector, config, key, None).expect("scrubber"));
    Pipeline {
        embedder,
        scrubber,
        config: RagConfig::default(),
        persist_tokens: None,
        ocr: None,
    }
}

/// A store over `dir`, sealed with a key-file keyring in `keys` when `keys` is given.
fn store(dir: &Path, keys: Option<&Path>) -> Store {
    let plain = Store::new(dir);
    let Some(keys) = keys else {
        return plain;
    };
    let ring_path = keys.join("keyring.json");
    let key = keys.join("master.key");
    let ring = if ring_path.exists() {
        bear_security::Keyring::open(&ring_path, bear_security::KeySource::KeyFile(key))
    } else {
        bear_security::MasterKey::generate_key_file(&key).expect("key file");
        bear_security::Keyring::create(&ring_path, bear_security::KeySource::KeyFile(key))
    }
    .expect("keyring");
    let ring = Arc::new(Mutex::new(ring));
    plain.sealed_with(Arc::new(move |c: &str, create: bool| {
        let mut r = ring.lock().expect("keyring lock");
        let keys = if create {
            r.file_keys(c)
        } else {
            r.existing_file_keys(c)
        };
        keys.map_err(bear_core::Error::from)
    }))
}

fn corpus_copies() -> tempfile::TempDir {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/corpus");
    let docs = tempfile::tempdir().expect("tmp");
    for copy in 0..COPIES {
        for e in std::fs::read_dir(&corpus).expect("corpus").flatten() {
            let p = e.path();
            if bear_rag::extract::Format::from_path(&p).is_some() {
                let name = format!("{copy:02}-{}", e.file_name().to_string_lossy());
                std::fs::copy(&p, docs.path().join(name)).expect("copy");
            }
        }
    }
    docs
}

/// Ingests `docs` into a new collection of `store`: the seconds it took, and the collection.
async fn ingest(store: &Store, p: &Pipeline, docs: &Path) -> (f64, Collection) {
    let col = store
        .create(
            "bench",
            PiiPolicy::Replace,
            p.embedder.model().as_str(),
            384,
        )
        .await
        .expect("collection");
    let t = Instant::now();
    let r = bear_rag::ingest(
        &col,
        p,
        &[docs.to_path_buf()],
        &IngestOptions::default(),
        &mut |_: &bear_rag::Progress| {},
        &CancellationToken::new(),
    )
    .await
    .expect("ingest");
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    (t.elapsed().as_secs_f64(), col)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The 10th and 90th percentiles.
fn interval(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 10], v[(v.len() * 9) / 10])
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let embedder = embedder();
    let p = pipeline(embedder.clone());
    let docs = corpus_copies();
    let keys = tempfile::tempdir().expect("tmp");

    // Ingest, paired.
    let mut ingest_ratio = Vec::new();
    let (mut plain_s, mut sealed_s) = (Vec::new(), Vec::new());
    for _ in 0..INGEST_ROUNDS {
        let (a, b) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let (tp, _) = rt.block_on(ingest(&store(a.path(), None), &p, docs.path()));
        let (ts, _) = rt.block_on(ingest(&store(b.path(), Some(keys.path())), &p, docs.path()));
        plain_s.push(tp);
        sealed_s.push(ts);
        // Throughput ratio: sealed over plain.
        ingest_ratio.push(tp / ts);
    }

    // Search, paired, on one collection of each kind with both indexes.
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let plain_store = store(a.path(), None);
    let sealed_store = store(b.path(), Some(keys.path()));
    let (_, plain) = rt.block_on(ingest(&plain_store, &p, docs.path()));
    let (_, sealed) = rt.block_on(ingest(&sealed_store, &p, docs.path()));
    let rows = rt
        .block_on(plain.chunks_table().count_rows(None))
        .expect("count");
    for c in [&plain, &sealed] {
        rt.block_on(c.build_vector_index(rows))
            .expect("vector index");
        rt.block_on(c.optimize(usize::MAX)).expect("optimize");
    }
    // Reopened, so every read comes from the files.
    let plain = rt.block_on(plain_store.open("bench")).expect("open");
    let sealed = rt.block_on(sealed_store.open("bench")).expect("open");
    let vectors = rt
        .block_on(embedder.embed(&QUESTIONS.iter().map(|q| q.to_string()).collect::<Vec<_>>()))
        .expect("embed");
    let mut modes = serde_json::Map::new();
    for (label, mode) in [
        ("ann", SearchMode::Vector),
        ("full_text", SearchMode::FullText),
        ("hybrid", SearchMode::Hybrid),
        ("exact", SearchMode::Exact),
    ] {
        let time = |c: &Collection, i: usize| {
            let q = QUESTIONS[i % QUESTIONS.len()];
            let v = &vectors[i % QUESTIONS.len()];
            let t = Instant::now();
            let hits = rt
                .block_on(c.search(
                    mode,
                    q,
                    Some(v),
                    10,
                    &Filter::default(),
                    &AnnTuning::default(),
                ))
                .expect("search");
            assert!(!hits.is_empty());
            t.elapsed().as_secs_f64() * 1e3
        };
        // One unmeasured pass each warms the caches (and the exact search's vectors).
        time(&plain, 0);
        time(&sealed, 0);
        let (mut tp, mut ts, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..SEARCH_ROUNDS {
            let (x, y) = if i % 2 == 0 {
                (time(&plain, i), time(&sealed, i))
            } else {
                let y = time(&sealed, i);
                (time(&plain, i), y)
            };
            tp.push(x);
            ts.push(y);
            ratio.push(y / x);
        }
        let (lo, hi) = interval(ratio.clone());
        modes.insert(
            label.into(),
            serde_json::json!({
                "plain_p50_ms": median(tp.clone()),
                "sealed_p50_ms": median(ts.clone()),
                "ratio_of_p50": median(ts) / median(tp),
                "paired_ratio_median": median(ratio),
                "paired_ratio_p10": lo,
                "paired_ratio_p90": hi,
            }),
        );
    }
    let (lo, hi) = interval(ingest_ratio.clone());
    let out = serde_json::json!({
        "docs": COPIES * 13,
        "chunks": rows,
        "ingest": {
            "plain_s_median": median(plain_s.clone()),
            "sealed_s_median": median(sealed_s.clone()),
            "throughput_ratio_median": median(ingest_ratio),
            "throughput_ratio_p10": lo,
            "throughput_ratio_p90": hi,
            "rounds": INGEST_ROUNDS,
        },
        "search": modes,
        "search_rounds": SEARCH_ROUNDS,
    });
    let path = target_dir().join("bench-seal.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&out).expect("json")).expect("write");
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
}
