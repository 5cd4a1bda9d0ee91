//! A generation model's own thread and its prompt cache.
//!
//! The thread owns the model's llama.cpp contexts (a context borrows its model and may not be
//! shared between threads, so they live where the model reference lives) and runs one request
//! at a time; the per-model queue in front of it decides the order. After a request its
//! context is kept with the tokens its KV cache holds ([`PromptCache`]): the next request
//! takes the context whose tokens share the longest prefix with its prompt, drops the KV
//! entries past that prefix and decodes only the rest. Contexts are kept whole, least
//! recently used out, while their KV caches fit `models.prompt_cache_bytes`.

use std::sync::mpsc;

use bear_core::{CancellationToken, Generation, GenerationRequest};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::error::{Error, Result};
use crate::llama::{GenerationTimings, LlamaOptions};

/// A shorter shared prefix is not worth evicting another prompt's context for.
const MIN_REUSE: usize = 16;

/// A context and the tokens its KV cache holds, position by position.
pub(crate) struct Cached<'m> {
    pub(crate) ctx: LlamaContext<'m>,
    pub(crate) tokens: Vec<LlamaToken>,
}

/// Contexts kept between requests, most recently used last.
pub(crate) struct PromptCache<'m> {
    entries: Vec<Cached<'m>>,
    capacity: usize,
}

impl<'m> PromptCache<'m> {
    /// As many contexts as `options.prompt_cache_bytes` holds KV caches of `model` at
    /// `options.context_length` (f16 keys and values, the llama.cpp default).
    pub(crate) fn new(model: &LlamaModel, options: &LlamaOptions) -> Self {
        let heads = u64::from(model.n_head().max(1));
        let kv_width =
            u64::try_from(model.n_embd()).unwrap_or(0) * u64::from(model.n_head_kv()) / heads;
        let per_context =
            u64::from(options.context_length) * u64::from(model.n_layer()) * 2 * kv_width * 2;
        Self {
            entries: Vec::new(),
            capacity: options
                .prompt_cache_bytes
                .checked_div(per_context.max(1))
                .unwrap_or(0) as usize,
        }
    }

    /// A context for a prompt of `tokens`, and how many of them its KV cache already holds
    /// (never all: the last prompt token is decoded again for its logits). A kept context
    /// is taken when it shares at least [`MIN_REUSE`] tokens, or when no room is left;
    /// otherwise `create` makes a new one.
    pub(crate) fn take(
        &mut self,
        tokens: &[LlamaToken],
        create: impl FnOnce() -> Result<LlamaContext<'m>>,
    ) -> Result<(Cached<'m>, usize)> {
        let shared = |c: &Cached<'_>| {
            c.tokens
                .iter()
                .zip(tokens)
                .take_while(|(a, b)| a == b)
                .count()
        };
        let best = (0..self.entries.len()).max_by_key(|&i| (shared(&self.entries[i]), i));
        let pick = match best {
            Some(i) if shared(&self.entries[i]) >= MIN_REUSE.min(tokens.len()) => Some(i),
            Some(_) if self.entries.len() >= self.capacity => Some(0),
            _ => None,
        };
        let Some(i) = pick else {
            return Ok((
                Cached {
                    ctx: create()?,
                    tokens: Vec::new(),
                },
                0,
            ));
        };
        let mut c = self.entries.remove(i);
        let keep = shared(&c).min(tokens.len().saturating_sub(1));
        if keep < c.tokens.len() {
            // Positions from `keep` on are dropped; a model whose cache cannot drop a tail
            // (recurrent) starts over.
            let trimmed = c.ctx.clear_kv_cache_seq(Some(0), Some(keep as u32), None);
            if !matches!(trimmed, Ok(true)) {
                c.ctx.clear_kv_cache();
                c.tokens.clear();
                return Ok((c, 0));
            }
            c.tokens.truncate(keep);
        }
        Ok((c, keep))
    }

    /// Keeps `c` for the next request, dropping the least recently used beyond the capacity.
    pub(crate) fn put(&mut self, c: Cached<'m>) {
        self.entries.push(c);
        while self.entries.len() > self.capacity {
            self.entries.remove(0);
        }
    }

    /// Drops every kept context (after a failure left one in an unknown state).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

/// What the thread sends back while a request runs.
pub(crate) enum Message {
    /// A piece of text.
    Text(String),
    /// The end.
    Done(Result<(Generation, GenerationTimings)>),
}

/// One request for the thread.
pub(crate) struct Job {
    pub(crate) request: GenerationRequest,
    pub(crate) cancel: CancellationToken,
    pub(crate) reply: mpsc::Sender<Message>,
}

/// The handle to a model's generation thread; dropping it ends the thread (after the
/// running request) and waits for it.
pub(crate) struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread; `serve` runs each job in turn until the handle is dropped.
    pub(crate) fn start(serve: impl FnOnce(mpsc::Receiver<Job>) + Send + 'static) -> Result<Self> {
        let (jobs, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bear-generate".into())
            .spawn(move || serve(rx))
            .map_err(|e| Error::Backend {
                backend: "llama.cpp",
                reason: format!("cannot start the generation thread: {e}"),
            })?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `request` on the thread, passing each piece of text to `sink`; a `false` from
    /// `sink` cancels the generation within one token.
    pub(crate) fn generate(
        &self,
        request: &GenerationRequest,
        sink: &mut dyn FnMut(&str) -> bool,
        cancel: &CancellationToken,
    ) -> Result<(Generation, GenerationTimings)> {
        let gone = || Error::Unavailable("the model's generation thread has stopped".into());
        let own = cancel.child_token();
        let (reply, rx) = mpsc::channel();
        let job = Job {
            request: request.clone(),
            cancel: own.clone(),
            reply,
        };
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        for message in rx {
            match message {
                Message::Text(t) => {
                    if !own.is_cancelled() && !sink(&t) {
                        own.cancel();
                    }
                }
                Message::Done(result) => return result,
            }
        }
        Err(gone())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
