//! Parsing and validation of workflow definitions: every problem at once, with its path.

use std::time::Duration;

use bear_agents::{Catalog, Error, Registry, Workflow};
use serde_json::json;

fn catalog() -> Catalog {
    Catalog {
        agents: Registry::with_default_agents().specs(),
        tools: ["echo".to_string()].into_iter().collect(),
        has_generator: true,
        has_retriever: false,
        has_scrubber: true,
        default_timeout: Duration::from_secs(30),
    }
}

fn problems(w: &Workflow) -> Vec<String> {
    match w.validate(&catalog()) {
        Err(Error::Invalid { problems }) => problems.0.iter().map(|p| p.to_string()).collect(),
        other => panic!("expected validation problems, got {other:?}"),
    }
}

const YAML: &str = r#"
name: contract review
description: read, scrub, summarise
inputs:
  document: {description: the contract}
steps:
  - id: read
    type: file_operations
    agent: executor
    parameters: {operation: read, path: "{{ inputs.document }}"}
  - id: scrub
    type: pii_scrub
    parameters: {text: "{{ steps.read.output.text }}"}
  - id: summary
    type: llm_generation
    agent: legal-specialist
    depends_on: [scrub]
    timeout: 60
    retries: 2
    parameters: {prompt: "Summarise: {{ steps.scrub.output.text }}", max_tokens: 32, seed: 7}
"#;

#[test]
fn yaml_and_json_parse_to_the_same_plan() {
    let from_yaml = Workflow::parse(YAML).unwrap();
    let json_text = serde_json::to_string(&from_yaml).unwrap();
    let from_json = Workflow::parse(&json_text).unwrap();
    assert_eq!(from_yaml, from_json);
    let plan = from_yaml.validate(&catalog()).unwrap();
    assert_eq!(plan.steps.len(), 3);
    // `scrub` depends on `read` only through its reference.
    assert_eq!(plan.steps[1].deps, vec![0]);
    assert_eq!(plan.steps[2].deps, vec![1]);
    assert_eq!(plan.steps[2].retries, 2);
    assert_eq!(plan.steps[2].timeout, Duration::from_secs(60));
}

#[test]
fn malformed_documents_are_parse_errors_with_a_position() {
    let e = Workflow::parse("name: x\nsteps:\n  - id: a\n    type: [unclosed\n").unwrap_err();
    assert!(matches!(e, Error::Parse { .. }), "{e}");
    assert!(e.to_string().contains("line"), "{e}");

    let e = Workflow::parse("{\"name\": \"x\", \"steps\": [}").unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");

    // Wrong shapes name the field; quoted values (possibly prompts) are not echoed.
    let e =
        Workflow::parse("name: x\nsteps:\n  - id: a\n    type: echo\n    retries: \"Jane Roe\"\n")
            .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("steps[0].retries"), "{msg}");
    assert!(!msg.contains("Jane"), "{msg}");

    let e = Workflow::parse("name: x\nstepz: []\n").unwrap_err();
    assert!(e.to_string().contains("stepz"), "{e}");
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let w: Workflow = serde_json::from_value(json!({
        "name": "broken",
        "steps": [
            {"id": "a", "type": "data_processing", "parameters": {"operation": "template", "text": "{{ steps.ghost.output }}"}},
            {"id": "a", "type": "data_processing", "parameters": {"operation": "template", "text": "x"}},
            {"id": "b", "type": "teleport"},
            {"id": "c", "type": "llm_generation", "agent": "nobody", "parameters": {"prompt": "hi"}},
            {"id": "d", "type": "llm_generation", "parameters": {"max_tokens": 0}},
            {"id": "e", "type": "tool_execution", "depends_on": ["zzz"], "parameters": {"tool": "nope"}},
            {"id": "f", "type": "validation", "parameters": {"input": "x", "regex": "("}},
            {"id": "g", "type": "data_processing", "parameters": {"operation": "template", "text": "{{ inputs.missing }}"}},
            {"id": "h", "type": "rag_query", "parameters": {"collection": "c", "query": "q"}},
            {"id": "i", "type": "llm_generation", "timeout": -1, "retries": 99, "parameters": {"prompt": "x", "colour": 1}},
        ]
    }))
    .unwrap();
    let p = problems(&w);
    let has = |path: &str, words: &str| {
        assert!(
            p.iter().any(|x| x.starts_with(path) && x.contains(words)),
            "no `{path}` problem mentioning `{words}` in:\n{}",
            p.join("\n")
        )
    };
    has("steps[0].parameters.text", "unknown step `ghost`");
    has("steps[1].id", "duplicate id `a`");
    has("steps[2].type", "unknown step type `teleport`");
    has("steps[3].agent", "unknown agent `nobody`");
    has("steps[4].parameters", "`prompt` or `messages` is required");
    has("steps[5].depends_on[0]", "unknown step `zzz`");
    has("steps[5].parameters", "unknown tool `nope`");
    has("steps[6].parameters", "regex");
    has("steps[7].parameters.text", "unknown input `missing`");
    has("steps[8].parameters", "no retriever");
    has("steps[9].timeout", "seconds");
    has("steps[9].retries", "at most 10");
    has("steps[9].parameters", "colour");
    assert!(p.len() >= 13, "{}", p.join("\n"));
}

#[test]
fn cycles_are_named() {
    let w: Workflow = serde_json::from_value(json!({
        "name": "loop",
        "steps": [
            {"id": "start", "type": "data_processing", "parameters": {"operation": "template", "text": "s"}},
            {"id": "a", "type": "data_processing", "depends_on": ["start", "c"], "parameters": {"operation": "template", "text": "a"}},
            {"id": "b", "type": "data_processing", "depends_on": ["a"], "parameters": {"operation": "template", "text": "b"}},
            {"id": "c", "type": "data_processing", "parameters": {"operation": "template", "text": "{{ steps.b.output }}"}},
        ]
    }))
    .unwrap();
    let p = problems(&w);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("dependency cycle"), "{}", p[0]);
    for id in ["a", "b", "c"] {
        assert!(p[0].contains(id), "{}", p[0]);
    }
    assert!(!p[0].contains("start"), "{}", p[0]);

    let self_loop: Workflow = serde_json::from_value(json!({
        "name": "self",
        "steps": [{"id": "a", "type": "data_processing", "depends_on": ["a"], "parameters": {"operation": "template", "text": "a"}}]
    }))
    .unwrap();
    assert!(problems(&self_loop)[0].contains("cannot depend on itself"));
}

#[test]
fn inputs_are_checked_when_a_run_starts() {
    let w = Workflow::parse(YAML).unwrap();
    let e = w.resolve_inputs(&Default::default()).unwrap_err();
    assert!(e.to_string().contains("input `document`"), "{e}");
    let e = w
        .resolve_inputs(&[("other".to_string(), json!("x"))].into_iter().collect())
        .unwrap_err();
    assert!(e.to_string().contains("no such input"), "{e}");
}

#[test]
fn a_ten_thousand_step_tree_validates() {
    let steps: Vec<_> = (0..10_000)
        .map(|i| {
            let deps: Vec<String> = if i == 0 {
                vec![]
            } else {
                vec![format!("s{}", (i - 1) / 2)]
            };
            json!({"id": format!("s{i}"), "type": "data_processing", "depends_on": deps,
                   "parameters": {"operation": "merge", "values": {}}})
        })
        .collect();
    let w: Workflow = serde_json::from_value(json!({"name": "big", "steps": steps})).unwrap();
    let plan = w.validate(&catalog()).unwrap();
    assert_eq!(plan.steps.len(), 10_000);
    assert_eq!(plan.dependents[0], vec![1, 2]);
    assert_eq!(plan.steps[9_999].deps, vec![4_999]);
}

#[test]
fn references_anywhere_in_an_expression_become_dependencies() {
    let w: Workflow = serde_json::from_value(json!({
        "name": "refs",
        "steps": [
            {"id": "a-b", "type": "data_processing", "parameters": {"operation": "template", "text": "x"}},
            {"id": "long", "type": "data_processing", "parameters": {"operation": "template", "text": "y"}},
            {"id": "use", "type": "data_processing", "parameters": {"operation": "template",
                "text": "{{ steps[\"a-b\"].output | upper }} {{ steps.long.output[:10] }} {% if steps.long.output %}!{% endif %}"}},
            {"id": "bad", "type": "data_processing", "parameters": {"operation": "template",
                "text": "{{ secrets.key }} {{ steps.long.status }}"}},
        ]
    }))
    .unwrap();
    let p = problems(&w);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].contains("unknown reference `secrets`"), "{p:?}");
    assert!(p[1].contains("steps expose only `output`"), "{p:?}");
    let mut ok = w.clone();
    ok.steps.pop();
    let plan = ok.validate(&catalog()).unwrap();
    assert_eq!(plan.steps[2].deps, vec![0, 1]);
}

#[test]
fn needs_name_the_backends_the_steps_use() {
    let w = |steps: serde_json::Value| {
        Workflow::from_json(&json!({"name": "n", "steps": steps}).to_string()).unwrap()
    };
    let none = w(json!([{"id": "a", "type": "data_processing",
                          "parameters": {"operation": "template", "text": "x"}}]));
    assert_eq!(none.needs(), bear_agents::Needs::default());
    let all = w(json!([
        {"id": "g", "type": "llm_generation", "parameters": {"prompt": "p"}},
        {"id": "r", "type": "rag_query", "parameters": {"query": "q"}},
        {"id": "t", "type": "tool_execution", "parameters": {"tool": "echo.echo"}},
        {"id": "v", "type": "validation", "parameters": {"input": "x", "pii_free": true}}
    ]));
    let n = all.needs();
    assert!(n.generator && n.retriever && n.tools && n.scrubber, "{n:?}");
    let judged = w(json!([{"id": "v", "type": "validation",
                            "parameters": {"input": "x", "judge": "is it polite?"}}]));
    let n = judged.needs();
    assert!(n.generator && !n.scrubber, "{n:?}");
}
