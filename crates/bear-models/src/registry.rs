//! Model discovery: scan directories for GGUF files, ONNX files and safetensors folders, and read
//! each one's metadata without loading its weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bear_core::ModelId;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::gguf;

/// The three kinds of model file BEAR runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A llama.cpp GGUF file, for generation.
    Gguf,
    /// An ONNX graph, for embeddings through ONNX Runtime.
    Onnx,
    /// A folder with `config.json`, `model.safetensors` and `tokenizer.json`, for candle.
    Safetensors,
}

/// Metadata read from a model's header or config, never from its weights.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, Default)]
pub struct ModelMeta {
    /// Architecture, such as `llama` or `bert`.
    pub architecture: Option<String>,
    /// Total parameters, when the header lists tensors.
    pub parameter_count: Option<u64>,
    /// Weight type or quantisation, such as `q4_1` or `F32`.
    pub quantization: Option<String>,
    /// Maximum context (or sequence) length.
    pub context_length: Option<u64>,
    /// Whether the model carries a chat template.
    pub has_chat_template: bool,
    /// Transformer layers and KV width, for sizing the KV cache (GGUF only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_shape: Option<bear_hw::KvShape>,
}

/// One discovered model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelEntry {
    /// Stable id: the file stem (GGUF) or folder name (ONNX, safetensors), sanitised.
    pub id: ModelId,
    /// Its kind.
    pub kind: ModelKind,
    /// The GGUF or ONNX file, or the safetensors folder.
    pub path: PathBuf,
    /// Bytes on disk (the weights file).
    pub size_bytes: u64,
    /// What the header or config says.
    pub meta: ModelMeta,
}

/// A model that was found but could not be read, with the reason.
#[derive(Debug, Serialize)]
pub struct Rejected {
    /// The path.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// The result of a scan.
#[derive(Debug, Default, Serialize)]
pub struct Scan {
    /// Models by id.
    pub models: BTreeMap<ModelId, ModelEntry>,
    /// Files that looked like models but failed validation.
    pub rejected: Vec<Rejected>,
}

/// Turns a file or folder name into a valid [`ModelId`].
fn id_from_name(name: &str) -> Option<ModelId> {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').replace("..", ".");
    ModelId::new(cleaned).ok()
}

/// Scans `dirs` (one level, plus one level of subfolders) for models. Unreadable or invalid
/// candidates are listed in [`Scan::rejected`]; the scan itself fails only on an unreadable
/// top-level directory that exists.
pub fn scan(dirs: &[PathBuf]) -> Result<Scan> {
    let mut out = Scan::default();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(Error::Io {
                    path: dir.clone(),
                    source,
                });
            }
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            if path.is_dir() {
                consider_dir(&path, &mut out);
            } else {
                consider_file(&path, &mut out);
            }
        }
    }
    Ok(out)
}

fn insert(out: &mut Scan, entry: Result<ModelEntry>, path: &Path) {
    match entry {
        Ok(e) => {
            out.models.entry(e.id.clone()).or_insert(e);
        }
        Err(e) => out.rejected.push(Rejected {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

fn consider_file(path: &Path, out: &mut Scan) {
    match path.extension().and_then(|e| e.to_str()) {
        Some("gguf") => insert(out, gguf_entry(path), path),
        Some("onnx") => insert(out, onnx_entry(path), path),
        _ => {}
    }
}

fn consider_dir(dir: &Path, out: &mut Scan) {
    if dir.join("config.json").is_file() && dir.join("model.safetensors").is_file() {
        insert(out, safetensors_entry(dir), dir);
        return;
    }
    // One level down: `name/model.onnx` and loose GGUF files in subfolders.
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths.into_iter().filter(|p| p.is_file()) {
            consider_file(&p, out);
        }
    }
}

fn size_of(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn invalid(path: &Path, format: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidModel {
        path: path.to_path_buf(),
        format,
        reason: reason.into(),
    }
}

/// A GGUF model entry, validated by [`gguf::inspect`].
pub fn gguf_entry(path: &Path) -> Result<ModelEntry> {
    let info = gguf::inspect(path)?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    Ok(ModelEntry {
        id: id_from_name(stem).ok_or_else(|| invalid(path, "GGUF", "no usable file name"))?,
        kind: ModelKind::Gguf,
        path: path.to_path_buf(),
        size_bytes: info.file_size,
        meta: ModelMeta {
            architecture: Some(info.architecture.clone()),
            parameter_count: Some(info.parameter_count),
            quantization: Some(info.quantization.clone()),
            context_length: info.context_length,
            has_chat_template: info.chat_template.is_some(),
            kv_shape: info.block_count.zip(info.kv_dim()).map(|(layers, kv_dim)| {
                bear_hw::KvShape {
                    layers: layers as u32,
                    kv_dim: kv_dim as u32,
                }
            }),
        },
    })
}

/// An ONNX model entry: a file named `model.onnx` takes its folder's name. ONNX files carry no
/// standard metadata BEAR needs, so a `config.json` beside the file is read when present.
pub fn onnx_entry(path: &Path) -> Result<ModelEntry> {
    let size = size_of(path)?;
    // An ONNX file is a protobuf ModelProto; field 1 (ir_version) as a varint starts it.
    let mut head = [0u8; 1];
    std::io::Read::read_exact(
        &mut std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?,
        &mut head,
    )
    .map_err(|_| invalid(path, "ONNX", "the file is empty"))?;
    if head[0] != 0x08 {
        return Err(invalid(
            path,
            "ONNX",
            "the file does not start with an ONNX ModelProto",
        ));
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let name = if stem == "model" {
        path.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or(stem)
    } else {
        stem
    };
    let meta = path
        .parent()
        .map(|d| d.join("config.json"))
        .filter(|c| c.is_file())
        .map(|c| config_meta(&c))
        .transpose()?
        .unwrap_or_default();
    Ok(ModelEntry {
        id: id_from_name(name).ok_or_else(|| invalid(path, "ONNX", "no usable file name"))?,
        kind: ModelKind::Onnx,
        path: path.to_path_buf(),
        size_bytes: size,
        meta,
    })
}

/// Architecture and lengths from a Hugging Face `config.json`.
fn config_meta(config: &Path) -> Result<ModelMeta> {
    let text = std::fs::read_to_string(config).map_err(|source| Error::Io {
        path: config.to_path_buf(),
        source,
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        invalid(
            config,
            "safetensors",
            format!("config.json is not JSON: {e}"),
        )
    })?;
    Ok(ModelMeta {
        architecture: v["model_type"].as_str().map(str::to_string),
        parameter_count: None,
        quantization: v["torch_dtype"].as_str().map(str::to_string),
        context_length: v["max_position_embeddings"].as_u64(),
        has_chat_template: false,
        kv_shape: None,
    })
}

/// A safetensors folder entry: `config.json` for the architecture, the safetensors header
/// (validated against the file by the `safetensors` crate) for parameters and dtype.
pub fn safetensors_entry(dir: &Path) -> Result<ModelEntry> {
    let weights = dir.join("model.safetensors");
    if !dir.join("tokenizer.json").is_file() {
        return Err(invalid(dir, "safetensors", "tokenizer.json is missing"));
    }
    let mut meta = config_meta(&dir.join("config.json"))?;
    let (params, dtype) = crate::mapped::safetensors_summary(&weights)?;
    meta.parameter_count = Some(params);
    meta.quantization = meta.quantization.or(Some(dtype));
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    Ok(ModelEntry {
        id: id_from_name(name).ok_or_else(|| invalid(dir, "safetensors", "no usable name"))?,
        kind: ModelKind::Safetensors,
        path: dir.to_path_buf(),
        size_bytes: size_of(&weights)?,
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_names() {
        let check = |name: &str, want: Option<&str>| {
            assert_eq!(
                id_from_name(name).as_ref().map(ModelId::as_str),
                want,
                "{name}"
            );
        };
        check(
            "SmolLM2-135M-Instruct.Q4_1",
            Some("SmolLM2-135M-Instruct.Q4_1"),
        );
        check("my model (v2)", Some("my-model--v2-"));
        check(".hidden", Some("hidden"));
        check("", None);
    }
}
