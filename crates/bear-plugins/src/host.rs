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
//!
//! Besides WASI, the linker offers two host functions in the `bear` module, and a plugin may
//! import only those its manifest names in `capabilities.host`: `log` (rate-limited; the lines
//! come back with the call's result and never reach BEAR's own logs, since they may carry
//! document text) and `scrub` (the host's PII scrubber, through bear-core's `PiiScrubber`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bear_core::{CancellationToken, PiiScrubber};
use serde::{Deserialize, Serialize};
use wasmtime::{
    Caller, Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store, Trap,
    UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::manifest::{DirMode, HostFn, Manifest};
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
    host: HostCalls,
}

/// Lines a plugin may log per call, and bytes in all.
const MAX_LOG_LINES: usize = 100;
const MAX_LOG_BYTES: usize = 64 * 1024;
/// Longest line kept; longer ones are cut.
const MAX_LOG_LINE: usize = 2048;
/// Largest text `bear.scrub` accepts.
const MAX_SCRUB_BYTES: usize = 1 << 20;

/// One line a plugin logged through `bear.log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginLog {
    /// `error`, `warn`, `info` or `debug` (from the level argument 0..=3).
    pub level: String,
    /// The text, lossily decoded and cut at 2 KiB.
    pub message: String,
}

/// A call's output with what the plugin logged.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutput {
    /// The tool's JSON output.
    pub output: serde_json::Value,
    /// Lines logged through `bear.log`, at most 100.
    pub logs: Vec<PluginLog>,
    /// Lines dropped by the rate limit.
    pub logs_dropped: u32,
}

/// What a call's host functions may do and have done.
#[derive(Default)]
struct HostCalls {
    log: bool,
    scrubber: Option<Arc<dyn PiiScrubber>>,
    scrub: bool,
    logs: Vec<PluginLog>,
    log_bytes: usize,
    dropped: u32,
}

/// Host-function return codes (non-negative values are lengths).
const BAD_MEMORY: i32 = -1;
const UNAVAILABLE: i32 = -2;
const NOT_GRANTED: i32 = -3;

fn memory(caller: &mut Caller<'_, State>) -> Option<wasmtime::Memory> {
    caller.get_export("memory").and_then(|e| e.into_memory())
}

/// `bear.log(level, ptr, len)`: 0 logged, 1 dropped by the rate limit, negative on error.
fn host_log(mut caller: Caller<'_, State>, level: i32, ptr: i32, len: i32) -> i32 {
    if !caller.data().host.log {
        return NOT_GRANTED;
    }
    let h = &caller.data().host;
    if h.logs.len() >= MAX_LOG_LINES || h.log_bytes >= MAX_LOG_BYTES {
        caller.data_mut().host.dropped += 1;
        return 1;
    }
    let Some(mem) = memory(&mut caller) else {
        return BAD_MEMORY;
    };
    let (ptr, len) = (ptr as u32 as usize, (len as u32 as usize).min(MAX_LOG_LINE));
    let Some(bytes) = mem.data(&caller).get(ptr..ptr.saturating_add(len)) else {
        return BAD_MEMORY;
    };
    let message = String::from_utf8_lossy(bytes).into_owned();
    let level = match level {
        0 => "error",
        1 => "warn",
        2 => "info",
        _ => "debug",
    };
    let h = &mut caller.data_mut().host;
    h.log_bytes += message.len();
    h.logs.push(PluginLog {
        level: level.into(),
        message,
    });
    0
}

/// `bear.scrub(ptr, len, out_ptr, out_cap)`: the scrubbed text's length; when that is more
/// than `out_cap` nothing is written and the caller retries with a bigger buffer.
fn host_scrub(
    mut caller: Caller<'_, State>,
    ptr: i32,
    len: i32,
    out_ptr: i32,
    out_cap: i32,
) -> i32 {
    if !caller.data().host.scrub {
        return NOT_GRANTED;
    }
    let Some(scrubber) = caller.data().host.scrubber.clone() else {
        return UNAVAILABLE;
    };
    let Some(mem) = memory(&mut caller) else {
        return BAD_MEMORY;
    };
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    if len > MAX_SCRUB_BYTES {
        return BAD_MEMORY;
    }
    let Some(text) = mem
        .data(&caller)
        .get(ptr..ptr.saturating_add(len))
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::to_owned)
    else {
        return BAD_MEMORY;
    };
    let Ok(out) = scrubber.scrub(&text) else {
        return UNAVAILABLE;
    };
    let bytes = out.text.expose().as_bytes();
    let Ok(n) = i32::try_from(bytes.len()) else {
        return UNAVAILABLE;
    };
    if n > out_cap {
        return n;
    }
    if mem
        .write(&mut caller, out_ptr as u32 as usize, bytes)
        .is_err()
    {
        return BAD_MEMORY;
    }
    n
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
    ticker: Arc<TickerGuard>,
    scrubber: Option<Arc<dyn PiiScrubber>>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("config", &self.config)
            .finish()
    }
}

/// Stops the epoch ticker thread when the last holder (the host or a plugin it loaded) is
/// dropped: a loaded plugin keeps its time limit even after its host is gone.
#[derive(Debug)]
struct TickerGuard(Arc<AtomicBool>);

impl Drop for TickerGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
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
        linker
            .func_wrap("bear", "log", host_log)
            .and_then(|l| l.func_wrap("bear", "scrub", host_scrub))
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
            ticker: Arc::new(TickerGuard(stop)),
            scrubber: None,
        })
    }

    /// Gives plugins that declare `scrub` this PII scrubber; without one, `bear.scrub`
    /// returns -2.
    pub fn with_scrubber(mut self, scrubber: Arc<dyn PiiScrubber>) -> Self {
        self.scrubber = Some(scrubber);
        self
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
        for import in module.imports().filter(|i| i.module() == "bear") {
            let declared = manifest
                .capabilities
                .host
                .iter()
                .any(|h| h.import_name() == import.name());
            if !declared {
                return Err(load_err(format!(
                    "it imports host function `bear.{}` but its manifest does not declare it \
                     in `capabilities.host`",
                    import.name()
                )));
            }
        }
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
            scrubber: self.scrubber.clone(),
            _ticker: self.ticker.clone(),
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
    scrubber: Option<Arc<dyn PiiScrubber>>,
    _ticker: Arc<TickerGuard>,
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
        self.call_logged(tool, input, cancel).map(|c| c.output)
    }

    /// [`Self::call`], also returning the lines the plugin logged through `bear.log`.
    pub fn call_logged(
        &self,
        tool: &str,
        input: &serde_json::Value,
        cancel: Option<&CancellationToken>,
    ) -> Result<CallOutput> {
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
            host: HostCalls {
                log: caps.host.contains(&HostFn::Log),
                scrub: caps.host.contains(&HostFn::Scrub),
                scrubber: self.scrubber.clone(),
                ..HostCalls::default()
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
        let output = serde_json::from_slice(&out)
            .map_err(|_| failed(format!("its output ({} bytes) is not JSON", out.len())))?;
        let host = std::mem::take(&mut store.data_mut().host);
        Ok(CallOutput {
            output,
            logs: host.logs,
            logs_dropped: host.dropped,
        })
    }
}
