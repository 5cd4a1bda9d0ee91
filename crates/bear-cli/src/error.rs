//! bear-cli's error type and its mapping to exit codes.

use bear_core::ErrorKind;

/// `Result` with bear-cli's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can make a `bear` command fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operation of the application layer failed.
    #[error(transparent)]
    App(#[from] bear_app::Error),
    /// Configuration, identifiers and backend failures from bear-core.
    #[error(transparent)]
    Core(#[from] bear_core::Error),
    /// Hardware inspection failed.
    #[error(transparent)]
    Hw(#[from] bear_hw::Error),
    /// Finding, loading or running a model failed.
    #[error(transparent)]
    Models(#[from] bear_models::Error),
    /// PII, keys, encryption or audit failed.
    #[error(transparent)]
    Security(#[from] bear_security::Error),
    /// A plugin could not be found, validated, loaded or run.
    #[error(transparent)]
    Plugins(#[from] bear_plugins::Error),
    #[error(transparent)]
    Rag(#[from] bear_rag::Error),
    /// A workflow run ended without completing (failed or cancelled); its steps say why.
    #[error("run {run} {status}; the steps above say why (`bear workflow status {run}`)")]
    RunEnded {
        /// The run.
        run: String,
        /// `failed` or `cancelled`.
        status: &'static str,
    },
    /// A workflow definition, run or agent request failed.
    #[error(transparent)]
    Agents(#[from] bear_agents::Error),
    /// Writing the output failed (a closed pipe, a full disk).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    /// The failure class, shared with the server's error mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::App(e) => e.kind(),
            Self::Core(e) => e.kind(),
            Self::Hw(e) => e.kind(),
            Self::Models(e) => e.kind(),
            Self::Security(e) => e.kind(),
            Self::Plugins(e) => e.kind(),
            Self::Rag(e) => e.kind(),
            Self::Agents(e) => e.kind(),
            Self::RunEnded { .. } => ErrorKind::Internal,
            Self::Output(_) => ErrorKind::Internal,
        }
    }

    /// The error as the one JSON shape every front end prints.
    pub fn body(&self) -> bear_app::ErrorBody {
        match self {
            Self::App(e) => e.body(),
            other => bear_app::ErrorBody::new(other.kind(), other.to_string(), None),
        }
    }

    /// Exit codes: 2 usage and invalid input, 3 configuration, 4 not found, 5 model load,
    /// 6 security (wrong key, failed integrity or audit check, denied), 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self.kind() {
            ErrorKind::InvalidRequest => 2,
            ErrorKind::Config => 3,
            ErrorKind::NotFound => 4,
            ErrorKind::ModelLoad => 5,
            ErrorKind::Security => 6,
            _ => 1,
        }
    }
}
