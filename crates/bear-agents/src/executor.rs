//! The executor: runs one attempt of one step through the bear-core traits.
//!
//! Parameters are rendered first (references to inputs and earlier outputs), then parsed into
//! the step type's typed form, then run. Every error is a [`bear_core::Error`] whose message
//! names parameters and classes only, never their values.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bear_core::{
    CancellationToken, ChatMessage, ChatRole, Error as CoreError, ErrorKind, GenerationRequest,
    ModelId, PiiScrubber, Prompt, Redacted, RetrievalQuery, Retriever, SamplingParams,
    TextGenerator, Tool,
};
use serde_json::{Value, json};

use crate::agent::AgentConfig;
use crate::definition::{
    DataParams, FileParams, GenerateParams, OnInvalid, PlannedStep, RagParams, ScrubParams,
    StepKind, ToolParams, ValidateParams, typed_params,
};

/// The backends steps run through. Each is optional; a definition using a missing one fails
/// validation.
#[derive(Clone, Default)]
pub struct Backends {
    /// Text generation for `llm_generation` and validation judgements.
    pub generator: Option<Arc<dyn TextGenerator>>,
    /// The model used when neither the step nor its agent names one.
    pub default_model: Option<ModelId>,
    /// Tools for `tool_execution`, by name.
    pub tools: BTreeMap<String, Arc<dyn Tool>>,
    /// Retrieval for `rag_query`.
    pub retriever: Option<Arc<dyn Retriever>>,
    /// PII scrubbing for `pii_scrub` and `pii_free` checks.
    pub scrubber: Option<Arc<dyn PiiScrubber>>,
    /// The directory `file_operations` are confined to; `None` refuses them.
    pub files_root: Option<PathBuf>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("generator", &self.generator.is_some())
            .field("default_model", &self.default_model)
            .field("tools", &self.tools.keys().collect::<Vec<_>>())
            .field("retriever", &self.retriever.is_some())
            .field("scrubber", &self.scrubber.is_some())
            .field("files_root", &self.files_root)
            .finish()
    }
}

/// Sampling for workflow generations: greedy (reproducible, cacheable) and 256 tokens unless
/// the step says otherwise.
pub(crate) fn step_sampling_base() -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        max_tokens: 256,
        ..SamplingParams::default()
    }
}

/// One greedy chat turn: `prompt` as the user message, at most `max_tokens`, the text back.
pub(crate) async fn ask_once(
    generator: &dyn TextGenerator,
    model: ModelId,
    prompt: String,
    max_tokens: u32,
    cancel: CancellationToken,
) -> Result<String, CoreError> {
    let g = generator
        .generate(
            GenerationRequest {
                model,
                prompt: Prompt::Chat(vec![ChatMessage::new(ChatRole::User, prompt)]),
                params: SamplingParams {
                    max_tokens,
                    ..step_sampling_base()
                },
            },
            Box::new(|_: &str| true),
            cancel,
        )
        .await?;
    Ok(g.text.into_inner())
}

/// Everything one attempt needs.
pub(crate) struct Attempt<'a> {
    pub step: &'a PlannedStep,
    /// `{"inputs": ..., "steps": {id: {"output": ...}}}` for rendering.
    pub context: &'a Value,
    pub agent: AgentConfig,
    pub idempotency_key: &'a str,
    pub cancel: CancellationToken,
}

fn invalid(message: impl Into<String>) -> CoreError {
    CoreError::backend(ErrorKind::InvalidRequest, message)
}

fn unavailable(what: &str) -> CoreError {
    CoreError::backend(
        ErrorKind::Unavailable,
        format!("no {what} is configured for this engine"),
    )
}

/// Renders every reference in `params`.
pub(crate) fn render(params: &Value, context: &Value) -> Result<Value, CoreError> {
    let env = crate::definition::template_env();
    let ctx = minijinja::Value::from_serialize(context);
    render_value(&env, params, &ctx, "parameters")
}

fn render_value(
    env: &minijinja::Environment<'_>,
    v: &Value,
    ctx: &minijinja::Value,
    path: &str,
) -> Result<Value, CoreError> {
    Ok(match v {
        Value::String(s) if s.contains("{{") || s.contains("{%") => {
            let fail = |e: minijinja::Error| {
                invalid(format!("{path}: cannot resolve a reference ({})", e.kind()))
            };
            let t = s.trim();
            let single = t.starts_with("{{")
                && t.ends_with("}}")
                && t[2..t.len() - 2].find("{{").is_none()
                && t[2..t.len() - 2].find("}}").is_none();
            if single {
                let expr = env.compile_expression(&t[2..t.len() - 2]).map_err(fail)?;
                let value = expr.eval(ctx).map_err(fail)?;
                if value.is_undefined() {
                    return Err(invalid(format!("{path}: the reference is undefined")));
                }
                serde_json::to_value(&value)
                    .map_err(|_| invalid(format!("{path}: the reference is not JSON data")))?
            } else {
                Value::String(env.render_str(s, ctx).map_err(fail)?)
            }
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| render_value(env, x, ctx, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    Ok((
                        k.clone(),
                        render_value(env, x, ctx, &format!("{path}.{k}"))?,
                    ))
                })
                .collect::<Result<_, CoreError>>()?,
        ),
        other => other.clone(),
    })
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, CoreError> {
    typed_params(v).map_err(|(path, message)| {
        invalid(format!(
            "parameters{}: {message}",
            path.map(|p| format!(".{p}")).unwrap_or_default()
        ))
    })
}

/// Text of a JSON value: strings as they are, anything else as JSON.
pub(crate) fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs one attempt.
pub(crate) async fn execute(backends: &Backends, a: Attempt<'_>) -> Result<Value, CoreError> {
    let params = if a.step.templated {
        render(&a.step.parameters, a.context)?
    } else {
        a.step.parameters.clone()
    };
    match a.step.kind {
        StepKind::LlmGeneration => generate(backends, typed(params)?, &a.agent, a.cancel).await,
        StepKind::ToolExecution => {
            tool(backends, typed(params)?, a.idempotency_key, a.cancel).await
        }
        StepKind::DataProcessing => data(typed(params)?),
        StepKind::FileOperations => files(backends, typed(params)?, a.idempotency_key).await,
        StepKind::RagQuery => rag(backends, typed(params)?).await,
        StepKind::PiiScrub => {
            let p: ScrubParams = typed(params)?;
            let s = backends
                .scrubber
                .as_ref()
                .ok_or_else(|| unavailable("PII scrubber"))?;
            let out = s.scrub(&p.text)?;
            Ok(json!({
                "text": out.text.expose(),
                "counts": out.counts.iter().map(|(k, v)| (k.name().into_owned(), *v)).collect::<BTreeMap<_, _>>(),
                "risk": out.risk,
            }))
        }
        StepKind::Validation => validate(backends, typed(params)?, a.cancel).await,
    }
}

async fn generate(
    backends: &Backends,
    p: GenerateParams,
    agent: &AgentConfig,
    cancel: CancellationToken,
) -> Result<Value, CoreError> {
    let generator = backends
        .generator
        .as_ref()
        .ok_or_else(|| unavailable("text generator"))?;
    let model = p
        .model
        .clone()
        .or_else(|| agent.model.clone())
        .or_else(|| backends.default_model.clone())
        .ok_or_else(|| unavailable("default model"))?;
    let msg = ChatMessage::new;
    let mut messages = Vec::new();
    if let Some(system) = p.system.clone().or_else(|| agent.system_prompt.clone()) {
        messages.push(msg(ChatRole::System, system));
    }
    match (p.prompt, p.messages) {
        (Some(prompt), _) => messages.push(msg(ChatRole::User, prompt)),
        (None, Some(ms)) => messages.extend(ms.into_iter().map(|m| msg(m.role, m.content))),
        (None, None) => return Err(invalid("parameters: `prompt` or `messages` is required")),
    }
    let request = GenerationRequest {
        model: model.clone(),
        prompt: Prompt::Chat(messages),
        params: p.sampling.to_params(step_sampling_base()),
    };
    let sink_cancel = cancel.clone();
    let g = generator
        .generate(
            request,
            Box::new(move |_: &str| !sink_cancel.is_cancelled()),
            cancel.clone(),
        )
        .await?;
    if cancel.is_cancelled() {
        return Err(CoreError::backend(
            ErrorKind::Cancelled,
            "the run was cancelled",
        ));
    }
    Ok(json!({
        "text": g.text.expose(),
        "model": model,
        "prompt_tokens": g.prompt_tokens,
        "completion_tokens": g.completion_tokens,
        "finish_reason": g.finish_reason,
        "generation_time": g.elapsed.as_secs_f64(),
    }))
}

async fn tool(
    backends: &Backends,
    p: ToolParams,
    key: &str,
    cancel: CancellationToken,
) -> Result<Value, CoreError> {
    let tool = backends.tools.get(&p.tool).ok_or_else(|| {
        CoreError::backend(ErrorKind::NotFound, format!("no tool named `{}`", p.tool))
    })?;
    let mut input = p.input;
    // A tool that declares an `idempotency_key` input gets the step's key, so a retried call
    // after a crash can be recognised and not repeated.
    let wants_key = tool
        .spec()
        .input_schema
        .pointer("/properties/idempotency_key")
        .is_some();
    if let (true, Value::Object(o)) = (wants_key, &mut input) {
        o.insert("idempotency_key".into(), Value::String(key.to_string()));
    }
    tool.call(input, cancel).await
}

fn data(p: DataParams) -> Result<Value, CoreError> {
    Ok(match p {
        DataParams::Template { text } => Value::String(text),
        DataParams::Select { value, pointer } => value
            .pointer(&pointer)
            .cloned()
            .ok_or_else(|| invalid("parameters.pointer: nothing at this pointer"))?,
        DataParams::RegexExtract { text, pattern } => {
            let re = regex::Regex::new(&pattern)
                .map_err(|_| invalid("parameters.pattern: not a valid regex"))?;
            let found: Vec<Value> = re
                .captures_iter(&text)
                .filter_map(|c| c.get(1).or_else(|| c.get(0)))
                .map(|m| Value::String(m.as_str().to_string()))
                .collect();
            Value::Array(found)
        }
        DataParams::Merge { values } => Value::Object(values),
        DataParams::ParseJson { text } => serde_json::from_str(&text).map_err(|e| {
            invalid(format!(
                "parameters.text: not valid JSON (line {} column {})",
                e.line(),
                e.column()
            ))
        })?,
    })
}

/// Resolves a relative path under `root`, refusing anything that would leave it.
fn confine(root: &Path, rel: &str) -> Result<PathBuf, CoreError> {
    let rel_path = Path::new(rel);
    let bad = rel.is_empty()
        || rel_path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if bad {
        return Err(invalid(
            "parameters.path: must be a relative path inside the files root, without `..`",
        ));
    }
    let root = root.canonicalize().map_err(|_| {
        CoreError::backend(ErrorKind::Config, "the workflow files root does not exist")
    })?;
    let full = root.join(rel_path);
    // Symlinks must not lead out either: check the deepest existing ancestor.
    let mut probe = full.clone();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    let real = probe.canonicalize().unwrap_or(probe);
    if !real.starts_with(&root) {
        return Err(invalid("parameters.path: leads outside the files root"));
    }
    Ok(full)
}

async fn files(backends: &Backends, p: FileParams, key: &str) -> Result<Value, CoreError> {
    let root = backends.files_root.clone().ok_or_else(|| {
        CoreError::backend(
            ErrorKind::Config,
            "file_operations need a files root (`[workflows] files_root`)",
        )
    })?;
    let key = key.replace([':', '/'], "_");
    let io = |what: &'static str| {
        move |e: std::io::Error| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                ErrorKind::NotFound
            } else {
                ErrorKind::Storage
            };
            CoreError::backend(kind, format!("cannot {what} the file: {}", e.kind()))
        }
    };
    tokio::task::spawn_blocking(move || -> Result<Value, CoreError> {
        match p {
            FileParams::Read { path } => {
                let full = confine(&root, &path)?;
                let bytes = std::fs::read(&full).map_err(io("read"))?;
                let text = String::from_utf8(bytes).map_err(|e| {
                    invalid(format!(
                        "parameters.path: not UTF-8 text (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    ))
                })?;
                Ok(json!({ "path": path, "text": text }))
            }
            FileParams::Write { path, content } => {
                let full = confine(&root, &path)?;
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent).map_err(io("create the folder of"))?;
                }
                // Write-then-rename under a name derived from the idempotency key: a retried
                // attempt overwrites its own temporary file and the rename is atomic.
                let name = full.file_name().and_then(|n| n.to_str()).unwrap_or("out");
                let tmp = full.with_file_name(format!(".{name}.{key}.tmp"));
                std::fs::write(&tmp, content.as_bytes()).map_err(io("write"))?;
                std::fs::rename(&tmp, &full).map_err(io("replace"))?;
                Ok(json!({ "path": path, "bytes": content.len() }))
            }
            FileParams::List { path } => {
                let full = if path.is_empty() || path == "." {
                    root.clone()
                } else {
                    confine(&root, &path)?
                };
                let mut names = Vec::new();
                for entry in std::fs::read_dir(&full).map_err(io("list"))? {
                    let entry = entry.map_err(io("list"))?;
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
                names.sort();
                Ok(json!(names))
            }
        }
    })
    .await
    .map_err(|_| CoreError::backend(ErrorKind::Internal, "the file operation panicked"))?
}

async fn rag(backends: &Backends, p: RagParams) -> Result<Value, CoreError> {
    let r = backends
        .retriever
        .as_ref()
        .ok_or_else(|| unavailable("retriever"))?;
    let chunks = r
        .retrieve(&RetrievalQuery {
            collection: p.collection,
            text: Redacted::new(p.query),
            top_k: p.top_k,
        })
        .await?;
    Ok(Value::Array(
        chunks
            .into_iter()
            .map(|c| {
                json!({
                    "document": c.document,
                    "source": c.source,
                    "page": c.page,
                    "text": c.text.expose(),
                    "score": c.score,
                })
            })
            .collect(),
    ))
}

async fn validate(
    backends: &Backends,
    p: ValidateParams,
    cancel: CancellationToken,
) -> Result<Value, CoreError> {
    let mut failures: Vec<String> = Vec::new();
    if p.non_empty {
        let empty = match &p.input {
            Value::Null => true,
            Value::String(s) => s.trim().is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if empty {
            failures.push("non_empty: the value is empty".into());
        }
    }
    if let Some(schema) = &p.schema {
        let v = jsonschema::validator_for(schema)
            .map_err(|_| invalid("parameters.schema: not a valid JSON Schema"))?;
        // Schema errors quote the instance (user data): report where and which rule only.
        for e in v.iter_errors(&p.input).take(20) {
            failures.push(format!(
                "schema: at `{}` violates `{}`",
                e.instance_path(),
                e.schema_path()
            ));
        }
    }
    if let Some(r) = &p.regex {
        let re =
            regex::Regex::new(r).map_err(|_| invalid("parameters.regex: not a valid regex"))?;
        if !re.is_match(&as_text(&p.input)) {
            failures.push("regex: the value does not match".into());
        }
    }
    if p.pii_free {
        let s = backends
            .scrubber
            .as_ref()
            .ok_or_else(|| unavailable("PII scrubber"))?;
        let out = s.scrub(&as_text(&p.input))?;
        if !out.counts.is_empty() {
            let found: Vec<String> = out
                .counts
                .iter()
                .map(|(k, n)| format!("{}×{n}", k.name()))
                .collect();
            failures.push(format!("pii_free: found {}", found.join(", ")));
        }
    }
    let mut judgement = Value::Null;
    if let Some(judge) = &p.judge {
        let generator = backends
            .generator
            .as_ref()
            .ok_or_else(|| unavailable("text generator"))?;
        let model = judge
            .model
            .clone()
            .or_else(|| backends.default_model.clone())
            .ok_or_else(|| unavailable("default model"))?;
        let prompt = format!(
            "Does the following text meet this requirement: {}?\nAnswer only yes or no.\n\nText:\n{}",
            judge.criteria,
            as_text(&p.input)
        );
        let answer = ask_once(&**generator, model, prompt, 4, cancel).await?;
        let answer = answer.trim().to_ascii_lowercase();
        let yes = answer.starts_with("yes");
        judgement = json!(if yes { "yes" } else { "no" });
        if !yes {
            failures.push("judge: the model judged that the requirement is not met".into());
        }
    }
    let valid = failures.is_empty();
    if !valid && p.on_invalid == OnInvalid::Fail {
        return Err(invalid(format!(
            "validation failed: {}",
            failures.join("; ")
        )));
    }
    Ok(json!({ "valid": valid, "failures": failures, "judgement": judgement }))
}
