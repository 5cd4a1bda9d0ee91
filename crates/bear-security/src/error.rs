//! bear-security's error type. Messages name files, keys, positions and what to do; they never
//! hold user text, PII, passphrases or key material.

use std::path::PathBuf;

use bear_core::ErrorKind;

/// `Result` with bear-security's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in detection, scrubbing, encryption, auditing and key handling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A custom pattern from the configuration does not compile or is too large.
    #[error(
        "custom PII pattern `{name}` is invalid: {reason}; fix it under [[pii.patterns]] in the configuration"
    )]
    Pattern {
        /// The pattern's configured name.
        name: String,
        /// The compiler's reason (position and kind, never matched text).
        reason: String,
    },
    /// A configuration value for the security layer is out of range.
    #[error("invalid security setting `{key}`: {expected}")]
    Setting {
        /// The dotted key.
        key: String,
        /// What would have been accepted.
        expected: String,
    },
    /// The input is not valid UTF-8 and the configuration refuses such input.
    #[error(
        "input is not valid UTF-8 at byte {offset}; pass --invalid-utf8 replace (or set pii.invalid_utf8 = \"replace\") to scrub the valid parts"
    )]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: u64,
    },
    /// The input looks like a binary file (it holds NUL bytes).
    #[error("input looks binary (NUL byte at offset {offset}); BEAR scrubs text files only")]
    Binary {
        /// Offset of the first NUL byte.
        offset: u64,
    },
    /// The input is empty where text was required.
    #[error("input is empty")]
    EmptyInput,
    /// A passphrase or key file did not open the keyring.
    #[error(
        "wrong passphrase or key: the keyring at {path} could not be unlocked; check BEAR_PASSPHRASE or the key file"
    )]
    WrongKey {
        /// The keyring file.
        path: PathBuf,
    },
    /// Authenticated decryption failed: the data was changed, truncated, or sealed for another
    /// record or key.
    #[error(
        "integrity check failed for {what}: {reason}; the file was modified, truncated or belongs to another key"
    )]
    Integrity {
        /// What was being opened (a file path or a record kind).
        what: String,
        /// Which check failed.
        reason: String,
    },
    /// A file is not in the expected format or version.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The collection's data key does not exist (never created, or destroyed by crypto-shredding).
    #[error(
        "no data key for collection `{collection}`: it was never created or has been deleted (its data is unreadable by design)"
    )]
    NoDataKey {
        /// The collection name.
        collection: String,
    },
    /// No keyring exists yet.
    #[error("no keyring at {path}; run `bear keys init` first")]
    NoKeyring {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A key file is readable by other users.
    #[error(
        "key file {path} has permissions {mode:o}; it must be readable by its owner only (chmod 600 {path})"
    )]
    KeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// An audit record could not be written and the log is fail-closed.
    #[error(
        "audit record could not be written to {path} ({source}); the operation was refused because auditing is fail-closed"
    )]
    AuditWrite {
        /// The audit log.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `verify` found a bad record.
    #[error("audit log {path} is broken at line {line}: {reason}")]
    AuditBroken {
        /// The audit log.
        path: PathBuf,
        /// 1-based line number of the first bad record.
        line: u64,
        /// What is wrong there.
        reason: String,
    },
    /// An API key was missing, unknown or lacks the permission.
    #[error("{0}")]
    Denied(String),
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`cannot read`, `cannot write`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The system random generator or a primitive failed (should not happen).
    #[error("cryptographic primitive failed: {0}")]
    Crypto(&'static str),
}

impl Error {
    /// The failure class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Pattern { .. } | Self::Setting { .. } => ErrorKind::Config,
            Self::InvalidUtf8 { .. } | Self::Binary { .. } | Self::EmptyInput => {
                ErrorKind::InvalidRequest
            }
            Self::WrongKey { .. }
            | Self::Integrity { .. }
            | Self::KeyFilePermissions { .. }
            | Self::Denied(_)
            | Self::AuditBroken { .. }
            | Self::NoDataKey { .. } => ErrorKind::Security,
            Self::NoKeyring { .. } => ErrorKind::NotFound,
            Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Self::Format { .. } | Self::Io { .. } | Self::AuditWrite { .. } => ErrorKind::Storage,
            Self::Crypto(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl From<Error> for bear_core::Error {
    fn from(e: Error) -> Self {
        bear_core::Error::backend(e.kind(), e.to_string())
    }
}
