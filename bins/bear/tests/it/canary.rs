//! `SEALED_AT_REST`, end to end: after ingesting `examples/corpus` with the CLI, then on a real
//! bear-server uploading a document over REST, asking about it, running a workflow (which
//! fills the on-disk result cache) and saving a chat, no file BEAR wrote (data, configuration and cache
//! directories) holds any canary: document text, a name, an IBAN, the question, the answer or
//! a workflow input, in UTF-8 or UTF-16.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::files_under;
use crate::one_answer::Server;
use crate::rag::corpus;
use crate::security::Home;
use crate::{stderr, stdout};

const UPLOAD: &str = "Side letter.\n\nCanary Orchard Holdings agrees to the zephyrine clause: \
payments go to IBAN NL91ABNA0417164300 before the end of each quarter. Counsel for Canary \
Orchard Holdings is Mr. Bartholomew Quince.\n";
const QUESTION: &str = "What does the zephyrine clause require of Canary Orchard Holdings?";
const WORKFLOW_INPUT: &str = "Quillfeather Maritime Partners";
const CHAT: &str = "Draft a reply to Ottoline Brackenbury about the merger timetable.";

/// `needle` in UTF-8, UTF-16LE and UTF-16BE.
fn encodings(needle: &str) -> [Vec<u8>; 3] {
    [
        needle.as_bytes().to_vec(),
        needle.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        needle.encode_utf16().flat_map(u16::to_be_bytes).collect(),
    ]
}

/// The canaries found, with the file each is in or whose name holds it.
fn found(dirs: &[PathBuf], canaries: &[String]) -> Vec<(String, PathBuf)> {
    let mut hits = Vec::new();
    for f in dirs.iter().flat_map(|d| files_under(d)) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        let name = f.to_string_lossy();
        for c in canaries {
            if name.contains(c.as_str())
                || encodings(c)
                    .iter()
                    .any(|n| bytes.windows(n.len()).any(|w| w == n))
            {
                hits.push((c.clone(), f.clone()));
            }
        }
    }
    hits
}

struct Rest {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Rest {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn upload(&self, collection: &str, name: &str, bytes: &[u8]) {
        let r = self
            .http
            .post(format!(
                "{}/api/v1/collections/{collection}/documents?filename={name}",
                self.base
            ))
            .bearer_auth(&self.key)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let job: Value = r.json().await.unwrap();
        let path = format!("/api/v1/ingest/{}", job["job_id"].as_str().unwrap());
        for _ in 0..600 {
            let v = self.send(reqwest::Method::GET, &path, None).await;
            if v["status"] != "running" {
                assert_eq!(v["status"], "completed", "{v}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the upload's ingest did not finish in a minute");
    }
}

/// Uploads, asks and runs a workflow; the answer's text.
async fn use_the_server(api: &Rest) -> String {
    use reqwest::Method;
    api.upload("deals", "Quince-side-letter.txt", UPLOAD.as_bytes())
        .await;
    let asked = json!({"question": QUESTION, "collection": "deals", "max_tokens": 48,
                       "temperature": 0.0});
    let answer = api.send(Method::POST, "/api/v1/ask", Some(asked)).await;
    let loan = json!({"question": "What secures the loan to Greenfield Bakeries?",
                      "collection": "loan", "max_tokens": 32, "temperature": 0.0});
    api.send(Method::POST, "/api/v1/ask", Some(loan)).await;
    let wf = json!({
        "name": "canary",
        "inputs": {"client": {}},
        "steps": [
            {"id": "card", "type": "data_processing",
             "parameters": {"operation": "merge", "values": {"client": "{{ inputs.client }}"}}},
            {"id": "note", "type": "llm_generation",
             "parameters": {"prompt": "Name the client: {{ inputs.client }}.", "max_tokens": 16}}
        ],
        "input_values": {"client": WORKFLOW_INPUT}
    });
    let run = api
        .send(Method::POST, "/api/v1/workflows?wait=true", Some(wf))
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["results"]["card"]["client"], WORKFLOW_INPUT);
    let chat = json!({"model": "SmolLM2-135M-Instruct.Q4_1", "system": "Be brief.",
        "messages": [{"role": "user", "content": CHAT},
                     {"role": "assistant", "content": "Noted."}]});
    let saved = api.send(Method::POST, "/api/v1/chats", Some(chat)).await;
    let id = saved["id"].as_str().unwrap();
    let back = api
        .send(Method::GET, &format!("/api/v1/chats/{id}"), None)
        .await;
    assert_eq!(back["messages"][0]["content"], CHAT);
    answer["answer"].as_str().unwrap().to_string()
}

#[test]
fn no_canary_is_left_in_the_clear_anywhere_bear_writes() {
    let h = Home::new();
    let cache_home = h.path("cache");
    let models = std::env::var_os("BEAR_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/bear/models")
        });
    let env = [
        ("XDG_CACHE_HOME", cache_home.to_str().unwrap()),
        ("BEAR_MODELS_DIR", models.to_str().unwrap()),
    ];
    let o = h.run(
        &["ingest", corpus().to_str().unwrap(), "-c", "loan"],
        None,
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = h.run(
        &["--json", "keys", "api-create", "--role", "admin"],
        None,
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let key: Value = serde_json::from_str(&stdout(&o)).unwrap();

    let server = Server::start_with(
        &h,
        "127.0.0.1:0",
        &[
            ("XDG_CACHE_HOME", &cache_home),
            ("BEAR_MODELS_DIR", &models),
        ],
    );
    let api = Rest {
        base: server.base.clone(),
        key: key["key"].as_str().unwrap().to_string(),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = rt.block_on(use_the_server(&api));
    drop(server);
    assert!(
        cache_home.join("bear/results.redb").is_file(),
        "the result cache was filled"
    );

    let mut canaries: Vec<String> = [
        "Greenfield Bakeries",
        "Fjord Capital",
        "baking equipment",
        "first-ranking pledge",
        "Canary Orchard",
        "zephyrine",
        "NL91ABNA0417164300",
        "Bartholomew Quince",
        "Quillfeather Maritime",
        "What does the zephyrine clause",
        "Ottoline Brackenbury",
        "Quince-side-letter",
    ]
    .map(String::from)
    .to_vec();
    // The answer's longest word run the model wrote, if it wrote one worth looking for.
    let words: Vec<&str> = answer.split_whitespace().collect();
    if let Some(run) = words
        .windows(4)
        .map(|w| w.join(" "))
        .find(|r| r.len() >= 20)
    {
        canaries.push(run);
    }
    // The scan finds what is there: a control file in UTF-16 outside BEAR's directories.
    let control = h.path("control");
    std::fs::create_dir_all(&control).unwrap();
    std::fs::write(control.join("c.txt"), &encodings(UPLOAD)[1]).unwrap();
    std::fs::write(control.join("Quince-side-letter.txt"), b"").unwrap();
    let seen = found(std::slice::from_ref(&control), &canaries);
    assert!(
        seen.iter().any(|(c, _)| c == "NL91ABNA0417164300"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|(c, _)| c == "Quince-side-letter"),
        "{seen:?}"
    );

    let dirs = [h.path("data"), h.path("config"), cache_home];
    let hits = found(&dirs, &canaries);
    assert!(hits.is_empty(), "in the clear: {hits:?}");
}
