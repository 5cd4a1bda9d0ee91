//! Reading safetensors headers through a memory map, so a multi-gigabyte weights file is never
//! copied to learn its shape.

#![allow(unsafe_code)]

use std::path::Path;

use crate::error::{Error, Result};

/// Total parameters and the dominant dtype of a safetensors file, after the `safetensors` crate
/// has validated that the header's offsets cover the file exactly.
pub(crate) fn safetensors_summary(path: &Path) -> Result<(u64, String)> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: the map is read-only and dropped before returning. If another process truncates
    // the file meanwhile, reads could fault; model folders are BEAR's own cache.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&map).map_err(|e| Error::InvalidModel {
            path: path.to_path_buf(),
            format: "safetensors",
            reason: e.to_string(),
        })?;
    let mut params: u64 = 0;
    let mut by_dtype: std::collections::BTreeMap<String, u64> = Default::default();
    for info in meta.tensors().values() {
        let n: u64 = info.shape.iter().map(|d| *d as u64).product();
        params = params.saturating_add(n);
        *by_dtype.entry(format!("{:?}", info.dtype)).or_default() += n;
    }
    let dtype = by_dtype
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(d, _)| d)
        .unwrap_or_default();
    Ok((params, dtype))
}

/// A candle `VarBuilder` over a memory-mapped safetensors file.
pub(crate) fn var_builder(
    path: &Path,
    dtype: candle_core::DType,
) -> Result<candle_nn::VarBuilder<'static>> {
    // SAFETY: as above; candle keeps the map alive inside the VarBuilder.
    unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(&[path], dtype, &candle_core::Device::Cpu)
    }
    .map_err(|e| Error::InvalidModel {
        path: path.to_path_buf(),
        format: "safetensors",
        reason: e.to_string(),
    })
}
