//! bear-api: the REST API (the seed's `/api/v1`, later the OpenAI-compatible routes) on axum.
//!
//! Layer **L4**: it may depend on every library crate below it; `bins/bear-server` wires the
//! concrete backends and calls [`serve`].
//!
//! - [`gateway`]: request ids, the loopback Host check, authentication, rate limits.
//! - [`routes`]: health, hw, PII, workflows and agents.
//! - [`models`]: the seed's model routes and the OpenAI-compatible ones.
//! - [`docs`]: collections, document upload and ingest jobs, search and ask.
//! - [`plugins`]: plugin listing and tool calls (admin).
//! - [`session`]: browser sign-in: the session cookie and its CSRF token.
//! - [`admin`]: API keys and audit verification (admin).
//! - [`metrics`]: `/metrics` in the Prometheus text format.
//! - [`openapi`]: the OpenAPI 3.1 description, generated from the handlers.
//! - [`error`]: [`Error`] and the JSON error body, [`ApiError`].
//!
//! Invariants:
//! - Listens on loopback unless API keys are configured; never opens an outgoing connection.
//! - Every route but `/health` requires a key; every error is a structured JSON error with the
//!   request id, and every response carries `x-request-id`.
//! - Request bodies never appear in errors or logs.

pub mod admin;
pub mod chats;
pub mod control;
pub mod docs;
pub mod error;
pub mod gateway;
pub mod metrics;
pub mod models;
pub mod openai;
mod openai_chat;
pub mod openapi;
pub mod plugins;
pub mod routes;
pub mod session;
pub mod web;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use bear_agents::Engine;
use bear_security::access::ApiKeyStore;

pub use control::ControlHandler;
pub use docs::RagState;
pub use error::{ApiError, Error, Result};
pub use gateway::{Caller, Limits, REQUEST_ID, presented_key};
pub use plugins::Plugins;

/// Everything the handlers reach.
pub struct AppState {
    /// API keys (hashes only).
    pub keys: RwLock<ApiKeyStore>,
    /// The workflow engine, its agents and backends.
    pub engine: Engine,
    /// The machine report served at `/hw`.
    pub hw: serde_json::Value,
    /// Whether the server listens on loopback only (turns the Host check on).
    pub loopback: bool,
    /// Models for `/models` and the OpenAI-compatible routes; `None` answers 503.
    pub models: Option<Arc<bear_models::ModelManager>>,
    /// Where mutating requests are recorded (fail-closed); `None` records nothing.
    pub audit: Option<Arc<bear_security::audit::AuditLog>>,
    /// The application layer the operations run in; `None` answers 503.
    pub app: Option<Arc<bear_app::App>>,
    /// Collections, documents, search and ask; `None` answers 503.
    pub rag: Option<RagState>,
    /// Loaded plugins; `None` answers 503.
    pub plugins: Option<Plugins>,
    /// Browser sessions (the web app's sign-in).
    pub sessions: bear_security::session::Sessions,
    /// The address the server listens on, once it does (for sign-in links).
    pub listening: std::sync::OnceLock<SocketAddr>,
    pub(crate) metrics: metrics::Metrics,
    /// Per model, the slots of its bounded generation queue.
    queues: std::sync::Mutex<
        std::collections::HashMap<bear_core::ModelId, Arc<tokio::sync::Semaphore>>,
    >,
    queue_depth: usize,
    limiters: gateway::Limiters,
}

impl AppState {
    /// The state for a server with these limits.
    pub fn new(
        keys: ApiKeyStore,
        engine: Engine,
        hw: serde_json::Value,
        loopback: bool,
        limits: &Limits,
    ) -> Self {
        Self {
            keys: RwLock::new(keys),
            engine,
            hw,
            loopback,
            models: None,
            audit: None,
            app: None,
            rag: None,
            plugins: None,
            sessions: bear_security::session::Sessions::new(session::SESSION_TTL),
            listening: std::sync::OnceLock::new(),
            metrics: metrics::Metrics::new(),
            queues: Default::default(),
            queue_depth: limits.generation_queue.max(1),
            limiters: gateway::Limiters::new(limits),
        }
    }

    /// Records every mutating request in `log` first; a request whose record cannot be
    /// written is refused.
    pub fn with_audit(mut self, log: Arc<bear_security::audit::AuditLog>) -> Self {
        self.audit = Some(log);
        self
    }

    /// A slot in `model`'s generation queue; a full queue is answered at once (503 with
    /// `Retry-After`), never buffered without limit.
    pub(crate) fn queue_slot(
        &self,
        model: &bear_core::ModelId,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let semaphore = self
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(model.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.queue_depth)))
            .clone();
        semaphore.try_acquire_owned().map_err(|_| {
            let mut e = ApiError::from_kind(
                bear_core::ErrorKind::Unavailable,
                "this model's generation queue is full; retry later",
            );
            e.retry_after = Some(1);
            e
        })
    }

    /// Runs the operations in `app` (generation, and with [`with_rag`](Self::with_rag) the
    /// document routes).
    pub fn with_app(mut self, app: Arc<bear_app::App>) -> Self {
        self.app = Some(app);
        self
    }

    /// Serves document collections too (on the application `rag` was made with).
    pub fn with_rag(mut self, rag: RagState) -> Self {
        self.app.get_or_insert_with(|| rag.app.clone());
        self.rag = Some(rag);
        self
    }

    /// Serves these plugins' tools too.
    pub fn with_plugins(mut self, plugins: Plugins) -> Self {
        self.plugins = Some(plugins);
        self
    }

    /// Reads the API key file again (after `bear keys create|revoke`, told through the
    /// control socket); returns how many keys are in force. A file that cannot be read keeps
    /// the keys loaded before.
    pub fn reload_keys(&self) -> Result<usize, bear_security::Error> {
        let path = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .path()
            .to_path_buf();
        let keys = ApiKeyStore::open(&path)?;
        let n = keys.list().len();
        // A revoked key's sessions end now, not only at their next request.
        self.sessions.retain_keys(|id| keys.get(id).is_some());
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(n)
    }

    /// The role of API key `id`, if it is in force.
    pub(crate) fn role_of(&self, id: &str) -> Option<bear_security::Role> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(id).map(|r| r.role)
    }

    /// Serves these models too.
    pub fn with_models(mut self, models: Arc<bear_models::ModelManager>) -> Self {
        self.models = Some(models);
        self
    }
}

/// The same routes and handlers (their key checks included) with none of the gateway's
/// layers: no request ids, Host check, per-IP limit, body limits, metrics or audit. Only for
/// measuring what the gateway costs (`cargo xtask bench api`); never serve it.
pub fn routes_without_gateway(state: Arc<AppState>) -> axum::Router {
    routes::routes()
        .merge(models::routes())
        .merge(openai::routes())
        .merge(plugins::routes())
        .merge(session::routes())
        .merge(admin::routes())
        .merge(chats::routes())
        .route("/metrics", axum::routing::get(metrics::serve))
        .route("/api/v1/openapi.json", axum::routing::get(openapi::serve))
        .merge(docs::routes(usize::MAX))
        .with_state(state)
}

/// The whole API: the routes (each counted, timed and audited; each under CORS when
/// configured) inside the gateway's edge (request ids, Host check, per-IP limit, and for
/// requests with a body the body limit and stall timeout). The edge wraps the router once, not
/// each route, so a request pays for it once.
pub fn router(
    state: Arc<AppState>,
    limits: &Limits,
) -> impl tower::Service<
    axum::extract::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    use tower::Layer;
    // Uploads may be as large as the ingest limit; every other body is held to the API's.
    let upload_limit = state
        .rag
        .as_ref()
        .map_or(limits.max_body_bytes, |r| r.config.max_file_bytes as usize);
    let routes = routes::routes()
        .merge(models::routes())
        .merge(openai::routes())
        .merge(plugins::routes())
        .merge(session::routes())
        .merge(admin::routes())
        .merge(chats::routes())
        .route("/metrics", axum::routing::get(metrics::serve))
        .route("/api/v1/openapi.json", axum::routing::get(openapi::serve))
        .merge(docs::routes(upload_limit))
        .with_state(state.clone());
    // The templates are the documented ones; a test keeps the description and the routes equal.
    let spec = openapi::spec();
    let _ = state.metrics.routes.set(metrics::Routes::new(
        spec.paths.paths.keys().map(String::as_str),
        &state.metrics,
    ));
    // CORS, when configured, wraps each route (and answers their preflights) rather than the
    // whole router: the gateway then wraps one router type either way, with no `Either` to
    // clone and poll through on every request.
    let routes = match gateway::cors(limits) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    gateway::Edge {
        state,
        idle: limits.body_idle_timeout,
        max_body_bytes: limits.max_body_bytes,
    }
    .layer(routes)
}

/// Refuses a public bind without API keys: an open port with no authentication would expose
/// every document to the network.
pub fn check_bind(addr: &SocketAddr, keys: &ApiKeyStore) -> Result<()> {
    if !addr.ip().is_loopback() && keys.list().is_empty() {
        return Err(Error::Refused(format!(
            "refusing to listen on {addr}, which is not loopback, while no API key exists; \
             create one with `bear keys api-create --role admin` or bind 127.0.0.1"
        )));
    }
    Ok(())
}

/// Serves on `listener` until `shutdown` resolves; in-flight requests finish first.
///
/// The accept loop is BEAR's own (on hyper) so that slow clients are bounded: request headers
/// must arrive within [`Limits::header_timeout`] (an idle keep-alive connection is closed
/// after the same time), a request body may not stall longer than
/// [`Limits::body_idle_timeout`], and at most [`Limits::max_connections`] connections are
/// open at once (more are closed on accept).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    limits: &Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_until(listener, state, limits, Box::pin(shutdown)).await
}

/// [`serve`] without type parameters, so that the accept loop, hyper's connection code and the
/// gateway are compiled here, at bear-api's optimisation level (see the workspace profile),
/// and not in each caller's crate: generic code is compiled where it is instantiated, and a
/// binary crate in the `dev` profile is optimised less.
async fn serve_until(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    limits: &Limits,
    shutdown: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> Result<()> {
    if let Ok(addr) = listener.local_addr() {
        let _ = state.listening.set(addr);
    }
    let sweep = tokio::spawn(forget_idle_clients(state.clone()));
    let served = serve_router(listener, router(state, limits), limits, shutdown).await;
    sweep.abort();
    served
}

/// Once a minute, drops the rate-limit buckets of clients and keys that have gone quiet
/// ([`gateway::Limiters::forget_idle`]), so their number stays bounded by recent traffic.
async fn forget_idle_clients(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.limiters.forget_idle();
    }
}

/// [`serve`] for any router: the same accept loop, timeouts and connection cap (benchmarks
/// use it to compare routes with and without the gateway under identical serving).
pub async fn serve_router<S>(
    listener: tokio::net::TcpListener,
    app: S,
    limits: &Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()>
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let (close_tx, close_rx) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_fatal(&e) => return Err(Error::Io { addr, source: e }),
                // Out of descriptors or a connection reset before accept: back off, go on.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            app.clone()
                .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    req.map(axum::body::Body::new)
                });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let mut closing = close_rx.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = closing.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(closing);
        });
    }
    // Stop accepting, tell every connection to finish its in-flight request, wait for them.
    drop(listener);
    let _ = close_tx.send(());
    drop(close_rx);
    close_tx.closed().await;
    Ok(())
}

/// Accept errors that mean the listener itself is gone.
fn is_fatal(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::NotConnected
    ) || e.raw_os_error() == Some(9) // EBADF
}
