//! Plugins as the configuration asks for them: one sandbox host with the trust policy and the
//! `bear.scrub` host function, the plugins found in the plugin directories, and the plugin
//! operations (list, info, validate, run a tool) both front ends offer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bear_core::CancellationToken;
use bear_plugins::{HostConfig, LoadedPlugin, Manifest, PluginHost, Registry, TrustPolicy};

use crate::{Error, LoadedConfig, Result};

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

/// The plugin directories the configuration names, in search order.
fn roots(loaded: &LoadedConfig) -> Vec<PathBuf> {
    loaded.config.plugins.search_dirs(&loaded.dirs)
}

/// Whether a plugin found on disk can be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginStatus {
    /// Its manifest reads.
    Available,
    /// Its manifest does not (see `problem`).
    Invalid,
}

/// A plugin found in the plugin directories: `bear plugins list`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct PluginListing {
    /// Its name (the directory name when the manifest does not read).
    pub name: String,
    /// Its directory.
    pub dir: String,
    /// Its version, when the manifest reads.
    pub version: Option<String>,
    /// Its tools' names.
    pub tools: Vec<String>,
    /// Whether it can be loaded.
    pub status: PluginStatus,
    /// Why not, when it cannot.
    pub problem: Option<String>,
}

/// Every plugin in the plugin directories, loadable or not, without loading any.
pub fn discovered(loaded: &LoadedConfig) -> Vec<PluginListing> {
    bear_plugins::discover(&roots(loaded))
        .into_iter()
        .map(|d| PluginListing {
            name: d.name,
            dir: d.dir.display().to_string(),
            version: d.manifest.as_ref().map(|m| m.version.clone()),
            tools: d
                .manifest
                .iter()
                .flat_map(|m| m.tools.iter().map(|t| t.name.clone()))
                .collect(),
            status: if d.problem.is_some() {
                PluginStatus::Invalid
            } else {
                PluginStatus::Available
            },
            problem: d.problem,
        })
        .collect()
}

/// A plugin's manifest as the user reads it: `bear plugins info`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct PluginInfo {
    /// Name, version, description, capabilities and tools.
    #[serde(flatten)]
    pub plugin: PluginView,
    /// Its directory.
    pub dir: String,
    /// Whether the manifest carries a signature.
    pub signed: bool,
    /// The plugins it needs, with their version requirements.
    pub dependencies: BTreeMap<String, String>,
}

/// The manifest of `plugin` (a directory, or a name in the plugin directories).
pub fn info(loaded: &LoadedConfig, plugin: &str) -> Result<PluginInfo> {
    let dir = bear_plugins::locate(&roots(loaded), plugin)?;
    let m = Manifest::load(&dir.join("plugin.toml"))?;
    Ok(PluginInfo {
        plugin: PluginView::of(&m),
        dir: dir.display().to_string(),
        signed: m.signature.is_some(),
        dependencies: m.dependencies,
    })
}

/// `plugin` loaded in a registry of its own, after its dependencies: every check a server
/// makes at start (manifest, hash, signature policy, module, dependencies).
pub fn load_one(loaded: &LoadedConfig, plugin: &str) -> Result<Arc<LoadedPlugin>> {
    let dir = bear_plugins::locate(&roots(loaded), plugin)?;
    let mut reg = Registry::new(host(loaded)?);
    reg.load_with_deps(&dir, &roots(loaded))?;
    let name = Manifest::load(&dir.join("plugin.toml"))?.name;
    match reg.get(&name) {
        Some(p) => Ok(p),
        None => Err(Error::Plugins(bear_plugins::Error::NotFound(name))),
    }
}

/// What validating a plugin found: `bear plugins validate`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Validated {
    /// Always true (an invalid plugin is an error).
    pub valid: bool,
    /// The plugin as named.
    pub plugin: String,
}

/// Checks `plugin` the way loading it would.
pub fn validate(loaded: &LoadedConfig, plugin: &str) -> Result<Validated> {
    load_one(loaded, plugin)?;
    Ok(Validated {
        valid: true,
        plugin: plugin.to_string(),
    })
}

/// The loaded plugin `name` of `registry`, or not found.
pub fn loaded_plugin(registry: &Registry, name: &str) -> Result<Arc<LoadedPlugin>> {
    registry.get(name).ok_or_else(|| {
        Error::Core(bear_core::Error::backend(
            bear_core::ErrorKind::NotFound,
            format!("no loaded plugin `{name}`"),
        ))
    })
}

/// The views of every plugin in `registry`.
pub fn views(registry: &Registry) -> Vec<PluginView> {
    registry
        .list()
        .into_iter()
        .filter_map(|(name, _)| registry.get(&name))
        .map(|p| PluginView::of(p.manifest()))
        .collect()
}

/// Runs `tool` of `plugin` on the blocking pool; `cancel` stops it at its next epoch check.
pub async fn run(
    plugin: Arc<LoadedPlugin>,
    tool: String,
    input: serde_json::Value,
    cancel: CancellationToken,
) -> Result<ToolRun> {
    let out = tokio::task::spawn_blocking(move || plugin.call_logged(&tool, &input, Some(&cancel)))
        .await
        .map_err(|_| crate::internal("the plugin call stopped unexpectedly"))??;
    Ok(ToolRun::from(out))
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
