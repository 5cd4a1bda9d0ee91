//! Workflow runs in this process (`bear workflow validate|run|resume|recover`): reading a
//! definition file, validating it against everything BEAR can provide, the engine over the
//! run database with only the backends a definition needs, and what a takeover of an
//! interrupted run needs to know.

use std::path::Path;
use std::sync::Arc;

use bear_agents::{Backends, Engine, MemoryStore, Progress, SqlStore, Workflow};
use bear_core::{EventBus, RunId, StepStatus, WorkflowStateStore};
use serde::Serialize;

use crate::{App, Result};

/// Reads a workflow definition: YAML, or JSON when the file ends in `.json`.
pub fn read_definition(path: &Path) -> Result<Workflow> {
    let text = std::fs::read_to_string(path).map_err(|e| bear_agents::Error::Parse {
        path: path.display().to_string(),
        message: format!("cannot read the file: {}", e.kind()),
    })?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    Ok(if is_json {
        Workflow::from_json(&text)?
    } else {
        Workflow::parse(&text)?
    })
}

/// A definition that passed validation: `bear workflow validate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Validation {
    /// Always true (an invalid definition is an error naming the step and field).
    pub valid: bool,
    /// The workflow's name.
    pub name: String,
    /// Its steps.
    pub steps: usize,
}

/// The keyring entry whose data key seals the run database's inputs, outputs and errors (not
/// a collection name: those start with a letter or digit).
pub const WORKFLOW_KEYS: &str = "@workflows";

/// A run stored in the run database, as a takeover needs it.
#[derive(Debug, Clone)]
pub struct StoredRun {
    /// The definition it was started with.
    pub workflow: Workflow,
    /// Its steps completed so far.
    pub completed: usize,
}

impl App {
    /// Checks `workflow` as if every backend were present: it checks the definition, not the
    /// machine; tools are checked against the plugin directories. Touches no database.
    pub fn validate_workflow(&self, workflow: &Workflow) -> Result<Validation> {
        let loaded = self.config();
        let engine = crate::workflows::engine(
            loaded,
            Arc::new(MemoryStore::new()),
            Backends::default(),
            EventBus::default(),
        );
        let mut catalog = engine.catalog();
        catalog.has_generator = true;
        catalog.has_retriever = true;
        catalog.has_scrubber = true;
        catalog.tools = crate::workflows::tool_names(loaded);
        let plan = workflow.validate(&catalog)?;
        Ok(Validation {
            valid: true,
            name: workflow.name.clone(),
            steps: plan.steps.len(),
        })
    }

    /// The run database: `[storage] database_url` (PostgreSQL, shared by several instances)
    /// when set, else the SQLite file of `[workflows]`.
    pub async fn open_runs(&self) -> Result<Arc<SqlStore>> {
        let runs = open_store(self.config()).await?;
        // Runs may read and write several matters, so they are sealed under a key of their
        // own in the keyring rather than one matter's.
        let runs = match self.scrubbers_seal() {
            true => runs.sealed_with(self.keys_for(WORKFLOW_KEYS)?),
            false => runs,
        };
        runs.verify_keys().await?;
        Ok(Arc::new(runs))
    }

    /// An engine in this process over `runs`, with the backends `workflow` needs (none
    /// without one). File steps are confined to `workflows.files_root`, or else to the
    /// current directory.
    pub async fn local_engine(
        &self,
        runs: Arc<dyn WorkflowStateStore>,
        workflow: Option<&Workflow>,
        bus: EventBus,
    ) -> Result<Engine> {
        let needs = workflow.map(Workflow::needs).unwrap_or_default();
        let mut backends = self.workflow_backends(&needs, None).await?;
        if backends.files_root.is_none() {
            let cwd = std::env::current_dir().map_err(|e| {
                crate::Error::invalid(
                    "workflows.files_root",
                    format!("not set, and the current directory cannot be read ({e}); set it"),
                )
            })?;
            backends.files_root = Some(cwd);
        }
        Ok(crate::workflows::engine(self.config(), runs, backends, bus))
    }

    /// The runs whose process stopped before they ended.
    pub async fn interrupted_runs(&self, engine: &Engine) -> Result<Vec<Progress>> {
        Ok(engine
            .list(None)
            .await?
            .into_iter()
            .filter(|p| p.interrupted)
            .collect())
    }
}

/// The run database, unsealed: `[storage] database_url` (PostgreSQL) when set, else the
/// SQLite file of `[workflows]`.
pub async fn open_store(loaded: &crate::LoadedConfig) -> Result<SqlStore> {
    let wf = &loaded.config.workflows;
    Ok(match &loaded.config.storage.database_url {
        Some(url) => SqlStore::connect(url).await?,
        None => SqlStore::open(&wf.database_path(&loaded.dirs), wf.fsync).await?,
    })
}

/// Run `id` of `runs`: its definition (which decides the backends a takeover loads) and its
/// completed steps.
pub async fn stored_run(runs: &SqlStore, id: &RunId) -> Result<StoredRun> {
    let record = runs
        .load_run(id)
        .await?
        .ok_or_else(|| bear_agents::Error::RunNotFound(id.clone()))?;
    let completed = record
        .steps
        .values()
        .filter(|s| s.status == StepStatus::Completed)
        .count();
    let workflow = serde_json::from_value(record.definition).map_err(|_| {
        bear_core::Error::backend(
            bear_core::ErrorKind::Storage,
            "the stored definition cannot be read",
        )
    })?;
    Ok(StoredRun {
        workflow,
        completed,
    })
}
