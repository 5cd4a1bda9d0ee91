//! Builds the web app (`web/`, Preact and TypeScript bundled by Vite) into this crate's output
//! directory, where `web.rs` embeds it: the binary then serves the assets it was built with.
//!
//! The npm packages come from `web/package-lock.json` through `npm ci`, which `.ci/setup`
//! runs; this script never touches the network.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let web = manifest.join("../../web");
    for input in [
        "src",
        "index.html",
        "public",
        "vite.config.ts",
        "tsconfig.json",
        "package.json",
        "package-lock.json",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(input).display());
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("web");
    build(&web, &out);
}

fn build(web: &Path, out: &Path) {
    if !web.join("node_modules/.bin/vite").exists() {
        panic!(
            "the web app's npm packages are missing from {}: run `.ci/setup` (it runs `npm ci` \
             there), or `npm ci` in web/ yourself",
            web.display()
        );
    }
    let status = Command::new("npm")
        .args(["run", "--silent", "build", "--", "--outDir"])
        .arg(out)
        .args(["--emptyOutDir", "--logLevel", "warn"])
        .current_dir(web)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            panic!("building the web app failed ({s}): see the TypeScript or Vite output above")
        }
        Err(e) => panic!("cannot run npm to build the web app ({e}): install Node.js 20 and npm"),
    }
}
