//! bear-plugins' error type. Messages name the plugin, tool, file and limit; never the input,
//! the output or what the plugin printed.

use std::path::PathBuf;

use bear_core::ErrorKind;

/// `Result` with bear-plugins' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong finding, validating, loading or running a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifest is not valid TOML or breaks a rule.
    #[error("plugin manifest {path}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The wasm file's sha256 differs from the manifest's.
    #[error(
        "plugin `{plugin}`: {path} has sha256 {actual}, the manifest says {expected}; refusing to load it"
    )]
    HashMismatch {
        /// The plugin.
        plugin: String,
        /// The wasm file.
        path: PathBuf,
        /// What the manifest declares.
        expected: String,
        /// What the file hashes to.
        actual: String,
    },
    /// The signature is missing (and required), or does not verify with a trusted key.
    #[error("plugin `{plugin}`: {reason}")]
    Signature {
        /// The plugin.
        plugin: String,
        /// What failed.
        reason: String,
    },
    /// Dependencies cannot be satisfied.
    #[error("plugin `{plugin}`: {reason}")]
    Dependency {
        /// The plugin.
        plugin: String,
        /// A missing dependency, a version conflict, or the cycle.
        reason: String,
    },
    /// No such plugin or tool.
    #[error("{0}")]
    NotFound(String),
    /// The module could not be compiled or linked (imports it is not granted).
    #[error("plugin `{plugin}` cannot be loaded: {reason}")]
    Load {
        /// The plugin.
        plugin: String,
        /// The compiler's or linker's reason.
        reason: String,
    },
    /// The call ran past its time limit.
    #[error(
        "plugin `{plugin}` tool `{tool}` ran past its {limit_ms} ms time limit and was stopped"
    )]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The tool.
        tool: String,
        /// The limit.
        limit_ms: u64,
    },
    /// The call used up its fuel.
    #[error("plugin `{plugin}` tool `{tool}` used up its fuel ({fuel} units) and was stopped")]
    OutOfFuel {
        /// The plugin.
        plugin: String,
        /// The tool.
        tool: String,
        /// The fuel it had.
        fuel: u64,
    },
    /// The call tried to grow memory past its limit.
    #[error(
        "plugin `{plugin}` tool `{tool}` exceeded its {limit_mb} MiB memory limit and was stopped"
    )]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// The tool.
        tool: String,
        /// The limit.
        limit_mb: u32,
    },
    /// The call wrote more output than allowed.
    #[error("plugin `{plugin}` tool `{tool}` wrote more than its {limit_kb} KiB output limit")]
    OutputLimit {
        /// The plugin.
        plugin: String,
        /// The tool.
        tool: String,
        /// The limit.
        limit_kb: u32,
    },
    /// The plugin trapped, exited non-zero or returned something that is not JSON.
    #[error("plugin `{plugin}` tool `{tool}` failed: {reason}")]
    Failed {
        /// The plugin.
        plugin: String,
        /// The tool.
        tool: String,
        /// The trap kind, exit code or parse failure (never the plugin's output).
        reason: String,
    },
    /// The caller cancelled the call.
    #[error("plugin `{plugin}` tool `{tool}` was cancelled")]
    Cancelled {
        /// The plugin.
        plugin: String,
        /// The tool.
        tool: String,
    },
    /// The input is not what the tool accepts.
    #[error("invalid input for tool `{tool}`: {reason}")]
    InvalidInput {
        /// The tool.
        tool: String,
        /// Why.
        reason: String,
    },
    /// Reading a plugin file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The wasmtime engine could not be set up.
    #[error("plugin host: {0}")]
    Host(String),
}

impl Error {
    /// The failure class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Manifest { .. } | Self::Dependency { .. } | Self::Load { .. } => {
                ErrorKind::Config
            }
            Self::HashMismatch { .. } | Self::Signature { .. } => ErrorKind::Security,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Cancelled { .. } => ErrorKind::Cancelled,
            Self::InvalidInput { .. } => ErrorKind::InvalidRequest,
            Self::OutOfFuel { .. }
            | Self::MemoryLimit { .. }
            | Self::OutputLimit { .. }
            | Self::Failed { .. } => ErrorKind::Sandbox,
            Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Self::Io { .. } => ErrorKind::Storage,
            Self::Host(_) => ErrorKind::Internal,
        }
    }
}

impl From<Error> for bear_core::Error {
    fn from(e: Error) -> Self {
        bear_core::Error::backend(e.kind(), e.to_string())
    }
}
