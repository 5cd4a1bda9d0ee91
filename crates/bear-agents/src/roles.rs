//! What the coordinator, monitor and specialist roles do beyond running steps.
//!
//! - [`Coordinator`] plans a task into a workflow (from a template, or by asking the model which
//!   analyses to run) and aggregates step results.
//! - [`Monitor`] collects attempt latencies and failures per step type, and agent load.
//! - [`legal_config`] is the legal specialist's domain configuration: its system prompt and its
//!   prompt templates for clause extraction, risk assessment and compliance checking.
//!
//! Executors and validators need nothing here: they are the step types the executor runs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bear_core::{AgentId, CancellationToken, ModelId, TextGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::agent::{AgentConfig, AgentStatus, Registry};
use crate::definition::{FailurePolicy, InputDef, StepDef, StepKind, Workflow};
use crate::error::{Error, Result};

/// The legal specialist: a system prompt and one prompt per analysis. `{{ text }}` is where the
/// document goes.
pub fn legal_config() -> AgentConfig {
    let prompts = [
        (
            "term_extraction",
            "List the key terms of this contract: the parties, the term and termination, \
             payment, liability and governing law. One short line each.\n\n{{ text }}",
        ),
        (
            "risk_assessment",
            "Name the three biggest legal risks for our client in this contract and say why, \
             one short line each.\n\n{{ text }}",
        ),
        (
            "compliance_check",
            "Check this contract for missing clauses a lawyer expects: confidentiality, data \
             protection, limitation of liability, dispute resolution. Say which are present \
             and which are missing.\n\n{{ text }}",
        ),
        (
            "clause_extraction",
            "Quote the clauses of this contract on termination and liability.\n\n{{ text }}",
        ),
    ];
    AgentConfig {
        model: None,
        system_prompt: Some(
            "You are a careful legal analyst. Answer briefly and only from the document given. \
             Names appear as placeholders such as [PERSON_1]; keep them as they are."
                .into(),
        ),
        domain: Some("legal".into()),
        prompts: prompts
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// A task for the coordinator, in the seed's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// What kind of task, such as `legal_document_analysis`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The document, relative to the files root.
    pub document: String,
    /// The analyses wanted, such as `term_extraction`; each names a specialist prompt.
    pub requirements: Vec<String>,
}

/// Plans tasks into workflows and aggregates their results.
#[derive(Debug, Clone)]
pub struct Coordinator {
    specialist: AgentConfig,
    /// Largest number of document characters put into one prompt (the model's context is
    /// small).
    pub max_document_chars: usize,
    /// `max_tokens` of each analysis.
    pub max_tokens: u32,
}

impl Coordinator {
    /// A coordinator planning for a specialist with `specialist`'s prompts.
    pub fn new(specialist: AgentConfig) -> Self {
        Self {
            specialist,
            max_document_chars: 3000,
            max_tokens: 96,
        }
    }

    /// The analyses this coordinator can plan (its specialist's prompt names).
    pub fn known_requirements(&self) -> Vec<String> {
        self.specialist.prompts.keys().cloned().collect()
    }

    /// Decomposes a task from the template: read the document, scrub it, run one analysis per
    /// requirement in parallel on a specialist, aggregate, validate the aggregate.
    pub fn decompose(&self, task: &Task) -> Result<Workflow> {
        if task.requirements.is_empty() {
            return Err(Error::Input {
                name: "requirements".into(),
                message: "name at least one analysis".into(),
            });
        }
        let mut steps = vec![
            step(
                "read",
                StepKind::FileOperations,
                Some("executor"),
                json!({"operation": "read", "path": task.document}),
                &[],
            ),
            step(
                "scrub",
                StepKind::PiiScrub,
                Some("executor"),
                json!({"text": "{{ steps.read.output.text }}"}),
                &[],
            ),
        ];
        let mut merged = serde_json::Map::new();
        for req in &task.requirements {
            let template = self
                .specialist
                .prompts
                .get(req)
                .ok_or_else(|| Error::Input {
                    name: "requirements".into(),
                    message: format!(
                        "unknown analysis `{req}`; known: {}",
                        self.known_requirements().join(", ")
                    ),
                })?;
            let id = req.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
            let prompt = template.replace(
                "{{ text }}",
                &format!(
                    "{{{{ steps.scrub.output.text[:{}] }}}}",
                    self.max_document_chars
                ),
            );
            steps.push(step(
                &id,
                StepKind::LlmGeneration,
                Some("specialist"),
                json!({"prompt": prompt, "max_tokens": self.max_tokens}),
                &[],
            ));
            merged.insert(
                req.clone(),
                Value::String(format!("{{{{ steps.{id}.output.text }}}}")),
            );
        }
        steps.push(step(
            "aggregate",
            StepKind::DataProcessing,
            Some("coordinator"),
            json!({"operation": "merge", "values": merged}),
            &[],
        ));
        steps.push(step(
            "validate",
            StepKind::Validation,
            Some("validator"),
            json!({
                "input": "{{ steps.aggregate.output }}",
                "non_empty": true,
                "schema": {
                    "type": "object",
                    "required": task.requirements,
                    "additionalProperties": {"type": "string", "minLength": 1}
                }
            }),
            &[],
        ));
        Ok(Workflow {
            name: format!("{}: {}", task.kind, task.document),
            description: format!(
                "{} of {} by the coordinator's template",
                task.requirements.join(", "),
                task.document
            ),
            inputs: BTreeMap::new(),
            on_failure: FailurePolicy::FailFast,
            steps,
        })
    }

    /// Decomposes a task by asking the model which of the known analyses the task needs, then
    /// plans those from the template. Names the model gives that are not known are ignored;
    /// if it names none, the task's own requirements are used.
    pub async fn decompose_with_llm(
        &self,
        generator: &dyn TextGenerator,
        model: ModelId,
        task: &Task,
        description: &str,
    ) -> Result<Workflow> {
        let known = self.known_requirements();
        let prompt = format!(
            "A lawyer asks: {description}\nWhich of these analyses are needed? Answer with the \
             names only, separated by commas: {}",
            known.join(", ")
        );
        let answer =
            crate::executor::ask_once(generator, model, prompt, 48, CancellationToken::new())
                .await?
                .to_ascii_lowercase();
        let mut chosen: Vec<String> = known
            .iter()
            .filter(|k| answer.contains(k.as_str()) || answer.contains(&k.replace('_', " ")))
            .cloned()
            .collect();
        if chosen.is_empty() {
            chosen = task.requirements.clone();
        }
        self.decompose(&Task {
            requirements: chosen,
            ..task.clone()
        })
    }

    /// Aggregates step outputs into one object: generation outputs contribute their text.
    pub fn aggregate(results: &BTreeMap<String, Value>, keys: &[String]) -> Value {
        let mut out = serde_json::Map::new();
        for key in keys {
            let id = key.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
            if let Some(v) = results.get(&id) {
                let text = v.get("text").cloned().unwrap_or_else(|| v.clone());
                out.insert(key.clone(), text);
            }
        }
        Value::Object(out)
    }
}

/// A step definition, for workflow builders.
pub fn step(
    id: &str,
    kind: StepKind,
    agent: Option<&str>,
    parameters: Value,
    deps: &[&str],
) -> StepDef {
    StepDef {
        id: id.into(),
        kind: kind.as_str().into(),
        agent: agent.map(str::to_string),
        parameters,
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        timeout: None,
        retries: 0,
    }
}

/// An input declaration, for workflow builders.
pub fn input(description: &str) -> InputDef {
    InputDef {
        description: description.into(),
        default: None,
    }
}

#[derive(Debug, Default)]
struct KindStats {
    attempts: u64,
    failures: u64,
    total_ms: f64,
    max_ms: f64,
    recent: VecDeque<f64>,
}

/// Latency and failure figures of one step type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepStats {
    /// Attempts recorded.
    pub attempts: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Mean attempt time, milliseconds.
    pub mean_ms: f64,
    /// Median of the last 1,024 attempts, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile of the last 1,024 attempts, milliseconds.
    pub p95_ms: f64,
    /// Longest attempt, milliseconds.
    pub max_ms: f64,
}

/// One agent's load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentLoad {
    /// The agent.
    pub id: AgentId,
    /// Its status.
    pub status: AgentStatus,
    /// Attempts running.
    pub load: usize,
    /// Attempts it may run at once.
    pub capacity: usize,
    /// Attempts completed.
    pub completed: u64,
    /// Attempts failed.
    pub failed: u64,
}

/// The monitor's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorReport {
    /// Per step type.
    pub steps: BTreeMap<String, StepStats>,
    /// Per agent.
    pub agents: Vec<AgentLoad>,
}

/// The monitor agent: step latencies, failures and agent load.
#[derive(Debug, Clone)]
pub struct Monitor {
    registry: Registry,
    stats: Arc<Mutex<BTreeMap<StepKind, KindStats>>>,
}

impl Monitor {
    /// A monitor over `registry`'s agents.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            stats: Arc::default(),
        }
    }

    /// Records one attempt.
    pub fn record(&self, kind: StepKind, _agent: &AgentId, elapsed: Duration, ok: bool) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let s = stats.entry(kind).or_default();
        s.attempts += 1;
        if !ok {
            s.failures += 1;
        }
        s.total_ms += ms;
        s.max_ms = s.max_ms.max(ms);
        if s.recent.len() == 1024 {
            s.recent.pop_front();
        }
        s.recent.push_back(ms);
    }

    /// The figures so far.
    pub fn report(&self) -> MonitorReport {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let steps = stats
            .iter()
            .map(|(k, s)| {
                let mut sorted: Vec<f64> = s.recent.iter().copied().collect();
                sorted.sort_by(f64::total_cmp);
                let pct = |p: f64| {
                    if sorted.is_empty() {
                        0.0
                    } else {
                        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
                    }
                };
                (
                    k.as_str().to_string(),
                    StepStats {
                        attempts: s.attempts,
                        failures: s.failures,
                        mean_ms: if s.attempts > 0 {
                            s.total_ms / s.attempts as f64
                        } else {
                            0.0
                        },
                        p50_ms: pct(0.5),
                        p95_ms: pct(0.95),
                        max_ms: s.max_ms,
                    },
                )
            })
            .collect();
        let agents = self
            .registry
            .list()
            .into_iter()
            .map(|a| AgentLoad {
                id: a.spec.id,
                status: a.status,
                load: a.load,
                capacity: a.spec.max_concurrent,
                completed: a.performance_metrics.completed,
                failed: a.performance_metrics.failed,
            })
            .collect();
        MonitorReport { steps, agents }
    }
}
