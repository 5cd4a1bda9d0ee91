//! bear-models: the local model registry and its backends.
//!
//! Layer **L2**; depends on bear-core and bear-hw (threads, memory budget). It implements
//! bear-core's `TextGenerator` with llama.cpp (`LlamaCppGenerator`, through llama-cpp-2) and will
//! implement `Embedder` with candle (`CandleEmbedder`) and ONNX Runtime (`OrtEmbedder`, through
//! ort with `load-dynamic`, so the runtime library is a file chosen at run time).
//!
//! - [`gguf`]: validates a GGUF header completely, in Rust, before llama.cpp may open the file.
//! - [`registry`]: discovers GGUF, ONNX and safetensors models and reads their metadata only.
//!
//! Invariants:
//! - Model files come from local directories only; nothing here downloads.
//! - A file is validated before native code sees it: a bad model is a typed error, never an abort
//!   inside llama.cpp or ONNX Runtime.
//! - llama-cpp-2, candle, ort and tesseract-sys are dependencies of this crate only.
//! - `unsafe` lives in four small modules (`ggml`, `mapped`, `threads`, `ocr`), each call justified.

mod batch;
pub mod bert;
pub mod cache;
mod embed;
mod error;
mod ggml;
pub mod gguf;
pub mod llama;
pub mod manager;
mod mapped;
pub mod ocr;
pub mod openmp;
mod prompt_cache;
pub mod registry;
mod sampling;
mod stop;
pub mod template;
mod threads;
mod worker;

pub use bert::EmbedderPath;
pub use cache::{CacheConfig, CacheStats, ResultCache};
pub use embed::{CandleEmbedder, OrtEmbedder, find_ort_dylib, ort_dylib_candidates};
pub use error::{Error, Result};
pub use gguf::GgufInfo;
pub use llama::{GenerationTimings, LlamaCppGenerator, LlamaOptions, Overflow};
pub use manager::{ManagerConfig, ModelInfo, ModelManager, ModelMetrics, ModelStatus};
pub use ocr::TesseractOcr;
pub use openmp::reexec_with_openmp_env;
pub use registry::{ModelEntry, ModelKind, ModelMeta, Scan, scan};
pub use sampling::schema_grammar;
pub use template::ChatTemplate;
