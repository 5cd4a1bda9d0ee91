//! `/api/v1/models` and the OpenAI-compatible routes on the real model files; SSE streams are
//! parsed event by event, and OpenAI-shaped bodies are checked field by field.

use std::sync::Arc;
use std::time::Duration;

use bear_api::Limits;
use bear_core::Dirs;
use bear_models::{CacheConfig, LlamaOptions, ManagerConfig, ModelManager};
use serde_json::{Value, json};

use crate::{body, server};

const GEN: &str = "SmolLM2-135M-Instruct.Q4_1";
const EMB: &str = "all-MiniLM-L6-v2";

pub(crate) fn manager() -> Arc<ModelManager> {
    manager_over(Vec::new())
}

/// The models directory's models, and those in `extra`.
fn manager_over(extra: Vec<std::path::PathBuf>) -> Arc<ModelManager> {
    let dirs = Dirs::from_env(|k| std::env::var_os(k)).unwrap();
    let path = dirs.models_dir.join(bear_core::assets::SMOLLM2_GGUF);
    assert!(path.exists(), "{}", bear_core::assets::missing_hint(&path));
    let mut model_dirs = vec![dirs.models_dir.clone()];
    model_dirs.extend(extra);
    Arc::new(
        ModelManager::new(ManagerConfig {
            model_dirs,
            memory_budget: 4 << 30,
            keep_alive: Duration::from_secs(600),
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
        .unwrap(),
    )
}

/// The `data:` payloads of an SSE body, with their event names.
pub(crate) fn sse(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut event = "message".to_string();
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push(d.strip_prefix(' ').unwrap_or(d).to_string());
            }
        }
        out.push((event, data.join("\n")));
    }
    out
}

/// The chunks of an OpenAI stream, which must end with `[DONE]`.
pub(crate) fn openai_chunks(text: &str) -> Vec<Value> {
    let events = sse(text);
    assert_eq!(events.last().unwrap().1, "[DONE]");
    events[..events.len() - 1]
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect()
}

/// Exactly these keys, no others.
pub(crate) fn keys(v: &Value, want: &[&str]) {
    let mut got: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    got.sort_unstable();
    let mut want = want.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_load_unload_generate_and_stream() {
    let s = server(Limits::default()).await;
    let (status, v) = body(s.send("GET", "/api/v1/models", &s.reader, None).await).await;
    assert_eq!(status, 200, "{v}");
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&GEN) && ids.contains(&EMB), "{ids:?}");
    // The seed's fields on every item.
    for m in v.as_array().unwrap() {
        assert_eq!(m["name"], m["id"], "{m}");
        assert!(m["size"].as_u64().unwrap() > 0, "{m}");
        assert!(["loaded", "available"].contains(&m["status"].as_str().unwrap()));
        assert!(m["performance_metrics"]["requests"].is_u64(), "{m}");
    }
    let (status, v) = body(
        s.send("GET", "/api/v1/models?status=downloading", &s.reader, None)
            .await,
    )
    .await;
    assert_eq!((status, v), (200, json!([])), "BEAR never downloads");

    // Load and unload are admin work; download is refused: BEAR is offline.
    let load = json!({"action": "load", "model_id": GEN});
    let (status, _) = body(s.send("POST", "/api/v1/models", &s.user, Some(&load)).await).await;
    assert_eq!(status, 403);
    let (status, v) = body(
        s.send("POST", "/api/v1/models", &s.admin, Some(&load))
            .await,
    )
    .await;
    assert_eq!((status, v["status"].as_str()), (200, Some("loaded")), "{v}");
    // `config` is the seed's options object: `pin` keeps the model resident; unknown keys
    // are refused.
    let pin = json!({"action": "load", "model_id": EMB, "config": {"pin": true}});
    let (status, v) = body(s.send("POST", "/api/v1/models", &s.admin, Some(&pin)).await).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["message"].as_str().unwrap().contains("pinned"), "{v}");
    let odd = json!({"action": "load", "model_id": EMB, "config": {"gpu_layers": 9}});
    let (status, v) = body(s.send("POST", "/api/v1/models", &s.admin, Some(&odd)).await).await;
    assert_eq!(status, 422, "{v}");
    let (_, v) = body(
        s.send("GET", "/api/v1/models?status=loaded", &s.reader, None)
            .await,
    )
    .await;
    assert_eq!(v[0]["id"], GEN);
    let dl = json!({"action": "download", "model_id": "llama-70b"});
    let (status, v) = body(s.send("POST", "/api/v1/models", &s.admin, Some(&dl)).await).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("offline"),
        "{v}"
    );

    let path = format!("/api/v1/models/{GEN}/generate");
    let req = json!({"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0, "stop_sequences": ["\n"]});
    let (status, v) = body(s.send("POST", &path, &s.user, Some(&req)).await).await;
    assert_eq!(status, 200, "{v}");
    assert!(!v["text"].as_str().unwrap().contains('\n'));
    assert!(v["tokens_used"].as_u64().unwrap() > 5);
    assert!(v["generation_time"].as_f64().unwrap() >= 0.0);

    let streamed =
        json!({"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0, "stream": true});
    let r = s.send("POST", &path, &s.user, Some(&streamed)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse(&r.text().await.unwrap());
    let (last, pieces) = events.split_last().unwrap();
    assert_eq!(last.0, "done", "{events:?}");
    let done: Value = serde_json::from_str(&last.1).unwrap();
    let joined: String = pieces
        .iter()
        .map(|(e, d)| {
            assert_eq!(e, "token");
            serde_json::from_str::<Value>(d).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        joined,
        done["text"].as_str().unwrap(),
        "the pieces make the text"
    );

    let too_many = json!({"prompt": "x", "max_tokens": 100000});
    let (status, v) = body(s.send("POST", &path, &s.user, Some(&too_many)).await).await;
    assert_eq!(status, 422, "{v}");
    let (status, _) = body(
        s.send(
            "POST",
            "/api/v1/models/no-such-model/generate",
            &s.user,
            Some(&req),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);

    let unload = json!({"action": "unload", "model_id": GEN});
    let (status, v) = body(
        s.send("POST", "/api/v1/models", &s.admin, Some(&unload))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_shaped_chat_completions_and_embeddings() {
    let s = server(Limits::default()).await;
    let (status, v) = body(s.send("GET", "/v1/models", &s.reader, None).await).await;
    assert_eq!(status, 200);
    keys(&v, &["object", "data"]);
    keys(&v["data"][0], &["id", "object", "created", "owned_by"]);

    let chat = json!({
        "model": GEN, "max_tokens": 10, "temperature": 0, "top_p": 1, "seed": 7, "stop": "\n",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}],
        "n": 1, "user": "ignored-by-bear"
    });
    let (status, v) = body(
        s.send("POST", "/v1/chat/completions", &s.user, Some(&chat))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    keys(
        &v,
        &["id", "object", "created", "model", "choices", "usage"],
    );
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    keys(
        &v["choices"][0],
        &["index", "message", "finish_reason", "logprobs"],
    );
    keys(&v["choices"][0]["message"], &["role", "content"]);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert!(["stop", "length"].contains(&v["choices"][0]["finish_reason"].as_str().unwrap()));
    keys(
        &v["usage"],
        &[
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "prompt_tokens_details",
        ],
    );
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();

    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let r = s
        .send("POST", "/v1/chat/completions", &s.user, Some(&streamed))
        .await;
    assert_eq!(r.status(), 200);
    let chunks = openai_chunks(&r.text().await.unwrap());
    let mut joined = String::new();
    for (i, c) in chunks.iter().enumerate() {
        keys(c, &["id", "object", "created", "model", "choices"]);
        assert_eq!(c["object"], "chat.completion.chunk");
        if i == 0 {
            assert_eq!(c["choices"][0]["delta"]["role"], "assistant");
        }
        joined.push_str(c["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
    }
    assert!(chunks.last().unwrap()["choices"][0]["finish_reason"].is_string());
    assert_eq!(
        joined, text,
        "greedy with a seed: the stream says what the plain call said"
    );

    let completion = json!({"model": GEN, "prompt": "1, 2, 3,", "max_tokens": 6, "temperature": 0});
    let (status, v) = body(
        s.send("POST", "/v1/completions", &s.user, Some(&completion))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    keys(
        &v["choices"][0],
        &["index", "text", "finish_reason", "logprobs"],
    );

    let emb = json!({"model": EMB, "input": ["indemnification clause", "limitation of liability"]});
    let (status, v) = body(s.send("POST", "/v1/embeddings", &s.user, Some(&emb)).await).await;
    assert_eq!(status, 200, "{v}");
    keys(&v, &["object", "data", "model", "usage"]);
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let e0 = v["data"][0]["embedding"].as_array().unwrap();
    assert_eq!(e0.len(), 384);
    let norm: f64 = e0.iter().map(|x| x.as_f64().unwrap().powi(2)).sum();
    assert!((norm - 1.0).abs() < 1e-3);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() >= 4);

    // What OpenAI's clients ask for by default: base64 little-endian f32s.
    let b64 =
        json!({"model": EMB, "input": ["indemnification clause"], "encoding_format": "base64"});
    let (status, v) = body(s.send("POST", "/v1/embeddings", &s.user, Some(&b64)).await).await;
    assert_eq!(status, 200, "{v}");
    let bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        v["data"][0]["embedding"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(bytes.len(), 384 * 4);
    let first = f32::from_le_bytes(bytes[..4].try_into().unwrap());
    assert!((f64::from(first) - e0[0].as_f64().unwrap()).abs() < 1e-6);

    // Errors as OpenAI gives them: 400, `{"error": {"message", "type", "param", "code"}}`.
    let empty = json!({"model": EMB, "input": []});
    let (status, v) = body(
        s.send("POST", "/v1/embeddings", &s.user, Some(&empty))
            .await,
    )
    .await;
    assert_eq!(status, 400, "{v}");
    keys(&v["error"], &["message", "type", "param", "code"]);
    let no_messages = json!({"model": GEN, "messages": []});
    let (status, v) = body(
        s.send("POST", "/v1/chat/completions", &s.user, Some(&no_messages))
            .await,
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["param"], "messages", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_generation_queue_answers_503_and_frees_when_done() {
    let s = server(Limits {
        generation_queue: 1,
        ..Limits::default()
    })
    .await;
    let path = format!("/api/v1/models/{GEN}/generate");
    let long = json!({"prompt": "Tell a long story.", "max_tokens": 400, "temperature": 0, "stream": true});
    let first = s.send("POST", &path, &s.user, Some(&long)).await;
    assert_eq!(first.status(), 200);
    let short = json!({"prompt": "Hi", "max_tokens": 2});
    let r = s.send("POST", &path, &s.user, Some(&short)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    // Reading the first stream to its end frees the slot.
    let events = sse(&first.text().await.unwrap());
    assert_eq!(events.last().unwrap().0, "done");
    let (status, v) = body(s.send("POST", &path, &s.user, Some(&short)).await).await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_fails_to_load_mid_request_gets_a_structured_error() {
    // A real GGUF, listed at start, then cut short on disk before anyone loads it.
    let extra = tempfile::tempdir().unwrap();
    let dirs = Dirs::from_env(|k| std::env::var_os(k)).unwrap();
    let copy = extra.path().join("broken-copy.gguf");
    std::fs::copy(dirs.models_dir.join(bear_core::assets::SMOLLM2_GGUF), &copy).unwrap();
    let manager = manager_over(vec![extra.path().to_path_buf()]);
    let dir = tempfile::tempdir().unwrap();
    let audit = bear_security::AuditLog::open(&dir.path().join("audit.jsonl"), true, None).unwrap();
    let s = crate::server_with(Limits::default(), dir, audit, manager).await;
    let (_, v) = body(s.send("GET", "/api/v1/models", &s.reader, None).await).await;
    assert!(v.to_string().contains("broken-copy"), "{v}");
    let f = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
    f.set_len(64 * 1024).unwrap();
    drop(f);

    for (path, b) in [
        (
            "/api/v1/models/broken-copy/generate",
            json!({"prompt": "Hi", "max_tokens": 4}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "broken-copy", "max_tokens": 4,
                                        "messages": [{"role": "user", "content": "Hi"}]}),
        ),
    ] {
        let (status, v) = body(s.send("POST", path, &s.user, Some(&b)).await).await;
        assert!(
            (400..600).contains(&status) && status != 404,
            "{path}: {status} {v}"
        );
        // BEAR's shape with the request id, or OpenAI's on /v1 (the id in the header).
        let class = if path.starts_with("/v1/") {
            "code"
        } else {
            "kind"
        };
        assert!(v["error"][class].is_string(), "{path}: {v}");
        assert_eq!(
            v["error"]["request_id"].is_string(),
            class == "kind",
            "{path}: {v}"
        );
    }
    let (status, v) = body(
        s.send(
            "POST",
            "/api/v1/models",
            &s.admin,
            Some(&json!({"action": "load", "model_id": "broken-copy"})),
        )
        .await,
    )
    .await;
    assert!((400..600).contains(&status), "{status} {v}");
    // The server and the healthy model go on.
    let (status, v) = body(
        s.send(
            "POST",
            &format!("/api/v1/models/{GEN}/generate"),
            &s.user,
            Some(&json!({"prompt": "Hello", "max_tokens": 2})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_cancels_its_generation() {
    use futures::StreamExt;
    // One slot: while a generation runs, every other request gets 503.
    let s = server(Limits {
        generation_queue: 1,
        ..Limits::default()
    })
    .await;
    for (path, long) in [
        (
            format!("/api/v1/models/{GEN}/generate"),
            json!({"prompt": "Tell a very long story about a lease.", "max_tokens": 4000,
                   "temperature": 0.8, "stream": true}),
        ),
        (
            "/v1/chat/completions".to_string(),
            json!({"model": GEN, "max_tokens": 4000, "temperature": 0.8, "stream": true,
                   "messages": [{"role": "user", "content": "Tell a very long story."}]}),
        ),
    ] {
        let r = s.send("POST", &path, &s.user, Some(&long)).await;
        assert_eq!(r.status(), 200);
        // Read until the first token arrives, then hang up.
        let mut stream = r.bytes_stream();
        let first = stream.next().await.unwrap().unwrap();
        assert!(!first.is_empty());
        drop(stream);
        // 4,000 tokens would hold the slot for about 30 s; the disconnect frees it within
        // a token or two.
        let short = json!({"prompt": "Hi", "max_tokens": 2});
        let started = std::time::Instant::now();
        loop {
            let r = s
                .send(
                    "POST",
                    &format!("/api/v1/models/{GEN}/generate"),
                    &s.user,
                    Some(&short),
                )
                .await;
            if r.status() == 200 {
                break;
            }
            assert_eq!(r.status(), 503);
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{path}: the abandoned generation still holds the queue"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap();
    kb * 1024
}

/// 200 streams at once on one model: each is served to its end or refused at once with 503
/// and `Retry-After`, never anything else; memory grows by no more than the prompt cache may
/// fill; and the server serves normally afterwards. Then 50 streams nobody reads do not hold
/// up one that is read: the model's thread never waits for a reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_streams_are_served_or_refused_and_unread_ones_hold_no_one_up() {
    let many = std::num::NonZeroU32::new(10_000).unwrap();
    let s = server(Limits {
        per_second: many,
        burst: many,
        generation_queue: 64,
        ..Limits::default()
    })
    .await;
    let path = format!("/api/v1/models/{GEN}/generate");
    let stream = |prompt: String, max_tokens: u32| json!({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": true});
    // Loaded first (its KV cache is allocated then), so the storm's own memory is measured.
    let (status, v) = body(
        s.send(
            "POST",
            &path,
            &s.user,
            Some(&json!({"prompt": "Hi", "max_tokens": 1})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let before = rss();
    let storm = (0..200).map(|i| {
        let b = stream(format!("Request {i}: name a colour of the sea."), 8);
        let (s, path) = (&s, &path);
        async move {
            let r = s.send("POST", path, &s.user, Some(&b)).await;
            match r.status().as_u16() {
                200 => {
                    let events = sse(&r.text().await.unwrap());
                    assert_eq!(events.last().unwrap().0, "done", "{events:?}");
                    true
                }
                503 => {
                    assert_eq!(r.headers()["retry-after"], "1");
                    false
                }
                other => panic!("request {i}: {other} {}", r.text().await.unwrap()),
            }
        }
    });
    let served = futures::future::join_all(storm)
        .await
        .into_iter()
        .filter(|&ok| ok)
        .count();
    assert!(served >= 1, "{served} of 200 served");
    let grown = rss().saturating_sub(before);
    let cache = LlamaOptions::default().prompt_cache_bytes;
    assert!(
        grown <= cache + (64 << 20),
        "memory grew by {} MiB under 200 streams (prompt cache {} MiB)",
        grown >> 20,
        cache >> 20
    );

    let mut unread = Vec::new();
    for i in 0..50 {
        let b = stream(format!("Unread {i}: count to ten."), 24);
        let r = s.send("POST", &path, &s.user, Some(&b)).await;
        assert_eq!(r.status(), 200);
        unread.push(r);
    }
    let read = s
        .send(
            "POST",
            &path,
            &s.user,
            Some(&stream("Say hello.".into(), 8)),
        )
        .await;
    assert_eq!(read.status(), 200);
    let events = sse(&read.text().await.unwrap());
    assert_eq!(events.last().unwrap().0, "done", "{events:?}");
    for r in unread {
        let events = sse(&r.text().await.unwrap());
        assert_eq!(events.last().unwrap().0, "done", "{events:?}");
    }
}
