//! The workflow engine: schedules a [`Plan`]'s DAG, runs attempts on agents, persists every
//! transition, and answers cancel, pause and resume.
//!
//! One driver task per run owns the run's state and is the only writer of it: step tasks tell
//! it when an attempt starts (so the start is persisted) and return their outcome through a
//! `JoinSet`. Steps start as soon as their dependencies completed, up to
//! `max_parallel_steps` at once and as agent capacity allows.
//!
//! Each attempt runs in its own task under the step's timeout: a panic fails the attempt, a
//! hang is cut off at the timeout (its cancellation token fires, then the task is aborted after
//! a grace period). Failed attempts are retried with exponential backoff, on another agent when
//! one is capable. A run in another process is controlled through the store: requests are
//! polled every `tick` (and announced at once where the store notifies). The instance running a
//! run holds a lease on it, renewed every `tick` and measured on the store's clock; a run whose
//! lease lapsed (its instance died) is taken over by exactly one [`Engine::resume`] or
//! [`Engine::recover`], completed steps kept.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bear_core::{
    AgentId, CancellationToken, Error as CoreError, ErrorKind, Event, EventBus, RunControl, RunId,
    RunRecord, RunStatus, StepId, StepRecord, StepStatus, WorkflowStateStore, WorkflowsConfig,
};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::agent::{Catalog, Registry};
use crate::definition::{FailurePolicy, Plan, Workflow};
use crate::error::{Error, Result};
use crate::executor::{Attempt, Backends, execute};
use crate::now_ms;
use crate::roles::Monitor;

mod driver;

use driver::drive;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Steps of one run executing at once.
    pub max_parallel_steps: usize,
    /// Largest step output, in bytes of JSON.
    pub max_output_bytes: usize,
    /// Timeout of steps whose definition gives none.
    pub default_timeout: Duration,
    /// Delay before the first retry; doubled for each further one.
    pub backoff_base: Duration,
    /// Longest delay between retries.
    pub backoff_max: Duration,
    /// How often a run renews its lease and looks for requests from other processes.
    pub tick: Duration,
    /// The lease on a run, on the store's clock: a run whose instance has not renewed it for
    /// this long was interrupted and may be taken over.
    pub stale_after: Duration,
    /// This engine's name in leases: unique per process (a v7 UUID unless set).
    pub instance: String,
    /// How long a cancelled or timed-out attempt gets to stop by itself before it is aborted.
    pub cancel_grace: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self::from_config(&WorkflowsConfig::default())
    }
}

impl EngineConfig {
    /// Settings from the `[workflows]` configuration.
    pub fn from_config(c: &WorkflowsConfig) -> Self {
        Self {
            max_parallel_steps: c.max_parallel_steps.max(1),
            max_output_bytes: c.max_output_bytes,
            default_timeout: Duration::from_secs_f64(c.default_timeout_secs),
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            tick: Duration::from_millis(250),
            stale_after: Duration::from_secs(5),
            instance: format!("instance-{}", uuid::Uuid::now_v7().simple()),
            cancel_grace: Duration::from_secs(2),
        }
    }
}

/// What the owner of a run wants it to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Desired {
    Run,
    Pause,
    Cancel,
}

struct Inner {
    store: Arc<dyn WorkflowStateStore>,
    registry: Registry,
    backends: Backends,
    bus: EventBus,
    config: EngineConfig,
    monitor: Monitor,
    live: Mutex<HashMap<RunId, watch::Sender<Desired>>>,
    slot_freed: Notify,
}

/// The workflow engine. Cloning gives another handle to the same engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("backends", &self.inner.backends)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A run started (or taken over) by this engine.
#[derive(Debug)]
pub struct RunHandle {
    /// The run.
    pub id: RunId,
    control: watch::Sender<Desired>,
    join: tokio::task::JoinHandle<Result<RunStatus>>,
}

impl RunHandle {
    /// Cancels the run: running steps are told to stop, no new step starts.
    pub fn cancel(&self) {
        self.control.send_replace(Desired::Cancel);
    }

    /// Pauses the run: no new step starts; running steps finish.
    pub fn pause(&self) {
        self.control.send_if_modified(|d| {
            let change = *d == Desired::Run;
            if change {
                *d = Desired::Pause;
            }
            change
        });
    }

    /// Resumes a paused run.
    pub fn resume(&self) {
        self.control.send_if_modified(|d| {
            let change = *d == Desired::Pause;
            if change {
                *d = Desired::Run;
            }
            change
        });
    }

    /// Stops driving the run here at once, as the death of this process would: nothing more
    /// is written, unfinished attempts are aborted and the lease is left to expire, after
    /// which another instance sharing the store takes the run over.
    pub fn abandon(self) {
        self.join.abort();
    }

    /// Waits for the run to end and returns its final status.
    pub async fn wait(self) -> Result<RunStatus> {
        self.join.await.map_err(|_| {
            Error::Core(CoreError::backend(
                ErrorKind::Internal,
                "the workflow driver stopped unexpectedly",
            ))
        })?
    }
}

/// One step's state, for progress reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepProgress {
    /// The step.
    pub id: StepId,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its status.
    pub status: StepStatus,
    /// The steps it waits for (the edges of the run's graph).
    pub depends_on: Vec<String>,
    /// Attempts started.
    pub attempts: u32,
    /// The agent of the latest attempt.
    pub agent: Option<AgentId>,
    /// Time from the latest attempt's start to the step's end (or now), milliseconds.
    pub duration_ms: Option<u64>,
    /// The error class and message of a failed step.
    pub error: Option<String>,
    /// The output of a completed step.
    pub output: Option<Value>,
}

/// A run's progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// The run.
    pub id: RunId,
    /// The workflow's name.
    pub name: String,
    /// The API key that started it; `None` for local runs.
    pub owner: Option<String>,
    /// The run's status.
    pub status: RunStatus,
    /// The run is marked running, but its process stopped answering: resume it.
    pub interrupted: bool,
    /// Steps completed.
    pub completed: usize,
    /// Steps in all.
    pub total: usize,
    /// Each step, in definition order.
    pub steps: Vec<StepProgress>,
    /// Unix milliseconds of creation.
    pub created_ms: u64,
    /// Unix milliseconds of the last change.
    pub updated_ms: u64,
    /// Seconds from creation to the last change.
    pub execution_time: f64,
    /// Outputs of completed steps, by id.
    pub results: BTreeMap<String, Value>,
}

/// How a step ended, reported by its task to the run's driver.
enum Outcome {
    Completed(Value),
    Failed(CoreError),
    Cancelled,
}

/// What a step task returns to the driver: the step, its attempts, the agent of the last one
/// and the outcome.
struct Finished {
    step: usize,
    attempts: u32,
    agent: Option<AgentId>,
    outcome: Outcome,
}

/// Messages from step tasks to the driver.
enum Note {
    Started {
        index: usize,
        attempt: u32,
        agent: AgentId,
    },
    Retrying {
        index: usize,
        error: String,
    },
}

/// `class: message`, as stored in a failed step's record.
fn error_text(e: &CoreError) -> String {
    let text = e.to_string();
    let kind = e.kind().as_str();
    if text.starts_with(kind) {
        text
    } else {
        format!("{kind}: {text}")
    }
}

impl Engine {
    /// An engine over a store, agents and backends, publishing on `bus`.
    pub fn new(
        store: Arc<dyn WorkflowStateStore>,
        registry: Registry,
        backends: Backends,
        bus: EventBus,
        config: EngineConfig,
    ) -> Self {
        let monitor = Monitor::new(registry.clone());
        Self {
            inner: Arc::new(Inner {
                store,
                registry,
                backends,
                bus,
                config,
                monitor,
                live: Mutex::new(HashMap::new()),
                slot_freed: Notify::new(),
            }),
        }
    }

    /// This engine's instance name: in its leases, and in `/metrics` as `bear_instance`.
    pub fn instance(&self) -> &str {
        &self.inner.config.instance
    }

    /// The agent registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The monitor agent's view: step latencies, failures, agent load.
    pub fn monitor(&self) -> &Monitor {
        &self.inner.monitor
    }

    /// The event bus transitions are published on.
    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    /// The backends steps run through.
    pub fn backends(&self) -> &Backends {
        &self.inner.backends
    }

    /// What this engine offers, for validation.
    pub fn catalog(&self) -> Catalog {
        let b = &self.inner.backends;
        Catalog {
            agents: self.inner.registry.specs(),
            tools: b.tools.keys().cloned().collect(),
            has_generator: b.generator.is_some(),
            has_retriever: b.retriever.is_some(),
            has_scrubber: b.scrubber.is_some(),
            default_timeout: self.inner.config.default_timeout,
        }
    }

    /// Validates a definition against this engine.
    pub fn validate(&self, workflow: &Workflow) -> Result<Plan> {
        workflow.validate(&self.catalog())
    }

    /// Validates, persists and starts a run for the local user.
    pub async fn start(
        &self,
        workflow: Workflow,
        inputs: BTreeMap<String, Value>,
    ) -> Result<RunHandle> {
        self.start_as(workflow, inputs, None).await
    }

    /// [`Engine::start`] on behalf of `owner` (an API key's public id), recorded with the run.
    pub async fn start_as(
        &self,
        workflow: Workflow,
        inputs: BTreeMap<String, Value>,
        owner: Option<String>,
    ) -> Result<RunHandle> {
        let plan = self.validate(&workflow)?;
        let inputs = workflow.resolve_inputs(&inputs)?;
        let id = RunId::new(format!("run-{}", uuid::Uuid::now_v7().simple()))?;
        let now = now_ms();
        let steps = plan
            .steps
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    StepRecord::pending(format!("{id}/{}", s.id), now),
                )
            })
            .collect();
        let record = RunRecord {
            id: id.clone(),
            name: workflow.name.clone(),
            definition: serde_json::to_value(&workflow).map_err(|_| {
                CoreError::backend(ErrorKind::Internal, "the definition cannot be stored")
            })?,
            inputs,
            status: RunStatus::Pending,
            steps,
            created_ms: now,
            updated_ms: now,
            heartbeat_ms: now,
            leased: true,
            owner,
        };
        let (instance, lease) = self.lease();
        self.inner
            .store
            .create_run(&record, instance, lease)
            .await?;
        Ok(self.launch(plan, record))
    }

    fn launch(&self, plan: Plan, record: RunRecord) -> RunHandle {
        let (tx, rx) = watch::channel(Desired::Run);
        let id = record.id.clone();
        self.inner
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx.clone());
        let inner = self.inner.clone();
        // Leaves the live map however the driver ends: returned, failed, or aborted (even
        // before it first ran: the task owns it from the start).
        let live = Live {
            inner: inner.clone(),
            run: id.clone(),
        };
        let join = tokio::spawn(async move {
            let _live = live;
            drive(inner, Arc::new(plan), record, rx).await
        });
        RunHandle {
            id,
            control: tx,
            join,
        }
    }

    async fn load(&self, run: &RunId) -> Result<RunRecord> {
        self.inner
            .store
            .load_run(run)
            .await?
            .ok_or_else(|| Error::RunNotFound(run.clone()))
    }

    fn live(&self, run: &RunId) -> Option<watch::Sender<Desired>> {
        self.inner
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(run)
            .cloned()
    }

    /// This engine's instance name and lease length.
    fn lease(&self) -> (&str, Duration) {
        let c = &self.inner.config;
        (&c.instance, c.stale_after)
    }

    /// Sends `control` to a run: directly when this engine runs it, through the store when
    /// another live instance does. When none does, claims the run and returns its record.
    async fn control(&self, run: &RunId, control: RunControl) -> Result<Option<RunRecord>> {
        if let Some(tx) = self.live(run) {
            let desired = match control {
                RunControl::Pause => Desired::Pause,
                RunControl::Resume => Desired::Run,
                RunControl::Cancel => Desired::Cancel,
            };
            tx.send_replace(desired);
            return Ok(None);
        }
        let record = self.load(run).await?;
        if record.status.is_terminal() {
            return Err(Error::RunState {
                run: run.clone(),
                status: record.status.as_str(),
                message: "it has already finished",
            });
        }
        let (instance, lease) = self.lease();
        if record.leased || !self.inner.store.claim(run, instance, lease).await? {
            self.inner.store.request_control(run, control).await?;
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// Cancels a run. A finished run is an error; an interrupted one is marked cancelled.
    pub async fn cancel(&self, run: &RunId) -> Result<()> {
        if let Some(mut record) = self.control(run, RunControl::Cancel).await? {
            let now = now_ms();
            for step in record.steps.values_mut() {
                if !step.status.is_final() {
                    step.status = StepStatus::Skipped;
                    step.error = Some("cancelled: the run was cancelled".into());
                    step.updated_ms = now;
                    step.finished_ms = Some(now);
                }
            }
            record.status = RunStatus::Cancelled;
            record.updated_ms = now;
            self.inner.store.save_run(&record).await?;
            self.inner.store.release(run, self.lease().0).await?;
            self.inner.bus.publish(Event::RunChanged {
                run: run.clone(),
                status: RunStatus::Cancelled,
            });
        }
        Ok(())
    }

    /// Pauses a run: no new step starts; running ones finish.
    pub async fn pause(&self, run: &RunId) -> Result<()> {
        if self.control(run, RunControl::Pause).await?.is_some() {
            self.inner
                .store
                .set_run_status(run, RunStatus::Paused)
                .await?;
            self.inner.store.release(run, self.lease().0).await?;
        }
        Ok(())
    }

    /// Resumes a paused run, or takes over an interrupted one (its process died): completed
    /// steps keep their outputs, steps that were running are retried with the same
    /// idempotency keys. Returns a handle when this engine now runs it.
    pub async fn resume(&self, run: &RunId) -> Result<Option<RunHandle>> {
        match self.control(run, RunControl::Resume).await? {
            None => Ok(None),
            Some(record) => Ok(Some(self.take_over(record)?)),
        }
    }

    fn take_over(&self, mut record: RunRecord) -> Result<RunHandle> {
        let workflow: Workflow =
            serde_json::from_value(record.definition.clone()).map_err(|_| {
                CoreError::backend(ErrorKind::Storage, "the stored definition cannot be read")
            })?;
        let plan = self.validate(&workflow)?;
        for step in record.steps.values_mut() {
            if step.status == StepStatus::Running {
                step.status = StepStatus::Pending;
            }
        }
        Ok(self.launch(plan, record))
    }

    /// Takes over every interrupted run (running or pending, its lease expired), each claimed
    /// atomically: of several instances recovering at once, one gets each run. Paused runs
    /// stay paused.
    pub async fn recover(&self) -> Result<Vec<RunHandle>> {
        let mut handles = Vec::new();
        let (instance, lease) = self.lease();
        while let Some(run) = self.inner.store.claim_interrupted(instance, lease).await? {
            // Ours already (its renewals failed for a while): the claim renewed it.
            if self.live(&run).is_some() {
                continue;
            }
            let record = self.load(&run).await?;
            handles.push(self.take_over(record)?);
        }
        Ok(handles)
    }

    /// Recovers interrupted runs every half lease until the engine is dropped: in a server
    /// that shares its store, the runs of an instance that died are finished by another.
    pub fn spawn_takeover(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let period = self.inner.config.stale_after / 2;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                match (Engine { inner }).recover().await {
                    Ok(taken) if !taken.is_empty() => {
                        tracing::info!(runs = taken.len(), "took over interrupted workflow runs");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("looking for interrupted workflow runs failed: {e}"),
                }
            }
        })
    }

    /// A run's progress, from the store.
    pub async fn progress(&self, run: &RunId) -> Result<Progress> {
        let record = self.load(run).await?;
        Ok(self.progress_of(record))
    }

    /// Every run's progress, newest first, optionally only those with one status.
    pub async fn list(&self, status: Option<RunStatus>) -> Result<Vec<Progress>> {
        let runs = self.inner.store.list_runs(status).await?;
        Ok(runs.into_iter().map(|r| self.progress_of(r)).collect())
    }

    fn progress_of(&self, record: RunRecord) -> Progress {
        let order: Vec<(String, String, Vec<String>)> = record
            .definition
            .get("steps")
            .and_then(Value::as_array)
            .map(|steps| steps.iter().map(step_outline).collect())
            .unwrap_or_default();
        let now = now_ms();
        let mut steps = Vec::with_capacity(order.len());
        let mut results = BTreeMap::new();
        for (id, kind, depends_on) in order {
            let Ok(step_id) = StepId::new(id) else {
                continue;
            };
            let Some(s) = record.steps.get(&step_id) else {
                continue;
            };
            if let (StepStatus::Completed, Some(o)) = (s.status, &s.output) {
                results.insert(step_id.to_string(), o.clone());
            }
            steps.push(StepProgress {
                id: step_id,
                kind,
                status: s.status,
                depends_on,
                attempts: s.attempts,
                agent: s.agent.clone(),
                duration_ms: s
                    .started_ms
                    .map(|st| s.finished_ms.unwrap_or(now).saturating_sub(st)),
                error: s.error.clone(),
                output: s.output.clone(),
            });
        }
        let interrupted = matches!(record.status, RunStatus::Running | RunStatus::Pending)
            && self.live(&record.id).is_none()
            && !record.leased;
        Progress {
            completed: steps
                .iter()
                .filter(|s| s.status == StepStatus::Completed)
                .count(),
            total: steps.len(),
            id: record.id,
            name: record.name,
            owner: record.owner,
            status: record.status,
            interrupted,
            steps,
            created_ms: record.created_ms,
            updated_ms: record.updated_ms,
            execution_time: record.updated_ms.saturating_sub(record.created_ms) as f64 / 1000.0,
            results,
        }
    }
}

/// A run's entry in the engine's live map, removed when dropped.
struct Live {
    inner: Arc<Inner>,
    run: RunId,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.inner
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.run);
    }
}

/// A stored step definition's id, type and dependencies.
fn step_outline(step: &Value) -> (String, String, Vec<String>) {
    let text = |k| {
        step.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let depends_on = step
        .get("depends_on")
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    (text("id"), text("type"), depends_on)
}

/// Marks step `i` skipped (with why), persists and publishes it.
async fn skip(
    inner: &Inner,
    plan: &Plan,
    run: &RunId,
    i: usize,
    r: &mut StepRecord,
    run_status: RunStatus,
    why: &str,
) -> Result<()> {
    let now = now_ms();
    r.status = StepStatus::Skipped;
    r.error = Some(why.to_string());
    r.updated_ms = now;
    r.finished_ms = Some(now);
    inner
        .store
        .update_step(run, &plan.steps[i].id, r, run_status)
        .await?;
    inner.bus.publish(Event::StepChanged {
        run: run.clone(),
        step: plan.steps[i].id.clone(),
        status: StepStatus::Skipped,
    });
    Ok(())
}

async fn apply_note(
    inner: &Inner,
    plan: &Plan,
    run: &RunId,
    records: &mut [StepRecord],
    run_status: RunStatus,
    note: Note,
) -> Result<()> {
    let now = now_ms();
    let (i, status) = match note {
        Note::Started {
            index,
            attempt,
            agent,
        } => {
            let r = &mut records[index];
            r.status = StepStatus::Running;
            r.attempts = attempt;
            r.agent = Some(agent);
            r.started_ms = Some(now);
            r.updated_ms = now;
            (index, StepStatus::Running)
        }
        Note::Retrying { index, error } => {
            let r = &mut records[index];
            r.status = StepStatus::Pending;
            r.error = Some(error);
            r.updated_ms = now;
            (index, StepStatus::Pending)
        }
    };
    inner
        .store
        .update_step(run, &plan.steps[i].id, &records[i], run_status)
        .await?;
    inner.bus.publish(Event::StepChanged {
        run: run.clone(),
        step: plan.steps[i].id.clone(),
        status,
    });
    Ok(())
}

/// The rendering context of step `i`: its inputs and its dependencies' outputs.
fn build_context(plan: &Plan, i: usize, inputs: &Value, outputs: &[Option<Value>]) -> Arc<Value> {
    let step = &plan.steps[i];
    if !step.templated {
        return Arc::new(Value::Null);
    }
    let mut steps = serde_json::Map::new();
    for &d in &step.deps {
        if let Some(o) = &outputs[d] {
            steps.insert(
                plan.steps[d].id.to_string(),
                serde_json::json!({ "output": o }),
            );
        }
    }
    Arc::new(serde_json::json!({ "inputs": inputs, "steps": steps }))
}

/// Runs one step to its end: attempts, retries with backoff, agent selection.
#[allow(clippy::too_many_arguments)]
async fn run_step(
    inner: Arc<Inner>,
    plan: Arc<Plan>,
    run: RunId,
    i: usize,
    previous_attempts: u32,
    key: String,
    context: Arc<Value>,
    token: CancellationToken,
    notes: mpsc::UnboundedSender<Note>,
) -> Finished {
    let step = &plan.steps[i];
    let max_attempts = (step.retries + 1).max(previous_attempts + 1);
    let mut attempt = previous_attempts;
    let mut avoid: Vec<AgentId> = Vec::new();
    let mut last_agent = None;
    let task_name = format!("{run}/{}", step.id);
    loop {
        // An agent with room, or wait for one.
        let lease = loop {
            let freed = inner.slot_freed.notified();
            match inner
                .registry
                .acquire(&step.agent, step.kind, &avoid, task_name.clone())
            {
                Ok(Some(lease)) => break lease,
                Ok(None) => {
                    tokio::select! {
                        _ = freed => {}
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = token.cancelled() => return Finished { step: i, attempts: attempt, agent: last_agent, outcome: Outcome::Cancelled },
                    }
                }
                Err(e) => {
                    return Finished {
                        step: i,
                        attempts: attempt,
                        agent: last_agent,
                        outcome: Outcome::Failed(e.into()),
                    };
                }
            }
        };
        attempt += 1;
        let agent = lease.agent.clone();
        last_agent = Some(agent.clone());
        let _ = notes.send(Note::Started {
            index: i,
            attempt,
            agent: agent.clone(),
        });

        let started = Instant::now();
        let attempt_token = token.child_token();
        let agent_config = inner.registry.config(&agent).unwrap_or_default();
        let job = {
            let inner = inner.clone();
            let plan = plan.clone();
            let context = context.clone();
            let key = key.clone();
            let attempt_token = attempt_token.clone();
            tokio::spawn(async move {
                execute(
                    &inner.backends,
                    Attempt {
                        step: &plan.steps[i],
                        context: &context,
                        agent: agent_config,
                        idempotency_key: &key,
                        cancel: attempt_token,
                    },
                )
                .await
            })
        };
        let result = supervise(
            job,
            step.timeout,
            &token,
            &attempt_token,
            inner.config.cancel_grace,
        )
        .await;
        let result = result.and_then(|v| {
            let size = serde_json::to_vec(&v).map(|b| b.len()).unwrap_or(usize::MAX);
            if size > inner.config.max_output_bytes {
                Err(CoreError::backend(
                    ErrorKind::InvalidRequest,
                    format!(
                        "the output is too large: {size} bytes, the limit is {} (`[workflows] max_output_bytes`)",
                        inner.config.max_output_bytes
                    ),
                ))
            } else {
                Ok(v)
            }
        });
        let elapsed = started.elapsed();
        let ok = result.is_ok();
        lease.finish(step.kind, ok, elapsed);
        inner.slot_freed.notify_waiters();
        inner.monitor.record(step.kind, &agent, elapsed, ok);

        match result {
            Ok(v) => {
                return Finished {
                    step: i,
                    attempts: attempt,
                    agent: last_agent,
                    outcome: Outcome::Completed(v),
                };
            }
            Err(e) if e.kind() == ErrorKind::Cancelled || token.is_cancelled() => {
                return Finished {
                    step: i,
                    attempts: attempt,
                    agent: last_agent,
                    outcome: Outcome::Cancelled,
                };
            }
            Err(e) if attempt < max_attempts => {
                avoid.push(agent);
                let _ = notes.send(Note::Retrying {
                    index: i,
                    error: error_text(&e),
                });
                let shift = (attempt - previous_attempts - 1).min(16);
                let delay = inner
                    .config
                    .backoff_base
                    .saturating_mul(1 << shift)
                    .min(inner.config.backoff_max);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = token.cancelled() => return Finished { step: i, attempts: attempt, agent: last_agent, outcome: Outcome::Cancelled },
                }
            }
            Err(e) => {
                return Finished {
                    step: i,
                    attempts: attempt,
                    agent: last_agent,
                    outcome: Outcome::Failed(e),
                };
            }
        }
    }
}

/// Waits for an attempt under its timeout and the run's cancellation; a panic, a timeout or a
/// cancellation becomes an error, and a task that does not stop within `grace` is aborted.
async fn supervise(
    mut job: tokio::task::JoinHandle<Result<Value, CoreError>>,
    timeout: Duration,
    run_token: &CancellationToken,
    attempt_token: &CancellationToken,
    grace: Duration,
) -> Result<Value, CoreError> {
    let joined = |r: std::result::Result<Result<Value, CoreError>, tokio::task::JoinError>| match r
    {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(CoreError::backend(
            ErrorKind::Internal,
            "the step panicked; see BEAR's log for the location",
        )),
        Err(_) => Err(CoreError::backend(
            ErrorKind::Cancelled,
            "the step was aborted",
        )),
    };
    let stop = |mut job: tokio::task::JoinHandle<_>, error: CoreError| async move {
        attempt_token.cancel();
        if tokio::time::timeout(grace, &mut job).await.is_err() {
            job.abort();
        }
        Err(error)
    };
    tokio::select! {
        r = &mut job => joined(r),
        _ = tokio::time::sleep(timeout) => {
            stop(job, CoreError::backend(
                ErrorKind::Timeout,
                format!("the step ran past its timeout of {:.1} s", timeout.as_secs_f64()),
            )).await
        }
        _ = run_token.cancelled() => {
            stop(job, CoreError::backend(ErrorKind::Cancelled, "the run was cancelled")).await
        }
    }
}
