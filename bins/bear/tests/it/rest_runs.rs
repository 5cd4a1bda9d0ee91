//! Pause and resume over REST (`POST /api/v1/workflows/{id}/pause|resume`) on a real
//! bear-server with the real generator, the run watched over SSE meanwhile: the watcher is
//! told of the pause and the resume, and the step after the running one waits.

use std::time::Duration;

use serde_json::{Value, json};

use crate::one_answer::Server;
use crate::security::Home;
use crate::{stderr, stdout};

/// The `(event, data)` pairs of SSE text.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).ok();
                }
            }
            Some((name?, data?))
        })
        .collect()
}

/// Reads `r`'s events until a snapshot of the run with `status`; that snapshot's run.
pub(crate) async fn until_status(
    r: &mut reqwest::Response,
    seen: &mut String,
    status: &str,
) -> Value {
    loop {
        if let Some((_, v)) = events(seen)
            .into_iter()
            .find(|(n, v)| n == "snapshot" && v["run"]["status"] == status)
        {
            seen.clear();
            return v["run"].clone();
        }
        let chunk = tokio::time::timeout(Duration::from_secs(120), r.chunk())
            .await
            .expect("the run changes within two minutes")
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended before the run was {status}: {seen}"));
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

#[test]
fn a_run_is_paused_and_resumed_over_rest_and_watched_doing_so() {
    let h = Home::new();
    let server = Server::start(&h);
    let o = h.run(
        &["--json", "keys", "api-create", "--role", "user"],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let key: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let api = Api {
        base: server.base.clone(),
        key: key["key"].as_str().unwrap().to_string(),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(pause_and_resume(&api));
}

async fn pause_and_resume(api: &Api) {
    use reqwest::Method;
    // A prompt of its own, so no step cache answers it at once.
    let wf = json!({
        "name": "pausable",
        "steps": [
            {"id": "one", "type": "llm_generation",
             "parameters": {"prompt": format!("Describe lease number {}.", std::process::id()),
                            "max_tokens": 48}},
            {"id": "two", "type": "data_processing", "depends_on": ["one"],
             "parameters": {"operation": "template", "text": "after"}}
        ]
    });
    let (status, v) = api.send(Method::POST, "/api/v1/workflows", Some(&wf)).await;
    assert_eq!(status, 202, "{v}");
    let id = v["workflow_id"].as_str().unwrap().to_string();
    let mut watch = api
        .http
        .get(format!("{}/api/v1/workflows/{id}/events", api.base))
        .bearer_auth(&api.key)
        .send()
        .await
        .unwrap();
    let mut seen = String::new();

    let pause = format!("/api/v1/workflows/{id}/pause");
    let (status, v) = api.send(Method::POST, &pause, None).await;
    assert_eq!((status, &v["status"]), (200, &json!("pausing")), "{v}");
    // Paused: the watcher is told, and the step after the running one has not started.
    let run = until_status(&mut watch, &mut seen, "paused").await;
    let steps = run["progress"]["steps"].as_array().unwrap();
    let two = steps.iter().find(|s| s["id"] == "two").unwrap();
    assert_eq!(two["status"], "pending", "{run}");

    let resume = format!("/api/v1/workflows/{id}/resume");
    let (status, v) = api.send(Method::POST, &resume, None).await;
    assert_eq!((status, &v["status"]), (200, &json!("resuming")), "{v}");
    let run = until_status(&mut watch, &mut seen, "completed").await;
    assert_eq!(run["results"]["two"], "after", "{run}");

    // An ended run cannot be paused: a conflict, not a silent success; a made-up run is
    // not found.
    let (status, v) = api.send(Method::POST, &pause, None).await;
    assert_eq!(
        (status, v["error"]["kind"].as_str()),
        (409, Some("conflict")),
        "{v}"
    );
    let (status, _) = api
        .send(
            Method::POST,
            "/api/v1/workflows/run-00000000000000000000000000000000/resume",
            None,
        )
        .await;
    assert_eq!(status, 404);
}
