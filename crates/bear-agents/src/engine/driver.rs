//! The run driver: one per run, the only writer of the run's state. It starts steps whose
//! dependencies completed (up to `max_parallel_steps`), applies what step tasks report,
//! skips what can no longer run, follows pause, resume and cancel, renews the run's lease, and
//! settles the run's final status. A driver whose lease was taken over (its instance stalled
//! past the lease) stops at once, writing nothing more: its unfinished attempts are aborted and
//! the new owner retries them with the same idempotency keys.

use super::*;

/// The run's driver: the only writer of its state.
pub(super) async fn drive(
    inner: Arc<Inner>,
    plan: Arc<Plan>,
    record: RunRecord,
    mut control: watch::Receiver<Desired>,
) -> Result<RunStatus> {
    let (note_tx, mut note_rx) = mpsc::unbounded_channel::<Note>();
    let mut d = RunDriver::new(inner, plan, record, note_tx);
    d.begin().await?;
    let mut tick = tokio::time::interval(d.inner.config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (store, run) = (d.inner.store.clone(), d.run.clone());
    loop {
        d.skip_unreachable().await?;
        let desired = *control.borrow_and_update();
        d.follow(desired).await?;
        if desired == Desired::Run {
            d.start_ready();
        }
        if d.is_done() {
            break;
        }
        let idle = d.tasks.is_empty();
        tokio::select! {
            joined = d.tasks.join_next(), if !idle => {
                // Attempt starts sent before the task ended are applied first.
                while let Ok(note) = note_rx.try_recv() {
                    d.apply_note(note).await?;
                }
                // run_step never panics (it isolates attempts), so a join error cannot occur.
                if let Some(Ok(finished)) = joined {
                    d.settle(finished).await?;
                }
            }
            Some(note) = note_rx.recv() => d.apply_note(note).await?,
            changed = control.changed() => {
                if changed.is_err() {
                    // Every handle dropped: keep running to the end.
                    futures::future::pending::<()>().await;
                }
            }
            _ = tick.tick() => d.on_tick().await?,
            _ = store.control_requested(&run) => d.take_request().await,
        }
    }
    d.finish().await
}

/// A run's state while it is driven.
struct RunDriver {
    inner: Arc<Inner>,
    plan: Arc<Plan>,
    run: RunId,
    inputs: Value,
    records: Vec<StepRecord>,
    outputs: Vec<Option<Value>>,
    /// Per step, how many of its dependencies have not completed.
    waiting: Vec<usize>,
    to_skip: Vec<usize>,
    ready: VecDeque<usize>,
    failed_any: bool,
    /// No new step starts (fail-fast after a failure).
    stop_new: bool,
    run_status: RunStatus,
    cancelled: bool,
    run_token: CancellationToken,
    note_tx: mpsc::UnboundedSender<Note>,
    tasks: JoinSet<Finished>,
}

impl RunDriver {
    fn new(
        inner: Arc<Inner>,
        plan: Arc<Plan>,
        mut record: RunRecord,
        note_tx: mpsc::UnboundedSender<Note>,
    ) -> Self {
        let run = record.id.clone();
        let records: Vec<StepRecord> = plan
            .steps
            .iter()
            .map(|s| {
                record
                    .steps
                    .remove(&s.id)
                    .unwrap_or_else(|| StepRecord::pending(format!("{run}/{}", s.id), now_ms()))
            })
            .collect();
        let outputs = records.iter().map(|r| r.output.clone()).collect();
        let waiting = plan
            .steps
            .iter()
            .map(|s| {
                s.deps
                    .iter()
                    .filter(|&&d| records[d].status != StepStatus::Completed)
                    .count()
            })
            .collect::<Vec<_>>();
        let n = plan.steps.len();
        let pending = |i: usize| records[i].status == StepStatus::Pending;
        // Steps whose dependencies failed or were skipped can never run.
        let to_skip = (0..n)
            .filter(|&i| {
                pending(i)
                    && plan.steps[i].deps.iter().any(|&d| {
                        matches!(records[d].status, StepStatus::Failed | StepStatus::Skipped)
                    })
            })
            .collect();
        let ready = (0..n).filter(|&i| pending(i) && waiting[i] == 0).collect();
        let failed_any = records.iter().any(|r| r.status == StepStatus::Failed);
        let stop_new = failed_any && plan.workflow.on_failure == FailurePolicy::FailFast;
        Self {
            inner,
            plan,
            run,
            inputs: record.inputs,
            records,
            outputs,
            waiting,
            to_skip,
            ready,
            failed_any,
            stop_new,
            run_status: RunStatus::Running,
            cancelled: false,
            run_token: CancellationToken::new(),
            note_tx,
            tasks: JoinSet::new(),
        }
    }

    /// Marks the run running (its lease was taken when it was created or claimed).
    async fn begin(&mut self) -> Result<()> {
        self.inner
            .store
            .set_run_status(&self.run, self.run_status)
            .await?;
        self.publish_run(self.run_status);
        Ok(())
    }

    fn publish_run(&self, status: RunStatus) {
        self.inner.bus.publish(Event::RunChanged {
            run: self.run.clone(),
            status,
        });
    }

    /// Skips what can no longer run, transitively.
    async fn skip_unreachable(&mut self) -> Result<()> {
        while let Some(i) = self.to_skip.pop() {
            if self.records[i].status != StepStatus::Pending {
                continue;
            }
            let why = "skipped: a dependency did not complete";
            skip(
                &self.inner,
                &self.plan,
                &self.run,
                i,
                &mut self.records[i],
                self.run_status,
                why,
            )
            .await?;
            self.to_skip.extend(self.plan.dependents[i].iter().copied());
        }
        Ok(())
    }

    /// Follows the desired state: cancels once, pauses or runs.
    async fn follow(&mut self, desired: Desired) -> Result<()> {
        if desired == Desired::Cancel && !self.cancelled {
            self.cancelled = true;
            self.run_token.cancel();
        }
        let want = match desired {
            Desired::Pause if !self.cancelled => RunStatus::Paused,
            _ => RunStatus::Running,
        };
        if want != self.run_status && !self.cancelled {
            self.run_status = want;
            self.inner.store.set_run_status(&self.run, want).await?;
            self.publish_run(want);
        }
        Ok(())
    }

    /// Starts ready steps while there is room, unless the run is stopping.
    fn start_ready(&mut self) {
        if self.cancelled || self.stop_new {
            return;
        }
        while self.tasks.len() < self.inner.config.max_parallel_steps {
            let Some(i) = self.ready.pop_front() else {
                break;
            };
            if self.records[i].status != StepStatus::Pending {
                continue;
            }
            let context = build_context(&self.plan, i, &self.inputs, &self.outputs);
            self.tasks.spawn(run_step(
                self.inner.clone(),
                self.plan.clone(),
                self.run.clone(),
                i,
                self.records[i].attempts,
                self.records[i].idempotency_key.clone(),
                context,
                self.run_token.child_token(),
                self.note_tx.clone(),
            ));
        }
    }

    /// Idle with nothing ready means done: every pending step waits on a step that will never
    /// complete, and those are skipped. A paused run with ready steps waits.
    fn is_done(&self) -> bool {
        self.tasks.is_empty()
            && self.to_skip.is_empty()
            && (self.cancelled || self.stop_new || self.ready.is_empty())
    }

    async fn apply_note(&mut self, note: Note) -> Result<()> {
        apply_note(
            &self.inner,
            &self.plan,
            &self.run,
            &mut self.records,
            self.run_status,
            note,
        )
        .await
    }

    /// Records a finished step and what follows from it: dependents become ready, or (after a
    /// failure) the run stops starting steps or skips the dependents, as the policy says.
    async fn settle(&mut self, finished: Finished) -> Result<()> {
        let Finished {
            step: i,
            attempts,
            agent,
            outcome,
        } = finished;
        let now = now_ms();
        let r = &mut self.records[i];
        r.attempts = r.attempts.max(attempts);
        r.agent = agent.or(r.agent.take());
        r.updated_ms = now;
        r.finished_ms = Some(now);
        match outcome {
            Outcome::Completed(value) => {
                r.status = StepStatus::Completed;
                r.error = None;
                r.output = Some(value.clone());
                self.outputs[i] = Some(value);
                for &d in &self.plan.dependents[i] {
                    self.waiting[d] -= 1;
                    if self.waiting[d] == 0 {
                        self.ready.push_back(d);
                    }
                }
            }
            Outcome::Failed(e) => {
                r.status = StepStatus::Failed;
                r.error = Some(error_text(&e));
                self.failed_any = true;
                match self.plan.workflow.on_failure {
                    FailurePolicy::FailFast => {
                        self.stop_new = true;
                        self.run_token.cancel();
                    }
                    FailurePolicy::Continue => {
                        self.to_skip.extend(self.plan.dependents[i].iter().copied());
                    }
                }
            }
            Outcome::Cancelled => {
                r.status = StepStatus::Skipped;
                r.error = Some("cancelled: the run was cancelled or stopped".into());
            }
        }
        let step = &self.plan.steps[i].id;
        let status = self.records[i].status;
        self.inner
            .store
            .update_step(&self.run, step, &self.records[i], self.run_status)
            .await?;
        self.inner.bus.publish(Event::StepChanged {
            run: self.run.clone(),
            step: step.clone(),
            status,
        });
        Ok(())
    }

    /// Renews the lease, and takes control requests from other instances. A failed renewal or
    /// poll is retried at the next tick (only state writes must succeed); a lease another
    /// instance took over ends this driver.
    async fn on_tick(&mut self) -> Result<()> {
        let config = &self.inner.config;
        let renewed = self
            .inner
            .store
            .claim(&self.run, &config.instance, config.stale_after)
            .await;
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(run = %self.run, "workflow lease taken over by another instance");
                return Err(Error::LeaseLost {
                    run: self.run.clone(),
                });
            }
            Err(e) => tracing::warn!(run = %self.run, "renewing the workflow lease failed: {e}"),
        }
        self.take_request().await;
        Ok(())
    }

    /// Applies the pending control request from another instance, if any.
    async fn take_request(&mut self) {
        let (store, run) = (&self.inner.store, &self.run);
        let request = store.take_control(run).await.unwrap_or_else(|e| {
            tracing::warn!(run = %run, "reading workflow control requests failed: {e}");
            None
        });
        let Some(request) = request else { return };
        let live = self
            .inner
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(run)
            .cloned();
        if let Some(tx) = live {
            tx.send_replace(match request {
                RunControl::Pause => Desired::Pause,
                RunControl::Resume => Desired::Run,
                RunControl::Cancel => Desired::Cancel,
            });
        }
    }

    /// Skips whatever never started and records the final status.
    async fn finish(mut self) -> Result<RunStatus> {
        let final_status = if self.cancelled {
            RunStatus::Cancelled
        } else if self.failed_any {
            RunStatus::Failed
        } else {
            RunStatus::Completed
        };
        let why = if self.cancelled {
            "cancelled: the run was cancelled"
        } else {
            "skipped: the run stopped after a failure"
        };
        for (i, r) in self.records.iter_mut().enumerate() {
            if !r.status.is_final() {
                skip(
                    &self.inner,
                    &self.plan,
                    &self.run,
                    i,
                    r,
                    self.run_status,
                    why,
                )
                .await?;
            }
        }
        self.inner
            .store
            .set_run_status(&self.run, final_status)
            .await?;
        let instance = &self.inner.config.instance;
        if let Err(e) = self.inner.store.release(&self.run, instance).await {
            // The lease then expires by itself; the run is over either way.
            tracing::warn!(run = %self.run, "releasing the workflow lease failed: {e}");
        }
        self.publish_run(final_status);
        Ok(final_status)
    }
}
