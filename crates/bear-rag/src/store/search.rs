//! Searching a collection: vector (ANN or exact from memory), full text (BM25), and hybrid
//! through LanceDB's reciprocal-rank reranker, with document and date filters.

use super::*;
use crate::flat::FlatVectors;

impl Collection {
    /// The columns a [`Hit`] is read from: with the OCR column when the table has it.
    fn hit_columns(&self) -> Vec<&'static str> {
        let mut c = HIT_COLUMNS.to_vec();
        if self
            .has_ocr_column
            .load(std::sync::atomic::Ordering::Acquire)
        {
            c.push(OCR_COLUMN);
        }
        c
    }

    /// Searches the chunks. `vector` is required for vector and hybrid mode, `text` for full
    /// text and hybrid.
    pub async fn search(
        &self,
        mode: SearchMode,
        text: &str,
        vector: Option<&[f32]>,
        k: usize,
        filter: &Filter,
        tuning: &AnnTuning,
    ) -> Result<Vec<Hit>> {
        let predicate = filter.predicate()?;
        if filter.within.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let need_vec = || {
            vector.ok_or_else(|| Error::InvalidRequest("vector search needs a query vector".into()))
        };
        let exact = mode == SearchMode::Exact || (mode == SearchMode::Vector && tuning.exact);
        if exact && let Some(hits) = self.flat_search(need_vec()?, k, filter).await? {
            return Ok(hits);
        }
        let columns = self.hit_columns();
        let base = || {
            let mut q = self
                .chunks
                .query()
                .limit(k)
                .select(Select::columns(&columns));
            if let Some(p) = &predicate {
                q = q.only_if(p.clone());
            }
            q
        };
        let vq = |v: &[f32]| -> Result<lancedb::query::VectorQuery> {
            let q = base()
                .nearest_to(v)
                .map_err(|e| Error::storage("vector query", e))?
                .distance_type(DistanceType::Cosine)
                .nprobes(tuning.nprobes)
                .map_err(|e| Error::storage("vector query", e))?
                .ef(tuning.ef);
            let q = match tuning.refine_factor {
                0 => q,
                r => q.refine_factor(r),
            };
            Ok(if exact { q.bypass_vector_index() } else { q })
        };
        let stream = match mode {
            SearchMode::Vector | SearchMode::Exact => vq(need_vec()?)?.execute().await,
            SearchMode::FullText => {
                base()
                    .full_text_search(FullTextSearchQuery::new(text.to_string()))
                    .execute()
                    .await
            }
            SearchMode::Hybrid => {
                vq(need_vec()?)?
                    .full_text_search(FullTextSearchQuery::new(text.to_string()))
                    .execute_hybrid(QueryExecutionOptions::default())
                    .await
            }
        }
        .map_err(|e| Error::storage("search", e))?;
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|e| Error::storage("search", e))?;
        let mut hits = Vec::new();
        for b in &batches {
            let c = Cols(b);
            for i in 0..b.num_rows() {
                let score = match mode {
                    SearchMode::Vector | SearchMode::Exact => 1.0 - c.f32("_distance", i)?,
                    SearchMode::FullText => c.f32("_score", i)?,
                    SearchMode::Hybrid => c.f32("_relevance_score", i)?,
                };
                hits.push(c.hit(i, score)?);
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        Ok(hits)
    }

    /// Every chunk of document `id` (its 32 hex digits), in document order: the text a
    /// citation is shown in.
    pub async fn document_chunks(&self, id: &str) -> Result<Vec<Hit>> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidRequest(
                "a document id is 32 hexadecimal digits".into(),
            ));
        }
        let columns = self.hit_columns();
        let q = self
            .chunks
            .query()
            .select(Select::columns(&columns))
            .only_if(format!("document_id = '{id}'"));
        let batches = read_all(&q, "read a document's chunks").await?;
        let mut hits = Vec::new();
        for b in &batches {
            let c = Cols(b);
            for i in 0..b.num_rows() {
                hits.push(c.hit(i, 0.0)?);
            }
        }
        hits.sort_by_key(|h| h.ordinal);
        Ok(hits)
    }

    /// Exact search from the in-memory vectors (see [`crate::flat`]), loading them for this
    /// table version if needed; `None` when the collection is too large to keep them.
    async fn flat_search(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter,
    ) -> Result<Option<Vec<Hit>>> {
        let dim = self.meta.dimension;
        if query.len() != dim {
            return Err(Error::InvalidRequest(format!(
                "the query vector has {} dimensions; this collection's have {dim}",
                query.len()
            )));
        }
        let version = self
            .chunks
            .version()
            .await
            .map_err(|e| Error::storage("version", e))?;
        let flat = match self.flat.get(&self.dir, version) {
            Some(f) => f,
            None => {
                let rows = self
                    .chunks
                    .count_rows(None)
                    .await
                    .map_err(|e| Error::storage("count", e))?;
                if rows.saturating_mul(dim * 4) > crate::flat::MAX_BYTES {
                    return Ok(None);
                }
                let batches = read_all(
                    &self
                        .chunks
                        .query()
                        .select(Select::columns(&["vector", "document_id", "file_modified"]))
                        .with_row_id(),
                    "read vectors",
                )
                .await?;
                let f = Arc::new(FlatVectors::from_batches(version, dim, &batches)?);
                self.flat.put(self.dir.clone(), f.clone());
                f
            }
        };
        let (q, filter) = (query.to_vec(), filter.clone());
        let top = tokio::task::spawn_blocking(move || flat.top_k(&q, k, &filter))
            .await
            .map_err(|_| Error::Storage {
                op: "exact search",
                reason: "the scoring task failed".into(),
            })?;
        if top.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let batches = read_all(
            &self
                .chunks
                .take_row_ids(top.iter().map(|h| h.0).collect())
                .select(Select::columns(&self.hit_columns()))
                .with_row_id(),
            "search",
        )
        .await?;
        let mut found = std::collections::HashMap::new();
        for b in &batches {
            let c = Cols(b);
            for i in 0..b.num_rows() {
                found.insert(c.u64("_rowid", i)?, c.hit(i, 0.0)?);
            }
        }
        Ok(Some(
            top.into_iter()
                .filter_map(|(row, score)| found.remove(&row).map(|h| Hit { score, ..h }))
                .collect(),
        ))
    }
}

/// Query-time ANN parameters (ignored until an ANN index exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnTuning {
    /// IVF partitions probed.
    pub nprobes: usize,
    /// HNSW candidate list size per partition: larger finds more true neighbours, slower.
    pub ef: usize,
    /// Candidates re-ranked with exact distances, as a multiple of k (0: no re-ranking).
    pub refine_factor: u32,
    /// Skip the index: an exact (flat) scan.
    pub exact: bool,
}

impl Default for AnnTuning {
    fn default() -> Self {
        Self {
            nprobes: 20,
            ef: 64,
            refine_factor: 0,
            exact: false,
        }
    }
}
