//! Token choice (greedy, llama.cpp's sampler chain, BEAR's penalties, JSON-schema grammars)
//! and the text a stream of tokens spells.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;

use bear_core::{GenerationRequest, TokenLogprob};

use crate::error::{Error, Result};
use crate::llama::backend_err;

/// llama.cpp's "pick a random seed" value.
const LLAMA_DEFAULT_SEED: u32 = 0xFFFF_FFFF;

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
pub(crate) struct Sampling {
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
    pub(crate) fn new(request: &GenerationRequest) -> Self {
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

    /// Constrains the output to the request's JSON schema, when it gives one.
    pub(crate) fn constrain(
        &mut self,
        model: &LlamaModel,
        request: &GenerationRequest,
    ) -> Result<()> {
        if let Some(schema) = &request.params.json_schema {
            self.grammar = Some(json_grammar(model, schema)?);
        }
        Ok(())
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
    pub(crate) fn sample(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> Result<LlamaToken> {
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

/// `token`'s log probability under the model at batch position `idx` (its raw logits, before
/// penalties and grammar, as OpenAI reports them), with the `top` most likely tokens there.
pub(crate) fn logprob(
    ctx: &LlamaContext<'_>,
    model: &LlamaModel,
    idx: i32,
    token: LlamaToken,
    top: usize,
) -> TokenLogprob {
    let logits = ctx.get_logits_ith(idx);
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let norm = max + sum.ln() as f32;
    let entry = |t: usize| {
        let mut bytes = Vec::new();
        model
            .vocab()
            .token_to_piece_into(LlamaToken(t as i32), &mut bytes, false, None);
        TokenLogprob {
            token: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
            logprob: logits.get(t).map_or(f32::NEG_INFINITY, |l| l - norm),
            top: Vec::new(),
        }
    };
    let mut order: Vec<usize> = (0..logits.len()).collect();
    let top = top.min(order.len());
    let by_logit = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]);
    if top > 0 && top < order.len() {
        order.select_nth_unstable_by(top - 1, by_logit);
    }
    order.truncate(top);
    order.sort_by(by_logit);
    TokenLogprob {
        top: order.into_iter().map(entry).collect(),
        ..entry(token.0 as usize)
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

/// Turns token bytes into text. A multi-byte character may straddle two tokens, so an
/// incomplete sequence at the end is kept for the next push; invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub(crate) struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut String) {
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

    pub(crate) fn finish(&mut self, out: &mut String) {
        if !self.pending.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use bear_core::{ModelId, Prompt, Redacted};
    use llama_cpp_2::context::params::LlamaContextParams;
    use llama_cpp_2::llama_batch::LlamaBatch;

    use super::*;
    use crate::llama::{LlamaCppGenerator, LlamaOptions, backend};

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
        let tokens = g
            .tokenize_prompt(&Prompt::Text(Redacted::new(prompt.into())))
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
                model: g.id().clone(),
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
                    g.model().n_vocab(),
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
            let mut ctx = g.model().new_context(backend().unwrap(), params).unwrap();
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
