//! `/metrics` in the Prometheus text format (prometheus-client): requests by method, route
//! template and status, request latency by route, and gauges read at scrape time (models
//! loaded and resident bytes, workflow runs by status, documents and chunks per collection).
//! Labels are route templates, never paths with ids or anything from a body.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bear_security::access::Permission;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::error::ApiError;
use crate::gateway::Caller;

type Labels = Vec<(&'static str, String)>;

/// Per request: labels without allocation (route templates are interned once each).
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

/// Route templates are few and fixed (the router's), so each is leaked once and shared.
fn intern(route: &str) -> &'static str {
    static SEEN: std::sync::RwLock<Vec<&'static str>> = std::sync::RwLock::new(Vec::new());
    if let Some(r) = SEEN
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|r| **r == route)
    {
        return r;
    }
    let mut seen = SEEN.write().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = seen.iter().find(|r| **r == route) {
        return r;
    }
    let r: &'static str = Box::leak(route.to_owned().into_boxed_str());
    seen.push(r);
    r
}

fn method_name(m: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *m {
        M::GET => "GET",
        M::POST => "POST",
        M::DELETE => "DELETE",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The counters the middleware updates.
pub(crate) struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

/// Counts and times every routed request, and audits the mutating ones: one route layer for
/// both, a plain tower layer (it runs on every request, so it avoids `from_fn`'s boxing).
#[derive(Clone)]
pub(crate) struct Track(pub(crate) Arc<AppState>);

impl<S> tower::Layer<S> for Track {
    type Service = TrackService<S>;
    fn layer(&self, inner: S) -> TrackService<S> {
        TrackService {
            inner,
            state: self.0.clone(),
        }
    }
}

/// [`Track`] around a route.
#[derive(Clone)]
pub(crate) struct TrackService<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> tower::Service<Request> for TrackService<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, std::convert::Infallible>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = intern(
            req.extensions()
                .get::<MatchedPath>()
                .map_or("(none)", |m| m.as_str()),
        );
        let method = method_name(req.method());
        let started = Instant::now();
        let state = self.state.clone();
        let inner = match crate::gateway::audit_before(&state, route, &req) {
            Err(refused) => Err(refused),
            Ok(ticket) => Ok((self.inner.call(req), ticket)),
        };
        Box::pin(async move {
            let response = match inner {
                Err(refused) => refused.into_response(),
                Ok((f, ticket)) => {
                    let r = f.await?;
                    if let Some(t) = ticket {
                        t.finish(r.status());
                    }
                    r
                }
            };
            let m = &state.metrics;
            m.latency
                .get_or_create(&RouteLabel { route })
                .observe(started.elapsed().as_secs_f64());
            m.requests
                .get_or_create(&RequestLabels {
                    method,
                    route,
                    status: response.status().as_u16(),
                })
                .inc();
            Ok(response)
        })
    }
}

/// `GET /metrics` (read permission).
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub(crate) async fn serve(
    State(s): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    let mut registry = Registry::with_prefix("bear");
    let m = &s.metrics;
    registry.register(
        "http_requests",
        "HTTP requests by method, route template and status",
        m.requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "HTTP request latency by route template",
        m.latency.clone(),
    );
    if let Some(models) = &s.models {
        let loaded: Gauge = Gauge::default();
        loaded.set(
            models
                .list()
                .iter()
                .filter(|i| i.status == bear_models::ModelStatus::Loaded)
                .count() as i64,
        );
        registry.register("models_loaded", "Models resident in memory", loaded);
        let bytes: Gauge<u64, AtomicU64> = Gauge::default();
        bytes.set(models.resident_bytes());
        registry.register(
            "models_resident_bytes",
            "Bytes held by resident models",
            bytes,
        );
    }
    let runs: Family<Labels, Gauge> = Family::default();
    if let Ok(all) = s.engine.list(None).await {
        for p in all {
            runs.get_or_create(&vec![("status", p.status.as_str().to_string())])
                .inc();
        }
    }
    registry.register("workflow_runs", "Workflow runs by status", runs);
    let docs: Family<Labels, Gauge> = Family::default();
    let chunks: Family<Labels, Gauge> = Family::default();
    for (name, (d, c)) in crate::docs::collection_counts(&s).await {
        docs.get_or_create(&vec![("collection", name.clone())])
            .set(d as i64);
        chunks
            .get_or_create(&vec![("collection", name)])
            .set(c as i64);
    }
    registry.register("collection_documents", "Documents per collection", docs);
    registry.register("collection_chunks", "Chunks per collection", chunks);
    let mut body = String::new();
    encode(&mut body, &registry).map_err(|_| {
        ApiError::from_kind(bear_core::ErrorKind::Internal, "metrics encoding failed")
    })?;
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
