//! GGUF validation: the real SmolLM2 file passes; truncated and crafted files get typed errors.

use std::path::Path;

use bear_models::{Error, gguf};

use crate::asset;

/// A minimal valid GGUF v3: one metadata key and one f32 tensor of `n` elements.
fn tiny_gguf(arch: &str, n: u64, data_len: usize) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(b"GGUF");
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes()); // tensors
    b.extend(1u64.to_le_bytes()); // kv
    let key = b"general.architecture";
    b.extend((key.len() as u64).to_le_bytes());
    b.extend(key);
    b.extend(8u32.to_le_bytes()); // string
    b.extend((arch.len() as u64).to_le_bytes());
    b.extend(arch.as_bytes());
    let name = b"w";
    b.extend((name.len() as u64).to_le_bytes());
    b.extend(name);
    b.extend(1u32.to_le_bytes()); // n_dims
    b.extend(n.to_le_bytes());
    b.extend(0u32.to_le_bytes()); // f32
    b.extend(0u64.to_le_bytes()); // offset
    while b.len() % 32 != 0 {
        b.push(0);
    }
    b.extend(std::iter::repeat_n(0u8, data_len));
    b
}

fn check_bytes(bytes: &[u8]) -> Result<bear_models::GgufInfo, Error> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, bytes).unwrap();
    gguf::inspect(&path)
}

fn assert_invalid(bytes: &[u8], needle: &str) {
    match check_bytes(bytes) {
        Err(Error::InvalidModel { reason, .. }) => {
            assert!(
                reason.contains(needle),
                "reason {reason:?} lacks {needle:?}"
            )
        }
        other => panic!("expected InvalidModel({needle}), got {other:?}"),
    }
}

#[test]
fn real_smollm2_header() {
    let info = gguf::inspect(&asset(bear_core::assets::SMOLLM2_GGUF)).unwrap();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.quantization, "q4_1");
    assert_eq!(info.context_length, Some(8192));
    assert_eq!(info.block_count, Some(30));
    assert_eq!(info.kv_dim(), Some(192));
    assert!(info.chat_template.as_deref().unwrap().contains("im_start"));
    // 135M parameters, give or take the tied embeddings.
    assert!((100_000_000..200_000_000).contains(&info.parameter_count));
}

#[test]
fn tiny_valid_file_passes() {
    let info = check_bytes(&tiny_gguf("llama", 4, 16)).unwrap();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.parameter_count, 4);
    assert_eq!(info.quantization, "f32");
}

#[test]
fn crafted_headers_are_refused() {
    let good = tiny_gguf("llama", 4, 16);

    assert_invalid(b"", "shorter than a GGUF header");
    assert_invalid(b"GGU", "shorter than a GGUF header");
    assert_invalid(&[b"GGML".as_slice(), &good[4..]].concat(), "magic");

    let mut v = good.clone();
    v[4..8].copy_from_slice(&99u32.to_le_bytes());
    assert_invalid(&v, "version 99");

    let mut v = good.clone();
    v[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_invalid(&v, "implausible counts");

    let mut v = good.clone();
    v[8..16].copy_from_slice(&0u64.to_le_bytes());
    assert_invalid(&v, "implausible counts");

    // A key length far beyond the file.
    let mut v = good.clone();
    v[24..32].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert_invalid(&v, "runs past the file");

    // The tensor's data does not fit: claim 1000 elements with 16 bytes of data.
    assert_invalid(&tiny_gguf("llama", 1000, 16), "outside the file");

    // An unknown tensor type.
    let mut v = good.clone();
    let pos = find_tensor_type();
    v[pos..pos + 4].copy_from_slice(&9999u32.to_le_bytes());
    assert_invalid(&v, "unknown type 9999");

    // A zero-sized dimension.
    let mut v = good.clone();
    let pos = find_tensor_type() - 8;
    v[pos..pos + 8].copy_from_slice(&0u64.to_le_bytes());
    assert_invalid(&v, "zero or overflowing shape");

    // An unknown metadata value type.
    let mut v = good;
    let pos = 24 + 8 + "general.architecture".len();
    v[pos..pos + 4].copy_from_slice(&77u32.to_le_bytes());
    assert_invalid(&v, "unknown metadata value type 77");
}

/// Byte offset of the tensor-type field in [`tiny_gguf`]'s layout.
fn find_tensor_type() -> usize {
    let arch_end = 24 + 8 + "general.architecture".len() + 4 + 8 + "llama".len();
    arch_end + 8 + 1 + 4 + 8
}

#[test]
fn every_truncation_of_the_real_header_is_a_typed_error() {
    let path = asset(bear_core::assets::SMOLLM2_GGUF);
    let info = gguf::inspect(&path).unwrap();
    let header_len = info.data_offset as usize;
    let bytes = std::fs::read(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.gguf");
    // Cuts all through the header, and inside the tensor data.
    let mut points: Vec<usize> = (0..40).map(|i| i * header_len / 40).collect();
    points.extend([header_len, header_len + 1, bytes.len() / 2, bytes.len() - 1]);
    for at in points {
        std::fs::write(&cut, &bytes[..at]).unwrap();
        match gguf::inspect(Path::new(&cut)) {
            Err(Error::InvalidModel { .. }) => {}
            other => panic!(
                "cut at {at} of {}: expected InvalidModel, got {other:?}",
                bytes.len()
            ),
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    // A deterministic xorshift stream: the same "random" files every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let good = tiny_gguf("llama", 4, 16);
    for _ in 0..300 {
        let mut v = good.clone();
        for _ in 0..(next() % 6 + 1) {
            let i = (next() as usize) % v.len();
            v[i] = next() as u8;
        }
        // Any outcome but a panic or an abort is acceptable.
        let _ = check_bytes(&v);
    }
}
