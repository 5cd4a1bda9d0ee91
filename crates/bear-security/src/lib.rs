//! bear-security: PII detection and scrubbing, encryption at rest, secure memory, audit, keys.
//!
//! Layer **L1**; depends only on bear-core. It will implement bear-core's `PiiScrubber` and own
//! every cryptographic primitive BEAR uses (ring for AES-256-GCM, HMAC-SHA256 and PBKDF2;
//! memsec and zeroize for key buffers). No other crate links ring or memsec directly.
//!
//! Invariants (binding on the code this crate will hold):
//! - Secrets and PII never reach a log line, an error message or an audit record.
//! - Secret types implement neither `Debug` nor `Display`, and are zeroized on drop.
//! - Nothing here opens a network connection.
//!
//! Status: the stack is proven to build and link (see the crate's tests); detection, scrubbing,
//! the vault, the audit log and API keys are the bear-security issue's work and are not here yet.
