//! Answers with citations: retrieve, fill a prompt within the context budget, generate through
//! the [`TextGenerator`] trait while streaming, cite numbered sources, and restore tokenised PII
//! for the local user. When nothing relevant is found, it says so and generates nothing.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bear_core::{
    CancellationToken, Embedder, FinishReason, GenerationRequest, ModelId, PiiScrubber, Prompt,
    SamplingParams, TextGenerator, TokenSink,
};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::{AnnTuning, Collection, Filter, Hit, SearchMode};
use crate::verify::{self, Check};

/// The answer given when retrieval finds nothing relevant.
pub const NOTHING_FOUND: &str =
    "I found nothing in this collection that answers the question, so I will not guess.";

/// The answer given when the passages found do not use the question's key terms.
pub const NO_KEY_TERMS: &str = "Not found in the documents: the passages closest to the question \
do not mention what it asks about, so I will not guess. The closest sources are listed for you \
to read.";

/// The answer given in strict mode when no statement of the model's answer could be verified
/// (or none that was verified speaks to the question).
pub const NOT_VERIFIED: &str = "Not found in the documents: no statement of the answer could be \
verified against the sources, so none is given. The closest sources are listed for you to read.";

/// Why an answer is a refusal rather than the model's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No passage reached the similarity threshold; the model was not asked.
    NothingRelevant,
    /// The passages found do not hold the question's key terms; the model was not asked.
    KeyTermsMissing,
    /// Strict mode: no sentence of the model's answer had a verified citation, or those that
    /// had one do not speak to the question (they hold under half of its key terms).
    NothingVerified,
}

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
    /// Drop every sentence without a verified citation (see [`crate::verify`]).
    pub strict: bool,
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
    /// Each citation checked against its source: one per marker of each sentence, plus the
    /// ones BEAR added to sentences that cited nothing. Byte ranges are in `text` (sentences)
    /// and in the source's restored text (spans).
    pub checks: Vec<Check>,
    /// Sentences strict mode removed for want of a verified citation.
    pub removed: usize,
    /// Without strict mode: the byte ranges in `text` of the sentences that cite nothing and
    /// that no source supports (a sentence whose own citation fails is in `checks`).
    pub unsupported: Vec<(usize, usize)>,
    /// Why the answer is a refusal, when it is one.
    pub refusal: Option<Refusal>,
    /// Microseconds spent checking: the key terms and every sentence's citations.
    pub verification_us: u64,
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

/// Restores PII tokens in the generated text, holding back a possible partial token, and
/// passes the restored text to the [`Gate`].
struct Restoring {
    out: Gate,
    scrubber: Arc<dyn PiiScrubber>,
    buf: String,
}

impl Restoring {
    fn emit(&mut self, upto: usize) -> bool {
        if upto == 0 {
            return true;
        }
        let head: String = self.buf.drain(..upto).collect();
        let restored = self.scrubber.restore(&head).unwrap_or(head);
        self.out.push(&restored)
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

/// Checks the restored answer a sentence at a time, as each is complete, against the restored
/// sources ([`verify::check_sentence`]): a sentence given a citation by BEAR gets its marker
/// appended; in strict mode one with no verified citation is dropped. What passes goes on to
/// the caller's sink, so the stream is the answer.
struct Gate {
    out: Box<dyn TokenSink>,
    sources: Vec<String>,
    strict: bool,
    /// The question, for strict mode's last check: the kept text must hold at least half of
    /// its key terms ([`verify::shares_key_terms`]); until it does, nothing is passed on.
    question: String,
    /// The question's key terms, which a sentence may repeat without them counting as claims.
    topic: Vec<String>,
    /// Whether the kept text answers the question (always, without strict mode).
    on_topic: bool,
    /// Sentences kept so far.
    kept: usize,
    pending: String,
    text: String,
    checks: Vec<Check>,
    removed: usize,
    unsupported: Vec<(usize, usize)>,
    first: Option<Instant>,
    go_on: bool,
    /// Time spent checking.
    spent: std::time::Duration,
}

impl Gate {
    fn new(out: Box<dyn TokenSink>, sources: Vec<String>, strict: bool, question: &str) -> Self {
        Self {
            out,
            sources,
            strict,
            question: question.to_string(),
            topic: verify::key_terms(question),
            on_topic: !strict,
            kept: 0,
            pending: String::new(),
            text: String::new(),
            checks: Vec::new(),
            removed: 0,
            unsupported: Vec::new(),
            first: None,
            go_on: true,
            spent: std::time::Duration::ZERO,
        }
    }

    /// Takes more text; passes on the sentences it completes (all but the last, unless the
    /// last is only markers still arriving).
    fn push(&mut self, piece: &str) -> bool {
        self.pending.push_str(piece);
        let parts = verify::sentences(&self.pending);
        match parts.last() {
            Some(&(last, _))
                if parts.len() >= 2 && !self.pending[last..].trim_start().starts_with('[') =>
            {
                let done: String = self.pending.drain(..last).collect();
                self.pass(&done)
            }
            _ => self.go_on,
        }
    }

    /// Passes on what is still pending: the end of the answer.
    fn finish(&mut self) {
        let rest = std::mem::take(&mut self.pending);
        self.pass(&rest);
    }

    fn pass(&mut self, text: &str) -> bool {
        let sources: Vec<&str> = self.sources.iter().map(String::as_str).collect();
        for (s, e) in verify::sentences(text) {
            let mut sentence = text[s..e].to_string();
            if self.text.is_empty() {
                sentence = sentence.trim_start().to_string();
            }
            let offset = self.text.len();
            let started = Instant::now();
            let mut checks = verify::check_sentence(&sentence, offset, &sources, &self.topic);
            self.spent += started.elapsed();
            if !checks.iter().any(|c| c.verified) {
                if self.strict {
                    self.removed += 1;
                    continue;
                }
                if checks.is_empty() {
                    self.unsupported.push((offset, offset + sentence.len()));
                }
            }
            if let Some(c) = checks.iter_mut().find(|c| c.added) {
                let body = sentence.trim_end().len();
                sentence.insert_str(body, &format!(" [{}]", c.source));
                c.sentence.1 = offset + body + format!(" [{}]", c.source).len();
            }
            self.text.push_str(&sentence);
            self.checks.extend(checks);
            self.kept += 1;
            if self.on_topic {
                self.first.get_or_insert_with(Instant::now);
                self.go_on = self.go_on && self.out.on_text(&sentence);
            } else if verify::shares_key_terms(&self.question, &[&self.text]) {
                // The first sentence on the question's terms releases what was held back.
                self.on_topic = true;
                self.first.get_or_insert_with(Instant::now);
                self.go_on = self.go_on && self.out.on_text(&self.text);
            }
        }
        self.go_on
    }

    fn emit(&mut self, text: &str) {
        self.first.get_or_insert_with(Instant::now);
        self.go_on = self.go_on && self.out.on_text(text);
    }
}

/// A whole text checked against numbered sources: what [`check_text`] returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checked {
    /// The text kept (in strict mode, only sentences with a verified citation), with the
    /// markers BEAR added.
    pub text: String,
    /// Each citation checked; byte ranges in `text` and in the source's text.
    pub checks: Vec<Check>,
    /// Sentences strict mode removed.
    pub removed: usize,
    /// Without strict mode: sentences that cite nothing and that no source supports.
    pub unsupported: Vec<(usize, usize)>,
    /// Microseconds spent checking.
    pub verification_us: u64,
}

/// Checks `text` (already restored) a sentence at a time against `sources` (`sources[i]` is
/// marker `[i + 1]`), as an answer is checked, but with no question: every sentence is on
/// the topic, and every line ends a statement (a review's lists are one item per line). A
/// review's result passes through this.
pub fn check_text(text: &str, sources: Vec<String>, strict: bool) -> Checked {
    let mut gate = Gate::new(Box::new(|_: &str| true), sources, strict, "");
    gate.on_topic = true;
    for line in text.split_inclusive('\n') {
        gate.pass(line);
    }
    Checked {
        text: gate.text,
        checks: gate.checks,
        removed: gate.removed,
        unsupported: gate.unsupported,
        verification_us: gate.spent.as_micros() as u64,
    }
}

/// The `[n]` markers in `text` that point at one of `n_sources` sources, in order, once each.
pub fn cited_markers(text: &str, n_sources: usize) -> Vec<usize> {
    let mut out = verify::markers(text);
    out.retain(|n| (1..=n_sources).contains(n));
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
        let restore = |t: &str| Ok(s.scrubber.restore(t)?);
        let filter = c.resolve(&options.filter, &restore).await?;
        let nearest = c
            .search(SearchMode::Vector, &q, Some(&qv), 1, &filter, &tuning)
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
                &filter,
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
        checks: Vec::new(),
        removed: 0,
        unsupported: Vec::new(),
        refusal: None,
        verification_us: 0,
        relevant,
        prompt_tokens: 0,
        completion_tokens: 0,
        time_to_first_token_ms: None,
        elapsed_ms: 0,
        finish_reason: None,
    };
    if !relevant {
        return Ok(refuse(
            answer,
            Refusal::NothingRelevant,
            sink.as_mut(),
            started,
        ));
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
    let texts: Vec<&str> = sources.iter().map(|h: &Hit| h.text.as_str()).collect();
    let checking = Instant::now();
    let shared = verify::shares_key_terms(&q, &texts);
    answer.verification_us = checking.elapsed().as_micros() as u64;
    if !shared {
        answer.relevant = false;
        answer.sources = restored(sources, scrubber.as_ref());
        return Ok(refuse(
            answer,
            Refusal::KeyTermsMissing,
            sink.as_mut(),
            started,
        ));
    }
    let user = format!("Sources:\n\n{context}Question: {q}\nAnswer:");
    let request = GenerationRequest {
        model: options.model.clone(),
        prompt: Prompt::system_and_user(SYSTEM.into(), user),
        params: options.params.clone(),
    };
    answer.sources = restored(sources, scrubber.as_ref());
    let texts = answer.sources.iter().map(|h| h.text.clone()).collect();
    let state = Arc::new(Mutex::new(Restoring {
        out: Gate::new(sink, texts, options.strict, question),
        scrubber: scrubber.clone(),
        buf: String::new(),
    }));
    let generation = generator
        .generate(request, Box::new(SharedSink(state.clone())), cancel)
        .await?;
    let mut gate = {
        let mut s = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = s.buf.len();
        s.emit(n);
        s.out.finish();
        let idle = Gate::new(Box::new(|_: &str| true), Vec::new(), false, "");
        std::mem::replace(&mut s.out, idle)
    };
    if options.strict && !gate.on_topic {
        // Nothing verified, or nothing verified that speaks to the question: nothing was
        // passed on, and the refusal is the whole answer.
        answer.refusal = Some(Refusal::NothingVerified);
        gate.removed += gate.kept;
        gate.checks.clear();
        gate.text = NOT_VERIFIED.into();
        gate.emit(NOT_VERIFIED);
    }
    let first = gate.first;
    answer.cited = cited_markers(&gate.text, answer.sources.len());
    answer.text = gate.text;
    answer.checks = gate.checks;
    answer.removed = gate.removed;
    answer.unsupported = gate.unsupported;
    answer.verification_us += gate.spent.as_micros() as u64;
    answer.prompt_tokens = generation.prompt_tokens;
    answer.completion_tokens = generation.completion_tokens;
    answer.finish_reason = Some(generation.finish_reason);
    answer.time_to_first_token_ms =
        first.map(|t| t.saturating_duration_since(started).as_millis() as u64);
    answer.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(answer)
}

/// The hits with their text and title restored for the local user.
fn restored(hits: Vec<Hit>, scrubber: &dyn PiiScrubber) -> Vec<Hit> {
    hits.into_iter()
        .map(|mut h| {
            h.text = scrubber.restore(&h.text).unwrap_or(h.text);
            h.title = scrubber.restore(&h.title).unwrap_or(h.title);
            h
        })
        .collect()
}

/// `answer` as the refusal `why`, its text streamed to `sink`; the model is not asked.
fn refuse(mut answer: Answer, why: Refusal, sink: &mut dyn TokenSink, started: Instant) -> Answer {
    let text = match why {
        Refusal::NothingRelevant => NOTHING_FOUND,
        Refusal::KeyTermsMissing => NO_KEY_TERMS,
        Refusal::NothingVerified => NOT_VERIFIED,
    };
    sink.on_text(text);
    answer.text = text.into();
    answer.refusal = Some(why);
    answer.time_to_first_token_ms = Some(started.elapsed().as_millis() as u64);
    answer.elapsed_ms = answer.time_to_first_token_ms.unwrap_or(0);
    answer
}

/// `title (path), p. N` for a hit.
pub fn citation(h: &Hit) -> String {
    let parts: Vec<&str> = h.path.split('/').filter(|p| !p.is_empty()).collect();
    let name = match parts.len() {
        0 => h.path.clone(),
        n => place(&parts[..n]),
    };
    let low = match h.ocr_confidence {
        Some(c) if c < bear_core::LOW_OCR_CONFIDENCE => " (OCR, low confidence)",
        _ => "",
    };
    match h.page {
        Some(p) => format!("{} ({name}), p. {p}{low}", h.title),
        None => format!("{} ({name}){low}", h.title),
    }
}

/// How the last of `parts` (a document's path) is named in a citation: its file name, or,
/// for a part of an e-mail, where in the e-mail it sits ("fees.xlsx, attachment 1 of message 3
/// of thread.mbox").
fn place(parts: &[&str]) -> String {
    let n = parts.len();
    let number = |p: &str, prefix: &str| {
        p.strip_prefix(prefix)
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string)
    };
    let is_mail = |p: &str| {
        number(p, "message-").is_some()
            || [".eml", ".msg", ".mbox", ".mbx"]
                .iter()
                .any(|e| p.to_ascii_lowercase().ends_with(e))
    };
    let last = parts[n - 1];
    if n >= 2
        && is_mail(parts[n - 2])
        && let Some(m) = number(last, "message-")
    {
        return format!("message {m} of {}", parts[n - 2]);
    }
    if n >= 3
        && is_mail(parts[n - 3])
        && let Some(a) = number(parts[n - 2], "attachment-")
    {
        return format!("{last}, attachment {a} of {}", place(&parts[..n - 2]));
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::{Gate, check_text, cited_markers};
    use std::sync::{Arc, Mutex};

    const LEASE: &str = "The rent is EUR 4,250 per month, excluding VAT. The Landlord is \
Canal Estates B.V. and the Tenant is Brightwater Legal LLP.";

    /// A gate over `LEASE`, fed `pieces`; returns it and what reached the sink.
    fn gate(strict: bool, question: &str, pieces: &[&str]) -> (Gate, String) {
        let seen = Arc::new(Mutex::new(String::new()));
        let s2 = seen.clone();
        let sink = Box::new(move |p: &str| {
            s2.lock().unwrap().push_str(p);
            true
        });
        let mut g = Gate::new(sink, vec![LEASE.to_string()], strict, question);
        for p in pieces {
            g.push(p);
        }
        g.finish();
        let out = seen.lock().unwrap().clone();
        (g, out)
    }

    #[test]
    fn strict_gate_holds_off_topic_sentences_until_one_answers_the_question() {
        let pieces = [
            "The Landlord is Canal Estates B.V. [1]",
            " The rent is EUR 9,999 per month",
            " [1]. The rent is EUR 4,250",
            " per month, excluding VAT.",
        ];
        let (g, out) = gate(true, "What is the monthly rent?", &pieces);
        assert!(g.on_topic);
        assert_eq!(g.removed, 1, "the wrong amount is dropped");
        assert_eq!(out, g.text, "the stream is the answer");
        assert!(out.starts_with("The Landlord is Canal Estates B.V. [1]"));
        assert!(out.ends_with("per month, excluding VAT. [1]"), "{out}");
        assert!(!out.contains("9,999"));
        let added: Vec<_> = g.checks.iter().filter(|c| c.added).collect();
        assert_eq!(added.len(), 1);
        assert!(g.text[added[0].sentence.0..added[0].sentence.1].ends_with("[1]"));

        // Verified but beside the question: nothing is passed on.
        let (g, out) = gate(
            true,
            "Which court hears disputes about the deposit?",
            &pieces[..1],
        );
        assert!(!g.on_topic && out.is_empty() && g.kept == 1);

        // Without strict mode everything passes, the wrong amount listed as checked and failed.
        let (g, out) = gate(false, "What is the monthly rent?", &pieces);
        assert_eq!((g.removed, out.contains("9,999")), (0, true));
        assert!(g.checks.iter().any(|c| !c.verified));
    }

    #[test]
    fn a_whole_text_is_checked_without_a_question() {
        let text = "1. The rent is EUR 4,250 per month [1].\nThe Tenant is Acme Ltd [1]\n\
                    The Landlord is Canal Estates B.V.";
        let c = check_text(text, vec![LEASE.to_string()], true);
        assert_eq!(c.removed, 1, "the wrong tenant is dropped: {}", c.text);
        assert!(c.text.contains("4,250") && !c.text.contains("Acme"));
        assert!(c.text.trim_end().ends_with("B.V. [1]"), "{}", c.text);
        assert_eq!(c.checks.iter().filter(|k| k.verified).count(), 2);
        assert!(c.checks.iter().any(|k| k.added));

        let c = check_text(text, vec![LEASE.to_string()], false);
        assert_eq!(c.removed, 0);
        assert!(c.text.contains("Acme"));
        assert!(c.checks.iter().any(|k| !k.verified));
        assert!(
            check_text("", vec![LEASE.to_string()], true)
                .text
                .is_empty()
        );
    }

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

    #[test]
    fn citations_say_when_a_page_was_read_by_ocr_with_low_confidence() {
        let mut h = crate::Hit {
            chunk_id: "d-000001".into(),
            document_id: "d".into(),
            path: "/m/scan.pdf".into(),
            title: "Lease".into(),
            page: Some(2),
            ordinal: 1,
            byte_range: (0, 10),
            char_range: (0, 10),
            text: "rent".into(),
            ocr_confidence: Some(42.0),
            score: 1.0,
        };
        assert_eq!(
            super::citation(&h),
            "Lease (scan.pdf), p. 2 (OCR, low confidence)"
        );
        h.ocr_confidence = Some(91.0);
        assert_eq!(super::citation(&h), "Lease (scan.pdf), p. 2");
        h.ocr_confidence = None;
        assert_eq!(super::citation(&h), "Lease (scan.pdf), p. 2");
    }

    #[test]
    fn a_part_of_an_e_mail_is_cited_by_its_place_in_the_message() {
        let cite = |path: &str| {
            let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            super::place(&parts)
        };
        assert_eq!(cite("/m/thread.mbox/message-3"), "message 3 of thread.mbox");
        assert_eq!(
            cite("/m/thread.mbox/message-3/attachment-1/fees.xlsx"),
            "fees.xlsx, attachment 1 of message 3 of thread.mbox"
        );
        assert_eq!(
            cite("/m/schedule.eml/attachment-2/message.eml/attachment-1/penalty-note.txt"),
            "penalty-note.txt, attachment 1 of message.eml, attachment 2 of schedule.eml"
        );
        // A folder named like a part, not below an e-mail, is just a folder.
        assert_eq!(cite("/m/attachment-1/lease.pdf"), "lease.pdf");
        assert_eq!(cite("/m/bundle.zip/exhibits/lease.pdf"), "lease.pdf");
        assert_eq!(cite("/m/schedule.eml"), "schedule.eml");
    }
}
