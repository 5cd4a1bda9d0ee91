//! bear-server's side of the control channel ([`bear_app::control`]): each request is the same
//! operation a REST route runs, on the same state, so `bear models load` against a running
//! server and `POST /api/v1/models` do one thing.

use std::sync::Arc;

use bear_app::ErrorBody;
use bear_app::control::{Handler, Reply, Request, RunDone, RunRequest};
use bear_core::{ErrorKind, RunId};

use crate::AppState;

/// Answers control requests with the server's state.
#[derive(Clone)]
pub struct ControlHandler {
    state: Arc<AppState>,
}

impl std::fmt::Debug for ControlHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlHandler").finish_non_exhaustive()
    }
}

impl ControlHandler {
    /// The handler over `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    async fn workflow(&self, r: RunRequest) -> Result<RunDone, ErrorBody> {
        let run = RunId::new(&r.run).map_err(|e| body(e.kind(), e.to_string()))?;
        bear_app::workflows::act(&self.state.engine, &run, r.action)
            .await
            .map_err(|e| body(e.kind(), e.to_string()))
    }
}

impl ControlHandler {
    /// A one-time sign-in link for key `key_id` (the key file is read again first if the
    /// key is new to this server).
    fn login(&self, key_id: &str) -> Result<bear_app::control::LoginLink, ErrorBody> {
        let known = |s: &AppState| s.role_of(key_id).is_some();
        if !known(&self.state) {
            self.state
                .reload_keys()
                .map_err(|e| body(e.kind(), e.to_string()))?;
        }
        if !known(&self.state) {
            return Err(body(ErrorKind::NotFound, format!("no API key {key_id}")));
        }
        let addr = self.state.listening.get().ok_or_else(|| {
            body(
                ErrorKind::Unavailable,
                "the server is not listening yet".into(),
            )
        })?;
        let token = self
            .state
            .sessions
            .mint_login(key_id)
            .map_err(|e| body(e.kind(), e.to_string()))?;
        Ok(bear_app::control::LoginLink {
            url: format!("http://{addr}/#login={token}"),
            expires_in: bear_security::session::LOGIN_TTL.as_secs(),
            server_pid: std::process::id(),
        })
    }
}

fn body(kind: ErrorKind, message: String) -> ErrorBody {
    ErrorBody::new(kind, message, None)
}

fn app_err(e: bear_app::Error) -> ErrorBody {
    e.body()
}

#[async_trait::async_trait]
impl Handler for ControlHandler {
    async fn handle(&self, request: Request) -> Reply {
        let app = || {
            self.state.app.clone().ok_or_else(|| {
                body(
                    ErrorKind::Unavailable,
                    "this server runs without models".into(),
                )
            })
        };
        let reply = match request {
            Request::Login { key_id } => self.login(&key_id).map(Reply::Login),
            Request::Models(q) => {
                app().and_then(|a| a.model_list(&q).map_err(app_err).map(Reply::Models))
            }
            Request::Model(req) => match app() {
                Ok(a) => a
                    .manage_model(&req)
                    .await
                    .map_err(app_err)
                    .map(Reply::Model),
                Err(e) => Err(e),
            },
            Request::Workflow(r) => self.workflow(r).await.map(Reply::Workflow),
            Request::KeysChanged => self
                .state
                .reload_keys()
                .map(Reply::Keys)
                .map_err(|e| body(e.kind(), e.to_string())),
        };
        reply.unwrap_or_else(|b| Reply::Error(b.error))
    }
}
