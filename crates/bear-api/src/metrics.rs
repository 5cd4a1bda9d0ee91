//! `/metrics` in the Prometheus text format (prometheus-client): requests by method, route
//! template and status, request latency by route, and gauges read at scrape time (models
//! loaded and resident bytes, workflow runs by status, documents and chunks per collection).
//! Labels are route templates, never paths with ids or anything from a body.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
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

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The counters the middleware updates.
pub(crate) struct Metrics {
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

/// Counts every routed request and times it.
pub(crate) async fn track(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(none)", |m| m.as_str())
        .to_string();
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let m = &state.metrics;
    m.latency
        .get_or_create(&vec![("route", route.clone())])
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&vec![
            ("method", method),
            ("route", route),
            ("status", response.status().as_u16().to_string()),
        ])
        .inc();
    response
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
