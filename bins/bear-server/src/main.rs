//! The `bear-server` binary: reads the configuration (file, `BEAR_*` variables, flags), builds
//! the application (`bear_app::App`: models, collections, PII), the plugins and the workflow
//! engine (runs in the `[workflows]` SQLite database, or in `[storage] database_url`'s
//! PostgreSQL shared with other instances; interrupted runs are continued at start and
//! whenever another instance's lease lapses), wires them and the API keys into bear-api, and
//! serves on `127.0.0.1:8787` by default until Ctrl-C or SIGTERM, letting in-flight requests
//! finish; `bear` reaches it through the control socket `<data>/control.sock`
//! ([`bear_app::control`]). A bind that is not loopback is refused while no API key exists.
//! `--check` checks the configuration and what it names, and exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bear_api::{AppState, Limits};
use bear_core::EventBus;
use bear_security::access::ApiKeyStore;
use clap::Parser;

/// BEAR's REST API, on loopback by default.
#[derive(Debug, Parser)]
#[command(name = "bear-server", version, about)]
struct Args {
    /// Configuration file [default: $XDG_CONFIG_HOME/bear/config.toml].
    #[arg(long, env = "BEAR_CONFIG", hide_env_values = true)]
    config: Option<PathBuf>,
    /// Address to listen on [default: server.bind, 127.0.0.1:8787].
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Check the configuration and reach the database and stores it names, then exit (0 when
    /// all is well; 3 when something is to be fixed in the configuration or unreachable).
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    if let Err(e) = bear_app::reexec_with_openmp_env() {
        eprintln!("note: {e}");
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BEAR_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(format!("warn,{}", bear_rag::LOG_DIRECTIVES))
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// 3 for a configuration to fix (an unreachable database among them), as `bear` exits; 1
/// otherwise.
fn exit_code(e: &anyhow::Error) -> u8 {
    let config = e.chain().any(|c| {
        c.downcast_ref::<bear_app::Error>()
            .is_some_and(|a| a.kind() == bear_core::ErrorKind::Config)
            || c.downcast_ref::<bear_core::Error>()
                .is_some_and(|a| a.kind() == bear_core::ErrorKind::Config)
    });
    if config { 3 } else { 1 }
}

fn run(args: Args) -> anyhow::Result<()> {
    let loaded = bear_app::load_config(args.config.as_deref(), |k| std::env::var_os(k))?;
    let config = &loaded.config;
    let bind: SocketAddr = match args.bind {
        Some(b) => b,
        None => config
            .server
            .bind
            .parse()
            .context("server.bind is not an address")?,
    };
    let keys = ApiKeyStore::open(&config.security.api_keys_path(&loaded.dirs))?;
    bear_api::check_bind(&bind, &keys)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.check {
        for c in rt.block_on(bear_app::check::check(&loaded))? {
            println!("ok  {}: {}", c.part, c.detail);
        }
        println!("ok  bind: {bind}");
        return Ok(());
    }
    let loaded = &loaded;
    let result = rt.block_on(async move {
        // The same report as `bear hw --json`, serialised once.
        let hw = serde_json::to_value(bear_app::hw::report(loaded))?;
        let manager = Arc::new(bear_app::open_models(loaded, true)?);

        // PII: one detector; scrubbers per collection policy, keyed by the keyring when it can
        // be opened without a terminal.
        // Encryption at rest: the keyring, made with a new key file on a first run.
        let unlocked = bear_app::unattended_keyring(loaded, |k| std::env::var_os(k))?;
        if let Some(f) = &unlocked.created_key_file {
            eprintln!("{}", bear_app::keyring::created_notice(f));
        }
        let app = Arc::new(bear_app::App::new(
            loaded.clone(),
            manager.clone(),
            bear_app::Keys::Opened(Some(Box::new(unlocked.keyring))),
        )?);

        // Plugins (for the plugin routes) and the workflow backends: every one a workflow may
        // need; without an embedder, workflows run without `rag_query`.
        let (plugins, warnings) = bear_app::plugins::load_all(loaded)?;
        for w in warnings {
            eprintln!("warning: {w}");
        }
        let (backends, warning) = app.server_backends(&plugins).await?;
        if let Some(w) = warning {
            eprintln!("warning: {w}");
        }
        let rag = bear_api::RagState::new(app.clone())?;

        let runs = app.open_runs().await?;
        let engine =
            bear_app::workflows::engine(loaded, runs.clone(), backends, EventBus::default());
        // No run stays interrupted: whatever a previous server left running goes on here.
        let recovered = engine.recover().await?;
        if !recovered.is_empty() {
            eprintln!("continuing {} interrupted workflow run(s)", recovered.len());
        }
        // And whatever another instance sharing the database leaves when it dies.
        let _takeover = engine.spawn_takeover();
        let limits = Limits::from_config(&config.server);
        // `bear models load|unload`, workflow control and key changes from `bear`.
        let control = bear_app::control::Listener::bind(&loaded.dirs.data_dir)?;
        for (id, e) in app.preload().await {
            eprintln!("warning: models.preload: cannot load `{id}`: {e}");
        }
        // One audit log for the gateway and the operations, so their records form one chain.
        let audit = app.audit_log()?;
        let state = Arc::new(
            AppState::new(keys, engine, hw, bind.ip().is_loopback(), &limits)
                .with_models(manager)
                .with_app(app)
                .with_rag(rag)
                .with_plugins(Arc::new(std::sync::RwLock::new(plugins)))
                .with_audit(audit),
        );
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let stop = shutdown();
        // Known before the control socket answers, so `bear ui` gets a link at its first try.
        let _ = state.listening.set(listener.local_addr()?);
        let handler = Arc::new(bear_api::ControlHandler::new(state.clone()));
        let control = tokio::spawn(control.serve(handler));
        eprintln!("bear-server listening on http://{}", listener.local_addr()?);
        let served = bear_api::serve(listener, state, &limits, stop).await;
        // Dropping the listener removes the socket file.
        control.abort();
        let _ = control.await;
        // The run database's pool is closed here, inside the runtime: left to the runtime's
        // shutdown, sqlx's pool maintenance task was seen spinning and the process never ended.
        if tokio::time::timeout(STOP_GRACE, runs.close())
            .await
            .is_err()
        {
            eprintln!("warning: the workflow database did not close within {STOP_GRACE:?}");
        }
        served?;
        eprintln!("bear-server stopped");
        anyhow::Ok(())
    });
    // Tasks still running (a workflow step in blocking code) must not keep the process alive.
    rt.shutdown_timeout(STOP_GRACE);
    result
}

/// How long stopping may wait for the run database and for tasks still running.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Registers the SIGTERM and SIGINT handlers now, before the server says it listens (a signal
/// sent as soon as it does then stops it gracefully instead of killing it), and returns the
/// future that waits for either.
fn shutdown() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {}
                () = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
