//! Ingestion of the demo corpus and of bad files, idempotent re-ingest, sync, deletion, and
//! retrieval of the right document and page for known questions.

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch, StringArray};
use bear_core::{CancellationToken, PiiPolicy, PiiScrubber, RagConfig};
use bear_rag::extract::Refusal;
use bear_rag::{Filter, IngestOptions, IngestReport, SearchMode};
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select};

use crate::Env;

async fn run(env: &Env, c: &bear_rag::Collection, paths: &[PathBuf], sync: bool) -> IngestReport {
    let mut events = Vec::new();
    let report = bear_rag::ingest(
        c,
        &env.pipeline(RagConfig::default()),
        paths,
        &IngestOptions { sync },
        &mut |p: &bear_rag::Progress| events.push(p.clone()),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let done = events
        .iter()
        .filter(|e| matches!(e, bear_rag::Progress::Ingested { .. }))
        .count();
    assert_eq!(
        done,
        report.ingested.len(),
        "one progress event per stored document"
    );
    report
}

fn name(p: &str) -> &str {
    Path::new(p)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
}

/// Every chunk row's `columns`.
async fn chunk_columns(c: &bear_rag::Collection, columns: &[&str]) -> Vec<RecordBatch> {
    c.chunks_table()
        .query()
        .select(Select::columns(columns))
        .execute()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

async fn all_texts(c: &bear_rag::Collection) -> Vec<(String, String)> {
    let batches = chunk_columns(c, &["document_id", "text"]).await;
    let mut out = Vec::new();
    for b in &batches {
        let ids = b.column_by_name("document_id").unwrap();
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let texts = b.column_by_name("text").unwrap();
        let texts = texts.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            out.push((ids.value(i).to_string(), texts.value(i).to_string()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_is_ingested_scrubbed_and_found_by_page() {
    let env = Env::new(PiiPolicy::Tokenize);
    let c = env.collection("matter-a").await;
    let report = run(&env, &c, &[crate::corpus()], false).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.ingested.len(), 13, "{:?}", report.ingested);
    assert!(report.chunks >= 13);
    let docs = c.documents().await.unwrap();
    assert_eq!(docs.len(), 13);
    let lease = docs
        .iter()
        .find(|d| name(&d.path) == "commercial-lease.pdf")
        .unwrap();
    assert_eq!(lease.page_count, Some(4));
    assert_eq!(lease.mime, "application/pdf");
    assert_eq!(lease.title, "Commercial Lease Agreement");
    assert_eq!(lease.created.as_deref(), Some("2024-03-15T09:30:00"));
    assert_eq!(lease.sha256.len(), 64);
    let letter = docs
        .iter()
        .find(|d| name(&d.path) == "mandantenbrief-latin1.txt")
        .unwrap();
    assert!(letter.chunks >= 1);

    // PII is tokenised in storage and restorable for the local user.
    let texts = all_texts(&c).await;
    let joined: String = texts
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for secret in [
        "t.devries@example.com",
        "NL91ABNA0417164300",
        "maria.gonzalez@example.org",
    ] {
        assert!(!joined.contains(secret), "{secret} stored in clear");
    }
    let restored = PiiScrubber::restore(env.scrubber.as_ref(), &joined).unwrap();
    assert!(restored.contains("t.devries@example.com"));
    assert!(restored.contains("NL91ABNA0417164300"));
    assert!(
        restored.contains("Kündigungsfrist"),
        "latin-1 letter decoded"
    );

    let retriever =
        bear_rag::RagRetriever::new(env.store.clone(), crate::embedder(), env.scrubber.clone());
    let top = |q: &'static str, mode: SearchMode| {
        let (r, c) = (&retriever, &c);
        async move { r.search(c, q, mode, 5, &Filter::default()).await.unwrap() }
    };
    for (q, file, page) in [
        (
            "What is the monthly rent for the office?",
            "commercial-lease.pdf",
            Some(2),
        ),
        (
            "How much notice is needed to terminate the lease?",
            "commercial-lease.pdf",
            Some(3),
        ),
        (
            "What penalty applies for breaching the non-compete?",
            "employment-agreement.docx",
            Some(2),
        ),
        (
            "How long are client files retained?",
            "privacy-notice.md",
            None,
        ),
        (
            "Why did the court annul the summary dismissal?",
            "judgment-dismissal.html",
            None,
        ),
        (
            "What is the interest rate on the loan?",
            "loan-agreement.md",
            None,
        ),
    ] {
        for mode in [SearchMode::Hybrid, SearchMode::Vector] {
            let hits = top(q, mode).await;
            let h = &hits[0];
            assert_eq!(name(&h.path), file, "{q} ({mode:?}): {hits:#?}");
            assert_eq!(h.page, page, "{q} ({mode:?})");
            assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        }
    }
    // Full text: BM25 over LanceDB's FTS index.
    let hits = top("gearbox housings", SearchMode::FullText).await;
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| {
        let n = name(&h.path);
        n == "supply-agreement.txt" || n == "settlement-agreement.pdf"
    }));
    // PII is found through its token: the query is scrubbed the same way, and tokens are
    // deterministic per keyring.
    let hits = top("mail from t.devries@example.com", SearchMode::FullText).await;
    assert_eq!(name(&hits[0].path), "employment-agreement.docx");

    // Filters: one document; a date window that excludes everything.
    let only = Filter {
        document: Some(lease.id.clone()),
        ..Filter::default()
    };
    let hits = retriever
        .search(&c, "payment", SearchMode::Hybrid, 5, &only)
        .await
        .unwrap();
    assert!(!hits.is_empty() && hits.iter().all(|h| h.document_id == lease.id));
    let none = Filter {
        modified_before: Some(0),
        ..Filter::default()
    };
    let hits = retriever
        .search(&c, "payment", SearchMode::Vector, 5, &none)
        .await
        .unwrap();
    assert!(hits.is_empty());

    // Citations carry offsets into the extracted text.
    let h = &top(
        "What is the monthly rent for the office?",
        SearchMode::Vector,
    )
    .await[0];
    assert!(h.byte_range.0 < h.byte_range.1 && h.char_range.0 < h.char_range.1);

    // bear-core's Retriever trait, as agents and the API use it.
    use bear_core::Retriever;
    let q = |collection: &str| bear_core::RetrievalQuery {
        collection: bear_core::CollectionId::new(collection).unwrap(),
        text: bear_core::Redacted::new("What is the monthly rent for the office?".into()),
        top_k: 3,
    };
    let got = retriever.retrieve(&q("matter-a")).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].document.as_str(), lease.id);
    assert_eq!(got[0].source, "Commercial Lease Agreement");
    let err = retriever.retrieve(&q("no-such-matter")).await.unwrap_err();
    assert_eq!(err.kind(), bear_core::ErrorKind::NotFound);

    // Collections are isolated.
    let other = env.collection("matter-b").await;
    let hits = retriever
        .search(
            &other,
            "monthly rent",
            SearchMode::Vector,
            5,
            &Filter::default(),
        )
        .await
        .unwrap();
    assert!(hits.is_empty());
    let listed = env.store.list().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].documents, 13);
    assert_eq!(listed[1].documents, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reingest_is_idempotent_and_sync_removes_vanished_files() {
    let env = Env::new(PiiPolicy::Replace);
    let c = env.collection("sync").await;
    let dir = env.dir.path().join("docs");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for f in ["loan-agreement.md", "supply-agreement.txt"] {
        std::fs::copy(crate::corpus().join(f), dir.join(f)).unwrap();
    }
    std::fs::copy(
        crate::corpus().join("privacy-notice.md"),
        dir.join("sub/privacy-notice.md"),
    )
    .unwrap();
    let first = run(&env, &c, std::slice::from_ref(&dir), false).await;
    assert_eq!(first.ingested.len(), 3);
    let chunks_before = all_texts(&c).await.len();

    let again = run(&env, &c, std::slice::from_ref(&dir), false).await;
    assert!(again.ingested.is_empty());
    assert_eq!(again.unchanged.len(), 3);
    assert_eq!(all_texts(&c).await.len(), chunks_before);

    // A changed file replaces its chunks; nothing is duplicated.
    let loan = dir.join("loan-agreement.md");
    std::fs::write(
        &loan,
        "# Loan Agreement\n\nThe interest rate is 6 percent per annum.\n",
    )
    .unwrap();
    let changed = run(&env, &c, std::slice::from_ref(&dir), false).await;
    assert_eq!(changed.ingested.len(), 1);
    assert_eq!(changed.unchanged.len(), 2);
    let docs = c.documents().await.unwrap();
    let texts = all_texts(&c).await;
    for d in &docs {
        let n = texts.iter().filter(|(id, _)| *id == d.id).count();
        assert_eq!(n as u32, d.chunks, "{}", d.path);
    }
    assert!(texts.iter().any(|(_, t)| t.contains("6 percent")));
    assert!(!texts.iter().any(|(_, t)| t.contains("4.5 percent")));

    // Include and exclude globs.
    let cfg = RagConfig {
        exclude: vec!["sub".into()],
        ..RagConfig::default()
    };
    let fresh = env.collection("globs").await;
    let mut sink = |_: &bear_rag::Progress| {};
    let r = bear_rag::ingest(
        &fresh,
        &env.pipeline(cfg),
        std::slice::from_ref(&dir),
        &IngestOptions::default(),
        &mut sink,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.ingested.len(), 2);
    assert!(r.ingested.iter().all(|d| !d.path.contains("privacy")));

    // --sync removes documents whose files vanished.
    std::fs::remove_file(dir.join("supply-agreement.txt")).unwrap();
    let synced = run(&env, &c, std::slice::from_ref(&dir), true).await;
    assert_eq!(synced.removed.len(), 1);
    assert!(synced.removed[0].ends_with("supply-agreement.txt"));
    assert_eq!(c.documents().await.unwrap().len(), 2);

    // Deleting a document removes its chunks.
    let id = c.documents().await.unwrap()[0].id.clone();
    c.delete_documents(std::slice::from_ref(&id)).await.unwrap();
    assert!(all_texts(&c).await.iter().all(|(d, _)| *d != id));
    assert_eq!(c.remove_orphans().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_fail_alone_with_reasons() {
    let env = Env::new(PiiPolicy::Redact);
    let c = env.collection("bad").await;
    let dir = env.dir.path().join("mixed");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        crate::corpus().join("loan-agreement.md"),
        dir.join("good.md"),
    )
    .unwrap();
    std::fs::write(dir.join("empty.txt"), b"").unwrap();
    std::fs::write(
        dir.join("program.txt"),
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0",
    )
    .unwrap();
    std::fs::write(dir.join("scan.pdf"), b"%PDF-1.4\n%\xe2\xe3\n").unwrap();
    std::fs::write(dir.join("broken.docx"), b"PK\x03\x04garbage").unwrap();
    // One 100 kB line with no spaces at all: chunked, never one giant chunk.
    std::fs::write(dir.join("one-line.txt"), "x".repeat(100 << 10)).unwrap();
    std::fs::write(dir.join("notes.xyz"), b"ignored: not a document format").unwrap();
    std::fs::write(dir.join("old-brief.doc"), b"\xd0\xcf\x11\xe0 legacy").unwrap();
    std::fs::write(dir.join("notes.rtf"), b"{\\rtf1\\ansi Notes on the lease}").unwrap();
    std::fs::write(dir.join("fake.rtf"), b"Notes, not in Rich Text").unwrap();
    let missing = env.dir.path().join("does-not-exist.pdf");
    let report = run(&env, &c, &[dir.clone(), missing.clone()], false).await;
    let ingested: Vec<&str> = report.ingested.iter().map(|d| name(&d.path)).collect();
    assert_eq!(ingested.len(), 3, "{ingested:?}");
    assert!(ingested.contains(&"good.md") && ingested.contains(&"one-line.txt"));
    assert!(ingested.contains(&"notes.rtf"));
    let reason = |f: &str| {
        report
            .failed
            .iter()
            .find(|x| name(&x.path) == f)
            .map(|x| x.refusal.clone())
            .unwrap_or_else(|| panic!("{f} not reported: {:?}", report.failed))
    };
    assert_eq!(reason("empty.txt"), Refusal::Empty);
    assert_eq!(reason("program.txt"), Refusal::Binary);
    assert!(matches!(reason("scan.pdf"), Refusal::MalformedPdf { .. }));
    assert!(matches!(
        reason("broken.docx"),
        Refusal::MalformedDocx { .. }
    ));
    assert_eq!(reason("does-not-exist.pdf"), Refusal::NotFound);
    // A legacy Office file in a folder is reported with what to do, not skipped.
    let legacy = report
        .failed
        .iter()
        .find(|x| name(&x.path) == "old-brief.doc")
        .unwrap();
    assert!(
        legacy.reason.contains("save it as .docx"),
        "{}",
        legacy.reason
    );
    assert!(matches!(reason("fake.rtf"), Refusal::Malformed { .. }));
    assert_eq!(report.failed.len(), 7, "{:?}", report.failed);
    let long = c
        .documents()
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.path.ends_with("one-line.txt"))
        .unwrap();
    assert!(long.chunks >= 40, "{} chunks", long.chunks);
    // A file over the size limit is refused before it is read.
    let small = RagConfig {
        max_file_bytes: 64 << 10,
        ..RagConfig::default()
    };
    let mut sink = |_: &bear_rag::Progress| {};
    let r = bear_rag::ingest(
        &c,
        &env.pipeline(small),
        &[dir.join("one-line.txt")],
        &IngestOptions::default(),
        &mut sink,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(matches!(r.failed[0].refusal, Refusal::TooLarge { .. }));
    // The failure text names the file and limit, never its content.
    assert!(!r.failed[0].reason.contains("xxxx"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_refuses_a_different_embedder() {
    let env = Env::new(PiiPolicy::Redact);
    env.store
        .create("other-model", PiiPolicy::Redact, "some-other-model", 768)
        .await
        .unwrap();
    let c = env.store.open("other-model").await.unwrap();
    let mut sink = |_: &bear_rag::Progress| {};
    let err = bear_rag::ingest(
        &c,
        &env.pipeline(RagConfig::default()),
        &[crate::corpus()],
        &IngestOptions::default(),
        &mut sink,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, bear_rag::Error::EmbedderMismatch { .. }),
        "{err}"
    );
    assert!(matches!(
        env.store.open("missing").await.unwrap_err(),
        bear_rag::Error::NoCollection { .. }
    ));
    assert!(matches!(
        env.store.open("../etc").await.unwrap_err(),
        bear_rag::Error::InvalidCollectionName { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ann_index_is_built_above_the_threshold() {
    let env = Env::new(PiiPolicy::Redact);
    let c = env.collection("ann").await;
    let dir = env.dir.path().join("many");
    std::fs::create_dir_all(&dir).unwrap();
    // 300 one-chunk documents (headings keep them apart), over a threshold of 256 rows.
    for i in 0..300 {
        std::fs::write(
            dir.join(format!("n{i:03}.md")),
            format!("# Note {i}\n\nClause {i} sets a deadline of {i} days for the reply.\n"),
        )
        .unwrap();
    }
    let cfg = RagConfig {
        ann_threshold: 256,
        ..RagConfig::default()
    };
    let mut sink = |_: &bear_rag::Progress| {};
    let r = bear_rag::ingest(
        &c,
        &env.pipeline(cfg),
        std::slice::from_ref(&dir),
        &IngestOptions::default(),
        &mut sink,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.chunks, 300);
    let indices = c.chunks_table().list_indices().await.unwrap();
    assert!(
        indices.iter().any(|i| i.columns == ["vector"]),
        "{indices:?}"
    );
    assert!(indices.iter().any(|i| i.columns == ["text"]));
    let retriever =
        bear_rag::RagRetriever::new(env.store.clone(), crate::embedder(), env.scrubber.clone());
    let hits = retriever
        .search(
            &c,
            "deadline of 137 days",
            SearchMode::Hybrid,
            3,
            &Filter::default(),
        )
        .await
        .unwrap();
    assert_eq!(name(&hits[0].path), "n137.md", "{hits:#?}");

    // Exact search (from memory) agrees with a brute-force scan of the stored vectors, with
    // and without filters, and a write is seen by the next search.
    let q = crate::embedder()
        .embed(&["deadline of 137 days".to_string()])
        .await
        .unwrap()
        .remove(0);
    let exact = bear_rag::AnnTuning {
        exact: true,
        ..bear_rag::AnnTuning::default()
    };
    let search = |filter: Filter| {
        let (c, q) = (c.clone(), q.clone());
        async move {
            c.search(SearchMode::Vector, "", Some(&q), 5, &filter, &exact)
                .await
                .unwrap()
        }
    };
    let batches = chunk_columns(&c, &["id", "vector"]).await;
    let mut brute = Vec::new();
    for b in &batches {
        let ids = b.column_by_name("id").unwrap().as_string::<i32>();
        let vs = b.column_by_name("vector").unwrap().as_fixed_size_list();
        for i in 0..b.num_rows() {
            let v = vs.value(i);
            let v = v.as_primitive::<arrow_array::types::Float32Type>().values();
            let dot: f32 = v.iter().zip(&q).map(|(a, b)| a * b).sum();
            let norms = v.iter().map(|x| x * x).sum::<f32>().sqrt()
                * q.iter().map(|x| x * x).sum::<f32>().sqrt();
            brute.push((dot / norms, ids.value(i).to_string()));
        }
    }
    brute.sort_by(|a, b| b.0.total_cmp(&a.0));
    // The ANN index (IVF-HNSW-SQ) with the default tuning finds the true neighbours.
    assert_eq!(
        c.vector_index_kind().await.unwrap().as_deref(),
        Some("IVF_HNSW_SQ")
    );
    let ann = c
        .search(
            SearchMode::Vector,
            "",
            Some(&q),
            5,
            &Filter::default(),
            &bear_rag::AnnTuning::default(),
        )
        .await
        .unwrap();
    assert_eq!(ann[0].chunk_id, brute[0].1, "{ann:#?}");
    let found = ann
        .iter()
        .filter(|h| brute[..5].iter().any(|b| b.1 == h.chunk_id))
        .count();
    assert!(found >= 4, "ANN recall@5 {found}/5");
    // A collection indexed by an older BEAR (IVF-PQ) gets the current index on optimize.
    c.chunks_table()
        .create_index(
            &["vector"],
            lancedb::index::Index::IvfPq(
                lancedb::index::vector::IvfPqIndexBuilder::default().num_partitions(2),
            ),
        )
        .replace(true)
        .execute()
        .await
        .unwrap();
    assert_eq!(
        c.vector_index_kind().await.unwrap().as_deref(),
        Some("IVF_PQ")
    );
    c.optimize(256).await.unwrap();
    assert_eq!(
        c.vector_index_kind().await.unwrap().as_deref(),
        Some(bear_rag::VECTOR_INDEX)
    );
    let hits = search(Filter::default()).await;
    assert_eq!(
        hits.iter().map(|h| h.chunk_id.clone()).collect::<Vec<_>>(),
        brute[..5].iter().map(|b| b.1.clone()).collect::<Vec<_>>()
    );
    for (h, b) in hits.iter().zip(&brute) {
        assert!((h.score - b.0).abs() < 1e-4, "{} vs {}", h.score, b.0);
    }
    assert_eq!(name(&hits[0].path), "n137.md");
    assert!(
        hits[0].text.contains("137 days"),
        "the hit carries its text"
    );
    let only = Filter {
        document: Some(hits[3].document_id.clone()),
        ..Filter::default()
    };
    let one = search(only).await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].chunk_id, hits[3].chunk_id);
    let future = Filter {
        modified_after: Some(i64::MAX),
        ..Filter::default()
    };
    assert!(search(future).await.is_empty());
    c.delete_documents(std::slice::from_ref(&hits[0].document_id))
        .await
        .unwrap();
    let after = search(Filter::default()).await;
    assert_eq!(
        after[0].chunk_id, hits[1].chunk_id,
        "the deleted chunk is gone"
    );
    let err = c
        .search(
            SearchMode::Vector,
            "",
            Some(&q[..10]),
            5,
            &Filter::default(),
            &exact,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("dimensions"), "{err}");
}

#[tokio::test]
async fn a_store_under_an_awkward_path_reads_alike_with_and_without_io_uring() {
    let env = Env::new(PiiPolicy::Redact);
    // Characters a URL would treat specially: the io_uring path goes through one.
    let root = env.dir.path().join("my matters #1 %41 ü?");
    let e = crate::embedder();
    let uring = bear_rag::Store::new(&root).io_uring(true);
    let c = uring
        .create("c", PiiPolicy::Tokenize, e.model().as_str(), e.dimension())
        .await
        .unwrap();
    let docs = env.dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for (f, text) in [
        (
            "lease.md",
            "The tenant must give ninety days notice to terminate the lease.",
        ),
        (
            "nda.md",
            "The recipient keeps the disclosed information confidential.",
        ),
    ] {
        std::fs::write(docs.join(f), text).unwrap();
    }
    let r = run(&env, &c, std::slice::from_ref(&docs), false).await;
    assert_eq!(r.ingested.len(), 2);
    assert!(
        root.join("c/chunks.lance").is_dir(),
        "the tables live at the literal path"
    );
    let retriever = bear_rag::RagRetriever::new(uring.clone(), e.clone(), env.scrubber.clone());
    let query = "notice to end the lease";
    let with = retriever
        .search(&c, query, SearchMode::Vector, 2, &Filter::default())
        .await
        .unwrap();
    assert_eq!(name(&with[0].path), "lease.md", "{with:#?}");

    let plain = bear_rag::Store::new(&root).io_uring(false);
    let c2 = plain.open("c").await.unwrap();
    let retriever = bear_rag::RagRetriever::new(plain, e, env.scrubber.clone());
    let without = retriever
        .search(&c2, query, SearchMode::Vector, 2, &Filter::default())
        .await
        .unwrap();
    let ids = |h: &[bear_rag::Hit]| h.iter().map(|h| h.chunk_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&with), ids(&without));
    assert_eq!(with[0].text, without[0].text);
    // Nothing was made under another name: not the percent-encoded path beside the store,
    // nor a `file+uring:` tree in the working directory (LanceDB creates a database's
    // directory from its URI, taken literally).
    let siblings: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("%20"))
        .collect();
    assert!(siblings.is_empty(), "{siblings:?}");
    assert!(!std::path::Path::new("file+uring:").exists());
}

#[tokio::test]
async fn a_collection_removed_and_created_again_reads_its_new_rows() {
    let env = Env::new(PiiPolicy::Redact);
    let e = crate::embedder();
    let docs = |dir: &str, files: &[(&str, &str)]| {
        let d = env.dir.path().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        for (f, text) in files {
            std::fs::write(d.join(f), text).unwrap();
        }
        d
    };
    let first = docs(
        "first",
        &[(
            "lease.md",
            "The tenant must give ninety days notice to end the lease.",
        )],
    );
    let second = docs(
        "second",
        &[
            (
                "nda.md",
                "The recipient keeps the disclosed information confidential.",
            ),
            (
                "loan.md",
                "The borrower repays the loan in twelve monthly instalments.",
            ),
        ],
    );
    let retriever = bear_rag::RagRetriever::new(env.store.clone(), e.clone(), env.scrubber.clone());
    for round in 0..3 {
        let (dir, want) = if round % 2 == 0 {
            (&first, 1)
        } else {
            (&second, 2)
        };
        let c = env
            .store
            .create(
                "again",
                PiiPolicy::Tokenize,
                e.model().as_str(),
                e.dimension(),
            )
            .await
            .unwrap();
        run(&env, &c, std::slice::from_ref(dir), false).await;
        let c = env.store.open("again").await.unwrap();
        let hits = retriever
            .search(&c, "notice", SearchMode::Vector, 5, &Filter::default())
            .await
            .unwrap();
        assert_eq!(hits.len(), want, "round {round}: {hits:#?}");
        let list = env.store.list().await.unwrap();
        assert_eq!(list[0].documents, want, "round {round}");
        env.store.remove("again").unwrap();
    }
}

/// A new collection `c` and a second, separately opened handle on it (as another process has).
async fn two_handles(env: &Env) -> (bear_rag::Collection, bear_rag::Collection) {
    let e = crate::embedder();
    let first = env
        .store
        .create("c", PiiPolicy::Redact, e.model().as_str(), e.dimension())
        .await
        .unwrap();
    (first, env.store.open("c").await.unwrap())
}

/// Two handles on one collection, as two processes have (`bear ingest` while bear-server
/// runs), writing at the same time: every write is kept. (Tables read through io_uring are
/// `file+uring://` to Lance, whose commit handler for that scheme does not detect a commit
/// racing another, so one manifest could overwrite the other.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_from_two_handles_are_all_kept() {
    let env = Env::new(PiiPolicy::Redact);
    let (first, second) = two_handles(&env).await;
    let docs = env.dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("lease.md"),
        "The tenant must give ninety days notice to terminate the lease.",
    )
    .unwrap();
    assert_eq!(run(&env, &first, &[docs], false).await.ingested.len(), 1);
    let schema = first.chunks_table().schema().await.unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let rows = chunk_columns(&first, &names).await.remove(0);
    let per_write = rows.num_rows();
    const WRITES: usize = 12;
    let writer = |c: &bear_rag::Collection| {
        let table = c.chunks_table().clone();
        let rows = rows.clone();
        tokio::spawn(async move {
            for _ in 0..WRITES {
                table.add(rows.clone()).execute().await.unwrap();
            }
        })
    };
    let (a, b) = (writer(&first), writer(&second));
    a.await.unwrap();
    b.await.unwrap();
    let reopened = env.store.open("c").await.unwrap();
    let count = reopened.chunks_table().count_rows(None).await.unwrap();
    assert_eq!(count, per_write * (1 + 2 * WRITES));
}

/// Two handles ingesting the same folder at the same time, as `bear ingest` in two terminals
/// (or the CLI while bear-server ingests it): each document is stored once, with its chunks
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_folder_ingested_twice_at_once_is_stored_once() {
    let env = Env::new(PiiPolicy::Redact);
    let (first, second) = two_handles(&env).await;
    let docs = env.dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for i in 0..6 {
        std::fs::write(
            docs.join(format!("doc{i}.md")),
            format!("Clause {i}. The tenant must give {i} days notice to terminate the lease."),
        )
        .unwrap();
    }
    let paths = [docs];
    let (a, b) = tokio::join!(
        run(&env, &first, &paths, false),
        run(&env, &second, &paths, false)
    );
    assert_eq!(a.failed.len() + b.failed.len(), 0);
    let reopened = env.store.open("c").await.unwrap();
    let documents = reopened.documents().await.unwrap();
    assert_eq!(documents.len(), 6, "{documents:#?}");
    let ids = chunk_columns(&reopened, &["id"]).await;
    let ids: Vec<String> = ids
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_string::<i32>().clone();
            (0..c.len())
                .map(|i| c.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a chunk stored twice");
    let chunks: usize = documents.iter().map(|d| d.chunks as usize).sum();
    assert_eq!(ids.len(), chunks);
}

/// A collection records the code its first vectors came from (issue 30's "the same vectors
/// everywhere"); an ingest whose embedder runs the same model on other code goes ahead and
/// reports the recorded runtime, which stays recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_records_its_embedder_runtime_and_reports_a_switch() {
    let env = Env::new(PiiPolicy::Redact);
    let c = env.collection("runtime").await;
    let file = [crate::corpus().join("mutual-nda.md")];
    let ingest = |pipeline: bear_rag::Pipeline| {
        let (c, file) = (c.clone(), file.clone());
        async move {
            let mut sink = |_: &bear_rag::Progress| {};
            bear_rag::ingest(
                &c,
                &pipeline,
                &file,
                &IngestOptions::default(),
                &mut sink,
                &CancellationToken::new(),
            )
            .await
            .unwrap()
        }
    };
    let first = ingest(env.pipeline(RagConfig::default())).await;
    assert_eq!(first.built_with_runtime, None);
    let candle = crate::embedder().runtime().unwrap();
    assert_eq!(candle.name, "candle");
    let meta = env.store.meta("runtime").unwrap();
    assert_eq!(meta.embedder_runtime.as_ref(), Some(&candle));

    let dir = crate::models_dir().join(bear_core::assets::MINILM_DIR);
    let candidates = bear_models::ort_dylib_candidates(None, &crate::models_dir());
    let (fused, path) = bear_models::bert::load(
        &bear_core::ModelId::new("all-MiniLM-L6-v2").unwrap(),
        &dir,
        &candidates,
        2,
    )
    .unwrap();
    assert_eq!(path.runtime, "onnxruntime", "{:?}", path.note);
    let mut pipeline = env.pipeline(RagConfig::default());
    pipeline.embedder = fused;
    let second = ingest(pipeline).await;
    assert_eq!(second.built_with_runtime.as_ref(), Some(&candle));
    let meta = env.store.meta("runtime").unwrap();
    assert_eq!(meta.embedder_runtime, Some(candle));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_files_are_ingested_and_found_by_slide_and_sheet() {
    let env = Env::new(PiiPolicy::Replace);
    let c = env.collection("office").await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let office: Vec<PathBuf> = [
        "damages.xlsx",
        "hearing.pptx",
        "hours.ods",
        "settlement.odt",
    ]
    .map(|f| fixtures.join(f))
    .to_vec();
    let report = run(&env, &c, &office, false).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.ingested.len(), 4, "{:?}", report.ingested);
    let docs = c.documents().await.unwrap();
    let mime = |file: &str| {
        let d = docs.iter().find(|d| name(&d.path) == file).unwrap();
        (d.mime.clone(), d.page_count, d.title.clone())
    };
    assert_eq!(
        mime("hearing.pptx"),
        (
            "application/vnd.openxmlformats-officedocument.presentationml.presentation".into(),
            Some(2),
            "Hearing deck".into()
        )
    );
    assert_eq!(mime("damages.xlsx").1, Some(2));
    assert_eq!(mime("settlement.odt").2, "Settlement draft");

    let retriever =
        bear_rag::RagRetriever::new(env.store.clone(), crate::embedder(), env.scrubber.clone());
    for (q, file, page, passage) in [
        (
            "speaker notes invoices November",
            "hearing.pptx",
            Some(2),
            "Stress the invoices",
        ),
        (
            "Storage costs invoice INV-2024-130",
            "damages.xlsx",
            Some(1),
            "[Damages!A3:C3] Storage costs | 1250.5 | INV-2024-130",
        ),
        (
            "weekly call hours",
            "hours.ods",
            Some(1),
            "[Hours!A3:C3] weekly call | 1",
        ),
        (
            "respondent pays within 30 days",
            "settlement.odt",
            None,
            "EUR 12,500",
        ),
    ] {
        let hits = retriever
            .search(&c, q, SearchMode::FullText, 5, &Filter::default())
            .await
            .unwrap();
        let h = hits.first().unwrap_or_else(|| panic!("{q}: no hit"));
        assert_eq!(name(&h.path), file, "{q}: {hits:#?}");
        assert_eq!(h.page, page, "{q}");
        assert!(h.text.contains(passage), "{q}: {}", h.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_and_their_attachments_are_documents_kept_in_step_with_the_file() {
    let env = Env::new(PiiPolicy::Replace);
    let c = env.collection("mail").await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = env.dir.path().join("mail");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["schedule.eml", "thread.mbox"] {
        std::fs::copy(fixtures.join(f), dir.join(f)).unwrap();
    }
    let report = run(&env, &c, std::slice::from_ref(&dir), false).await;
    let mut ingested: Vec<String> = report
        .ingested
        .iter()
        .map(|d| d.path.rsplit_once("/mail/").unwrap().1.to_string())
        .collect();
    ingested.sort();
    assert_eq!(
        ingested,
        [
            "schedule.eml",
            "schedule.eml/attachment-1/damages.xlsx",
            "schedule.eml/attachment-2/message.eml",
            "schedule.eml/attachment-2/message.eml/attachment-1/penalty-note.txt",
            "thread.mbox",
            "thread.mbox/message-2",
        ]
    );
    // The attachment BEAR does not read fails alone, named below its message.
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert!(
        report.failed[0]
            .path
            .ends_with("schedule.eml/attachment-3/setup.exe")
    );
    let docs = c.documents().await.unwrap();
    let message = docs
        .iter()
        .find(|d| d.path.ends_with("schedule.eml"))
        .unwrap();
    assert_eq!(message.title, "Damages schedule for the oven claim");
    assert_eq!(message.mime, "message/rfc822");

    let retriever =
        bear_rag::RagRetriever::new(env.store.clone(), crate::embedder(), env.scrubber.clone());
    let hits = retriever
        .search(
            &c,
            "penalty interest percent",
            SearchMode::FullText,
            3,
            &Filter::default(),
        )
        .await
        .unwrap();
    assert!(
        hits[0]
            .path
            .ends_with("schedule.eml/attachment-2/message.eml/attachment-1/penalty-note.txt"),
        "{hits:#?}"
    );
    assert_eq!(hits[0].title, "penalty-note.txt");

    // Unchanged: nothing is read again.
    let again = run(&env, &c, std::slice::from_ref(&dir), false).await;
    assert!(
        again.ingested.is_empty() && again.unchanged.len() == 2,
        "{again:?}"
    );

    // The mailbox loses its second message: that document goes with it.
    let bytes = std::fs::read(dir.join("thread.mbox")).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let second = text.match_indices("\nFrom ").next().unwrap().0;
    std::fs::write(dir.join("thread.mbox"), &text[..second + 1]).unwrap();
    let changed = run(&env, &c, std::slice::from_ref(&dir), false).await;
    assert!(
        changed
            .removed
            .iter()
            .any(|p| p.ends_with("thread.mbox/message-2")),
        "{changed:?}"
    );
    // The e-mail is deleted: with sync, its attachments go too.
    std::fs::remove_file(dir.join("schedule.eml")).unwrap();
    let synced = run(&env, &c, std::slice::from_ref(&dir), true).await;
    assert_eq!(synced.removed.len(), 4, "{synced:?}");
    let left: Vec<String> = c
        .documents()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.path)
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with("thread.mbox"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_are_filtered_by_their_header_fields_and_threads() {
    let env = Env::new(PiiPolicy::Tokenize);
    let c = env.collection("threads").await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = env.dir.path().join("mail");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["schedule.eml", "thread.mbox", "damages.xlsx"] {
        std::fs::copy(fixtures.join(f), dir.join(f)).unwrap();
    }
    run(&env, &c, std::slice::from_ref(&dir), false).await;
    let docs = c.documents().await.unwrap();
    let id = |end: &str| {
        let d = docs.iter().find(|d| d.path.ends_with(end)).unwrap();
        d.id.clone()
    };
    let (schedule, demand) = (id("schedule.eml"), id("attachment-2/message.eml"));
    let (oven1, oven2) = (id("thread.mbox"), id("thread.mbox/message-2"));

    // The fields are kept, scrubbed like the text; the sending time is read from the Date.
    let m = docs
        .iter()
        .find(|d| d.id == schedule)
        .and_then(|d| d.mail.clone())
        .unwrap();
    let from = m.from.as_deref().unwrap();
    assert!(!from.contains("a.visser@lawfirm.example"), "{from}");
    assert!(
        env.scrubber
            .restore(from)
            .contains("a.visser@lawfirm.example")
    );
    assert_eq!(m.sent, Some(1_714_732_200));
    assert!(docs.iter().filter(|d| d.mail.is_some()).count() == 4);
    // Replies are linked to the messages they answer.
    let links = bear_rag::store::reply_links(&docs);
    assert_eq!(links.get(&schedule), Some(&demand));
    assert_eq!(links.get(&oven2), Some(&oven1));
    assert_eq!(links.len(), 2);

    let retriever =
        bear_rag::RagRetriever::new(env.store.clone(), crate::embedder(), env.scrubber.clone());
    let found = |mail: bear_rag::MailFilter| {
        let (retriever, c) = (&retriever, &c);
        async move {
            let filter = Filter {
                mail: Some(mail),
                ..Filter::default()
            };
            let hits = retriever
                .search(c, "oven damages penalty", SearchMode::Hybrid, 20, &filter)
                .await
                .unwrap();
            let mut docs: Vec<String> = hits.into_iter().map(|h| h.document_id).collect();
            docs.sort();
            docs.dedup();
            docs
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // By sender: the attached demand and its own attachment, nothing else.
    let penalty = id("message.eml/attachment-1/penalty-note.txt");
    let by_fjord = found(bear_rag::MailFilter {
        from: Some("LEGAL@fjord.example".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_fjord, sorted(vec![demand.clone(), penalty.clone()]));
    // By thread, from either end: the mailbox's two messages.
    for start in [&oven1, &oven2] {
        let thread = found(bear_rag::MailFilter {
            thread: Some(start.to_string()),
            ..Default::default()
        })
        .await;
        assert_eq!(thread, sorted(vec![oven1.clone(), oven2.clone()]));
    }
    // By date sent and recipient: March 2024 to the lawyer is the first oven message.
    let march = found(bear_rag::MailFilter {
        to: Some("a.visser".into()),
        sent_before: Some(1_711_929_599),
        ..Default::default()
    })
    .await;
    assert_eq!(march, vec![oven1.clone()]);
    // Nothing matches: no hits (not every hit).
    let none = found(bear_rag::MailFilter {
        subject: Some("lease renewal".into()),
        ..Default::default()
    })
    .await;
    assert!(none.is_empty());
    // A thread of a document that is not a message is a request error.
    let filter = Filter {
        mail: Some(bear_rag::MailFilter {
            thread: Some(id("damages.xlsx")),
            ..Default::default()
        }),
        ..Filter::default()
    };
    let e = retriever
        .search(&c, "oven", SearchMode::FullText, 5, &filter)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not an e-mail message"), "{e}");
}
