//! The example plugins and the hostile test plugin from `examples/plugins`, as built by
//! `cargo xtask plugins` (Rust for wasm32-wasip1): the examples work through the `Tool` trait,
//! and every escape attempt is stopped with a typed error.

use std::path::PathBuf;
use std::sync::Arc;

use bear_core::{CancellationToken, Tool};
use bear_plugins::{Error, HostConfig, PluginHost, Registry, WasmtimeTool, discover};

/// `<target>/plugins`, found from this test binary's path (`<target>/debug/deps/it-*`).
fn plugins_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or(target)
        .join("plugins");
    assert!(
        dir.join("hostile/plugin.toml").is_file(),
        "the test plugins are not built in {}: run `cargo xtask plugins` \
         (needs `rustup target add wasm32-wasip1`)",
        dir.display()
    );
    dir
}

fn registry() -> Registry {
    let dir = plugins_dir();
    let mut reg = Registry::new(Arc::new(PluginHost::new(HostConfig::default()).unwrap()));
    for name in ["docstats", "citations", "clauses", "hostile"] {
        reg.load(&dir.join(name)).unwrap();
    }
    reg
}

#[tokio::test(flavor = "multi_thread")]
async fn example_plugins_work_through_the_tool_trait() {
    let reg = registry();
    let found = discover(&[plugins_dir()]);
    assert_eq!(found.len(), 4, "{found:?}");
    let call = |plugin: &str, tool: &str, text: &str| {
        let t = WasmtimeTool::new(reg.get(plugin).unwrap(), tool).unwrap();
        let input = serde_json::json!({ "text": text });
        async move { t.call(input, CancellationToken::new()).await.unwrap() }
    };
    let out = call(
        "citations",
        "extract",
        "See ECLI:NL:HR:2019:1234 and ECLI:EU:C:2014:317. Under Article 6:162 BW and Art. 8 ECHR.",
    )
    .await;
    assert_eq!(
        out["ecli"],
        serde_json::json!(["ECLI:NL:HR:2019:1234", "ECLI:EU:C:2014:317"])
    );
    assert_eq!(
        out["statutes"],
        serde_json::json!(["Article 6:162 BW", "Art. 8 ECHR"])
    );
    let out = call(
        "docstats",
        "stats",
        "The cat sat. The dog ran away quickly!",
    )
    .await;
    assert_eq!(out["words"], 8);
    assert_eq!(out["sentences"], 2);
    assert!(out["flesch_reading_ease"].as_f64().unwrap() > 60.0);
    let out = call(
        "clauses",
        "classify",
        "This agreement shall be governed by the laws of the Netherlands and the courts of Amsterdam.",
    )
    .await;
    assert_eq!(out["label"], "governing_law");
}

#[test]
fn every_escape_attempt_is_stopped_with_a_typed_error() {
    let reg = registry();
    let hostile = reg.get("hostile").unwrap();
    let run = |tool: &str| hostile.call(tool, &serde_json::json!({}), None);
    // Files outside the grant, `..` out of the grant, sockets, ungranted variables: the
    // plugin's attempt fails inside the sandbox and it aborts; nothing leaks out.
    for tool in ["passwd", "escape", "socket", "env"] {
        let e = run(tool).unwrap_err();
        assert!(matches!(e, Error::Failed { .. }), "{tool}: {e}");
        assert_eq!(e.kind(), bear_core::ErrorKind::Sandbox);
        assert!(!e.to_string().contains("root:"), "{tool}: {e}");
    }
    // The granted directory is readable but not writable.
    let out = run("granted").unwrap();
    assert_eq!(out["note"], "granted and read-only\n");
    assert_eq!(out["wrote"], false);
    assert!(!plugins_dir().join("hostile/data/out.txt").exists());
    // A gigabyte of output, an endless loop, unbounded allocation.
    assert!(matches!(
        run("flood"),
        Err(Error::OutputLimit { limit_kb: 256, .. })
    ));
    let t = std::time::Instant::now();
    assert!(matches!(
        run("spin"),
        Err(Error::Timeout { limit_ms: 300, .. })
    ));
    assert!(t.elapsed() < std::time::Duration::from_millis(800));
    assert!(matches!(
        run("bomb"),
        Err(Error::MemoryLimit { limit_mb: 32, .. })
    ));
    // The host is unharmed: a well-behaved plugin still answers.
    let ok = reg
        .get("docstats")
        .unwrap()
        .call("stats", &serde_json::json!({"text": "Still here."}), None)
        .unwrap();
    assert_eq!(ok["words"], 2);
}

#[test]
fn a_forged_wasm_file_is_refused() {
    let src = plugins_dir().join("citations");
    let dir = tempfile::tempdir().unwrap();
    for f in ["plugin.toml", "citations.wasm"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let mut wasm = std::fs::read(dir.path().join("citations.wasm")).unwrap();
    let n = wasm.len();
    wasm[n - 1] ^= 1;
    std::fs::write(dir.path().join("citations.wasm"), wasm).unwrap();
    let mut reg = Registry::new(Arc::new(PluginHost::new(HostConfig::default()).unwrap()));
    assert!(matches!(
        reg.load(dir.path()),
        Err(Error::HashMismatch { .. })
    ));
}
