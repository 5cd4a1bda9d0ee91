//! bear-app's error type, and [`ErrorBody`], the one JSON shape an error has on every front end
//! (`bear --json` on stderr, every REST error body).

use std::path::PathBuf;

use bear_core::ErrorKind;
use serde::{Deserialize, Serialize};

/// `Result` with bear-app's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can make an operation fail. Messages say what failed and what to do, and never hold
/// user text (questions, prompts, document text, PII) or key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request field is malformed or out of range; `field` is its path in the request.
    #[error("{field}: {message}")]
    InvalidRequest {
        /// The field's path, as the request names it (`k`, `filter.after`).
        field: String,
        /// What is wrong and what is accepted.
        message: String,
    },
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
    /// Document extraction, storage or retrieval failed.
    #[error(transparent)]
    Rag(#[from] bear_rag::Error),
    /// A workflow or agent operation failed.
    #[error(transparent)]
    Agents(#[from] bear_agents::Error),
    /// The control socket could not be bound, reached or understood.
    #[error("control socket {path}: {reason}")]
    Control {
        /// The socket file.
        path: PathBuf,
        /// What failed and what to do.
        reason: String,
    },
    /// bear-server answered a control request with an error.
    #[error("bear-server: {}", .0.message)]
    Server(ErrorDetail),
    /// A configuration file named with --config or BEAR_CONFIG could not be read.
    #[error(
        "cannot read configuration file {path}: {source}; check the path given with --config or BEAR_CONFIG"
    )]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// An invalid request field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The failure class, which picks the CLI's exit code and the HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidRequest { .. } => ErrorKind::InvalidRequest,
            Self::Core(e) => e.kind(),
            Self::Hw(e) => e.kind(),
            Self::Models(e) => e.kind(),
            Self::Security(e) => e.kind(),
            Self::Plugins(e) => e.kind(),
            Self::Rag(e) => e.kind(),
            Self::Agents(e) => e.kind(),
            Self::ConfigRead { .. } => ErrorKind::Config,
            Self::Control { .. } => ErrorKind::Unavailable,
            Self::Server(d) => ErrorKind::from_name(&d.kind).unwrap_or(match d.kind.as_str() {
                "forbidden" | "unauthorized" => ErrorKind::Security,
                "payload_too_large" => ErrorKind::InvalidRequest,
                _ => ErrorKind::Internal,
            }),
        }
    }

    /// The request field at fault, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidRequest { field, .. } => Some(field),
            Self::Server(d) => d.field.as_deref(),
            _ => None,
        }
    }

    /// This error as the wire shape every front end prints.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(
            self.kind(),
            self.to_string(),
            self.field().map(String::from),
        )
    }
}

/// `{"error": {...}}`: an error as every front end shows it to programs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The parts of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The failure class: `invalid_request`, `not_found`, `config`, `model_load`, `storage`,
    /// `sandbox`, `cancelled`, `timeout`, `unavailable`, `security`, `internal` (and, over
    /// REST, `unauthorized`, `forbidden`, `conflict`, `rate_limited`, `payload_too_large`).
    pub kind: String,
    /// What failed and what to do; never user text.
    pub message: String,
    /// The request field at fault, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's id (REST only; also in the `x-request-id` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ErrorBody {
    /// An error body of class `kind`.
    pub fn new(kind: ErrorKind, message: String, field: Option<String>) -> Self {
        Self::with_kind_name(kind.as_str(), message, field)
    }

    /// An error body whose class has no [`ErrorKind`] (the gateway's own refusals).
    pub fn with_kind_name(kind: &str, message: String, field: Option<String>) -> Self {
        Self {
            error: ErrorDetail {
                kind: kind.to_string(),
                message,
                field,
                request_id: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_field_is_named_in_the_body_and_the_message() {
        let e = Error::invalid("k", "from 1 to 100");
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        let v = serde_json::to_value(e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"kind": "invalid_request",
                "message": "k: from 1 to 100", "field": "k"}})
        );
    }
}
