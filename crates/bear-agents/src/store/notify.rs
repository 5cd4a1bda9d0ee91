//! Control requests announced through PostgreSQL's LISTEN/NOTIFY, so pause, resume and cancel
//! reach the instance running a run at once rather than at its next poll. The poll stays: a
//! notice lost while a connection is re-established is caught by it.

use bear_core::RunId;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// The channel control requests are announced on; the payload is the run's id.
pub(crate) const CHANNEL: &str = "bear_run_control";

/// This store's listener: one connection, its notices fanned out to the runs waiting.
#[derive(Debug)]
pub(crate) struct Notices {
    tx: broadcast::Sender<String>,
    task: JoinHandle<()>,
    /// A connection for sending (`pg_notify` returns `void`, which sqlx's `Any` driver cannot
    /// carry).
    send: PgPool,
}

impl Notices {
    /// Listens on [`CHANNEL`] of the database at `url`.
    pub(crate) async fn listen(url: &str) -> Result<Self> {
        let unreachable = |e: sqlx::Error| Error::Unreachable {
            what: format!("the PostgreSQL database at {}", super::describe_url(url)),
            reason: e.to_string(),
        };
        let mut listener = PgListener::connect(url).await.map_err(unreachable)?;
        listener.listen(CHANNEL).await.map_err(unreachable)?;
        let send = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .map_err(unreachable)?;
        let (tx, _) = broadcast::channel(256);
        let fan = tx.clone();
        let task = tokio::spawn(async move {
            // `recv` reconnects by itself after a lost connection; while the server is away it
            // fails, and is tried again a second later (the engine's poll carries on).
            loop {
                match listener.recv().await {
                    Ok(n) => {
                        let _ = fan.send(n.payload().to_string());
                    }
                    Err(e) => {
                        tracing::debug!("workflow notices: {e}; listening again in 1 s");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Self { tx, task, send })
    }

    /// Announces a control request for `run`.
    pub(crate) async fn announce(&self, run: &RunId) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(run.as_str())
            .execute(&self.send)
            .await?;
        Ok(())
    }

    /// Completes at the next notice for `run`.
    pub(crate) async fn wait_for(&self, run: &RunId) {
        let mut rx = self.tx.subscribe();
        loop {
            match rx.recv().await {
                Ok(id) if id == run.as_str() => return,
                Ok(_) => {}
                // Missed notices may have named `run`: let the caller look.
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}

impl Drop for Notices {
    fn drop(&mut self) {
        self.task.abort();
    }
}
