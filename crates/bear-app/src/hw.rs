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
}

/// Probes the machine (the disk is the data directory's) and recommends for it.
pub fn report(loaded: &LoadedConfig) -> HwReport {
    let machine = SysProbe.probe(&loaded.dirs.data_dir);
    let mut recommendations = bear_hw::recommend(&machine);
    if let Some(t) = loaded.config.hw.threads {
        recommendations.inference_threads = t as usize;
    }
    HwReport {
        schema_version: HW_SCHEMA_VERSION,
        machine,
        recommendations,
    }
}
