//! bear-models' error type.

use std::path::PathBuf;

use bear_core::ErrorKind;

/// `Result` with bear-models' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong finding, validating, loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a well-formed model of the kind its name claims. `reason` says which
    /// check failed; nothing native has seen the file.
    #[error("{path} is not a valid {format} model: {reason}")]
    InvalidModel {
        /// The file.
        path: PathBuf,
        /// `GGUF`, `ONNX` or `safetensors`.
        format: &'static str,
        /// Which check failed.
        reason: String,
    },
    /// The model is well-formed but its architecture is not one BEAR runs.
    #[error("{path}: architecture `{arch}` is not supported; supported: {supported}")]
    UnsupportedArchitecture {
        /// The file.
        path: PathBuf,
        /// The architecture named in its metadata.
        arch: String,
        /// What would work.
        supported: &'static str,
    },
    /// A native backend refused the model or the request.
    #[error("{backend} failed: {reason}")]
    Backend {
        /// `llama.cpp`, `candle` or `onnxruntime`.
        backend: &'static str,
        /// What failed; never user text.
        reason: String,
    },
    /// The request is malformed or out of range.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No model has that id.
    #[error("{0}")]
    NotFound(String),
    /// The model is busy or the memory budget is full; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// The program could not run itself again with libgomp's variables set
    /// ([`crate::openmp::reexec_with_openmp_env`]).
    #[error(
        "could not restart with GOMP_SPINCOUNT set ({0}); generation may slow down while other \
         programs use the CPU"
    )]
    Restart(std::io::Error),
}

impl Error {
    /// The failure class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Self::Io { .. }
            | Self::InvalidModel { .. }
            | Self::UnsupportedArchitecture { .. }
            | Self::Backend { .. } => ErrorKind::ModelLoad,
            Self::InvalidRequest(_) => ErrorKind::InvalidRequest,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Restart(_) => ErrorKind::Internal,
        }
    }
}

impl From<Error> for bear_core::Error {
    fn from(e: Error) -> Self {
        bear_core::Error::backend(e.kind(), e.to_string())
    }
}
