//! Integration tests for bear-plugins: for now, proof that wasmtime compiles and runs a module,
//! and that a WASI preview-1 guest sees only the stdout the host gave it.

mod examples;
mod sandbox;

use wasmtime::{Engine, Instance, Linker, Module, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

#[test]
fn wasmtime_runs_a_module() -> wasmtime::Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (func (export "add") (param i32 i32) (result i32)
              local.get 0 local.get 1 i32.add))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;
    let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add")?;
    assert_eq!(add.call(&mut store, (2, 40))?, 42);
    Ok(())
}

#[test]
fn wasi_guest_writes_to_a_captured_stdout() -> wasmtime::Result<()> {
    let engine = Engine::default();
    // Writes "bear\n" to fd 1 through fd_write, with the iovec at 0 and the text at 8.
    let module = Module::new(
        &engine,
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write"
               (func $fd_write (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 8) "bear\n")
             (func (export "_start")
               (i32.store (i32.const 0) (i32.const 8))
               (i32.store (i32.const 4) (i32.const 5))
               (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 100)))))"#,
    )?;
    let stdout = MemoryOutputPipe::new(1024);
    let ctx = WasiCtxBuilder::new().stdout(stdout.clone()).build_p1();
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |ctx| ctx)?;
    let mut store = Store::new(&engine, ctx);
    let instance = linker.instantiate(&mut store, &module)?;
    instance
        .get_typed_func::<(), ()>(&mut store, "_start")?
        .call(&mut store, ())?;
    assert_eq!(&stdout.contents()[..], b"bear\n");
    Ok(())
}
