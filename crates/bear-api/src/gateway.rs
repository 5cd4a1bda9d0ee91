//! The gateway layer: request ids, the loopback Host check, authentication (one function for
//! `Authorization: Bearer` and `X-Api-Key`), per-key and per-IP rate limits (governor), and
//! structured errors carrying the request id.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bear_security::access::{ApiKeyStore, Permission, Role};
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

use crate::AppState;
use crate::error::ApiError;

/// The header carrying the request id, on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// [`REQUEST_ID`] as a header name, so that a lookup does not parse the name each time.
const REQUEST_ID_HEADER: header::HeaderName = header::HeaderName::from_static(REQUEST_ID);

/// The second header a key may come in.
const X_API_KEY: header::HeaderName = header::HeaderName::from_static("x-api-key");

/// Limits applied by the gateway.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests per second per key (and, separately, per client IP).
    pub per_second: NonZeroU32,
    /// Burst allowed above the rate.
    pub burst: NonZeroU32,
    /// Failed authentications per minute per client IP.
    pub auth_failures_per_minute: NonZeroU32,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Generation requests per model, running or waiting; more are answered 503.
    pub generation_queue: usize,
    /// Browser origins allowed by CORS; empty sends no CORS headers.
    pub cors_origins: Vec<String>,
    /// Time for a client to send a request's headers; also how long an idle keep-alive
    /// connection stays open.
    pub header_timeout: std::time::Duration,
    /// Longest pause while a request body arrives; a stalled body is answered 408.
    pub body_idle_timeout: std::time::Duration,
    /// Open connections at most; more are closed on accept.
    pub max_connections: usize,
}

impl Limits {
    /// The limits in `[server]`; zeros are refused by the config's validation and become 1.
    pub fn from_config(c: &bear_core::config::ServerConfig) -> Self {
        let nz = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        Self {
            per_second: nz(c.rate_per_second),
            burst: nz(c.rate_burst),
            auth_failures_per_minute: nz(c.auth_failures_per_minute),
            max_body_bytes: c.max_body_bytes.max(1),
            generation_queue: c.generation_queue.max(1),
            cors_origins: c.cors_origins.clone(),
            ..Self::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_second: NonZeroU32::new(50).expect("non-zero"),
            burst: NonZeroU32::new(100).expect("non-zero"),
            auth_failures_per_minute: NonZeroU32::new(20).expect("non-zero"),
            max_body_bytes: 2 << 20,
            generation_queue: 32,
            cors_origins: Vec::new(),
            header_timeout: std::time::Duration::from_secs(10),
            body_idle_timeout: std::time::Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// A keyed rate limiter over a DashMap hashed with aHash (randomly keyed per process, so still
/// resistant to collision flooding) instead of std's SipHash: every request is checked against
/// one or two of these, and SipHash was half of a check's cost.
type KeyedLimiter<K> =
    RateLimiter<K, governor::state::keyed::DashMapStateStore<K, ahash::RandomState>, DefaultClock>;

/// The gateway's rate limiters.
pub(crate) struct Limiters {
    per_key: KeyedLimiter<String>,
    per_ip: KeyedLimiter<IpAddr>,
    auth_failures: KeyedLimiter<IpAddr>,
}

impl Limiters {
    pub(crate) fn new(l: &Limits) -> Self {
        let q = Quota::per_second(l.per_second).allow_burst(l.burst);
        fn keyed<K: std::hash::Hash + Eq + Clone>(q: Quota) -> KeyedLimiter<K> {
            RateLimiter::dashmap_with_hasher(q, ahash::RandomState::new())
        }
        Self {
            per_key: keyed(q),
            per_ip: keyed(q),
            auth_failures: keyed(Quota::per_minute(l.auth_failures_per_minute)),
        }
    }

    /// Forgets the clients and keys whose buckets have filled up again (indistinguishable from
    /// new ones): governor's keyed limiters otherwise keep one entry per client IP ever seen,
    /// so a server reachable from many addresses would grow without bound. `serve` calls this
    /// once a minute.
    pub(crate) fn forget_idle(&self) {
        self.per_key.retain_recent();
        self.per_key.shrink_to_fit();
        for l in [&self.per_ip, &self.auth_failures] {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Clients and keys with a bucket in memory.
    pub(crate) fn tracked(&self) -> usize {
        self.per_key.len() + self.per_ip.len() + self.auth_failures.len()
    }
}

fn retry_secs(not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
    not_until
        .wait_time_from(DefaultClock::default().now())
        .as_secs_f64()
        .ceil() as u64
}

/// A new time-ordered request id: a v7 UUID whose random part is a per-thread random seed
/// mixed with a per-thread counter (unique, no system call and no shared atomic per request).
/// Its time is `now` on the Unix clock: the wall-clock time of the first id, advanced by the
/// monotonic clock (the request's start time is reused, so an id costs no clock read, and ids
/// stay ordered when the wall clock is stepped).
fn new_request_id(now: std::time::Instant) -> HeaderValue {
    use std::cell::Cell;
    thread_local! {
        static SEED: [u8; 10] = {
            let mut b = [0u8; 10];
            b.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..10]);
            b
        };
        static COUNTER: Cell<u64> = const { Cell::new(0) };
    }
    let mut bytes = SEED.with(|s| *s);
    let n = COUNTER.with(|c| {
        let n = c.get();
        c.set(n.wrapping_add(1));
        n
    });
    for (b, c) in bytes[2..].iter_mut().zip(n.to_be_bytes()) {
        *b ^= c;
    }
    static ANCHOR: std::sync::OnceLock<(std::time::Instant, u64)> = std::sync::OnceLock::new();
    let (at, unix_ms) = ANCHOR.get_or_init(|| {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        (std::time::Instant::now(), unix)
    });
    let ms = unix_ms + now.saturating_duration_since(*at).as_millis() as u64;
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid();
    let mut buf = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf)).expect("a UUID is header-safe")
}

/// The gateway's one layer, around the whole router: an id (a new v7 UUID, or the caller's if
/// it is a valid identifier) echoed on the response and added to JSON error bodies; the
/// loopback Host check; the per-IP rate limit; the audit records of mutating requests; the
/// body size limit and stall timeout (only requests that carry a body pay for them); request
/// counts and latency by route template. (The key check is the handlers' `Caller` extractor.)
/// A plain tower layer: it runs on every request, so it avoids `from_fn`'s boxing, and it wraps
/// the router once instead of every route.
#[derive(Clone)]
pub(crate) struct Edge {
    pub(crate) state: Arc<AppState>,
    pub(crate) idle: std::time::Duration,
    /// The largest request body (axum's `DefaultBodyLimit`; a route may set its own).
    pub(crate) max_body_bytes: usize,
}

impl<S: Clone> tower::Layer<S> for Edge {
    type Service = EdgeService<S>;
    fn layer(&self, inner: S) -> EdgeService<S> {
        EdgeService {
            shared: Arc::new(EdgeShared {
                with_body: axum::extract::DefaultBodyLimit::max(self.max_body_bytes)
                    .layer(inner.clone()),
                state: self.state.clone(),
                idle: self.idle,
            }),
            inner,
        }
    }
}

/// [`Edge`] around a service. hyper clones the service for every request, so everything but
/// the service itself sits behind one `Arc`: a clone is two reference counts, not four.
pub(crate) struct EdgeService<S> {
    /// For requests without a body.
    inner: S,
    shared: Arc<EdgeShared<S>>,
}

impl<S: Clone> Clone for EdgeService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// What every clone of an [`EdgeService`] shares.
pub(crate) struct EdgeShared<S> {
    /// For requests with a body: the same service under the body limit.
    with_body: <axum::extract::DefaultBodyLimit as tower::Layer<S>>::Service,
    state: Arc<AppState>,
    idle: std::time::Duration,
}

impl<S> tower::Service<Request> for EdgeService<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = EdgeFuture<S, S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The caller's id is kept when it is a valid identifier (bear-core's `RequestId` rules).
        let given = req.headers().get(&REQUEST_ID_HEADER).filter(|v| {
            v.to_str()
                .is_ok_and(|s| bear_core::RequestId::new(s).is_ok())
        });
        let started = std::time::Instant::now();
        let id = given.cloned().unwrap_or_else(|| new_request_id(started));
        // The future holds the shared part, whose count hyper's clone has just touched on this
        // thread, rather than another count on the application state.
        let shared = self.shared.clone();
        let state = &shared.state;
        let routes = state.metrics.routes();
        let route = routes.find(req.uri().path());
        let method = req.method().clone();
        let openai = req.uri().path().starts_with("/v1/");
        // Refused at the door, or audited (mutating requests to a route), then passed on.
        let admitted = host_and_ip(state, &req).and_then(|()| match routes.template(route) {
            Some(t) => audit_before(state, t, &req),
            None => Ok(None),
        });
        let (stage, ticket) = match admitted {
            Err(refused) => (
                Stage::Refused {
                    error: Some(refused),
                },
                None,
            ),
            Ok(ticket) => {
                use axum::body::HttpBody as _;
                let f = if req.body().is_end_stream() {
                    self.inner.call(req)
                } else {
                    // A clone of the shared one (the router is always ready, as `inner` is the
                    // same router): only requests with a body pay for it.
                    let mut with_body = shared.with_body.clone();
                    with_body.call(with_body_timeout(req, shared.idle))
                };
                (Stage::Inner { f }, ticket)
            }
        };
        EdgeFuture {
            stage,
            shared,
            route,
            method,
            openai,
            started,
            id: Some(id),
            ticket,
        }
    }
}

pin_project_lite::pin_project! {
    /// [`EdgeService`]'s response future: the router's (or the refusal), then the audit
    /// ticket, the metrics and the request id. A plain struct rather than a boxed `async`
    /// block: hyper keeps it in its per-connection slot, so a request allocates nothing here
    /// (the boxed block was 1.6 KiB, past the allocator's small-size cache, and was copied
    /// several times on the way).
    pub(crate) struct EdgeFuture<S, F> {
        #[pin]
        stage: Stage<F>,
        shared: Arc<EdgeShared<S>>,
        route: usize,
        method: axum::http::Method,
        // An OpenAI-compatible route (`/v1/…`): errors in OpenAI's shape.
        openai: bool,
        started: std::time::Instant,
        id: Option<HeaderValue>,
        ticket: Option<AuditTicket>,
    }
}

pin_project_lite::pin_project! {
    #[project = StageProj]
    enum Stage<F> {
        /// The router's future.
        Inner { #[pin] f: F },
        /// Refused by the gateway before the router (taken when answered).
        Refused { error: Option<ApiError> },
        /// A JSON error whose body is being rewritten to carry the request id (rare, so boxed).
        ErrorBody { f: futures::future::BoxFuture<'static, Response> },
    }
}

impl<S, F> std::future::Future for EdgeFuture<S, F>
where
    F: std::future::Future<Output = Result<Response, std::convert::Infallible>>,
{
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let mut this = self.project();
        let mut response = match this.stage.as_mut().project() {
            StageProj::Inner { f } => {
                let Ok(r) = std::task::ready!(f.poll(cx));
                if let Some(t) = this.ticket.take() {
                    t.finish(r.status());
                }
                r
            }
            StageProj::Refused { error } => error
                .take()
                .expect("EdgeFuture polled after completion")
                .into_response(),
            StageProj::ErrorBody { f } => return f.as_mut().poll(cx).map(Ok),
        };
        let metrics = &this.shared.state.metrics;
        metrics.routes().record(
            metrics,
            *this.route,
            this.method,
            response.status().as_u16(),
            *this.started,
        );
        let id = this.id.take().expect("EdgeFuture polled after completion");
        if is_json_error(&response) {
            let mut f: futures::future::BoxFuture<'static, Response> =
                Box::pin(with_id_in_error_body(response, id, *this.openai));
            let polled = f.as_mut().poll(cx);
            this.stage.set(Stage::ErrorBody { f });
            return polled.map(Ok);
        }
        harden(response.headers_mut());
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
        std::task::Poll::Ready(Ok(response))
    }
}

/// The Content-Security-Policy of every response: everything from this server only, no
/// inline script or style, no plugins, no framing by other pages.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: \
                   blob:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers every response carries: the CSP, no MIME sniffing, no referrer.
fn harden(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// Whether the response is an error with a JSON body (which then gets the request id too).
fn is_json_error(response: &Response) -> bool {
    let status = response.status();
    (status.is_client_error() || status.is_server_error())
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

/// Puts the id on a JSON error response, in its header and in its body's `error` object; on
/// the OpenAI-compatible routes (`openai`), the body becomes OpenAI's error shape and the
/// status OpenAI's (the id stays in the header).
async fn with_id_in_error_body(response: Response, id: HeaderValue, openai: bool) -> Response {
    let (mut parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(mut v) => {
                if let Some(e) = v.get_mut("error").and_then(|e| e.as_object_mut()) {
                    e.insert("request_id".into(), id.to_str().unwrap_or_default().into());
                }
                if openai {
                    let text = |k: &str| v["error"][k].as_str().map(str::to_string);
                    v = crate::openai::openai_error(
                        parts.status.as_u16(),
                        &text("kind").unwrap_or_default(),
                        &text("message").unwrap_or_default(),
                        text("field").as_deref(),
                    );
                    parts.status = crate::openai::openai_status(parts.status);
                }
                parts.headers.remove(header::CONTENT_LENGTH);
                Body::from(v.to_string())
            }
            Err(_) => Body::from(bytes),
        },
        Err(_) => Body::empty(),
    };
    harden(&mut parts.headers);
    parts.headers.insert(REQUEST_ID_HEADER, id);
    Response::from_parts(parts, body)
}

/// The second audit record of a request, written once it has been answered.
pub(crate) struct AuditTicket {
    state: Arc<AppState>,
    event: bear_security::audit::AuditEvent,
}

impl AuditTicket {
    /// Records the status the request was answered with.
    pub(crate) fn finish(mut self, status: axum::http::StatusCode) {
        if let Some(log) = &self.state.audit {
            self.event.outcome = status.as_u16().to_string();
            // The change is done; a failure here is logged by the audit log itself.
            let _ = log.record(self.event);
        }
    }
}

/// Writes an audit record for every mutating request (POST, PUT, PATCH, DELETE) before it runs:
/// who (the key's public id, or `unauthenticated`), what (method and route template, never ids
/// from the path or the body), the body's length. If the record cannot be written the request
/// is refused with 503 and nothing is done (fail-closed); otherwise the ticket writes a second
/// record with the status.
pub(crate) fn audit_before(
    state: &Arc<AppState>,
    route: &str,
    req: &Request,
) -> Result<Option<AuditTicket>, ApiError> {
    let mutating = matches!(
        *req.method(),
        axum::http::Method::POST
            | axum::http::Method::PUT
            | axum::http::Method::PATCH
            | axum::http::Method::DELETE
    );
    let Some(log) = state.audit.as_ref().filter(|_| mutating) else {
        return Ok(None);
    };
    let actor = presented_key(req.headers())
        .and_then(|k| {
            let store = state.keys.read().unwrap_or_else(|e| e.into_inner());
            store.verify(k).ok().map(|r| format!("key:{}", r.id))
        })
        .unwrap_or_else(|| "unauthenticated".into());
    let input_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let event = bear_security::audit::AuditEvent {
        actor,
        action: format!("api {} {route}", req.method()),
        outcome: "requested".into(),
        input_len,
        ..Default::default()
    };
    if log.record(event.clone()).is_err() {
        return Err(ApiError::from_kind(
            bear_core::ErrorKind::Unavailable,
            "the audit log cannot be written, so nothing was changed; check its disk and permissions",
        ));
    }
    Ok(Some(AuditTicket {
        state: state.clone(),
        event,
    }))
}

/// The message a stalled request body ends with; [`crate::ApiError`] turns it into 408.
pub(crate) const BODY_STALLED: &str = "the request body stalled";

/// Ends a request body that pauses longer than `idle`: the handler's extractor then fails
/// and the client gets 408, instead of a connection held open forever.
fn with_body_timeout(req: Request, idle: std::time::Duration) -> Request {
    use futures::StreamExt as _;
    let (parts, body) = req.into_parts();
    let stream = tokio_stream::StreamExt::timeout(body.into_data_stream(), idle).map(|r| match r {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(axum::BoxError::from(e)),
        Err(_) => Err(axum::BoxError::from(BODY_STALLED)),
    });
    Request::from_parts(parts, Body::from_stream(stream))
}

/// CORS for the configured origins only (none by default: no layer, no headers). Preflights
/// are answered here, before authentication, as browsers send them without credentials.
pub(crate) fn cors(limits: &Limits) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::Method;
    if limits.cors_origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = limits
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(tower_http::cors::AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                X_API_KEY,
                REQUEST_ID_HEADER,
            ])
            .expose_headers([REQUEST_ID_HEADER, header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Refuses requests whose `Host` is not local while the server listens on loopback (DNS
/// rebinding), and applies the per-IP rate limit.
fn host_and_ip(state: &AppState, req: &Request) -> Result<(), ApiError> {
    if state.loopback && !host_is_local(req.headers()) {
        return Err(ApiError::forbidden(
            "the Host header is not local; this server only answers on loopback",
        ));
    }
    let ip = client_ip(req.extensions());
    if let Err(n) = state.limiters.per_ip.check_key(&ip) {
        return Err(ApiError::rate_limited(retry_secs(n)));
    }
    Ok(())
}

/// The client a peer's requests are limited as: its IPv4 address (also when it arrives mapped
/// into IPv6), or its IPv6 /64 network, since a single IPv6 host is usually given a whole /64
/// and could otherwise take a fresh bucket per address. Loopback when the server runs without
/// connection info, as in tests that call the router directly.
fn client_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| {
            rate_limit_client(c.0.ip())
        })
}

/// See [`client_ip`].
fn rate_limit_client(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

fn host_is_local(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1") || name.ends_with(".localhost")
}

/// The one place an API key is read from a request: `Authorization: Bearer <key>` or
/// `X-Api-Key: <key>`. A key anywhere else (a query string) is not looked at.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim());
    }
    headers
        .get(&X_API_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// An authenticated caller: the key's public id and role.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's public id.
    pub key_id: String,
    /// Its role.
    pub role: Role,
}

impl Caller {
    /// This caller as the application layer sees it (ownership of collections and runs).
    pub fn viewer(&self) -> bear_app::Viewer {
        bear_app::Viewer::Key {
            id: self.key_id.clone(),
            admin: self.role == Role::Admin,
        }
    }

    /// Whether this caller may see something owned by `owner` (admins see everything; a
    /// local, unowned object only admins).
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        self.role == Role::Admin || owner == Some(self.key_id.as_str())
    }

    /// 403 unless the role grants `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this key's role lacks the {permission:?} permission"
            )))
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let ip = client_ip(&parts.extensions);
        let fail = |message: &str| -> ApiError {
            if let Err(n) = state.limiters.auth_failures.check_key(&ip) {
                return ApiError::rate_limited(retry_secs(n));
            }
            ApiError::unauthorized(message.to_string())
        };
        let (key_id, role) = match presented_key(&parts.headers) {
            Some(key) => {
                let store: &ApiKeyStore = &state.keys.read().unwrap_or_else(|e| e.into_inner());
                let record = store.verify(key).map(|r| (r.id.clone(), r.role));
                record.map_err(|_| fail("unknown API key"))?
            }
            None => match crate::session::cookie_token(&parts.headers) {
                Some(token) => session_caller(state, parts, token).map_err(|e| e.or(fail))?,
                None => {
                    return Err(fail(
                        "an API key is required: send `Authorization: Bearer <key>` or `X-Api-Key: <key>`, or sign in at /api/v1/session",
                    ));
                }
            },
        };
        if let Err(n) = state.limiters.per_key.check_key(&key_id) {
            return Err(ApiError::rate_limited(retry_secs(n)));
        }
        Ok(Self { key_id, role })
    }
}

/// Why a session cookie was refused: an authentication failure (401, counted like a wrong
/// key) or a request without its CSRF token (403).
enum SessionRefusal {
    Unauthenticated(&'static str),
    Forbidden(ApiError),
}

impl SessionRefusal {
    fn or(self, fail: impl Fn(&str) -> ApiError) -> ApiError {
        match self {
            Self::Unauthenticated(m) => fail(m),
            Self::Forbidden(e) => e,
        }
    }
}

/// The key and role a session cookie stands for: the session must be live and its key still
/// in force (a revoked key ends it), and a state-changing request must carry the session's
/// CSRF token.
fn session_caller(
    state: &AppState,
    parts: &Parts,
    token: &str,
) -> Result<(String, Role), SessionRefusal> {
    let ended = SessionRefusal::Unauthenticated("the session has ended: sign in again");
    let live = state.sessions.get(token).ok_or(ended)?;
    let Some(role) = state.role_of(&live.key_id) else {
        state.sessions.end(token);
        return Err(SessionRefusal::Unauthenticated(
            "the session's API key was revoked: sign in again",
        ));
    };
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let presented = parts
        .headers
        .get(crate::session::CSRF_HEADER)
        .and_then(|v| v.to_str().ok());
    if !safe && !presented.is_some_and(|p| bear_security::session::csrf_matches(&live, p)) {
        return Err(SessionRefusal::Forbidden(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "csrf",
            "a request that changes something must carry the session's X-CSRF-Token",
        )));
    }
    Ok((live.key_id, role))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn request_ids_are_unique_v7_uuids_on_the_unix_clock_in_request_order() {
        let parse = |v: HeaderValue| uuid::Uuid::parse_str(v.to_str().unwrap()).unwrap();
        let wall = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64
        };
        let before = wall();
        let start = std::time::Instant::now();
        let ids: Vec<uuid::Uuid> = (0..1000)
            .map(|i| parse(new_request_id(start + std::time::Duration::from_millis(i))))
            .collect();
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        let ms = |u: &uuid::Uuid| {
            let (s, n) = u.get_timestamp().unwrap().to_unix();
            s * 1000 + u64::from(n) / 1_000_000
        };
        for (i, u) in ids.iter().enumerate() {
            assert_eq!(u.get_version(), Some(uuid::Version::SortRand));
            // Each id carries its request's start, on the wall clock of the first id.
            let t = ms(u);
            assert!(t + 1 >= before + i as u64, "id {i}: {t} before {before}");
            assert!(t <= wall() + i as u64 + 1, "id {i}: {t} in the future");
        }
        // Ids made on another thread are unique too (per-thread seeds).
        let other = std::thread::spawn(move || parse(new_request_id(start)))
            .join()
            .unwrap();
        assert!(!unique.contains(&other));
    }

    #[test]
    fn an_ipv6_host_is_limited_by_its_64_network_and_a_mapped_ipv4_as_ipv4() {
        let v4 = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
        assert_eq!(rate_limit_client(v4), v4);
        let mapped = IpAddr::V6(Ipv4Addr::new(203, 0, 113, 7).to_ipv6_mapped());
        assert_eq!(rate_limit_client(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(rate_limit_client(a), rate_limit_client(b));
        assert_eq!(
            rate_limit_client(a),
            IpAddr::V6("2001:db8:1:2::".parse::<Ipv6Addr>().unwrap())
        );
        assert_ne!(rate_limit_client(a), rate_limit_client(other));
        assert_eq!(
            rate_limit_client(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn buckets_of_quiet_clients_are_forgotten_and_busy_ones_kept() {
        // A bucket of one request refilled every millisecond: quiet within a few milliseconds.
        let quick = Limiters::new(&Limits {
            per_second: NonZeroU32::new(1000).unwrap(),
            burst: NonZeroU32::MIN,
            ..Limits::default()
        });
        for i in 0..5000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert!(quick.per_ip.check_key(&ip).is_ok());
            assert!(quick.auth_failures.check_key(&ip).is_ok());
        }
        assert!(quick.per_key.check_key(&"key".to_string()).is_ok());
        assert_eq!(quick.tracked(), 10_001);
        std::thread::sleep(std::time::Duration::from_millis(20));
        quick.forget_idle();
        // The auth-failure buckets (per minute) are still refilling; the others are forgotten.
        assert_eq!(quick.tracked(), 5000);

        // A client that has just used up its bucket keeps it, and stays limited.
        let slow = Limiters::new(&Limits {
            per_second: NonZeroU32::MIN,
            burst: NonZeroU32::MIN,
            ..Limits::default()
        });
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(slow.per_ip.check_key(&ip).is_ok());
        slow.forget_idle();
        assert_eq!(slow.tracked(), 1);
        assert!(slow.per_ip.check_key(&ip).is_err());
    }
}
