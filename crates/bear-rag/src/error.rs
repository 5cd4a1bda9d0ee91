//! bear-rag's error type. Messages name paths, collections and limits, never document text.

use std::path::PathBuf;

use crate::extract::Refusal;

/// Result alias for bear-rag.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ingestion, storage and retrieval.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One document was refused or could not be read; an ingest reports it and goes on.
    #[error("{}: {reason}", path.display())]
    Document {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: Refusal,
    },
    /// A collection name that cannot be used.
    #[error(
        "invalid collection name `{name}`: use 1 to 64 characters from a-z, 0-9, `-` and `_`, starting with a letter or digit"
    )]
    InvalidCollectionName {
        /// The name given.
        name: String,
    },
    /// The collection does not exist.
    #[error(
        "no collection named `{name}`; create it with `bear collections create {name}` or ingest into it"
    )]
    NoCollection {
        /// The name given.
        name: String,
    },
    /// The collection already exists.
    #[error("collection `{name}` already exists")]
    CollectionExists {
        /// The name given.
        name: String,
    },
    /// The collection was made with another embedder, so its vectors cannot be compared.
    #[error(
        "collection `{name}` was built with embedder `{built_with}` ({dim} dimensions), not `{requested}`; re-create it to change the embedder"
    )]
    EmbedderMismatch {
        /// The collection.
        name: String,
        /// The embedder its vectors come from.
        built_with: String,
        /// Their dimension.
        dim: usize,
        /// The embedder offered now.
        requested: String,
    },
    /// No document with that id or path in the collection.
    #[error("no document `{what}` in collection `{collection}`")]
    NoDocument {
        /// The collection.
        collection: String,
        /// The id or path given.
        what: String,
    },
    /// A request that is malformed or out of range.
    #[error("{0}")]
    InvalidRequest(String),
    /// A sealed collection's file failed its integrity check, or its data key is gone.
    #[error(transparent)]
    Sealed(bear_security::Error),
    /// The collection is sealed and this store was given no keys.
    #[error(
        "collection `{name}` is sealed and the keyring is not open; set BEAR_PASSPHRASE or security.key_file"
    )]
    Locked {
        /// The collection.
        name: String,
    },
    /// A plain collection from before sealing, which BEAR no longer opens until converted.
    #[error(
        "collection `{name}` was written by an earlier BEAR and is not sealed; run `bear migrate` to seal it in place (stop bear-server first)"
    )]
    NeedsMigration {
        /// The collection.
        name: String,
    },
    /// LanceDB failed.
    #[error("storage ({op}): {reason}")]
    Storage {
        /// What was being done.
        op: &'static str,
        /// LanceDB's message.
        reason: String,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The embedder, scrubber or generator failed.
    #[error(transparent)]
    Backend(#[from] bear_core::Error),
    /// The caller cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// A storage failure; one that a sealed file's integrity check or a missing key caused
    /// (deep in Lance's error chain) becomes [`Self::Sealed`].
    pub(crate) fn storage(op: &'static str, e: impl std::error::Error + 'static) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cause {
            if let Some(s) = c.downcast_ref::<bear_security::Error>() {
                match s {
                    bear_security::Error::Integrity { what, reason } => {
                        return Self::Sealed(bear_security::Error::Integrity {
                            what: what.clone(),
                            reason: reason.clone(),
                        });
                    }
                    bear_security::Error::NoDataKey { collection } => {
                        return Self::Sealed(bear_security::Error::NoDataKey {
                            collection: collection.clone(),
                        });
                    }
                    _ => {}
                }
            }
            cause = c.source();
        }
        Self::Storage {
            op,
            reason: e.to_string(),
        }
    }

    /// The bear-core kind of this error.
    pub fn kind(&self) -> bear_core::ErrorKind {
        use bear_core::ErrorKind as K;
        match self {
            Self::Document { .. }
            | Self::InvalidCollectionName { .. }
            | Self::InvalidRequest(_) => K::InvalidRequest,
            Self::EmbedderMismatch { .. } => K::Config,
            Self::NoCollection { .. } | Self::NoDocument { .. } => K::NotFound,
            Self::CollectionExists { .. } => K::InvalidRequest,
            Self::Storage { .. } | Self::Io { .. } => K::Storage,
            Self::Backend(e) => e.kind(),
            Self::Cancelled => K::Cancelled,
            Self::Sealed(e) => e.kind(),
            Self::Locked { .. } => K::Security,
            Self::NeedsMigration { .. } => K::Unavailable,
        }
    }
}

impl From<Error> for bear_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Backend(e) => e,
            other => bear_core::Error::backend(other.kind(), other.to_string()),
        }
    }
}
