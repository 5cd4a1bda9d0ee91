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
//!
//! Here: names, records, the collection directory, metadata and write lock. `schema.rs`: the
//! Arrow schemas and batches; `write.rs`: writes and index maintenance; `search.rs`: search.

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
use crate::flat::FlatCache;

mod export;
mod mail;
mod migrate;
pub use export::Exported;
pub use mail::{MailFilter, MailMeta, Restore, reply_links};
mod schema;
pub mod seal;
mod search;
mod segments;
mod write;

use schema::*;
pub use search::AnnTuning;

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
    /// Whether its tables are sealed under its data key (see `seal.rs`).
    #[serde(default)]
    pub sealed: bool,
    /// The code its first vectors came from (recorded by the first ingest that knew it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedder_runtime: Option<bear_core::EmbedderRuntime>,
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
    /// An e-mail message's header fields and thread keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<MailMeta>,
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
    /// The OCR confidence (0-100) of the page the chunk starts on, when it was read by OCR.
    pub ocr_confidence: Option<f32>,
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
    /// The OCR confidence (0-100) of its page, when the text was read by OCR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr_confidence: Option<f32>,
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
    /// Only e-mail messages (and their attachments) that pass this; a search needs it
    /// resolved first ([`Collection::resolve`]).
    #[serde(default)]
    pub mail: Option<MailFilter>,
    /// Only these documents (what a mail filter resolved to).
    #[serde(default)]
    pub within: Option<Vec<String>>,
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
        if self.mail.is_some() {
            return Err(Error::InvalidRequest(
                "a mail filter must be resolved against its collection first".into(),
            ));
        }
        if let Some(ids) = self.within.as_ref().filter(|i| !i.is_empty()) {
            parts.push(format!("document_id IN ({})", id_list(ids)?));
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

/// Where a store gets a collection's data keys for sealing (the keyring, in bear-app): made
/// for a new collection when `create` is set, else only those that exist (a collection whose
/// key is gone is gone).
pub type KeyProvider = Arc<
    dyn Fn(&str, bool) -> std::result::Result<bear_security::FileKeys, bear_core::Error>
        + Send
        + Sync,
>;

/// The directory that holds every collection.
#[derive(Clone)]
pub struct Store {
    root: PathBuf,
    /// Vectors kept in memory for exact search, shared by the collections this store opens.
    flat: FlatCache,
    /// Read table files through io_uring where the kernel allows it.
    io_uring: bool,
    /// Data keys: new collections are sealed, and sealed ones can be opened, only with them.
    keys: Option<KeyProvider>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.root)
            .field("io_uring", &self.io_uring)
            .field("sealing", &self.keys.is_some())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store rooted at `root` (created on first write), reading through io_uring where
    /// the kernel allows it.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            flat: FlatCache::default(),
            io_uring: true,
            keys: None,
        }
    }

    /// Seals the collections this store creates, and opens sealed ones, with data keys from
    /// `keys`.
    pub fn sealed_with(mut self, keys: KeyProvider) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The sealing layer for collection `name` in `dir`, when the store seals (`create`:
    /// for a new collection).
    fn sealing(&self, name: &str, dir: &Path, create: bool) -> Result<Option<Arc<seal::Sealing>>> {
        let Some(keys) = &self.keys else {
            return Ok(None);
        };
        let keys = keys(name, create).map_err(Error::Backend)?;
        Ok(Some(Arc::new(seal::Sealing::new(keys, object_root(dir)?))))
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

    /// The names of the entries of the store's directory (none before it exists).
    pub(crate) fn entry_names(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Io {
                    path: self.root.clone(),
                    source,
                });
            }
        };
        Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }

    /// Every collection, by name.
    pub async fn list(&self) -> Result<Vec<CollectionInfo>> {
        let mut out = Vec::new();
        let mut names: Vec<String> = self
            .entry_names()?
            .into_iter()
            .filter(|n| check_name(n).is_ok() && self.exists(n))
            .collect();
        names.sort();
        for n in names {
            // Listed even when not sealed yet (the list says so); not opened for use.
            let c = self.open_in(self.dir(&n), self.meta(&n)?).await?;
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
        let meta = CollectionMeta {
            name: name.into(),
            pii_policy,
            embedder: embedder.into(),
            dimension,
            created_at: now(),
            owner: owner.map(str::to_owned),
            sealed: self.keys.is_some(),
            embedder_runtime: None,
        };
        self.create_in(&dir, &meta).await?;
        drop(lock);
        self.open(name).await
    }

    /// Creates the empty tables of `meta` in `dir` (sealed when `meta.sealed`), then writes
    /// `collection.json`, last: a collection exists once its tables do.
    async fn create_in(&self, dir: &Path, meta: &CollectionMeta) -> Result<()> {
        // Created through a plain connection: the tables' first commits are writes.
        let sealing = match meta.sealed {
            true => self.sealing(&meta.name, dir, true)?,
            false => None,
        };
        let db = connect(dir, false, sealing.is_some()).await?;
        for (table, schema) in [
            (CHUNKS, chunk_schema(meta.dimension)),
            (DOCUMENTS, document_schema()),
        ] {
            let options = lancedb::table::WriteOptions {
                lance_write_params: Some(lance::dataset::WriteParams {
                    store_params: store_params(&sealing),
                    ..Default::default()
                }),
            };
            db.create_empty_table(table, schema)
                .mode(lancedb::database::CreateTableMode::exist_ok(|b| b))
                .write_options(options)
                .execute()
                .await
                .map_err(|e| Error::storage("create table", e))?;
        }
        write_meta(dir, meta)
    }

    /// What collection `name` records about itself, without opening its tables (or needing
    /// its keys).
    pub fn meta(&self, name: &str) -> Result<CollectionMeta> {
        check_name(name)?;
        if !self.exists(name) {
            return Err(Error::NoCollection { name: name.into() });
        }
        read_meta(&self.dir(name))
    }

    /// Opens an existing collection.
    pub async fn open(&self, name: &str) -> Result<Collection> {
        let meta = self.meta(name)?;
        if !meta.sealed && self.keys.is_some() {
            return Err(Error::NeedsMigration { name: name.into() });
        }
        self.open_in(self.dir(name), meta).await
    }

    /// Opens the collection `meta` describes in `dir`.
    async fn open_in(&self, dir: PathBuf, meta: CollectionMeta) -> Result<Collection> {
        let name = meta.name.as_str();
        let sealing = match meta.sealed {
            false => None,
            true => match self.sealing(name, &dir, false)? {
                Some(s) => Some(s),
                None => return Err(Error::Locked { name: name.into() }),
            },
        };
        let db = connect(&dir, self.io_uring, meta.sealed).await?;
        let commits = commit_handler(&dir).await?;
        let open = |t: &'static str| {
            let db = db.clone();
            let params = lancedb::table::ReadParams {
                commit_handler: Some(commits.clone()),
                store_options: store_params(&sealing),
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
        let has_ocr = has_ocr_column(&chunks).await?;
        Ok(Collection {
            meta,
            dir,
            keys: sealing.as_ref().map(|s| s.keys().clone()),
            chunks,
            documents,
            flat: self.flat.clone(),
            has_ocr_column: Arc::new(has_ocr.into()),
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
///
/// A sealed collection is opened as `file-object-store://`, the scheme under which Lance does
/// all its local IO through the (wrapped) object store instead of reading files itself.
async fn connect(dir: &Path, io_uring: bool, sealed: bool) -> Result<lancedb::Connection> {
    let plain = dir.to_str().ok_or_else(|| {
        Error::InvalidRequest(format!(
            "the collection path {} is not valid UTF-8",
            dir.display()
        ))
    })?;
    let uri = if sealed {
        sealed_uri(dir)?
    } else if io_uring && io_uring_works() {
        uring_uri(dir).unwrap_or_else(|| plain.to_string())
    } else {
        plain.to_string()
    };
    lancedb::connect(&uri)
        .execute()
        .await
        .map_err(|e| Error::storage("open database", e))
}

/// `file-object-store://` and the absolute path of `dir`.
fn sealed_uri(dir: &Path) -> Result<String> {
    let abs = std::path::absolute(dir).map_err(|source| Error::Io {
        path: dir.into(),
        source,
    })?;
    let url = url::Url::from_directory_path(&abs).map_err(|()| {
        Error::InvalidRequest(format!(
            "the collection path {} is not absolute",
            abs.display()
        ))
    })?;
    Ok(url
        .as_str()
        .trim_end_matches('/')
        .replacen("file://", "file-object-store://", 1))
}

/// `dir` as the local object store addresses it (the root sealed files are named below).
fn object_root(dir: &Path) -> Result<object_store::path::Path> {
    let abs = std::path::absolute(dir).map_err(|source| Error::Io {
        path: dir.into(),
        source,
    })?;
    object_store::path::Path::from_absolute_path(&abs)
        .map_err(|e| Error::storage("name the collection's files", e))
}

/// Lance's object store parameters with the sealing layer, if any.
fn store_params(
    sealing: &Option<Arc<seal::Sealing>>,
) -> Option<lance_io::object_store::ObjectStoreParams> {
    sealing
        .as_ref()
        .map(|s| lance_io::object_store::ObjectStoreParams {
            object_store_wrapper: Some(
                s.clone() as Arc<dyn lance_io::object_store::WrappingObjectStore>
            ),
            ..Default::default()
        })
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

/// Reads `collection.json` in `dir`.
fn read_meta(dir: &Path) -> Result<CollectionMeta> {
    let path = dir.join(META_FILE);
    std::fs::read(&path)
        .map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| Error::Storage {
                op: "read collection.json",
                reason: e.to_string(),
            })
        })
}

/// Writes `collection.json` in `dir` (whole, through a rename).
fn write_meta(dir: &Path, meta: &CollectionMeta) -> Result<()> {
    let json = serde_json::to_vec_pretty(meta).unwrap_or_default();
    let tmp = dir.join(format!("{META_FILE}.tmp"));
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, dir.join(META_FILE)))
        .map_err(|source| Error::Io {
            path: dir.join(META_FILE),
            source,
        })
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An open collection.
#[derive(Debug, Clone)]
pub struct Collection {
    meta: CollectionMeta,
    dir: PathBuf,
    keys: Option<bear_security::FileKeys>,
    chunks: Table,
    documents: Table,
    flat: FlatCache,
    /// Whether the chunks table has the [`schema::OCR_COLUMN`] (collections from before it
    /// get it at their next write).
    has_ocr_column: Arc<std::sync::atomic::AtomicBool>,
}

impl Collection {
    /// The recorded metadata.
    pub fn meta(&self) -> &CollectionMeta {
        &self.meta
    }

    /// The keys its files are sealed with; `None` for a collection from before sealing.
    pub fn file_keys(&self) -> Option<&bear_security::FileKeys> {
        self.keys.as_ref()
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

    /// Records `runtime` in `collection.json` as the code its vectors come from when none is
    /// recorded yet (under the write lock); returns the recorded one when it is another.
    pub(crate) async fn note_runtime(
        &self,
        runtime: &bear_core::EmbedderRuntime,
    ) -> Result<Option<bear_core::EmbedderRuntime>> {
        let _lock = lock_dir(&self.dir).await?;
        let mut meta = read_meta(&self.dir)?;
        match &meta.embedder_runtime {
            Some(r) if r == runtime => Ok(None),
            Some(r) => Ok(Some(r.clone())),
            None => {
                meta.embedder_runtime = Some(runtime.clone());
                write_meta(&self.dir, &meta).map(|()| None)
            }
        }
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
                    mail: c.json(MAIL_COLUMN, i)?,
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}
