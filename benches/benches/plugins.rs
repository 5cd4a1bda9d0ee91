//! bear-plugins benchmarks: the overhead of calling a trivial pre-instantiated tool (Criterion),
//! and two sandbox guarantees measured over many runs and written to
//! `<target>/bench-plugins.json` for `cargo xtask bench plugins`: how late an infinite loop is
//! stopped after its deadline (p50/p99 over 100 runs), and how much the host's peak RSS grows
//! while memory bombs hit their limit.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bear_plugins::{HostConfig, LoadedPlugin, Manifest, PluginHost};
use criterion::{Criterion, criterion_group, criterion_main};

const ECHO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 60000))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))))"#;
const LOOP: &str =
    r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;
/// Grows memory a page at a time and touches every 4 KiB of each new page, so the pages are
/// really resident, until growth is refused.
const BOMB: &str = r#"(module (memory (export "memory") 1)
  (func (export "_start") (local $p i32) (local $i i32)
    (loop $grow
      (local.set $p (memory.grow (i32.const 1)))
      (if (i32.eq (local.get $p) (i32.const -1)) (then unreachable))
      (local.set $i (i32.const 0))
      (loop $touch
        (i32.store8
          (i32.add (i32.mul (local.get $p) (i32.const 65536)) (i32.mul (local.get $i) (i32.const 4096)))
          (i32.const 1))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $touch (i32.lt_u (local.get $i) (i32.const 16))))
      (br $grow))))"#;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Writes the module text (wasmtime compiles WAT) and a manifest with its hash; loads it.
fn plugin(host: &PluginHost, root: &Path, name: &str, wat: &str, caps: &str) -> LoadedPlugin {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("plugin dir");
    std::fs::write(dir.join("p.wat"), wat).expect("module");
    let sha = bear_security::sign::sha256_hex(wat.as_bytes());
    let manifest = format!(
        "name = \"{name}\"\nversion = \"1.0.0\"\ndescription = \"bench\"\nwasm = \"p.wat\"\n\
         sha256 = \"{sha}\"\n[capabilities]\n{caps}\n[[tools]]\nname = \"run\"\n\
         description = \"d\"\ninput_schema = {{}}\noutput_schema = {{}}\n"
    );
    std::fs::write(dir.join("plugin.toml"), manifest).expect("manifest");
    let m = Manifest::load(&dir.join("plugin.toml")).expect("manifest parses");
    host.load(m, &dir).expect("plugin loads")
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn plugins(c: &mut Criterion) {
    let root = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new(HostConfig::default()).expect("host");
    // First, while the peak RSS is still the baseline: memory bombs against a 64 MiB
    // limit, and the host's peak RSS growth.
    let bomb = plugin(&host, root.path(), "bomb", BOMB, "memory_mb = 64");
    let input = serde_json::json!({ "text": "short" });
    let before = peak_rss_kib();
    for _ in 0..5 {
        assert!(matches!(
            bomb.call("run", &input, None),
            Err(bear_plugins::Error::MemoryLimit { .. })
        ));
    }
    let growth_mib = (peak_rss_kib().saturating_sub(before)) as f64 / 1024.0;
    let echo = plugin(&host, root.path(), "echo", ECHO, "");
    let mut group = c.benchmark_group("plugins");
    group.bench_function("call_trivial_tool", |b| {
        b.iter(|| echo.call("run", black_box(&input), None).expect("call"))
    });
    group.finish();

    // Deadline accuracy: 100 infinite loops with a 50 ms limit.
    let spin = plugin(&host, root.path(), "spin", LOOP, "time_ms = 50");
    let mut late: Vec<f64> = (0..100)
        .map(|_| {
            let t = Instant::now();
            let e = spin.call("run", &input, None);
            assert!(matches!(e, Err(bear_plugins::Error::Timeout { .. })));
            (t.elapsed().saturating_sub(Duration::from_millis(50))).as_secs_f64() * 1e3
        })
        .collect();
    late.sort_by(f64::total_cmp);

    let report = serde_json::json!({
        "loop_late_ms_p50": late[49],
        "loop_late_ms_p99": late[98],
        "loop_late_ms_max": late[99],
        "bomb_limit_mib": 64,
        "bomb_peak_rss_growth_mib": growth_mib,
    });
    println!("plugins sandbox: {report}");
    let _ = std::fs::write(target_dir().join("bench-plugins.json"), report.to_string());
}

criterion_group!(benches, plugins);
criterion_main!(benches);
