//! Encryption at rest: the keyring (`keyring.rs`) and the sealed record file
//! format (`sealed.rs`); here, the AEAD primitives and the file locks and atomic
//! writes both use.
//!
//! **Envelope keys.** A 256-bit master key comes from a passphrase (PBKDF2-HMAC-SHA256,
//! [`PBKDF2_ITERATIONS`] iterations, random salt) or from a key file that only its owner may
//! read. It never encrypts data: it wraps one AES-256-GCM data key per collection, and a
//! keyed-hash key. The keyring file (JSON) holds only wrapped keys, the KDF salt, a check value
//! that tells a wrong passphrase from a corrupt file, and per-key message counters.
//!
//! **Nonces and rotation.** Every seal uses a fresh random 96-bit nonce. Each data key counts
//! its messages; the count is reserved on disk in blocks before use, so a crash can only
//! over-count. A key is retired and a new one made after [`ROTATE_AFTER`] messages, far below
//! the 2^32 random-nonce limit; retired keys still decrypt.
//!
//! **Crypto-shredding.** [`Keyring::delete_collection`] drops the collection's wrapped keys
//! from the keyring; its ciphertext can then never be opened.
//!
//! **Segmented files** (`segment.rs`): sealed in 64 KiB segments under a per-file key derived
//! from the collection's data key, for files read by range (the LanceDB tables).
//!
//! **Sealed files.** `BEARSEAL` magic, a version byte, the collection name, then records
//! `(key id, record id, nonce, ciphertext+tag)` whose AAD binds the collection, the record id
//! and its position, and a sealed end record holding the count, so editing, reordering,
//! truncating or swapping records is detected. Files are written to a temporary file and
//! renamed, so a failed write never leaves a partial file.

use std::collections::BTreeMap;
use std::io::Write;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hmac, pbkdf2};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::secret::SecretBytes;
use crate::{Error, Result};

mod keyring;
mod sealed;
pub mod segment;

pub use keyring::*;
pub use sealed::*;
pub use segment::FileKeys;

/// PBKDF2-HMAC-SHA256 iterations for passphrase-derived master keys (OWASP 2023 minimum).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Messages after which a data key is retired and replaced.
pub const ROTATE_AFTER: u64 = 1 << 30;
/// How many messages are reserved on disk at a time.
const RESERVE_BLOCK: u64 = 4096;
const KEYRING_VERSION: u32 = 1;
const CHECK_PLAINTEXT: &[u8] = b"bear keyring check v1";
const SEAL_MAGIC: &[u8; 8] = b"BEARSEAL";
const SEAL_VERSION: u8 = 1;
const TAG_RECORD: u8 = 1;
const TAG_END: u8 = 2;
const MAX_RECORD: u64 = 1 << 30;

pub use ring::hmac::Key as HmacKey;

/// A random HMAC-SHA256 key for this process only (keyed hashes without a keyring).
pub fn ephemeral_hmac_key() -> Result<HmacKey> {
    let k = SecretBytes::random(32)?;
    Ok(HmacKey::new(hmac::HMAC_SHA256, k.expose()))
}

/// Where the master key comes from.
pub enum KeySource {
    /// A passphrase, stretched with PBKDF2.
    Passphrase(SecretBytes),
    /// A file of 32 random bytes readable only by its owner.
    KeyFile(PathBuf),
}

fn rng_fill(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| Error::Crypto("system random generator"))
}

fn aead_key(bytes: &[u8]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| Error::Crypto("AES-256-GCM key"))
}

/// Seals `plain` under `key` with a random nonce: returns `nonce || ciphertext || tag`.
fn seal_raw(key: &LessSafeKey, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rng_fill(&mut nonce)?;
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| Error::Crypto("AES-256-GCM seal"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    buf.zeroize();
    Ok(out)
}

/// Opens `nonce || ciphertext || tag`; `None` when authentication fails.
fn open_raw(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Option<SecretBytes> {
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return None;
    }
    let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN]).ok()?;
    let mut buf = sealed[NONCE_LEN..].to_vec();
    let plain = key.open_in_place(nonce, Aad::from(aad), &mut buf).ok()?;
    let out = SecretBytes::from_slice(plain);
    buf.zeroize();
    Some(out)
}

/// The lock file beside `path` (`path` itself is replaced by renames, so cannot carry one).
pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Waits for an exclusive OS lock on `path` (created if missing), held until the returned
/// file is dropped (see [`lock_exclusive`]).
pub(crate) fn lock_file(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create directory", dir, e))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("cannot open lock file", path, e))?;
    lock_exclusive(&f).map_err(|e| Error::io("cannot lock", path, e))?;
    Ok(f)
}

/// Waits for an exclusive OS lock on `f`; a file system without locks (some network mounts)
/// is not an error: the caller carries on unlocked, as before locks were taken.
pub(crate) fn lock_exclusive(f: &std::fs::File) -> std::io::Result<()> {
    match f.lock() {
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Ok(()),
        r => r,
    }
}

/// [`write_atomic`], then overwrites the replaced file's old bytes with random ones and flushes
/// them (the old inode is held open across the rename), so the previous version does not stay
/// readable in the file system's free blocks. A crash between the two leaves the new version in
/// place. On copy-on-write file systems and SSDs the device may keep old blocks anyway.
pub(crate) fn write_atomic_overwriting(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let old = std::fs::OpenOptions::new().write(true).open(path).ok();
    write_atomic(path, bytes, private)?;
    if let Some(mut old) = old {
        let len = old.metadata().map(|m| m.len()).unwrap_or(0) as usize;
        let mut noise = vec![0u8; len];
        rng_fill(&mut noise)?;
        old.write_all(&noise)
            .and_then(|()| old.sync_all())
            .map_err(|e| Error::io("cannot overwrite the old copy of", path, e))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, and
/// flushes both to disk.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create directory", dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| Error::io("cannot create a temporary file in", dir, e))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600));
    }
    #[cfg(not(unix))]
    let _ = private;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("cannot write", path, e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("cannot replace", path, e.error))?;
    // The rename itself is durable once the directory is flushed.
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("cannot flush directory", dir, e))?;
    Ok(())
}
