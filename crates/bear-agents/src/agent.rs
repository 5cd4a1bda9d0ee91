//! Agents, the agent registry and the seed's adaptive load balancer.
//!
//! An agent is a named worker with a role ([`AgentKind`]), a set of capabilities (the step
//! types it runs, `*` for all) and a capacity. The engine asks the [`Registry`] for an agent for
//! each attempt of each step; the registry's [`LoadBalancer`] picks among the capable agents that
//! have room, by the seed's weights: capability 0.4, historical performance 0.3, current load
//! 0.2, predicted time 0.1. A step whose attempt failed on one agent is retried on another when
//! one is capable, and an agent that fails [`FAILURE_STREAK`] attempts in a row is marked
//! failed and gets no more work until it is reset.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bear_core::{AgentId, ModelId};
use serde::{Deserialize, Serialize};

use crate::definition::StepKind;
use crate::error::{Error, Result};

/// Consecutive failed attempts after which an agent is marked failed.
pub const FAILURE_STREAK: u32 = 3;

/// The seed's five agent roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Plans a task into steps, assigns them and aggregates the results.
    Coordinator,
    /// Runs steps through the generator, tool, retriever and scrubber traits.
    Executor,
    /// Checks results.
    Validator,
    /// Collects latencies, failures and load.
    Monitor,
    /// Holds domain configuration and prompts.
    Specialist,
}

impl AgentKind {
    /// Every role.
    pub const ALL: [AgentKind; 5] = [
        Self::Coordinator,
        Self::Executor,
        Self::Validator,
        Self::Monitor,
        Self::Specialist,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Coordinator => "coordinator",
            Self::Executor => "executor",
            Self::Validator => "validator",
            Self::Monitor => "monitor",
            Self::Specialist => "specialist",
        }
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An agent's status, as the seed's API reports it (plus `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Working, with room for more.
    Active,
    /// No work.
    Idle,
    /// At capacity.
    Busy,
    /// Failed too often in a row; gets no work until reset.
    Failed,
}

/// Domain configuration: what a specialist knows, or which model an agent uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// The model for `llm_generation` steps that name none.
    pub model: Option<ModelId>,
    /// A system prompt put before every generation this agent runs.
    pub system_prompt: Option<String>,
    /// The domain, such as `legal`.
    pub domain: Option<String>,
    /// Named prompt templates (`{{ text }}` is the input), such as `clause_extraction`.
    pub prompts: BTreeMap<String, String>,
}

/// What an agent is, as registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    /// Unique id.
    pub id: AgentId,
    /// Display name.
    pub name: String,
    /// Role.
    #[serde(rename = "type")]
    pub kind: AgentKind,
    /// Step types it runs (`*`: every type its role allows).
    pub capabilities: BTreeSet<String>,
    /// Attempts it runs at once.
    pub max_concurrent: usize,
    /// Domain configuration.
    #[serde(default)]
    pub config: AgentConfig,
}

impl AgentSpec {
    /// An agent with the given role and capabilities, capacity 4.
    pub fn new(id: &str, kind: AgentKind, capabilities: &[&str]) -> Result<Self> {
        let id = AgentId::new(id)?;
        Ok(Self {
            name: id.to_string(),
            id,
            kind,
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            max_concurrent: 4,
            config: AgentConfig::default(),
        })
    }

    /// How well this agent matches a step type: 1 when it names the type, 0.8 through `*`,
    /// 0 when it cannot run it. Validation steps are the validator's and the executor's work
    /// only; monitors run nothing.
    pub fn capability(&self, kind: StepKind) -> f64 {
        let allowed = match self.kind {
            AgentKind::Monitor => false,
            AgentKind::Validator => matches!(kind, StepKind::Validation | StepKind::PiiScrub),
            AgentKind::Coordinator => matches!(
                kind,
                StepKind::DataProcessing | StepKind::LlmGeneration | StepKind::Validation
            ),
            AgentKind::Executor | AgentKind::Specialist => true,
        };
        if !allowed {
            0.0
        } else if self.capabilities.contains(kind.as_str()) {
            1.0
        } else if self.capabilities.contains("*") {
            0.8
        } else {
            0.0
        }
    }
}

/// Who should run a step, from its `agent` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentRef {
    /// Any capable agent.
    Any,
    /// Any capable agent of this role.
    Kind(AgentKind),
    /// This agent first; any other capable agent if it has failed.
    Id(AgentId),
}

/// What an engine offers, for validating definitions against it.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The registered agents.
    pub agents: Vec<AgentSpec>,
    /// Tool names.
    pub tools: BTreeSet<String>,
    /// Whether `llm_generation` can run.
    pub has_generator: bool,
    /// Whether `rag_query` can run.
    pub has_retriever: bool,
    /// Whether `pii_scrub` can run.
    pub has_scrubber: bool,
    /// Timeout of steps that give none.
    pub default_timeout: Duration,
}

impl Catalog {
    /// Resolves a step's `agent` field; the error says what would have worked.
    pub fn resolve_agent(
        &self,
        agent: Option<&str>,
        kind: StepKind,
    ) -> std::result::Result<AgentRef, String> {
        let capable = |f: &dyn Fn(&AgentSpec) -> bool| {
            self.agents.iter().any(|a| f(a) && a.capability(kind) > 0.0)
        };
        match agent {
            None => {
                if capable(&|_| true) {
                    Ok(AgentRef::Any)
                } else {
                    Err(format!(
                        "no registered agent can run `{}` steps",
                        kind.as_str()
                    ))
                }
            }
            Some(name) => {
                if let Some(role) = AgentKind::parse(name) {
                    return if capable(&|a| a.kind == role) {
                        Ok(AgentRef::Kind(role))
                    } else {
                        Err(format!(
                            "no `{name}` agent can run `{}` steps",
                            kind.as_str()
                        ))
                    };
                }
                match self.agents.iter().find(|a| a.id.as_str() == name) {
                    Some(a) if a.capability(kind) > 0.0 => Ok(AgentRef::Id(a.id.clone())),
                    Some(_) => Err(format!(
                        "agent `{name}` cannot run `{}` steps",
                        kind.as_str()
                    )),
                    None => Err(format!(
                        "unknown agent `{name}`; registered: {}; or a type: {}",
                        self.agents
                            .iter()
                            .map(|a| a.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        AgentKind::ALL.map(AgentKind::as_str).join(", ")
                    )),
                }
            }
        }
    }
}

/// An agent's record of work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentMetrics {
    /// Attempts that succeeded.
    pub completed: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Failed attempts since the last success.
    pub failure_streak: u32,
    /// Total busy time, milliseconds.
    pub busy_ms: u64,
    /// Moving average of attempt time per step type, milliseconds.
    pub avg_ms: BTreeMap<String, f64>,
}

/// A snapshot of one agent, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// What it is.
    #[serde(flatten)]
    pub spec: AgentSpec,
    /// Its status now.
    pub status: AgentStatus,
    /// Attempts running now.
    pub load: usize,
    /// The steps it runs now, as `run/step`.
    pub current_tasks: Vec<String>,
    /// The seed's `current_task`: the first of those, or `None` when idle.
    pub current_task: Option<CurrentTask>,
    /// Its record.
    pub performance_metrics: AgentMetrics,
}

/// A step an agent is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentTask {
    /// The run.
    pub run_id: String,
    /// The step within it.
    pub step_id: String,
}

impl CurrentTask {
    /// From the `run/step` form the registry keeps.
    fn parse(task: &str) -> Option<Self> {
        let (run, step) = task.split_once('/')?;
        Some(Self {
            run_id: run.to_string(),
            step_id: step.to_string(),
        })
    }
}

/// The seed's adaptive load balancer: a weighted score over capable agents with room.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadBalancer {
    /// Weight of the capability match.
    pub capability: f64,
    /// Weight of the success rate.
    pub performance: f64,
    /// Weight of free capacity.
    pub load: f64,
    /// Weight of the predicted time.
    pub time: f64,
}

impl Default for LoadBalancer {
    fn default() -> Self {
        Self {
            capability: 0.4,
            performance: 0.3,
            load: 0.2,
            time: 0.1,
        }
    }
}

impl LoadBalancer {
    /// The agent's score for a step type, or `None` when it cannot take it now.
    pub fn score(
        &self,
        spec: &AgentSpec,
        metrics: &AgentMetrics,
        load: usize,
        failed: bool,
        kind: StepKind,
    ) -> Option<f64> {
        let capability = spec.capability(kind);
        if capability == 0.0 || failed || load >= spec.max_concurrent {
            return None;
        }
        // Laplace-smoothed success rate: a new agent starts at 0.5.
        let performance =
            (metrics.completed as f64 + 1.0) / ((metrics.completed + metrics.failed) as f64 + 2.0);
        let load_score = 1.0 - load as f64 / spec.max_concurrent.max(1) as f64;
        let predicted_secs = metrics
            .avg_ms
            .get(kind.as_str())
            .map(|ms| ms / 1000.0)
            .unwrap_or(1.0);
        let time_score = 1.0 / predicted_secs.max(1.0);
        Some(
            self.capability * capability
                + self.performance * performance
                + self.load * load_score
                + self.time * time_score,
        )
    }
}

#[derive(Debug)]
struct Slot {
    spec: AgentSpec,
    metrics: AgentMetrics,
    tasks: Vec<String>,
    failed: bool,
}

#[derive(Debug, Default)]
struct State {
    agents: BTreeMap<AgentId, Slot>,
}

/// The agent registry: who exists, what they can do, how they are doing.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    state: Arc<Mutex<State>>,
    balancer: LoadBalancer,
}

/// An agent's claim on one attempt. Report the outcome with [`Lease::finish`]; a lease dropped
/// without it counts as neither success nor failure.
#[derive(Debug)]
pub struct Lease {
    registry: Registry,
    /// The agent.
    pub agent: AgentId,
    task: String,
    done: bool,
}

impl Lease {
    /// Records the attempt's outcome and frees the agent's slot.
    pub fn finish(mut self, kind: StepKind, ok: bool, elapsed: Duration) {
        self.done = true;
        let mut state = self.registry.lock();
        if let Some(slot) = state.agents.get_mut(&self.agent) {
            release(slot, &self.task);
            let m = &mut slot.metrics;
            let ms = elapsed.as_secs_f64() * 1000.0;
            m.busy_ms += ms as u64;
            let avg = m.avg_ms.entry(kind.as_str().to_string()).or_insert(ms);
            *avg = 0.8 * *avg + 0.2 * ms;
            if ok {
                m.completed += 1;
                m.failure_streak = 0;
            } else {
                m.failed += 1;
                m.failure_streak += 1;
                if m.failure_streak >= FAILURE_STREAK {
                    slot.failed = true;
                }
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.done {
            let mut state = self.registry.lock();
            if let Some(slot) = state.agents.get_mut(&self.agent) {
                release(slot, &self.task);
            }
        }
    }
}

fn release(slot: &mut Slot, task: &str) {
    if let Some(i) = slot.tasks.iter().position(|t| t == task) {
        slot.tasks.swap_remove(i);
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The default team: a coordinator, two executors, a validator, a monitor and a legal
    /// specialist whose prompts cover clause extraction and risk assessment.
    pub fn with_default_agents() -> Self {
        let r = Self::new();
        let mut specs = vec![
            AgentSpec::new("coordinator", AgentKind::Coordinator, &["*"]),
            AgentSpec::new("executor-1", AgentKind::Executor, &["*"]),
            AgentSpec::new("executor-2", AgentKind::Executor, &["*"]),
            AgentSpec::new(
                "validator",
                AgentKind::Validator,
                &["validation", "pii_scrub"],
            ),
            AgentSpec::new("monitor", AgentKind::Monitor, &[]),
            AgentSpec::new(
                "legal-specialist",
                AgentKind::Specialist,
                &["llm_generation", "rag_query"],
            ),
        ]
        .into_iter()
        .map(|s| s.expect("built-in ids are valid"))
        .collect::<Vec<_>>();
        specs[5].config = crate::roles::legal_config();
        for s in specs {
            r.register(s).expect("built-in ids are unique");
        }
        r
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters only; they stay usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an agent; its id must be new.
    pub fn register(&self, spec: AgentSpec) -> Result<()> {
        if spec.max_concurrent == 0 {
            return Err(Error::Agent {
                id: spec.id.to_string(),
                message: "max_concurrent must be at least 1",
            });
        }
        let mut state = self.lock();
        if state.agents.contains_key(&spec.id) {
            return Err(Error::Agent {
                id: spec.id.to_string(),
                message: "an agent with this id is already registered",
            });
        }
        state.agents.insert(
            spec.id.clone(),
            Slot {
                spec,
                metrics: AgentMetrics::default(),
                tasks: Vec::new(),
                failed: false,
            },
        );
        Ok(())
    }

    /// Removes an agent. Attempts it is running finish; it gets no new ones.
    pub fn remove(&self, id: &AgentId) -> Result<AgentSpec> {
        self.lock()
            .agents
            .remove(id)
            .map(|s| s.spec)
            .ok_or_else(|| Error::Agent {
                id: id.to_string(),
                message: "no such agent",
            })
    }

    /// Marks an agent failed (no new work) or healthy again.
    pub fn set_failed(&self, id: &AgentId, failed: bool) -> Result<()> {
        let mut state = self.lock();
        let slot = state.agents.get_mut(id).ok_or_else(|| Error::Agent {
            id: id.to_string(),
            message: "no such agent",
        })?;
        slot.failed = failed;
        if !failed {
            slot.metrics.failure_streak = 0;
        }
        Ok(())
    }

    /// Every agent, by id.
    pub fn list(&self) -> Vec<AgentInfo> {
        self.lock().agents.values().map(info).collect()
    }

    /// One agent.
    pub fn get(&self, id: &AgentId) -> Option<AgentInfo> {
        self.lock().agents.get(id).map(info)
    }

    /// One agent's configuration.
    pub fn config(&self, id: &AgentId) -> Option<AgentConfig> {
        self.lock().agents.get(id).map(|s| s.spec.config.clone())
    }

    /// The registered specs, for a [`Catalog`].
    pub fn specs(&self) -> Vec<AgentSpec> {
        self.lock()
            .agents
            .values()
            .map(|s| s.spec.clone())
            .collect()
    }

    /// Picks an agent for an attempt and claims a slot on it.
    ///
    /// `avoid` lists agents that already failed this step; they are used only when no other
    /// capable agent exists. Returns `Ok(None)` when capable agents exist but all are at
    /// capacity (try again when one finishes), and an error when none is capable at all.
    pub fn acquire(
        &self,
        want: &AgentRef,
        kind: StepKind,
        avoid: &[AgentId],
        task: String,
    ) -> Result<Option<Lease>> {
        let mut state = self.lock();
        let role = match want {
            AgentRef::Any => None,
            AgentRef::Kind(k) => Some(*k),
            AgentRef::Id(id) => match state.agents.get(id) {
                Some(slot) => {
                    if !avoid.contains(id) && !slot.failed {
                        if slot.tasks.len() < slot.spec.max_concurrent {
                            return Ok(Some(self.claim(&mut state, id.clone(), task)));
                        }
                        return Ok(None);
                    }
                    // The named agent failed: any capable agent takes the work over.
                    None
                }
                None => None,
            },
        };
        let eligible =
            |s: &Slot| role.is_none_or(|r| s.spec.kind == r) && s.spec.capability(kind) > 0.0;
        let mut best: Option<(f64, bool, AgentId)> = None;
        let mut any_capable = false;
        for (id, slot) in &state.agents {
            if !eligible(slot) || slot.failed {
                continue;
            }
            any_capable = true;
            let Some(score) = self.balancer.score(
                &slot.spec,
                &slot.metrics,
                slot.tasks.len(),
                slot.failed,
                kind,
            ) else {
                continue;
            };
            let fresh = !avoid.contains(id);
            // Agents that have not failed this step come first; then the higher score.
            let better = match &best {
                None => true,
                Some((s, f, _)) => (fresh, score) > (*f, *s),
            };
            if better {
                best = Some((score, fresh, id.clone()));
            }
        }
        match best {
            Some((_, _, id)) => Ok(Some(self.claim(&mut state, id, task))),
            None if any_capable => Ok(None),
            None => Err(Error::NoAgent {
                what: format!("`{}` steps", kind.as_str()),
                capability: kind.as_str().to_string(),
            }),
        }
    }

    fn claim(&self, state: &mut State, id: AgentId, task: String) -> Lease {
        if let Some(slot) = state.agents.get_mut(&id) {
            slot.tasks.push(task.clone());
        }
        Lease {
            registry: self.clone(),
            agent: id,
            task,
            done: false,
        }
    }
}

fn info(slot: &Slot) -> AgentInfo {
    let load = slot.tasks.len();
    AgentInfo {
        spec: slot.spec.clone(),
        status: if slot.failed {
            AgentStatus::Failed
        } else if load == 0 {
            AgentStatus::Idle
        } else if load >= slot.spec.max_concurrent {
            AgentStatus::Busy
        } else {
            AgentStatus::Active
        },
        load,
        current_tasks: slot.tasks.clone(),
        current_task: slot.tasks.first().and_then(|t| CurrentTask::parse(t)),
        performance_metrics: slot.metrics.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, kind: AgentKind, caps: &[&str], capacity: usize) -> AgentSpec {
        let mut s = AgentSpec::new(id, kind, caps).unwrap();
        s.max_concurrent = capacity;
        s
    }

    #[test]
    fn the_seeds_weights_combine_the_four_factors() {
        let lb = LoadBalancer::default();
        let s = spec("a", AgentKind::Executor, &["llm_generation"], 4);
        let fresh = AgentMetrics::default();
        // New agent: capability 1, performance 0.5, load 1, time 1.
        let score = lb
            .score(&s, &fresh, 0, false, StepKind::LlmGeneration)
            .unwrap();
        assert!((score - (0.4 + 0.15 + 0.2 + 0.1)).abs() < 1e-9, "{score}");
        // Half loaded, 9 of 10 succeeded (smoothed 10/12), 4 s predicted.
        let m = AgentMetrics {
            completed: 9,
            failed: 1,
            avg_ms: [("llm_generation".to_string(), 4000.0)]
                .into_iter()
                .collect(),
            ..AgentMetrics::default()
        };
        let score = lb.score(&s, &m, 2, false, StepKind::LlmGeneration).unwrap();
        let want = 0.4 * 1.0 + 0.3 * (10.0 / 12.0) + 0.2 * 0.5 + 0.1 * 0.25;
        assert!((score - want).abs() < 1e-9, "{score} vs {want}");
        // Through `*` a generalist scores 0.8 on capability.
        let g = spec("g", AgentKind::Executor, &["*"], 4);
        let score = lb
            .score(&g, &fresh, 0, false, StepKind::LlmGeneration)
            .unwrap();
        assert!((score - (0.32 + 0.15 + 0.2 + 0.1)).abs() < 1e-9, "{score}");
        // Full, failed or incapable agents are not candidates.
        assert!(
            lb.score(&s, &fresh, 4, false, StepKind::LlmGeneration)
                .is_none()
        );
        assert!(
            lb.score(&s, &fresh, 0, true, StepKind::LlmGeneration)
                .is_none()
        );
        assert!(lb.score(&s, &fresh, 0, false, StepKind::RagQuery).is_none());
    }

    #[test]
    fn acquire_prefers_the_best_agent_and_avoids_failed_ones() {
        let r = Registry::new();
        r.register(spec("general", AgentKind::Executor, &["*"], 1))
            .unwrap();
        r.register(spec(
            "expert",
            AgentKind::Specialist,
            &["llm_generation"],
            1,
        ))
        .unwrap();
        let kind = StepKind::LlmGeneration;
        let first = r
            .acquire(&AgentRef::Any, kind, &[], "t1".into())
            .unwrap()
            .unwrap();
        assert_eq!(
            first.agent.as_str(),
            "expert",
            "the specialist matches best"
        );
        let second = r
            .acquire(&AgentRef::Any, kind, &[], "t2".into())
            .unwrap()
            .unwrap();
        assert_eq!(
            second.agent.as_str(),
            "general",
            "the expert is at capacity"
        );
        assert!(
            r.acquire(&AgentRef::Any, kind, &[], "t3".into())
                .unwrap()
                .is_none()
        );
        assert_eq!(r.get(&first.agent).unwrap().status, AgentStatus::Busy);
        first.finish(kind, false, Duration::from_millis(5));
        drop(second);
        // The expert failed this step: the retry goes to the other capable agent.
        let avoid = [AgentId::new("expert").unwrap()];
        let retry = r
            .acquire(&AgentRef::Any, kind, &avoid, "t1".into())
            .unwrap()
            .unwrap();
        assert_eq!(retry.agent.as_str(), "general");
        drop(retry);
        // Three failures in a row mark an agent failed; it gets no more work until reset.
        for _ in 0..2 {
            let l = r
                .acquire(
                    &AgentRef::Id(AgentId::new("expert").unwrap()),
                    kind,
                    &[],
                    "x".into(),
                )
                .unwrap()
                .unwrap();
            l.finish(kind, false, Duration::from_millis(1));
        }
        let expert = AgentId::new("expert").unwrap();
        assert_eq!(r.get(&expert).unwrap().status, AgentStatus::Failed);
        let l = r
            .acquire(&AgentRef::Id(expert.clone()), kind, &[], "y".into())
            .unwrap()
            .unwrap();
        assert_eq!(
            l.agent.as_str(),
            "general",
            "work of a failed agent goes elsewhere"
        );
        drop(l);
        r.set_failed(&expert, false).unwrap();
        assert_eq!(r.get(&expert).unwrap().status, AgentStatus::Idle);
        // A monitor runs nothing.
        let watchers = Registry::new();
        watchers
            .register(spec("m", AgentKind::Monitor, &["*"], 4))
            .unwrap();
        assert!(matches!(
            watchers.acquire(&AgentRef::Any, StepKind::Validation, &[], "v".into()),
            Err(Error::NoAgent { .. })
        ));
    }
}
