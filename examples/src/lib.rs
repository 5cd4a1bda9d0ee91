//! bear-examples: the programs in `examples/examples/` (`cargo run -p bear-examples --example
//! NAME`), and [`legal_engine`], the workflow engine they share: SmolLM2 through llama.cpp,
//! bear-security's scrubber, the demo corpus as the files root, runs kept in memory.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bear_agents::{Backends, Engine, EngineConfig, MemoryStore, Registry};
use bear_core::{Dirs, EventBus, ModelId, PiiConfig, assets};
use bear_models::{LlamaCppGenerator, LlamaOptions};

/// The demo corpus of fictitious legal documents.
pub fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// An engine with the default agents, the real default model and a `replace` PII scrubber,
/// reading files from the demo corpus.
pub fn legal_engine() -> anyhow::Result<Engine> {
    let dirs = Dirs::from_env(|k| std::env::var_os(k))?;
    let path = dirs.models_dir.join(assets::SMOLLM2_GGUF);
    anyhow::ensure!(path.exists(), "{}", assets::missing_hint(&path));
    let model = ModelId::new("SmolLM2-135M-Instruct.Q4_1")?;
    let generator = LlamaCppGenerator::load(model.clone(), &path, LlamaOptions::default())
        .context("loading SmolLM2")?;
    let scrubber = bear_security::Scrubber::replacing(&PiiConfig::default())?;
    Ok(Engine::new(
        Arc::new(MemoryStore::new()),
        Registry::with_default_agents(),
        Backends {
            generator: Some(Arc::new(generator)),
            default_model: Some(model),
            scrubber: Some(Arc::new(scrubber)),
            files_root: Some(corpus()),
            ..Backends::default()
        },
        EventBus::default(),
        EngineConfig::default(),
    ))
}

/// Prints each step of a finished pattern: agent, time, status.
pub fn print_steps(progress: &bear_agents::Progress) {
    for s in &progress.steps {
        println!(
            "  {:<18} {:<10} {:<17} {:>6} ms",
            s.id.as_str(),
            s.status.as_str(),
            s.agent.as_ref().map(|a| a.as_str()).unwrap_or("-"),
            s.duration_ms.unwrap_or(0)
        );
    }
}
