//! Workflow definitions: the JSON/YAML shape, parsing, and validation into a runnable [`Plan`].
//!
//! The shape is the seed's `POST /api/v1/workflows` body: `name`, `description` and `steps[]`,
//! each step with `id`, `type`, `agent`, `parameters`, `depends_on`, `timeout` (seconds) and
//! `retries`. BEAR adds `inputs` (declared run inputs, with optional defaults) and
//! `on_failure` (`fail_fast` or `continue`).
//!
//! Strings in `parameters` may reference workflow inputs and earlier outputs as Jinja
//! expressions: `{{ inputs.contract }}`, `{{ steps.extract.output }}`,
//! `{{ steps.extract.output.text | upper }}`. A string that is exactly one `{{ ... }}` takes the
//! referenced JSON value itself (an object stays an object); otherwise the text is rendered. A
//! reference to a step makes that step a dependency, as if it were named in `depends_on`.
//!
//! [`Workflow::validate`] checks everything at once and reports every problem with its path.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bear_core::error::redact_quoted;
use bear_core::{ModelId, SamplingParams, StepId};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::{AgentRef, Catalog};
use crate::error::{Error, Problem, Problems, Result};

mod validate;

/// Longest accepted `timeout`, in seconds (one day).
pub const MAX_TIMEOUT_SECS: f64 = 86_400.0;
/// Most retries a step may ask for.
pub const MAX_RETRIES: u32 = 10;
/// Most steps in one workflow.
pub const MAX_STEPS: usize = 100_000;

/// A workflow definition as written by its author.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    /// Short name, shown in lists.
    pub name: String,
    /// What the workflow does.
    #[serde(default)]
    pub description: String,
    /// Inputs a run takes, by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputDef>,
    /// What a failed step does to the rest of the run.
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// The steps, in any order; dependencies decide the order of execution.
    pub steps: Vec<StepDef>,
}

/// One declared input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputDef {
    /// What the input is.
    #[serde(default)]
    pub description: String,
    /// The value used when a run does not give one; without a default the input is required.
    #[serde(default)]
    pub default: Option<Value>,
}

/// What happens to the rest of a run when a step fails after its retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Stop: start no new step, cancel running ones, fail the run.
    #[default]
    FailFast,
    /// Skip the failed step's dependents, finish every independent branch, then fail the run.
    Continue,
}

/// One step as written. Fields are loose here so that validation can report every problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Unique id within the workflow.
    pub id: String,
    /// The step type, such as `llm_generation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// An agent id, or an agent type (`executor`, `specialist`, ...) to let the load balancer
    /// choose; default: any capable agent.
    #[serde(default)]
    pub agent: Option<String>,
    /// The step type's parameters.
    #[serde(default = "empty_object")]
    pub parameters: Value,
    /// Steps that must complete first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Seconds one attempt may take.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Attempts after the first one fails.
    #[serde(default)]
    pub retries: u32,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// The step types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Generate text through the `TextGenerator`.
    LlmGeneration,
    /// Call a `Tool` (a plugin or a built-in tool).
    ToolExecution,
    /// Transform data: templates, JSON selection, regex extraction, merging, JSON parsing.
    DataProcessing,
    /// Read, write or list files under the configured root.
    FileOperations,
    /// Retrieve chunks through the `Retriever`.
    RagQuery,
    /// Scrub PII through the `PiiScrubber`.
    PiiScrub,
    /// Check a value: JSON schema, regex, non-empty, PII-free, LLM judgement.
    Validation,
}

impl StepKind {
    /// Every step type.
    pub const ALL: [StepKind; 7] = [
        Self::LlmGeneration,
        Self::ToolExecution,
        Self::DataProcessing,
        Self::FileOperations,
        Self::RagQuery,
        Self::PiiScrub,
        Self::Validation,
    ];

    /// The name used in definitions and as an agent capability.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LlmGeneration => "llm_generation",
            Self::ToolExecution => "tool_execution",
            Self::DataProcessing => "data_processing",
            Self::FileOperations => "file_operations",
            Self::RagQuery => "rag_query",
            Self::PiiScrub => "pii_scrub",
            Self::Validation => "validation",
        }
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Parameters of `llm_generation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateParams {
    /// A plain prompt; give this or `messages`.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Chat messages, rendered with the model's chat template.
    #[serde(default)]
    pub messages: Option<Vec<MessageParam>>,
    /// A system message put before the prompt.
    #[serde(default)]
    pub system: Option<String>,
    /// The model; default: the agent's model, then the configured default generator.
    #[serde(default)]
    pub model: Option<ModelId>,
    /// Sampling: `max_tokens`, `temperature`, `top_p`, `top_k`, `repeat_penalty`, `seed`,
    /// `stop`.
    #[serde(flatten)]
    pub sampling: SamplingFields,
}

/// The sampling fields of `llm_generation`, each optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SamplingFields {
    /// Upper bound on generated tokens.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// 0 means greedy.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus mass.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Top-k; 0 disables.
    #[serde(default)]
    pub top_k: Option<u32>,
    /// Repeat penalty; 1 disables.
    #[serde(default)]
    pub repeat_penalty: Option<f32>,
    /// Seed for reproducible sampling.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Stop sequences.
    #[serde(default)]
    pub stop: Option<Vec<String>>,
}

impl SamplingFields {
    /// The sampling parameters, starting from `base` (a workflow step defaults to greedy).
    pub fn to_params(&self, mut base: SamplingParams) -> SamplingParams {
        if let Some(v) = self.max_tokens {
            base.max_tokens = v;
        }
        if let Some(v) = self.temperature {
            base.temperature = v;
        }
        if let Some(v) = self.top_p {
            base.top_p = v;
        }
        if let Some(v) = self.top_k {
            base.top_k = v;
        }
        if let Some(v) = self.repeat_penalty {
            base.repeat_penalty = v;
        }
        if let Some(v) = self.seed {
            base.seed = Some(v);
        }
        if let Some(v) = &self.stop {
            base.stop = v.clone();
        }
        base
    }
}

/// One chat message in `llm_generation.messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageParam {
    /// `system`, `user` or `assistant`.
    pub role: bear_core::ChatRole,
    /// The text.
    pub content: String,
}

/// Parameters of `tool_execution`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolParams {
    /// The tool's name.
    pub tool: String,
    /// The tool's JSON input.
    #[serde(default = "empty_object")]
    pub input: Value,
}

/// Parameters of `data_processing`, by `operation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataParams {
    /// Output the rendered `text`.
    Template {
        /// The text, usually with references.
        text: String,
    },
    /// Output the part of `value` at a JSON pointer (`/terms/0`).
    Select {
        /// The value to select from.
        value: Value,
        /// RFC 6901 JSON pointer.
        pointer: String,
    },
    /// Output every match of `pattern` in `text` (the first capture group when there is one).
    RegexExtract {
        /// The text to search.
        text: String,
        /// A Rust `regex` pattern.
        pattern: String,
    },
    /// Output an object made of `values`.
    Merge {
        /// The fields of the output.
        values: serde_json::Map<String, Value>,
    },
    /// Parse `text` as JSON (for example a model's JSON answer).
    ParseJson {
        /// The JSON text.
        text: String,
    },
}

/// Parameters of `file_operations`, by `operation`. Paths are relative to the files root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case", deny_unknown_fields)]
pub enum FileParams {
    /// Output a UTF-8 text file's content.
    Read {
        /// The file.
        path: String,
    },
    /// Write `content` to a file, atomically (write then rename).
    Write {
        /// The file.
        path: String,
        /// The text to write.
        content: String,
    },
    /// Output the names of the entries of a directory.
    List {
        /// The directory.
        path: String,
    },
}

/// Parameters of `rag_query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RagParams {
    /// The collection.
    pub collection: bear_core::CollectionId,
    /// The question or keywords.
    pub query: String,
    /// Chunks to return.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
}

fn default_top_k() -> usize {
    5
}

/// Parameters of `pii_scrub`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrubParams {
    /// The text to scrub.
    pub text: String,
}

/// Parameters of `validation`: the value and the checks it must pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateParams {
    /// The value to check.
    pub input: Value,
    /// A JSON Schema the value must match.
    #[serde(default)]
    pub schema: Option<Value>,
    /// A regex the value (a string) must match somewhere.
    #[serde(default)]
    pub regex: Option<String>,
    /// The value must not be null, an empty string, array or object.
    #[serde(default)]
    pub non_empty: bool,
    /// The value's text must contain no PII.
    #[serde(default)]
    pub pii_free: bool,
    /// Ask the model whether the value meets `criteria`.
    #[serde(default)]
    pub judge: Option<JudgeParams>,
    /// `fail` (default): a failed check fails the step; `report`: the step completes with
    /// `valid: false`.
    #[serde(default)]
    pub on_invalid: OnInvalid,
}

/// An LLM judgement: the model answers yes or no to whether the value meets `criteria`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeParams {
    /// What the value must satisfy, in words.
    pub criteria: String,
    /// The model; default: the configured default generator.
    #[serde(default)]
    pub model: Option<ModelId>,
}

/// What a failed validation does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// The step fails.
    #[default]
    Fail,
    /// The step completes and reports the failures.
    Report,
}

/// Which backends a workflow's steps use, so a front end loads only those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// A text generator (`llm_generation`, a validation's `judge`).
    pub generator: bool,
    /// A PII scrubber (`pii_scrub`, a validation's `pii_free`).
    pub scrubber: bool,
    /// A retriever (`rag_query`).
    pub retriever: bool,
    /// Plugin tools (`tool_execution`).
    pub tools: bool,
}

/// A validated step, ready to schedule.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    /// Its id.
    pub id: StepId,
    /// Its type.
    pub kind: StepKind,
    /// Who should run it.
    pub agent: AgentRef,
    /// Its parameters, with references still unrendered.
    pub parameters: Value,
    /// Whether any string in the parameters holds a reference (rendering is skipped otherwise).
    pub templated: bool,
    /// Indexes of the steps it waits for (declared and implied by references).
    pub deps: Vec<usize>,
    /// Time allowed per attempt.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
}

/// A validated workflow: steps with resolved dependencies, in a topological order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The definition as written.
    pub workflow: Workflow,
    /// The steps, in definition order.
    pub steps: Vec<PlannedStep>,
    /// For each step, the steps that wait for it.
    pub dependents: Vec<Vec<usize>>,
    /// Step index by id.
    pub index: HashMap<StepId, usize>,
}

impl Workflow {
    /// Parses a JSON definition; errors carry the path of the bad field.
    pub fn from_json(text: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let inner = e.inner();
            let path = path_or_position(&e.path().to_string(), inner.line(), inner.column());
            Error::Parse {
                path,
                message: strip_position(&inner.to_string()),
            }
        })
    }

    /// Parses a YAML definition; errors carry the path of the bad field.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let inner = e.inner();
            let (line, column) = inner
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            Error::Parse {
                path: path_or_position(&e.path().to_string(), line, column),
                message: strip_position(&inner.to_string()),
            }
        })
    }

    /// Parses JSON when the text starts with `{`, YAML otherwise (YAML is a superset of JSON,
    /// but JSON errors are clearer from the JSON parser).
    pub fn parse(text: &str) -> Result<Self> {
        if text.trim_start().starts_with('{') {
            Self::from_json(text)
        } else {
            Self::from_yaml(text)
        }
    }

    /// Checks the definition against what `catalog` offers and returns the runnable plan, or
    /// every problem found.
    pub fn validate(&self, catalog: &Catalog) -> Result<Plan> {
        validate::Validator::new(self, catalog).run()
    }

    /// The backends its steps use (unknown step types use none).
    pub fn needs(&self) -> Needs {
        let mut n = Needs::default();
        for s in &self.steps {
            match StepKind::parse(&s.kind) {
                Some(StepKind::LlmGeneration) => n.generator = true,
                Some(StepKind::PiiScrub) => n.scrubber = true,
                Some(StepKind::RagQuery) => n.retriever = true,
                Some(StepKind::ToolExecution) => n.tools = true,
                Some(StepKind::Validation) => {
                    n.generator |= s.parameters.get("judge").is_some();
                    n.scrubber |= s.parameters.get("pii_free") == Some(&Value::Bool(true));
                }
                _ => {}
            }
        }
        n
    }

    /// The run inputs: `given` checked against the declarations, defaults filled in.
    pub fn resolve_inputs(&self, given: &BTreeMap<String, Value>) -> Result<Value> {
        let mut out = serde_json::Map::new();
        for name in given.keys() {
            if !self.inputs.contains_key(name) {
                return Err(Error::Input {
                    name: name.clone(),
                    message: "this workflow declares no such input".into(),
                });
            }
        }
        for (name, def) in &self.inputs {
            match given.get(name).or(def.default.as_ref()) {
                Some(v) => {
                    out.insert(name.clone(), v.clone());
                }
                None => {
                    return Err(Error::Input {
                        name: name.clone(),
                        message: "required and not given; pass it with --input NAME=VALUE".into(),
                    });
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// One cycle through `members` (a strongly connected set), in dependency order.
fn name_cycle(members: &[usize], deps: &[&BTreeSet<usize>]) -> Vec<usize> {
    let set: BTreeSet<usize> = members.iter().copied().collect();
    let start = members[0];
    let mut path = vec![start];
    let mut at = start;
    // Walk backwards along dependencies inside the component until a node repeats; every node
    // of a strongly connected component has a dependency inside it.
    while let Some(&next) = deps[at].iter().find(|d| set.contains(d)) {
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle = path.split_off(pos);
            cycle.reverse();
            return cycle;
        }
        path.push(next);
        at = next;
    }
    path
}

/// Checks a step type's parameters by deserialising them into its typed form.
fn check_parameters(
    kind: StepKind,
    params: &Value,
    catalog: &Catalog,
) -> std::result::Result<(), String> {
    fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> std::result::Result<T, String> {
        typed_params(v.clone()).map_err(|(path, message)| match path {
            Some(path) => format!("{path}: {message}"),
            None => message,
        })
    }
    match kind {
        StepKind::LlmGeneration => {
            let p: GenerateParams = typed(params)?;
            match (&p.prompt, &p.messages) {
                (Some(_), Some(_)) => return Err("give `prompt` or `messages`, not both".into()),
                (None, None) => return Err("`prompt` or `messages` is required".into()),
                (None, Some(m)) if m.is_empty() => return Err("messages: is empty".into()),
                _ => {}
            }
            p.sampling
                .to_params(crate::executor::step_sampling_base())
                .validate()
                .map_err(|e| e.to_string())?;
            if !catalog.has_generator {
                return Err("no text generator is configured for this engine".into());
            }
        }
        StepKind::ToolExecution => {
            let p: ToolParams = typed(params)?;
            if !catalog.tools.contains(&p.tool) {
                return Err(format!(
                    "tool: unknown tool `{}`; available: {}",
                    p.tool,
                    if catalog.tools.is_empty() {
                        "none".to_string()
                    } else {
                        catalog.tools.iter().cloned().collect::<Vec<_>>().join(", ")
                    }
                ));
            }
        }
        StepKind::DataProcessing => {
            let p: DataParams = typed(params)?;
            match p {
                DataParams::RegexExtract { pattern, .. } if !pattern.contains("{{") => {
                    regex::Regex::new(&pattern).map_err(|e| format!("pattern: {e}"))?;
                }
                DataParams::Select { pointer, .. }
                    if !pointer.is_empty()
                        && !pointer.starts_with('/')
                        && !pointer.contains("{{") =>
                {
                    return Err("pointer: a JSON pointer starts with `/`".into());
                }
                _ => {}
            }
        }
        StepKind::FileOperations => {
            let _: FileParams = typed(params)?;
        }
        StepKind::RagQuery => {
            let p: RagParams = typed(params)?;
            if !(1..=100).contains(&p.top_k) {
                return Err("top_k: must be from 1 to 100".into());
            }
            if !catalog.has_retriever {
                return Err("no retriever is configured for this engine".into());
            }
        }
        StepKind::PiiScrub => {
            let _: ScrubParams = typed(params)?;
            if !catalog.has_scrubber {
                return Err("no PII scrubber is configured for this engine".into());
            }
        }
        StepKind::Validation => {
            let p: ValidateParams = typed(params)?;
            if let Some(schema) = &p.schema {
                jsonschema::validator_for(schema).map_err(|e| format!("schema: {e}"))?;
            }
            if let Some(r) = &p.regex {
                regex::Regex::new(r).map_err(|e| format!("regex: {e}"))?;
            }
            if p.pii_free && !catalog.has_scrubber {
                return Err("pii_free needs a PII scrubber; none is configured".into());
            }
            if p.judge.is_some() && !catalog.has_generator {
                return Err("judge needs a text generator; none is configured".into());
            }
        }
    }
    Ok(())
}

/// A reference found in a template.
enum Ref {
    /// `steps.ID` or `steps["ID"]`, with the attribute after it, if any.
    Step(String, Option<String>),
    /// `inputs.NAME` or `inputs["NAME"]`.
    Input(String),
    /// A variable other than `steps` and `inputs`.
    Unknown(String),
    /// The template does not parse.
    Syntax(String),
}

/// The `steps.ID` and `inputs.NAME` references inside the `{{ }}` and `{% %}` blocks of a
/// template, in attribute (`steps.extract.output`) or subscript (`steps["a-b"].output`) form,
/// wherever they sit in the expression (filters, slices, arguments).
fn references(src: &str) -> Vec<Ref> {
    static BLOCK: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    static REF: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let block = BLOCK
        .get_or_init(|| regex::Regex::new(r"(?s)\{\{(.*?)\}\}|\{%(.*?)%\}").expect("static regex"));
    let reference = REF.get_or_init(|| {
        regex::Regex::new(
            r#"\b(steps|inputs)\s*(?:\.\s*([A-Za-z0-9_]+)|\[\s*["']([^"']+)["']\s*\])(?:\s*\.\s*([A-Za-z_][A-Za-z0-9_]*))?"#,
        )
        .expect("static regex")
    });
    let mut out = Vec::new();
    for b in block.captures_iter(src) {
        let inner = b.get(1).or_else(|| b.get(2)).map_or("", |m| m.as_str());
        for c in reference.captures_iter(inner) {
            let name = c
                .get(2)
                .or_else(|| c.get(3))
                .map_or("", |m| m.as_str())
                .to_string();
            let field = c.get(4).map(|m| m.as_str().to_string());
            out.push(if &c[1] == "steps" {
                Ref::Step(name, field)
            } else {
                Ref::Input(name)
            });
        }
    }
    out
}

/// Deserialises a step's parameters into their typed form; an error gives the field path
/// (`None` for the parameters as a whole) and serde's message without quoted values.
pub(crate) fn typed_params<T: serde::de::DeserializeOwned>(
    v: Value,
) -> std::result::Result<T, (Option<String>, String)> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let message = redact_quoted(&e.inner().to_string());
        ((path != ".").then_some(path), message)
    })
}

/// Calls `f(path, string)` for every string inside `v`.
fn visit_strings(v: &Value, path: &str, f: &mut impl FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(path, s),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                visit_strings(x, &format!("{path}[{i}]"), f);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                visit_strings(x, &format!("{path}.{k}"), f);
            }
        }
        _ => {}
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The template environment: strict about undefined values, no auto-escaping.
pub(crate) fn template_env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

fn path_or_position(path: &str, line: usize, column: usize) -> String {
    if path.is_empty() || path == "." {
        if line > 0 {
            format!("line {line} column {column}")
        } else {
            "(document)".into()
        }
    } else if line > 0 {
        format!("{path} (line {line} column {column})")
    } else {
        path.into()
    }
}

/// Parser messages end with "at line L column C", which the path already says, and may quote
/// the offending value (`invalid type: string "..."`), which can be a prompt: both go.
fn strip_position(message: &str) -> String {
    let message = match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    redact_quoted(message)
}
