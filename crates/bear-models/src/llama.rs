//! `LlamaCppGenerator`: GGUF text generation through llama.cpp (the llama-cpp-2 crate).
//!
//! A request is validated, queued fairly behind earlier requests to the same model (a FIFO
//! semaphore), then decoded on a blocking thread: the prompt in batches, then one token at a
//! time, streaming text through a [`StopFilter`] to the caller's [`TokenSink`]. Cancellation is
//! checked before every decode, so it takes effect within one token.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Instant;

use bear_core::{
    CancellationToken, FinishReason, Generation, GenerationRequest, ModelId, Prompt, Redacted,
    TextGenerator, TokenSink,
};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::gguf::{self, GgufInfo};
use crate::stop::{Step, StopFilter};
use crate::template::ChatTemplate;
use crate::worker::{Job, Message, PromptCache, Worker};

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
    /// Bytes of KV cache kept between requests (whole contexts, least recently used out).
    pub prompt_cache_bytes: u64,
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
    queue: Arc<Semaphore>,
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
        if options.context_length < 16 || options.threads == 0 || options.batch_size == 0 {
            return Err(Error::InvalidRequest(
                "context_length must be >= 16 and threads and batch_size > 0".into(),
            ));
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
            Worker::start(move |jobs| serve(&model, &template, &options, jobs))?
        };
        Ok(Self {
            id,
            path: path.to_path_buf(),
            info,
            model,
            queue: Arc::new(Semaphore::new(1)),
            template,
            worker: Arc::new(worker),
        })
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
        self.queue.available_permits() == 0
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
        sink: &mut dyn FnMut(&str) -> bool,
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

fn tokenize(
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

/// llama.cpp's "pick a random seed" value.
const LLAMA_DEFAULT_SEED: u32 = 0xFFFF_FFFF;

fn backend_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: "llama.cpp",
        reason: format!("{what}: {e}"),
    }
}

/// Tokens the repetition penalty looks back over (llama.cpp's `penalty_last_n` as BEAR sets it).
const PENALTY_WINDOW: usize = 64;

/// llama.cpp's repetition penalty rule: a positive logit divided, a negative one multiplied.
fn penalise(logit: f32, penalty: f32) -> f32 {
    if logit <= 0.0 {
        logit * penalty
    } else {
        logit / penalty
    }
}

/// What a recently generated token costs.
#[derive(Debug, Clone, Copy)]
struct Penalties {
    /// The repetition penalty; 1 disables.
    repeat: f32,
    /// Subtracted from the logit of every recent token.
    presence: f32,
    /// Subtracted from a recent token's logit once per occurrence.
    frequency: f32,
}

impl Penalties {
    fn none(self) -> bool {
        (self.repeat - 1.0).abs() <= f32::EPSILON && self.presence == 0.0 && self.frequency == 0.0
    }

    /// A recent token's logit after the penalties: the repetition penalty, then OpenAI's
    /// frequency (per occurrence) and presence penalties, as llama.cpp's penalties sampler.
    fn apply(self, logit: f32, count: f32) -> f32 {
        penalise(logit, self.repeat) - count * self.frequency - self.presence
    }
}

/// Token choice. Greedy decoding takes the arg max of the logits itself (llama.cpp's greedy
/// sampler first copies every logit into a candidate array), keeping the first of equal maxima
/// as llama.cpp does; otherwise llama.cpp's chain (top-k, top-p, temperature, a seeded draw)
/// picks. The repetition penalty is BEAR's own: llama.cpp's penalties sampler looks every one of
/// the vocabulary's candidates up in a hash map of recent tokens (49,152 lookups per token for
/// SmolLM2, about 3% of a token's time here), while the penalty touches at most
/// [`PENALTY_WINDOW`] of them; BEAR applies the same rule (a positive logit divided by the
/// penalty, a negative one multiplied) to those directly. A unit test checks that both pick
/// the same tokens.
struct Sampling {
    /// `None`: greedy.
    chain: Option<LlamaSampler>,
    /// What recent tokens cost.
    penalties: Penalties,
    /// The last sampled tokens, oldest first.
    recent: std::collections::VecDeque<LlamaToken>,
    /// Candidates for the chain, reused from token to token.
    candidates: Vec<LlamaTokenData>,
    /// Logits for greedy decoding, reused from token to token.
    logits: Vec<f32>,
    /// The grammar the output must follow (`json_schema`).
    grammar: Option<LlamaSampler>,
}

impl Sampling {
    fn new(request: &GenerationRequest) -> Self {
        let p = &request.params;
        let chain = (p.temperature != 0.0).then(|| {
            let mut chain = Vec::new();
            if p.top_k > 0 {
                chain.push(LlamaSampler::top_k(p.top_k.min(i32::MAX as u32) as i32));
            }
            chain.push(LlamaSampler::top_p(p.top_p, 1));
            chain.push(LlamaSampler::temp(p.temperature));
            // A fixed seed makes sampling reproducible; without one llama.cpp picks a random
            // seed.
            let seed = p
                .seed
                .map(|s| (s ^ (s >> 32)) as u32)
                .unwrap_or(LLAMA_DEFAULT_SEED);
            chain.push(LlamaSampler::dist(seed));
            LlamaSampler::chain_simple(chain)
        });
        Self {
            chain,
            penalties: Penalties {
                repeat: p.repeat_penalty,
                presence: p.presence_penalty,
                frequency: p.frequency_penalty,
            },
            recent: std::collections::VecDeque::with_capacity(PENALTY_WINDOW),
            candidates: Vec::new(),
            logits: Vec::new(),
            grammar: None,
        }
    }

    /// The distinct recent tokens as indexes into the logits, each with how often it came,
    /// when a penalty applies.
    fn penalised(&self) -> Vec<(usize, f32)> {
        if self.penalties.none() {
            return Vec::new();
        }
        let mut seen: Vec<usize> = self
            .recent
            .iter()
            .filter_map(|t| usize::try_from(t.0).ok())
            .collect();
        seen.sort_unstable();
        let mut counted: Vec<(usize, f32)> = Vec::with_capacity(seen.len());
        for i in seen {
            match counted.last_mut() {
                Some((last, n)) if *last == i => *n += 1.0,
                _ => counted.push((i, 1.0)),
            }
        }
        counted
    }

    /// Picks the next token from the logits of batch position `idx`.
    fn sample(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> Result<LlamaToken> {
        let token = match self.grammar.is_some() {
            true => self.sample_constrained(ctx, idx)?,
            false => self.sample_free(ctx, idx)?,
        };
        if self.recent.len() == PENALTY_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(token);
        Ok(token)
    }

    /// [`Self::sample`] under the grammar: the penalties, then only the tokens the grammar
    /// allows, then the chain (or the most likely); the grammar then takes the token.
    fn sample_constrained(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> Result<LlamaToken> {
        let penalised = self.penalised();
        let mut array = LlamaTokenDataArray::new(std::mem::take(&mut self.candidates), false);
        array.data.clear();
        array.data.extend(ctx.candidates_ith(idx));
        for &(i, n) in &penalised {
            if let Some(c) = array.data.get_mut(i) {
                c.set_logit(self.penalties.apply(c.logit(), n));
            }
        }
        if let Some(grammar) = &mut self.grammar {
            array.apply_sampler(grammar);
        }
        let token = match &mut self.chain {
            Some(chain) => {
                array.apply_sampler(chain);
                array.selected_token()
            }
            None => array
                .data
                .iter()
                .filter(|c| c.logit().is_finite())
                .max_by(|a, b| a.logit().total_cmp(&b.logit()))
                .map(|c| c.id()),
        };
        self.candidates = array.data;
        let token = token.ok_or_else(|| {
            Error::InvalidRequest("the JSON schema's grammar allows no next token".into())
        })?;
        if let Some(chain) = &mut self.chain {
            chain.accept(token);
        }
        if let Some(grammar) = &mut self.grammar {
            grammar.accept(token);
        }
        Ok(token)
    }

    /// [`Self::sample`] without a grammar.
    fn sample_free(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> Result<LlamaToken> {
        let penalised = self.penalised();
        let penalties = self.penalties;
        let token = match &mut self.chain {
            None => {
                let logits = &mut self.logits;
                logits.clear();
                logits.extend_from_slice(ctx.get_logits_ith(idx));
                for &(i, n) in &penalised {
                    if let Some(l) = logits.get_mut(i) {
                        *l = penalties.apply(*l, n);
                    }
                }
                let mut best = 0;
                for (i, &v) in logits.iter().enumerate() {
                    if v > logits[best] {
                        best = i;
                    }
                }
                LlamaToken(best as i32)
            }
            Some(chain) if penalised.is_empty() => chain.sample(ctx, idx),
            Some(chain) => {
                let mut array =
                    LlamaTokenDataArray::new(std::mem::take(&mut self.candidates), false);
                array.data.clear();
                array.data.extend(ctx.candidates_ith(idx));
                for &(i, n) in &penalised {
                    if let Some(c) = array.data.get_mut(i) {
                        c.set_logit(penalties.apply(c.logit(), n));
                    }
                }
                array.apply_sampler(chain);
                let token = array.selected_token();
                self.candidates = array.data;
                let token =
                    token.ok_or_else(|| backend_err("sampling", "no token was selected"))?;
                chain.accept(token);
                token
            }
        };
        Ok(token)
    }
}

/// The largest grammar a JSON schema may become.
const MAX_GRAMMAR_BYTES: usize = 256 * 1024;

/// The GBNF grammar for JSON schema `schema` (llama.cpp's `json_schema_to_grammar`); a
/// schema it cannot convert, or one whose grammar is too large, is a request error naming
/// the problem. Checks a schema before any generation needs it.
pub fn schema_grammar(schema: &str) -> Result<String> {
    let grammar = llama_cpp_2::json_schema_to_grammar(schema).map_err(|e| {
        Error::InvalidRequest(format!("json_schema cannot be made into a grammar: {e}"))
    })?;
    if grammar.len() > MAX_GRAMMAR_BYTES {
        return Err(Error::InvalidRequest(format!(
            "json_schema makes a grammar of {} KiB, more than {} KiB; simplify the schema",
            grammar.len() / 1024,
            MAX_GRAMMAR_BYTES / 1024
        )));
    }
    Ok(grammar)
}

/// A grammar sampler for `schema` (llama.cpp's `json_schema_to_grammar`); a schema it cannot
/// convert, or one whose grammar is too large, is a request error naming the problem.
fn json_grammar(model: &LlamaModel, schema: &str) -> Result<LlamaSampler> {
    let grammar = schema_grammar(schema)?;
    LlamaSampler::grammar(model, &grammar, "root")
        .map_err(|e| Error::InvalidRequest(format!("json_schema's grammar is not accepted: {e}")))
}

/// The model's thread: each job in turn, over one prompt cache. A panic in a generation
/// fails that request and empties the cache.
fn serve(
    model: &LlamaModel,
    template: &ChatTemplate,
    options: &LlamaOptions,
    jobs: mpsc::Receiver<Job>,
) {
    let mut cache = PromptCache::new(model, options);
    for job in jobs {
        let reply = job.reply.clone();
        let mut sink = |t: &str| reply.send(Message::Text(t.to_string())).is_ok();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(
                model,
                template,
                options,
                &mut cache,
                &job.request,
                &mut sink,
                &job.cancel,
            )
        }))
        .unwrap_or_else(|_| {
            cache.clear();
            Err(backend_err("generation", "it failed unexpectedly"))
        });
        let _ = job.reply.send(Message::Done(result));
    }
}

fn run<'m>(
    model: &'m LlamaModel,
    template: &ChatTemplate,
    options: &LlamaOptions,
    cache: &mut PromptCache<'m>,
    request: &GenerationRequest,
    sink: &mut dyn FnMut(&str) -> bool,
    cancel: &CancellationToken,
) -> Result<(Generation, GenerationTimings)> {
    let start = Instant::now();
    let n_ctx = options.context_length;
    let mut tokens = tokenize(model, template, &request.prompt)?;
    let max_tokens = request.params.max_tokens;
    if tokens.is_empty() {
        return Err(Error::InvalidRequest("the prompt has no tokens".into()));
    }
    // The prompt must leave room for at least one generated token.
    let room = n_ctx as usize - 1;
    if tokens.len() > room {
        match options.overflow {
            Overflow::Reject => {
                return Err(Error::InvalidRequest(format!(
                    "the prompt is {} tokens but the context holds {n_ctx}; shorten it, raise \
                     models.context_length, or allow truncation",
                    tokens.len()
                )));
            }
            Overflow::TruncateStart => {
                let keep = room
                    .saturating_sub((max_tokens as usize).min(room / 2))
                    .max(1);
                tokens.drain(..tokens.len() - keep);
            }
        }
    }
    let prompt_tokens = tokens.len() as u32;

    let threads = options.threads as i32;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(options.batch_size)
        .with_n_ubatch(options.batch_size)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    // A kept context whose cache holds a prefix of the prompt, or a new one.
    let (mut cached, reused) = cache.take(&tokens, || {
        model
            .new_context(backend()?, params)
            .map_err(|e| backend_err("cannot create a context", e))
    })?;
    let ctx = &mut cached.ctx;

    // Prompt processing of what the cache lacks, in batches; logits only for the last token.
    let batch_cap = options.batch_size as usize;
    let mut batch = LlamaBatch::new(batch_cap.max(1), 1);
    let last = tokens.len() - 1;
    for (chunk_index, chunk) in tokens[reused..].chunks(batch_cap).enumerate() {
        if cancel.is_cancelled() {
            return Ok(cancelled(start, prompt_tokens, String::new(), 0));
        }
        batch.clear();
        for (i, t) in chunk.iter().enumerate() {
            let pos = reused + chunk_index * batch_cap + i;
            batch
                .add(*t, pos as i32, &[0], pos == last)
                .map_err(|e| backend_err("batch", e))?;
        }
        ctx.decode(&mut batch)
            .map_err(|e| backend_err("prompt decode failed", e))?;
    }
    cached.tokens.extend_from_slice(&tokens[reused..]);
    let ctx = &mut cached.ctx;
    let prompt_seconds = start.elapsed().as_secs_f64();
    let gen_start = Instant::now();

    let mut sampler = Sampling::new(request);
    if let Some(schema) = &request.params.json_schema {
        sampler.grammar = Some(json_grammar(model, schema)?);
    }
    let mut filter = StopFilter::new(&request.params.stop);
    let mut utf8 = Utf8Stream::default();
    let mut text = String::new();
    let mut generated: u32 = 0;
    let mut pos = tokens.len() as i32;
    let mut logits_at = batch.n_tokens() - 1;
    let vocab = model.vocab();
    let mut piece_bytes = Vec::with_capacity(32);
    let mut piece = String::with_capacity(64);
    let mut decode_seconds = 0.0;

    let finish = loop {
        if cancel.is_cancelled() {
            break FinishReason::Cancelled;
        }
        let token = sampler.sample(ctx, logits_at)?;
        if vocab.is_eog(token) {
            break FinishReason::Stop;
        }
        generated += 1;
        piece_bytes.clear();
        vocab.token_to_piece_into(token, &mut piece_bytes, false, None);
        piece.clear();
        utf8.push(&piece_bytes, &mut piece);
        let (emit, stop) = match filter.push(&piece) {
            Step::Emit(t) => (t, false),
            Step::Stop(t) => (t, true),
        };
        if !emit.is_empty() {
            text.push_str(&emit);
            if !sink(&emit) {
                break FinishReason::Cancelled;
            }
        }
        if stop {
            break FinishReason::StopSequence;
        }
        if generated >= max_tokens || pos as u32 + 1 >= n_ctx {
            break FinishReason::Length;
        }
        batch.clear();
        batch
            .add(token, pos, &[0], true)
            .map_err(|e| backend_err("batch", e))?;
        pos += 1;
        let decode_start = Instant::now();
        ctx.decode(&mut batch)
            .map_err(|e| backend_err("decode failed", e))?;
        cached.tokens.push(token);
        decode_seconds += decode_start.elapsed().as_secs_f64();
        logits_at = 0;
    };
    cache.put(cached);

    if finish != FinishReason::StopSequence && finish != FinishReason::Cancelled {
        let mut rest = String::new();
        utf8.finish(&mut rest);
        let rest = filter.finish() + &rest;
        if !rest.is_empty() {
            text.push_str(&rest);
            let _ = sink(&rest);
        }
    }
    let timings = GenerationTimings {
        prompt_tokens: prompt_tokens - reused as u32,
        prompt_seconds,
        generated_tokens: generated,
        generation_seconds: gen_start.elapsed().as_secs_f64(),
        decode_seconds,
    };
    Ok((
        Generation {
            text: Redacted::new(text),
            prompt_tokens,
            prompt_cached_tokens: reused as u32,
            completion_tokens: generated,
            elapsed: start.elapsed(),
            finish_reason: finish,
        },
        timings,
    ))
}

/// Turns token bytes into text. A multi-byte character may straddle two tokens, so an
/// incomplete sequence at the end is kept for the next push; invalid bytes become U+FFFD.
#[derive(Debug, Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8], out: &mut String) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // from_utf8 just proved this range valid, so this never falls back to "".
                    out.push_str(std::str::from_utf8(&self.pending[start..valid]).unwrap_or(""));
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start = valid + n;
                        }
                        None => {
                            start = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
    }

    fn finish(&mut self, out: &mut String) {
        if !self.pending.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}

fn cancelled(
    start: Instant,
    prompt_tokens: u32,
    text: String,
    generated: u32,
) -> (Generation, GenerationTimings) {
    (
        Generation {
            text: Redacted::new(text),
            prompt_tokens,
            prompt_cached_tokens: 0,
            completion_tokens: generated,
            elapsed: start.elapsed(),
            finish_reason: FinishReason::Cancelled,
        },
        GenerationTimings::default(),
    )
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
            worker.generate(&request, &mut |p| sink.on_text(p), &cancel)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// BEAR's penalties (repetition, frequency, presence) pick, step by step, the token
    /// llama.cpp's own penalties sampler picks from the same logits (greedy and seeded draws), on the real model.
    #[test]
    fn the_penalty_matches_llama_cpps_penalties_sampler() {
        let dirs = bear_core::Dirs::from_env(|k| std::env::var_os(k)).expect("dirs");
        let path = dirs.models_dir.join(bear_core::assets::SMOLLM2_GGUF);
        assert!(path.exists(), "{}", bear_core::assets::missing_hint(&path));
        let g = LlamaCppGenerator::load(
            ModelId::new("SmolLM2-135M-Instruct.Q4_1").unwrap(),
            &path,
            LlamaOptions::default(),
        )
        .unwrap();
        let prompt = "Count from 1 to 1000, separated by commas: 1, 2, 3, 4, 5,";
        let tokens = tokenize(
            &g.model,
            &g.template,
            &Prompt::Text(Redacted::new(prompt.into())),
        )
        .unwrap();
        for (temperature, seed, penalty, frequency, presence) in [
            (0.0, None, 1.3, 0.0, 0.0),
            (0.0, None, 1.0, 0.0, 0.0),
            (0.8, Some(7), 1.3, 0.0, 0.0),
            (0.8, Some(7), 1.0, 0.0, 0.0),
            (0.0, None, 1.0, 0.7, 0.0),
            (0.0, None, 1.0, 0.0, 1.5),
            (0.8, Some(7), 1.1, 0.4, 0.3),
        ] {
            let request = GenerationRequest {
                model: g.id.clone(),
                prompt: Prompt::Text(Redacted::new(prompt.into())),
                params: bear_core::SamplingParams {
                    temperature,
                    seed,
                    repeat_penalty: penalty,
                    frequency_penalty: frequency,
                    presence_penalty: presence,
                    ..bear_core::SamplingParams::default()
                },
            };
            let mut ours = Sampling::new(&request);
            // The chain llama.cpp alone would run: its penalties sampler, then greedy or the
            // same top-k, top-p, temperature and draw.
            let mut reference = {
                let rest = Sampling::new(&request)
                    .chain
                    .unwrap_or_else(LlamaSampler::greedy);
                let penalties = LlamaSampler::penalties(
                    g.model.n_vocab(),
                    PENALTY_WINDOW as i32,
                    penalty,
                    frequency,
                    presence,
                );
                LlamaSampler::chain_simple([penalties, rest])
            };
            let mut unpenalised = Sampling::new(&bear_core::GenerationRequest {
                params: bear_core::SamplingParams {
                    repeat_penalty: 1.0,
                    frequency_penalty: 0.0,
                    presence_penalty: 0.0,
                    ..request.params.clone()
                },
                ..request.clone()
            });
            let params = LlamaContextParams::default()
                .with_n_ctx(NonZeroU32::new(512))
                .with_n_threads(2)
                .with_n_threads_batch(2);
            let mut ctx = g.model.new_context(backend().unwrap(), params).unwrap();
            let mut batch = LlamaBatch::new(512, 1);
            for (i, t) in tokens.iter().enumerate() {
                batch
                    .add(*t, i as i32, &[0], i == tokens.len() - 1)
                    .unwrap();
            }
            ctx.decode(&mut batch).unwrap();
            let (mut at, mut pos, mut differs) = (batch.n_tokens() - 1, tokens.len() as i32, 0);
            for step in 0..80 {
                let want = reference.sample(&ctx, at);
                let got = ours.sample(&ctx, at).unwrap();
                assert_eq!(
                    got, want,
                    "temperature {temperature} penalties {penalty} {frequency} {presence} step {step}"
                );
                differs += usize::from(unpenalised.sample(&ctx, at).unwrap() != got);
                batch.clear();
                batch.add(got, pos, &[0], true).unwrap();
                ctx.decode(&mut batch).unwrap();
                (at, pos) = (0, pos + 1);
            }
            let applies = penalty != 1.0 || frequency != 0.0 || presence != 0.0;
            assert_eq!(
                differs > 0,
                applies,
                "a penalty changes choices exactly when one applies ({temperature}, {penalty}, {frequency}, {presence})"
            );
        }
    }
}
