//! The seed's three agent interaction patterns, as library functions over an [`Engine`].
//!
//! Each builds a workflow and runs it on the engine, so every pattern gets what any run gets:
//! agent selection by the load balancer, retries, persistence, events and progress.
//!
//! - [`delegation`]: the coordinator decomposes a task, specialists run the analyses in
//!   parallel, the coordinator aggregates, the validator checks.
//! - [`pipeline`]: extract, scrub, analyse, validate, format, one stage after the other.
//! - [`collaborative`]: a shared context, parallel research, then a draft that is reviewed and
//!   refined for N iterations.

use std::collections::BTreeMap;

use bear_core::RunStatus;
use serde::Serialize;
use serde_json::{Value, json};

use crate::definition::{FailurePolicy, StepKind, Workflow};
use crate::engine::{Engine, Progress};
use crate::error::Result;
use crate::roles::{Coordinator, Task, input, step};

/// What a pattern produced.
#[derive(Debug, Clone, Serialize)]
pub struct PatternOutcome {
    /// The run's final status.
    pub status: RunStatus,
    /// The pattern's result: the aggregate, the formatted report or the final draft.
    pub result: Option<Value>,
    /// The whole run, step by step (agents, timings, outputs).
    pub progress: Progress,
}

async fn run(
    engine: &Engine,
    workflow: Workflow,
    inputs: BTreeMap<String, Value>,
    result_step: &str,
) -> Result<PatternOutcome> {
    let handle = engine.start(workflow, inputs).await?;
    let id = handle.id.clone();
    let status = handle.wait().await?;
    let progress = engine.progress(&id).await?;
    let result = progress.results.get(result_step).cloned();
    Ok(PatternOutcome {
        status,
        result,
        progress,
    })
}

/// Task delegation: decompose, assign by capability, run in parallel, aggregate, validate.
/// The result is the aggregate (one text per requirement); the run fails if validation does.
pub async fn delegation(
    engine: &Engine,
    coordinator: &Coordinator,
    task: &Task,
) -> Result<PatternOutcome> {
    let workflow = coordinator.decompose(task)?;
    run(engine, workflow, BTreeMap::new(), "aggregate").await
}

/// Pipeline: extract the document's text, scrub its PII, analyse it with the specialist,
/// validate the analysis (non-empty, PII-free) and format a report. The result is the report.
pub async fn pipeline(engine: &Engine, document: &str, max_tokens: u32) -> Result<PatternOutcome> {
    let workflow = Workflow {
        name: "pipeline".into(),
        description: "extract, scrub, analyse, validate, format".into(),
        inputs: BTreeMap::from([(
            "document".into(),
            input("the document, under the files root"),
        )]),
        on_failure: FailurePolicy::FailFast,
        steps: vec![
            step(
                "extract",
                StepKind::FileOperations,
                None,
                json!({"operation": "read", "path": "{{ inputs.document }}"}),
                &[],
            ),
            step(
                "scrub",
                StepKind::PiiScrub,
                None,
                json!({"text": "{{ steps.extract.output.text }}"}),
                &[],
            ),
            step(
                "analyse",
                StepKind::LlmGeneration,
                Some("specialist"),
                json!({
                    "prompt": "Summarise the obligations of each party in this contract, one short line each.\n\n{{ steps.scrub.output.text[:3000] }}",
                    "max_tokens": max_tokens,
                }),
                &[],
            ),
            step(
                "validate",
                StepKind::Validation,
                Some("validator"),
                json!({"input": "{{ steps.analyse.output.text }}", "non_empty": true, "pii_free": true}),
                &[],
            ),
            step(
                "format",
                StepKind::DataProcessing,
                None,
                json!({
                    "operation": "template",
                    "text": "# Analysis of {{ inputs.document }}\n\nPII found and scrubbed: {{ steps.scrub.output.counts | tojson }}\n\n{{ steps.analyse.output.text }}\n\nChecks passed: {{ steps.validate.output.valid | tojson }}\n",
                }),
                &[],
            ),
        ],
    };
    let inputs = BTreeMap::from([("document".to_string(), Value::String(document.into()))]);
    run(engine, workflow, inputs, "format").await
}

/// Collaboration: research questions answered in parallel into a shared context, a draft
/// written from it, then `iterations` rounds of review and refinement. The result is the final
/// draft's text.
pub async fn collaborative(
    engine: &Engine,
    document: &str,
    questions: &[&str],
    iterations: usize,
    max_tokens: u32,
) -> Result<PatternOutcome> {
    let mut steps = vec![
        step(
            "context",
            StepKind::FileOperations,
            None,
            json!({"operation": "read", "path": "{{ inputs.document }}"}),
            &[],
        ),
        step(
            "shared",
            StepKind::PiiScrub,
            None,
            json!({"text": "{{ steps.context.output.text }}"}),
            &[],
        ),
    ];
    let mut research = Vec::new();
    for (i, q) in questions.iter().enumerate() {
        let id = format!("research_{i}");
        steps.push(step(
            &id,
            StepKind::LlmGeneration,
            None,
            json!({
                "prompt": format!("{q}\n\n{{{{ steps.shared.output.text[:2500] }}}}"),
                "max_tokens": max_tokens,
            }),
            &[],
        ));
        research.push(id);
    }
    let notes: String = research
        .iter()
        .map(|id| format!("- {{{{ steps.{id}.output.text }}}}\n"))
        .collect();
    steps.push(step(
        "draft_0",
        StepKind::LlmGeneration,
        Some("specialist"),
        json!({
            "prompt": format!("Write a short memo for the client from these research notes:\n{notes}"),
            "max_tokens": max_tokens,
        }),
        &[],
    ));
    for n in 1..=iterations {
        let prev = format!("draft_{}", n - 1);
        steps.push(step(
            &format!("review_{n}"),
            StepKind::LlmGeneration,
            Some("specialist"),
            json!({
                "prompt": format!("Review this memo and name one thing to improve:\n\n{{{{ steps.{prev}.output.text }}}}"),
                "max_tokens": max_tokens,
            }),
            &[],
        ));
        steps.push(step(
            &format!("draft_{n}"),
            StepKind::LlmGeneration,
            Some("specialist"),
            json!({
                "prompt": format!(
                    "Improve the memo following the review.\n\nMemo:\n{{{{ steps.{prev}.output.text }}}}\n\nReview:\n{{{{ steps.review_{n}.output.text }}}}"
                ),
                "max_tokens": max_tokens,
            }),
            &[],
        ));
    }
    let last = format!("draft_{iterations}");
    steps.push(step(
        "final",
        StepKind::Validation,
        Some("validator"),
        json!({"input": format!("{{{{ steps.{last}.output.text }}}}"), "non_empty": true}),
        &[],
    ));
    let workflow = Workflow {
        name: "collaborative".into(),
        description: "shared context, parallel research, draft, review and refine".into(),
        inputs: BTreeMap::from([(
            "document".into(),
            input("the document, under the files root"),
        )]),
        on_failure: FailurePolicy::FailFast,
        steps,
    };
    let inputs = BTreeMap::from([("document".to_string(), Value::String(document.into()))]);
    let mut outcome = run(engine, workflow, inputs, &last).await?;
    outcome.result = outcome.result.and_then(|v| v.get("text").cloned());
    Ok(outcome)
}
