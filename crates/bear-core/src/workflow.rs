//! Workflow run state and the [`WorkflowStateStore`] trait that persists it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::{AgentId, RunId, StepId};

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
    /// The agent that ran (or runs) the latest attempt.
    #[serde(default)]
    pub agent: Option<AgentId>,
    /// Unix milliseconds when the latest attempt started.
    #[serde(default)]
    pub started_ms: Option<u64>,
    /// Unix milliseconds when the step reached a final status.
    #[serde(default)]
    pub finished_ms: Option<u64>,
}

impl StepRecord {
    /// A step that has not started, with its idempotency key.
    pub fn pending(idempotency_key: String, now_ms: u64) -> Self {
        Self {
            status: StepStatus::Pending,
            attempts: 0,
            idempotency_key,
            output: None,
            error: None,
            updated_ms: now_ms,
            agent: None,
            started_ms: None,
            finished_ms: None,
        }
    }
}

/// Persistent state of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run.
    pub id: RunId,
    /// The workflow's name, from its definition.
    pub name: String,
    /// The workflow definition as submitted.
    pub definition: serde_json::Value,
    /// The inputs the run was started with.
    #[serde(default)]
    pub inputs: serde_json::Value,
    /// Current status.
    pub status: RunStatus,
    /// Per-step state.
    pub steps: BTreeMap<StepId, StepRecord>,
    /// Unix milliseconds of creation.
    pub created_ms: u64,
    /// Unix milliseconds of the last change.
    pub updated_ms: u64,
    /// Unix milliseconds when the instance running the run last renewed its lease.
    #[serde(default)]
    pub heartbeat_ms: u64,
    /// Whether an instance held an unexpired lease on the run when it was read, by the store's
    /// clock (the database's, for a shared one). A running or pending run without one was
    /// interrupted (its instance died) and can be taken over. Set by the store; ignored when
    /// saved.
    #[serde(default)]
    pub leased: bool,
    /// Who started the run: an API key's public id; `None` for the local user (CLI). API keys
    /// other than admin keys see only their own runs.
    #[serde(default)]
    pub owner: Option<String>,
}

/// A request to the process that runs a run, which applies it at its next check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunControl {
    /// Start no new step; running steps finish.
    Pause,
    /// Continue a paused run.
    Resume,
    /// Stop running steps cooperatively and start no new one.
    Cancel,
}

impl RunControl {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Cancel => "cancel",
        }
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pause" => Some(Self::Pause),
            "resume" => Some(Self::Resume),
            "cancel" => Some(Self::Cancel),
            _ => None,
        }
    }
}

impl RunStatus {
    /// Whether the run can change no more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Running,
            Self::Paused,
            Self::Completed,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

impl StepStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Running,
            Self::Completed,
            Self::Failed,
            Self::Skipped,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Whether the step can change no more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Skipped)
    }
}

/// Durable storage for workflow runs.
///
/// Implemented by bear-agents' SQL store (SQLite, or PostgreSQL shared by several instances)
/// and its in-memory store. Called only by the workflow engine.
///
/// Callers may assume each method is atomic (after a crash either the whole write is visible or
/// none of it), that a write is durable once the method returns, and that
/// [`WorkflowStateStore::load_run`] of an unknown id returns `Ok(None)`.
///
/// Leases: the instance that runs a run holds a lease on it, measured on the store's clock and
/// renewed well before it expires ([`WorkflowStateStore::claim`]). Of several instances
/// claiming one run at once exactly one gets it; a run whose lease expired is taken over by
/// exactly one other instance ([`WorkflowStateStore::claim_interrupted`]).
#[async_trait::async_trait]
pub trait WorkflowStateStore: Send + Sync {
    /// Inserts or replaces a whole run (its lease is left as it is).
    async fn save_run(&self, run: &RunRecord) -> Result<()>;

    /// Inserts a new run, leased to `instance` for `lease`.
    async fn create_run(&self, run: &RunRecord, instance: &str, lease: Duration) -> Result<()>;

    /// Takes or renews the lease on `run` for `instance`, until `lease` from now on the store's
    /// clock. Granted (`true`) when the run is running, pending or paused and no other instance
    /// holds an unexpired lease on it.
    async fn claim(&self, run: &RunId, instance: &str, lease: Duration) -> Result<bool>;

    /// Claims for `instance` one interrupted run: running or pending, with no unexpired lease.
    /// Several instances calling at once never get the same run.
    async fn claim_interrupted(&self, instance: &str, lease: Duration) -> Result<Option<RunId>>;

    /// Gives up `instance`'s lease on `run`, if it holds it.
    async fn release(&self, run: &RunId, instance: &str) -> Result<()>;

    /// Completes when a control request may have been left for `run` (so the instance running
    /// it takes it at once rather than at its next poll). Stores without notifications never
    /// complete it; the engine polls them.
    async fn control_requested(&self, run: &RunId) {
        let _ = run;
        std::future::pending::<()>().await
    }

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

    /// Lists runs, optionally only those with one status, newest first.
    async fn list_runs(&self, status: Option<RunStatus>) -> Result<Vec<RunRecord>>;

    /// Sets a run's status alone (paused, cancelled, ...).
    async fn set_run_status(&self, run: &RunId, status: RunStatus) -> Result<()>;

    /// Leaves a request for the process running `run`; a later request replaces an earlier one
    /// not yet taken.
    async fn request_control(&self, run: &RunId, control: RunControl) -> Result<()>;

    /// Takes (and clears) the pending request for `run`, if any.
    async fn take_control(&self, run: &RunId) -> Result<Option<RunControl>>;
}
