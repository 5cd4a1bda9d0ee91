//! bear-security: PII detection and scrubbing, encryption at rest, secure memory, audit, keys.
//!
//! Layer **L1**; depends only on bear-core. It implements bear-core's `PiiScrubber` and owns
//! every cryptographic primitive BEAR uses (ring for AES-256-GCM, HMAC-SHA256 and PBKDF2;
//! memsec and zeroize for key buffers). No other crate links ring or memsec directly.
//!
//! - [`detect`]: the PII detector (one linear-time multi-pattern pass, checksums, context).
//! - [`scrub`]: policies per entity type, consistent numbering, the reversible token [`vault`].
//! - [`crypto`]: the keyring (master key from passphrase or key file, wrapped per-collection
//!   data keys, rotation, crypto-shredding) and the sealed record file format.
//! - [`audit`]: the hash-chained, metadata-only JSONL audit log.
//! - [`access`]: API keys and roles; [`session`]: browser sessions standing for a key.
//! - [`sign`]: SHA-256 content hashes and Ed25519 signatures.
//! - [`secret`]: mlock'ed, zeroized buffers for keys and vault contents.
//!
//! Invariants:
//! - Secrets and PII never reach a log line, an error message or an audit record.
//! - Secret types implement neither `Debug` nor `Display`, and are zeroized on drop.
//! - Nothing here opens a network connection.

pub mod access;
pub mod audit;
pub mod crypto;
pub mod detect;
mod error;
pub mod scrub;
pub mod secret;
pub mod session;
pub mod sign;
pub mod vault;

pub use access::{ApiKey, ApiKeyRecord, ApiKeyStore, Permission, Role};
pub use audit::{AuditEvent, AuditLog, AuditRecord, VerifyReport};
pub use bear_core::{CustomPattern, DenyList, InvalidUtf8, PiiConfig, PiiPolicy as Policy};
pub use crypto::{FileKeys, KeySource, Keyring, KeyringStatus, MasterKey, MasterKind};
pub use detect::{Detector, Finding};
pub use error::{Error, Result};
pub use scrub::{PolicyScrubbers, Scrubbed, Scrubber, Session, StreamReport};
pub use secret::SecretBytes;
pub use vault::Vault;
