//! Answers with citations: retrieve, fill a prompt within the context budget, generate through
//! the [`TextGenerator`] trait while streaming, cite numbered sources, and restore tokenised PII
//! for the local user. When nothing relevant is found, it says so and generates nothing.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bear_core::{
    CancellationToken, ChatMessage, ChatRole, Embedder, FinishReason, GenerationRequest, ModelId,
    PiiScrubber, Prompt, Redacted, SamplingParams, TextGenerator, TokenSink,
};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::{AnnTuning, Collection, Filter, Hit, SearchMode};

/// The answer given when retrieval finds nothing relevant.
pub const NOTHING_FOUND: &str =
    "I found nothing in this collection that answers the question, so I will not guess.";

const SYSTEM: &str = "You are a careful legal assistant. Answer the question using only the \
numbered sources. After each fact, cite its source number in square brackets, like [1]. If the \
sources do not contain the answer, say that you do not know.";

/// How to answer.
#[derive(Debug, Clone)]
pub struct AskOptions {
    /// The generator's model.
    pub model: ModelId,
    /// Sampling for the answer.
    pub params: SamplingParams,
    /// Sources to retrieve.
    pub k: usize,
    /// The generator's context length in tokens.
    pub context_tokens: usize,
    /// The best vector match must reach this cosine similarity to count as relevant.
    pub min_similarity: f32,
    /// Search filters.
    pub filter: Filter,
}

/// A finished answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The answer, with PII tokens restored.
    pub text: String,
    /// The numbered sources: `sources[i]` is marker `[i + 1]`; texts restored.
    pub sources: Vec<Hit>,
    /// The collection of each source, in the same order.
    pub collections: Vec<String>,
    /// The markers the answer actually uses.
    pub cited: Vec<usize>,
    /// Whether anything relevant was retrieved.
    pub relevant: bool,
    /// Prompt tokens, completion tokens and timing, when the model ran.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Milliseconds from the call to the first streamed piece of the answer.
    pub time_to_first_token_ms: Option<u64>,
    /// Milliseconds for the whole call.
    pub elapsed_ms: u64,
    /// Why generation stopped.
    pub finish_reason: Option<FinishReason>,
}

/// Streams restored text to the caller's sink, holding back a possible partial token.
struct Restoring {
    out: Box<dyn TokenSink>,
    scrubber: Arc<dyn PiiScrubber>,
    buf: String,
    first: Option<Instant>,
}

impl Restoring {
    fn emit(&mut self, upto: usize) -> bool {
        if upto == 0 {
            return true;
        }
        let head: String = self.buf.drain(..upto).collect();
        let restored = self.scrubber.restore(&head).unwrap_or(head);
        self.first.get_or_insert_with(Instant::now);
        self.out.on_text(&restored)
    }

    fn push(&mut self, piece: &str) -> bool {
        self.buf.push_str(piece);
        // Hold back from an unclosed `[` (a token may be arriving), unless it is long.
        let hold = match self.buf.rfind('[') {
            Some(i) if !self.buf[i..].contains(']') && self.buf.len() - i < 64 => i,
            _ => self.buf.len(),
        };
        self.emit(hold)
    }
}

struct SharedSink(Arc<Mutex<Restoring>>);

impl TokenSink for SharedSink {
    fn on_text(&mut self, piece: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(piece)
    }
}

/// The `[n]` markers in `text` that point at one of `n_sources` sources, in order, once each.
pub fn cited_markers(text: &str, n_sources: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('[') {
        rest = &rest[i + 1..];
        let Some(j) = rest.find(']') else { break };
        for part in rest[..j].split(',') {
            if let Ok(n) = part.trim().parse::<usize>()
                && (1..=n_sources).contains(&n)
                && !out.contains(&n)
            {
                out.push(n);
            }
        }
    }
    out
}

/// Answers `question` from `collection`.
#[allow(clippy::too_many_arguments)]
pub async fn ask(
    collection: &Collection,
    embedder: &dyn Embedder,
    scrubber: Arc<dyn PiiScrubber>,
    generator: &dyn TextGenerator,
    question: &str,
    options: &AskOptions,
    sink: Box<dyn TokenSink>,
    cancel: CancellationToken,
) -> Result<Answer> {
    let scope = Scope {
        collection,
        embedder,
        scrubber,
    };
    ask_in(&[scope], generator, question, options, sink, cancel).await
}

/// One collection an answer draws on, with its own embedder and PII scrubber.
pub struct Scope<'a> {
    /// The collection.
    pub collection: &'a Collection,
    /// The embedder its vectors were made with.
    pub embedder: &'a dyn Embedder,
    /// The scrubber of its PII policy.
    pub scrubber: Arc<dyn PiiScrubber>,
}

/// Restores through every scope's scrubber (each puts back only its own tokens); scrubs with
/// the first's.
struct Chained(Vec<Arc<dyn PiiScrubber>>);

impl PiiScrubber for Chained {
    fn scrub(&self, text: &str) -> bear_core::Result<bear_core::ScrubOutcome> {
        self.0[0].scrub(text)
    }

    fn restore(&self, text: &str) -> bear_core::Result<String> {
        self.0
            .iter()
            .try_fold(text.to_string(), |t, s| s.restore(&t))
    }
}

/// What retrieval found in the scopes: whether anything is relevant, and the best `k` hits
/// of all, each with its scope's index.
async fn retrieve(
    scopes: &[Scope<'_>],
    question: &str,
    options: &AskOptions,
) -> Result<(bool, Vec<(usize, Hit)>)> {
    let tuning = AnnTuning::default();
    let mut relevant = false;
    let mut hits = Vec::new();
    for (i, s) in scopes.iter().enumerate() {
        // The question is scrubbed like each collection's documents, so tokenised names match.
        let q = s.scrubber.scrub(question)?.text.expose().clone();
        let qv = s
            .embedder
            .embed(std::slice::from_ref(&q))
            .await?
            .pop()
            .unwrap_or_default();
        let c = s.collection;
        let nearest = c
            .search(
                SearchMode::Vector,
                &q,
                Some(&qv),
                1,
                &options.filter,
                &tuning,
            )
            .await?;
        if !nearest
            .first()
            .is_some_and(|h| h.score >= options.min_similarity)
        {
            continue;
        }
        relevant = true;
        let found = c
            .search(
                SearchMode::Hybrid,
                &q,
                Some(&qv),
                options.k,
                &options.filter,
                &tuning,
            )
            .await?;
        hits.extend(found.into_iter().map(|h| (i, h)));
    }
    hits.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    hits.truncate(options.k);
    Ok((relevant, hits))
}

/// [`ask`] over several collections at once: each is searched with its own embedder and
/// scrubber, the best `k` passages of all become the numbered sources.
pub async fn ask_in(
    scopes: &[Scope<'_>],
    generator: &dyn TextGenerator,
    question: &str,
    options: &AskOptions,
    mut sink: Box<dyn TokenSink>,
    cancel: CancellationToken,
) -> Result<Answer> {
    let started = Instant::now();
    if question.trim().is_empty() {
        return Err(crate::Error::InvalidRequest("the question is empty".into()));
    }
    let Some(first) = scopes.first() else {
        return Err(crate::Error::InvalidRequest("no collection to ask".into()));
    };
    options.params.validate()?;
    let scrubber: Arc<dyn PiiScrubber> = match scopes {
        [one] => one.scrubber.clone(),
        _ => Arc::new(Chained(scopes.iter().map(|s| s.scrubber.clone()).collect())),
    };
    let embedder = first.embedder;
    let q = first.scrubber.scrub(question)?.text.expose().clone();
    let (relevant, hits) = retrieve(scopes, question, options).await?;
    let mut answer = Answer {
        text: String::new(),
        sources: Vec::new(),
        collections: Vec::new(),
        cited: Vec::new(),
        relevant,
        prompt_tokens: 0,
        completion_tokens: 0,
        time_to_first_token_ms: None,
        elapsed_ms: 0,
        finish_reason: None,
    };
    if !relevant {
        sink.on_text(NOTHING_FOUND);
        answer.text = NOTHING_FOUND.into();
        answer.time_to_first_token_ms = Some(started.elapsed().as_millis() as u64);
        answer.elapsed_ms = answer.time_to_first_token_ms.unwrap_or(0);
        return Ok(answer);
    }

    // Fill the prompt within the budget: the context minus the answer and a margin for the
    // instructions and template. Counts come from the embedder's tokenizer, padded by a quarter
    // because the generator's tokenizer differs.
    let fixed = SYSTEM.len() / 3 + q.len() / 3 + 64;
    let budget = options
        .context_tokens
        .saturating_sub(options.params.max_tokens as usize)
        .saturating_sub(fixed);
    let mut used = 0usize;
    let mut sources = Vec::new();
    let mut context = String::new();
    for (scope, h) in hits {
        let cite = citation(&h);
        let block = format!("[{}] {cite}\n{}\n\n", sources.len() + 1, h.text);
        let tokens = embedder.count_tokens(&[block.as_str()])?[0] * 5 / 4;
        if used + tokens > budget {
            if sources.is_empty() {
                continue;
            }
            break;
        }
        used += tokens;
        context.push_str(&block);
        answer
            .collections
            .push(scopes[scope].collection.meta().name.clone());
        sources.push(h);
    }
    let user = format!("Sources:\n\n{context}Question: {q}\nAnswer:");
    let request = GenerationRequest {
        model: options.model.clone(),
        prompt: Prompt::Chat(vec![
            ChatMessage {
                role: ChatRole::System,
                content: Redacted::new(SYSTEM.into()),
            },
            ChatMessage {
                role: ChatRole::User,
                content: Redacted::new(user),
            },
        ]),
        params: options.params.clone(),
    };
    let state = Arc::new(Mutex::new(Restoring {
        out: sink,
        scrubber: scrubber.clone(),
        buf: String::new(),
        first: None,
    }));
    let generation = generator
        .generate(request, Box::new(SharedSink(state.clone())), cancel)
        .await?;
    let first = {
        let mut s = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = s.buf.len();
        s.emit(n);
        s.first
    };
    let restored = scrubber.restore(generation.text.expose())?;
    answer.cited = cited_markers(&restored, sources.len());
    answer.text = restored;
    answer.sources = sources
        .into_iter()
        .map(|mut h| {
            h.text = scrubber.restore(&h.text).unwrap_or(h.text);
            h
        })
        .collect();
    answer.prompt_tokens = generation.prompt_tokens;
    answer.completion_tokens = generation.completion_tokens;
    answer.finish_reason = Some(generation.finish_reason);
    answer.time_to_first_token_ms =
        first.map(|t| t.saturating_duration_since(started).as_millis() as u64);
    answer.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(answer)
}

/// `title (path), p. N` for a hit.
pub fn citation(h: &Hit) -> String {
    let name = std::path::Path::new(&h.path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| h.path.clone());
    match h.page {
        Some(p) => format!("{} ({name}), p. {p}", h.title),
        None => format!("{} ({name})", h.title),
    }
}

#[cfg(test)]
mod tests {
    use super::cited_markers;

    #[test]
    fn markers() {
        assert_eq!(
            cited_markers("Rent is due [2]. See [1, 2] and [9].", 3),
            vec![2, 1]
        );
        assert_eq!(
            cited_markers("[PERSON_abc] said [x]", 3),
            Vec::<usize>::new()
        );
        assert_eq!(cited_markers("unclosed [1", 3), Vec::<usize>::new());
    }
}
