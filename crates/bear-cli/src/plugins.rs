//! `bear plugins list|info|validate|run`.

use std::io::{Read, Write};
use std::path::PathBuf;

use bear_plugins::{Manifest, Registry, discover};

use crate::cli::PluginsCommand;
use crate::error::{Error, Result};
use bear_app::LoadedConfig;

/// A plugin's directory, from a path or a name found in the plugin directories.
fn locate(loaded: &LoadedConfig, plugin: &str) -> Result<PathBuf> {
    Ok(bear_plugins::locate(
        &loaded.config.plugins.search_dirs(&loaded.dirs),
        plugin,
    )?)
}

/// Runs `bear plugins ...`.
pub(crate) fn run(
    loaded: &LoadedConfig,
    cmd: PluginsCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    match cmd {
        PluginsCommand::List => {
            let found = discover(&loaded.config.plugins.search_dirs(&loaded.dirs));
            if json {
                let items: Vec<_> = found
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "name": d.name,
                            "dir": d.dir,
                            "version": d.manifest.as_ref().map(|m| m.version.clone()),
                            "tools": d.manifest.as_ref().map(|m| m.tools.iter().map(|t| t.name.clone()).collect::<Vec<_>>()),
                            "status": if d.problem.is_some() { "invalid" } else { "available" },
                            "problem": d.problem,
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::Value::Array(items))?;
            } else {
                if found.is_empty() {
                    eprintln!("no plugins found");
                }
                for d in &found {
                    match (&d.manifest, &d.problem) {
                        (Some(m), _) => writeln!(
                            out,
                            "{}\t{}\tavailable\t{}",
                            m.name,
                            m.version,
                            m.tools
                                .iter()
                                .map(|t| t.name.as_str())
                                .collect::<Vec<_>>()
                                .join(",")
                        )?,
                        (None, p) => writeln!(
                            out,
                            "{}\t-\tinvalid\t{}",
                            d.name,
                            p.as_deref().unwrap_or("")
                        )?,
                    }
                }
            }
            Ok(())
        }
        PluginsCommand::Info { plugin } => {
            let dir = locate(loaded, &plugin)?;
            let m = Manifest::load(&dir.join("plugin.toml"))?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&m).unwrap_or_default())?;
            } else {
                writeln!(out, "{} {}: {}", m.name, m.version, m.description)?;
                writeln!(out, "directory   {}", dir.display())?;
                writeln!(
                    out,
                    "signed      {}",
                    if m.signature.is_some() { "yes" } else { "no" }
                )?;
                let c = &m.capabilities;
                writeln!(
                    out,
                    "limits      {} MiB memory, {} ms per call, {} KiB output{}",
                    c.memory_mb,
                    c.time_ms,
                    c.max_output_kb,
                    c.fuel.map(|f| format!(", {f} fuel")).unwrap_or_default()
                )?;
                for d in &c.dirs {
                    writeln!(
                        out,
                        "directory   {} -> {} ({:?})",
                        d.host.display(),
                        d.guest,
                        d.mode
                    )?;
                }
                if !c.env.is_empty() {
                    writeln!(out, "environment {}", c.env.join(", "))?;
                }
                for (dep, req) in &m.dependencies {
                    writeln!(out, "depends on  {dep} {req}")?;
                }
                for t in &m.tools {
                    writeln!(out, "tool        {}: {}", t.name, t.description)?;
                }
            }
            Ok(())
        }
        PluginsCommand::Validate { plugin } => {
            let dir = locate(loaded, &plugin)?;
            let mut reg = Registry::new(bear_app::plugins::host(loaded)?);
            reg.load_with_deps(&dir, &loaded.config.plugins.search_dirs(&loaded.dirs))?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "valid": true, "plugin": plugin })
                )?;
            } else {
                writeln!(
                    out,
                    "ok: manifest, hash, signature policy, module and dependencies check out"
                )?;
            }
            Ok(())
        }
        PluginsCommand::Run {
            plugin,
            tool,
            input,
        } => {
            let input = if input == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                input
            };
            let value: serde_json::Value = serde_json::from_str(&input).map_err(|e| {
                Error::from(bear_plugins::Error::InvalidInput {
                    tool: tool.clone(),
                    reason: format!(
                        "--input is not JSON (line {}, column {})",
                        e.line(),
                        e.column()
                    ),
                })
            })?;
            let dir = locate(loaded, &plugin)?;
            let mut reg = Registry::new(bear_app::plugins::host(loaded)?);
            reg.load_with_deps(&dir, &loaded.config.plugins.search_dirs(&loaded.dirs))?;
            let name = Manifest::load(&dir.join("plugin.toml"))?.name;
            let p = reg
                .get(&name)
                .ok_or_else(|| Error::from(bear_plugins::Error::NotFound(name.clone())))?;
            let result = p.call_logged(&tool, &value, None)?;
            // The plugin's own log lines go to stderr for the user, never to BEAR's logs.
            for line in &result.logs {
                eprintln!("[{name} {}] {}", line.level, line.message);
            }
            if result.logs_dropped > 0 {
                eprintln!(
                    "[{name}] {} more log lines dropped (rate limit)",
                    result.logs_dropped
                );
            }
            writeln!(out, "{}", result.output)?;
            Ok(())
        }
    }
}
