//! `GET /api/v1/workflows/{id}/events`: a run watched live over server-sent events, from its
//! first snapshot to its end; another key's run is not found.

use std::time::Duration;

use bear_api::Limits;
use serde_json::{Value, json};

use crate::{body, client, server};

/// The `(event, data)` pairs of a whole SSE body.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap());
                }
            }
            Some((name?, data?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_watched_from_its_snapshot_to_its_end() {
    let s = server(Limits::default()).await;
    let wf = json!({
        "name": "watched",
        "steps": [
            {"id": "one", "type": "data_processing",
             "parameters": {"operation": "template", "text": "first"}},
            {"id": "two", "type": "data_processing", "depends_on": ["one"],
             "parameters": {"operation": "template", "text": "{{ steps.one.output | upper }}"}}
        ]
    });
    let r = s
        .send("POST", "/api/v1/workflows", &s.user, Some(&wf))
        .await;
    let (status, v) = body(r).await;
    assert_eq!(status, 202, "{v}");
    let id = v["workflow_id"].as_str().unwrap().to_string();
    let url = format!("{}/api/v1/workflows/{id}/events", s.base);

    // Another key's run does not exist for it.
    let other = client()
        .get(&url)
        .bearer_auth(&s.reader)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);

    let r = client()
        .get(&url)
        .bearer_auth(&s.user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // The stream ends by itself once the run has ended.
    let text = tokio::time::timeout(Duration::from_secs(60), r.text())
        .await
        .expect("the stream ends after the run")
        .unwrap();
    let got = events(&text);
    assert!(got.len() >= 2, "{text}");
    assert_eq!(got[0].0, "snapshot", "{text}");
    assert_eq!(got[0].1["run"]["id"], id.as_str());
    // The snapshot carries the graph's edges, for drawing the run.
    let steps = got[0].1["run"]["progress"]["steps"].as_array().unwrap();
    let two = steps.iter().find(|s| s["id"] == "two").unwrap();
    assert_eq!(two["depends_on"], json!(["one"]), "{text}");
    let (last_name, last) = &got[got.len() - 1];
    assert_eq!(
        (last_name.as_str(), &last["status"]),
        ("end", &json!("completed"))
    );
    let (name, final_run) = &got[got.len() - 2];
    assert_eq!(name, "snapshot");
    assert_eq!(final_run["run"]["results"]["two"], "FIRST", "{text}");
    for (name, data) in &got {
        assert_eq!(data["event"], name.as_str(), "the data names its event");
        if name == "step" {
            assert!(
                ["one", "two"].contains(&data["step"].as_str().unwrap()),
                "{data}"
            );
        }
    }
    // Watching an ended run: its snapshot, then its end.
    let r = client()
        .get(&url)
        .bearer_auth(&s.user)
        .send()
        .await
        .unwrap();
    let again = events(&r.text().await.unwrap());
    let names: Vec<&str> = again.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["snapshot", "end"]);
}
