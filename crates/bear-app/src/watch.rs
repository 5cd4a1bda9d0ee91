//! Watching a workflow run live (`GET /api/v1/workflows/{id}/events`, the web app's run page):
//! the run as it is, then each step's change as it happens (and the whole run again when it is
//! paused or resumed), then the run as it ended. The subscription is made before the first
//! snapshot, so no change between the two is lost; a watcher that falls behind gets a fresh
//! snapshot instead of the changes it missed.

use bear_agents::Engine;
use bear_core::{Event, RunId, RunStatus, StepStatus};
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::workflows::WorkflowStatus;
use crate::{Result, Viewer};

/// One thing a run's watcher is told.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run as it is now: first, when it is paused or resumed, after falling behind, and
    /// when it has ended.
    Snapshot {
        /// Its status, steps, results and time.
        run: WorkflowStatus,
    },
    /// A step changed status.
    Step {
        /// The step's id.
        step: String,
        /// `pending`, `running`, `completed`, `failed`, `skipped` or `cancelled`.
        #[schema(value_type = String)]
        status: StepStatus,
    },
    /// The run ended (`completed`, `failed` or `cancelled`); nothing follows.
    End {
        /// How it ended.
        #[schema(value_type = String)]
        status: RunStatus,
    },
}

enum Stage {
    Start,
    Live,
    Ending(RunStatus),
    Done,
}

/// A live view of one run.
pub struct RunWatch {
    engine: Engine,
    run: RunId,
    events: broadcast::Receiver<Event>,
    stage: Stage,
}

impl std::fmt::Debug for RunWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunWatch")
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

impl RunWatch {
    /// Watches run `id`, if `viewer` may see it (another key's run is not found).
    pub async fn open(engine: &Engine, viewer: &Viewer, id: &str) -> Result<Self> {
        let events = engine.bus().subscribe();
        let run = crate::workflows::run_for(engine, viewer, id).await?.id;
        Ok(Self {
            engine: engine.clone(),
            run,
            events,
            stage: Stage::Start,
        })
    }

    async fn snapshot(&mut self) -> Option<RunEvent> {
        let p = self.engine.progress(&self.run).await.ok()?;
        self.stage = if p.status.is_terminal() {
            Stage::Ending(p.status)
        } else {
            Stage::Live
        };
        Some(RunEvent::Snapshot {
            run: WorkflowStatus::of(p),
        })
    }

    /// The next event; `None` once the run has ended and been reported, or if the engine
    /// stopped.
    pub async fn next(&mut self) -> Option<RunEvent> {
        match self.stage {
            Stage::Start => self.snapshot().await,
            Stage::Ending(status) => {
                self.stage = Stage::Done;
                Some(RunEvent::End { status })
            }
            Stage::Done => None,
            Stage::Live => loop {
                match self.events.recv().await {
                    Ok(Event::StepChanged { run, step, status }) if run == self.run => {
                        return Some(RunEvent::Step {
                            step: step.to_string(),
                            status,
                        });
                    }
                    // Paused, resumed or ended: the run as it now is.
                    Ok(Event::RunChanged { run, .. }) if run == self.run => {
                        return self.snapshot().await;
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => return self.snapshot().await,
                    Err(RecvError::Closed) => {
                        self.stage = Stage::Done;
                        return None;
                    }
                }
            },
        }
    }
}
