//! Which runtime embeds with a safetensors BERT model (all-MiniLM-L6-v2). The fast path is ONNX
//! Runtime over the fused float32 graph `cargo xtask models` writes beside the folder
//! (`<folder>-fused/model.onnx`, made from the same safetensors, so its vectors are
//! sentence-transformers' to a cosine of 0.9999); where that graph or the ONNX Runtime library
//! is missing, candle runs the safetensors, with a one-line notice naming what is missing and
//! what it costs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bear_core::{Embedder, ModelId};
use serde::Serialize;

use crate::embed::{CandleEmbedder, OrtEmbedder, find_ort_dylib};
use crate::error::Result;

/// What the slow path costs, for the notice (`cargo xtask bench models`: candle runs at about a
/// third of the fused graph's rate at 128 tokens).
const CANDLE_COST: &str = "about 3x slower than ONNX Runtime";

/// The runtime an embedder runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EmbedderPath {
    /// `onnxruntime` or `candle`.
    pub runtime: String,
    /// The graph (ONNX Runtime) or the folder (candle) it runs.
    pub model: PathBuf,
    /// Why not ONNX Runtime, when candle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl EmbedderPath {
    fn candle(folder: &Path, why: String) -> Self {
        Self {
            runtime: "candle".into(),
            model: folder.to_path_buf(),
            note: Some(format!("{why}; candle runs instead, {CANDLE_COST}")),
        }
    }
}

/// The fused graph beside a safetensors folder.
pub fn fused_graph(folder: &Path) -> PathBuf {
    let name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    folder
        .with_file_name(format!("{name}-fused"))
        .join("model.onnx")
}

/// The path `folder`'s embedder will take, judged from the files alone.
pub fn planned_path(folder: &Path, ort_candidates: &[PathBuf]) -> EmbedderPath {
    let fused = fused_graph(folder);
    if !fused.is_file() {
        let why = format!(
            "no fused graph at {} (`cargo xtask models` writes it)",
            fused.display()
        );
        return EmbedderPath::candle(folder, why);
    }
    match find_ort_dylib(ort_candidates) {
        Ok(_) => EmbedderPath {
            runtime: "onnxruntime".into(),
            model: fused,
            note: None,
        },
        Err(e) => EmbedderPath::candle(folder, e.to_string()),
    }
}

/// Loads `folder`'s embedder on the fastest path that works, with the path taken.
pub fn load(
    id: &ModelId,
    folder: &Path,
    ort_candidates: &[PathBuf],
    threads: usize,
) -> Result<(Arc<dyn Embedder>, EmbedderPath)> {
    let mut path = planned_path(folder, ort_candidates);
    if path.runtime == "onnxruntime" {
        match OrtEmbedder::load(id.clone(), &path.model, folder, ort_candidates, threads) {
            Ok(e) => return Ok((Arc::new(e), path)),
            Err(e) => {
                let why = format!("ONNX Runtime cannot run {}: {e}", path.model.display());
                path = EmbedderPath::candle(folder, why);
            }
        }
    }
    if let Some(note) = &path.note {
        tracing::warn!("{id}: {note}");
    }
    let candle = CandleEmbedder::load(id.clone(), folder)?;
    Ok((Arc::new(candle), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("all-MiniLM-L6-v2");
        std::fs::create_dir(&folder).unwrap();
        assert_eq!(
            fused_graph(&folder),
            dir.path().join("all-MiniLM-L6-v2-fused/model.onnx")
        );
        let p = planned_path(&folder, &[]);
        assert_eq!(p.runtime, "candle");
        assert!(p.note.unwrap().contains("no fused graph"));

        std::fs::create_dir(dir.path().join("all-MiniLM-L6-v2-fused")).unwrap();
        std::fs::write(fused_graph(&folder), b"onnx").unwrap();
        let lib = dir.path().join("libonnxruntime.so");
        let p = planned_path(&folder, std::slice::from_ref(&lib));
        assert_eq!(p.runtime, "candle");
        assert!(p.note.unwrap().contains("3x slower"));
        std::fs::write(&lib, b"elf").unwrap();
        let p = planned_path(&folder, &[lib]);
        assert_eq!((p.runtime.as_str(), p.note), ("onnxruntime", None));
        assert_eq!(p.model, fused_graph(&folder));
    }
}
