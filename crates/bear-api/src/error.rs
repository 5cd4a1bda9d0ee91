//! bear-api's errors: the library's [`Error`] and [`ApiError`], the structured JSON body every
//! failed request gets, bear-app's [`ErrorBody`](bear_app::ErrorBody): `{"error": {"kind",
//! "message", "field", "request_id"}}` with a status from the failure class.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bear_core::ErrorKind;
use bear_core::error::redact_quoted;

/// What can go wrong while setting the API up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration forbids what was asked (a public bind without API keys).
    #[error("{0}")]
    Refused(String),
    /// The API key store or another security component failed.
    #[error(transparent)]
    Security(#[from] bear_security::Error),
    /// The workflow engine failed to start.
    #[error(transparent)]
    Agents(#[from] bear_agents::Error),
    /// Binding or serving failed.
    #[error("cannot serve on {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// `Result` with bear-api's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed request, rendered as JSON. Messages never contain request bodies.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The failure class, as in every BEAR error.
    pub kind: &'static str,
    /// What failed and what to do.
    pub message: String,
    /// Seconds until a rate-limited caller may retry.
    pub retry_after: Option<u64>,
    /// The request field at fault, where there is one.
    pub field: Option<String>,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after: None,
            field: None,
        }
    }

    /// 401: no key, or not a valid one.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: a valid key without the permission.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422: the body parsed but a field is wrong; `message` names the field path.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry after the number of seconds in Retry-After",
            )
        }
    }

    /// The status for a failure class.
    pub fn status_of(kind: ErrorKind) -> StatusCode {
        match kind {
            ErrorKind::InvalidRequest => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Security => StatusCode::FORBIDDEN,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Cancelled => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// From any BEAR failure class and message.
    pub fn from_kind(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::new(Self::status_of(kind), kind.as_str(), message)
    }
}

impl From<bear_core::Error> for ApiError {
    fn from(e: bear_core::Error) -> Self {
        Self::from_kind(e.kind(), e.to_string())
    }
}

impl From<bear_app::Error> for ApiError {
    fn from(e: bear_app::Error) -> Self {
        Self {
            field: e.field().map(String::from),
            ..Self::from_kind(e.kind(), e.to_string())
        }
    }
}

impl ApiError {
    /// A failure of an operation whose fields came from the query string: a bad field is the
    /// request line's fault, 400 (as a malformed query is), not 422.
    pub fn from_query(e: bear_app::Error) -> Self {
        let mut a = Self::from(e);
        if a.kind == "invalid_request" {
            a.status = StatusCode::BAD_REQUEST;
        }
        a
    }
}

impl From<bear_agents::Error> for ApiError {
    fn from(e: bear_agents::Error) -> Self {
        Self::from_kind(e.kind(), e.to_string())
    }
}

impl From<bear_security::Error> for ApiError {
    fn from(e: bear_security::Error) -> Self {
        Self::from_kind(e.kind(), e.to_string())
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as J;
        let (status, kind) = buffer_status(r.status(), &r.body_text());
        // serde's messages can quote values from the body: keep the path and the expectation,
        // drop quoted text.
        let message = match &r {
            J::JsonDataError(_) | J::JsonSyntaxError(_) => redact_quoted(&r.body_text()),
            _ => r.body_text(),
        };
        Self::new(status, kind, message)
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            redact_quoted(&r.body_text()),
        )
    }
}

/// The status and kind for a body that could not be read: too large (413), stalled (408), or
/// otherwise invalid.
fn buffer_status(status: StatusCode, text: &str) -> (StatusCode, &'static str) {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        (status, "payload_too_large")
    } else if text.contains(crate::gateway::BODY_STALLED) {
        (StatusCode::REQUEST_TIMEOUT, "timeout")
    } else {
        (status, "invalid_request")
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        let (status, kind) = buffer_status(r.status(), &r.body_text());
        Self::new(status, kind, r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = bear_app::ErrorBody::with_kind_name(self.kind, self.message, self.field);
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}
