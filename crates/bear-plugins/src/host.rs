//! The wasmtime sandbox: one engine per host, plugins pre-instantiated, a fresh store per call.
//!
//! A call gets a new `Store` whose WASI context holds exactly what the manifest asked for:
//! stdin (the input JSON), a capped stdout (the output JSON), a small stderr, argv
//! `[plugin, tool]`, the granted environment variables and the granted directories with their
//! permissions. There is no network (no sockets are ever granted) and no other file. Memory
//! growth past the limit is refused by a resource limiter; wall-clock time is bounded by epoch
//! interruption (a ticker thread advances the epoch every millisecond and a callback checks the
//! deadline and the caller's cancellation); fuel is an optional instruction budget. Whatever the
//! plugin does, the host sees a typed [`Error`].

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bear_core::CancellationToken;
use wasmtime::{
    Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::manifest::{DirMode, Manifest};
use crate::{Error, Result};

/// Which signatures the host accepts.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    /// Refuse plugins without a valid signature by a trusted key.
    pub require_signature: bool,
    /// Hex Ed25519 public keys the user trusts.
    pub trusted_keys: Vec<String>,
}

/// Host settings.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Enable fuel metering (needed for manifests that set `fuel`; costs some speed).
    pub fuel: bool,
    /// Signature policy.
    pub trust: TrustPolicy,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            fuel: true,
            trust: TrustPolicy::default(),
        }
    }
}

/// Per-call store state.
struct State {
    wasi: WasiP1Ctx,
    limiter: Limiter,
}

struct Limiter {
    max_bytes: usize,
    hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The plugin host: engine, epoch ticker, linker.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<State>,
    config: HostConfig,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("config", &self.config)
            .finish()
    }
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl PluginHost {
    /// A host; starts the epoch ticker thread.
    pub fn new(config: HostConfig) -> Result<Self> {
        let mut c = Config::new();
        c.epoch_interruption(true);
        c.consume_fuel(config.fuel);
        let engine = Engine::new(&c).map_err(|e| Error::Host(e.to_string()))?;
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut State| &mut s.wasi)
            .map_err(|e| Error::Host(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ticker, flag) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("bear-plugin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                    ticker.increment_epoch();
                }
            })
            .map_err(|e| Error::Host(e.to_string()))?;
        Ok(Self {
            engine,
            linker,
            config,
            stop,
        })
    }

    /// Checks the wasm file's hash and (per policy) the signature, compiles the module and
    /// pre-instantiates it. `dir` is the plugin's directory.
    pub fn load(&self, manifest: Manifest, dir: &Path) -> Result<LoadedPlugin> {
        let wasm_path = dir.join(&manifest.wasm);
        let bytes = std::fs::read(&wasm_path).map_err(|source| Error::Io {
            path: wasm_path.clone(),
            source,
        })?;
        let actual = bear_security::sign::sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(&manifest.sha256) {
            return Err(Error::HashMismatch {
                plugin: manifest.name.clone(),
                path: wasm_path,
                expected: manifest.sha256.clone(),
                actual,
            });
        }
        self.check_signature(&manifest)?;
        if manifest.capabilities.fuel.is_some() && !self.config.fuel {
            return Err(Error::Load {
                plugin: manifest.name.clone(),
                reason: "the manifest sets `fuel` but this host runs without fuel metering".into(),
            });
        }
        let load_err = |reason: String| Error::Load {
            plugin: manifest.name.clone(),
            reason,
        };
        let module = Module::new(&self.engine, &bytes).map_err(|e| load_err(e.to_string()))?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| load_err(format!("it imports something not granted: {e}")))?;
        if module.get_export("_start").is_none() {
            return Err(load_err(
                "the module has no `_start` (build it as a WASI command)".into(),
            ));
        }
        Ok(LoadedPlugin {
            dir: dir.to_path_buf(),
            manifest,
            pre,
            engine: self.engine.clone(),
            fuel_enabled: self.config.fuel,
        })
    }

    fn check_signature(&self, m: &Manifest) -> Result<()> {
        let trust = &self.config.trust;
        let Some(sig) = &m.signature else {
            if trust.require_signature {
                return Err(Error::Signature {
                    plugin: m.name.clone(),
                    reason: "unsigned, and the policy requires a signature by a trusted key".into(),
                });
            }
            return Ok(());
        };
        let message = m.signed_message();
        let ok = trust
            .trusted_keys
            .iter()
            .any(|k| bear_security::sign::ed25519_verify(k, &message, sig));
        if ok || (!trust.require_signature && trust.trusted_keys.is_empty()) {
            // Without trusted keys and without the requirement a signature cannot be checked;
            // it is ignored rather than half-trusted.
            return Ok(());
        }
        Err(Error::Signature {
            plugin: m.name.clone(),
            reason: "the signature does not verify with any trusted key (forged, or the \
                     manifest or wasm file changed after signing)"
                .into(),
        })
    }
}

/// A validated, pre-instantiated plugin.
pub struct LoadedPlugin {
    dir: std::path::PathBuf,
    manifest: Manifest,
    pre: InstancePre<State>,
    engine: Engine,
    fuel_enabled: bool,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .finish()
    }
}

impl LoadedPlugin {
    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Runs `tool` with `input` in a fresh sandbox and returns its JSON output.
    pub fn call(
        &self,
        tool: &str,
        input: &serde_json::Value,
        cancel: Option<&CancellationToken>,
    ) -> Result<serde_json::Value> {
        let m = &self.manifest;
        if !m.tools.iter().any(|t| t.name == tool) {
            return Err(Error::NotFound(format!(
                "plugin `{}` has no tool `{tool}`",
                m.name
            )));
        }
        let caps = &m.capabilities;
        let (plugin, tool_s) = (m.name.clone(), tool.to_string());
        let failed = |reason: String| Error::Failed {
            plugin: plugin.clone(),
            tool: tool_s.clone(),
            reason,
        };
        let out_limit = caps.max_output_kb as usize * 1024;
        // One byte over the limit tells "exactly full" from "tried to write more".
        let stdout = MemoryOutputPipe::new(out_limit + 1);
        let stderr = MemoryOutputPipe::new(64 * 1024);
        let input_bytes = serde_json::to_vec(input).unwrap_or_default();
        let mut b = WasiCtxBuilder::new();
        b.stdin(MemoryInputPipe::new(input_bytes))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .args(&[m.name.as_str(), tool]);
        for var in &caps.env {
            if let Ok(v) = std::env::var(var) {
                b.env(var, &v);
            }
        }
        for d in &caps.dirs {
            let host = if d.host.is_absolute() {
                d.host.clone()
            } else {
                self.dir.join(&d.host)
            };
            let perms = match d.mode {
                DirMode::Ro => FsPerms::ReadOnly,
                DirMode::Rw => FsPerms::ReadWrite,
            };
            b.preopened_dir(&host, &d.guest, perms)
                .map_err(|e| Error::Load {
                    plugin: m.name.clone(),
                    reason: format!("granted directory {} cannot be opened: {e}", host.display()),
                })?;
        }
        let state = State {
            wasi: b.build_p1(),
            limiter: Limiter {
                max_bytes: caps.memory_mb as usize * 1024 * 1024,
                hit: false,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        if self.fuel_enabled {
            // Without a budget in the manifest, metering is on but unlimited.
            store
                .set_fuel(caps.fuel.unwrap_or(u64::MAX))
                .map_err(|e| Error::Host(e.to_string()))?;
        }
        let deadline = Instant::now() + Duration::from_millis(caps.time_ms);
        let cancel = cancel.cloned();
        let cancelled = Arc::new(AtomicBool::new(false));
        let seen_cancel = cancelled.clone();
        let watched = stdout.clone();
        let mut ticks = 0u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            ticks += 1;
            // A full stdout never drains: stop a plugin that keeps writing (checked every
            // 16 ms, as reading the pipe's length copies it).
            if ticks.is_multiple_of(16) && watched.contents().len() > out_limit {
                return Err(wasmtime::Error::msg("output limit"));
            }
            if cancel.as_ref().is_some_and(CancellationToken::is_cancelled) {
                seen_cancel.store(true, Ordering::Relaxed);
                return Err(wasmtime::Error::msg("cancelled"));
            }
            if Instant::now() >= deadline {
                return Err(Trap::Interrupt.into());
            }
            Ok(UpdateDeadline::Continue(1))
        });

        let result = self
            .pre
            .instantiate(&mut store)
            .and_then(|instance| instance.get_typed_func::<(), ()>(&mut store, "_start"))
            .and_then(|start| start.call(&mut store, ()));
        let written = stdout.contents().len();
        if written > out_limit || (result.is_err() && written >= out_limit) {
            return Err(Error::OutputLimit {
                plugin: m.name.clone(),
                tool: tool.into(),
                limit_kb: caps.max_output_kb,
            });
        }
        if let Err(e) = result {
            if cancelled.load(Ordering::Relaxed) {
                return Err(Error::Cancelled {
                    plugin: m.name.clone(),
                    tool: tool.into(),
                });
            }
            if store.data().limiter.hit {
                return Err(Error::MemoryLimit {
                    plugin: m.name.clone(),
                    tool: tool.into(),
                    limit_mb: caps.memory_mb,
                });
            }
            if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                if exit.0 != 0 {
                    return Err(failed(format!("exited with status {}", exit.0)));
                }
            } else {
                return Err(match e.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => Error::Timeout {
                        plugin: m.name.clone(),
                        tool: tool.into(),
                        limit_ms: caps.time_ms,
                    },
                    Some(Trap::OutOfFuel) => Error::OutOfFuel {
                        plugin: m.name.clone(),
                        tool: tool.into(),
                        fuel: caps.fuel.unwrap_or(0),
                    },
                    Some(trap) => failed(format!("trapped: {trap}")),
                    None => failed("aborted by the host".into()),
                });
            }
        }
        let out = stdout.contents();
        serde_json::from_slice(&out)
            .map_err(|_| failed(format!("its output ({} bytes) is not JSON", out.len())))
    }
}
