//! The task-delegation pattern on a real contract: the coordinator decomposes "analyse this
//! supply agreement" into term extraction, risk assessment and a compliance check, the legal
//! specialist runs them in parallel, the coordinator aggregates and the validator checks.
//!
//! `cargo run -p bear-examples --example delegation -- [DOCUMENT]` (a file of the demo corpus)

use bear_agents::roles::legal_config;
use bear_agents::{Coordinator, Task, patterns};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let document = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "supply-agreement.txt".into());
    let engine = bear_examples::legal_engine()?;
    let task = Task {
        kind: "legal_document_analysis".into(),
        document,
        requirements: vec![
            "term_extraction".into(),
            "risk_assessment".into(),
            "compliance_check".into(),
        ],
    };
    let out = patterns::delegation(&engine, &Coordinator::new(legal_config()), &task).await?;
    println!("delegation: {}", out.status.as_str());
    bear_examples::print_steps(&out.progress);
    if let Some(result) = out.result {
        for (analysis, text) in result.as_object().into_iter().flatten() {
            println!(
                "\n## {analysis}\n{}",
                text.as_str().unwrap_or_default().trim()
            );
        }
    }
    Ok(())
}
