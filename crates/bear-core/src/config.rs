//! Configuration: one TOML file, `BEAR_*` environment overrides, and XDG directories.
//!
//! Precedence, lowest first: built-in defaults, the TOML file, `BEAR_*` variables, command-line
//! flags (applied by the front end). bear-core does no IO, so the caller reads the file and hands
//! over its text and the environment; this module only parses, validates and resolves.
//!
//! Every error names the origin (file path or `environment`), the key and what was expected.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default address of bear-server: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8787";

/// The whole configuration file. Unknown keys are errors, so a typo never passes silently.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where BEAR keeps its data, cache and models.
    pub paths: PathsConfig,
    /// Model selection and runtime settings.
    pub models: ModelsConfig,
    /// Hardware overrides; empty means "detect".
    pub hw: HwConfig,
    /// The REST server.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
    /// PII detection and scrubbing.
    pub pii: PiiConfig,
    /// Keys, encryption at rest and the audit log.
    pub security: SecurityConfig,
    /// WebAssembly plugins.
    pub plugins: PluginsConfig,
    /// Document ingestion and retrieval.
    pub rag: RagConfig,
    /// The workflow engine.
    pub workflows: WorkflowsConfig,
    /// Shared state for several instances (PostgreSQL); empty for one machine's files.
    pub storage: StorageConfig,
}

/// `[storage]`: where state shared by several bear-server instances lives. Unset (the
/// default), everything stays in the data directory's files (SQLite, local LanceDB).
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `postgres://user:password@host:port/database`: workflow runs (with leases, so any
    /// instance finishes another's) live there. Also `BEAR_DATABASE_URL`.
    pub database_url: Option<String>,
}

impl std::fmt::Debug for StorageConfig {
    /// Never prints the URL: it may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("database_url", &self.database_url.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// `[workflows]`: the workflow engine's database, parallelism and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowsConfig {
    /// The SQLite database of runs; default `<data_dir>/workflows.db`.
    pub database: Option<PathBuf>,
    /// Steps of one run executing at once.
    pub max_parallel_steps: usize,
    /// Seconds a step may run when its definition gives no `timeout`.
    pub default_timeout_secs: f64,
    /// Largest step output, in bytes of JSON.
    pub max_output_bytes: usize,
    /// `file_operations` steps may only touch files under this directory; default: the
    /// directory the command runs in.
    pub files_root: Option<PathBuf>,
    /// Flush every state change to disk before going on (`true`), or only survive a crash of
    /// BEAR itself and leave flushing to the OS (`false`, faster).
    pub fsync: bool,
}

impl Default for WorkflowsConfig {
    fn default() -> Self {
        Self {
            database: None,
            max_parallel_steps: 4,
            default_timeout_secs: 300.0,
            max_output_bytes: 1 << 20,
            files_root: None,
            fsync: false,
        }
    }
}

impl WorkflowsConfig {
    /// The SQLite database of workflow runs.
    pub fn database_path(&self, dirs: &Dirs) -> PathBuf {
        self.database
            .clone()
            .unwrap_or_else(|| dirs.data_dir.join("workflows.db"))
    }
}

/// `[rag]`: ingestion limits, chunking and retrieval defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RagConfig {
    /// Where collections live; default `<data_dir>/collections`.
    pub dir: Option<PathBuf>,
    /// The collection used when a command names none.
    pub default_collection: String,
    /// What happens to PII before text is embedded and stored, for new collections.
    pub pii_policy: crate::pii::PiiPolicy,
    /// Only files matching one of these globs are ingested from folders (empty: every
    /// supported extension).
    pub include: Vec<String>,
    /// Files and folders matching any of these globs are skipped.
    pub exclude: Vec<String>,
    /// Target chunk size in embedder tokens.
    pub chunk_tokens: usize,
    /// Tokens repeated from the end of one chunk at the start of the next.
    pub chunk_overlap: usize,
    /// Chunks embedded per batch.
    pub embed_batch: usize,
    /// Largest file accepted, in bytes.
    pub max_file_bytes: u64,
    /// Most bytes a compressed container (DOCX) may decompress to.
    pub max_decompressed_bytes: u64,
    /// Deepest XML nesting accepted.
    pub max_xml_depth: usize,
    /// Most pages accepted in one PDF.
    pub max_pages: usize,
    /// Seconds allowed to extract one document.
    pub doc_timeout_secs: u64,
    /// Rows above which an ANN vector index is built.
    pub ann_threshold: usize,
    /// The default k: sources retrieved for a question (at most 50), hits for a search.
    pub top_k: usize,
    /// Lowest cosine similarity a chunk needs to count as relevant to a question.
    pub min_similarity: f32,
    /// Read collections through io_uring where the kernel allows it (else plain reads).
    pub io_uring: bool,
    /// Most sections a review map-reduces a long document into (`bear review`).
    pub review_max_sections: usize,
    /// Languages scans and images are read in, Tesseract's names joined by `+`.
    pub ocr_languages: String,
    /// Where Tesseract's `<lang>.traineddata` files are; default: `TESSDATA_PREFIX`, else
    /// the system's tessdata folder.
    pub ocr_data_dir: Option<PathBuf>,
    /// Seconds allowed to read one page by OCR; a slower page is skipped with a reason. OCR
    /// time does not count against `doc_timeout_secs`.
    pub ocr_page_timeout_secs: u64,
    /// Most pixels one image (or rendered page) may have; larger ones are refused before
    /// they are decoded.
    pub max_image_pixels: u64,
}

impl Default for RagConfig {
    fn default() -> Self {
        Self {
            dir: None,
            default_collection: "default".into(),
            pii_policy: crate::pii::PiiPolicy::Tokenize,
            include: Vec::new(),
            exclude: Vec::new(),
            chunk_tokens: 200,
            chunk_overlap: 32,
            embed_batch: 32,
            max_file_bytes: 64 << 20,
            max_decompressed_bytes: 256 << 20,
            max_xml_depth: 256,
            max_pages: 5000,
            doc_timeout_secs: 120,
            ann_threshold: 20_000,
            top_k: 5,
            min_similarity: 0.25,
            io_uring: true,
            review_max_sections: 64,
            ocr_languages: "eng+nld+deu+fra".into(),
            ocr_data_dir: None,
            ocr_page_timeout_secs: 60,
            max_image_pixels: 100_000_000,
        }
    }
}

impl RagConfig {
    /// The directory holding one LanceDB database per collection.
    pub fn collections_dir(&self, dirs: &Dirs) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| dirs.data_dir.join("collections"))
    }
}

/// `[plugins]`: where plugins are found and which signatures are trusted.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Directories searched for plugin directories; default `<data_dir>/plugins`.
    pub dirs: Vec<PathBuf>,
    /// Refuse plugins without a valid signature by a trusted key.
    pub require_signature: bool,
    /// Hex Ed25519 public keys whose signatures are trusted.
    pub trusted_keys: Vec<String>,
}

impl PluginsConfig {
    /// The directories to search.
    pub fn search_dirs(&self, dirs: &Dirs) -> Vec<PathBuf> {
        if self.dirs.is_empty() {
            vec![dirs.data_dir.join("plugins")]
        } else {
            self.dirs.clone()
        }
    }
}

/// `[pii]`: what the detector looks for and what scrubbing does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiConfig {
    /// Findings scoring below this are dropped (0..=1).
    pub min_score: f32,
    /// Names always reported as PERSON (clients, parties), matched case-insensitively.
    pub names: Vec<String>,
    /// Deny-lists.
    pub deny_lists: Vec<crate::pii::DenyList>,
    /// Custom patterns.
    pub patterns: Vec<crate::pii::CustomPattern>,
    /// The policy for entity types without their own.
    pub default_policy: crate::pii::PiiPolicy,
    /// Policies by entity name (`PHONE = "mask"`).
    pub policies: std::collections::BTreeMap<String, crate::pii::PiiPolicy>,
    /// How many trailing digits `mask` keeps for numbers.
    pub mask_keep: usize,
    /// What to do with input that is not UTF-8.
    pub invalid_utf8: crate::pii::InvalidUtf8,
}

impl Default for PiiConfig {
    fn default() -> Self {
        Self {
            min_score: 0.5,
            names: Vec::new(),
            deny_lists: Vec::new(),
            patterns: Vec::new(),
            default_policy: crate::pii::PiiPolicy::Replace,
            policies: std::collections::BTreeMap::new(),
            mask_keep: 4,
            invalid_utf8: crate::pii::InvalidUtf8::Refuse,
        }
    }
}

impl PiiConfig {
    /// The policy for `entity`.
    pub fn policy_for(&self, entity: &crate::pii::PiiEntity) -> crate::pii::PiiPolicy {
        self.policies
            .get(entity.name().as_ref())
            .copied()
            .unwrap_or(self.default_policy)
    }
}

/// `[security]`: where keys and the audit log live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// The keyring; default `<data_dir>/keys/keyring.json`.
    pub keyring: Option<PathBuf>,
    /// A key file (32 bytes, mode 0600) used instead of a passphrase.
    pub key_file: Option<PathBuf>,
    /// The audit log; default `<data_dir>/audit/audit.jsonl`.
    pub audit_log: Option<PathBuf>,
    /// Refuse operations whose audit record cannot be written.
    pub audit_fail_closed: bool,
}

impl SecurityConfig {
    /// The keyring file.
    pub fn keyring_path(&self, dirs: &Dirs) -> PathBuf {
        self.keyring
            .clone()
            .unwrap_or_else(|| dirs.data_dir.join("keys").join("keyring.json"))
    }

    /// The key file: `key_file`, else `master.key` beside the configuration file (where a
    /// first run puts the one it generates).
    pub fn key_file_path(&self, dirs: &Dirs) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| dirs.config_file.with_file_name("master.key"))
    }

    /// The token vault, beside the keyring.
    pub fn vault_path(&self, dirs: &Dirs) -> PathBuf {
        self.keyring_path(dirs).with_file_name("vault.bseal")
    }

    /// The API key store, beside the keyring.
    pub fn api_keys_path(&self, dirs: &Dirs) -> PathBuf {
        self.keyring_path(dirs).with_file_name("api-keys.json")
    }

    /// The audit log.
    pub fn audit_log_path(&self, dirs: &Dirs) -> PathBuf {
        self.audit_log
            .clone()
            .unwrap_or_else(|| dirs.data_dir.join("audit").join("audit.jsonl"))
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            keyring: None,
            key_file: None,
            audit_log: None,
            audit_fail_closed: true,
        }
    }
}

/// `[paths]`: each unset path falls back to its XDG default (see [`Dirs`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathsConfig {
    /// Persistent data: collections, workflow database, audit log, keys.
    pub data_dir: Option<PathBuf>,
    /// Rebuildable data: caches.
    pub cache_dir: Option<PathBuf>,
    /// Model files, as fetched by `cargo xtask models`.
    pub models_dir: Option<PathBuf>,
}

/// The most requests one generation model serves at once (`models.parallel`).
pub const MAX_PARALLEL: u32 = 64;

/// `[models]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Model used for generation when a request names none.
    pub default_generator: String,
    /// Model used for embeddings when a request names none.
    pub default_embedder: String,
    /// Path of `libonnxruntime.so`; defaults to the copy in the models directory.
    pub ort_dylib: Option<PathBuf>,
    /// Context length used when a request gives none.
    pub context_length: u32,
    /// Load a model on first use instead of refusing the request.
    pub autoload: bool,
    /// Models bear-server loads and pins when it starts (kept in memory until `bear models
    /// unload`).
    pub preload: Vec<String>,
    /// Bytes of host memory each generation model keeps sequence states in between requests,
    /// so that a prompt sharing a prefix with an earlier one decodes only the rest (free
    /// sequences also keep their last request's tokens); 0 keeps none.
    pub prompt_cache_bytes: u64,
    /// Requests each generation model serves at once (continuous batching, one KV cache per
    /// request); unset means bear-hw's recommendation in bear-server and 1 in a `bear`
    /// command.
    pub parallel: Option<u32>,
    /// Decode on one thread while the CPU is contended (another program busy), measured as
    /// generation goes: far faster then, but a greedy answer may differ in wording from one
    /// decoded on all threads. `false` (with `parallel = 1` and `prompt_cache_bytes = 0`) keeps
    /// runs word for word.
    pub adapt_threads: bool,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            default_generator: "SmolLM2-135M-Instruct.Q4_1".into(),
            default_embedder: "all-MiniLM-L6-v2".into(),
            ort_dylib: None,
            context_length: 2048,
            autoload: true,
            preload: Vec::new(),
            prompt_cache_bytes: 256 << 20,
            parallel: None,
            adapt_threads: true,
        }
    }
}

/// `[hw]`: overrides for what bear-hw would recommend.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HwConfig {
    /// Inference threads; unset means the recommendation.
    pub threads: Option<u32>,
    /// Lock model weights in RAM.
    pub mlock: Option<bool>,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on; loopback by default.
    pub bind: String,
    /// Requests per second per API key and, separately, per client IP.
    pub rate_per_second: u32,
    /// Requests allowed in a burst above that rate.
    pub rate_burst: u32,
    /// Failed authentications per minute per client IP.
    pub auth_failures_per_minute: u32,
    /// Largest JSON request body, bytes (uploads are held to `rag.max_file_bytes`).
    pub max_body_bytes: usize,
    /// Generation requests per model, running or waiting; more are answered 503.
    pub generation_queue: usize,
    /// Browser origins allowed to call the API (CORS), such as `http://localhost:3000`;
    /// empty (the default) sends no CORS headers, so browsers refuse cross-origin calls.
    pub cors_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND.into(),
            rate_per_second: 50,
            rate_burst: 100,
            auth_failures_per_minute: 20,
            max_body_bytes: 2 << 20,
            generation_queue: 32,
            cors_origins: Vec::new(),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `warn` or `bear_models=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "warn".into(),
        }
    }
}

impl Config {
    /// Parses a configuration file's text. `origin` is the file's path, used in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self> {
        let de = toml::Deserializer::parse(text).map_err(|e| syntax_error(text, origin, &e))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            // A syntax error can surface late (inside a value); keep its position.
            if inner.span().is_some() && key == "." {
                return syntax_error(text, origin, &inner);
            }
            Error::Config {
                origin: origin.display().to_string(),
                key,
                expected: expected_for(&inner),
                detail: Some(inner.message().trim().to_string()),
            }
        })
    }

    /// Applies `BEAR_*` overrides. `lookup` is usually `|k| std::env::var_os(k)`.
    ///
    /// Recognised: `BEAR_DATA_DIR`, `BEAR_CACHE_DIR`, `BEAR_MODELS_DIR`, `BEAR_ORT_DYLIB`,
    /// `BEAR_THREADS`, `BEAR_LOG`, `BEAR_BIND`, `BEAR_DEFAULT_GENERATOR`, `BEAR_DEFAULT_EMBEDDER`,
    /// `BEAR_DATABASE_URL`.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<OsString>) -> Result<()> {
        let env_err = |key: &str, expected: &str| Error::Config {
            origin: "environment".into(),
            key: key.into(),
            expected: expected.into(),
            detail: None,
        };
        let text = |key: &str| -> Result<Option<String>> {
            match lookup(key) {
                None => Ok(None),
                Some(v) => v
                    .into_string()
                    .map(Some)
                    .map_err(|_| env_err(key, "valid UTF-8")),
            }
        };
        let path = |key: &str| lookup(key).filter(|v| !v.is_empty()).map(PathBuf::from);

        if let Some(p) = path("BEAR_DATA_DIR") {
            self.paths.data_dir = Some(p);
        }
        if let Some(p) = path("BEAR_CACHE_DIR") {
            self.paths.cache_dir = Some(p);
        }
        if let Some(p) = path("BEAR_MODELS_DIR") {
            self.paths.models_dir = Some(p);
        }
        if let Some(p) = path("BEAR_ORT_DYLIB") {
            self.models.ort_dylib = Some(p);
        }
        if let Some(v) = text("BEAR_THREADS")? {
            let n: u32 = v
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| env_err("BEAR_THREADS", "a positive integer"))?;
            self.hw.threads = Some(n);
        }
        if let Some(v) = text("BEAR_LOG")? {
            self.log.level = v;
        }
        if let Some(v) = text("BEAR_BIND")? {
            self.server.bind = v;
        }
        if let Some(v) = text("BEAR_DEFAULT_GENERATOR")? {
            self.models.default_generator = v;
        }
        if let Some(v) = text("BEAR_DATABASE_URL")?.filter(|v| !v.is_empty()) {
            self.storage.database_url = Some(v);
        }
        if let Some(v) = text("BEAR_DEFAULT_EMBEDDER")? {
            self.models.default_embedder = v;
        }
        self.validate("environment")
    }

    /// Checks values that the types alone cannot.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let err = |key: &str, expected: &str| Error::Config {
            origin: origin.into(),
            key: key.into(),
            expected: expected.into(),
            detail: None,
        };
        if self.hw.threads == Some(0) {
            return Err(err("hw.threads", "a positive integer"));
        }
        if let Some(url) = &self.storage.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(err(
                "storage.database_url",
                "a PostgreSQL URL: postgres://user:password@host:port/database",
            ));
        }
        if !(16..=1_048_576).contains(&self.models.context_length) {
            return Err(err(
                "models.context_length",
                "an integer from 16 to 1048576",
            ));
        }
        if self
            .models
            .parallel
            .is_some_and(|p| !(1..=MAX_PARALLEL).contains(&p))
        {
            return Err(err("models.parallel", "an integer from 1 to 64"));
        }
        let rag = &self.rag;
        if !(16..=8192).contains(&rag.chunk_tokens) {
            return Err(err("rag.chunk_tokens", "an integer from 16 to 8192"));
        }
        if rag.chunk_overlap >= rag.chunk_tokens / 2 {
            return Err(err(
                "rag.chunk_overlap",
                "an integer smaller than half of rag.chunk_tokens",
            ));
        }
        if !(1..=4096).contains(&rag.embed_batch) {
            return Err(err("rag.embed_batch", "an integer from 1 to 4096"));
        }
        // The default k of both search (at most 100 hits) and ask (at most 50 sources).
        if !(1..=10_000).contains(&rag.review_max_sections) {
            return Err(err("rag.review_max_sections", "an integer from 1 to 10000"));
        }
        if !(1..=50).contains(&rag.top_k) {
            return Err(err("rag.top_k", "an integer from 1 to 50"));
        }
        if !(-1.0..=1.0).contains(&rag.min_similarity) {
            return Err(err("rag.min_similarity", "a number from -1 to 1"));
        }
        if rag.max_file_bytes == 0 || rag.max_decompressed_bytes == 0 || rag.max_pages == 0 {
            return Err(err("rag.max_*", "positive limits"));
        }
        if rag.doc_timeout_secs == 0 {
            return Err(err("rag.doc_timeout_secs", "a positive number of seconds"));
        }
        if rag.ocr_page_timeout_secs == 0 || rag.max_image_pixels == 0 {
            return Err(err(
                "rag.ocr_page_timeout_secs/max_image_pixels",
                "positive limits",
            ));
        }
        let lang_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 32
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        if rag.ocr_languages.len() > 256 || !rag.ocr_languages.split('+').all(lang_ok) {
            return Err(err(
                "rag.ocr_languages",
                "Tesseract language names joined by `+`, such as \"eng+nld\"",
            ));
        }
        let wf = &self.workflows;
        if !(1..=1024).contains(&wf.max_parallel_steps) {
            return Err(err(
                "workflows.max_parallel_steps",
                "an integer from 1 to 1024",
            ));
        }
        if !(wf.default_timeout_secs.is_finite() && wf.default_timeout_secs > 0.0) {
            return Err(err(
                "workflows.default_timeout_secs",
                "a positive number of seconds",
            ));
        }
        if wf.max_output_bytes == 0 {
            return Err(err("workflows.max_output_bytes", "a positive size"));
        }
        let sv = &self.server;
        if sv.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(err("server.bind", "an address such as 127.0.0.1:8787"));
        }
        for (key, v) in [
            ("server.rate_per_second", sv.rate_per_second as usize),
            ("server.rate_burst", sv.rate_burst as usize),
            (
                "server.auth_failures_per_minute",
                sv.auth_failures_per_minute as usize,
            ),
            ("server.max_body_bytes", sv.max_body_bytes),
            ("server.generation_queue", sv.generation_queue),
        ] {
            if v == 0 {
                return Err(err(key, "a positive number"));
            }
        }
        for o in &sv.cors_origins {
            let ok = (o.starts_with("http://") || o.starts_with("https://"))
                && !o.contains(['*', ' '])
                && !o.ends_with('/');
            if !ok {
                return Err(err(
                    "server.cors_origins",
                    "origins such as http://localhost:3000 (scheme and host, no path, no *)",
                ));
            }
        }
        Ok(())
    }

    /// The directories after applying `[paths]` on top of the XDG defaults.
    pub fn dirs(&self, base: &Dirs) -> Dirs {
        let data_dir = self.paths.data_dir.clone().unwrap_or(base.data_dir.clone());
        let cache_dir = self
            .paths
            .cache_dir
            .clone()
            .unwrap_or(base.cache_dir.clone());
        let models_dir = match (&self.paths.models_dir, &self.paths.cache_dir) {
            (Some(m), _) => m.clone(),
            (None, Some(c)) => c.join("models"),
            (None, None) => base.models_dir.clone(),
        };
        Dirs {
            config_file: base.config_file.clone(),
            data_dir,
            cache_dir,
            models_dir,
        }
    }
}

fn expected_for(e: &toml::de::Error) -> String {
    let msg = e.message();
    // serde's messages end with "expected <what>"; that is the useful half.
    match msg.rsplit_once("expected ") {
        Some((_, what)) => what.trim().trim_end_matches('.').to_string(),
        None if msg.starts_with("unknown field") => "one of the documented keys".into(),
        None => "a valid value".into(),
    }
}

fn syntax_error(text: &str, origin: &Path, e: &toml::de::Error) -> Error {
    let offset = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    let reason = e
        .message()
        .lines()
        .next()
        .unwrap_or("syntax error")
        .trim()
        .to_string();
    Error::ConfigSyntax {
        path: origin.to_path_buf(),
        line,
        column,
        reason,
    }
}

/// BEAR's directories, resolved from the XDG base-directory variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dirs {
    /// `$XDG_CONFIG_HOME/bear/config.toml`, or `~/.config/bear/config.toml`.
    pub config_file: PathBuf,
    /// `$XDG_DATA_HOME/bear`, or `~/.local/share/bear`.
    pub data_dir: PathBuf,
    /// `$XDG_CACHE_HOME/bear`, or `~/.cache/bear`.
    pub cache_dir: PathBuf,
    /// `$BEAR_MODELS_DIR`, or `<cache_dir>/models`.
    pub models_dir: PathBuf,
}

impl Dirs {
    /// Resolves the directories from an environment. `lookup` is usually
    /// `|k| std::env::var_os(k)`. Relative XDG values are ignored, as the XDG spec requires.
    pub fn from_env(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self> {
        let absolute = |key: &str| lookup(key).map(PathBuf::from).filter(|p| p.is_absolute());
        let home = || {
            absolute("HOME").ok_or_else(|| Error::Config {
                origin: "environment".into(),
                key: "HOME".into(),
                expected:
                    "an absolute path (or set XDG_DATA_HOME, XDG_CACHE_HOME and XDG_CONFIG_HOME)"
                        .into(),
                detail: None,
            })
        };
        let config_home = match absolute("XDG_CONFIG_HOME") {
            Some(p) => p,
            None => home()?.join(".config"),
        };
        let data_home = match absolute("XDG_DATA_HOME") {
            Some(p) => p,
            None => home()?.join(".local/share"),
        };
        let cache_home = match absolute("XDG_CACHE_HOME") {
            Some(p) => p,
            None => home()?.join(".cache"),
        };
        let cache_dir = cache_home.join("bear");
        let models_dir = lookup("BEAR_MODELS_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| cache_dir.join("models"));
        Ok(Self {
            config_file: config_home.join("bear/config.toml"),
            data_dir: data_home.join("bear"),
            cache_dir,
            models_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn parse(text: &str) -> Result<Config> {
        Config::from_toml_str(text, Path::new("/etc/bear.toml"))
    }

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn values_are_read() {
        let c = parse("[hw]\nthreads = 3\n[models]\ncontext_length = 4096\n").unwrap();
        assert_eq!(c.hw.threads, Some(3));
        assert_eq!(c.models.context_length, 4096);
        assert_eq!(c.server.bind, DEFAULT_BIND);
    }

    #[test]
    fn wrong_type_names_file_key_and_expectation() {
        let err = parse("[hw]\nthreads = \"many\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/etc/bear.toml"), "{msg}");
        assert!(msg.contains("`hw.threads`"), "{msg}");
        assert!(msg.contains("expected u32"), "{msg}");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let msg = parse("[models]\ndefault_generater = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("models.default_generater"), "{msg}");
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("[hw]\nthreads = = 2\n").unwrap_err();
        match err {
            Error::ConfigSyntax { line, .. } => assert_eq!(line, 2),
            other => panic!("expected a syntax error, got {other}"),
        }
    }

    #[test]
    fn env_overrides_file() {
        let mut c = parse("[hw]\nthreads = 3\n").unwrap();
        c.apply_env(env(&[("BEAR_THREADS", "5"), ("BEAR_MODELS_DIR", "/m")]))
            .unwrap();
        assert_eq!(c.hw.threads, Some(5));
        assert_eq!(c.paths.models_dir.as_deref(), Some(Path::new("/m")));
        let err = c.apply_env(env(&[("BEAR_THREADS", "0")])).unwrap_err();
        assert!(err.to_string().contains("BEAR_THREADS"));
        let err = c.apply_env(env(&[("BEAR_BIND", "nowhere")])).unwrap_err();
        assert!(err.to_string().contains("server.bind"));
    }

    #[test]
    fn xdg_dirs() {
        let d = Dirs::from_env(env(&[("HOME", "/home/u")])).unwrap();
        assert_eq!(d.data_dir, Path::new("/home/u/.local/share/bear"));
        assert_eq!(d.models_dir, Path::new("/home/u/.cache/bear/models"));
        assert_eq!(d.config_file, Path::new("/home/u/.config/bear/config.toml"));
        let d = Dirs::from_env(env(&[
            ("HOME", "/home/u"),
            ("XDG_CACHE_HOME", "/c"),
            ("XDG_DATA_HOME", "relative/ignored"),
            ("BEAR_MODELS_DIR", "/models"),
        ]))
        .unwrap();
        assert_eq!(d.cache_dir, Path::new("/c/bear"));
        assert_eq!(d.data_dir, Path::new("/home/u/.local/share/bear"));
        assert_eq!(d.models_dir, Path::new("/models"));
        assert!(Dirs::from_env(env(&[])).is_err());
    }

    #[test]
    fn config_paths_override_dirs() {
        let base = Dirs::from_env(env(&[("HOME", "/h")])).unwrap();
        let c = parse("[paths]\ncache_dir = \"/cache\"\n").unwrap();
        let d = c.dirs(&base);
        assert_eq!(d.models_dir, Path::new("/cache/models"));
        assert_eq!(d.data_dir, base.data_dir);
    }

    #[test]
    fn pii_and_security_sections_are_read() {
        use crate::pii::{InvalidUtf8, PiiEntity, PiiPolicy};
        let c = parse(
            "[pii]\nmin_score = 0.6\nnames = [\"Jane Roe\"]\ndefault_policy = \"tokenize\"\n\
             invalid_utf8 = \"replace\"\n[pii.policies]\nPHONE = \"mask\"\n\
             [[pii.patterns]]\nname = \"MATTER\"\npattern = \"M-[0-9]{6}\"\n\
             [[pii.deny_lists]]\nname = \"CLIENT\"\nterms = [\"Globex\"]\n\
             [security]\naudit_fail_closed = false\n",
        )
        .unwrap();
        assert_eq!(c.pii.policy_for(&PiiEntity::Phone), PiiPolicy::Mask);
        assert_eq!(c.pii.policy_for(&PiiEntity::Email), PiiPolicy::Tokenize);
        assert_eq!(c.pii.patterns[0].score, 0.85);
        assert_eq!(c.pii.invalid_utf8, InvalidUtf8::Replace);
        assert!(!c.security.audit_fail_closed);
        assert!(Config::default().security.audit_fail_closed);
        let err = parse("[pii]\ndefault_policy = \"shred\"\n").unwrap_err();
        assert!(err.to_string().contains("pii.default_policy"), "{err}");
    }
}
