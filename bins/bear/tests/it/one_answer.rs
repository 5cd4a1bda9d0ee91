//! `ONE_ANSWER`: each operation that both front ends offer, run through `bear --json` and
//! through REST on a real bear-server (same data directory, real models, the tokenize policy
//! with a keyring), gives the same JSON, timings aside; a refused request gives the same error
//! body.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::security::Home;
use crate::{stderr, stdout};

/// Fields that measure time or memory, which no two runs share.
const TIMINGS: &[&str] = &[
    "elapsed_ms",
    "verification_us",
    "time_to_first_token_ms",
    "generation_time",
    "tokens_per_second",
    "timings",
    "peak_rss_bytes",
    "request_id",
];

fn without_timings(mut v: Value) -> Value {
    match &mut v {
        Value::Object(m) => {
            for k in TIMINGS {
                m.remove(*k);
            }
            for x in m.values_mut() {
                *x = without_timings(x.take());
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                *x = without_timings(x.take());
            }
        }
        _ => {}
    }
    v
}

/// bear-server on 127.0.0.1:0 over `h`'s data, stopped (SIGTERM) on drop.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    /// The last [`LOG_LINES`] lines the server wrote to stderr, for a failing test to show.
    log: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
}

/// How many of the server's last log lines [`Server::log_tail`] keeps.
const LOG_LINES: usize = 200;

impl Server {
    pub(crate) fn start(h: &Home) -> Self {
        Self::start_at(h, "127.0.0.1:0")
    }

    /// A server listening on `bind` (`host:port`).
    pub(crate) fn start_at(h: &Home, bind: &str) -> Self {
        Self::start_with(h, bind, &[])
    }

    /// A server listening on `bind`, with `env` set too.
    pub(crate) fn start_with(h: &Home, bind: &str, env: &[(&str, &Path)]) -> Self {
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_bear")).with_file_name("bear-server");
        let mut cmd = Command::new(exe);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .args(["--bind", bind])
            .env_remove("BEAR_CONFIG")
            .env_remove("BEAR_PASSPHRASE")
            .env("BEAR_DATA_DIR", h.path("data"))
            .env("XDG_CONFIG_HOME", h.path("config"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let base = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix("bear-server listening on ")
                    .map(str::to_string)
            })
            .expect("bear-server listens");
        let log = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut log = keep.lock().unwrap();
                if log.len() == LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });
        Self { child, base, log }
    }

    /// The server's last log lines, one per line.
    pub(crate) fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// How long a server may take to stop after SIGTERM before the test calls it hung.
const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

impl Server {
    /// Sends SIGTERM and waits up to [`STOP_DEADLINE`]; a server still running then is killed,
    /// and `false` says it did not stop by itself.
    pub(crate) fn stop(&mut self) -> bool {
        if let Ok(Some(_)) = self.child.try_wait() {
            return true;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + STOP_DEADLINE;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let stopped = self.stop();
        if !stopped && !std::thread::panicking() {
            panic!("bear-server did not stop within {STOP_DEADLINE:?} of SIGTERM (killed)");
        }
    }
}

/// One case: the CLI's arguments and the REST request that should answer alike.
struct Case {
    name: &'static str,
    cli: Vec<String>,
    method: &'static str,
    path: &'static str,
    body: Value,
}

fn case(name: &'static str, cli: &[&str], path: &'static str, body: Value) -> Case {
    Case {
        name,
        cli: cli.iter().map(|s| s.to_string()).collect(),
        method: "POST",
        path,
        body,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The CLI's answer: stdout on success, the error body on stderr on failure.
fn through_cli(h: &Home, args: &[String]) -> (bool, Value) {
    let mut all = vec!["--json".to_string()];
    all.extend(args.iter().cloned());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let o = h.run(&refs, None, &[]);
    let text = if o.status.success() {
        stdout(&o)
    } else {
        stderr(&o)
    };
    let v = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{e}: {args:?}: {}", stderr(&o)));
    (o.status.success(), v)
}

fn through_rest(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    key: &str,
    c: &Case,
) -> (bool, Value) {
    rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        let mut r = client
            .request(method, format!("{}{}", server.base, c.path))
            .bearer_auth(key);
        if !c.body.is_null() {
            r = r.json(&c.body);
        }
        let r = r.send().await.unwrap();
        let ok = r.status().is_success();
        (ok, r.json::<Value>().await.unwrap())
    })
}

fn cases(notes: &Path) -> Vec<Case> {
    let question = "How much notice must be given to terminate the lease at Keizersgracht 221?";
    let notes_text = std::fs::read_to_string(notes).unwrap();
    let lease = crate::rag::corpus()
        .join("commercial-lease.pdf")
        .canonicalize()
        .unwrap();
    let lease = lease.to_string_lossy().into_owned();
    let schema = json!({"type": "object", "properties": {
        "landlord": {"type": "string", "maxLength": 40},
        "monthly_rent_eur": {"type": "integer"}},
        "required": ["landlord", "monthly_rent_eur"], "additionalProperties": false});
    let schema_file = notes.with_file_name("lease.schema.json");
    std::fs::write(&schema_file, schema.to_string()).unwrap();
    let bad_file = notes.with_file_name("bad.schema.json");
    std::fs::write(&bad_file, r#"{"type": "strang"}"#).unwrap();
    let (schema_file, bad_file) = (s(&schema_file).to_string(), s(&bad_file).to_string());
    let empty_schema = notes.with_file_name("empty.schema.json");
    std::fs::write(&empty_schema, r#"{"type": "object"}"#).unwrap();
    let empty_schema = s(&empty_schema).to_string();
    let mut all = vec![
        case(
            "extract, one document",
            &[
                "extract",
                "--schema",
                &schema_file,
                &lease,
                "--max-tokens",
                "80",
            ],
            "/api/v1/extract",
            json!({"schema": schema, "document": lease, "max_tokens": 80}),
        ),
        case(
            "extract, a schema that is not one",
            &["extract", "--schema", &bad_file, &lease],
            "/api/v1/extract",
            json!({"schema": {"type": "strang"}, "document": lease}),
        ),
        case(
            "review, whole document",
            &["review", &lease, "--task", "parties", "--max-tokens", "96"],
            "/api/v1/review",
            json!({"document": lease, "task": "parties", "max_tokens": 96}),
        ),
        case(
            "review, custom without an instruction",
            &["review", &lease, "--task", "custom"],
            "/api/v1/review",
            json!({"document": lease, "task": "custom"}),
        ),
        case(
            "review, sections too small",
            &["review", &lease, "--section-tokens", "10"],
            "/api/v1/review",
            json!({"document": lease, "section_tokens": 10}),
        ),
        case(
            "grid, one question",
            &["grid", "-q", "What is the monthly rent?", "-d", &lease],
            "/api/v1/grid",
            json!({"questions": ["What is the monthly rent?"], "documents": [lease]}),
        ),
        case(
            "grid, a schema without fields",
            &["grid", "--schema", &empty_schema, "-d", &lease],
            "/api/v1/grid",
            json!({"schema": {"type": "object"}, "documents": [lease]}),
        ),
        case(
            "review, a document that is not there",
            &["review", "ffffffffffffffffffffffffffffffff"],
            "/api/v1/review",
            json!({"document": "ffffffffffffffffffffffffffffffff"}),
        ),
    ];
    all.extend(vec![
        case(
            "search, hybrid, filtered by date",
            &[
                "search",
                "notice to terminate",
                "--k",
                "3",
                "--after",
                "2000-01-01",
            ],
            "/api/v1/search",
            json!({"query": "notice to terminate", "k": 3, "after": "2000-01-01"}),
        ),
        case(
            "search, exact, default k, tokens restored",
            &["search", "Keizersgracht", "--mode", "exact"],
            "/api/v1/search",
            json!({"query": "Keizersgracht", "mode": "exact"}),
        ),
        case(
            "search, a date filter that leaves nothing",
            &["search", "lease", "--before", "1990-01-01"],
            "/api/v1/search",
            json!({"query": "lease", "before": "1990-01-01"}),
        ),
        case(
            "search, e-mails from one sender",
            &["search", "oven", "--from", "greenfield"],
            "/api/v1/search",
            json!({"query": "oven", "mail": {"from": "greenfield"}}),
        ),
        case(
            "search, a blank e-mail field",
            &["search", "oven", "--subject", " "],
            "/api/v1/search",
            json!({"query": "oven", "mail": {"subject": " "}}),
        ),
        case(
            "search, k over the one limit",
            &["search", "lease", "--k", "101"],
            "/api/v1/search",
            json!({"query": "lease", "k": 101}),
        ),
        case(
            "search, a date that is not one",
            &["search", "lease", "--after", "yesterday"],
            "/api/v1/search",
            json!({"query": "lease", "after": "yesterday"}),
        ),
        case(
            "ask, with a date filter",
            &[
                "ask",
                question,
                "--k",
                "3",
                "--max-tokens",
                "40",
                "--after",
                "2000-01-01",
            ],
            "/api/v1/ask",
            json!({"question": question, "k": 3, "max_tokens": 40, "after": "2000-01-01"}),
        ),
        case(
            "ask, a date filter that leaves nothing",
            &["ask", question, "--before", "1990-01-01"],
            "/api/v1/ask",
            json!({"question": question, "before": "1990-01-01"}),
        ),
        case(
            "ask, k over the one limit",
            &["ask", question, "--k", "51"],
            "/api/v1/ask",
            json!({"question": question, "k": 51}),
        ),
        case(
            "generate, chat template, greedy",
            &[
                "generate",
                "Name one colour.",
                "--max-tokens",
                "12",
                "--temperature",
                "0",
            ],
            "/api/v1/models/SmolLM2-135M-Instruct.Q4_1/generate",
            json!({"prompt": "Name one colour.", "max_tokens": 12, "temperature": 0}),
        ),
        case(
            "generate, raw",
            &[
                "generate",
                "--raw",
                "The capital of France is",
                "--max-tokens",
                "8",
                "--temperature",
                "0",
            ],
            "/api/v1/models/SmolLM2-135M-Instruct.Q4_1/generate",
            json!({"prompt": "The capital of France is", "raw": true, "max_tokens": 8, "temperature": 0}),
        ),
        case(
            "generate, max_tokens over the limit",
            &["generate", "x", "--max-tokens", "5000"],
            "/api/v1/models/SmolLM2-135M-Instruct.Q4_1/generate",
            json!({"prompt": "x", "max_tokens": 5000}),
        ),
        Case {
            name: "collections list",
            cli: vec!["collections".into(), "list".into()],
            method: "GET",
            path: "/api/v1/collections",
            body: Value::Null,
        },
        Case {
            name: "docs list",
            cli: vec!["docs".into(), "list".into()],
            method: "GET",
            path: "/api/v1/collections/default/documents",
            body: Value::Null,
        },
        case(
            "pii detect",
            &["pii", "detect", s(notes)],
            "/api/v1/pii/detect",
            json!({"text": notes_text}),
        ),
        Case {
            name: "workflow list",
            cli: vec!["workflow".into(), "list".into()],
            method: "GET",
            path: "/api/v1/workflows",
            body: Value::Null,
        },
        Case {
            name: "agents list",
            cli: vec!["agents".into(), "list".into()],
            method: "GET",
            path: "/api/v1/agents",
            body: Value::Null,
        },
        // `bear models` reaches the running server through its control socket.
        case(
            "models load, pinned",
            &["models", "load", "all-MiniLM-L6-v2-int8"],
            "/api/v1/models",
            json!({"action": "load", "model_id": "all-MiniLM-L6-v2-int8", "config": {"pin": true}}),
        ),
        case(
            "plugin tool run",
            &[
                "plugins",
                "run",
                "citations",
                "extract",
                "--input",
                r#"{"text":"see ECLI:NL:HR:2019:1234"}"#,
            ],
            "/api/v1/plugins/citations/tools/extract",
            json!({"text": "see ECLI:NL:HR:2019:1234"}),
        ),
        case(
            "plugin tool run, a tool that is not there",
            &["plugins", "run", "citations", "nosuch", "--input", "{}"],
            "/api/v1/plugins/citations/tools/nosuch",
            json!({}),
        ),
        Case {
            name: "models list",
            cli: vec!["models".into(), "list".into()],
            method: "GET",
            path: "/api/v1/models",
            body: Value::Null,
        },
    ]);
    all
}

#[test]
fn cli_and_rest_give_one_answer() {
    let h = crate::rag::home_with_keys();
    // Plugins too, for the tool call both front ends offer.
    let kf = h.path("master.key");
    h.write(
        "config/bear/config.toml",
        format!(
            "[security]\nkey_file = {:?}\n[plugins]\ndirs = [{:?}]\n{}",
            kf,
            crate::plugins::plugins_dir(),
            crate::rag::WORD_FOR_WORD
        )
        .as_bytes(),
    );
    let corpus = crate::rag::corpus();
    let o = h.run(&["ingest", s(&corpus)], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A mailbox of two messages, the second a reply to the first.
    let mbox = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/bear-rag/tests/fixtures/thread.mbox");
    let o = h.run(&["ingest", s(&mbox)], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = h.run(
        &["--json", "keys", "api-create", "--role", "admin"],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let key: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    let notes = h.path("notes.txt");
    std::fs::write(
        &notes,
        "Client: Jan de Vries, jan.devries@example.nl\nIBAN NL91 ABNA 0417 1643 00, phone +31 20 555 0134\n",
    )
    .unwrap();

    // One finished workflow run in the run database both front ends read.
    let wf = h.path("greeting.yaml");
    std::fs::write(
        &wf,
        "name: greeting\nsteps:\n  - id: hello\n    type: data_processing\n    parameters:\n      operation: template\n      text: hello\n",
    )
    .unwrap();
    let o = h.run(&["workflow", "run", s(&wf)], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    let server = Server::start(&h);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for c in cases(&notes) {
        let (cli_ok, cli) = through_cli(&h, &c.cli);
        let (rest_ok, rest) = through_rest(&rt, &server, &key, &c);
        assert_eq!(cli_ok, rest_ok, "{}: CLI {cli}, REST {rest}", c.name);
        assert_eq!(
            without_timings(cli.clone()),
            without_timings(rest.clone()),
            "{}: the CLI and REST answered differently",
            c.name
        );
        check_meaning(c.name, cli_ok, &cli);
    }
}

/// What each case must show beyond agreeing: that the filters, limits, template and
/// restoration the issue names actually applied.
fn check_meaning(name: &str, ok: bool, v: &Value) {
    match name {
        "extract, one document" => {
            assert!(ok, "{v}");
            let d = &v["documents"][0];
            assert_eq!(v["documents"].as_array().unwrap().len(), 1, "{v}");
            assert!(d["values"].is_object(), "{v}");
            // Every value kept stands in the lease; every value dropped is null in `values`.
            for f in d["found"].as_array().unwrap() {
                assert!(f["span"].is_array() && f["page"].is_u64(), "{f}");
            }
            for l in d["dropped"].as_array().unwrap() {
                let at = l["pointer"].as_str().unwrap();
                assert!(d["values"].pointer(at).unwrap().is_null(), "{v}");
            }
        }
        "extract, a schema that is not one" => {
            assert!(!ok);
            assert_eq!(v["error"]["field"], "schema", "{v}");
        }
        "review, whole document" => {
            assert!(ok, "{v}");
            assert_eq!(
                (&v["mode"], &v["sections"], &v["status"]),
                (&json!("whole"), &json!(1), &json!("completed")),
                "{v}"
            );
            assert_eq!(v["strict"], true);
            // Strict: every citation left is verified, with its page and the passage's words.
            for c in v["citations"].as_array().unwrap() {
                assert_eq!(c["verified"], true, "{v}");
                assert!(
                    c["span"]["page"].is_u64() && !c["span"]["text"].as_str().unwrap().is_empty(),
                    "{c}"
                );
            }
        }
        "grid, one question" => {
            assert!(ok, "{v}");
            let cell = &v["rows"][0]["cells"][0];
            assert_eq!(v["columns"][0]["key"], "q1", "{v}");
            assert!(cell["verified"].is_boolean(), "{v}");
        }
        "grid, a schema without fields" => assert_eq!(v["error"]["field"], "schema", "{v}"),
        "review, custom without an instruction" => {
            assert_eq!(v["error"]["field"], "instruction", "{v}")
        }
        "review, sections too small" => assert_eq!(v["error"]["field"], "section_tokens", "{v}"),
        "review, a document that is not there" => {
            assert!(!ok);
            assert_eq!(v["error"]["kind"], "not_found", "{v}");
        }
        "search, hybrid, filtered by date" => {
            assert!(ok);
            assert_eq!(v["hits"].as_array().unwrap().len(), 3, "{v}");
        }
        "search, exact, default k, tokens restored" => {
            let hits = v["hits"].as_array().unwrap();
            assert_eq!(hits.len(), 5, "rag.top_k is the default k: {v}");
            assert!(
                hits.iter()
                    .any(|h| h["text"].as_str().unwrap().contains("Keizersgracht")),
                "hit texts come back restored: {v}"
            );
        }
        "search, a date filter that leaves nothing" => {
            assert!(v["hits"].as_array().unwrap().is_empty(), "{v}");
        }
        "search, k over the one limit" | "ask, k over the one limit" => {
            assert!(!ok);
            assert_eq!(v["error"]["kind"], "invalid_request");
            assert_eq!(v["error"]["field"], "k");
        }
        "search, a date that is not one" => assert_eq!(v["error"]["field"], "after"),
        "generate, max_tokens over the limit" => assert_eq!(v["error"]["field"], "max_tokens"),
        "ask, with a date filter" => {
            assert!(v["relevant"].as_bool().unwrap(), "{v}");
            assert!(!v["sources"].as_array().unwrap().is_empty());
        }
        "ask, a date filter that leaves nothing" => {
            assert_eq!(v["relevant"], false, "the filter applies to ask: {v}");
            assert!(v["sources"].as_array().unwrap().is_empty());
        }
        "generate, chat template, greedy" => assert_eq!(v["chat_template"], true),
        "collections list" => assert_eq!(v[0]["documents"], 15, "{v}"),
        "workflow list" => {
            let runs = v.as_array().unwrap();
            assert_eq!(runs.len(), 1, "{v}");
            assert_eq!(
                (&runs[0]["name"], &runs[0]["status"]),
                (&json!("greeting"), &json!("completed"))
            );
        }
        "agents list" => {
            let kinds: Vec<&str> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["type"].as_str().unwrap())
                .collect();
            assert!(
                kinds.contains(&"coordinator") && kinds.contains(&"monitor"),
                "{v}"
            );
        }
        "models load, pinned" => {
            assert_eq!(
                (&v["status"], &v["pinned"]),
                (&json!("loaded"), &json!(true))
            );
        }
        "models list" => {
            let rows = v.as_array().unwrap();
            assert_eq!(rows.len(), 5, "{v}");
            let int8 = rows
                .iter()
                .find(|r| r["id"] == "all-MiniLM-L6-v2-int8")
                .unwrap();
            assert_eq!(
                (&int8["status"], &int8["pinned"]),
                (&json!("loaded"), &json!(true))
            );
        }
        "docs list" => {
            let docs = v.as_array().unwrap();
            assert_eq!(docs.len(), 15, "{v}");
            let at = |end: &str| {
                docs.iter()
                    .find(|d| d["path"].as_str().unwrap().ends_with(end))
                    .unwrap()
            };
            // The reply names the message it answers; the first message answers none.
            let (first, reply) = (at("thread.mbox"), at("thread.mbox/message-2"));
            assert_eq!(reply["mail"]["replies_to"], first["id"], "{v}");
            assert!(first["mail"]["replies_to"].is_null(), "{v}");
            assert!(first["mail"]["sent"].is_i64(), "{v}");
        }
        "search, e-mails from one sender" => {
            let hits = v["hits"].as_array().unwrap();
            assert!(!hits.is_empty(), "{v}");
            for h in hits {
                assert!(h["path"].as_str().unwrap().ends_with("thread.mbox"), "{v}");
            }
        }
        "search, a blank e-mail field" => {
            assert!(!ok);
            assert_eq!(v["error"]["field"], "mail.subject", "{v}");
        }
        "plugin tool run" => {
            assert!(ok);
            assert_eq!(v["output"]["ecli"][0], "ECLI:NL:HR:2019:1234", "{v}");
        }
        "plugin tool run, a tool that is not there" => {
            assert!(!ok);
            assert_eq!(v["error"]["kind"], "not_found", "{v}");
        }
        "generate, raw" => assert_eq!(v["chat_template"], false),
        "pii detect" => {
            assert_eq!(v["counts"]["EMAIL"], 1, "{v}");
            assert!(v["findings"][0]["line"].is_u64());
            assert!(v["findings"][0].get("value").is_none());
        }
        _ => panic!("no check for {name}"),
    }
}
