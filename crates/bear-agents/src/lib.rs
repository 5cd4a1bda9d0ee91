//! bear-agents: the durable multi-agent workflow engine.
//!
//! Layer **L3**; depends on bear-core only. It reaches models, retrieval, plugins and PII
//! scrubbing through bear-core's traits (`TextGenerator`, `Retriever`, `Tool`, `PiiScrubber`),
//! gathered in [`Backends`], and persists runs through `WorkflowStateStore` ([`SqlStore`] on SQLite or
//! PostgreSQL, or [`MemoryStore`] for runs that need not outlive the process). The L4 front ends wire the
//! concrete backends in.
//!
//! - [`definition`]: the JSON/YAML workflow shape, parsing, validation into a [`Plan`].
//! - [`agent`]: the five roles, the [`Registry`] and the seed's adaptive [`LoadBalancer`].
//! - [`executor`]: one attempt of one step, through the traits.
//! - [`engine`]: DAG scheduling, timeouts, retries, cancel/pause/resume, crash recovery.
//! - [`store`]: SQLite or PostgreSQL (sqlx, leases, migrations) and in-memory persistence.
//! - [`roles`]: coordinator planning, the monitor, the legal specialist's prompts.
//! - [`patterns`]: the seed's delegation, pipeline and collaborative patterns.
//!
//! Invariants:
//! - A completed step never runs twice, even across a crash and restart: its output is
//!   persisted before any dependent starts, and recovery starts only non-completed steps.
//! - Every state transition is persisted by the run's single driver task, then published on
//!   bear-core's event bus.
//! - Errors and events name steps, paths and error classes, never inputs or outputs.

pub mod agent;
pub mod definition;
pub mod engine;
pub mod error;
pub mod executor;
pub mod patterns;
pub mod roles;
pub mod store;

pub use agent::{
    AgentConfig, AgentInfo, AgentKind, AgentMetrics, AgentRef, AgentSpec, AgentStatus, Catalog,
    CurrentTask, LoadBalancer, Registry,
};
pub use definition::{FailurePolicy, Needs, Plan, StepDef, StepKind, Workflow};
pub use engine::{Engine, EngineConfig, Progress, RunHandle, StepProgress};
pub use error::{Error, Problem, Result};
pub use executor::Backends;
pub use roles::{Coordinator, Monitor, MonitorReport, Task};
pub use store::{Dialect, MemoryStore, SqlStore};

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
