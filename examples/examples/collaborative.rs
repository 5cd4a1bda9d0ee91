//! The collaborative pattern on a real contract: the scrubbed contract is the shared context,
//! research questions are answered in parallel, a memo is drafted from the answers, then
//! reviewed and refined for N rounds.
//!
//! `cargo run -p bear-examples --example collaborative -- [ROUNDS]`

use bear_agents::patterns;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(2);
    let engine = bear_examples::legal_engine()?;
    let out = patterns::collaborative(
        &engine,
        "software-license.txt",
        &[
            "Who may use the software, and where?",
            "What are the fees and when are they due?",
            "How can either party end the licence?",
        ],
        rounds,
        96,
    )
    .await?;
    println!("collaboration: {}", out.status.as_str());
    bear_examples::print_steps(&out.progress);
    if let Some(memo) = out.result {
        println!("\n{}", memo.as_str().unwrap_or_default().trim());
    }
    Ok(())
}
