//! `LlamaCppGenerator`: GGUF text generation through llama.cpp (the llama-cpp-2 crate).
//!
//! A request is validated, queued fairly behind earlier requests to the same model (a FIFO
//! semaphore admitting `parallel` at once), then served on the model's own thread
//! ([`crate::worker`]), batched with the other running requests ([`crate::batch`]), its text
//! streamed to the caller's [`TokenSink`]. Cancellation is checked before every decode, so it
//! takes effect within one token.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bear_core::{
    CancellationToken, Generation, GenerationRequest, ModelId, Prompt, TextGenerator, TokenSink,
};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use serde::Serialize;
use tokio::sync::Semaphore;

use bear_core::config::MAX_PARALLEL;

use crate::error::{Error, Result};
use crate::gguf::{self, GgufInfo};
use crate::template::ChatTemplate;
use crate::worker::Worker;

/// Architectures this build of llama.cpp is known to run and BEAR has tested.
pub const SUPPORTED_ARCHITECTURES: &str = "llama, qwen2, qwen3, mistral, gemma, gemma2, gemma3, phi3, granite, olmo, stablelm, starcoder2";

/// What to do with a prompt longer than the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Refuse the request with a clear error.
    #[default]
    Reject,
    /// Drop the oldest prompt tokens so the prompt and `max_tokens` fit.
    TruncateStart,
}

/// How to load and run a GGUF model.
#[derive(Debug, Clone)]
pub struct LlamaOptions {
    /// Context length per request.
    pub context_length: u32,
    /// Threads for generation and prompt processing (from bear-hw's recommendation).
    pub threads: u32,
    /// Lock the weights in RAM.
    pub mlock: bool,
    /// Prompt-overflow policy.
    pub overflow: Overflow,
    /// Prompt tokens decoded per batch.
    pub batch_size: u32,
    /// Bytes of sequence states kept in host memory between requests (least recently used
    /// out); 0 also stops free sequences from keeping their tokens for the next request.
    pub prompt_cache_bytes: u64,
    /// Requests served at once (sequences of one context; see [`crate::batch`]).
    pub parallel: u32,
    /// Decode on one thread while that is faster (a contended CPU; see [`crate::threads`]).
    pub adapt_threads: bool,
}

impl Default for LlamaOptions {
    fn default() -> Self {
        Self {
            context_length: 2048,
            threads: 2,
            mlock: false,
            overflow: Overflow::Reject,
            batch_size: 512,
            prompt_cache_bytes: 256 << 20,
            parallel: 4,
            adapt_threads: true,
        }
    }
}

/// Timings of the last phase split, for metrics: prompt processing versus generation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct GenerationTimings {
    /// Prompt tokens decoded.
    pub prompt_tokens: u32,
    /// Seconds spent decoding the prompt.
    pub prompt_seconds: f64,
    /// Tokens generated.
    pub generated_tokens: u32,
    /// Seconds spent generating (sampling + decoding + detokenising).
    pub generation_seconds: f64,
    /// Of `generation_seconds`, the time inside llama.cpp's decode; the rest is BEAR's own
    /// per-token work (sampling, detokenising, stop-sequence checks, streaming).
    pub decode_seconds: f64,
}

/// The process-wide llama.cpp backend; llama.cpp allows one initialisation per process.
pub fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs every load to stderr; route it to tracing at debug level instead.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Backend {
            backend: "llama.cpp",
            reason: format!("backend initialisation failed: {e}"),
        })
}

/// A loaded GGUF model that generates text.
pub struct LlamaCppGenerator {
    id: ModelId,
    path: PathBuf,
    info: GgufInfo,
    model: Arc<LlamaModel>,
    /// Requests admitted to the model's thread: at most `parallel`, the rest wait in line.
    queue: Arc<Semaphore>,
    parallel: usize,
    /// The chat template chat prompts are rendered with.
    template: ChatTemplate,
    /// The thread that owns the model's contexts (and so its prompt cache) and generates.
    worker: Arc<Worker>,
}

impl std::fmt::Debug for LlamaCppGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaCppGenerator")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LlamaCppGenerator {
    /// Validates the file's header in Rust, checks the architecture, then loads it with mmap.
    pub fn load(id: ModelId, path: &Path, options: LlamaOptions) -> Result<Self> {
        let info = gguf::inspect(path)?;
        let supported = SUPPORTED_ARCHITECTURES
            .split(", ")
            .any(|a| a == info.architecture);
        if !supported {
            return Err(Error::UnsupportedArchitecture {
                path: path.to_path_buf(),
                arch: info.architecture,
                supported: SUPPORTED_ARCHITECTURES,
            });
        }
        if options.context_length < 16
            || options.threads == 0
            || !(1..=MAX_PARALLEL).contains(&options.parallel)
            || options.batch_size < options.parallel
        {
            return Err(Error::InvalidRequest(format!(
                "context_length must be >= 16, threads > 0, parallel between 1 and \
                 {MAX_PARALLEL} and batch_size at least parallel"
            )));
        }
        let params = LlamaModelParams::default()
            .with_use_mmap(true)
            .with_use_mlock(options.mlock);
        let model =
            LlamaModel::load_from_file(backend()?, path, &params).map_err(|e| Error::Backend {
                backend: "llama.cpp",
                reason: format!("cannot load {}: {e}", path.display()),
            })?;
        let template = chat_template(&model);
        let model = Arc::new(model);
        let worker = {
            let (model, template, options) = (model.clone(), template.clone(), options.clone());
            Worker::start(move |jobs, ready| {
                crate::batch::serve(&model, &template, &options, jobs, ready)
            })?
        };
        Ok(Self {
            id,
            path: path.to_path_buf(),
            info,
            model,
            queue: Arc::new(Semaphore::new(options.parallel as usize)),
            parallel: options.parallel as usize,
            template,
            worker: Arc::new(worker),
        })
    }

    /// The loaded model itself.
    #[cfg(test)]
    pub(crate) fn model(&self) -> &LlamaModel {
        &self.model
    }

    /// The model's id.
    pub fn id(&self) -> &ModelId {
        &self.id
    }

    /// The model's header metadata.
    pub fn info(&self) -> &GgufInfo {
        &self.info
    }

    /// Requests waiting for or holding this model.
    pub fn in_use(&self) -> bool {
        self.queue.available_permits() < self.parallel
    }

    /// Renders and tokenises a prompt, as generation would.
    pub fn tokenize_prompt(&self, prompt: &Prompt) -> Result<Vec<llama_cpp_2::token::LlamaToken>> {
        tokenize(&self.model, &self.template, prompt)
    }

    /// Generates on the model's thread, waiting on the calling one. [`TextGenerator::generate`]
    /// wraps this in a fair queue and a blocking task; benchmarks call it directly.
    pub fn generate_blocking(
        &self,
        request: &GenerationRequest,
        sink: &mut dyn TokenSink,
        cancel: &CancellationToken,
    ) -> Result<(Generation, GenerationTimings)> {
        request
            .validate()
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.worker.generate(request, sink, cancel)
    }
}

/// The model's own chat template (ChatML when its file has none) and the text of its
/// special tokens.
fn chat_template(model: &LlamaModel) -> ChatTemplate {
    let source = model
        .chat_template(None)
        .ok()
        .and_then(|t| t.to_string().ok());
    let vocab = model.vocab();
    let text = |t| {
        vocab
            .text(t)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    ChatTemplate::new(source, text(vocab.bos()), text(vocab.eos()))
}

pub(crate) fn tokenize(
    model: &LlamaModel,
    template: &ChatTemplate,
    prompt: &Prompt,
) -> Result<Vec<llama_cpp_2::token::LlamaToken>> {
    let vocab = model.vocab();
    let rendered = match prompt {
        // User text never gets to spell control tokens: parse_special is off.
        Prompt::Text(t) => return Ok(vocab.tokenize(t.expose().as_bytes(), true, false)),
        Prompt::Chat(messages) => template.render(messages, &[])?,
        Prompt::ChatTools { messages, tools } => template.render(messages, tools)?,
    };
    // A template that writes the BOS token itself must not get a second one.
    let bos = template.bos();
    let text = match rendered.strip_prefix(bos) {
        Some(rest) if !bos.is_empty() && vocab.should_add_bos() => rest,
        _ => rendered.as_str(),
    };
    // The template's own markers are control tokens; message text went through the template
    // verbatim, as every llama.cpp front end does.
    Ok(vocab.tokenize(text.as_bytes(), true, true))
}

pub(crate) fn backend_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: "llama.cpp",
        reason: format!("{what}: {e}"),
    }
}

impl LlamaCppGenerator {
    /// Queues fairly behind earlier requests to this model (FIFO), then generates on a blocking
    /// thread. Dropping the returned future cancels the generation within one token.
    pub async fn generate_queued(
        &self,
        request: GenerationRequest,
        mut sink: Box<dyn TokenSink>,
        cancel: CancellationToken,
    ) -> Result<(Generation, GenerationTimings)> {
        request
            .validate()
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        // A child token, cancelled when this future is dropped (a client went away) and left
        // alone when generation finishes normally.
        let cancel = cancel.child_token();
        let guard = cancel.clone().drop_guard();
        let permit = self
            .queue
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Unavailable("the model is shutting down".into()))?;
        let worker = self.worker.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            worker.generate(&request, sink.as_mut(), &cancel)
        });
        let result = task.await.map_err(|_| Error::Backend {
            backend: "llama.cpp",
            reason: "generation task failed".into(),
        })?;
        guard.disarm();
        result
    }
}

#[async_trait::async_trait]
impl TextGenerator for LlamaCppGenerator {
    async fn generate(
        &self,
        request: GenerationRequest,
        sink: Box<dyn TokenSink>,
        cancel: CancellationToken,
    ) -> bear_core::Result<Generation> {
        if request.model != self.id {
            return Err(bear_core::Error::backend(
                bear_core::ErrorKind::NotFound,
                format!("model `{}` is not loaded here", request.model),
            ));
        }
        Ok(self.generate_queued(request, sink, cancel).await?.0)
    }
}
