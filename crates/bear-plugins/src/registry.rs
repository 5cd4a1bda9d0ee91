//! Discovery and dependency resolution: plugins are directories holding `plugin.toml` inside
//! the configured plugin directories; a registry loads, unloads and reloads them at run time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::host::{LoadedPlugin, PluginHost};
use crate::manifest::Manifest;
use crate::{Error, Result};

/// A plugin found on disk.
#[derive(Debug, Clone, Serialize)]
pub struct Discovered {
    /// The plugin's directory.
    pub dir: PathBuf,
    /// The manifest, when it is valid.
    #[serde(skip)]
    pub manifest: Option<Manifest>,
    /// Name (the directory name when the manifest is invalid).
    pub name: String,
    /// Why it cannot be used, if it cannot.
    pub problem: Option<String>,
}

/// Finds plugin directories (those with a `plugin.toml`) under `roots`, sorted by name.
/// Invalid manifests are listed with their problem rather than dropped.
pub fn discover(roots: &[PathBuf]) -> Vec<Discovered> {
    let mut out = Vec::new();
    for root in roots {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let manifest_path = dir.join("plugin.toml");
            if !manifest_path.is_file() {
                continue;
            }
            let fallback = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match Manifest::load(&manifest_path) {
                Ok(m) => out.push(Discovered {
                    name: m.name.clone(),
                    dir,
                    manifest: Some(m),
                    problem: None,
                }),
                Err(e) => out.push(Discovered {
                    name: fallback,
                    dir,
                    manifest: None,
                    problem: Some(e.to_string()),
                }),
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Checks every plugin's dependencies against the others and returns a load order
/// (dependencies first). A missing dependency, a version conflict or a cycle is an error that
/// names the plugin and the problem.
pub fn resolve(manifests: &[Manifest]) -> Result<Vec<String>> {
    let by_name: BTreeMap<&str, &Manifest> =
        manifests.iter().map(|m| (m.name.as_str(), m)).collect();
    if by_name.len() != manifests.len() {
        let mut seen = BTreeSet::new();
        let dup = manifests
            .iter()
            .find(|m| !seen.insert(m.name.as_str()))
            .map_or("?", |m| m.name.as_str());
        return Err(Error::Dependency {
            plugin: dup.into(),
            reason: "two plugins have this name".into(),
        });
    }
    for m in manifests {
        for (dep, req) in &m.dependencies {
            let Some(d) = by_name.get(dep.as_str()) else {
                return Err(Error::Dependency {
                    plugin: m.name.clone(),
                    reason: format!("needs `{dep}` {req}, which is not installed"),
                });
            };
            let req = semver::VersionReq::parse(req).map_err(|e| Error::Dependency {
                plugin: m.name.clone(),
                reason: e.to_string(),
            })?;
            let have = semver::Version::parse(&d.version).map_err(|e| Error::Dependency {
                plugin: d.name.clone(),
                reason: e.to_string(),
            })?;
            if !req.matches(&have) {
                return Err(Error::Dependency {
                    plugin: m.name.clone(),
                    reason: format!("needs `{dep}` {req}, but {} is installed", d.version),
                });
            }
        }
    }
    // Depth-first topological order; a node met again while on the stack is a cycle.
    fn visit<'a>(
        name: &'a str,
        by_name: &BTreeMap<&'a str, &'a Manifest>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        order: &mut Vec<String>,
    ) -> Result<()> {
        if done.contains(name) {
            return Ok(());
        }
        if let Some(pos) = stack.iter().position(|n| *n == name) {
            let mut cycle: Vec<&str> = stack[pos..].to_vec();
            cycle.push(name);
            return Err(Error::Dependency {
                plugin: name.into(),
                reason: format!("dependency cycle: {}", cycle.join(" -> ")),
            });
        }
        stack.push(name);
        if let Some(m) = by_name.get(name) {
            for dep in m.dependencies.keys() {
                visit(dep.as_str(), by_name, stack, done, order)?;
            }
        }
        stack.pop();
        done.insert(name);
        order.push(name.to_string());
        Ok(())
    }
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    for name in by_name.keys() {
        visit(name, &by_name, &mut Vec::new(), &mut done, &mut order)?;
    }
    Ok(order)
}

/// A plugin's directory: `plugin` itself when it holds a `plugin.toml`, else the plugin of
/// that name found under `roots`.
pub fn locate(roots: &[PathBuf], plugin: &str) -> Result<PathBuf> {
    let as_path = PathBuf::from(plugin);
    if as_path.join("plugin.toml").is_file() {
        return Ok(as_path);
    }
    discover(roots)
        .into_iter()
        .find(|d| d.name == plugin)
        .map(|d| d.dir)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no plugin `{plugin}` in {} (nor a plugin directory by that path)",
                roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Loaded plugins by name; load, unload and reload at run time.
#[derive(Debug)]
pub struct Registry {
    host: Arc<PluginHost>,
    loaded: BTreeMap<String, Arc<LoadedPlugin>>,
}

impl Registry {
    /// An empty registry on `host`.
    pub fn new(host: Arc<PluginHost>) -> Self {
        Self {
            host,
            loaded: BTreeMap::new(),
        }
    }

    /// Validates and loads the plugin in `dir` (replacing a loaded one of the same name: a
    /// reload). Its dependencies must already be loaded at matching versions.
    pub fn load(&mut self, dir: &Path) -> Result<Arc<LoadedPlugin>> {
        let manifest = Manifest::load(&dir.join("plugin.toml"))?;
        let mut all: Vec<Manifest> = self
            .loaded
            .values()
            .filter(|p| p.manifest().name != manifest.name)
            .map(|p| p.manifest().clone())
            .collect();
        all.push(manifest.clone());
        resolve(&all)?;
        let plugin = Arc::new(self.host.load(manifest, dir)?);
        self.loaded
            .insert(plugin.manifest().name.clone(), plugin.clone());
        Ok(plugin)
    }

    /// Loads the plugin in `dir` after its dependencies, found by name under `roots` and
    /// loaded first (each once).
    pub fn load_with_deps(&mut self, dir: &Path, roots: &[PathBuf]) -> Result<()> {
        let manifest = Manifest::load(&dir.join("plugin.toml"))?;
        for dep in manifest.dependencies.keys() {
            if self.get(dep).is_none() {
                let dep_dir = locate(roots, dep)?;
                self.load_with_deps(&dep_dir, roots)?;
            }
        }
        self.load(dir)?;
        Ok(())
    }

    /// Loads every plugin found under `roots`, each after its dependencies. A plugin that
    /// cannot be loaded is left out; the returned warnings say which and why.
    pub fn load_all(&mut self, roots: &[PathBuf]) -> Vec<String> {
        let mut warnings = Vec::new();
        for d in discover(roots) {
            if self.get(&d.name).is_some() {
                continue;
            }
            if let Err(e) = self.load_with_deps(&d.dir, roots) {
                warnings.push(format!("plugin `{}` not loaded: {e}", d.name));
            }
        }
        warnings
    }

    /// Unloads `name`; refused while another loaded plugin depends on it.
    pub fn unload(&mut self, name: &str) -> Result<()> {
        if let Some(user) = self
            .loaded
            .values()
            .find(|p| p.manifest().dependencies.contains_key(name))
        {
            return Err(Error::Dependency {
                plugin: name.into(),
                reason: format!(
                    "`{}` depends on it; unload that first",
                    user.manifest().name
                ),
            });
        }
        self.loaded
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Error::NotFound(format!("no loaded plugin `{name}`")))
    }

    /// A loaded plugin.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.loaded.get(name).cloned()
    }

    /// Names and versions of the loaded plugins.
    pub fn list(&self) -> Vec<(String, String)> {
        self.loaded
            .values()
            .map(|p| (p.manifest().name.clone(), p.manifest().version.clone()))
            .collect()
    }
}
