//! The embedders against reference vectors from Python sentence-transformers
//! (`tests/fixtures/minilm_reference.json`, made by `make_minilm_reference.py`).

use std::sync::OnceLock;

use bear_core::{Dirs, Embedder, ModelId, assets};
use bear_models::{CandleEmbedder, Error, OrtEmbedder, ort_dylib_candidates};

use crate::asset;

struct Reference {
    sentences: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

fn reference() -> &'static Reference {
    static R: OnceLock<Reference> = OnceLock::new();
    R.get_or_init(|| {
        let text = include_str!("../fixtures/minilm_reference.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        Reference {
            sentences: serde_json::from_value(v["sentences"].clone()).unwrap(),
            vectors: serde_json::from_value(v["vectors"].clone()).unwrap(),
        }
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn check_against_reference(got: &[Vec<f32>], floor: f32) {
    let r = reference();
    assert!(r.sentences.len() >= 20);
    assert_eq!(got.len(), r.sentences.len());
    for (i, (g, want)) in got.iter().zip(&r.vectors).enumerate() {
        assert_eq!(g.len(), 384);
        let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-4,
            "sentence {i} not normalised: {norm}"
        );
        let c = cosine(g, want);
        assert!(c >= floor, "sentence {i}: cosine {c} < {floor}");
    }
}

fn minilm_dir() -> std::path::PathBuf {
    let dir = asset(assets::MINILM_DIR);
    assert!(
        dir.join("model.safetensors").exists(),
        "{}",
        assets::missing_hint(&dir)
    );
    dir
}

fn candle() -> &'static CandleEmbedder {
    static E: OnceLock<CandleEmbedder> = OnceLock::new();
    E.get_or_init(|| {
        CandleEmbedder::load(ModelId::new("all-MiniLM-L6-v2").unwrap(), &minilm_dir()).unwrap()
    })
}

fn ort(id: &str, file: &str) -> OrtEmbedder {
    let dirs = Dirs::from_env(|k| std::env::var_os(k)).unwrap();
    OrtEmbedder::load(
        ModelId::new(id).unwrap(),
        &asset(file),
        &minilm_dir(),
        &ort_dylib_candidates(None, &dirs.models_dir),
        2,
    )
    .unwrap()
}

/// The pinned int8 file: int8 weights, float32 arithmetic.
fn onnx() -> &'static OrtEmbedder {
    static E: OnceLock<OrtEmbedder> = OnceLock::new();
    E.get_or_init(|| ort("all-MiniLM-L6-v2-int8", assets::MINILM_INT8_ONNX))
}

#[test]
fn candle_matches_sentence_transformers() {
    let r = reference();
    // Mixed batch sizes: padding must not change any vector.
    let mut got = candle().embed_blocking(&r.sentences[..7]).unwrap();
    got.extend(candle().embed_blocking(&r.sentences[7..]).unwrap());
    check_against_reference(&got, 0.9999);
    let single = candle().embed_blocking(&r.sentences[..1]).unwrap();
    assert!(cosine(&single[0], &got[0]) > 0.99999);
}

#[test]
fn ort_fused_float32_matches_sentence_transformers() {
    // The graph `cargo xtask models` writes from the safetensors: fused operators, float32.
    let e = ort("all-MiniLM-L6-v2-fused", assets::MINILM_FUSED_ONNX);
    let r = reference();
    let mut got = e.embed_blocking(&r.sentences[..6]).unwrap();
    got.extend(e.embed_blocking(&r.sentences[6..]).unwrap());
    check_against_reference(&got, 0.9999);
    // Padding to a longer batch mate does not move a vector.
    let single = e.embed_blocking(&r.sentences[..1]).unwrap();
    assert!(cosine(&single[0], &got[0]) > 0.99999);
    assert!(e.batch_invariant());
}

#[test]
fn ort_int8_is_close_to_sentence_transformers() {
    let got = onnx().embed_blocking(&reference().sentences).unwrap();
    check_against_reference(&got, 0.98);
}

#[test]
fn ort_int8_arithmetic_is_close_to_sentence_transformers() {
    // The graph `cargo xtask models` derives: MatMulInteger with activations quantized per call.
    let e = ort(
        "all-MiniLM-L6-v2-int8-dynamic",
        assets::MINILM_INT8_DYNAMIC_ONNX,
    );
    let r = reference();
    let mut got = e.embed_blocking(&r.sentences[..5]).unwrap();
    got.extend(e.embed_blocking(&r.sentences[5..]).unwrap());
    check_against_reference(&got, 0.98);
    // Activations are quantized over the whole batch, so a text's vector moves slightly with
    // its batch mates; the embedder says so, and the manager does not cache its vectors.
    let single = e.embed_blocking(&r.sentences[..1]).unwrap();
    let c = cosine(&single[0], &got[0]);
    assert!(c > 0.98, "alone vs in a batch: cosine {c}");
    assert!(!e.batch_invariant());
    assert!(onnx().batch_invariant() && candle().batch_invariant());
}

#[tokio::test]
async fn the_trait_works_and_empty_batches_are_free() {
    let e: &dyn Embedder = candle();
    assert_eq!(e.dimension(), 384);
    assert!(e.embed(&[]).await.unwrap().is_empty());
    let v = e.embed(&["contract".to_string()]).await.unwrap();
    assert_eq!(v.len(), 1);
    let o: &dyn Embedder = onnx();
    assert_eq!(
        o.embed(&["contract".to_string()]).await.unwrap()[0].len(),
        384
    );
}

#[test]
fn bad_model_folders_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = CandleEmbedder::load(ModelId::new("x").unwrap(), dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. } | Error::InvalidModel { .. }),
        "{err}"
    );

    // A folder whose weights are not safetensors.
    for f in ["config.json", "tokenizer.json", "sentence_bert_config.json"] {
        std::fs::copy(minilm_dir().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("model.safetensors"), b"garbage").unwrap();
    let err = CandleEmbedder::load(ModelId::new("x").unwrap(), dir.path()).unwrap_err();
    assert!(matches!(err, Error::InvalidModel { .. }), "{err}");

    // A file that is not ONNX never reaches ONNX Runtime.
    let fake = dir.path().join("model.onnx");
    std::fs::write(&fake, b"not onnx").unwrap();
    let err =
        OrtEmbedder::load(ModelId::new("x").unwrap(), &fake, &minilm_dir(), &[], 1).unwrap_err();
    assert!(matches!(err, Error::InvalidModel { .. }), "{err}");
}

#[test]
fn a_missing_runtime_library_says_where_it_looked() {
    let err = bear_models::find_ort_dylib(&[
        "/nowhere/libonnxruntime.so".into(),
        "/also/not/here.so".into(),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("/nowhere/libonnxruntime.so") && err.contains("/also/not/here.so"),
        "{err}"
    );
    assert!(err.contains("cargo xtask models"), "{err}");
}
