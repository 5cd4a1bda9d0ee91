//! The pipeline pattern on a real contract: extract its text, scrub its PII, analyse it with
//! the legal specialist, validate the analysis (non-empty, PII-free) and format a report.
//!
//! `cargo run -p bear-examples --example pipeline -- [DOCUMENT]` (a file of the demo corpus)

use bear_agents::patterns;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let document = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mutual-nda.md".into());
    let engine = bear_examples::legal_engine()?;
    let out = patterns::pipeline(&engine, &document, 128).await?;
    println!("pipeline: {}", out.status.as_str());
    bear_examples::print_steps(&out.progress);
    if let Some(report) = out.result {
        println!("\n{}", report.as_str().unwrap_or_default());
    }
    Ok(())
}
