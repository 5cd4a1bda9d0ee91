//! [`WasmtimeTool`]: one tool of a loaded plugin behind bear-core's `Tool` trait.

use std::sync::Arc;

use bear_core::{CancellationToken, Tool, ToolSpec};

use crate::host::LoadedPlugin;
use crate::{Error, Result};

/// A plugin tool callable through [`Tool`]; the call runs on a blocking thread.
pub struct WasmtimeTool {
    plugin: Arc<LoadedPlugin>,
    spec: ToolSpec,
}

impl std::fmt::Debug for WasmtimeTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmtimeTool")
            .field("tool", &self.spec.name)
            .finish()
    }
}

impl WasmtimeTool {
    /// The tool `name` of `plugin`.
    pub fn new(plugin: Arc<LoadedPlugin>, name: &str) -> Result<Self> {
        let decl = plugin
            .manifest()
            .tools
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "plugin `{}` has no tool `{name}`",
                    plugin.manifest().name
                ))
            })?;
        let spec = ToolSpec {
            name: decl.name.clone(),
            description: decl.description.clone(),
            input_schema: decl.input_schema.clone(),
            output_schema: decl.output_schema.clone(),
        };
        Ok(Self { plugin, spec })
    }

    /// Every tool of `plugin`.
    pub fn all(plugin: &Arc<LoadedPlugin>) -> Vec<Self> {
        plugin
            .manifest()
            .tools
            .iter()
            .filter_map(|t| Self::new(plugin.clone(), &t.name).ok())
            .collect()
    }
}

#[async_trait::async_trait]
impl Tool for WasmtimeTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        input: serde_json::Value,
        cancel: CancellationToken,
    ) -> bear_core::Result<serde_json::Value> {
        let plugin = self.plugin.clone();
        let name = self.spec.name.clone();
        let out = tokio::task::spawn_blocking(move || plugin.call(&name, &input, Some(&cancel)))
            .await
            .map_err(|_| Error::Host("the plugin call's thread failed".into()))??;
        Ok(out)
    }
}
