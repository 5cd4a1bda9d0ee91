//! `bear workflow` and `bear agents` end to end, and crash safety: a child `bear workflow run`
//! killed with SIGKILL mid-run resumes without re-running its completed steps.

use std::io::{BufRead, BufReader};
use std::path::Path;

use std::time::Duration;

use serde_json::Value;

use crate::security::Home;
use crate::{stderr, stdout};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const CHAIN: &str = r#"
name: memo chain
inputs:
  topic: {default: "a late delivery"}
steps:
  - id: s0
    type: llm_generation
    parameters: {prompt: "Write one sentence about {{ inputs.topic }}.", max_tokens: 12}
  - id: s1
    type: llm_generation
    parameters: {prompt: "Shorten: {{ steps.s0.output.text }}", max_tokens: 12}
  - id: s2
    type: llm_generation
    parameters: {prompt: "Make it formal: {{ steps.s1.output.text }}", max_tokens: 12}
  - id: s3
    type: llm_generation
    parameters: {prompt: "Add a date: {{ steps.s2.output.text }}", max_tokens: 12}
  - id: s4
    type: llm_generation
    parameters: {prompt: "Sign it: {{ steps.s3.output.text }}", max_tokens: 12}
  - id: s5
    type: llm_generation
    parameters: {prompt: "Title it: {{ steps.s4.output.text }}", max_tokens: 12}
  - id: s6
    type: llm_generation
    parameters: {prompt: "Summarise: {{ steps.s5.output.text }}", max_tokens: 12}
  - id: s7
    type: data_processing
    parameters: {operation: template, text: "{{ steps.s6.output.text }}"}
"#;

fn status(h: &Home, id: &str) -> Value {
    let o = h.run(&["workflow", "status", id, "--json"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

#[test]
fn validate_run_list_status_and_agents() {
    let h = Home::new();
    let good = h.write("good.yaml", CHAIN.as_bytes());
    let o = h.run(&["workflow", "validate", s(&good)], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("memo chain: valid, 8 step(s)"));

    let bad = h.write(
        "bad.json",
        br#"{"name": "bad", "steps": [
            {"id": "a", "type": "llm_generation", "depends_on": ["b"], "parameters": {"prompt": "x"}},
            {"id": "b", "type": "llm_generation", "depends_on": ["a"], "parameters": {"prompt": "x"}},
            {"id": "c", "type": "wizardry"}]}"#,
    );
    let o = h.run(&["workflow", "validate", s(&bad)], None, &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("steps[2].type") && err.contains("dependency cycle"),
        "{err}"
    );

    let broken = h.write("broken.yaml", b"name: [unclosed\n");
    let o = h.run(&["workflow", "validate", s(&broken)], None, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let quick = h.write(
        "quick.yaml",
        b"name: quick\ninputs: {who: {}}\nsteps:\n  - id: hello\n    type: data_processing\n    parameters: {operation: template, text: 'hello {{ inputs.who }}'}\n",
    );
    let o = h.run(
        &[
            "--json",
            "workflow",
            "run",
            s(&quick),
            "--input",
            "who=counsel",
            "--watch",
        ],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let p: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["status"], "completed");
    assert_eq!(p["results"]["hello"], "hello counsel");
    assert!(
        stderr(&o).contains("[1/1] hello completed"),
        "{}",
        stderr(&o)
    );
    let id = p["id"].as_str().unwrap().to_string();

    let o = h.run(&["workflow", "run", s(&quick)], None, &[]);
    assert_eq!(o.status.code(), Some(2), "a missing input is a usage error");
    assert!(stderr(&o).contains("input `who`"), "{}", stderr(&o));

    let o = h.run(&["workflow", "list", "--json"], None, &[]);
    let runs: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(status(&h, &id)["progress"]["completed"], 1);
    let o = h.run(&["workflow", "cancel", &id], None, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already finished"), "{}", stderr(&o));
    let o = h.run(&["workflow", "status", "run-missing"], None, &[]);
    assert_eq!(o.status.code(), Some(4));

    let o = h.run(&["agents", "list", "--json"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let agents: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let types: Vec<&str> = agents
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    for t in [
        "coordinator",
        "executor",
        "validator",
        "monitor",
        "specialist",
    ] {
        assert!(types.contains(&t), "{types:?}");
    }
    assert!(
        agents
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "idle")
    );
}

#[test]
fn sigkill_mid_run_resumes_without_repeating_completed_steps() {
    let h = Home::new();
    let file = h.write("chain.yaml", CHAIN.as_bytes());
    let mut child = h.spawn(&["workflow", "run", s(&file), "--watch"]);
    let mut id = None;
    let mut completed = 0;
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(rest) = line.strip_prefix("run ") {
            id = rest.split_whitespace().next().map(str::to_string);
        }
        if line.ends_with(" completed") {
            completed += 1;
            if completed == 3 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    assert!(!child.wait().unwrap().success(), "killed before the end");
    let id = id.expect("the run announced its id");

    let before = status(&h, &id);
    let done_before: Vec<Value> = before["progress"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "completed")
        .cloned()
        .collect();
    assert!(done_before.len() >= 3, "{before}");
    assert!(
        done_before.len() < 8,
        "the run was killed mid-way: {before}"
    );
    assert_eq!(before["status"], "running");

    // Once its heartbeat is old, the run shows as interrupted and can be resumed.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(status(&h, &id)["interrupted"], true);
    let o = h.run(&["workflow", "list"], None, &[]);
    assert!(stdout(&o).contains("interrupted"), "{}", stdout(&o));
    let o = h.run(
        &["workflow", "run", s(&file), "--input", "topic=x"],
        None,
        &[],
    );
    // (It runs the chain once more, to the end; the point is the note on stderr.)
    assert!(
        stderr(&o).contains("1 earlier run(s) were interrupted"),
        "{}",
        stderr(&o)
    );

    let o = h.run(&["workflow", "recover"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("recovering run {id}")),
        "{}",
        stderr(&o)
    );
    let after = status(&h, &id);
    assert_eq!(after["status"], "completed", "{after}");
    assert_eq!(after["progress"]["completed"], 8);
    for old in &done_before {
        let now = after["progress"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == old["id"])
            .unwrap();
        assert_eq!(now["attempts"], 1, "{} ran again", old["id"]);
        assert_eq!(now["output"], old["output"], "{} changed", old["id"]);
        assert_eq!(now["duration_ms"], old["duration_ms"]);
    }
    // A step cut off by the kill was retried: its interrupted attempt counts.
    let attempts: u64 = after["progress"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attempts"].as_u64().unwrap())
        .sum();
    assert!((8..=9).contains(&attempts), "{after}");
}

#[test]
fn tool_steps_run_real_plugins_and_bad_ones_fail_alone() {
    let h = Home::new();
    std::fs::create_dir_all(h.path("config/bear")).unwrap();
    h.write(
        "config/bear/config.toml",
        format!("[plugins]\ndirs = [{:?}]\n", crate::plugins::plugins_dir()).as_bytes(),
    );
    let file = h.write(
        "tools.yaml",
        br#"
name: plugin tools
on_failure: continue
steps:
  - id: cite
    type: tool_execution
    parameters: {tool: citations.extract, input: {text: "See ECLI:NL:HR:2019:1234 and ECLI:NL:HR:2020:99."}}
  - id: flood
    type: tool_execution
    parameters: {tool: hostile.flood}
  - id: spin
    type: tool_execution
    timeout: 5
    parameters: {tool: hostile.spin}
"#,
    );
    let o = h.run(&["workflow", "validate", s(&file)], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = h.run(&["--json", "workflow", "run", s(&file)], None, &[]);
    assert_eq!(o.status.code(), Some(1), "the run failed: {}", stderr(&o));
    let p: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["status"], "failed");
    let steps = p["progress"]["steps"].as_array().unwrap();
    assert_eq!(steps[0]["status"], "completed", "{p}");
    assert!(
        steps[0]["output"]
            .to_string()
            .contains("ECLI:NL:HR:2019:1234"),
        "{p}"
    );
    for (bad, class) in steps[1..]
        .iter()
        .zip(["sandbox: plugin", "timeout: plugin"])
    {
        assert_eq!(bad["status"], "failed", "{p}");
        assert!(bad["error"].as_str().unwrap().starts_with(class), "{p}");
    }
}

#[test]
fn pause_resume_and_cancel_reach_a_run_in_another_process() {
    let h = Home::new();
    let file = h.write("chain.yaml", CHAIN.as_bytes());
    let start = |h: &Home| {
        let mut child = h.spawn(&["workflow", "run", s(&file), "--watch"]);
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut id = None;
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.strip_prefix("run ") {
                id = rest.split_whitespace().next().map(str::to_string);
            }
            if line.ends_with("s0 completed") {
                break;
            }
        }
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        (child, id.expect("the run announced its id"))
    };

    let (mut child, id) = start(&h);
    let o = h.run(&["workflow", "pause", &id], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut paused = Value::Null;
    for _ in 0..100 {
        paused = status(&h, &id);
        if paused["status"] == "paused" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(paused["status"], "paused", "{paused}");
    let running = |v: &Value| {
        v["progress"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "running")
            .count()
    };
    // The step running when the pause arrived finishes (slowly, on a busy machine) ...
    let mut settled = status(&h, &id);
    for _ in 0..1200 {
        if running(&settled) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        settled = status(&h, &id);
    }
    assert_eq!(running(&settled), 0, "{settled}");
    // ... and no other starts while paused.
    std::thread::sleep(Duration::from_millis(1500));
    let still = status(&h, &id);
    assert_eq!(running(&still), 0, "no step starts while paused: {still}");
    assert_eq!(
        still["progress"]["completed"],
        settled["progress"]["completed"]
    );
    assert_eq!(still["status"], "paused");
    assert!(
        still["progress"]["completed"].as_u64().unwrap() < 8,
        "{still}"
    );
    let o = h.run(&["workflow", "resume", &id], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        child.wait().unwrap().success(),
        "the run finished in its own process"
    );
    assert_eq!(status(&h, &id)["status"], "completed");

    let (mut child, id) = start(&h);
    let o = h.run(&["workflow", "cancel", &id], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        child.wait().unwrap().code(),
        Some(1),
        "a cancelled run exits 1"
    );
    let after = status(&h, &id);
    assert_eq!(after["status"], "cancelled", "{after}");
    assert!(after["progress"]["completed"].as_u64().unwrap() < 8);
}

/// A `rag_query` step retrieves from an ingested collection: the embedding model is loaded
/// when the step runs (the backends hold none until then) and the hits carry their sources.
#[test]
fn a_rag_query_step_retrieves_from_an_ingested_collection() {
    let h = crate::rag::home_with_keys();
    let corpus = crate::rag::corpus();
    let o = h.run(&["ingest", s(&corpus), "-c", "lease"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = h.write(
        "rag.yaml",
        br#"
name: rag
steps:
  - id: find
    type: rag_query
    parameters: {collection: lease, query: "monthly rent for the offices", top_k: 3}
"#,
    );
    let o = h.run(&["--json", "workflow", "run", s(&file)], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["status"], "completed", "{p}");
    let hits = p["progress"]["steps"][0]["output"].as_array().unwrap();
    assert_eq!(hits.len(), 3, "{p}");
    assert!(
        hits.iter()
            .all(|h| h["source"].is_string() && h["text"].is_string()),
        "{p}"
    );
    assert!(
        hits.iter()
            .any(|h| h["text"].as_str().unwrap().to_lowercase().contains("rent")),
        "{p}"
    );
}
