//! bear-rag benchmarks.
//!
//! - `rag/ingest_corpus` against `rag/embed_same_chunks`: the whole ingest pipeline (discover,
//!   extract, chunk, scrub, embed, store, index) on 8 copies of the demo corpus, against the
//!   embedder alone on the very chunks that ingest produced, in the same batches (each
//!   document's chunks in order, at most `embed_batch` per call, as the pipeline does). The
//!   copies stay in `<target>/bench-rag-corpus/` for the Python pipeline peer.
//! - `rag/ann_k10` and `rag/flat_k10`: top-10 search over 100,000 chunks of 384 dimensions,
//!   with LanceDB's IVF-HNSW-SQ index (BEAR's default tuning) and exact. A tuning sweep's recall@10
//!   against exact search, and the sizes the ratios need, go to `<target>/bench-rag.json`; the
//!   vectors go to `<target>/bench-rag-100k/` for the NumPy and Python lancedb peers.
//!
//! The 100,000 vectors are synthetic (a mixture of 2,000 clusters on the unit sphere), since
//! embedding 100,000 real chunks would take this machine most of an hour.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bear_core::{CancellationToken, Embedder, ModelId, PiiConfig, PiiPolicy, RagConfig};
use bear_rag::store::ChunkRow;
use bear_rag::{
    AnnTuning, Collection, DocumentRecord, Filter, IngestOptions, Pipeline, SearchMode, Store,
};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};

const N: usize = 100_000;
const DIM: usize = 384;
const QUERIES: usize = 200;
/// Copies of the demo corpus the ingest benchmark runs on.
const COPIES: usize = 8;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The default embedder on its default path (ONNX Runtime over the fused graph), 2 threads.
fn embedder() -> Arc<dyn Embedder> {
    let dirs = bear_core::Dirs::from_env(|k| std::env::var_os(k)).expect("dirs");
    let dir = dirs.models_dir.join(bear_core::assets::MINILM_DIR);
    let id = ModelId::new("all-MiniLM-L6-v2").expect("id");
    let candidates = bear_models::ort_dylib_candidates(None, &dirs.models_dir);
    let (e, path) =
        bear_models::bert::load(&id, &dir, &candidates, 2).expect("run `cargo xtask models` first");
    eprintln!("embedder  {} ({})", path.runtime, path.model.display());
    e
}

fn scrubber() -> Arc<bear_security::Scrubber> {
    let config = PiiConfig {
        default_policy: PiiPolicy::Replace,
        ..PiiConfig::default()
    };
    let detector = Arc::new(bear_security::Detector::new(&config).expect("detector"));
    let key = bear_security::crypto::ephemeral_hmac_key().expect("key");
    Arc::new(bear_security::Scrubber::new(detector, config, key, None).expect("scrubber"))
}

fn ingest_bench(c: &mut Criterion) {
    let rt = runtime();
    let embedder = embedder();
    let pipeline = Pipeline {
        embedder: embedder.clone(),
        scrubber: scrubber(),
        config: RagConfig::default(),
        persist_tokens: None,
        ocr: None,
    };
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/corpus");
    // Kept where the Python pipeline peer of `cargo xtask bench rag` reads the same files.
    let docs = target_dir().join("bench-rag-corpus");
    let _ = std::fs::remove_dir_all(&docs);
    std::fs::create_dir_all(&docs).expect("corpus dir");
    for copy in 0..COPIES {
        for e in std::fs::read_dir(&corpus).expect("corpus").flatten() {
            let p = e.path();
            if bear_rag::extract::Format::from_path(&p).is_some() {
                let name = format!("{copy:02}-{}", e.file_name().to_string_lossy());
                std::fs::copy(&p, docs.join(name)).expect("copy");
            }
        }
    }
    let run_ingest = |store_dir: &Path| -> (Duration, Collection, usize) {
        rt.block_on(async {
            let store = Store::new(store_dir);
            let col = store
                .create("bench", PiiPolicy::Replace, embedder.model().as_str(), DIM)
                .await
                .expect("collection");
            let t = Instant::now();
            let r = bear_rag::ingest(
                &col,
                &pipeline,
                std::slice::from_ref(&docs),
                &IngestOptions::default(),
                &mut |_: &bear_rag::Progress| {},
                &CancellationToken::new(),
            )
            .await
            .expect("ingest");
            assert!(r.failed.is_empty(), "{:?}", r.failed);
            (t.elapsed(), col, r.chunks)
        })
    };
    // The chunks the pipeline produces, for the embedder-only baseline.
    let probe = tempfile::tempdir().expect("tmp");
    let (_, col, chunks) = run_ingest(probe.path());
    let docs_chunks = rt.block_on(chunk_texts(&col));
    assert_eq!(docs_chunks.iter().map(Vec::len).sum::<usize>(), chunks);
    let mut g = c.benchmark_group("rag");
    g.sample_size(10).warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(40));
    g.sampling_mode(criterion::SamplingMode::Flat);
    g.bench_function("ingest_corpus", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tmp");
                total += run_ingest(dir.path()).0;
            }
            total
        })
    });
    g.bench_function("embed_same_chunks", |b| {
        b.iter(|| {
            rt.block_on(async {
                for doc in &docs_chunks {
                    for batch in doc.chunks(RagConfig::default().embed_batch) {
                        black_box(embedder.embed(batch).await.expect("embed"));
                    }
                }
            })
        })
    });
    g.finish();
    merge_json(serde_json::json!({
        "ingest_docs": COPIES * 13,
        "ingest_chunks": chunks,
        "ingest_corpus": docs,
    }));
}

/// Each document's chunk texts in ordinal order, as the pipeline embeds them.
async fn chunk_texts(col: &Collection) -> Vec<Vec<String>> {
    use futures::TryStreamExt;
    use lancedb::query::{ExecutableQuery, QueryBase, Select};
    let batches: Vec<arrow_array::RecordBatch> = col
        .chunks_table()
        .query()
        .select(Select::columns(&["document_id", "ordinal", "text"]))
        .execute()
        .await
        .expect("scan")
        .try_collect()
        .await
        .expect("scan");
    let mut rows: Vec<(String, u32, String)> = Vec::new();
    for b in &batches {
        let col = |name: &str| b.column_by_name(name).expect("column");
        let ids = col("document_id");
        let ids = ids
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .expect("ids");
        let ords = col("ordinal");
        let ords = ords
            .as_any()
            .downcast_ref::<arrow_array::UInt32Array>()
            .expect("ordinals");
        let texts = col("text");
        let texts = texts
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .expect("texts");
        for i in 0..b.num_rows() {
            rows.push((ids.value(i).into(), ords.value(i), texts.value(i).into()));
        }
    }
    rows.sort();
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut last: Option<String> = None;
    for (id, _, text) in rows {
        if last.as_ref() != Some(&id) {
            out.push(Vec::new());
            last = Some(id);
        }
        if let Some(doc) = out.last_mut() {
            doc.push(text);
        }
    }
    out
}

fn merge_json(v: serde_json::Value) {
    let path = target_dir().join("bench-rag.json");
    let mut cur: serde_json::Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    if let (Some(c), Some(n)) = (cur.as_object_mut(), v.as_object()) {
        for (k, x) in n {
            c.insert(k.clone(), x.clone());
        }
    }
    std::fs::write(&path, serde_json::to_string_pretty(&cur).expect("json")).expect("write");
}

fn normalized(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// 100,000 unit vectors around 2,000 random centres, and 200 queries near random rows.
fn dataset() -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let unit = |scale: f32, rng: &mut rand::rngs::StdRng| -> Vec<f32> {
        (0..DIM).map(|_| rng.random_range(-scale..scale)).collect()
    };
    let centres: Vec<Vec<f32>> = (0..2000)
        .map(|_| {
            let mut c = unit(1.0, &mut rng);
            normalized(&mut c);
            c
        })
        .collect();
    let mut rows = Vec::with_capacity(N);
    for _ in 0..N {
        let c = &centres[rng.random_range(0..centres.len())];
        let noise = unit(0.06, &mut rng);
        let mut v: Vec<f32> = c.iter().zip(noise).map(|(a, b)| a + b).collect();
        normalized(&mut v);
        rows.push(v);
    }
    let queries = (0..QUERIES)
        .map(|_| {
            let r = &rows[rng.random_range(0..N)];
            let noise = unit(0.05, &mut rng);
            let mut q: Vec<f32> = r.iter().zip(noise).map(|(a, b)| a + b).collect();
            normalized(&mut q);
            q
        })
        .collect();
    (rows, queries)
}

fn write_f32(path: &Path, rows: &[Vec<f32>]) {
    let bytes: Vec<u8> = rows
        .iter()
        .flatten()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    std::fs::write(path, bytes).expect("write vectors");
}

/// Exact top-10 ids by dot product (vectors are unit length).
fn truth(rows: &[Vec<f32>], q: &[f32]) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), i))
        .collect();
    scored.select_nth_unstable_by(10, |a, b| b.0.total_cmp(&a.0));
    let mut top: Vec<(f32, usize)> = scored[..10].to_vec();
    top.sort_by(|a, b| b.0.total_cmp(&a.0));
    top.into_iter().map(|(_, i)| i).collect()
}

/// The synthetic collection's name; a new name when its rows change shape, so that an older
/// store in the target directory is not reused.
const COLLECTION: &str = "synthetic-100k";

fn row_id(i: usize) -> String {
    format!("{:032x}-{i:06}", i / 100)
}

async fn build_collection(dir: &Path, rows: &[Vec<f32>]) -> Collection {
    let store = Store::new(dir);
    if store.exists(COLLECTION) {
        let c = store.open(COLLECTION).await.expect("open");
        if c.chunks_table().count_rows(None).await.expect("count") == N {
            // A store from before the index kind changed gets the current index.
            c.optimize(N).await.expect("optimize");
            return c;
        }
        store.remove(COLLECTION).expect("remove");
    }
    let c = store
        .create(COLLECTION, PiiPolicy::Replace, "synthetic", DIM)
        .await
        .expect("create");
    let docs_of_100: Vec<(usize, &[Vec<f32>])> = rows.chunks(100).enumerate().collect();
    for block in docs_of_100.chunks(100) {
        let docs: Vec<(DocumentRecord, Vec<ChunkRow>)> = block
            .iter()
            .map(|(doc, vs)| {
                let id = format!("{doc:032x}");
                let record = DocumentRecord {
                    id: id.clone(),
                    path: format!("/synthetic/{doc}.txt"),
                    title: format!("doc {doc}"),
                    author: None,
                    created: None,
                    modified: None,
                    file_modified: 0,
                    page_count: None,
                    mime: "text/plain".into(),
                    sha256: String::new(),
                    size: 0,
                    chunks: vs.len() as u32,
                    ingested_at: 0,
                    mail: None,
                };
                let rows = vs
                    .iter()
                    .enumerate()
                    .map(|(j, v)| ChunkRow {
                        id: row_id(doc * 100 + j),
                        document_id: id.clone(),
                        ordinal: j as u32,
                        text: format!("chunk {j} of document {doc}"),
                        vector: v.clone(),
                        // Where a 1,000-character chunk of a plain-text file would lie:
                        // real offsets, so no column is one repeated value (Lance stores
                        // those as constant pages, which real chunks never produce).
                        byte_range: (j as u64 * 1_000, j as u64 * 1_000 + 1_000),
                        char_range: (j as u64 * 1_000, j as u64 * 1_000 + 1_000),
                        page: None,
                        path: format!("/synthetic/{doc}.txt"),
                        title: format!("doc {doc}"),
                        file_modified: 0,
                        ocr_confidence: None,
                    })
                    .collect();
                (record, rows)
            })
            .collect();
        c.write(docs).await.expect("write");
    }
    c.build_vector_index(N).await.expect("index");
    c.optimize(usize::MAX).await.expect("optimize");
    c
}

fn search_bench(c: &mut Criterion) {
    let rt = runtime();
    let dir = target_dir().join("bench-rag-100k");
    std::fs::create_dir_all(&dir).expect("dir");
    let (rows, queries) = dataset();
    write_f32(&dir.join("vectors.f32"), &rows);
    write_f32(&dir.join("queries.f32"), &queries);
    let col = rt.block_on(build_collection(&dir.join("store"), &rows));
    let truths: Vec<Vec<usize>> = queries.iter().map(|q| truth(&rows, q)).collect();
    let search = |q: &[f32], t: AnnTuning| {
        rt.block_on(col.search(SearchMode::Vector, "", Some(q), 10, &Filter::default(), &t))
            .expect("search")
    };
    // The tuning sweep: recall@10 against exact, and p50 latency.
    let mut sweep = Vec::new();
    for (ef, refine) in [(16, 0), (32, 0), (64, 0), (128, 0), (32, 2), (64, 2)] {
        let t = AnnTuning {
            ef,
            refine_factor: refine,
            ..AnnTuning::default()
        };
        let mut found = 0usize;
        let mut lat = Vec::with_capacity(QUERIES);
        for (q, want) in queries.iter().zip(&truths) {
            let s = Instant::now();
            let hits = search(q, t);
            lat.push(s.elapsed().as_secs_f64() * 1e3);
            found += hits
                .iter()
                .filter(|h| want.iter().any(|&w| row_id(w) == h.chunk_id))
                .count();
        }
        lat.sort_by(f64::total_cmp);
        sweep.push(serde_json::json!({
            "nprobes": t.nprobes, "ef": ef, "refine_factor": refine,
            "recall_at_10": found as f64 / (10 * QUERIES) as f64,
            "p50_ms": lat[lat.len() / 2],
        }));
    }
    let exact_ok = {
        let hits = search(
            &queries[0],
            AnnTuning {
                exact: true,
                ..AnnTuning::default()
            },
        );
        hits.iter()
            .filter(|h| truths[0].iter().any(|&w| row_id(w) == h.chunk_id))
            .count()
    };
    merge_json(serde_json::json!({
        "n": N, "dim": DIM, "queries": QUERIES, "sweep": sweep,
        "default_tuning": AnnTuning::default(), "flat_recall_first_query": exact_ok as f64 / 10.0,
        "store": dir.join("store").join(COLLECTION),
    }));
    let mut g = c.benchmark_group("rag");
    g.sample_size(50);
    let mut i = 0;
    g.bench_function("ann_k10", |b| {
        b.iter(|| {
            i = (i + 1) % QUERIES;
            black_box(search(&queries[i], AnnTuning::default()))
        })
    });
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("flat_k10", |b| {
        b.iter(|| {
            i = (i + 1) % QUERIES;
            black_box(search(
                &queries[i],
                AnnTuning {
                    exact: true,
                    ..AnnTuning::default()
                },
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, ingest_bench, search_bench);
criterion_main!(benches);
