//! `cargo xtask plugins`: builds the example and test plugins in `examples/plugins` for
//! wasm32-wasip1 (release, their own workspace and target dir) and lays each out as a plugin
//! directory under `<target>/plugins/<name>/`: `<name>.wasm` and `plugin.toml`, the committed
//! manifest with `wasm` and the built file's `sha256` added. The hostile plugin also gets the
//! `data/` directory its manifest grants.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// The plugins built, in `examples/plugins`.
const PLUGINS: &[&str] = &["citations", "docstats", "clauses", "hostile"];

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
}

/// Builds and lays out the plugins; returns the directory holding them.
pub(crate) fn build() -> anyhow::Result<PathBuf> {
    let src = crate::workspace_root().join("examples/plugins");
    let build_dir = target_dir().join("plugins-build");
    let status = crate::cargo_command()
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip1",
            "--manifest-path",
        ])
        .arg(src.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &build_dir)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!(
            "building the plugins failed; is the target installed? `rustup target add wasm32-wasip1`"
        );
    }
    let out_root = target_dir().join("plugins");
    for name in PLUGINS {
        let built = build_dir.join(format!("wasm32-wasip1/release/{name}.wasm"));
        let wasm = std::fs::read(&built).with_context(|| format!("{name}.wasm was not built"))?;
        let sha = crate::models::sha256_file(&built)?;
        let template = std::fs::read_to_string(src.join(name).join("plugin.toml"))?;
        let dir = out_root.join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{name}.wasm")), &wasm)?;
        std::fs::write(
            dir.join("plugin.toml"),
            format!("wasm = \"{name}.wasm\"\nsha256 = \"{sha}\"\n{template}"),
        )?;
        if *name == "hostile" {
            std::fs::create_dir_all(dir.join("data"))?;
            std::fs::write(dir.join("data/note.txt"), "granted and read-only\n")?;
        }
        eprintln!(
            "plugin    {name} ({} bytes) -> {}",
            wasm.len(),
            dir.display()
        );
    }
    Ok(out_root)
}
