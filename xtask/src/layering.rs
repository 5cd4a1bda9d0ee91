//! The layering rule, checked against `cargo metadata`.
//!
//! Every workspace crate has a layer. A normal or build dependency between workspace crates
//! must point to a strictly lower layer; a dev-dependency (tests wiring a real backend) may also
//! point sideways, never up. The table is repeated in ARCHITECTURE.md.

use std::collections::BTreeMap;
use std::process::Command;

use serde::Deserialize;

/// Layer of every workspace crate. Binaries, examples, benches and xtask sit on top.
pub(crate) const LAYERS: &[(&str, u8)] = &[
    ("bear-core", 0),
    ("bear-hw", 1),
    ("bear-security", 1),
    ("bear-models", 2),
    ("bear-rag", 2),
    ("bear-plugins", 2),
    ("bear-agents", 3),
    ("bear-app", 4),
    ("bear-api", 5),
    ("bear-cli", 5),
    ("bear", 6),
    ("bear-server", 6),
    ("bear-examples", 6),
    ("bear-benches", 6),
    ("xtask", 6),
];

/// The subset of `cargo metadata --no-deps` output the check needs.
#[derive(Debug, Deserialize)]
pub(crate) struct Metadata {
    packages: Vec<Package>,
}

#[derive(Debug, Deserialize)]
struct Package {
    name: String,
    dependencies: Vec<Dependency>,
}

#[derive(Debug, Deserialize)]
struct Dependency {
    name: String,
    /// `null` for normal dependencies, `"dev"` or `"build"` otherwise.
    kind: Option<String>,
    /// Set for path dependencies, which is how workspace crates depend on each other.
    path: Option<String>,
}

/// Returns one message per edge that breaks the rule; empty means the workspace is layered.
pub(crate) fn violations(meta: &Metadata) -> Vec<String> {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let members: Vec<&str> = meta.packages.iter().map(|p| p.name.as_str()).collect();
    let mut out = Vec::new();
    for pkg in &meta.packages {
        let Some(&from) = layer.get(pkg.name.as_str()) else {
            out.push(format!(
                "{} has no layer: add it to xtask's LAYERS table and ARCHITECTURE.md",
                pkg.name
            ));
            continue;
        };
        for dep in &pkg.dependencies {
            if dep.path.is_none() || !members.contains(&dep.name.as_str()) {
                continue;
            }
            let Some(&to) = layer.get(dep.name.as_str()) else {
                continue; // reported as a package of its own
            };
            let dev = dep.kind.as_deref() == Some("dev");
            let ok = if dev { to <= from } else { to < from };
            if !ok {
                let kind = dep.kind.as_deref().unwrap_or("normal");
                out.push(format!(
                    "{} (L{from}) -> {} (L{to}) is a {kind} dependency that does not point down",
                    pkg.name, dep.name
                ));
            }
        }
    }
    out
}

/// Runs `cargo metadata` on the workspace.
pub(crate) fn workspace_metadata() -> anyhow::Result<Metadata> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(crate::workspace_root())
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_respects_the_layers() {
        let meta = workspace_metadata().unwrap();
        assert!(
            meta.packages.len() >= LAYERS.len(),
            "every crate in the table exists"
        );
        let bad = violations(&meta);
        assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
    }

    fn synthetic(edges: &[(&str, &str, Option<&str>)]) -> Metadata {
        let mut packages: BTreeMap<&str, Vec<serde_json::Value>> =
            LAYERS.iter().map(|(n, _)| (*n, Vec::new())).collect();
        for (from, to, kind) in edges {
            packages.entry(from).or_default().push(serde_json::json!({
                "name": to, "kind": kind, "path": format!("/ws/{to}"), "req": "*"
            }));
        }
        let json = serde_json::json!({
            "packages": packages.into_iter().map(|(name, deps)| serde_json::json!({
                "name": name, "version": "0.1.0", "dependencies": deps
            })).collect::<Vec<_>>(),
            "workspace_members": [], "version": 1
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn illegal_edges_are_rejected() {
        // Legal: downward normal edges, and a sideways dev-dependency.
        let ok = synthetic(&[
            ("bear-hw", "bear-core", None),
            ("bear-cli", "bear-models", None),
            ("bear-rag", "bear-models", Some("dev")),
            ("bear-rag", "serde", None),
        ]);
        assert!(violations(&ok).is_empty(), "{:?}", violations(&ok));

        for (from, to, kind) in [
            ("bear-core", "bear-hw", None),             // upward
            ("bear-rag", "bear-models", None),          // sideways at L2
            ("bear-agents", "bear-api", Some("build")), // upward build dependency
            ("bear-hw", "bear-agents", Some("dev")),    // upward even for tests
        ] {
            let bad = violations(&synthetic(&[(from, to, kind)]));
            assert_eq!(bad.len(), 1, "{from} -> {to} should be refused: {bad:?}");
            assert!(bad[0].starts_with(from), "{}", bad[0]);
        }
    }

    #[test]
    fn a_crate_without_a_layer_is_rejected() {
        let mut meta = synthetic(&[]);
        meta.packages.push(Package {
            name: "bear-new".into(),
            dependencies: vec![],
        });
        let bad = violations(&meta);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].contains("bear-new has no layer"));
    }
}
