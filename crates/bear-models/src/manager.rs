//! The model manager: several models resident under a memory budget, least-recently-used idle
//! models evicted when it is full, idle models unloaded after their keep-alive, loads on first
//! use (unless configured not to), per-model metrics, and cached deterministic results.
//!
//! The manager is itself a [`TextGenerator`] and an [`Embedder`] that routes by model id, so
//! bear-agents and bear-api hold one `Arc<ModelManager>` behind the bear-core traits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bear_core::{
    CancellationToken, Embedder, Generation, GenerationRequest, ModelId, TextGenerator, TokenSink,
};
use serde::Serialize;

use crate::cache::{CacheConfig, CacheStats, ResultCache};
use crate::embed::OrtEmbedder;
use crate::error::{Error, Result};
use crate::llama::{LlamaCppGenerator, LlamaOptions};
use crate::registry::{self, ModelEntry, ModelKind};

/// How the manager behaves.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Directories scanned for models.
    pub model_dirs: Vec<PathBuf>,
    /// Bytes that resident models may take together (from bear-hw's recommendation).
    pub memory_budget: u64,
    /// Idle time after which a model is unloaded.
    pub keep_alive: Duration,
    /// Load a model on first use; when false, using an unloaded model is an error.
    pub autoload: bool,
    /// llama.cpp settings for GGUF models.
    pub llama: LlamaOptions,
    /// Where to look for libonnxruntime.so, in order.
    pub ort_dylib_candidates: Vec<PathBuf>,
    /// Folder with `tokenizer.json` for ONNX models that ship without one.
    pub fallback_tokenizer_dir: Option<PathBuf>,
    /// Threads for embedders.
    pub threads: usize,
    /// Result cache.
    pub cache: CacheConfig,
}

impl ManagerConfig {
    /// The manager the configuration asks for on `machine`: the models directory, bear-hw's
    /// memory budget and thread count (unless `[hw] threads` is set), `[models]`' context
    /// length, autoload and ONNX Runtime library. A `server` also keeps deterministic results
    /// in the on-disk cache and serves `models.parallel` requests per model at once (bear-hw's
    /// recommendation when unset); a one-shot command serves one at a time unless
    /// `models.parallel` is set, so it allocates one KV cache, not one per client it will
    /// never have.
    pub fn from_config(
        config: &bear_core::Config,
        dirs: &bear_core::Dirs,
        machine: &bear_hw::Machine,
        server: bool,
    ) -> Self {
        let rec = bear_hw::recommend(machine);
        let models_dir = dirs.models_dir.clone();
        let threads = config
            .hw
            .threads
            .map_or(rec.inference_threads, |t| t as usize);
        Self {
            model_dirs: vec![models_dir.clone()],
            memory_budget: rec.model_memory_budget_bytes,
            keep_alive: Duration::from_secs(300),
            autoload: config.models.autoload,
            llama: LlamaOptions {
                context_length: config.models.context_length,
                threads: threads as u32,
                mlock: config.hw.mlock.unwrap_or(false),
                prompt_cache_bytes: config.models.prompt_cache_bytes,
                adapt_threads: config.models.adapt_threads,
                parallel: config.models.parallel.unwrap_or(match server {
                    true => rec.parallel_requests as u32,
                    false => 1,
                }),
                ..LlamaOptions::default()
            },
            ort_dylib_candidates: crate::embed::ort_dylib_candidates(
                config.models.ort_dylib.as_deref(),
                &models_dir,
            ),
            fallback_tokenizer_dir: Some(models_dir.join(bear_core::assets::MINILM_DIR)),
            threads,
            cache: CacheConfig {
                l2_path: server.then(|| dirs.cache_dir.join("results.redb")),
                ..CacheConfig::default()
            },
        }
    }
}

/// Whether a model is in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    /// On disk only.
    Available,
    /// Resident.
    Loaded,
}

/// Per-model counters, readable by the monitor agent and the server.
#[derive(Debug, Default)]
struct Counters {
    loads: AtomicU64,
    load_ms_total: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    prompt_tokens: AtomicU64,
    prompt_cached: AtomicU64,
    prompt_us: AtomicU64,
    gen_tokens: AtomicU64,
    gen_us: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

/// A snapshot of one model's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, Default)]
pub struct ModelMetrics {
    /// Times the model was loaded.
    pub loads: u64,
    /// Duration of the last load, in milliseconds (average over loads).
    pub load_ms: f64,
    /// Requests served.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Prompt tokens per second over all requests (tokens decoded, not those from the prompt
    /// cache).
    pub prompt_tokens_per_second: f64,
    /// Prompt tokens the prompt cache supplied, over all requests.
    #[serde(default)]
    pub prompt_tokens_cached: u64,
    /// Prompt tokens decoded (not from the prompt cache), over all requests.
    #[serde(default)]
    pub prompt_tokens_processed: u64,
    /// Generated tokens per second over all requests.
    pub generation_tokens_per_second: f64,
    /// Cache hits over cacheable requests.
    pub cache_hit_rate: f64,
}

impl Counters {
    fn snapshot(&self) -> ModelMetrics {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rate = |n: u64, us: u64| {
            if us == 0 {
                0.0
            } else {
                n as f64 / (us as f64 / 1e6)
            }
        };
        let hits = l(&self.cache_hits);
        let lookups = hits + l(&self.cache_misses);
        ModelMetrics {
            loads: l(&self.loads),
            load_ms: if l(&self.loads) == 0 {
                0.0
            } else {
                l(&self.load_ms_total) as f64 / l(&self.loads) as f64
            },
            requests: l(&self.requests),
            errors: l(&self.errors),
            prompt_tokens_per_second: rate(l(&self.prompt_tokens), l(&self.prompt_us)),
            prompt_tokens_cached: l(&self.prompt_cached),
            prompt_tokens_processed: l(&self.prompt_tokens),
            generation_tokens_per_second: rate(l(&self.gen_tokens), l(&self.gen_us)),
            cache_hit_rate: if lookups == 0 {
                0.0
            } else {
                hits as f64 / lookups as f64
            },
        }
    }
}

/// One row of [`ModelManager::list`].
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// What discovery found.
    #[serde(flatten)]
    pub entry: ModelEntry,
    /// In memory or not.
    pub status: ModelStatus,
    /// Counters.
    pub metrics: ModelMetrics,
    /// For a safetensors embedder: the runtime it runs on (loaded), or will run on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedder_path: Option<crate::bert::EmbedderPath>,
}

#[derive(Clone)]
enum Resident {
    Generator(Arc<LlamaCppGenerator>),
    Embedder(Arc<dyn Embedder>),
}

impl Resident {
    /// Whether a caller still holds this model (the manager holds one reference itself).
    fn in_use(&self) -> bool {
        match self {
            Self::Generator(g) => Arc::strong_count(g) > 1 || g.in_use(),
            Self::Embedder(e) => Arc::strong_count(e) > 1,
        }
    }
}

struct Slot {
    model: Resident,
    bytes: u64,
    last_used: Instant,
    /// Kept resident on request (`bear models load`): neither keep-alive nor LRU eviction
    /// unloads it.
    pinned: bool,
    /// The runtime a safetensors embedder was loaded on.
    path: Option<crate::bert::EmbedderPath>,
}

/// The model manager.
pub struct ModelManager {
    config: ManagerConfig,
    catalog: Mutex<HashMap<ModelId, ModelEntry>>,
    resident: Mutex<HashMap<ModelId, Slot>>,
    /// Serialises loads so two requests never load the same model twice.
    loading: Mutex<()>,
    counters: Mutex<HashMap<ModelId, Arc<Counters>>>,
    cache: ResultCache,
}

impl std::fmt::Debug for ModelManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelManager").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ModelManager {
    /// Scans the model directories and opens the cache. Loads nothing.
    pub fn new(config: ManagerConfig) -> Result<Self> {
        let cache = ResultCache::open(&config.cache)?;
        let manager = Self {
            catalog: Mutex::new(HashMap::new()),
            resident: Mutex::new(HashMap::new()),
            loading: Mutex::new(()),
            counters: Mutex::new(HashMap::new()),
            cache,
            config,
        };
        manager.rescan()?;
        Ok(manager)
    }

    /// Seals the on-disk result cache under `keys` (see [`ResultCache::seal_with`]).
    pub fn seal_cache(&self, keys: bear_security::FileKeys) {
        self.cache.seal_with(keys);
    }

    /// Forgets every cached result, in memory and on disk.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Re-reads the model directories.
    pub fn rescan(&self) -> Result<()> {
        let scan = registry::scan(&self.config.model_dirs)?;
        *lock(&self.catalog) = scan.models.into_iter().collect();
        Ok(())
    }

    fn counters(&self, id: &ModelId) -> Arc<Counters> {
        lock(&self.counters).entry(id.clone()).or_default().clone()
    }

    /// What discovery found for `id` (header metadata, no load).
    pub fn entry(&self, id: &ModelId) -> Result<ModelEntry> {
        lock(&self.catalog).get(id).cloned().ok_or_else(|| {
            Error::NotFound(format!(
                "no model `{id}`; `bear models list` shows what is installed"
            ))
        })
    }

    /// Every discovered model with its status and metrics, sorted by id.
    pub fn list(&self) -> Vec<ModelInfo> {
        let catalog = lock(&self.catalog).clone();
        let resident = lock(&self.resident);
        let mut v: Vec<ModelInfo> = catalog
            .into_values()
            .map(|entry| {
                let slot = resident.get(&entry.id);
                let embedder_path = match entry.kind {
                    ModelKind::Safetensors => {
                        Some(slot.and_then(|s| s.path.clone()).unwrap_or_else(|| {
                            crate::bert::planned_path(
                                &entry.path,
                                &self.config.ort_dylib_candidates,
                            )
                        }))
                    }
                    _ => None,
                };
                ModelInfo {
                    status: match slot {
                        Some(_) => ModelStatus::Loaded,
                        None => ModelStatus::Available,
                    },
                    metrics: self.counters(&entry.id).snapshot(),
                    embedder_path,
                    entry,
                }
            })
            .collect();
        v.sort_by(|a, b| a.entry.id.cmp(&b.entry.id));
        v
    }

    /// Metrics of one model.
    pub fn metrics(&self, id: &ModelId) -> Result<ModelMetrics> {
        self.entry(id)?;
        Ok(self.counters(id).snapshot())
    }

    /// Cache counters over all models.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Resident bytes now.
    pub fn resident_bytes(&self) -> u64 {
        lock(&self.resident).values().map(|s| s.bytes).sum()
    }

    fn footprint(&self, entry: &ModelEntry) -> u64 {
        match entry.kind {
            // Weights plus the KV cache and buffers of its context (a full context for each
            // parallel request; the KV shape was read from the header at scan time), plus the
            // prompt cache's host memory.
            ModelKind::Gguf => {
                let llama = &self.config.llama;
                bear_hw::model_footprint(
                    entry.size_bytes,
                    llama.context_length.saturating_mul(llama.parallel.max(1)),
                    entry.meta.kv_shape,
                )
                .required_bytes
                    + llama.prompt_cache_bytes
            }
            _ => entry.size_bytes + entry.size_bytes / 4,
        }
    }

    /// Loads a model if it is not resident, evicting idle models as the budget requires.
    pub fn load(&self, id: &ModelId) -> Result<()> {
        self.reap_idle();
        let entry = self.entry(id)?;
        let _loading = lock(&self.loading);
        if let Some(slot) = lock(&self.resident).get_mut(id) {
            slot.last_used = Instant::now();
            return Ok(());
        }
        let bytes = self.footprint(&entry);
        if bytes > self.config.memory_budget {
            return Err(Error::Unavailable(format!(
                "model `{id}` needs {} MiB but the model memory budget is {} MiB",
                bytes >> 20,
                self.config.memory_budget >> 20
            )));
        }
        self.make_room(bytes)?;
        let counters = self.counters(id);
        let start = Instant::now();
        let mut path = None;
        let model = match entry.kind {
            ModelKind::Gguf => Resident::Generator(Arc::new(LlamaCppGenerator::load(
                id.clone(),
                &entry.path,
                self.config.llama.clone(),
            )?)),
            ModelKind::Safetensors => {
                let (e, p) = crate::bert::load(
                    id,
                    &entry.path,
                    &self.config.ort_dylib_candidates,
                    self.config.threads,
                )?;
                path = Some(p);
                Resident::Embedder(e)
            }
            ModelKind::Onnx => {
                let beside = entry.path.parent().map(PathBuf::from).unwrap_or_default();
                let tok = if beside.join("tokenizer.json").is_file() {
                    beside
                } else {
                    self.config.fallback_tokenizer_dir.clone().ok_or_else(|| {
                        Error::InvalidRequest(format!(
                            "model `{id}` has no tokenizer.json beside it"
                        ))
                    })?
                };
                Resident::Embedder(Arc::new(OrtEmbedder::load(
                    id.clone(),
                    &entry.path,
                    &tok,
                    &self.config.ort_dylib_candidates,
                    self.config.threads,
                )?))
            }
        };
        counters.loads.fetch_add(1, Ordering::Relaxed);
        counters
            .load_ms_total
            .fetch_add(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        lock(&self.resident).insert(
            id.clone(),
            Slot {
                model,
                bytes,
                last_used: Instant::now(),
                pinned: false,
                path,
            },
        );
        Ok(())
    }

    /// Evicts least-recently-used idle models until `bytes` more fit in the budget.
    fn make_room(&self, bytes: u64) -> Result<()> {
        let mut resident = lock(&self.resident);
        loop {
            let used: u64 = resident.values().map(|s| s.bytes).sum();
            if used + bytes <= self.config.memory_budget {
                return Ok(());
            }
            let victim = resident
                .iter()
                .filter(|(_, s)| !s.model.in_use() && !s.pinned)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| id.clone());
            match victim {
                Some(id) => {
                    tracing::info!(model = %id, "evicting least recently used model");
                    resident.remove(&id);
                }
                None => {
                    return Err(Error::Unavailable(
                        "the model memory budget is full and every resident model is in use or \
                         pinned; retry later, or unpin one with `bear models unload`"
                            .into(),
                    ));
                }
            }
        }
    }

    /// Unloads a model. Refused while a request is using it.
    pub fn unload(&self, id: &ModelId) -> Result<()> {
        self.entry(id)?;
        let mut resident = lock(&self.resident);
        match resident.get(id) {
            None => Err(Error::InvalidRequest(format!("model `{id}` is not loaded"))),
            Some(slot) if slot.model.in_use() => Err(Error::Unavailable(format!(
                "model `{id}` is in use; unload it when its requests finish"
            ))),
            Some(_) => {
                resident.remove(id);
                Ok(())
            }
        }
    }

    /// Unloads idle models whose keep-alive has passed; returns how many.
    pub fn reap_idle(&self) -> usize {
        let keep = self.config.keep_alive;
        let mut resident = lock(&self.resident);
        let before = resident.len();
        resident.retain(|_, s| s.pinned || s.model.in_use() || s.last_used.elapsed() < keep);
        before - resident.len()
    }

    /// Loads a model and keeps it resident until [`Self::unpin`]: keep-alive and LRU eviction
    /// pass it by.
    pub fn pin(&self, id: &ModelId) -> Result<()> {
        self.load(id)?;
        match lock(&self.resident).get_mut(id) {
            Some(slot) => {
                slot.pinned = true;
                Ok(())
            }
            None => Err(Error::Unavailable(format!(
                "model `{id}` was unloaded while loading"
            ))),
        }
    }

    /// Releases a pin and unloads the model. `Ok(false)` when a request is still using it: it
    /// stays resident, unpinned, until it is idle and unloaded again (or its keep-alive passes).
    pub fn unpin(&self, id: &ModelId) -> Result<bool> {
        self.entry(id)?;
        let mut resident = lock(&self.resident);
        match resident.get_mut(id) {
            None => Ok(true),
            Some(slot) if slot.model.in_use() => {
                slot.pinned = false;
                Ok(false)
            }
            Some(_) => {
                resident.remove(id);
                Ok(true)
            }
        }
    }

    /// The pinned models, sorted.
    pub fn pinned(&self) -> Vec<ModelId> {
        let mut v: Vec<ModelId> = lock(&self.resident)
            .iter()
            .filter(|(_, s)| s.pinned)
            .map(|(id, _)| id.clone())
            .collect();
        v.sort();
        v
    }

    /// The resident models, sorted.
    pub fn resident_ids(&self) -> Vec<ModelId> {
        let mut v: Vec<ModelId> = lock(&self.resident).keys().cloned().collect();
        v.sort();
        v
    }

    fn resident(&self, id: &ModelId) -> Result<Resident> {
        self.reap_idle();
        if let Some(slot) = lock(&self.resident).get_mut(id) {
            slot.last_used = Instant::now();
            return Ok(slot.model.clone());
        }
        if !self.config.autoload {
            return Err(Error::Unavailable(format!(
                "model `{id}` is not loaded and autoload is off; load it first"
            )));
        }
        self.load(id)?;
        lock(&self.resident)
            .get(id)
            .map(|s| s.model.clone())
            .ok_or_else(|| Error::Unavailable(format!("model `{id}` was unloaded while loading")))
    }

    /// The loaded generator for `id`, loading it if allowed.
    pub fn generator(&self, id: &ModelId) -> Result<Arc<LlamaCppGenerator>> {
        match self.resident(id)? {
            Resident::Generator(g) => Ok(g),
            Resident::Embedder(_) => Err(Error::InvalidRequest(format!(
                "model `{id}` is an embedding model, not a text generator"
            ))),
        }
    }

    /// The loaded embedder for `id`, loading it if allowed.
    pub fn embedder(&self, id: &ModelId) -> Result<Arc<dyn Embedder>> {
        match self.resident(id)? {
            Resident::Embedder(e) => Ok(e),
            Resident::Generator(_) => Err(Error::InvalidRequest(format!(
                "model `{id}` is a text generator, not an embedding model"
            ))),
        }
    }

    /// Generates with caching and metrics. Deterministic requests (temperature 0 or a fixed
    /// seed) are answered from the cache when possible; a cached answer is streamed in one piece.
    pub async fn generate_with(
        &self,
        request: GenerationRequest,
        sink: Box<dyn TokenSink>,
        cancel: CancellationToken,
    ) -> bear_core::Result<Generation> {
        Ok(self.generate_timed(request, sink, cancel).await?.0)
    }

    /// [`generate_with`](Self::generate_with), also returning llama.cpp's timings when the model
    /// ran (`None` for an answer from the cache).
    pub async fn generate_timed(
        &self,
        request: GenerationRequest,
        mut sink: Box<dyn TokenSink>,
        cancel: CancellationToken,
    ) -> bear_core::Result<(Generation, Option<crate::llama::GenerationTimings>)> {
        request.validate()?;
        let counters = self.counters(&request.model);
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let deterministic = request.params.temperature == 0.0 || request.params.seed.is_some();
        let key = deterministic.then(|| {
            let prompt = serde_json::to_vec(&request.prompt).unwrap_or_default();
            let params = serde_json::to_vec(&request.params).unwrap_or_default();
            ResultCache::key(&[
                b"generate",
                request.model.as_str().as_bytes(),
                &prompt,
                &params,
            ])
        });
        if let Some(key) = &key {
            if let Some(hit) = self
                .cache
                .get(key)
                .and_then(|b| serde_json::from_slice::<Generation>(&b).ok())
            {
                counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                for lp in &hit.logprobs {
                    sink.on_logprob(lp);
                }
                sink.on_text(hit.text.expose());
                return Ok((hit, None));
            }
            counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        }
        let result = async {
            let generator = self.generator(&request.model)?;
            let (g, t) = generator.generate_queued(request, sink, cancel).await?;
            Ok::<_, Error>((g, Some(t)))
        }
        .await;
        match result {
            Ok((g, timings)) => {
                if let Some(t) = &timings {
                    counters
                        .prompt_tokens
                        .fetch_add(u64::from(t.prompt_tokens), Ordering::Relaxed);
                    counters
                        .prompt_cached
                        .fetch_add(u64::from(g.prompt_cached_tokens), Ordering::Relaxed);
                    counters
                        .prompt_us
                        .fetch_add((t.prompt_seconds * 1e6) as u64, Ordering::Relaxed);
                    counters
                        .gen_tokens
                        .fetch_add(u64::from(t.generated_tokens), Ordering::Relaxed);
                    counters
                        .gen_us
                        .fetch_add((t.generation_seconds * 1e6) as u64, Ordering::Relaxed);
                }
                // A cancelled generation is partial and must not answer later requests.
                if let Some(key) = key
                    && g.finish_reason != bear_core::FinishReason::Cancelled
                    && let Ok(bytes) = serde_json::to_vec(&g)
                {
                    self.cache.put(key, bytes);
                }
                Ok((g, timings))
            }
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                Err(e.into())
            }
        }
    }

    /// Embeds with a per-text cache and metrics.
    pub async fn embed_with(
        &self,
        model: &ModelId,
        texts: &[String],
    ) -> bear_core::Result<Vec<Vec<f32>>> {
        let counters = self.counters(model);
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let keys: Vec<_> = texts
            .iter()
            .map(|t| ResultCache::key(&[b"embed", model.as_str().as_bytes(), t.as_bytes()]))
            .collect();
        let mut out: Vec<Option<Vec<f32>>> = keys
            .iter()
            .map(|k| {
                self.cache.get(k).map(|b| {
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                })
            })
            .collect();
        let hits = out.iter().filter(|v| v.is_some()).count() as u64;
        counters.cache_hits.fetch_add(hits, Ordering::Relaxed);
        counters
            .cache_misses
            .fetch_add(texts.len() as u64 - hits, Ordering::Relaxed);
        let missing: Vec<usize> = (0..texts.len()).filter(|i| out[*i].is_none()).collect();
        if !missing.is_empty() {
            let embedder = self.embedder(model).inspect_err(|_| {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            })?;
            // Vectors that depend on their batch mates are not a function of the text: not
            // cached (and never were, so nothing above was a hit).
            let cacheable = embedder.batch_invariant();
            let batch: Vec<String> = missing.iter().map(|i| texts[*i].clone()).collect();
            let vectors = embedder.embed(&batch).await.inspect_err(|_| {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            })?;
            for (i, v) in missing.into_iter().zip(vectors) {
                if cacheable {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    self.cache.put(keys[i], bytes);
                }
                out[i] = Some(v);
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }
}

#[async_trait::async_trait]
impl TextGenerator for ModelManager {
    async fn generate(
        &self,
        request: GenerationRequest,
        sink: Box<dyn TokenSink>,
        cancel: CancellationToken,
    ) -> bear_core::Result<Generation> {
        self.generate_with(request, sink, cancel).await
    }
}
