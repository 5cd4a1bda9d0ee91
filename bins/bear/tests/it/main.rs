//! End-to-end tests of the `bear` binary: real process, real machine, real model file.

use std::path::PathBuf;
use std::process::{Command, Output};

use bear_core::{Dirs, assets};

mod canary;
mod instances;
mod migrate;
mod one_answer;
mod plugins;
mod rag;
mod rest_runs;
mod review;
mod security;
mod ui;
mod web;
mod workflow;

fn bear(args: &[&str]) -> Output {
    bear_with_env(args, &[])
}

pub(crate) fn bear_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bear"));
    // A fixed width keeps clap's help wrapping (and so the snapshot) independent of the terminal.
    cmd.args(args)
        .env_remove("BEAR_CONFIG")
        .env_remove("BEAR_LOG")
        .env("COLUMNS", "100");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the bear binary runs")
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Every file under `dir` (which must exist).
pub(crate) fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn gguf() -> PathBuf {
    let dirs = Dirs::from_env(|k| std::env::var_os(k)).unwrap();
    let path = dirs.models_dir.join(assets::SMOLLM2_GGUF);
    assert!(path.exists(), "{}", assets::missing_hint(&path));
    path
}

#[test]
fn help_and_version() {
    let help = bear(&["--help"]);
    assert!(help.status.success());
    insta::assert_snapshot!("help", stdout(&help));
    let version = bear(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        stdout(&version).trim(),
        format!("bear {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_command_is_a_usage_error() {
    let o = bear(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unrecognized subcommand"));
}

#[test]
fn hw_json_is_stable_and_complete() {
    let o = bear(&["hw", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    assert_eq!(v["schema_version"], 1);
    let cpu = &v["cpu"];
    assert!(cpu["model"].is_string());
    assert!(cpu["physical_cores"].as_u64().unwrap() >= 1);
    assert!(cpu["logical_cores"].as_u64().unwrap() >= cpu["physical_cores"].as_u64().unwrap());
    for simd in ["avx2", "avx512", "neon"] {
        assert!(cpu["simd"][simd].is_boolean(), "simd.{simd}");
    }
    let mem = &v["memory"];
    assert!(mem["total_bytes"].as_u64().unwrap() > 0);
    assert!(mem["available_bytes"].as_u64().unwrap() <= mem["total_bytes"].as_u64().unwrap());
    assert!(v["gpus"].is_array());
    assert!(v["disk"]["available_bytes"].is_u64());
    let rec = &v["recommendations"];
    assert!(rec["inference_threads"].as_u64().unwrap() >= 1);
    assert!(rec["embedding_batch_size"].as_u64().unwrap() >= 1);
    assert!(rec["mmap"].is_boolean());
    assert!(rec["mlock"]["recommended"].is_boolean());
    assert!(rec["gpu"]["mode"].is_string());
}

#[test]
fn hw_human_output() {
    let o = bear(&["hw"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for label in [
        "CPU",
        "Memory",
        "GPU",
        "Disk",
        "inference threads",
        "embedding batch size",
    ] {
        assert!(text.contains(label), "missing {label} in:\n{text}");
    }
}

#[test]
fn models_fit_answers_with_numbers_for_the_gguf() {
    let path = gguf();
    let size = std::fs::metadata(&path).unwrap().len();
    let o = bear(&[
        "models",
        "fit",
        path.to_str().unwrap(),
        "--ctx",
        "2048",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let fit = &v["fit"];
    assert_eq!(fit["model_bytes"].as_u64(), Some(size));
    assert_eq!(fit["context_length"], 2048);
    let required = fit["required_bytes"].as_u64().unwrap();
    assert_eq!(
        required,
        size + fit["kv_cache_bytes"].as_u64().unwrap() + fit["overhead_bytes"].as_u64().unwrap()
    );
    // A 98 MB model fits on any machine that can build BEAR.
    assert_eq!(fit["fits"], true, "{}", fit["reason"]);

    let human = bear(&["models", "fit", path.to_str().unwrap()]);
    let text = stdout(&human);
    assert!(text.contains("fits: needs"), "{text}");
    assert!(text.contains("MiB"), "{text}");
}

#[test]
fn models_fit_bad_inputs() {
    let missing = bear(&["models", "fit", "/no/such/model.gguf"]);
    assert_eq!(missing.status.code(), Some(4));
    assert!(stderr(&missing).contains("/no/such/model.gguf"));

    let dir = tempfile::tempdir().unwrap();
    let not_file = bear(&["models", "fit", dir.path().to_str().unwrap()]);
    assert_eq!(not_file.status.code(), Some(5));
    assert!(stderr(&not_file).contains("not a regular file"));

    let zero_ctx = bear(&["models", "fit", "/x.gguf", "--ctx", "0"]);
    assert_eq!(zero_ctx.status.code(), Some(2));

    let json_err = bear(&["--json", "models", "fit", "/no/such/model.gguf"]);
    let v: serde_json::Value = serde_json::from_str(stderr(&json_err).trim()).unwrap();
    assert_eq!(v["error"]["kind"], "not_found");
}

#[test]
fn missing_or_corrupt_config_is_a_clear_error() {
    let missing = bear(&["--config", "/no/such/bear.toml", "hw"]);
    assert_eq!(missing.status.code(), Some(3));
    let err = stderr(&missing);
    assert!(
        err.contains("cannot read configuration file /no/such/bear.toml"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bear.toml");
    std::fs::write(&bad, "[hw]\nthreads = \"lots\"\n").unwrap();
    let o = bear(&["--config", bad.to_str().unwrap(), "hw"]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(
        err.contains("bear.toml") && err.contains("`hw.threads`"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    std::fs::write(&bad, "this is not toml at all [").unwrap();
    let o = bear(&["--config", bad.to_str().unwrap(), "hw"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("not valid TOML at line 1"),
        "{}",
        stderr(&o)
    );

    // The same through the environment variable.
    let o = bear_with_env(&["hw"], &[("BEAR_CONFIG", "/no/such/env.toml")]);
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn config_and_env_reach_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bear.toml");
    std::fs::write(&cfg, "[hw]\nthreads = 7\n").unwrap();
    let o = bear(&["--config", cfg.to_str().unwrap(), "hw", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["recommendations"]["inference_threads"], 7);
    let o = bear_with_env(
        &["--config", cfg.to_str().unwrap(), "hw", "--json"],
        &[("BEAR_THREADS", "3")],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["recommendations"]["inference_threads"], 3);
    let o = bear_with_env(&["hw"], &[("BEAR_THREADS", "zero")]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("BEAR_THREADS"));
}

fn bear_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_bear"))
        .args(args)
        .env_remove("BEAR_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn generate_streams_a_real_answer() {
    let _ = gguf();
    let o = bear(&[
        "generate",
        "--max-tokens",
        "12",
        "--temperature",
        "0",
        "What is a contract?",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).trim().len() > 5, "{:?}", stdout(&o));

    let o = bear(&[
        "--json",
        "generate",
        "--max-tokens",
        "6",
        "--temperature",
        "0",
        "What is a tort?",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["completion_tokens"], 6);
    assert_eq!(v["finish_reason"], "length");
    assert!(v["tokens_used"].as_u64().unwrap() > 6);
    assert!(v["generation_time"].as_f64().unwrap() > 0.0);

    // `-` reads the prompt from stdin; the same greedy request gives the same answer.
    let piped = bear_stdin(
        &["generate", "--max-tokens", "12", "--temperature", "0", "-"],
        "What is a contract?",
    );
    let direct = bear(&[
        "generate",
        "--max-tokens",
        "12",
        "--temperature",
        "0",
        "What is a contract?",
    ]);
    assert_eq!(stdout(&piped), stdout(&direct));
}

#[test]
fn generate_under_a_json_schema_gives_json_that_fits_it() {
    let _ = gguf();
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("lease.json");
    std::fs::write(
        &schema,
        r#"{"type": "object", "properties": {"landlord": {"type": "string", "maxLength": 40},
            "monthly_rent_eur": {"type": "integer"}},
            "required": ["landlord", "monthly_rent_eur"], "additionalProperties": false}"#,
    )
    .unwrap();
    let s = schema.to_string_lossy();
    let prompt = "Canal Estates B.V. lets the office for EUR 4,250 a month. As JSON:";
    let o = bear(&[
        "--json",
        "generate",
        "--json-schema",
        &s,
        "--max-tokens",
        "80",
        prompt,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["finish_reason"], "stop", "{v}");
    let out: serde_json::Value = serde_json::from_str(v["text"].as_str().unwrap()).unwrap();
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["landlord", "monthly_rent_eur"], "{out}");
    assert!(
        out["landlord"].is_string() && out["monthly_rent_eur"].is_i64(),
        "{out}"
    );

    // A schema file that is not JSON, or not an object, is refused before any model work.
    for bad in ["[1", "[1, 2]"] {
        std::fs::write(&schema, bad).unwrap();
        let o = bear(&["generate", "--json-schema", &s, "hello"]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("json"), "{}", stderr(&o));
    }
}

#[test]
fn generate_bad_inputs_are_typed_errors() {
    let o = bear(&["generate", "-m", "no-such-model", "hello"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("available:"), "{}", stderr(&o));
    let o = bear(&["generate", "--top-p", "1.5", "hello"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = bear(&["generate", "--max-tokens", "0", "hello"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = bear(&["generate", "   "]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = bear(&["embed", "-m", "SmolLM2-135M-Instruct.Q4_1", "x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // The prompt never appears in an error.
    let o = bear(&[
        "generate",
        "-m",
        "missing",
        "client Jane Roe SSN 123-45-6789",
    ]);
    assert!(!stderr(&o).contains("Jane"), "{}", stderr(&o));
}

#[test]
fn chat_works_when_piped() {
    let _ = gguf();
    let o = bear_stdin(
        &["chat", "--max-tokens", "8", "--temperature", "0"],
        "What is a contract?\nAnd a tort?\n/exit\nnot sent\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let answers: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(answers.len() >= 2, "{answers:?}");
}

#[test]
fn models_list_show_and_embed() {
    let _ = gguf();
    let o = bear(&["models", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 5, "{v}");
    // The default embedder says which runtime it takes: the fused graph on ONNX Runtime.
    let minilm = v
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "all-MiniLM-L6-v2");
    assert_eq!(
        minilm.unwrap()["embedder_path"]["runtime"],
        "onnxruntime",
        "{v}"
    );
    let o = bear(&["models", "list"]);
    assert!(
        stdout(&o).contains("embeds with onnxruntime"),
        "{}",
        stdout(&o)
    );
    let o = bear(&["hw"]);
    assert!(
        stdout(&o).contains("Embedder  onnxruntime"),
        "{}",
        stdout(&o)
    );
    let o = bear(&["models", "show", "all-MiniLM-L6-v2"]);
    assert!(stdout(&o).contains("bert"), "{}", stdout(&o));
    let o = bear(&["models", "show", "nope"]);
    assert_eq!(o.status.code(), Some(4));

    for model in [
        "all-MiniLM-L6-v2",
        "all-MiniLM-L6-v2-int8",
        "all-MiniLM-L6-v2-int8-dynamic",
    ] {
        let o = bear(&["embed", "-m", model, "indemnity", "warranty"]);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["dimension"], 384);
        assert_eq!(v["embeddings"].as_array().unwrap().len(), 2);
    }
}

/// `bear models`, `bear keys` and `bear workflow` against a real bear-server, through its
/// control socket: each returns once the server has done it.
#[test]
fn the_cli_controls_a_running_server_through_its_socket() {
    let _ = gguf();
    let generator = "SmolLM2-135M-Instruct.Q4_1";
    let emb = "all-MiniLM-L6-v2-int8";
    let h = security::Home::new();
    let run = |args: &[&str]| h.run(args, None, &[]);
    let list = || -> serde_json::Value {
        serde_json::from_str(&stdout(&run(&["--json", "models", "list"]))).unwrap()
    };
    let state = |v: &serde_json::Value, id: &str| -> (String, bool) {
        let m = v
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap();
        (m["status"].as_str().unwrap().into(), m["pinned"] == true)
    };

    // No server: nothing to load into, and the error says what to do. Bad ids are typed.
    let o = run(&["models", "load", emb]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no bear-server is running"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("models.preload"), "{}", stderr(&o));
    assert_eq!(state(&list(), emb), ("available".into(), false));
    assert_eq!(
        run(&["models", "load", "no-such-model"]).status.code(),
        Some(4)
    );

    // `models.preload` is loaded and pinned before the server says it listens.
    std::fs::create_dir_all(h.path("config/bear")).unwrap();
    h.write(
        "config/bear/config.toml",
        format!("[models]\npreload = [\"{emb}\"]\n").as_bytes(),
    );
    let server = one_answer::Server::start(&h);
    let socket = h.path("data/control.sock");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is the user's only");
    assert_eq!(state(&list(), emb), ("loaded".into(), true));

    // Load and unload: done when the command returns.
    let o = run(&["--json", "models", "load", generator]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (&v["status"], &v["pinned"]),
        (&"loaded".into(), &true.into()),
        "{v}"
    );
    assert_eq!(state(&list(), generator), ("loaded".into(), true));
    let o = run(&["models", "unload", generator]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("unloaded"), "{}", stdout(&o));
    assert_eq!(state(&list(), generator), ("available".into(), false));
    let o = run(&["--json", "models", "unload", generator]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e: serde_json::Value = serde_json::from_str(&stderr(&o)).unwrap();
    assert_eq!(e["error"]["kind"], "invalid_request", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is not loaded"),
        "{e}"
    );

    // A key made while the server runs works at once; a revoked one stops at once.
    let o = run(&["--json", "keys", "api-create", "--role", "user"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("now uses the changed keys"),
        "{}",
        stderr(&o)
    );
    let made: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let key = made["key"].as_str().unwrap();
    let hw = |key: &str| -> u16 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(format!("{}/api/v1/hw", server.base))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    assert_eq!(hw(key), 200);
    let id = made["record"]["id"].as_str().unwrap();
    let o = run(&["keys", "api-revoke", id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(hw(key), 401);

    // Workflow control goes to the server's engine, which knows no such run.
    let o = run(&[
        "--json",
        "workflow",
        "pause",
        "0123456789abcdef0123456789abcdef",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));

    // A stopped server leaves no socket behind.
    drop(server);
    assert!(!socket.exists());
}
