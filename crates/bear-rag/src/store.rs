//! The LanceDB store: one database directory per collection, each with a `documents` table and
//! a `chunks` table (text, `FixedSizeList<Float32, dim>` vector, offsets, page).
//!
//! Crash safety comes from write order. A batch of documents is written as one merge-insert
//! commit on `chunks` (which also deletes those documents' old chunks), then one commit on
//! `documents`; a document counts as ingested only once its `documents` row is committed.
//! Deletion removes the `documents` row first. Chunks without a `documents` row (left by a
//! crash between the two commits) are removed by [`Collection::remove_orphans`], which every
//! ingest runs first. The tables are plain Lance datasets with Arrow types, readable by any
//! LanceDB client.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::types::Float32Type;
use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Int64Array, RecordBatch,
    RecordBatchIterator, StringArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use lancedb::index::Index;
use lancedb::index::scalar::{FtsIndexBuilder, FullTextSearchQuery};
use lancedb::query::{ExecutableQuery, QueryBase, QueryExecutionOptions, Select};
use lancedb::{DistanceType, Table};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::flat::{FlatCache, FlatVectors};

const CHUNKS: &str = "chunks";
const DOCUMENTS: &str = "documents";
const META_FILE: &str = "collection.json";
/// The file whose lock a collection's writers hold (see [`Collection::write_lock`]).
const WRITE_LOCK: &str = "write.lock";
/// The kind of vector index BEAR builds (as LanceDB names it).
pub const VECTOR_INDEX: &str = "IVF_HNSW_SQ";
/// Rows per IVF partition of the vector index: each partition holds one HNSW graph.
const ROWS_PER_PARTITION: usize = 250_000;

/// Checks a collection name: 1–64 of `[a-z0-9_-]`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidCollectionName { name: name.into() })
    }
}

/// What a collection records about itself in `collection.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionMeta {
    /// The collection's name.
    pub name: String,
    /// What happens to PII before text is stored.
    pub pii_policy: bear_core::PiiPolicy,
    /// The embedder its vectors come from.
    pub embedder: String,
    /// Their dimension.
    pub dimension: usize,
    /// Unix seconds.
    pub created_at: i64,
    /// The public id of the API key that created it through the REST API; `None` for
    /// collections made locally (only admins see those over the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A collection with its size, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// The recorded metadata.
    #[serde(flatten)]
    pub meta: CollectionMeta,
    /// Documents.
    pub documents: usize,
    /// Chunks.
    pub chunks: usize,
}

/// A row of the `documents` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRecord {
    /// Stable id: from the file's canonical path.
    pub id: String,
    /// The file's canonical path.
    pub path: String,
    /// Title from the document, else the file name.
    pub title: String,
    /// Author, if the document names one (scrubbed like the text).
    pub author: Option<String>,
    /// Creation date as the document states it.
    pub created: Option<String>,
    /// Modification date as the document states it.
    pub modified: Option<String>,
    /// The file's modification time, Unix seconds.
    pub file_modified: i64,
    /// Pages, for paged formats.
    pub page_count: Option<u32>,
    /// MIME type.
    pub mime: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// Chunks stored.
    pub chunks: u32,
    /// When it was ingested, Unix seconds.
    pub ingested_at: i64,
}

/// A row of the `chunks` table, before it is written.
#[derive(Debug, Clone)]
pub struct ChunkRow {
    /// `<document id>-<ordinal>`.
    pub id: String,
    /// The document.
    pub document_id: String,
    /// Position in the document.
    pub ordinal: u32,
    /// The (scrubbed) text.
    pub text: String,
    /// The embedding.
    pub vector: Vec<f32>,
    /// Byte range in the extracted text.
    pub byte_range: (u64, u64),
    /// Character range in the extracted text.
    pub char_range: (u64, u64),
    /// 1-based page.
    pub page: Option<u32>,
    /// The document's path, for citations without a join.
    pub path: String,
    /// The document's title.
    pub title: String,
    /// The file's modification time, Unix seconds, for date filters.
    pub file_modified: i64,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The chunk.
    pub chunk_id: String,
    /// Its document.
    pub document_id: String,
    /// The document's path.
    pub path: String,
    /// The document's title.
    pub title: String,
    /// 1-based page, for paged formats.
    pub page: Option<u32>,
    /// The chunk's position in its document.
    pub ordinal: u32,
    /// Byte range in the extracted text.
    pub byte_range: (u64, u64),
    /// Character range in the extracted text.
    pub char_range: (u64, u64),
    /// The stored (scrubbed) text.
    pub text: String,
    /// Higher is better: cosine similarity (vector), BM25 (full text) or fused RRF (hybrid).
    pub score: f32,
}

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Nearest vectors by cosine (through the ANN index once one is built).
    Vector,
    /// Nearest vectors by cosine, every vector compared: exact, from memory (see `flat.rs`).
    Exact,
    /// BM25 over LanceDB's full-text index.
    FullText,
    /// Both, fused by reciprocal rank.
    #[default]
    Hybrid,
}

/// Filters applied to a search.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Only this document.
    pub document: Option<String>,
    /// Only files modified at or after this Unix time.
    pub modified_after: Option<i64>,
    /// Only files modified at or before this Unix time.
    pub modified_before: Option<i64>,
}

impl Filter {
    /// The SQL predicate, built from typed values only (ids are checked hex).
    fn predicate(&self) -> Result<Option<String>> {
        let mut parts = Vec::new();
        if let Some(d) = &self.document {
            check_id(d)?;
            parts.push(format!("document_id = '{d}'"));
        }
        if let Some(t) = self.modified_after {
            parts.push(format!("file_modified >= {t}"));
        }
        if let Some(t) = self.modified_before {
            parts.push(format!("file_modified <= {t}"));
        }
        Ok((!parts.is_empty()).then(|| parts.join(" AND ")))
    }
}

fn check_id(id: &str) -> Result<()> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::InvalidRequest(
            "a document id is 32 hexadecimal characters".into(),
        ))
    }
}

fn id_list(ids: &[String]) -> Result<String> {
    for id in ids {
        check_id(id)?;
    }
    Ok(ids
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(", "))
}

/// The directory that holds every collection.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Vectors kept in memory for exact search, shared by the collections this store opens.
    flat: FlatCache,
    /// Read table files through io_uring where the kernel allows it.
    io_uring: bool,
}

impl Store {
    /// A store rooted at `root` (created on first write), reading through io_uring where
    /// the kernel allows it.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            flat: FlatCache::default(),
            io_uring: true,
        }
    }

    /// The store `[rag]` configures: its collections directory and read path.
    pub fn from_config(rag: &bear_core::RagConfig, dirs: &bear_core::Dirs) -> Self {
        Self::new(rag.collections_dir(dirs)).io_uring(rag.io_uring)
    }

    /// Whether reads may go through io_uring (`rag.io_uring`). When the kernel refuses
    /// io_uring (old kernels, seccomp profiles that block it), or a collection's path has
    /// characters a URL must escape, reads use plain `pread` on a thread pool either way.
    pub fn io_uring(mut self, allow: bool) -> Self {
        self.io_uring = allow;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Whether a collection exists.
    pub fn exists(&self, name: &str) -> bool {
        self.dir(name).join(META_FILE).is_file()
    }

    /// Every collection, by name.
    pub async fn list(&self) -> Result<Vec<CollectionInfo>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(source) => {
                return Err(Error::Io {
                    path: self.root.clone(),
                    source,
                });
            }
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| check_name(n).is_ok() && self.exists(n))
            .collect();
        names.sort();
        for n in names {
            let c = self.open(&n).await?;
            out.push(CollectionInfo {
                documents: c
                    .documents
                    .count_rows(None)
                    .await
                    .map_err(|e| Error::storage("count", e))?,
                chunks: c
                    .chunks
                    .count_rows(None)
                    .await
                    .map_err(|e| Error::storage("count", e))?,
                meta: c.meta,
            });
        }
        Ok(out)
    }

    /// Creates a collection for vectors of `embedder` with `pii_policy`.
    pub async fn create(
        &self,
        name: &str,
        pii_policy: bear_core::PiiPolicy,
        embedder: &str,
        dimension: usize,
    ) -> Result<Collection> {
        self.create_owned(name, pii_policy, embedder, dimension, None)
            .await
    }

    /// [`Self::create`], recording `owner` (an API key's public id) in its metadata.
    pub async fn create_owned(
        &self,
        name: &str,
        pii_policy: bear_core::PiiPolicy,
        embedder: &str,
        dimension: usize,
        owner: Option<&str>,
    ) -> Result<Collection> {
        check_name(name)?;
        if self.exists(name) {
            return Err(Error::CollectionExists { name: name.into() });
        }
        let dir = self.dir(name);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        // Two creators of one name (two `bear ingest` runs into a new collection) take turns;
        // the second finds it made.
        let lock = lock_dir(&dir).await?;
        if self.exists(name) {
            return Err(Error::CollectionExists { name: name.into() });
        }
        // Created through a plain connection: the tables' first commits are writes.
        let db = connect(&dir, false).await?;
        for (table, schema) in [
            (CHUNKS, chunk_schema(dimension)),
            (DOCUMENTS, document_schema()),
        ] {
            db.create_empty_table(table, schema)
                .mode(lancedb::database::CreateTableMode::exist_ok(|b| b))
                .execute()
                .await
                .map_err(|e| Error::storage("create table", e))?;
        }
        let meta = CollectionMeta {
            name: name.into(),
            pii_policy,
            embedder: embedder.into(),
            dimension,
            created_at: now(),
            owner: owner.map(str::to_owned),
        };
        // collection.json is written last: a collection exists once its tables do.
        let json = serde_json::to_vec_pretty(&meta).unwrap_or_default();
        let tmp = dir.join(format!("{META_FILE}.tmp"));
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, dir.join(META_FILE)))
            .map_err(|source| Error::Io {
                path: dir.join(META_FILE),
                source,
            })?;
        drop(lock);
        self.open(name).await
    }

    /// Opens an existing collection.
    pub async fn open(&self, name: &str) -> Result<Collection> {
        check_name(name)?;
        if !self.exists(name) {
            return Err(Error::NoCollection { name: name.into() });
        }
        let dir = self.dir(name);
        let path = dir.join(META_FILE);
        let meta: CollectionMeta = std::fs::read(&path)
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })
            .and_then(|b| {
                serde_json::from_slice(&b).map_err(|e| Error::Storage {
                    op: "read collection.json",
                    reason: e.to_string(),
                })
            })?;
        let db = connect(&dir, self.io_uring).await?;
        let commits = commit_handler(&dir).await?;
        let open = |t: &'static str| {
            let db = db.clone();
            let params = lancedb::table::ReadParams {
                commit_handler: Some(commits.clone()),
                ..Default::default()
            };
            async move {
                db.open_table(t)
                    .lance_read_params(params)
                    .execute()
                    .await
                    .map_err(|e| Error::storage("open table", e))
            }
        };
        let chunks = open(CHUNKS).await?;
        let documents = open(DOCUMENTS).await?;
        Ok(Collection {
            meta,
            dir,
            chunks,
            documents,
            flat: self.flat.clone(),
        })
    }

    /// Deletes a collection and everything in it.
    pub fn remove(&self, name: &str) -> Result<()> {
        check_name(name)?;
        if !self.exists(name) {
            return Err(Error::NoCollection { name: name.into() });
        }
        let dir = self.dir(name);
        self.flat.forget(&dir);
        // Drop the marker first, so a half-deleted collection is never opened.
        std::fs::remove_file(dir.join(META_FILE))
            .and_then(|()| std::fs::remove_dir_all(&dir))
            .map_err(|source| Error::Io { path: dir, source })
    }
}

/// Waits for the advisory lock on `dir`'s [`WRITE_LOCK`] file, held until the file is dropped.
async fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(WRITE_LOCK);
    let open = path.clone();
    tokio::task::spawn_blocking(move || {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&open)?;
        // A file system without locks (some network mounts): writers are not serialised
        // across processes there, as before the lock existed.
        match f.lock() {
            Err(e) if e.kind() != std::io::ErrorKind::Unsupported => Err(e),
            _ => Ok(f),
        }
    })
    .await
    .map_err(|e| Error::storage("wait for the write lock", e))?
    .map_err(|source| Error::Io { path, source })
}

/// Opens the LanceDB database in `dir`. With `io_uring` (and a kernel that allows it) the
/// tables are opened as `file+uring://`, so that Lance reads table and index files through its
/// io_uring threads instead of one blocking-pool task per read: a top-10 ANN search with its
/// hit columns issues dozens of small reads, and the thread hand-offs were a third of its time.
async fn connect(dir: &Path, io_uring: bool) -> Result<lancedb::Connection> {
    let plain = dir.to_str().ok_or_else(|| {
        Error::InvalidRequest(format!(
            "the collection path {} is not valid UTF-8",
            dir.display()
        ))
    })?;
    let uri = if io_uring && io_uring_works() {
        uring_uri(dir).unwrap_or_else(|| plain.to_string())
    } else {
        plain.to_string()
    };
    lancedb::connect(&uri)
        .execute()
        .await
        .map_err(|e| Error::storage("open database", e))
}

/// The commit handler Lance uses for a plain local path: one that detects a commit racing
/// another (a second process writing the same collection) and retries it on top. Lance picks
/// its handler from a table's URI, and for `file+uring://` it picks one that does not
/// detect the race, so the later manifest silently replaced the earlier and its rows were
/// lost; tables are opened with this one instead, whatever their reads go through.
async fn commit_handler(dir: &Path) -> Result<Arc<dyn lance_table::io::commit::CommitHandler>> {
    lance_table::io::commit::commit_handler_from_url(&dir.to_string_lossy(), &None)
        .await
        .map_err(|e| Error::storage("open database", e))
}

/// The kind of the index on the `vector` column, if there is one.
fn vector_index_type(indices: &[lancedb::index::IndexConfig]) -> Option<String> {
    indices
        .iter()
        .find(|i| i.columns.iter().any(|c| c == "vector"))
        .map(|i| i.index_type.to_string())
}

/// `dir` as LanceDB's URI for a local database whose tables are read through io_uring:
/// `file:///dir?engine=uring`. LanceDB makes sure the database directory exists before it
/// opens anything, from the URI's path taken literally, and opens the tables as
/// `file+uring:///dir/NAME.lance`. (A `file+uring://` URI given directly would be created
/// as a relative directory named `file+uring:` in the process's working directory.) `None`,
/// so plain reads are used, when the path has no absolute form or needs percent-encoding
/// in a URL, since the directory LanceDB then made would be the encoded name.
fn uring_uri(dir: &Path) -> Option<String> {
    let absolute = std::path::absolute(dir).ok()?;
    let url = url::Url::from_file_path(&absolute).ok()?;
    (url.path() == absolute.to_str()?).then(|| format!("{url}?engine=uring"))
}

/// Whether this process may set up an io_uring instance as large as Lance's (checked once):
/// kernels before 5.12 charge the rings to `RLIMIT_MEMLOCK`, where a small ring may work and
/// Lance's would not. Lance's queue depth: `LANCE_URING_QUEUE_DEPTH`, else 16,384.
#[cfg(target_os = "linux")]
fn io_uring_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        let depth = std::env::var("LANCE_URING_QUEUE_DEPTH")
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(16 * 1024);
        io_uring::IoUring::new(depth).is_ok()
    })
}

#[cfg(not(target_os = "linux"))]
fn io_uring_works() -> bool {
    false
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn chunk_schema(dim: usize) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("document_id", DataType::Utf8, false),
        Field::new("collection", DataType::Utf8, false),
        Field::new("ordinal", DataType::UInt32, false),
        Field::new("text", DataType::Utf8, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, true)),
                dim as i32,
            ),
            false,
        ),
        Field::new("byte_start", DataType::UInt64, false),
        Field::new("byte_end", DataType::UInt64, false),
        Field::new("char_start", DataType::UInt64, false),
        Field::new("char_end", DataType::UInt64, false),
        Field::new("page", DataType::UInt32, true),
        Field::new("path", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("file_modified", DataType::Int64, false),
    ]))
}

fn document_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("author", DataType::Utf8, true),
        Field::new("created", DataType::Utf8, true),
        Field::new("modified", DataType::Utf8, true),
        Field::new("file_modified", DataType::Int64, false),
        Field::new("page_count", DataType::UInt32, true),
        Field::new("mime", DataType::Utf8, false),
        Field::new("sha256", DataType::Utf8, false),
        Field::new("size", DataType::UInt64, false),
        Field::new("chunks", DataType::UInt32, false),
        Field::new("ingested_at", DataType::Int64, false),
    ]))
}

fn strings<'a>(v: impl IntoIterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

fn opt_strings<'a>(v: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(v.into_iter().collect::<StringArray>())
}

fn reader(batch: RecordBatch) -> Box<dyn arrow_array::RecordBatchReader + Send> {
    let schema = batch.schema();
    Box::new(RecordBatchIterator::new(vec![Ok(batch)], schema))
}

/// Runs a query and collects every result batch; `op` names it in errors.
async fn read_all(q: &impl ExecutableQuery, op: &'static str) -> Result<Vec<RecordBatch>> {
    q.execute()
        .await
        .map_err(|e| Error::storage(op, e))?
        .try_collect()
        .await
        .map_err(|e| Error::storage(op, e))
}

/// Typed column access on a result batch.
struct Cols<'a>(&'a RecordBatch);

impl Cols<'_> {
    fn get<T: 'static>(&self, name: &str) -> Result<&T> {
        self.0
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<T>())
            .ok_or_else(|| Error::Storage {
                op: "read",
                reason: format!("column `{name}` is missing or has an unexpected type"),
            })
    }
    fn str(&self, name: &str, i: usize) -> Result<String> {
        Ok(self.get::<StringArray>(name)?.value(i).to_string())
    }
    fn opt_str(&self, name: &str, i: usize) -> Result<Option<String>> {
        let a = self.get::<StringArray>(name)?;
        Ok((!a.is_null(i)).then(|| a.value(i).to_string()))
    }
    fn u32(&self, name: &str, i: usize) -> Result<u32> {
        Ok(self.get::<UInt32Array>(name)?.value(i))
    }
    fn opt_u32(&self, name: &str, i: usize) -> Result<Option<u32>> {
        let a = self.get::<UInt32Array>(name)?;
        Ok((!a.is_null(i)).then(|| a.value(i)))
    }
    fn u64(&self, name: &str, i: usize) -> Result<u64> {
        Ok(self.get::<UInt64Array>(name)?.value(i))
    }
    fn i64(&self, name: &str, i: usize) -> Result<i64> {
        Ok(self.get::<Int64Array>(name)?.value(i))
    }
    fn f32(&self, name: &str, i: usize) -> Result<f32> {
        Ok(self.get::<Float32Array>(name)?.value(i))
    }
    /// The search hit in row `i` (the [`HIT_COLUMNS`]) with `score`.
    fn hit(&self, i: usize, score: f32) -> Result<Hit> {
        Ok(Hit {
            chunk_id: self.str("id", i)?,
            document_id: self.str("document_id", i)?,
            path: self.str("path", i)?,
            title: self.str("title", i)?,
            page: self.opt_u32("page", i)?,
            ordinal: self.u32("ordinal", i)?,
            byte_range: (self.u64("byte_start", i)?, self.u64("byte_end", i)?),
            char_range: (self.u64("char_start", i)?, self.u64("char_end", i)?),
            text: self.str("text", i)?,
            score,
        })
    }
}

const HIT_COLUMNS: [&str; 11] = [
    "id",
    "document_id",
    "path",
    "title",
    "page",
    "ordinal",
    "byte_start",
    "byte_end",
    "char_start",
    "char_end",
    "text",
];

/// An open collection.
#[derive(Debug, Clone)]
pub struct Collection {
    meta: CollectionMeta,
    dir: PathBuf,
    chunks: Table,
    documents: Table,
    flat: FlatCache,
}

impl Collection {
    /// The recorded metadata.
    pub fn meta(&self) -> &CollectionMeta {
        &self.meta
    }

    /// Waits for the collection's write lock (an advisory lock on `write.lock` in its
    /// directory, so writers in other processes and other handles in this one take turns),
    /// then moves both tables to their latest version. Every write runs under it: without it,
    /// two writers (`bear ingest` while bear-server ingests the same folder) each merged
    /// their rows into the version they had opened and stored documents twice, or one's
    /// orphan sweep deleted chunks the other had written and not yet recorded. Released
    /// when the returned file is dropped (or the process ends).
    async fn write_lock(&self) -> Result<std::fs::File> {
        let file = lock_dir(&self.dir).await?;
        for t in [&self.chunks, &self.documents] {
            t.checkout_latest()
                .await
                .map_err(|e| Error::storage("read the latest version", e))?;
        }
        Ok(file)
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The chunks table, for callers that need LanceDB directly (benchmarks).
    pub fn chunks_table(&self) -> &Table {
        &self.chunks
    }

    /// Every document.
    pub async fn documents(&self) -> Result<Vec<DocumentRecord>> {
        self.query_documents(None).await
    }

    /// One document by id.
    pub async fn document(&self, id: &str) -> Result<Option<DocumentRecord>> {
        check_id(id)?;
        Ok(self
            .query_documents(Some(format!("id = '{id}'")))
            .await?
            .into_iter()
            .next())
    }

    async fn query_documents(&self, filter: Option<String>) -> Result<Vec<DocumentRecord>> {
        let mut q = self.documents.query();
        if let Some(f) = filter {
            q = q.only_if(f);
        }
        let batches = read_all(&q, "read documents").await?;
        let mut out = Vec::new();
        for b in &batches {
            let c = Cols(b);
            for i in 0..b.num_rows() {
                out.push(DocumentRecord {
                    id: c.str("id", i)?,
                    path: c.str("path", i)?,
                    title: c.str("title", i)?,
                    author: c.opt_str("author", i)?,
                    created: c.opt_str("created", i)?,
                    modified: c.opt_str("modified", i)?,
                    file_modified: c.i64("file_modified", i)?,
                    page_count: c.opt_u32("page_count", i)?,
                    mime: c.str("mime", i)?,
                    sha256: c.str("sha256", i)?,
                    size: c.u64("size", i)?,
                    chunks: c.u32("chunks", i)?,
                    ingested_at: c.i64("ingested_at", i)?,
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Writes documents and their chunks: the chunks (replacing any older chunks of those
    /// documents) in one commit, then the document rows in a second.
    pub async fn write(&self, docs: Vec<(DocumentRecord, Vec<ChunkRow>)>) -> Result<()> {
        if docs.is_empty() {
            return Ok(());
        }
        let _lock = self.write_lock().await?;
        let ids: Vec<String> = docs.iter().map(|(d, _)| d.id.clone()).collect();
        let list = id_list(&ids)?;
        let rows: Vec<&ChunkRow> = docs.iter().flat_map(|(_, c)| c).collect();
        let batch = self.chunk_batch(&rows)?;
        let mut merge = self.chunks.merge_insert(&["id"]);
        merge
            .when_matched_update_all(None)
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(Some(format!("document_id IN ({list})")));
        merge
            .execute(reader(batch))
            .await
            .map_err(|e| Error::storage("write chunks", e))?;
        let records: Vec<&DocumentRecord> = docs.iter().map(|(d, _)| d).collect();
        let batch = document_batch(&records)?;
        let mut merge = self.documents.merge_insert(&["id"]);
        merge
            .when_matched_update_all(None)
            .when_not_matched_insert_all();
        merge
            .execute(reader(batch))
            .await
            .map_err(|e| Error::storage("write documents", e))?;
        Ok(())
    }

    fn chunk_batch(&self, rows: &[&ChunkRow]) -> Result<RecordBatch> {
        let dim = self.meta.dimension;
        if let Some(bad) = rows.iter().find(|r| r.vector.len() != dim) {
            return Err(Error::InvalidRequest(format!(
                "a vector of length {} for a collection of dimension {dim}",
                bad.vector.len()
            )));
        }
        let vectors = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
            rows.iter()
                .map(|r| Some(r.vector.iter().copied().map(Some).collect::<Vec<_>>())),
            dim as i32,
        );
        // from_iter_primitive marks the list field nullable; match the table's schema.
        let vectors = FixedSizeListArray::new(
            Arc::new(Field::new("item", DataType::Float32, true)),
            dim as i32,
            vectors.values().clone(),
            None,
        );
        let name = self.meta.name.as_str();
        RecordBatch::try_new(
            chunk_schema(dim),
            vec![
                strings(rows.iter().map(|r| r.id.as_str())),
                strings(rows.iter().map(|r| r.document_id.as_str())),
                strings(rows.iter().map(|_| name)),
                Arc::new(UInt32Array::from_iter_values(
                    rows.iter().map(|r| r.ordinal),
                )),
                strings(rows.iter().map(|r| r.text.as_str())),
                Arc::new(vectors),
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.byte_range.0),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.byte_range.1),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.char_range.0),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.char_range.1),
                )),
                Arc::new(rows.iter().map(|r| r.page).collect::<UInt32Array>()),
                strings(rows.iter().map(|r| r.path.as_str())),
                strings(rows.iter().map(|r| r.title.as_str())),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.file_modified),
                )),
            ],
        )
        .map_err(|e| Error::storage("build chunk batch", e))
    }

    /// Deletes documents and their chunks.
    pub async fn delete_documents(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let _lock = self.write_lock().await?;
        let list = id_list(ids)?;
        self.documents
            .delete(format!("id IN ({list})").as_str())
            .await
            .map_err(|e| Error::storage("delete documents", e))?;
        self.chunks
            .delete(format!("document_id IN ({list})").as_str())
            .await
            .map_err(|e| Error::storage("delete chunks", e))?;
        Ok(())
    }

    /// Removes chunks whose document row is missing (a crash between the two commits of
    /// [`Self::write`] or of [`Self::delete_documents`]). Returns how many documents' chunks
    /// were removed.
    pub async fn remove_orphans(&self) -> Result<usize> {
        let _lock = self.write_lock().await?;
        let known: HashSet<String> = self.documents().await?.into_iter().map(|d| d.id).collect();
        let batches = read_all(
            &self
                .chunks
                .query()
                .select(Select::columns(&["document_id"])),
            "scan chunks",
        )
        .await?;
        let mut orphans = HashSet::new();
        for b in &batches {
            let cols = Cols(b);
            let ids = cols.get::<StringArray>("document_id")?;
            for i in 0..ids.len() {
                let id = ids.value(i);
                if !known.contains(id) {
                    orphans.insert(id.to_string());
                }
            }
        }
        if !orphans.is_empty() {
            let ids: Vec<String> = orphans.iter().cloned().collect();
            self.chunks
                .delete(format!("document_id IN ({})", id_list(&ids)?).as_str())
                .await
                .map_err(|e| Error::storage("delete orphan chunks", e))?;
        }
        Ok(orphans.len())
    }

    /// Brings the indexes up to date after writes: the full-text index on `text` (built or
    /// extended), compaction, and an IVF-HNSW-SQ vector index once there are `ann_threshold` rows.
    pub async fn optimize(&self, ann_threshold: usize) -> Result<()> {
        let _lock = self.write_lock().await?;
        let rows = self
            .chunks
            .count_rows(None)
            .await
            .map_err(|e| Error::storage("count", e))?;
        let indices = self
            .chunks
            .list_indices()
            .await
            .map_err(|e| Error::storage("list indices", e))?;
        let has = |col: &str| indices.iter().any(|i| i.columns.iter().any(|c| c == col));
        if rows > 0 && !has("text") {
            self.chunks
                .create_index(&["text"], Index::FTS(FtsIndexBuilder::default()))
                .execute()
                .await
                .map_err(|e| Error::storage("build full-text index", e))?;
        }
        // A collection indexed by an older BEAR (IVF-PQ) gets the current kind of index.
        let current = vector_index_type(&indices).as_deref() == Some(VECTOR_INDEX);
        if rows >= ann_threshold.max(256) && !current {
            self.build_vector_index_locked(rows).await?;
        }
        for t in [&self.chunks, &self.documents] {
            t.optimize(lancedb::table::OptimizeAction::All)
                .await
                .map_err(|e| Error::storage("optimize", e))?;
        }
        Ok(())
    }

    /// Builds the vector index: IVF-HNSW-SQ (an HNSW graph over 8-bit scalar-quantised
    /// vectors in each IVF partition), one partition per 250,000 rows. At
    /// 100,000 rows of 384 dimensions a query costs a few hundred distance evaluations
    /// instead of IVF-PQ's scan of whole partitions, at recall@10 above 0.95 without a
    /// refine step (see `cargo xtask bench rag`).
    pub async fn build_vector_index(&self, rows: usize) -> Result<()> {
        let _lock = self.write_lock().await?;
        self.build_vector_index_locked(rows).await
    }

    /// [`Self::build_vector_index`] under a write lock the caller holds.
    async fn build_vector_index_locked(&self, rows: usize) -> Result<()> {
        let partitions = rows.div_ceil(ROWS_PER_PARTITION).clamp(1, 4096) as u32;
        let builder = lancedb::index::vector::IvfHnswSqIndexBuilder::default()
            .distance_type(DistanceType::Cosine)
            .num_partitions(partitions)
            .ef_construction(150);
        self.chunks
            .create_index(&["vector"], Index::IvfHnswSq(builder))
            .replace(true)
            .execute()
            .await
            .map_err(|e| Error::storage("build vector index", e))
    }

    /// The vector index's kind (`IVF_HNSW_SQ`, `IVF_PQ`, ...), `None` without one.
    pub async fn vector_index_kind(&self) -> Result<Option<String>> {
        let indices = self
            .chunks
            .list_indices()
            .await
            .map_err(|e| Error::storage("list indices", e))?;
        Ok(vector_index_type(&indices))
    }

    /// Searches the chunks. `vector` is required for vector and hybrid mode, `text` for full
    /// text and hybrid.
    pub async fn search(
        &self,
        mode: SearchMode,
        text: &str,
        vector: Option<&[f32]>,
        k: usize,
        filter: &Filter,
        tuning: &AnnTuning,
    ) -> Result<Vec<Hit>> {
        let predicate = filter.predicate()?;
        let need_vec = || {
            vector.ok_or_else(|| Error::InvalidRequest("vector search needs a query vector".into()))
        };
        let exact = mode == SearchMode::Exact || (mode == SearchMode::Vector && tuning.exact);
        if exact && let Some(hits) = self.flat_search(need_vec()?, k, filter).await? {
            return Ok(hits);
        }
        let columns: Vec<&str> = HIT_COLUMNS.to_vec();
        let base = || {
            let mut q = self
                .chunks
                .query()
                .limit(k)
                .select(Select::columns(&columns));
            if let Some(p) = &predicate {
                q = q.only_if(p.clone());
            }
            q
        };
        let vq = |v: &[f32]| -> Result<lancedb::query::VectorQuery> {
            let q = base()
                .nearest_to(v)
                .map_err(|e| Error::storage("vector query", e))?
                .distance_type(DistanceType::Cosine)
                .nprobes(tuning.nprobes)
                .map_err(|e| Error::storage("vector query", e))?
                .ef(tuning.ef);
            let q = match tuning.refine_factor {
                0 => q,
                r => q.refine_factor(r),
            };
            Ok(if exact { q.bypass_vector_index() } else { q })
        };
        let stream = match mode {
            SearchMode::Vector | SearchMode::Exact => vq(need_vec()?)?.execute().await,
            SearchMode::FullText => {
                base()
                    .full_text_search(FullTextSearchQuery::new(text.to_string()))
                    .execute()
                    .await
            }
            SearchMode::Hybrid => {
                vq(need_vec()?)?
                    .full_text_search(FullTextSearchQuery::new(text.to_string()))
                    .execute_hybrid(QueryExecutionOptions::default())
                    .await
            }
        }
        .map_err(|e| Error::storage("search", e))?;
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|e| Error::storage("search", e))?;
        let mut hits = Vec::new();
        for b in &batches {
            let c = Cols(b);
            for i in 0..b.num_rows() {
                let score = match mode {
                    SearchMode::Vector | SearchMode::Exact => 1.0 - c.f32("_distance", i)?,
                    SearchMode::FullText => c.f32("_score", i)?,
                    SearchMode::Hybrid => c.f32("_relevance_score", i)?,
                };
                hits.push(c.hit(i, score)?);
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        Ok(hits)
    }

    /// Exact search from the in-memory vectors (see [`crate::flat`]), loading them for this
    /// table version if needed; `None` when the collection is too large to keep them.
    async fn flat_search(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter,
    ) -> Result<Option<Vec<Hit>>> {
        let dim = self.meta.dimension;
        if query.len() != dim {
            return Err(Error::InvalidRequest(format!(
                "the query vector has {} dimensions; this collection's have {dim}",
                query.len()
            )));
        }
        let version = self
            .chunks
            .version()
            .await
            .map_err(|e| Error::storage("version", e))?;
        let flat = match self.flat.get(&self.dir, version) {
            Some(f) => f,
            None => {
                let rows = self
                    .chunks
                    .count_rows(None)
                    .await
                    .map_err(|e| Error::storage("count", e))?;
                if rows.saturating_mul(dim * 4) > crate::flat::MAX_BYTES {
                    return Ok(None);
                }
                let batches = read_all(
                    &self
                        .chunks
                        .query()
                        .select(Select::columns(&["vector", "document_id", "file_modified"]))
                        .with_row_id(),
                    "read vectors",
                )
                .await?;
                let f = Arc::new(FlatVectors::from_batches(version, dim, &batches)?);
                self.flat.put(self.dir.clone(), f.clone());
                f
            }
        };
        let (q, filter) = (query.to_vec(), filter.clone());
        let top = tokio::task::spawn_blocking(move || flat.top_k(&q, k, &filter))
            .await
            .map_err(|_| Error::Storage {
                op: "exact search",
                reason: "the scoring task failed".into(),
            })?;
        if top.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let batches = read_all(
            &self
                .chunks
                .take_row_ids(top.iter().map(|h| h.0).collect())
                .select(Select::columns(&HIT_COLUMNS))
                .with_row_id(),
            "search",
        )
        .await?;
        let mut found = std::collections::HashMap::new();
        for b in &batches {
            let c = Cols(b);
            for i in 0..b.num_rows() {
                found.insert(c.u64("_rowid", i)?, c.hit(i, 0.0)?);
            }
        }
        Ok(Some(
            top.into_iter()
                .filter_map(|(row, score)| found.remove(&row).map(|h| Hit { score, ..h }))
                .collect(),
        ))
    }
}

/// Query-time ANN parameters (ignored until an ANN index exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnTuning {
    /// IVF partitions probed.
    pub nprobes: usize,
    /// HNSW candidate list size per partition: larger finds more true neighbours, slower.
    pub ef: usize,
    /// Candidates re-ranked with exact distances, as a multiple of k (0: no re-ranking).
    pub refine_factor: u32,
    /// Skip the index: an exact (flat) scan.
    pub exact: bool,
}

impl Default for AnnTuning {
    fn default() -> Self {
        Self {
            nprobes: 20,
            ef: 64,
            refine_factor: 0,
            exact: false,
        }
    }
}

fn document_batch(rows: &[&DocumentRecord]) -> Result<RecordBatch> {
    RecordBatch::try_new(
        document_schema(),
        vec![
            strings(rows.iter().map(|r| r.id.as_str())),
            strings(rows.iter().map(|r| r.path.as_str())),
            strings(rows.iter().map(|r| r.title.as_str())),
            opt_strings(rows.iter().map(|r| r.author.as_deref())),
            opt_strings(rows.iter().map(|r| r.created.as_deref())),
            opt_strings(rows.iter().map(|r| r.modified.as_deref())),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.file_modified),
            )),
            Arc::new(rows.iter().map(|r| r.page_count).collect::<UInt32Array>()),
            strings(rows.iter().map(|r| r.mime.as_str())),
            strings(rows.iter().map(|r| r.sha256.as_str())),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.size))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.chunks))),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.ingested_at),
            )),
        ],
    )
    .map_err(|e| Error::storage("build document batch", e))
}
