//! Exact (flat) vector search from memory.
//!
//! LanceDB's own flat search decodes every vector of the table from its pages on each query
//! (~80 ms for 100,000 × 384 here). For exact search BEAR instead keeps one collection's
//! vectors, L2-normalised, in one contiguous row-major buffer, with the two columns filters
//! use (document and file time) and each row's Lance row id. A query is then one matrix-vector
//! product (split over the cores; the dot products use the widest SIMD this CPU has, chosen at
//! run time by pulp, the dispatch crate under candle's gemm) and a partial sort; only the k
//! hits are read back from LanceDB, by row id.
//!
//! The buffer belongs to one table version: any write makes a new version, and the next exact
//! search reloads. Collections whose vectors would take more than [`MAX_BYTES`] are not kept;
//! they use LanceDB's scan. All collections' buffers together stay under [`TOTAL_BYTES`]: the
//! least recently searched are dropped first, so a long-running server that searches many
//! collections does not keep them all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use pulp::{Arch, Simd, WithSimd};

use crate::error::{Error, Result};
use crate::store::Filter;

/// The most memory one collection's vectors may take in the cache.
pub(crate) const MAX_BYTES: usize = 512 << 20;
/// The most memory the cache keeps across collections.
pub(crate) const TOTAL_BYTES: usize = 2 * MAX_BYTES;

/// Vectors of one table version.
#[derive(Debug)]
pub(crate) struct FlatVectors {
    pub(crate) version: u64,
    dim: usize,
    row_ids: Vec<u64>,
    /// `row_ids.len() × dim`, each row of unit length (an all-zero row stays zero).
    vectors: Vec<f32>,
    /// Index into `documents` per row.
    document_of: Vec<u32>,
    documents: HashMap<String, u32>,
    file_modified: Vec<i64>,
}

/// The cache shared by every `Collection` a `Store` opens, keyed by collection directory,
/// least recently used first out once the buffers pass the budget ([`TOTAL_BYTES`]).
#[derive(Debug, Clone)]
pub(crate) struct FlatCache(Arc<Mutex<Lru>>);

#[derive(Debug)]
struct Lru {
    entries: lru::LruCache<PathBuf, Arc<FlatVectors>>,
    bytes: usize,
    budget: usize,
}

impl Default for FlatCache {
    fn default() -> Self {
        Self::with_budget(TOTAL_BYTES)
    }
}

impl FlatCache {
    fn with_budget(budget: usize) -> Self {
        Self(Arc::new(Mutex::new(Lru {
            entries: lru::LruCache::unbounded(),
            bytes: 0,
            budget,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, dir: &Path, version: u64) -> Option<Arc<FlatVectors>> {
        let mut lru = self.lock();
        lru.entries
            .get(dir)
            .filter(|f| f.version == version)
            .cloned()
    }

    pub(crate) fn put(&self, dir: PathBuf, flat: Arc<FlatVectors>) {
        let mut lru = self.lock();
        lru.bytes += flat.bytes();
        if let Some(old) = lru.entries.put(dir, flat) {
            lru.bytes -= old.bytes();
        }
        // Searches in flight keep their `Arc`; the cache only stops holding it.
        while lru.bytes > lru.budget && lru.entries.len() > 1 {
            if let Some((_, gone)) = lru.entries.pop_lru() {
                lru.bytes -= gone.bytes();
            }
        }
    }

    pub(crate) fn forget(&self, dir: &Path) {
        let mut lru = self.lock();
        if let Some(gone) = lru.entries.pop(dir) {
            lru.bytes -= gone.bytes();
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

fn column_err(name: &str) -> Error {
    Error::Storage {
        op: "read vectors",
        reason: format!("column `{name}` is missing or has an unexpected type"),
    }
}

impl FlatVectors {
    /// The memory the buffer holds (its arrays; the document-id map counted by its keys).
    fn bytes(&self) -> usize {
        self.vectors.len() * 4
            + self.row_ids.len() * 8
            + self.document_of.len() * 4
            + self.file_modified.len() * 8
            + self.documents.keys().map(|k| k.len() + 32).sum::<usize>()
    }

    /// Builds the buffer from batches with `_rowid`, `vector`, `document_id` and
    /// `file_modified`.
    pub(crate) fn from_batches(version: u64, dim: usize, batches: &[RecordBatch]) -> Result<Self> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut f = Self {
            version,
            dim,
            row_ids: Vec::with_capacity(rows),
            vectors: Vec::with_capacity(rows * dim),
            document_of: Vec::with_capacity(rows),
            documents: HashMap::new(),
            file_modified: Vec::with_capacity(rows),
        };
        for b in batches {
            let col = |name: &str| b.column_by_name(name).ok_or_else(|| column_err(name));
            let ids = col("_rowid")?
                .as_primitive_opt::<UInt64Type>()
                .ok_or_else(|| column_err("_rowid"))?;
            let list = col("vector")?
                .as_fixed_size_list_opt()
                .ok_or_else(|| column_err("vector"))?;
            let values = list
                .values()
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(|| column_err("vector"))?;
            let docs = col("document_id")?
                .as_string_opt::<i32>()
                .ok_or_else(|| column_err("document_id"))?;
            let times = col("file_modified")?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| column_err("file_modified"))?;
            if list.value_length() as usize != dim || values.null_count() > 0 {
                return Err(column_err("vector"));
            }
            let base = list.offset() * dim;
            let all = &values.values()[base..base + b.num_rows() * dim];
            for i in 0..b.num_rows() {
                let v = &all[i * dim..(i + 1) * dim];
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
                f.vectors.extend(v.iter().map(|x| x * scale));
                f.row_ids.push(ids.value(i));
                let next = f.documents.len() as u32;
                let d = *f.documents.entry(docs.value(i).to_string()).or_insert(next);
                f.document_of.push(d);
                f.file_modified.push(times.value(i));
            }
        }
        Ok(f)
    }

    /// The `k` rows most similar to `query` by cosine that pass `filter`: (row id, cosine),
    /// best first.
    pub(crate) fn top_k(&self, query: &[f32], k: usize, filter: &Filter) -> Vec<(u64, f32)> {
        let n = self.row_ids.len();
        if n == 0 || k == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        let q: Vec<f32> = query.iter().map(|x| x * scale).collect();
        let mut scores = vec![0f32; n];
        let arch = Arch::new();
        // One slice of rows per core; each is a matrix-vector product.
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, 8);
        let per = n.div_ceil(threads);
        std::thread::scope(|s| {
            for (part, out) in scores.chunks_mut(per).enumerate() {
                let rows = out.len();
                let start = part * per * self.dim;
                let rows = &self.vectors[start..start + rows * self.dim];
                let q = &q;
                s.spawn(move || {
                    arch.dispatch(Dots {
                        query: q,
                        rows,
                        out,
                    })
                });
            }
        });
        let document = match &filter.document {
            Some(d) => match self.documents.get(d) {
                Some(i) => Some(*i),
                None => return Vec::new(),
            },
            None => None,
        };
        let within: Option<std::collections::HashSet<u32>> = filter.within.as_ref().map(|ids| {
            ids.iter()
                .filter_map(|id| self.documents.get(id).copied())
                .collect()
        });
        let keep = |i: usize| {
            document.is_none_or(|d| self.document_of[i] == d)
                && within
                    .as_ref()
                    .is_none_or(|w| w.contains(&self.document_of[i]))
                && filter
                    .modified_after
                    .is_none_or(|t| self.file_modified[i] >= t)
                && filter
                    .modified_before
                    .is_none_or(|t| self.file_modified[i] <= t)
        };
        let mut hits: Vec<(f32, usize)> = scores
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(i, s)| (s, i))
            .collect();
        let by_score = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0);
        if hits.len() > k {
            hits.select_nth_unstable_by(k - 1, by_score);
            hits.truncate(k);
        }
        hits.sort_by(by_score);
        hits.into_iter()
            .map(|(s, i)| (self.row_ids[i], s))
            .collect()
    }
}

/// `out[i]` = the dot product of `query` with row `i` of `rows`.
struct Dots<'a> {
    query: &'a [f32],
    rows: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for Dots<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let dim = self.query.len();
        let (q_head, q_tail) = S::as_simd_f32s(self.query);
        for (o, row) in self.out.iter_mut().zip(self.rows.chunks_exact(dim)) {
            let (r_head, r_tail) = S::as_simd_f32s(row);
            // Four accumulators keep the fused multiply-adds independent.
            let mut acc = [simd.splat_f32s(0.0); 4];
            let mut pairs = r_head.chunks_exact(4).zip(q_head.chunks_exact(4));
            for (r, q) in &mut pairs {
                for j in 0..4 {
                    acc[j] = simd.mul_add_f32s(r[j], q[j], acc[j]);
                }
            }
            let done = r_head.len() / 4 * 4;
            for (r, q) in r_head[done..].iter().zip(&q_head[done..]) {
                acc[0] = simd.mul_add_f32s(*r, *q, acc[0]);
            }
            let sum = simd.add_f32s(simd.add_f32s(acc[0], acc[1]), simd.add_f32s(acc[2], acc[3]));
            *o = simd.reduce_sum_f32s(sum)
                + r_tail.iter().zip(q_tail).map(|(a, b)| a * b).sum::<f32>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{FixedSizeListArray, Int64Array, StringArray, UInt64Array};
    use arrow_schema::{DataType, Field, Schema};

    fn batch(vectors: &[[f32; 2]], docs: &[&str], times: &[i64]) -> RecordBatch {
        let n = vectors.len();
        let list = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
            vectors.iter().map(|v| Some(v.iter().map(|x| Some(*x)))),
            2,
        );
        let schema = Schema::new(vec![
            Field::new("_rowid", DataType::UInt64, false),
            Field::new("vector", list.data_type().clone(), false),
            Field::new("document_id", DataType::Utf8, false),
            Field::new("file_modified", DataType::Int64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(UInt64Array::from_iter_values(0..n as u64)),
                Arc::new(list),
                Arc::new(StringArray::from_iter_values(docs)),
                Arc::new(Int64Array::from_iter_values(times.iter().copied())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn ranks_by_cosine_and_filters() {
        let b = batch(
            &[[1.0, 0.0], [0.0, 3.0], [2.0, 2.0], [0.0, 0.0], [-1.0, 0.0]],
            &["a", "b", "a", "b", "a"],
            &[10, 20, 30, 40, 50],
        );
        let f = FlatVectors::from_batches(7, 2, &[b]).unwrap();
        let all = Filter::default();
        let top = f.top_k(&[10.0, 0.0], 3, &all);
        assert_eq!(top.iter().map(|h| h.0).collect::<Vec<_>>(), vec![0, 2, 1]);
        assert!((top[0].1 - 1.0).abs() < 1e-6 && (top[1].1 - 0.70710677).abs() < 1e-6);
        // Document and time filters; an unknown document finds nothing.
        let only_b = Filter {
            document: Some("b".into()),
            ..Filter::default()
        };
        assert_eq!(f.top_k(&[1.0, 0.0], 10, &only_b).len(), 2);
        let window = Filter {
            modified_after: Some(20),
            modified_before: Some(40),
            ..Filter::default()
        };
        let ids: Vec<u64> = f
            .top_k(&[1.0, 1.0], 10, &window)
            .iter()
            .map(|h| h.0)
            .collect();
        assert_eq!(ids, vec![2, 1, 3]);
        let none = Filter {
            document: Some("c".into()),
            ..Filter::default()
        };
        assert!(f.top_k(&[1.0, 0.0], 10, &none).is_empty());
        // A query of the wrong length or k = 0 finds nothing rather than panicking.
        assert!(f.top_k(&[1.0], 3, &all).is_empty());
        assert!(f.top_k(&[1.0, 0.0], 0, &all).is_empty());
    }

    #[test]
    fn the_cache_drops_the_least_recently_searched_past_its_budget() {
        let b = batch(&[[1.0, 0.0], [0.0, 1.0]], &["a", "b"], &[1, 2]);
        let one = || Arc::new(FlatVectors::from_batches(1, 2, std::slice::from_ref(&b)).unwrap());
        let size = one().bytes();
        let cache = FlatCache::with_budget(2 * size);
        let dir = |n: &str| PathBuf::from(format!("/c/{n}"));
        cache.put(dir("a"), one());
        cache.put(dir("b"), one());
        assert!(
            cache.get(&dir("a"), 1).is_some(),
            "a is now the most recent"
        );
        cache.put(dir("c"), one());
        assert_eq!(cache.bytes(), 2 * size);
        assert!(cache.get(&dir("b"), 1).is_none(), "b was the least recent");
        assert!(cache.get(&dir("a"), 1).is_some() && cache.get(&dir("c"), 1).is_some());
        // A newer version replaces the entry without counting it twice; forget frees it.
        cache.put(dir("c"), one());
        assert_eq!(cache.bytes(), 2 * size);
        cache.forget(&dir("c"));
        assert_eq!(cache.bytes(), size);
        assert!(
            cache.get(&dir("a"), 2).is_none(),
            "another version is a miss"
        );
        // One collection over the budget is still kept (alone): it was already checked
        // against MAX_BYTES.
        let small = FlatCache::with_budget(size / 2);
        small.put(dir("a"), one());
        assert!(small.get(&dir("a"), 1).is_some());
    }

    #[test]
    fn simd_dots_match_plain_ones_at_every_length() {
        // Lengths around the SIMD widths (4, 8, 16 lanes) and the four accumulators.
        for dim in [1, 3, 7, 8, 9, 16, 31, 64, 65, 383, 384] {
            let q: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
            let rows: Vec<f32> = (0..dim * 5).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut out = vec![0f32; 5];
            Arch::new().dispatch(Dots {
                query: &q,
                rows: &rows,
                out: &mut out,
            });
            for (o, r) in out.iter().zip(rows.chunks_exact(dim)) {
                let plain: f32 = r.iter().zip(&q).map(|(a, b)| a * b).sum();
                assert!((o - plain).abs() < 1e-3, "dim {dim}: {o} vs {plain}");
            }
        }
    }
}
