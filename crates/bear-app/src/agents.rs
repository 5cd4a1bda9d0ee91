//! The workflow engine's agents: `GET/POST/DELETE /api/v1/agents` and `bear agents list`,
//! over the registry of the engine the caller runs.

use bear_agents::{AgentKind, AgentStatus, Registry};
use bear_core::{AgentId, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::docs::Removed;
use crate::{Error, Result};

/// Which agents to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsQuery {
    /// `coordinator`, `executor`, `validator`, `monitor` or `specialist`.
    #[serde(default, rename = "type")]
    pub kind: Option<AgentKind>,
    /// `active`, `idle`, `busy` or `failed`.
    #[serde(default)]
    pub status: Option<AgentStatus>,
}

/// The step an agent is running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CurrentTask {
    /// The run.
    pub run_id: String,
    /// The step within it.
    pub step_id: String,
}

/// An agent, as the seed's agent routes show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `coordinator`, `executor`, `validator`, `monitor` or `specialist`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Step types it can run (`*`: any).
    pub capabilities: Vec<String>,
    /// Attempts it runs at once.
    pub max_concurrent: usize,
    /// Domain configuration (a specialist's domain and prompts, a model).
    #[schema(value_type = Object)]
    pub config: bear_agents::AgentConfig,
    /// `active`, `idle`, `busy` or `failed`.
    pub status: String,
    /// Attempts running now.
    pub load: usize,
    /// The steps it runs now, as `run/step`.
    pub current_tasks: Vec<String>,
    /// The first of those, or null when idle.
    pub current_task: Option<CurrentTask>,
    /// Attempts, successes, failures, average time per step type.
    #[schema(value_type = Object)]
    pub performance_metrics: bear_agents::AgentMetrics,
}

impl AgentView {
    /// The view of one agent.
    pub fn of(a: bear_agents::AgentInfo) -> Self {
        Self {
            id: a.spec.id.to_string(),
            name: a.spec.name,
            kind: a.spec.kind.as_str().to_string(),
            capabilities: a.spec.capabilities.into_iter().collect(),
            max_concurrent: a.spec.max_concurrent,
            config: a.spec.config,
            status: serde_json::to_value(a.status)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            load: a.load,
            current_tasks: a.current_tasks,
            current_task: a.current_task.map(|t| CurrentTask {
                run_id: t.run_id,
                step_id: t.step_id,
            }),
            performance_metrics: a.performance_metrics,
        }
    }
}

/// The seed's `POST /agents` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    /// `coordinator`, `executor`, `validator`, `monitor` or `specialist`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "executor")]
    pub kind: AgentKind,
    /// 1 to 128 characters.
    pub name: String,
    /// Step types it can run (`*`: any).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Domain configuration.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: bear_agents::AgentConfig,
    /// Attempts it runs at once, 1 to 256 [default: 4].
    #[serde(default)]
    pub max_concurrent: Option<usize>,
}

fn no_agent(id: &str) -> Error {
    Error::Core(bear_core::Error::backend(
        ErrorKind::NotFound,
        format!("no agent `{id}`"),
    ))
}

fn agent_id(id: &str) -> Result<AgentId> {
    AgentId::new(id).map_err(|_| no_agent(id))
}

/// The seed's agents, one of each type: the registry of a process without a server.
pub fn default_registry() -> Registry {
    Registry::with_default_agents()
}

/// The agents of `registry` that `q` selects.
pub fn list(registry: &Registry, q: &AgentsQuery) -> Vec<AgentView> {
    registry
        .list()
        .into_iter()
        .filter(|a| q.kind.is_none_or(|k| a.spec.kind == k))
        .filter(|a| q.status.is_none_or(|st| a.status == st))
        .map(AgentView::of)
        .collect()
}

/// Agent `id`.
pub fn get(registry: &Registry, id: &str) -> Result<AgentView> {
    let id = agent_id(id)?;
    registry
        .get(&id)
        .map(AgentView::of)
        .ok_or_else(|| no_agent(id.as_str()))
}

/// Registers an agent; its id is minted here.
pub fn create(registry: &Registry, req: CreateAgent) -> Result<AgentView> {
    if req.name.trim().is_empty() || req.name.len() > 128 {
        return Err(Error::invalid("name", "1 to 128 characters"));
    }
    for (i, c) in req.capabilities.iter().enumerate() {
        if c != "*" && bear_agents::StepKind::parse(c).is_none() {
            return Err(Error::invalid(
                format!("capabilities[{i}]"),
                "expected a step type or `*`",
            ));
        }
    }
    let max_concurrent = req.max_concurrent.unwrap_or(4);
    if !(1..=256).contains(&max_concurrent) {
        return Err(Error::invalid("max_concurrent", "1 to 256"));
    }
    let id = AgentId::new(format!(
        "agent-{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    ))?;
    registry.register(bear_agents::AgentSpec {
        id: id.clone(),
        name: req.name,
        kind: req.kind,
        capabilities: req.capabilities.into_iter().collect(),
        max_concurrent,
        config: req.config,
    })?;
    get(registry, id.as_str())
}

/// Removes agent `id`: attempts it runs finish; it gets no new work.
pub fn remove(registry: &Registry, id: &str) -> Result<Removed> {
    let agent = agent_id(id)?;
    registry.remove(&agent).map_err(|_| no_agent(id))?;
    Ok(Removed {
        id: agent.to_string(),
        path: None,
        status: "removed".into(),
    })
}
