//! Sentence embeddings with all-MiniLM-L6-v2-style models: `CandleEmbedder` (safetensors,
//! candle) and `OrtEmbedder` (ONNX, ONNX Runtime loaded from a file at run time).
//!
//! Both do exactly what sentence-transformers does for this model: WordPiece tokenisation with
//! truncation at `max_seq_length`, padding to the longest text in the batch, a BERT forward pass,
//! mean pooling over the attention mask, then L2 normalisation.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use bear_core::{Embedder, EmbedderRuntime, ModelId};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::error::{Error, Result};

/// Token ids, type ids and mask for one padded batch, row-major `[batch, len]`.
struct Batch {
    ids: Vec<u32>,
    type_ids: Vec<u32>,
    mask: Vec<u32>,
    rows: usize,
    len: usize,
}

/// A model folder's tokenizer twice: configured as sentence-transformers does (truncation at
/// `max_seq_length`, batch padding) for embedding, and bare for counting tokens.
struct Tokenizers {
    batch: Tokenizer,
    count: Tokenizer,
    max_len: usize,
}

impl Tokenizers {
    fn load(dir: &Path) -> Result<Arc<Self>> {
        let (batch, max_len) = load_tokenizer(dir)?;
        let mut count = batch.clone();
        count.with_padding(None);
        count
            .with_truncation(None)
            .map_err(|e| Error::InvalidModel {
                path: dir.join("tokenizer.json"),
                format: "tokenizer.json",
                reason: e.to_string(),
            })?;
        Ok(Arc::new(Self {
            batch,
            count,
            max_len,
        }))
    }

    fn count(&self, texts: &[&str]) -> bear_core::Result<Vec<usize>> {
        texts
            .iter()
            .map(|t| {
                self.count
                    .encode_fast(*t, false)
                    .map(|e| e.get_ids().len())
                    .map_err(|_| {
                        bear_core::Error::backend(
                            bear_core::ErrorKind::Internal,
                            "the tokenizer failed on a text",
                        )
                    })
            })
            .collect()
    }
}

/// The tokenizer as sentence-transformers configures it for a model folder.
fn load_tokenizer(dir: &Path) -> Result<(Tokenizer, usize)> {
    let path = dir.join("tokenizer.json");
    let mut tok = Tokenizer::from_file(&path).map_err(|e| Error::InvalidModel {
        path: path.clone(),
        format: "tokenizer.json",
        reason: e.to_string(),
    })?;
    // sentence_bert_config.json holds the model's max_seq_length (256 for all-MiniLM-L6-v2),
    // which overrides the tokenizer file's own truncation.
    let max_len = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["max_seq_length"].as_u64())
        .unwrap_or(256) as usize;
    tok.with_truncation(Some(TruncationParams {
        max_length: max_len,
        ..TruncationParams::default()
    }))
    .map_err(|e| Error::InvalidModel {
        path: path.clone(),
        format: "tokenizer.json",
        reason: e.to_string(),
    })?;
    tok.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        ..PaddingParams::default()
    }));
    Ok((tok, max_len))
}

fn encode(tok: &Tokenizer, texts: &[String]) -> Result<Batch> {
    let enc = tok
        .encode_batch(texts.to_vec(), true)
        .map_err(|e| Error::Backend {
            backend: "tokenizers",
            reason: e.to_string(),
        })?;
    let rows = enc.len();
    let len = enc.first().map_or(0, |e| e.get_ids().len());
    let mut b = Batch {
        ids: Vec::with_capacity(rows * len),
        type_ids: Vec::with_capacity(rows * len),
        mask: Vec::with_capacity(rows * len),
        rows,
        len,
    };
    for e in &enc {
        b.ids.extend_from_slice(e.get_ids());
        b.type_ids.extend_from_slice(e.get_type_ids());
        b.mask.extend_from_slice(e.get_attention_mask());
    }
    Ok(b)
}

/// Mean over unmasked tokens, then L2 normalisation; `hidden` is `[rows, len, dim]`.
fn pool(hidden: &[f32], mask: &[u32], rows: usize, len: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..rows)
        .map(|r| {
            let mut acc = vec![0f32; dim];
            let mut n = 0f32;
            for t in 0..len {
                if mask[r * len + t] == 0 {
                    continue;
                }
                n += 1.0;
                let row = &hidden[(r * len + t) * dim..(r * len + t + 1) * dim];
                for (a, h) in acc.iter_mut().zip(row) {
                    *a += h;
                }
            }
            let n = n.max(1e-9);
            acc.iter_mut().for_each(|a| *a /= n);
            let norm = acc.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
            acc.iter_mut().for_each(|a| *a /= norm);
            acc
        })
        .collect()
}

/// One embedding vector per input text.
type Vectors = Vec<Vec<f32>>;

/// Runs a blocking embedder on tokio's blocking pool; the embedder clone shares its model.
async fn on_blocking_thread<E: Clone + Send + 'static>(
    embedder: &E,
    texts: &[String],
    embed: fn(&E, &[String]) -> Result<Vectors>,
) -> bear_core::Result<Vec<Vec<f32>>> {
    let this = embedder.clone();
    let texts = texts.to_vec();
    tokio::task::spawn_blocking(move || embed(&this, &texts))
        .await
        .map_err(|_| {
            bear_core::Error::backend(bear_core::ErrorKind::Internal, "embedding task failed")
        })?
        .map_err(Into::into)
}

fn candle_err(e: candle_core::Error) -> Error {
    Error::Backend {
        backend: "candle",
        reason: e.to_string(),
    }
}

/// BERT-family embeddings from a safetensors folder, computed with candle on the CPU.
#[derive(Clone)]
pub struct CandleEmbedder {
    id: ModelId,
    model: Arc<candle_transformers::models::bert::BertModel>,
    tokenizer: Arc<Tokenizers>,
    dim: usize,
    runtime: EmbedderRuntime,
}

impl std::fmt::Debug for CandleEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandleEmbedder")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl CandleEmbedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` (memory-mapped) from `dir`.
    pub fn load(id: ModelId, dir: &Path) -> Result<Self> {
        use candle_transformers::models::bert::{BertModel, Config, DTYPE};
        let entry = crate::registry::safetensors_entry(dir)?;
        if entry.meta.architecture.as_deref() != Some("bert") {
            return Err(Error::UnsupportedArchitecture {
                path: dir.to_path_buf(),
                arch: entry.meta.architecture.unwrap_or_default(),
                supported: "bert",
            });
        }
        let config_path = dir.join("config.json");
        let config: Config =
            serde_json::from_str(&std::fs::read_to_string(&config_path).map_err(|source| {
                Error::Io {
                    path: config_path.clone(),
                    source,
                }
            })?)
            .map_err(|e| Error::InvalidModel {
                path: config_path,
                format: "safetensors",
                reason: format!("config.json: {e}"),
            })?;
        let tokenizer = Tokenizers::load(dir)?;
        let weights = dir.join("model.safetensors");
        let vb = crate::mapped::var_builder(&weights, DTYPE)?;
        let model = BertModel::load(vb, &config).map_err(candle_err)?;
        Ok(Self {
            id,
            model: Arc::new(model),
            tokenizer,
            dim: config.hidden_size,
            runtime: EmbedderRuntime {
                name: "candle".into(),
                version: CANDLE_VERSION.into(),
                graph: graph_name(&weights),
            },
        })
    }

    /// Embeds on the calling thread.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        use candle_core::{Device, Tensor};
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let b = encode(&self.tokenizer.batch, texts)?;
        let shape = (b.rows, b.len);
        let dev = Device::Cpu;
        let ids = Tensor::from_vec(b.ids, shape, &dev).map_err(candle_err)?;
        let types = Tensor::from_vec(b.type_ids, shape, &dev).map_err(candle_err)?;
        let mask = Tensor::from_vec(b.mask.clone(), shape, &dev).map_err(candle_err)?;
        let hidden = self
            .model
            .forward(&ids, &types, Some(&mask))
            .map_err(candle_err)?;
        let flat: Vec<f32> = hidden
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(candle_err)?;
        Ok(pool(&flat, &b.mask, b.rows, b.len, self.dim))
    }
}

#[async_trait::async_trait]
impl Embedder for CandleEmbedder {
    fn model(&self) -> &ModelId {
        &self.id
    }

    fn dimension(&self) -> usize {
        self.dim
    }

    fn max_input_tokens(&self) -> usize {
        self.tokenizer.max_len
    }

    fn count_tokens(&self, texts: &[&str]) -> bear_core::Result<Vec<usize>> {
        self.tokenizer.count(texts)
    }

    async fn embed(&self, texts: &[String]) -> bear_core::Result<Vec<Vec<f32>>> {
        on_blocking_thread(self, texts, Self::embed_blocking).await
    }

    fn runtime(&self) -> Option<EmbedderRuntime> {
        Some(self.runtime.clone())
    }
}

/// Where the ONNX Runtime library is looked for, in order.
pub fn ort_dylib_candidates(configured: Option<&Path>, models_dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("BEAR_ORT_DYLIB").filter(|p| !p.is_empty()) {
        v.push(PathBuf::from(p));
    }
    if let Some(p) = configured {
        v.push(p.to_path_buf());
    }
    v.push(models_dir.join(bear_core::assets::ORT_DYLIB));
    v
}

/// The first existing ONNX Runtime library among `candidates`, or an error saying where BEAR
/// looked and how to get the library.
pub fn find_ort_dylib(candidates: &[PathBuf]) -> Result<&Path> {
    candidates
        .iter()
        .find(|p| p.is_file())
        .map(PathBuf::as_path)
        .ok_or_else(|| {
            let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            Error::Backend {
                backend: "onnxruntime",
                reason: format!(
                    "libonnxruntime.so not found (looked in: {}); run `cargo xtask models` or set \
                     BEAR_ORT_DYLIB or models.ort_dylib",
                    looked.join(", ")
                ),
            }
        })
}

/// Loads ONNX Runtime once per process. Only success is remembered, so a later call with a
/// corrected path can still succeed.
fn ort_environment(candidates: &[PathBuf]) -> Result<&'static ort::environment::Environment> {
    static ENV: OnceLock<ort::environment::Environment> = OnceLock::new();
    static INIT: Mutex<()> = Mutex::new(());
    if let Some(env) = ENV.get() {
        return Ok(env);
    }
    let _guard = INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = ENV.get() {
        return Ok(env);
    }
    let path = find_ort_dylib(candidates)?;
    let env = ort::init_from(path)
        .map_err(|e| ort_err(format!("cannot load {}: {e}", path.display())))?
        .with_name("bear")
        .build()
        .map_err(|e| ort_err(format!("cannot start ONNX Runtime: {e}")))?;
    Ok(ENV.get_or_init(|| env))
}

/// candle's version, as the workspace manifest pins it (a test checks the two agree).
const CANDLE_VERSION: &str = "0.11.1";

/// `folder/file` of a model file, as a collection records it.
fn graph_name(file: &Path) -> String {
    let mut parts: Vec<String> = file
        .iter()
        .rev()
        .take(2)
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    parts.reverse();
    parts.join("/")
}

/// ONNX Runtime's version from its build information: the release branch's
/// (`git-branch=rel-1.22.0`), else the commit (`git-commit-id=a83fc4d58c`, as in the Python
/// wheels), else the whole text.
fn ort_version(info: &str) -> String {
    let field = |key: &str| {
        info.trim_start_matches("ORT Build Info:")
            .split(',')
            .find_map(|f| f.trim().strip_prefix(key))
    };
    field("git-branch=rel-")
        .map(str::to_owned)
        .or_else(|| field("git-commit-id=").map(|c| format!("commit {c}")))
        .unwrap_or_else(|| info.trim().to_owned())
}

/// BERT-family embeddings from an ONNX file through ONNX Runtime.
#[derive(Clone)]
pub struct OrtEmbedder {
    id: ModelId,
    session: Arc<Mutex<ort::session::Session>>,
    tokenizer: Arc<Tokenizers>,
    dim: usize,
    wants_type_ids: bool,
    batch_invariant: bool,
    runtime: EmbedderRuntime,
}

impl std::fmt::Debug for OrtEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtEmbedder")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn ort_err(e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: "onnxruntime",
        reason: e.to_string(),
    }
}

impl OrtEmbedder {
    /// Opens `onnx` with the runtime library from `dylib_candidates` and the tokenizer in
    /// `tokenizer_dir`. `threads` is ONNX Runtime's intra-op thread count.
    pub fn load(
        id: ModelId,
        onnx: &Path,
        tokenizer_dir: &Path,
        dylib_candidates: &[PathBuf],
        threads: usize,
    ) -> Result<Self> {
        crate::registry::onnx_entry(onnx)?;
        let env = ort_environment(dylib_candidates)?;
        let session = ort::session::Session::builder(env)
            .map_err(ort_err)?
            .with_optimization_level(ort::session::builder::GraphOptimizationLevel::All)
            .map_err(ort_err)?
            .with_intra_threads(threads.max(1))
            .map_err(ort_err)?
            .commit_from_file(onnx)
            .map_err(|e| Error::InvalidModel {
                path: onnx.to_path_buf(),
                format: "ONNX",
                reason: e.to_string(),
            })?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        if !names.contains(&"input_ids") || !names.contains(&"attention_mask") {
            return Err(Error::UnsupportedArchitecture {
                path: onnx.to_path_buf(),
                arch: format!("ONNX graph with inputs {names:?}"),
                supported: "BERT-style graphs with input_ids and attention_mask",
            });
        }
        let wants_type_ids = names.contains(&"token_type_ids");
        let batch_invariant = !quantizes_activations(onnx)?;
        let tokenizer = Tokenizers::load(tokenizer_dir)?;
        // all-MiniLM-L6-v2: 384. Read from the tokenizer folder's config when present.
        let dim = std::fs::read_to_string(tokenizer_dir.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["hidden_size"].as_u64())
            .unwrap_or(384) as usize;
        Ok(Self {
            id,
            session: Arc::new(Mutex::new(session)),
            tokenizer,
            dim,
            wants_type_ids,
            batch_invariant,
            runtime: EmbedderRuntime {
                name: "onnxruntime".into(),
                version: ort_version(ort::info()),
                graph: graph_name(onnx),
            },
        })
    }

    /// Embeds on the calling thread.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        use ort::value::Tensor;
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let b = encode(&self.tokenizer.batch, texts)?;
        let shape = [b.rows as i64, b.len as i64];
        let as_i64 = |v: &[u32]| v.iter().map(|x| i64::from(*x)).collect::<Vec<i64>>();
        let ids = Tensor::from_array((shape, as_i64(&b.ids))).map_err(ort_err)?;
        let mask = Tensor::from_array((shape, as_i64(&b.mask))).map_err(ort_err)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = if self.wants_type_ids {
            let types = Tensor::from_array((shape, as_i64(&b.type_ids))).map_err(ort_err)?;
            session.run(ort::inputs![
                "input_ids" => ids,
                "attention_mask" => mask,
                "token_type_ids" => types
            ])
        } else {
            session.run(ort::inputs!["input_ids" => ids, "attention_mask" => mask])
        }
        .map_err(ort_err)?;
        let (out_shape, data) = outputs[0].try_extract_tensor::<f32>().map_err(ort_err)?;
        let dim = *out_shape.last().unwrap_or(&0) as usize;
        if out_shape.len() != 3 || dim != self.dim {
            return Err(ort_err(format!("unexpected output shape {out_shape:?}")));
        }
        Ok(pool(data, &b.mask, b.rows, b.len, dim))
    }
}

#[async_trait::async_trait]
impl Embedder for OrtEmbedder {
    fn model(&self) -> &ModelId {
        &self.id
    }

    fn dimension(&self) -> usize {
        self.dim
    }

    fn max_input_tokens(&self) -> usize {
        self.tokenizer.max_len
    }

    fn count_tokens(&self, texts: &[&str]) -> bear_core::Result<Vec<usize>> {
        self.tokenizer.count(texts)
    }

    async fn embed(&self, texts: &[String]) -> bear_core::Result<Vec<Vec<f32>>> {
        on_blocking_thread(self, texts, Self::embed_blocking).await
    }

    fn batch_invariant(&self) -> bool {
        self.batch_invariant
    }

    fn runtime(&self) -> Option<EmbedderRuntime> {
        Some(self.runtime.clone())
    }
}

/// Whether an ONNX graph quantizes activations at run time (ONNX's `DynamicQuantizeLinear`,
/// one scale per tensor, so per batch). An operator's type is stored as plain text in the
/// graph's protobuf, so finding the name finds the operator.
fn quantizes_activations(onnx: &Path) -> Result<bool> {
    let bytes = std::fs::read(onnx).map_err(|source| Error::Io {
        path: onnx.to_path_buf(),
        source,
    })?;
    Ok(memchr::memmem::find(&bytes, b"DynamicQuantizeLinear").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_ignores_padding_and_normalises() {
        // Two rows of two tokens, dim 2; the second row's second token is padding.
        let hidden = [1.0, 0.0, 3.0, 0.0, 0.0, 2.0, 100.0, 100.0];
        let mask = [1, 1, 1, 0];
        let v = pool(&hidden, &mask, 2, 2, 2);
        assert_eq!(v[0], vec![1.0, 0.0]);
        assert_eq!(v[1], vec![0.0, 1.0]);
    }

    #[test]
    fn runtime_names_and_versions() {
        assert_eq!(
            ort_version(
                "ORT Build Info: git-branch=rel-1.22.0, git-commit-id=abc, build type=Release"
            ),
            "1.22.0"
        );
        assert_eq!(
            ort_version(
                "ORT Build Info: git-branch=HEAD, git-commit-id=a83fc4d58c, build type=Release"
            ),
            "commit a83fc4d58c"
        );
        assert_eq!(ort_version("odd"), "odd");
        assert_eq!(
            graph_name(Path::new("/m/all-MiniLM-L6-v2-fused/model.onnx")),
            "all-MiniLM-L6-v2-fused/model.onnx"
        );
        let manifest = include_str!("../../../Cargo.toml");
        assert!(
            manifest.contains(&format!("candle-core = \"={CANDLE_VERSION}\"")),
            "CANDLE_VERSION is not the pinned candle-core"
        );
    }
}
