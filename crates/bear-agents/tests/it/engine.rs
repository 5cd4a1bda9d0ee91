//! Scheduling semantics: order, parallelism, retries, timeouts, failure policies, cancel,
//! pause/resume, bad steps, events and progress.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bear_agents::{Backends, Engine, Error, MemoryStore, Registry};
use bear_core::{Event, EventBus, RunStatus, StepStatus};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{Log, fast_config, memory_engine, tool, workflow};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn echo_step(id: &str, deps: &[String]) -> Value {
    json!({"id": id, "type": "tool_execution", "depends_on": deps,
           "parameters": {"tool": "echo", "input": {"id": id}}})
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random DAGs: every step runs exactly once, and only after all of its dependencies ended.
    #[test]
    fn every_step_runs_once_after_its_dependencies(
        n in 1usize..30,
        edges in proptest::collection::vec((0usize..30, 0usize..30), 0..60),
        parallel in 1usize..6,
    ) {
        let mut deps: Vec<Vec<String>> = vec![Vec::new(); n];
        for (a, b) in edges {
            let (a, b) = (a % n, b % n);
            if a < b && !deps[b].contains(&format!("s{a}")) {
                deps[b].push(format!("s{a}"));
            }
        }
        let steps: Vec<Value> = (0..n).map(|i| echo_step(&format!("s{i}"), &deps[i])).collect();
        let log = Log::default();
        let mut config = fast_config();
        config.max_parallel_steps = parallel;
        let status = rt().block_on(async {
            let engine = crate::engine_with(Arc::new(MemoryStore::new()), &log, config);
            let h = engine.start(workflow(json!({"name": "dag", "steps": steps})), BTreeMap::new()).await.unwrap();
            h.wait().await.unwrap()
        });
        prop_assert_eq!(status, RunStatus::Completed);
        let items = log.items();
        let pos = |what: &str| items.iter().position(|x| x == what);
        for (i, step_deps) in deps.iter().enumerate() {
            let start = format!("start s{i}");
            prop_assert_eq!(items.iter().filter(|x| **x == start).count(), 1);
            for d in step_deps {
                let end = format!("end {}", d);
                prop_assert!(pos(&end).unwrap() < pos(&start).unwrap());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallelism_is_maximal_under_the_limit() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let counting = tool("count", move |_, _| {
        let (r, p) = (r.clone(), p.clone());
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(80)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok(json!(null))
        }
    });
    let mut config = fast_config();
    config.max_parallel_steps = 3;
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Registry::with_default_agents(),
        Backends {
            tools: [counting].into_iter().collect(),
            ..Backends::default()
        },
        EventBus::default(),
        config,
    );
    let steps: Vec<Value> = (0..9)
        .map(|i| json!({"id": format!("c{i}"), "type": "tool_execution", "parameters": {"tool": "count"}}))
        .collect();
    let h = engine
        .start(
            workflow(json!({"name": "wide", "steps": steps})),
            BTreeMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(h.wait().await.unwrap(), RunStatus::Completed);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_then_succeed_and_timeouts_end_hung_steps() {
    let calls = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let c = calls.clone();
    let flaky = tool("flaky", move |_, _| {
        let c = c.clone();
        async move {
            let n = {
                let mut v = c.lock().unwrap();
                v.push(Instant::now());
                v.len()
            };
            if n < 3 {
                Err(bear_core::Error::backend(
                    bear_core::ErrorKind::Unavailable,
                    "not yet",
                ))
            } else {
                Ok(json!({"call": n}))
            }
        }
    });
    let log = Log::default();
    let mut tools = crate::standard_tools(&log);
    tools.insert(flaky.0, flaky.1);
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Registry::with_default_agents(),
        Backends {
            tools,
            ..Backends::default()
        },
        EventBus::default(),
        fast_config(),
    );
    let w = workflow(json!({"name": "retry", "on_failure": "continue", "steps": [
        {"id": "flaky", "type": "tool_execution", "retries": 3, "parameters": {"tool": "flaky"}},
        {"id": "hung", "type": "tool_execution", "timeout": 0.3, "retries": 1, "parameters": {"tool": "hang"}},
    ]}));
    let h = engine.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    assert_eq!(h.wait().await.unwrap(), RunStatus::Failed);
    let p = engine.progress(&id).await.unwrap();
    let flaky = &p.steps[0];
    assert_eq!(flaky.status, StepStatus::Completed);
    assert_eq!(flaky.attempts, 3);
    assert_eq!(flaky.output, Some(json!({"call": 3})));
    let t = calls.lock().unwrap().clone();
    let (gap1, gap2) = (t[1] - t[0], t[2] - t[1]);
    assert!(gap1 >= Duration::from_millis(20), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(40), "{gap2:?}");
    // A retried attempt goes to another capable agent when there is one.
    let hung = &p.steps[1];
    assert_eq!(hung.status, StepStatus::Failed);
    assert_eq!(hung.attempts, 2);
    assert!(
        hung.error.as_deref().unwrap().starts_with("timeout"),
        "{hung:?}"
    );
}

fn policy_workflow(policy: &str) -> bear_agents::Workflow {
    workflow(json!({"name": "policy", "on_failure": policy, "steps": [
        {"id": "bad", "type": "tool_execution", "parameters": {"tool": "fail"}},
        {"id": "after_bad", "type": "tool_execution", "depends_on": ["bad"], "parameters": {"tool": "echo"}},
        {"id": "slow", "type": "tool_execution", "parameters": {"tool": "sleep", "input": {"ms": 300}}},
        {"id": "after_slow", "type": "tool_execution", "depends_on": ["slow"], "parameters": {"tool": "echo"}},
    ]}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_stops_everything_continue_finishes_independent_branches() {
    let engine = memory_engine(&Log::default());
    let status_of = |p: &bear_agents::Progress| -> HashMap<String, StepStatus> {
        p.steps
            .iter()
            .map(|s| (s.id.to_string(), s.status))
            .collect()
    };

    let h = engine
        .start(policy_workflow("fail_fast"), BTreeMap::new())
        .await
        .unwrap();
    let id = h.id.clone();
    assert_eq!(h.wait().await.unwrap(), RunStatus::Failed);
    let s = status_of(&engine.progress(&id).await.unwrap());
    assert_eq!(s["bad"], StepStatus::Failed);
    assert_eq!(s["after_bad"], StepStatus::Skipped);
    assert_eq!(
        s["slow"],
        StepStatus::Skipped,
        "fail-fast cancels running steps"
    );
    assert_eq!(s["after_slow"], StepStatus::Skipped);

    let h = engine
        .start(policy_workflow("continue"), BTreeMap::new())
        .await
        .unwrap();
    let id = h.id.clone();
    assert_eq!(h.wait().await.unwrap(), RunStatus::Failed);
    let p = engine.progress(&id).await.unwrap();
    let s = status_of(&p);
    assert_eq!(s["bad"], StepStatus::Failed);
    assert_eq!(s["after_bad"], StepStatus::Skipped);
    assert_eq!(s["slow"], StepStatus::Completed);
    assert_eq!(s["after_slow"], StepStatus::Completed);
    assert_eq!((p.completed, p.total), (2, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_running_steps_and_starts_no_new_one() {
    let log = Log::default();
    let engine = memory_engine(&log);
    let w = workflow(json!({"name": "cancel", "steps": [
        {"id": "long", "type": "tool_execution", "parameters": {"tool": "sleep", "input": {"ms": 60000}}},
        {"id": "next", "type": "tool_execution", "depends_on": ["long"], "parameters": {"tool": "echo", "input": {"id": "next"}}},
    ]}));
    let h = engine.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    wait_for(&engine, &id, |p| p.steps[0].status == StepStatus::Running).await;
    let t = Instant::now();
    engine.cancel(&id).await.unwrap();
    assert_eq!(h.wait().await.unwrap(), RunStatus::Cancelled);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "cancel must not wait for the step"
    );
    let p = engine.progress(&id).await.unwrap();
    assert_eq!(p.status, RunStatus::Cancelled);
    assert!(
        p.steps.iter().all(|s| s.status == StepStatus::Skipped),
        "{p:?}"
    );
    assert!(log.items().is_empty(), "the dependent step never started");

    // Cancelling (or pausing) a finished run is a typed error, not a hang.
    let e = engine.cancel(&id).await.unwrap_err();
    assert!(matches!(e, Error::RunState { .. }), "{e}");
    assert!(e.to_string().contains("already finished"), "{e}");
    let unknown = bear_core::RunId::new("run-nope").unwrap();
    assert!(matches!(
        engine.cancel(&unknown).await,
        Err(Error::RunNotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_new_steps_and_resume_finishes() {
    let log = Log::default();
    let engine = memory_engine(&log);
    let w = workflow(json!({"name": "pause", "steps": [
        {"id": "first", "type": "tool_execution", "parameters": {"tool": "sleep", "input": {"ms": 200}}},
        {"id": "second", "type": "tool_execution", "depends_on": ["first"], "parameters": {"tool": "echo", "input": {"id": "second"}}},
    ]}));
    let h = engine.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    wait_for(&engine, &id, |p| p.steps[0].status == StepStatus::Running).await;
    engine.pause(&id).await.unwrap();
    wait_for(&engine, &id, |p| p.steps[0].status == StepStatus::Completed).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p = engine.progress(&id).await.unwrap();
    assert_eq!(p.status, RunStatus::Paused);
    assert_eq!(p.steps[1].status, StepStatus::Pending);
    assert!(log.items().is_empty());
    assert!(
        engine.resume(&id).await.unwrap().is_none(),
        "resumed in place"
    );
    assert_eq!(h.wait().await.unwrap(), RunStatus::Completed);
    assert_eq!(log.items(), ["start second", "end second"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_steps_fail_alone_with_typed_errors() {
    let mut config = fast_config();
    config.max_output_bytes = 1000;
    let engine = crate::engine_with(Arc::new(MemoryStore::new()), &Log::default(), config);
    let w = workflow(json!({"name": "bad", "on_failure": "continue", "steps": [
        {"id": "panics", "type": "tool_execution", "parameters": {"tool": "panic"}},
        {"id": "bad_json", "type": "tool_execution", "parameters": {"tool": "bad_json"}},
        {"id": "too_big", "type": "tool_execution", "parameters": {"tool": "big", "input": {"bytes": 5000}}},
        {"id": "parse", "type": "data_processing", "parameters": {"operation": "parse_json", "text": "{not json"}},
        {"id": "undefined", "type": "data_processing", "parameters": {"operation": "template", "text": "{{ steps.fine.output.nope }}"}},
        {"id": "fine", "type": "data_processing", "parameters": {"operation": "merge", "values": {"a": 1}}},
    ]}));
    let h = engine.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    assert_eq!(h.wait().await.unwrap(), RunStatus::Failed);
    let p = engine.progress(&id).await.unwrap();
    let err = |i: usize| p.steps[i].error.clone().unwrap_or_default();
    assert!(
        err(0).starts_with("internal") && err(0).contains("panicked"),
        "{}",
        err(0)
    );
    assert!(
        err(1).starts_with("sandbox") && err(1).contains("JSON"),
        "{}",
        err(1)
    );
    assert!(
        err(2).contains("too large") && err(2).contains("1000"),
        "{}",
        err(2)
    );
    assert!(
        err(3).starts_with("invalid_request") && err(3).contains("not valid JSON"),
        "{}",
        err(3)
    );
    assert!(err(4).contains("parameters.text"), "{}", err(4));
    assert_eq!(p.steps[5].status, StepStatus::Completed);
    assert_eq!(p.steps[5].output, Some(json!({"a": 1})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_carry_outputs_and_inputs_and_files_stay_in_their_root() {
    let root = tempfile::tempdir().unwrap();
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Registry::with_default_agents(),
        Backends {
            files_root: Some(root.path().to_path_buf()),
            ..Backends::default()
        },
        EventBus::default(),
        fast_config(),
    );
    let w = workflow(
        json!({"name": "refs", "inputs": {"who": {}, "n": {"default": 3}}, "steps": [
        {"id": "obj", "type": "data_processing", "parameters": {"operation": "merge", "values": {"who": "{{ inputs.who }}", "n": "{{ inputs.n }}"}}},
        {"id": "pick", "type": "data_processing", "parameters": {"operation": "select", "value": "{{ steps.obj.output }}", "pointer": "/n"}},
        {"id": "text", "type": "data_processing", "parameters": {"operation": "template", "text": "{{ steps.obj.output.who | upper }} x{{ steps.pick.output }}"}},
        {"id": "write", "type": "file_operations", "parameters": {"operation": "write", "path": "out/report.txt", "content": "{{ steps.text.output }}"}},
        {"id": "read", "type": "file_operations", "depends_on": ["write"], "parameters": {"operation": "read", "path": "out/report.txt"}},
        {"id": "list", "type": "file_operations", "depends_on": ["write"], "parameters": {"operation": "list", "path": "out"}},
        {"id": "matches", "type": "data_processing", "parameters": {"operation": "regex_extract", "text": "{{ steps.read.output.text }}", "pattern": "x(\\d)"}},
        {"id": "escape", "type": "file_operations", "parameters": {"operation": "read", "path": "../../etc/passwd"}},
    ], "on_failure": "continue"}),
    );
    let inputs = BTreeMap::from([("who".to_string(), json!("counsel"))]);
    let h = engine.start(w, inputs).await.unwrap();
    let id = h.id.clone();
    h.wait().await.unwrap();
    let p = engine.progress(&id).await.unwrap();
    assert_eq!(
        p.results["obj"],
        json!({"who": "counsel", "n": 3}),
        "whole references keep types"
    );
    assert_eq!(p.results["pick"], json!(3));
    assert_eq!(p.results["text"], json!("COUNSEL x3"));
    assert_eq!(p.results["read"]["text"], json!("COUNSEL x3"));
    assert_eq!(p.results["list"], json!(["report.txt"]));
    assert_eq!(p.results["matches"], json!(["3"]));
    assert_eq!(
        std::fs::read_to_string(root.path().join("out/report.txt")).unwrap(),
        "COUNSEL x3"
    );
    let escape = p.steps.iter().find(|s| s.id.as_str() == "escape").unwrap();
    assert_eq!(escape.status, StepStatus::Failed);
    assert!(
        escape.error.as_deref().unwrap().contains("without `..`"),
        "{escape:?}"
    );
    assert_eq!(p.status, RunStatus::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_is_published() {
    let engine = memory_engine(&Log::default());
    let mut rx = engine.bus().subscribe();
    let w = workflow(json!({"name": "events", "steps": [
        {"id": "a", "type": "tool_execution", "parameters": {"tool": "echo"}},
        {"id": "b", "type": "tool_execution", "depends_on": ["a"], "parameters": {"tool": "echo"}},
    ]}));
    let h = engine.start(w, BTreeMap::new()).await.unwrap();
    let run = h.id.clone();
    h.wait().await.unwrap();
    let mut seen = Vec::new();
    while let Ok(e) = rx.try_recv() {
        match e {
            Event::StepChanged {
                run: r,
                step,
                status,
            } if r == run => seen.push(format!("{step}:{}", status.as_str())),
            Event::RunChanged { run: r, status } if r == run => {
                seen.push(format!("run:{}", status.as_str()))
            }
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [
            "run:running",
            "a:running",
            "a:completed",
            "b:running",
            "b:completed",
            "run:completed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_declaring_an_idempotency_key_receive_the_steps_key() {
    let seen = Log::default();
    let s = seen.clone();
    let keyed = crate::tool_with_schema(
        "keyed",
        json!({"type": "object", "properties": {"idempotency_key": {"type": "string"}}}),
        move |v, _| {
            let s = s.clone();
            async move {
                s.push(
                    v["idempotency_key"]
                        .as_str()
                        .unwrap_or("missing")
                        .to_string(),
                );
                Ok(json!(true))
            }
        },
    );
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Registry::with_default_agents(),
        Backends {
            tools: [keyed].into_iter().collect(),
            ..Backends::default()
        },
        EventBus::default(),
        fast_config(),
    );
    let w = workflow(
        json!({"name": "k", "steps": [{"id": "k1", "type": "tool_execution", "parameters": {"tool": "keyed"}}]}),
    );
    let h = engine.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    h.wait().await.unwrap();
    assert_eq!(seen.items(), [format!("{id}/k1")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_and_registry_see_the_work() {
    let engine = memory_engine(&Log::default());
    let w = workflow(json!({"name": "m", "on_failure": "continue", "steps": [
        {"id": "a", "type": "tool_execution", "agent": "executor-2", "parameters": {"tool": "echo"}},
        {"id": "b", "type": "tool_execution", "agent": "executor", "parameters": {"tool": "fail"}},
    ]}));
    let h = engine.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    h.wait().await.unwrap();
    let p = engine.progress(&id).await.unwrap();
    assert_eq!(p.steps[0].agent.as_ref().unwrap().as_str(), "executor-2");
    let report = engine.monitor().report();
    let tools = &report.steps["tool_execution"];
    assert_eq!((tools.attempts, tools.failures), (2, 1));
    let agents: HashMap<String, _> = engine
        .registry()
        .list()
        .into_iter()
        .map(|a| (a.spec.id.to_string(), a))
        .collect();
    assert_eq!(agents["executor-2"].performance_metrics.completed, 1);
    assert!(agents.values().all(|a| a.load == 0));
}

/// Polls a run's progress until `done` holds (at most 30 s).
pub(crate) async fn wait_for(
    engine: &Engine,
    run: &bear_core::RunId,
    done: impl Fn(&bear_agents::Progress) -> bool,
) {
    for _ in 0..3000 {
        if let Ok(p) = engine.progress(run).await
            && done(&p)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the run never reached the expected state");
}
