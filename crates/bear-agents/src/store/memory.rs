//! [`MemoryStore`]: runs kept in this process, with the same lease rules as the SQL store.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bear_core::{
    Error as CoreError, ErrorKind, RunControl, RunId, RunRecord, RunStatus, StepId, StepRecord,
    WorkflowStateStore,
};

/// Runs kept in memory: nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    runs: Mutex<BTreeMap<RunId, Entry>>,
}

#[derive(Debug)]
struct Entry {
    record: RunRecord,
    control: Option<RunControl>,
    lease: Option<Lease>,
}

#[derive(Debug)]
struct Lease {
    owner: String,
    until: Instant,
}

impl Entry {
    /// The record as read: `leased` by the lease at `now`.
    fn read(&self, now: Instant) -> RunRecord {
        let mut r = self.record.clone();
        r.leased = self.lease.as_ref().is_some_and(|l| l.until > now);
        r
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<RunId, Entry>) -> T) -> T {
        let mut guard = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

fn unknown(run: &RunId) -> CoreError {
    CoreError::backend(ErrorKind::NotFound, format!("no workflow run `{run}`"))
}

#[async_trait::async_trait]
impl WorkflowStateStore for MemoryStore {
    async fn save_run(&self, run: &RunRecord) -> bear_core::Result<()> {
        self.with(|m| match m.get_mut(&run.id) {
            Some(e) => e.record = run.clone(),
            None => {
                let entry = Entry {
                    record: run.clone(),
                    control: None,
                    lease: None,
                };
                m.insert(run.id.clone(), entry);
            }
        });
        Ok(())
    }

    async fn create_run(
        &self,
        run: &RunRecord,
        instance: &str,
        lease: Duration,
    ) -> bear_core::Result<()> {
        self.save_run(run).await?;
        self.claim(&run.id, instance, lease).await.map(drop)
    }

    async fn claim(&self, run: &RunId, instance: &str, lease: Duration) -> bear_core::Result<bool> {
        let now = Instant::now();
        Ok(self.with(|m| {
            let Some(e) = m.get_mut(run) else {
                return false;
            };
            let open = !e.record.status.is_terminal();
            let free = e
                .lease
                .as_ref()
                .is_none_or(|l| l.owner == instance || l.until <= now);
            if open && free {
                e.lease = Some(Lease {
                    owner: instance.to_string(),
                    until: now + lease,
                });
                e.record.heartbeat_ms = crate::now_ms();
            }
            open && free
        }))
    }

    async fn claim_interrupted(
        &self,
        instance: &str,
        lease: Duration,
    ) -> bear_core::Result<Option<RunId>> {
        let now = Instant::now();
        let found = self.with(|m| {
            m.values()
                .filter(|e| matches!(e.record.status, RunStatus::Running | RunStatus::Pending))
                .filter(|e| e.lease.as_ref().is_none_or(|l| l.until <= now))
                .min_by_key(|e| e.record.created_ms)
                .map(|e| e.record.id.clone())
        });
        let Some(run) = found else { return Ok(None) };
        Ok(self.claim(&run, instance, lease).await?.then_some(run))
    }

    async fn release(&self, run: &RunId, instance: &str) -> bear_core::Result<()> {
        self.with(|m| {
            if let Some(e) = m.get_mut(run)
                && e.lease.as_ref().is_some_and(|l| l.owner == instance)
            {
                e.lease = None;
            }
        });
        Ok(())
    }

    async fn update_step(
        &self,
        run: &RunId,
        step: &StepId,
        record: &StepRecord,
        run_status: RunStatus,
    ) -> bear_core::Result<()> {
        self.with(|m| {
            let e = m.get_mut(run).ok_or_else(|| unknown(run))?;
            e.record.steps.insert(step.clone(), record.clone());
            e.record.status = run_status;
            e.record.updated_ms = record.updated_ms;
            Ok(())
        })
    }

    async fn load_run(&self, run: &RunId) -> bear_core::Result<Option<RunRecord>> {
        let now = Instant::now();
        Ok(self.with(|m| m.get(run).map(|e| e.read(now))))
    }

    async fn list_runs(&self, status: Option<RunStatus>) -> bear_core::Result<Vec<RunRecord>> {
        let now = Instant::now();
        let mut runs: Vec<RunRecord> = self.with(|m| {
            m.values()
                .filter(|e| status.is_none_or(|s| e.record.status == s))
                .map(|e| e.read(now))
                .collect()
        });
        runs.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
        Ok(runs)
    }

    async fn set_run_status(&self, run: &RunId, status: RunStatus) -> bear_core::Result<()> {
        self.with(|m| {
            let e = m.get_mut(run).ok_or_else(|| unknown(run))?;
            e.record.status = status;
            e.record.updated_ms = crate::now_ms();
            Ok(())
        })
    }

    async fn request_control(&self, run: &RunId, control: RunControl) -> bear_core::Result<()> {
        self.with(|m| {
            let e = m.get_mut(run).ok_or_else(|| unknown(run))?;
            e.control = Some(control);
            Ok(())
        })
    }

    async fn take_control(&self, run: &RunId) -> bear_core::Result<Option<RunControl>> {
        Ok(self.with(|m| m.get_mut(run).and_then(|e| e.control.take())))
    }
}
