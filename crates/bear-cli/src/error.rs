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
    /// A workflow run ended without completing (failed or cancelled); its steps say why.
    #[error("run {run} {status}; the steps above say why (`bear workflow status {run}`)")]
    RunEnded {
        /// The run.
        run: String,
        /// `failed` or `cancelled`.
        status: &'static str,
    },
    /// Writing the output failed (a closed pipe, a full disk).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// The backends' errors reach the CLI as bear-app's, which already names each of them.
macro_rules! through_app {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Self::App(e.into())
            }
        }
    )*};
}

through_app!(
    bear_core::Error,
    bear_hw::Error,
    bear_models::Error,
    bear_security::Error,
    bear_plugins::Error,
    bear_rag::Error,
    bear_agents::Error
);

impl Error {
    /// The failure class, shared with the server's error mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::App(e) => e.kind(),
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
