//! Search and ask: one request and one response type each, the `k` limits, the defaults, the
//! date filters and the restoring of PII tokens, for every front end.

use bear_core::{CancellationToken, ModelId, SamplingParams, TokenSink};
use bear_rag::{Filter, SearchMode};
use serde::{Deserialize, Serialize};

use crate::generate::Sampling;
use crate::{App, Error, Result, Viewer};

/// The most hits one search returns.
pub const MAX_SEARCH_K: usize = 100;
/// The most sources one answer is built from (they must also fit the model's context).
pub const MAX_ASK_K: usize = 50;
/// The most generated tokens an answer may ask for.
pub const MAX_ANSWER_TOKENS: u32 = 4096;

/// How a search ranks chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Vector and full-text results fused by reciprocal rank.
    #[default]
    Hybrid,
    /// Nearest vectors by cosine (through the ANN index once one is built).
    Vector,
    /// Nearest vectors by cosine, every vector compared.
    Exact,
    /// BM25 over the full-text index.
    Fulltext,
}

impl From<Mode> for SearchMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Hybrid => Self::Hybrid,
            Mode::Vector => Self::Vector,
            Mode::Exact => Self::Exact,
            Mode::Fulltext => Self::FullText,
        }
    }
}

/// Which e-mail messages a search or question keeps (with their attachments): every field
/// given must match. Sender, recipient and subject match text in the field as the message
/// has it, case ignored (under the `tokenize` PII policy, addresses too).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailQuery {
    /// Text in the sender.
    #[serde(default)]
    pub from: Option<String>,
    /// Text in the recipients (To or Cc).
    #[serde(default)]
    pub to: Option<String>,
    /// Text in the subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// Sent on or after this day (`YYYY-MM-DD`, UTC).
    #[serde(default)]
    pub sent_after: Option<String>,
    /// Sent on or before this day (`YYYY-MM-DD`, UTC).
    #[serde(default)]
    pub sent_before: Option<String>,
    /// Only the thread of this message (its document id): the messages linked to it by
    /// In-Reply-To, either way, and their attachments.
    #[serde(default)]
    pub thread: Option<String>,
}

impl MailQuery {
    fn filter(&self) -> Result<Option<bear_rag::MailFilter>> {
        if *self == Self::default() {
            return Ok(None);
        }
        let text = |v: &Option<String>, field: &str| match v {
            Some(t) if t.trim().is_empty() => Err(Error::invalid(field, "is empty")),
            other => Ok(other.clone()),
        };
        Ok(Some(bear_rag::MailFilter {
            from: text(&self.from, "mail.from")?,
            to: text(&self.to, "mail.to")?,
            subject: text(&self.subject, "mail.subject")?,
            sent_after: self
                .sent_after
                .as_deref()
                .map(|d| day(d, "mail.sent_after", false))
                .transpose()?,
            sent_before: self
                .sent_before
                .as_deref()
                .map(|d| day(d, "mail.sent_before", true))
                .transpose()?,
            thread: text(&self.thread, "mail.thread")?,
        }))
    }
}

/// The search filter from a request's `document`, `after`, `before` and `mail` fields.
fn filter(
    document: &Option<String>,
    after: &Option<String>,
    before: &Option<String>,
    mail: &Option<MailQuery>,
) -> Result<Filter> {
    Ok(Filter {
        mail: mail.as_ref().map(MailQuery::filter).transpose()?.flatten(),
        within: None,
        document: document.clone(),
        modified_after: after
            .as_deref()
            .map(|d| day(d, "after", false))
            .transpose()?,
        modified_before: before
            .as_deref()
            .map(|d| day(d, "before", true))
            .transpose()?,
    })
}

/// `YYYY-MM-DD` to Unix seconds at the start (or the end) of that day, UTC.
fn day(s: &str, field: &str, end: bool) -> Result<i64> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| Error::invalid(field, "expected a date as YYYY-MM-DD"))?;
    let t = if end {
        d.and_hms_opt(23, 59, 59)
    } else {
        d.and_hms_opt(0, 0, 0)
    };
    Ok(t.map_or(0, |t| t.and_utc().timestamp()))
}

/// The collections a question is asked of: `collections` (1 to 10, each once), or the one
/// `collection` (`None`: the default one).
fn asked_collections(req: &AskRequest) -> Result<Vec<Option<String>>> {
    let Some(list) = &req.collections else {
        return Ok(vec![req.collection.clone()]);
    };
    if req.collection.is_some() {
        return Err(Error::invalid(
            "collections",
            "give `collection` or `collections`, not both",
        ));
    }
    let mut names: Vec<Option<String>> = Vec::new();
    for n in list {
        if !names.iter().any(|m| m.as_deref() == Some(n.as_str())) {
            names.push(Some(n.clone()));
        }
    }
    if !(1..=10).contains(&names.len()) {
        return Err(Error::invalid("collections", "from 1 to 10 collections"));
    }
    Ok(names)
}

fn check_k(k: Option<usize>, default: usize, max: usize) -> Result<usize> {
    let k = k.unwrap_or(default);
    if (1..=max).contains(&k) {
        Ok(k)
    } else {
        Err(Error::invalid("k", format!("from 1 to {max}")))
    }
}

/// A search in one collection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// What to look for.
    pub query: String,
    /// Hits to return, 1 to 100 [default: `rag.top_k`].
    #[serde(default)]
    pub k: Option<usize>,
    /// How to rank [default: hybrid].
    #[serde(default)]
    pub mode: Option<Mode>,
    /// The collection [default: `rag.default_collection`].
    #[serde(default)]
    pub collection: Option<String>,
    /// Only this document (its 32-hex-digit id).
    #[serde(default)]
    pub document: Option<String>,
    /// Only files modified on or after this day (`YYYY-MM-DD`, UTC).
    #[serde(default)]
    pub after: Option<String>,
    /// Only files modified on or before this day (`YYYY-MM-DD`, UTC).
    #[serde(default)]
    pub before: Option<String>,
    /// Only these e-mail messages and their attachments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<MailQuery>,
}

/// One chunk found, its text restored (PII tokens back to the originals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchHit {
    /// The chunk.
    pub chunk_id: String,
    /// Its document.
    pub document_id: String,
    /// The document's path.
    pub path: String,
    /// The document's title.
    pub title: String,
    /// 1-based page, for paged formats.
    pub page: Option<u32>,
    /// The chunk's position in its document.
    pub ordinal: u32,
    /// Byte range in the extracted text.
    pub byte_range: [u64; 2],
    /// Character range in the extracted text.
    pub char_range: [u64; 2],
    /// `title, p. N` or `title`: how the chunk is cited (`(OCR, low confidence)` after it
    /// when its page was read by OCR with a mean confidence under 60).
    pub citation: String,
    /// The OCR confidence (0-100) of its page, when the page was read by OCR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr_confidence: Option<f32>,
    /// The chunk's text, restored.
    pub text: String,
    /// Higher is better: cosine (vector, exact), BM25 (fulltext) or fused RRF (hybrid).
    pub score: f32,
}

impl SearchHit {
    fn of(h: bear_rag::Hit, text: String) -> Self {
        Self {
            citation: bear_rag::answer::citation(&h),
            chunk_id: h.chunk_id,
            document_id: h.document_id,
            path: h.path,
            title: h.title,
            page: h.page,
            ordinal: h.ordinal,
            byte_range: [h.byte_range.0, h.byte_range.1],
            char_range: [h.char_range.0, h.char_range.1],
            ocr_confidence: h.ocr_confidence,
            text,
            score: h.score,
        }
    }
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResponse {
    /// The collection searched.
    pub collection: String,
    /// How it was ranked.
    pub mode: Mode,
    /// Best first.
    pub hits: Vec<SearchHit>,
}

/// A question answered from one collection's documents, with numbered sources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// The question.
    pub question: String,
    /// Sources to retrieve, 1 to 50 [default: `rag.top_k`].
    #[serde(default)]
    pub k: Option<usize>,
    /// The generator [default: `models.default_generator`].
    #[serde(default)]
    pub model: Option<String>,
    /// The collection [default: `rag.default_collection`].
    #[serde(default)]
    pub collection: Option<String>,
    /// Several collections at once (1 to 10), instead of `collection`: each is searched and
    /// the best `k` passages of all become the sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections: Option<Vec<String>>,
    /// Only this document (its 32-hex-digit id).
    #[serde(default)]
    pub document: Option<String>,
    /// Only files modified on or after this day (`YYYY-MM-DD`, UTC).
    #[serde(default)]
    pub after: Option<String>,
    /// Only files modified on or before this day (`YYYY-MM-DD`, UTC).
    #[serde(default)]
    pub before: Option<String>,
    /// Only these e-mail messages and their attachments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<MailQuery>,
    /// Most tokens to generate, 1 to 4096 [default for answers: 256].
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// 0 is greedy [default for answers: 0].
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass in (0, 1] [default: 0.95].
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Keep the k most likely tokens; 0 disables [default: 40].
    #[serde(default)]
    pub top_k: Option<u32>,
    /// Repetition penalty; 1 disables [default: 1.1].
    #[serde(default)]
    pub repeat_penalty: Option<f32>,
    /// Seed for reproducible sampling.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Stop before any of these texts; they never appear in the answer.
    #[serde(default)]
    pub stop_sequences: Vec<String>,
    /// REST: answer with server-sent events (`token` events, then one `done`).
    #[serde(default)]
    pub stream: bool,
    /// Keep only sentences whose citation is verified against its source; an answer left
    /// with none becomes "not found in the documents" [default: true].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// One numbered source of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Source {
    /// The marker the answer cites it by: `[marker]`.
    pub marker: usize,
    /// Whether the answer cites it.
    pub cited: bool,
    /// Whether at least one citation of it is verified.
    #[serde(default)]
    pub verified: bool,
    /// The collection it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// The chunk, its text restored.
    #[serde(flatten)]
    pub hit: SearchHit,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model ended its answer.
    Stop,
    /// A stop sequence matched.
    StopSequence,
    /// `max_tokens` was reached.
    Length,
    /// The caller went away or cancelled.
    Cancelled,
}

impl From<bear_core::FinishReason> for Finish {
    fn from(f: bear_core::FinishReason) -> Self {
        match f {
            bear_core::FinishReason::Length => Self::Length,
            bear_core::FinishReason::Cancelled => Self::Cancelled,
            bear_core::FinishReason::StopSequence => Self::StopSequence,
            bear_core::FinishReason::Stop => Self::Stop,
        }
    }
}

/// One citation of an answer, checked against its source by the rules of
/// [`bear_rag::verify`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Citation {
    /// The source it names: `[marker]`.
    pub marker: usize,
    /// The citing sentence's byte range in the answer.
    pub sentence: [usize; 2],
    /// Whether the source supports the sentence.
    pub verified: bool,
    /// The model cited nothing in this sentence; BEAR found this source supporting it and
    /// appended the marker.
    pub added: bool,
    /// Where the source supports it, when verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
    /// Why it is not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The passage of a source that supports a sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Span {
    /// The document.
    pub document_id: String,
    /// Its 1-based page, for paged formats.
    pub page: Option<u32>,
    /// The passage.
    pub text: String,
    /// Byte range in the source's text.
    pub source_bytes: [usize; 2],
    /// Character range in the source's text.
    pub source_chars: [usize; 2],
    /// Byte range in the document's extracted text (absent when the stored chunk is not the
    /// extracted text as it was, under the `redact` policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_bytes: Option<[u64; 2]>,
    /// Character range in the document's extracted text (absent as `document_bytes` is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_chars: Option<[u64; 2]>,
}

impl Span {
    fn of(hit: &bear_rag::Hit, (s, e): (usize, usize)) -> Self {
        let chars = |b: usize| hit.text[..b].chars().count();
        let (cs, ce) = (chars(s), chars(e));
        // Document offsets hold while the chunk's text is the extracted text, byte for byte.
        let whole = (hit.byte_range.1 - hit.byte_range.0) as usize == hit.text.len();
        Self {
            document_id: hit.document_id.clone(),
            page: hit.page,
            text: hit.text[s..e].to_string(),
            source_bytes: [s, e],
            source_chars: [cs, ce],
            document_bytes: whole
                .then(|| [hit.byte_range.0 + s as u64, hit.byte_range.0 + e as u64]),
            document_chars: whole
                .then(|| [hit.char_range.0 + cs as u64, hit.char_range.0 + ce as u64]),
        }
    }
}

/// `checks` as citations, each verified one with its span in `sources` (marker `[i + 1]` is
/// `sources[i]`).
pub(crate) fn citations(
    checks: &[bear_rag::verify::Check],
    sources: &[bear_rag::Hit],
) -> Vec<Citation> {
    checks
        .iter()
        .map(|c| Citation {
            marker: c.source,
            sentence: [c.sentence.0, c.sentence.1],
            verified: c.verified,
            added: c.added,
            span: c
                .span
                .zip(sources.get(c.source.wrapping_sub(1)))
                .map(|(span, hit)| Span::of(hit, span)),
            reason: c.reason.map(|r| r.message().to_string()),
        })
        .collect()
}

/// Why an answer is a refusal rather than the model's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No passage was similar enough to the question; the model was not asked.
    NothingRelevant,
    /// The passages found do not mention the question's key terms; the model was not asked.
    KeyTermsMissing,
    /// Strict mode: no sentence of the model's answer had a verified citation, or those that
    /// had one do not mention the question's key terms.
    NothingVerified,
}

impl From<bear_rag::answer::Refusal> for Refusal {
    fn from(r: bear_rag::answer::Refusal) -> Self {
        match r {
            bear_rag::answer::Refusal::NothingRelevant => Self::NothingRelevant,
            bear_rag::answer::Refusal::KeyTermsMissing => Self::KeyTermsMissing,
            bear_rag::answer::Refusal::NothingVerified => Self::NothingVerified,
        }
    }
}

/// A cited answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AskResponse {
    /// The answer, PII tokens restored.
    pub answer: String,
    /// The numbered sources.
    pub sources: Vec<Source>,
    /// The markers the answer uses.
    pub cited: Vec<usize>,
    /// Each citation checked against its source.
    #[serde(default)]
    pub citations: Vec<Citation>,
    /// Whether only verified sentences were kept.
    #[serde(default)]
    pub strict: bool,
    /// Sentences strict mode removed for want of a verified citation.
    #[serde(default)]
    pub removed_sentences: usize,
    /// Without strict mode: the byte ranges in `answer` of the sentences that cite nothing and
    /// that no source supports (a sentence whose own citation fails is in `citations`).
    #[serde(default)]
    pub unsupported_sentences: Vec<[usize; 2]>,
    /// Why the answer is a refusal ("not found in the documents"), when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
    /// Whether anything relevant was found (if not, the model was not asked).
    pub relevant: bool,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Milliseconds to the first streamed piece.
    pub time_to_first_token_ms: Option<u64>,
    /// Milliseconds for the whole answer.
    pub elapsed_ms: u64,
    /// Microseconds of it spent checking citations and key terms.
    #[serde(default)]
    pub verification_us: u64,
    /// Why generation stopped (absent when the model was not asked).
    pub finish_reason: Option<Finish>,
}

impl AskResponse {
    fn of(a: bear_rag::Answer, strict: bool) -> Self {
        let citations = citations(&a.checks, &a.sources);
        let sources = a
            .sources
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                let text = h.text.clone();
                Source {
                    marker: i + 1,
                    cited: a.cited.contains(&(i + 1)),
                    verified: citations.iter().any(|c| c.marker == i + 1 && c.verified),
                    collection: a.collections.get(i).cloned(),
                    hit: SearchHit::of(h, text),
                }
            })
            .collect();
        Self {
            answer: a.text,
            sources,
            cited: a.cited,
            citations,
            strict,
            removed_sentences: a.removed,
            unsupported_sentences: a.unsupported.iter().map(|&(s, e)| [s, e]).collect(),
            refusal: a.refusal.map(Refusal::from),
            relevant: a.relevant,
            prompt_tokens: a.prompt_tokens,
            completion_tokens: a.completion_tokens,
            time_to_first_token_ms: a.time_to_first_token_ms,
            elapsed_ms: a.elapsed_ms,
            verification_us: a.verification_us,
            finish_reason: a.finish_reason.map(Finish::from),
        }
    }
}

impl App {
    /// Searches one collection; hit texts come back restored.
    pub async fn search(&self, viewer: &Viewer, req: SearchRequest) -> Result<SearchResponse> {
        let rag = &self.config().config.rag;
        let k = check_k(req.k, rag.top_k, MAX_SEARCH_K)?;
        let filter = filter(&req.document, &req.after, &req.before, &req.mail)?;
        let mode = req.mode.unwrap_or_default();
        let c = self.collection(viewer, req.collection.as_deref()).await?;
        let embedder = self.embedder(&c.meta().embedder).await?;
        let scrubber = self.scrubber_of(&c)?;
        let retriever =
            bear_rag::RagRetriever::new(self.store().clone(), embedder, scrubber.clone());
        let hits = retriever
            .search(&c, &req.query, mode.into(), k, &filter)
            .await?;
        let hits = hits
            .into_iter()
            .map(|h| {
                let text = scrubber.restore(&h.text)?;
                Ok(SearchHit::of(h, text))
            })
            .collect::<Result<_>>()?;
        Ok(SearchResponse {
            collection: c.meta().name.clone(),
            mode,
            hits,
        })
    }

    /// The generator that answers `req`: the one it names, else `models.default_generator`.
    pub fn answer_model(&self, req: &AskRequest) -> Result<ModelId> {
        let default = &self.config().config.models.default_generator;
        ModelId::new(req.model.as_deref().unwrap_or(default))
            .map_err(|e| Error::invalid("model", e.to_string()))
    }

    /// The generator an answer uses and the sampling it gets: the request's, else the
    /// configured defaults (answers are greedy unless asked otherwise).
    fn answer_setup(&self, req: &AskRequest) -> Result<(ModelId, SamplingParams)> {
        let model = self.answer_model(req)?;
        let defaults = SamplingParams {
            max_tokens: 256,
            temperature: 0.0,
            ..SamplingParams::default()
        };
        let sampling = Sampling {
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: req.top_k,
            repeat_penalty: req.repeat_penalty,
            seed: req.seed,
            stop: req.stop_sequences.clone(),
            ..Sampling::default()
        };
        Ok((model, sampling.params(defaults, MAX_ANSWER_TOKENS)?))
    }

    /// Answers a question from one collection, streaming the restored answer to `sink`, and
    /// keeps the exchange in each collection's history.
    pub async fn ask(
        &self,
        viewer: &Viewer,
        req: AskRequest,
        sink: Box<dyn TokenSink>,
        cancel: CancellationToken,
    ) -> Result<AskResponse> {
        let question = req.question.clone();
        let (response, collections) = self.answer(viewer, req, sink, cancel).await?;
        for c in &collections {
            self.remember(c, viewer, &question, &response)?;
        }
        Ok(response)
    }

    /// [`Self::ask`] without the history (a review grid's cells), with the collections asked.
    pub(crate) async fn answer(
        &self,
        viewer: &Viewer,
        req: AskRequest,
        sink: Box<dyn TokenSink>,
        cancel: CancellationToken,
    ) -> Result<(AskResponse, Vec<bear_rag::Collection>)> {
        let rag = &self.config().config.rag;
        let k = check_k(req.k, rag.top_k, MAX_ASK_K)?;
        let filter = filter(&req.document, &req.after, &req.before, &req.mail)?;
        let (model, params) = self.answer_setup(&req)?;
        let mut collections = Vec::new();
        for name in asked_collections(&req)? {
            collections.push(self.collection(viewer, name.as_deref()).await?);
        }
        let mut embedders = Vec::new();
        for c in &collections {
            embedders.push(self.embedder(&c.meta().embedder).await?);
        }
        let mut scopes = Vec::new();
        for (c, e) in collections.iter().zip(&embedders) {
            scopes.push(bear_rag::Scope {
                collection: c,
                embedder: e.as_ref(),
                scrubber: self.scrubber_of(c)?,
            });
        }
        let options = bear_rag::AskOptions {
            model,
            params,
            k,
            context_tokens: self.config().config.models.context_length as usize,
            min_similarity: rag.min_similarity,
            filter,
            strict: req.strict.unwrap_or(true),
        };
        let answer = bear_rag::ask_in(
            &scopes,
            self.models().as_ref(),
            &req.question,
            &options,
            sink,
            cancel,
        )
        .await?;
        Ok((AskResponse::of(answer, options.strict), collections))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_bound_whole_days_and_bad_ones_name_the_field() {
        let day1 = Some("2024-01-01".to_string());
        let f = filter(&None, &day1, &day1, &None).unwrap();
        assert_eq!(f.modified_after, Some(1_704_067_200));
        assert_eq!(f.modified_before, Some(1_704_067_200 + 86_399));
        let e = filter(&None, &None, &Some("yesterday".into()), &None).unwrap_err();
        assert_eq!(e.field(), Some("before"));
        let mail = MailQuery {
            sent_after: Some("2024-03-01".into()),
            from: Some("fjord".into()),
            ..MailQuery::default()
        };
        let f = filter(&None, &None, &None, &Some(mail)).unwrap();
        let m = f.mail.unwrap();
        assert_eq!(m.sent_after, Some(1_709_251_200));
        assert_eq!(m.from.as_deref(), Some("fjord"));
        let empty = filter(&None, &None, &None, &Some(MailQuery::default())).unwrap();
        assert_eq!(empty.mail, None);
        let blank = MailQuery {
            to: Some(" ".into()),
            ..MailQuery::default()
        };
        let e = filter(&None, &None, &None, &Some(blank)).unwrap_err();
        assert_eq!(e.field(), Some("mail.to"));
    }

    #[test]
    fn k_has_one_default_and_one_range() {
        assert_eq!(check_k(None, 5, MAX_SEARCH_K).unwrap(), 5);
        assert_eq!(check_k(Some(100), 5, MAX_SEARCH_K).unwrap(), 100);
        for bad in [0, 101] {
            let e = check_k(Some(bad), 5, MAX_SEARCH_K).unwrap_err();
            assert_eq!(e.to_string(), "k: from 1 to 100");
        }
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let r: SearchRequest = serde_json::from_value(serde_json::json!({
            "query": "q", "collection": "acme", "after": "2024-02-01", "mode": "exact"
        }))
        .unwrap();
        assert_eq!(r.collection.as_deref(), Some("acme"));
        assert_eq!(r.mode, Some(Mode::Exact));
        let e = serde_json::from_value::<SearchRequest>(serde_json::json!({
            "query": "q", "modified_after": 0
        }));
        assert!(e.is_err());
    }
}
