//! Discovery over the real models directory and over a directory of bad files.

use bear_core::Dirs;
use bear_models::{ModelKind, scan};

#[test]
fn scan_finds_the_three_pinned_kinds() {
    let dirs = Dirs::from_env(|k| std::env::var_os(k)).unwrap();
    let _ = crate::asset(bear_core::assets::SMOLLM2_GGUF);
    let found = scan(&[dirs.models_dir]).unwrap();
    let get = |id: &str| {
        found
            .models
            .get(&bear_core::ModelId::new(id).unwrap())
            .unwrap_or_else(|| panic!("{id} not found in {:?}", found.models.keys()))
    };

    let gguf = get("SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(gguf.kind, ModelKind::Gguf);
    assert_eq!(gguf.meta.architecture.as_deref(), Some("llama"));
    assert!(gguf.meta.has_chat_template);
    assert_eq!(gguf.size_bytes, 98_362_432);

    let st = get("all-MiniLM-L6-v2");
    assert_eq!(st.kind, ModelKind::Safetensors);
    assert_eq!(st.meta.architecture.as_deref(), Some("bert"));
    assert_eq!(st.meta.context_length, Some(512));
    // all-MiniLM-L6-v2 has 22.7M parameters.
    let params = st.meta.parameter_count.unwrap();
    assert!((22_000_000..23_000_000).contains(&params), "{params}");

    for id in ["all-MiniLM-L6-v2-int8", "all-MiniLM-L6-v2-int8-dynamic"] {
        assert_eq!(get(id).kind, ModelKind::Onnx);
    }
    assert!(found.rejected.is_empty(), "{:?}", found.rejected);
}

#[test]
fn bad_files_are_rejected_with_reasons_and_the_scan_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("notes.gguf"),
        b"these are my notes, not a model",
    )
    .unwrap();
    std::fs::write(dir.path().join("empty.onnx"), b"").unwrap();
    std::fs::write(dir.path().join("readme.txt"), b"ignored").unwrap();
    let half = dir.path().join("half");
    std::fs::create_dir(&half).unwrap();
    std::fs::write(half.join("config.json"), b"{\"model_type\":\"bert\"}").unwrap();
    std::fs::write(
        half.join("model.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{}",
    )
    .unwrap();
    std::fs::write(half.join("tokenizer.json"), b"{}").unwrap();
    let found = scan(&[dir.path().to_path_buf(), dir.path().join("missing")]).unwrap();
    assert!(found.models.is_empty());
    assert_eq!(found.rejected.len(), 3, "{:?}", found.rejected);
    let reasons: Vec<&str> = found.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("not a valid GGUF")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not a valid ONNX")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("not a valid safetensors")),
        "{reasons:?}"
    );
}
