//! Collections, document upload and background ingest, search and ask (JSON and SSE) on the
//! real MiniLM and SmolLM2 files and LanceDB in a temp dir; plugins on the example plugins
//! built by `cargo xtask plugins`; `/metrics`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bear_api::{Limits, RagState};
use bear_core::PiiPolicy;
use bear_core::config::RagConfig;
use serde_json::{Value, json};

use crate::{body, client, server};

const LEASE: &str = "Lease agreement.\n\nThe lease of the office at Keizersgracht 12 starts on \
1 March 2025 and ends on 28 February 2030. The monthly rent is 2,400 euros, due on the first \
day of each month. The tenant may end the lease early with six months' notice.\n\nThe landlord \
pays for repairs to the roof and the heating.";

/// The one upload kept in `dir`: named by a 32-hex-digit tag and its extension, so the folder
/// shows no file name.
fn kept_upload(dir: &std::path::Path) -> std::path::PathBuf {
    let files: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "one upload kept in {}", dir.display());
    let path = files[0].path();
    let stem = path.file_stem().unwrap().to_str().unwrap();
    assert!(
        stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit()),
        "kept under a tag, not its name: {}",
        path.display()
    );
    path
}

/// The application over `dir` (documents, vault, uploads) with `models`: the replace policy,
/// 1 MiB uploads at most, and the keyring a first run makes (so collections are sealed, as
/// in the product).
pub(crate) fn rag_state(dir: &Path, models: Arc<bear_models::ModelManager>) -> RagState {
    let config = bear_core::Config {
        rag: RagConfig {
            pii_policy: PiiPolicy::Replace,
            max_file_bytes: 1 << 20,
            ..RagConfig::default()
        },
        ..bear_core::Config::default()
    };
    let real = bear_core::Dirs::from_env(|k| std::env::var_os(k)).unwrap();
    let dirs = bear_core::Dirs {
        config_file: dir.join("config.toml"),
        data_dir: dir.to_path_buf(),
        cache_dir: dir.join("cache"),
        models_dir: real.models_dir,
    };
    let loaded = bear_app::LoadedConfig {
        config,
        dirs,
        source: None,
    };
    let keyring = bear_app::unattended_keyring(&loaded, |_| None)
        .unwrap()
        .keyring;
    let keys = bear_app::Keys::Opened(Some(Box::new(keyring)));
    let app = bear_app::App::new(loaded, models, keys).unwrap();
    RagState::new(Arc::new(app)).unwrap()
}

/// `<target>/plugins`, as `cargo xtask plugins` builds them.
fn plugins_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or(target)
        .join("plugins");
    assert!(
        dir.join("docstats/plugin.toml").is_file(),
        "the example plugins are not built in {}: run `cargo xtask plugins`",
        dir.display()
    );
    dir
}

pub(crate) fn plugins() -> bear_api::Plugins {
    let host = bear_plugins::PluginHost::new(bear_plugins::HostConfig::default()).unwrap();
    let mut reg = bear_plugins::Registry::new(Arc::new(host));
    for name in ["docstats", "hostile"] {
        reg.load(&plugins_dir().join(name)).unwrap();
    }
    Arc::new(RwLock::new(reg))
}

async fn upload(
    s: &crate::Server,
    key: &str,
    collection: &str,
    name: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    client()
        .post(format!(
            "{}/api/v1/collections/{collection}/documents?filename={name}",
            s.base
        ))
        .bearer_auth(key)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

async fn wait_job(s: &crate::Server, key: &str, job: &str) -> Value {
    for _ in 0..600 {
        let (status, v) = body(
            s.send("GET", &format!("/api/v1/ingest/{job}"), key, None)
                .await,
        )
        .await;
        assert_eq!(status, 200, "{v}");
        if v["status"] != "running" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the ingest job did not finish in 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_ingest_search_ask_and_delete_with_ownership() {
    let s = server(Limits::default()).await;

    // Upload: the collection is created for the uploading key; the ingest runs in the
    // background and is polled.
    let r = upload(
        &s,
        &s.user,
        "leases",
        "lease.txt",
        LEASE.as_bytes().to_vec(),
    )
    .await;
    let (status, v) = body(r).await;
    assert_eq!(status, 202, "{v}");
    let doc = v["document_id"].as_str().unwrap().to_string();
    let job = wait_job(&s, &s.user, v["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["report"]["ingested"][0]["document_id"], doc.as_str());
    assert!(job["report"]["chunks"].as_u64().unwrap() >= 1, "{job}");
    assert!(
        job["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "ingested"),
        "{job}"
    );
    let kept = std::fs::read(kept_upload(&s.dir.join("uploads/leases"))).unwrap();
    assert!(kept.starts_with(b"BEARSEG"), "the upload is kept sealed");

    let (status, v) = body(s.send("GET", "/api/v1/collections", &s.user, None).await).await;
    assert_eq!(status, 200);
    assert_eq!(v[0]["name"], "leases");
    assert_eq!(v[0]["documents"], 1);
    assert_eq!(v[0]["pii_policy"], "replace");
    let (status, v) = body(
        s.send("GET", "/api/v1/collections/leases/documents", &s.user, None)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v[0]["id"], doc.as_str());
    assert_eq!(v[0]["title"], "lease.txt");
    let (status, v) = body(
        s.send(
            "GET",
            &format!("/api/v1/collections/leases/documents/{doc}"),
            &s.user,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["mime"], "text/plain");

    // Search, in each mode.
    for mode in ["hybrid", "vector", "exact", "fulltext"] {
        let (status, v) = body(
            s.send(
                "POST",
                "/api/v1/search",
                &s.user,
                Some(
                    &json!({"query": "monthly rent", "collection": "leases", "k": 3, "mode": mode}),
                ),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{mode}: {v}");
        let hits = v["hits"].as_array().unwrap();
        assert!(!hits.is_empty(), "{mode}: {v}");
        assert!(
            hits[0]["text"].as_str().unwrap().contains("2,400 euros"),
            "{v}"
        );
        assert_eq!(hits[0]["document_id"], doc.as_str());
    }

    // Ask, not streamed: an answer with numbered sources.
    let question = json!({"question": "What is the monthly rent?", "collection": "leases",
                          "max_tokens": 24});
    let (status, v) = body(
        s.send("POST", "/api/v1/ask", &s.user, Some(&question))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["relevant"], true, "{v}");
    assert!(!v["answer"].as_str().unwrap().is_empty(), "{v}");
    assert_eq!(v["sources"][0]["marker"], 1);
    assert_eq!(v["sources"][0]["document_id"], doc.as_str());
    assert!(
        v["sources"][0]["citation"]
            .as_str()
            .unwrap()
            .contains("lease.txt"),
        "{v}"
    );
    assert!(v["completion_tokens"].as_u64().unwrap() >= 1);

    // Streamed: token events that add up to the answer in the final `done` event.
    let mut streamed = question.clone();
    streamed["stream"] = json!(true);
    let r = s
        .send("POST", "/api/v1/ask", &s.user, Some(&streamed))
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = crate::models::sse(&r.text().await.unwrap());
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "done", "{events:?}");
    let done: Value = serde_json::from_str(data).unwrap();
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "token")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(!text.is_empty(), "{events:?}");
    assert_eq!(text.trim(), done["answer"].as_str().unwrap().trim());
    assert_eq!(done["sources"][0]["document_id"], doc.as_str());

    // Another key does not see the collection, its documents or its job: 404, as if absent.
    let (_, v) = body(s.send("GET", "/api/v1/collections", &s.reader, None).await).await;
    assert_eq!(v, json!([]));
    for (m, path, b) in [
        ("GET", "/api/v1/collections/leases".to_string(), None),
        (
            "GET",
            "/api/v1/collections/leases/documents".to_string(),
            None,
        ),
        (
            "GET",
            format!("/api/v1/collections/leases/documents/{doc}"),
            None,
        ),
        (
            "POST",
            "/api/v1/search".to_string(),
            Some(json!({"query": "rent", "collection": "leases"})),
        ),
        ("POST", "/api/v1/ask".to_string(), Some(question.clone())),
    ] {
        let (status, v) = body(s.send(m, &path, &s.reader, b.as_ref()).await).await;
        assert_eq!(status, 404, "{m} {path}: {v}");
        assert_eq!(v["error"]["kind"], "not_found");
    }
    // ... and a read-only key may not upload at all.
    let r = upload(&s, &s.reader, "mine", "a.txt", b"text".to_vec()).await;
    assert_eq!(r.status(), 403);
    // The admin sees everything.
    let (_, v) = body(s.send("GET", "/api/v1/collections", &s.admin, None).await).await;
    assert_eq!(v[0]["name"], "leases");

    // Delete the document: its chunks, its row and the uploaded file go.
    let (status, v) = body(
        s.send(
            "DELETE",
            &format!("/api/v1/collections/leases/documents/{doc}"),
            &s.user,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let left = std::fs::read_dir(s.dir.join("uploads/leases"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "the removed document's upload is gone");
    let (_, v) = body(
        s.send("GET", "/api/v1/collections/leases/documents", &s.user, None)
            .await,
    )
    .await;
    assert_eq!(v, json!([]));
    let (status, _) = body(
        s.send(
            "DELETE",
            &format!("/api/v1/collections/leases/documents/{doc}"),
            &s.user,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    let (status, v) = body(
        s.send("DELETE", "/api/v1/collections/leases", &s.user, None)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = body(s.send("GET", "/api/v1/collections", &s.admin, None).await).await;
    assert_eq!(v, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_ids_and_queries_get_structured_errors() {
    let s = server(Limits::default()).await;
    // File names: folders, traversal, hidden files, formats BEAR does not read.
    for name in [
        "..%2Fescape.txt",
        "a%2Fb.txt",
        ".hidden.txt",
        "tool.exe",
        "noext",
        "%00.txt",
    ] {
        let (status, v) = body(upload(&s, &s.user, "c1", name, b"text".to_vec()).await).await;
        assert_eq!(status, 422, "{name}: {v}");
        assert_eq!(v["error"]["kind"], "invalid_request");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("filename"),
            "{v}"
        );
    }
    assert!(!s.dir.join("escape.txt").exists());
    // No filename, an empty body, a bad collection name.
    let r = client()
        .post(format!("{}/api/v1/collections/c1/documents", s.base))
        .bearer_auth(&s.user)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, _) = body(upload(&s, &s.user, "c1", "a.txt", Vec::new()).await).await;
    assert_eq!(status, 422);
    let (status, v) = body(upload(&s, &s.user, "Bad Name!", "a.txt", b"x".to_vec()).await).await;
    assert!(status == 404 || status == 422, "{status} {v}");
    // Larger than the ingest limit (1 MiB here): 413, nothing stored.
    let (status, v) =
        body(upload(&s, &s.user, "c1", "big.txt", vec![b'a'; (1 << 20) + 10]).await).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["kind"], "payload_too_large");
    assert!(!s.dir.join("uploads/c1/big.txt").exists());
    // A file that is not what its name says: the job fails with a reason, the server goes on.
    let r = upload(&s, &s.user, "c1", "fake.pdf", b"not a pdf at all".to_vec()).await;
    let (status, v) = body(r).await;
    assert_eq!(status, 202, "{v}");
    let job = wait_job(&s, &s.user, v["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        !job["report"]["failed"][0]["reason"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    // Unknown and traversing ids.
    for path in [
        "/api/v1/collections/nope/documents",
        "/api/v1/collections/..%2F..%2Fetc/documents",
        "/api/v1/collections/c1/documents/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/collections/c1/documents/00000000000000000000000000000000",
        "/api/v1/ingest/nope",
    ] {
        let (status, v) = body(s.send("GET", path, &s.user, None).await).await;
        assert_eq!(status, 404, "{path}: {v}");
        assert_eq!(v["error"]["kind"], "not_found", "{path}: {v}");
    }
    // Wrong types and unknown fields in search and ask bodies, with the field's path.
    for (path, b) in [
        ("/api/v1/search", json!({"query": 3, "collection": "c1"})),
        (
            "/api/v1/search",
            json!({"query": "x", "collection": "c1", "colour": 1}),
        ),
        (
            "/api/v1/ask",
            json!({"question": "x", "collection": "c1", "max_tokens": "many"}),
        ),
    ] {
        let (status, v) = body(s.send("POST", path, &s.user, Some(&b)).await).await;
        assert_eq!(status, 422, "{path} {b}: {v}");
        assert_eq!(v["error"]["kind"], "invalid_request");
    }
    let (status, v) = body(
        s.send(
            "POST",
            "/api/v1/search",
            &s.user,
            Some(&json!({"query": "x", "collection": "c1", "k": 0})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().starts_with("k:"));
    let (status, v) = body(
        s.send(
            "POST",
            "/api/v1/ask",
            &s.user,
            Some(&json!({"question": "x", "collection": "c1", "max_tokens": 100000})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422, "{v}");
    // A policy the server does not know: refused before anything is written.
    let (status, v) = body(
        s.send(
            "POST",
            "/api/v1/collections",
            &s.user,
            Some(&json!({"name": "secret", "pii_policy": "shred"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["kind"], "invalid_request");
    let (_, v) = body(s.send("GET", "/api/v1/collections", &s.admin, None).await).await;
    assert!(
        v.as_array().unwrap().iter().all(|c| c["name"] != "secret"),
        "{v}"
    );
    // With the server's keyring every policy applies, and a new matter is sealed.
    let (status, v) = body(
        s.send(
            "POST",
            "/api/v1/collections",
            &s.user,
            Some(&json!({"name": "secret", "pii_policy": "tokenize"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["sealed"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_list_and_invoke_for_admins_only() {
    let s = server(Limits::default()).await;
    let (status, v) = body(s.send("GET", "/api/v1/plugins", &s.admin, None).await).await;
    assert_eq!(status, 200, "{v}");
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docstats", "hostile"]);
    assert!(!v[0]["tools"].as_array().unwrap().is_empty());
    let tool = v[0]["tools"][0]["name"].as_str().unwrap().to_string();

    let input = json!({"text": "One sentence. Two sentences here."});
    let path = format!("/api/v1/plugins/docstats/tools/{tool}");
    let (status, v) = body(s.send("POST", &path, &s.admin, Some(&input)).await).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["output"].is_object(), "{v}");

    for key in [&s.user, &s.reader] {
        let (status, _) = body(s.send("GET", "/api/v1/plugins", key, None).await).await;
        assert_eq!(status, 403);
        let (status, _) = body(s.send("POST", &path, key, Some(&input)).await).await;
        assert_eq!(status, 403);
    }
    let (status, v) = body(
        s.send(
            "POST",
            "/api/v1/plugins/nope/tools/x",
            &s.admin,
            Some(&input),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = body(
        s.send(
            "POST",
            "/api/v1/plugins/docstats/tools/nope",
            &s.admin,
            Some(&input),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404, "{v}");

    // Every hostile tool ends in a structured error; the server keeps serving.
    let (_, list) = body(s.send("GET", "/api/v1/plugins", &s.admin, None).await).await;
    for t in list[1]["tools"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let (status, v) = body(
            s.send(
                "POST",
                &format!("/api/v1/plugins/hostile/tools/{name}"),
                &s.admin,
                Some(&json!({})),
            )
            .await,
        )
        .await;
        if name == "granted" {
            // The one legitimate tool: it may read its grant, and its write is refused.
            assert_eq!((status, &v["output"]["wrote"]), (200, &json!(false)), "{v}");
            continue;
        }
        assert!(status >= 400, "hostile {name}: {status} {v}");
        assert!(v["error"]["kind"].is_string(), "hostile {name}: {v}");
    }
    let (status, _) = body(s.send("GET", "/health", "", None).await).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_in_the_prometheus_text_format() {
    let s = server(Limits::default()).await;
    for _ in 0..3 {
        s.send("GET", "/api/v1/hw", &s.reader, None).await;
    }
    s.send("GET", "/api/v1/workflows/run-missing", &s.reader, None)
        .await;
    let r = client()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s.send("GET", "/metrics", &s.reader, None).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    assert!(text.contains("# TYPE bear_http_requests counter"), "{text}");
    assert!(
        text.contains(
            r#"bear_http_requests_total{bear_instance="api-test",method="GET",route="/api/v1/hw",status="200"} 3"#
        ),
        "{text}"
    );
    // Route templates, never the ids in paths.
    assert!(
        text.contains(r#"route="/api/v1/workflows/{id}",status="404""#),
        "{text}"
    );
    assert!(!text.contains("run-missing"), "{text}");
    assert!(
        text.contains("# TYPE bear_http_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(text.contains("bear_models_resident_bytes"), "{text}");
    // Buckets for this client's IP and the keys it used (and its failed authentication).
    let buckets: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"bear_rate_limit_buckets{bear_instance="api-test"} "#))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no bear_rate_limit_buckets in\n{text}"));
    assert!(buckets >= 2, "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    // Every series names the instance that answered.
    for series in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(series.contains(r#"bear_instance="api-test""#), "{series}");
    }
}

/// Where a citation is shown: the document's passages in order, and its original file while
/// it is the one ingested; neither for a key that does not own the collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_text_and_file_for_its_citations() {
    let s = server(Limits::default()).await;
    let long: String = (1..=40)
        .map(|i| {
            format!(
                "Clause {i}. The tenant keeps the premises at Keizersgracht {i} in good repair.\n\n"
            )
        })
        .collect();
    let r = upload(
        &s,
        &s.user,
        "texts",
        "clauses.txt",
        long.clone().into_bytes(),
    )
    .await;
    let (status, v) = body(r).await;
    assert_eq!(status, 202, "{v}");
    let doc = v["document_id"].as_str().unwrap().to_string();
    let job = wait_job(&s, &s.user, v["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed", "{job}");

    let text_path = format!("/api/v1/collections/texts/documents/{doc}/text");
    let (status, v) = body(s.send("GET", &text_path, &s.user, None).await).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], doc.as_str());
    assert_eq!(v["mime"], "text/plain");
    let chunks = v["chunks"].as_array().unwrap();
    assert!(chunks.len() > 1, "a long text is several passages: {v}");
    let ordinals: Vec<u64> = chunks
        .iter()
        .map(|c| c["ordinal"].as_u64().unwrap())
        .collect();
    assert_eq!(ordinals, (0..chunks.len() as u64).collect::<Vec<_>>());
    assert!(chunks[0]["text"].as_str().unwrap().contains("Clause 1."));
    assert!(
        chunks.last().unwrap()["text"]
            .as_str()
            .unwrap()
            .contains("Clause 40.")
    );

    let file_path = format!("/api/v1/collections/texts/documents/{doc}/file");
    let r = s.send("GET", &file_path, &s.user, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.headers()["content-disposition"], "attachment");
    assert_eq!(r.bytes().await.unwrap().as_ref(), long.as_bytes());

    // Another key sees neither; a bad id is not found.
    for path in [&text_path, &file_path] {
        let (status, v) = body(s.send("GET", path, &s.reader, None).await).await;
        assert_eq!(status, 404, "{v}");
    }
    let (status, _) = body(
        s.send(
            "GET",
            "/api/v1/collections/texts/documents/nothex/text",
            &s.user,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);

    // Kept sealed: none of the text is on disk; a flipped byte is an integrity error naming
    // the file, never other bytes.
    let kept = kept_upload(&s.dir.join("uploads/texts"));
    let mut sealed = std::fs::read(&kept).unwrap();
    assert!(sealed.starts_with(b"BEARSEG"));
    assert!(!sealed.windows(9).any(|w| w == b"Clause 1."));
    let middle = sealed.len() / 2;
    sealed[middle] ^= 1;
    std::fs::write(&kept, &sealed).unwrap();
    let (status, v) = body(s.send("GET", &file_path, &s.user, None).await).await;
    assert_eq!(status, 403, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("clauses.txt") && message.contains("integrity"),
        "{v}"
    );

    // Changed on disk: the file is no longer the one cited; the text still is.
    std::fs::write(&kept, b"something else").unwrap();
    let (status, v) = body(s.send("GET", &file_path, &s.user, None).await).await;
    assert_eq!(status, 404, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("moved or changed"),
        "{v}"
    );
    let (status, _) = body(s.send("GET", &text_path, &s.user, None).await).await;
    assert_eq!(status, 200);
}

/// Every answer is kept in its matter's history, scrubbed on disk like the matter's documents;
/// it can be listed, reopened and deleted by those who see the matter, and goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_kept_in_the_matters_history() {
    let s = server(Limits::default()).await;
    let r = upload(
        &s,
        &s.user,
        "leases",
        "lease.txt",
        LEASE.as_bytes().to_vec(),
    )
    .await;
    let (status, v) = body(r).await;
    assert_eq!(status, 202, "{v}");
    let job = wait_job(&s, &s.user, v["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed", "{job}");

    let question = "What is the monthly rent? Reply to jan.devries@example.com.";
    let ask = json!({"question": question, "collection": "leases", "max_tokens": 16});
    let (status, answer) = body(s.send("POST", "/api/v1/ask", &s.user, Some(&ask)).await).await;
    assert_eq!(status, 200, "{answer}");

    let list = "/api/v1/collections/leases/history";
    let (status, v) = body(s.send("GET", list, &s.user, None).await).await;
    assert_eq!(status, 200, "{v}");
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["relevant"], true);
    // The matter's policy (replace) holds for its history too: the address is not kept.
    let kept = items[0]["question"].as_str().unwrap();
    assert!(
        kept.starts_with("What is the monthly rent?") && kept.contains("[EMAIL"),
        "{kept}"
    );
    // Sealed on disk: neither the address nor the question's words are there.
    assert!(!s.dir.join("collections/leases/history.jsonl").exists());
    let on_disk = std::fs::read(s.dir.join("collections/leases/history.sealed")).unwrap();
    for canary in ["jan.devries@example.com", "monthly rent", "EMAIL"] {
        assert!(
            !on_disk
                .windows(canary.len())
                .any(|w| w == canary.as_bytes()),
            "{canary} is in the history file"
        );
    }

    let id = items[0]["id"].as_str().unwrap();
    let one = format!("{list}/{id}");
    let (status, entry) = body(s.send("GET", &one, &s.user, None).await).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["answer"]["answer"], answer["answer"]);
    assert_eq!(
        entry["answer"]["sources"][0]["citation"],
        answer["sources"][0]["citation"]
    );

    // Another key sees none of it (a read-only one may not delete anything); the owner
    // deletes it, once.
    let (status, _) = body(s.send("GET", list, &s.reader, None).await).await;
    assert_eq!(status, 404);
    let (status, _) = body(s.send("GET", &one, &s.reader, None).await).await;
    assert_eq!(status, 404);
    let (status, _) = body(s.send("DELETE", &one, &s.reader, None).await).await;
    assert_eq!(status, 403);
    let (status, v) = body(s.send("DELETE", &one, &s.user, None).await).await;
    assert_eq!((status, &v["status"]), (200, &json!("removed")), "{v}");
    let (status, _) = body(s.send("DELETE", &one, &s.user, None).await).await;
    assert_eq!(status, 404);
    let (_, v) = body(s.send("GET", list, &s.user, None).await).await;
    assert_eq!(v, json!([]));
}

/// One question asked of several collections: sources from each, named by collection; bad
/// scopes are refused by field; a collection the key does not see is not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_asked_of_several_collections() {
    let s = server(Limits::default()).await;
    let loan = "Loan agreement.\n\nThe lender lends 150,000 euros at a fixed interest rate of \
                4.5 percent per year, repaid in twenty quarterly instalments.";
    for (collection, name, text) in [("leases", "lease.txt", LEASE), ("loans", "loan.txt", loan)] {
        let r = upload(&s, &s.user, collection, name, text.as_bytes().to_vec()).await;
        let (status, v) = body(r).await;
        assert_eq!(status, 202, "{v}");
        let job = wait_job(&s, &s.user, v["job_id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    let ask = |scope: Value| {
        let mut q = json!({"question": "What is the monthly rent and the loan's interest rate?",
                           "max_tokens": 8, "k": 4});
        q.as_object_mut()
            .unwrap()
            .extend(scope.as_object().unwrap().clone());
        q
    };
    let q = ask(json!({"collections": ["leases", "loans", "leases"]}));
    let (status, v) = body(s.send("POST", "/api/v1/ask", &s.user, Some(&q)).await).await;
    assert_eq!(status, 200, "{v}");
    let from: std::collections::BTreeSet<&str> = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|src| src["collection"].as_str().unwrap())
        .collect();
    assert_eq!(from, ["leases", "loans"].into(), "{v}");

    for (scope, field) in [
        (
            json!({"collection": "leases", "collections": ["loans"]}),
            "collections",
        ),
        (json!({"collections": []}), "collections"),
        (
            json!({"collections": (0..11).map(|i| format!("c{i}")).collect::<Vec<_>>()}),
            "collections",
        ),
    ] {
        let (status, v) = body(
            s.send("POST", "/api/v1/ask", &s.user, Some(&ask(scope)))
                .await,
        )
        .await;
        assert_eq!(status, 422, "{v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    let q = ask(json!({"collections": ["leases", "loans"]}));
    let (status, v) = body(s.send("POST", "/api/v1/ask", &s.reader, Some(&q)).await).await;
    assert_eq!(status, 404, "{v}");
}

/// `POST /api/v1/redact`: the settlement letter fixture comes back without its PII or the
/// listed term (checked with poppler's pdftotext), the audit record holds the log and no
/// value, and bad requests get structured errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redacted_copy_over_rest() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let s = server(Limits::default()).await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bear-rag/tests/fixtures");
    let pdf = std::fs::read(fixtures.join("letter.pdf")).unwrap();
    let post = |key: String, v: Value| {
        let url = format!("{}/api/v1/redact", s.base);
        async move {
            body(
                client()
                    .post(url)
                    .bearer_auth(key)
                    .json(&v)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let request = json!({
        "filename": "letter.pdf",
        "content": STANDARD.encode(&pdf),
        "terms": ["Project Falcon", "Jan de Vries"],
    });
    let (status, v) = post(s.user.clone(), request.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["removed"].as_u64().unwrap() >= 6, "{v}");
    assert!(
        v["stripped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "attachments")
    );
    let copy = STANDARD.decode(v["content"].as_str().unwrap()).unwrap();
    let out = s.dir.join("copy.pdf");
    std::fs::write(&out, &copy).unwrap();
    let text = std::process::Command::new("pdftotext")
        .arg(&out)
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for value in [
        "Jan de Vries",
        "jan.devries@example.nl",
        "NL91 ABNA",
        "Project Falcon",
    ] {
        assert!(!text.contains(value), "`{value}` left in: {text}");
    }
    assert!(text.contains("The parties agree to settle the claim"));

    // A reader may not; a name BEAR cannot redact, bad base64 and a broken PDF are refused.
    let (status, _) = post(s.reader.clone(), request).await;
    assert_eq!(status, 403);
    let (status, v) = post(
        s.user.clone(),
        json!({"filename": "a.txt", "content": "aGk="}),
    )
    .await;
    assert_eq!(
        (status, v["error"]["kind"].as_str()),
        (422, Some("invalid_request")),
        "{v}"
    );
    let (status, v) = post(
        s.user.clone(),
        json!({"filename": "a.pdf", "content": "%%%"}),
    )
    .await;
    assert!(status == 400 || status == 422, "{status} {v}");
    let broken = json!({"filename": "a.pdf", "content": STANDARD.encode(b"%PDF-1.4 junk")});
    let (status, v) = post(s.user.clone(), broken).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed"),
        "{v}"
    );

    // The operation's records are in the application's log; the gateway's in its own.
    let log = std::fs::read_to_string(s.dir.join("audit/audit.jsonl")).unwrap();
    let redactions: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["action"] == "redact")
        .collect();
    assert_eq!(redactions.len(), 2, "{log}");
    assert_eq!(redactions[0]["outcome"], "ok");
    assert_eq!(redactions[0]["entities"]["TERM"], 3);
    assert_eq!(redactions[1]["outcome"], "refused");
    for value in ["Vries", "devries", "NL91", "Falcon"] {
        assert!(!log.contains(value), "the audit log holds `{value}`");
    }
}
