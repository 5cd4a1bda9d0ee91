//! Continuous batching: a generation model serves up to `models.parallel` requests at once,
//! in one llama.cpp context whose KV cache its sequences share (unified).
//!
//! Every [`Batcher::step`] builds one batch: the next token of each generating sequence, then
//! as much of the prompts still to be read as the batch has room for (a long prompt is read
//! over several steps, so running streams keep producing tokens), and decodes it once. A new
//! request takes a free sequence at the next step; a finished, failed or cancelled one frees
//! its sequence at once. Each request keeps its own sampling, seed, stop sequences, limits
//! and cancellation ([`Run`]).
//!
//! The prompt cache: a free sequence keeps its last request's tokens in the KV cache. A new
//! prompt takes the free sequence sharing its longest prefix, or copies a longer shared prefix
//! from another sequence (the KV cells are shared, not duplicated) or restores one saved in
//! host memory ([`PromptCache`]), drops the tail past the shared prefix and reads only the
//! rest.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::mpsc;
use std::time::Instant;

use bear_core::{FinishReason, Generation, GenerationRequest, Redacted, TokenLogprob};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::session::LlamaStateSeqFlags;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::error::{Error, Result};
use crate::llama::{GenerationTimings, LlamaOptions, Overflow, backend, backend_err, tokenize};
use crate::prompt_cache::{MIN_REUSE, PromptCache, shared};
use crate::sampling::{Sampling, Utf8Stream, logprob};
use crate::stop::{Step, StopFilter};
use crate::template::ChatTemplate;
use crate::threads::{self, Tuner};
use crate::worker::{Job, Message, Ready};

/// The model's thread: makes the context, reports ready, serves until the handle is dropped.
pub(crate) fn serve(
    model: &LlamaModel,
    template: &ChatTemplate,
    options: &LlamaOptions,
    jobs: mpsc::Receiver<Job>,
    ready: Ready,
) {
    match Batcher::new(model, template, options) {
        Ok(batcher) => {
            let _ = ready.send(Ok(()));
            batcher.serve(jobs);
        }
        Err(e) => {
            let _ = ready.send(Err(e));
        }
    }
}

/// One sequence of the context.
struct Slot {
    seq: i32,
    /// The tokens the KV cache holds for this sequence, by position.
    tokens: Vec<LlamaToken>,
    /// When it last served a request (the batcher's clock).
    used: u64,
    /// The request it serves, if any.
    run: Option<Run>,
}

/// The sequences of one context and the requests on them.
pub(crate) struct Batcher<'m> {
    model: &'m LlamaModel,
    template: &'m ChatTemplate,
    options: &'m LlamaOptions,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    slots: Vec<Slot>,
    saved: PromptCache,
    /// Requests waiting for a free sequence, oldest first.
    waiting: VecDeque<Job>,
    clock: u64,
    tuner: Tuner,
}

impl<'m> Batcher<'m> {
    /// A context of `options.parallel` sequences of `options.context_length` tokens each.
    fn new(
        model: &'m LlamaModel,
        template: &'m ChatTemplate,
        options: &'m LlamaOptions,
    ) -> Result<Self> {
        let parallel = options.parallel.max(1);
        let threads = options.threads as i32;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(options.context_length * parallel))
            .with_n_batch(options.batch_size)
            .with_n_ubatch(options.batch_size)
            .with_n_seq_max(parallel)
            .with_kv_unified(true)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx = model
            .new_context(backend()?, params)
            .map_err(|e| backend_err("cannot create a context", e))?;
        let slots = (0..parallel as i32)
            .map(|seq| Slot {
                seq,
                tokens: Vec::new(),
                used: 0,
                run: None,
            })
            .collect();
        Ok(Self {
            model,
            template,
            options,
            ctx,
            batch: LlamaBatch::new(options.batch_size as usize, 1),
            slots,
            saved: PromptCache::new(options.prompt_cache_bytes),
            waiting: VecDeque::new(),
            clock: 0,
            tuner: Tuner::new(options.threads, options.adapt_threads),
        })
    }

    /// Serves jobs until the sender is dropped and every request has finished. A panic fails
    /// the running requests and empties the caches.
    fn serve(mut self, jobs: mpsc::Receiver<Job>) {
        let mut open = true;
        loop {
            if self.waiting.is_empty() && self.slots.iter().all(|s| s.run.is_none()) {
                match jobs.recv() {
                    Ok(job) if open => self.waiting.push_back(job),
                    _ => return,
                }
            }
            while open {
                match jobs.try_recv() {
                    Ok(job) => self.waiting.push_back(job),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => open = false,
                }
            }
            let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.admit();
                self.step();
            }));
            if stepped.is_err() {
                self.reset();
            }
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Gives waiting requests free sequences, in arrival order; a request that cannot start
    /// (a bad prompt or schema) gets its error now.
    fn admit(&mut self) {
        while let Some(job) = self.waiting.pop_front() {
            if job.cancel.is_cancelled() {
                let sampler = Sampling::new(&job.request);
                let mut run = Run::new(job, Vec::new(), sampler);
                let result = run.result(FinishReason::Cancelled);
                let _ = run.job.reply.send(Message::Done(Ok(result)));
                continue;
            }
            if self.slots.iter().all(|s| s.run.is_some()) {
                self.waiting.push_front(job);
                return;
            }
            match self.prepare(&job.request) {
                Ok((prompt, sampler)) => {
                    let i = self.place(&prompt);
                    let mut run = Run::new(job, prompt, sampler);
                    run.reused = self.slots[i].tokens.len();
                    self.slots[i].run = Some(run);
                }
                Err(e) => {
                    let _ = job.reply.send(Message::Done(Err(e)));
                }
            }
        }
    }

    /// The request's prompt tokens (fitted to the context) and its sampler.
    fn prepare(&self, request: &GenerationRequest) -> Result<(Vec<LlamaToken>, Sampling)> {
        let n_ctx = self.options.context_length;
        let mut tokens = tokenize(self.model, self.template, &request.prompt)?;
        if tokens.is_empty() {
            return Err(Error::InvalidRequest("the prompt has no tokens".into()));
        }
        // The prompt must leave room for at least one generated token.
        let room = n_ctx as usize - 1;
        if tokens.len() > room {
            match self.options.overflow {
                Overflow::Reject => {
                    return Err(Error::InvalidRequest(format!(
                        "the prompt is {} tokens but the context holds {n_ctx}; shorten it, \
                         raise models.context_length, or allow truncation",
                        tokens.len()
                    )));
                }
                Overflow::TruncateStart => {
                    let max_tokens = request.params.max_tokens as usize;
                    let keep = room.saturating_sub(max_tokens.min(room / 2)).max(1);
                    tokens.drain(..tokens.len() - keep);
                }
            }
        }
        let mut sampler = Sampling::new(request);
        sampler.constrain(self.model, request)?;
        Ok((tokens, sampler))
    }

    /// The free sequence `prompt` goes to, holding the longest prefix of it the caches have
    /// (never the whole prompt: its last token is read again for its logits).
    fn place(&mut self, prompt: &[LlamaToken]) -> usize {
        let own: Vec<usize> = self
            .slots
            .iter()
            .map(|s| shared(&s.tokens, prompt))
            .collect();
        let free: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].run.is_none())
            .collect();
        let lru = free.iter().copied().min_by_key(|&i| self.slots[i].used);
        let best = free
            .iter()
            .copied()
            .max_by_key(|&i| (own[i], self.slots[i].used));
        let (Some(lru), Some(best)) = (lru, best) else {
            return 0;
        };
        if !self.saved.enabled() {
            self.empty(lru);
            return lru;
        }
        // The free sequence sharing enough of the prompt, or the one used longest ago.
        let target = if own[best] >= MIN_REUSE.min(prompt.len()) {
            best
        } else {
            lru
        };
        let have = own[target];
        let worth = |&(n, _): &(usize, usize)| n > have && n >= MIN_REUSE;
        let other = (0..self.slots.len())
            .filter(|&i| i != target)
            .map(|i| (own[i], i))
            .max()
            .filter(worth);
        let saved = self.saved.best(prompt).filter(worth);
        // A sequence about to lose most of what it holds is saved first.
        let kept = if other.is_some() || saved.is_some() {
            0
        } else {
            have.min(prompt.len() - 1)
        };
        if kept * 2 < self.slots[target].tokens.len() {
            self.save(target);
        }
        // Saving may have dropped or moved entries: look the state up again.
        let saved = saved.and_then(|_| self.saved.best(prompt).filter(worth));
        match (other, saved) {
            (Some((n, src)), s) if s.is_none_or(|(m, _)| n >= m) => self.copy(src, target, n),
            (_, Some((_, entry))) => self.restore(entry, target),
            _ => {}
        }
        let keep = shared(&self.slots[target].tokens, prompt).min(prompt.len() - 1);
        self.trim(target, keep);
        target
    }

    /// Saves slot `i`'s sequence to host memory, when it holds enough to be worth it.
    fn save(&mut self, i: usize) {
        let slot = &self.slots[i];
        if slot.tokens.len() < MIN_REUSE {
            return;
        }
        if let Ok(state) = self
            .ctx
            .state_seq_get(slot.seq, LlamaStateSeqFlags::empty())
        {
            let (tokens, now) = (slot.tokens.clone(), self.tick());
            self.saved.insert(tokens, state, now);
        }
    }

    /// Makes slot `dst` hold the first `n` tokens of slot `src`'s sequence.
    fn copy(&mut self, src: usize, dst: usize, n: usize) {
        self.empty(dst);
        let (from, to) = (self.slots[src].seq, self.slots[dst].seq);
        if self
            .ctx
            .kv_cache_seq_cp(from, to, Some(0), Some(n as u32))
            .is_ok()
        {
            self.slots[dst].tokens = self.slots[src].tokens[..n].to_vec();
        }
    }

    /// Makes slot `i` hold saved state `entry`.
    fn restore(&mut self, entry: usize, i: usize) {
        self.empty(i);
        let now = self.tick();
        let (tokens, state) = self.saved.get(entry, now);
        let tokens = tokens.to_vec();
        match self.ctx.state_seq_set(state, self.slots[i].seq) {
            Ok(()) => self.slots[i].tokens = tokens,
            Err(_) => self.empty(i),
        }
    }

    /// Drops slot `i`'s positions from `keep` on; a model whose cache cannot drop a tail
    /// (recurrent) drops the whole sequence.
    fn trim(&mut self, i: usize, keep: usize) {
        let slot = &mut self.slots[i];
        if keep >= slot.tokens.len() {
            return;
        }
        let seq = u32::try_from(slot.seq).ok();
        match self.ctx.clear_kv_cache_seq(seq, Some(keep as u32), None) {
            Ok(true) => slot.tokens.truncate(keep),
            _ => self.empty(i),
        }
    }

    /// Empties slot `i`'s sequence.
    fn empty(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let _ = self
            .ctx
            .clear_kv_cache_seq(u32::try_from(slot.seq).ok(), None, None);
        slot.tokens.clear();
    }

    /// One decode of every running request: finishes the cancelled, decodes a batch, then
    /// samples each request whose logits it produced.
    fn step(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].run.as_ref().is_some_and(Run::cancelled) {
                self.finish(i, FinishReason::Cancelled);
            }
        }
        let fed = match self.fill() {
            Ok(fed) if fed.is_empty() => return,
            Ok(fed) => fed,
            Err(e) => return self.fail_all("batch", &e),
        };
        let mode = self.tuner.mode();
        threads::apply(mode);
        let start = Instant::now();
        if let Err(e) = self.ctx.decode(&mut self.batch) {
            let reason = e.to_string();
            for &(i, _) in &fed {
                self.fail(i, backend_err("decode failed", &reason));
            }
            return;
        }
        let seconds = start.elapsed().as_secs_f64();
        self.tuner
            .record(mode, self.batch.n_tokens() as usize, seconds);
        for (i, n) in fed {
            let slot = &mut self.slots[i];
            if let Some(run) = &mut slot.run {
                run.fed(&mut slot.tokens, n, seconds);
            }
        }
        for i in 0..self.slots.len() {
            self.advance(i);
        }
    }

    /// Fills the batch: each generating request's next token, then prompt tokens in arrival
    /// order while there is room. Returns (slot, tokens added) for each request in it.
    fn fill(&mut self) -> std::result::Result<Vec<(usize, usize)>, String> {
        self.batch.clear();
        let mut fed = Vec::new();
        let add =
            |batch: &mut LlamaBatch<'_>, t: LlamaToken, pos: usize, seq: i32, logits: bool| {
                batch
                    .add(t, pos as i32, &[seq], logits)
                    .map_err(|e| e.to_string())
            };
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(run) = &mut slot.run else { continue };
            run.logits = None;
            if let Some(token) = run.next {
                run.logits = Some(self.batch.n_tokens());
                add(&mut self.batch, token, slot.tokens.len(), slot.seq, true)?;
                fed.push((i, 1));
            }
        }
        let mut reading: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].run.as_ref().is_some_and(Run::reading))
            .collect();
        reading.sort_by_key(|&i| self.slots[i].run.as_ref().map(|r| r.start));
        let cap = self.options.batch_size as usize;
        for i in reading {
            let room = cap.saturating_sub(self.batch.n_tokens() as usize);
            let slot = &mut self.slots[i];
            let Some(run) = &mut slot.run else { continue };
            let from = slot.tokens.len();
            let n = (run.prompt.len() - from).min(room);
            for pos in from..from + n {
                let last = pos + 1 == run.prompt.len();
                if last {
                    run.logits = Some(self.batch.n_tokens());
                }
                add(&mut self.batch, run.prompt[pos], pos, slot.seq, last)?;
            }
            if n > 0 {
                fed.push((i, n));
            }
        }
        Ok(fed)
    }

    /// Samples slot `i`'s request if this step produced its logits, and finishes it when it
    /// is done.
    fn advance(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let Some(run) = &mut slot.run else { return };
        let Some(at) = run.logits.take() else { return };
        let room = (self.options.context_length as usize).saturating_sub(slot.tokens.len() + 1);
        match run.advance(&self.ctx, self.model, at, room) {
            Ok(None) => {}
            Ok(Some(finish)) => self.finish(i, finish),
            Err(e) => self.fail(i, e),
        }
    }

    /// Ends slot `i`'s request with `finish`, keeping its tokens for the prompt cache.
    fn finish(&mut self, i: usize, finish: FinishReason) {
        let now = self.tick();
        let slot = &mut self.slots[i];
        let Some(mut run) = slot.run.take() else {
            return;
        };
        slot.used = now;
        let result = run.result(finish);
        let _ = run.job.reply.send(Message::Done(Ok(result)));
        if !self.saved.enabled() {
            self.empty(i);
        }
    }

    /// Ends slot `i`'s request with `error`; its sequence is emptied (its state is unknown).
    fn fail(&mut self, i: usize, error: Error) {
        if let Some(run) = self.slots[i].run.take() {
            let _ = run.job.reply.send(Message::Done(Err(error)));
        }
        self.empty(i);
    }

    /// Ends every running request with a backend error.
    fn fail_all(&mut self, what: &str, reason: &str) {
        for i in 0..self.slots.len() {
            if self.slots[i].run.is_some() {
                self.fail(i, backend_err(what, reason));
            }
        }
    }

    /// After a panic: fails the running requests and empties every cache.
    fn reset(&mut self) {
        self.fail_all("generation", "it failed unexpectedly");
        self.ctx.clear_kv_cache();
        for slot in &mut self.slots {
            slot.tokens.clear();
        }
        self.saved.clear();
    }
}

/// One request on a sequence: its prompt, sampler, stop filter, text so far and timings.
struct Run {
    job: Job,
    prompt: Vec<LlamaToken>,
    /// Prompt tokens the cache supplied.
    reused: usize,
    /// The sampled token the next step decodes.
    next: Option<LlamaToken>,
    /// Where this step's batch has this request's logits.
    logits: Option<i32>,
    sampler: Sampling,
    filter: StopFilter,
    utf8: Utf8Stream,
    text: String,
    /// The tokens' log probabilities, when asked for.
    logprobs: Vec<TokenLogprob>,
    generated: u32,
    piece: Vec<u8>,
    start: Instant,
    prompt_seconds: f64,
    gen_start: Option<Instant>,
    decode_seconds: f64,
}

impl Run {
    fn new(job: Job, prompt: Vec<LlamaToken>, sampler: Sampling) -> Self {
        let filter = StopFilter::new(&job.request.params.stop);
        Self {
            job,
            prompt,
            reused: 0,
            next: None,
            logits: None,
            sampler,
            filter,
            utf8: Utf8Stream::default(),
            text: String::new(),
            logprobs: Vec::new(),
            generated: 0,
            piece: Vec::with_capacity(32),
            start: Instant::now(),
            prompt_seconds: 0.0,
            gen_start: None,
            decode_seconds: 0.0,
        }
    }

    fn cancelled(&self) -> bool {
        self.job.cancel.is_cancelled()
    }

    /// Whether prompt tokens remain to be read.
    fn reading(&self) -> bool {
        self.next.is_none() && self.gen_start.is_none()
    }

    /// Records that the step decoded `n` of this request's tokens in `seconds`.
    fn fed(&mut self, tokens: &mut Vec<LlamaToken>, n: usize, seconds: f64) {
        match self.next.take() {
            Some(token) => {
                tokens.push(token);
                self.decode_seconds += seconds;
            }
            None => {
                let from = tokens.len();
                tokens.extend_from_slice(&self.prompt[from..from + n]);
                if tokens.len() == self.prompt.len() {
                    self.prompt_seconds = self.start.elapsed().as_secs_f64();
                    self.gen_start = Some(Instant::now());
                }
            }
        }
    }

    /// Samples the next token from batch position `at` and streams its text; `Some` when
    /// the request is done. `room` is how many more tokens its context holds.
    fn advance(
        &mut self,
        ctx: &LlamaContext<'_>,
        model: &LlamaModel,
        at: i32,
        room: usize,
    ) -> Result<Option<FinishReason>> {
        let token = self.sampler.sample(ctx, at)?;
        let vocab = model.vocab();
        if vocab.is_eog(token) {
            return Ok(Some(FinishReason::Stop));
        }
        self.generated += 1;
        if let Some(top) = self.job.request.params.logprobs {
            let lp = logprob(ctx, model, at, token, usize::from(top));
            self.logprobs.push(lp.clone());
            if self.job.reply.send(Message::Logprob(lp)).is_err() {
                return Ok(Some(FinishReason::Cancelled));
            }
        }
        self.piece.clear();
        vocab.token_to_piece_into(token, &mut self.piece, false, None);
        let mut piece = String::new();
        self.utf8.push(&self.piece, &mut piece);
        let (emit, stop) = match self.filter.push(&piece) {
            Step::Emit(t) => (t, false),
            Step::Stop(t) => (t, true),
        };
        if !emit.is_empty() {
            self.text.push_str(&emit);
            if self.job.reply.send(Message::Text(emit)).is_err() {
                return Ok(Some(FinishReason::Cancelled));
            }
        }
        if stop {
            return Ok(Some(FinishReason::StopSequence));
        }
        if self.generated >= self.job.request.params.max_tokens || room == 0 {
            return Ok(Some(FinishReason::Length));
        }
        self.next = Some(token);
        Ok(None)
    }

    /// The request's result; text held back by the stop filter or the UTF-8 decoder is sent
    /// unless the request stopped at a stop sequence or was cancelled.
    fn result(&mut self, finish: FinishReason) -> (Generation, GenerationTimings) {
        if finish != FinishReason::StopSequence && finish != FinishReason::Cancelled {
            let mut rest = String::new();
            self.utf8.finish(&mut rest);
            let rest = self.filter.finish() + &rest;
            if !rest.is_empty() {
                self.text.push_str(&rest);
                let _ = self.job.reply.send(Message::Text(rest));
            }
        }
        let prompt_tokens = self.prompt.len() as u32;
        let timings = GenerationTimings {
            prompt_tokens: prompt_tokens - self.reused as u32,
            prompt_seconds: self.prompt_seconds,
            generated_tokens: self.generated,
            generation_seconds: self.gen_start.map_or(0.0, |t| t.elapsed().as_secs_f64()),
            decode_seconds: self.decode_seconds,
        };
        let generation = Generation {
            text: Redacted::new(std::mem::take(&mut self.text)),
            prompt_tokens,
            prompt_cached_tokens: self.reused as u32,
            completion_tokens: self.generated,
            elapsed: self.start.elapsed(),
            finish_reason: finish,
            logprobs: std::mem::take(&mut self.logprobs),
        };
        (generation, timings)
    }
}
