//! Plugins as the configuration asks for them: one sandbox host with the trust policy and the
//! `bear.scrub` host function, and the plugins found in the plugin directories.

use std::sync::Arc;

use bear_plugins::{HostConfig, PluginHost, Registry, TrustPolicy};

use crate::{LoadedConfig, Result};

/// The sandbox host for `[plugins]`: fuel metering, the trust policy, and `bear.scrub` with the
/// configured PII rules under the `replace` policy (no keyring: a plugin never receives
/// reversible tokens).
pub fn host(loaded: &LoadedConfig) -> Result<Arc<PluginHost>> {
    let p = &loaded.config.plugins;
    let host = PluginHost::new(HostConfig {
        fuel: true,
        trust: TrustPolicy {
            require_signature: p.require_signature,
            trusted_keys: p.trusted_keys.clone(),
        },
    })?;
    let scrubber = bear_security::Scrubber::replacing(&loaded.config.pii)?;
    Ok(Arc::new(host.with_scrubber(Arc::new(scrubber))))
}

/// Every plugin found in the plugin directories, each loaded after its dependencies, and one
/// warning per plugin left out.
pub fn load_all(loaded: &LoadedConfig) -> Result<(Registry, Vec<String>)> {
    let mut reg = Registry::new(host(loaded)?);
    let warnings = reg.load_all(&loaded.config.plugins.search_dirs(&loaded.dirs));
    Ok((reg, warnings))
}

/// A loaded plugin: `GET /api/v1/plugins`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct PluginView {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it does.
    pub description: String,
    /// What it was granted: directories, environment, memory, time, fuel, output size, host
    /// functions.
    #[schema(value_type = Object)]
    pub capabilities: bear_plugins::Capabilities,
    /// Its tools.
    pub tools: Vec<ToolView>,
}

/// One tool of a [`PluginView`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ToolView {
    /// The tool's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its input.
    #[schema(value_type = Object)]
    pub input_schema: serde_json::Value,
    /// JSON Schema of its output.
    #[schema(value_type = Object)]
    pub output_schema: serde_json::Value,
}

impl PluginView {
    /// The view of a plugin's manifest.
    pub fn of(m: &bear_plugins::Manifest) -> Self {
        Self {
            name: m.name.clone(),
            version: m.version.clone(),
            description: m.description.clone(),
            capabilities: m.capabilities.clone(),
            tools: m
                .tools
                .iter()
                .map(|t| ToolView {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    input_schema: t.input_schema.clone(),
                    output_schema: t.output_schema.clone(),
                })
                .collect(),
        }
    }
}

/// A tool call's result: `POST /api/v1/plugins/{name}/tools/{tool}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ToolRun {
    /// The tool's output, valid against its `output_schema`.
    #[schema(value_type = Object)]
    pub output: serde_json::Value,
    /// Lines the plugin logged through `bear.log` (at most 100).
    pub logs: Vec<LogLine>,
    /// Lines dropped by the log rate limit.
    pub logs_dropped: u32,
}

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// `error`, `warn`, `info` or `debug`.
    pub level: String,
    /// The text (cut at 2 KiB).
    pub message: String,
}

impl From<bear_plugins::CallOutput> for ToolRun {
    fn from(c: bear_plugins::CallOutput) -> Self {
        Self {
            output: c.output,
            logs: c
                .logs
                .into_iter()
                .map(|l| LogLine {
                    level: l.level,
                    message: l.message,
                })
                .collect(),
            logs_dropped: c.logs_dropped,
        }
    }
}
