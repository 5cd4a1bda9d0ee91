//! Two-level cache of deterministic results (seed: "Caching and Memoization").
//!
//! L1 is an in-memory LRU bounded in entries and in bytes (the `lru` crate plus byte
//! accounting). L2 is an on-disk `redb` database bounded in bytes, with a time-to-live; a hit in
//! L2 is promoted to L1. Keys are BLAKE3 hashes, so cached prompts are never stored in the clear
//! as keys. Values are the results themselves: once [`ResultCache::seal_with`] gives the cache
//! keys (BEAR's application does, from the keyring), each L2 value is a sealed message named
//! by its key, and a value that does not open under the current keys (written before sealing,
//! or under keys since destroyed) is a miss and is dropped.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bear_security::FileKeys;
use bear_security::crypto::segment;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

use crate::error::{Error, Result};

/// A 32-byte cache key.
pub type CacheKey = [u8; 32];

const VALUES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("values");
/// key -> (expires at, unix nanoseconds; size in bytes). Nanoseconds also order insertions, which
/// is what eviction needs (oldest first).
const META: TableDefinition<&[u8; 32], (u64, u64)> = TableDefinition::new("meta");

/// Limits of both levels.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Most entries in memory.
    pub l1_entries: usize,
    /// Most bytes of values in memory.
    pub l1_bytes: usize,
    /// The on-disk database file; `None` disables L2.
    pub l2_path: Option<PathBuf>,
    /// Most bytes of values on disk.
    pub l2_bytes: u64,
    /// How long an L2 entry lives.
    pub ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            l1_entries: 1024,
            l1_bytes: 64 << 20,
            l2_path: None,
            l2_bytes: 1 << 30,
            ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Hit and miss counters.
#[derive(Debug, Default)]
struct Counters {
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    misses: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct CacheStats {
    /// Hits in memory.
    pub l1_hits: u64,
    /// Hits on disk (then promoted).
    pub l2_hits: u64,
    /// Misses in both.
    pub misses: u64,
}

impl CacheStats {
    /// Hits over lookups, 0 when there were none.
    pub fn hit_rate(&self) -> f64 {
        let hits = self.l1_hits + self.l2_hits;
        let total = hits + self.misses;
        if total == 0 {
            0.0
        } else {
            hits as f64 / total as f64
        }
    }
}

struct L1 {
    lru: lru::LruCache<CacheKey, Vec<u8>>,
    bytes: usize,
    max_bytes: usize,
}

impl L1 {
    fn put(&mut self, key: CacheKey, value: Vec<u8>) {
        if value.len() > self.max_bytes {
            return;
        }
        self.bytes += value.len();
        if let Some((_, old)) = self.lru.push(key, value) {
            self.bytes -= old.len();
        }
        while self.bytes > self.max_bytes {
            match self.lru.pop_lru() {
                Some((_, v)) => self.bytes -= v.len(),
                None => break,
            }
        }
    }
}

/// The two-level cache.
pub struct ResultCache {
    l1: Mutex<L1>,
    l2: Option<redb::Database>,
    l2_bytes: u64,
    ttl: Duration,
    counters: Counters,
    seal: RwLock<Option<FileKeys>>,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn storage(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: "cache",
        reason: format!("{}: {e}", path.display()),
    }
}

impl ResultCache {
    /// Opens (or creates) the cache.
    pub fn open(config: &CacheConfig) -> Result<Self> {
        let l2 = match &config.l2_path {
            None => None,
            Some(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| storage(dir, e))?;
                }
                let db = redb::Database::create(path).map_err(|e| storage(path, e))?;
                let tx = db.begin_write().map_err(|e| storage(path, e))?;
                tx.open_table(VALUES).map_err(|e| storage(path, e))?;
                tx.open_table(META).map_err(|e| storage(path, e))?;
                tx.commit().map_err(|e| storage(path, e))?;
                Some(db)
            }
        };
        Ok(Self {
            l1: Mutex::new(L1 {
                lru: lru::LruCache::new(
                    NonZeroUsize::new(config.l1_entries.max(1)).expect("max(1)"),
                ),
                bytes: 0,
                max_bytes: config.l1_bytes,
            }),
            l2,
            l2_bytes: config.l2_bytes,
            ttl: config.ttl,
            counters: Counters::default(),
            seal: RwLock::new(None),
        })
    }

    /// The key for a sequence of parts; parts are length-prefixed so boundaries are unambiguous.
    pub fn key(parts: &[&[u8]]) -> CacheKey {
        let mut h = blake3::Hasher::new();
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        *h.finalize().as_bytes()
    }

    /// Looks a key up in L1, then L2 (promoting a hit).
    pub fn get(&self, key: &CacheKey) -> Option<Vec<u8>> {
        if let Some(v) = self
            .l1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lru
            .get(key)
        {
            self.counters.l1_hits.fetch_add(1, Ordering::Relaxed);
            return Some(v.clone());
        }
        if let Some(v) = self.l2_get(key) {
            self.counters.l2_hits.fetch_add(1, Ordering::Relaxed);
            self.l1
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .put(*key, v.clone());
            return Some(v);
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Stores a value in both levels. An L2 write failure is logged and otherwise ignored: a
    /// cache must never fail the request it serves.
    pub fn put(&self, key: CacheKey, value: Vec<u8>) {
        if let Err(e) = self.l2_put(&key, &value) {
            tracing::warn!(error = %e, "cache write failed");
        }
        self.l1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(key, value);
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            l1_hits: self.counters.l1_hits.load(Ordering::Relaxed),
            l2_hits: self.counters.l2_hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
        }
    }

    /// Seals L2 values under `keys` from now on and forgets L1 (filled under the keys before).
    /// Values already on disk are read only if they open under `keys`.
    pub fn seal_with(&self, keys: FileKeys) {
        *self.seal.write().unwrap_or_else(|p| p.into_inner()) = Some(keys);
        self.clear_l1();
    }

    /// Forgets every entry, in memory and on disk (when the keys it was sealed under are
    /// destroyed, its entries are unreadable: this also frees their space).
    pub fn clear(&self) {
        self.clear_l1();
        if let Err(e) = self.l2_clear() {
            tracing::warn!(error = %e, "cache clear failed");
        }
    }

    fn l2_clear(&self) -> std::result::Result<(), redb::Error> {
        let Some(db) = &self.l2 else { return Ok(()) };
        let tx = db.begin_write()?;
        tx.delete_table(VALUES)?;
        tx.delete_table(META)?;
        tx.open_table(VALUES)?;
        tx.open_table(META)?;
        tx.commit()?;
        Ok(())
    }

    fn keys(&self) -> Option<FileKeys> {
        self.seal.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Drops the in-memory level (for tests and memory pressure).
    pub fn clear_l1(&self) {
        let mut l1 = self.l1.lock().unwrap_or_else(|p| p.into_inner());
        l1.lru.clear();
        l1.bytes = 0;
    }

    fn l2_get(&self, key: &CacheKey) -> Option<Vec<u8>> {
        let db = self.l2.as_ref()?;
        let tx = db.begin_read().ok()?;
        let meta = tx.open_table(META).ok()?;
        let (expires, _) = meta.get(key).ok()??.value();
        if expires <= now_ns() {
            drop(meta);
            drop(tx);
            let _ = self.l2_remove(key);
            return None;
        }
        let values = tx.open_table(VALUES).ok()?;
        let stored = values.get(key).ok()??.value().to_vec();
        drop(values);
        drop(tx);
        let opened = match self.keys() {
            Some(k) if segment::is_sealed(&stored) => {
                segment::open_file(&k, &value_name(key), &stored).ok()
            }
            // Written before sealing: not to be served, nor kept, in the clear.
            Some(_) => None,
            None => (!segment::is_sealed(&stored)).then_some(stored),
        };
        if opened.is_none() {
            let _ = self.l2_remove(key);
        }
        opened
    }

    fn l2_remove(&self, key: &CacheKey) -> std::result::Result<(), redb::Error> {
        let Some(db) = &self.l2 else { return Ok(()) };
        let tx = db.begin_write()?;
        {
            tx.open_table(VALUES)?.remove(key)?;
            tx.open_table(META)?.remove(key)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn l2_put(&self, key: &CacheKey, value: &[u8]) -> std::result::Result<(), redb::Error> {
        let Some(db) = &self.l2 else { return Ok(()) };
        let sealed;
        let value = match self.keys() {
            Some(k) => match segment::seal_file(&k, &value_name(key), value) {
                Ok(v) => {
                    sealed = v;
                    &sealed[..]
                }
                // Not kept at all rather than kept in the clear.
                Err(_) => return Ok(()),
            },
            None => value,
        };
        if value.len() as u64 > self.l2_bytes {
            return Ok(());
        }
        let tx = db.begin_write()?;
        {
            let mut values = tx.open_table(VALUES)?;
            let mut meta = tx.open_table(META)?;
            let expires = now_ns().saturating_add(self.ttl.as_nanos() as u64);
            values.insert(key, value)?;
            meta.insert(key, (expires, value.len() as u64))?;
            // Evict the entries closest to expiry (the oldest) until under the bound.
            let mut total: u64 = 0;
            let mut all: Vec<(u64, CacheKey, u64)> = Vec::new();
            for row in meta.iter()? {
                let (k, v) = row?;
                let (exp, size) = v.value();
                total += size;
                all.push((exp, *k.value(), size));
            }
            if total > self.l2_bytes {
                all.sort_unstable();
                for (_, k, size) in all {
                    if total <= self.l2_bytes || &k == key {
                        break;
                    }
                    values.remove(&k)?;
                    meta.remove(&k)?;
                    total -= size;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// The name a value is sealed under: its key, so a value moved to another key fails to open.
fn value_name(key: &CacheKey) -> String {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    format!("cache/{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> CacheConfig {
        CacheConfig {
            l1_entries: 2,
            l1_bytes: 100,
            l2_path: Some(dir.join("cache.redb")),
            l2_bytes: 250,
            ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn l1_is_bounded_in_entries_and_bytes() {
        let c = ResultCache::open(&CacheConfig {
            l2_path: None,
            ..config(Path::new("/unused"))
        })
        .unwrap();
        let k = |i: u8| ResultCache::key(&[&[i]]);
        c.put(k(1), vec![1; 10]);
        c.put(k(2), vec![2; 10]);
        c.put(k(3), vec![3; 10]); // evicts 1 (entries)
        assert!(c.get(&k(1)).is_none());
        assert!(c.get(&k(3)).is_some());
        c.put(k(4), vec![4; 95]); // evicts by bytes
        assert!(c.get(&k(2)).is_none() && c.get(&k(3)).is_none());
        assert_eq!(c.get(&k(4)).unwrap().len(), 95);
        c.put(k(5), vec![5; 101]); // larger than L1 alone: not kept
        assert!(c.get(&k(5)).is_none());
    }

    #[test]
    fn l2_survives_reopen_promotes_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let k = ResultCache::key(&[b"model", b"prompt"]);
        {
            let c = ResultCache::open(&config(dir.path())).unwrap();
            c.put(k, b"answer".to_vec());
        }
        let c = ResultCache::open(&config(dir.path())).unwrap();
        assert_eq!(c.get(&k).unwrap(), b"answer");
        assert_eq!(c.get(&k).unwrap(), b"answer");
        assert!(c.get(&ResultCache::key(&[b"other"])).is_none());
        let s = c.stats();
        assert_eq!((s.l2_hits, s.l1_hits, s.misses), (1, 1, 1));
        assert!((s.hit_rate() - 2.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn l2_is_bounded_in_bytes_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let c = ResultCache::open(&config(dir.path())).unwrap();
        for i in 0..5u8 {
            c.put(ResultCache::key(&[&[i]]), vec![i; 100]);
        }
        c.clear_l1();
        let present = (0..5u8)
            .filter(|i| c.get(&ResultCache::key(&[&[*i]])).is_some())
            .count();
        assert_eq!(present, 2, "250 bytes hold two 100-byte values");
        assert!(
            c.get(&ResultCache::key(&[&[4]])).is_some(),
            "the newest survives"
        );

        let short = ResultCache::open(&CacheConfig {
            ttl: Duration::ZERO,
            l2_path: Some(dir.path().join("short.redb")),
            ..config(dir.path())
        })
        .unwrap();
        short.put(ResultCache::key(&[b"x"]), b"v".to_vec());
        short.clear_l1();
        assert!(short.get(&ResultCache::key(&[b"x"])).is_none());
    }

    fn keys_in(dir: &Path, name: &str) -> FileKeys {
        let key_file = dir.join("master.key");
        if !key_file.exists() {
            bear_security::MasterKey::generate_key_file(&key_file).unwrap();
        }
        let path = dir.join("keyring.json");
        let source = bear_security::KeySource::KeyFile(key_file);
        let mut ring = match path.exists() {
            true => bear_security::Keyring::open(&path, source),
            false => bear_security::Keyring::create(&path, source),
        }
        .unwrap();
        ring.file_keys(name).unwrap()
    }

    #[test]
    fn sealed_l2_values_open_only_under_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let config = CacheConfig {
            l2_bytes: 1 << 20,
            ..config(dir.path())
        };
        let keys = keys_in(dir.path(), "@cache");
        let secret = b"the answer names Greenfield Bakeries".to_vec();
        let k = ResultCache::key(&[b"q"]);
        {
            let c = ResultCache::open(&config).unwrap();
            c.seal_with(keys.clone());
            c.put(k, secret.clone());
            c.clear_l1();
            assert_eq!(c.get(&k).as_deref(), Some(&secret[..]), "opened from L2");
        }
        let on_disk = std::fs::read(dir.path().join("cache.redb")).unwrap();
        assert!(!on_disk.windows(10).any(|w| w == b"Greenfield"));

        // Without keys, or under other keys, a sealed value is a miss, and is dropped.
        {
            let c = ResultCache::open(&config).unwrap();
            assert!(c.get(&k).is_none());
        }
        {
            let c = ResultCache::open(&config).unwrap();
            c.seal_with(keys.clone());
            assert!(c.get(&k).is_none(), "dropped when it did not open");
            c.put(k, secret.clone());
            c.seal_with(keys_in(dir.path(), "@other"));
            assert!(c.get(&k).is_none());
        }

        // A plain value from before sealing is not served once sealed; `clear` empties L2.
        {
            let c = ResultCache::open(&config).unwrap();
            c.put(k, secret.clone());
        }
        let c = ResultCache::open(&config).unwrap();
        c.seal_with(keys);
        assert!(c.get(&k).is_none());
        c.put(k, secret.clone());
        c.clear();
        assert!(c.get(&k).is_none(), "cleared");
    }

    #[test]
    fn keys_separate_parts() {
        assert_ne!(
            ResultCache::key(&[b"ab", b"c"]),
            ResultCache::key(&[b"a", b"bc"])
        );
    }
}
