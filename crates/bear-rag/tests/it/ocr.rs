//! OCR with the real Tesseract engine (Debian's libtesseract and language data): images of
//! every format, a multi-page TIFF, a PDF mixing a text layer with scans in each scanner
//! encoding, an upside-down page, decompression bombs, corrupt images, the per-page time limit,
//! and a scan ingested and found by search.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bear_core::{CancellationToken, Ocr, PiiPolicy, RagConfig};
use bear_rag::extract::{Extracted, Format, Limits, OcrSetup, Refusal, extract};
use bear_rag::{Filter, IngestOptions, Progress, SearchMode};

use crate::Env;

/// The real engine in BEAR's default languages, loaded once per test binary.
fn engine() -> Arc<dyn Ocr> {
    static E: OnceLock<Arc<dyn Ocr>> = OnceLock::new();
    E.get_or_init(|| {
        let langs = RagConfig::default().ocr_languages;
        Arc::new(bear_models::TesseractOcr::new(&langs, None).expect("tesseract-ocr-* installed"))
    })
    .clone()
}

fn limits_with(config: &RagConfig) -> Limits {
    let mut l = Limits::from_config(config);
    l.ocr = Some(OcrSetup::new(engine(), config));
    l
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read(name: &str, limits: &Limits) -> Result<Extracted, Refusal> {
    let path = fixture(name);
    let format = Format::from_path(&path).expect("a format BEAR reads");
    extract(&std::fs::read(&path).unwrap(), format, limits)
}

/// The text of page `n` (1-based), whitespace collapsed.
fn page(e: &Extracted, n: usize) -> String {
    let start = e.page_starts[n - 1];
    let end = e.page_starts.get(n).copied().unwrap_or(e.text.len());
    e.text[start..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn images_of_every_format_are_read_with_their_confidence() {
    let limits = limits_with(&RagConfig::default());
    for name in ["exhibit.png", "exhibit.jpg", "exhibit.webp", "exhibit.bmp"] {
        let e = read(name, &limits).unwrap_or_else(|r| panic!("{name}: {r}"));
        assert_eq!(e.page_starts, [0], "{name}");
        assert!(
            page(&e, 1).contains("damaged warehouse roof"),
            "{name}: {:?}",
            page(&e, 1)
        );
        let info = &e.ocr_pages[..];
        assert_eq!(info.len(), 1, "{name}");
        assert!(info[0].confidence.unwrap() > 80.0, "{name}: {info:?}");
        assert!(!info[0].low_confidence && info[0].skipped.is_none());
    }
}

#[test]
fn a_poor_copy_is_read_and_marked_low_confidence() {
    let e = read("carbon-copy.jpg", &limits_with(&RagConfig::default())).unwrap();
    assert!(page(&e, 1).contains("Pieter Jansen"), "{}", page(&e, 1));
    let info = &e.ocr_pages[0];
    assert!(
        info.confidence.unwrap() < bear_core::LOW_OCR_CONFIDENCE,
        "{info:?}"
    );
    assert!(info.low_confidence);
    assert_eq!(e.ocr_confidence(0), info.confidence);
}

#[test]
fn a_multi_page_tiff_gives_a_page_each() {
    let e = read("fax.tiff", &limits_with(&RagConfig::default())).unwrap();
    assert_eq!(e.page_starts.len(), 2);
    assert!(
        page(&e, 1).contains("faxed settlement offer"),
        "{}",
        page(&e, 1)
    );
    assert!(
        page(&e, 2).contains("Zeeland Verzekeringen"),
        "{}",
        page(&e, 2)
    );
    assert_eq!(e.meta.page_count, Some(2));
}

#[test]
fn a_pdf_mixing_a_text_layer_and_scans_is_read_page_by_page() {
    let e = read("scanned.pdf", &limits_with(&RagConfig::default())).unwrap();
    assert_eq!(e.page_starts.len(), 5);
    // Page 1 keeps its text layer; pages 2-5 are scans in JPEG, CCITT G4, JBIG2 and Flate.
    assert!(page(&e, 1).contains("Acme Holdings"), "{}", page(&e, 1));
    let expected = [
        (2, "EUR 4,250"),
        (3, "three months notice"),
        (4, "court of Amsterdam"),
        (5, "Rotterdam on 12 March 2024"),
    ];
    for (n, words) in expected {
        assert!(page(&e, n).contains(words), "page {n}: {:?}", page(&e, n));
    }
    let read: Vec<u32> = e.ocr_pages.iter().map(|p| p.page).collect();
    assert_eq!(read, [2, 3, 4, 5], "only the pages without a text layer");
    // Without an engine, the scans are not read.
    let plain = read_plain("scanned.pdf");
    assert!(!plain.contains("Amsterdam") && plain.contains("Acme Holdings"));
}

fn read_plain(name: &str) -> String {
    let limits = Limits::from_config(&RagConfig::default());
    read(name, &limits).unwrap().text
}

#[test]
fn an_upside_down_page_is_turned_before_it_is_read() {
    let e = read("upside-down.png", &limits_with(&RagConfig::default())).unwrap();
    assert!(
        page(&e, 1).contains("scanned upside down"),
        "{}",
        page(&e, 1)
    );
}

#[test]
fn images_without_an_engine_are_refused_with_what_to_install() {
    let limits = Limits::from_config(&RagConfig::default());
    let r = read("exhibit.png", &limits).unwrap_err();
    assert_eq!(r, Refusal::OcrUnavailable);
    assert!(r.to_string().contains("tesseract-ocr-eng"), "{r}");
}

#[test]
fn decompression_bombs_are_refused_before_decoding() {
    let limits = limits_with(&RagConfig::default());
    for name in ["bomb.png", "bomb.tiff"] {
        let r = read(name, &limits).unwrap_err();
        assert_eq!(
            r,
            Refusal::ImageTooLarge {
                width: 100_000,
                height: 100_000,
                limit: RagConfig::default().max_image_pixels
            },
            "{name}"
        );
    }
}

#[test]
fn truncated_and_corrupt_images_fail_alone_with_a_reason() {
    let limits = limits_with(&RagConfig::default());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "png",
            std::fs::read(fixture("exhibit.png")).unwrap()[..400].to_vec(),
        ),
        (
            "jpg",
            std::fs::read(fixture("exhibit.jpg")).unwrap()[..2000].to_vec(),
        ),
        (
            "tiff",
            std::fs::read(fixture("fax.tiff")).unwrap()[..300].to_vec(),
        ),
        ("webp", b"RIFF\x10\0\0\0WEBPVP8 garbage".to_vec()),
        ("bmp", b"BM not a bitmap at all".to_vec()),
        ("png", b"\x89PNG\r\n\x1a\n then nothing".to_vec()),
    ];
    for (ext, bytes) in cases {
        let format = Format::from_path(Path::new(&format!("x.{ext}"))).unwrap();
        match extract(&bytes, format, &limits) {
            Err(Refusal::Malformed { .. } | Refusal::OcrFailed { .. }) => {}
            other => panic!("{ext}: {other:?}"),
        }
    }
}

#[test]
fn a_page_over_the_time_limit_is_skipped_with_its_reason() {
    let config = RagConfig::default();
    let mut limits = limits_with(&config);
    if let Some(o) = limits.ocr.as_mut() {
        o.page_timeout = Duration::from_millis(1);
    }
    // An image whose only page runs out of time: the file fails, saying why.
    let r = read("exhibit.png", &limits).unwrap_err();
    assert!(
        matches!(&r, Refusal::OcrFailed { detail } if detail.contains("rag.ocr_page_timeout_secs")),
        "{r:?}"
    );
    // A PDF keeps its text layer; each scanned page says why it was skipped.
    let e = read("scanned.pdf", &limits).unwrap();
    assert!(page(&e, 1).contains("Acme Holdings"));
    assert_eq!(e.ocr_pages.len(), 4);
    assert!(
        e.ocr_pages
            .iter()
            .all(|p| p.skipped.is_some() && p.confidence.is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_is_ingested_page_by_page_and_found_by_search() {
    let env = Env::new(PiiPolicy::Replace);
    let c = env.collection("scans").await;
    let dir = env.dir.path().join("scans");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["scanned.pdf", "fax.tiff", "bomb.png", "carbon-copy.jpg"] {
        std::fs::copy(fixture(f), dir.join(f)).unwrap();
    }
    let mut pages = Vec::new();
    let report = ingest(&env, &c, std::slice::from_ref(&dir), &mut |p: &Progress| {
        if let Progress::Page {
            path,
            done,
            pages: n,
        } = p
        {
            pages.push((path.rsplit('/').next().unwrap().to_string(), *done, *n));
        }
    })
    .await;
    assert_eq!(report.ingested.len(), 3, "{report:?}");
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].path.ends_with("bomb.png"));
    assert!(report.failed[0].reason.contains("rag.max_image_pixels"));
    let pdf = report
        .ingested
        .iter()
        .find(|d| d.path.ends_with("scanned.pdf"))
        .unwrap();
    assert_eq!(pdf.ocr_pages.len(), 4);
    // Progress, page by page, for each file read by OCR.
    assert!(pages.contains(&("scanned.pdf".into(), 4, 4)), "{pages:?}");
    assert!(pages.contains(&("fax.tiff".into(), 2, 2)), "{pages:?}");

    let retriever =
        bear_rag::RagRetriever::new(env.store.clone(), crate::embedder(), env.scrubber.clone());
    let hits = retriever
        .search(
            &c,
            "court of Amsterdam",
            SearchMode::FullText,
            3,
            &Filter::default(),
        )
        .await
        .unwrap();
    assert!(hits[0].path.ends_with("scanned.pdf"), "{hits:#?}");
    assert_eq!(hits[0].page, Some(4));
    let hits = retriever
        .search(
            &c,
            "insurer Zeeland",
            SearchMode::FullText,
            3,
            &Filter::default(),
        )
        .await
        .unwrap();
    assert!(hits[0].path.ends_with("fax.tiff"), "{hits:#?}");
    assert_eq!(hits[0].page, Some(2));
    assert!(hits[0].ocr_confidence.unwrap() > 80.0);
    assert_eq!(
        bear_rag::answer::citation(&hits[0]),
        "fax.tiff (fax.tiff), p. 2"
    );
    // A chunk from a low-confidence page says so in its citation.
    let hits = retriever
        .search(
            &c,
            "Pieter Jansen",
            SearchMode::FullText,
            3,
            &Filter::default(),
        )
        .await
        .unwrap();
    assert!(hits[0].path.ends_with("carbon-copy.jpg"), "{hits:#?}");
    assert!(hits[0].ocr_confidence.unwrap() < bear_core::LOW_OCR_CONFIDENCE);
    assert!(
        bear_rag::answer::citation(&hits[0]).ends_with("p. 1 (OCR, low confidence)"),
        "{}",
        bear_rag::answer::citation(&hits[0])
    );
}

/// Ingests `files` with the real OCR engine, reporting to `progress`.
async fn ingest(
    env: &Env,
    c: &bear_rag::Collection,
    files: &[PathBuf],
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> bear_rag::IngestReport {
    let config = RagConfig::default();
    let mut pipeline = env.pipeline(config.clone());
    pipeline.ocr = Some(OcrSetup::new(engine(), &config));
    bear_rag::ingest(
        c,
        &pipeline,
        files,
        &IngestOptions::default(),
        progress,
        &CancellationToken::new(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_from_before_ocr_gets_its_column_at_the_next_write() {
    let env = Env::new(PiiPolicy::Replace);
    let c = env.collection("old").await;
    let lease = crate::corpus().join("loan-agreement.md");
    assert_eq!(
        ingest(&env, &c, &[lease], &mut |_| {}).await.ingested.len(),
        1
    );
    drop(c);
    // Collections made before OCR have no such column: take it away.
    let dir = env.dir.path().join("collections/old");
    let db = lancedb::connect(dir.to_str().unwrap())
        .execute()
        .await
        .unwrap();
    let chunks = db.open_table("chunks").execute().await.unwrap();
    chunks.drop_columns(&["ocr_confidence"]).await.unwrap();
    // Nor, from before e-mail fields, a documents column for them.
    let documents = db.open_table("documents").execute().await.unwrap();
    documents.drop_columns(&["mail"]).await.unwrap();
    drop((chunks, documents, db));

    let c = env.store.open("old").await.unwrap();
    assert_eq!(c.documents().await.unwrap()[0].mail, None);
    let retriever =
        bear_rag::RagRetriever::new(env.store.clone(), crate::embedder(), env.scrubber.clone());
    let search = |q: &'static str| {
        let (retriever, c) = (&retriever, &c);
        async move {
            retriever
                .search(c, q, SearchMode::FullText, 3, &Filter::default())
                .await
                .unwrap()
        }
    };
    let hits = search("interest rate").await;
    assert!(!hits.is_empty() && hits[0].ocr_confidence.is_none());
    // The next write adds the column (nulls for the old rows) and stores the new page's.
    let report = ingest(&env, &c, &[fixture("carbon-copy.jpg")], &mut |_| {}).await;
    assert_eq!(report.ingested.len(), 1, "{report:?}");
    let hits = search("Pieter Jansen").await;
    assert!(hits[0].ocr_confidence.is_some(), "{hits:#?}");
    let hits = search("interest rate").await;
    assert!(!hits.is_empty() && hits[0].ocr_confidence.is_none());
    // The documents table got its mail column too: old rows without, a message with fields.
    ingest(&env, &c, &[fixture("schedule.eml")], &mut |_| {}).await;
    let docs = c.documents().await.unwrap();
    let message = docs.iter().find(|d| d.path.ends_with("schedule.eml"));
    assert!(message.and_then(|d| d.mail.as_ref()).is_some(), "{docs:#?}");
    assert!(docs.iter().any(|d| d.mail.is_none()));
}

/// Finds two listed place names, as a redaction's term list would.
struct Places;

impl bear_rag::redact::Marker for Places {
    fn mark(&self, text: &str) -> Vec<bear_rag::redact::Mark> {
        let mut marks = Vec::new();
        for word in ["Amsterdam", "Rotterdam"] {
            for (start, _) in text.match_indices(word) {
                marks.push(bear_rag::redact::Mark {
                    start,
                    end: start + word.len(),
                    kind: "TERM".into(),
                });
            }
        }
        marks
    }
}

/// Scanned pages in JBIG2 and Flate: the pages showing a listed name are re-rendered without
/// it (read again by OCR: gone, the rest of the sentence kept); the other scans are untouched.
#[test]
fn a_scanned_page_is_re_rendered_without_the_redacted_words() {
    use bear_rag::redact::{Style, redact};
    let limits = limits_with(&RagConfig::default());
    let bytes = std::fs::read(fixture("scanned.pdf")).unwrap();
    let out = redact(&bytes, Format::Pdf, &Places, Style::Box, &limits).unwrap();
    let pages: Vec<Option<u32>> = out.log.iter().map(|e| e.page).collect();
    assert_eq!(pages, [Some(4), Some(5)], "{:?}", out.log);
    assert!(
        out.stripped
            .iter()
            .any(|s| s == "scanned pages re-rendered")
    );
    let e = extract(&out.bytes, Format::Pdf, &limits).unwrap();
    assert_eq!(e.page_starts.len(), 5);
    assert!(
        !e.text.contains("Amsterdam") && !e.text.contains("Rotterdam"),
        "{}",
        e.text
    );
    assert!(page(&e, 4).contains("court of"), "{:?}", page(&e, 4));
    assert!(page(&e, 5).contains("12 March 2024"), "{:?}", page(&e, 5));
    assert!(page(&e, 2).contains("EUR 4,250") && page(&e, 3).contains("three months notice"));
    assert!(page(&e, 1).contains("Acme Holdings"));

    // Without an engine the scans cannot be read, so no copy is written.
    let mut blind = limits_with(&RagConfig::default());
    blind.ocr = None;
    match redact(&bytes, Format::Pdf, &Places, Style::Box, &blind) {
        Err(Refusal::Unredactable { detail }) => assert!(detail.contains("OCR"), "{detail}"),
        other => panic!("expected a refusal, got {:?}", other.map(|r| r.log)),
    }
}
