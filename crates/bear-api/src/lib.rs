//! bear-api: the REST API (the seed's `/api/v1` plus OpenAI-compatible routes) on axum.
//!
//! Layer **L4**: it may depend on every library crate below it and wires concrete backends
//! together for `bins/bear-server`.
//!
//! Invariants (binding on the code this crate will hold):
//! - Listens on loopback unless API keys are configured; never opens an outgoing connection.
//! - Every route but `/health` requires a key; every error is a structured JSON error.
//!
//! Status: empty; the API is the bear-api issue's work.
