//! `/metrics` in the Prometheus text format (prometheus-client): requests by method, route
//! template and status, request latency by route, and gauges read at scrape time (models
//! loaded and resident bytes, workflow runs by status, documents and chunks per collection).
//! Labels are route templates, never paths with ids or anything from a body.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bear_security::access::Permission;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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

/// Upper bound of the first latency bucket, in nanoseconds; each next bucket doubles it.
const FIRST_BUCKET_NS: u64 = 500_000;
/// Finite buckets: 0.5 ms to about 16 s, then +Inf.
const BUCKETS: usize = 16;

/// Slots per counter: each thread writes its own ([`shard`]), so the API's worker threads do
/// not pass the same cache line back and forth on every request; a scrape adds them up.
const SHARDS: usize = 8;

/// This thread's slot: threads take slots in turn as they first record something.
fn shard() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// A request-latency histogram that every worker thread updates without a lock and in its own
/// cache line: per [`shard`], one atomic counter per bucket plus the sum (prometheus-client's
/// own `Histogram` takes a mutex per observation, which the API's worker threads contend for on
/// a busy route). Encoded as a classic Prometheus histogram with the same buckets (0.5 ms
/// doubling); the count is the sum of the buckets, so an observation touches two counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct LatencyHistogram(Arc<[crossbeam_utils::CachePadded<LatencyCells>; SHARDS]>);

#[derive(Debug, Default)]
pub(crate) struct LatencyCells {
    buckets: [AtomicU64; BUCKETS + 1],
    sum_ns: AtomicU64,
}

impl LatencyHistogram {
    /// The bucket of a duration: the first whose upper bound is at least `ns`.
    fn bucket(ns: u64) -> usize {
        let q = ns.div_ceil(FIRST_BUCKET_NS);
        let i = if q <= 1 {
            0
        } else {
            (u64::BITS - (q - 1).leading_zeros()) as usize
        };
        i.min(BUCKETS)
    }

    pub(crate) fn observe(&self, elapsed: std::time::Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let c = &self.0[shard()];
        c.buckets[Self::bucket(ns)].fetch_add(1, Ordering::Relaxed);
        c.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// A counter with a slot per [`shard`] (see [`LatencyHistogram`]), encoded as their sum.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardedCounter(Arc<[crossbeam_utils::CachePadded<AtomicU64>; SHARDS]>);

impl ShardedCounter {
    pub(crate) fn inc(&self) {
        self.0[shard()].fetch_add(1, Ordering::Relaxed);
    }

    /// The total over all slots.
    pub(crate) fn get(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl prometheus_client::encoding::EncodeMetric for ShardedCounter {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Counter
    }
}

impl prometheus_client::metrics::TypedMetric for ShardedCounter {
    const TYPE: prometheus_client::metrics::MetricType =
        prometheus_client::metrics::MetricType::Counter;
}

impl prometheus_client::encoding::EncodeMetric for LatencyHistogram {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        let total = |cell: &dyn Fn(&LatencyCells) -> &AtomicU64| -> u64 {
            self.0.iter().map(|c| cell(c).load(Ordering::Relaxed)).sum()
        };
        // Read once each, so the count always equals the buckets' total.
        let buckets: Vec<(f64, u64)> = (0..=BUCKETS)
            .map(|i| {
                let upper = if i == BUCKETS {
                    // Printed as `+Inf`, as Prometheus expects of the last bucket.
                    f64::INFINITY
                } else {
                    (FIRST_BUCKET_NS << i) as f64 / 1e9
                };
                (upper, total(&|c| &c.buckets[i]))
            })
            .collect();
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            total(&|c| &c.sum_ns) as f64 / 1e9,
            buckets.iter().map(|(_, n)| n).sum(),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

impl prometheus_client::metrics::TypedMetric for LatencyHistogram {
    const TYPE: prometheus_client::metrics::MetricType =
        prometheus_client::metrics::MetricType::Histogram;
}

/// The counters the middleware updates.
pub(crate) struct Metrics {
    requests: Family<RequestLabels, ShardedCounter>,
    latency: Family<RouteLabel, LatencyHistogram>,
    /// The route table, made with the router.
    pub(crate) routes: std::sync::OnceLock<Routes>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::default(),
            routes: std::sync::OnceLock::new(),
        }
    }

    /// The route table (empty until the router is made).
    pub(crate) fn routes(&self) -> &Routes {
        self.routes.get_or_init(|| Routes::new([], self))
    }
}

/// The route templates, for labels and audit records, matched once per request with axum's
/// own matcher (matchit), and each route's latency histogram, created up front.
pub(crate) struct Routes {
    matcher: matchit::Router<usize>,
    /// The templates without parameters, looked up by the whole path first: one hash instead
    /// of a walk down the matcher's tree for the most requested routes.
    fixed: std::collections::HashMap<&'static str, usize, ahash::RandomState>,
    names: Vec<&'static str>,
    latency: Vec<LatencyHistogram>,
    /// Per route, method and status slot, the counter of `requests`, made on first use: no
    /// lock and no hashing per request.
    counters: Vec<[[std::sync::OnceLock<ShardedCounter>; STATUS_SLOTS]; METHOD_SLOTS]>,
}

const METHODS: [&str; 4] = ["GET", "POST", "DELETE", "OTHER"];
const METHOD_SLOTS: usize = METHODS.len();
/// Statuses with a slot of their own; the rest share the family's map.
const STATUSES: [u16; 18] = [
    200, 201, 202, 204, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429, 500, 503, 504,
];
const STATUS_SLOTS: usize = STATUSES.len();

/// The label of requests no route matches.
const NO_ROUTE: &str = "(none)";

impl Routes {
    /// The table for `templates` (axum's `{param}` syntax), histograms registered in `metrics`.
    pub(crate) fn new<'a>(templates: impl IntoIterator<Item = &'a str>, metrics: &Metrics) -> Self {
        let mut matcher = matchit::Router::new();
        let mut names = vec![NO_ROUTE];
        for t in templates {
            let name = intern(t);
            if matcher.insert(name, names.len()).is_ok() {
                names.push(name);
            }
        }
        let fixed = names
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, t)| !t.contains('{'))
            .map(|(i, &t)| (t, i))
            .collect();
        let latency = names
            .iter()
            .map(|&route| metrics.latency.get_or_create(&RouteLabel { route }).clone())
            .collect();
        let counters = names
            .iter()
            .map(|_| std::array::from_fn(|_| std::array::from_fn(|_| std::sync::OnceLock::new())))
            .collect();
        Self {
            matcher,
            fixed,
            names,
            latency,
            counters,
        }
    }

    /// The route index for `path` (0: no route).
    pub(crate) fn find(&self, path: &str) -> usize {
        match self.fixed.get(path) {
            Some(&i) => i,
            None => self.matcher.at(path).map_or(0, |m| *m.value),
        }
    }

    /// The template of route `i`, if one matched.
    pub(crate) fn template(&self, i: usize) -> Option<&'static str> {
        (i > 0).then(|| self.names[i])
    }

    /// Counts and times one answered request.
    pub(crate) fn record(
        &self,
        metrics: &Metrics,
        i: usize,
        method: &axum::http::Method,
        status: u16,
        started: Instant,
    ) {
        self.latency[i].observe(started.elapsed());
        let method = method_name(method);
        let labels = || RequestLabels {
            method,
            route: self.names[i],
            status,
        };
        let m = METHODS.iter().position(|&x| x == method);
        let st = STATUSES.iter().position(|&x| x == status);
        match (m, st) {
            (Some(m), Some(st)) => {
                self.counters[i][m][st]
                    .get_or_init(|| metrics.requests.get_or_create(&labels()).clone())
                    .inc();
            }
            _ => {
                metrics.requests.get_or_create(&labels()).inc();
            }
        }
    }
}

/// `GET /metrics` (read permission).
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub(crate) async fn serve(
    State(s): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    // Every series names the instance (several may share a database behind one balancer);
    // not `instance`, which Prometheus sets to the scrape target itself.
    let mut registry = Registry::with_prefix_and_labels(
        "bear",
        [(
            "bear_instance".into(),
            s.engine.instance().to_string().into(),
        )]
        .into_iter(),
    );
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
        let processed: Family<Labels, Gauge<u64, AtomicU64>> = Family::default();
        let cached: Family<Labels, Gauge<u64, AtomicU64>> = Family::default();
        for info in models.list() {
            let Ok(m) = models.metrics(&info.entry.id) else {
                continue;
            };
            if m.requests == 0 {
                continue;
            }
            let model = vec![("model", info.entry.id.to_string())];
            processed
                .get_or_create(&model)
                .set(m.prompt_tokens_processed);
            cached.get_or_create(&model).set(m.prompt_tokens_cached);
        }
        registry.register(
            "model_prompt_tokens_processed",
            "Prompt tokens decoded per model, since the server started",
            processed,
        );
        registry.register(
            "model_prompt_tokens_cached",
            "Prompt tokens the prompt cache supplied per model, since the server started",
            cached,
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
    let buckets: Gauge = Gauge::default();
    buckets.set(i64::try_from(s.limiters.tracked()).unwrap_or(i64::MAX));
    registry.register(
        "rate_limit_buckets",
        "Clients and keys with a rate-limit bucket in memory",
        buckets,
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_from_many_threads_add_up_in_the_scrape() {
        let mut registry = Registry::default();
        let requests = Family::<RouteLabel, ShardedCounter>::default();
        let latency = Family::<RouteLabel, LatencyHistogram>::default();
        registry.register("requests", "test", requests.clone());
        registry.register("latency", "test", latency.clone());
        let label = RouteLabel { route: "/r" };
        let (counter, histogram) = (
            requests.get_or_create(&label).clone(),
            latency.get_or_create(&label).clone(),
        );
        // More threads than slots, so some share one.
        std::thread::scope(|s| {
            for t in 0..(SHARDS as u64 + 3) {
                let (counter, histogram) = (&counter, &histogram);
                s.spawn(move || {
                    for _ in 0..1000 {
                        counter.inc();
                        histogram.observe(Duration::from_millis(t % 2 * 2));
                    }
                });
            }
        });
        let n = (SHARDS as u64 + 3) * 1000;
        assert_eq!(counter.get(), n);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(&format!("requests_total{{route=\"/r\"}} {n}")),
            "{text}"
        );
        assert!(
            text.contains(&format!("latency_count{{route=\"/r\"}} {n}")),
            "{text}"
        );
        // Even-numbered threads observed 0 ms (first bucket), odd ones 2 ms (third bucket).
        let first = (SHARDS as u64 + 3).div_ceil(2) * 1000;
        assert!(
            text.contains(&format!(
                "latency_bucket{{le=\"0.0005\",route=\"/r\"}} {first}"
            )),
            "{text}"
        );
        let sum = (n - first) as f64 * 0.002;
        assert!(
            text.contains(&format!("latency_sum{{route=\"/r\"}} {sum:.1}")),
            "{text}"
        );
    }

    #[test]
    fn paths_find_their_route_template_whether_fixed_or_with_parameters() {
        let metrics = Metrics::new();
        let routes = Routes::new(
            [
                "/api/v1/workflows",
                "/api/v1/workflows/{id}",
                "/api/v1/workflows/active",
                "/health",
            ],
            &metrics,
        );
        let template = |path: &str| routes.template(routes.find(path));
        assert_eq!(template("/health"), Some("/health"));
        assert_eq!(template("/api/v1/workflows"), Some("/api/v1/workflows"));
        // A fixed segment wins over a parameter, as in the router.
        assert_eq!(
            template("/api/v1/workflows/active"),
            Some("/api/v1/workflows/active")
        );
        assert_eq!(
            template("/api/v1/workflows/0190a1b2"),
            Some("/api/v1/workflows/{id}")
        );
        for unknown in ["/", "/healthz", "/health/", "/api/v1/workflows/a/b", ""] {
            assert_eq!(template(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn latency_buckets_are_upper_bounds_doubling_from_half_a_millisecond() {
        let b = LatencyHistogram::bucket;
        assert_eq!(b(0), 0);
        assert_eq!(b(500_000), 0, "0.5 ms is in the 0.5 ms bucket");
        assert_eq!(b(500_001), 1);
        assert_eq!(b(1_000_000), 1);
        assert_eq!(b(1_000_001), 2);
        assert_eq!(b(FIRST_BUCKET_NS << 15), 15);
        assert_eq!(b((FIRST_BUCKET_NS << 15) + 1), BUCKETS, "+Inf");
        assert_eq!(b(u64::MAX), BUCKETS);

        let h = LatencyHistogram::default();
        for ms in [0, 1, 3, 3] {
            h.observe(Duration::from_millis(ms));
        }
        let mut registry = Registry::default();
        registry.register("lat", "latency", h);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            "lat_sum 0.007",
            "lat_count 4",
            "lat_bucket{le=\"0.0005\"} 1",
            "lat_bucket{le=\"0.001\"} 2",
            "lat_bucket{le=\"0.002\"} 2",
            "lat_bucket{le=\"0.004\"} 4",
            "lat_bucket{le=\"+Inf\"} 4",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
