//! A generation model's own thread, and the handle requests reach it through.
//!
//! The thread owns the model's llama.cpp context (a context borrows its model and may not be
//! shared between threads, so it lives where the model reference lives) and serves every
//! request to the model there, several at once ([`crate::batch`]). A request's text comes
//! back over a channel as it is produced; the thread never waits for a reader.

use std::sync::mpsc;

use bear_core::{CancellationToken, Generation, GenerationRequest, TokenLogprob, TokenSink};

use crate::error::{Error, Result};
use crate::llama::GenerationTimings;

/// What the thread sends back while a request runs.
pub(crate) enum Message {
    /// A piece of text.
    Text(String),
    /// A generated token's log probability (before the text it is part of).
    Logprob(TokenLogprob),
    /// The end.
    Done(Result<(Generation, GenerationTimings)>),
}

/// One request for the thread.
pub(crate) struct Job {
    pub(crate) request: GenerationRequest,
    pub(crate) cancel: CancellationToken,
    pub(crate) reply: mpsc::Sender<Message>,
}

/// The handle to a model's generation thread; dropping it ends the thread (after the running
/// requests) and waits for it.
pub(crate) struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the thread reports once it is ready to serve (or why it cannot).
pub(crate) type Ready = mpsc::SyncSender<Result<()>>;

impl Worker {
    /// Starts the thread and waits until `serve` reports it ready; `serve` then runs the jobs
    /// until the handle is dropped.
    pub(crate) fn start(
        serve: impl FnOnce(mpsc::Receiver<Job>, Ready) + Send + 'static,
    ) -> Result<Self> {
        let (jobs, rx) = mpsc::channel();
        let (ready, started) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("bear-generate".into())
            .spawn(move || serve(rx, ready))
            .map_err(|e| Error::Backend {
                backend: "llama.cpp",
                reason: format!("cannot start the generation thread: {e}"),
            })?;
        let mut worker = Self {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        match started.recv() {
            Ok(Ok(())) => Ok(worker),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                worker.jobs = None;
                Err(Error::Backend {
                    backend: "llama.cpp",
                    reason: "the generation thread stopped while starting".into(),
                })
            }
        }
    }

    /// Runs `request` on the thread, passing each piece of text (and log probability) to
    /// `sink`; a `false` from `sink` cancels the generation within one token.
    pub(crate) fn generate(
        &self,
        request: &GenerationRequest,
        sink: &mut dyn TokenSink,
        cancel: &CancellationToken,
    ) -> Result<(Generation, GenerationTimings)> {
        let gone = || Error::Unavailable("the model's generation thread has stopped".into());
        let own = cancel.child_token();
        let (reply, rx) = mpsc::channel();
        let job = Job {
            request: request.clone(),
            cancel: own.clone(),
            reply,
        };
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        for message in rx {
            match message {
                Message::Text(t) => {
                    if !own.is_cancelled() && !sink.on_text(&t) {
                        own.cancel();
                    }
                }
                Message::Logprob(lp) => sink.on_logprob(&lp),
                Message::Done(result) => return result,
            }
        }
        Err(gone())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
