//! Two bear-server processes sharing a PostgreSQL database (a throw-away cluster started by
//! the test) and one keyring: a workflow started on one is seen on the other, paused and
//! resumed from the other, and, when its own instance is killed with SIGKILL, finished by the
//! other without running a completed step again.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::one_answer::Server;
use crate::security::Home;
use crate::stderr;

// The throw-away PostgreSQL cluster of bear-agents' tests.
#[path = "../../../../crates/bear-agents/tests/it/pg.rs"]
#[allow(dead_code, unreachable_pub)]
mod pg;

/// The same configuration for both instances: the shared database, one keyring and key file
/// (so one `@workflows` key and one API key file).
fn configure(h: &Home, shared: &std::path::Path, url: &str) {
    let dir = h.path("config").join("bear");
    std::fs::create_dir_all(&dir).unwrap();
    let toml = format!(
        "[security]\nkeyring = {:?}\nkey_file = {:?}\n\n[storage]\ndatabase_url = {url:?}\n",
        shared.join("keyring.json"),
        shared.join("master.key"),
    );
    std::fs::write(dir.join("config.toml"), toml).unwrap();
}

struct Client {
    http: reqwest::Client,
    key: String,
}

impl Client {
    async fn send(&self, method: Method, url: String, body: Option<&Value>) -> (u16, Value) {
        let mut r = self.http.request(method, url).bearer_auth(&self.key);
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn run(&self, server: &str, id: &str) -> Value {
        let (status, v) = self
            .send(Method::GET, format!("{server}/api/v1/workflows/{id}"), None)
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Polls `server` (at most two minutes) until `id` satisfies `done`; the run then.
    async fn until(&self, server: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let v = self.run(server, id).await;
            if done(&v) {
                return v;
            }
            assert_ne!(v["status"], "failed", "{v:#}");
            assert!(tokio::time::Instant::now() < deadline, "never reached: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn completed(v: &Value) -> Vec<Value> {
    v["progress"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "completed")
        .cloned()
        .collect()
}

#[test]
fn a_run_is_shared_by_two_instances_and_survives_its_own_being_killed() {
    let pg = pg::Postgres::start().unwrap();
    let url = pg.create_database("instances").unwrap();
    let shared = tempfile::tempdir().unwrap();
    let (ha, hb) = (Home::new(), Home::new());
    configure(&ha, shared.path(), &url);
    configure(&hb, shared.path(), &url);
    // a makes the keyring; the key made then is in the file both read at start.
    let mut a = Server::start(&ha);
    let o = ha.run(
        &["--json", "keys", "api-create", "--role", "user"],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let key: Value = serde_json::from_slice(&o.stdout).unwrap();
    let b = Server::start(&hb);
    let client = Client {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        key: key["key"].as_str().unwrap().to_string(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Prompts of their own, so no result cache answers a step at once.
        let tag = std::process::id();
        let steps: Vec<Value> = (0..8)
            .map(|i| {
                let deps: Vec<String> =
                    (i > 0).then(|| format!("s{}", i - 1)).into_iter().collect();
                json!({"id": format!("s{i}"), "type": "llm_generation", "depends_on": deps,
                       "parameters": {"prompt": format!("Describe clause {i} of lease {tag}."),
                                      "max_tokens": 64}})
            })
            .collect();
        let wf = json!({"name": "shared", "steps": steps});
        let (status, v) = client
            .send(
                Method::POST,
                format!("{}/api/v1/workflows", a.base),
                Some(&wf),
            )
            .await;
        assert_eq!(status, 202, "{v}");
        let id = v["workflow_id"].as_str().unwrap().to_string();

        // Seen on b, and controlled from b while a runs it.
        client
            .until(&b.base, &id, |v| v["status"] == "running")
            .await;
        let (status, v) = client
            .send(
                Method::POST,
                format!("{}/api/v1/workflows/{id}/pause", b.base),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        client
            .until(&a.base, &id, |v| v["status"] == "paused")
            .await;
        let (status, v) = client
            .send(
                Method::POST,
                format!("{}/api/v1/workflows/{id}/resume", b.base),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        let before = client
            .until(&a.base, &id, |v| {
                v["status"] == "running" && completed(v).len() >= 2
            })
            .await;

        // a dies mid-run; b finishes the run.
        a.child.kill().unwrap();
        a.child.wait().unwrap();
        let done_before = completed(&before);
        let after = client
            .until(&b.base, &id, |v| v["status"] == "completed")
            .await;
        assert_eq!(after["progress"]["completed"], 8, "{after}");
        for old in &done_before {
            let now = after["progress"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == old["id"])
                .unwrap();
            assert_eq!(now["attempts"], 1, "{} ran again", old["id"]);
            assert_eq!(now["output"], old["output"], "{} changed", old["id"]);
        }
    });
    drop(b);
}
