//! bear-hw's error type.

use std::path::PathBuf;

/// `Result` with bear-hw's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while inspecting the machine or a model file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A model file could not be inspected.
    #[error("cannot read model file {path}: {source}; check the path and its permissions")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path exists but is not a regular file.
    #[error("{path} is not a regular file; pass the path of a model file such as a .gguf")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// An argument was out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

impl Error {
    /// The failure class of this error.
    pub fn kind(&self) -> bear_core::ErrorKind {
        match self {
            Error::ModelFile { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                bear_core::ErrorKind::NotFound
            }
            Error::ModelFile { .. } | Error::NotAFile { .. } => bear_core::ErrorKind::ModelLoad,
            Error::InvalidArgument(_) => bear_core::ErrorKind::InvalidRequest,
        }
    }
}

impl From<Error> for bear_core::Error {
    fn from(e: Error) -> Self {
        bear_core::Error::backend(e.kind(), e.to_string())
    }
}
