//! Workflow run state and the [`WorkflowStateStore`] trait that persists it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::{RunId, StepId};

/// The status of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Accepted, not started.
    Pending,
    /// Steps are executing.
    Running,
    /// Paused by the user; resumable.
    Paused,
    /// Every step completed.
    Completed,
    /// A step failed and the policy stopped the run.
    Failed,
    /// Cancelled by the user.
    Cancelled,
}

impl RunStatus {
    /// Whether the run can change no more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// The status of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Waiting for dependencies.
    Pending,
    /// Executing now.
    Running,
    /// Finished with an output.
    Completed,
    /// Failed after its retries.
    Failed,
    /// Not run, because a dependency failed or the run was cancelled.
    Skipped,
}

/// Persistent state of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Current status.
    pub status: StepStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// Key that makes a retried side effect happen once.
    pub idempotency_key: String,
    /// The output, once completed.
    pub output: Option<serde_json::Value>,
    /// The error class and message, once failed; never user text.
    pub error: Option<String>,
    /// Unix milliseconds of the last change.
    pub updated_ms: u64,
}

/// Persistent state of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run.
    pub id: RunId,
    /// The workflow definition as submitted.
    pub definition: serde_json::Value,
    /// Current status.
    pub status: RunStatus,
    /// Per-step state.
    pub steps: BTreeMap<StepId, StepRecord>,
    /// Unix milliseconds of creation.
    pub created_ms: u64,
    /// Unix milliseconds of the last change.
    pub updated_ms: u64,
}

/// Durable storage for workflow runs.
///
/// Implemented by bear-agents' SQLite store. Called only by the workflow engine.
///
/// Callers may assume each method is atomic (after a crash either the whole write is visible or
/// none of it), that a write is durable once the method returns, and that
/// [`WorkflowStateStore::load_run`] of an unknown id returns `Ok(None)`.
#[async_trait::async_trait]
pub trait WorkflowStateStore: Send + Sync {
    /// Inserts or replaces a whole run.
    async fn save_run(&self, run: &RunRecord) -> Result<()>;

    /// Updates one step and the run's status together.
    async fn update_step(
        &self,
        run: &RunId,
        step: &StepId,
        record: &StepRecord,
        run_status: RunStatus,
    ) -> Result<()>;

    /// Loads a run.
    async fn load_run(&self, run: &RunId) -> Result<Option<RunRecord>>;

    /// Lists runs, optionally only those with one status.
    async fn list_runs(&self, status: Option<RunStatus>) -> Result<Vec<RunRecord>>;
}
