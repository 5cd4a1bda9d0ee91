//! The ingestion pipeline: discover files, extract, chunk, scrub, embed, store.
//!
//! One producer task prepares documents (read, hash, skip if unchanged, extract on a
//! big-stack thread under the time limit, chunk with the embedder's tokenizer, scrub through
//! the [`PiiScrubber`] trait) while the consumer embeds their chunks in batches and writes
//! them to LanceDB in groups. A document is reported done only after its group is committed,
//! so a crash never loses a document that was reported ingested. A document that breaks a
//! limit or cannot be read fails alone, with its reason; the batch goes on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bear_core::{CancellationToken, Embedder, PiiScrubber, RagConfig};
use bear_security::FileKeys;
use bear_security::crypto::segment;
use serde::{Deserialize, Serialize};

use crate::chunk::{ChunkParams, chunk};
use crate::error::{Error, Result};
use crate::extract::{Extracted, Format, Limits, OcrClock, OcrPageInfo, OcrSetup, Refusal};
use crate::store::{ChunkRow, Collection, DocumentRecord, now};

/// What ingestion needs besides the collection: an embedder and, unless PII is kept, a
/// scrubber.
#[derive(Clone)]
pub struct Pipeline {
    /// Computes the vectors; its tokenizer sizes the chunks.
    pub embedder: Arc<dyn Embedder>,
    /// Scrubs text before it is embedded or stored.
    pub scrubber: Arc<dyn PiiScrubber>,
    /// Limits, chunk sizes, globs.
    pub config: RagConfig,
    /// Makes the scrubber's new reversible tokens durable; called before each batch of
    /// documents is written, so a document reported done never has tokens that a crash
    /// loses (and a re-run, finding the file unchanged, would never make again).
    pub persist_tokens: Option<PersistTokens>,
    /// Reads scans and images by OCR; `None` refuses them with a reason.
    pub ocr: Option<OcrSetup>,
}

/// See [`Pipeline::persist_tokens`].
pub type PersistTokens = Arc<dyn Fn() -> std::result::Result<(), bear_core::Error> + Send + Sync>;

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("embedder", self.embedder.model())
            .finish_non_exhaustive()
    }
}

/// Options for one ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Also remove documents whose files no longer exist.
    pub sync: bool,
}

/// Progress, reported as the ingest goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// Discovery finished: this many files will be looked at.
    Found {
        /// Files.
        files: usize,
    },
    /// A document is stored (its chunks and row are committed).
    Ingested {
        /// The file.
        path: String,
        /// Chunks written.
        chunks: usize,
    },
    /// A file was unchanged since its last ingest.
    Unchanged {
        /// The file.
        path: String,
    },
    /// A page of a scan or image was read by OCR.
    Page {
        /// The file.
        path: String,
        /// Pages read so far.
        done: usize,
        /// Pages to read by OCR in this file.
        pages: usize,
    },
    /// A file failed.
    Failed {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// One stored document in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestedDoc {
    /// The file.
    pub path: String,
    /// Its document id.
    pub document_id: String,
    /// Chunks written.
    pub chunks: usize,
    /// Its pages read by OCR: confidence, low-confidence mark, or why a page was skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ocr_pages: Vec<OcrPageInfo>,
}

/// One failed file in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedDoc {
    /// The file.
    pub path: String,
    /// Why, in words.
    pub reason: String,
    /// Why, as a typed value.
    pub refusal: Refusal,
}

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    /// Stored documents.
    pub ingested: Vec<IngestedDoc>,
    /// Files skipped because their sha256 is unchanged.
    pub unchanged: Vec<String>,
    /// Files that failed, with reasons.
    pub failed: Vec<FailedDoc>,
    /// Documents removed by `--sync` because their files vanished.
    pub removed: Vec<String>,
    /// Documents whose chunks were left by an interrupted earlier ingest and were cleaned up.
    pub recovered: usize,
    /// Chunks written.
    pub chunks: usize,
    /// Wall time, milliseconds.
    pub elapsed_ms: u64,
    /// Time spent inside the embedder, milliseconds.
    pub embed_ms: u64,
    /// Whether the ingest was cancelled before the end.
    pub cancelled: bool,
    /// The code the collection's earlier vectors came from, when this ingest's embedder runs
    /// on other code (the same model: the same vectors within the tested tolerance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_with_runtime: Option<bear_core::EmbedderRuntime>,
}

/// Stable document id: the first 128 bits of SHA-256 over the canonical path, in hex.
pub fn document_id(canonical: &Path) -> String {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_os_str().as_encoded_bytes(),
    );
    hex::encode(&d.as_ref()[..16])
}

/// A file's SHA-256 in hex, as a [`DocumentRecord`](crate::DocumentRecord) holds it:
/// whether a file is still the one ingested.
pub fn content_sha256(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// Expands the paths given into files to ingest; problems become failures.
fn discover(
    paths: &[PathBuf],
    config: &RagConfig,
    keys: Option<&FileKeys>,
    failed: &mut Vec<FailedDoc>,
) -> Result<Vec<PathBuf>> {
    let globs = |patterns: &[String], what: &str| -> Result<Option<globset::GlobSet>> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut b = globset::GlobSetBuilder::new();
        for p in patterns {
            b.add(globset::Glob::new(p).map_err(|e| {
                Error::InvalidRequest(format!("rag.{what}: bad glob `{p}`: {}", e.kind()))
            })?);
        }
        b.build()
            .map(Some)
            .map_err(|e| Error::InvalidRequest(format!("rag.{what}: {e}")))
    };
    let include = globs(&config.include, "include")?;
    let exclude = globs(&config.exclude, "exclude")?;
    let mut fail = |path: &Path, refusal: Refusal| {
        failed.push(FailedDoc {
            path: path.display().to_string(),
            reason: refusal.to_string(),
            refusal,
        });
    };
    let mut files = Vec::new();
    for root in paths {
        let meta = match std::fs::metadata(stored_file(root, keys)) {
            Ok(m) => m,
            Err(e) => {
                fail(root, Refusal::from_io(&e));
                continue;
            }
        };
        if meta.is_file() {
            match Format::from_path(root) {
                Some(_) => files.push(root.clone()),
                None => fail(
                    root,
                    Refusal::UnsupportedFormat {
                        extension: root
                            .extension()
                            .map(|e| e.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    },
                ),
            }
            continue;
        }
        let walker = walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                let rel = e.path().strip_prefix(root).unwrap_or(e.path());
                e.depth() == 0 || exclude.as_ref().is_none_or(|x| !x.is_match(rel))
            });
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = e
                        .path()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| root.clone());
                    let refusal =
                        e.io_error()
                            .map(Refusal::from_io)
                            .unwrap_or(Refusal::Unreadable {
                                detail: "filesystem loop".into(),
                            });
                    fail(&path, refusal);
                    continue;
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            if Format::from_path(entry.path()).is_none() {
                // Other files are not documents; a legacy Office file is, and says what to do.
                let ext = entry.path().extension().map(|e| e.to_string_lossy());
                if let Some(ext) = ext.filter(|e| crate::extract::legacy_successor(e).is_some()) {
                    let extension = ext.into_owned();
                    fail(entry.path(), Refusal::UnsupportedFormat { extension });
                }
                continue;
            }
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
            if include.as_ref().is_some_and(|i| !i.is_match(rel)) {
                continue;
            }
            files.push(entry.into_path());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// A document ready to embed.
struct Prepared {
    record: DocumentRecord,
    rows: Vec<ChunkRow>,
    ocr_pages: Vec<OcrPageInfo>,
}

enum Msg {
    /// OCR progress within a file: (file, pages done, pages).
    Page(String, usize, usize),
    Ready(Box<Prepared>),
    Unchanged(String),
    Failed(FailedDoc),
    /// Documents of a changed e-mail or mailbox that it no longer holds.
    Stale(Vec<DocumentRecord>),
}

/// What one file gave: its documents (an e-mail's messages and attachments, or the file's
/// one), each ready or refused alone.
type Built = Vec<std::result::Result<Prepared, FailedDoc>>;

impl FailedDoc {
    fn new(path: String, refusal: Refusal) -> Self {
        Self {
            path,
            reason: refusal.to_string(),
            refusal,
        }
    }
}

/// Runs `f` on its own thread with a 256 MiB stack, giving up after `limit` plus the time
/// `ocr` says was spent reading pages (a page is limited by itself).
async fn limited<T: Send + 'static>(
    limit: Duration,
    ocr: Option<Arc<OcrClock>>,
    f: impl FnOnce() -> std::result::Result<T, Refusal> + Send + 'static,
) -> std::result::Result<T, Refusal> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("bear-extract".into())
        .stack_size(256 << 20)
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r);
        });
    if spawned.is_err() {
        return Err(Refusal::Internal);
    }
    let started = tokio::time::Instant::now();
    let spent = || ocr.as_ref().map(|c| c.spent()).unwrap_or_default();
    let mut rx = rx;
    loop {
        let before = spent();
        match tokio::time::timeout_at(started + limit + before, &mut rx).await {
            Ok(Ok(Ok(r))) => return r,
            Ok(_) => return Err(Refusal::Internal),
            Err(_) if spent() > before => continue,
            Err(_) => {
                return Err(Refusal::Timeout {
                    secs: limit.as_secs(),
                });
            }
        }
    }
}

fn unix(t: std::io::Result<std::time::SystemTime>) -> i64 {
    t.ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

/// The name a file is sealed under (its AAD) when BEAR keeps it sealed: `upload/` and its
/// file name, so a sealed upload renamed or swapped with another fails to open.
pub fn upload_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    format!("upload/{file}")
}

/// Where BEAR keeps its sealed copy of the file `path` names (an upload): in the same folder,
/// named by [`FileKeys::name_tag`] of its file name with its extension, so that the folder
/// shows no file name. `None` when the name is not UTF-8.
pub fn kept_copy(path: &Path, keys: &FileKeys) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let tag = keys.name_tag(name).ok()?;
    Some(match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => path.with_file_name(format!("{tag}.{ext}")),
        None => path.with_file_name(tag),
    })
}

/// The file to read for the document at `path`: the file itself, or else the sealed copy
/// BEAR keeps of it (see [`kept_copy`]).
pub fn stored_file(path: &Path, keys: Option<&FileKeys>) -> PathBuf {
    if path.exists() {
        return path.to_path_buf();
    }
    keys.and_then(|k| kept_copy(path, k))
        .filter(|p| p.exists())
        .unwrap_or_else(|| path.to_path_buf())
}

/// `path` as a document's path is recorded: canonical, or, for a file BEAR keeps a sealed
/// copy of, its canonical folder and its own name.
pub fn canonical_path(path: &Path, keys: Option<&FileKeys>) -> std::io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(e);
            };
            if stored_file(path, keys) == path {
                return Err(e);
            }
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            Ok(std::fs::canonicalize(dir)?.join(name))
        }
        other => other,
    }
}

/// The file a document's path is read from: the path itself, or, for a document inside an
/// e-mail or mailbox (`thread.eml/attachment-1/contract.pdf`), the file that holds it.
pub fn source_file(path: &Path, keys: Option<&FileKeys>) -> PathBuf {
    for at in path.ancestors() {
        let stored = stored_file(at, keys);
        if stored.exists() {
            return match stored.is_file() {
                true => stored,
                false => path.to_path_buf(),
            };
        }
    }
    path.to_path_buf()
}

/// Reads, extracts, chunks and scrubs one file (a sealed upload is opened with `keys`) into
/// its documents. `Ok(None)` means unchanged.
async fn prepare(
    path: PathBuf,
    known: Option<DocumentRecord>,
    pipeline: Pipeline,
    keys: Option<FileKeys>,
    tx: tokio::sync::mpsc::Sender<Msg>,
) -> std::result::Result<Option<Built>, Refusal> {
    let config = &pipeline.config;
    let stored = stored_file(&path, keys.as_ref());
    let meta = std::fs::metadata(&stored).map_err(|e| Refusal::from_io(&e))?;
    // A sealed upload is a little longer than its plaintext; its plaintext is checked below.
    if meta.len() > segment::sealed_len(config.max_file_bytes) {
        return Err(Refusal::TooLarge {
            size: meta.len(),
            limit: config.max_file_bytes,
        });
    }
    let canonical = canonical_path(&path, keys.as_ref()).map_err(|e| Refusal::from_io(&e))?;
    let format = Format::from_path(&path).ok_or(Refusal::UnsupportedFormat {
        extension: String::new(),
    })?;
    let limit = Duration::from_secs(config.doc_timeout_secs);
    let mut limits = Limits::from_config(config);
    limits.ocr = pipeline.ocr.as_ref().map(|o| {
        let shown = path.display().to_string();
        let mut setup = o.for_one_file();
        setup.progress = Some(Arc::new(move |done, pages| {
            // From OCR threads (never the runtime's): waits while the consumer catches up;
            // a consumer that stopped ends the messages, not the reading.
            let _ = tx.blocking_send(Msg::Page(shown.clone(), done, pages));
        }));
        setup
    });
    let clock = limits.ocr.as_ref().map(|o| o.clock.clone());
    let file_modified = unix(meta.modified());
    let p = pipeline.clone();
    limited(limit, clock, move || {
        let name = upload_name(&canonical);
        let bytes =
            segment::read_whole(&stored, &name, keys.as_ref()).map_err(Refusal::from_read)?;
        if bytes.len() as u64 > p.config.max_file_bytes {
            return Err(Refusal::TooLarge {
                size: bytes.len() as u64,
                limit: p.config.max_file_bytes,
            });
        }
        let sha256 = content_sha256(&bytes);
        if known.as_ref().is_some_and(|k| k.sha256 == sha256) {
            return Ok(None);
        }
        let parts = crate::extract::parts(&bytes, format, &limits)?;
        let bytes_len = bytes.len() as u64;
        drop(bytes);
        let mut built = Vec::with_capacity(parts.len());
        for part in parts {
            let at = match part.locator.is_empty() {
                true => canonical.clone(),
                false => canonical.join(&part.locator),
            };
            built.push(match part.extracted {
                Ok(e) => Ok(build(
                    &p,
                    &at,
                    part.format,
                    e,
                    sha256.clone(),
                    bytes_len,
                    file_modified,
                    &limits,
                )?),
                Err(refusal) => Err(FailedDoc::new(at.display().to_string(), refusal)),
            });
        }
        Ok(Some(built))
    })
    .await
}

/// The documents `known` holds below container file `canonical` that `built` no longer has.
fn stale(
    known: &HashMap<String, DocumentRecord>,
    canonical: &Path,
    built: &Built,
) -> Vec<DocumentRecord> {
    let prefix = format!("{}/", canonical.display());
    let kept: std::collections::HashSet<&str> = built
        .iter()
        .filter_map(|b| b.as_ref().ok().map(|p| p.record.id.as_str()))
        .collect();
    known
        .values()
        .filter(|d| d.path.starts_with(&prefix) && !kept.contains(d.id.as_str()))
        .cloned()
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn build(
    p: &Pipeline,
    canonical: &Path,
    format: Format,
    extracted: Extracted,
    sha256: String,
    size: u64,
    file_modified: i64,
    limits: &Limits,
) -> std::result::Result<Prepared, Refusal> {
    let secs = p.config.doc_timeout_secs;
    let count = |t: &[&str]| p.embedder.count_tokens(t);
    let params = ChunkParams {
        target: p.config.chunk_tokens.min(p.embedder.max_input_tokens()),
        overlap: p.config.chunk_overlap,
    };
    let chunks = chunk(&extracted.text, params, &extracted.page_starts, &count)
        .map_err(|_| Refusal::Internal)?;
    limits.check_time(secs)?;
    let scrub = |t: &str| -> std::result::Result<String, Refusal> {
        p.scrubber
            .scrub(t)
            .map(|o| o.text.expose().clone())
            .map_err(|_| Refusal::Internal)
    };
    let id = document_id(canonical);
    let path = canonical.display().to_string();
    let file_name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let title = match &extracted.meta.title {
        Some(t) => scrub(t)?,
        None => file_name,
    };
    let author = extracted.meta.author.as_deref().map(scrub).transpose()?;
    let mail = extracted
        .meta
        .mail
        .as_ref()
        .map(|m| scrub_mail(m, &scrub))
        .transpose()?;
    let mut rows = Vec::with_capacity(chunks.len());
    for c in &chunks {
        if c.ordinal.is_multiple_of(64) {
            limits.check_time(secs)?;
        }
        rows.push(ChunkRow {
            id: format!("{id}-{:06}", c.ordinal),
            document_id: id.clone(),
            ordinal: c.ordinal,
            text: scrub(&extracted.text[c.bytes.clone()])?,
            vector: Vec::new(),
            byte_range: (c.bytes.start as u64, c.bytes.end as u64),
            char_range: (c.chars.start as u64, c.chars.end as u64),
            page: extracted.page_of(c.bytes.start),
            path: path.clone(),
            title: title.clone(),
            file_modified,
            ocr_confidence: extracted.ocr_confidence(c.bytes.start),
        });
    }
    let record = DocumentRecord {
        id,
        path,
        title,
        author,
        created: extracted.meta.created.clone(),
        modified: extracted.meta.modified.clone(),
        file_modified,
        page_count: extracted.meta.page_count,
        mime: format.mime().into(),
        sha256,
        size,
        chunks: rows.len() as u32,
        ingested_at: now(),
        mail,
    };
    Ok(Prepared {
        record,
        rows,
        ocr_pages: extracted.ocr_pages,
    })
}

/// An e-mail's header fields scrubbed like its text (the sending time and thread keys,
/// computed before scrubbing, kept).
fn scrub_mail(
    m: &crate::store::MailMeta,
    scrub: &dyn Fn(&str) -> std::result::Result<String, Refusal>,
) -> std::result::Result<crate::store::MailMeta, Refusal> {
    let s = |v: &Option<String>| v.as_deref().map(scrub).transpose();
    Ok(crate::store::MailMeta {
        from: s(&m.from)?,
        to: s(&m.to)?,
        cc: s(&m.cc)?,
        date: s(&m.date)?,
        subject: s(&m.subject)?,
        message_id: s(&m.message_id)?,
        in_reply_to: s(&m.in_reply_to)?,
        ..m.clone()
    })
}

/// Chunks written per LanceDB commit, at most (a commit also ends every 16 documents).
const COMMIT_CHUNKS: usize = 512;
const COMMIT_DOCS: usize = 16;

/// Ingests `paths` (files and folders) into `collection`.
pub async fn ingest(
    collection: &Collection,
    pipeline: &Pipeline,
    paths: &[PathBuf],
    options: &IngestOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
    cancel: &CancellationToken,
) -> Result<IngestReport> {
    let started = Instant::now();
    let meta = collection.meta();
    if meta.embedder != pipeline.embedder.model().as_str()
        || meta.dimension != pipeline.embedder.dimension()
    {
        return Err(Error::EmbedderMismatch {
            name: meta.name.clone(),
            built_with: meta.embedder.clone(),
            dim: meta.dimension,
            requested: pipeline.embedder.model().to_string(),
        });
    }
    let built_with_runtime = match pipeline.embedder.runtime() {
        Some(runtime) => collection.note_runtime(&runtime).await?,
        None => None,
    };
    let mut report = IngestReport {
        recovered: collection.remove_orphans().await?,
        built_with_runtime,
        ..IngestReport::default()
    };
    let files = discover(
        paths,
        &pipeline.config,
        collection.file_keys(),
        &mut report.failed,
    )?;
    for f in &report.failed {
        progress(&Progress::Failed {
            path: f.path.clone(),
            reason: f.reason.clone(),
        });
    }
    progress(&Progress::Found { files: files.len() });
    let known: HashMap<String, DocumentRecord> = collection
        .documents()
        .await?
        .into_iter()
        .map(|d| (d.id.clone(), d))
        .collect();

    // Producer: prepares documents one after another, two ahead of the consumer.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(2);
    let producer = {
        let pipeline = pipeline.clone();
        let known = known.clone();
        let cancel = cancel.clone();
        let files = files.clone();
        let keys = collection.file_keys().cloned();
        tokio::spawn(async move {
            for path in files {
                if cancel.is_cancelled() {
                    break;
                }
                let shown = path.display().to_string();
                let canonical = canonical_path(&path, keys.as_ref()).ok();
                let id = canonical.as_deref().map(document_id);
                let prior = id.and_then(|id| known.get(&id).cloned());
                let prepared = prepare(path, prior, pipeline.clone(), keys.clone(), tx.clone());
                let msgs = match prepared.await {
                    Ok(Some(built)) => {
                        let gone = canonical
                            .as_deref()
                            .map(|c| stale(&known, c, &built))
                            .unwrap_or_default();
                        let mut msgs: Vec<Msg> = built
                            .into_iter()
                            .map(|b| match b {
                                Ok(p) => Msg::Ready(Box::new(p)),
                                Err(f) => Msg::Failed(f),
                            })
                            .collect();
                        if !gone.is_empty() {
                            msgs.push(Msg::Stale(gone));
                        }
                        msgs
                    }
                    Ok(None) => vec![Msg::Unchanged(shown)],
                    Err(refusal) => vec![Msg::Failed(FailedDoc::new(shown, refusal))],
                };
                let mut closed = false;
                for msg in msgs {
                    closed = tx.send(msg).await.is_err();
                    if closed {
                        break;
                    }
                }
                if closed {
                    break;
                }
            }
        })
    };

    let mut pending: Vec<Prepared> = Vec::new();
    let mut pending_chunks = 0usize;
    let mut embed_time = Duration::ZERO;
    let mut result = Ok(());
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Page(path, done, pages) => progress(&Progress::Page { path, done, pages }),
            Msg::Unchanged(path) => {
                progress(&Progress::Unchanged { path: path.clone() });
                report.unchanged.push(path);
            }
            Msg::Failed(f) => {
                progress(&Progress::Failed {
                    path: f.path.clone(),
                    reason: f.reason.clone(),
                });
                report.failed.push(f);
            }
            Msg::Stale(docs) => {
                let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
                if let Err(e) = collection.delete_documents(&ids).await {
                    result = Err(e);
                    break;
                }
                report.removed.extend(docs.into_iter().map(|d| d.path));
            }
            Msg::Ready(mut p) => {
                let t = Instant::now();
                if let Err(e) = embed_rows(pipeline, &mut p.rows).await {
                    result = Err(e);
                    break;
                }
                embed_time += t.elapsed();
                pending_chunks += p.rows.len();
                pending.push(*p);
                if pending_chunks >= COMMIT_CHUNKS || pending.len() >= COMMIT_DOCS {
                    if let Err(e) =
                        commit(collection, pipeline, &mut pending, &mut report, progress).await
                    {
                        result = Err(e);
                        break;
                    }
                    pending_chunks = 0;
                }
            }
        }
        if cancel.is_cancelled() {
            report.cancelled = true;
            break;
        }
    }
    drop(rx);
    let _ = producer.await;
    result?;
    commit(collection, pipeline, &mut pending, &mut report, progress).await?;

    if options.sync && !report.cancelled {
        let vanished: Vec<DocumentRecord> = collection
            .documents()
            .await?
            .into_iter()
            .filter(|d| !source_file(Path::new(&d.path), collection.file_keys()).exists())
            .collect();
        let ids: Vec<String> = vanished.iter().map(|d| d.id.clone()).collect();
        collection.delete_documents(&ids).await?;
        report.removed = vanished.into_iter().map(|d| d.path).collect();
    }
    if !report.ingested.is_empty() || !report.removed.is_empty() || report.recovered > 0 {
        collection.optimize(pipeline.config.ann_threshold).await?;
    }
    report.embed_ms = embed_time.as_millis() as u64;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Embeds `rows` in batches of similar length (sorted by text length, so a batch pads little),
/// each vector put back on its own row.
async fn embed_rows(pipeline: &Pipeline, rows: &mut [ChunkRow]) -> Result<()> {
    let lengths: Vec<usize> = rows.iter().map(|r| r.text.len()).collect();
    for batch in length_buckets(&lengths, pipeline.config.embed_batch) {
        let texts: Vec<String> = batch.iter().map(|&i| rows[i].text.clone()).collect();
        let vectors = pipeline.embedder.embed(&texts).await?;
        if vectors.len() != batch.len() {
            return Err(Error::Backend(bear_core::Error::backend(
                bear_core::ErrorKind::Internal,
                "the embedder returned the wrong number of vectors",
            )));
        }
        for (&i, v) in batch.iter().zip(vectors) {
            rows[i].vector = v;
        }
    }
    Ok(())
}

/// Indices into `lengths` in batches of at most `size`, shortest first.
fn length_buckets(lengths: &[usize], size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    order.chunks(size.max(1)).map(<[usize]>::to_vec).collect()
}

async fn commit(
    collection: &Collection,
    pipeline: &Pipeline,
    pending: &mut Vec<Prepared>,
    report: &mut IngestReport,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut done: Vec<IngestedDoc> = Vec::with_capacity(pending.len());
    let mut docs: Vec<(DocumentRecord, Vec<ChunkRow>)> = Vec::with_capacity(pending.len());
    for p in pending.drain(..) {
        done.push(IngestedDoc {
            path: p.record.path.clone(),
            document_id: p.record.id.clone(),
            chunks: p.rows.len(),
            ocr_pages: p.ocr_pages,
        });
        docs.push((p.record, p.rows));
    }
    if let Some(persist) = &pipeline.persist_tokens {
        persist().map_err(Error::Backend)?;
    }
    collection.write(docs).await?;
    for d in done {
        progress(&Progress::Ingested {
            path: d.path.clone(),
            chunks: d.chunks,
        });
        report.chunks += d.chunks;
        report.ingested.push(d);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_time_limit_gives_up_on_a_stuck_extraction() {
        let started = Instant::now();
        let r: std::result::Result<(), Refusal> = limited(Duration::from_millis(100), None, || {
            std::thread::sleep(Duration::from_secs(3));
            Ok(())
        })
        .await;
        assert_eq!(r, Err(Refusal::Timeout { secs: 0 }));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn batches_hold_texts_of_like_length_and_every_row_once() {
        let lengths = [900, 12, 880, 15, 400, 10];
        let b = length_buckets(&lengths, 2);
        assert_eq!(b, vec![vec![5, 1], vec![3, 4], vec![2, 0]]);
        let mut all: Vec<usize> = b.concat();
        all.sort_unstable();
        assert_eq!(all, (0..6).collect::<Vec<_>>());
        assert!(length_buckets(&[], 32).is_empty());
        assert_eq!(length_buckets(&[1, 2], 0), vec![vec![0], vec![1]]);
    }

    #[tokio::test]
    async fn a_panicking_extractor_is_an_internal_refusal() {
        let r: std::result::Result<(), Refusal> =
            limited(Duration::from_secs(5), None, || panic!("extractor bug")).await;
        assert_eq!(r, Err(Refusal::Internal));
    }
}
