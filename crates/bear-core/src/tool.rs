//! Tools: named functions taking JSON and returning JSON, described by a schema.

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::Result;

/// What a tool is called and what it accepts and returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Unique name within its provider, such as `extract_citations`.
    pub name: String,
    /// One sentence for people and planners.
    pub description: String,
    /// JSON Schema of the input.
    pub input_schema: serde_json::Value,
    /// JSON Schema of the output.
    pub output_schema: serde_json::Value,
}

/// A callable tool.
///
/// Implemented by bear-plugins' `WasmtimeTool` (sandboxed WebAssembly plugins) and by built-in
/// tools. Called by bear-agents for `tool_execution` steps and by bear-api's plugin routes.
///
/// Callers may assume:
/// - an input that does not match [`ToolSpec::input_schema`] fails with
///   [`crate::ErrorKind::InvalidRequest`] and the tool never runs;
/// - a tool that traps, overruns its limits or returns invalid JSON fails with
///   [`crate::ErrorKind::Sandbox`]; the caller's process is unaffected;
/// - after `cancel` fires the call returns promptly with [`crate::ErrorKind::Cancelled`].
#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    /// The tool's description and schemas.
    fn spec(&self) -> &ToolSpec;

    /// Calls the tool.
    async fn call(
        &self,
        input: serde_json::Value,
        cancel: CancellationToken,
    ) -> Result<serde_json::Value>;
}
