//! The error conventions shared by every BEAR crate.
//!
//! Each library crate has its own `thiserror` enum; at a trait boundary (a [`crate::TextGenerator`]
//! called by bear-agents, say) errors travel as this crate's [`Error`], which keeps the failure
//! class ([`ErrorKind`]) so callers can map it to an exit code or an HTTP status without matching
//! on strings. Messages are lowercase, say what failed and what to do, and never contain user
//! text: anything that might be user text is wrapped in [`Redacted`].

use std::fmt;
use std::path::PathBuf;

/// `Result` with bear-core's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The class of a failure, stable across crates. Front ends map it to exit codes and statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller asked for something malformed or out of range (HTTP 400/422).
    InvalidRequest,
    /// A named thing (model, document, run, plugin) does not exist (HTTP 404).
    NotFound,
    /// Configuration is missing or malformed.
    Config,
    /// A model file could not be loaded or is not a model.
    ModelLoad,
    /// Persistent storage failed (LanceDB, SQLite, the filesystem).
    Storage,
    /// A sandboxed plugin trapped, overran a limit or asked for what it was not granted.
    Sandbox,
    /// The operation was cancelled by its caller.
    Cancelled,
    /// The operation ran past its deadline.
    Timeout,
    /// A resource is busy or exhausted; retrying later may succeed (HTTP 503).
    Unavailable,
    /// A security check failed: authentication, permission, integrity or decryption.
    Security,
    /// A bug or an unexpected state inside BEAR.
    Internal,
}

impl ErrorKind {
    /// The snake_case name used in JSON errors and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::NotFound => "not_found",
            Self::Config => "config",
            Self::ModelLoad => "model_load",
            Self::Storage => "storage",
            Self::Sandbox => "sandbox",
            Self::Cancelled => "cancelled",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Security => "security",
            Self::Internal => "internal",
        }
    }

    /// The kind named `name` ([`Self::as_str`]'s inverse); `None` for any other name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::InvalidRequest,
            Self::NotFound,
            Self::Config,
            Self::ModelLoad,
            Self::Storage,
            Self::Sandbox,
            Self::Cancelled,
            Self::Timeout,
            Self::Unavailable,
            Self::Security,
            Self::Internal,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// bear-core's error: configuration errors, identifier errors, and the boundary error that
/// backends return through the traits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is wrong. `origin` is the file (or `environment`), `key` the dotted
    /// key or variable name, `expected` what would have been accepted.
    #[error("invalid configuration in {origin}: key `{key}`: expected {expected}{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Config {
        /// The file the value came from, or `environment` for `BEAR_*` variables.
        origin: String,
        /// The dotted key path (`models.default_generator`) or environment variable name.
        key: String,
        /// What a valid value looks like.
        expected: String,
        /// Parser detail (position, type found); never the value itself.
        detail: Option<String>,
    },
    /// A configuration file exists but is not valid TOML.
    #[error(
        "configuration file {path} is not valid TOML at line {line}, column {column}: {reason}; fix the file or pass another with --config"
    )]
    ConfigSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's reason, without the offending text.
        reason: String,
    },
    /// An identifier failed validation.
    #[error("invalid {what} id: {reason}")]
    InvalidId {
        /// Which kind of identifier.
        what: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A failure reported by a backend through one of the traits.
    #[error("{kind}: {message}")]
    Backend {
        /// The failure class.
        kind: ErrorKind,
        /// What failed and what to do; never user text.
        message: String,
    },
}

impl Error {
    /// A backend error of the given class. `message` must not contain user text.
    pub fn backend(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Backend {
            kind,
            message: message.into(),
        }
    }

    /// The failure class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Config { .. } | Self::ConfigSyntax { .. } => ErrorKind::Config,
            Self::InvalidId { .. } => ErrorKind::InvalidRequest,
            Self::Backend { kind, .. } => *kind,
        }
    }
}

/// Replaces every double-quoted stretch of a parser's message with `"…"`. Parsers (serde,
/// axum's extractors) quote the offending value (`invalid type: string "..."`), which can be a
/// prompt or a document; the path and the expectation stay.
pub fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            out.push_str(if inside { "…\"" } else { "\"" });
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

/// A value that must never be printed: user text, prompts, PII, key material.
///
/// `Debug` and `Display` print only the length, so a `Redacted` can sit inside an error or a
/// log field without leaking. Read the value with [`Redacted::expose`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    /// Wraps a sensitive value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The wrapped value. Call sites of `expose` are where sensitive data leaves the wrapper.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: AsRef<[u8]>> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.as_ref().len())
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_dropped_from_parser_messages() {
        assert_eq!(
            redact_quoted(r#"steps[0].retries: invalid type: string "Jane Roe", expected u32"#),
            r#"steps[0].retries: invalid type: string "…", expected u32"#
        );
        assert_eq!(redact_quoted("no quotes"), "no quotes");
    }

    #[test]
    fn redacted_never_prints_its_value() {
        let secret = Redacted::new(String::from("Jane Doe, SSN 123-45-6789"));
        assert_eq!(format!("{secret}"), "<redacted 25 bytes>");
        assert_eq!(format!("{secret:?}"), "<redacted 25 bytes>");
        assert_eq!(secret.expose(), "Jane Doe, SSN 123-45-6789");
    }

    #[test]
    fn kinds_round_trip_through_errors() {
        let err = Error::backend(ErrorKind::NotFound, "model `x` is not in the registry");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            err.to_string(),
            "not_found: model `x` is not in the registry"
        );
        let json = serde_json::to_string(&ErrorKind::InvalidRequest).unwrap();
        assert_eq!(json, "\"invalid_request\"");
    }
}
