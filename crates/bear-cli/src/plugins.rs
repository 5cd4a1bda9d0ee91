//! `bear plugins list|info|validate|run`: rendering over `bear_app::plugins`.

use std::io::{Read, Write};

use bear_app::LoadedConfig;
use bear_app::plugins::{PluginInfo, PluginListing};
use bear_core::CancellationToken;

use crate::cli::PluginsCommand;
use crate::error::{Error, Result};
use crate::write_json;

/// Runs `bear plugins ...`.
pub(crate) fn run(
    loaded: &LoadedConfig,
    cmd: PluginsCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    match cmd {
        PluginsCommand::List => {
            let found = bear_app::plugins::discovered(loaded);
            if json {
                return write_json(out, &found);
            }
            print_list(&found, out)
        }
        PluginsCommand::Info { plugin } => {
            let info = bear_app::plugins::info(loaded, &plugin)?;
            if json {
                return write_json(out, &info);
            }
            print_info(&info, out)
        }
        PluginsCommand::Validate { plugin } => {
            let v = bear_app::plugins::validate(loaded, &plugin)?;
            if json {
                return write_json(out, &v);
            }
            writeln!(
                out,
                "ok: manifest, hash, signature policy, module and dependencies check out"
            )?;
            Ok(())
        }
        PluginsCommand::Run {
            plugin,
            tool,
            input,
        } => {
            let value = read_input(&tool, input)?;
            let loaded_plugin = bear_app::plugins::load_one(loaded, &plugin)?;
            let name = loaded_plugin.manifest().name.clone();
            let rt = crate::runtime()?;
            let result = rt.block_on(bear_app::plugins::run(
                loaded_plugin,
                tool,
                value,
                CancellationToken::new(),
            ))?;
            if json {
                return write_json(out, &result);
            }
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

/// The tool's input: `--input JSON`, or stdin for `-`.
fn read_input(tool: &str, input: String) -> Result<serde_json::Value> {
    let input = if input == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        input
    };
    serde_json::from_str(&input).map_err(|e| {
        Error::from(bear_plugins::Error::InvalidInput {
            tool: tool.to_string(),
            reason: format!(
                "--input is not JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        })
    })
}

fn print_list(found: &[PluginListing], out: &mut dyn Write) -> Result<()> {
    if found.is_empty() {
        eprintln!("no plugins found");
    }
    for d in found {
        match &d.version {
            Some(v) => writeln!(out, "{}\t{v}\tavailable\t{}", d.name, d.tools.join(","))?,
            None => writeln!(
                out,
                "{}\t-\tinvalid\t{}",
                d.name,
                d.problem.as_deref().unwrap_or("")
            )?,
        }
    }
    Ok(())
}

fn print_info(info: &PluginInfo, out: &mut dyn Write) -> Result<()> {
    let p = &info.plugin;
    writeln!(out, "{} {}: {}", p.name, p.version, p.description)?;
    writeln!(out, "directory   {}", info.dir)?;
    writeln!(
        out,
        "signed      {}",
        if info.signed { "yes" } else { "no" }
    )?;
    let c = &p.capabilities;
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
    for (dep, req) in &info.dependencies {
        writeln!(out, "depends on  {dep} {req}")?;
    }
    for t in &p.tools {
        writeln!(out, "tool        {}: {}", t.name, t.description)?;
    }
    Ok(())
}
