//! bear-hw: what machine BEAR runs on, and how to use it well.
//!
//! Layer **L1**; depends only on bear-core. [`probe`] detects the CPU, memory, GPUs and free disk
//! space behind the [`Probe`] trait; [`recommend`] turns a [`Machine`] into advice: inference
//! threads, embedding batch size, whether a model fits in memory, mmap/mlock and GPU layers.
//!
//! Invariants:
//! - Recommendations are pure functions of a [`Machine`] value, so they are tested on synthetic
//!   machines (2 cores with 4 GiB, 64 cores with 512 GiB, ...) rather than on whatever runs CI.
//! - Detection never fails as a whole: a part that cannot be read is reported as unknown.
//! - Nothing here opens a network connection or reads user data.

mod error;
pub mod probe;
pub mod recommend;

pub use error::{Error, Result};
pub use probe::{CpuInfo, DiskInfo, GpuInfo, Machine, MemoryInfo, Probe, SimdFeatures, SysProbe};
pub use recommend::{
    FitReport, Footprint, GpuOffload, KvShape, LockAdvice, Recommendations, fit_model, human,
    model_footprint, recommend,
};

/// Bytes in one GiB.
pub const GIB: u64 = 1024 * 1024 * 1024;
/// Bytes in one MiB.
pub const MIB: u64 = 1024 * 1024;

/// [`fit_model`] for a model file on disk: reads only its size, never its contents.
pub fn fit_file(
    machine: &Machine,
    path: &std::path::Path,
    context_length: u32,
    kv: Option<KvShape>,
) -> Result<FitReport> {
    if context_length == 0 {
        return Err(Error::InvalidArgument("context length must be at least 1"));
    }
    let meta = std::fs::metadata(path).map_err(|source| Error::ModelFile {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
        });
    }
    Ok(fit_model(machine, meta.len(), context_length, kv))
}
