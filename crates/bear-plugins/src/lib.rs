//! bear-plugins: WebAssembly plugins in a wasmtime sandbox.
//!
//! Layer **L2**; depends on bear-core and bear-security (hashes and signatures). Plugins are
//! wasm32-wasip1 command modules with a TOML manifest ([`manifest`]); the [`host`] checks the
//! hash and signature, pre-instantiates the module and runs each call in a fresh store with
//! only the granted directories and variables, a memory limit, an epoch deadline and optional
//! fuel; [`registry`] discovers plugins and resolves dependencies; [`tool`] exposes a plugin
//! tool as bear-core's `Tool`. The call protocol: argv is `[plugin, tool]`, stdin the input
//! JSON, stdout the output JSON; a non-zero exit, a trap or non-JSON output is an error.
//!
//! Invariants:
//! - A plugin has no ambient authority: no network, no files or environment beyond its grant.
//! - A trap, timeout or overrun in a plugin is a typed error and never takes the host down.
//! - Errors never carry a plugin's input, output or stderr.
//! - wasmtime is a dependency of this crate only.

mod error;
pub mod host;
pub mod manifest;
pub mod registry;
pub mod tool;

pub use error::{Error, Result};
pub use host::{CallOutput, HostConfig, LoadedPlugin, PluginHost, PluginLog, TrustPolicy};
pub use manifest::{Capabilities, DirGrant, DirMode, HostFn, Manifest, ToolDecl};
pub use registry::{Discovered, Registry, discover, locate, resolve};
pub use tool::WasmtimeTool;
