//! Integration tests for bear-models, on the real model files from `cargo xtask models`: the
//! native stack links and runs (llama.cpp, candle, ONNX Runtime), GGUF validation, discovery.

mod embed;
mod gguf;
mod llama;
mod manager;
mod ocr;
mod registry;

use std::path::PathBuf;

use anyhow::Context;
use bear_core::{Dirs, assets};

/// A pinned model asset, found through the same lookup as the product.
pub(crate) fn asset(rel: &str) -> PathBuf {
    let dirs = Dirs::from_env(|k| std::env::var_os(k)).expect("HOME or XDG dirs must be set");
    let path = dirs.models_dir.join(rel);
    assert!(path.exists(), "{}", assets::missing_hint(&path));
    path
}

#[test]
fn candle_runs_a_tensor_op() -> anyhow::Result<()> {
    use candle_core::{Device, Tensor};
    let a = Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu)?;
    let product = a.matmul(&a)?.to_vec2::<f32>()?;
    assert_eq!(product, vec![vec![7., 10.], vec![15., 22.]]);
    Ok(())
}

#[test]
fn llama_cpp_loads_the_gguf() -> anyhow::Result<()> {
    use llama_cpp_2::model::LlamaModel;
    use llama_cpp_2::model::params::LlamaModelParams;

    let path = asset(assets::SMOLLM2_GGUF);
    let backend = bear_models::llama::backend()?;
    let model = LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default())
        .context("llama.cpp failed to load SmolLM2")?;
    // SmolLM2's tokenizer has 49152 entries.
    assert_eq!(model.n_vocab(), 49152);
    Ok(())
}
