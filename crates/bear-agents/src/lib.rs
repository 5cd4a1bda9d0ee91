//! bear-agents: the durable multi-agent workflow engine.
//!
//! Layer **L3**; depends on bear-core and L1 crates only. It reaches models, retrieval, plugins
//! and PII scrubbing through bear-core's traits (`TextGenerator`, `Retriever`, `Tool`,
//! `PiiScrubber`) and persists runs through `WorkflowStateStore`, so any backend can be wired in
//! by the L4 front ends.
//!
//! Invariants (binding on the code this crate will hold):
//! - A completed step never runs twice, even across a crash and restart.
//! - Every state transition is published on bear-core's event bus.
//!
//! Status: empty; the engine is the bear-agents issue's work.
