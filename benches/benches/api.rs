//! bear-api benchmarks, each against its peer in the same run:
//!
//! - `api/middleware`: `GET /api/v1/hw` (a small authenticated JSON route) through the whole
//!   gateway (request id, Host check, per-IP limit, body timeout, metrics, audit layer)
//!   against the same route, handler and key check with no middleware, both
//!   in process (tower `oneshot`, no sockets) and over loopback HTTP with keep-alive, both
//!   served by bear-api's accept loop (and the bare route by `axum::serve`, for reference).
//! - `api/generate`: `POST /api/v1/models/{id}/generate` over HTTP against the direct library
//!   call (`ModelManager::generate_with`) for the same request: once answered from the result
//!   cache (what the API itself adds, without decoding) and once decoded (prompt and 2 new
//!   tokens, a fresh prompt per iteration so nothing is cached; short, so run-to-run noise in
//!   decoding stays well under the 2 ms being measured).
//!
//! `cargo xtask bench api` turns the estimates into ratios and added milliseconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use bear_agents::{Backends, Engine, EngineConfig, MemoryStore, Registry};
use bear_api::{AppState, Limits};
use bear_core::{
    CancellationToken, Dirs, EventBus, GenerationRequest, ModelId, Prompt, Redacted, SamplingParams,
};
use bear_models::{CacheConfig, LlamaOptions, ManagerConfig, ModelManager};
use bear_security::access::{ApiKeyStore, Role};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tower::ServiceExt;

const GEN: &str = "SmolLM2-135M-Instruct.Q4_1";

fn limits() -> Limits {
    // The benchmark measures the gateway's work, not its refusals: limits far above the load.
    let big = std::num::NonZeroU32::new(1_000_000_000).expect("non-zero");
    Limits {
        per_second: big,
        burst: big,
        ..Limits::default()
    }
}

fn manager() -> Arc<ModelManager> {
    let dirs = Dirs::from_env(|k| std::env::var_os(k)).expect("dirs");
    let path = dirs.models_dir.join(bear_core::assets::SMOLLM2_GGUF);
    assert!(path.exists(), "{}", bear_core::assets::missing_hint(&path));
    Arc::new(
        ModelManager::new(ManagerConfig {
            model_dirs: vec![dirs.models_dir.clone()],
            memory_budget: 4 << 30,
            keep_alive: Duration::from_secs(3600),
            autoload: true,
            llama: LlamaOptions::default(),
            ort_dylib_candidates: bear_models::ort_dylib_candidates(None, &dirs.models_dir),
            fallback_tokenizer_dir: Some(dirs.models_dir.join(bear_core::assets::MINILM_DIR)),
            threads: 2,
            cache: CacheConfig {
                l2_path: None,
                ..CacheConfig::default()
            },
        })
        .expect("manager"),
    )
}

struct Fixture {
    state: Arc<AppState>,
    key: String,
    _dir: tempfile::TempDir,
}

fn fixture(models: Arc<ModelManager>) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut keys = ApiKeyStore::open(&dir.path().join("api-keys.json")).expect("keys");
    let key = keys.create(Role::User, "bench").expect("key").0.reveal();
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Registry::with_default_agents(),
        Backends::default(),
        EventBus::default(),
        EngineConfig::default(),
    );
    let hw = json!({"cpu": {"logical_cores": 2, "model": "bench"}, "memory": {"total_bytes": 1u64 << 34}});
    // The application the generate route runs in: default configuration over the same models.
    let real = Dirs::from_env(|k| std::env::var_os(k)).expect("dirs");
    let loaded = bear_app::LoadedConfig {
        config: bear_core::Config::default(),
        dirs: Dirs {
            config_file: dir.path().join("config.toml"),
            data_dir: dir.path().to_path_buf(),
            cache_dir: dir.path().join("cache"),
            models_dir: real.models_dir,
        },
        source: None,
    };
    let app = bear_app::App::new(loaded, models.clone(), bear_app::Keys::Opened(None))
        .expect("application");
    let state = Arc::new(
        AppState::new(keys, engine, hw, true, &limits())
            .with_models(models)
            .with_app(Arc::new(app)),
    );
    Fixture {
        state,
        key,
        _dir: dir,
    }
}

/// The same route, handler and key check, with none of the gateway's layers.
fn bare(state: Arc<AppState>) -> axum::Router {
    bear_api::routes_without_gateway(state)
}

async fn listen(app: axum::Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await.expect("serve") });
    addr
}

/// The full API and the same routes without the gateway, each on its own port and both
/// through bear-api's accept loop.
async fn servers(f: &Fixture) -> (SocketAddr, SocketAddr) {
    let full = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let bare_l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addrs = (
        full.local_addr().expect("addr"),
        bare_l.local_addr().expect("addr"),
    );
    let state = f.state.clone();
    tokio::spawn(async move {
        bear_api::serve(full, state, &limits(), std::future::pending())
            .await
            .expect("serve")
    });
    let app = bare(f.state.clone());
    tokio::spawn(async move {
        bear_api::serve_router(bare_l, app, &limits(), std::future::pending())
            .await
            .expect("serve")
    });
    addrs
}

/// `BEAR_BENCH_SERVE=SECONDS`: instead of measuring, serve `/api/v1/hw` with the full gateway
/// and bare (both through bear-api's accept loop) for an outside load tool, and print
/// `full URL KEY` and `bare URL`. `cargo xtask bench api` loads them with wrk. With
/// `BEAR_BENCH_SERVE_UNTIL_EOF` set, serving also ends when stdin is closed.
fn serve_for_load(secs: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let f = fixture(manager());
    let (full, bare_addr) = rt.block_on(servers(&f));
    println!("full http://{full}/api/v1/hw {}", f.key);
    println!("bare http://{bare_addr}/api/v1/hw");
    // `cargo xtask bench api` sets BEAR_BENCH_SERVE_UNTIL_EOF and closes stdin when it is done
    // (or dies): killing the `cargo` it started would leave this process serving.
    if std::env::var_os("BEAR_BENCH_SERVE_UNTIL_EOF").is_some() {
        let (closed, until) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = closed.send(());
        });
        let _ = until.recv_timeout(Duration::from_secs(secs));
    } else {
        std::thread::sleep(Duration::from_secs(secs));
    }
}

fn api_bench(c: &mut Criterion) {
    if let Some(secs) = std::env::var("BEAR_BENCH_SERVE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return serve_for_load(secs);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let models = manager();
    let f = fixture(models.clone());
    let full = bear_api::router(f.state.clone(), &limits());
    let plain = bare(f.state.clone());
    let request = |auth: Option<&str>| {
        let mut r = Request::get("/api/v1/hw").header("host", "127.0.0.1");
        if let Some(k) = auth {
            r = r.header("authorization", format!("Bearer {k}"));
        }
        r.body(Body::empty()).expect("request")
    };
    let check = |status: axum::http::StatusCode| assert!(status.is_success(), "{status}");

    let mut g = c.benchmark_group("api/middleware");
    g.bench_function("in_process/full", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = full
                    .clone()
                    .oneshot(request(Some(&f.key)))
                    .await
                    .expect("infallible");
                check(r.status());
                axum::body::to_bytes(r.into_body(), 1 << 20)
                    .await
                    .expect("body")
            })
        })
    });
    g.bench_function("in_process/bare", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = plain
                    .clone()
                    .oneshot(request(Some(&f.key)))
                    .await
                    .expect("infallible");
                check(r.status());
                axum::body::to_bytes(r.into_body(), 1 << 20)
                    .await
                    .expect("body")
            })
        })
    });

    // Over loopback HTTP with keep-alive: bear-api's own server and accept loop, against
    // axum::serve with the bare route.
    let (full_addr, bare_addr) = rt.block_on(servers(&f));
    let axum_addr = rt.block_on(listen(bare(f.state.clone())));
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let get = |addr: SocketAddr, key: Option<&str>| {
        let mut r = client.get(format!("http://{addr}/api/v1/hw"));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r
    };
    g.bench_function("http/full", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = get(full_addr, Some(&f.key)).send().await.expect("send");
                assert!(r.status().is_success());
                r.bytes().await.expect("body")
            })
        })
    });
    g.bench_function("http/bare", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = get(bare_addr, Some(&f.key)).send().await.expect("send");
                assert!(r.status().is_success());
                r.bytes().await.expect("body")
            })
        })
    });
    g.bench_function("http/bare_axum_serve", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = get(axum_addr, Some(&f.key)).send().await.expect("send");
                assert!(r.status().is_success());
                r.bytes().await.expect("body")
            })
        })
    });
    g.finish();

    // Generation: the API against the library call, same request.
    let gen_url = format!("http://{full_addr}/api/v1/models/{GEN}/generate");
    let direct = |prompt: String, max_tokens: u32| {
        let m = models.clone();
        async move {
            let req = GenerationRequest {
                model: ModelId::new(GEN).expect("id"),
                prompt: Prompt::Text(Redacted::new(prompt)),
                params: SamplingParams {
                    max_tokens,
                    temperature: 0.0,
                    ..SamplingParams::default()
                },
            };
            m.generate_with(req, Box::new(|_: &str| true), CancellationToken::new())
                .await
                .expect("generates")
        }
    };
    let via_api = |prompt: String, max_tokens: u32| {
        let r = client
            .post(&gen_url)
            .bearer_auth(&f.key)
            // Raw, as the direct call sends it: both sides decode the same prompt.
            .json(&json!({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "raw": true}));
        async move {
            let r = r.send().await.expect("send");
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.expect("body")
        }
    };
    // Loaded and cached once, so both sides see a resident model and a warm cache.
    let cached = "The parties agree that".to_string();
    rt.block_on(direct(cached.clone(), 8));
    rt.block_on(via_api(cached.clone(), 8));
    let mut g = c.benchmark_group("api/generate");
    g.bench_function("cached/direct", |b| {
        b.iter(|| rt.block_on(direct(cached.clone(), 8)))
    });
    g.bench_function("cached/http", |b| {
        b.iter(|| rt.block_on(via_api(cached.clone(), 8)))
    });
    g.finish();
    let timed = |f: &dyn Fn()| {
        let t = std::time::Instant::now();
        f();
        t.elapsed()
    };
    paired_generation(
        &rt,
        |p| timed(&|| drop(rt.block_on(direct(p.clone(), 2)))),
        |p| timed(&|| drop(rt.block_on(via_api(p.clone(), 2)))),
    );
}

/// Decoded generation, paired: each round runs the library call and the API call on fresh
/// prompts back to back (alternating order and wording), so drift between runs cancels; the
/// median of the per-round differences is what the API adds. Written to `<target>/bench-api.json`.
fn paired_generation(
    rt: &tokio::runtime::Runtime,
    direct: impl Fn(String) -> std::time::Duration,
    via_api: impl Fn(String) -> std::time::Duration,
) {
    let _ = rt;
    let rounds = 40;
    let mut diffs = Vec::with_capacity(rounds);
    let mut d_ms = Vec::with_capacity(rounds);
    for i in 0..rounds {
        // Fresh prompts (nothing cached); each side gets each wording and goes first in every
        // other round, so neither the prompt's length nor the order favours one side.
        let tenant = format!("Clause {i} of the lease says that the tenant");
        let landlord = format!("Clause {i} of the lease says that the landlord");
        let (d, h) = if i % 2 == 0 {
            let d = direct(tenant);
            (d, via_api(landlord))
        } else {
            let h = via_api(tenant);
            (direct(landlord), h)
        };
        diffs.push(h.as_secs_f64() * 1e3 - d.as_secs_f64() * 1e3);
        d_ms.push(d.as_secs_f64() * 1e3);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let report = json!({
        "decoded_rounds": rounds,
        "decoded_direct_ms_p50": median(&mut d_ms),
        "decoded_added_ms_p50": median(&mut diffs),
    });
    println!("api generation, paired: {report}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let _ = std::fs::write(target.join("bench-api.json"), report.to_string());
}

criterion_group!(benches, api_bench);
criterion_main!(benches);
