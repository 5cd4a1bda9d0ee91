//! ModelManager with the real models: autoload, LRU eviction under a budget, keep-alive,
//! in-use protection, caching and metrics.

use std::sync::Arc;
use std::time::Duration;

use bear_core::{
    CancellationToken, Dirs, ErrorKind, GenerationRequest, ModelId, Prompt, Redacted,
    SamplingParams, TextGenerator,
};
use bear_models::{CacheConfig, LlamaOptions, ManagerConfig, ModelManager, ModelStatus};

const GEN: &str = "SmolLM2-135M-Instruct.Q4_1";
const EMB: &str = "all-MiniLM-L6-v2";

fn manager(edit: impl FnOnce(&mut ManagerConfig)) -> (ModelManager, tempfile::TempDir) {
    let _ = crate::asset(bear_core::assets::SMOLLM2_GGUF);
    let dirs = Dirs::from_env(|k| std::env::var_os(k)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut config = ManagerConfig {
        model_dirs: vec![dirs.models_dir.clone()],
        memory_budget: 4 << 30,
        keep_alive: Duration::from_secs(600),
        autoload: true,
        llama: LlamaOptions::default(),
        ort_dylib_candidates: bear_models::ort_dylib_candidates(None, &dirs.models_dir),
        fallback_tokenizer_dir: Some(dirs.models_dir.join(bear_core::assets::MINILM_DIR)),
        threads: 2,
        cache: CacheConfig {
            l2_path: Some(tmp.path().join("cache.redb")),
            ..CacheConfig::default()
        },
    };
    edit(&mut config);
    (ModelManager::new(config).unwrap(), tmp)
}

fn id(s: &str) -> ModelId {
    ModelId::new(s).unwrap()
}

fn greedy(prompt: &str) -> GenerationRequest {
    GenerationRequest {
        model: id(GEN),
        prompt: Prompt::Text(Redacted::new(prompt.into())),
        params: SamplingParams {
            max_tokens: 12,
            temperature: 0.0,
            ..SamplingParams::default()
        },
    }
}

fn status(m: &ModelManager, name: &str) -> ModelStatus {
    m.list()
        .into_iter()
        .find(|i| i.entry.id.as_str() == name)
        .unwrap()
        .status
}

#[tokio::test]
async fn autoload_cache_and_metrics() {
    let (m, _tmp) = manager(|_| {});
    assert_eq!(m.list().len(), 5);
    assert_eq!(status(&m, GEN), ModelStatus::Available);

    let a = m
        .generate(
            greedy("Contracts are"),
            Box::new(|_: &str| true),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(status(&m, GEN), ModelStatus::Loaded);
    let mut streamed = String::new();
    let b = m
        .generate_with(
            greedy("Contracts are"),
            Box::new(move |p: &str| {
                streamed.push_str(p);
                true
            }),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(a.text.expose(), b.text.expose());

    let metrics = m.metrics(&id(GEN)).unwrap();
    assert_eq!(metrics.requests, 2);
    assert_eq!(metrics.loads, 1);
    assert!(metrics.load_ms > 0.0);
    assert!((metrics.cache_hit_rate - 0.5).abs() < 1e-9, "{metrics:?}");
    assert!(metrics.generation_tokens_per_second > 0.0);
    assert!(metrics.prompt_tokens_per_second > 0.0);
    assert_eq!(m.cache_stats().l1_hits, 1);

    // Sampled requests without a seed are never cached.
    let mut sampled = greedy("Contracts are");
    sampled.params.temperature = 0.8;
    m.generate(
        sampled.clone(),
        Box::new(|_: &str| true),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    m.generate(sampled, Box::new(|_: &str| true), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(m.cache_stats().l1_hits, 1);
    // The second sampled request's prompt came from the prompt cache (all but its last token).
    assert_eq!(metrics.prompt_tokens_cached, 0, "{metrics:?}");
    assert!(m.metrics(&id(GEN)).unwrap().prompt_tokens_cached > 0);

    // Embeddings are cached per text.
    let texts = vec!["indemnity".to_string(), "warranty".to_string()];
    let e1 = m.embed_with(&id(EMB), &texts).await.unwrap();
    let e2 = m.embed_with(&id(EMB), &texts).await.unwrap();
    assert_eq!(e1, e2);
    assert_eq!(e1[0].len(), 384);
    assert!((m.metrics(&id(EMB)).unwrap().cache_hit_rate - 0.5).abs() < 1e-9);

    // The default embedder runs the fused graph through ONNX Runtime, and says so.
    let info = |m: &ModelManager| {
        let row = m.list().into_iter().find(|i| i.entry.id.as_str() == EMB);
        row.unwrap().embedder_path.unwrap()
    };
    let path = info(&m);
    assert_eq!((path.runtime.as_str(), &path.note), ("onnxruntime", &None));
    assert!(path.model.ends_with(bear_core::assets::MINILM_FUSED_ONNX));

    // ... but not for a model whose vectors depend on their batch mates.
    let dynamic = id("all-MiniLM-L6-v2-int8-dynamic");
    let before = m.cache_stats();
    m.embed_with(&dynamic, &texts).await.unwrap();
    m.embed_with(&dynamic, &texts[..1]).await.unwrap();
    let metrics = m.metrics(&dynamic).unwrap();
    assert_eq!((metrics.requests, metrics.cache_hit_rate), (2, 0.0));
    let after = m.cache_stats();
    assert_eq!(
        after.l1_hits + after.l2_hits,
        before.l1_hits + before.l2_hits
    );
}

#[tokio::test]
async fn lru_eviction_under_a_budget() {
    // Room for the generator (one sequence, a small prompt cache) or the embedder, not both.
    let (m, _tmp) = manager(|c| {
        c.memory_budget = 260 << 20;
        c.llama.parallel = 1;
        c.llama.prompt_cache_bytes = 16 << 20;
    });
    m.load(&id(GEN)).unwrap();
    m.load(&id(EMB)).unwrap();
    assert_eq!(status(&m, EMB), ModelStatus::Loaded);
    assert_eq!(
        status(&m, GEN),
        ModelStatus::Available,
        "the idle generator was evicted"
    );
    // The footprint counts a KV cache per parallel request and the prompt cache's bytes: four
    // sequences and 256 MiB of prompt cache do not fit where one and 16 MiB did.
    let (wide, _t3) = manager(|c| {
        c.memory_budget = 260 << 20;
        c.llama.parallel = 4;
        c.llama.prompt_cache_bytes = 256 << 20;
    });
    let err = wide.load(&id(GEN)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(m.resident_bytes() <= 260 << 20);

    // A model in use is never evicted: loading another fails instead.
    let held = m.embedder(&id(EMB)).unwrap();
    let err = m.load(&id(GEN)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    drop(held);
    m.load(&id(GEN)).unwrap();

    // A model bigger than the whole budget is refused with the numbers.
    let (tiny, _t) = manager(|c| c.memory_budget = 10 << 20);
    let err = tiny.load(&id(GEN)).unwrap_err();
    assert!(err.to_string().contains("budget"), "{err}");
}

#[tokio::test]
async fn unload_keep_alive_and_autoload_off() {
    let (m, _tmp) = manager(|_| {});
    m.load(&id(GEN)).unwrap();
    let held: Arc<_> = m.generator(&id(GEN)).unwrap();
    assert_eq!(
        m.unload(&id(GEN)).unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    drop(held);
    m.unload(&id(GEN)).unwrap();
    assert_eq!(
        m.unload(&id(GEN)).unwrap_err().kind(),
        ErrorKind::InvalidRequest
    );
    assert_eq!(
        m.unload(&id("nope")).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    let (short, _t) = manager(|c| c.keep_alive = Duration::ZERO);
    short.load(&id(EMB)).unwrap();
    assert_eq!(short.reap_idle(), 1);
    assert_eq!(status(&short, EMB), ModelStatus::Available);

    let (manual, _t2) = manager(|c| c.autoload = false);
    let err = manual
        .generate(
            greedy("x"),
            Box::new(|_: &str| true),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let mut unknown = greedy("x");
    unknown.model = id("no-such-model");
    let err = m
        .generate(unknown, Box::new(|_: &str| true), CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // The wrong kind of model for the call.
    let Err(wrong_kind) = m.embedder(&id(GEN)) else {
        panic!("a generator must not be usable as an embedder")
    };
    assert_eq!(wrong_kind.kind(), ErrorKind::InvalidRequest);
}

#[test]
fn pinned_models_stay_through_keep_alive_and_eviction() {
    // Keep-alive zero and room for one of the two models.
    let (m, _tmp) = manager(|c| {
        c.keep_alive = Duration::ZERO;
        c.memory_budget = 260 << 20;
        c.llama.parallel = 1;
        c.llama.prompt_cache_bytes = 16 << 20;
    });
    m.pin(&id(EMB)).unwrap();
    assert_eq!(m.reap_idle(), 0, "keep-alive passes a pinned model by");
    let err = m.load(&id(GEN)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("pinned"), "{err}");
    assert_eq!(m.pinned(), vec![id(EMB)]);
    assert!(m.unpin(&id(EMB)).unwrap());
    assert_eq!(status(&m, EMB), ModelStatus::Available);
    m.load(&id(GEN)).unwrap();
    assert_eq!(
        m.unpin(&id("nope")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn without_onnx_runtime_the_default_embedder_falls_back_to_candle_and_says_why() {
    let (m, _tmp) =
        manager(|c| c.ort_dylib_candidates = vec!["/nonexistent/libonnxruntime.so".into()]);
    let row = |m: &ModelManager| {
        m.list()
            .into_iter()
            .find(|i| i.entry.id.as_str() == EMB)
            .unwrap()
    };
    let planned = row(&m).embedder_path.unwrap();
    assert_eq!(planned.runtime, "candle");
    let texts = vec!["indemnity".to_string()];
    let v = m.embed_with(&id(EMB), &texts).await.unwrap();
    assert_eq!(v[0].len(), 384);
    let loaded = row(&m).embedder_path.unwrap();
    assert_eq!(loaded.runtime, "candle");
    let note = loaded.note.unwrap();
    assert!(
        note.contains("/nonexistent/libonnxruntime.so") && note.contains("3x slower"),
        "{note}"
    );
}
