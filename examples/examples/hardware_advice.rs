//! Embedding bear-hw: detect this machine and ask whether a model file would fit.
//!
//! `cargo run -p bear-examples --example hardware_advice -- [MODEL_FILE] [CONTEXT]`

use bear_hw::{Probe, SysProbe};

fn main() -> anyhow::Result<()> {
    let dirs = bear_core::Dirs::from_env(|k| std::env::var_os(k))?;
    let machine = SysProbe.probe(&dirs.data_dir);
    let rec = bear_hw::recommend(&machine);
    println!(
        "{} cores ({} threads recommended), {} available, embedding batch {}",
        machine.cpu.physical_cores,
        rec.inference_threads,
        bear_hw::human(machine.memory.available_bytes),
        rec.embedding_batch_size
    );
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dirs.models_dir.join(bear_core::assets::SMOLLM2_GGUF));
    let ctx: u32 = args.next().map(|c| c.parse()).transpose()?.unwrap_or(2048);
    let fit = bear_hw::fit_file(&machine, &model, ctx, None)?;
    println!("{}: {}", model.display(), fit.reason);
    Ok(())
}
