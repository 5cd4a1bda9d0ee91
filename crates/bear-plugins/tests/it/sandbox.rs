//! The plugin host on real wasm modules (WAT compiled by wasmtime): the call protocol, the
//! `Tool` trait, and every limit: time, fuel, memory, output, cancellation; hashes,
//! signatures, manifests and dependencies.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bear_core::{CancellationToken, Tool};
use bear_plugins::{
    Error, HostConfig, Manifest, PluginHost, Registry, TrustPolicy, WasmtimeTool, resolve,
};

/// Echoes stdin to stdout: the smallest well-behaved tool.
const ECHO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 60000))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))))"#;

const LOOP: &str = r#"(module (memory (export "memory") 1)
  (func (export "_start") (loop $l (br $l))))"#;

const MEMORY_BOMB: &str = r#"(module (memory (export "memory") 1)
  (func (export "_start")
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable))"#;

const OUTPUT_BOMB: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 60000))
    (loop $l
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))
      (br $l))))"#;

const NOT_JSON: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "not json")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 8))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))))"#;

const TRAP: &str = r#"(module (memory (export "memory") 1)
  (func (export "_start") unreachable))"#;

const FOREIGN_IMPORT: &str = r#"(module
  (import "env" "launch_missiles" (func))
  (memory (export "memory") 1)
  (func (export "_start")))"#;

/// Writes a plugin directory: the module and a manifest with its real hash.
fn plugin(root: &Path, name: &str, wat: &str, extra: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let wasm = wat::parse_str(wat).unwrap();
    std::fs::write(dir.join("p.wasm"), &wasm).unwrap();
    let sha = bear_security::sign::sha256_hex(&wasm);
    let manifest = format!(
        "name = \"{name}\"\nversion = \"1.2.0\"\ndescription = \"test\"\nwasm = \"p.wasm\"\n\
         sha256 = \"{sha}\"\n{extra}\n\
         [[tools]]\nname = \"run\"\ndescription = \"d\"\n\
         input_schema = {{ type = \"object\" }}\noutput_schema = {{ type = \"object\" }}\n"
    );
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    dir
}

fn host() -> Arc<PluginHost> {
    Arc::new(PluginHost::new(HostConfig::default()).unwrap())
}

fn load(host: &PluginHost, dir: &Path) -> bear_plugins::Result<bear_plugins::LoadedPlugin> {
    host.load(Manifest::load(&dir.join("plugin.toml"))?, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_round_trips_json_through_the_tool_trait() {
    let root = tempfile::tempdir().unwrap();
    let dir = plugin(root.path(), "echo", ECHO, "");
    let mut reg = Registry::new(host());
    let p = reg.load(&dir).unwrap();
    let tool = WasmtimeTool::new(p, "run").unwrap();
    assert_eq!(tool.spec().name, "run");
    let input = serde_json::json!({ "text": "ECLI:NL:HR:2019:1234", "n": [1, 2, 3] });
    let out = tool
        .call(input.clone(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out, input);
    assert_eq!(reg.list(), vec![("echo".to_string(), "1.2.0".to_string())]);
    // Unknown tools are refused before anything runs.
    assert!(matches!(
        reg.get("echo").unwrap().call("nope", &input, None),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn an_infinite_loop_is_stopped_at_its_deadline_and_the_host_lives_on() {
    let root = tempfile::tempdir().unwrap();
    let h = host();
    let looping = load(
        &h,
        &plugin(root.path(), "spin", LOOP, "[capabilities]\ntime_ms = 100"),
    )
    .unwrap();
    let t = Instant::now();
    let e = looping
        .call("run", &serde_json::json!({}), None)
        .unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, Error::Timeout { limit_ms: 100, .. }), "{e}");
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_millis(600),
        "{took:?}"
    );
    let echo = load(&h, &plugin(root.path(), "echo", ECHO, "")).unwrap();
    assert_eq!(
        echo.call("run", &serde_json::json!({"ok": true}), None)
            .unwrap(),
        serde_json::json!({"ok": true})
    );
}

#[test]
fn a_loaded_plugin_keeps_its_time_limit_after_its_host_is_dropped() {
    let root = tempfile::tempdir().unwrap();
    let h = host();
    let looping = load(
        &h,
        &plugin(root.path(), "spin", LOOP, "[capabilities]\ntime_ms = 100"),
    )
    .unwrap();
    drop(h);
    let e = looping
        .call("run", &serde_json::json!({}), None)
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { limit_ms: 100, .. }), "{e}");
}

#[test]
fn fuel_and_cancellation_stop_a_loop() {
    let root = tempfile::tempdir().unwrap();
    let h = host();
    let fueled = load(
        &h,
        &plugin(
            root.path(),
            "fuel",
            LOOP,
            "[capabilities]\ntime_ms = 10000\nfuel = 1000000",
        ),
    )
    .unwrap();
    let e = fueled
        .call("run", &serde_json::json!({}), None)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutOfFuel {
                fuel: 1_000_000,
                ..
            }
        ),
        "{e}"
    );

    let slow = load(
        &h,
        &plugin(root.path(), "slow", LOOP, "[capabilities]\ntime_ms = 10000"),
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        c.cancel();
    });
    let t = Instant::now();
    let e = slow
        .call("run", &serde_json::json!({}), Some(&cancel))
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(e.kind(), bear_core::ErrorKind::Cancelled);
}

#[test]
fn memory_output_traps_and_bad_output_are_typed_errors() {
    let root = tempfile::tempdir().unwrap();
    let h = host();
    let bomb = load(
        &h,
        &plugin(
            root.path(),
            "bomb",
            MEMORY_BOMB,
            "[capabilities]\nmemory_mb = 8",
        ),
    )
    .unwrap();
    let e = bomb.call("run", &serde_json::json!({}), None).unwrap_err();
    assert!(matches!(e, Error::MemoryLimit { limit_mb: 8, .. }), "{e}");

    let flood = load(
        &h,
        &plugin(
            root.path(),
            "flood",
            OUTPUT_BOMB,
            "[capabilities]\nmax_output_kb = 64\ntime_ms = 5000",
        ),
    )
    .unwrap();
    let e = flood.call("run", &serde_json::json!({}), None).unwrap_err();
    assert!(matches!(e, Error::OutputLimit { limit_kb: 64, .. }), "{e}");

    let junk = load(&h, &plugin(root.path(), "junk", NOT_JSON, "")).unwrap();
    let e = junk.call("run", &serde_json::json!({}), None).unwrap_err();
    assert!(
        matches!(e, Error::Failed { .. }) && e.to_string().contains("not JSON"),
        "{e}"
    );
    assert!(
        !e.to_string().contains("not json"),
        "the output itself is never quoted"
    );

    let trap = load(&h, &plugin(root.path(), "trap", TRAP, "")).unwrap();
    let e = trap.call("run", &serde_json::json!({}), None).unwrap_err();
    assert!(
        matches!(e, Error::Failed { .. }) && e.to_string().contains("trapped"),
        "{e}"
    );
    assert_eq!(e.kind(), bear_core::ErrorKind::Sandbox);

    let e = load(&h, &plugin(root.path(), "foreign", FOREIGN_IMPORT, "")).unwrap_err();
    assert!(matches!(e, Error::Load { .. }), "{e}");
}

#[test]
fn forged_hashes_and_signatures_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = plugin(root.path(), "echo", ECHO, "");
    // Swap the module after the manifest was written.
    std::fs::write(dir.join("p.wasm"), wat::parse_str(LOOP).unwrap()).unwrap();
    let e = load(&host(), &dir).unwrap_err();
    assert!(matches!(e, Error::HashMismatch { .. }), "{e}");
    assert_eq!(e.kind(), bear_core::ErrorKind::Security);

    // Sign a manifest with a trusted key.
    let key = bear_security::sign::ed25519_generate().unwrap();
    let public = bear_security::sign::ed25519_public_hex(&key).unwrap();
    let dir = plugin(root.path(), "signed", ECHO, "");
    let path = dir.join("plugin.toml");
    let manifest = Manifest::load(&path).unwrap();
    let sig = bear_security::sign::ed25519_sign(&key, &manifest.signed_message()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let signed = text.replacen(
        "description",
        &format!("signature = \"{sig}\"\ndescription"),
        1,
    );
    std::fs::write(&path, &signed).unwrap();
    let strict = PluginHost::new(HostConfig {
        fuel: true,
        trust: TrustPolicy {
            require_signature: true,
            trusted_keys: vec![public.clone()],
        },
    })
    .unwrap();
    load(&strict, &dir).unwrap();
    // Granting itself more memory after signing breaks the signature.
    std::fs::write(
        &path,
        format!("{signed}\n[capabilities]\nmemory_mb = 4000\n"),
    )
    .unwrap();
    let e = load(&strict, &dir).unwrap_err();
    assert!(matches!(e, Error::Signature { .. }), "{e}");
    // A signature by an untrusted key, and no signature at all, are refused too.
    let other = bear_security::sign::ed25519_generate().unwrap();
    let forged = bear_security::sign::ed25519_sign(&other, &manifest.signed_message()).unwrap();
    std::fs::write(
        &path,
        text.replacen(
            "description",
            &format!("signature = \"{forged}\"\ndescription"),
            1,
        ),
    )
    .unwrap();
    assert!(matches!(load(&strict, &dir), Err(Error::Signature { .. })));
    std::fs::write(&path, &text).unwrap();
    assert!(matches!(load(&strict, &dir), Err(Error::Signature { .. })));
}

#[test]
fn bad_manifests_are_refused_with_reasons() {
    let p = Path::new("plugin.toml");
    let base = |extra: &str| {
        format!(
            "name = \"ok\"\nversion = \"1.0.0\"\ndescription = \"d\"\nwasm = \"p.wasm\"\n\
             sha256 = \"{}\"\n{extra}\n[[tools]]\nname = \"t\"\ndescription = \"d\"\n\
             input_schema = {{}}\noutput_schema = {{}}\n",
            "a".repeat(64)
        )
    };
    assert!(Manifest::parse(&base(""), p).is_ok());
    for (text, why) in [
        (base("").replace("\"ok\"", "\"Bad Name\""), "name"),
        (base("").replace("1.0.0", "one"), "version"),
        (base("").replace("p.wasm", "../p.wasm"), "wasm"),
        (base("").replace(&"a".repeat(64), "abc"), "sha256"),
        (base("[capabilities]\nmemory_mb = 0"), "memory_mb"),
        (base("[capabilities]\ntime_ms = 999999999"), "time_ms"),
        (
            base("[capabilities]\ndirs = [{ host = \"d\", guest = \"/x/../..\", mode = \"ro\" }]"),
            "guest",
        ),
        (base("[capabilities]\nenv = [\"A=B\"]"), "env"),
        (
            base("[dependencies]\nother = \"not a range\""),
            "dependency",
        ),
        (base("[capabilities]\nnetwork = true"), "unknown field"),
        (
            base("").replace("input_schema = {}", "input_schema = 3"),
            "schema",
        ),
    ] {
        let e = Manifest::parse(&text, p).unwrap_err();
        assert!(e.to_string().contains(why), "{why}: {e}");
    }
    let no_tools = base("").split("[[tools]]").next().unwrap().to_string();
    assert!(Manifest::parse(&no_tools, p).is_err());
}

#[test]
fn dependencies_resolve_or_name_the_problem() {
    let m = |name: &str, version: &str, deps: &[(&str, &str)]| {
        let mut text = format!(
            "name = \"{name}\"\nversion = \"{version}\"\ndescription = \"d\"\nwasm = \"p.wasm\"\n\
             sha256 = \"{}\"\n[dependencies]\n",
            "a".repeat(64)
        );
        for (d, r) in deps {
            text.push_str(&format!("{d} = \"{r}\"\n"));
        }
        text.push_str(
            "[[tools]]\nname = \"t\"\ndescription = \"d\"\ninput_schema = {}\noutput_schema = {}\n",
        );
        Manifest::parse(&text, Path::new("plugin.toml")).unwrap()
    };
    let order = resolve(&[
        m("app", "1.0.0", &[("lib", "^0.2")]),
        m("lib", "0.2.5", &[("base", ">=1")]),
        m("base", "1.1.0", &[]),
    ])
    .unwrap();
    assert_eq!(order, ["base", "lib", "app"]);
    let e = resolve(&[m("app", "1.0.0", &[("lib", "^0.2")])]).unwrap_err();
    assert!(e.to_string().contains("not installed"), "{e}");
    let e = resolve(&[
        m("app", "1.0.0", &[("lib", "^0.3")]),
        m("lib", "0.2.5", &[]),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("0.2.5 is installed"), "{e}");
    let e = resolve(&[
        m("a", "1.0.0", &[("b", "*")]),
        m("b", "1.0.0", &[("c", "*")]),
        m("c", "1.0.0", &[("a", "*")]),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("cycle: a -> b -> c -> a"), "{e}");
}

#[test]
fn plugins_load_unload_and_reload_at_run_time() {
    let root = tempfile::tempdir().unwrap();
    let base = plugin(root.path(), "base", ECHO, "");
    let app = plugin(root.path(), "app", ECHO, "[dependencies]\nbase = \"^1\"");
    let mut reg = Registry::new(host());
    assert!(matches!(reg.load(&app), Err(Error::Dependency { .. })));
    reg.load(&base).unwrap();
    reg.load(&app).unwrap();
    assert!(matches!(reg.unload("base"), Err(Error::Dependency { .. })));
    // Reload: a new version of the module replaces the loaded one.
    plugin(
        root.path(),
        "app",
        NOT_JSON,
        "[dependencies]\nbase = \"^1\"",
    );
    let reloaded = reg.load(&app).unwrap();
    assert!(reloaded.call("run", &serde_json::json!({}), None).is_err());
    reg.unload("app").unwrap();
    reg.unload("base").unwrap();
    assert!(reg.list().is_empty());
    let found = bear_plugins::discover(&[root.path().to_path_buf()]);
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|d| d.problem.is_none()));
}

/// Logs a line, then writes `"<scrubbed text>"` (a JSON string) using `bear.scrub`.
const HOST_FNS: &str = r#"(module
  (import "bear" "log" (func $log (param i32 i32 i32) (result i32)))
  (import "bear" "scrub" (func $scrub (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "Write to jane.doe@example.com today")
  (data (i32.const 200) "hello from the plugin")
  (func (export "_start") (local $n i32)
    (drop (call $log (i32.const 2) (i32.const 200) (i32.const 21)))
    (i32.store8 (i32.const 1000) (i32.const 34))
    (local.set $n (call $scrub (i32.const 100) (i32.const 35) (i32.const 1001) (i32.const 500)))
    (i32.store8 (i32.add (i32.const 1001) (local.get $n)) (i32.const 34))
    (i32.store (i32.const 0) (i32.const 1000))
    (i32.store (i32.const 4) (i32.add (local.get $n) (i32.const 2)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Logs 1,000 lines, then returns `{}`; the rate limit keeps 100.
const LOG_SPAM: &str = r#"(module
  (import "bear" "log" (func $log (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "spam")
  (data (i32.const 300) "{}")
  (func (export "_start") (local $i i32)
    (loop $l
      (drop (call $log (i32.const 3) (i32.const 200) (i32.const 4)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
    (i32.store (i32.const 0) (i32.const 300))
    (i32.store (i32.const 4) (i32.const 2))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn replace_scrubber() -> Arc<dyn bear_core::PiiScrubber> {
    let config = bear_core::PiiConfig {
        default_policy: bear_core::PiiPolicy::Replace,
        ..bear_core::PiiConfig::default()
    };
    let detector = Arc::new(bear_security::Detector::new(&config).unwrap());
    let key = bear_security::crypto::ephemeral_hmac_key().unwrap();
    Arc::new(bear_security::Scrubber::new(detector, config, key, None).unwrap())
}

#[test]
fn host_functions_scrub_and_log_when_declared() {
    let root = tempfile::tempdir().unwrap();
    let host = PluginHost::new(HostConfig::default())
        .unwrap()
        .with_scrubber(replace_scrubber());
    let dir = plugin(
        root.path(),
        "hostfns",
        HOST_FNS,
        "[capabilities]\nhost = [\"log\", \"scrub\"]",
    );
    let p = host
        .load(Manifest::load(&dir.join("plugin.toml")).unwrap(), &dir)
        .unwrap();
    let out = p.call_logged("run", &serde_json::json!({}), None).unwrap();
    assert_eq!(out.output, serde_json::json!("Write to [EMAIL_1] today"));
    assert_eq!(out.logs.len(), 1);
    assert_eq!(out.logs[0].level, "info");
    assert_eq!(out.logs[0].message, "hello from the plugin");

    // Rate limit: 1,000 lines logged, 100 kept, the rest counted as dropped.
    let dir = plugin(
        root.path(),
        "spam",
        LOG_SPAM,
        "[capabilities]\nhost = [\"log\"]",
    );
    let p = host
        .load(Manifest::load(&dir.join("plugin.toml")).unwrap(), &dir)
        .unwrap();
    let out = p.call_logged("run", &serde_json::json!({}), None).unwrap();
    assert_eq!(out.logs.len(), 100);
    assert_eq!(out.logs_dropped, 900);
}

#[test]
fn undeclared_host_functions_are_refused_at_load() {
    let root = tempfile::tempdir().unwrap();
    let host = host();
    // Imports bear.log and bear.scrub, declares only log.
    let dir = plugin(
        root.path(),
        "sneaky",
        HOST_FNS,
        "[capabilities]\nhost = [\"log\"]",
    );
    let err = host
        .load(Manifest::load(&dir.join("plugin.toml")).unwrap(), &dir)
        .unwrap_err();
    assert!(matches!(err, Error::Load { .. }), "{err}");
    assert!(err.to_string().contains("bear.scrub"), "{err}");
    // A host function that does not exist is not in the manifest vocabulary.
    let dir = plugin(
        root.path(),
        "unknown",
        ECHO,
        "[capabilities]\nhost = [\"exec\"]",
    );
    assert!(matches!(
        Manifest::load(&dir.join("plugin.toml")).unwrap_err(),
        Error::Manifest { .. }
    ));
    // Declared scrub on a host without a scrubber: the call sees -2, not a crash.
    let dir = plugin(
        root.path(),
        "noscrubber",
        HOST_FNS,
        "[capabilities]\nhost = [\"log\", \"scrub\"]",
    );
    let p = host
        .load(Manifest::load(&dir.join("plugin.toml")).unwrap(), &dir)
        .unwrap();
    // -2 as the length: the module then writes a malformed iovec and fails cleanly.
    let r = p.call("run", &serde_json::json!({}), None);
    assert!(r.is_err(), "{r:?}");
}
