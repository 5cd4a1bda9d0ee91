//! The machine and BEAR's recommendations for it: one report for `bear hw --json` and
//! `GET /api/v1/hw`.

use bear_hw::{Machine, Probe, Recommendations, SysProbe};
use serde::Serialize;

use crate::LoadedConfig;

/// Version of the report's shape; bumped only on incompatible changes.
pub const HW_SCHEMA_VERSION: u32 = 1;

/// What was detected and what BEAR recommends.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HwReport {
    /// The report's shape version.
    pub schema_version: u32,
    /// CPU, memory, GPUs and disk, as detected.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub machine: Machine,
    /// Threads, batch sizes, memory budget, mmap/mlock and GPU offload for this machine
    /// (`[hw] threads` overrides the thread count).
    #[schema(value_type = Object)]
    pub recommendations: Recommendations,
    /// The runtime `models.default_embedder` runs on (ONNX Runtime or candle, and why),
    /// absent when it is not a safetensors folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub embedder: Option<bear_models::EmbedderPath>,
}

/// Probes the machine (the disk is the data directory's) and recommends for it.
pub fn report(loaded: &LoadedConfig) -> HwReport {
    let machine = SysProbe.probe(&loaded.dirs.data_dir);
    let mut recommendations = bear_hw::recommend(&machine);
    if let Some(t) = loaded.config.hw.threads {
        recommendations.inference_threads = t as usize;
    }
    let models_dir = &loaded.dirs.models_dir;
    let folder = models_dir.join(&loaded.config.models.default_embedder);
    let candidates =
        bear_models::ort_dylib_candidates(loaded.config.models.ort_dylib.as_deref(), models_dir);
    HwReport {
        schema_version: HW_SCHEMA_VERSION,
        machine,
        recommendations,
        embedder: folder
            .join("model.safetensors")
            .is_file()
            .then(|| bear_models::bert::planned_path(&folder, &candidates)),
    }
}

/// Whether a model file fits this machine: `bear models fit --json`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Fit {
    /// The model file.
    #[schema(value_type = String)]
    pub path: std::path::PathBuf,
    /// Memory needed and available, threads, mlock and GPU offload, and the verdict.
    #[schema(value_type = Object)]
    pub fit: bear_hw::FitReport,
}

/// Checks the model file at `path` at `context_length` tokens (`models.context_length` when
/// `None`) against this machine.
pub fn fit(
    loaded: &LoadedConfig,
    path: &std::path::Path,
    context_length: Option<u32>,
) -> crate::Result<Fit> {
    let ctx = context_length.unwrap_or(loaded.config.models.context_length);
    let machine = SysProbe.probe(&loaded.dirs.data_dir);
    Ok(Fit {
        path: path.to_path_buf(),
        fit: bear_hw::fit_file(&machine, path, ctx, None)?,
    })
}
