//! `bear hw`: the machine and BEAR's recommendations for it.

use std::io::Write;

use bear_app::hw::HwReport;
use bear_hw::human;

use crate::error::Result;
use bear_app::LoadedConfig;

pub(crate) fn run(loaded: &LoadedConfig, json: bool, out: &mut impl Write) -> Result<()> {
    let report = bear_app::hw::report(loaded);
    if json {
        serde_json::to_writer_pretty(&mut *out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write_human(&report, out)?;
    }
    Ok(())
}

fn write_human(r: &HwReport, out: &mut impl Write) -> std::io::Result<()> {
    let m = &r.machine;
    let rec = &r.recommendations;
    let simd: Vec<&str> = [
        (m.cpu.simd.avx2, "AVX2"),
        (m.cpu.simd.avx512, "AVX-512"),
        (m.cpu.simd.neon, "NEON"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    writeln!(out, "CPU     {} ({})", m.cpu.model, m.cpu.arch)?;
    writeln!(
        out,
        "        {} physical cores, {} logical; SIMD: {}",
        m.cpu.physical_cores,
        m.cpu.logical_cores,
        if simd.is_empty() {
            "none".into()
        } else {
            simd.join(", ")
        }
    )?;
    writeln!(
        out,
        "Memory  {} total, {} available",
        human(m.memory.total_bytes),
        human(m.memory.available_bytes)
    )?;
    if m.gpus.is_empty() {
        writeln!(out, "GPU     none visible")?;
    }
    for g in &m.gpus {
        let mem = g
            .memory_bytes
            .map(human)
            .unwrap_or_else(|| "memory unknown".into());
        writeln!(out, "GPU     {} {} ({mem})", g.vendor, g.name)?;
    }
    match &m.disk {
        Some(d) => writeln!(
            out,
            "Disk    {} free of {} at {} (for {})",
            human(d.available_bytes),
            human(d.total_bytes),
            d.mount_point.display(),
            d.path.display()
        )?,
        None => writeln!(out, "Disk    unknown")?,
    }
    writeln!(out)?;
    writeln!(out, "Recommended")?;
    writeln!(out, "  inference threads     {}", rec.inference_threads)?;
    writeln!(out, "  embedding batch size  {}", rec.embedding_batch_size)?;
    writeln!(out, "  parallel requests     {}", rec.parallel_requests)?;
    writeln!(
        out,
        "  model memory budget   {} (keeping {} free)",
        human(rec.model_memory_budget_bytes),
        human(rec.safety_margin_bytes)
    )?;
    writeln!(
        out,
        "  mmap                  {}",
        if rec.mmap { "yes" } else { "no" }
    )?;
    writeln!(
        out,
        "  mlock                 {}: {}",
        if rec.mlock.recommended { "yes" } else { "no" },
        rec.mlock.reason
    )?;
    writeln!(out, "  GPU offload           {}", offload(&rec.gpu))?;
    if let Some(e) = &r.embedder {
        writeln!(out)?;
        writeln!(out, "Embedder  {} ({})", e.runtime, e.model.display())?;
        if let Some(note) = &e.note {
            writeln!(out, "          {note}")?;
        }
    }
    Ok(())
}

pub(crate) fn offload(g: &bear_hw::GpuOffload) -> String {
    match g {
        bear_hw::GpuOffload::None => "none (CPU only)".into(),
        bear_hw::GpuOffload::All => "all layers".into(),
        bear_hw::GpuOffload::Partial { fraction } => format!("{:.0}% of layers", fraction * 100.0),
    }
}
