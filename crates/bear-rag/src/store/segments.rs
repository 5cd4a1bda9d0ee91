//! Opened segments of sealed files kept in memory, so that the small reads a search repeats
//! (index pages, the hit rows' data pages) are not fetched and opened again each time.
//!
//! Measured (`cargo xtask bench seal`, December 2026): opening the segments a search touches
//! costs about 20 µs of its 1.1 to 2.5 ms; the rest of what a sealed search paid over a
//! plain one was fetching them: a sealed collection reads through the object store (one
//! blocking-pool hand-off, open and read per range) where a plain one reads through
//! io_uring. With both on the object store the two searches took the same time.
//!
//! Only files Lance writes once under a name of their own (data files, index files,
//! deletion files) are kept, and only for small reads: a scan would push out what searches
//! reuse. One cache serves the process, so its size bounds the memory it holds whatever the
//! number of open collections. Entries are keyed by the identity of one opened version of a
//! file, so a file learnt again (changed) never meets the old version's segments. A kept
//! segment was authenticated when it was opened and is served without asking the store again:
//! a write-once file altered on disk while a process has it open is caught at its next fetch.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use bear_security::crypto::segment::SEGMENT;
use bytes::{Bytes, BytesMut};
use lru::LruCache;

/// Plaintext bytes the cache holds at most.
const CAPACITY: usize = 64 * 1024 * 1024;
/// The most segments one read may touch for its segments to be kept.
pub(super) const SMALL_READ: u64 = 4;

/// The identity of one opened version of one file.
pub(super) fn new_version() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Whether Lance writes the file named `name` (below the collection) once and never again:
/// the files under a table's `data`, `_indices` and `_deletions` directories, each named by
/// a random id. Manifests and anything else are always read from the store.
pub(super) fn write_once(name: &str) -> bool {
    let mut dirs = name.rsplit('/').skip(1);
    dirs.any(|d| matches!(d, "data" | "_indices" | "_deletions"))
}

struct Cache {
    lru: LruCache<(u64, u64), Bytes>,
    bytes: usize,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| {
        Mutex::new(Cache {
            lru: LruCache::unbounded(),
            bytes: 0,
        })
    })
}

fn locked() -> std::sync::MutexGuard<'static, Cache> {
    cache().lock().unwrap_or_else(|e| e.into_inner())
}

/// The plaintext bytes `plain` of file version `version`, if every segment `segs` it spans
/// is kept.
pub(super) fn get(version: u64, segs: &Range<u64>, plain: &Range<u64>) -> Option<Bytes> {
    let mut parts = Vec::with_capacity((segs.end - segs.start) as usize);
    {
        let mut c = locked();
        for s in segs.clone() {
            parts.push(c.lru.get(&(version, s))?.clone());
        }
    }
    let skip = (plain.start - segs.start * SEGMENT) as usize;
    let len = (plain.end - plain.start) as usize;
    if let [one] = parts.as_slice() {
        return one
            .get(skip..skip + len)
            .map(|_| one.slice(skip..skip + len));
    }
    let mut out = BytesMut::with_capacity(len);
    let mut at = 0usize;
    for p in &parts {
        let from = skip.saturating_sub(at).min(p.len());
        let to = (skip + len).saturating_sub(at).min(p.len());
        out.extend_from_slice(&p[from..to]);
        at += p.len();
    }
    (out.len() == len).then(|| out.freeze())
}

/// Keeps the opened segments `opened` (segments `first..`, each [`SEGMENT`] bytes but the
/// file's last) of file version `version`.
pub(super) fn put(version: u64, first: u64, opened: &Bytes) {
    let seg = SEGMENT as usize;
    let mut c = locked();
    for (i, at) in (0..opened.len().max(1)).step_by(seg).enumerate() {
        let part = opened.slice(at..(at + seg).min(opened.len()));
        c.bytes += part.len();
        if let Some(old) = c.lru.put((version, first + i as u64), part) {
            c.bytes -= old.len();
        }
    }
    while c.bytes > CAPACITY {
        match c.lru.pop_lru() {
            Some((_, old)) => c.bytes -= old.len(),
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_written_once_are_kept() {
        assert!(write_once("chunks.lance/data/0a1b.lance"));
        assert!(write_once("chunks.lance/_indices/5f/part_0_tokens.lance"));
        assert!(write_once("chunks.lance/_deletions/3-7-9.arrow"));
        assert!(!write_once(
            "chunks.lance/_versions/18446744073709551614.manifest"
        ));
        assert!(!write_once("chunks.lance/_latest.manifest"));
        assert!(!write_once("data"));
    }

    #[test]
    fn reads_spanning_kept_segments_equal_the_plaintext() {
        let seg = SEGMENT as usize;
        let plain: Vec<u8> = (0..seg * 2 + 100).map(|i| (i % 251) as u8).collect();
        let v = new_version();
        put(v, 0, &Bytes::from(plain.clone()));
        let len = plain.len() as u64;
        for r in [
            0..1,
            5..seg as u64 + 7,
            seg as u64 - 3..len,
            0..len,
            len - 1..len,
        ] {
            let segs = r.start / SEGMENT..(r.end - 1) / SEGMENT + 1;
            let got = get(v, &segs, &r).expect("kept");
            assert_eq!(&got[..], &plain[r.start as usize..r.end as usize]);
        }
        // Another version of the file has nothing kept.
        assert!(get(new_version(), &(0..1), &(0..1)).is_none());
    }
}
