//! bear-plugins: WebAssembly plugins in a wasmtime sandbox.
//!
//! Layer **L2**; depends on bear-core (and L1 crates). It will implement bear-core's `Tool` with
//! sandboxed wasm32-wasip1 modules (`WasmtimeTool`): manifests, hashes and signatures, granted
//! capabilities only, memory limits and epoch deadlines.
//!
//! Invariants (binding on the code this crate will hold):
//! - A plugin has no ambient authority: no network, no files or environment beyond its grant.
//! - A trap, timeout or overrun in a plugin is a typed error and never takes the host down.
//! - wasmtime is a dependency of this crate only.
//!
//! Status: the stack is proven to build and run a module (see the crate's tests); the plugin
//! host is the bear-plugins issue's work and is not here yet.
