//! bear-cli: the `bear` command-line front end, as a library so it can be tested in-process.
//!
//! Layer **L5**: a front end over bear-app, which owns every operation's limits, defaults and
//! rules; this crate parses arguments and renders results. Nothing depends on it except
//! `bins/bear`, whose `main` only calls [`main`].
//!
//! Invariants:
//! - Output meant for programs (`--json`) goes to stdout as one JSON document; everything for
//!   people (progress, warnings, errors) goes to stderr.
//! - Errors print what failed and what to do, never user text, and map to exit codes by class.
//! - No command opens a network connection.

mod cli;
mod error;
mod hw;
mod models;
mod plugins;
mod rag;
mod review;
mod security;
mod ui;
mod workflow;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use bear_app::LoadedConfig;
use clap::Parser;

pub use cli::{Cli, Command};
pub use error::{Error, Result};

/// Runs `bear` with the process's arguments and environment; returns the exit code. First
/// runs the program again with llama.cpp's OpenMP variables set when they are missing
/// ([`bear_app::reexec_with_openmp_env`]).
pub fn main() -> ExitCode {
    if let Err(e) = bear_app::reexec_with_openmp_env() {
        eprintln!("note: {e}");
    }
    run(std::env::args_os())
}

/// Runs `bear` with the given arguments (the first is the program name).
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version itself and picks the exit code (0 for those, 2 for
            // usage errors).
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    init_tracing(&cli);
    let json = cli.json;
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e, json);
            ExitCode::from(e.exit_code())
        }
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    let loaded = bear_app::load_config(cli.config.as_deref(), |k| std::env::var_os(k))?;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Hw => hw::run(&loaded, cli.json, &mut out),
        Command::Models(cmd) => models::run(&loaded, cmd, cli.json, &mut out),
        Command::Generate(args) => models::generate(&loaded, args, cli.json, &mut out),
        Command::Chat(args) => models::chat(&loaded, args, &mut out),
        Command::Embed(args) => models::embed(&loaded, args, &mut out),
        Command::Pii(cmd) => security::pii(&loaded, cmd, cli.json, &mut out),
        Command::Scrub(args) => security::scrub(&loaded, args, cli.json, &mut out),
        Command::Restore(args) => security::restore(&loaded, args, cli.json, &mut out),
        Command::Redact(args) => security::redact(&loaded, args, cli.json, &mut out),
        Command::Audit(cmd) => security::audit_cmd(&loaded, cmd, cli.json, &mut out),
        Command::Keys(cmd) => security::keys(&loaded, cmd, cli.json, &mut out),
        Command::Plugins(cmd) => plugins::run(&loaded, cmd, cli.json, &mut out),
        Command::Ingest(args) => rag::ingest(&loaded, args, cli.json, cli.quiet, &mut out),
        Command::Search(args) => rag::search(&loaded, args, cli.json, &mut out),
        Command::Ask(args) => rag::ask(&loaded, args, cli.json, &mut out),
        Command::Extract(args) => rag::extract(&loaded, args, cli.json, &mut out),
        Command::Review(args) => review::run(&loaded, args, cli.json, &mut out),
        Command::Grid(args) => review::grid(&loaded, args, cli.json, &mut out),
        Command::Docs(cmd) => rag::docs(&loaded, cmd, cli.json, &mut out),
        Command::Collections(cmd) => rag::collections(&loaded, cmd, cli.json, &mut out),
        Command::Migrate => rag::migrate(&loaded, cli.json, &mut out),
        Command::Workflow(cmd) => workflow::run(&loaded, cmd, cli.json, &mut out),
        Command::Agents(cmd) => workflow::agents(cmd, cli.json, &mut out),
        Command::Server(args) => server(cli.config.as_deref(), args),
        Command::Ui(args) => ui::run(&loaded, cli.config.as_deref(), args, cli.json, &mut out),
    }
}

/// `bear server`: runs the `bear-server` binary from the same directory as `bear` (bear-cli
/// and bear-api are in one layer, so the server is a separate program), passing the config.
fn server(config: Option<&std::path::Path>, args: cli::ServerArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let server = exe.with_file_name(format!("bear-server{}", std::env::consts::EXE_SUFFIX));
    if !server.is_file() {
        return Err(Error::from(bear_core::Error::backend(
            bear_core::ErrorKind::NotFound,
            format!(
                "bear-server is not installed next to bear ({}); build it with `cargo build -p bear-server`",
                server.display()
            ),
        )));
    }
    let mut cmd = std::process::Command::new(&server);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    if let Some(b) = &args.bind {
        cmd.args(["--bind", b]);
    }
    // `bear` becomes bear-server: one process, so a service manager's or the user's SIGTERM
    // reaches the server and stops it gracefully (a waiting parent died alone and left the
    // server running).
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        Err(cmd.exec().into())
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status()?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::from(bear_core::Error::backend(
                bear_core::ErrorKind::Unavailable,
                "bear-server stopped with an error (see above)",
            )))
        }
    }
}

/// The application over `loaded`, as the CLI uses it: models without the on-disk result cache
/// (a running bear-server may hold it), the keyring opened (with a prompt if need be, made on
/// a first run) only when a collection or a policy needs it.
pub(crate) fn app(loaded: &LoadedConfig) -> Result<std::sync::Arc<bear_app::App>> {
    let models = std::sync::Arc::new(bear_app::open_models(loaded, false)?);
    let for_keys = loaded.clone();
    let keys = bear_app::Keys::OnDemand(Box::new(move || {
        security::unlock(&for_keys).map_err(security::into_app)
    }));
    Ok(std::sync::Arc::new(bear_app::App::new(
        loaded.clone(),
        models,
        keys,
    )?))
}

/// The runtime a command runs the application's async operations on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Writes `v` as pretty JSON and a newline: the `--json` output of every command.
pub(crate) fn write_json(out: &mut dyn Write, v: &impl serde::Serialize) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, v).map_err(std::io::Error::other)?;
    writeln!(out)?;
    Ok(())
}

fn report(e: &Error, json: bool) {
    let mut err = std::io::stderr().lock();
    if json {
        let body = serde_json::to_string(&e.body()).unwrap_or_default();
        let _ = writeln!(err, "{body}");
    } else {
        let _ = writeln!(err, "error: {e}");
    }
}

fn init_tracing(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BEAR_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},{}", bear_rag::LOG_DIRECTIVES))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
