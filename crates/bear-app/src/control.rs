//! The control channel: how `bear` reaches a running bear-server on the same machine (load or
//! unload a model, pause, resume or cancel a workflow run, reload the API keys) with an
//! immediate, confirmed effect and no file polled in between.
//!
//! A Unix domain socket, `<data_dir>/control.sock`, mode 0600; never a network socket. Each
//! connection carries one request and one reply, each a JSON document on one line. The server
//! answers only a peer of its own uid (checked with `SO_PEERCRED`); another uid, a malformed or
//! oversized message, or a peer that sends nothing within [`READ_TIMEOUT`] gets a typed
//! [`Reply::Error`], never a panic. Messages hold model ids, run ids and error messages, never
//! user text or key material.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::models::{ManageRequest, ManageResult, ModelRow, ModelsQuery};
use crate::{Error, ErrorDetail, Result};

/// The socket, relative to the data directory.
pub const SOCKET_FILE: &str = "control.sock";
/// The largest request or reply, bytes.
pub const MAX_MESSAGE: u64 = 1 << 20;
/// How long the server waits for a peer's request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What `bear` asks of bear-server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The models and their status in the server.
    Models(ModelsQuery),
    /// Load (and pin) or unload a model in the server.
    Model(ManageRequest),
    /// Pause, resume or cancel a workflow run.
    Workflow(RunRequest),
    /// The API key file changed: reload it now.
    KeysChanged,
    /// A one-time sign-in link for the web app, standing for API key `key_id`.
    Login {
        /// The key the session will stand for.
        key_id: String,
    },
}

/// A control request for one workflow run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The run's id.
    pub run: String,
    /// What to do.
    pub action: RunAction,
}

/// What to do with a workflow run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunAction {
    /// No new step starts; running ones finish.
    Pause,
    /// Go on after a pause, or take over an interrupted run.
    Resume,
    /// Stop: what never started is skipped.
    Cancel,
}

/// What bear-server did with a run request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDone {
    /// The run's id.
    pub id: String,
    /// What happened (`pause requested`, `resumed`, ...).
    pub result: String,
}

/// bear-server's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The models, as `GET /api/v1/models` lists them.
    Models(Vec<ModelRow>),
    /// A model's status after a load or unload.
    Model(ManageResult),
    /// A workflow run request was carried out.
    Workflow(RunDone),
    /// The API keys were reloaded; how many are in force.
    Keys(usize),
    /// A one-time sign-in link.
    Login(LoginLink),
    /// The request failed or was refused: `{"error": {...}}`, the shape of every BEAR error.
    Error(ErrorDetail),
}

/// A one-time sign-in link to the web app of a running bear-server: `bear ui`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginLink {
    /// Opens the web app signed in; the token is in the fragment, which browsers never send.
    pub url: String,
    /// Seconds the link stays good; it works once.
    pub expires_in: u64,
    /// The server's process id.
    pub server_pid: u32,
}

/// bear-server's side: carries out one request.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The reply to `request` (failures as [`Reply::Error`], e.g. `Reply::Error(e.body().error)`).
    async fn handle(&self, request: Request) -> Reply;
}

fn control_err(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Control {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The server's bound control socket; the file is removed when this is dropped.
#[derive(Debug)]
pub struct Listener {
    inner: tokio::net::UnixListener,
    path: PathBuf,
    owner: u32,
}

impl Listener {
    /// Binds `<data_dir>/control.sock` (mode 0600). A socket left by a server that is gone is
    /// replaced; one that answers belongs to a running server and is an error. Must be called
    /// inside a tokio runtime.
    pub fn bind(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(SOCKET_FILE);
        std::fs::create_dir_all(data_dir).map_err(|e| control_err(&path, e))?;
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(control_err(
                &path,
                "another bear-server is serving this data directory (its control socket \
                 answers); stop it first, or give this one another data directory",
            ));
        }
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!("replaced the control socket of a server that is gone"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(control_err(&path, format!("cannot replace it: {e}"))),
        }
        let inner = tokio::net::UnixListener::bind(&path).map_err(|e| {
            control_err(
                &path,
                format!("cannot listen: {e} (a socket path must be under 108 bytes)"),
            )
        })?;
        let perms = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&path, perms).map_err(|e| control_err(&path, e))?;
        let owner = std::fs::metadata(&path)
            .map_err(|e| control_err(&path, e))?
            .uid();
        Ok(Self { inner, path, owner })
    }

    /// The socket file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers connections until the returned future is dropped; each on its own task.
    pub async fn serve(self, handler: Arc<dyn Handler>) {
        loop {
            match self.inner.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, self.owner, handler.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn refused(kind: &str, message: impl Into<String>) -> Reply {
    Reply::Error(crate::ErrorBody::with_kind_name(kind, message.into(), None).error)
}

/// One connection: check the peer, read one request, reply once.
async fn answer(mut stream: tokio::net::UnixStream, owner: u32, handler: Arc<dyn Handler>) {
    let reply = match stream.peer_cred() {
        Ok(cred) if cred.uid() == owner => match read_request(&mut stream).await {
            Ok(request) => handler.handle(request).await,
            Err(reply) => reply,
        },
        Ok(_) => refused(
            "forbidden",
            "the control socket answers only the user bear-server runs as",
        ),
        Err(_) => refused("forbidden", "the peer's user cannot be checked"),
    };
    let mut line = serde_json::to_vec(&reply).unwrap_or_default();
    line.push(b'\n');
    let _ = stream.write_all(&line).await;
    let _ = stream.shutdown().await;
    // Closing with unread bytes would reset the connection and lose the reply on the peer's
    // side: discard what is left of a refused or oversized request first (bounded).
    let rest = (&mut stream).take(MAX_MESSAGE);
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::io::copy(&mut { rest }, &mut tokio::io::sink()),
    )
    .await;
}

async fn read_request(stream: &mut tokio::net::UnixStream) -> std::result::Result<Request, Reply> {
    let mut line = Vec::new();
    let mut limited = tokio::io::BufReader::new(stream).take(MAX_MESSAGE + 1);
    match tokio::time::timeout(READ_TIMEOUT, limited.read_until(b'\n', &mut line)).await {
        Err(_) => return Err(refused("timeout", "no request within 10 s")),
        Ok(Err(e)) => return Err(refused("invalid_request", format!("cannot read: {e}"))),
        Ok(Ok(_)) => {}
    }
    if line.len() as u64 > MAX_MESSAGE {
        return Err(refused(
            "payload_too_large",
            format!("a control request is at most {MAX_MESSAGE} bytes"),
        ));
    }
    serde_json::from_slice(&line).map_err(|e| {
        refused(
            "invalid_request",
            format!("not a control request: {e}; expected one JSON object and a newline"),
        )
    })
}

/// `bear`'s side: a blocking client of the data directory's control socket.
#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
}

impl Client {
    /// The client of `<data_dir>/control.sock`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(SOCKET_FILE),
        }
    }

    /// Sends `request` and waits up to `timeout` for the reply. `Ok(None)` when no bear-server
    /// is running (no socket, or one nobody answers); a [`Reply::Error`] becomes
    /// [`Error::Server`].
    pub fn call(&self, request: &Request, timeout: Duration) -> Result<Option<Reply>> {
        let mut stream = match std::os::unix::net::UnixStream::connect(&self.path) {
            Ok(s) => s,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(control_err(&self.path, format!("cannot connect: {e}"))),
        };
        let io = |e: std::io::Error| control_err(&self.path, e);
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        let mut line = serde_json::to_vec(request).map_err(|e| control_err(&self.path, e))?;
        line.push(b'\n');
        stream.write_all(&line).map_err(io)?;
        let mut bytes = Vec::new();
        let read = (&mut stream).take(MAX_MESSAGE + 1).read_to_end(&mut bytes);
        match read {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(Error::Core(bear_core::Error::backend(
                    bear_core::ErrorKind::Timeout,
                    format!(
                        "bear-server has not answered within {} s; the request stands",
                        timeout.as_secs()
                    ),
                )));
            }
            other => other.map_err(io)?,
        };
        match serde_json::from_slice::<Reply>(&bytes) {
            Ok(Reply::Error(detail)) => Err(Error::Server(detail)),
            Ok(reply) => Ok(Some(reply)),
            Err(e) => Err(control_err(&self.path, format!("not a reply: {e}"))),
        }
    }
}

impl Client {
    /// Sends `request` and keeps the reply `pick` accepts; another reply (a server of another
    /// BEAR version) is an error.
    fn ask<T>(
        &self,
        request: Request,
        timeout: Duration,
        pick: fn(Reply) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.call(&request, timeout)? {
            None => Ok(None),
            Some(reply) => pick(reply).map(Some).ok_or_else(|| {
                control_err(
                    &self.path,
                    "bear-server answered with another reply than asked for; is it the same \
                     BEAR version?",
                )
            }),
        }
    }

    /// The running server's models; `None` when no server runs.
    pub fn models(&self, q: ModelsQuery, timeout: Duration) -> Result<Option<Vec<ModelRow>>> {
        self.ask(Request::Models(q), timeout, |r| match r {
            Reply::Models(rows) => Some(rows),
            _ => None,
        })
    }

    /// Loads or unloads a model in the running server, once it has done so.
    pub fn manage(&self, req: ManageRequest, timeout: Duration) -> Result<Option<ManageResult>> {
        self.ask(Request::Model(req), timeout, |r| match r {
            Reply::Model(m) => Some(m),
            _ => None,
        })
    }

    /// Pauses, resumes or cancels a run through the running server's engine.
    pub fn workflow(&self, req: RunRequest, timeout: Duration) -> Result<Option<RunDone>> {
        self.ask(Request::Workflow(req), timeout, |r| match r {
            Reply::Workflow(d) => Some(d),
            _ => None,
        })
    }

    /// Has the running server reload the API keys; how many are then in force.
    pub fn keys_changed(&self, timeout: Duration) -> Result<Option<usize>> {
        self.ask(Request::KeysChanged, timeout, |r| match r {
            Reply::Keys(n) => Some(n),
            _ => None,
        })
    }
}

impl Client {
    /// A one-time sign-in link standing for key `key_id`; `None` when no server runs.
    pub fn login(&self, key_id: &str, timeout: Duration) -> Result<Option<LoginLink>> {
        let request = Request::Login {
            key_id: key_id.to_string(),
        };
        self.ask(request, timeout, |r| match r {
            Reply::Login(l) => Some(l),
            _ => None,
        })
    }
}

/// A socket file that is missing or has no listener: no server is running.
fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ManageConfig, ModelAction};

    #[test]
    fn requests_and_replies_have_one_json_line_shape() {
        let r = Request::Model(ManageRequest {
            action: ModelAction::Load,
            model_id: "m".into(),
            config: ManageConfig { pin: true },
        });
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"op": "model", "action": "load", "model_id": "m",
                "config": {"pin": true}})
        );
        assert_eq!(serde_json::from_value::<Request>(v).unwrap(), r);
        let keys: Request = serde_json::from_str(r#"{"op":"keys_changed"}"#).unwrap();
        assert_eq!(keys, Request::KeysChanged);
        let models: Request = serde_json::from_str(r#"{"op":"models"}"#).unwrap();
        assert_eq!(models, Request::Models(ModelsQuery::default()));
        let e = Reply::Error(crate::Error::invalid("k", "too big").body().error);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::to_value(crate::Error::invalid("k", "too big").body()).unwrap(),
            "an error reply is an ErrorBody"
        );
        for bad in [
            r#"{"op":"model","action":"load","model_id":"m","extra":1}"#,
            r#"{"op":"shutdown"}"#,
            r#"{"action":"load"}"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }
}
