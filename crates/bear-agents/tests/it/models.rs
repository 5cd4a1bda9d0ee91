//! Steps and patterns on the real stack: SmolLM2 through llama.cpp, bear-security's scrubber,
//! a contract from the demo corpus.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bear_agents::roles::legal_config;
use bear_agents::{
    AgentKind, AgentSpec, Backends, Coordinator, Engine, MemoryStore, Registry, Task, patterns,
};
use bear_core::{
    Dirs, EventBus, ModelId, PiiConfig, PiiScrubber, RunStatus, StepStatus, TextGenerator, assets,
};
use bear_models::{LlamaCppGenerator, LlamaOptions};
use serde_json::json;

use crate::{fast_config, workflow};

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1";

fn generator() -> Arc<dyn TextGenerator> {
    static G: OnceLock<Arc<LlamaCppGenerator>> = OnceLock::new();
    G.get_or_init(|| {
        let dirs = Dirs::from_env(|k| std::env::var_os(k)).unwrap();
        let path = dirs.models_dir.join(assets::SMOLLM2_GGUF);
        assert!(path.exists(), "{}", assets::missing_hint(&path));
        Arc::new(
            LlamaCppGenerator::load(
                ModelId::new(MODEL).unwrap(),
                &path,
                LlamaOptions {
                    context_length: 2048,
                    ..LlamaOptions::default()
                },
            )
            .unwrap(),
        )
    })
    .clone()
}

fn scrubber() -> Arc<dyn PiiScrubber> {
    Arc::new(bear_security::Scrubber::replacing(&PiiConfig::default()).unwrap())
}

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/corpus")
}

fn engine(registry: Registry) -> Engine {
    Engine::new(
        Arc::new(MemoryStore::new()),
        registry,
        Backends {
            generator: Some(generator()),
            default_model: Some(ModelId::new(MODEL).unwrap()),
            scrubber: Some(scrubber()),
            files_root: Some(corpus()),
            ..Backends::default()
        },
        EventBus::default(),
        fast_config(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_generation_steps_run_on_smollm2_reproducibly() {
    let engine = engine(Registry::with_default_agents());
    let w = || {
        workflow(json!({"name": "gen", "steps": [
            {"id": "q", "type": "llm_generation", "parameters": {"prompt": "Name one duty of a tenant.", "max_tokens": 12}},
            {"id": "chat", "type": "llm_generation", "agent": "legal-specialist", "parameters": {
                "messages": [{"role": "user", "content": "Say the word contract."}], "max_tokens": 8, "stop": ["\n"]}},
        ]}))
    };
    let mut texts = Vec::new();
    for _ in 0..2 {
        let h = engine.start(w(), BTreeMap::new()).await.unwrap();
        let id = h.id.clone();
        assert_eq!(h.wait().await.unwrap(), RunStatus::Completed);
        let p = engine.progress(&id).await.unwrap();
        let q = &p.results["q"];
        assert!(!q["text"].as_str().unwrap().trim().is_empty());
        assert!(q["completion_tokens"].as_u64().unwrap() <= 12);
        assert!(q["prompt_tokens"].as_u64().unwrap() > 5);
        assert!(!p.results["chat"]["text"].as_str().unwrap().contains('\n'));
        texts.push((q["text"].clone(), p.results["chat"]["text"].clone()));
    }
    assert_eq!(texts[0], texts[1], "greedy decoding is reproducible");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_agents_work_is_reassigned() {
    let registry = Registry::with_default_agents();
    let mut broken = AgentSpec::new("executor-broken", AgentKind::Executor, &["*"]).unwrap();
    broken.config.model = Some(ModelId::new("no-such-model").unwrap());
    registry.register(broken).unwrap();
    let engine = engine(registry);
    let w = workflow(json!({"name": "reassign", "steps": [
        {"id": "g", "type": "llm_generation", "agent": "executor-broken", "retries": 1,
         "parameters": {"prompt": "Say yes.", "max_tokens": 4}},
    ]}));
    let h = engine.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    assert_eq!(h.wait().await.unwrap(), RunStatus::Completed);
    let p = engine.progress(&id).await.unwrap();
    let g = &p.steps[0];
    assert_eq!(g.status, StepStatus::Completed);
    assert_eq!(g.attempts, 2);
    let agent = g.agent.as_ref().unwrap().as_str().to_string();
    // The best-scoring capable agent took it over (the specialist names the step type).
    assert_ne!(agent, "executor-broken");
    let broken = engine
        .registry()
        .get(&bear_core::AgentId::new("executor-broken").unwrap())
        .unwrap();
    assert_eq!(broken.performance_metrics.failed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_checks_schema_regex_pii_and_judgement() {
    let engine = engine(Registry::with_default_agents());
    let w = workflow(
        json!({"name": "checks", "on_failure": "continue", "steps": [
            {"id": "good", "type": "validation", "parameters": {
                "input": {"term": "12 months"}, "non_empty": true, "regex": "months",
                "schema": {"type": "object", "required": ["term"]}}},
            {"id": "bad_schema", "type": "validation", "parameters": {
                "input": {"term": 12}, "schema": {"type": "object", "properties": {"term": {"type": "string"}}}}},
            {"id": "pii", "type": "validation", "parameters": {
                "input": "Mail jane.roe@example.com today", "pii_free": true}},
            {"id": "judged", "type": "validation", "parameters": {
                "input": "The tenant pays rent monthly.", "judge": {"criteria": "it mentions rent"}, "on_invalid": "report"}},
        ]}),
    );
    let h = engine.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    h.wait().await.unwrap();
    let p = engine.progress(&id).await.unwrap();
    assert_eq!(p.results["good"]["valid"], json!(true));
    let bad = p.steps[1].error.clone().unwrap();
    assert!(bad.contains("/term") && !bad.contains("12"), "{bad}");
    let pii = p.steps[2].error.clone().unwrap();
    assert!(pii.contains("EMAIL") && !pii.contains("jane"), "{pii}");
    let judged = &p.results["judged"];
    assert!(
        ["yes", "no"].contains(&judged["judgement"].as_str().unwrap()),
        "{judged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_patterns_analyse_a_contract() {
    let engine = engine(Registry::with_default_agents());

    // Delegation: two analyses in parallel on the specialist, aggregated, validated.
    let coordinator = Coordinator::new(legal_config());
    let task = Task {
        kind: "legal_document_analysis".into(),
        document: "supply-agreement.txt".into(),
        requirements: vec!["term_extraction".into(), "risk_assessment".into()],
    };
    let out = patterns::delegation(&engine, &coordinator, &task)
        .await
        .unwrap();
    assert_eq!(out.status, RunStatus::Completed, "{:?}", out.progress);
    let agg = out.result.unwrap();
    for key in ["term_extraction", "risk_assessment"] {
        assert!(!agg[key].as_str().unwrap().trim().is_empty(), "{agg}");
    }
    let by_step = |id: &str| {
        out.progress
            .steps
            .iter()
            .find(|s| s.id.as_str() == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_step("term_extraction").agent.unwrap().as_str(),
        "legal-specialist"
    );
    assert_eq!(by_step("aggregate").agent.unwrap().as_str(), "coordinator");
    assert_eq!(by_step("validate").agent.unwrap().as_str(), "validator");
    let unknown = Task {
        requirements: vec!["astrology".into()],
        ..task.clone()
    };
    assert!(
        coordinator
            .decompose(&unknown)
            .unwrap_err()
            .to_string()
            .contains("astrology")
    );

    // Pipeline: extract, scrub, analyse, validate, format.
    let out = patterns::pipeline(&engine, "supply-agreement.txt", 48)
        .await
        .unwrap();
    assert_eq!(out.status, RunStatus::Completed, "{:?}", out.progress);
    let report = out.result.unwrap();
    let report = report.as_str().unwrap();
    assert!(
        report.starts_with("# Analysis of supply-agreement.txt"),
        "{report}"
    );
    assert!(report.contains("Checks passed: true"), "{report}");

    // Collaboration: parallel research, a draft, one review-and-refine round.
    let out = patterns::collaborative(
        &engine,
        "supply-agreement.txt",
        &[
            "What does the supplier deliver?",
            "When can the contract end?",
        ],
        1,
        32,
    )
    .await
    .unwrap();
    assert_eq!(out.status, RunStatus::Completed, "{:?}", out.progress);
    assert!(!out.result.unwrap().as_str().unwrap().trim().is_empty());
    let ids: Vec<&str> = out.progress.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "context",
            "shared",
            "research_0",
            "research_1",
            "draft_0",
            "review_1",
            "draft_1",
            "final"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_plans_with_the_model() {
    let engine = engine(Registry::with_default_agents());
    let coordinator = Coordinator::new(legal_config());
    let task = Task {
        kind: "legal_document_analysis".into(),
        document: "mutual-nda.md".into(),
        requirements: vec!["risk_assessment".into()],
    };
    let w = coordinator
        .decompose_with_llm(
            &*generator(),
            ModelId::new(MODEL).unwrap(),
            &task,
            "what are the risks in this NDA and what terms does it set?",
        )
        .await
        .unwrap();
    // Whatever the model chose, the plan is a valid workflow of known analyses.
    let plan = engine.validate(&w).unwrap();
    let known = coordinator.known_requirements();
    let analyses: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| s.kind == bear_agents::StepKind::LlmGeneration)
        .map(|s| s.id.as_str())
        .collect();
    assert!(!analyses.is_empty());
    assert!(
        analyses.iter().all(|a| known.iter().any(|k| k == a)),
        "{analyses:?}"
    );
}
