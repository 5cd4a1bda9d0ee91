//! The `bear-server` binary: reads the configuration (file, `BEAR_*` variables, flags), wires
//! the workflow engine (runs in the `[workflows]` SQLite database; interrupted runs are
//! continued at start), the PII detector and scrubber and the API keys into bear-api, and
//! serves on `127.0.0.1:8787` by default until Ctrl-C or SIGTERM, letting in-flight requests
//! finish. A bind that is not loopback is refused while no API key exists.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bear_agents::{Backends, Engine, EngineConfig, Registry, SqliteStore};
use bear_api::{AppState, Limits};
use bear_core::EventBus;
use bear_hw::{Probe, SysProbe};
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
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BEAR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let loaded = bear_cli::load_config(args.config.as_deref(), |k| std::env::var_os(k))?;
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
    rt.block_on(async move {
        let wf = &config.workflows;
        let store = Arc::new(SqliteStore::open(&wf.database_path(&loaded.dirs), wf.fsync).await?);
        let scrubber = Arc::new(bear_security::Scrubber::replacing(&config.pii)?);
        let engine = Engine::new(
            store,
            Registry::with_default_agents(),
            Backends {
                scrubber: Some(scrubber.clone()),
                files_root: wf.files_root.clone(),
                ..Backends::default()
            },
            EventBus::default(),
            EngineConfig::from_config(wf),
        );
        // No run stays interrupted: whatever a previous server left running goes on here.
        let recovered = engine.recover().await?;
        if !recovered.is_empty() {
            eprintln!("continuing {} interrupted workflow run(s)", recovered.len());
        }
        let machine = SysProbe.probe(&loaded.dirs.data_dir);
        let hw = serde_json::json!({
            "machine": machine,
            "recommendations": bear_hw::recommend(&machine),
        });
        let rec = bear_hw::recommend(&machine);
        let models_dir = loaded.dirs.models_dir.clone();
        let threads = config
            .hw
            .threads
            .map_or(rec.inference_threads, |t| t as usize);
        let manager_config = bear_models::ManagerConfig {
            model_dirs: vec![models_dir.clone()],
            memory_budget: rec.model_memory_budget_bytes,
            keep_alive: std::time::Duration::from_secs(300),
            autoload: config.models.autoload,
            llama: bear_models::LlamaOptions {
                context_length: config.models.context_length,
                threads: threads as u32,
                mlock: config.hw.mlock.unwrap_or(false),
                ..bear_models::LlamaOptions::default()
            },
            ort_dylib_candidates: bear_models::ort_dylib_candidates(
                config.models.ort_dylib.as_deref(),
                &models_dir,
            ),
            fallback_tokenizer_dir: Some(models_dir.join(bear_core::assets::MINILM_DIR)),
            threads,
            cache: bear_models::CacheConfig {
                l2_path: Some(loaded.dirs.cache_dir.join("results.redb")),
                ..bear_models::CacheConfig::default()
            },
        };
        // The on-disk result cache is one file per user; if another BEAR process holds it,
        // serve without it rather than not at all.
        let manager = match bear_models::ModelManager::new(manager_config.clone()) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("warning: {e}; serving without the on-disk result cache");
                bear_models::ModelManager::new(bear_models::ManagerConfig {
                    cache: bear_models::CacheConfig {
                        l2_path: None,
                        ..manager_config.cache
                    },
                    ..manager_config
                })?
            }
        };
        let limits = Limits::default();
        let state = Arc::new(
            AppState::new(keys, engine, scrubber, hw, bind.ip().is_loopback(), &limits)
                .with_models(Arc::new(manager))
                .with_audit(bear_security::AuditLog::open(
                    &config.security.audit_log_path(&loaded.dirs),
                    config.security.audit_fail_closed,
                    None,
                )?),
        );
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        eprintln!("bear-server listening on http://{}", listener.local_addr()?);
        bear_api::serve(listener, state, &limits, shutdown()).await?;
        eprintln!("bear-server stopped");
        anyhow::Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
