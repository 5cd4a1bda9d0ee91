//! `bear plugins list|info|validate|run` on the plugins `cargo xtask plugins` built.

use std::path::PathBuf;

use super::security::Home;
use super::{stderr, stdout};

/// `<target>/plugins`, from this test binary's path (`<target>/debug/deps/it-*`).
pub(crate) fn plugins_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| exe.ancestors().nth(3).unwrap().to_path_buf())
        .join("plugins");
    assert!(
        dir.join("citations/plugin.toml").is_file(),
        "run `cargo xtask plugins` first ({} is empty)",
        dir.display()
    );
    dir
}

fn home() -> Home {
    let h = Home::new();
    std::fs::create_dir_all(h.path("config/bear")).unwrap();
    h.write(
        "config/bear/config.toml",
        format!("[plugins]\ndirs = [{:?}]\n", plugins_dir()).as_bytes(),
    );
    h
}

#[test]
fn list_info_validate_and_run() {
    let h = home();
    let o = h.run(&["plugins", "list", "--json"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["citations", "clauses", "docstats", "hostile"]);
    let o = h.run(&["plugins", "info", "hostile"], None, &[]);
    assert!(stdout(&o).contains("limits      32 MiB memory, 300 ms per call, 256 KiB output"));
    // clauses depends on docstats: validate resolves it from the plugin directories.
    let o = h.run(&["plugins", "validate", "clauses"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = h.run(
        &[
            "plugins",
            "run",
            "citations",
            "extract",
            "--input",
            r#"{"text":"see ECLI:NL:HR:2019:1234"}"#,
        ],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["ecli"][0], "ECLI:NL:HR:2019:1234");
    let o = h.run(
        &["plugins", "run", "docstats", "stats", "--input", "-"],
        Some(br#"{"text":"One two."}"#),
        &[],
    );
    assert!(stdout(&o).contains("\"words\":2"), "{}", stdout(&o));
}

#[test]
fn plugin_failures_are_typed_errors_with_exit_codes() {
    let h = home();
    let o = h.run(&["plugins", "run", "hostile", "passwd"], None, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!stdout(&o).contains("root:") && !stderr(&o).contains("root:"));
    let o = h.run(&["plugins", "run", "hostile", "spin"], None, &[]);
    assert!(stderr(&o).contains("300 ms time limit"), "{}", stderr(&o));
    let o = h.run(&["plugins", "run", "nosuch", "x"], None, &[]);
    assert_eq!(o.status.code(), Some(4));
    let o = h.run(
        &[
            "plugins",
            "run",
            "citations",
            "extract",
            "--input",
            "{not json",
        ],
        None,
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    // A plugin directory with a swapped module fails validation by path.
    let copy = h.path("forged");
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["plugin.toml", "citations.wasm"] {
        std::fs::copy(plugins_dir().join("citations").join(f), copy.join(f)).unwrap();
    }
    std::fs::write(copy.join("citations.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let o = h.run(&["plugins", "validate", copy.to_str().unwrap()], None, &[]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("sha256"));
}
