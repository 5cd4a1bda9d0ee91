//! GGUF header validation and metadata, read in Rust before llama.cpp ever sees the file.
//!
//! llama.cpp trusts its input more than a product that opens files from a shared drive should:
//! a truncated download or a crafted file can make native code read out of bounds or abort. So
//! [`inspect`] walks the whole header with hard limits (magic, version, sane counts, bounded
//! strings and arrays, known tensor types, at most four dimensions without overflow, every
//! tensor's offset plus size inside the file) and only then may the file reach llama.cpp.
//! Nothing here allocates more than the file could hold.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"GGUF";
/// More tensors or keys than this is not a real model.
const MAX_COUNT: u64 = 1 << 20;
/// Longest string value kept or skipped.
const MAX_STRING: u64 = 16 << 20;
/// Most dimensions a ggml tensor has.
const MAX_DIMS: u32 = 4;
const DEFAULT_ALIGNMENT: u64 = 32;

/// What BEAR needs to know about a GGUF model, read from its header alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GgufInfo {
    /// GGUF format version (2 or 3).
    pub version: u32,
    /// `general.architecture`, such as `llama`.
    pub architecture: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    /// Total elements over all tensors.
    pub parameter_count: u64,
    /// The tensor type holding most of the weights' bytes, such as `q4_1`.
    pub quantization: String,
    /// Training context length (`<arch>.context_length`).
    pub context_length: Option<u64>,
    /// Transformer blocks (`<arch>.block_count`).
    pub block_count: Option<u64>,
    /// Hidden size (`<arch>.embedding_length`).
    pub embedding_length: Option<u64>,
    /// Attention heads.
    pub head_count: Option<u64>,
    /// Key/value heads (grouped-query attention); equals `head_count` when absent.
    pub head_count_kv: Option<u64>,
    /// The Jinja chat template (`tokenizer.chat_template`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// Number of tensors.
    pub tensor_count: u64,
    /// Where tensor data starts.
    pub data_offset: u64,
    /// File size.
    pub file_size: u64,
}

impl GgufInfo {
    /// Width of K (and of V) per token per layer, for KV-cache sizing.
    pub fn kv_dim(&self) -> Option<u64> {
        let heads = self.head_count?;
        let kv_heads = self.head_count_kv.unwrap_or(heads);
        let embd = self.embedding_length?;
        (heads > 0).then(|| embd / heads * kv_heads)
    }
}

/// Validates a GGUF file and returns its metadata. Any failure is [`Error::InvalidModel`] (or
/// [`Error::Io`] when the file cannot be opened).
pub fn inspect(path: &Path) -> Result<GgufInfo> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file_size = file
        .metadata()
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        size: file_size,
        path: path.to_path_buf(),
    };
    r.parse()
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Uint(u64),
    Int(i64),
    Str(String),
    Other,
}

struct Reader {
    inner: BufReader<File>,
    pos: u64,
    size: u64,
    path: PathBuf,
}

impl Reader {
    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::InvalidModel {
            path: self.path.clone(),
            format: "GGUF",
            reason: reason.into(),
        }
    }

    fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        if self.remaining() < N as u64 {
            return Err(self.bad(format!("truncated at byte {}", self.pos)));
        }
        let mut b = [0u8; N];
        self.inner
            .read_exact(&mut b)
            .map_err(|e| self.bad(format!("read failed at byte {}: {e}", self.pos)))?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        if n > self.remaining() {
            return Err(self.bad(format!("truncated at byte {}", self.pos)));
        }
        let n_i64 = i64::try_from(n).map_err(|_| self.bad("length overflows"))?;
        self.inner
            .seek_relative(n_i64)
            .map_err(|e| self.bad(format!("seek failed: {e}")))?;
        self.pos += n;
        Ok(())
    }

    fn string_len(&mut self) -> Result<u64> {
        let len = self.u64()?;
        if len > MAX_STRING || len > self.remaining() {
            return Err(self.bad(format!(
                "string of {len} bytes at byte {} runs past the file or the limit",
                self.pos
            )));
        }
        Ok(len)
    }

    fn string(&mut self) -> Result<String> {
        let len = self.string_len()?;
        let mut buf = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| self.bad(format!("read failed at byte {}: {e}", self.pos)))?;
        self.pos += len;
        String::from_utf8(buf).map_err(|_| self.bad("a string is not UTF-8"))
    }

    /// Reads a value of type `ty`; keeps scalars and strings only when `keep`.
    fn value(&mut self, ty: u32, keep: bool, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::Uint(u64::from(self.bytes::<1>()?[0])),
            1 => Value::Int(i64::from(self.bytes::<1>()?[0] as i8)),
            2 => Value::Uint(u64::from(u16::from_le_bytes(self.bytes()?))),
            3 => Value::Int(i64::from(i16::from_le_bytes(self.bytes()?))),
            4 => Value::Uint(u64::from(self.u32()?)),
            5 => Value::Int(i64::from(i32::from_le_bytes(self.bytes()?))),
            6 => {
                self.bytes::<4>()?;
                Value::Other
            }
            7 => {
                let b = self.bytes::<1>()?[0];
                if b > 1 {
                    return Err(self.bad("a boolean is neither 0 nor 1"));
                }
                Value::Uint(u64::from(b))
            }
            8 if keep => Value::Str(self.string()?),
            8 => {
                let len = self.string_len()?;
                self.skip(len)?;
                Value::Other
            }
            9 => {
                if depth >= 2 {
                    return Err(self.bad("arrays nested too deeply"));
                }
                let elem = self.u32()?;
                let n = self.u64()?;
                // Every element takes at least one byte, so n cannot exceed what is left.
                if n > self.remaining() {
                    return Err(self.bad(format!("array of {n} elements runs past the file")));
                }
                let width = match elem {
                    0 | 1 | 7 => Some(1),
                    2 | 3 => Some(2),
                    4..=6 => Some(4),
                    10..=12 => Some(8),
                    _ => None,
                };
                match width {
                    Some(w) => {
                        let total = n
                            .checked_mul(w)
                            .ok_or_else(|| self.bad("array size overflows"))?;
                        self.skip(total)?;
                    }
                    None => {
                        for _ in 0..n {
                            self.value(elem, false, depth + 1)?;
                        }
                    }
                }
                Value::Other
            }
            10 => Value::Uint(self.u64()?),
            11 => Value::Int(i64::from_le_bytes(self.bytes()?)),
            12 => {
                self.bytes::<8>()?;
                Value::Other
            }
            other => return Err(self.bad(format!("unknown metadata value type {other}"))),
        })
    }

    fn parse(&mut self) -> Result<GgufInfo> {
        let magic: [u8; 4] = self
            .bytes()
            .map_err(|_| self.bad("file is shorter than a GGUF header"))?;
        if &magic != MAGIC {
            return Err(self.bad("missing GGUF magic bytes"));
        }
        let version = self.u32()?;
        if !(2..=3).contains(&version) {
            return Err(self.bad(format!(
                "unsupported GGUF version {version} (expected 2 or 3)"
            )));
        }
        let tensor_count = self.u64()?;
        let kv_count = self.u64()?;
        if tensor_count == 0 || tensor_count > MAX_COUNT || kv_count > MAX_COUNT {
            return Err(self.bad(format!(
                "implausible counts: {tensor_count} tensors, {kv_count} metadata keys"
            )));
        }

        let mut kv: HashMap<String, Value> = HashMap::new();
        for _ in 0..kv_count {
            let key = self.string()?;
            let ty = self.u32()?;
            // Keep the few keys BEAR reads; skip the rest (token lists are large).
            let keep = key.starts_with("general.")
                || key == "tokenizer.chat_template"
                || !key.starts_with("tokenizer.");
            let v = self.value(ty, keep, 0)?;
            if keep {
                kv.insert(key, v);
            }
        }

        let alignment = match kv.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(Value::Uint(a)) if a.is_power_of_two() && *a <= 1 << 20 => *a,
            Some(_) => return Err(self.bad("general.alignment is not a power of two")),
        };

        struct Tensor {
            offset: u64,
            bytes: u64,
            ty: u32,
        }
        let mut tensors = Vec::with_capacity(tensor_count.min(4096) as usize);
        let mut parameter_count: u64 = 0;
        for i in 0..tensor_count {
            let len = self.string_len()?;
            self.skip(len)?;
            let n_dims = self.u32()?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(self.bad(format!("tensor {i} has {n_dims} dimensions")));
            }
            let mut elements: u64 = 1;
            let mut first_dim = 0;
            for d in 0..n_dims {
                let dim = self.u64()?;
                if d == 0 {
                    first_dim = dim;
                }
                elements = elements
                    .checked_mul(dim)
                    .filter(|e| *e > 0)
                    .ok_or_else(|| {
                        self.bad(format!("tensor {i} has a zero or overflowing shape"))
                    })?;
            }
            let ty = self.u32()?;
            let (block, type_size) = crate::ggml::type_layout(ty)
                .ok_or_else(|| self.bad(format!("tensor {i} has unknown type {ty}")))?;
            if first_dim % block != 0 {
                return Err(self.bad(format!(
                    "tensor {i} does not fill whole {block}-element blocks"
                )));
            }
            let bytes = (elements / block)
                .checked_mul(type_size)
                .ok_or_else(|| self.bad(format!("tensor {i} size overflows")))?;
            let offset = self.u64()?;
            if offset % alignment != 0 {
                return Err(self.bad(format!("tensor {i} offset is not aligned to {alignment}")));
            }
            parameter_count = parameter_count.saturating_add(elements);
            tensors.push(Tensor { offset, bytes, ty });
        }

        let data_offset = self.pos.div_ceil(alignment) * alignment;
        for (i, t) in tensors.iter().enumerate() {
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.bytes));
            if end.is_none_or(|e| e > self.size) {
                return Err(self.bad(format!(
                    "tensor {i} lies outside the file (file is {} bytes; truncated?)",
                    self.size
                )));
            }
        }

        let mut by_type: HashMap<u32, u64> = HashMap::new();
        for t in &tensors {
            *by_type.entry(t.ty).or_default() += t.bytes;
        }
        let quantization = by_type
            .into_iter()
            .max_by_key(|(ty, bytes)| (*bytes, *ty))
            .map(|(ty, _)| crate::ggml::type_name(ty))
            .unwrap_or_default();

        let text = |k: &str| match kv.get(k) {
            Some(Value::Str(s)) => Some(s.clone()),
            _ => None,
        };
        let architecture = text("general.architecture")
            .ok_or_else(|| self.bad("general.architecture is missing"))?;
        let num = |k: &str| match kv.get(&format!("{architecture}.{k}")) {
            Some(Value::Uint(n)) => Some(*n),
            Some(Value::Int(n)) => u64::try_from(*n).ok(),
            _ => None,
        };
        Ok(GgufInfo {
            version,
            name: text("general.name"),
            parameter_count,
            quantization,
            context_length: num("context_length"),
            block_count: num("block_count"),
            embedding_length: num("embedding_length"),
            head_count: num("attention.head_count"),
            head_count_kv: num("attention.head_count_kv"),
            chat_template: text("tokenizer.chat_template"),
            tensor_count,
            data_offset,
            file_size: self.size,
            architecture,
        })
    }
}
