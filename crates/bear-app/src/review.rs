//! Whole-document review (issue 27, point 3): a task (a summary, the deadlines, the parties,
//! the obligations, or the user's own instruction) over one document. A document that fits the
//! model's context is read whole in one pass. A longer one is split into sections of
//! consecutive passages and map-reduced through the workflow engine: one `llm_generation`
//! step per section writes notes citing the passages, and one step combines them (the model
//! for a summary or an instruction, a plain join for the lists), so the run is durable,
//! cancellable and shows progress like any workflow. Either way the result is checked a
//! sentence at a time against the document's passages ([`bear_rag::answer::check_text`]): each
//! statement cites its passage with page and span, and in strict mode a statement that cannot
//! be verified is removed.

use std::collections::BTreeMap;
use std::ops::Range;

use bear_agents::{Engine, FailurePolicy, Needs, StepDef, Workflow, definition::InputDef};
use bear_core::{
    CancellationToken, EventBus, GenerationRequest, Prompt, RunStatus, SamplingParams,
    TextGenerator,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::rag::{Citation, Finish};
use crate::workflows::RunCount;
use crate::{App, Error, Result, Viewer};

/// The most tokens a review's result may take.
pub const MAX_REVIEW_TOKENS: u32 = 2048;
/// The longest custom instruction, in bytes.
pub const MAX_INSTRUCTION_BYTES: usize = 4096;
/// The workflow name of a map-reduce review's run.
pub const REVIEW_WORKFLOW: &str = "review";
/// The text of a strict review of which nothing could be verified.
pub const NOTHING_VERIFIED: &str = "Nothing in the review could be verified against the \
document, so none of it is given. Read the document, or review without strict mode to see \
what the model wrote.";

/// Tokens a prompt takes besides the passages (system text, task, markers), with a margin.
const PROMPT_OVERHEAD: usize = 200;
/// Fewest tokens a section's notes may get when the model combines them.
const MIN_NOTE_TOKENS: usize = 64;

const SYSTEM: &str = "You review one legal document, given as numbered passages. Use only the \
passages. After each statement, cite the passage it comes from in square brackets, like [3].";

/// What to do with the document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewTask {
    /// A short summary: what the document is, its parties, its main terms.
    #[default]
    Summary,
    /// Every deadline, date and time limit, with what must happen by then.
    Deadlines,
    /// Every party, with its role.
    Parties,
    /// Every obligation, with who owes it.
    Obligations,
    /// The request's own `instruction`.
    Custom,
}

impl ReviewTask {
    fn instruction(self) -> &'static str {
        match self {
            Self::Summary => {
                "Summarise the document in a few sentences: what it is, who the parties are, \
                 and its main terms."
            }
            Self::Deadlines => {
                "List every deadline, date and time limit the document sets, one per line, \
                 with what must happen by then."
            }
            Self::Parties => "List every party to the document, one per line, with its role.",
            Self::Obligations => {
                "List every obligation the document imposes, one per line, with who owes it."
            }
            Self::Custom => "",
        }
    }

    /// Whether a map-reduce's notes are combined by the model (else joined as they are).
    fn combined_by_model(self) -> bool {
        matches!(self, Self::Summary | Self::Custom)
    }
}

/// How the document was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewMode {
    /// In one pass.
    Whole,
    /// Section by section through the workflow engine, then combined.
    MapReduce,
}

/// A task over one document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// The document: its id or its file's path.
    pub document: String,
    /// The matter [default: `rag.default_collection`].
    #[serde(default)]
    pub collection: Option<String>,
    /// What to do [default: `summary`].
    #[serde(default)]
    pub task: ReviewTask,
    /// The instruction of a `custom` task (at most 4096 bytes).
    #[serde(default)]
    pub instruction: Option<String>,
    /// Generator model id [default: `models.default_generator`].
    #[serde(default)]
    pub model: Option<String>,
    /// Most tokens of the result, 1 to 2048 [default: 512].
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Keep only statements with a verified citation [default: true].
    #[serde(default)]
    pub strict: Option<bool>,
    /// Most tokens of passages one pass reads [default: what `models.context_length` leaves
    /// after the prompt and the result]; a longer document is map-reduced.
    #[serde(default)]
    pub section_tokens: Option<u32>,
    /// For a map-reduce: answer once the run has ended [default: false: answer at once with
    /// the run's id, and `GET /api/v1/review/{run_id}` gives the result].
    #[serde(default)]
    pub wait: Option<bool>,
}

/// A review's result, or where its run stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewResponse {
    /// The matter.
    pub collection: String,
    /// The document.
    pub document_id: String,
    /// Its file's path.
    pub path: String,
    /// The task.
    pub task: ReviewTask,
    /// Whole, or map-reduced.
    pub mode: ReviewMode,
    /// Sections read (1 when whole).
    pub sections: usize,
    /// The workflow run of a map-reduce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// `completed` once there is a result; else the run's status (`running`, `paused`,
    /// `failed`, `cancelled`).
    #[schema(value_type = String)]
    pub status: RunStatus,
    /// Steps done out of all (1 of 1 when whole).
    pub progress: RunCount,
    /// The result, PII tokens restored, with BEAR's added markers; empty until completed.
    pub text: String,
    /// Each citation checked against the document's passage it names.
    pub citations: Vec<Citation>,
    /// Whether only verified statements were kept.
    pub strict: bool,
    /// Statements strict mode removed for want of a verified citation.
    pub removed_sentences: usize,
    /// Without strict mode: byte ranges in `text` of statements that cite nothing and that no
    /// passage supports.
    pub unsupported_sentences: Vec<[usize; 2]>,
    /// Strict mode removed every statement: `text` says so.
    pub nothing_verified: bool,
    /// Why generation stopped (whole mode; the combining step's for a map-reduce).
    pub finish_reason: Option<Finish>,
    /// Microseconds spent checking citations.
    pub verification_us: u64,
    /// Why a run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A document's passages as the model reads them (scrubbed) and as the user does (restored).
struct Passages {
    scrubbed: Vec<String>,
    hits: Vec<bear_rag::Hit>,
}

impl Passages {
    /// Passages `range` numbered as markers: `[n] text`.
    fn numbered(&self, range: Range<usize>) -> String {
        range
            .map(|i| format!("[{}] {}", i + 1, self.scrubbed[i]))
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// Consecutive passages packed into sections of at most `budget` tokens (a passage longer
    /// than that is a section of its own).
    fn sections(&self, budget: usize) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let (mut start, mut used) = (0, 0);
        for (i, t) in self.scrubbed.iter().enumerate() {
            let cost = tokens(t) + 4;
            if i > start && used + cost > budget {
                out.push(start..i);
                (start, used) = (i, 0);
            }
            used += cost;
        }
        if start < self.scrubbed.len() {
            out.push(start..self.scrubbed.len());
        }
        out
    }
}

/// A rough token count: a token is three bytes or more of text.
fn tokens(text: &str) -> usize {
    text.len().div_ceil(3)
}

/// A checked request: what every path of a review needs.
struct Plan {
    task: ReviewTask,
    instruction: String,
    model: bear_core::ModelId,
    max_tokens: u32,
    strict: bool,
    section_tokens: usize,
}

impl App {
    /// Reviews one document: whole when it fits one pass, else map-reduced on `engine` (at
    /// once with the run's id, or when it has ended with `wait`).
    pub async fn review(
        &self,
        viewer: &Viewer,
        req: ReviewRequest,
        engine: &Engine,
    ) -> Result<ReviewResponse> {
        let plan = self.review_plan(&req)?;
        let c = self.collection(viewer, req.collection.as_deref()).await?;
        let doc = crate::docs::find_document(&c, &req.document).await?;
        let scrubber = self.scrubber_of(&c)?;
        let passages = passages(&c, &doc.id, scrubber.as_ref()).await?;
        let instruction = scrubber.scrub(&plan.instruction)?.text.expose().clone();
        let sections = passages.sections(plan.section_tokens);
        let mut out = ReviewResponse::new(&c, &doc, plan.task, plan.strict, sections.len());
        if sections.len() == 1 {
            let prompt = format!(
                "The document:\n\n{}\n\nTask: {instruction}",
                passages.numbered(0..passages.scrubbed.len())
            );
            let g = self
                .models()
                .generate(
                    request(&plan, prompt, plan.max_tokens),
                    Box::new(|_: &str| true),
                    CancellationToken::new(),
                )
                .await?;
            let text = scrubber.restore(g.text.expose())?;
            out.finish_reason = Some(g.finish_reason.into());
            out.checked(&text, &passages.hits);
            return Ok(out);
        }
        let limit = self.config().config.rag.review_max_sections;
        if sections.len() > limit {
            return Err(Error::invalid(
                "document",
                format!(
                    "the document needs {} sections of {} tokens, more than \
                     rag.review_max_sections ({limit}); raise that limit or section_tokens",
                    sections.len(),
                    plan.section_tokens
                ),
            ));
        }
        let (workflow, inputs) = self.review_workflow(&plan, &instruction, &passages, &sections)?;
        let meta = json!({"collection": out.collection, "document_id": out.document_id,
                          "task": plan.task, "strict": plan.strict, "sections": sections.len()});
        let mut values = inputs;
        values.insert("review".into(), meta);
        let wait = req.wait.unwrap_or(false);
        let run = crate::workflows::start(engine, viewer, workflow, values, wait).await?;
        match run.status {
            RunStatus::Running | RunStatus::Pending | RunStatus::Paused => {
                out.mode = ReviewMode::MapReduce;
                out.status = run.status;
                out.run_id = Some(run.workflow_id);
                out.progress = run.progress;
                Ok(out)
            }
            _ => self.review_result(viewer, engine, &run.workflow_id).await,
        }
    }

    /// A map-reduce review's result once its run has completed, or where the run stands.
    pub async fn review_result(
        &self,
        viewer: &Viewer,
        engine: &Engine,
        run_id: &str,
    ) -> Result<ReviewResponse> {
        let p = crate::workflows::run_for(engine, viewer, run_id).await?;
        let meta = review_meta(&p).ok_or_else(|| {
            Error::Core(bear_core::Error::backend(
                bear_core::ErrorKind::NotFound,
                format!("run `{run_id}` is not a review"),
            ))
        })?;
        let c = self.collection(viewer, Some(&meta.collection)).await?;
        let doc = crate::docs::find_document(&c, &meta.document_id).await?;
        let mut out = ReviewResponse::new(&c, &doc, meta.task, meta.strict, meta.sections);
        out.mode = ReviewMode::MapReduce;
        out.run_id = Some(p.id.to_string());
        out.status = p.status;
        out.progress = RunCount {
            completed: p.completed,
            total: p.total,
        };
        if p.status != RunStatus::Completed {
            out.error = p.steps.iter().find_map(|s| s.error.clone());
            return Ok(out);
        }
        let combined = p.results.get("combine").cloned().unwrap_or(Value::Null);
        let (text, finish) = match combined {
            Value::String(s) => (s, None),
            v => (
                v["text"].as_str().unwrap_or_default().to_string(),
                serde_json::from_value::<bear_core::FinishReason>(v["finish_reason"].clone()).ok(),
            ),
        };
        let scrubber = self.scrubber_of(&c)?;
        let passages = passages(&c, &doc.id, scrubber.as_ref()).await?;
        out.finish_reason = finish.map(Finish::from);
        out.checked(&scrubber.restore(&text)?, &passages.hits);
        Ok(out)
    }

    /// An engine in this process that can run reviews: the run database and the generator.
    pub async fn review_engine(&self, bus: EventBus) -> Result<Engine> {
        let runs = self.open_runs().await?;
        let needs = Needs {
            generator: true,
            ..Needs::default()
        };
        let backends = self.workflow_backends(&needs, None).await?;
        Ok(crate::workflows::engine(self.config(), runs, backends, bus))
    }

    fn review_plan(&self, req: &ReviewRequest) -> Result<Plan> {
        let instruction = match (req.task, &req.instruction) {
            (ReviewTask::Custom, Some(i)) if !i.trim().is_empty() => {
                if i.len() > MAX_INSTRUCTION_BYTES {
                    return Err(Error::invalid("instruction", "longer than 4096 bytes"));
                }
                i.trim().to_string()
            }
            (ReviewTask::Custom, _) => {
                return Err(Error::invalid("instruction", "a custom task needs one"));
            }
            (_, Some(_)) => {
                return Err(Error::invalid(
                    "instruction",
                    "only a custom task takes one",
                ));
            }
            (task, None) => task.instruction().to_string(),
        };
        let max_tokens = req.max_tokens.unwrap_or(512);
        if !(1..=MAX_REVIEW_TOKENS).contains(&max_tokens) {
            return Err(Error::invalid("max_tokens", "from 1 to 2048"));
        }
        let context = self.config().config.models.context_length as usize;
        let room = context.saturating_sub(max_tokens as usize + PROMPT_OVERHEAD);
        if room < MIN_NOTE_TOKENS {
            return Err(Error::invalid(
                "max_tokens",
                format!("leaves too little of models.context_length ({context}) for the document"),
            ));
        }
        let section_tokens = match req.section_tokens {
            None => room,
            Some(n) if (MIN_NOTE_TOKENS..=room).contains(&(n as usize)) => n as usize,
            Some(_) => {
                return Err(Error::invalid(
                    "section_tokens",
                    format!(
                        "from {MIN_NOTE_TOKENS} to {room} (models.context_length {context} less \
                         max_tokens and the prompt)"
                    ),
                ));
            }
        };
        Ok(Plan {
            task: req.task,
            instruction,
            model: self.generator_id(req.model.as_deref())?,
            max_tokens,
            strict: req.strict.unwrap_or(true),
            section_tokens,
        })
    }

    /// The map-reduce run: a step per section and a `combine` step, with the section prompts
    /// as inputs (so passage text is never read as a template).
    fn review_workflow(
        &self,
        plan: &Plan,
        instruction: &str,
        passages: &Passages,
        sections: &[Range<usize>],
    ) -> Result<(Workflow, BTreeMap<String, Value>)> {
        let context = self.config().config.models.context_length as usize;
        let note_tokens = if plan.task.combined_by_model() {
            let share =
                context.saturating_sub(plan.max_tokens as usize + PROMPT_OVERHEAD) / sections.len();
            if share < MIN_NOTE_TOKENS {
                return Err(Error::invalid(
                    "section_tokens",
                    format!(
                        "{} sections leave each under {MIN_NOTE_TOKENS} tokens of notes for the \
                         model to combine; give larger sections or a smaller max_tokens",
                        sections.len()
                    ),
                ));
            }
            share.min(plan.max_tokens as usize) as u32
        } else {
            plan.max_tokens
        };
        let mut inputs = BTreeMap::new();
        let mut steps = Vec::new();
        let mut notes = Vec::new();
        for (i, r) in sections.iter().enumerate() {
            let (id, input) = (format!("section_{}", i + 1), format!("section_{}", i + 1));
            inputs.insert(
                input.clone(),
                Value::String(format!(
                    "Passages {} to {} of the document:\n\n{}\n\nTask: {instruction}",
                    r.start + 1,
                    r.end,
                    passages.numbered(r.clone())
                )),
            );
            let mut s =
                generation_step(&id, plan, &format!("{{{{ inputs.{input} }}}}"), note_tokens);
            // After the `review` step, so a run that has started always says what it reviews.
            s.depends_on.push("review".into());
            steps.push(s);
            notes.push(format!("{{{{ steps.{id}.output.text }}}}"));
        }
        steps.push(match plan.task.combined_by_model() {
            true => {
                inputs.insert(
                    "combine".into(),
                    Value::String(format!(
                        "Task: {instruction} Use only the notes below, written on each part of \
                         the document; keep each statement's passage number in square \
                         brackets, like [3]."
                    )),
                );
                let prompt = format!("{{{{ inputs.combine }}}}\n\n{}", notes.join("\n\n"));
                generation_step("combine", plan, &prompt, plan.max_tokens)
            }
            false => step(
                "combine",
                "data_processing",
                json!({"operation": "template", "text": notes.join("\n")}),
            ),
        });
        steps.push(step(
            "review",
            "data_processing",
            json!({"operation": "merge", "values": {"review": "{{ inputs.review }}"}}),
        ));
        let declared = inputs
            .keys()
            .chain(std::iter::once(&"review".to_string()))
            .map(|k| (k.clone(), InputDef::default()))
            .collect();
        let workflow = Workflow {
            name: REVIEW_WORKFLOW.into(),
            description: format!("review of one document in {} sections", sections.len()),
            inputs: declared,
            on_failure: FailurePolicy::FailFast,
            steps,
        };
        Ok((workflow, inputs))
    }
}

fn step(id: &str, kind: &str, parameters: Value) -> StepDef {
    StepDef {
        id: id.into(),
        kind: kind.into(),
        agent: None,
        parameters,
        depends_on: Vec::new(),
        timeout: None,
        retries: 1,
    }
}

fn generation_step(id: &str, plan: &Plan, prompt: &str, max_tokens: u32) -> StepDef {
    step(
        id,
        "llm_generation",
        json!({"system": SYSTEM, "prompt": prompt, "model": plan.model,
               "max_tokens": max_tokens, "temperature": 0.0}),
    )
}

fn request(plan: &Plan, prompt: String, max_tokens: u32) -> GenerationRequest {
    GenerationRequest {
        model: plan.model.clone(),
        prompt: Prompt::system_and_user(SYSTEM.into(), prompt),
        params: SamplingParams {
            max_tokens,
            temperature: 0.0,
            ..SamplingParams::default()
        },
    }
}

/// The document's passages in order, scrubbed and restored.
async fn passages(
    c: &bear_rag::Collection,
    document_id: &str,
    scrubber: &dyn bear_core::PiiScrubber,
) -> Result<Passages> {
    let mut hits = c.document_chunks(document_id).await?;
    if hits.is_empty() {
        return Err(Error::invalid("document", "it has no text to review"));
    }
    hits.sort_by_key(|h| h.ordinal);
    let scrubbed = hits.iter().map(|h| h.text.clone()).collect();
    for h in &mut hits {
        h.text = scrubber.restore(&h.text)?;
    }
    Ok(Passages { scrubbed, hits })
}

/// What a review run keeps about itself (its `review` input).
#[derive(Deserialize)]
struct Meta {
    collection: String,
    document_id: String,
    task: ReviewTask,
    strict: bool,
    sections: usize,
}

fn review_meta(p: &bear_agents::Progress) -> Option<Meta> {
    if p.name != REVIEW_WORKFLOW {
        return None;
    }
    let v = p.results.get("review")?.get("review")?.clone();
    serde_json::from_value(v).ok()
}

impl ReviewResponse {
    fn new(
        c: &bear_rag::Collection,
        doc: &bear_rag::DocumentRecord,
        task: ReviewTask,
        strict: bool,
        sections: usize,
    ) -> Self {
        Self {
            collection: c.meta().name.clone(),
            document_id: doc.id.clone(),
            path: doc.path.clone(),
            task,
            mode: ReviewMode::Whole,
            sections,
            run_id: None,
            status: RunStatus::Completed,
            progress: RunCount {
                completed: 1,
                total: 1,
            },
            text: String::new(),
            citations: Vec::new(),
            strict,
            removed_sentences: 0,
            unsupported_sentences: Vec::new(),
            nothing_verified: false,
            finish_reason: None,
            verification_us: 0,
            error: None,
        }
    }

    /// Takes `text` as the result after checking it against `hits`.
    fn checked(&mut self, text: &str, hits: &[bear_rag::Hit]) {
        let sources = hits.iter().map(|h| h.text.clone()).collect();
        let c = bear_rag::answer::check_text(text, sources, self.strict);
        self.citations = crate::rag::citations(&c.checks, hits);
        self.removed_sentences = c.removed;
        self.unsupported_sentences = c.unsupported.iter().map(|&(s, e)| [s, e]).collect();
        self.verification_us = c.verification_us;
        self.text = c.text;
        if self.strict && self.citations.iter().all(|c| !c.verified) {
            self.nothing_verified = true;
            self.citations.clear();
            self.text = NOTHING_VERIFIED.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passages(texts: &[&str]) -> Passages {
        Passages {
            scrubbed: texts.iter().map(|t| t.to_string()).collect(),
            hits: Vec::new(),
        }
    }

    #[test]
    fn sections_pack_consecutive_passages_within_the_budget() {
        let p = passages(&[
            "a".repeat(30).as_str(),
            &"b".repeat(30),
            &"c".repeat(90),
            "d",
        ]);
        // 30 bytes = 10 tokens + 4 for the marker.
        assert_eq!(p.sections(28), vec![0..2, 2..3, 3..4]);
        assert_eq!(p.sections(1000), vec![0..4]);
        assert_eq!(p.sections(1), vec![0..1, 1..2, 2..3, 3..4]);
        assert!(passages(&[]).sections(10).is_empty());
        assert_eq!(p.numbered(1..2), format!("[2] {}", "b".repeat(30)));
    }

    #[test]
    fn requests_refuse_unknown_fields_and_tasks() {
        let bad = serde_json::from_value::<ReviewRequest>(json!({"document": "x", "k": 3}));
        assert!(bad.is_err());
        let bad = serde_json::from_value::<ReviewRequest>(json!({"document": "x", "task": "poem"}));
        assert!(bad.is_err());
        let ok: ReviewRequest =
            serde_json::from_value(json!({"document": "x", "task": "deadlines"})).unwrap();
        assert_eq!(ok.task, ReviewTask::Deadlines);
    }
}
