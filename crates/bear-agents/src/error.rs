//! bear-agents' error type.
//!
//! Messages name paths in the workflow definition (`steps[2].depends_on[0]`), step ids and
//! error classes, never step inputs or outputs: those are user documents.

use std::fmt;

use bear_core::{ErrorKind, RunId};

/// One problem found in a workflow definition, at a path such as `steps[1].parameters.prompt`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Where in the definition.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found by one validation, shown one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// What can go wrong in bear-agents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The definition is not well-formed JSON or YAML, or has the wrong shape.
    #[error("the workflow definition cannot be read: {path}: {message}")]
    Parse {
        /// Where (`steps[0].retries`, or `line 3 column 7`).
        path: String,
        /// What the parser expected.
        message: String,
    },
    /// The definition parsed but is not a valid workflow.
    #[error("the workflow definition has {} problem(s):\n{problems}", problems.0.len())]
    Invalid {
        /// Every problem found.
        problems: Problems,
    },
    /// A run was started without an input its definition requires, or with an undeclared one.
    #[error("input `{name}`: {message}")]
    Input {
        /// The input's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// No run with this id exists.
    #[error("no workflow run `{0}`; `bear workflow list` shows the runs")]
    RunNotFound(RunId),
    /// The run cannot take this request in its current state.
    #[error("run `{run}` is {status}: {message}")]
    RunState {
        /// The run.
        run: RunId,
        /// Its status.
        status: &'static str,
        /// Why the request cannot be applied.
        message: &'static str,
    },
    /// No registered agent can do this kind of work.
    #[error("no agent can run {what}; register one with the capability `{capability}`")]
    NoAgent {
        /// The step or task.
        what: String,
        /// The capability missing.
        capability: String,
    },
    /// An agent id is already taken, or unknown.
    #[error("agent `{id}`: {message}")]
    Agent {
        /// The agent.
        id: String,
        /// What is wrong.
        message: &'static str,
    },
    /// Another instance took the run over: this one's lease expired (it stalled, or lost the
    /// database for longer than the lease).
    #[error("workflow run `{run}`: another instance took it over when this one's lease expired")]
    LeaseLost {
        /// The run.
        run: RunId,
    },
    /// The database's runs are sealed under another keyring than this instance's.
    #[error(
        "the workflow database's runs are sealed under another keyring than this instance's: \
         start every instance sharing it with the same keyring (the same key file or passphrase)"
    )]
    OtherKeyring,
    /// The run database failed.
    #[error("workflow database: {0}")]
    Database(String),
    /// The shared database cannot be reached at start: a configuration to check.
    #[error(
        "cannot reach {what} ({reason}); check `[storage] database_url` and that the server is \
         running and accepts this host"
    )]
    Unreachable {
        /// The database, without credentials.
        what: String,
        /// sqlx's reason (no credentials).
        reason: String,
    },
    /// A backend reached through a bear-core trait failed.
    #[error(transparent)]
    Core(#[from] bear_core::Error),
}

impl Error {
    /// The failure class, for exit codes and HTTP statuses.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Parse { .. } | Self::Invalid { .. } | Self::Input { .. } => {
                ErrorKind::InvalidRequest
            }
            Self::RunNotFound(_) => ErrorKind::NotFound,
            Self::RunState { .. } | Self::Agent { .. } => ErrorKind::InvalidRequest,
            Self::NoAgent { .. } | Self::LeaseLost { .. } => ErrorKind::Unavailable,
            Self::Database(_) => ErrorKind::Storage,
            Self::Unreachable { .. } => ErrorKind::Config,
            Self::OtherKeyring => ErrorKind::Security,
            Self::Core(e) => e.kind(),
        }
    }

    pub(crate) fn db(e: sqlx::Error) -> Self {
        // sqlx errors name SQL and the database file, never bound values.
        Self::Database(e.to_string())
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::db(e)
    }
}

impl From<Error> for bear_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(c) => c,
            other => bear_core::Error::backend(other.kind(), other.to_string()),
        }
    }
}

/// `Result` with bear-agents' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
