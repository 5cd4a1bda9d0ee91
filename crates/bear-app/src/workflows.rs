//! Workflow engines as the configuration asks for them, built once here for `bear workflow`
//! and bear-server alike: the backends a run's steps use (the model manager, the retriever
//! over the default collection, a `replace` scrubber, the plugin tools named `plugin.tool`),
//! each built only when a workflow needs it, and the engine over a run store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bear_agents::{Backends, Engine, EngineConfig, Needs};
use bear_core::{EventBus, ModelId, PiiPolicy, Tool, WorkflowStateStore};

use crate::{App, LoadedConfig, Result};

/// Every backend: what a server offers every workflow it may be sent.
pub const EVERYTHING: Needs = Needs {
    generator: true,
    scrubber: true,
    retriever: true,
    tools: true,
};

/// The names (`plugin.tool`) of the tools of every valid plugin in the plugin directories,
/// without loading any: enough to validate a definition.
pub fn tool_names(loaded: &LoadedConfig) -> BTreeSet<String> {
    bear_plugins::discover(&loaded.config.plugins.search_dirs(&loaded.dirs))
        .into_iter()
        .filter_map(|d| d.manifest.map(|m| (d.name, m)))
        .flat_map(|(plugin, m)| {
            m.tools
                .into_iter()
                .map(move |t| format!("{plugin}.{}", t.name))
        })
        .collect()
}

/// The tools of the plugins in `registry`, named `plugin.tool`.
pub fn tools_of(registry: &bear_plugins::Registry) -> BTreeMap<String, Arc<dyn Tool>> {
    let mut tools: BTreeMap<String, Arc<dyn Tool>> = BTreeMap::new();
    for (name, _) in registry.list() {
        if let Some(p) = registry.get(&name) {
            for t in bear_plugins::WasmtimeTool::all(&p) {
                tools.insert(format!("{name}.{}", t.spec().name), Arc::new(t));
            }
        }
    }
    tools
}

impl App {
    /// The backends for workflows that need `needs`; only those are built. Steps get a
    /// `replace` scrubber (`[PERSON_1]`), never reversible tokens: their outputs are stored in
    /// the run database. Tools come from `plugins` when the caller has loaded them, else from
    /// every plugin that loads (one that does not is logged and left out).
    pub async fn workflow_backends(
        &self,
        needs: &Needs,
        plugins: Option<&bear_plugins::Registry>,
    ) -> Result<Backends> {
        let loaded = self.config();
        let mut backends = Backends {
            default_model: Some(ModelId::new(&loaded.config.models.default_generator)?),
            files_root: loaded.config.workflows.files_root.clone(),
            ..Backends::default()
        };
        if needs.generator {
            backends.generator = Some(self.models().clone());
        }
        if needs.scrubber {
            backends.scrubber = Some(self.scrubber_for(PiiPolicy::Replace)?);
        }
        if needs.retriever {
            // Loaded by the first `rag_query`, not now: a server holds no embedding model
            // until a workflow asks.
            let embedder = crate::embed::OnDemandEmbedder::new(
                self.models().clone(),
                ModelId::new(&loaded.config.models.default_embedder)?,
            )?;
            backends.retriever = Some(Arc::new(bear_rag::RagRetriever::new(
                self.store().clone(),
                Arc::new(embedder),
                self.scrubber_for(loaded.config.rag.pii_policy)?,
            )));
        }
        if needs.tools {
            backends.tools = match plugins {
                Some(registry) => tools_of(registry),
                None => {
                    let (registry, warnings) = crate::plugins::load_all(loaded)?;
                    for w in warnings {
                        tracing::warn!("not available to workflows: {w}");
                    }
                    tools_of(&registry)
                }
            };
        }
        Ok(backends)
    }
}

impl App {
    /// What a server offers every workflow: all backends, with `registry`'s tools; when the
    /// embedder cannot be loaded, everything but `rag_query`, and a warning saying why.
    pub async fn server_backends(
        &self,
        registry: &bear_plugins::Registry,
    ) -> Result<(Backends, Option<String>)> {
        match self.workflow_backends(&EVERYTHING, Some(registry)).await {
            Ok(b) => Ok((b, None)),
            Err(e) => {
                let no_retriever = Needs {
                    retriever: false,
                    ..EVERYTHING
                };
                let b = self
                    .workflow_backends(&no_retriever, Some(registry))
                    .await?;
                Ok((b, Some(format!("workflows run without rag_query: {e}"))))
            }
        }
    }
}

/// The workflow engine of `[workflows]` over `store`, with the default agents.
pub fn engine(
    loaded: &LoadedConfig,
    store: Arc<dyn WorkflowStateStore>,
    backends: Backends,
    bus: EventBus,
) -> Engine {
    Engine::new(
        store,
        crate::agents::default_registry(),
        backends,
        bus,
        EngineConfig::from_config(&loaded.config.workflows),
    )
}

/// Which runs to list.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// `all` (the default), `pending`, `running`, `paused`, `completed`, `failed` or
    /// `cancelled`.
    #[serde(default)]
    pub status: Option<String>,
}

/// Steps done out of all.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RunCount {
    /// Steps completed.
    pub completed: usize,
    /// Steps in the workflow.
    pub total: usize,
}

/// One run in a list.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct WorkflowRow {
    /// The run.
    pub id: String,
    /// The workflow's name.
    pub name: String,
    /// `pending`, `running`, `paused`, `completed`, `failed` or `cancelled`.
    #[schema(value_type = String)]
    pub status: bear_core::RunStatus,
    /// Its process died while it ran; `bear workflow resume` or a server start continues it.
    pub interrupted: bool,
    /// When it started (RFC 3339, UTC).
    pub created_at: String,
    /// Steps done out of all.
    pub progress: RunCount,
}

/// RFC 3339 UTC from Unix milliseconds.
pub fn rfc3339_ms(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The runs in `engine`'s store that `viewer` may see, newest first as the store lists them.
pub async fn list(
    engine: &Engine,
    viewer: &crate::Viewer,
    q: &RunsQuery,
) -> Result<Vec<WorkflowRow>> {
    let status = match q.status.as_deref() {
        None | Some("all") => None,
        Some(other) => Some(bear_core::RunStatus::parse(other).ok_or_else(|| {
            crate::Error::invalid(
                "status",
                "expected all, pending, running, paused, completed, failed or cancelled",
            )
        })?),
    };
    Ok(engine
        .list(status)
        .await?
        .into_iter()
        .filter(|p| viewer.may_see(p.owner.as_deref()))
        .map(|p| WorkflowRow {
            id: p.id.to_string(),
            name: p.name,
            status: p.status,
            interrupted: p.interrupted,
            created_at: rfc3339_ms(p.created_ms),
            progress: RunCount {
                completed: p.completed,
                total: p.total,
            },
        })
        .collect())
}

/// Steps done out of all, and each step's state.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct StepsProgress {
    /// Steps completed.
    pub completed: usize,
    /// Steps in the workflow.
    pub total: usize,
    /// Each step: id, type, status, attempts, agent, duration, error, output.
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<bear_agents::StepProgress>,
}

/// One run in full: the seed's `progress` and `results` (`GET /api/v1/workflows/{id}`,
/// `bear workflow status|run --json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct WorkflowStatus {
    /// The run.
    pub id: String,
    /// The workflow's name.
    pub name: String,
    /// `pending`, `running`, `paused`, `completed`, `failed` or `cancelled`.
    #[schema(value_type = String)]
    pub status: bear_core::RunStatus,
    /// Its process died while it ran.
    pub interrupted: bool,
    /// Steps done out of all, and each step's state.
    pub progress: StepsProgress,
    /// Each completed step's output, by step id.
    #[schema(value_type = Object)]
    pub results: BTreeMap<String, serde_json::Value>,
    /// Seconds the run has taken.
    pub execution_time: f64,
}

impl WorkflowStatus {
    /// The view of a run's progress.
    pub fn of(p: bear_agents::Progress) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name,
            status: p.status,
            interrupted: p.interrupted,
            progress: StepsProgress {
                completed: p.completed,
                total: p.total,
                steps: p.steps,
            },
            results: p.results,
            execution_time: p.execution_time,
        }
    }
}

/// The seed's answer to `POST /workflows`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct WorkflowRun {
    /// The run's id, for `GET /workflows/{id}`.
    pub workflow_id: String,
    /// `completed`, `running` or `failed` (also `paused`, `cancelled`).
    #[schema(value_type = String)]
    pub status: bear_core::RunStatus,
    /// Each completed step's output, by step id.
    #[schema(value_type = Object)]
    pub results: BTreeMap<String, serde_json::Value>,
    /// Seconds the run has taken.
    pub execution_time: f64,
    /// Steps done out of all.
    pub progress: RunCount,
}

/// Starts `workflow` with `values`, owned by `viewer` when it is a key; with `wait`, answers
/// once the run has ended, else at once while it goes on.
pub async fn start(
    engine: &Engine,
    viewer: &crate::Viewer,
    workflow: bear_agents::Workflow,
    values: BTreeMap<String, serde_json::Value>,
    wait: bool,
) -> Result<WorkflowRun> {
    let owner = match viewer {
        crate::Viewer::Local => None,
        crate::Viewer::Key { id, .. } => Some(id.clone()),
    };
    let handle = engine.start_as(workflow, values, owner).await?;
    let id = handle.id.clone();
    if wait {
        handle.wait().await?;
    }
    // Without wait the handle is dropped here: the run goes on in the background.
    let p = engine.progress(&id).await?;
    // A run launched a moment ago may not have marked itself running yet: it is.
    let status = match p.status {
        bear_core::RunStatus::Pending => bear_core::RunStatus::Running,
        other => other,
    };
    Ok(WorkflowRun {
        workflow_id: id.to_string(),
        status,
        results: p.results,
        execution_time: p.execution_time,
        progress: RunCount {
            completed: p.completed,
            total: p.total,
        },
    })
}

/// Run `id` if `viewer` may see it; another key's run is not found, as if it did not exist.
pub async fn run_for(
    engine: &Engine,
    viewer: &crate::Viewer,
    id: &str,
) -> Result<bear_agents::Progress> {
    let missing = || {
        crate::Error::Core(bear_core::Error::backend(
            bear_core::ErrorKind::NotFound,
            format!("no workflow run `{id}`"),
        ))
    };
    let run = bear_core::RunId::new(id).map_err(|_| missing())?;
    let p = engine.progress(&run).await?;
    if viewer.may_see(p.owner.as_deref()) {
        Ok(p)
    } else {
        Err(missing())
    }
}

/// Pauses, resumes or cancels run `run` in `engine`: what `bear workflow pause|resume|cancel`
/// asks a running bear-server, and REST's `.../pause`, `.../resume` and `DELETE`. A resumed
/// run that this engine takes over goes on here.
pub async fn act(
    engine: &Engine,
    run: &bear_core::RunId,
    action: crate::control::RunAction,
) -> Result<crate::control::RunDone> {
    use crate::control::RunAction;
    let result = match action {
        RunAction::Pause => engine.pause(run).await.map(|()| "pause requested"),
        RunAction::Cancel => engine.cancel(run).await.map(|()| "cancel requested"),
        RunAction::Resume => engine.resume(run).await.map(|h| match h {
            Some(_) => "resumed in bear-server",
            None => "resume requested",
        }),
    }?;
    Ok(crate::control::RunDone {
        id: run.to_string(),
        result: result.into(),
    })
}
