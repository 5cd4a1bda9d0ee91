//! Sequence states kept in host memory between requests (the second level of the prompt
//! cache; the first is the KV cache of the model's free sequences).
//!
//! A sequence about to be overwritten by an unrelated prompt is saved here first, with the
//! tokens its state holds; a later prompt sharing a longer prefix with a saved state than with
//! any sequence restores it instead of decoding that prefix again. States are evicted least
//! recently used beyond `models.prompt_cache_bytes`. Nothing here is ever written to disk.

use llama_cpp_2::context::session::SeqState;
use llama_cpp_2::token::LlamaToken;

/// A shorter shared prefix is not worth restoring or copying a sequence for.
pub(crate) const MIN_REUSE: usize = 16;

/// How many leading tokens `a` and `b` share.
pub(crate) fn shared(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// One saved sequence.
struct Saved {
    tokens: Vec<LlamaToken>,
    state: SeqState,
    used: u64,
}

/// Saved sequence states within a byte limit.
pub(crate) struct PromptCache {
    entries: Vec<Saved>,
    capacity: u64,
}

impl PromptCache {
    /// An empty cache holding at most `capacity` bytes of states.
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            entries: Vec::new(),
            capacity,
        }
    }

    /// Whether states are kept at all.
    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The saved state sharing the longest prefix with `prompt`: (shared tokens, index).
    pub(crate) fn best(&self, prompt: &[LlamaToken]) -> Option<(usize, usize)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (shared(&e.tokens, prompt), i))
            .max()
    }

    /// Entry `i`'s tokens and state, marked used at `now`.
    pub(crate) fn get(&mut self, i: usize, now: u64) -> (&[LlamaToken], &SeqState) {
        let e = &mut self.entries[i];
        e.used = now;
        (&e.tokens, &e.state)
    }

    /// Keeps `state` (holding `tokens`), dropping the entries it supersedes (a prefix of
    /// `tokens`) and then the least recently used beyond the capacity. A state larger than
    /// the whole capacity is not kept.
    pub(crate) fn insert(&mut self, tokens: Vec<LlamaToken>, state: SeqState, now: u64) {
        if state.byte_len() as u64 > self.capacity {
            return;
        }
        self.entries
            .retain(|e| shared(&e.tokens, &tokens) < e.tokens.len());
        self.entries.push(Saved {
            tokens,
            state,
            used: now,
        });
        while self.bytes() > self.capacity {
            let oldest = (0..self.entries.len()).min_by_key(|&i| self.entries[i].used);
            if let Some(i) = oldest {
                self.entries.swap_remove(i);
            }
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.state.byte_len() as u64).sum()
    }

    /// Drops everything (after a failure left the context in an unknown state).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}
