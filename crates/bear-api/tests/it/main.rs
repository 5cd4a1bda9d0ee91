//! bear-api against a real server on 127.0.0.1:0 with a real HTTP client (reqwest): the
//! gateway (keys, roles, request ids, limits, Host check) and the routes written so far, the
//! model and OpenAI-compatible ones on the real SmolLM2 and MiniLM files.

mod chats;
mod contract;
mod control;
mod docs;
mod models;
mod openai;
mod openapi;
mod session;
mod watch;
mod web;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bear_agents::{Backends, Engine, EngineConfig, MemoryStore, Registry};
use bear_api::{AppState, Limits, REQUEST_ID};
use bear_core::EventBus;
use bear_security::access::{ApiKeyStore, Role};
use serde_json::{Value, json};

pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) admin: String,
    pub(crate) user: String,
    pub(crate) reader: String,
    pub(crate) dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub(crate) async fn server(limits: Limits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let audit = bear_security::AuditLog::open(&audit_path, true, None).unwrap();
    server_with(limits, dir, audit, models::manager()).await
}

/// This machine's report, as bear-server serves it at `/api/v1/hw`.
fn hw_report(dir: &std::path::Path) -> Value {
    use bear_hw::Probe as _;
    let machine = bear_hw::SysProbe.probe(dir);
    serde_json::to_value(bear_app::hw::HwReport {
        schema_version: bear_app::hw::HW_SCHEMA_VERSION,
        recommendations: bear_hw::recommend(&machine),
        machine,
        embedder: None,
    })
    .unwrap()
}

pub(crate) async fn server_with(
    limits: Limits,
    dir: tempfile::TempDir,
    audit: bear_security::AuditLog,
    manager: Arc<bear_models::ModelManager>,
) -> Server {
    let mut keys = ApiKeyStore::open(&dir.path().join("keys/api-keys.json")).unwrap();
    let admin = keys.create(Role::Admin, "admin").unwrap().0.reveal();
    let user = keys.create(Role::User, "user").unwrap().0.reveal();
    let reader = keys.create(Role::ReadOnly, "reader").unwrap().0.reveal();
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Registry::with_default_agents(),
        Backends::default(),
        EventBus::default(),
        EngineConfig {
            instance: "api-test".into(),
            ..EngineConfig::default()
        },
    );
    let state = Arc::new(
        AppState::new(keys, engine, hw_report(dir.path()), true, &limits)
            .with_models(manager.clone())
            .with_rag(docs::rag_state(dir.path(), manager))
            .with_plugins(docs::plugins())
            .with_audit(Arc::new(audit)),
    );
    // The control socket, in the data directory, as bear-server serves it.
    let control = bear_app::control::Listener::bind(dir.path()).unwrap();
    tokio::spawn(control.serve(Arc::new(bear_api::ControlHandler::new(state.clone()))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        bear_api::serve(listener, state, &limits, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Server {
        base: format!("http://{addr}"),
        admin,
        user,
        reader,
        dir: dir.path().to_path_buf(),
        _dir: dir,
        _stop: stop,
    }
}

impl Server {
    /// Sends a request with a key (and a JSON body).
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        key: &str,
        json: Option<&Value>,
    ) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = client()
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(j) = json {
            req = req.json(j);
        }
        let r = req.send().await.unwrap();
        let json_body = r
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !json_body {
            return r;
        }
        // Every JSON answer is checked against the schema the description declares for it.
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        contract::check(method.as_str(), path, status.as_u16(), &bytes);
        let mut rebuilt = axum::http::Response::new(bytes);
        *rebuilt.status_mut() = status;
        *rebuilt.headers_mut() = headers;
        reqwest::Response::from(rebuilt)
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub(crate) async fn body(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let v = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, v)
}

const PROTECTED: &[(&str, &str)] = &[
    ("GET", "/api/v1/hw"),
    ("POST", "/api/v1/pii/detect"),
    ("POST", "/api/v1/pii/scrub"),
    ("POST", "/api/v1/redact"),
    ("POST", "/api/v1/pii/restore"),
    ("POST", "/api/v1/workflows"),
    ("GET", "/api/v1/workflows"),
    ("GET", "/api/v1/workflows/run-x"),
    ("GET", "/api/v1/workflows/run-x/events"),
    ("DELETE", "/api/v1/workflows/run-x"),
    ("GET", "/api/v1/agents"),
    ("GET", "/api/v1/agents/executor-1"),
    ("POST", "/api/v1/agents"),
    ("DELETE", "/api/v1/agents/executor-1"),
    ("GET", "/api/v1/models"),
    ("POST", "/api/v1/models"),
    ("POST", "/api/v1/models/SmolLM2-135M-Instruct.Q4_1/generate"),
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/api/v1/collections"),
    ("POST", "/api/v1/collections"),
    ("GET", "/api/v1/collections/c1"),
    ("DELETE", "/api/v1/collections/c1"),
    ("GET", "/api/v1/collections/c1/documents"),
    ("POST", "/api/v1/collections/c1/documents?filename=a.txt"),
    (
        "GET",
        "/api/v1/collections/c1/documents/00000000000000000000000000000000",
    ),
    (
        "DELETE",
        "/api/v1/collections/c1/documents/00000000000000000000000000000000",
    ),
    ("GET", "/api/v1/ingest/job-1"),
    ("POST", "/api/v1/search"),
    ("POST", "/api/v1/ask"),
    ("GET", "/api/v1/plugins"),
    ("POST", "/api/v1/plugins/docstats/tools/stats"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/session"),
    ("GET", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/keys"),
    ("POST", "/api/v1/keys"),
    ("DELETE", "/api/v1/keys/k1"),
    ("GET", "/api/v1/audit/verify"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_open_and_every_other_route_needs_a_key_in_the_right_place() {
    // Many requests and failures from one IP on purpose: lift the per-IP limits here.
    let s = server(Limits {
        auth_failures_per_minute: NonZeroU32::new(1000).unwrap(),
        burst: NonZeroU32::new(1000).unwrap(),
        ..Limits::default()
    })
    .await;
    let c = client();
    let r = c.get(format!("{}/health", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key(REQUEST_ID));
    for (method, path) in PROTECTED {
        let url = format!("{}{path}", s.base);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let cases = [
            ("no key", c.request(m.clone(), &url)),
            (
                "wrong key",
                c.request(m.clone(), &url)
                    .bearer_auth(format!("bear_{}", "0".repeat(64))),
            ),
            (
                "wrong header",
                c.request(m.clone(), &url).header("x-auth-token", &s.admin),
            ),
            (
                "wrong scheme",
                c.request(m.clone(), &url)
                    .header("authorization", format!("Basic {}", s.admin)),
            ),
            (
                "query string",
                c.request(m.clone(), format!("{url}?api_key={}", s.admin)),
            ),
        ];
        for (what, req) in cases {
            let r = req.json(&json!({})).send().await.unwrap();
            let id = r
                .headers()
                .get(REQUEST_ID)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let (status, v) = body(r).await;
            assert_eq!(status, 401, "{method} {path} with {what}: {v}");
            if path.starts_with("/v1/") {
                // OpenAI's shape; the id only in the header.
                assert_eq!(v["error"]["type"], "authentication_error", "{v}");
                assert_eq!(v["error"]["code"], "unauthorized", "{v}");
                assert!(!id.is_empty());
            } else {
                assert_eq!(v["error"]["kind"], "unauthorized");
                assert_eq!(v["error"]["request_id"], id.as_str());
            }
        }
    }
    // Both headers are accepted, by the same check.
    for req in [
        c.get(format!("{}/api/v1/agents", s.base))
            .bearer_auth(&s.reader),
        c.get(format!("{}/api/v1/agents", s.base))
            .header("x-api-key", &s.reader),
    ] {
        assert_eq!(req.send().await.unwrap().status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_enforced_and_pii_routes_work() {
    let s = server(Limits::default()).await;
    let text = json!({"text": "Write to jane.roe@example.com or call +31 20 555 0100."});
    let r = s
        .send("POST", "/api/v1/pii/scrub", &s.reader, Some(&text))
        .await;
    let (status, v) = body(r).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["kind"], "forbidden");

    let r = s
        .send("POST", "/api/v1/pii/scrub", &s.user, Some(&text))
        .await;
    let (status, v) = body(r).await;
    assert_eq!(status, 200, "{v}");
    let scrubbed = v["text"].as_str().unwrap();
    assert!(
        !scrubbed.contains("jane.roe") && scrubbed.contains("[EMAIL_1]"),
        "{scrubbed}"
    );
    assert_eq!(v["counts"]["EMAIL"], 1);

    let r = s
        .send("POST", "/api/v1/pii/detect", &s.admin, Some(&text))
        .await;
    let (status, v) = body(r).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["findings"].as_array().unwrap().len() >= 2);
    assert_eq!(v["counts"]["EMAIL"], 1);
    assert!(
        !v.to_string().contains("jane"),
        "positions, not values: {v}"
    );

    let r = s.send("GET", "/api/v1/hw", &s.reader, None).await;
    let hw = body(r).await.1;
    assert_eq!(hw["schema_version"], 1, "{hw}");
    assert!(hw["cpu"]["logical_cores"].as_u64().unwrap() >= 1, "{hw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_run_in_the_background_and_are_polled() {
    let s = server(Limits::default()).await;
    let wf = json!({
        "name": "greeting",
        "inputs": {"who": {}},
        "steps": [
            {"id": "hello", "type": "data_processing", "agent": "executor",
             "parameters": {"operation": "template", "text": "hello {{ inputs.who }}"}},
            {"id": "shout", "type": "data_processing",
             "parameters": {"operation": "template", "text": "{{ steps.hello.output | upper }}"}}
        ],
        "input_values": {"who": "counsel"}
    });
    let r = s
        .send("POST", "/api/v1/workflows", &s.user, Some(&wf))
        .await;
    let (status, v) = body(r).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["status"], "running", "{v}");
    let id = v["workflow_id"].as_str().unwrap().to_string();
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = s
            .send("GET", &format!("/api/v1/workflows/{id}"), &s.user, None)
            .await;
        last = body(r).await.1;
        if last["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["results"]["shout"], "HELLO COUNSEL");
    assert_eq!(last["progress"]["completed"], 2);

    // `?wait=true` runs to completion in the request: the seed's envelope with the results.
    let r = s
        .send("POST", "/api/v1/workflows?wait=true", &s.user, Some(&wf))
        .await;
    let (status, done) = body(r).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["results"]["shout"], "HELLO COUNSEL");
    assert!(done["execution_time"].as_f64().unwrap() >= 0.0);
    let r = s
        .send("POST", "/api/v1/workflows?wait=yes", &s.user, Some(&wf))
        .await;
    assert_eq!(r.status(), 400, "wait takes true or false");

    let r = s
        .send("GET", "/api/v1/workflows?status=completed", &s.user, None)
        .await;
    let (_, list) = body(r).await;
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not listed: {list}"));
    assert!(row["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "the background run and the waited one"
    );

    // Another key's run does not exist for a non-admin key; admins see it.
    let other = s
        .send("GET", &format!("/api/v1/workflows/{id}"), &s.reader, None)
        .await;
    assert_eq!(other.status(), 404);
    let (_, theirs) = body(s.send("GET", "/api/v1/workflows", &s.reader, None).await).await;
    assert_eq!(theirs, json!([]));
    let admin = s
        .send("GET", &format!("/api/v1/workflows/{id}"), &s.admin, None)
        .await;
    assert_eq!(admin.status(), 200);
    let other = s
        .send(
            "DELETE",
            &format!("/api/v1/workflows/{id}"),
            &s.reader,
            None,
        )
        .await;
    assert_eq!(other.status(), 403, "read-only keys cannot cancel");

    // Cancelling a finished run is a conflict; unknown and malformed ids are 404s.
    let r = s
        .send("DELETE", &format!("/api/v1/workflows/{id}"), &s.user, None)
        .await;
    assert_eq!(r.status(), 409);
    for bad in ["run-nope", "..%2F..%2Fetc%2Fpasswd", "a%20b"] {
        let r = s
            .send("GET", &format!("/api/v1/workflows/{bad}"), &s.reader, None)
            .await;
        let (status, v) = body(r).await;
        assert_eq!(status, 404, "{bad}: {v}");
        assert_eq!(v["error"]["kind"], "not_found");
    }
    let r = s
        .send("GET", "/api/v1/agents?type=validator", &s.reader, None)
        .await;
    let (_, agents) = body(r).await;
    assert_eq!(agents.as_array().unwrap().len(), 1);
    assert_eq!(agents[0]["id"], "validator");

    // Agents are created and removed by admins only.
    let spec = json!({"type": "specialist", "name": "tax expert", "capabilities": ["llm_generation"],
                      "config": {"domain": "tax", "system_prompt": "You know tax law."}});
    let (status, _) = body(s.send("POST", "/api/v1/agents", &s.user, Some(&spec)).await).await;
    assert_eq!(status, 403);
    let (status, made) = body(
        s.send("POST", "/api/v1/agents", &s.admin, Some(&spec))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (made["type"].as_str(), made["status"].as_str()),
        (Some("specialist"), Some("idle"))
    );
    let agent = made["id"].as_str().unwrap();
    let (status, shown) = body(
        s.send("GET", &format!("/api/v1/agents/{agent}"), &s.reader, None)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(shown["name"], "tax expert");
    assert!(shown["current_tasks"].is_array() && shown["performance_metrics"].is_object());
    let bad = json!({"type": "executor", "name": "x", "capabilities": ["teleport"]});
    let (status, v) = body(s.send("POST", "/api/v1/agents", &s.admin, Some(&bad)).await).await;
    assert_eq!(status, 422);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("capabilities[0]"),
        "{v}"
    );
    let (status, _) = body(
        s.send("DELETE", &format!("/api/v1/agents/{agent}"), &s.admin, None)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = body(
        s.send("DELETE", &format!("/api/v1/agents/{agent}"), &s.admin, None)
            .await,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_structured_errors() {
    let s = server(Limits {
        max_body_bytes: 64 * 1024,
        ..Limits::default()
    })
    .await;
    let c = client();
    let url = format!("{}/api/v1/workflows", s.base);
    let send = |b: reqwest::RequestBuilder| async move { body(b.send().await.unwrap()).await };

    let (status, v) = send(
        c.post(&url)
            .bearer_auth(&s.user)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["kind"], "invalid_request");

    let (status, v) = send(
        c.post(&url)
            .bearer_auth(&s.user)
            .json(&json!({"name": "x", "steps": [], "colour": "Jane Roe"})),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("colour"),
        "{v}"
    );
    assert!(!v.to_string().contains("Jane"), "{v}");

    let wf = json!({"name": "bad", "steps": [
        {"id": "a", "type": "teleport"},
        {"id": "b", "type": "data_processing", "depends_on": ["zzz"], "parameters": {"operation": "template", "text": "x"}}
    ]});
    let (status, v) = send(c.post(&url).bearer_auth(&s.user).json(&wf)).await;
    assert_eq!(status, 422, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("steps[0].type") && m.contains("steps[1].depends_on[0]"),
        "{m}"
    );

    let big = json!({"text": "x".repeat(100 * 1024)});
    let (status, v) = send(
        c.post(format!("{}/api/v1/pii/scrub", s.base))
            .bearer_auth(&s.user)
            .json(&big),
    )
    .await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["kind"], "payload_too_large");

    let deep = format!("{{\"name\": {}{}}}", "[".repeat(5000), "]".repeat(5000));
    let (status, v) = send(
        c.post(&url)
            .bearer_auth(&s.user)
            .header("content-type", "application/json")
            .body(deep),
    )
    .await;
    assert_eq!(status, 400, "{v}");

    let (status, v) = send(
        c.get(format!("{}/api/v1/workflows?status=sideways", s.base))
            .bearer_auth(&s.user),
    )
    .await;
    assert_eq!(status, 400, "{v}");

    // The server is still serving.
    let r = c.get(format!("{}/health", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_429_with_retry_after_and_foreign_hosts_are_refused() {
    let s = server(Limits {
        per_second: NonZeroU32::new(1).unwrap(),
        burst: NonZeroU32::new(3).unwrap(),
        ..Limits::default()
    })
    .await;
    let c = client();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let r = s.send("GET", "/api/v1/agents", &s.reader, None).await;
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
        }
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.starts_with(&[200, 200]), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);

    // Failed authentications are limited per IP too (2 per minute here).
    let guarded = server(Limits {
        auth_failures_per_minute: NonZeroU32::new(2).unwrap(),
        ..Limits::default()
    })
    .await;
    let mut failures = Vec::new();
    for _ in 0..3 {
        let r = guarded.send("GET", "/api/v1/hw", "bear_nope", None).await;
        failures.push(r.status().as_u16());
    }
    assert_eq!(failures, [401, 401, 429]);

    // A page on another origin resolving to 127.0.0.1 (DNS rebinding) is refused.
    let r = c
        .get(format!("{}/health", s.base))
        .header("host", "evil.example:80")
        .send()
        .await
        .unwrap();
    let (status, v) = body(r).await;
    assert_eq!(status, 403, "{v}");

    // A public bind without keys is refused; with keys it is allowed.
    let dir = tempfile::tempdir().unwrap();
    let mut keys = ApiKeyStore::open(&dir.path().join("k.json")).unwrap();
    let public: SocketAddr = "0.0.0.0:8787".parse().unwrap();
    let e = bear_api::check_bind(&public, &keys).unwrap_err();
    assert!(e.to_string().contains("not loopback"), "{e}");
    assert!(bear_api::check_bind(&"127.0.0.1:8787".parse().unwrap(), &keys).is_ok());
    keys.create(Role::Admin, "ops").unwrap();
    assert!(bear_api::check_bind(&public, &keys).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_requests_are_audited_before_they_run() {
    let s = server(Limits::default()).await;
    let secret = json!({"text": "Client Jane Roe, jane.roe@example.com"});
    let (status, _) = body(
        s.send("POST", "/api/v1/pii/scrub", &s.user, Some(&secret))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = body(s.send("GET", "/api/v1/agents", &s.user, None).await).await;
    assert_eq!(status, 200);
    let path = s._dir.path().join("audit.jsonl");
    let log = std::fs::read_to_string(&path).unwrap();
    let records: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "reads are not audited: {log}");
    assert_eq!(records[0]["action"], "api POST /api/v1/pii/scrub");
    assert_eq!(records[0]["outcome"], "requested");
    assert_eq!(records[1]["outcome"], "200");
    assert!(records[0]["actor"].as_str().unwrap().starts_with("key:"));
    assert!(!log.contains("Jane") && !log.contains("jane.roe"), "{log}");
    assert_eq!(bear_security::audit::verify(&path).unwrap().records, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = server(Limits {
        header_timeout: Duration::from_secs(1),
        body_idle_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let addr = s.base.trim_start_matches("http://").to_string();

    // Headers that never finish: the connection is closed after the header timeout.
    let mut headers = tokio::net::TcpStream::connect(&addr).await.unwrap();
    headers
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    // A body that stops half-way: 408 with a structured error after the body timeout.
    let mut trickle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/pii/scrub HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"text\": \"a",
        s.user
    );
    trickle.write_all(head.as_bytes()).await.unwrap();

    // Meanwhile everyone else is served.
    let (status, _) = body(s.send("GET", "/api/v1/hw", &s.reader, None).await).await;
    assert_eq!(status, 200);

    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), headers.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the half-sent headers were not cut off");
    assert!(
        !String::from_utf8_lossy(&buf).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), trickle.read(&mut buf))
        .await
        .expect("the stalled body was not answered")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"kind\":\"timeout\""), "{text}");
    assert!(text.contains("x-request-id"), "{text}");

    // A keep-alive connection left idle after its request is closed after the same timeout.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the idle keep-alive connection was not closed"
    );
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));

    let r = client()
        .get(format!("{}/health", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_by_default_and_allows_only_configured_origins() {
    let origin = "http://localhost:3000";
    let preflight = |base: &str| {
        client()
            .request(reqwest::Method::OPTIONS, format!("{base}/api/v1/hw"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let off = server(Limits::default()).await;
    let r = preflight(&off.base).await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = client()
        .get(format!("{}/api/v1/hw", off.base))
        .bearer_auth(&off.reader)
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let on = server(Limits {
        cors_origins: vec![origin.into()],
        ..Limits::default()
    })
    .await;
    let r = preflight(&on.base).await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], origin);
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(methods.contains("POST"), "{methods}");
    let r = client()
        .get(format!("{}/api/v1/hw", on.base))
        .bearer_auth(&on.reader)
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], origin);
    // Another origin gets no grant.
    let r = client()
        .get(format!("{}/api/v1/hw", on.base))
        .bearer_auth(&on.reader)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutating_request_whose_audit_record_cannot_be_written_is_refused() {
    // /dev/full takes the append-open and fails every write (ENOSPC): fail-closed means
    // nothing changes.
    let dir = tempfile::tempdir().unwrap();
    let audit = bear_security::AuditLog::open(std::path::Path::new("/dev/full"), true, None)
        .expect("a device opens; its writes fail");
    let s = server_with(Limits::default(), dir, audit, models::manager()).await;
    let (_, before) = body(s.send("GET", "/api/v1/agents", &s.admin, None).await).await;
    let agent = json!({"type": "executor", "name": "never-made", "capabilities": ["*"]});
    let (status, v) = body(
        s.send("POST", "/api/v1/agents", &s.admin, Some(&agent))
            .await,
    )
    .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["kind"], "unavailable");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("audit log"),
        "{v}"
    );
    let (_, after) = body(s.send("GET", "/api/v1/agents", &s.admin, None).await).await;
    assert_eq!(
        before, after,
        "the agent was created although its audit record failed"
    );
    assert!(!after.to_string().contains("never-made"));
    // Reads are not audited and go on.
    let (status, _) = body(s.send("GET", "/api/v1/hw", &s.reader, None).await).await;
    assert_eq!(status, 200);
}

/// Keys made and revoked from outside the server (`bear keys create|revoke` write the key
/// file) take effect while it runs, within about a second.
#[tokio::test]
async fn keys_made_or_revoked_by_another_process_take_effect_once_the_server_is_told() {
    let s = server(Limits::default()).await;
    let status = |key: String| {
        let s = &s;
        async move {
            s.send("GET", "/api/v1/hw", &key, None)
                .await
                .status()
                .as_u16()
        }
    };
    let told = || control::call(&s.dir, bear_app::control::Request::KeysChanged);
    let mut store = ApiKeyStore::open(&s.dir.join("keys/api-keys.json")).unwrap();
    let later = store.create(Role::User, "later").unwrap().0.reveal();
    assert_eq!(
        told().await.unwrap(),
        Some(bear_app::control::Reply::Keys(4))
    );
    assert_eq!(
        status(later.clone()).await,
        200,
        "a new key is accepted at once"
    );
    let user = store
        .list()
        .iter()
        .find(|r| r.label == "user")
        .unwrap()
        .id
        .clone();
    assert!(store.revoke(&user).unwrap());
    assert_eq!(
        told().await.unwrap(),
        Some(bear_app::control::Reply::Keys(3))
    );
    assert_eq!(
        status(s.user.clone()).await,
        401,
        "a revoked key is refused at once"
    );
    assert_eq!(status(later).await, 200);
    assert_eq!(status(s.admin.clone()).await, 200);

    // A key file that cannot be read: the server says so and keeps the keys it had.
    std::fs::write(s.dir.join("keys/api-keys.json"), b"not keys").unwrap();
    let err = told().await.unwrap_err();
    assert_eq!(err.kind(), bear_core::ErrorKind::Storage, "{err}");
    assert_eq!(status(s.admin.clone()).await, 200);
}
