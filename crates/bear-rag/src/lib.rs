//! bear-rag: document ingestion, chunking, the LanceDB store and retrieval.
//!
//! Layer **L2**; depends on bear-core (and L1 crates). It reaches embedders, generators and the
//! PII scrubber only through bear-core's traits, so it never depends on bear-models or
//! bear-security's concrete types. It will implement bear-core's `Retriever` over LanceDB
//! (`LanceStore`).
//!
//! Invariants (binding on the code this crate will hold):
//! - Documents never leave the machine: LanceDB is used as an embedded database on local paths.
//! - lancedb and arrow are dependencies of this crate only, with arrow-array on lancedb's major.
//!
//! Status: the stack is proven to build and open a LanceDB table (see the crate's tests);
//! ingestion and retrieval are the bear-rag issue's work and are not here yet.
