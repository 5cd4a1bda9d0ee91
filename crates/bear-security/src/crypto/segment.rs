//! Segmented sealed files: a file sealed in fixed-size segments, each its own AES-256-GCM
//! message, so a range read decrypts only the segments it touches.
//!
//! Layout: a [`HEADER_LEN`]-byte header (`BEARSEG` magic, version, the data key's id, a
//! random 20-byte file id), then the segments, each `min(SEGMENT, rest)` plaintext bytes and a
//! 16-byte tag; a file always has at least one segment (an empty file is one empty segment).
//! Each file has its own key, derived with HKDF-SHA256 from the collection's data key and the
//! file id, so the nonce can simply be the segment number: no nonce repeats under one key, and
//! no counter has to be reserved on disk. The AAD binds the file's name (relative to its
//! collection), the segment number and whether it is the last segment: a changed byte, a
//! truncated file, reordered or swapped segments, or a file moved to another name all fail to
//! authenticate.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::{hkdf, hmac};

use super::rng_fill;
use crate::secret::SecretBytes;
use crate::{Error, Result};

/// Plaintext bytes per segment.
pub const SEGMENT: u64 = 64 * 1024;
/// Bytes of the header before the first segment.
pub const HEADER_LEN: u64 = 32;
/// Bytes each segment adds (the GCM tag).
pub const TAG_LEN: u64 = 16;
const MAGIC: &[u8; 7] = b"BEARSEG";
const VERSION: u8 = 1;
const FILE_ID_LEN: usize = 20;
const HKDF_INFO: &[u8] = b"bear-segmented-file-v1";
const NAME_INFO: &[u8] = b"bear-file-name-v1";

/// A collection's data keys, unwrapped, for sealing and opening segmented files. Cheap to
/// clone; the key bytes are mlocked and zeroized when the last clone is dropped.
#[derive(Clone)]
pub struct FileKeys {
    collection: Arc<str>,
    current: u32,
    keys: Arc<BTreeMap<u32, SecretBytes>>,
}

impl std::fmt::Debug for FileKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileKeys")
            .field("collection", &self.collection)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl FileKeys {
    /// Keys from their raw bytes; `current` seals new files.
    pub(crate) fn new(collection: &str, current: u32, keys: BTreeMap<u32, SecretBytes>) -> Self {
        Self {
            collection: collection.into(),
            current,
            keys: Arc::new(keys),
        }
    }

    /// The collection these keys belong to.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// The name a file called `name` is stored under, so that a folder of sealed files shows
    /// none of their names: 32 hex digits of HMAC-SHA256 of `name` under a key derived from
    /// the collection's first data key (so the tag outlives key rotation). The same name gives
    /// the same tag; without the key a tag says nothing of the name.
    pub fn name_tag(&self, name: &str) -> Result<String> {
        let (_, first) = self
            .keys
            .first_key_value()
            .ok_or(Error::Crypto("a collection without a data key"))?;
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(first.expose());
        let okm = prk
            .expand(&[NAME_INFO], hmac::HMAC_SHA256)
            .map_err(|_| Error::Crypto("HKDF"))?;
        let key = hmac::Key::from(okm);
        let tag = hmac::sign(&key, name.as_bytes());
        Ok(tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// A cipher for a new file: a fresh file id under the current key.
    pub fn new_file(&self) -> Result<FileCipher> {
        let mut id = [0u8; FILE_ID_LEN];
        rng_fill(&mut id)?;
        let mut header = [0u8; HEADER_LEN as usize];
        header[..7].copy_from_slice(MAGIC);
        header[7] = VERSION;
        header[8..12].copy_from_slice(&self.current.to_le_bytes());
        header[12..].copy_from_slice(&id);
        self.cipher(header, "a new file")
    }

    /// The cipher of an existing file from its header; `what` names the file in errors.
    pub fn open_file(&self, header: &[u8], what: &str) -> Result<FileCipher> {
        let header: [u8; HEADER_LEN as usize] = header
            .get(..HEADER_LEN as usize)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| integrity(what, "the file is shorter than its header"))?;
        if &header[..7] != MAGIC {
            return Err(integrity(what, "not a BEAR sealed file (bad magic)"));
        }
        if header[7] != VERSION {
            return Err(integrity(
                what,
                &format!("sealed file version {} is not supported", header[7]),
            ));
        }
        self.cipher(header, what)
    }

    fn cipher(&self, header: [u8; HEADER_LEN as usize], what: &str) -> Result<FileCipher> {
        let key_id = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        // The collection has keys (else there would be no `FileKeys`): an unknown id is a
        // changed header.
        let raw = self.keys.get(&key_id).ok_or_else(|| Error::Integrity {
            what: what.into(),
            reason: format!("sealed under key {key_id}, which this collection never had"),
        })?;
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &header[12..]).extract(raw.expose());
        let okm = prk
            .expand(&[HKDF_INFO], &AES_256_GCM)
            .map_err(|_| Error::Crypto("HKDF"))?;
        let key = LessSafeKey::new(UnboundKey::from(okm));
        Ok(FileCipher { key, header })
    }
}

/// One file's key and header.
pub struct FileCipher {
    key: LessSafeKey,
    header: [u8; HEADER_LEN as usize],
}

impl std::fmt::Debug for FileCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileCipher")
    }
}

fn nonce(index: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn aad(name: &str, index: u64, last: bool) -> Vec<u8> {
    let mut a = Vec::with_capacity(name.len() + 24);
    a.extend_from_slice(b"bear-seg-v1\0");
    a.extend_from_slice(name.as_bytes());
    a.push(0);
    a.extend_from_slice(&index.to_le_bytes());
    a.push(u8::from(last));
    a
}

fn integrity(what: &str, reason: &str) -> Error {
    Error::Integrity {
        what: what.into(),
        reason: reason.into(),
    }
}

impl FileCipher {
    /// The header that starts the file.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Appends segment `index` of file `name`, sealed, to `out`.
    pub fn seal_segment(
        &self,
        name: &str,
        index: u64,
        last: bool,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                nonce(index),
                Aad::from(aad(name, index, last)),
                &mut out[start..],
            )
            .map_err(|_| Error::Crypto("AES-256-GCM seal"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens sealed segment `index` of file `name` and appends its plaintext to `out`.
    pub fn open_segment(
        &self,
        name: &str,
        index: u64,
        last: bool,
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(sealed);
        let opened = self
            .key
            .open_in_place(
                nonce(index),
                Aad::from(aad(name, index, last)),
                &mut out[start..],
            )
            .map(|p| p.len());
        match opened {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(integrity(
                    name,
                    &format!("segment {index} does not authenticate"),
                ))
            }
        }
    }

    /// Seals `plain` whole as file `name`: header and every segment.
    pub fn seal_all(&self, name: &str, plain: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(sealed_len(plain.len() as u64) as usize);
        out.extend_from_slice(&self.header);
        let n = segments(plain.len() as u64);
        for i in 0..n {
            let r = segment_plain(i, plain.len() as u64);
            self.seal_segment(
                name,
                i,
                i + 1 == n,
                &plain[r.start as usize..r.end as usize],
                &mut out,
            )?;
        }
        Ok(out)
    }

    /// Opens segments `first..` of file `name` whose sealed bytes start `body` (the header
    /// excluded), for a file of `plain_len` plaintext bytes; returns their plaintext.
    pub fn open_segments(
        &self,
        name: &str,
        first: u64,
        body: &[u8],
        plain_len: u64,
    ) -> Result<Vec<u8>> {
        let total = segments(plain_len);
        let mut out = Vec::with_capacity(body.len());
        let mut pos = 0usize;
        let mut i = first;
        while pos < body.len() {
            let plain = segment_plain(i, plain_len);
            let want = (plain.end - plain.start + TAG_LEN) as usize;
            let sealed = body
                .get(pos..pos + want)
                .ok_or_else(|| integrity(name, &format!("segment {i} is cut short")))?;
            self.open_segment(name, i, i + 1 == total, sealed, &mut out)?;
            pos += want;
            i += 1;
        }
        Ok(out)
    }
}

/// Seals `plain` as a new file `name` under `keys`.
pub fn seal_file(keys: &FileKeys, name: &str, plain: &[u8]) -> Result<Vec<u8>> {
    keys.new_file()?.seal_all(name, plain)
}

/// Opens a whole sealed file `name`.
pub fn open_file(keys: &FileKeys, name: &str, sealed: &[u8]) -> Result<Vec<u8>> {
    let plain_len = plain_len(sealed.len() as u64)
        .ok_or_else(|| integrity(name, "the file's length is not a sealed file's"))?;
    let cipher = keys.open_file(sealed, name)?;
    cipher.open_segments(name, 0, &sealed[HEADER_LEN as usize..], plain_len)
}

/// Opens segments `first..` (sealed bytes `body`) of the sealed file whose bytes start with
/// `head` (at least its header), for a file of `plain_len` plaintext bytes.
pub fn open_segments_in(
    keys: &FileKeys,
    name: &str,
    head: &[u8],
    first: u64,
    body: &[u8],
    plain_len: u64,
) -> Result<Vec<u8>> {
    keys.open_file(head, name)?
        .open_segments(name, first, body, plain_len)
}

/// Whether `bytes` begin like a segmented sealed file.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Writes `plain` to `path` as a whole file: sealed as `name` under `keys`, or plain when
/// `keys` is `None` (a collection from before sealing). Written to a temporary file, flushed,
/// renamed, and the rename flushed, so the file is either the old one or the new one.
pub fn write_whole(path: &Path, name: &str, keys: Option<&FileKeys>, plain: &[u8]) -> Result<()> {
    match keys {
        Some(k) => super::write_atomic(path, &seal_file(k, name, plain)?, true),
        None => super::write_atomic(path, plain, true),
    }
}

/// Reads the whole file at `path`: a sealed one is opened as `name` with `keys` (an integrity
/// error names `path`), a plain one is returned as it is.
pub fn read_whole(path: &Path, name: &str, keys: Option<&FileKeys>) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    if !is_sealed(&bytes) {
        return Ok(bytes);
    }
    let Some(keys) = keys else {
        return Err(Error::Integrity {
            what: path.display().to_string(),
            reason: "the file is sealed and its matter's key is not at hand".into(),
        });
    };
    open_file(keys, name, &bytes).map_err(|e| match e {
        Error::Integrity { reason, .. } => Error::Integrity {
            what: path.display().to_string(),
            reason,
        },
        other => other,
    })
}

/// Segments in a file of `plain_len` bytes (at least one).
pub fn segments(plain_len: u64) -> u64 {
    plain_len.div_ceil(SEGMENT).max(1)
}

/// The plaintext byte range of segment `index`.
pub fn segment_plain(index: u64, plain_len: u64) -> Range<u64> {
    let start = index * SEGMENT;
    start.min(plain_len)..(start + SEGMENT).min(plain_len)
}

/// The sealed size of `plain_len` plaintext bytes.
pub fn sealed_len(plain_len: u64) -> u64 {
    HEADER_LEN + plain_len + segments(plain_len) * TAG_LEN
}

/// The plaintext size of a sealed file of `sealed` bytes; `None` when no plaintext size seals
/// to it (a truncated or padded file).
pub fn plain_len(sealed: u64) -> Option<u64> {
    let body = sealed.checked_sub(HEADER_LEN)?;
    let full = body / (SEGMENT + TAG_LEN);
    let rest = body % (SEGMENT + TAG_LEN);
    let plain = match rest {
        0 if full > 0 => full * SEGMENT,
        r if r >= TAG_LEN => full * SEGMENT + r - TAG_LEN,
        _ => return None,
    };
    (sealed_len(plain) == sealed).then_some(plain)
}

/// For a plaintext range of a file of `plain_len` bytes: the segments it touches and the
/// sealed byte range that holds them.
pub fn sealed_range(range: &Range<u64>, plain_len: u64) -> (Range<u64>, Range<u64>) {
    let first = range.start / SEGMENT;
    let last = (range.end.max(range.start + 1) - 1) / SEGMENT;
    let last = last.min(segments(plain_len) - 1);
    let start = HEADER_LEN + first * (SEGMENT + TAG_LEN);
    let end = (HEADER_LEN + (last + 1) * (SEGMENT + TAG_LEN)).min(sealed_len(plain_len));
    (first..last + 1, start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> FileKeys {
        let mut m = BTreeMap::new();
        m.insert(1, SecretBytes::from_slice(&[7u8; 32]));
        FileKeys::new("c", 1, m)
    }

    #[test]
    fn name_tags_are_stable_per_key_and_hide_the_name() {
        let k = keys();
        let a = k.name_tag("Jansen settlement.pdf").unwrap();
        assert_eq!(a, k.name_tag("Jansen settlement.pdf").unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, k.name_tag("Jansen settlement2.pdf").unwrap());
        let mut other = BTreeMap::new();
        other.insert(1, SecretBytes::from_slice(&[8u8; 32]));
        let other = FileKeys::new("c", 1, other);
        assert_ne!(a, other.name_tag("Jansen settlement.pdf").unwrap());
    }

    #[test]
    fn sizes_round_trip() {
        for n in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT,
            3 * SEGMENT + 5,
        ] {
            assert_eq!(plain_len(sealed_len(n)), Some(n), "{n}");
        }
        // A last segment shorter than its tag is no sealed file's.
        assert_eq!(plain_len(sealed_len(SEGMENT) + 15), None);
        assert_eq!(plain_len(HEADER_LEN), None);
        assert_eq!(plain_len(HEADER_LEN + 15), None);
    }

    #[test]
    fn a_file_opens_and_a_renamed_one_does_not() {
        let k = keys();
        let plain: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let sealed = seal_file(&k, "a/b", &plain).unwrap();
        assert_eq!(sealed.len() as u64, sealed_len(plain.len() as u64));
        assert_eq!(open_file(&k, "a/b", &sealed).unwrap(), plain);
        assert!(matches!(
            open_file(&k, "a/c", &sealed),
            Err(Error::Integrity { .. })
        ));
    }
}
